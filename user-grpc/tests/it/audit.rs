//! The audit log over gRPC: AdminService.ListAuditEvents, UserService.ListMyEvents and
//! ExportMyData, on the events the other RPCs record.

use std::time::Duration;

use prost::Message as _;
use tonic::Code;
use tonic_types::StatusExt as _;
use user_grpc::pb;

use crate::{PW, TestApp, authed, expect_code};

/// An audit log request with these filters.
fn filter(subject_id: &str, kind: &str, outcome: &str) -> pb::ListAuditEventsRequest {
    pb::ListAuditEventsRequest {
        subject_id: subject_id.into(),
        kind: kind.into(),
        outcome: outcome.into(),
        ..Default::default()
    }
}

/// The kinds of `events`, in order.
fn kinds(events: &[pb::AuditEvent]) -> Vec<&str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

/// The field violations of an INVALID_ARGUMENT status.
fn violations(status: &tonic::Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .expect("field violations")
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect()
}

/// Asserts that `events` are newest first, strictly.
fn assert_newest_first(events: &[pb::AuditEvent]) {
    for pair in events.windows(2) {
        let (newer, older) = (pair[0].at.unwrap(), pair[1].at.unwrap());
        assert!(
            (newer.seconds, newer.nanos) > (older.seconds, older.nanos),
            "not newest first: {events:#?}"
        );
    }
}

impl TestApp {
    /// A page of the audit log, as `token`'s holder.
    async fn audit_log(
        &mut self,
        token: &str,
        request: pb::ListAuditEventsRequest,
    ) -> Result<pb::ListAuditEventsResponse, tonic::Status> {
        self.admin
            .list_audit_events(authed(request, token))
            .await
            .map(tonic::Response::into_inner)
    }

    /// The caller's own events.
    async fn my_events(
        &mut self,
        token: &str,
        limit: u32,
    ) -> Result<pb::ListAuditEventsResponse, tonic::Status> {
        self.users
            .list_my_events(authed(pb::ListMyEventsRequest { limit }, token))
            .await
            .map(tonic::Response::into_inner)
    }

    /// A sign-in of `name` with a wrong password, which must fail.
    async fn wrong_sign_in(&mut self, name: &str) {
        let attempt = pb::LoginUserRequest {
            username: name.into(),
            password: "not the password at all".into(),
            ..Default::default()
        };
        expect_code(self.users.login_user(attempt).await, Code::Unauthenticated);
    }

    /// Moves the clock a second on, so events that follow are strictly newer.
    fn tick(&self) {
        self.clock.advance(Duration::from_secs(1));
    }
}

/// Root (an admin), Alice signed in once and failing once, Bob registered: their ids and
/// root's token.
async fn app_with_history() -> (TestApp, String, String, String) {
    let mut app = TestApp::spawn().await;
    app.create_admin("root").await;
    app.tick();
    let alice = app.register("alice").await.id;
    app.tick();
    app.login("alice").await;
    app.tick();
    app.wrong_sign_in("alice").await;
    app.tick();
    let bob = app.register("bob").await.id;
    app.tick();
    let root = app.login("root").await.token;
    (app, root, alice, bob)
}

#[tokio::test]
async fn list_audit_events_is_newest_first_with_filters() {
    let (mut app, root, alice, bob) = app_with_history().await;

    let all = app.audit_log(&root, filter("", "", "")).await.unwrap();
    assert_eq!(
        kinds(&all.events),
        [
            "sign_in",
            "registered",
            "sign_in",
            "sign_in",
            "registered",
            "registered"
        ]
    );
    assert_newest_first(&all.events);
    assert_eq!(all.next_page_token, "");

    let alices = app.audit_log(&root, filter(&alice, "", "")).await.unwrap();
    assert_eq!(kinds(&alices.events), ["sign_in", "sign_in", "registered"]);
    assert!(alices.events.iter().all(|e| e.subject_id == alice));
    let outcomes: Vec<_> = alices.events.iter().map(|e| e.outcome.as_str()).collect();
    assert_eq!(outcomes, ["failure", "success", "success"]);

    // The failed sign-in: no actor, the account it named, the address it came from.
    let failed = app
        .audit_log(&root, filter("", "sign_in", "failure"))
        .await
        .unwrap()
        .events;
    assert_eq!(failed.len(), 1, "{failed:#?}");
    let failed = &failed[0];
    assert_eq!(failed.actor_id, "");
    assert_eq!(failed.subject_id, alice);
    assert_eq!(failed.identifier, "alice");
    assert_eq!(failed.detail, "wrong_password");
    assert!(failed.ip.starts_with("127.0.0.1"), "{failed:?}");
    assert!(!failed.user_agent.is_empty(), "{failed:?}");
    assert!(!failed.id.is_empty());

    // A successful sign-in is done by the user who signed in.
    let by_alice = pb::ListAuditEventsRequest {
        actor_id: alice.clone(),
        ..Default::default()
    };
    let by_alice = app.audit_log(&root, by_alice).await.unwrap().events;
    assert_eq!(kinds(&by_alice), ["sign_in", "registered"]);
    assert!(by_alice.iter().all(|e| e.outcome == "success"));

    let bobs = app
        .audit_log(&root, filter(&bob, "registered", "success"))
        .await
        .unwrap()
        .events;
    assert_eq!(bobs.len(), 1);
    let registered = app
        .audit_log(&root, filter("", "registered", ""))
        .await
        .unwrap()
        .events;
    assert_eq!(registered.len(), 3, "root, alice and bob");
    app.stop().await;
}

