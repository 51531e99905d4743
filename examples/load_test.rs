//! A login flood against the real Argon2id hasher, over a temporary SQLite file or on
//! PostgreSQL, to see the bounded hash queue at work: throughput, how many sign-ins were
//! turned away with "busy", and how far memory grew next to the bound of
//! `hash slots x 19 MiB`.
//!
//! ```sh
//! cargo run --release --example load_test                               # 400 sign-ins, 200 at once
//! cargo run --release --example load_test -- --logins 2000 --concurrency 500
//! cargo run --release --example load_test -- --database-url postgres://postgres@127.0.0.1:5432/postgres
//! ```
//!
//! On PostgreSQL the accounts live in a fresh schema (`load_test_<random>`), dropped at the
//! end, whether the flood succeeded or not. It reports ratios from one run; nothing here is a
//! pass/fail timing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use secrecy::SecretString;
use user_core::auth::{AuthPolicy, Credentials, RegisterUser};
use user_core::domain::ClientInfo;
use user_core::error::AuthError;
use user_core::password::{Argon2Hasher, HasherConfig};
use user_core::{Services, Storage};
use user_postgres::{PostgresConfig, PostgresDatabase};
use user_sqlite::{SqliteConfig, SqliteDatabase};

#[derive(Debug, Parser)]
struct Args {
    /// Sign-ins in all.
    #[arg(long, default_value_t = 400)]
    logins: usize,
    /// Sign-ins in flight at once.
    #[arg(long, default_value_t = 200)]
    concurrency: usize,
    /// A `postgres://` URL: run on PostgreSQL, in a fresh schema dropped at the end. Without
    /// it, a temporary SQLite file.
    #[arg(long)]
    database_url: Option<String>,
}

/// The database of one run, made for it and removed after it.
enum Database {
    /// A file in a temporary directory, deleted with it.
    Sqlite {
        db: SqliteDatabase,
        _dir: tempfile::TempDir,
    },
    /// A schema of its own, dropped by [`Database::remove`].
    Postgres {
        db: PostgresDatabase,
        schema: String,
    },
}

impl Database {
    /// A temporary SQLite file, or a fresh schema on the PostgreSQL server `url` names.
    async fn create(url: Option<&str>) -> anyhow::Result<Self> {
        let Some(url) = url else {
            let dir = tempfile::tempdir()?;
            let db = SqliteDatabase::open(&SqliteConfig::new(dir.path().join("load.db"))).await?;
            return Ok(Self::Sqlite { db, _dir: dir });
        };
        let schema = format!("load_test_{}", uuid::Uuid::new_v4().simple());
        let config = PostgresConfig {
            schema: Some(schema.clone()),
            ..PostgresConfig::from_url(url)?
        };
        let db = PostgresDatabase::open(&config).await?;
        Ok(Self::Postgres { db, schema })
    }

    fn storage(&self) -> Storage {
        match self {
            Self::Sqlite { db, .. } => db.storage(),
            Self::Postgres { db, .. } => db.storage(),
        }
    }

    /// Closes the database and removes what [`create`](Self::create) made; says what it was.
    async fn remove(self) -> anyhow::Result<String> {
        match self {
            Self::Sqlite { db, _dir } => {
                db.close().await;
                Ok("SQLite, a temporary file (deleted)".to_owned())
            }
            Self::Postgres { db, schema } => {
                let retries = db.conflict_retries();
                let dropped = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA \"{schema}\" CASCADE"
                )))
                .execute(db.pool())
                .await;
                db.close().await;
                dropped.map_err(|e| anyhow::anyhow!("cannot drop the schema {schema}: {e}"))?;
                Ok(format!(
                    "PostgreSQL, schema {schema} (dropped), {retries} serialization retries"
                ))
            }
        }
    }
}

