//! Load test of the service over gRPC and HTTP: sign-in, register, refresh, an authenticated
//! read (`GetUser`, `GET /api/v1/me`) and the trivial handler beside it (gRPC health,
//! `/healthz`), an admin's search and paging of the user list, and an export, driven by closed-loop clients (each sends its next request when the last is
//! answered). It prints one markdown table of throughput and latency per scenario, then the
//! ratios of the performance targets, all computed in the same run, next to their targets.
//!
//! ```sh
//! # In process (default): the real gRPC and HTTP servers on 127.0.0.1:0 over a temporary
//! # SQLite file, or in a fresh PostgreSQL schema dropped at the end.
//! cargo run --release --example load_test
//! cargo run --release --example load_test -- --database-url postgres://postgres@127.0.0.1:5432/postgres
//! # Some scenarios, longer or shorter; --quick for CI (0.5 s each, few clients).
//! cargo run --release --example load_test -- --scenarios reads,flood --duration 10s
//! cargo run --example load_test -- --quick
//! # Against a running server, started with the per-address limits off:
//! #   cargo run --release --example server -- --login-rate-limit 0 --registration-rate-limit 0
//! cargo run --release --example load_test -- --grpc-addr 127.0.0.1:50051 --http-addr 127.0.0.1:8080
//! # In process over a dataset of N users (made by the dataset example, used and kept): the
//! # cost of each operation at that size.
//! cargo run --release --example dataset -- --users 1000000 --database-url sqlite:bench/1m.db
//! cargo run --release --example load_test -- --dataset sqlite:bench/1m.db \
//!     --scenarios reads,writes,signin-few,admin,export
//! ```
//!
//! Scenarios (client counts without `--quick`):
//! - `reads`: 16 clients reading their own profile with a token, on one shared connection
//!   and on one connection each, and 16 clients calling the trivial handler.
//! - `writes`: 4 clients registering new accounts, 16 refreshing their tokens.
//! - `signin`: 4 and 256 clients signing in, each to an account of its own, retrying at once
//!   when turned away as overloaded; and raw Argon2id on as many threads as the server
//!   hashes with, at the same parameters, for the capacity. `signin-few`: the 4 clients only.
//! - `admin`: 2 admins searching the user list (the searches of `client::SEARCHES` in turn,
//!   20 a page, the default), and 2 walking it page by page; in process only (an admin is
//!   needed).
//! - `export`: every user written as the `export` command writes them, to nowhere; in
//!   process only. Its time per user is the figure.
//! - `flood`: 16 clients reading (gRPC) during a 64-client sign-in flood, against the same
//!   read when idle.
//!
//! "One connection" for HTTP is one HTTP/2 connection with prior knowledge (h2c), which the
//! server accepts beside HTTP/1.1: HTTP/1.1 cannot carry concurrent requests on one
//! connection. "A connection each" is HTTP/1.1 with keep-alive.
//!
//! Accounts: in process, the run inserts them (and an admin) through the storage port with
//! one precomputed hash; against a server it registers them (one hash each). Over a dataset
//! it takes the first active users and admin in username order, whose password is
//! `--dataset-password`, and registers nobody (`writes` runs refresh only): the dataset stays
//! as it was, but for the sessions the sign-ins make. Shedding (gRPC
//! `RESOURCE_EXHAUSTED` for overload, HTTP 503 `overloaded`) is expected under a flood and
//! counted apart; any other failed call is an error, and the run then exits non-zero. The
//! figures never decide the exit status.
//!
//! Memory, in process only (n/a against an address): `VmRSS` from /proc/self/status, sampled
//! every 2 ms. A flood's growth runs from just before its first request (its connections
//! open; the hash threads have hashed before, so their Argon2 memory is already resident) to
//! the peak while it runs; it includes the clients' side of the connections, which live in
//! the same process. In process, the load generator also shares the cores and the Tokio
//! runtime with the servers; against an address, the servers' Argon2id parameters are taken
//! to be the defaults (OWASP) and raw hashing is measured on this machine.

