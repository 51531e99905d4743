//! Every JSON route and its error paths, through the router without sockets.

use axum::http::{Method, StatusCode, header};
use serde_json::json;

use crate::{PW, TestApp};

const MISSING: &str = "00000000-0000-7000-8000-000000000000";

#[tokio::test]
async fn register_creates_users_and_reports_every_problem() {
    let app = TestApp::new().await;
    let user = app.register("alice").await;
    assert_eq!(user["username"], "alice");
    assert_eq!(user["role"], "user");
    assert_eq!(user["status"], "active");
    assert_eq!(user["email_verified"], false);
    assert!(user["created_at"].as_str().unwrap().ends_with('Z'));

    let r = app
        .json(
            Method::POST,
            "/api/v1/auth/register",
            Some(json!({"username": "x", "email": "nope", "password": "short"})),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.code(), "validation_failed");
    let fields: Vec<_> = r.json()["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fields, ["username", "email", "password"]);

    let dup = json!({"username": "ALICE", "email": "other@example.com", "password": PW});
    let r = app
        .json(Method::POST, "/api/v1/auth/register", Some(dup), None)
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.json()["fields"][0]["field"], "username");
}

#[tokio::test]
async fn login_refresh_logout() {
    let app = TestApp::new().await;
    app.register("alice").await;
    let tokens = app.login("alice@example.com").await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 900);
    let access = tokens["access_token"].as_str().unwrap();
    let me = app
        .json(Method::GET, "/api/v1/me", None, Some(access))
        .await;
    assert_eq!(me.json()["username"], "alice");

    let refresh = json!({"refresh_token": tokens["refresh_token"]});
    let r = app
        .json(
            Method::POST,
            "/api/v1/auth/refresh",
            Some(refresh.clone()),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let renewed = r.json();
    let r = app
        .json(Method::POST, "/api/v1/auth/refresh", Some(refresh), None)
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNAUTHORIZED, "unauthenticated"),
        "reuse"
    );
    let r = app
        .json(
            Method::GET,
            "/api/v1/me",
            None,
            renewed["access_token"].as_str(),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "reuse ended the session"
    );

    let access = app.token("alice").await;
    let r = app
        .json(Method::POST, "/api/v1/auth/logout", None, Some(&access))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app
        .json(Method::GET, "/api/v1/me", None, Some(&access))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.headers.contains_key(header::WWW_AUTHENTICATE));

    let one = app.token("alice").await;
    let two = app.token("alice").await;
    let r = app
        .json(Method::POST, "/api/v1/auth/logout-all", None, Some(&one))
        .await;
    assert_eq!(r.json()["sessions_ended"], 2);
    assert_eq!(
        app.json(Method::GET, "/api/v1/me", None, Some(&two))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn login_failures_are_generic_then_throttled() {
    let app = TestApp::new().await;
    app.register("alice").await;
    for identifier in ["alice", "nobody"] {
        let r = app
            .json(
                Method::POST,
                "/api/v1/auth/login",
                Some(json!({"identifier": identifier, "password": "wrong password"})),
                None,
            )
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::UNAUTHORIZED, "invalid_credentials")
        );
        assert_eq!(r.json()["message"], "invalid username, email or password");
    }
    for _ in 0..4 {
        app.json(
            Method::POST,
            "/api/v1/auth/login",
            Some(json!({"identifier": "alice", "password": "x"})),
            None,
        )
        .await;
    }
    let r = app
        .json(
            Method::POST,
            "/api/v1/auth/login",
            Some(json!({"identifier": "alice", "password": PW})),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers[header::RETRY_AFTER], "60");
    assert_eq!(r.code(), "throttled");
}

