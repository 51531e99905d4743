//! Opening: schemas, concurrent starts, migrations applied once, connection settings; data
//! survives reopening; times round-trip; bad rows are errors, not panics.

use std::time::Duration;

use time::OffsetDateTime;
use time::macros::datetime;
use user_core::domain::{
    AuditEvent, AuditKind, AuditQuery, ClientInfo, NewSession, NewUser, PasswordHash, Session,
    SessionId, SessionKind, TokenHash,
};
use user_core::error::RepoError;
use user_core::ports::{AuditLog as _, SessionStore, UserRepository};
use user_core::testing::conformance::user;
use user_postgres::testing::TestSchema;
use user_postgres::{PostgresConfig, PostgresDatabase};

use crate::{TestDb, migrations, with_url_option};

/// How many tables named `table` the schema holds.
async fn tables_named(db: &PostgresDatabase, schema: &str, table: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables \
         WHERE table_schema = $1 AND table_name = $2",
    )
    .bind(schema)
    .bind(table)
    .fetch_one(db.pool())
    .await
    .unwrap()
}

async fn applied_migrations(db: &PostgresDatabase) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(db.pool())
        .await
        .unwrap()
}

async fn insert(users: &dyn UserRepository, name: &str) -> user_core::domain::User {
    let u = user(name);
    users
        .insert(&NewUser {
            user: u.clone(),
            password_hash: PasswordHash::new("$2b$04$abcdefghijklmnopqrstuu"),
        })
        .await
        .unwrap();
    u
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_instances_starting_at_once_create_the_schema_and_migrate_once() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    // Start from nothing: the instances must also create the schema.
    let first = schema.open().await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA \"{}\" CASCADE",
        schema.name()
    )))
    .execute(first.pool())
    .await
    .unwrap();
    first.close().await;

    let opens: Vec<_> = (0..4)
        .map(|_| {
            let config = schema.config();
            tokio::spawn(async move { PostgresDatabase::open(&config).await })
        })
        .collect();
    let mut dbs = Vec::new();
    for open in opens {
        dbs.push(open.await.unwrap().unwrap());
    }
    for table in [
        "users",
        "sessions",
        "session_secrets",
        "login_failures",
        "devices",
    ] {
        assert_eq!(
            tables_named(&dbs[0], schema.name(), table).await,
            1,
            "{table}"
        );
    }
    assert_eq!(applied_migrations(&dbs[0]).await, migrations());
    // Each instance works on the same tables.
    for (i, db) in dbs.iter().enumerate() {
        insert(&db.users(), &format!("user{i}")).await;
    }
    let page = dbs[3].users().list(&Default::default()).await.unwrap();
    assert_eq!(page.users.len(), 4);
    for db in dbs {
        db.close().await;
    }
}

/// Closing ends the pool: readiness says no, and a store's call is an unavailable error,
/// not a wait for a connection that will never come.
#[tokio::test]
async fn a_closed_database_is_not_ready_and_its_stores_refuse_calls() {
    let Some(t) = TestDb::new().await else {
        return;
    };
    let alice = insert(&t.db.users(), "alice").await;
    let ready = t.db.readiness();
    assert!(ready().await, "open: ready");
    t.db.close().await;
    assert!(t.db.pool().is_closed());
    assert!(!ready().await, "closed: not ready");
    let got = t.db.users().get(alice.id).await;
    assert!(matches!(got, Err(RepoError::Unavailable(_))), "{got:?}");
    let ping = t.db.ping().await;
    assert!(matches!(ping, Err(RepoError::Unavailable(_))), "{ping:?}");
}

#[tokio::test]
async fn data_survives_closing_and_reopening() {
    let Some(t) = TestDb::new().await else {
        return;
    };
    let alice = insert(&t.db.users(), "alice").await;
    t.db.close().await;

    let reopened = t.schema.open().await;
    assert_eq!(reopened.users().get(alice.id).await.unwrap(), alice);
    assert_eq!(
        reopened
            .users()
            .password_hash(alice.id)
            .await
            .unwrap()
            .as_str(),
        "$2b$04$abcdefghijklmnopqrstuu"
    );
    reopened.ping().await.unwrap();
}

#[tokio::test]
async fn reopening_an_up_to_date_schema_runs_no_migration_again() {
    let Some(t) = TestDb::new().await else {
        return;
    };
    for _ in 0..3 {
        t.schema.open().await.close().await;
    }
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(t.db.pool())
        .await
        .unwrap();
    assert_eq!(count, migrations(), "each applied once");
}

