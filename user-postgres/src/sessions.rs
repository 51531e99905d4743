use async_trait::async_trait;
use time::OffsetDateTime;
use user_core::domain::{NewSession, Rotation, Session, SessionId, TokenHash, User, UserId};
use user_core::error::RepoError;
use user_core::ports::SessionStore;
use uuid::Uuid;

use crate::retry::Db;
use crate::rows::{SessionRow, SessionUserRow, session_columns, session_user_columns};

/// [`SessionStore`] on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PostgresSessionStore {
    db: Db,
}

impl PostgresSessionStore {
    pub(crate) fn new(db: Db) -> Self {
        Self { db }
    }

    /// Runs `sql`, an update of one session that binds a time and then the id; `NotFound`
    /// when there is no such session.
    async fn stamp(
        &self,
        sql: &'static str,
        id: SessionId,
        now: OffsetDateTime,
    ) -> Result<(), RepoError> {
        let pool = &self.db.pool;
        let done = self
            .db
            .run(|| async move {
                sqlx::query(sql)
                    .bind(now)
                    .bind(id.as_uuid())
                    .execute(pool)
                    .await
            })
            .await?;
        if done.rows_affected() == 0 {
            return Err(RepoError::NotFound);
        }
        Ok(())
    }

    /// What `query` finds by the value `key`, read as an `R` row and made a `T` (a session,
    /// or a session with its user).
    async fn fetch<R, T, K>(&self, query: &'static str, key: K) -> Result<T, RepoError>
    where
        R: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + TryInto<T, Error = RepoError>,
        R: Send + Unpin,
        K: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Copy + Send,
    {
        let pool = &self.db.pool;
        self.db
            .run(|| async move {
                sqlx::query_as::<_, R>(query)
                    .bind(key)
                    .fetch_optional(pool)
                    .await
            })
            .await?
            .ok_or(RepoError::NotFound)?
            .try_into()
    }
}

/// What a rotation found, before the session row becomes a domain value.
enum Found {
    NeverIssued,
    Reused(Uuid),
    Inactive(Uuid),
    Rotated(SessionRow),
}

#[async_trait]
impl SessionStore for PostgresSessionStore {
    async fn create(&self, new: &NewSession) -> Result<(), RepoError> {
        let s = &new.session;
        let pool = &self.db.pool;
        // One statement, so one round trip and atomic without a transaction: the session is
        // inserted only if its user exists, and its secret with it. (The foreign keys are
        // checked at the end of the statement, when the session row is there.)
        let inserted = self
            .db
            .run(|| async move {
                sqlx::query(
                    "WITH session AS ( \
                       INSERT INTO sessions (id, user_id, kind, user_agent, ip, created_at, \
                         last_used_at, expires_at, revoked_at) \
                       SELECT $1, id, $2, $3, $4, $5, $6, $7, $8 FROM users WHERE id = $9 \
                       RETURNING id) \
                     INSERT INTO session_secrets (hash, session_id) SELECT $10, id FROM session",
                )
                .bind(s.id.as_uuid())
                .bind(s.kind.as_str())
                .bind(s.client.user_agent.as_deref())
                .bind(s.client.ip.as_deref())
                .bind(s.created_at)
                .bind(s.last_used_at)
                .bind(s.expires_at)
                .bind(s.revoked_at)
                .bind(s.user_id.as_uuid())
                .bind(new.secret_hash.as_bytes().as_slice())
                .execute(pool)
                .await
            })
            .await?;
        if inserted.rows_affected() == 0 {
            return Err(RepoError::NotFound);
        }
        Ok(())
    }

    async fn get(&self, id: SessionId) -> Result<Session, RepoError> {
        let q = concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE id = $1"
        );
        self.fetch::<SessionRow, _, _>(q, id.as_uuid()).await
    }

