//! The two markdown tables: one row per scenario, then the ratios of the targets,
//! computed from the rows of the same run.

use std::fmt::{self, Write as _};

use user_core::password::Argon2Params;

use crate::client::{Op, Transport};
use crate::measure::Measured;

/// Which part of the run a row belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Group {
    Read,
    Write,
    SignIn,
    /// The sign-ins of the flood.
    Flood,
    /// The reads made while the flood runs.
    DuringFlood,
    /// An admin's searches and pages of the user list.
    Admin,
}

impl Group {
    fn label(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::SignIn => "sign-in",
            Self::Flood => "sign-in flood",
            Self::DuringFlood => "read during flood",
            Self::Admin => "admin",
        }
    }
}

/// How the clients of a scenario reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Conns {
    /// All on one connection: gRPC multiplexes on its HTTP/2 connection; HTTP uses one
    /// HTTP/2 connection with prior knowledge (h2c), HTTP/1.1 having no multiplexing.
    One,
    /// A connection each: gRPC a channel each, HTTP an HTTP/1.1 keep-alive connection each.
    PerClient,
}

/// One scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Spec {
    pub(crate) group: Group,
    pub(crate) op: Op,
    pub(crate) transport: Transport,
    pub(crate) clients: usize,
    pub(crate) conns: Conns,
}

impl Spec {
    pub(crate) fn conns_label(&self) -> String {
        match (self.conns, self.transport) {
            (Conns::One, Transport::Grpc) => "1".to_owned(),
            (Conns::One, Transport::Http) => "1 (h2c)".to_owned(),
            (Conns::PerClient, Transport::Grpc) => self.clients.to_string(),
            (Conns::PerClient, Transport::Http) => format!("{} (HTTP/1.1)", self.clients),
        }
    }
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} ({}), {} clients, connections: {}",
            self.group.label(),
            self.op.call_name(self.transport),
            self.transport.name(),
            self.clients,
            self.conns_label()
        )
    }
}

/// A scenario and what it measured.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) spec: Spec,
    pub(crate) measured: Measured,
    /// Sign-in floods in process: resident memory just before the first request (the
    /// connections open) and its peak while they ran, in bytes.
    pub(crate) memory: Option<(u64, u64)>,
}

/// The client counts of a run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counts {
    /// Readers (and trivial-handler clients), the "16 clients" of the stall targets.
    pub(crate) reads: usize,
    pub(crate) register: usize,
    pub(crate) refresh: usize,
    /// The small sign-in load ("4 clients").
    pub(crate) sign_in_few: usize,
    /// The sign-in flood ("256 clients").
    pub(crate) sign_in_many: usize,
    /// The sign-ins that run beside the readers ("64 clients").
    pub(crate) flood: usize,
    /// Admins searching, and admins paging.
    pub(crate) admin: usize,
}

impl Counts {
    pub(crate) fn new(quick: bool) -> Self {
        if quick {
            Self {
                reads: 4,
                register: 2,
                refresh: 4,
                sign_in_few: 2,
                sign_in_many: 16,
                flood: 8,
                admin: 1,
            }
        } else {
            Self {
                reads: 16,
                register: 4,
                refresh: 16,
                sign_in_few: 4,
                sign_in_many: 256,
                flood: 64,
                admin: 2,
            }
        }
    }
}

/// Everything the tables show.
#[derive(Debug)]
pub(crate) struct Report {
    /// What ran against what, one line each.
    pub(crate) header: Vec<String>,
    pub(crate) rows: Vec<Row>,
    /// Raw Argon2id on the hash threads, when sign-ins ran.
    pub(crate) raw: Option<Measured>,
    pub(crate) hash_threads: usize,
    pub(crate) params: Argon2Params,
    /// Resident memory before the first request and its peak, in bytes: in process only.
    pub(crate) memory: Option<(u64, u64)>,
    /// Against a running server (no memory figures).
    pub(crate) remote: bool,
    pub(crate) counts: Counts,
    /// In process: how many users the export wrote, and how long it took.
    pub(crate) export: Option<(u64, std::time::Duration)>,
}

impl Report {
    fn find(&self, spec: Spec) -> Option<&Measured> {
        self.rows
            .iter()
            .find(|r| r.spec == spec)
            .map(|r| &r.measured)
    }

    /// Calls that failed other than by shedding, in all rows.
    pub(crate) fn errors(&self) -> u64 {
        self.rows.iter().map(|r| r.measured.errors).sum::<u64>()
            + self.raw.as_ref().map_or(0, |m| m.errors)
    }

