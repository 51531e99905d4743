use std::sync::Arc;

use super::*;
use crate::testing::{FailingUserRepository, FixedClock, Fixture, memory_ports};

/// Runs an import and keeps what it reported, one line per event.
async fn import(users: &dyn UserRepository, input: &str) -> (ImportSummary, Vec<String>) {
    let mut events = Vec::new();
    let summary = import_users(users, &HashCeiling::default(), input.as_bytes(), |e| {
        events.push(e.to_string())
    })
    .await
    .unwrap();
    (summary, events)
}

fn without_progress(events: Vec<String>) -> Vec<String> {
    events
        .into_iter()
        .filter(|e| !e.contains("rows read"))
        .collect()
}

async fn exported(f: &Fixture) -> String {
    let mut out = Vec::new();
    let count = export_users(f.ports.users.as_ref(), &mut out)
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count() as u64, count);
    text
}

#[tokio::test]
async fn export_then_import_moves_users_with_hashes_roles_and_status() {
    let from = Fixture::in_memory();
    let root = from.register_admin("root").await;
    from.register("alice").await;
    let text = exported(&from).await;
    let first: UserRecord = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(
        (
            first.username.as_str(),
            first.role.as_str(),
            first.status.as_str()
        ),
        ("alice", "user", "active"),
        "username order"
    );

    let clock = Arc::new(FixedClock::default());
    let to = Fixture::with_ports(memory_ports(Arc::clone(&clock)), clock);
    let (summary, events) = import(to.ports.users.as_ref(), &text).await;
    let (progress, events): (Vec<String>, Vec<String>) =
        events.into_iter().partition(|e| e.contains("rows read"));
    assert_eq!(
        progress,
        ["  2 rows read (2 imported, 0 already present, 0 rejected)"]
    );
    assert_eq!(
        summary,
        ImportSummary {
            imported: 2,
            already_present: 0,
            rejected: 0
        }
    );
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(to.ports.users.get(root.id).await.unwrap(), root);
    assert!(
        to.login("root", Fixture::PASSWORD).await.is_ok(),
        "the hash came along"
    );

    let (again, _) = import(to.ports.users.as_ref(), &text).await;
    assert_eq!(
        (again.imported, again.already_present, again.rejected),
        (0, 2, 0),
        "a rerun duplicates nothing"
    );
}

#[tokio::test]
async fn bad_rows_are_reported_with_their_line_and_the_rest_imported() {
    let from = Fixture::in_memory();
    from.register("alice").await;
    let alice = exported(&from).await;
    let mut record: UserRecord = serde_json::from_str(alice.trim()).unwrap();

    record.id = Uuid::new_v4();
    record.username = "ALICE".into();
    record.email = "other@example.com".into();
    let collides = serde_json::to_string(&record).unwrap();
    record.id = Uuid::new_v4();
    record.username = "x".into();
    let too_short = serde_json::to_string(&record).unwrap();
    record.username = "bob".into();
    record.role = "emperor".into();
    let bad_role = serde_json::to_string(&record).unwrap();
    let input = format!("{alice}\n{{not json\n{collides}\n{too_short}\n{bad_role}\n");

    let to = Fixture::in_memory();
    let (summary, events) = import(to.ports.users.as_ref(), &input).await;
    let events = without_progress(events);
    assert_eq!(
        (summary.imported, summary.already_present, summary.rejected),
        (1, 0, 4)
    );
    assert_eq!(events.len(), 4, "{events:#?}");
    for (event, line) in events.iter().zip(["line 3", "line 4", "line 5", "line 6"]) {
        assert!(event.starts_with(&format!("{line}: rejected: ")), "{event}");
    }
    assert!(
        events[1].contains("username \"alice\" collides with another user"),
        "{}",
        events[1]
    );
    assert!(events[2].contains("username"), "{}", events[2]);
    assert!(events[3].contains("role"), "{}", events[3]);
    assert_eq!(
        summary.to_string(),
        "1 imported, 0 already present, 4 rejected"
    );
}

#[tokio::test]
async fn a_record_prints_without_its_password_hash() {
    let f = Fixture::in_memory();
    f.register("alice").await;
    let record: UserRecord = serde_json::from_str(exported(&f).await.trim()).unwrap();
    assert!(record.password_hash.starts_with("$argon2id$"));
    for printed in [format!("{record:?}"), format!("{record:#?}")] {
        assert!(!printed.contains(&record.password_hash), "{printed}");
        assert!(printed.contains("alice") && printed.contains("[REDACTED]"));
    }
}

#[tokio::test]
async fn hashes_the_hasher_would_refuse_are_rejected_with_a_reason() {
    let from = Fixture::in_memory();
    from.register("alice").await;
    let alice = exported(&from).await;
    let mut record: UserRecord = serde_json::from_str(alice.trim()).unwrap();
    let good = record.password_hash.clone();
    let bcrypt = bcrypt::hash("hunter2", 4).unwrap();
    let mut lines = Vec::new();
    for (n, hash) in [
        "plaintext".to_owned(),
        format!("$2b$04${}", "A".repeat(10)),
        format!("$2b$31${}", &bcrypt[7..]),
        good.replace("m=8", "m=4194304"),
        bcrypt.clone(),
    ]
    .into_iter()
    .enumerate()
    {
        record.id = Uuid::new_v4();
        record.username = format!("user{n}");
        record.email = format!("user{n}@example.com");
        record.password_hash = hash;
        lines.push(serde_json::to_string(&record).unwrap());
    }
    let to = Fixture::in_memory();
    let (summary, events) = import(to.ports.users.as_ref(), &lines.join("\n")).await;
    let events = without_progress(events);
    assert_eq!(
        (summary.imported, summary.already_present, summary.rejected),
        (1, 0, 4),
        "{events:#?}"
    );
    for (event, line) in events.iter().zip(["line 1", "line 2", "line 3", "line 4"]) {
        assert!(
            event.starts_with(&format!("{line}: rejected: "))
                && event.contains("the password hash is refused"),
            "{event}"
        );
        assert!(!event.contains("AAAAAAAAAA") && !event.contains(&good));
    }
    assert!(to.login("user4", "hunter2").await.is_ok(), "bcrypt is kept");
    assert!(to.ports.users.get(UserId::from(record.id)).await.is_ok());
}

