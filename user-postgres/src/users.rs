use async_trait::async_trait;
use time::OffsetDateTime;
use user_core::domain::{
    Email, NewUser, PasswordHash, ProfileChanges, Role, User, UserId, UserPage, UserQuery,
    UserStatus, Username,
};
use user_core::error::RepoError;
use user_core::ports::{Identifier, Inserted, UserRepository};
use uuid::Uuid;

use crate::retry::Db;
use crate::rows::{CredentialsRow, UserRow, user_columns};
use crate::search::{self, Thresholds};

/// [`UserRepository`] on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PostgresUserRepository {
    db: Db,
}

impl PostgresUserRepository {
    pub(crate) fn new(db: Db) -> Self {
        Self { db }
    }

    /// Whether a user with this id exists: tells `NotFound` from a refused guarded change.
    async fn exists(&self, id: UserId) -> Result<bool, RepoError> {
        let pool = &self.db.pool;
        self.db
            .run(|| async move {
                sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)")
                    .bind(id.as_uuid())
                    .fetch_one(pool)
                    .await
            })
            .await
    }

    /// The error for a guarded statement that touched no row.
    async fn refused(&self, id: UserId) -> RepoError {
        match self.exists(id).await {
            Ok(true) => RepoError::LastActiveAdmin,
            Ok(false) => RepoError::NotFound,
            Err(e) => e,
        }
    }

    /// Runs an `UPDATE ... RETURNING` that sets `$1` and `$2 = now` on row `$3` unless the
    /// last-admin guard refuses it.
    async fn guarded_update(
        &self,
        query: &'static str,
        value: &str,
        id: UserId,
        now: OffsetDateTime,
    ) -> Result<User, RepoError> {
        let pool = &self.db.pool;
        let row = self
            .db
            .run(|| async move {
                sqlx::query_as::<_, UserRow>(query)
                    .bind(value)
                    .bind(now)
                    .bind(id.as_uuid())
                    .fetch_optional(pool)
                    .await
            })
            .await?;
        match row {
            Some(row) => row.try_into(),
            None => Err(self.refused(id).await),
        }
    }

    /// The user `query` finds by the text `key`.
    async fn fetch_one(&self, query: &'static str, key: &str) -> Result<User, RepoError> {
        let pool = &self.db.pool;
        self.db
            .run(|| async move {
                sqlx::query_as::<_, UserRow>(query)
                    .bind(key)
                    .fetch_optional(pool)
                    .await
            })
            .await?
            .ok_or(RepoError::NotFound)?
            .try_into()
    }
}

/// The columns of a batch for `insert_many`, one array each, for `UNNEST`.
#[derive(Default)]
struct Columns {
    ids: Vec<Uuid>,
    usernames: Vec<String>,
    emails: Vec<String>,
    display_names: Vec<Option<String>>,
    hashes: Vec<String>,
    roles: Vec<String>,
    statuses: Vec<String>,
    verified: Vec<Option<OffsetDateTime>>,
    created: Vec<OffsetDateTime>,
    updated: Vec<OffsetDateTime>,
}

impl Columns {
    fn of(batch: &[NewUser]) -> Self {
        let mut c = Self::default();
        for new in batch {
            let u = &new.user;
            c.ids.push(u.id.as_uuid());
            c.usernames.push(u.username.as_str().to_owned());
            c.emails.push(u.email.as_str().to_owned());
            c.display_names
                .push(u.display_name.as_ref().map(|d| d.as_str().to_owned()));
            c.hashes.push(new.password_hash.as_str().to_owned());
            c.roles.push(u.role.as_str().to_owned());
            c.statuses.push(u.status.as_str().to_owned());
            c.verified.push(u.email_verified_at);
            c.created.push(u.created_at);
            c.updated.push(u.updated_at);
        }
        c
    }
}

/// The values of `column` in the rows not `written`.
fn skipped<T: Clone>(column: &[T], written: &[bool]) -> Vec<T> {
    column
        .iter()
        .zip(written)
        .filter(|(_, w)| !**w)
        .map(|(v, _)| v.clone())
        .collect()
}

