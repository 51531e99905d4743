//! The refusals of the JSON API that a client can meet, each with its effect: a refused
//! change leaves the account as it was (read back from the store), an accepted one does what
//! it says (sessions revoked in the store, a re-enabled user signs in again).

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use user_core::domain::{Role, Session, SessionId, User, UserId, UserStatus, Username};
use user_core::error::RepoError;
use user_core::ports::{Clock as _, SessionStore as _, UserRepository as _};

use crate::{PW, Reply, TestApp};

const MISSING: &str = "00000000-0000-7000-8000-000000000000";

/// An app with the admin `root` and the users `alice` and `bob`; returns bob's id.
async fn app_with_users() -> (TestApp, String) {
    let app = TestApp::new().await;
    app.create_admin("root").await;
    app.register("alice").await;
    let bob = app.register("bob").await["id"].as_str().unwrap().to_owned();
    (app, bob)
}

/// The user as stored.
async fn stored(app: &TestApp, id: &str) -> User {
    app.db
        .users()
        .get(id.parse::<UserId>().unwrap())
        .await
        .unwrap()
}

/// The session as stored.
async fn session(app: &TestApp, id: &str) -> Result<Session, RepoError> {
    app.db
        .sessions()
        .get(id.parse::<SessionId>().unwrap())
        .await
}