    /// The first error of each row that had any.
    pub(crate) fn error_lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .rows
            .iter()
            .filter(|r| r.measured.errors > 0)
            .map(|r| {
                format!(
                    "{}: {} errors, first: {}",
                    r.spec,
                    r.measured.errors,
                    r.measured.first_error.as_deref().unwrap_or("?")
                )
            })
            .collect();
        if let Some(raw) = self.raw.as_ref().filter(|m| m.errors > 0) {
            lines.push(format!(
                "raw Argon2id: {}",
                raw.first_error.as_deref().unwrap_or("?")
            ));
        }
        lines
    }

    fn ratios(&self) -> Vec<Ratio> {
        let c = self.counts;
        let mut out = Vec::new();
        let transports = [Transport::Grpc, Transport::Http];
        let spec = |group, op, transport, clients, conns| Spec {
            group,
            op,
            transport,
            clients,
            conns,
        };
        for t in transports {
            let read = |conns| spec(Group::Read, Op::Read, t, c.reads, conns);
            let call = Op::Read.call_name(t);
            for conns in [Conns::One, Conns::PerClient] {
                let what = match (t, conns) {
                    (Transport::Grpc, Conns::One) => "one shared connection",
                    (Transport::Grpc, Conns::PerClient) => "a connection each",
                    (Transport::Http, Conns::One) => "one shared h2c connection",
                    (Transport::Http, Conns::PerClient) => "an HTTP/1.1 connection each",
                };
                if let Some(m) = self.find(read(conns)) {
                    out.push(Ratio::new(
                        format!("{call} p99 / p50, {} clients, {what}", c.reads),
                        div(m.p99(), m.p50()),
                        Target::AtMost(3.0),
                    ));
                }
            }
            let trivial = spec(Group::Read, Op::Health, t, c.reads, Conns::PerClient);
            if let (Some(read), Some(trivial)) =
                (self.find(read(Conns::PerClient)), self.find(trivial))
            {
                let health = Op::Health.call_name(t);
                out.push(Ratio::new(
                    format!("{call} / {health} throughput, {} clients", c.reads),
                    div(Some(read.throughput()), Some(trivial.throughput())),
                    Target::AtLeast(0.5),
                ));
                out.push(Ratio::new(
                    format!("{call} / {health} p50, {} clients", c.reads),
                    div(read.p50(), trivial.p50()),
                    Target::Report,
                ));
            }
        }
        for t in transports {
            let sign_in = |clients| spec(Group::SignIn, Op::SignIn, t, clients, Conns::PerClient);
            let (few, many) = (
                self.find(sign_in(c.sign_in_few)),
                self.find(sign_in(c.sign_in_many)),
            );
            let capacity = self.raw.as_ref().map(Measured::throughput);
            let name = t.name();
            if let Some(few) = few {
                out.push(Ratio::new(
                    format!(
                        "{name} sign-ins / raw Argon2id ({} threads), {} clients",
                        self.hash_threads, c.sign_in_few
                    ),
                    div(Some(few.throughput()), capacity),
                    Target::AtLeast(0.95),
                ));
            }
            if let Some(many) = many {
                out.push(Ratio::new(
                    format!(
                        "{name} successful sign-ins / capacity, {}-client flood retrying at once",
                        c.sign_in_many
                    ),
                    div(Some(many.throughput()), capacity),
                    Target::AtLeast(0.9),
                ));
            }
            if let (Some(few), Some(many)) = (few, many) {
                out.push(Ratio::new(
                    format!(
                        "{name} sign-in throughput, {} / {} clients",
                        c.sign_in_many, c.sign_in_few
                    ),
                    div(Some(many.throughput()), Some(few.throughput())),
                    Target::AtLeast(0.95),
                ));
            }
        }
        let bound = self.hash_threads as f64 * f64::from(self.params.memory_kib) * 1024.0;
        let name = |what: String| {
            format!(
                "resident memory growth {what} / ({} hash threads x {} MiB)",
                self.hash_threads,
                self.params.memory_kib / 1024
            )
        };
        for row in &self.rows {
            let s = row.spec;
            let flood = s.op == Op::SignIn && matches!(s.group, Group::SignIn | Group::Flood);
            if !flood || (s.group == Group::SignIn && s.clients != c.sign_in_many) {
                continue;
            }
            let what = format!(
                "during the {}-client {} flood",
                s.clients,
                s.transport.name()
            );
            if let Some((before, peak)) = row.memory {
                let growth = peak.saturating_sub(before) as f64;
                out.push(Ratio::new(
                    name(what),
                    div(Some(growth), Some(bound)),
                    Target::AtMost(1.25),
                ));
            }
        }
        let flooded = self.rows.iter().any(|r| r.spec.op == Op::SignIn);
        if self.remote && flooded {
            let what = "during a sign-in flood (not measured against an address)".to_owned();
            out.push(Ratio::new(name(what), None, Target::AtMost(1.25)));
        }
        for t in transports {
            let idle = spec(Group::Read, Op::Read, t, c.reads, Conns::PerClient);
            let during = Spec {
                group: Group::DuringFlood,
                ..idle
            };
            if let (Some(idle), Some(during)) = (self.find(idle), self.find(during)) {
                out.push(Ratio::new(
                    format!(
                        "{} p99 during a {}-client sign-in flood / idle p99",
                        Op::Read.call_name(t),
                        c.flood
                    ),
                    div(during.p99(), idle.p99()),
                    Target::AtMost(3.0),
                ));
            }
        }
        out
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.header {
            writeln!(f, "{line}")?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "| scenario | transport | clients | conns | requests | shed | errors | ok/s | p50 ms | p99 ms |"
        )?;
        writeln!(f, "|---|---|---|---|---:|---:|---:|---:|---:|---:|")?;
        for row in &self.rows {
            let s = &row.spec;
            let label = format!("{} {}", s.group.label(), s.op.call_name(s.transport));
            let line = table_row(
                &label,
                s.transport.name(),
                &s.clients.to_string(),
                &s.conns_label(),
                &row.measured,
            );
            writeln!(f, "{line}")?;
        }
        if let Some(raw) = &self.raw {
            let p = self.params;
            let label = format!(
                "raw Argon2id (m={} KiB, t={}, p={})",
                p.memory_kib, p.iterations, p.parallelism
            );
            let threads = format!("{} threads", self.hash_threads);
            writeln!(f, "{}", table_row(&label, "-", &threads, "-", raw))?;
        }
        if let Some((users, took)) = self.export {
            let secs = took.as_secs_f64();
            writeln!(f)?;
            writeln!(
                f,
                "export (in process, to nowhere): {users} users in {secs:.2} s, {:.0} users/s, \
                 {:.2} µs per user",
                users as f64 / secs.max(f64::EPSILON),
                secs * 1e6 / (users.max(1) as f64)
            )?;
        }
        writeln!(f)?;
        writeln!(f, "| ratio | measured | target | holds? |")?;
        writeln!(f, "|---|---:|---|---|")?;
        for ratio in self.ratios() {
            writeln!(f, "{ratio}")?;
        }
        if let Some((base, peak)) = self.memory {
            let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
            writeln!(f)?;
            write!(
                f,
                "resident memory of this process (servers and clients): {:.1} MiB before the \
                 first request, {:.1} MiB at the peak",
                mib(base),
                mib(peak)
            )?;
            if self.rows.iter().any(|r| r.memory.is_some()) {
                write!(
                    f,
                    "; a flood's growth is counted from just before its first request (its \
                     connections open, the hash threads warm) to its peak"
                )?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

fn table_row(label: &str, transport: &str, clients: &str, conns: &str, m: &Measured) -> String {
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
    let mut line = String::new();
    let _ = write!(
        line,
        "| {label} | {transport} | {clients} | {conns} | {} | {} | {} | {:.1} | {} | {} |",
        m.requests,
        m.shed,
        m.errors,
        m.throughput(),
        ms(m.p50()),
        ms(m.p99())
    );
    line
}

fn div(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// What a ratio should be.
#[derive(Debug, Clone, Copy)]
enum Target {
    AtMost(f64),
    AtLeast(f64),
    /// Reported, with no target.
    Report,
}

struct Ratio {
    name: String,
    measured: Option<f64>,
    target: Target,
}

impl Ratio {
    fn new(name: String, measured: Option<f64>, target: Target) -> Self {
        Self {
            name,
            measured,
            target,
        }
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let measured = self
            .measured
            .map_or_else(|| "n/a".to_owned(), |v| format!("{v:.2}"));
        let (target, holds) = match (self.target, self.measured) {
            (Target::AtMost(t), Some(v)) => (format!("<= {t}"), yes_no(v <= t)),
            (Target::AtLeast(t), Some(v)) => (format!(">= {t}"), yes_no(v >= t)),
            (Target::AtMost(t), None) => (format!("<= {t}"), "n/a"),
            (Target::AtLeast(t), None) => (format!(">= {t}"), "n/a"),
            (Target::Report, _) => ("-".to_owned(), "-"),
        };
        write!(f, "| {} | {measured} | {target} | {holds} |", self.name)
    }
}

fn yes_no(holds: bool) -> &'static str {
    if holds { "yes" } else { "no" }
}