#[tokio::test]
async fn list_audit_events_pages_with_keyset_tokens() {
    let (mut app, root, _, _) = app_with_history().await;
    let all = app
        .audit_log(&root, filter("", "", ""))
        .await
        .unwrap()
        .events;

    let mut seen = Vec::new();
    let mut pages = 0;
    let mut token = String::new();
    loop {
        // Six events make three pages; a token handed out forever must fail, not hang.
        assert!(pages < 10, "paging must end: {pages} pages so far");
        let request = pb::ListAuditEventsRequest {
            page_size: 2,
            page_token: token,
            ..Default::default()
        };
        let page = app.audit_log(&root, request).await.unwrap();
        pages += 1;
        assert!(page.events.len() <= 2);
        seen.extend(page.events);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 3, "six events, two a page");
    assert_eq!(seen, all, "the pages together are the whole log, in order");

    // An event recorded after the first page was read does not shift the pages after it.
    let first = pb::ListAuditEventsRequest {
        page_size: 2,
        ..Default::default()
    };
    let first = app.audit_log(&root, first).await.unwrap();
    app.tick();
    app.wrong_sign_in("bob").await;
    let second = pb::ListAuditEventsRequest {
        page_size: 2,
        page_token: first.next_page_token,
        ..Default::default()
    };
    let second = app.audit_log(&root, second).await.unwrap();
    assert_eq!(second.events, all[2..4]);
    app.stop().await;
}