/// The ids of the caller's sessions, as `GET /me/sessions` lists them.
async fn session_ids(app: &TestApp, token: &str) -> Vec<String> {
    let r = app
        .json(Method::GET, "/api/v1/me/sessions", None, Some(token))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The id of the token's user.
async fn my_id(app: &TestApp, token: &str) -> String {
    let r = app.json(Method::GET, "/api/v1/me", None, Some(token)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json()["id"].as_str().unwrap().to_owned()
}

/// A sign-in over the API, whatever its answer.
async fn sign_in(app: &TestApp, name: &str) -> Reply {
    let body = json!({ "identifier": name, "password": PW });
    app.json(Method::POST, "/api/v1/auth/login", Some(body), None)
        .await
}

/// The names of the fields an error body lists.
fn fields(r: &Reply) -> Vec<String> {
    r.json()["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("no fields: {}", r.text))
        .iter()
        .map(|f| f["field"].as_str().unwrap().to_owned())
        .collect()
}

/// Every admin route that reads or changes one user, with a body it accepts.
fn admin_calls(id: &str) -> Vec<(Method, String, Option<Value>)> {
    let user = format!("/api/v1/admin/users/{id}");
    vec![
        (Method::GET, user.clone(), None),
        (
            Method::PATCH,
            user.clone(),
            Some(
                json!({"username": "mallory", "email": "mallory@example.com", "display_name": "M"}),
            ),
        ),
        (
            Method::PUT,
            format!("{user}/role"),
            Some(json!({"role": "admin"})),
        ),
        (
            Method::PUT,
            format!("{user}/status"),
            Some(json!({"status": "disabled"})),
        ),
        (Method::DELETE, user, None),
    ]
}

#[tokio::test]
async fn a_non_admin_is_refused_every_admin_call_on_a_real_user_and_nothing_changes() {
    let (app, bob) = app_with_users().await;
    let alice = app.token("alice").await;
    let alice_id = my_id(&app, &alice).await;
    let bob_token = app.token("bob").await;
    let bob_sessions = session_ids(&app, &bob_token).await;
    // On bob, and on alice herself (making herself an admin, say).
    for target in [&bob, &alice_id] {
        for (method, path, body) in admin_calls(target) {
            let r = app.json(method.clone(), &path, body, Some(&alice)).await;
            assert_eq!(
                (r.status, r.code().as_str()),
                (StatusCode::FORBIDDEN, "forbidden"),
                "{method} {path}: {}",
                r.text
            );
            assert!(!r.text.contains("bob@example.com"), "no data in a refusal");
        }
    }
    for (id, name) in [(&bob, "bob"), (&alice_id, "alice")] {
        let user = stored(&app, id).await;
        assert_eq!(user.username.as_str(), name);
        assert_eq!(user.email.as_str(), format!("{name}@example.com"));
        assert!(user.display_name.is_none());
        assert_eq!((user.role, user.status), (Role::User, UserStatus::Active));
    }
    for id in &bob_sessions {
        assert_eq!(session(&app, id).await.unwrap().revoked_at, None);
    }
    let r = app
        .json(Method::GET, "/api/v1/me", None, Some(&bob_token))
        .await;
    assert_eq!(r.status, StatusCode::OK, "bob's session still works");
}

#[tokio::test]
async fn admin_calls_on_a_missing_user_are_404_and_on_a_malformed_id_422() {
    let (app, _) = app_with_users().await;
    let root = app.token("root").await;
    for (method, path, body) in admin_calls(MISSING) {
        let r = app.json(method.clone(), &path, body, Some(&root)).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{method} {path}: {}",
            r.text
        );
    }
    for (method, path, body) in admin_calls("not-an-id") {
        let r = app.json(method.clone(), &path, body, Some(&root)).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            "{method} {path}: {}",
            r.text
        );
        assert_eq!(fields(&r), ["user_id"], "{method} {path}");
    }
    // Nobody was created or renamed on the way.
    let list = app
        .json(Method::GET, "/api/v1/admin/users", None, Some(&root))
        .await
        .json();
    let names: Vec<_> = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob", "root"]);
}

#[tokio::test]
async fn an_admin_edit_to_a_taken_name_or_address_is_409_and_changes_nothing() {
    let (app, bob) = app_with_users().await;
    let root = app.token("root").await;
    let path = format!("/api/v1/admin/users/{bob}");
    for (body, field) in [
        (
            json!({"username": "ALICE", "display_name": "Robert"}),
            "username",
        ),
        (
            json!({"email": "Alice@Example.com", "display_name": "Robert"}),
            "email",
        ),
    ] {
        let r = app
            .json(Method::PATCH, &path, Some(body), Some(&root))
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::CONFLICT, "conflict"),
            "{}",
            r.text
        );
        assert_eq!(fields(&r), [field]);
        let user = stored(&app, &bob).await;
        assert_eq!(user.username.as_str(), "bob");
        assert_eq!(user.email.as_str(), "bob@example.com");
        assert!(
            user.display_name.is_none(),
            "a refused edit changes no field"
        );
    }
    let r = app
        .json(
            Method::PATCH,
            &path,
            Some(json!({"username": "x!", "email": "nope", "display_name": "Robert"})),
            Some(&root),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        "{}",
        r.text
    );
    assert_eq!(fields(&r), ["username", "email"]);
    assert!(stored(&app, &bob).await.display_name.is_none());
    // Bob still signs in under his name.
    assert_eq!(sign_in(&app, "bob").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_role_or_status_that_does_not_parse_is_422_by_its_field() {
    let (app, bob) = app_with_users().await;
    let root = app.token("root").await;
    let path = format!("/api/v1/admin/users/{bob}");
    for (route, body, field) in [
        ("role", json!({"role": "root"}), "role"),
        ("role", json!({"role": "ADMIN "}), "role"),
        ("status", json!({"status": "gone"}), "status"),
    ] {
        let r = app
            .json(
                Method::PUT,
                &format!("{path}/{route}"),
                Some(body.clone()),
                Some(&root),
            )
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            "{route} {body}: {}",
            r.text
        );
        assert!(
            r.json()["message"].as_str().unwrap().contains(field),
            "{}",
            r.text
        );
    }
    for (route, body) in [("role", json!({})), ("status", json!({}))] {
        let r = app
            .json(
                Method::PUT,
                &format!("{path}/{route}"),
                Some(body),
                Some(&root),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{route}: {}",
            r.text
        );
        assert!(
            r.json()["message"].as_str().unwrap().contains(route),
            "{}",
            r.text
        );
    }
    let user = stored(&app, &bob).await;
    assert_eq!((user.role, user.status), (Role::User, UserStatus::Active));
}

