//! The legacy import from a `users.db` built with the legacy schema and real bcrypt hashes.

use std::path::Path;

use sqlx::Connection as _;
use user_core::password::HashCeiling;
use user_core::ports::UserRepository as _;
use user_core::testing::{FailingUserRepository, FixedClock};
use user_core::transfer::{IMPORT_BATCH, ImportEvent, ImportSummary};
use user_sqlite::legacy::{LegacyError, LegacyUsers};

use crate::TestDb;

/// One legacy row: id, username, email, hash, stored as BLOB (else TEXT).
type Row<'a> = (&'a str, &'a str, &'a str, Vec<u8>, bool);

/// The legacy schema, from legacy-wire.md, with hashes as Python wrote them.
async fn legacy_db(path: &Path, rows: &[Row<'_>]) {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    sqlx::query(
        "CREATE TABLE users (id TEXT PRIMARY KEY, username TEXT NOT NULL UNIQUE, \
         email TEXT NOT NULL UNIQUE, hashed_password TEXT NOT NULL)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let mut tx = conn.begin().await.unwrap();
    for (id, username, email, hash, as_blob) in rows {
        let q = sqlx::query("INSERT INTO users VALUES (?, ?, ?, ?)")
            .bind(*id)
            .bind(*username)
            .bind(*email);
        let q = if *as_blob {
            q.bind(hash.clone())
        } else {
            q.bind(String::from_utf8(hash.clone()).unwrap())
        };
        q.execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
    conn.close().await.unwrap();
}

/// Imports the legacy file into `t` and keeps what was reported.
async fn import(t: &TestDb, legacy: &Path) -> (ImportSummary, Vec<String>) {
    let mut events = Vec::new();
    let now = FixedClock::default();
    let summary = LegacyUsers::read(legacy)
        .await
        .unwrap()
        .import_into(
            &t.db.users(),
            &HashCeiling::default(),
            user_core::ports::Clock::now(&now),
            |e| {
                if matches!(e, ImportEvent::Rejected { .. }) {
                    events.push(e.to_string());
                }
            },
        )
        .await
        .unwrap();
    (summary, events)
}

const ALICE: &str = "6f1c2c0e-3b7a-4d55-9a3e-0c2f7d6b9e11";

#[tokio::test]
async fn imports_bcrypt_users_who_then_sign_in_and_reports_every_refused_row() {
    let t = TestDb::new().await;
    let legacy = t.dir.path().join("legacy.db");
    let bcrypt = |pw: &str| bcrypt::hash(pw, 4).unwrap().into_bytes();
    #[rustfmt::skip]
    let rows = [
        (ALICE, "alice", "Alice@Example.com", bcrypt("hunter2"), true),
        ("0b8f6e5e-2f44-4e0c-8f8b-6a1d3c2e7f90", "bob", "bob@example.com", bcrypt("bobs password"), false),
        ("2d5e1c7a-9b3f-4a6e-8c1d-5f0e2a4b6c8d", "ALICE", "alice.other@example.com", bcrypt("x"), true),
        ("4a7b9c1d-2e3f-4051-8a6b-7c8d9e0f1a2b", "x", "x@example.com", bcrypt("x"), true),
        ("5b8c0d2e-3f40-4162-9b7c-8d9e0f1a2b3c", "carol", "not-an-email", bcrypt("x"), true),
        ("6c9d1e3f-4051-4273-8c8d-9e0f1a2b3c4d", "dave", "dave@example.com", b"plaintext".to_vec(), true),
        ("not-a-uuid", "erin", "erin@example.com", bcrypt("x"), true),
    ];
    legacy_db(&legacy, &rows).await;

    let (first, events) = import(&t, &legacy).await;
    assert_eq!(
        (first.imported, first.already_present, first.rejected),
        (2, 0, 5)
    );
    let expected = [
        "row 3 (id 2d5e1c7a-9b3f-4a6e-8c1d-5f0e2a4b6c8d): rejected: username \"alice\" collides",
        "row 4 (id 4a7b9c1d-2e3f-4051-8a6b-7c8d9e0f1a2b): rejected: username \"x\"",
        "row 5 (id 5b8c0d2e-3f40-4162-9b7c-8d9e0f1a2b3c): rejected: email \"not-an-email\"",
        "row 6 (id 6c9d1e3f-4051-4273-8c8d-9e0f1a2b3c4d): rejected: hashed_password is not a bcrypt hash",
        "row 7 (id not-a-uuid): rejected: id \"not-a-uuid\" is not a UUID",
    ];
    assert_eq!(events.len(), expected.len(), "{events:#?}");
    for (event, start) in events.iter().zip(expected) {
        assert!(
            event.starts_with(start),
            "{event:?} should start with {start:?}"
        );
    }
    let (again, _) = import(&t, &legacy).await;
    assert_eq!(
        (again.imported, again.already_present, again.rejected),
        (0, 2, 5),
        "a rerun duplicates nothing"
    );

    let f = t.fixture();
    let alice = f.login("alice@example.com", "hunter2").await.unwrap();
    assert_eq!(alice.user.id.to_string(), ALICE);
    assert_eq!(alice.user.email.as_ref(), "alice@example.com");
    assert!(
        f.login("bob", "bobs password").await.is_ok(),
        "TEXT hashes too"
    );
    let wrong = f.login("alice", "hunter3").await;
    assert!(
        matches!(wrong, Err(user_core::error::AuthError::InvalidCredentials)),
        "{wrong:?}"
    );
    let hash = t.db.users().password_hash(alice.user.id).await.unwrap();
    assert!(
        hash.as_str().starts_with("$argon2id$"),
        "upgraded on that sign-in: {}",
        hash.as_str()
    );
}

#[tokio::test]
async fn progress_is_reported_after_each_batch() {
    let t = TestDb::new().await;
    let legacy = t.dir.path().join("legacy.db");
    let n = 2 * IMPORT_BATCH as u64 + 1;
    let ids: Vec<String> = (0..n).map(|i| format!("id-{i}")).collect();
    let rows: Vec<Row<'_>> = ids
        .iter()
        .map(|id| (id.as_str(), id.as_str(), id.as_str(), b"x".to_vec(), false))
        .collect();
    legacy_db(&legacy, &rows).await;
    let users = LegacyUsers::read(&legacy).await.unwrap();
    assert_eq!(users.len() as u64, n);
    assert!(!users.is_empty());
    let mut progress = Vec::new();
    let summary = users
        .import_into(
            &t.db.users(),
            &HashCeiling::default(),
            time::OffsetDateTime::UNIX_EPOCH,
            |e| {
                if let ImportEvent::Progress { read, total, .. } = e {
                    progress.push((read, total, e.to_string()));
                }
            },
        )
        .await
        .unwrap();
    assert_eq!(summary.rejected, n);
    let line = |read: u64| {
        (
            read,
            Some(n),
            format!("  {read}/{n} rows read (0 imported, 0 already present, {read} rejected)"),
        )
    };
    let batch = IMPORT_BATCH as u64;
    assert_eq!(progress, [line(batch), line(2 * batch), line(n)]);
}

/// A store failure mid-way keeps every batch written before it; a rerun completes.
#[tokio::test]
async fn a_failure_mid_way_keeps_the_batches_before_it_and_a_rerun_completes() {
    let t = TestDb::new().await;
    let legacy = t.dir.path().join("legacy.db");
    let hash = bcrypt::hash("hunter2", 4).unwrap().into_bytes();
    let n = IMPORT_BATCH + 500;
    let names: Vec<(String, String, String)> = (0..n)
        .map(|i| {
            (
                uuid::Uuid::new_v4().to_string(),
                format!("user{i}"),
                format!("user{i}@example.com"),
            )
        })
        .collect();
    let rows: Vec<Row<'_>> = names
        .iter()
        .map(|(id, name, email)| {
            (
                id.as_str(),
                name.as_str(),
                email.as_str(),
                hash.clone(),
                true,
            )
        })
        .collect();
    legacy_db(&legacy, &rows).await;
    let users = LegacyUsers::read(&legacy).await.unwrap();
    let failing = FailingUserRepository::new(std::sync::Arc::new(t.db.users()), 2);
    let now = time::OffsetDateTime::UNIX_EPOCH;
    let failed = users
        .clone()
        .import_into(&failing, &HashCeiling::default(), now, |_| {})
        .await;
    assert!(
        matches!(failed, Err(user_core::error::RepoError::Unavailable(_))),
        "{failed:?}"
    );
    let stored = t.db.users().export_page(None, 100_000).await.unwrap();
    assert_eq!(stored.len(), IMPORT_BATCH, "the first batch");

    let rerun = users
        .import_into(&failing, &HashCeiling::default(), now, |_| {})
        .await
        .unwrap();
    assert_eq!(
        (rerun.imported, rerun.already_present, rerun.rejected),
        (500, IMPORT_BATCH as u64, 0)
    );
    let last = format!("user{}", n - 1);
    assert!(t.fixture().login(&last, "hunter2").await.is_ok());
}

/// A legacy table without rows is read as empty, and importing it writes and reports nothing.
#[tokio::test]
async fn an_empty_legacy_table_imports_nothing() {
    let t = TestDb::new().await;
    let legacy = t.dir.path().join("legacy.db");
    legacy_db(&legacy, &[]).await;
    let users = LegacyUsers::read(&legacy).await.unwrap();
    assert!(users.is_empty());
    assert_eq!(users.len(), 0);
    let mut events = 0;
    let summary = users
        .import_into(
            &t.db.users(),
            &HashCeiling::default(),
            time::OffsetDateTime::UNIX_EPOCH,
            |_| events += 1,
        )
        .await
        .unwrap();
    assert_eq!(summary, ImportSummary::default());
    assert_eq!(events, 0);
}

#[tokio::test]
async fn a_missing_file_or_table_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.db");
    let err = LegacyUsers::read(&missing).await.unwrap_err();
    assert!(matches!(err, LegacyError::Missing { .. }), "{err:?}");
    assert!(!missing.exists(), "nothing is created");

    let other = dir.path().join("other.db");
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&other)
        .create_if_missing(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE notes (body TEXT)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let err = LegacyUsers::read(&other).await.unwrap_err();
    assert!(matches!(err, LegacyError::NoUsersTable(_)), "{err:?}");
    assert_eq!(err.to_string(), "the legacy database has no users table");
}

#[tokio::test]
async fn malformed_bcrypt_hashes_are_refused_and_never_printed() {
    let t = TestDb::new().await;
    let legacy = t.dir.path().join("legacy.db");
    let good = bcrypt::hash("hunter2", 4).unwrap();
    let truncated = good[..40].to_owned();
    let too_costly = format!("$2b$31${}", &good[7..]);
    let not_base64 = format!("{}!!!!!!!!!!", &good[..49]);
    #[rustfmt::skip]
    let rows = [
        ("1a2b3c4d-0000-4000-8000-000000000001", "ann", "ann@example.com", truncated.clone().into_bytes(), true),
        ("1a2b3c4d-0000-4000-8000-000000000002", "ben", "ben@example.com", too_costly.clone().into_bytes(), false),
        ("1a2b3c4d-0000-4000-8000-000000000003", "cat", "cat@example.com", not_base64.clone().into_bytes(), true),
        ("1a2b3c4d-0000-4000-8000-000000000004", "dan", "dan@example.com", good.clone().into_bytes(), true),
    ];
    legacy_db(&legacy, &rows).await;

    let users = LegacyUsers::read(&legacy).await.unwrap();
    let printed = format!("{users:?}{users:#?}");
    for hash in [&truncated, &too_costly, &not_base64, &good] {
        assert!(!printed.contains(hash.as_str()), "{printed}");
    }
    assert!(printed.contains("ann") && printed.contains("[REDACTED]"));

    let (summary, events) = import(&t, &legacy).await;
    assert_eq!((summary.imported, summary.rejected), (1, 3), "{events:#?}");
    for (event, row) in events.iter().zip(["row 1", "row 2", "row 3"]) {
        assert!(
            event.starts_with(row) && event.contains("the password hash is refused"),
            "{event}"
        );
        assert!(!event.contains(&good[7..20]), "{event}");
    }
    assert!(t.fixture().login("dan", "hunter2").await.is_ok());
}
