//! Attacks on the HTTP faces (issue 8): guess budgets and device tokens, throttled password
//! re-checks, the registration limit behind a trusted proxy, session-bound CSRF tokens on
//! every form, cross-site requests to host routes, and caching headers.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use axum::routing::post;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use user_core::auth::AuthPolicy;
use user_core::domain::TrustedProxies;
use user_http::{CurrentActor, HttpConfig, Templates};

use crate::agent::{Agent, csrf_of, location};
use crate::pages::signed_in;
use crate::{PW, Reply, TestApp};

const WRONG: &str = "not the password at all";

async fn login(app: &TestApp, identifier: &str, password: &str, device: Option<&str>) -> Reply {
    let mut body = json!({ "identifier": identifier, "password": password });
    if let Some(device) = device {
        body["device_token"] = json!(device);
    }
    app.json(Method::POST, "/api/v1/auth/login", Some(body), None)
        .await
}

/// Five wrong guesses by a stranger, on the email.
async fn lock_by_email(app: &TestApp, name: &str) {
    for _ in 0..5 {
        let r = login(app, &format!("{name}@example.com"), WRONG, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    }
}

#[tokio::test]
async fn a_lock_on_the_email_stops_the_username_but_not_the_owners_device() {
    let app = TestApp::new().await;
    app.register("alice").await;
    let first = app.login("alice").await;
    let device = first["device_token"].as_str().unwrap().to_owned();
    assert_eq!(device.len(), 43);

    lock_by_email(&app, "alice").await;
    let r = login(&app, "alice", PW, None).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert!(r.headers.contains_key(header::RETRY_AFTER));

    let r = login(&app, "alice", PW, Some(&device)).await;
    assert_eq!(r.status, StatusCode::OK, "the owner's device: {}", r.text);
    assert_eq!(r.json()["device_token"], json!(device), "kept");

    let made_up = "A".repeat(43);
    let r = login(&app, "alice", PW, Some(&made_up)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "a made-up device");
    app.register("mallory").await;
    let mallorys = app.login("mallory").await["device_token"].clone();
    let r = login(&app, "alice", PW, mallorys.as_str()).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "another account's");
}

