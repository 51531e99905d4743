use async_trait::async_trait;
use sqlx::{SqliteExecutor, SqlitePool};
use time::OffsetDateTime;
use user_core::domain::Email;
use user_core::error::RepoError;
use user_core::ports::{ClaimedMail, DeadLetter, Mail, MailOutbox};
use uuid::Uuid;

use crate::map_db_err;
use crate::rows::{corrupt, from_db, to_db, uuid};

/// [`MailOutbox`] on SQLite: the `mail_outbox` and `mail_dead_letters` tables. SQLite runs
/// one writer at a time, so a claim (one `UPDATE ... RETURNING`) never races another.
#[derive(Debug, Clone)]
pub struct SqliteMailOutbox {
    pool: SqlitePool,
}

impl SqliteMailOutbox {
    pub(crate) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

/// Queues `mail`, due at `now`, unless its id is queued already; on `executor`, so that
/// [`crate::SqliteOneTimeTokenStore::issue`] queues it in its own transaction.
pub(crate) async fn enqueue(
    executor: impl SqliteExecutor<'_>,
    mail: &Mail,
    now: OffsetDateTime,
) -> Result<(), RepoError> {
    sqlx::query(
        "INSERT INTO mail_outbox \
         (id, recipient, subject, body_text, body_html, enqueued_at, next_attempt_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
    )
    .bind(mail.id.to_string())
    .bind(mail.to.as_ref())
    .bind(&mail.subject)
    .bind(&mail.text)
    .bind(mail.html.as_deref())
    .bind(to_db(now))
    .bind(to_db(now))
    .execute(executor)
    .await
    .map(drop)
    .map_err(map_db_err)
}

/// A claim id as stored: 32 lowercase hex digits, as `hex(randomblob(16))` makes them.
fn claim_key(claim: Uuid) -> String {
    claim.simple().to_string()
}

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    id: String,
    recipient: String,
    subject: String,
    body_text: String,
    body_html: Option<String>,
    attempts: i64,
    claim_id: String,
    enqueued_at: i64,
}

impl TryFrom<ClaimedRow> for ClaimedMail {
    type Error = RepoError;

    fn try_from(row: ClaimedRow) -> Result<Self, RepoError> {
        let table = "mail_outbox";
        Ok(Self {
            mail: Mail {
                id: uuid(table, &row.id)?,
                to: Email::parse(&row.recipient).map_err(|e| corrupt(table, e))?,
                subject: row.subject,
                text: row.body_text,
                html: row.body_html,
            },
            attempts: u32::try_from(row.attempts).map_err(|e| corrupt(table, e))?,
            claim: uuid(table, &row.claim_id)?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct DeadLetterRow {
    id: String,
    recipient: String,
    attempts: i64,
    error: String,
    failed_at: i64,
}

impl TryFrom<DeadLetterRow> for DeadLetter {
    type Error = RepoError;

    fn try_from(row: DeadLetterRow) -> Result<Self, RepoError> {
        let table = "mail_dead_letters";
        Ok(Self {
            id: uuid(table, &row.id)?,
            to: Email::parse(&row.recipient).map_err(|e| corrupt(table, e))?,
            attempts: u32::try_from(row.attempts).map_err(|e| corrupt(table, e))?,
            error: row.error,
            failed_at: from_db(table, row.failed_at)?,
        })
    }
}

/// `NotFound` when a settlement touched no row: the claim no longer holds the mail.
fn one_row(done: sqlx::sqlite::SqliteQueryResult) -> Result<(), RepoError> {
    if done.rows_affected() == 0 {
        return Err(RepoError::NotFound);
    }
    Ok(())
}

#[async_trait]
impl MailOutbox for SqliteMailOutbox {
    async fn enqueue(&self, mail: &Mail, now: OffsetDateTime) -> Result<(), RepoError> {
        enqueue(&self.pool, mail, now).await
    }

    async fn claim(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<ClaimedMail>, RepoError> {
        // `randomblob` runs once per row: each mail gets its own claim id.
        let mut rows: Vec<ClaimedRow> = sqlx::query_as(
            "UPDATE mail_outbox \
             SET claim_id = lower(hex(randomblob(16))), claimed_until = ?1 \
             WHERE id IN ( \
                 SELECT id FROM mail_outbox \
                 WHERE next_attempt_at <= ?2 AND (claim_id IS NULL OR claimed_until <= ?2) \
                 ORDER BY enqueued_at, id LIMIT ?3) \
             RETURNING id, recipient, subject, body_text, body_html, attempts, claim_id, \
                 enqueued_at",
        )
        .bind(to_db(lease_until))
        .bind(to_db(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_db_err)?;
        // RETURNING gives no order.
        rows.sort_by(|a, b| (a.enqueued_at, &a.id).cmp(&(b.enqueued_at, &b.id)));
        rows.into_iter().map(ClaimedMail::try_from).collect()
    }

    async fn delivered(&self, id: Uuid, claim: Uuid) -> Result<(), RepoError> {
        let done = sqlx::query("DELETE FROM mail_outbox WHERE id = ? AND claim_id = ?")
            .bind(id.to_string())
            .bind(claim_key(claim))
            .execute(&self.pool)
            .await
            .map_err(map_db_err)?;
        one_row(done)
    }

    async fn retry_later(
        &self,
        id: Uuid,
        claim: Uuid,
        retry_at: OffsetDateTime,
        error: &str,
    ) -> Result<(), RepoError> {
        let done = sqlx::query(
            "UPDATE mail_outbox SET attempts = attempts + 1, claim_id = NULL, \
             claimed_until = NULL, next_attempt_at = ?, last_error = ? \
             WHERE id = ? AND claim_id = ?",
        )
        .bind(to_db(retry_at))
        .bind(error)
        .bind(id.to_string())
        .bind(claim_key(claim))
        .execute(&self.pool)
        .await
        .map_err(map_db_err)?;
        one_row(done)
    }

    async fn give_up(
        &self,
        id: Uuid,
        claim: Uuid,
        now: OffsetDateTime,
        error: &str,
    ) -> Result<(), RepoError> {
        let mut tx = self.pool.begin().await.map_err(map_db_err)?;
        let done = sqlx::query(
            "INSERT INTO mail_dead_letters (id, recipient, attempts, error, failed_at) \
             SELECT id, recipient, attempts + 1, ?, ? FROM mail_outbox \
             WHERE id = ? AND claim_id = ?",
        )
        .bind(error)
        .bind(to_db(now))
        .bind(id.to_string())
        .bind(claim_key(claim))
        .execute(&mut *tx)
        .await
        .map_err(map_db_err)?;
        one_row(done)?;
        sqlx::query("DELETE FROM mail_outbox WHERE id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_db_err)?;
        tx.commit().await.map_err(map_db_err)
    }

    async fn pending(&self, now: OffsetDateTime) -> Result<u64, RepoError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM mail_outbox \
             WHERE next_attempt_at <= ?1 AND (claim_id IS NULL OR claimed_until <= ?1)",
        )
        .bind(to_db(now))
        .fetch_one(&self.pool)
        .await
        .map_err(map_db_err)?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, RepoError> {
        let rows: Vec<DeadLetterRow> = sqlx::query_as(
            "SELECT id, recipient, attempts, error, failed_at FROM mail_dead_letters \
             ORDER BY failed_at DESC, id DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_db_err)?;
        rows.into_iter().map(DeadLetter::try_from).collect()
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, RepoError> {
        sqlx::query("DELETE FROM mail_dead_letters WHERE failed_at < ?")
            .bind(to_db(before))
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(map_db_err)
    }
}
