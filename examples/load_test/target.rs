//! What the load test runs against: the real gRPC and HTTP servers started in this process
//! over a database made for the run, or addresses of a running server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use secrecy::SecretString;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use user_core::auth::AuthPolicy;
use user_core::domain::{
    Email, NewUser, Password, PasswordHash, PasswordPolicy, Role, User, UserId, UserQuery,
    UserStatus, Username,
};
use user_core::password::{Argon2Hasher, HasherConfig};
use user_core::ports::PasswordHasher as _;
use user_core::{Services, Storage};
use user_grpc::{GrpcConfig, GrpcState};
use user_http::AppState;
use user_postgres::{PostgresConfig, PostgresDatabase};
use user_sqlite::{SqliteConfig, SqliteDatabase};

use crate::client::PASSWORD;

/// The database of one run, made for it and removed after it.
pub(crate) enum Database {
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
    /// A database made by the `dataset` example, used as it is and kept.
    Dataset { db: Opened, what: String },
}

/// A database of either store.
pub(crate) enum Opened {
    Sqlite(SqliteDatabase),
    Postgres(PostgresDatabase),
}

impl Database {
    /// A temporary SQLite file, or a fresh schema on the PostgreSQL server `url` names.
    pub(crate) async fn create(url: Option<&str>) -> anyhow::Result<Self> {
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

    /// The database `url` names (`sqlite:PATH` or `postgres://...`, in `schema` if given),
    /// which must exist: a dataset (`cargo run --release --example dataset`).
    pub(crate) async fn dataset(url: &str, schema: Option<&str>) -> anyhow::Result<Self> {
        let db = if let Some(path) = url.strip_prefix("sqlite:") {
            anyhow::ensure!(
                std::path::Path::new(path).exists(),
                "no dataset at {path}: make one with the dataset example"
            );
            Opened::Sqlite(SqliteDatabase::open(&SqliteConfig::from_url(url)?).await?)
        } else {
            let config = PostgresConfig {
                schema: schema.map(str::to_owned),
                ..PostgresConfig::from_url(url)?
            };
            Opened::Postgres(PostgresDatabase::open(&config).await?)
        };
        // The URL itself may hold a password.
        let what = match (url.strip_prefix("sqlite:"), schema) {
            (Some(path), _) => format!("SQLite {path}"),
            (None, Some(schema)) => format!("PostgreSQL, schema {schema}"),
            (None, None) => "PostgreSQL, the server's search_path".to_owned(),
        };
        Ok(Self::Dataset { db, what })
    }

    pub(crate) fn storage(&self) -> Storage {
        match self {
            Self::Sqlite { db, .. }
            | Self::Dataset {
                db: Opened::Sqlite(db),
                ..
            } => db.storage(),
            Self::Postgres { db, .. }
            | Self::Dataset {
                db: Opened::Postgres(db),
                ..
            } => db.storage(),
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Sqlite { .. } => "SQLite (a temporary file)".to_owned(),
            Self::Postgres { schema, .. } => format!("PostgreSQL (schema {schema})"),
            Self::Dataset { what, .. } => format!("a dataset ({what})"),
        }
    }

    /// A dataset's users come with it; the other databases start empty.
    pub(crate) fn is_dataset(&self) -> bool {
        matches!(self, Self::Dataset { .. })
    }

    /// Closes the database and removes what [`create`](Self::create) made.
    pub(crate) async fn remove(self) -> anyhow::Result<()> {
        match self {
            Self::Sqlite { db, _dir } => {
                db.close().await;
                Ok(())
            }
            Self::Postgres { db, schema } => {
                let dropped = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA \"{schema}\" CASCADE"
                )))
                .execute(db.pool())
                .await;
                db.close().await;
                dropped.map_err(|e| anyhow::anyhow!("cannot drop the schema {schema}: {e}"))?;
                Ok(())
            }
            Self::Dataset { db, .. } => {
                match db {
                    Opened::Sqlite(db) => db.close().await,
                    Opened::Postgres(db) => db.close().await,
                }
                Ok(())
            }
        }
    }
}