/// Writes `batch` in one transaction: one `INSERT ... SELECT FROM UNNEST(...) ON CONFLICT
/// DO NOTHING` (`WITH ORDINALITY` keeps the batch's order, so of two rows that collide the
/// first is written), then, only when rows were skipped, one read of the users holding
/// their ids, usernames or emails, in the same transaction.
async fn insert_batch(
    pool: &sqlx::PgPool,
    batch: &[NewUser],
    c: &Columns,
) -> Result<Vec<Inserted>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let returned: Vec<(Uuid, String, String)> = sqlx::query_as(
        "INSERT INTO users (id, username, email, display_name, password_hash, role, status, \
         email_verified_at, created_at, updated_at) \
         SELECT id, username, email, display_name, password_hash, role, status, \
                email_verified_at, created_at, updated_at \
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
                     $7::text[], $8::timestamptz[], $9::timestamptz[], $10::timestamptz[]) \
              WITH ORDINALITY AS b (id, username, email, display_name, password_hash, role, \
                                    status, email_verified_at, created_at, updated_at, n) \
         ORDER BY n \
         ON CONFLICT DO NOTHING RETURNING id, username, email",
    )
    .bind(&c.ids)
    .bind(&c.usernames)
    .bind(&c.emails)
    .bind(&c.display_names)
    .bind(&c.hashes)
    .bind(&c.roles)
    .bind(&c.statuses)
    .bind(&c.verified)
    .bind(&c.created)
    .bind(&c.updated)
    .fetch_all(&mut *tx)
    .await?;
    let written = Inserted::written(batch, returned);
    let outcomes = if written.iter().all(|w| *w) {
        vec![Inserted::Inserted; batch.len()]
    } else {
        let holders: Vec<(Uuid, String, String)> = sqlx::query_as(
            "SELECT id, username, email FROM users \
             WHERE id = ANY ($1) OR username = ANY ($2) OR email = ANY ($3)",
        )
        .bind(skipped(&c.ids, &written))
        .bind(skipped(&c.usernames, &written))
        .bind(skipped(&c.emails, &written))
        .fetch_all(&mut *tx)
        .await?;
        Inserted::of_batch(batch, &written, &holders)
    };
    tx.commit().await?;
    Ok(outcomes)
}

/// A statement's condition that keeps at least one active admin: the row may change unless
/// it is an active admin and the only one.
///
/// Under READ COMMITTED a plain count would see the snapshot taken when the statement began:
/// two concurrent demotions of two different admins would each count two and both proceed.
/// So the subquery locks active admins, in id order (the same order for every caller, so
/// two guards never deadlock), before counting them; two are enough to decide. A second
/// guard waits for the first one's transaction; when it ends, PostgreSQL re-reads each
/// locked row, drops those that are no longer active admins and locks the next ones, and
/// the count is the committed one. At SERIALIZABLE the wait ends in a serialization failure
/// instead, and the statement is retried.
///
/// `FOR NO KEY UPDATE` conflicts with itself and with `FOR UPDATE`, but not with the
/// `FOR KEY SHARE` locks that foreign-key checks take: an admin signing in (a session
/// insert that refers to their row) does not wait for a demotion.
macro_rules! keeps_an_admin {
    () => {
        "NOT (role = 'admin' AND status = 'active' AND \
         (SELECT COUNT(*) FROM (SELECT 1 FROM users WHERE role = 'admin' AND status = 'active' \
          ORDER BY id FOR NO KEY UPDATE LIMIT 2) AS active_admins) <= 1)"
    };
}

#[async_trait]
impl UserRepository for PostgresUserRepository {
    async fn insert(&self, new: &NewUser) -> Result<(), RepoError> {
        let pool = &self.db.pool;
        let u = &new.user;
        self.db
            .run(|| async move {
                sqlx::query(
                    "INSERT INTO users (id, username, email, display_name, password_hash, role, \
                     status, email_verified_at, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(u.id.as_uuid())
                .bind(u.username.as_str())
                .bind(u.email.as_str())
                .bind(u.display_name.as_ref().map(|d| d.as_str()))
                .bind(new.password_hash.as_str())
                .bind(u.role.as_str())
                .bind(u.status.as_str())
                .bind(u.email_verified_at)
                .bind(u.created_at)
                .bind(u.updated_at)
                .execute(pool)
                .await
            })
            .await
            .map(drop)
    }

    async fn insert_many(&self, batch: &[NewUser]) -> Result<Vec<Inserted>, RepoError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let pool = &self.db.pool;
        let columns = &Columns::of(batch);
        self.db.run(|| insert_batch(pool, batch, columns)).await
    }

    async fn export_page(
        &self,
        after: Option<Username>,
        limit: u32,
    ) -> Result<Vec<(User, PasswordHash)>, RepoError> {
        // A range of `users_username_key`: from the start, or after the cursor (two
        // statements: a condition that is true without a cursor would keep a generic plan
        // from seeking to it).
        let first = concat!(
            "SELECT ",
            user_columns!(),
            ", password_hash FROM users ORDER BY username LIMIT $1"
        );
        let next = concat!(
            "SELECT ",
            user_columns!(),
            ", password_hash FROM users WHERE username > $2 ORDER BY username LIMIT $1"
        );
        let pool = &self.db.pool;
        let after = after.as_ref().map(Username::as_str);
        let rows = self
            .db
            .run(|| async move {
                let q =
                    sqlx::query_as::<_, CredentialsRow>(if after.is_some() { next } else { first })
                        .bind(i64::from(limit));
                match after {
                    Some(after) => q.bind(after),
                    None => q,
                }
                .fetch_all(pool)
                .await
            })
            .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn get(&self, id: UserId) -> Result<User, RepoError> {
        let pool = &self.db.pool;
        let q = concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1");
        self.db
            .run(|| async move {
                sqlx::query_as::<_, UserRow>(q)
                    .bind(id.as_uuid())
                    .fetch_optional(pool)
                    .await
            })
            .await?
            .ok_or(RepoError::NotFound)?
            .try_into()
    }

    async fn get_by_username(&self, username: &Username) -> Result<User, RepoError> {
        let q = concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE username = $1"
        );
        self.fetch_one(q, username.as_str()).await
    }

