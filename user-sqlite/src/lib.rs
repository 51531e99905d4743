//! SQLite storage for user-management: [`SqliteUserRepository`], [`SqliteSessionStore`],
//! [`SqliteLoginFailureStore`], [`SqliteDeviceTokenStore`], [`SqliteOneTimeTokenStore`],
//! [`SqliteMailOutbox`], [`SqliteAuditLog`] and [`SqliteSecondFactorStore`] implement
//! `user-core`'s eight storage ports on sqlx, over one file.
//!
//! # Layout
//!
//! - [`SqliteDatabase::open`] creates the file if needed (owner-only, mode 0600 on Unix, which
//!   SQLite copies to the `-wal` and `-shm` files), applies the embedded migrations
//!   (`migrations/`), and sets WAL journaling, `synchronous = FULL` (configurable), foreign
//!   keys and a busy timeout on every connection. Connections are not pinged before each use
//!   (sqlx's default): a local file does not go away, and the ping cost a round trip to the
//!   connection's thread, as much as the query.
//!   Opening also lowercases the display names that migration 0006 could not (beyond ASCII),
//!   once.
//! - `users.rs`, `sessions.rs`, `login_failures.rs`, `devices.rs`, `tokens.rs`, `outbox.rs`,
//!   `audit.rs` and `factors.rs` implement the ports; `search.rs` serves the admin user list
//!   from indexes: the FTS5 table `users_search` (trigram tokenizer, kept in step by
//!   triggers) for a search of 3 characters or more, the username and email indexes for a
//!   shorter one, and indexes on `(role, username)`, `(status, username)` and `(role,
//!   status, username)` for the filters;
//!   `rows.rs` holds the row types, which never leave the crate: each converts to a domain
//!   value with `TryFrom`, so bad data is an error, not a panic.
//! - Unique violations map to `RepoError::Conflict` naming the field; every other database
//!   failure to `RepoError::Unavailable` carrying the cause.
//!
//! - [`SqliteConfig::from_url`] reads a `sqlite:` URL (`USERS_DATABASE_URL`, say);
//!   [`SqliteDatabase::readiness`] is the check behind an HTTP `/readyz`.
//! - [`legacy`] imports the legacy Python deployment's `users.db` (bcrypt hashes kept, refused
//!   rows reported, reruns idempotent) into any `UserRepository`.
//!
//! All eight stores pass `user_core::testing::conformance` against a real file.
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use user_sqlite::{SqliteConfig, SqliteDatabase};
//!
//! let db = SqliteDatabase::open(&SqliteConfig::new("data/users.db")).await?;
//! let storage = db.storage(); // user_core::Storage: the eight ports over this pool
//! let services = user_core::Services::builder(storage).build()?;
//! # let _ = services;
//! db.close().await;
//! # Ok(()) }
//! ```

mod audit;
mod devices;
mod factors;
pub mod legacy;
mod login_failures;
mod outbox;
mod rows;
mod search;
mod sessions;
mod tokens;
mod users;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use user_core::Storage;
use user_core::error::{RepoError, UniqueField};

pub use audit::SqliteAuditLog;
pub use devices::SqliteDeviceTokenStore;
pub use factors::SqliteSecondFactorStore;
pub use login_failures::SqliteLoginFailureStore;
pub use outbox::SqliteMailOutbox;
pub use sessions::SqliteSessionStore;
pub use tokens::SqliteOneTimeTokenStore;
pub use users::SqliteUserRepository;

/// How durable each commit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous = FULL`: a commit survives power loss. The default.
    #[default]
    Full,
    /// `synchronous = NORMAL`: faster; in WAL mode a power loss may undo the last commits,
    /// never corrupt the file.
    Normal,
}

