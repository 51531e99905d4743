//! Nothing that runs per request, per scrape or per purge reads a whole table: the plan of
//! each such statement (copied from the stores) names the index it reads. The list of users
//! is checked in `src/search.rs`, on the statements the store builds; the audit log and the
//! second factors in `durability.rs`.

use crate::TestDb;

/// The plan of `sql`, one step a line; parameters are unbound (NULL), which no plan here
/// depends on.
async fn plan(t: &TestDb, sql: &str) -> Vec<String> {
    let rows: Vec<(i64, i64, i64, String)> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
            .fetch_all(t.db.pool())
            .await
            .unwrap();
    rows.into_iter().map(|row| row.3).collect()
}

/// Asserts that every statement reads the index named with it, and scans no table.
async fn assert_indexed(t: &TestDb, statements: &[(&str, &str)]) {
    for (sql, index) in statements {
        let plan = plan(t, sql).await;
        assert!(
            plan.iter().any(|step| step.contains(index)),
            "{sql}: {index} expected in {plan:?}"
        );
        assert!(
            !plan
                .iter()
                .any(|step| step.starts_with("SCAN ") && !step.contains("INDEX")),
            "{sql} scans a table: {plan:?}"
        );
    }
}

/// The count of active sessions on every scrape reads the partial index of sessions not
/// revoked, and no table row (a covering index); the per-user reads still take the user's
/// own sessions.
#[tokio::test]
async fn session_statements_use_indexes() {
    let t = TestDb::new().await;
    let count = "SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL AND expires_at > ?";
    assert_indexed(
        &t,
        &[
            (
                count,
                "COVERING INDEX sessions_active_expires_at (expires_at>?)",
            ),
            (
                "DELETE FROM sessions WHERE expires_at < ?1 OR revoked_at < ?1",
                "sessions_expires_at (expires_at<?)",
            ),
            (
                "DELETE FROM sessions WHERE expires_at < ?1 OR revoked_at < ?1",
                "sessions_revoked_at (revoked_at<?)",
            ),
            (
                "SELECT id FROM sessions WHERE user_id = ?1 AND revoked_at IS NULL \
                 AND expires_at > ?2 ORDER BY created_at DESC, id DESC",
                "sessions_user_id (user_id=?)",
            ),
            (
                "UPDATE sessions SET revoked_at = ?1 WHERE user_id = ?2 \
                 AND (?3 IS NULL OR id <> ?3) AND revoked_at IS NULL AND expires_at > ?1",
                "sessions_user_id (user_id=?)",
            ),
            (
                "SELECT id FROM sessions WHERE kind = 'browser' \
                 AND id = (SELECT session_id FROM session_secrets WHERE hash = ?)",
                "sqlite_autoindex_session_secrets_1 (hash=?)",
            ),
            (
                "SELECT id FROM sessions WHERE id = ?",
                "sqlite_autoindex_sessions_1 (id=?)",
            ),
        ],
    )
    .await;
}

/// Guess budgets, device tokens and one-time tokens are found by their hash, and purged by
/// their time column.
#[tokio::test]
async fn budget_device_and_token_statements_use_indexes() {
    let t = TestDb::new().await;
    assert_indexed(
        &t,
        &[
            (
                "SELECT count, last_failed_at FROM login_failures WHERE key = ?",
                "sqlite_autoindex_login_failures_1 (key=?)",
            ),
            (
                "UPDATE login_failures SET count = ?1, last_failed_at = ?2 \
                 WHERE key = ?3 AND count = ?4 AND last_failed_at = ?5",
                "sqlite_autoindex_login_failures_1 (key=?)",
            ),
            (
                "DELETE FROM login_failures WHERE last_failed_at < ?",
                "login_failures_last_failed_at (last_failed_at<?)",
            ),
            (
                "SELECT user_id FROM devices WHERE hash = ?",
                "sqlite_autoindex_devices_1 (hash=?)",
            ),
            (
                "DELETE FROM devices WHERE expires_at < ?",
                "devices_expires_at (expires_at<?)",
            ),
            (
                "DELETE FROM devices WHERE user_id = ?",
                "devices_user_id (user_id=?)",
            ),
            (
                "SELECT user_id FROM one_time_tokens \
                 WHERE hash = ? AND purpose = ? AND expires_at > ?",
                "sqlite_autoindex_one_time_tokens_1 (hash=?)",
            ),
            (
                "DELETE FROM one_time_tokens WHERE hash = ? AND purpose = ? AND expires_at > ?",
                "sqlite_autoindex_one_time_tokens_1 (hash=?)",
            ),
            (
                "DELETE FROM one_time_tokens WHERE user_id = ? AND purpose = ?",
                "one_time_tokens_user_purpose (user_id=? AND purpose=?)",
            ),
            (
                "DELETE FROM one_time_tokens WHERE expires_at < ?",
                "one_time_tokens_expires_at (expires_at<?)",
            ),
        ],
    )
    .await;
}

/// The outbox's backlog (read on every scrape) and its claims read the due mail from an
/// index; dead letters are listed and purged by their time.
#[tokio::test]
async fn outbox_statements_use_indexes() {
    let t = TestDb::new().await;
    assert_indexed(
        &t,
        &[
            (
                "SELECT COUNT(*) FROM mail_outbox \
                 WHERE next_attempt_at <= ?1 AND (claim_id IS NULL OR claimed_until <= ?1)",
                "mail_outbox_next_attempt_at (next_attempt_at<?)",
            ),
            (
                "SELECT id FROM mail_outbox \
                 WHERE next_attempt_at <= ?2 AND (claim_id IS NULL OR claimed_until <= ?2) \
                 ORDER BY enqueued_at, id LIMIT ?3",
                "mail_outbox_",
            ),
            (
                "DELETE FROM mail_outbox WHERE id = ? AND claim_id = ?",
                "sqlite_autoindex_mail_outbox_1 (id=?)",
            ),
            (
                "SELECT id FROM mail_dead_letters ORDER BY failed_at DESC, id DESC LIMIT ?",
                "mail_dead_letters_failed_at",
            ),
            (
                "DELETE FROM mail_dead_letters WHERE failed_at < ?",
                "mail_dead_letters_failed_at (failed_at<?)",
            ),
        ],
    )
    .await;
}

/// The last-admin guard counts the active admins on every demotion, disabling and deletion:
/// a range of the role-and-status index, no table row read.
#[tokio::test]
async fn the_active_admins_are_counted_from_an_index() {
    let t = TestDb::new().await;
    assert_indexed(
        &t,
        &[(
            "SELECT COUNT(*) FROM users WHERE role = 'admin' AND status = 'active'",
            "COVERING INDEX users_role_status_username (role=? AND status=?)",
        )],
    )
    .await;
}

/// An export page is a range of the username index, whatever the number of users; the
/// lookup of the rows that `insert_many` skipped reads the three unique indexes.
#[tokio::test]
async fn bulk_transfer_statements_use_indexes() {
    let t = TestDb::new().await;
    let lookup = "SELECT id, username, email FROM users \
                  WHERE id IN (?, ?) OR username IN (?, ?) OR email IN (?, ?)";
    assert_indexed(
        &t,
        &[
            (
                "SELECT id, username, password_hash FROM users \
                 WHERE username > ? ORDER BY username LIMIT ?",
                "users_username_key (username>?)",
            ),
            (lookup, "sqlite_autoindex_users_1 (id=?)"),
            (lookup, "users_username_key (username=?)"),
            (lookup, "users_email_key (email=?)"),
        ],
    )
    .await;
}
