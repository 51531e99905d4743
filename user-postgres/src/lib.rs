//! PostgreSQL storage for user-management: [`PostgresUserRepository`],
//! [`PostgresSessionStore`], [`PostgresLoginFailureStore`], [`PostgresDeviceTokenStore`],
//! [`PostgresOneTimeTokenStore`], [`PostgresMailOutbox`], [`PostgresAuditLog`] and
//! [`PostgresSecondFactorStore`] implement `user-core`'s eight storage ports on sqlx, over one
//! connection pool that several instances of the service may share.
//!
//! # Layout
//!
//! - [`PostgresDatabase::open`] connects, creates the configured schema if it is missing and
//!   applies the embedded migrations (`migrations/`) under sqlx's migration lock, so that
//!   several instances may start at once; a migration waits at most 10 s for a table lock,
//!   and opening at most a minute for the migrations. Migrations the binary does not know
//!   (a newer release applied them) are ignored, so that a rolling deploy can run two
//!   releases side by side: migrations must be expand/contract. Every connection gets the
//!   session's `statement_timeout` and, with a schema, its `search_path`.
//! - `users.rs`, `sessions.rs`, `login_failures.rs`, `devices.rs`, `tokens.rs`, `outbox.rs`,
//!   `audit.rs` and `factors.rs` implement the ports; `search.rs` serves the admin user list
//!   from indexes: a GIN index of `pg_trgm` trigrams (migration 0005 finds the extension in
//!   whatever schema of the database holds it, or creates it in ours) for a search of 3
//!   characters or more, the username and email indexes for a shorter one, and indexes on
//!   `(role, username)`, `(status, username)` and `(role, status, username)` for the
//!   filters;
//!   `rows.rs` holds the row types, which never leave the crate: each converts to a domain
//!   value with `TryFrom`, so bad data is an error, not a panic.
//! - `retry.rs` runs every port method: a statement or transaction that fails with a
//!   serialization failure (SQLSTATE 40001) or a deadlock (40P01) is run again, a bounded
//!   number of times ([`PostgresConfig::serialization_retries`]), after a short random wait.
//! - Times are `timestamptz`, kept to the microsecond: `user_core`'s `SystemClock` counts
//!   whole microseconds, so a time read back equals the time written (a finer one would be
//!   truncated). A stored time beyond year 9999 (`infinity`, say) reads as an error.
//! - Unique violations map to `RepoError::Conflict` naming the field (by constraint name); a
//!   missing user behind a foreign key to `RepoError::NotFound`; every other database failure
//!   to `RepoError::Unavailable` carrying the cause.
//!
//! The guarantees are the SQLite adapter's, under concurrency: the last-admin guard locks the
//! first two active admins (in id order, `FOR NO KEY UPDATE`) before counting them, in the
//! same statement as the change; a
//! refresh token is rotated in a transaction that locks its row, so that of concurrent
//! rotations one rotates and the others see it spent; the guess budget's compare-and-set is
//! one statement, and so is spending a TOTP step, a recovery code or a sign-in challenge, so
//! that of concurrent uses one wins. All eight stores pass `user_core::testing::conformance` against a real
//! server, at READ COMMITTED and at SERIALIZABLE isolation.
//!
//! - [`PostgresConfig::from_url`] reads a `postgres://` URL (`USERS_DATABASE_URL`, say);
//!   connection settings in the URL apply to every connection, e.g.
//!   `?options[default_transaction_isolation]=serializable`.
//! - TLS (rustls, with the Mozilla roots of `webpki-roots`) follows the URL's `sslmode`.
//!   A database reached over any network you do not control should use
//!   `?sslmode=verify-full`: encrypted, and the server's certificate checked against the
//!   roots and the host name (`&sslrootcert=/path/ca.pem` for a private CA). The default,
//!   `prefer`, encrypts when the server offers TLS but checks no certificate and falls back
//!   to plain text, so it protects only against passive eavesdroppers; `require` insists on
//!   TLS, still without checking the certificate.
//! - [`PostgresDatabase::readiness`] is the check behind an HTTP `/readyz`; the pool tests a
//!   connection before handing it out, so a database that went away and came back is used
//!   again without a restart.
//! - Feature `testing`: `testing::TestSchema`, a fresh schema per test on the server named
//!   by `USERS_TEST_POSTGRES_URL`, dropped afterwards.
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use user_postgres::{PostgresConfig, PostgresDatabase};
//!
//! let config = PostgresConfig {
//!     schema: Some("users".into()),
//!     ..PostgresConfig::from_url("postgres://users:secret@localhost:5432/app")?
//! };
//! let db = PostgresDatabase::open(&config).await?;
//! let storage = db.storage(); // user_core::Storage: the eight ports over this pool
//! let services = user_core::Services::builder(storage).build()?;
//! # let _ = services;
//! db.close().await;
//! # Ok(()) }
//! ```

