use async_trait::async_trait;
use time::OffsetDateTime;
use user_core::domain::{DeviceToken, TokenHash, UserId};
use user_core::error::RepoError;
use user_core::ports::DeviceTokenStore;
use uuid::Uuid;

use crate::retry::Db;
use crate::rows::DbTime;

/// [`DeviceTokenStore`] on PostgreSQL: the `devices` table, deleted with their user by
/// `ON DELETE CASCADE`.
#[derive(Debug, Clone)]
pub struct PostgresDeviceTokenStore {
    db: Db,
}

impl PostgresDeviceTokenStore {
    pub(crate) fn new(db: Db) -> Self {
        Self { db }
    }
}

#[async_trait]
impl DeviceTokenStore for PostgresDeviceTokenStore {
    async fn save(&self, hash: &TokenHash, device: &DeviceToken) -> Result<(), RepoError> {
        let pool = &self.db.pool;
        let hash = hash.as_bytes().as_slice();
        let user = device.user_id.as_uuid();
        let done = self
            .db
            .run(|| async move {
                sqlx::query(
                    "INSERT INTO devices (hash, user_id, created_at, expires_at) \
                     SELECT $1, id, $2, $3 FROM users WHERE id = $4 \
                     ON CONFLICT (hash) DO UPDATE SET expires_at = excluded.expires_at \
                     WHERE devices.user_id = excluded.user_id",
                )
                .bind(hash)
                .bind(device.created_at)
                .bind(device.expires_at)
                .bind(user)
                .execute(pool)
                .await
            })
            .await?;
        if done.rows_affected() == 0 {
            // Nothing written: no such user, or the hash is another user's device.
            let exists = self
                .db
                .run(|| async move {
                    sqlx::query_scalar::<_, bool>(
                        "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)",
                    )
                    .bind(user)
                    .fetch_one(pool)
                    .await
                })
                .await?;
            if !exists {
                return Err(RepoError::NotFound);
            }
        }
        Ok(())
    }

    async fn delete_for_user(&self, user: UserId) -> Result<u64, RepoError> {
        let pool = &self.db.pool;
        self.db
            .run(|| async move {
                sqlx::query("DELETE FROM devices WHERE user_id = $1")
                    .bind(user.as_uuid())
                    .execute(pool)
                    .await
            })
            .await
            .map(|done| done.rows_affected())
    }

    async fn find(&self, hash: &TokenHash) -> Result<DeviceToken, RepoError> {
        let pool = &self.db.pool;
        let row: Option<(Uuid, DbTime, DbTime)> = self
            .db
            .run(|| async move {
                sqlx::query_as(
                    "SELECT user_id, created_at, expires_at FROM devices WHERE hash = $1",
                )
                .bind(hash.as_bytes().as_slice())
                .fetch_optional(pool)
                .await
            })
            .await?;
        let (user_id, created_at, expires_at) = row.ok_or(RepoError::NotFound)?;
        Ok(DeviceToken {
            user_id: user_id.into(),
            created_at: created_at.0,
            expires_at: expires_at.0,
        })
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, RepoError> {
        self.db
            .purge_in_batches(
                "DELETE FROM devices WHERE hash = ANY (ARRAY (SELECT hash FROM devices \
                 WHERE expires_at < $1 LIMIT $2))",
                before,
            )
            .await
    }
}