    async fn get_by_email(&self, email: &Email) -> Result<User, RepoError> {
        let q = concat!("SELECT ", user_columns!(), " FROM users WHERE email = $1");
        self.fetch_one(q, email.as_str()).await
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
                    ", password_hash FROM users WHERE username = $1"
                ),
                u.as_str(),
            ),
            Identifier::Email(e) => (
                concat!(
                    "SELECT ",
                    user_columns!(),
                    ", password_hash FROM users WHERE email = $1"
                ),
                e.as_str(),
            ),
        };
        let pool = &self.db.pool;
        self.db
            .run(|| async move {
                sqlx::query_as::<_, CredentialsRow>(query)
                    .bind(key)
                    .fetch_optional(pool)
                    .await
            })
            .await?
            .ok_or(RepoError::NotFound)?
            .try_into()
    }

    async fn password_hash(&self, id: UserId) -> Result<PasswordHash, RepoError> {
        let pool = &self.db.pool;
        self.db
            .run(|| async move {
                sqlx::query_scalar::<_, String>("SELECT password_hash FROM users WHERE id = $1")
                    .bind(id.as_uuid())
                    .fetch_optional(pool)
                    .await
            })
            .await?
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
               username = COALESCE($2, username), \
               email_verified_at = CASE WHEN $3 IS NOT NULL AND $3 <> email \
                                   THEN NULL ELSE email_verified_at END, \
               email = COALESCE($3, email), \
               display_name = CASE WHEN $4 THEN $5 ELSE display_name END, \
               updated_at = $6 \
             WHERE id = $1 RETURNING ",
            user_columns!()
        );
        let display_name = changes.display_name.as_ref();
        let pool = &self.db.pool;
        self.db
            .run(|| async move {
                sqlx::query_as::<_, UserRow>(q)
                    .bind(id.as_uuid())
                    .bind(changes.username.as_ref().map(Username::as_str))
                    .bind(changes.email.as_ref().map(Email::as_str))
                    .bind(display_name.is_some())
                    .bind(display_name.and_then(|d| d.as_ref()).map(|d| d.as_str()))
                    .bind(now)
                    .fetch_optional(pool)
                    .await
            })
            .await?
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
            "UPDATE users SET email_verified_at = $1, updated_at = $1 \
             WHERE id = $2 AND email = $3 RETURNING ",
            user_columns!()
        );
        let pool = &self.db.pool;
        self.db
            .run(|| async move {
                sqlx::query_as::<_, UserRow>(q)
                    .bind(now)
                    .bind(id.as_uuid())
                    .bind(email.as_str())
                    .fetch_optional(pool)
                    .await
            })
            .await?
            .ok_or(RepoError::NotFound)?
            .try_into()
    }

    async fn update_password_hash(
        &self,
        id: UserId,
        hash: &PasswordHash,
        now: OffsetDateTime,
    ) -> Result<(), RepoError> {
        let pool = &self.db.pool;
        let done = self
            .db
            .run(|| async move {
                sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
                    .bind(hash.as_str())
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

    async fn set_role(
        &self,
        id: UserId,
        role: Role,
        now: OffsetDateTime,
    ) -> Result<User, RepoError> {
        let q = concat!(
            "UPDATE users SET role = $1, updated_at = $2 WHERE id = $3 AND ($1 = 'admin' OR ",
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
            "UPDATE users SET status = $1, updated_at = $2 WHERE id = $3 AND ($1 = 'active' OR ",
            keeps_an_admin!(),
            ") RETURNING ",
            user_columns!()
        );
        self.guarded_update(q, status.as_str(), id, now).await
    }

    async fn delete(&self, id: UserId) -> Result<(), RepoError> {
        // Sessions, their secrets and devices go with the user (ON DELETE CASCADE).
        let q = concat!("DELETE FROM users WHERE id = $1 AND ", keeps_an_admin!());
        let pool = &self.db.pool;
        let done = self
            .db
            .run(|| async move { sqlx::query(q).bind(id.as_uuid()).execute(pool).await })
            .await?;
        if done.rows_affected() == 0 {
            return Err(self.refused(id).await);
        }
        Ok(())
    }

    async fn list(&self, query: &UserQuery) -> Result<UserPage, RepoError> {
        let (page, _plan) = search::list(&self.db, query, Thresholds::DEFAULT).await?;
        Ok(page)
    }

    async fn count_active_admins(&self) -> Result<u64, RepoError> {
        let pool = &self.db.pool;
        self.db
            .run(|| async move {
                sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM users WHERE role = 'admin' AND status = 'active'",
                )
                .fetch_one(pool)
                .await
            })
            .await
            .map(|n| u64::try_from(n).unwrap_or(0))
    }
}