#[tokio::test]
async fn tokens_expire_by_the_clock() {
    let app = TestApp::new().await;
    app.register("alice").await;
    let access = app.token("alice").await;
    app.clock.advance(std::time::Duration::from_secs(905));
    let r = app
        .json(Method::GET, "/api/v1/me", None, Some(&access))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn me_get_update_password_delete() {
    let app = TestApp::new().await;
    app.register("alice").await;
    app.register("bob").await;
    let access = app.token("alice").await;
    let other = app.token("alice").await;

    let r = app
        .json(
            Method::PATCH,
            "/api/v1/me",
            Some(json!({"display_name": "Alice <b>L</b>", "email": "A2@Example.com"})),
            Some(&access),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["display_name"], "Alice <b>L</b>");
    assert_eq!(r.json()["email"], "a2@example.com");
    let r = app
        .json(
            Method::PATCH,
            "/api/v1/me",
            Some(json!({"username": "bob"})),
            Some(&access),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::CONFLICT, "conflict")
    );
    let r = app
        .json(
            Method::PATCH,
            "/api/v1/me",
            Some(json!({"username": "b", "email": "x"})),
            Some(&access),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json()["fields"].as_array().unwrap().len(), 2);
    let r = app
        .json(
            Method::PATCH,
            "/api/v1/me",
            Some(json!({"role": "admin"})),
            Some(&access),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown fields are refused: {}",
        r.text
    );

    let r = app
        .json(
            Method::PUT,
            "/api/v1/me/password",
            Some(json!({"current_password": "wrong", "new_password": "a whole new passphrase"})),
            Some(&access),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_credentials")
    );
    let r = app
        .json(
            Method::PUT,
            "/api/v1/me/password",
            Some(json!({"current_password": PW, "new_password": "1qaz2wsx3edc"})),
            Some(&access),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json()["fields"][0]["field"], "new_password");
    let r = app
        .json(
            Method::PUT,
            "/api/v1/me/password",
            Some(json!({"current_password": PW, "new_password": "a whole new passphrase"})),
            Some(&access),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.json(Method::GET, "/api/v1/me", None, Some(&other))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    let r = app
        .json(
            Method::DELETE,
            "/api/v1/me",
            Some(json!({"password": PW})),
            Some(&access),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "the old password no longer works"
    );
    let r = app
        .json(
            Method::DELETE,
            "/api/v1/me",
            Some(json!({"password": "a whole new passphrase"})),
            Some(&access),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.json(Method::GET, "/api/v1/me", None, Some(&access))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn my_sessions_are_listed_and_revoked() {
    let app = TestApp::new().await;
    app.register("alice").await;
    app.register("bob").await;
    let first = app.token("alice").await;
    app.clock.advance(std::time::Duration::from_secs(1));
    let second = app.token("alice").await;
    let bob = app.token("bob").await;
    let r = app
        .json(Method::GET, "/api/v1/me/sessions", None, Some(&second))
        .await;
    let list = r.json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["current"], true);
    let older = list[1]["id"].as_str().unwrap().to_owned();
    let bobs = app
        .json(Method::GET, "/api/v1/me/sessions", None, Some(&bob))
        .await
        .json();
    let bob_session = bobs[0]["id"].as_str().unwrap().to_owned();

    let r = app
        .json(
            Method::DELETE,
            &format!("/api/v1/me/sessions/{bob_session}"),
            None,
            Some(&second),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .json(
            Method::DELETE,
            "/api/v1/me/sessions/nope",
            None,
            Some(&second),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = app
        .json(
            Method::DELETE,
            &format!("/api/v1/me/sessions/{older}"),
            None,
            Some(&second),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.json(Method::GET, "/api/v1/me", None, Some(&first))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn admin_routes() {
    let app = TestApp::new().await;
    app.create_admin("root").await;
    for name in ["alice", "albert", "bob"] {
        app.register(name).await;
    }
    let user = app.token("alice").await;
    let root = app.token("root").await;
    let r = app
        .json(Method::GET, "/api/v1/admin/users", None, Some(&user))
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    let r = app
        .json(Method::GET, "/api/v1/admin/users", None, None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let page = app
        .json(
            Method::GET,
            "/api/v1/admin/users?limit=2",
            None,
            Some(&root),
        )
        .await
        .json();
    let names: Vec<_> = page["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["albert", "alice"]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let page = app
        .json(
            Method::GET,
            &format!("/api/v1/admin/users?limit=2&cursor={cursor}"),
            None,
            Some(&root),
        )
        .await
        .json();
    let names: Vec<_> = page["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["bob", "root"]);
    assert!(page["next_cursor"].is_null());
    let page = app
        .json(
            Method::GET,
            "/api/v1/admin/users?search=AL&role=user&status=active",
            None,
            Some(&root),
        )
        .await
        .json();
    assert_eq!(page["users"].as_array().unwrap().len(), 2);
    let r = app
        .json(
            Method::GET,
            "/api/v1/admin/users?limit=500&role=god&cursor=%25%25",
            None,
            Some(&root),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<_> = r.json()["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fields, ["limit", "cursor", "role"]);

    let bob = app
        .json(
            Method::GET,
            "/api/v1/admin/users?search=bob",
            None,
            Some(&root),
        )
        .await
        .json()["users"][0]
        .clone();
    let bob_id = bob["id"].as_str().unwrap();
    let path = format!("/api/v1/admin/users/{bob_id}");
    assert_eq!(
        app.json(Method::GET, &path, None, Some(&root)).await.json()["username"],
        "bob"
    );
    let r = app
        .json(
            Method::PATCH,
            &path,
            Some(json!({"display_name": "Robert"})),
            Some(&root),
        )
        .await;
    assert_eq!(r.json()["display_name"], "Robert");
    let r = app
        .json(
            Method::PUT,
            &format!("{path}/role"),
            Some(json!({"role": "admin"})),
            Some(&root),
        )
        .await;
    assert_eq!(r.json()["role"], "admin");
    let r = app
        .json(
            Method::PUT,
            &format!("{path}/role"),
            Some(json!({"role": "emperor"})),
            Some(&root),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let bob_token = app.token("bob").await;
    let r = app
        .json(
            Method::PUT,
            &format!("{path}/status"),
            Some(json!({"status": "disabled"})),
            Some(&root),
        )
        .await;
    assert_eq!(r.json()["status"], "disabled");
    assert_eq!(
        app.json(Method::GET, "/api/v1/me", None, Some(&bob_token))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let r = app.json(Method::DELETE, &path, None, Some(&root)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.json(Method::GET, &path, None, Some(&root)).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.json(
            Method::GET,
            &format!("/api/v1/admin/users/{MISSING}"),
            None,
            Some(&root)
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.json(Method::GET, "/api/v1/admin/users/nope", None, Some(&root))
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    let me = app
        .json(Method::GET, "/api/v1/me", None, Some(&root))
        .await
        .json();
    let r = app
        .json(
            Method::PUT,
            &format!("/api/v1/admin/users/{}/role", me["id"].as_str().unwrap()),
            Some(json!({"role": "user"})),
            Some(&root),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::CONFLICT, "last_admin")
    );
}

#[tokio::test]
async fn the_api_takes_bearer_tokens_only() {
    let app = TestApp::new().await;
    app.register("alice").await;
    let login = app
        .state
        .auth
        .login_browser(
            user_core::auth::Credentials::new("alice", secrecy::SecretString::from(PW)),
            user_core::domain::ClientInfo::default(),
        )
        .await
        .unwrap();
    use secrecy::ExposeSecret as _;
    let request = axum::http::Request::builder()
        .uri("/api/v1/me")
        .header(
            header::COOKIE,
            format!("session={}", login.session_token.expose_secret()),
        )
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(app.send(request).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn jwks_and_health() {
    let app = TestApp::new().await;
    let jwks = app
        .json(Method::GET, "/.well-known/jwks.json", None, None)
        .await
        .json();
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    assert_eq!(jwks["keys"][0]["alg"], "EdDSA");
    assert_eq!(
        app.json(Method::GET, "/healthz", None, None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.json(Method::GET, "/readyz", None, None).await.json()["status"],
        "ready"
    );
    app.db.close().await;
    let r = app.json(Method::GET, "/readyz", None, None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
}
