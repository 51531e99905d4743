//! Data survives reopening; migrations apply once; bad rows are errors, not panics.

use user_core::domain::{AuditEvent, AuditKind, AuditQuery, NewUser, PasswordHash};
use user_core::error::RepoError;
use user_core::ports::{AuditLog as _, UserRepository};
use user_core::testing::conformance::user;
use user_sqlite::{Durability, SqliteConfig, SqliteDatabase};

use crate::TestDb;

#[tokio::test]
async fn data_survives_closing_and_reopening_the_file() {
    let t = TestDb::new().await;
    let alice = user("alice");
    t.db.users()
        .insert(&NewUser {
            user: alice.clone(),
            password_hash: PasswordHash::new("$2b$04$abcdefghijklmnopqrstuu"),
        })
        .await
        .unwrap();
    t.db.close().await;

    let reopened = SqliteDatabase::open(&SqliteConfig::new(t.path()))
        .await
        .unwrap();
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
async fn the_file_uses_wal_full_sync_foreign_keys_and_a_page_cache() {
    let t = TestDb::new().await;
    t.db.close().await;
    let url = format!("sqlite:{}", t.path().display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal", "WAL is a property of the file");
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(applied, migrations());

    // The pool's own connections carry the per-connection settings.
    let db = SqliteDatabase::open(&SqliteConfig::new(t.path()))
        .await
        .unwrap();
    let pool = db.pool().clone();
    let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(sync, 2, "FULL");
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(fk, 1);
    let cache: i64 = sqlx::query_scalar("PRAGMA cache_size")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(cache, -16 * 1024, "16 MiB, in KiB");
    let normal = SqliteConfig {
        durability: Durability::Normal,
        cache_kib: 4096,
        ..SqliteConfig::new(t.path())
    };
    let db = SqliteDatabase::open(&normal).await.unwrap();
    let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(sync, 1, "NORMAL");
    let cache: i64 = sqlx::query_scalar("PRAGMA cache_size")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(cache, -4096);
}

#[tokio::test]
async fn reopening_an_up_to_date_file_runs_no_migration_again() {
    let t = TestDb::new().await;
    for _ in 0..3 {
        let db = SqliteDatabase::open(&SqliteConfig::new(t.path()))
            .await
            .unwrap();
        db.close().await;
    }
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(t.db.pool())
        .await
        .unwrap();
    assert_eq!(count, migrations(), "each applied once");
}

#[tokio::test]
async fn a_missing_folder_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-folder").join("users.db");
    let err = SqliteDatabase::open(&SqliteConfig::new(&path))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no-such-folder"), "{err}");
}

#[tokio::test]
async fn corrupt_rows_are_unavailable_errors_not_panics() {
    let t = TestDb::new().await;
    let good = user("alice");
    t.db.users()
        .insert(&NewUser {
            user: good.clone(),
            password_hash: PasswordHash::new("x"),
        })
        .await
        .unwrap();
    sqlx::query("UPDATE users SET username = 'not valid!' WHERE id = ?")
        .bind(good.id.to_string())
        .execute(t.db.pool())
        .await
        .unwrap();
    let got = t.db.users().get(good.id).await;
    assert!(matches!(got, Err(RepoError::Unavailable(_))), "{got:?}");
    let msg = std::error::Error::source(&got.unwrap_err()).map(|e| e.to_string());
    assert!(msg.unwrap_or_default().contains("corrupt users row"));

    // CHECK constraints keep roles and statuses to known values.
    let bad_role = sqlx::query("UPDATE users SET role = 'root'")
        .execute(t.db.pool())
        .await;
    assert!(
        matches!(&bad_role, Err(sqlx::Error::Database(e)) if e.is_check_violation()),
        "{bad_role:?}"
    );
}

/// An audit row of a kind this release does not know (a newer one wrote it) is an error
/// naming the kind, not a panic.
#[tokio::test]
async fn an_unknown_audit_kind_is_an_unavailable_error() {
    let t = TestDb::new().await;
    sqlx::query(
        "INSERT INTO audit_events (id, at, kind, outcome) \
         VALUES ('0190c6d2-8a3e-7000-8000-000000000001', 0, 'nap', 'success')",
    )
    .execute(t.db.pool())
    .await
    .unwrap();
    let got = t.db.audit().list(&AuditQuery::default()).await;
    assert!(matches!(got, Err(RepoError::Unavailable(_))), "{got:?}");
    let report = user_core::error::report(&got.unwrap_err());
    assert!(report.contains("unknown kind \"nap\""), "{report}");
}

/// A file migrated before the audit log (0001 to 0003) gains it on opening, its data kept.
#[tokio::test]
async fn a_database_from_before_the_audit_log_gains_it_on_opening() {
    let t = TestDb::new().await;
    let alice = user("alice");
    t.db.users()
        .insert(&NewUser {
            user: alice.clone(),
            password_hash: PasswordHash::new("h"),
        })
        .await
        .unwrap();
    // Back to where 0003 left the file.
    sqlx::query("DROP TABLE audit_events")
        .execute(t.db.pool())
        .await
        .unwrap();
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 4")
        .execute(t.db.pool())
        .await
        .unwrap();
    t.db.close().await;

    let reopened = SqliteDatabase::open(&SqliteConfig::new(t.path()))
        .await
        .unwrap();
    assert_eq!(reopened.users().get(alice.id).await.unwrap(), alice);
    let event = AuditEvent::new(AuditKind::Registered, alice.created_at).on(alice.id);
    reopened.audit().record(&event).await.unwrap();
    let page = reopened.audit().list(&AuditQuery::default()).await.unwrap();
    assert_eq!(page.events, [event]);
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(reopened.pool())
        .await
        .unwrap();
    assert_eq!(count, migrations());
}

/// The audit log's pages and purge walk an index, filtered by subject or actor or not.
#[tokio::test]
async fn audit_queries_use_the_indexes() {
    let t = TestDb::new().await;
    for (sql, index) in [
        (
            "SELECT id FROM audit_events WHERE (at, id) < (?, ?) \
             ORDER BY at DESC, id DESC LIMIT 51",
            "audit_events_at",
        ),
        (
            "SELECT id FROM audit_events WHERE subject = ? AND kind = ? \
             AND (at, id) < (?, ?) ORDER BY at DESC, id DESC LIMIT 51",
            "audit_events_subject",
        ),
        (
            "SELECT id FROM audit_events WHERE actor = ? AND outcome = ? \
             ORDER BY at DESC, id DESC LIMIT 51",
            "audit_events_actor",
        ),
        ("DELETE FROM audit_events WHERE at < ?", "audit_events_at"),
        (
            // The shape of `anonymize`: both indexes, one for each side of the OR.
            "UPDATE audit_events SET ip = NULL WHERE (subject = ?1 OR actor = ?1) \
             AND (identifier IS NOT NULL OR ip IS NOT NULL)",
            "audit_events_subject",
        ),
        (
            "UPDATE audit_events SET ip = NULL WHERE (subject = ?1 OR actor = ?1) \
             AND (identifier IS NOT NULL OR ip IS NOT NULL)",
            "audit_events_actor",
        ),
    ] {
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                .fetch_all(t.db.pool())
                .await
                .unwrap();
        let plan: Vec<&str> = plan.iter().map(|row| row.3.as_str()).collect();
        assert!(
            plan.iter().any(|step| step.contains(index)),
            "{sql}: {plan:?}"
        );
        assert!(
            !plan.iter().any(|step| step.contains("TEMP B-TREE")),
            "{sql} sorts: {plan:?}"
        );
    }
}

/// The second factors' purge and per-user deletes walk an index, never the whole table.
#[tokio::test]
async fn second_factor_queries_use_the_indexes() {
    let t = TestDb::new().await;
    for (sql, index) in [
        (
            "DELETE FROM sign_in_challenges WHERE expires_at < ?",
            "sign_in_challenges_expires_at",
        ),
        (
            "DELETE FROM trusted_devices WHERE expires_at < ?",
            "trusted_devices_expires_at",
        ),
        (
            "DELETE FROM totp_factors WHERE confirmed_at IS NULL AND created_at < ?",
            "totp_factors_pending_created_at",
        ),
        (
            "DELETE FROM trusted_devices WHERE user_id = ?",
            "trusted_devices_user_id",
        ),
        (
            "DELETE FROM sign_in_challenges WHERE user_id = ?",
            "sign_in_challenges_user_id",
        ),
        (
            "SELECT COUNT(*) FROM recovery_codes WHERE user_id = ?",
            "sqlite_autoindex_recovery_codes_1",
        ),
    ] {
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                .fetch_all(t.db.pool())
                .await
                .unwrap();
        let plan: Vec<&str> = plan.iter().map(|row| row.3.as_str()).collect();
        assert!(
            plan.iter().any(|step| step.contains(index)),
            "{sql}: {plan:?}"
        );
    }
}

/// A stored device hash that is not 32 bytes reads as an error naming the table, not a
/// panic; CHECK constraints keep challenge purposes to known values.
#[tokio::test]
async fn a_bad_challenge_row_is_an_unavailable_error() {
    use user_core::domain::TokenHash;
    use user_core::ports::SecondFactorStore as _;

    let t = TestDb::new().await;
    let alice = user("alice");
    crate::insert_user(&t.db, &alice).await;
    sqlx::query(
        "INSERT INTO sign_in_challenges \
         (hash, user_id, purpose, device_hash, created_at, expires_at) \
         VALUES (?, ?, 'second_factor', x'0102', 0, 9000000000000000000)",
    )
    .bind(TokenHash::of("c").as_bytes().as_slice())
    .bind(alice.id.to_string())
    .execute(t.db.pool())
    .await
    .unwrap();
    let got =
        t.db.factors()
            .find_challenge(&TokenHash::of("c"), alice.created_at)
            .await;
    assert!(matches!(got, Err(RepoError::Unavailable(_))), "{got:?}");
    let report = user_core::error::report(&got.unwrap_err());
    assert!(
        report.contains("corrupt sign_in_challenges row"),
        "{report}"
    );

    let bad_purpose = sqlx::query("UPDATE sign_in_challenges SET purpose = 'nap'")
        .execute(t.db.pool())
        .await;
    assert!(
        matches!(&bad_purpose, Err(sqlx::Error::Database(e)) if e.is_check_violation()),
        "{bad_purpose:?}"
    );
}

/// How many migrations the crate ships.
fn migrations() -> i64 {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
    let n = std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
        })
        .count();
    i64::try_from(n).unwrap()
}