mod audit;
mod devices;
mod factors;
mod login_failures;
mod outbox;
mod retry;
mod rows;
mod search;
mod sessions;
mod tokens;
mod users;

#[cfg(feature = "testing")]
pub mod testing;

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection as _, PgConnection, PgPool};
use user_core::Storage;
use user_core::error::{RepoError, UniqueField};

pub use audit::PostgresAuditLog;
pub use devices::PostgresDeviceTokenStore;
pub use factors::PostgresSecondFactorStore;
pub use login_failures::PostgresLoginFailureStore;
pub use outbox::PostgresMailOutbox;
pub use sessions::PostgresSessionStore;
pub use tokens::PostgresOneTimeTokenStore;
pub use users::PostgresUserRepository;

use retry::Db;

/// Settings of the PostgreSQL store. `Debug` does not show the URL, which may hold a
/// password.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// The server and database: `postgres://user:password@host:port/database` (or
    /// `postgresql://`). Query parameters such as `sslmode` or `options[name]=value` apply
    /// to every connection.
    pub url: SecretString,
    /// The password, when it is kept apart from the URL (a secret file, say); it replaces
    /// the URL's password. Default: none, the URL's (or none).
    pub password: Option<SecretString>,
    /// The schema the tables live in, created if missing; `None`: the server's default
    /// `search_path` (normally `public`). A plain identifier: 1 to 63 lowercase letters,
    /// digits and underscores, not starting with a digit or `pg_`.
    pub schema: Option<String>,
    /// Most connections the pool opens (default 10).
    pub max_connections: u32,
    /// Connections the pool keeps open when idle (default 0).
    pub min_connections: u32,
    /// How long a call waits for a connection, including connecting, before failing
    /// (default 5 s; must be more than zero).
    pub acquire_timeout: Duration,
    /// The longest a statement may run, the session's `statement_timeout` (default 10 s);
    /// `Duration::ZERO`: no limit; below 24 days (the server's 32-bit milliseconds).
    /// Migrations run without it.
    ///
    /// The client keeps a deadline too, for a server that stops answering without closing
    /// its connections: each attempt of a call (a statement or a transaction, with the wait
    /// for a connection) fails as unavailable after `statement_timeout + acquire_timeout +
    /// 2 s`, or `acquire_timeout + 60 s` when `statement_timeout` is zero.
    pub statement_timeout: Duration,
    /// How many times an operation that hit a serialization failure (SQLSTATE 40001) or a
    /// deadlock (40P01) is run again before the call fails as unavailable (default 5, at
    /// most 20).
    pub serialization_retries: u32,
}

impl PostgresConfig {
    /// Defaults for the database at `url`, which is checked only by
    /// [`PostgresDatabase::open`] (see [`PostgresConfig::from_url`] to check it first).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: SecretString::from(url.into()),
            password: None,
            schema: None,
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
            serialization_retries: 5,
        }
    }

    /// Defaults for the database a `postgres://` or `postgresql://` URL names, once the URL
    /// is known to parse.
    ///
    /// # Errors
    /// [`UrlError::NotPostgres`] for another scheme; [`UrlError::Invalid`] when the URL does
    /// not parse (the reason never includes the password).
    pub fn from_url(url: &str) -> Result<Self, UrlError> {
        parse_url(url)?;
        Ok(Self::new(url))
    }
}