mod client;
mod measure;
mod report;
mod target;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use client::{Caller, Op, Tokens, Transport, Wire, until_served};
use measure::drive;
use report::{Conns, Counts, Group, Report, Row, Spec};
use user_core::password::{Argon2Params, HasherConfig};

#[derive(Debug, Parser)]
#[command(about = "Load test of the service over gRPC and HTTP (see the source's docs)")]
struct Args {
    /// gRPC address (IP:port) of a running server, instead of starting one in process.
    #[arg(long)]
    grpc_addr: Option<SocketAddr>,
    /// HTTP address (IP:port) of a running server, instead of starting one in process.
    #[arg(long)]
    http_addr: Option<SocketAddr>,
    /// In process: a `postgres://` URL to run on, in a fresh schema dropped at the end.
    /// Without it, a temporary SQLite file.
    #[arg(long, conflicts_with_all = ["grpc_addr", "http_addr"])]
    database_url: Option<String>,
    /// In process over a database made by the dataset example (`sqlite:PATH` or a
    /// `postgres://` URL), used as it is and kept.
    #[arg(long, conflicts_with_all = ["grpc_addr", "http_addr", "database_url"])]
    dataset: Option<String>,
    /// With `--dataset` on PostgreSQL: its schema.
    #[arg(long, requires = "dataset")]
    postgres_schema: Option<String>,
    /// With `--dataset`: the password of its users (the dataset example's).
    #[arg(long, default_value = "benchmark password 1")]
    dataset_password: String,
    /// How long each scenario runs [default: 5s, or 500ms with --quick].
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Which scenarios, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "all")]
    scenarios: Vec<Selection>,
    /// For CI: 0.5 s per scenario and few clients; the figures mean little.
    #[arg(long)]
    quick: bool,
    /// Password hashes the server runs at once (its `--hash-concurrency`), for the raw
    /// Argon2id capacity and the memory bound [default: the number of cores here].
    #[arg(long)]
    hash_threads: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Selection {
    All,
    Reads,
    Writes,
    Signin,
    /// The 4-client sign-ins only.
    SigninFew,
    Flood,
    Admin,
    Export,
}

/// Where the servers are.
#[derive(Debug, Clone, Copy)]
struct Addrs {
    grpc: Option<SocketAddr>,
    http: Option<SocketAddr>,
}

impl Addrs {
    fn of(&self, transport: Transport) -> Option<SocketAddr> {
        match transport {
            Transport::Grpc => self.grpc,
            Transport::Http => self.http,
        }
    }

    fn transports(&self) -> Vec<Transport> {
        [Transport::Grpc, Transport::Http]
            .into_iter()
            .filter(|t| self.of(*t).is_some())
            .collect()
    }
}

/// What a run does, from the arguments.
struct Plan {
    counts: Counts,
    duration: Duration,
    reads: bool,
    writes: bool,
    sign_in: bool,
    /// With `sign_in`: the 256-client flood too.
    sign_in_many: bool,
    flood: bool,
    admin: bool,
    export: bool,
    /// Over a dataset: no registrations.
    dataset: bool,
    /// Distinguishes this run's account names from any earlier run's.
    run_id: String,
}

impl Plan {
    fn new(args: &Args) -> Self {
        let all = args.scenarios.contains(&Selection::All);
        let has = |s| all || args.scenarios.contains(&s);
        let default = if args.quick {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(5)
        };
        Self {
            counts: Counts::new(args.quick),
            duration: args.duration.unwrap_or(default),
            reads: has(Selection::Reads),
            writes: has(Selection::Writes),
            sign_in: has(Selection::Signin) || has(Selection::SigninFew),
            sign_in_many: has(Selection::Signin),
            flood: has(Selection::Flood),
            admin: has(Selection::Admin),
            export: has(Selection::Export),
            dataset: args.dataset.is_some(),
            run_id: uuid::Uuid::new_v4().simple().to_string()[..6].to_owned(),
        }
    }

