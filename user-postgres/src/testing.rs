//! Test support (feature `testing`): a fresh schema per test on the server that
//! [`URL_VAR`] names, dropped when the test ends, so that tests run in parallel on one
//! server and leave nothing behind but the `pg_trgm` extension, which the first test
//! creates in `public` (see [`TestSchema::create`]).
//!
//! ```no_run
//! # async fn run() {
//! use user_postgres::testing::TestSchema;
//!
//! let Some(schema) = TestSchema::create().await else {
//!     return; // skipped: the variable is unset outside CI
//! };
//! let db = schema.open().await;
//! db.ping().await.unwrap();
//! # }
//! ```

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::{AssertSqlSafe, Connection as _, PgConnection};

use crate::{PostgresConfig, PostgresDatabase};

/// The environment variable naming the test server, e.g.
/// `postgres://postgres@127.0.0.1:5432/postgres`.
pub const URL_VAR: &str = "USERS_TEST_POSTGRES_URL";

/// How long creating or dropping a test schema may wait for the server.
const SERVER_TIMEOUT: Duration = Duration::from_secs(15);

/// A fresh, uniquely named schema on the test server, dropped (with everything in it) when
/// the value drops.
pub struct TestSchema {
    url: SecretString,
    name: String,
}

impl std::fmt::Debug for TestSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestSchema")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Says on the process's stderr that the current test is skipped and why. It writes past the
/// test harness's capture (which takes only the `print!` family), so that a run shows every
/// test it did not really run, not only the failing ones' output.
fn say_skipped(why: &str) {
    use std::io::Write as _;
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let _ = writeln!(std::io::stderr().lock(), "*** skipped {test}: {why}");
}

/// The test server's URL from [`URL_VAR`]'s value (`var`), or `None` when it is unset or
/// blank outside CI: the test is skipped.
///
/// # Panics
/// When it is unset or blank and `ci` is set: CI must run these tests.
fn server_url(var: Option<&str>, ci: bool) -> Option<String> {
    match var {
        Some(url) if !url.trim().is_empty() => Some(url.to_owned()),
        _ if ci => panic!(
            "{URL_VAR} is unset but CI is set: the PostgreSQL tests must run in CI. Set \
             {URL_VAR}=postgres://postgres@127.0.0.1:5432/postgres (.ci/run does)"
        ),
        _ => None,
    }
}

impl TestSchema {
    /// Creates a new schema on the server that [`URL_VAR`] names, after making sure that
    /// its database has the `pg_trgm` extension outside any test schema (in `public`, unless
    /// it is elsewhere already): the search index needs it, and dropping a schema that held
    /// it would drop the search indexes of every other test.
    ///
    /// Returns `None`, after saying so on stderr, when the variable is unset and `CI` is
    /// unset too: the test is skipped.
    ///
    /// # Panics
    /// When the variable is unset but `CI` is set (CI must run these tests), or when the
    /// server cannot be reached or refuses to create the schema.
    pub async fn create() -> Option<Self> {
        let var = std::env::var(URL_VAR).ok();
        let Some(url) = server_url(var.as_deref(), std::env::var_os("CI").is_some()) else {
            say_skipped(&format!(
                "set {URL_VAR}=postgres://postgres@127.0.0.1:5432/postgres to run the \
                 PostgreSQL tests (.ci/run does)"
            ));
            return None;
        };
        let name = format!("users_test_{}", uuid::Uuid::new_v4().simple());
        let created = async {
            let mut conn = connect(&url).await?;
            shared_pg_trgm(&mut conn).await?;
            sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA \"{name}\"")))
                .execute(&mut conn)
                .await?;
            conn.close().await
        };
        if let Err(e) = created.await {
            panic!(
                "cannot create a test schema on the PostgreSQL server that {URL_VAR} names \
                 (is it running? `pg_ctlcluster 15 main start`): {}",
                user_core::error::report(&e)
            );
        }
        Some(Self {
            url: SecretString::from(url),
            name,
        })
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Settings for a database in this schema, with a small pool (4 connections).
    pub fn config(&self) -> PostgresConfig {
        PostgresConfig {
            schema: Some(self.name.clone()),
            max_connections: 4,
            ..PostgresConfig::new(self.url.expose_secret())
        }
    }

    /// Opens [`config`](Self::config): connects and migrates.
    ///
    /// # Panics
    /// When the database cannot be opened.
    pub async fn open(&self) -> PostgresDatabase {
        match PostgresDatabase::open(&self.config()).await {
            Ok(db) => db,
            Err(e) => panic!(
                "cannot open the test schema {}: {}",
                self.name,
                user_core::error::report(&e)
            ),
        }
    }
}