/// Why a database URL was refused by [`PostgresConfig::from_url`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not a `postgres://` or `postgresql://` URL.
    #[error(
        "expected a postgres:// or postgresql:// URL, e.g. postgres://user@localhost:5432/users"
    )]
    NotPostgres,
    /// A PostgreSQL URL that does not parse; the reason never includes the password.
    #[error("invalid PostgreSQL URL ({0}); expected postgres://user:password@host:port/database")]
    Invalid(String),
}

/// Why the database could not be opened. No message includes the password.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The URL is not a valid PostgreSQL URL.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// A setting of [`PostgresConfig`] is out of range; the message names it.
    #[error("invalid PostgreSQL setting {setting}: {reason}")]
    Setting {
        /// The field of [`PostgresConfig`], e.g. `serialization_retries`.
        setting: &'static str,
        /// What it must be.
        reason: &'static str,
    },
    /// The schema name is not a plain identifier.
    #[error(
        "invalid schema name {0:?}: use 1 to 63 lowercase letters, digits and underscores, \
         not starting with a digit or pg_"
    )]
    Schema(String),
    /// The server could not be reached, or refused the connection.
    #[error("cannot connect to the PostgreSQL database")]
    Connect {
        /// The cause.
        #[source]
        source: sqlx::Error,
    },
    /// A migration failed; the database is left at the last one that succeeded.
    #[error("cannot migrate the PostgreSQL database")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// The migrations did not finish in time: another instance held the migration lock, or
    /// a long transaction held a lock that a migration needed.
    #[error("the PostgreSQL migrations did not finish within {0:?}")]
    MigrateTimedOut(Duration),
}

/// An open PostgreSQL database: hands out the port implementations, which share its pool.
#[derive(Debug, Clone)]
pub struct PostgresDatabase {
    db: Db,
}

impl PostgresDatabase {
    /// Connects, creates the schema if one is configured and missing, and applies pending
    /// migrations. Several instances may open the same database at once: the migrations run
    /// one instance at a time, under sqlx's advisory lock, and apply once.
    ///
    /// # Errors
    /// [`OpenError::Url`], [`OpenError::Setting`] or [`OpenError::Schema`] for a bad setting; [`OpenError::Connect`]
    /// when the server cannot be reached within `acquire_timeout` or refuses the login;
    /// [`OpenError::Migrate`] when a migration fails; [`OpenError::MigrateTimedOut`] when the
    /// migrations take longer than a minute (waiting for another instance's included).
    pub async fn open(config: &PostgresConfig) -> Result<Self, OpenError> {
        check_settings(config)?;
        let options = connect_options(config)?;
        let mut session = options.clone();
        if !config.statement_timeout.is_zero() {
            let millis = config.statement_timeout.as_millis().max(1);
            session = session.options([("statement_timeout", format!("{millis}ms"))]);
        }
        let max = config.max_connections.max(1);
        let pool = PgPoolOptions::new()
            .max_connections(max)
            .min_connections(config.min_connections.min(max))
            .acquire_timeout(config.acquire_timeout)
            .test_before_acquire(true)
            .connect_with(session)
            .await
            .map_err(|source| OpenError::Connect { source })?;
        migrate(&options, config).await?;
        Ok(Self {
            db: Db::new(pool, config.serialization_retries, attempt_deadline(config)),
        })
    }

    /// The user repository.
    pub fn users(&self) -> PostgresUserRepository {
        PostgresUserRepository::new(self.db.clone())
    }

    /// The session store.
    pub fn sessions(&self) -> PostgresSessionStore {
        PostgresSessionStore::new(self.db.clone())
    }

    /// The guess budgets (failed sign-ins).
    pub fn login_failures(&self) -> PostgresLoginFailureStore {
        PostgresLoginFailureStore::new(self.db.clone())
    }

    /// The device tokens.
    pub fn devices(&self) -> PostgresDeviceTokenStore {
        PostgresDeviceTokenStore::new(self.db.clone())
    }

    /// The one-time tokens (email verification, password reset).
    pub fn tokens(&self) -> PostgresOneTimeTokenStore {
        PostgresOneTimeTokenStore::new(self.db.clone())
    }

    /// The mail outbox.
    pub fn outbox(&self) -> PostgresMailOutbox {
        PostgresMailOutbox::new(self.db.clone())
    }