/// Settings of the SQLite store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteConfig {
    /// The database file; created with its tables when missing (the folder must exist),
    /// readable and writable by its owner only.
    pub path: PathBuf,
    /// Commit durability (default [`Durability::Full`]).
    pub durability: Durability,
    /// Pool size (default 8).
    pub max_connections: u32,
    /// How long a statement waits for a lock before failing (default 5 s).
    pub busy_timeout: Duration,
    /// The page cache of each connection, in KiB (default 16,384: 16 MiB; SQLite's own is
    /// 2 MiB). A connection fills it only as it reads, so a small database costs little; a
    /// large one (a million users is about 700 MB) then serves its hot pages (the indexes'
    /// upper levels, recent rows) from memory: the export and the admin pages of a million
    /// users cost a third less per user.
    pub cache_kib: u32,
}

impl SqliteConfig {
    /// Defaults for the file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            durability: Durability::Full,
            max_connections: 8,
            busy_timeout: Duration::from_secs(5),
            cache_kib: 16 * 1024,
        }
    }
}

/// Why a database URL was refused by [`SqliteConfig::from_url`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not a `sqlite:` URL.
    #[error("expected a sqlite: URL, e.g. sqlite:data/users.db")]
    NotSqlite,
    /// A `sqlite:` URL without a file (or an in-memory database, which would lose every user
    /// at exit).
    #[error("give a file, e.g. sqlite:data/users.db")]
    NoFile,
}

impl SqliteConfig {
    /// Defaults for the file a `sqlite:` URL names: `sqlite:data/users.db`,
    /// `sqlite://data/users.db` or `sqlite:///var/lib/users.db`; a query string
    /// (`?mode=rwc`) is ignored, the settings being this type's fields.
    ///
    /// # Errors
    /// [`UrlError::NotSqlite`] for another scheme; [`UrlError::NoFile`] when the URL names no
    /// file, or `:memory:`.
    pub fn from_url(url: &str) -> Result<Self, UrlError> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or(UrlError::NotSqlite)?;
        let path = path.split('?').next().unwrap_or_default();
        if path.is_empty() || path == ":memory:" {
            return Err(UrlError::NoFile);
        }
        Ok(Self::new(path))
    }
}

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The file could not be opened or created.
    #[error("cannot open the SQLite database {path}")]
    Connect {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: sqlx::Error,
    },
    /// A migration failed; the database is left at the last one that succeeded.
    #[error("cannot migrate the SQLite database")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

/// An open SQLite database: hands out the port implementations, which share its pool.
#[derive(Debug, Clone)]
pub struct SqliteDatabase {
    pool: SqlitePool,
}

impl SqliteDatabase {
    /// Opens (or creates) the file and applies pending migrations. A new file is created
    /// with mode 0600 on Unix; SQLite gives its `-wal` and `-shm` files the same mode. An
    /// existing file keeps its mode.
    ///
    /// # Errors
    /// [`OpenError::Connect`] when the file cannot be created or opened;
    /// [`OpenError::Migrate`] when a migration fails.
    pub async fn open(config: &SqliteConfig) -> Result<Self, OpenError> {
        create_private(&config.path).map_err(|e| OpenError::Connect {
            path: config.path.clone(),
            source: sqlx::Error::Io(e),
        })?;
        let options = SqliteConnectOptions::new()
            .filename(&config.path)
            .create_if_missing(true)
            .foreign_keys(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match config.durability {
                Durability::Full => SqliteSynchronous::Full,
                Durability::Normal => SqliteSynchronous::Normal,
            })
            .busy_timeout(config.busy_timeout)
            // Negative: a size in KiB rather than in pages.
            .pragma("cache_size", format!("-{}", config.cache_kib.max(1)));
        let pool = SqlitePoolOptions::new()
            .max_connections(config.max_connections.max(1))
            // A connection to a local file does not go away: pinging it before each use
            // (sqlx's default) would only add a round trip to its worker thread, as long as
            // the query itself.
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(|source| OpenError::Connect {
                path: config.path.clone(),
                source,
            })?;
        sqlx::migrate!()
            .run(&pool)
            .await
            .map_err(OpenError::Migrate)?;
        lower_display_names(&pool)
            .await
            .map_err(|e| OpenError::Migrate(sqlx::migrate::MigrateError::Execute(e)))?;
        Ok(Self { pool })
    }

