use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};
use time::OffsetDateTime;
use user_core::domain::{
    DisplayName, Email, NewUser, PasswordHash, ProfileChanges, Role, User, UserId, UserPage,
    UserQuery, UserStatus, Username,
};
use user_core::error::RepoError;
use user_core::ports::{Identifier, Inserted, UserRepository};
use uuid::Uuid;

use crate::map_db_err;
use crate::rows::{CredentialsRow, UserRow, to_db, user_columns};
use crate::search::{self, Thresholds};

/// [`UserRepository`] on SQLite.
#[derive(Debug, Clone)]
pub struct SqliteUserRepository {
    pool: SqlitePool,
}

impl SqliteUserRepository {
    pub(crate) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// Whether a user with this id exists: tells `NotFound` from a refused guarded change.
    async fn exists(&self, id: UserId) -> Result<bool, RepoError> {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users WHERE id = ?")
            .bind(id.to_string())
            .fetch_one(&self.pool)
            .await
            .map(|n| n > 0)
            .map_err(map_db_err)
    }

    /// The error for a guarded statement that touched no row.
    async fn refused(&self, id: UserId) -> RepoError {
        match self.exists(id).await {
            Ok(true) => RepoError::LastActiveAdmin,
            Ok(false) => RepoError::NotFound,
            Err(e) => e,
        }
    }

    /// Runs an `UPDATE ... RETURNING` that sets `?1` and `?2 = now` on row `?3` unless the
    /// last-admin guard refuses it.
    async fn guarded_update(
        &self,
        query: &'static str,
        value: &str,
        id: UserId,
        now: OffsetDateTime,
    ) -> Result<User, RepoError> {
        let row = sqlx::query_as::<_, UserRow>(query)
            .bind(value)
            .bind(to_db(now))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_db_err)?;
        match row {
            Some(row) => row.try_into(),
            None => Err(self.refused(id).await),
        }
    }

    async fn fetch_one(&self, query: &'static str, key: String) -> Result<User, RepoError> {
        sqlx::query_as::<_, UserRow>(query)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_db_err)?
            .ok_or(RepoError::NotFound)?
            .try_into()
    }
}

/// A statement's condition that keeps at least one active admin: the row may change unless
/// it is an active admin and the only one.
macro_rules! keeps_an_admin {
    () => {
        "NOT (role = 'admin' AND status = 'active' \
         AND (SELECT COUNT(*) FROM users WHERE role = 'admin' AND status = 'active') <= 1)"
    };
}

/// Rows per `INSERT` statement of `insert_many`: 100 rows of 11 parameters, far below
/// SQLite's limit of 32,766 parameters, and few enough that the statement for a full chunk,
/// prepared once, is reused (sqlx caches it) for every chunk of every batch. One statement
/// per row would cost a round trip to the connection's thread per row.
const INSERT_CHUNK: usize = 100;

/// Writes `chunk` with one `INSERT ... ON CONFLICT DO NOTHING` on `conn` (in the caller's
/// transaction) and says what became of each row. The triggers of migration 0006 keep the
/// search index in step for every row written, and check `display_name_lower`.
async fn insert_chunk(
    conn: &mut SqliteConnection,
    chunk: &[NewUser],
) -> Result<Vec<Inserted>, sqlx::Error> {
    let mut q = QueryBuilder::<Sqlite>::new(
        "INSERT INTO users (id, username, email, display_name, display_name_lower, \
         password_hash, role, status, email_verified_at, created_at, updated_at) ",
    );
    q.push_values(chunk, |mut row, new| {
        let u = &new.user;
        row.push_bind(u.id.to_string())
            .push_bind(u.username.as_str().to_owned())
            .push_bind(u.email.as_str().to_owned())
            .push_bind(u.display_name.as_ref().map(|d| d.as_str().to_owned()))
            .push_bind(u.display_name.as_ref().map(lowercase))
            .push_bind(new.password_hash.as_str().to_owned())
            .push_bind(u.role.as_str())
            .push_bind(u.status.as_str())
            .push_bind(u.email_verified_at.map(to_db))
            .push_bind(to_db(u.created_at))
            .push_bind(to_db(u.updated_at));
    });
    // Without a conflict target, DO NOTHING skips a row that collides on any unique index
    // (id, username, email), a row of the same statement included.
    q.push(" ON CONFLICT DO NOTHING RETURNING id, username, email");
    let returned: Vec<(String, String, String)> = q.build_query_as().fetch_all(&mut *conn).await?;
    let returned = returned
        .into_iter()
        .filter_map(|(id, name, mail)| Some((Uuid::parse_str(&id).ok()?, name, mail)));
    let written = Inserted::written(chunk, returned);
    if written.iter().all(|w| *w) {
        return Ok(vec![Inserted::Inserted; chunk.len()]);
    }
    let skipped = || {
        chunk
            .iter()
            .zip(&written)
            .filter(|(_, w)| !**w)
            .map(|(n, _)| &n.user)
    };
    let mut q = QueryBuilder::<Sqlite>::new("SELECT id, username, email FROM users WHERE id IN (");
    let mut list = q.separated(", ");
    for u in skipped() {
        list.push_bind(u.id.to_string());
    }
    q.push(") OR username IN (");
    let mut list = q.separated(", ");
    for u in skipped() {
        list.push_bind(u.username.as_str().to_owned());
    }
    q.push(") OR email IN (");
    let mut list = q.separated(", ");
    for u in skipped() {
        list.push_bind(u.email.as_str().to_owned());
    }
    q.push(")");
    let holders: Vec<(String, String, String)> = q.build_query_as().fetch_all(&mut *conn).await?;
    let holders: Vec<(Uuid, String, String)> = holders
        .into_iter()
        .filter_map(|(id, name, mail)| Some((Uuid::parse_str(&id).ok()?, name, mail)))
        .collect();
    Ok(Inserted::of_batch(chunk, &written, &holders))
}