    /// The audit log.
    pub fn audit(&self) -> PostgresAuditLog {
        PostgresAuditLog::new(self.db.clone())
    }

    /// Second factors, recovery codes, trusted browsers and sign-in challenges.
    pub fn factors(&self) -> PostgresSecondFactorStore {
        PostgresSecondFactorStore::new(self.db.clone())
    }

    /// All eight storage ports, for `user_core::Services::builder` or `user_core::Ports::new`.
    pub fn storage(&self) -> Storage {
        Storage {
            users: Arc::new(self.users()),
            sessions: Arc::new(self.sessions()),
            login_failures: Arc::new(self.login_failures()),
            devices: Arc::new(self.devices()),
            tokens: Arc::new(self.tokens()),
            outbox: Arc::new(self.outbox()),
            audit: Arc::new(self.audit()),
            factors: Arc::new(self.factors()),
        }
    }

    /// The connection pool, for a host application's own queries or metrics.
    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    /// How many times, since this database was opened, an operation of its stores was run
    /// again after a serialization failure or a deadlock: a measure of contention, for
    /// metrics.
    pub fn conflict_retries(&self) -> u64 {
        self.db.retries_so_far()
    }

    /// Whether the database answers, for readiness checks.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when it does not.
    pub async fn ping(&self) -> Result<(), RepoError> {
        let ping = sqlx::query("SELECT 1").execute(&self.db.pool);
        match tokio::time::timeout(self.db.deadline, ping).await {
            Ok(answer) => answer.map(drop).map_err(map_db_err),
            Err(_) => Err(RepoError::unavailable(retry::NoAnswer(self.db.deadline))),
        }
    }

    /// The readiness check of this database, for `user_http::AppState::with_readiness` (as
    /// `Arc::new(db.readiness())`): each call pings it ([`ping`](Self::ping)) and answers
    /// whether it answered.
    ///
    /// Busy is not down: when the ping finds every connection of the pool in use, the
    /// server is asked over a connection of its own, outside the pool, and the answer
    /// decides. (Connections can also be "in use" because the server stopped answering
    /// them; that check then fails too, within the same deadline.)
    pub fn readiness(
        &self,
    ) -> impl Fn() -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync + 'static {
        let db = self.clone();
        move || {
            let db = db.clone();
            Box::pin(async move { db.is_ready().await })
        }
    }

    /// Whether the database answers a ping through the pool or, when every connection of the
    /// pool is in use, over a connection of its own.
    async fn is_ready(&self) -> bool {
        let pool = &self.db.pool;
        let ping = sqlx::query("SELECT 1").execute(pool);
        match tokio::time::timeout(self.db.deadline, ping).await {
            Ok(Ok(_)) => true,
            Ok(Err(sqlx::Error::PoolTimedOut)) if all_in_use(pool) => {
                tokio::time::timeout(self.db.deadline, answers_outside(pool))
                    .await
                    .is_ok_and(|answered| answered)
            }
            Ok(Err(_)) | Err(_) => false,
        }
    }
    /// Waits for connections in use to return, then closes them all.
    pub async fn close(&self) {
        self.db.pool.close().await;
    }
}

/// The most retries [`PostgresConfig::serialization_retries`] may ask for: more would only
/// hold a caller longer under contention that retries do not resolve.
const MAX_SERIALIZATION_RETRIES: u32 = 20;

/// Checks the settings that PostgreSQL or the pool would misread: a `statement_timeout` is a
/// 32-bit count of milliseconds on the server, and a zero `acquire_timeout` fails every call.
fn check_settings(config: &PostgresConfig) -> Result<(), OpenError> {
    let refuse = |setting, reason| Err(OpenError::Setting { setting, reason });
    if config.serialization_retries > MAX_SERIALIZATION_RETRIES {
        return refuse("serialization_retries", "at most 20");
    }
    if config.statement_timeout.as_millis() > i32::MAX.unsigned_abs().into() {
        return refuse(
            "statement_timeout",
            "below 24 days (PostgreSQL counts it in 32-bit milliseconds); zero for no limit",
        );
    }
    if config.acquire_timeout.is_zero() {
        return refuse("acquire_timeout", "more than zero");
    }
    Ok(())
}