    async fn find_by_cookie(&self, hash: &TokenHash) -> Result<Session, RepoError> {
        let q = concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE kind = 'browser' \
             AND id = (SELECT session_id FROM session_secrets WHERE hash = $1)"
        );
        self.fetch::<SessionRow, _, _>(q, hash.as_bytes().as_slice())
            .await
    }

    async fn get_with_user(&self, id: SessionId) -> Result<(Session, User), RepoError> {
        let q = concat!(
            "SELECT ",
            session_user_columns!(),
            " FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1"
        );
        self.fetch::<SessionUserRow, _, _>(q, id.as_uuid()).await
    }

    async fn find_by_cookie_with_user(
        &self,
        hash: &TokenHash,
    ) -> Result<(Session, User), RepoError> {
        let q = concat!(
            "SELECT ",
            session_user_columns!(),
            " FROM session_secrets t JOIN sessions s ON s.id = t.session_id \
             JOIN users u ON u.id = s.user_id WHERE t.hash = $1 AND s.kind = 'browser'"
        );
        self.fetch::<SessionUserRow, _, _>(q, hash.as_bytes().as_slice())
            .await
    }

    async fn rotate_refresh_token(
        &self,
        presented: &TokenHash,
        replacement: &TokenHash,
        now: OffsetDateTime,
        idle_since: OffsetDateTime,
    ) -> Result<Rotation, RepoError> {
        let pool = &self.db.pool;
        let presented = presented.as_bytes().as_slice();
        let replacement = replacement.as_bytes().as_slice();
        let outcome = self
            .db
            .run(|| async move {
                let mut tx = pool.begin().await?;
                // Locking the presented token's row makes concurrent rotations of it run one
                // after the other: the second reads the row as the first left it, spent (at
                // SERIALIZABLE it fails instead, and its retry reads it spent).
                let found: Option<(Uuid, bool)> = sqlx::query_as(
                    "SELECT t.session_id, t.spent_at IS NOT NULL FROM session_secrets t \
                     JOIN sessions s ON s.id = t.session_id \
                     WHERE t.hash = $1 AND s.kind = 'token' FOR UPDATE OF t",
                )
                .bind(presented)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((session_id, spent)) = found else {
                    tx.rollback().await?;
                    return Ok(Found::NeverIssued);
                };

                if spent {
                    sqlx::query(
                        "UPDATE sessions SET revoked_at = $1 \
                         WHERE id = $2 AND revoked_at IS NULL",
                    )
                    .bind(now)
                    .bind(session_id)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    return Ok(Found::Reused(session_id));
                }

                let q = concat!(
                    "UPDATE sessions SET last_used_at = $1 \
                     WHERE id = $2 AND revoked_at IS NULL AND expires_at > $1 \
                       AND last_used_at > $3 \
                     RETURNING ",
                    session_columns!()
                );
                let touched = sqlx::query_as::<_, SessionRow>(q)
                    .bind(now)
                    .bind(session_id)
                    .bind(idle_since)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(row) = touched else {
                    tx.rollback().await?;
                    return Ok(Found::Inactive(session_id));
                };
                sqlx::query("UPDATE session_secrets SET spent_at = $1 WHERE hash = $2")
                    .bind(now)
                    .bind(presented)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("INSERT INTO session_secrets (hash, session_id) VALUES ($1, $2)")
                    .bind(replacement)
                    .bind(session_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(Found::Rotated(row))
            })
            .await?;
        match outcome {
            Found::NeverIssued => Err(RepoError::NotFound),
            Found::Reused(id) => Ok(Rotation::Reused(id.into())),
            Found::Inactive(id) => Ok(Rotation::Inactive(id.into())),
            Found::Rotated(row) => Ok(Rotation::Rotated(row.try_into()?)),
        }
    }

    async fn touch(&self, id: SessionId, now: OffsetDateTime) -> Result<(), RepoError> {
        self.stamp(
            "UPDATE sessions SET last_used_at = \
             CASE WHEN last_used_at < $1 THEN $1 ELSE last_used_at END WHERE id = $2",
            id,
            now,
        )
        .await
    }

    async fn revoke(&self, id: SessionId, now: OffsetDateTime) -> Result<(), RepoError> {
        self.stamp(
            "UPDATE sessions SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2",
            id,
            now,
        )
        .await
    }

    async fn revoke_all(
        &self,
        user: UserId,
        keep: Option<SessionId>,
        now: OffsetDateTime,
    ) -> Result<u64, RepoError> {
        let pool = &self.db.pool;
        self.db
            .run(|| async move {
                sqlx::query(
                    "UPDATE sessions SET revoked_at = $1 \
                     WHERE user_id = $2 AND ($3::uuid IS NULL OR id <> $3) \
                       AND revoked_at IS NULL AND expires_at > $1",
                )
                .bind(now)
                .bind(user.as_uuid())
                .bind(keep.map(|k| k.as_uuid()))
                .execute(pool)
                .await
            })
            .await
            .map(|done| done.rows_affected())
    }

    async fn list_active(
        &self,
        user: UserId,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, RepoError> {
        let q = concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
             ORDER BY created_at DESC, id DESC"
        );
        let pool = &self.db.pool;
        self.db
            .run(|| async move {
                sqlx::query_as::<_, SessionRow>(q)
                    .bind(user.as_uuid())
                    .bind(now)
                    .fetch_all(pool)
                    .await
            })
            .await?
            .into_iter()
            .map(Session::try_from)
            .collect()
    }

    async fn count_active(&self, now: OffsetDateTime) -> Result<u64, RepoError> {
        let pool = &self.db.pool;
        self.db
            .run(|| async move {
                sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL AND expires_at > $1",
                )
                .bind(now)
                .fetch_one(pool)
                .await
            })
            .await
            .map(|n| u64::try_from(n).unwrap_or(0))
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, RepoError> {
        self.db
            .purge_in_batches(
                "DELETE FROM sessions WHERE id = ANY (ARRAY (SELECT id FROM sessions \
                 WHERE expires_at < $1 OR revoked_at < $1 LIMIT $2))",
                before,
            )
            .await
    }
}