    /// The user repository.
    pub fn users(&self) -> SqliteUserRepository {
        SqliteUserRepository::new(self.pool.clone())
    }

    /// The session store.
    pub fn sessions(&self) -> SqliteSessionStore {
        SqliteSessionStore::new(self.pool.clone())
    }

    /// The guess budgets (failed sign-ins).
    pub fn login_failures(&self) -> SqliteLoginFailureStore {
        SqliteLoginFailureStore::new(self.pool.clone())
    }

    /// The device tokens.
    pub fn devices(&self) -> SqliteDeviceTokenStore {
        SqliteDeviceTokenStore::new(self.pool.clone())
    }

    /// The one-time tokens (email verification, password reset).
    pub fn tokens(&self) -> SqliteOneTimeTokenStore {
        SqliteOneTimeTokenStore::new(self.pool.clone())
    }

    /// The mail outbox.
    pub fn outbox(&self) -> SqliteMailOutbox {
        SqliteMailOutbox::new(self.pool.clone())
    }

    /// The audit log.
    pub fn audit(&self) -> SqliteAuditLog {
        SqliteAuditLog::new(self.pool.clone())
    }

    /// Second factors, recovery codes, trusted browsers and sign-in challenges.
    pub fn factors(&self) -> SqliteSecondFactorStore {
        SqliteSecondFactorStore::new(self.pool.clone())
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
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Whether the database answers, for readiness checks.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when it does not.
    pub async fn ping(&self) -> Result<(), RepoError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(map_db_err)
    }

    /// The readiness check of this database, for `user_http::AppState::with_readiness` (as
    /// `Arc::new(db.readiness())`): each call pings it ([`ping`](Self::ping)) and answers
    /// whether it answered.
    pub fn readiness(
        &self,
    ) -> impl Fn() -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync + 'static {
        let db = self.clone();
        move || {
            let db = db.clone();
            Box::pin(async move { db.ping().await.is_ok() })
        }
    }

    /// Waits for connections in use to return, then closes them all.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Fills `display_name_lower` where migration 0006 left it NULL: display names with a
/// character beyond ASCII, which SQLite's `lower()` would not fold as the search does. Found
/// on a partial index that is empty once this has run, so a later open costs one lookup.
async fn lower_display_names(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    const BATCH: i64 = 1000;
    loop {
        let names: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, display_name FROM users \
             WHERE display_name IS NOT NULL AND display_name_lower IS NULL LIMIT ?",
        )
        .bind(BATCH)
        .fetch_all(pool)
        .await?;
        if names.is_empty() {
            return Ok(());
        }
        let mut tx = pool.begin().await?;
        for (id, name) in &names {
            sqlx::query("UPDATE users SET display_name_lower = ? WHERE id = ?")
                .bind(name.to_lowercase())
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }
}