#[tokio::test]
async fn the_last_active_admin_keeps_role_status_account_and_session() {
    let (app, bob) = app_with_users().await;
    let root = app.token("root").await;
    let root_id = my_id(&app, &root).await;
    let user = format!("/api/v1/admin/users/{root_id}");
    let refusals = [
        (
            Method::PUT,
            format!("{user}/role"),
            Some(json!({"role": "user"})),
        ),
        (
            Method::PUT,
            format!("{user}/status"),
            Some(json!({"status": "disabled"})),
        ),
        (Method::DELETE, user.clone(), None),
        (
            Method::DELETE,
            "/api/v1/me".to_owned(),
            Some(json!({"password": PW})),
        ),
    ];
    for (method, path, body) in &refusals {
        let r = app
            .json(method.clone(), path, body.clone(), Some(&root))
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::CONFLICT, "last_admin"),
            "{method} {path}: {}",
            r.text
        );
    }
    let stored_root = stored(&app, &root_id).await;
    assert_eq!(
        (stored_root.role, stored_root.status),
        (Role::Admin, UserStatus::Active)
    );
    for id in session_ids(&app, &root).await {
        assert_eq!(session(&app, &id).await.unwrap().revoked_at, None);
    }
    assert_eq!(sign_in(&app, "root").await.status, StatusCode::OK);

    // A disabled admin is no admin to fall back on: root is still the last active one.
    let bob_path = format!("/api/v1/admin/users/{bob}");
    for (route, body) in [
        ("role", json!({"role": "admin"})),
        ("status", json!({"status": "disabled"})),
    ] {
        let r = app
            .json(
                Method::PUT,
                &format!("{bob_path}/{route}"),
                Some(body),
                Some(&root),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    for (method, path, body) in &refusals {
        let r = app
            .json(method.clone(), path, body.clone(), Some(&root))
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::CONFLICT, "last_admin"),
            "with bob disabled, {method} {path}: {}",
            r.text
        );
    }
    // Once bob is active again, root may step down.
    let r = app
        .json(
            Method::PUT,
            &format!("{bob_path}/status"),
            Some(json!({"status": "active"})),
            Some(&root),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .json(
            Method::PUT,
            &format!("{user}/role"),
            Some(json!({"role": "user"})),
            Some(&root),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(stored(&app, &root_id).await.role, Role::User);
}

#[tokio::test]
async fn disabling_revokes_every_session_in_the_store_and_re_enabling_lets_the_user_back() {
    let (app, bob) = app_with_users().await;
    let root = app.token("root").await;
    let first = app.login("bob").await;
    let second = app.token("bob").await;
    let sessions = session_ids(&app, &second).await;
    assert_eq!(sessions.len(), 2);
    let status = format!("/api/v1/admin/users/{bob}/status");

    let r = app
        .json(
            Method::PUT,
            &status,
            Some(json!({"status": "disabled"})),
            Some(&root),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["status"], "disabled");
    assert_eq!(stored(&app, &bob).await.status, UserStatus::Disabled);
    for id in &sessions {
        let revoked = session(&app, id).await.unwrap().revoked_at;
        assert!(revoked.is_some(), "session {id} is revoked in the store");
    }
    let active = app
        .db
        .sessions()
        .list_active(bob.parse().unwrap(), app.clock.now())
        .await
        .unwrap();
    assert!(active.is_empty());
    let r = sign_in(&app, "bob").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_credentials"),
        "{}",
        r.text
    );
    let refresh = json!({"refresh_token": first["refresh_token"]});
    let r = app
        .json(
            Method::POST,
            "/api/v1/auth/refresh",
            Some(refresh.clone()),
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNAUTHORIZED, "unauthenticated")
    );

    let r = app
        .json(
            Method::PUT,
            &status,
            Some(json!({"status": "active"})),
            Some(&root),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["status"], "active");
    // Bob signs in again and his new token works; the old sessions stay ended.
    let token = app.token("bob").await;
    let r = app
        .json(Method::GET, "/api/v1/me", None, Some(&token))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["username"], "bob");
    let r = app
        .json(Method::GET, "/api/v1/me", None, Some(&second))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app
        .json(Method::POST, "/api/v1/auth/refresh", Some(refresh), None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    for id in &sessions {
        assert!(session(&app, id).await.unwrap().revoked_at.is_some());
    }
}

#[tokio::test]
async fn deleting_a_user_ends_their_sessions_in_the_store() {
    let (app, bob) = app_with_users().await;
    let root = app.token("root").await;
    let token = app.token("bob").await;
    app.token("bob").await;
    let sessions = session_ids(&app, &token).await;
    assert_eq!(sessions.len(), 2);
    let r = app
        .json(
            Method::DELETE,
            &format!("/api/v1/admin/users/{bob}"),
            None,
            Some(&root),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert!(r.text.is_empty());
    let gone = app.db.users().get(bob.parse().unwrap()).await;
    assert!(matches!(gone, Err(RepoError::NotFound)), "{gone:?}");
    let by_name = app
        .db
        .users()
        .get_by_username(&Username::parse("bob").unwrap())
        .await;
    assert!(matches!(by_name, Err(RepoError::NotFound)), "{by_name:?}");
    for id in &sessions {
        match session(&app, id).await {
            Err(RepoError::NotFound) => {}
            Ok(s) => assert!(s.revoked_at.is_some(), "session {id} still active"),
            Err(e) => panic!("session {id}: {e}"),
        }
    }
    let r = sign_in(&app, "bob").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_credentials")
    );
    // Alice is untouched.
    assert_eq!(sign_in(&app, "alice").await.status, StatusCode::OK);
}

