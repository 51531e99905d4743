//! Integration tests of the PostgreSQL adapter: every test gets a fresh schema on the server
//! that `USERS_TEST_POSTGRES_URL` names (see `user_postgres::testing`), dropped afterwards.
//! Without the variable (and outside CI) each test says it is skipped and passes.

// Test helpers panic on failure, by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;

use std::sync::Arc;

use user_core::Ports;
use user_core::testing::conformance::Stores;
use user_core::testing::{FastHasher, FixedClock, Fixture};
use user_postgres::PostgresDatabase;
use user_postgres::testing::TestSchema;

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
        let schema = TestSchema::create().await?;
        let db = schema.open().await;
        Some(Self { db, schema })
    }

    /// Both core services over this database, with a fast hasher and a fixed clock.
    pub fn fixture(&self) -> Fixture {
        let clock = Arc::new(FixedClock::default());
        let ports = Ports::new(
            self.db.storage(),
            Arc::new(FastHasher::new()),
            clock.clone(),
        );
        Fixture::with_ports(ports, clock)
    }
}

/// The factory the conformance suite calls for each check. When the PostgreSQL tests are
/// skipped it hands out the in-memory fakes, which the suite's macro cannot skip: the check
/// then says "skipped" and proves nothing about this crate.
pub async fn stores() -> Stores {
    match TestDb::new().await {
        Some(t) => Stores::new(t.db.storage(), t),
        None => Stores::new(user_core::testing::in_memory(), ()),
    }
}