/// Creates `path` as an empty, owner-only file if it does not exist, so that SQLite (which
/// would create it with 0644 less the umask) finds it private; an empty file is a new
/// database to SQLite. Names SQLite reads specially (`:memory:`, `file:` URIs, the empty
/// name of a temporary database) are left to it.
fn create_private(path: &Path) -> std::io::Result<()> {
    let name = path.to_string_lossy();
    if name.is_empty() || name == ":memory:" || name.starts_with("file:") {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Maps a sqlx error to the port's error: unique violations name their field, everything
/// else is `Unavailable` with the cause.
fn map_db_err(e: sqlx::Error) -> RepoError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        // SQLite names the column: "UNIQUE constraint failed: users.username".
        let message = db.message();
        if message.contains("users.username") {
            return RepoError::Conflict {
                field: UniqueField::Username,
            };
        }
        if message.contains("users.email") {
            return RepoError::Conflict {
                field: UniqueField::Email,
            };
        }
    }
    if matches!(e, sqlx::Error::RowNotFound) {
        return RepoError::NotFound;
    }
    RepoError::unavailable(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    /// The permission bits, in octal as `ls` and `chmod` show them.
    fn mode(path: &Path) -> String {
        use std::os::unix::fs::PermissionsExt as _;
        format!(
            "{:o}",
            std::fs::metadata(path).unwrap().permissions().mode() & 0o777
        )
    }

    /// The new file and its WAL companions are private, whatever the umask lets through.
    #[cfg(unix)]
    #[tokio::test]
    async fn a_new_database_and_its_wal_files_are_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.db");
        let db = SqliteDatabase::open(&SqliteConfig::new(&path))
            .await
            .unwrap();
        db.ping().await.unwrap();
        for file in ["users.db", "users.db-wal", "users.db-shm"] {
            let file = dir.path().join(file);
            assert!(file.exists(), "{} exists while open", file.display());
            assert_eq!(mode(&file), "600", "{}", file.display());
        }
        db.close().await;
    }

    #[test]
    fn a_sqlite_url_names_its_file() {
        for (url, path) in [
            ("sqlite:data/users.db", "data/users.db"),
            ("sqlite://data/users.db", "data/users.db"),
            ("sqlite:///var/lib/users.db", "/var/lib/users.db"),
            ("sqlite:users.db?mode=rwc", "users.db"),
        ] {
            let config = SqliteConfig::from_url(url).unwrap();
            assert_eq!(config, SqliteConfig::new(path), "{url}");
        }
    }

    #[test]
    fn other_urls_are_refused() {
        for url in [
            "sqlite:",
            "sqlite://",
            "sqlite::memory:",
            "sqlite:?mode=rwc",
        ] {
            assert_eq!(SqliteConfig::from_url(url), Err(UrlError::NoFile), "{url}");
        }
        for url in [
            "postgres://localhost/users",
            "data/users.db",
            "mysql://x",
            "",
        ] {
            assert_eq!(
                SqliteConfig::from_url(url),
                Err(UrlError::NotSqlite),
                "{url}"
            );
        }
    }

    #[tokio::test]
    async fn readiness_follows_the_pool() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteDatabase::open(&SqliteConfig::new(dir.path().join("users.db")))
            .await
            .unwrap();
        let ready = db.readiness();
        assert!(ready().await, "open: ready");
        db.close().await;
        assert!(!ready().await, "closed: not ready");
    }

    /// The names SQLite reads specially are not files to make: nothing appears in the
    /// current folder under them, and the empty name (a temporary database) is not an error.
    #[test]
    fn names_sqlite_reads_specially_are_left_to_it() {
        for name in ["", ":memory:", "file:create-private-check.db?mode=memory"] {
            let made = !name.is_empty() && Path::new(name).exists();
            let result = create_private(Path::new(name));
            if !made && !name.is_empty() && Path::new(name).exists() {
                std::fs::remove_file(name).unwrap();
                panic!("{name:?} was made as a file");
            }
            assert!(result.is_ok(), "{name:?}: {result:?}");
        }
    }

    /// Only "it exists already" is success: a file that cannot be made is the error that
    /// says why, before SQLite is asked.
    #[tokio::test]
    async fn a_database_in_a_missing_folder_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("users.db");
        let err = create_private(&path).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
        let err = SqliteDatabase::open(&SqliteConfig::new(&path))
            .await
            .err()
            .unwrap();
        assert!(
            matches!(&err, OpenError::Connect { path: named, source: sqlx::Error::Io(_) } if *named == path),
            "{err:?}"
        );
    }

    /// An existing file is the operator's: its mode is left alone.
    #[cfg(unix)]
    #[tokio::test]
    async fn an_existing_database_keeps_its_mode() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.db");
        SqliteDatabase::open(&SqliteConfig::new(&path))
            .await
            .unwrap()
            .close()
            .await;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let db = SqliteDatabase::open(&SqliteConfig::new(&path))
            .await
            .unwrap();
        db.ping().await.unwrap();
        assert_eq!(mode(&path), "640");
        db.close().await;
    }
}