#[tokio::test]
async fn a_stolen_token_cannot_try_passwords() {
    let app = TestApp::new().await;
    app.register("alice").await;
    let token = app.token("alice").await;
    let change =
        |current: &str, new: &str| json!({ "current_password": current, "new_password": new });

    // A refused new password is refused whatever the current one: nothing to learn.
    for current in [PW, WRONG] {
        let r = app
            .json(
                Method::PUT,
                "/api/v1/me/password",
                Some(change(current, "short")),
                Some(&token),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    }
    for _ in 0..5 {
        let body = change(WRONG, "a brand new passphrase");
        let r = app
            .json(Method::PUT, "/api/v1/me/password", Some(body), Some(&token))
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    }
    let body = change(PW, "a brand new passphrase");
    let r = app
        .json(Method::PUT, "/api/v1/me/password", Some(body), Some(&token))
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert!(r.headers.contains_key(header::RETRY_AFTER));
    let r = app
        .json(
            Method::DELETE,
            "/api/v1/me",
            Some(json!({ "password": PW })),
            Some(&token),
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    let r = login(&app, "alice", PW, None).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "one budget");
}

#[tokio::test]
async fn an_admin_unlocks_over_json() {
    let app = TestApp::new().await;
    let alice = app.register("alice").await;
    let id = alice["id"].as_str().unwrap().to_owned();
    app.create_admin("root").await;
    let admin = app.token("root").await;
    let user = app.token("alice").await;
    lock_by_email(&app, "alice").await;

    let path = format!("/api/v1/admin/users/{id}/unlock");
    let r = app.json(Method::POST, &path, None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app.json(Method::POST, &path, None, Some(&user)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        login(&app, "alice", PW, None).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let r = app.json(Method::POST, &path, None, Some(&admin)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(login(&app, "alice", PW, None).await.status, StatusCode::OK);
    let unknown = format!("/api/v1/admin/users/{}/unlock", uuid::Uuid::now_v7());
    let r = app.json(Method::POST, &unknown, None, Some(&admin)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// A JSON POST over a real socket with extra headers.
async fn post_json(base: &str, path: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(format!("{base}{path}"))
        .header(header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn registration(name: &str) -> Value {
    json!({ "username": name, "email": format!("{name}@example.com"), "password": PW })
}

async fn app_limiting_registrations(proxies: &str) -> TestApp {
    let policy = AuthPolicy {
        registrations_per_ip_per_hour: std::num::NonZeroU32::new(2),
        ..AuthPolicy::default()
    };
    let config = HttpConfig {
        trusted_proxies: TrustedProxies::parse(proxies).unwrap(),
        ..HttpConfig::default()
    };
    TestApp::with_policy(config, Templates::default(), policy).await
}

#[tokio::test]
async fn registrations_are_limited_per_client_behind_a_trusted_proxy() {
    let app = app_limiting_registrations("127.0.0.1").await;
    let (base, _stop) = app.spawn().await;
    let from = |ip: &'static str| [("x-forwarded-for", ip)];
    for name in ["user1", "user2"] {
        let r = post_json(
            &base,
            "/api/v1/auth/register",
            &registration(name),
            &from("198.51.100.7"),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let r = post_json(
        &base,
        "/api/v1/auth/register",
        &registration("user3"),
        &from("198.51.100.7"),
    )
    .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert!(r.headers.contains_key(header::RETRY_AFTER));
    let r = post_json(
        &base,
        "/api/v1/auth/register",
        &registration("user3"),
        &from("198.51.100.8"),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "another client: {}", r.text);
}

#[tokio::test]
async fn without_a_trusted_proxy_forwarded_headers_are_ignored() {
    let app = app_limiting_registrations("").await;
    let (base, _stop) = app.spawn().await;
    let spoofs = ["1.1.1.1", "2.2.2.2", "3.3.3.3"];
    let mut statuses = Vec::new();
    for (i, ip) in spoofs.iter().enumerate() {
        let headers = [("x-forwarded-for", *ip), ("forwarded", "for=9.9.9.9")];
        let r = post_json(
            &base,
            "/api/v1/auth/register",
            &registration(&format!("user{i}")),
            &headers,
        )
        .await;
        statuses.push(r.status);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::CREATED,
            StatusCode::CREATED,
            StatusCode::TOO_MANY_REQUESTS
        ],
        "all three came from 127.0.0.1"
    );
}

#[tokio::test]
async fn the_device_cookie_lets_the_owner_through_a_strangers_lock() {
    let app = TestApp::new().await;
    app.register("alice").await;
    let (base, _stop) = app.spawn().await;
    let mut owner = signed_in(&base, "alice").await;
    let device = owner
        .set_cookies
        .iter()
        .find(|c| c.starts_with("device="))
        .cloned();
    let device = device.expect("a device cookie at sign-in");
    assert!(
        device.contains("HttpOnly") && device.contains("SameSite=Strict"),
        "{device}"
    );
    assert!(device.contains("Max-Age="), "long-lived: {device}");
    owner.post("/logout", &[]).await;
    assert!(owner.session().is_none());

    let mut stranger = Agent::new(&base);
    stranger.get("/login").await;
    for _ in 0..5 {
        let r = stranger
            .post(
                "/login",
                &[
                    ("identifier", "alice@example.com"),
                    ("password", WRONG),
                    ("next", ""),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = stranger
        .post(
            "/login",
            &[("identifier", "alice"), ("password", PW), ("next", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);

    owner.get("/login").await;
    let r = owner
        .post(
            "/login",
            &[("identifier", "alice"), ("password", PW), ("next", "")],
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::SEE_OTHER,
        "the owner's browser: {}",
        r.text
    );
}

/// Every state-changing form of the pages, for a signed-in admin `root` acting on `alice`.
fn forms(alice: &str, session: &str) -> Vec<(String, Vec<(&'static str, String)>)> {
    let mut forms = vec![
        (
            "/profile/edit".to_owned(),
            vec![
                ("username", "root".to_owned()),
                ("email", "root@example.com".to_owned()),
            ],
        ),
        (
            "/profile/password".to_owned(),
            vec![
                ("current_password", PW.to_owned()),
                ("new_password", "a brand new passphrase".to_owned()),
            ],
        ),
        (format!("/profile/sessions/{session}/revoke"), vec![]),
        (
            format!("/admin/users/{alice}/edit"),
            vec![
                ("username", "alice2".to_owned()),
                ("email", "alice@example.com".to_owned()),
            ],
        ),
        (
            format!("/admin/users/{alice}/role"),
            vec![("role", "admin".to_owned())],
        ),
        (
            format!("/admin/users/{alice}/status"),
            vec![("status", "disabled".to_owned())],
        ),
        (format!("/admin/users/{alice}/unlock"), vec![]),
        (format!("/admin/users/{alice}/delete"), vec![]),
        ("/logout".to_owned(), vec![]),
    ];
    forms.push((
        "/login".to_owned(),
        vec![
            ("identifier", "root".to_owned()),
            ("password", PW.to_owned()),
        ],
    ));
    forms.push((
        "/register".to_owned(),
        vec![
            ("username", "newbie".to_owned()),
            ("email", "newbie@example.com".to_owned()),
            ("password", PW.to_owned()),
        ],
    ));
    forms
}

#[tokio::test]
async fn csrf_tokens_are_bound_to_the_session_on_every_form() {
    let app = TestApp::new().await;
    let alice = app.register("alice").await;
    let alice = alice["id"].as_str().unwrap().to_owned();
    app.create_admin("root").await;
    let (base, _stop) = app.spawn().await;

    // The token a browser had before signing in is dead after it.
    let mut root = Agent::new(&base);
    root.get("/login").await;
    let before = root.csrf();
    let r = root
        .post(
            "/login",
            &[("identifier", "root"), ("password", PW), ("next", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = root.get("/profile").await;
    assert_ne!(root.csrf(), before, "a new token at sign-in");
    assert!(
        page.text.contains(&root.csrf()),
        "the page carries the session's token"
    );

    let other = signed_in(&base, "alice").await;
    let session = app
        .state
        .users
        .sessions(
            &app.state
                .auth
                .authenticate_browser(&root.session().unwrap())
                .await
                .unwrap(),
        )
        .await
        .unwrap()[0]
        .id
        .to_string();
    let anonymous_cookie = root.cookies.get("csrf").cloned().unwrap();
    let hostile = [
        ("the pre-sign-in token", before),
        ("another session's token", other.csrf()),
        (
            "the anonymous cookie's own value (old double submit)",
            anonymous_cookie.clone(),
        ),
        (
            "a token of the anonymous cookie",
            csrf_of(&anonymous_cookie),
        ),
        ("a made-up token", "A".repeat(43)),
        ("no token", String::new()),
    ];
    for (path, fields) in forms(&alice, &session) {
        for (what, token) in &hostile {
            let mut all: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            all.push(("csrf_token", token));
            let r = root.post(&path, &all).await;
            assert_eq!(
                r.status,
                StatusCode::FORBIDDEN,
                "{path} with {what}: {}",
                r.text
            );
        }
    }
    // Nothing happened: still signed in, alice untouched.
    assert_eq!(root.get("/profile").await.status, StatusCode::OK);
    assert_eq!(login(&app, "alice", PW, None).await.status, StatusCode::OK);

    // Sign-out gives a new anonymous token too.
    let signed_in_token = root.csrf();
    let r = root.post("/logout", &[]).await;
    assert_eq!(location(&r), "/login");
    assert_ne!(root.csrf(), signed_in_token);
    assert_ne!(
        root.cookies.get("csrf"),
        Some(&anonymous_cookie),
        "a new anonymous secret"
    );
}

#[tokio::test]
async fn cookie_callers_of_host_routes_must_come_from_the_same_origin() {
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
    let cookie = format!("session={}", login.session_token.expose_secret());
    let host = axum::Router::new()
        .route(
            "/transfer",
            post(|CurrentActor(_): CurrentActor| async { "done" }),
        )
        .with_state(app.state.clone());
    let send = |headers: &[(&str, &str)]| {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri("/transfer")
            .header(header::COOKIE, &cookie)
            .header(header::HOST, "accounts.example");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Body::empty()).unwrap();
        let host = host.clone();
        async move {
            use tower::ServiceExt as _;
            host.oneshot(request).await.unwrap().status()
        }
    };
    assert_eq!(
        send(&[("sec-fetch-site", "cross-site")]).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(&[("sec-fetch-site", "same-site")]).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(&[("origin", "https://evil.example")]).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(send(&[]).await, StatusCode::FORBIDDEN, "no evidence at all");
    assert_eq!(
        send(&[("sec-fetch-site", "same-origin")]).await,
        StatusCode::OK
    );
    assert_eq!(
        send(&[("origin", "https://accounts.example")]).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn tokens_and_personal_data_are_never_cached() {
    let app = TestApp::new().await;
    app.register("alice").await;
    let tokens = app.login("alice").await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = json!({ "refresh_token": tokens["refresh_token"] });
    let replies = [
        login(&app, "alice", PW, None).await,
        app.json(Method::POST, "/api/v1/auth/refresh", Some(refresh), None)
            .await,
        app.json(Method::GET, "/api/v1/me", None, Some(access))
            .await,
        app.json(Method::GET, "/api/v1/me/sessions", None, Some(access))
            .await,
    ];
    for r in &replies {
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.headers[header::CACHE_CONTROL], "no-store", "{}", r.text);
        assert!(
            !r.headers.contains_key(header::STRICT_TRANSPORT_SECURITY),
            "not behind HTTPS"
        );
    }
    let (base, _stop) = app.spawn().await;
    let mut agent = signed_in(&base, "alice").await;
    for path in ["/profile", "/profile/sessions", "/login"] {
        let r = agent.get(path).await;
        assert_eq!(r.headers[header::CACHE_CONTROL], "no-store", "{path}");
    }
    let r = agent.get("/static/style.css").await;
    assert_eq!(r.headers[header::CACHE_CONTROL], "public, max-age=3600");
}

#[tokio::test]
async fn behind_https_hsts_is_sent_and_cookie_removals_are_secure() {
    let config = HttpConfig {
        secure_cookies: true,
        ..HttpConfig::default()
    };
    let app = TestApp::with(config, Templates::default()).await;
    app.register("alice").await;
    let r = login(&app, "alice", PW, None).await;
    assert_eq!(
        r.headers[header::STRICT_TRANSPORT_SECURITY],
        "max-age=31536000; includeSubDomains"
    );
    let (base, _stop) = app.spawn().await;
    let mut agent = signed_in(&base, "alice").await;
    let r = agent.post("/logout", &[]).await;
    let removal = r
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("__Host-session="))
        .expect("the session cookie is removed");
    assert!(
        removal.contains("Secure") && removal.contains("Path=/"),
        "{removal}"
    );
}

#[tokio::test]
async fn an_admin_sees_the_lock_and_unlocks_on_the_page() {
    let app = TestApp::new().await;
    let alice = app.register("alice").await;
    let id = alice["id"].as_str().unwrap().to_owned();
    app.create_admin("root").await;
    let (base, _stop) = app.spawn().await;
    let mut root = signed_in(&base, "root").await;
    let page = root.get(&format!("/admin/users/{id}")).await;
    assert!(page.text.contains("not locked"), "{}", page.text);
    assert!(!page.text.contains("/unlock"), "no button without a lock");

    lock_by_email(&app, "alice").await;
    let page = root.get(&format!("/admin/users/{id}")).await;
    assert!(page.text.contains("locked for 1 minute"), "{}", page.text);
    assert!(page.text.contains(&format!("/admin/users/{id}/unlock")));
    let r = root.post(&format!("/admin/users/{id}/unlock"), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let page = root.get(&location(&r)).await;
    assert!(page.text.contains("Sign-in was unlocked."), "{}", page.text);
    assert!(page.text.contains("not locked"));
    assert_eq!(login(&app, "alice", PW, None).await.status, StatusCode::OK);

    // Not for a non-admin.
    let mut alice = signed_in(&base, "alice").await;
    let r = alice.post(&format!("/admin/users/{id}/unlock"), &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}
