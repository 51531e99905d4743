use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite, SqlitePool};
use time::OffsetDateTime;
use user_core::domain::{AuditEvent, AuditPage, AuditQuery, UserId};
use user_core::error::RepoError;
use user_core::ports::AuditLog;

use crate::map_db_err;
use crate::rows::{AuditRow, audit_columns, to_db};

/// [`AuditLog`] on SQLite: the `audit_events` table, with no foreign key to `users`, so
/// events outlive their users. Pages are read by keyset, newest first, on the
/// `(at, id)`, `(subject, at, id)` and `(actor, at, id)` indexes.
#[derive(Debug, Clone)]
pub struct SqliteAuditLog {
    pool: SqlitePool,
}

impl SqliteAuditLog {
    pub(crate) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

/// The `SELECT` of one page of `query`: only the filters it sets, so that the planner can
/// pick the subject or actor index; a page plus one row, which says whether a next page
/// exists.
fn page_query(query: &AuditQuery) -> QueryBuilder<Sqlite> {
    let mut q = QueryBuilder::new(concat!("SELECT ", audit_columns!(), " FROM audit_events"));
    let mut and = {
        let mut first = true;
        move |q: &mut QueryBuilder<Sqlite>| {
            q.push(if first { " WHERE " } else { " AND " });
            first = false;
        }
    };
    if let Some(subject) = query.subject {
        and(&mut q);
        q.push("subject = ").push_bind(subject.to_string());
    }
    if let Some(actor) = query.actor {
        and(&mut q);
        q.push("actor = ").push_bind(actor.to_string());
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
        // A row value: SQLite walks the index down from the cursor.
        and(&mut q);
        q.push("(at, id) < (")
            .push_bind(to_db(before.at))
            .push(", ")
            .push_bind(before.id.to_string())
            .push(")");
    }
    q.push(" ORDER BY at DESC, id DESC LIMIT ")
        .push_bind(i64::from(query.page_size()) + 1);
    q
}

#[async_trait]
impl AuditLog for SqliteAuditLog {
    async fn record(&self, event: &AuditEvent) -> Result<(), RepoError> {
        sqlx::query(concat!(
            "INSERT INTO audit_events (",
            audit_columns!(),
            ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(event.id.to_string())
        .bind(to_db(event.at))
        .bind(event.kind.as_str())
        .bind(event.outcome.as_str())
        .bind(event.actor.map(|u| u.to_string()))
        .bind(event.subject.map(|u| u.to_string()))
        .bind(event.identifier.as_deref())
        .bind(event.client.ip.as_deref())
        .bind(event.client.user_agent.as_deref())
        .bind(event.detail.as_deref())
        .execute(&self.pool)
        .await
        .map(drop)
        .map_err(map_db_err)
    }

    async fn list(&self, query: &AuditQuery) -> Result<AuditPage, RepoError> {
        let rows: Vec<AuditRow> = page_query(query)
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(map_db_err)?;
        let events = rows
            .into_iter()
            .map(AuditEvent::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AuditPage::from_overfetch(events, query.page_size()))
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, RepoError> {
        sqlx::query("DELETE FROM audit_events WHERE at < ?")
            .bind(to_db(before))
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(map_db_err)
    }

    async fn anonymize(&self, user: UserId) -> Result<u64, RepoError> {
        // Only rows with something left to strip are written, so the count is of events
        // that changed (and a second call counts none). The first condition lets SQLite
        // read the subject and actor indexes instead of the whole table.
        sqlx::query(
            "UPDATE audit_events SET \
                 identifier = CASE WHEN subject = ?1 THEN NULL ELSE identifier END, \
                 ip = CASE WHEN actor = ?1 OR (subject = ?1 AND actor IS NULL) \
                      THEN NULL ELSE ip END, \
                 user_agent = CASE WHEN actor = ?1 OR (subject = ?1 AND actor IS NULL) \
                              THEN NULL ELSE user_agent END \
             WHERE (subject = ?1 OR actor = ?1) \
               AND ((subject = ?1 AND identifier IS NOT NULL) \
                    OR ((actor = ?1 OR (subject = ?1 AND actor IS NULL)) \
                        AND (ip IS NOT NULL OR user_agent IS NOT NULL)))",
        )
        .bind(user.to_string())
        .execute(&self.pool)
        .await
        .map(|done| done.rows_affected())
        .map_err(map_db_err)
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
                " FROM audit_events ORDER BY at DESC, id DESC LIMIT ?"
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
            " FROM audit_events WHERE subject = ? AND actor = ? AND kind = ? AND outcome = ? \
             AND (at, id) < (?, ?) ORDER BY at DESC, id DESC LIMIT ?"
        ));
    }
}