/// What one run measured.
#[derive(Debug)]
pub(crate) struct Report {
    /// Which database, as [`Database::remove`] describes it.
    pub(crate) database: String,
    pub(crate) attempts: u64,
    pub(crate) signed_in: u64,
    pub(crate) busy: u64,
    pub(crate) failed: u64,
    pub(crate) elapsed: Duration,
    pub(crate) hash_slots: usize,
    /// Resident memory before the flood and at its peak, in bytes (Linux only).
    pub(crate) rss: Option<(u64, u64)>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        writeln!(f, "database: {}", self.database)?;
        writeln!(
            f,
            "{} sign-ins in {secs:.2} s with {} hash slots:",
            self.attempts, self.hash_slots
        )?;
        writeln!(
            f,
            "  signed in {} ({:.0}/s), turned away as busy {} ({:.0}%), other errors {}",
            self.signed_in,
            self.signed_in as f64 / secs.max(f64::EPSILON),
            self.busy,
            100.0 * self.busy as f64 / self.attempts.max(1) as f64,
            self.failed
        )?;
        match self.rss {
            Some((before, peak)) => {
                let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
                let bound = self.hash_slots as f64 * 19.0;
                write!(
                    f,
                    "  memory grew {:.1} MiB (from {:.1} to {:.1} MiB); bound {} x 19 MiB = {bound:.0} MiB; ratio {:.2}",
                    mib(peak.saturating_sub(before)),
                    mib(before),
                    mib(peak),
                    self.hash_slots,
                    mib(peak.saturating_sub(before)) / bound
                )
            }
            None => write!(f, "  memory: not measured on this platform"),
        }
    }
}

/// Resident set size of this process, from /proc (Linux).
fn rss() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Floods a database made for the run (see [`Database::create`]) and removes it, whether the
/// flood succeeded or not.
pub(crate) async fn run(
    logins: usize,
    concurrency: usize,
    database_url: Option<&str>,
) -> anyhow::Result<Report> {
    let db = Database::create(database_url).await?;
    let flooded = flood(db.storage(), logins, concurrency).await;
    let removed = db.remove().await;
    let mut report = flooded?;
    report.database = removed?;
    Ok(report)
}

/// Creates one account per client on `storage`, then signs in `logins` times,
/// `concurrency` at once.
async fn flood(storage: Storage, logins: usize, concurrency: usize) -> anyhow::Result<Report> {
    let hasher = HasherConfig::default();
    let policy = AuthPolicy {
        login_attempts_per_ip_per_minute: None,
        ..AuthPolicy::default()
    };
    let services = Services::builder(storage)
        .hasher(Argon2Hasher::new(hasher)?)
        .policy(policy)
        .build()?;
    let password = SecretString::from("correct horse battery staple");
    // One account per client: every sign-in is a guess on its account's budget, and at most
    // the lockout threshold of guesses on one account are in flight at once.
    let clients = concurrency.max(1);
    for i in 0..clients {
        services
            .auth
            .create_user(
                RegisterUser {
                    username: format!("loadtest{i}"),
                    email: format!("loadtest{i}@example.com"),
                    password: password.clone(),
                    display_name: None,
                },
                user_core::domain::Role::User,
            )
            .await?;
    }

    let (signed_in, busy, failed) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let before = rss();
    let peak = Arc::new(AtomicU64::new(before.unwrap_or(0)));
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (Arc::clone(&peak), Arc::clone(&sampling));
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                if let Some(now) = rss() {
                    peak.fetch_max(now, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    let start = Instant::now();
    let per_task = logins.div_ceil(concurrency.max(1));
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let auth = Arc::clone(&services.auth);
            let password = password.clone();
            let (signed_in, busy, failed) = (
                Arc::clone(&signed_in),
                Arc::clone(&busy),
                Arc::clone(&failed),
            );
            tokio::spawn(async move {
                for _ in 0..per_task {
                    let credentials = Credentials::new(format!("loadtest{i}"), password.clone());
                    match auth.login(credentials, ClientInfo::default()).await {
                        Ok(_) => signed_in.fetch_add(1, Ordering::Relaxed),
                        Err(AuthError::Overloaded) => busy.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    for task in tasks {
        task.await?;
    }
    let elapsed = start.elapsed();
    sampling.store(false, Ordering::Relaxed);
    sampler.await?;

    let (signed_in, busy, failed) = (
        signed_in.load(Ordering::Relaxed),
        busy.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    Ok(Report {
        database: String::new(),
        attempts: signed_in + busy + failed,
        signed_in,
        busy,
        failed,
        elapsed,
        hash_slots: hasher.max_concurrent,
        rss: before.map(|b| (b, peak.load(Ordering::Relaxed))),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let report = run(args.logins, args.concurrency, args.database_url.as_deref()).await?;
    println!("{report}");
    Ok(())
}
