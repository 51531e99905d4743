//! The audit log and the data rights over the JSON API: the admin's log (filters, keyset
//! pages, refusals), the caller's own events, and the data export.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use user_core::ports::UserRepository as _;

use crate::{PW, Reply, TestApp};

/// The events of an answer.
fn events(r: &Reply) -> Vec<Value> {
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json()["events"].as_array().unwrap().clone()
}

/// One page of the admin's log at `query`.
async fn audit(app: &TestApp, admin: &str, query: &str) -> Reply {
    app.json(
        Method::GET,
        &format!("/api/v1/admin/audit{query}"),
        None,
        Some(admin),
    )
    .await
}

/// A failed sign-in over the API.
async fn wrong_password(app: &TestApp, identifier: &str) {
    let body = json!({"identifier": identifier, "password": "not the password"});
    let r = app
        .json(Method::POST, "/api/v1/auth/login", Some(body), None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
}

fn field_names(r: &Reply) -> Vec<String> {
    r.json()["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap().to_owned())
        .collect()
}

/// Admin `root`, users alice and bob, and a few seconds of activity by each.
async fn busy_app() -> (TestApp, String, String, String) {
    let app = TestApp::new().await;
    app.create_admin("root").await;
    let alice = app.register("alice").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.clock.advance(Duration::from_secs(1));
    let bob = app.register("bob").await["id"].as_str().unwrap().to_owned();
    for name in ["alice", "bob", "alice"] {
        app.clock.advance(Duration::from_secs(1));
        app.login(name).await;
        app.clock.advance(Duration::from_secs(1));
        wrong_password(&app, name).await;
    }
    app.clock.advance(Duration::from_secs(1));
    let admin = app.token("root").await;
    (app, admin, alice, bob)
}

#[tokio::test]
async fn the_admin_log_is_newest_first_filtered_and_paged() {
    let (app, admin, alice, bob) = busy_app().await;
    let all = events(&audit(&app, &admin, "?page_size=200").await);
    assert!(all.len() >= 10, "{all:?}");
    // Newest first: by time, then by id.
    let keys: Vec<(String, String)> = all
        .iter()
        .map(|e| {
            (
                e["at"].as_str().unwrap().to_owned(),
                e["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(keys, sorted);
    assert_eq!(all[0]["kind"], "sign_in", "root's sign-in is the newest");
    let r = audit(&app, &admin, "").await;
    assert!(r.json()["next_page_token"].is_null(), "{}", r.text);
    assert_eq!(events(&r), all, "the default page holds them all");

    // Filters: each alone and together.
    for e in events(&audit(&app, &admin, &format!("?subject={alice}")).await) {
        assert_eq!(e["subject_id"], alice.as_str());
    }
    let failures = events(&audit(&app, &admin, "?kind=sign_in&outcome=failure").await);
    assert_eq!(failures.len(), 3);
    for e in &failures {
        assert_eq!(
            (&e["kind"], &e["outcome"]),
            (&json!("sign_in"), &json!("failure"))
        );
    }
    let bobs = events(
        &audit(
            &app,
            &admin,
            &format!("?actor={bob}&kind=sign_in&outcome=success"),
        )
        .await,
    );
    assert_eq!(bobs.len(), 1, "{bobs:?}");
    assert_eq!(bobs[0]["actor_id"], bob.as_str());
    let registered = events(&audit(&app, &admin, "?kind=registered").await);
    let subjects: BTreeSet<&str> = registered
        .iter()
        .map(|e| e["subject_id"].as_str().unwrap())
        .collect();
    assert!(subjects.contains(alice.as_str()) && subjects.contains(bob.as_str()));

    // Keyset pages of two, with a filter: every event once, in the same order.
    let alices = events(&audit(&app, &admin, &format!("?subject={alice}")).await);
    let mut paged = Vec::new();
    let mut pages = 0;
    let mut query = format!("?subject={alice}&page_size=2");
    loop {
        // At most one page more than the full ones (an empty last page is allowed).
        assert!(
            pages <= alices.len() / 2,
            "paging must end: {pages} pages of two for {} events",
            alices.len()
        );
        let r = audit(&app, &admin, &query).await;
        let page = events(&r);
        assert!(page.len() <= 2);
        paged.extend(page);
        pages += 1;
        match r.json()["next_page_token"].as_str() {
            Some(token) => query = format!("?subject={alice}&page_size=2&page_token={token}"),
            None => break,
        }
    }
    assert!(pages >= 3, "{pages} pages");
    assert_eq!(paged, alices);
}

#[tokio::test]
async fn the_admin_log_is_for_admins_and_names_every_bad_filter() {
    let (app, admin, _, _) = busy_app().await;
    let r = app
        .json(Method::GET, "/api/v1/admin/audit", None, None)
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNAUTHORIZED, "unauthenticated")
    );
    let alice = app.token("alice").await;
    let r = audit(&app, &alice, "").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::FORBIDDEN, "forbidden")
    );

    let r = audit(
        &app,
        &admin,
        "?subject=nobody&actor=42&kind=nap&outcome=maybe&page_size=0&page_token=!",
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(
        field_names(&r),
        [
            "page_size",
            "subject",
            "actor",
            "kind",
            "outcome",
            "page_token"
        ]
    );
    for query in ["?page_size=201", "?page_size=ten"] {
        let r = audit(&app, &admin, query).await;
        assert_eq!(field_names(&r), ["page_size"], "{query}");
    }
    let r = audit(&app, &admin, "?kind=sign_in&kind=logout").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    // Blank filters, as an empty form sends them, filter nothing.
    let r = audit(&app, &admin, "?subject=&actor=&kind=&outcome=&page_token=").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn a_typo_at_sign_in_is_not_kept_but_a_known_identifier_is() {
    let app = TestApp::new().await;
    app.create_admin("root").await;
    let alice = app.register("alice").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wrong_password(&app, "alise-typo").await;
    app.clock.advance(Duration::from_secs(1));
    wrong_password(&app, "ALICE@example.com").await;
    let admin = app.token("root").await;
    let r = audit(&app, &admin, "?kind=sign_in&outcome=failure").await;
    assert!(!r.text.contains("alise-typo"), "{}", r.text);
    assert!(!r.text.contains("not the password"), "{}", r.text);
    let failures = events(&r);
    assert_eq!(failures.len(), 2, "{failures:?}");
    let (known, unknown) = (&failures[0], &failures[1]);
    assert_eq!(known["subject_id"], alice.as_str());
    assert_eq!(known["identifier"], "ALICE@example.com");
    assert!(unknown["subject_id"].is_null() && unknown["identifier"].is_null());
    assert!(unknown["actor_id"].is_null());
}

/// A JSON request with a `User-Agent`.
async fn as_agent(app: &TestApp, method: Method, path: &str, body: Value, token: &str) -> Reply {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, "admin-console/1.0")
        .body(Body::from(body.to_string()))
        .unwrap();
    app.send(request).await
}

#[tokio::test]
async fn my_events_are_mine_only_and_hide_the_admin_s_client() {
    let (app, admin, alice, bob) = busy_app().await;
    let path = format!("/api/v1/admin/users/{alice}");
    let r = as_agent(
        &app,
        Method::PATCH,
        &path,
        json!({"display_name": "Al"}),
        &admin,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let token = app.token("alice").await;
    let mine = |query: &'static str| {
        let app = &app;
        let token = token.clone();
        async move {
            app.json(
                Method::GET,
                &format!("/api/v1/me/events{query}"),
                None,
                Some(&token),
            )
            .await
        }
    };
    let list = events(&mine("").await);
    assert!(list.len() >= 5, "{list:?}");
    for e in &list {
        assert_eq!(e["subject_id"], alice.as_str(), "{e}");
        assert_ne!(e["actor_id"], bob.as_str());
    }
    assert_eq!(list[0]["kind"], "sign_in", "newest first");
    // What the admin did is there, without the admin's user agent; the admin's log has it.
    let edit = list
        .iter()
        .find(|e| e["kind"] == "profile_updated")
        .expect("the admin's edit");
    assert!(edit["user_agent"].is_null(), "{edit}");
    let logged = events(
        &audit(
            &app,
            &admin,
            &format!("?subject={alice}&kind=profile_updated"),
        )
        .await,
    );
    assert_eq!(logged[0]["user_agent"], "admin-console/1.0");

    assert_eq!(events(&mine("?limit=1").await).len(), 1);
    for bad in ["?limit=0", "?limit=201", "?limit=many"] {
        let r = mine(bad).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert_eq!(field_names(&r), ["limit"], "{bad}");
    }
    let r = mine("?limit=1&limit=2").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app.json(Method::GET, "/api/v1/me/events", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // Twenty by default.
    for _ in 0..20 {
        app.login("alice").await;
    }
    assert_eq!(events(&mine("").await).len(), 20);
    assert_eq!(events(&mine("?limit=200").await).len(), list.len() + 20);
}

#[tokio::test]
async fn the_export_is_an_attachment_of_my_data_without_secrets() {
    let (app, admin, alice, _) = busy_app().await;
    let tokens = app.login("alice").await;
    let access = tokens["access_token"].as_str().unwrap();
    let r = app
        .json(Method::GET, "/api/v1/me/export", None, Some(access))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.headers[header::CONTENT_DISPOSITION],
        r#"attachment; filename="my-data.json""#
    );
    assert!(
        r.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
    let data = r.json();
    assert_eq!(data["user"]["id"], alice.as_str());
    assert_eq!(data["user"]["username"], "alice");
    let sessions = data["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 3, "two sign-ins and this one: {sessions:?}");
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    let kinds: BTreeSet<&str> = data["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains("registered") && kinds.contains("sign_in"),
        "{kinds:?}"
    );
    for e in data["events"].as_array().unwrap() {
        assert_eq!(e["subject_id"], alice.as_str());
    }

    // No secret of any kind.
    let hash = app
        .db
        .users()
        .password_hash(alice.parse().unwrap())
        .await
        .unwrap();
    for secret in [
        hash.as_str(),
        "$argon2",
        PW,
        access,
        tokens["refresh_token"].as_str().unwrap(),
        tokens["device_token"].as_str().unwrap(),
    ] {
        assert!(!r.text.contains(secret), "the export holds a secret");
    }

    // The download is on the record; without a token there is nothing.
    let exported = events(
        &audit(
            &app,
            &admin,
            &format!("?subject={alice}&kind=data_exported"),
        )
        .await,
    );
    assert_eq!(exported.len(), 1);
    let r = app.json(Method::GET, "/api/v1/me/export", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn deleting_my_account_still_needs_the_password() {
    let app = TestApp::new().await;
    app.register("alice").await;
    let token = app.token("alice").await;
    let r = app
        .json(Method::DELETE, "/api/v1/me", None, Some(&token))
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.text);
    let r = app
        .json(Method::DELETE, "/api/v1/me", Some(json!({})), Some(&token))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let r = app
        .json(
            Method::DELETE,
            "/api/v1/me",
            Some(json!({"password": "not it"})),
            Some(&token),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert_eq!(
        app.json(Method::GET, "/api/v1/me", None, Some(&token))
            .await
            .status,
        StatusCode::OK
    );
}