/// The gRPC and HTTP servers of this process, wired as the server example wires them (the
/// real Argon2id hasher at `HasherConfig::default()`, the same request layers) but with the
/// per-address sign-in and registration limits off: every client of the run is 127.0.0.1.
pub(crate) struct InProcess {
    pub(crate) db: Database,
    pub(crate) storage: Storage,
    pub(crate) grpc: SocketAddr,
    pub(crate) http: SocketAddr,
    pub(crate) hasher: HasherConfig,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
}

impl InProcess {
    /// Starts both servers on `127.0.0.1:0` over `db`, hashing on `hash_threads` threads
    /// (default: as many as cores).
    pub(crate) async fn start(db: Database, hash_threads: Option<usize>) -> anyhow::Result<Self> {
        let defaults = HasherConfig::default();
        let hasher = HasherConfig {
            max_concurrent: hash_threads.unwrap_or(defaults.max_concurrent),
            ..defaults
        };
        let storage = db.storage();
        let policy = AuthPolicy {
            login_attempts_per_ip_per_minute: None,
            registrations_per_ip_per_hour: None,
            ..AuthPolicy::default()
        };
        let services = Services::builder(storage.clone())
            .hasher(Argon2Hasher::new(hasher)?)
            .policy(policy)
            .build()?;

        let (stop, stopped) = watch::channel(false);
        let signal = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let grpc_listener = TcpListener::bind("127.0.0.1:0").await?;
        let http_listener = TcpListener::bind("127.0.0.1:0").await?;
        let (grpc, http) = (grpc_listener.local_addr()?, http_listener.local_addr()?);

        let routes = user_grpc::routes(GrpcState::from(&services), &GrpcConfig::default()).await?;
        let grpc_layers = (user_grpc::trace::layer(), user_grpc::metrics::MetricsLayer);
        let grpc_server =
            user_grpc::serve(grpc_listener, routes, grpc_layers, signal(stopped.clone()));
        let app = user_http::router(AppState::from(&services));
        let http_layers = (user_http::trace::layer(), user_http::metrics::MetricsLayer);
        let http_server = user_http::serve(http_listener, app, http_layers, signal(stopped));
        let tasks = vec![
            tokio::spawn(async move { Ok(grpc_server.await?) }),
            tokio::spawn(async move { Ok(http_server.await?) }),
        ];
        Ok(Self {
            db,
            storage,
            grpc,
            http,
            hasher,
            stop,
            tasks,
        })
    }

    /// Stops both servers (waiting at most a few seconds for open connections) and removes
    /// the database.
    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        for task in self.tasks {
            match tokio::time::timeout(Duration::from_secs(10), task).await {
                Ok(joined) => joined??,
                Err(_) => eprintln!("a server did not stop within 10 s; going on"),
            }
        }
        self.db.remove().await
    }
}

/// Inserts `names` as active users and `admin` as an active admin through the storage port,
/// all with one Argon2id hash of [`PASSWORD`] at the server's parameters, made here by a
/// hasher of its own that is gone (with its memory) when this returns: registering them
/// would cost one hash each.
pub(crate) async fn seed(
    storage: &Storage,
    hasher: HasherConfig,
    names: &[String],
    admin: &str,
) -> anyhow::Result<()> {
    let hash = one_hash(hasher).await?;
    let now = OffsetDateTime::now_utc();
    let admin = admin.to_owned();
    for (name, role) in names
        .iter()
        .map(|n| (n, Role::User))
        .chain([(&admin, Role::Admin)])
    {
        let user = User {
            id: UserId::new(),
            username: Username::parse(name)?,
            email: Email::parse(&format!("{name}@example.com"))?,
            display_name: None,
            role,
            status: UserStatus::Active,
            email_verified_at: None,
            created_at: now,
            updated_at: now,
        };
        storage
            .users
            .insert(&NewUser {
                user,
                password_hash: hash.clone(),
            })
            .await?;
    }
    Ok(())
}