/// Whether the pool has opened every connection it may: a wait for one that timed out then
/// means they were all in use. `num_idle()` is not asked: sqlx hands a released connection to
/// the next caller before it counts it idle, so the count can read `usize::MAX` for a moment
/// (seen in CI), and a busy pool would have been reported down.
fn all_in_use(pool: &PgPool) -> bool {
    pool.size() >= pool.options().get_max_connections()
}

/// Whether the server answers `SELECT 1` on a new connection with the pool's settings.
async fn answers_outside(pool: &PgPool) -> bool {
    let Ok(mut conn) = PgConnection::connect_with(&pool.connect_options()).await else {
        return false;
    };
    let answered = sqlx::query("SELECT 1").execute(&mut conn).await.is_ok();
    let _ = conn.close().await;
    answered
}

/// How much longer than the statement timeout and the wait for a connection an attempt may
/// take before it is abandoned: time on the wire, and a transaction's few statements.
const DEADLINE_MARGIN: Duration = Duration::from_secs(2);

/// The deadline of an attempt when statements have no time limit.
const UNLIMITED_STATEMENT_DEADLINE: Duration = Duration::from_secs(60);

/// The longest one attempt of a store's operation (or a ping) may take: the server's own
/// limits plus a margin, so that a server that stopped answering without closing its
/// connections fails the call instead of hanging it.
fn attempt_deadline(config: &PostgresConfig) -> Duration {
    let statement = if config.statement_timeout.is_zero() {
        UNLIMITED_STATEMENT_DEADLINE
    } else {
        config.statement_timeout.saturating_add(DEADLINE_MARGIN)
    };
    statement.saturating_add(config.acquire_timeout)
}

/// The connection settings of `config`, without the statement timeout.
fn connect_options(config: &PostgresConfig) -> Result<PgConnectOptions, OpenError> {
    let mut options = parse_url(config.url.expose_secret())?;
    if let Some(password) = &config.password {
        options = options.password(password.expose_secret());
    }
    if let Some(schema) = &config.schema {
        check_schema(schema)?;
        options = options.options([("search_path", schema)]);
    }
    if options.get_application_name().is_none() {
        options = options.application_name("user-management");
    }
    Ok(options)
}

/// How long a migration statement waits for a lock (a table another transaction uses)
/// before it fails, rather than queueing every other query on that table behind it.
const MIGRATION_LOCK_TIMEOUT: &str = "10s";

/// How long opening may spend migrating, waiting for other instances' migrations included.
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(60);

/// Applies the embedded migrations on a connection of its own, without the statement
/// timeout (migrating a large table may take longer than any query should) but with a lock
/// timeout, all within [`MIGRATION_TIMEOUT`], so that opening never waits forever.
async fn migrate(options: &PgConnectOptions, config: &PostgresConfig) -> Result<(), OpenError> {
    let options = options.clone().options([
        ("statement_timeout", "0"),
        ("lock_timeout", MIGRATION_LOCK_TIMEOUT),
    ]);
    // A pool of one rather than a bare connection: `Migrator::run` on a `&mut PgConnection`
    // makes a future that cannot be spawned.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(config.acquire_timeout)
        .connect_with(options)
        .await
        .map_err(|source| OpenError::Connect { source })?;
    let mut migrator = sqlx::migrate!();
    // A binary older than the database (a rolling deploy, or a rollback) still starts: the
    // migrations it does not know are ignored. So every migration must be expand/contract:
    // add what the new version needs while the old one keeps working, and remove what only
    // the old one used in a later release.
    migrator.set_ignore_missing(true);
    if let Some(schema) = &config.schema {
        // Created under the migration lock, so concurrent first starts do not race. The name
        // was checked to be a plain identifier; the quotes keep keywords usable.
        migrator.create_schema(format!("\"{schema}\""));
    }
    let migrated = match tokio::time::timeout(MIGRATION_TIMEOUT, migrator.run(&pool)).await {
        Ok(done) => done.map_err(OpenError::Migrate),
        Err(_) => Err(OpenError::MigrateTimedOut(MIGRATION_TIMEOUT)),
    };
    pool.close().await;
    migrated
}