#[tokio::test]
async fn the_tables_live_in_the_configured_schema_only() {
    let Some(t) = TestDb::new().await else {
        return;
    };
    let elsewhere: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables \
         WHERE table_name = '_sqlx_migrations' AND table_schema = $1",
    )
    .bind(t.schema.name())
    .fetch_one(t.db.pool())
    .await
    .unwrap();
    assert_eq!(elsewhere, 1);
    let path: String = sqlx::query_scalar("SHOW search_path")
        .fetch_one(t.db.pool())
        .await
        .unwrap();
    assert_eq!(path, t.schema.name());
}

/// Without a schema the tables go where the server's `search_path` says, here set by the
/// URL, as an operator could.
#[tokio::test]
async fn without_a_schema_the_search_path_decides() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let config = PostgresConfig {
        schema: None,
        ..with_url_option(schema.config(), "search_path", schema.name())
    };
    let db = PostgresDatabase::open(&config).await.unwrap();
    assert_eq!(tables_named(&db, schema.name(), "users").await, 1);
    insert(&db.users(), "alice").await;
    db.close().await;
}

#[tokio::test]
async fn every_connection_has_the_statement_timeout() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let show = |db: PostgresDatabase| async move {
        let value: String = sqlx::query_scalar("SHOW statement_timeout")
            .fetch_one(db.pool())
            .await
            .unwrap();
        db.close().await;
        value
    };
    assert_eq!(show(schema.open().await).await, "10s", "the default");
    // Two connections at once: each new one gets the setting, not only the first.
    let db = schema.open().await;
    let mut first = db.pool().acquire().await.unwrap();
    let mut second = db.pool().acquire().await.unwrap();
    let mut backends = Vec::new();
    for conn in [&mut first, &mut second] {
        let (value, pid): (String, i32) =
            sqlx::query_as("SELECT current_setting('statement_timeout'), pg_backend_pid()")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
        assert_eq!(value, "10s");
        backends.push(pid);
    }
    assert_ne!(backends[0], backends[1], "two server sessions");
    drop((first, second));
    db.close().await;
    let short = PostgresConfig {
        statement_timeout: Duration::from_millis(250),
        ..schema.config()
    };
    let db = PostgresDatabase::open(&short).await.unwrap();
    let slow = sqlx::query("SELECT pg_sleep(5)").execute(db.pool()).await;
    let err = slow.unwrap_err();
    let code = err.as_database_error().and_then(|e| e.code());
    assert_eq!(code.as_deref(), Some("57014"), "query_canceled: {err}");
    assert_eq!(show(db).await, "250ms");
    let none = PostgresConfig {
        statement_timeout: Duration::ZERO,
        ..schema.config()
    };
    let db = PostgresDatabase::open(&none).await.unwrap();
    assert_eq!(show(db).await, "0", "ZERO: no limit");
}

#[tokio::test]
async fn a_wrong_database_name_is_a_connect_error() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let url = schema.config().url;
    let url = secrecy::ExposeSecret::expose_secret(&url);
    let (server, _database) = url.rsplit_once('/').unwrap();
    let config = PostgresConfig::new(format!("{server}/no_such_database_here"));
    let err = PostgresDatabase::open(&config).await.unwrap_err();
    assert!(
        matches!(err, user_postgres::OpenError::Connect { .. }),
        "{err:?}"
    );
    let text = user_core::error::report(&err);
    assert!(text.contains("no_such_database_here"), "{text}");
}

fn session_of(owner: &user_core::domain::User, created: OffsetDateTime) -> Session {
    Session {
        id: SessionId::new(),
        user_id: owner.id,
        kind: SessionKind::Token,
        client: ClientInfo::default(),
        created_at: created,
        last_used_at: created,
        expires_at: created,
        revoked_at: None,
    }
}

