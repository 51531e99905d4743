use async_trait::async_trait;
use sqlx::{Postgres, QueryBuilder};
use time::OffsetDateTime;
use user_core::domain::{AuditEvent, AuditPage, AuditQuery, UserId};
use user_core::error::RepoError;
use user_core::ports::AuditLog;

use crate::retry::Db;
use crate::rows::{AuditRow, audit_columns};

/// [`AuditLog`] on PostgreSQL: the `audit_events` table, with no foreign key to `users`, so
/// events outlive their users. Pages are read by keyset, newest first, on the
/// `(at, id)`, `(subject, at, id)` and `(actor, at, id)` indexes; purges delete in batches.
#[derive(Debug, Clone)]
pub struct PostgresAuditLog {
    db: Db,
}

impl PostgresAuditLog {
    pub(crate) fn new(db: Db) -> Self {
        Self { db }
    }
}

/// The `SELECT` of one page of `query`: only the filters it sets, so that each combination
/// gets a plan of its own on the subject or actor index; a page plus one row, which says
/// whether a next page exists.
fn page_query(query: &AuditQuery) -> QueryBuilder<Postgres> {
    let mut q = QueryBuilder::new(concat!("SELECT ", audit_columns!(), " FROM audit_events"));
    let mut and = {
        let mut first = true;
        move |q: &mut QueryBuilder<Postgres>| {
            q.push(if first { " WHERE " } else { " AND " });
            first = false;
        }
    };
    if let Some(subject) = query.subject {
        and(&mut q);
        q.push("subject = ").push_bind(subject.as_uuid());
    }
    if let Some(actor) = query.actor {
        and(&mut q);
        q.push("actor = ").push_bind(actor.as_uuid());
    }
    if let Some(kind) = query.kind {
        and(&mut q);
        q.push("kind = ").push_bind(kind.as_str());
    }
    if let Some(outcome) = query.outcome {
        and(&mut q);
        q.push("outcome = ").push_bind(outcome.as_str());
    }
    if let Some(before) = query.before {
        // A row-value comparison: the btree index is entered at the cursor.
        and(&mut q);
        q.push("(at, id) < (")
            .push_bind(before.at)
            .push(", ")
            .push_bind(before.id.as_uuid())
            .push(")");
    }
    q.push(" ORDER BY at DESC, id DESC LIMIT ")
        .push_bind(i64::from(query.page_size()) + 1);
    q
}

#[async_trait]
impl AuditLog for PostgresAuditLog {
    async fn record(&self, event: &AuditEvent) -> Result<(), RepoError> {
        let pool = &self.db.pool;
        self.db
            .run(|| async move {
                sqlx::query(concat!(
                    "INSERT INTO audit_events (",
                    audit_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                ))
                .bind(event.id.as_uuid())
                .bind(event.at)
                .bind(event.kind.as_str())
                .bind(event.outcome.as_str())
                .bind(event.actor.map(|u| u.as_uuid()))
                .bind(event.subject.map(|u| u.as_uuid()))
                .bind(event.identifier.as_deref())
                .bind(event.client.ip.as_deref())
                .bind(event.client.user_agent.as_deref())
                .bind(event.detail.as_deref())
                .execute(pool)
                .await
            })
            .await
            .map(drop)
    }

    async fn list(&self, query: &AuditQuery) -> Result<AuditPage, RepoError> {
        let pool = &self.db.pool;
        let rows: Vec<AuditRow> = self
            .db
            .run(|| async move {
                let mut q = page_query(query);
                q.build_query_as().fetch_all(pool).await
            })
            .await?;
        let events = rows
            .into_iter()
            .map(AuditEvent::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AuditPage::from_overfetch(events, query.page_size()))
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, RepoError> {
        self.db
            .purge_in_batches(
                "DELETE FROM audit_events WHERE id = ANY (ARRAY (SELECT id FROM audit_events \
                 WHERE at < $1 LIMIT $2))",
                before,
            )
            .await
    }

    async fn anonymize(&self, user: UserId) -> Result<u64, RepoError> {
        // Only rows with something left to strip are written, so the count is of events
        // that changed (and a second call counts none). The first condition lets the
        // planner read the subject and actor indexes (a bitmap OR) instead of the table.
        let pool = &self.db.pool;
        self.db
            .run(|| async move {
                sqlx::query(
                    "UPDATE audit_events SET \
                         identifier = CASE WHEN subject = $1 THEN NULL ELSE identifier END, \
                         ip = CASE WHEN actor = $1 OR (subject = $1 AND actor IS NULL) \
                              THEN NULL ELSE ip END, \
                         user_agent = CASE WHEN actor = $1 OR (subject = $1 AND actor IS NULL) \
                                      THEN NULL ELSE user_agent END \
                     WHERE (subject = $1 OR actor = $1) \
                       AND ((subject = $1 AND identifier IS NOT NULL) \
                            OR ((actor = $1 OR (subject = $1 AND actor IS NULL)) \
                                AND (ip IS NOT NULL OR user_agent IS NOT NULL)))",
                )
                .bind(user.as_uuid())
                .execute(pool)
                .await
            })
            .await
            .map(|done| done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use user_core::domain::{AuditCursor, AuditEventId, AuditKind, AuditOutcome};

    use super::*;

    #[test]
    fn the_page_query_has_only_the_filters_asked_for() {
        let q = page_query(&AuditQuery::default());
        assert_eq!(
            q.sql().as_str(),
            concat!(
                "SELECT ",
                audit_columns!(),
                " FROM audit_events ORDER BY at DESC, id DESC LIMIT $1"
            )
        );
        let q = page_query(&AuditQuery {
            subject: Some(UserId::new()),
            actor: Some(UserId::new()),
            kind: Some(AuditKind::SignIn),
            outcome: Some(AuditOutcome::Failure),
            before: Some(AuditCursor {
                at: OffsetDateTime::UNIX_EPOCH,
                id: AuditEventId::new(),
            }),
            limit: 10,
        });
        assert!(q.sql().as_str().ends_with(
            " FROM audit_events WHERE subject = $1 AND actor = $2 AND kind = $3 \
             AND outcome = $4 AND (at, id) < ($5, $6) ORDER BY at DESC, id DESC LIMIT $7"
        ));
    }
}
