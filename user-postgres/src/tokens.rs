use async_trait::async_trait;
use time::OffsetDateTime;
use user_core::domain::{Email, OneTimeToken, TokenHash, TokenPurpose, UserId};
use user_core::error::RepoError;
use user_core::ports::{Mail, OneTimeTokenStore};
use uuid::Uuid;

use crate::outbox::enqueue;
use crate::retry::Db;
use crate::rows::{DbTime, corrupt};

/// [`OneTimeTokenStore`] on PostgreSQL: the `one_time_tokens` table, deleted with their user
/// by `ON DELETE CASCADE`. Issuing a token locks its user's row (so two issues for one user
/// run one after the other and only the newer token survives), replaces the user's older
/// tokens of that purpose and queues the mail in `mail_outbox`, in one transaction.
#[derive(Debug, Clone)]
pub struct PostgresOneTimeTokenStore {
    db: Db,
}

impl PostgresOneTimeTokenStore {
    pub(crate) fn new(db: Db) -> Self {
        Self { db }
    }
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    user_id: Uuid,
    purpose: String,
    email: String,
    created_at: DbTime,
    expires_at: DbTime,
}

impl TryFrom<TokenRow> for OneTimeToken {
    type Error = RepoError;

    fn try_from(row: TokenRow) -> Result<Self, RepoError> {
        let table = "one_time_tokens";
        Ok(Self {
            user_id: UserId::from(row.user_id),
            purpose: TokenPurpose::from_name(&row.purpose)
                .ok_or_else(|| corrupt(table, format!("unknown purpose {:?}", row.purpose)))?,
            email: Email::parse(&row.email).map_err(|e| corrupt(table, e))?,
            created_at: row.created_at.0,
            expires_at: row.expires_at.0,
        })
    }
}

#[async_trait]
impl OneTimeTokenStore for PostgresOneTimeTokenStore {
    async fn issue(
        &self,
        hash: &TokenHash,
        token: &OneTimeToken,
        mail: &Mail,
    ) -> Result<(), RepoError> {
        let pool = &self.db.pool;
        let user = token.user_id.as_uuid();
        let purpose = token.purpose.as_str();
        let issued = self
            .db
            .run(|| async move {
                let mut tx = pool.begin().await?;
                let found: Option<Uuid> =
                    sqlx::query_scalar("SELECT id FROM users WHERE id = $1 FOR NO KEY UPDATE")
                        .bind(user)
                        .fetch_optional(&mut *tx)
                        .await?;
                if found.is_none() {
                    tx.rollback().await?;
                    return Ok(false);
                }
                sqlx::query("DELETE FROM one_time_tokens WHERE user_id = $1 AND purpose = $2")
                    .bind(user)
                    .bind(purpose)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO one_time_tokens \
                     (hash, user_id, purpose, email, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(hash.as_bytes().as_slice())
                .bind(user)
                .bind(purpose)
                .bind(token.email.as_ref())
                .bind(token.created_at)
                .bind(token.expires_at)
                .execute(&mut *tx)
                .await?;
                enqueue(&mut *tx, mail, token.created_at).await?;
                tx.commit().await?;
                Ok(true)
            })
            .await?;
        if !issued {
            return Err(RepoError::NotFound);
        }
        Ok(())
    }

    async fn find(
        &self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        now: OffsetDateTime,
    ) -> Result<OneTimeToken, RepoError> {
        let pool = &self.db.pool;
        let row: Option<TokenRow> = self
            .db
            .run(|| async move {
                sqlx::query_as(
                    "SELECT user_id, purpose, email, created_at, expires_at \
                     FROM one_time_tokens \
                     WHERE hash = $1 AND purpose = $2 AND expires_at > $3",
                )
                .bind(hash.as_bytes().as_slice())
                .bind(purpose.as_str())
                .bind(now)
                .fetch_optional(pool)
                .await
            })
            .await?;
        row.ok_or(RepoError::NotFound)?.try_into()
    }

    async fn consume(
        &self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        now: OffsetDateTime,
    ) -> Result<OneTimeToken, RepoError> {
        let pool = &self.db.pool;
        let row: Option<TokenRow> = self
            .db
            .run(|| async move {
                sqlx::query_as(
                    "DELETE FROM one_time_tokens \
                     WHERE hash = $1 AND purpose = $2 AND expires_at > $3 \
                     RETURNING user_id, purpose, email, created_at, expires_at",
                )
                .bind(hash.as_bytes().as_slice())
                .bind(purpose.as_str())
                .bind(now)
                .fetch_optional(pool)
                .await
            })
            .await?;
        row.ok_or(RepoError::NotFound)?.try_into()
    }

    async fn revoke_all(&self, user: UserId, purpose: TokenPurpose) -> Result<u64, RepoError> {
        let pool = &self.db.pool;
        self.db
            .run(|| async move {
                sqlx::query("DELETE FROM one_time_tokens WHERE user_id = $1 AND purpose = $2")
                    .bind(user.as_uuid())
                    .bind(purpose.as_str())
                    .execute(pool)
                    .await
            })
            .await
            .map(|done| done.rows_affected())
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, RepoError> {
        self.db
            .purge_in_batches(
                "DELETE FROM one_time_tokens WHERE hash = ANY (ARRAY (SELECT hash FROM \
                 one_time_tokens WHERE expires_at < $1 LIMIT $2))",
                before,
            )
            .await
    }
}
