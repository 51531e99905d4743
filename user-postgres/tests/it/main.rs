//! Integration tests of the PostgreSQL adapter: every test gets a fresh schema on the server
//! that `USERS_TEST_POSTGRES_URL` names (see `user_postgres::testing`), dropped afterwards.
//! Without the variable (and outside CI) each test says it is skipped and passes.

// Test helpers panic on failure, by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;
mod database;
mod lost_database;
mod plans;
mod purge;
mod races;
mod search;
mod services;
mod tls;

use secrecy::ExposeSecret;
use user_core::Storage;
use user_core::testing::conformance::Stores;
use user_core::testing::services::TestDatabase;
use user_postgres::testing::TestSchema;
use user_postgres::{PostgresConfig, PostgresDatabase};

/// A database in a fresh schema; the schema is dropped when this drops (after the pool).
pub struct TestDb {
    /// The open database.
    pub db: PostgresDatabase,
    /// Its schema.
    pub schema: TestSchema,
}

impl TestDb {
    /// Opens a database in a new schema; `None` when the tests are skipped.
    pub async fn new() -> Option<Self> {
        Self::with(|config| config).await
    }

    /// Opens a database in a new schema with the settings `change` makes of the schema's.
    pub async fn with(change: impl FnOnce(PostgresConfig) -> PostgresConfig) -> Option<Self> {
        let schema = TestSchema::create().await?;
        let db = PostgresDatabase::open(&change(schema.config()))
            .await
            .unwrap();
        Some(Self { db, schema })
    }

    /// Opens a database in a new schema whose transactions all run at SERIALIZABLE
    /// isolation: conflicts then fail with SQLSTATE 40001 and are retried. `change` as for [`TestDb::with`].
    pub async fn serializable_with(
        change: impl FnOnce(PostgresConfig) -> PostgresConfig,
    ) -> Option<Self> {
        let t = Self::with(|c| {
            change(with_url_option(
                c,
                "default_transaction_isolation",
                "serializable",
            ))
        })
        .await?;
        let level: String = sqlx::query_scalar("SHOW transaction_isolation")
            .fetch_one(t.db.pool())
            .await
            .unwrap();
        assert_eq!(level, "serializable");
        Some(t)
    }
}

#[async_trait::async_trait]
impl TestDatabase for TestDb {
    fn storage(&self) -> Storage {
        self.db.storage()
    }

    async fn reopen(&self) -> Storage {
        self.schema.open().await.storage()
    }
}

/// The factory the conformance suite calls for each check; `None` (the check is skipped)
/// without a PostgreSQL server.
pub async fn stores() -> Option<Stores> {
    as_stores(TestDb::new().await)
}

/// The factory of the suite's run at SERIALIZABLE isolation.
pub async fn serializable_stores() -> Option<Stores> {
    as_stores(TestDb::serializable_with(|config| config).await)
}

/// The factory of the race suite: a pool that runs a dozen contenders together and room
/// for twenty retries of a loser at SERIALIZABLE (the worst race has twenty writers on one
/// row).
pub async fn race_stores() -> Option<Stores> {
    as_stores(TestDb::with(for_races).await)
}

/// The factory of the race suite's run at SERIALIZABLE isolation.
pub async fn serializable_race_stores() -> Option<Stores> {
    as_stores(TestDb::serializable_with(for_races).await)
}

fn for_races(config: PostgresConfig) -> PostgresConfig {
    PostgresConfig {
        max_connections: 12,
        serialization_retries: 20,
        ..config
    }
}

fn as_stores(t: Option<TestDb>) -> Option<Stores> {
    t.map(|t| Stores::new(t.db.storage(), t))
}

/// `config` with a connection setting added to its URL (`options[name]=value`).
pub fn with_url_option(config: PostgresConfig, name: &str, value: &str) -> PostgresConfig {
    let url = config.url.expose_secret();
    let separator = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{separator}options[{name}]={value}");
    PostgresConfig {
        url: url.into(),
        ..config
    }
}

/// How many migrations the crate ships.
pub fn migrations() -> i64 {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
    let n = std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
        })
        .count();
    i64::try_from(n).unwrap()
}

/// Inserts a user named `name` with `display` as display name.
pub async fn insert_user(db: &PostgresDatabase, name: &str, display: Option<&str>) {
    use user_core::domain::{DisplayName, NewUser, PasswordHash, User};
    use user_core::ports::UserRepository as _;
    let user = User {
        display_name: display.map(|d| DisplayName::parse(d).unwrap().unwrap()),
        ..user_core::testing::conformance::user(name)
    };
    db.users()
        .insert(&NewUser {
            user,
            password_hash: PasswordHash::new("h"),
        })
        .await
        .unwrap();
}