#[tokio::test]
async fn times_round_trip_to_the_microsecond_up_to_year_9999() {
    let Some(t) = TestDb::new().await else {
        return;
    };
    let mut u = user("alice");
    u.created_at = datetime!(1970-01-01 00:00:00.000001 UTC);
    u.updated_at = datetime!(2026-02-03 04:05:06.999999 UTC);
    u.email_verified_at = Some(datetime!(1999-12-31 23:59:59.999999 UTC));
    t.db.users()
        .insert(&NewUser {
            user: u.clone(),
            password_hash: PasswordHash::new("h"),
        })
        .await
        .unwrap();
    assert_eq!(t.db.users().get(u.id).await.unwrap(), u);

    let mut forever = session_of(&u, datetime!(2026-01-01 00:00 UTC));
    forever.expires_at = datetime!(9999-12-31 23:59:59.999999 UTC);
    let sessions = t.db.sessions();
    sessions
        .create(&NewSession {
            session: forever.clone(),
            secret_hash: TokenHash::of("forever"),
        })
        .await
        .unwrap();
    assert_eq!(sessions.get(forever.id).await.unwrap(), forever);
    assert_eq!(
        sessions
            .list_active(u.id, datetime!(9999-12-31 23:59:59 UTC))
            .await
            .unwrap(),
        [forever]
    );
}

#[tokio::test]
async fn times_the_server_cannot_store_are_refused_cleanly() {
    let Some(t) = TestDb::new().await else {
        return;
    };
    let owner = insert(&t.db.users(), "alice").await;
    // Before 4713 BC: in `time`'s range, not in PostgreSQL's.
    let ancient = session_of(&owner, datetime!(-9999-01-01 00:00 UTC));
    let got =
        t.db.sessions()
            .create(&NewSession {
                session: ancient.clone(),
                secret_hash: TokenHash::of("ancient"),
            })
            .await;
    assert!(matches!(got, Err(RepoError::Unavailable(_))), "{got:?}");
    let got = t.db.sessions().get(ancient.id).await;
    assert!(
        matches!(got, Err(RepoError::NotFound)),
        "nothing written: {got:?}"
    );
}

#[tokio::test]
async fn times_beyond_year_9999_in_a_row_are_errors_not_panics() {
    let Some(t) = TestDb::new().await else {
        return;
    };
    let owner = insert(&t.db.users(), "alice").await;
    let s = session_of(&owner, datetime!(2026-01-01 00:00 UTC));
    t.db.sessions()
        .create(&NewSession {
            session: s.clone(),
            secret_hash: TokenHash::of("s"),
        })
        .await
        .unwrap();
    // PostgreSQL stores these; the `time` crate cannot represent them.
    for value in [
        "infinity",
        "10000-01-01 00:00:00+00",
        "294276-12-31 00:00:00+00",
    ] {
        sqlx::query("UPDATE sessions SET expires_at = $1::timestamptz WHERE id = $2")
            .bind(value)
            .bind(s.id.as_uuid())
            .execute(t.db.pool())
            .await
            .unwrap();
        let got = t.db.sessions().get(s.id).await;
        assert!(
            matches!(got, Err(RepoError::Unavailable(_))),
            "{value}: {got:?}"
        );
        let listed = t.db.sessions().list_active(owner.id, s.created_at).await;
        assert!(
            matches!(listed, Err(RepoError::Unavailable(_))),
            "{value}: {listed:?}"
        );
    }
}

#[tokio::test]
async fn corrupt_rows_are_unavailable_errors_not_panics() {
    let Some(t) = TestDb::new().await else {
        return;
    };
    let good = insert(&t.db.users(), "alice").await;
    sqlx::query("UPDATE users SET username = 'not valid!' WHERE id = $1")
        .bind(good.id.as_uuid())
        .execute(t.db.pool())
        .await
        .unwrap();
    let got = t.db.users().get(good.id).await;
    assert!(matches!(got, Err(RepoError::Unavailable(_))), "{got:?}");
    let msg = std::error::Error::source(&got.unwrap_err()).map(|e| e.to_string());
    assert!(msg.unwrap_or_default().contains("corrupt users row"));

    // CHECK constraints keep roles, statuses, kinds and hash sizes to known values.
    for statement in [
        "UPDATE users SET role = 'root'",
        "UPDATE users SET status = 'gone'",
        "INSERT INTO sessions (id, user_id, kind, created_at, last_used_at, expires_at) \
         SELECT gen_random_uuid(), id, 'api', now(), now(), now() FROM users",
        "INSERT INTO login_failures (key, count, last_failed_at) \
         VALUES ('\\x00', 1, now())",
        "INSERT INTO login_failures (key, count, last_failed_at) \
         VALUES (sha256('k'), -1, now())",
        "INSERT INTO audit_events (id, at, kind, outcome) \
         VALUES (gen_random_uuid(), now(), 'sign_in', 'maybe')",
    ] {
        let refused = sqlx::query(statement).execute(t.db.pool()).await;
        let err = refused.unwrap_err();
        let code = err.as_database_error().and_then(|e| e.code());
        assert_eq!(code.as_deref(), Some("23514"), "{statement}: {err}");
    }
}