#[tokio::test]
async fn signing_out_and_listing_sessions_need_a_token() {
    let (app, _) = app_with_users().await;
    let token = app.token("bob").await;
    let routes = [
        (Method::POST, "/api/v1/auth/logout"),
        (Method::POST, "/api/v1/auth/logout-all"),
        (Method::GET, "/api/v1/me/sessions"),
    ];
    let ended = app.token("bob").await;
    let r = app
        .json(Method::POST, "/api/v1/auth/logout", None, Some(&ended))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    for (method, path) in routes {
        for bad in [None, Some("not-a-token"), Some(ended.as_str())] {
            let r = app.json(method.clone(), path, None, bad).await;
            assert_eq!(
                (r.status, r.code().as_str()),
                (StatusCode::UNAUTHORIZED, "unauthenticated"),
                "{method} {path}: {}",
                r.text
            );
            assert!(
                r.headers[header::WWW_AUTHENTICATE]
                    .to_str()
                    .unwrap()
                    .starts_with("Bearer"),
                "{method} {path}"
            );
        }
    }
    // None of them ended bob's live session.
    let sessions = session_ids(&app, &token).await;
    assert_eq!(sessions.len(), 1, "the ended one is not listed");
    assert_eq!(session(&app, &sessions[0]).await.unwrap().revoked_at, None);
}

#[tokio::test]
async fn refresh_with_a_missing_or_malformed_body_is_refused_and_keeps_the_session() {
    let (app, _) = app_with_users().await;
    let tokens = app.login("bob").await;
    let raw = |content_type: Option<&str>, body: &str| {
        let mut b = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/auth/refresh");
        if let Some(ct) = content_type {
            b = b.header(header::CONTENT_TYPE, ct);
        }
        b.body(Body::from(body.to_owned())).unwrap()
    };
    let json = Some("application/json");
    let cases = [
        (
            None,
            "",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (json, "", StatusCode::BAD_REQUEST, "malformed_request"),
        (
            json,
            "{\"refresh_token\":",
            StatusCode::BAD_REQUEST,
            "malformed_request",
        ),
        (
            json,
            "{}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json,
            "{\"refresh_token\": 42}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json,
            "[\"x\"]",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json,
            " [\"x\"] ",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json,
            " \n{\"refresh_token\": \"x\"}",
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        ),
        (
            json,
            "{\"refresh_token\": \"\"}",
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        ),
        (
            json,
            "{\"refresh_token\": \"not a token\"}",
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        ),
    ];
    for (content_type, body, status, code) in cases {
        let r = app.send(raw(content_type, body)).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (status, code),
            "{content_type:?} {body:?}: {}",
            r.text
        );
    }
    // The body of the refresh must be the refresh token: the access token is not one.
    let r = app
        .json(
            Method::POST,
            "/api/v1/auth/refresh",
            Some(json!({"refresh_token": tokens["access_token"]})),
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNAUTHORIZED, "unauthenticated")
    );
    // None of the refusals spent or ended anything: the real token still refreshes.
    let r = app
        .json(
            Method::POST,
            "/api/v1/auth/refresh",
            Some(json!({"refresh_token": tokens["refresh_token"]})),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let access = r.json()["access_token"].as_str().unwrap().to_owned();
    let r = app
        .json(Method::GET, "/api/v1/me", None, Some(&access))
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn a_body_read_into_fields_must_be_an_object_and_a_host_s_list_may_be_an_array() {
    use tower::ServiceExt as _;
    let (app, _) = app_with_users().await;
    // serde would read these arrays as the fields in order; the API refuses them.
    let cases = [
        ("/api/v1/auth/login", json!(["bob", PW])),
        ("/api/v1/auth/refresh", json!(["x"])),
        (
            "/api/v1/auth/register",
            json!(["carol", "carol@example.com", PW, null]),
        ),
    ];
    for (path, body) in cases {
        let r = app.json(Method::POST, path, Some(body), None).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            "{path}: {}",
            r.text
        );
    }
    let carol = app
        .db
        .users()
        .get_by_username(&Username::parse("carol").unwrap())
        .await;
    assert!(matches!(carol, Err(RepoError::NotFound)), "{carol:?}");

    // `ApiJson` is public: a host's body that is a list is still read from an array.
    let host =
        axum::Router::new().route(
            "/names",
            axum::routing::post(
                |user_http::ApiJson(names): user_http::ApiJson<Vec<String>>| async move {
                    names.join(",")
                },
            ),
        );
    let request = Request::builder()
        .method(Method::POST)
        .uri("/names")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"["a", "b"]"#))
        .unwrap();
    let response = host.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&bytes[..], b"a,b");
}
