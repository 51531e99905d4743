use async_trait::async_trait;
use sqlx::SqlitePool;
use time::OffsetDateTime;
use user_core::domain::{NewSession, Rotation, Session, SessionId, TokenHash, User, UserId};
use user_core::error::RepoError;
use user_core::ports::SessionStore;

use crate::map_db_err;
use crate::rows::{SessionRow, SessionUserRow, session_columns, session_user_columns, to_db};

/// [`SessionStore`] on SQLite.
#[derive(Debug, Clone)]
pub struct SqliteSessionStore {
    pool: SqlitePool,
}

impl SqliteSessionStore {
    pub(crate) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

impl SqliteSessionStore {
    /// Runs `sql`, an update of one session that binds a time and then the id; `NotFound`
    /// when there is no such session.
    async fn stamp(
        &self,
        sql: &'static str,
        id: SessionId,
        now: OffsetDateTime,
    ) -> Result<(), RepoError> {
        let done = sqlx::query(sql)
            .bind(to_db(now))
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(map_db_err)?;
        if done.rows_affected() == 0 {
            return Err(RepoError::NotFound);
        }
        Ok(())
    }
}

fn to_session(row: Option<SessionRow>) -> Result<Session, RepoError> {
    row.ok_or(RepoError::NotFound)?.try_into()
}

#[async_trait]
impl SessionStore for SqliteSessionStore {
    async fn create(&self, new: &NewSession) -> Result<(), RepoError> {
        let s = &new.session;
        let mut tx = self.pool.begin().await.map_err(map_db_err)?;
        let inserted = sqlx::query(
            "INSERT INTO sessions (id, user_id, kind, user_agent, ip, created_at, last_used_at, \
             expires_at, revoked_at) \
             SELECT ?, id, ?, ?, ?, ?, ?, ?, ? FROM users WHERE id = ?",
        )
        .bind(s.id.to_string())
        .bind(s.kind.as_str())
        .bind(s.client.user_agent.as_deref())
        .bind(s.client.ip.as_deref())
        .bind(to_db(s.created_at))
        .bind(to_db(s.last_used_at))
        .bind(to_db(s.expires_at))
        .bind(s.revoked_at.map(to_db))
        .bind(s.user_id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_db_err)?;
        if inserted.rows_affected() == 0 {
            return Err(RepoError::NotFound);
        }
        sqlx::query("INSERT INTO session_secrets (hash, session_id) VALUES (?, ?)")
            .bind(new.secret_hash.as_bytes().as_slice())
            .bind(s.id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_db_err)?;
        tx.commit().await.map_err(map_db_err)
    }

    async fn get(&self, id: SessionId) -> Result<Session, RepoError> {
        let q = concat!("SELECT ", session_columns!(), " FROM sessions WHERE id = ?");
        let row = sqlx::query_as::<_, SessionRow>(q)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_db_err)?;
        to_session(row)
    }