#[tokio::test]
async fn usernames_sort_and_page_in_byte_order_whatever_the_locale() {
    let Some(t) = TestDb::new().await else {
        return;
    };
    // Byte order: '-' 0x2d < '.' 0x2e < '0' 0x30 < '_' 0x5f < 'c' 0x63. Linguistic
    // collations (en_US, say) skip the punctuation at first and put "ab-c", "ab.c", "ab_c"
    // next to "abc"; "C" compares bytes, as SQLite does.
    let names = ["ab-c", "ab.c", "ab0", "ab_c", "abc", "bcd"];
    let users = t.db.users();
    for name in names.iter().rev() {
        insert(&users, name).await;
    }
    let collation: String = sqlx::query_scalar(
        "SELECT collation_name FROM information_schema.columns \
         WHERE table_schema = $1 AND table_name = 'users' AND column_name = 'username'",
    )
    .bind(t.schema.name())
    .fetch_one(t.db.pool())
    .await
    .unwrap();
    assert_eq!(collation, "C");
    let mut sorted: Vec<&str> = names.to_vec();
    sorted.sort_unstable();
    let page = users.list(&Default::default()).await.unwrap();
    let listed: Vec<String> = page.users.iter().map(|u| u.username.to_string()).collect();
    assert_eq!(listed, sorted);
}

/// The test server trusts local connections, so a password in the URL is sent to no one:
/// enough to check that nothing prints it.
#[tokio::test]
async fn debug_output_never_shows_the_password() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let config = schema.config();
    let url = secrecy::ExposeSecret::expose_secret(&config.url);
    let (scheme, rest) = url.split_once("://").unwrap();
    // Whatever the URL says, the password is ours: with one, it is replaced; without a user,
    // `postgres` is assumed (the test server's superuser).
    let (user, host) = rest.rsplit_once('@').unwrap_or(("postgres", rest));
    let user = user.split_once(':').map_or(user, |(user, _)| user);
    let config = PostgresConfig {
        url: format!("{scheme}://{user}:s3cret-pw@{host}").into(),
        ..config
    };
    let db = PostgresDatabase::open(&config).await.unwrap();
    for debug in [
        format!("{config:?}"),
        format!("{db:?}"),
        format!("{:?}", db.users()),
        format!("{:?}", db.storage()),
    ] {
        assert!(!debug.contains("s3cret"), "{debug}");
    }
    db.close().await;
}

/// Migrations run without the statement timeout, however short it is.
#[tokio::test]
async fn a_one_millisecond_statement_timeout_still_migrates() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let config = PostgresConfig {
        statement_timeout: Duration::from_millis(1),
        ..schema.config()
    };
    let db = PostgresDatabase::open(&config).await.unwrap();
    db.close().await;
    // Checked with the default timeout: any query may take a millisecond.
    let db = schema.open().await;
    assert_eq!(tables_named(&db, schema.name(), "users").await, 1);
    assert_eq!(applied_migrations(&db).await, migrations());
    db.close().await;
}

/// A rolling deploy: a newer binary applied a migration this one does not know; this one
/// still opens the database.
#[tokio::test]
async fn an_older_binary_opens_a_database_a_newer_one_migrated() {
    let Some(t) = TestDb::new().await else {
        return;
    };
    sqlx::query(
        "INSERT INTO _sqlx_migrations \
         (version, description, success, checksum, execution_time) \
         VALUES (99990101000000, 'from a newer release', true, '\\x00', 1)",
    )
    .execute(t.db.pool())
    .await
    .unwrap();
    let reopened = t.schema.open().await;
    reopened.ping().await.unwrap();
    assert_eq!(applied_migrations(&reopened).await, migrations() + 1);
    reopened.close().await;
}

/// An audit row of a kind this release does not know (a newer release wrote it, during a
/// rolling deploy) is an error naming the kind, not a panic.
#[tokio::test]
async fn an_unknown_audit_kind_is_an_unavailable_error() {
    let Some(t) = TestDb::new().await else {
        return;
    };
    sqlx::query(
        "INSERT INTO audit_events (id, at, kind, outcome) \
         VALUES (gen_random_uuid(), now(), 'nap', 'success')",
    )
    .execute(t.db.pool())
    .await
    .unwrap();
    let got = t.db.audit().list(&AuditQuery::default()).await;
    assert!(matches!(got, Err(RepoError::Unavailable(_))), "{got:?}");
    let report = user_core::error::report(&got.unwrap_err());
    assert!(report.contains("unknown kind \"nap\""), "{report}");
}

