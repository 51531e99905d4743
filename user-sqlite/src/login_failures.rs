use async_trait::async_trait;
use sqlx::SqlitePool;
use time::OffsetDateTime;
use user_core::domain::{LoginFailures, ThrottleKey};
use user_core::error::RepoError;
use user_core::ports::LoginFailureStore;

use crate::map_db_err;
use crate::rows::{from_db, to_db};

/// [`LoginFailureStore`] on SQLite: the `login_failures` table, one row per budget. The
/// compare-and-set is one statement.
#[derive(Debug, Clone)]
pub struct SqliteLoginFailureStore {
    pool: SqlitePool,
}

impl SqliteLoginFailureStore {
    pub(crate) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl LoginFailureStore for SqliteLoginFailureStore {
    async fn get(&self, key: &ThrottleKey) -> Result<Option<LoginFailures>, RepoError> {
        let row: Option<(i64, i64)> =
            sqlx::query_as("SELECT count, last_failed_at FROM login_failures WHERE key = ?")
                .bind(key.as_bytes().as_slice())
                .fetch_optional(&self.pool)
                .await
                .map_err(map_db_err)?;
        row.map(|(count, last)| failures(count, last)).transpose()
    }

    async fn swap(
        &self,
        key: &ThrottleKey,
        expected: Option<LoginFailures>,
        next: &LoginFailures,
    ) -> Result<bool, RepoError> {
        let count = i64::from(next.count);
        let done = match expected {
            None => sqlx::query(
                "INSERT INTO login_failures (key, count, last_failed_at) VALUES (?, ?, ?) \
                 ON CONFLICT (key) DO NOTHING",
            )
            .bind(key.as_bytes().as_slice())
            .bind(count)
            .bind(to_db(next.last_failed_at)),
            Some(old) => sqlx::query(
                "UPDATE login_failures SET count = ?1, last_failed_at = ?2 \
                 WHERE key = ?3 AND count = ?4 AND last_failed_at = ?5",
            )
            .bind(count)
            .bind(to_db(next.last_failed_at))
            .bind(key.as_bytes().as_slice())
            .bind(i64::from(old.count))
            .bind(to_db(old.last_failed_at)),
        }
        .execute(&self.pool)
        .await
        .map_err(map_db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn clear(&self, key: &ThrottleKey) -> Result<(), RepoError> {
        sqlx::query("DELETE FROM login_failures WHERE key = ?")
            .bind(key.as_bytes().as_slice())
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(map_db_err)
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, RepoError> {
        sqlx::query("DELETE FROM login_failures WHERE last_failed_at < ?")
            .bind(to_db(before))
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(map_db_err)
    }
}

fn failures(count: i64, last_failed_at: i64) -> Result<LoginFailures, RepoError> {
    Ok(LoginFailures {
        count: u32::try_from(count).unwrap_or(u32::MAX),
        last_failed_at: from_db("login_failures", last_failed_at)?,
    })
}