    async fn find_by_cookie(&self, hash: &TokenHash) -> Result<Session, RepoError> {
        let q = concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE kind = 'browser' \
             AND id = (SELECT session_id FROM session_secrets WHERE hash = ?)"
        );
        let row = sqlx::query_as::<_, SessionRow>(q)
            .bind(hash.as_bytes().as_slice())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_db_err)?;
        to_session(row)
    }

    async fn get_with_user(&self, id: SessionId) -> Result<(Session, User), RepoError> {
        let q = concat!(
            "SELECT ",
            session_user_columns!(),
            " FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?"
        );
        sqlx::query_as::<_, SessionUserRow>(q)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_db_err)?
            .ok_or(RepoError::NotFound)?
            .try_into()
    }

    async fn find_by_cookie_with_user(
        &self,
        hash: &TokenHash,
    ) -> Result<(Session, User), RepoError> {
        let q = concat!(
            "SELECT ",
            session_user_columns!(),
            " FROM session_secrets t JOIN sessions s ON s.id = t.session_id \
             JOIN users u ON u.id = s.user_id WHERE t.hash = ? AND s.kind = 'browser'"
        );
        sqlx::query_as::<_, SessionUserRow>(q)
            .bind(hash.as_bytes().as_slice())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_db_err)?
            .ok_or(RepoError::NotFound)?
            .try_into()
    }

    async fn rotate_refresh_token(
        &self,
        presented: &TokenHash,
        replacement: &TokenHash,
        now: OffsetDateTime,
        idle_since: OffsetDateTime,
    ) -> Result<Rotation, RepoError> {
        // IMMEDIATE takes the write lock first, so concurrent rotations run one after the other
        // and the second sees the token spent.
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_db_err)?;
        let found: Option<(String, Option<i64>)> = sqlx::query_as(
            "SELECT t.session_id, t.spent_at FROM session_secrets t \
             JOIN sessions s ON s.id = t.session_id \
             WHERE t.hash = ? AND s.kind = 'token'",
        )
        .bind(presented.as_bytes().as_slice())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_db_err)?;
        let Some((session_id, spent_at)) = found else {
            return Err(RepoError::NotFound);
        };
        let id: SessionId = session_id
            .parse()
            .map_err(|e| RepoError::unavailable(format!("corrupt sessions row: {e}")))?;

        if spent_at.is_some() {
            sqlx::query("UPDATE sessions SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?")
                .bind(to_db(now))
                .bind(&session_id)
                .execute(&mut *tx)
                .await
                .map_err(map_db_err)?;
            tx.commit().await.map_err(map_db_err)?;
            return Ok(Rotation::Reused(id));
        }

        let q = concat!(
            "UPDATE sessions SET last_used_at = ?1 \
             WHERE id = ?2 AND revoked_at IS NULL AND expires_at > ?1 AND last_used_at > ?3 \
             RETURNING ",
            session_columns!()
        );
        let touched = sqlx::query_as::<_, SessionRow>(q)
            .bind(to_db(now))
            .bind(&session_id)
            .bind(to_db(idle_since))
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_db_err)?;
        let Some(row) = touched else {
            return Ok(Rotation::Inactive(id));
        };
        sqlx::query("UPDATE session_secrets SET spent_at = ? WHERE hash = ?")
            .bind(to_db(now))
            .bind(presented.as_bytes().as_slice())
            .execute(&mut *tx)
            .await
            .map_err(map_db_err)?;
        sqlx::query("INSERT INTO session_secrets (hash, session_id) VALUES (?, ?)")
            .bind(replacement.as_bytes().as_slice())
            .bind(&session_id)
            .execute(&mut *tx)
            .await
            .map_err(map_db_err)?;
        tx.commit().await.map_err(map_db_err)?;
        Ok(Rotation::Rotated(row.try_into()?))
    }

    async fn touch(&self, id: SessionId, now: OffsetDateTime) -> Result<(), RepoError> {
        self.stamp(
            "UPDATE sessions SET last_used_at = MAX(last_used_at, ?) WHERE id = ?",
            id,
            now,
        )
        .await
    }

    async fn revoke(&self, id: SessionId, now: OffsetDateTime) -> Result<(), RepoError> {
        self.stamp(
            "UPDATE sessions SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?",
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
        sqlx::query(
            "UPDATE sessions SET revoked_at = ?1 \
             WHERE user_id = ?2 AND (?3 IS NULL OR id <> ?3) \
               AND revoked_at IS NULL AND expires_at > ?1",
        )
        .bind(to_db(now))
        .bind(user.to_string())
        .bind(keep.map(|k| k.to_string()))
        .execute(&self.pool)
        .await
        .map(|done| done.rows_affected())
        .map_err(map_db_err)
    }

    async fn list_active(
        &self,
        user: UserId,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, RepoError> {
        let q = concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE user_id = ?1 AND revoked_at IS NULL AND expires_at > ?2 \
             ORDER BY created_at DESC, id DESC"
        );
        sqlx::query_as::<_, SessionRow>(q)
            .bind(user.to_string())
            .bind(to_db(now))
            .fetch_all(&self.pool)
            .await
            .map_err(map_db_err)?
            .into_iter()
            .map(Session::try_from)
            .collect()
    }

    async fn count_active(&self, now: OffsetDateTime) -> Result<u64, RepoError> {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL AND expires_at > ?",
        )
        .bind(to_db(now))
        .fetch_one(&self.pool)
        .await
        .map(|n| u64::try_from(n).unwrap_or(0))
        .map_err(map_db_err)
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, RepoError> {
        sqlx::query("DELETE FROM sessions WHERE expires_at < ?1 OR revoked_at < ?1")
            .bind(to_db(before))
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(map_db_err)
    }
}