/// A schema migrated before the audit log (0001 and 0002) gains it on opening, its data
/// kept.
#[tokio::test]
async fn a_schema_from_before_the_audit_log_gains_it_on_opening() {
    let Some(t) = TestDb::new().await else {
        return;
    };
    let alice = insert(&t.db.users(), "alice").await;
    // Back to where 0002 left the schema.
    sqlx::query("DROP TABLE audit_events")
        .execute(t.db.pool())
        .await
        .unwrap();
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 3")
        .execute(t.db.pool())
        .await
        .unwrap();
    t.db.close().await;

    let reopened = t.schema.open().await;
    assert_eq!(reopened.users().get(alice.id).await.unwrap(), alice);
    assert_eq!(applied_migrations(&reopened).await, migrations());
    let event = AuditEvent::new(AuditKind::Registered, alice.created_at).on(alice.id);
    reopened.audit().record(&event).await.unwrap();
    let page = reopened.audit().list(&AuditQuery::default()).await.unwrap();
    assert_eq!(page.events, [event]);
    reopened.close().await;
}

/// On a log of some size, the audit pages and anonymizing read an index, not the whole
/// table; the unfiltered page walks the time order without sorting. (A filtered page may
/// sort the rows of one subject or actor, when the planner finds that cheaper; the purge's
/// plan depends on how much of the log is stale, as the other purges' do.)
#[tokio::test]
async fn audit_queries_use_the_indexes() {
    let Some(t) = TestDb::new().await else {
        return;
    };
    // 20000 events of 20 users over about three days.
    sqlx::query(
        "INSERT INTO audit_events (id, at, kind, outcome, actor, subject) \
         SELECT gen_random_uuid(), $1 - i * interval '13 seconds', \
                CASE WHEN i % 3 = 0 THEN 'logout' ELSE 'sign_in' END, \
                CASE WHEN i % 7 = 0 THEN 'failure' ELSE 'success' END, \
                u.id, u.id \
         FROM generate_series(1, 20000) AS i \
         JOIN (SELECT n, gen_random_uuid() AS id FROM generate_series(0, 19) AS n) AS u \
           ON u.n = i % 20",
    )
    .bind(datetime!(2026-03-01 12:00 UTC))
    .execute(t.db.pool())
    .await
    .unwrap();
    sqlx::query("ANALYZE audit_events")
        .execute(t.db.pool())
        .await
        .unwrap();
    let (at, id, user): (OffsetDateTime, uuid::Uuid, uuid::Uuid) = sqlx::query_as(
        "SELECT at, id, subject FROM audit_events ORDER BY at DESC, id DESC OFFSET 5000 LIMIT 1",
    )
    .fetch_one(t.db.pool())
    .await
    .unwrap();
    let cursor = "$1::timestamptz IS NOT NULL AND $2::uuid IS NOT NULL";
    for (sql, index, sorts) in [
        (
            "SELECT * FROM audit_events WHERE (at, id) < ($1, $2) AND $3::uuid IS NOT NULL \
             ORDER BY at DESC, id DESC LIMIT 51"
                .to_owned(),
            "audit_events_at",
            false,
        ),
        (
            "SELECT * FROM audit_events WHERE subject = $3 AND kind = 'sign_in' \
             AND (at, id) < ($1, $2) ORDER BY at DESC, id DESC LIMIT 51"
                .to_owned(),
            "audit_events_subject",
            true,
        ),
        (
            format!(
                "SELECT * FROM audit_events WHERE actor = $3 AND outcome = 'failure' \
                 AND {cursor} ORDER BY at DESC, id DESC LIMIT 51"
            ),
            "audit_events_actor",
            true,
        ),
        (
            format!(
                "UPDATE audit_events SET ip = NULL WHERE (subject = $3 OR actor = $3) \
                 AND (identifier IS NOT NULL OR ip IS NOT NULL) AND {cursor}"
            ),
            "audit_events_actor",
            false,
        ),
    ] {
        let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")))
            .bind(at)
            .bind(id)
            .bind(user)
            .fetch_all(t.db.pool())
            .await
            .unwrap();
        let plan = plan.join("\n");
        assert!(plan.contains(index), "{sql}:\n{plan}");
        assert!(!plan.contains("Seq Scan"), "{sql}:\n{plan}");
        assert!(sorts || !plan.contains("Sort"), "{sql}:\n{plan}");
    }
}