    /// How many accounts to sign in to: one per concurrent sign-in client (concurrent
    /// guesses on one account are bounded by its lockout threshold), and enough for the
    /// token holders.
    fn accounts(&self) -> usize {
        let c = self.counts;
        let mut n = c.reads.max(c.refresh);
        if self.sign_in {
            n = n.max(c.sign_in_few);
        }
        if self.sign_in_many {
            n = n.max(c.sign_in_many);
        }
        if self.flood {
            n = n.max(c.flood);
        }
        n
    }

    /// The names of the accounts the run makes, and of its admin.
    fn account_names(&self) -> (Vec<String>, String) {
        let names = (0..self.accounts())
            .map(|i| format!("lt{}-{i}", self.run_id))
            .collect();
        (names, format!("lt{}-admin", self.run_id))
    }
}

/// Argon2id parameters and hash threads of the server under test.
#[derive(Debug, Clone, Copy)]
struct Hashing {
    params: Argon2Params,
    threads: usize,
}

async fn run(args: Args) -> anyhow::Result<Report> {
    let mut plan = Plan::new(&args);
    let (mut names, mut admin) = plan.account_names();
    let mut password = client::PASSWORD.to_owned();
    let remote = args.grpc_addr.is_some() || args.http_addr.is_some();
    let build = if cfg!(debug_assertions) {
        "debug build: the figures are not representative"
    } else {
        "release build"
    };
    let mut header = Vec::new();

    let (server, addrs, hashing) = if remote {
        let addrs = Addrs {
            grpc: args.grpc_addr,
            http: args.http_addr,
        };
        let threads = args
            .hash_threads
            .unwrap_or_else(|| HasherConfig::default().max_concurrent);
        header.push(format!(
            "load test against a running server: gRPC {}, HTTP {} ({build})",
            addrs.grpc.map_or("-".to_owned(), |a| a.to_string()),
            addrs.http.map_or("-".to_owned(), |a| a.to_string()),
        ));
        if plan.admin || plan.export {
            header.push("admin and export: not run against an address (in process only)".into());
            (plan.admin, plan.export) = (false, false);
        }
        eprintln!("registering {} accounts", names.len());
        register_all(addrs, &names).await.map_err(|e| {
            e.context("registering the accounts (is the server's --registration-rate-limit 0?)")
        })?;
        let hashing = Hashing {
            params: Argon2Params::OWASP,
            threads,
        };
        (None, addrs, hashing)
    } else {
        let db = match &args.dataset {
            Some(url) => target::Database::dataset(url, args.postgres_schema.as_deref()).await?,
            None => target::Database::create(args.database_url.as_deref()).await?,
        };
        let server = target::InProcess::start(db, args.hash_threads).await?;
        header.push(format!(
            "load test in process: gRPC {} and HTTP {} over {} ({build})",
            server.grpc,
            server.http,
            server.db.describe()
        ));
        eprintln!("servers: gRPC {}, HTTP {}", server.grpc, server.http);
        let seeded = if server.db.is_dataset() {
            password.clone_from(&args.dataset_password);
            target::dataset_accounts(&server.storage, names.len())
                .await
                .map(|(dataset_names, dataset_admin)| {
                    (names, admin) = (dataset_names, dataset_admin)
                })
        } else {
            target::seed(&server.storage, server.hasher, &names, &admin).await
        };
        let addrs = Addrs {
            grpc: Some(server.grpc),
            http: Some(server.http),
        };
        let hashing = Hashing {
            params: server.hasher.params,
            threads: server.hasher.max_concurrent,
        };
        if let Err(e) = seeded {
            server.stop().await?;
            return Err(e);
        }
        (Some(server), addrs, hashing)
    };
    let p = hashing.params;
    header.push(format!(
        "{} hash threads, Argon2id m={} KiB t={} p={}; {} per scenario; {} accounts",
        hashing.threads,
        p.memory_kib,
        p.iterations,
        p.parallelism,
        humantime::format_duration(plan.duration),
        names.len()
    ));
    header.push(
        "ok/s: successful calls per second; p50/p99: latency of the successful calls; \
         shed: turned away as overloaded and retried at once"
            .to_owned(),
    );

    // In process, memory is watched from before the first request (and the first hash).
    let memory = server.as_ref().and_then(|_| target::MemoryWatch::start());
    let accounts = Accounts {
        names: &names,
        admin: &admin,
        password: &password,
    };
    let measured = scenarios(&plan, addrs, accounts, memory.as_ref()).await;
    let memory = memory.map(target::MemoryWatch::finish);
    let raw = match (&measured, plan.sign_in) {
        (Ok(_), true) => {
            eprintln!("raw Argon2id on {} threads", hashing.threads);
            let duration = plan.duration;
            let raw = tokio::task::spawn_blocking(move || {
                measure::raw_argon2(hashing.params, hashing.threads, duration)
            })
            .await?;
            Some(raw)
        }
        _ => None,
    };
    let export = match (&measured, &server) {
        (Ok(_), Some(server)) if plan.export => {
            eprintln!("exporting every user");
            let started = std::time::Instant::now();
            let exported =
                user_core::transfer::export_users(&*server.storage.users, &mut std::io::sink())
                    .await;
            Some(exported.map(|n| (n, started.elapsed())))
        }
        _ => None,
    };
    if let Some(server) = server {
        server.stop().await?;
    }
    let export = export.transpose()?;
    Ok(Report {
        header,
        rows: measured?,
        raw,
        hash_threads: hashing.threads,
        params: hashing.params,
        memory,
        remote,
        counts: plan.counts,
        export,
    })
}

