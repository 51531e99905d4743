use async_trait::async_trait;
use sqlx::SqlitePool;
use time::OffsetDateTime;
use user_core::domain::{DeviceToken, TokenHash, UserId};
use user_core::error::RepoError;
use user_core::ports::DeviceTokenStore;

use crate::map_db_err;
use crate::rows::{from_db, to_db};

/// [`DeviceTokenStore`] on SQLite: the `devices` table, deleted with their user by
/// `ON DELETE CASCADE`.
#[derive(Debug, Clone)]
pub struct SqliteDeviceTokenStore {
    pool: SqlitePool,
}

impl SqliteDeviceTokenStore {
    pub(crate) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl DeviceTokenStore for SqliteDeviceTokenStore {
    async fn save(&self, hash: &TokenHash, device: &DeviceToken) -> Result<(), RepoError> {
        let done = sqlx::query(
            "INSERT INTO devices (hash, user_id, created_at, expires_at) \
             SELECT ?, id, ?, ? FROM users WHERE id = ? \
             ON CONFLICT (hash) DO UPDATE SET expires_at = excluded.expires_at \
             WHERE devices.user_id = excluded.user_id",
        )
        .bind(hash.as_bytes().as_slice())
        .bind(to_db(device.created_at))
        .bind(to_db(device.expires_at))
        .bind(device.user_id.to_string())
        .execute(&self.pool)
        .await
        .map_err(map_db_err)?;
        if done.rows_affected() == 0 {
            // Nothing written: no such user, or the hash is another user's device.
            let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM users WHERE id = ?")
                .bind(device.user_id.to_string())
                .fetch_optional(&self.pool)
                .await
                .map_err(map_db_err)?;
            if exists.is_none() {
                return Err(RepoError::NotFound);
            }
        }
        Ok(())
    }

    async fn delete_for_user(&self, user: UserId) -> Result<u64, RepoError> {
        sqlx::query("DELETE FROM devices WHERE user_id = ?")
            .bind(user.to_string())
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(map_db_err)
    }

    async fn find(&self, hash: &TokenHash) -> Result<DeviceToken, RepoError> {
        let row: Option<(String, i64, i64)> =
            sqlx::query_as("SELECT user_id, created_at, expires_at FROM devices WHERE hash = ?")
                .bind(hash.as_bytes().as_slice())
                .fetch_optional(&self.pool)
                .await
                .map_err(map_db_err)?;
        let (user_id, created_at, expires_at) = row.ok_or(RepoError::NotFound)?;
        Ok(DeviceToken {
            user_id: user_id
                .parse()
                .map_err(|e| RepoError::unavailable(format!("corrupt devices row: {e}")))?,
            created_at: from_db("devices", created_at)?,
            expires_at: from_db("devices", expires_at)?,
        })
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, RepoError> {
        sqlx::query("DELETE FROM devices WHERE expires_at < ?")
            .bind(to_db(before))
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(map_db_err)
    }
}
