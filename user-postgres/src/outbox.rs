use async_trait::async_trait;
use sqlx::PgExecutor;
use time::OffsetDateTime;
use user_core::domain::Email;
use user_core::error::RepoError;
use user_core::ports::{ClaimedMail, DeadLetter, Mail, MailOutbox};
use uuid::Uuid;

use crate::retry::Db;
use crate::rows::{DbTime, corrupt};

/// [`MailOutbox`] on PostgreSQL: the `mail_outbox` and `mail_dead_letters` tables. A claim
/// locks its rows with `FOR UPDATE SKIP LOCKED` in a subquery of one `UPDATE ... RETURNING`,
/// so workers on any number of instances never claim one mail at once.
#[derive(Debug, Clone)]
pub struct PostgresMailOutbox {
    db: Db,
}

impl PostgresMailOutbox {
    pub(crate) fn new(db: Db) -> Self {
        Self { db }
    }
}

/// Queues `mail`, due at `now`, unless its id is queued already; on `executor`, so that
/// [`crate::PostgresOneTimeTokenStore`] queues it in its own transaction.
pub(crate) async fn enqueue(
    executor: impl PgExecutor<'_>,
    mail: &Mail,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO mail_outbox \
         (id, recipient, subject, body_text, body_html, enqueued_at, next_attempt_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (id) DO NOTHING",
    )
    .bind(mail.id)
    .bind(mail.to.as_ref())
    .bind(&mail.subject)
    .bind(&mail.text)
    .bind(mail.html.as_deref())
    .bind(now)
    .execute(executor)
    .await
    .map(drop)
}

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    id: Uuid,
    recipient: String,
    subject: String,
    body_text: String,
    body_html: Option<String>,
    attempts: i64,
    claim_id: Uuid,
    enqueued_at: DbTime,
}

impl TryFrom<ClaimedRow> for ClaimedMail {
    type Error = RepoError;

    fn try_from(row: ClaimedRow) -> Result<Self, RepoError> {
        let table = "mail_outbox";
        Ok(Self {
            mail: Mail {
                id: row.id,
                to: Email::parse(&row.recipient).map_err(|e| corrupt(table, e))?,
                subject: row.subject,
                text: row.body_text,
                html: row.body_html,
            },
            attempts: u32::try_from(row.attempts).map_err(|e| corrupt(table, e))?,
            claim: row.claim_id,
        })
    }
}

#[derive(sqlx::FromRow)]
struct DeadLetterRow {
    id: Uuid,
    recipient: String,
    attempts: i64,
    error: String,
    failed_at: DbTime,
}

impl TryFrom<DeadLetterRow> for DeadLetter {
    type Error = RepoError;

    fn try_from(row: DeadLetterRow) -> Result<Self, RepoError> {
        let table = "mail_dead_letters";
        Ok(Self {
            id: row.id,
            to: Email::parse(&row.recipient).map_err(|e| corrupt(table, e))?,
            attempts: u32::try_from(row.attempts).map_err(|e| corrupt(table, e))?,
            error: row.error,
            failed_at: row.failed_at.0,
        })
    }
}

/// `NotFound` when a settlement touched no row: the claim no longer holds the mail.
fn one_row(done: sqlx::postgres::PgQueryResult) -> Result<(), RepoError> {
    if done.rows_affected() == 0 {
        return Err(RepoError::NotFound);
    }
    Ok(())
}

#[async_trait]
impl MailOutbox for PostgresMailOutbox {
    async fn enqueue(&self, mail: &Mail, now: OffsetDateTime) -> Result<(), RepoError> {
        let pool = &self.db.pool;
        self.db
            .run(|| async move { enqueue(pool, mail, now).await })
            .await
    }