/// Whether `url` names a PostgreSQL database, checked the way sqlx reads it.
fn parse_url(url: &str) -> Result<PgConnectOptions, UrlError> {
    let scheme = url.split_once("://").map(|(scheme, _)| scheme);
    let postgres = scheme.is_some_and(|s| {
        s.eq_ignore_ascii_case("postgres") || s.eq_ignore_ascii_case("postgresql")
    });
    if !postgres {
        return Err(UrlError::NotPostgres);
    }
    PgConnectOptions::from_str(url).map_err(|e| {
        let reason = match e {
            sqlx::Error::Configuration(cause) => cause.to_string(),
            other => other.to_string(),
        };
        UrlError::Invalid(redact(&reason, url))
    })
}

/// `message` without the password of `url`, in case a parser quoted it.
fn redact(message: &str, url: &str) -> String {
    let Some(password) = password_of(url) else {
        return message.to_owned();
    };
    let mut out = message.replace(password, "***");
    let decoded = percent_decode(password);
    if !decoded.is_empty() {
        out = out.replace(&decoded, "***");
    }
    out
}

/// The password part of a URL's authority (`scheme://user:password@host`), as written.
fn password_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    let password = userinfo.split_once(':')?.1;
    (!password.is_empty()).then_some(password)
}

/// Decodes `%XX` escapes; anything else is kept as it is.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Checks that `name` is a plain identifier that PostgreSQL accepts as a schema name:
/// `[a-z_][a-z0-9_]{0,62}`, and not `pg_*` (reserved for system schemas).
fn check_schema(name: &str) -> Result<(), OpenError> {
    let mut chars = name.chars();
    let plain = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63
        && !name.starts_with("pg_");
    if plain {
        Ok(())
    } else {
        Err(OpenError::Schema(name.to_owned()))
    }
}