/// The lowercase display name the search compares with (see migration 0006): lowercased
/// here, as the service lowercases a search, because SQLite's `lower()` folds ASCII only.
fn lowercase(name: &DisplayName) -> String {
    name.as_str().to_lowercase()
}

#[async_trait]
impl UserRepository for SqliteUserRepository {
    async fn insert(&self, new: &NewUser) -> Result<(), RepoError> {
        let u = &new.user;
        sqlx::query(
            "INSERT INTO users (id, username, email, display_name, display_name_lower, \
             password_hash, role, status, email_verified_at, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(u.id.to_string())
        .bind(u.username.as_str())
        .bind(u.email.as_str())
        .bind(u.display_name.as_ref().map(|d| d.as_str()))
        .bind(u.display_name.as_ref().map(lowercase))
        .bind(new.password_hash.as_str())
        .bind(u.role.as_str())
        .bind(u.status.as_str())
        .bind(u.email_verified_at.map(to_db))
        .bind(to_db(u.created_at))
        .bind(to_db(u.updated_at))
        .execute(&self.pool)
        .await
        .map(drop)
        .map_err(map_db_err)
    }

    async fn insert_many(&self, batch: &[NewUser]) -> Result<Vec<Inserted>, RepoError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        // The first statement writes, so the transaction takes the write lock there (waiting
        // out the busy timeout), never upgrading a read snapshot that another writer moved.
        let mut tx = self.pool.begin().await.map_err(map_db_err)?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for chunk in batch.chunks(INSERT_CHUNK) {
            outcomes.extend(insert_chunk(&mut tx, chunk).await.map_err(map_db_err)?);
        }
        tx.commit().await.map_err(map_db_err)?;
        Ok(outcomes)
    }

    async fn export_page(
        &self,
        after: Option<Username>,
        limit: u32,
    ) -> Result<Vec<(User, PasswordHash)>, RepoError> {
        // A range of `users_username_key`; `''` sorts before every username.
        let q = concat!(
            "SELECT ",
            user_columns!(),
            ", password_hash FROM users WHERE username > ? ORDER BY username LIMIT ?"
        );
        let rows = sqlx::query_as::<_, CredentialsRow>(q)
            .bind(after.as_ref().map_or("", Username::as_str))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(map_db_err)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn get(&self, id: UserId) -> Result<User, RepoError> {
        let q = concat!("SELECT ", user_columns!(), " FROM users WHERE id = ?");
        self.fetch_one(q, id.to_string()).await
    }

    async fn get_by_username(&self, username: &Username) -> Result<User, RepoError> {
        let q = concat!("SELECT ", user_columns!(), " FROM users WHERE username = ?");
        self.fetch_one(q, username.to_string()).await
    }

    async fn get_by_email(&self, email: &Email) -> Result<User, RepoError> {
        let q = concat!("SELECT ", user_columns!(), " FROM users WHERE email = ?");
        self.fetch_one(q, email.to_string()).await
    }

    async fn credentials(
        &self,
        identifier: &Identifier,
    ) -> Result<(User, PasswordHash), RepoError> {
        let (query, key) = match identifier {
            Identifier::Username(u) => (
                concat!(
                    "SELECT ",
                    user_columns!(),
                    ", password_hash FROM users WHERE username = ?"
                ),
                u.as_str(),
            ),
            Identifier::Email(e) => (
                concat!(
                    "SELECT ",
                    user_columns!(),
                    ", password_hash FROM users WHERE email = ?"
                ),
                e.as_str(),
            ),
        };
        sqlx::query_as::<_, CredentialsRow>(query)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_db_err)?
            .ok_or(RepoError::NotFound)?
            .try_into()
    }