/// Registers every account against a running server, a few at a time.
async fn register_all(addrs: Addrs, names: &[String]) -> anyhow::Result<()> {
    let chunk = names.len().div_ceil(8).max(1);
    let mut tasks = Vec::new();
    for part in names.chunks(chunk) {
        let wire = any_wire(addrs).await?;
        let part = part.to_vec();
        tasks.push(tokio::spawn(async move {
            for name in part {
                until_served(|| {
                    let (mut wire, name) = (wire.clone(), name.clone());
                    async move { wire.register(&name).await }
                })
                .await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// A wire to whichever server is there, gRPC first.
async fn any_wire(addrs: Addrs) -> anyhow::Result<Wire> {
    match (addrs.grpc, addrs.http) {
        (Some(addr), _) => Wire::grpc(addr).await,
        (None, Some(addr)) => Ok(Wire::http1(addr)),
        (None, None) => anyhow::bail!("no server address"),
    }
}

/// Signs in to each of `names`, concurrently; the sessions' tokens, in order.
async fn sessions(addrs: Addrs, names: &[String], password: &str) -> anyhow::Result<Vec<Tokens>> {
    let wire = any_wire(addrs).await?;
    let tasks: Vec<_> = names
        .iter()
        .cloned()
        .map(|name| {
            let (wire, password) = (wire.clone(), password.to_owned());
            tokio::spawn(async move {
                until_served(|| {
                    let (mut wire, name, password) = (wire.clone(), name.clone(), password.clone());
                    async move { wire.sign_in(&name, &password, None).await }
                })
                .await
            })
        })
        .collect();
    let mut tokens = Vec::with_capacity(tasks.len());
    for task in tasks {
        tokens.push(task.await??);
    }
    Ok(tokens)
}

/// The wires of a scenario: clones of one, or one each. Each has made one call to the
/// trivial handler, so that connections are open before the clock starts.
async fn wires(spec: Spec, addr: SocketAddr) -> anyhow::Result<Vec<Wire>> {
    let new = || async move {
        let mut wire = match (spec.transport, spec.conns) {
            (Transport::Grpc, _) => Wire::grpc(addr).await?,
            (Transport::Http, Conns::One) => Wire::h2c(addr),
            (Transport::Http, Conns::PerClient) => Wire::http1(addr),
        };
        wire.health()
            .await
            .map_err(|e| anyhow::anyhow!("warming up {spec}: {e:?}"))?;
        anyhow::Ok(wire)
    };
    match spec.conns {
        Conns::One => {
            let wire = new().await?;
            Ok(vec![wire; spec.clients])
        }
        Conns::PerClient => {
            let mut wires = Vec::with_capacity(spec.clients);
            for _ in 0..spec.clients {
                wires.push(new().await?);
            }
            Ok(wires)
        }
    }
}

/// Who the clients of a run are.
#[derive(Clone, Copy)]
struct Accounts<'a> {
    /// One per sign-in client and token holder.
    names: &'a [String],
    admin: &'a str,
    /// Of all of them.
    password: &'a str,
}

/// The state the callers of a run carry between scenarios.
struct Held<'a> {
    plan: &'a Plan,
    accounts: Accounts<'a>,
    /// `Bearer TOKEN` of the admin.
    admin: String,
    /// `Bearer TOKEN` of the readers.
    bearers: Vec<String>,
    /// The refresh tokens of the refreshers, rotated by every refresh.
    refresh: Vec<String>,
}

impl Held<'_> {
    async fn callers(&self, spec: Spec, addr: SocketAddr) -> anyhow::Result<Vec<Caller>> {
        let wires = wires(spec, addr).await?;
        let tag = match spec.transport {
            Transport::Grpc => 'g',
            Transport::Http => 'h',
        };
        Ok(wires
            .into_iter()
            .enumerate()
            .map(|(i, wire)| {
                let mut caller = Caller::new(spec.op, wire);
                match spec.op {
                    Op::SignIn => {
                        caller.name = self.accounts.names[i].clone();
                        caller.password = self.accounts.password.to_owned();
                    }
                    Op::Register => caller.name = format!("r{}-{tag}{i}", self.plan.run_id),
                    Op::Refresh => caller.refresh.clone_from(&self.refresh[i]),
                    Op::Read => caller.bearer.clone_from(&self.bearers[i]),
                    Op::Health => {}
                    Op::AdminSearch => {
                        caller.bearer.clone_from(&self.admin);
                        // Each admin starts at a different search.
                        caller.calls = i as u64 * 5;
                    }
                    Op::AdminPage => caller.bearer.clone_from(&self.admin),
                }
                caller
            })
            .collect())
    }
}

fn progress(spec: &Spec, m: &measure::Measured) {
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2} ms"));
    eprintln!(
        "  {spec}: {:.1} ok/s, p50 {}, p99 {}, {} shed, {} errors",
        m.throughput(),
        ms(m.p50()),
        ms(m.p99()),
        m.shed,
        m.errors
    );
}

/// Runs the planned scenarios in order: reads, writes, admin, sign-ins, the flood.
///
/// With `memory` (in process), the sign-in floods record resident memory just before their
/// first request (their connections open) and its peak while they run.
async fn scenarios(
    plan: &Plan,
    addrs: Addrs,
    accounts: Accounts<'_>,
    memory: Option<&target::MemoryWatch>,
) -> anyhow::Result<Vec<Row>> {
    let c = plan.counts;
    let (names, password) = (accounts.names, accounts.password);
    let mut held = Held {
        plan,
        accounts,
        admin: String::new(),
        bearers: Vec::new(),
        refresh: Vec::new(),
    };
    if plan.admin {
        eprintln!("signing in the admin");
        let tokens = sessions(addrs, &[accounts.admin.to_owned()], password).await?;
        held.admin = format!("Bearer {}", tokens[0].access);
    }
    if plan.reads || plan.flood {
        eprintln!("signing in {} readers", c.reads);
        let tokens = sessions(addrs, &names[..c.reads], password).await?;
        held.bearers = tokens
            .iter()
            .map(|t| format!("Bearer {}", t.access))
            .collect();
    }
    if plan.writes {
        eprintln!("signing in {} refreshers", c.refresh);
        let tokens = sessions(addrs, &names[..c.refresh], password).await?;
        held.refresh = tokens.into_iter().map(|t| t.refresh).collect();
    }

    let mut rows: Vec<Row> = Vec::new();
    let spec = |group, op, transport, clients, conns| Spec {
        group,
        op,
        transport,
        clients,
        conns,
    };
    let mut planned = Vec::new();
    for t in addrs.transports() {
        if plan.reads {
            planned.push(spec(Group::Read, Op::Read, t, c.reads, Conns::One));
            planned.push(spec(Group::Read, Op::Read, t, c.reads, Conns::PerClient));
            planned.push(spec(Group::Read, Op::Health, t, c.reads, Conns::PerClient));
        }
    }
    for t in addrs.transports() {
        if plan.writes && !plan.dataset {
            let register = spec(Group::Write, Op::Register, t, c.register, Conns::PerClient);
            planned.push(register);
        }
        if plan.writes {
            planned.push(spec(
                Group::Write,
                Op::Refresh,
                t,
                c.refresh,
                Conns::PerClient,
            ));
        }
    }
    for t in addrs.transports() {
        if plan.admin {
            for op in [Op::AdminSearch, Op::AdminPage] {
                planned.push(spec(Group::Admin, op, t, c.admin, Conns::PerClient));
            }
        }
    }
    for t in addrs.transports() {
        if plan.sign_in {
            let many = Some(c.sign_in_many).filter(|_| plan.sign_in_many);
            for clients in [Some(c.sign_in_few), many].into_iter().flatten() {
                planned.push(spec(
                    Group::SignIn,
                    Op::SignIn,
                    t,
                    clients,
                    Conns::PerClient,
                ));
            }
        }
    }
    for spec in planned {
        let addr = addrs
            .of(spec.transport)
            .ok_or_else(|| anyhow::anyhow!("no address for {spec}"))?;
        let callers = held.callers(spec, addr).await?;
        let flood = spec.op == Op::SignIn && spec.clients == c.sign_in_many;
        let before = memory.filter(|_| flood).map(target::MemoryWatch::mark);
        let (measured, callers) = drive(callers, plan.duration).await;
        let memory = before.zip(memory.map(target::MemoryWatch::peak_since_mark));
        if spec.op == Op::Refresh {
            held.refresh = callers.into_iter().map(|c| c.refresh).collect();
        }
        progress(&spec, &measured);
        rows.push(Row {
            spec,
            measured,
            memory,
        });
    }

    if plan.flood {
        // Over gRPC when there is gRPC (the target names GetUser), else over HTTP.
        let t = addrs.transports()[0];
        let addr = addrs
            .of(t)
            .ok_or_else(|| anyhow::anyhow!("no address for the flood"))?;
        let idle = spec(Group::Read, Op::Read, t, c.reads, Conns::PerClient);
        if !rows.iter().any(|r| r.spec == idle) {
            let callers = held.callers(idle, addr).await?;
            let (measured, _) = drive(callers, plan.duration).await;
            progress(&idle, &measured);
            rows.push(Row {
                spec: idle,
                measured,
                memory: None,
            });
        }
        let during = Spec {
            group: Group::DuringFlood,
            ..idle
        };
        let flood = spec(Group::Flood, Op::SignIn, t, c.flood, Conns::PerClient);
        let (readers, flooders) = (
            held.callers(during, addr).await?,
            held.callers(flood, addr).await?,
        );
        let before = memory.map(target::MemoryWatch::mark);
        let ((read, _), (signed_in, _)) = tokio::join!(
            drive(readers, plan.duration),
            drive(flooders, plan.duration)
        );
        let flood_memory = before.zip(memory.map(target::MemoryWatch::peak_since_mark));
        progress(&during, &read);
        progress(&flood, &signed_in);
        rows.push(Row {
            spec: during,
            measured: read,
            memory: None,
        });
        rows.push(Row {
            spec: flood,
            measured: signed_in,
            memory: flood_memory,
        });
    }
    Ok(rows)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(report) => {
            println!("{report}");
            let errors = report.error_lines();
            if errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                for line in errors {
                    eprintln!("error: {line}");
                }
                eprintln!("{} calls failed other than by shedding", report.errors());
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
