//! The store the service runs on, chosen by `--database-url`: SQLite (the default, one file
//! in the data folder) or PostgreSQL (several instances on one database).

use std::sync::Arc;

use user_core::{Readiness, Storage};
use user_postgres::{PostgresConfig, PostgresDatabase};
use user_sqlite::{SqliteConfig, SqliteDatabase};

/// Where the users live.
#[derive(Debug, Clone)]
pub(crate) enum DatabaseConfig {
    /// One SQLite file.
    Sqlite(SqliteConfig),
    /// A PostgreSQL database.
    Postgres(PostgresConfig),
}

/// The open store.
#[derive(Debug, Clone)]
pub(crate) enum Database {
    Sqlite(SqliteDatabase),
    Postgres(PostgresDatabase),
}

impl Database {
    /// Opens the store (creating the SQLite file, or the PostgreSQL tables) and applies
    /// pending migrations.
    pub(crate) async fn open(config: &DatabaseConfig) -> anyhow::Result<Self> {
        Ok(match config {
            DatabaseConfig::Sqlite(config) => Self::Sqlite(SqliteDatabase::open(config).await?),
            DatabaseConfig::Postgres(config) => {
                Self::Postgres(PostgresDatabase::open(config).await?)
            }
        })
    }

    /// The storage ports.
    pub(crate) fn storage(&self) -> Storage {
        match self {
            Self::Sqlite(db) => db.storage(),
            Self::Postgres(db) => db.storage(),
        }
    }

    /// The readiness check behind `/readyz` and gRPC health.
    pub(crate) fn readiness(&self) -> Readiness {
        match self {
            Self::Sqlite(db) => Arc::new(db.readiness()),
            Self::Postgres(db) => Arc::new(db.readiness()),
        }
    }

    /// Lets connections in use return, then closes them.
    pub(crate) async fn close(&self) {
        match self {
            Self::Sqlite(db) => db.close().await,
            Self::Postgres(db) => db.close().await,
        }
    }
}