impl Drop for TestSchema {
    /// Drops the schema. `Drop` cannot await, and may run inside a runtime that must not
    /// block: the work runs on a short-lived thread with a runtime and a connection of its
    /// own, and this waits for it.
    fn drop(&mut self) {
        let url = self.url.clone();
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime
                .block_on(async {
                    let mut conn = connect(url.expose_secret()).await?;
                    sqlx::query(AssertSqlSafe(format!(
                        "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
                    )))
                    .execute(&mut conn)
                    .await?;
                    conn.close().await
                })
                .map_err(|e| user_core::error::report(&e))
        })
        .join();
        let failure = match dropped {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e,
            Err(_) => "the thread panicked".to_owned(),
        };
        eprintln!(
            "warning: cannot drop the test schema {}: {failure}",
            self.name
        );
    }
}

/// Makes sure the database has `pg_trgm` (the search index's operator class), in `public`
/// unless it is elsewhere already. Otherwise the first test's migration would create it in
/// that test's schema, and dropping the schema would drop the extension, and with it the
/// search indexes of every test running beside it. Under an advisory lock, as concurrent
/// `CREATE EXTENSION IF NOT EXISTS` may both try to create it.
async fn shared_pg_trgm(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('user_postgres::testing pg_trgm'))")
        .execute(&mut *tx)
        .await?;
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// One connection to the test server, waiting at most [`SERVER_TIMEOUT`], with a lock
/// timeout so that a schema still in use cannot hang the test.
async fn connect(url: &str) -> Result<PgConnection, sqlx::Error> {
    let options: sqlx::postgres::PgConnectOptions = url.parse()?;
    let options = options.options([("lock_timeout", "10s")]);
    match tokio::time::timeout(SERVER_TIMEOUT, PgConnection::connect_with(&options)).await {
        Ok(conn) => conn,
        Err(_) => Err(sqlx::Error::PoolTimedOut),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blank_or_missing_url_skips_outside_ci_and_fails_in_it() {
        let url = "postgres://postgres@127.0.0.1:5432/postgres";
        assert_eq!(server_url(Some(url), false).as_deref(), Some(url));
        assert_eq!(server_url(Some(url), true).as_deref(), Some(url));
        for var in [None, Some(""), Some("  ")] {
            assert_eq!(server_url(var, false), None, "{var:?}");
            let in_ci = std::panic::catch_unwind(|| server_url(var, true));
            assert!(in_ci.is_err(), "{var:?} in CI must fail the test");
        }
    }

    /// With the variable set, the tests of this crate really run: a schema is made, its
    /// settings name it with a small pool, and dropping the value drops the schema.
    #[tokio::test]
    async fn with_the_url_set_a_schema_is_made_and_dropped() {
        let set = std::env::var(URL_VAR).is_ok_and(|url| !url.trim().is_empty());
        let schema = TestSchema::create().await;
        assert_eq!(schema.is_some(), set, "{schema:?}");
        let Some(schema) = schema else {
            return;
        };
        let debug = format!("{schema:?}");
        assert!(debug.contains(schema.name()), "{debug}");
        assert!(!debug.contains("postgres://"), "never the URL: {debug}");
        let config = schema.config();
        assert_eq!(config.schema.as_deref(), Some(schema.name()));
        assert_eq!(config.max_connections, 4);
        let name = schema.name().to_owned();
        let exists = "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)";
        let mut conn = connect(schema.url.expose_secret()).await.unwrap();
        let before: bool = sqlx::query_scalar(exists)
            .bind(&name)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        drop(schema);
        let after: bool = sqlx::query_scalar(exists)
            .bind(&name)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!((before, after), (true, false), "{name}");
        conn.close().await.unwrap();
    }

    /// In a database without `pg_trgm`, the shared extension goes in `public`, outside any
    /// test schema whose drop would take it away from the others.
    #[tokio::test]
    async fn pg_trgm_is_made_in_public() {
        let Some(schema) = TestSchema::create().await else {
            return;
        };
        let mut admin = connect(schema.url.expose_secret()).await.unwrap();
        let database = format!("users_test_db_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{database}\"")))
            .execute(&mut admin)
            .await
            .unwrap();
        let options: sqlx::postgres::PgConnectOptions = schema.url.expose_secret().parse().unwrap();
        let mut conn = PgConnection::connect_with(&options.database(&database))
            .await
            .unwrap();
        let home = "SELECT extnamespace::regnamespace::text FROM pg_extension \
                    WHERE extname = 'pg_trgm'";
        let before: Option<String> = sqlx::query_scalar(home)
            .fetch_optional(&mut conn)
            .await
            .unwrap();
        shared_pg_trgm(&mut conn).await.unwrap();
        let after: Option<String> = sqlx::query_scalar(home)
            .fetch_optional(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        sqlx::query(AssertSqlSafe(format!("DROP DATABASE \"{database}\"")))
            .execute(&mut admin)
            .await
            .unwrap();
        assert_eq!((before, after.as_deref()), (None, Some("public")));
    }
}