/// `n` valid records `user00000`... in the export format, with a fixed test hash.
fn records(n: usize) -> Vec<String> {
    let hash = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";
    (0..n)
        .map(|i| {
            serde_json::to_string(&UserRecord {
                id: Uuid::new_v4(),
                username: format!("user{i:05}"),
                email: format!("user{i:05}@example.com"),
                display_name: Some(format!("User Nummer {i}")),
                role: if i % 100 == 0 { "admin" } else { "user" }.into(),
                status: if i % 7 == 0 { "disabled" } else { "active" }.into(),
                email_verified_at: None,
                created_at: OffsetDateTime::UNIX_EPOCH,
                updated_at: OffsetDateTime::UNIX_EPOCH,
                password_hash: hash.into(),
            })
            .unwrap()
        })
        .collect()
}

#[tokio::test]
async fn imports_in_batches_reporting_progress_and_every_line_in_order() {
    let mut lines = records(2 * IMPORT_BATCH + 10);
    lines[5] = "{not json".into();
    let mut clash: UserRecord = serde_json::from_str(&lines[3]).unwrap();
    clash.id = Uuid::new_v4();
    clash.email = "fresh@example.com".into();
    lines[IMPORT_BATCH + 1] = serde_json::to_string(&clash).unwrap();
    lines[IMPORT_BATCH + 2] = String::new();
    let to = Fixture::in_memory();
    let (summary, events) = import(to.ports.users.as_ref(), &lines.join("\n")).await;
    assert_eq!(
        (summary.imported, summary.already_present, summary.rejected),
        (2 * IMPORT_BATCH as u64 + 7, 0, 2)
    );
    let n = IMPORT_BATCH;
    assert_eq!(events.len(), 5, "{events:#?}");
    assert!(events[0].starts_with("line 6: rejected: "), "{}", events[0]);
    assert_eq!(
        events[1],
        format!(
            "  {n} rows read ({} imported, 0 already present, 1 rejected)",
            n - 1
        )
    );
    assert!(
        events[2].starts_with(&format!(
            "line {}: rejected: username \"user00003\" collides",
            n + 2
        )),
        "{}",
        events[2]
    );
    // The blank line is read, not a row of the batch.
    assert_eq!(
        events[3],
        format!(
            "  {} rows read ({} imported, 0 already present, 2 rejected)",
            2 * n + 1,
            2 * n - 2
        )
    );
    assert_eq!(
        events[4],
        format!(
            "  {} rows read ({} imported, 0 already present, 2 rejected)",
            2 * n + 10,
            2 * n + 7
        )
    );
}

#[tokio::test]
async fn a_store_failure_mid_way_keeps_every_batch_before_it_and_a_rerun_completes() {
    let input = records(3 * IMPORT_BATCH + 5).join("\n");
    let to = Fixture::in_memory();
    let failing = FailingUserRepository::new(Arc::clone(&to.ports.users), 3);
    let mut events = Vec::new();
    let failed = import_users(&failing, &HashCeiling::default(), input.as_bytes(), |e| {
        events.push(e.to_string())
    })
    .await;
    assert!(
        matches!(failed, Err(TransferError::Storage(_))),
        "{failed:?}"
    );
    assert_eq!(failing.insert_many_calls(), 3);
    assert_eq!(
        events.len(),
        2,
        "a progress report per committed batch: {events:#?}"
    );
    let stored = to.ports.users.export_page(None, 10_000).await.unwrap();
    assert_eq!(
        stored.len(),
        2 * IMPORT_BATCH,
        "the two batches before the failure"
    );

    let (summary, events) = import(&failing, &input).await;
    assert_eq!(
        (summary.imported, summary.already_present, summary.rejected),
        (IMPORT_BATCH as u64 + 5, 2 * IMPORT_BATCH as u64, 0),
        "the rerun completes: {events:#?}"
    );
    let (again, _) = import(to.ports.users.as_ref(), &input).await;
    assert_eq!(
        (again.imported, again.already_present, again.rejected),
        (0, 3 * IMPORT_BATCH as u64 + 5, 0)
    );
}

#[tokio::test]
async fn export_reads_every_page() {
    let input = records(EXPORT_PAGE as usize + 3).join("\n");
    let from = Fixture::in_memory();
    let (summary, _) = import(from.ports.users.as_ref(), &input).await;
    assert_eq!(summary.imported, u64::from(EXPORT_PAGE) + 3);
    let text = exported(&from).await;
    let names: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<UserRecord>(l).unwrap().username)
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(names, sorted, "username order, each once");
    assert_eq!(names.len(), EXPORT_PAGE as usize + 3);
}
