//! Integration tests of the SQLite adapter: every test opens a fresh, real database file.

// Test helpers panic on failure, by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;
mod durability;
mod legacy;
mod mail;
mod plans;
mod races;
mod search;
mod services;

use std::sync::Arc;

use tempfile::TempDir;
use user_core::testing::conformance::Stores;
use user_core::testing::services::TestDatabase;
use user_core::testing::{FastHasher, FixedClock, Fixture};
use user_core::{Ports, Storage};
use user_sqlite::{SqliteConfig, SqliteDatabase};

/// A fresh database file in its own temporary directory, removed when the guard drops.
pub struct TestDb {
    /// The open database.
    pub db: SqliteDatabase,
    /// Where its file lives.
    pub dir: TempDir,
}

impl TestDb {
    /// Opens a new database in a new directory.
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteDatabase::open(&SqliteConfig::new(dir.path().join("users.db")))
            .await
            .unwrap();
        Self { db, dir }
    }

    /// The database file.
    pub fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("users.db")
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

#[async_trait::async_trait]
impl TestDatabase for TestDb {
    fn storage(&self) -> Storage {
        self.db.storage()
    }

    async fn reopen(&self) -> Storage {
        SqliteDatabase::open(&SqliteConfig::new(self.path()))
            .await
            .unwrap()
            .storage()
    }
}

/// The factory the conformance suite calls for each check.
pub async fn stores() -> Stores {
    let t = TestDb::new().await;
    Stores::new(t.db.storage(), t)
}

/// Inserts `user` with a placeholder hash.
pub async fn insert_user(db: &SqliteDatabase, user: &user_core::domain::User) {
    use user_core::ports::UserRepository as _;
    db.users()
        .insert(&user_core::domain::NewUser {
            user: user.clone(),
            password_hash: user_core::domain::PasswordHash::new("$2b$04$abcdefghijklmnopqrstuu"),
        })
        .await
        .unwrap();
}