/// Maps a sqlx error to the port's error: unique violations name their field (by constraint
/// name), a missing row behind a foreign key is `NotFound`, everything else is `Unavailable`
/// with the cause.
fn map_db_err(e: sqlx::Error) -> RepoError {
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation() {
            match db.constraint() {
                Some("users_username_key") => {
                    return RepoError::Conflict {
                        field: UniqueField::Username,
                    };
                }
                Some("users_email_key") => {
                    return RepoError::Conflict {
                        field: UniqueField::Email,
                    };
                }
                _ => {}
            }
        }
        // A user deleted between a check and an insert that refers to them.
        if db.is_foreign_key_violation() {
            return RepoError::NotFound;
        }
    }
    if matches!(e, sqlx::Error::RowNotFound) {
        return RepoError::NotFound;
    }
    RepoError::unavailable(e)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::error::Error as StdError;
    use std::fmt;

    use sqlx::error::{DatabaseError, ErrorKind};

    use super::*;

    #[test]
    fn postgres_urls_are_accepted() {
        for url in [
            "postgres://postgres@127.0.0.1:5432/postgres",
            "postgresql://users:s3cret@db.example.com/app?sslmode=disable",
            "POSTGRES://localhost/users",
            "postgres:///users?host=/var/run/postgresql",
        ] {
            let config = PostgresConfig::from_url(url).unwrap();
            assert_eq!(config.url.expose_secret(), url);
            assert_eq!(config.schema, None);
            assert_eq!(config.max_connections, 10);
            assert_eq!(config.min_connections, 0);
            assert_eq!(config.acquire_timeout, Duration::from_secs(5));
            assert_eq!(config.statement_timeout, Duration::from_secs(10));
            assert_eq!(config.serialization_retries, 5);
        }
    }

    #[test]
    fn other_schemes_are_refused() {
        for url in [
            "sqlite:data/users.db",
            "sqlite://data/users.db",
            "http://localhost:5432/users",
            "mysql://root@localhost/users",
            "postgres:/localhost/users",
            "localhost:5432",
            "",
        ] {
            assert_eq!(
                PostgresConfig::from_url(url).unwrap_err(),
                UrlError::NotPostgres,
                "{url}"
            );
        }
    }

    #[test]
    fn invalid_urls_say_why_without_the_password() {
        for url in [
            "postgres://alice:s3cr%65t-pw@db.example.com:notaport/app",
            "postgres://alice:s3cret-pw@db.example.com:99999/app",
            "postgres://alice:s3cret-pw@db.example.com/app?sslmode=s3cret-pw",
            "postgres://alice:s3cret-pw@[::1/app",
        ] {
            let err = PostgresConfig::from_url(url).unwrap_err();
            assert!(matches!(err, UrlError::Invalid(_)), "{url}: {err:?}");
            for text in [err.to_string(), format!("{err:?}")] {
                assert!(!text.contains("s3cret"), "{url}: {text}");
                assert!(!text.contains("s3cr%65t"), "{url}: {text}");
            }
            assert!(
                err.to_string().starts_with("invalid PostgreSQL URL"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_quoted_password_is_redacted() {
        let url = "postgres://u:p%40ss@h/db";
        assert_eq!(password_of(url), Some("p%40ss"));
        assert_eq!(redact("saw p@ss and p%40ss", url), "saw *** and ***");
        assert_eq!(password_of("postgres://u@h/db"), None);
        assert_eq!(password_of("postgres://h/db?password=x"), None);
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
    }

    #[test]
    fn debug_of_the_config_hides_the_password() {
        let config = PostgresConfig::new("postgres://alice:s3cret-pw@localhost/app");
        let debug = format!("{config:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(debug.contains("max_connections: 10"), "{debug}");
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        let longest = "s".repeat(63);
        for ok in ["users", "_x", "users_2", "a", longest.as_str(), "select"] {
            assert!(check_schema(ok).is_ok(), "{ok}");
        }
        let too_long = "s".repeat(64);
        for bad in [
            "",
            "Users",
            "2users",
            "users-2",
            "us ers",
            "users;drop",
            "\"users\"",
            "pg_users",
            "usérs",
            too_long.as_str(),
        ] {
            let err = check_schema(bad).unwrap_err();
            assert!(matches!(err, OpenError::Schema(ref n) if n == bad), "{bad}");
            assert!(err.to_string().contains("invalid schema name"), "{err}");
        }
    }

    #[test]
    fn settings_out_of_range_are_refused_by_name() {
        let ok = PostgresConfig::new("postgres://nobody@127.0.0.1:1/none");
        assert!(check_settings(&ok).is_ok());
        let edge = PostgresConfig {
            serialization_retries: 20,
            statement_timeout: Duration::from_millis(2_147_483_647),
            acquire_timeout: Duration::from_millis(1),
            ..ok.clone()
        };
        assert!(check_settings(&edge).is_ok());
        let no_limit = PostgresConfig {
            statement_timeout: Duration::ZERO,
            serialization_retries: 0,
            ..ok.clone()
        };
        assert!(check_settings(&no_limit).is_ok());
        for (bad, name) in [
            (
                PostgresConfig {
                    serialization_retries: 21,
                    ..ok.clone()
                },
                "serialization_retries",
            ),
            (
                PostgresConfig {
                    statement_timeout: Duration::from_millis(2_147_483_648),
                    ..ok.clone()
                },
                "statement_timeout",
            ),
            (
                PostgresConfig {
                    statement_timeout: Duration::from_secs(30 * 24 * 3600),
                    ..ok.clone()
                },
                "statement_timeout",
            ),
            (
                PostgresConfig {
                    acquire_timeout: Duration::ZERO,
                    ..ok.clone()
                },
                "acquire_timeout",
            ),
        ] {
            let err = check_settings(&bad).unwrap_err();
            assert!(
                matches!(err, OpenError::Setting { setting, .. } if setting == name),
                "{err:?}"
            );
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[tokio::test]
    async fn open_refuses_bad_settings_before_connecting() {
        let config = PostgresConfig {
            serialization_retries: 1000,
            ..PostgresConfig::new("postgres://nobody@127.0.0.1:1/none")
        };
        let err = PostgresDatabase::open(&config).await.unwrap_err();
        assert!(matches!(err, OpenError::Setting { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn open_refuses_a_bad_schema_before_connecting() {
        let config = PostgresConfig {
            schema: Some("Robert'); DROP TABLE users;--".into()),
            ..PostgresConfig::new("postgres://nobody@127.0.0.1:1/none")
        };
        let err = PostgresDatabase::open(&config).await.unwrap_err();
        assert!(matches!(err, OpenError::Schema(_)), "{err:?}");
        let err = PostgresDatabase::open(&PostgresConfig::new("sqlite:users.db"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, OpenError::Url(UrlError::NotPostgres)),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_names_no_password() {
        let config = PostgresConfig {
            acquire_timeout: Duration::from_secs(2),
            // Port 1 on the loopback: nothing listens there.
            ..PostgresConfig::new("postgres://alice:s3cret-pw@127.0.0.1:1/app")
        };
        let err = PostgresDatabase::open(&config).await.unwrap_err();
        assert!(matches!(err, OpenError::Connect { .. }), "{err:?}");
        let text = user_core::error::report(&err);
        assert!(!text.contains("s3cret"), "{text}");
        // Every error of the chain, as Display and as Debug.
        let mut next: Option<&dyn StdError> = Some(&err);
        while let Some(e) = next {
            for text in [e.to_string(), format!("{e:?}")] {
                assert!(!text.contains("s3cret"), "{text}");
            }
            next = e.source();
        }
    }

    /// There is no getter for the password; `PgConnectOptions`'s `Debug` shows it.
    #[test]
    fn the_configured_password_replaces_the_urls() {
        let config = PostgresConfig {
            password: Some(SecretString::from("from-a-file")),
            ..PostgresConfig::new("postgres://alice:in-the-url@db.example.com/app")
        };
        let options = format!("{:?}", connect_options(&config).unwrap());
        assert!(options.contains("from-a-file"), "{options}");
        assert!(!options.contains("in-the-url"), "{options}");
        let without = PostgresConfig::new("postgres://alice:in-the-url@db.example.com/app");
        let options = format!("{:?}", connect_options(&without).unwrap());
        assert!(options.contains("in-the-url"), "{options}");
    }

    /// A database error with a given SQLSTATE and constraint, as the server would send it.
    #[derive(Debug)]
    struct FakeDbError {
        code: &'static str,
        constraint: Option<&'static str>,
        kind: ErrorKind,
    }

    impl fmt::Display for FakeDbError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "error {}", self.code)
        }
    }

    impl StdError for FakeDbError {}

    impl DatabaseError for FakeDbError {
        fn message(&self) -> &str {
            "fake"
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.code))
        }
        fn constraint(&self) -> Option<&str> {
            self.constraint
        }
        fn as_error(&self) -> &(dyn StdError + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn StdError + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn StdError + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> ErrorKind {
            match self.kind {
                ErrorKind::UniqueViolation => ErrorKind::UniqueViolation,
                ErrorKind::ForeignKeyViolation => ErrorKind::ForeignKeyViolation,
                _ => ErrorKind::Other,
            }
        }
    }

    pub(crate) fn db_error(
        code: &'static str,
        constraint: Option<&'static str>,
        kind: ErrorKind,
    ) -> sqlx::Error {
        sqlx::Error::Database(Box::new(FakeDbError {
            code,
            constraint,
            kind,
        }))
    }

    #[test]
    fn unique_violations_name_the_field_by_constraint() {
        let unique = |c| map_db_err(db_error("23505", c, ErrorKind::UniqueViolation));
        assert!(matches!(
            unique(Some("users_username_key")),
            RepoError::Conflict {
                field: UniqueField::Username
            }
        ));
        assert!(matches!(
            unique(Some("users_email_key")),
            RepoError::Conflict {
                field: UniqueField::Email
            }
        ));
        // Any other unique violation is the store's failure, not the caller's.
        assert!(matches!(
            unique(Some("session_secrets_pkey")),
            RepoError::Unavailable(_)
        ));
        assert!(matches!(unique(None), RepoError::Unavailable(_)));
        let fk = map_db_err(db_error(
            "23503",
            Some("sessions_user_id_fkey"),
            ErrorKind::ForeignKeyViolation,
        ));
        assert!(matches!(fk, RepoError::NotFound), "{fk:?}");
        let check = map_db_err(db_error("23514", None, ErrorKind::CheckViolation));
        assert!(matches!(check, RepoError::Unavailable(_)));
        assert!(matches!(
            map_db_err(sqlx::Error::PoolTimedOut),
            RepoError::Unavailable(_)
        ));
    }
}