    async fn password_hash(&self, id: UserId) -> Result<PasswordHash, RepoError> {
        sqlx::query_scalar::<_, String>("SELECT password_hash FROM users WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_db_err)?
            .map(PasswordHash::new)
            .ok_or(RepoError::NotFound)
    }

    async fn update_profile(
        &self,
        id: UserId,
        changes: &ProfileChanges,
        now: OffsetDateTime,
    ) -> Result<User, RepoError> {
        // Every right-hand side sees the old row, so the email comparison uses the old email.
        let q = concat!(
            "UPDATE users SET \
               username = COALESCE(?2, username), \
               email_verified_at = CASE WHEN ?3 IS NOT NULL AND ?3 <> email \
                                   THEN NULL ELSE email_verified_at END, \
               email = COALESCE(?3, email), \
               display_name = CASE WHEN ?4 THEN ?5 ELSE display_name END, \
               display_name_lower = CASE WHEN ?4 THEN ?7 ELSE display_name_lower END, \
               updated_at = ?6 \
             WHERE id = ?1 RETURNING ",
            user_columns!()
        );
        let display_name = changes.display_name.as_ref();
        sqlx::query_as::<_, UserRow>(q)
            .bind(id.to_string())
            .bind(changes.username.as_ref().map(Username::as_str))
            .bind(changes.email.as_ref().map(Email::as_str))
            .bind(display_name.is_some())
            .bind(display_name.and_then(|d| d.as_ref()).map(|d| d.as_str()))
            .bind(to_db(now))
            .bind(display_name.and_then(|d| d.as_ref()).map(lowercase))
            .fetch_optional(&self.pool)
            .await
            .map_err(map_db_err)?
            .ok_or(RepoError::NotFound)?
            .try_into()
    }

    async fn mark_email_verified(
        &self,
        id: UserId,
        email: &Email,
        now: OffsetDateTime,
    ) -> Result<User, RepoError> {
        let q = concat!(
            "UPDATE users SET email_verified_at = ?1, updated_at = ?1 \
             WHERE id = ?2 AND email = ?3 RETURNING ",
            user_columns!()
        );
        sqlx::query_as::<_, UserRow>(q)
            .bind(to_db(now))
            .bind(id.to_string())
            .bind(email.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_db_err)?
            .ok_or(RepoError::NotFound)?
            .try_into()
    }

    async fn update_password_hash(
        &self,
        id: UserId,
        hash: &PasswordHash,
        now: OffsetDateTime,
    ) -> Result<(), RepoError> {
        let done = sqlx::query("UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?")
            .bind(hash.as_str())
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

    async fn set_role(
        &self,
        id: UserId,
        role: Role,
        now: OffsetDateTime,
    ) -> Result<User, RepoError> {
        let q = concat!(
            "UPDATE users SET role = ?1, updated_at = ?2 WHERE id = ?3 AND (?1 = 'admin' OR ",
            keeps_an_admin!(),
            ") RETURNING ",
            user_columns!()
        );
        self.guarded_update(q, role.as_str(), id, now).await
    }

    async fn set_status(
        &self,
        id: UserId,
        status: UserStatus,
        now: OffsetDateTime,
    ) -> Result<User, RepoError> {
        let q = concat!(
            "UPDATE users SET status = ?1, updated_at = ?2 WHERE id = ?3 AND (?1 = 'active' OR ",
            keeps_an_admin!(),
            ") RETURNING ",
            user_columns!()
        );
        self.guarded_update(q, status.as_str(), id, now).await
    }

    async fn delete(&self, id: UserId) -> Result<(), RepoError> {
        // Sessions and their secrets go with the user (ON DELETE CASCADE).
        let q = concat!("DELETE FROM users WHERE id = ? AND ", keeps_an_admin!());
        let done = sqlx::query(q)
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(map_db_err)?;
        if done.rows_affected() == 0 {
            return Err(self.refused(id).await);
        }
        Ok(())
    }

    async fn list(&self, query: &UserQuery) -> Result<UserPage, RepoError> {
        let (page, _plan) = search::list(&self.pool, query, Thresholds::DEFAULT).await?;
        Ok(page)
    }

    async fn count_active_admins(&self) -> Result<u64, RepoError> {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM users WHERE role = 'admin' AND status = 'active'",
        )
        .fetch_one(&self.pool)
        .await
        .map(|n| u64::try_from(n).unwrap_or(0))
        .map_err(map_db_err)
    }
}
