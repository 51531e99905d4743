use async_trait::async_trait;
use time::OffsetDateTime;
use user_core::domain::{LoginFailures, ThrottleKey};
use user_core::error::RepoError;
use user_core::ports::LoginFailureStore;

use crate::retry::Db;
use crate::rows::DbTime;

/// [`LoginFailureStore`] on PostgreSQL: the `login_failures` table, one row per budget. The
/// compare-and-set is one statement.
#[derive(Debug, Clone)]
pub struct PostgresLoginFailureStore {
    db: Db,
}

impl PostgresLoginFailureStore {
    pub(crate) fn new(db: Db) -> Self {
        Self { db }
    }
}

#[async_trait]
impl LoginFailureStore for PostgresLoginFailureStore {
    async fn get(&self, key: &ThrottleKey) -> Result<Option<LoginFailures>, RepoError> {
        let pool = &self.db.pool;
        let row: Option<(i64, DbTime)> = self
            .db
            .run(|| async move {
                sqlx::query_as("SELECT count, last_failed_at FROM login_failures WHERE key = $1")
                    .bind(key.as_bytes().as_slice())
                    .fetch_optional(pool)
                    .await
            })
            .await?;
        Ok(row.map(|(count, last)| LoginFailures {
            count: u32::try_from(count).unwrap_or(u32::MAX),
            last_failed_at: last.0,
        }))
    }

    async fn swap(
        &self,
        key: &ThrottleKey,
        expected: Option<LoginFailures>,
        next: &LoginFailures,
    ) -> Result<bool, RepoError> {
        let pool = &self.db.pool;
        let key = key.as_bytes().as_slice();
        let count = i64::from(next.count);
        let done = self
            .db
            .run(|| async move {
                match expected {
                    // Of concurrent inserts, one writes the row; the others find it there.
                    None => sqlx::query(
                        "INSERT INTO login_failures (key, count, last_failed_at) \
                         VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING",
                    )
                    .bind(key)
                    .bind(count)
                    .bind(next.last_failed_at),
                    // Of concurrent updates, the first changes the row; the others wait for it,
                    // then re-check the condition against the new row, which fails.
                    Some(old) => sqlx::query(
                        "UPDATE login_failures SET count = $1, last_failed_at = $2 \
                         WHERE key = $3 AND count = $4 AND last_failed_at = $5",
                    )
                    .bind(count)
                    .bind(next.last_failed_at)
                    .bind(key)
                    .bind(i64::from(old.count))
                    .bind(old.last_failed_at),
                }
                .execute(pool)
                .await
            })
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn clear(&self, key: &ThrottleKey) -> Result<(), RepoError> {
        let pool = &self.db.pool;
        self.db
            .run(|| async move {
                sqlx::query("DELETE FROM login_failures WHERE key = $1")
                    .bind(key.as_bytes().as_slice())
                    .execute(pool)
                    .await
            })
            .await
            .map(drop)
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, RepoError> {
        self.db
            .purge_in_batches(
                "DELETE FROM login_failures WHERE key = ANY (ARRAY (SELECT key FROM \
                 login_failures WHERE last_failed_at < $1 LIMIT $2))",
                before,
            )
            .await
    }
}