    async fn claim(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<ClaimedMail>, RepoError> {
        let pool = &self.db.pool;
        let mut rows: Vec<ClaimedRow> = self
            .db
            .run(|| async move {
                sqlx::query_as(
                    "UPDATE mail_outbox AS m SET claim_id = gen_random_uuid(), claimed_until = $1 \
                     FROM (SELECT id FROM mail_outbox \
                           WHERE next_attempt_at <= $2 \
                             AND (claim_id IS NULL OR claimed_until <= $2) \
                           ORDER BY enqueued_at, id LIMIT $3 \
                           FOR UPDATE SKIP LOCKED) AS due \
                     WHERE m.id = due.id \
                     RETURNING m.id, m.recipient, m.subject, m.body_text, m.body_html, \
                         m.attempts, m.claim_id, m.enqueued_at",
                )
                .bind(lease_until)
                .bind(now)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
            })
            .await?;
        // RETURNING gives no order.
        rows.sort_by_key(|row| (row.enqueued_at.0, row.id));
        rows.into_iter().map(ClaimedMail::try_from).collect()
    }

    async fn delivered(&self, id: Uuid, claim: Uuid) -> Result<(), RepoError> {
        let pool = &self.db.pool;
        let done = self
            .db
            .run(|| async move {
                sqlx::query("DELETE FROM mail_outbox WHERE id = $1 AND claim_id = $2")
                    .bind(id)
                    .bind(claim)
                    .execute(pool)
                    .await
            })
            .await?;
        one_row(done)
    }

    async fn retry_later(
        &self,
        id: Uuid,
        claim: Uuid,
        retry_at: OffsetDateTime,
        error: &str,
    ) -> Result<(), RepoError> {
        let pool = &self.db.pool;
        let done = self
            .db
            .run(|| async move {
                sqlx::query(
                    "UPDATE mail_outbox SET attempts = attempts + 1, claim_id = NULL, \
                     claimed_until = NULL, next_attempt_at = $1, last_error = $2 \
                     WHERE id = $3 AND claim_id = $4",
                )
                .bind(retry_at)
                .bind(error)
                .bind(id)
                .bind(claim)
                .execute(pool)
                .await
            })
            .await?;
        one_row(done)
    }

    async fn give_up(
        &self,
        id: Uuid,
        claim: Uuid,
        now: OffsetDateTime,
        error: &str,
    ) -> Result<(), RepoError> {
        let pool = &self.db.pool;
        let done = self
            .db
            .run(|| async move {
                sqlx::query(
                    "WITH gone AS ( \
                         DELETE FROM mail_outbox WHERE id = $1 AND claim_id = $2 \
                         RETURNING id, recipient, attempts) \
                     INSERT INTO mail_dead_letters (id, recipient, attempts, error, failed_at) \
                     SELECT id, recipient, attempts + 1, $3, $4 FROM gone",
                )
                .bind(id)
                .bind(claim)
                .bind(error)
                .bind(now)
                .execute(pool)
                .await
            })
            .await?;
        one_row(done)
    }

    async fn pending(&self, now: OffsetDateTime) -> Result<u64, RepoError> {
        let pool = &self.db.pool;
        let count: i64 = self
            .db
            .run(|| async move {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM mail_outbox \
                     WHERE next_attempt_at <= $1 AND (claim_id IS NULL OR claimed_until <= $1)",
                )
                .bind(now)
                .fetch_one(pool)
                .await
            })
            .await?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, RepoError> {
        let pool = &self.db.pool;
        let rows: Vec<DeadLetterRow> = self
            .db
            .run(|| async move {
                sqlx::query_as(
                    "SELECT id, recipient, attempts, error, failed_at FROM mail_dead_letters \
                     ORDER BY failed_at DESC, id DESC LIMIT $1",
                )
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
            })
            .await?;
        rows.into_iter().map(DeadLetter::try_from).collect()
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, RepoError> {
        self.db
            .purge_in_batches(
                "DELETE FROM mail_dead_letters WHERE seq = ANY (ARRAY (SELECT seq FROM \
                 mail_dead_letters WHERE failed_at < $1 LIMIT $2))",
                before,
            )
            .await
    }
}
