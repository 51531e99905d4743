//! Nothing that runs per request, per scrape or per purge reads a whole table: on tables of
//! some size, with a small stale part as in a running service, the plan of each such
//! statement (copied from the stores, with literal values) names the index it reads. The
//! list of users is checked in `src/search.rs`, the audit log's pages in `database.rs`.

use std::time::Duration;

use user_postgres::PostgresConfig;

use crate::TestDb;

/// The cut-off of every purge and the `now` of every read: 95% of each table lies after it.
const T: &str = "'2026-03-01 12:00+00'::timestamptz";

/// `insert_many`'s lookup of the users holding the ids, usernames or emails of skipped rows.
const LOOKUP: &str = "SELECT id, username, email FROM users \
    WHERE id = ANY ('{0190f1e2-0000-7000-8000-000000000001,0190f1e2-0000-7000-8000-000000000002}'::uuid[]) \
    OR username = ANY (ARRAY['user7', 'user8']) \
    OR email = ANY (ARRAY['user7@example.com', 'user9@example.com'])";

async fn execute(t: &TestDb, sql: &str) {
    sqlx::query(sqlx::AssertSqlSafe(sql.replace("$T", T)))
        .execute(t.db.pool())
        .await
        .unwrap();
}

/// Asserts that every statement reads the index named with it, and scans no table.
async fn assert_indexed(t: &TestDb, statements: &[(&str, &str)]) {
    let mut failures = Vec::new();
    for (sql, index) in statements {
        let sql = sql.replace("$T", T);
        let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")))
            .fetch_all(t.db.pool())
            .await
            .unwrap();
        let plan = plan.join("\n");
        if !plan.contains(index) || plan.contains("Seq Scan") {
            failures.push(format!("{sql}: {index} expected, no Seq Scan:\n{plan}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[tokio::test]
async fn per_request_scrape_and_purge_statements_use_indexes() {
    // Filling and vacuuming the tables may take longer than the default statement timeout
    // on a loaded machine (CI saw the vacuum of the search index cut off); plans are what is
    // checked here, not time.
    let Some(t) = TestDb::with(|config| PostgresConfig {
        statement_timeout: Duration::ZERO,
        ..config
    })
    .await
    else {
        return;
    };
    // 20,000 users, one in a thousand an admin; the sessions, devices and tokens of the
    // first 2,000; every other table 20,000 rows.
    execute(
        &t,
        "INSERT INTO users (id, username, email, password_hash, role, status, created_at, \
         updated_at) \
         SELECT gen_random_uuid(), 'user' || i, 'user' || i || '@example.com', 'h', \
                CASE WHEN i % 1000 = 0 THEN 'admin' ELSE 'user' END, 'active', $T, $T \
         FROM generate_series(1, 20000) AS i",
    )
    .await;
    execute(
        &t,
        "CREATE TABLE owners AS SELECT array_agg(id) AS ids FROM (SELECT id FROM users LIMIT 2000) AS s",
    )
    .await;
    let owner = "o.ids[1 + i % 2000]";
    let stale = "CASE WHEN i % 20 = 0 THEN $T - interval '1 hour' ELSE $T + interval '1 day' END";
    for sql in [
        format!(
            "INSERT INTO sessions (id, user_id, kind, created_at, last_used_at, expires_at, \
             revoked_at) \
             SELECT gen_random_uuid(), {owner}, 'token', $T, $T, {stale}, \
                    CASE WHEN i % 50 = 1 THEN $T - interval '1 hour' END \
             FROM generate_series(1, 20000) AS i, owners AS o"
        ),
        format!(
            "INSERT INTO login_failures (key, count, last_failed_at) \
             SELECT sha256(('k' || i)::bytea), 1, {stale} FROM generate_series(1, 20000) AS i, owners AS o"
        ),
        format!(
            "INSERT INTO devices (hash, user_id, created_at, expires_at) \
             SELECT sha256(('d' || i)::bytea), {owner}, $T, {stale} \
             FROM generate_series(1, 20000) AS i, owners AS o"
        ),
        format!(
            "INSERT INTO one_time_tokens (hash, user_id, purpose, email, created_at, \
             expires_at) \
             SELECT sha256(('t' || i)::bytea), {owner}, 'verify_email', 'a@example.com', $T, \
                    {stale} \
             FROM generate_series(1, 20000) AS i, owners AS o"
        ),
        format!(
            "INSERT INTO mail_dead_letters (id, recipient, attempts, error, failed_at) \
             SELECT gen_random_uuid(), 'a@example.com', 1, 'x', {stale} \
             FROM generate_series(1, 20000) AS i, owners AS o"
        ),
        format!(
            "INSERT INTO mail_outbox (id, recipient, subject, body_text, enqueued_at, \
             next_attempt_at) \
             SELECT gen_random_uuid(), 'a@example.com', 's', 'b', $T, {stale} \
             FROM generate_series(1, 20000) AS i, owners AS o"
        ),
        format!(
            "INSERT INTO sign_in_challenges (hash, user_id, purpose, created_at, expires_at) \
             SELECT sha256(('c' || i)::bytea), {owner}, 'second_factor', $T, {stale} \
             FROM generate_series(1, 20000) AS i, owners AS o"
        ),
        format!(
            "INSERT INTO audit_events (id, at, kind, outcome, subject) \
             SELECT gen_random_uuid(), {stale}, 'sign_in', 'success', {owner} \
             FROM generate_series(1, 20000) AS i, owners AS o"
        ),
        format!(
            "INSERT INTO trusted_devices (device_hash, user_id, expires_at) \
             SELECT sha256(('v' || i)::bytea), {owner}, {stale} \
             FROM generate_series(1, 20000) AS i, owners AS o"
        ),
    ] {
        execute(&t, &sql).await;
    }
    execute(&t, "VACUUM ANALYZE").await;

    let key = "sha256('k7'::bytea)";
    assert_indexed(
        &t,
        &[
            // Per scrape.
            (
                "SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL AND expires_at > $T",
                "Index Only Scan using sessions_active_expires_at",
            ),
            (
                "SELECT COUNT(*) FROM mail_outbox \
                 WHERE next_attempt_at <= $T AND (claim_id IS NULL OR claimed_until <= $T)",
                "mail_outbox_next_attempt_at",
            ),
            // Per request.
            (
                &format!("SELECT count, last_failed_at FROM login_failures WHERE key = {key}"),
                "login_failures_pkey",
            ),
            (
                &format!("SELECT user_id FROM devices WHERE hash = {key}"),
                "devices_pkey",
            ),
            (
                &format!(
                    "SELECT user_id FROM one_time_tokens WHERE hash = {key} \
                     AND purpose = 'verify_email' AND expires_at > $T"
                ),
                "one_time_tokens_pkey",
            ),
            (
                "SELECT COUNT(*) FROM users WHERE role = 'admin' AND status = 'active'",
                "users_",
            ),
            // Per batch of an import that skipped rows: the lookup of their holders.
            (LOOKUP, "users_pkey"),
            (LOOKUP, "users_username_key"),
            (LOOKUP, "users_email_key"),
            // Per purge batch.
            (
                "DELETE FROM sessions WHERE id = ANY (ARRAY (SELECT id FROM sessions \
                 WHERE expires_at < $T OR revoked_at < $T LIMIT 5000))",
                "sessions_expires_at",
            ),
            (
                "DELETE FROM sessions WHERE id = ANY (ARRAY (SELECT id FROM sessions \
                 WHERE expires_at < $T OR revoked_at < $T LIMIT 5000))",
                "sessions_revoked_at",
            ),
            (
                "DELETE FROM login_failures WHERE key = ANY (ARRAY (SELECT key FROM \
                 login_failures WHERE last_failed_at < $T LIMIT 5000))",
                "login_failures_last_failed_at",
            ),
            (
                "DELETE FROM devices WHERE hash = ANY (ARRAY (SELECT hash FROM devices \
                 WHERE expires_at < $T LIMIT 5000))",
                "devices_expires_at",
            ),
            (
                "DELETE FROM one_time_tokens WHERE hash = ANY (ARRAY (SELECT hash FROM \
                 one_time_tokens WHERE expires_at < $T LIMIT 5000))",
                "one_time_tokens_expires_at",
            ),
            (
                "DELETE FROM mail_dead_letters WHERE seq = ANY (ARRAY (SELECT seq FROM \
                 mail_dead_letters WHERE failed_at < $T LIMIT 5000))",
                "mail_dead_letters_failed_at",
            ),
            (
                "DELETE FROM audit_events WHERE id = ANY (ARRAY (SELECT id FROM audit_events \
                 WHERE at < $T LIMIT 5000))",
                "audit_events_at",
            ),
            (
                "DELETE FROM sign_in_challenges WHERE expires_at < $T AND hash IN \
                 (SELECT hash FROM sign_in_challenges WHERE expires_at < $T LIMIT 5000)",
                "sign_in_challenges_expires_at",
            ),
            (
                "DELETE FROM trusted_devices WHERE expires_at < $T AND (device_hash, user_id) \
                 IN (SELECT device_hash, user_id FROM trusted_devices WHERE expires_at < $T \
                 LIMIT 5000)",
                "trusted_devices_expires_at",
            ),
        ],
    )
    .await;
}