/// The usernames of `n` active users and of one active admin of a dataset, in username
/// order.
pub(crate) async fn dataset_accounts(
    storage: &Storage,
    n: usize,
) -> anyhow::Result<(Vec<String>, String)> {
    let mut names = Vec::with_capacity(n);
    let mut after = None;
    while names.len() < n {
        let page = storage
            .users
            .list(&UserQuery {
                role: Some(Role::User),
                status: Some(UserStatus::Active),
                after,
                limit: UserQuery::MAX_LIMIT,
                ..UserQuery::default()
            })
            .await?;
        names.extend(page.users.iter().map(|u| u.username.as_str().to_owned()));
        after = match page.next {
            Some(next) => Some(next),
            None => break,
        };
    }
    anyhow::ensure!(
        names.len() >= n,
        "the dataset has {} active users, the run needs {n}",
        names.len()
    );
    names.truncate(n);
    let admins = storage
        .users
        .list(&UserQuery {
            role: Some(Role::Admin),
            status: Some(UserStatus::Active),
            limit: 1,
            ..UserQuery::default()
        })
        .await?;
    let admin = admins
        .users
        .first()
        .ok_or_else(|| anyhow::anyhow!("the dataset has no active admin"))?;
    Ok((names, admin.username.as_str().to_owned()))
}

async fn one_hash(config: HasherConfig) -> anyhow::Result<PasswordHash> {
    let hasher = Argon2Hasher::new(HasherConfig {
        max_concurrent: 1,
        ..config
    })?;
    let password = Password::parse(
        SecretString::from(PASSWORD),
        &PasswordPolicy::default(),
        None,
        None,
    )?;
    Ok(hasher.hash(&password).await?)
}

/// Resident memory of this process, from `VmRSS` in /proc/self/status (Linux), in bytes.
pub(crate) fn rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Samples [`rss`] every 2 ms on a thread of its own, keeping the peak since its start and
/// the peak since the last [`MemoryWatch::mark`].
pub(crate) struct MemoryWatch {
    baseline: u64,
    overall: Arc<AtomicU64>,
    since_mark: Arc<AtomicU64>,
    running: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl MemoryWatch {
    /// `None` where /proc cannot be read.
    pub(crate) fn start() -> Option<Self> {
        let baseline = rss()?;
        let overall = Arc::new(AtomicU64::new(baseline));
        let since_mark = Arc::new(AtomicU64::new(baseline));
        let running = Arc::new(AtomicBool::new(true));
        let thread = {
            let (overall, since_mark) = (Arc::clone(&overall), Arc::clone(&since_mark));
            let running = Arc::clone(&running);
            std::thread::spawn(move || {
                while running.load(Ordering::Relaxed) {
                    if let Some(now) = rss() {
                        overall.fetch_max(now, Ordering::Relaxed);
                        since_mark.fetch_max(now, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        Some(Self {
            baseline,
            overall,
            since_mark,
            running,
            thread,
        })
    }

    /// Starts a new peak from now; returns resident memory now.
    pub(crate) fn mark(&self) -> u64 {
        let now = rss().unwrap_or(self.baseline);
        self.since_mark.store(now, Ordering::Relaxed);
        now
    }

    /// The peak since the last [`mark`](Self::mark), including memory now.
    pub(crate) fn peak_since_mark(&self) -> u64 {
        if let Some(now) = rss() {
            self.since_mark.fetch_max(now, Ordering::Relaxed);
        }
        self.since_mark.load(Ordering::Relaxed)
    }

    /// Resident memory at the start and its peak since.
    pub(crate) fn finish(self) -> (u64, u64) {
        self.running.store(false, Ordering::Relaxed);
        let _ = self.thread.join();
        (self.baseline, self.overall.load(Ordering::Relaxed))
    }
}