#[tokio::test]
async fn list_audit_events_refuses_non_admins_anonymous_callers_and_bad_filters() {
    let (mut app, root, _, _) = app_with_history().await;
    let alice = app.login("alice").await.token;

    // A non-admin is refused before the filters are looked at.
    expect_code(
        app.audit_log(&alice, filter("", "", "")).await,
        Code::PermissionDenied,
    );
    expect_code(
        app.audit_log(&alice, filter("", "nap", "")).await,
        Code::PermissionDenied,
    );
    expect_code(
        app.admin
            .list_audit_events(filter("", "", ""))
            .await
            .map(drop),
        Code::Unauthenticated,
    );
    expect_code(
        app.audit_log("not-a-token", filter("", "", "")).await,
        Code::Unauthenticated,
    );

    let status = expect_code(
        app.audit_log(&root, filter("", "nap", "")).await,
        Code::InvalidArgument,
    );
    assert_eq!(violations(&status), ["kind"]);
    assert!(status.message().contains("kind"), "{status:?}");
    let bad_token = pb::ListAuditEventsRequest {
        page_token: "!!".into(),
        ..Default::default()
    };
    let status = expect_code(app.audit_log(&root, bad_token).await, Code::InvalidArgument);
    assert_eq!(violations(&status), ["page_token"]);

    // Every bad filter is named as on the wire, all at once.
    let everything_wrong = pb::ListAuditEventsRequest {
        subject_id: "someone".into(),
        actor_id: "x".into(),
        kind: "nap".into(),
        outcome: "maybe".into(),
        page_size: 201,
        page_token: "!!".into(),
    };
    let status = expect_code(
        app.audit_log(&root, everything_wrong).await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violations(&status),
        [
            "subject_id",
            "actor_id",
            "kind",
            "outcome",
            "page_size",
            "page_token"
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn list_my_events_shows_only_the_callers_events() {
    let (mut app, _, alice_id, bob_id) = app_with_history().await;
    app.tick();
    let bob = app.login("bob").await.token;
    app.tick();
    app.wrong_sign_in("bob").await;
    app.tick();
    let alice = app.login("alice").await.token;

    let mine = app.my_events(&alice, 0).await.unwrap();
    assert_eq!(
        kinds(&mine.events),
        ["sign_in", "sign_in", "sign_in", "registered"]
    );
    assert!(mine.events.iter().all(|e| e.subject_id == alice_id));
    assert_newest_first(&mine.events);
    assert_eq!(mine.next_page_token, "");
    // Alice sees the failed attempt on her account, with where it came from.
    let failed = &mine.events[1];
    assert_eq!(failed.outcome, "failure");
    assert!(failed.ip.starts_with("127.0.0.1"), "{failed:?}");

    let bobs = app.my_events(&bob, 0).await.unwrap();
    assert_eq!(kinds(&bobs.events), ["sign_in", "sign_in", "registered"]);
    assert!(bobs.events.iter().all(|e| e.subject_id == bob_id));

    let newest = app.my_events(&alice, 1).await.unwrap().events;
    assert_eq!(newest, mine.events[..1]);

    let status = expect_code(app.my_events(&alice, 201).await, Code::InvalidArgument);
    assert_eq!(violations(&status), ["limit"]);
    assert!(status.message().contains("200"), "{status:?}");
    expect_code(
        app.users
            .list_my_events(pb::ListMyEventsRequest { limit: 0 })
            .await
            .map(drop),
        Code::Unauthenticated,
    );
    app.stop().await;
}

#[tokio::test]
async fn list_my_events_returns_twenty_by_default() {
    let mut app = TestApp::spawn().await;
    app.register("alice").await;
    let mut token = String::new();
    for _ in 0..22 {
        app.tick();
        token = app.login("alice").await.token;
    }
    assert_eq!(app.my_events(&token, 0).await.unwrap().events.len(), 20);
    assert_eq!(app.my_events(&token, 200).await.unwrap().events.len(), 23);
    app.stop().await;
}

#[tokio::test]
async fn export_my_data_returns_the_profile_sessions_and_events_and_no_secret() {
    let (mut app, _, alice_id, _) = app_with_history().await;
    app.tick();
    let session = app.login("alice").await;

    let export = app
        .users
        .export_my_data(authed(pb::EmptyRequest {}, &session.token))
        .await
        .unwrap()
        .into_inner();
    let user = export.user.clone().unwrap();
    assert_eq!(
        (user.id.as_str(), user.username.as_str()),
        (alice_id.as_str(), "alice")
    );
    assert_eq!(export.sessions.len(), 2, "{:#?}", export.sessions);
    assert_eq!(
        export.sessions.iter().filter(|s| s.current).count(),
        1,
        "the calling session is marked"
    );
    assert_eq!(
        kinds(&export.events),
        ["sign_in", "sign_in", "sign_in", "registered"]
    );
    assert!(export.events.iter().all(|e| e.subject_id == alice_id));

    // No password hash, password or token anywhere in the answer.
    let hash = app
        .db
        .storage()
        .users
        .password_hash(alice_id.parse().unwrap())
        .await
        .unwrap();
    let bytes = export.encode_to_vec();
    let contains = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    for secret in [
        hash.as_str(),
        "$argon2",
        PW,
        &session.token,
        &session.refresh_token,
        &session.device_token,
    ] {
        assert!(!secret.is_empty());
        assert!(!contains(secret), "the export holds a secret");
    }

    // The export itself is recorded, and shows in the next one.
    app.tick();
    let again = app
        .users
        .export_my_data(authed(pb::EmptyRequest {}, &session.token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.events[0].kind, "data_exported");
    assert_eq!(again.events[0].actor_id, alice_id);

    expect_code(
        app.users
            .export_my_data(pb::EmptyRequest {})
            .await
            .map(drop),
        Code::Unauthenticated,
    );
    app.stop().await;
}

#[tokio::test]
async fn a_deleted_account_leaves_its_events_without_address_or_identifier() {
    let (mut app, root, alice_id, _) = app_with_history().await;
    app.tick();
    let alice = app.login("alice").await.token;
    app.tick();
    let wrong = pb::DeleteAccountRequest {
        password: "not the password at all".into(),
    };
    expect_code(
        app.users.delete_account(authed(wrong, &alice)).await,
        Code::Unauthenticated,
    );
    app.tick();
    let before = app
        .audit_log(&root, filter(&alice_id, "", ""))
        .await
        .unwrap();
    assert!(
        before.events.iter().any(|e| !e.ip.is_empty()),
        "addresses are kept while the account lives"
    );

    app.users
        .delete_account(authed(
            pb::DeleteAccountRequest {
                password: PW.into(),
            },
            &alice,
        ))
        .await
        .unwrap();

    let after = app
        .audit_log(&root, filter(&alice_id, "", ""))
        .await
        .unwrap()
        .events;
    assert_eq!(
        kinds(&after),
        [
            "deleted",
            "deleted",
            "sign_in",
            "sign_in",
            "sign_in",
            "registered"
        ]
    );
    let deleted = &after[0];
    assert_eq!(
        (deleted.outcome.as_str(), deleted.actor_id.as_str()),
        ("success", alice_id.as_str())
    );
    assert_eq!(after[1].outcome, "failure", "the wrong password first");
    for event in &after {
        assert_eq!(
            (
                event.ip.as_str(),
                event.user_agent.as_str(),
                event.identifier.as_str()
            ),
            ("", "", ""),
            "{event:?}"
        );
    }
    let ids = |events: &[pb::AuditEvent]| -> Vec<String> {
        events.iter().map(|e| e.id.clone()).collect()
    };
    assert_eq!(
        ids(&after[1..]),
        ids(&before.events),
        "nothing else was lost"
    );
    app.stop().await;
}
