use async_trait::async_trait;
use sqlx::SqlitePool;
use time::OffsetDateTime;
use user_core::domain::{Email, OneTimeToken, TokenHash, TokenPurpose, UserId};
use user_core::error::RepoError;
use user_core::ports::{Mail, OneTimeTokenStore};

use crate::map_db_err;
use crate::outbox::enqueue;
use crate::rows::{corrupt, from_db, to_db, uuid};

/// [`OneTimeTokenStore`] on SQLite: the `one_time_tokens` table, deleted with their user by
/// `ON DELETE CASCADE`. Issuing a token queues its mail in `mail_outbox` in the same
/// transaction.
#[derive(Debug, Clone)]
pub struct SqliteOneTimeTokenStore {
    pool: SqlitePool,
}

impl SqliteOneTimeTokenStore {
    pub(crate) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    user_id: String,
    purpose: String,
    email: String,
    created_at: i64,
    expires_at: i64,
}

impl TryFrom<TokenRow> for OneTimeToken {
    type Error = RepoError;

    fn try_from(row: TokenRow) -> Result<Self, RepoError> {
        let table = "one_time_tokens";
        Ok(Self {
            user_id: UserId::from(uuid(table, &row.user_id)?),
            purpose: TokenPurpose::from_name(&row.purpose)
                .ok_or_else(|| corrupt(table, format!("unknown purpose {:?}", row.purpose)))?,
            email: Email::parse(&row.email).map_err(|e| corrupt(table, e))?,
            created_at: from_db(table, row.created_at)?,
            expires_at: from_db(table, row.expires_at)?,
        })
    }
}

#[async_trait]
impl OneTimeTokenStore for SqliteOneTimeTokenStore {
    async fn issue(
        &self,
        hash: &TokenHash,
        token: &OneTimeToken,
        mail: &Mail,
    ) -> Result<(), RepoError> {
        // Writes first, so the transaction holds the write lock from its first statement.
        let mut tx = self.pool.begin().await.map_err(map_db_err)?;
        sqlx::query("DELETE FROM one_time_tokens WHERE user_id = ? AND purpose = ?")
            .bind(token.user_id.to_string())
            .bind(token.purpose.as_str())
            .execute(&mut *tx)
            .await
            .map_err(map_db_err)?;
        let stored = sqlx::query(
            "INSERT INTO one_time_tokens (hash, user_id, purpose, email, created_at, expires_at) \
             SELECT ?, id, ?, ?, ?, ? FROM users WHERE id = ?",
        )
        .bind(hash.as_bytes().as_slice())
        .bind(token.purpose.as_str())
        .bind(token.email.as_ref())
        .bind(to_db(token.created_at))
        .bind(to_db(token.expires_at))
        .bind(token.user_id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_db_err)?;
        if stored.rows_affected() == 0 {
            // No such user: dropping `tx` rolls back.
            return Err(RepoError::NotFound);
        }
        enqueue(&mut *tx, mail, token.created_at).await?;
        tx.commit().await.map_err(map_db_err)
    }

    async fn find(
        &self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        now: OffsetDateTime,
    ) -> Result<OneTimeToken, RepoError> {
        let row: Option<TokenRow> = sqlx::query_as(
            "SELECT user_id, purpose, email, created_at, expires_at FROM one_time_tokens \
             WHERE hash = ? AND purpose = ? AND expires_at > ?",
        )
        .bind(hash.as_bytes().as_slice())
        .bind(purpose.as_str())
        .bind(to_db(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(map_db_err)?;
        row.ok_or(RepoError::NotFound)?.try_into()
    }

    async fn consume(
        &self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        now: OffsetDateTime,
    ) -> Result<OneTimeToken, RepoError> {
        let row: Option<TokenRow> = sqlx::query_as(
            "DELETE FROM one_time_tokens WHERE hash = ? AND purpose = ? AND expires_at > ? \
             RETURNING user_id, purpose, email, created_at, expires_at",
        )
        .bind(hash.as_bytes().as_slice())
        .bind(purpose.as_str())
        .bind(to_db(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(map_db_err)?;
        row.ok_or(RepoError::NotFound)?.try_into()
    }

    async fn revoke_all(&self, user: UserId, purpose: TokenPurpose) -> Result<u64, RepoError> {
        sqlx::query("DELETE FROM one_time_tokens WHERE user_id = ? AND purpose = ?")
            .bind(user.to_string())
            .bind(purpose.as_str())
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(map_db_err)
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, RepoError> {
        sqlx::query("DELETE FROM one_time_tokens WHERE expires_at < ?")
            .bind(to_db(before))
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(map_db_err)
    }
}
