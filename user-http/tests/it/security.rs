//! Attacks on the HTTP faces (issue 8): guess budgets and device tokens, throttled password
//! re-checks, the registration limit behind a trusted proxy and on the pages, session-bound
//! CSRF tokens on every form, cross-site requests to host routes (over HTTP/1.1 and h2c),
//! the browser idle timeout, IPv6 /64 and forwarding headers, and caching headers.

use std::net::IpAddr;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use axum::routing::post;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
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
    post_json_from(None, base, path, body, headers).await
}

/// [`post_json`] from the local address `source` (the kernel's choice when `None`).
async fn post_json_from(
    source: Option<IpAddr>,
    base: &str,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> Reply {
    let mut connector = HttpConnector::new();
    connector.set_local_address(source);
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
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
    app_behind(proxies, policy).await
}

/// The adapter trusting `proxies` (a `--trusted-proxies` list), with `policy`.
async fn app_behind(proxies: &str, policy: AuthPolicy) -> TestApp {
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
        ("/profile/export".to_owned(), vec![]),
        (
            "/profile/delete".to_owned(),
            vec![("password", PW.to_owned())],
        ),
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

/// A `Cookie` header with a fresh browser session of `name`, signed in through the core.
async fn session_cookie(app: &TestApp, name: &str) -> String {
    use secrecy::ExposeSecret as _;
    let login = app
        .state
        .auth
        .login_browser(
            user_core::auth::Credentials::new(name, secrecy::SecretString::from(PW)),
            user_core::domain::ClientInfo::default(),
        )
        .await
        .unwrap();
    format!("session={}", login.session_token.expose_secret())
}

#[tokio::test]
async fn cookie_callers_of_host_routes_must_come_from_the_same_origin() {
    let app = TestApp::new().await;
    app.register("alice").await;
    let cookie = session_cookie(&app, "alice").await;
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

const HERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));
const NEIGHBOUR: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

/// Registers `name` on the page, from a fresh browser whose connections leave from `source`.
async fn register_on_the_page(base: &str, source: IpAddr, name: &str) -> Reply {
    let mut agent = Agent::from_address(base, source);
    agent.get("/register").await;
    let email = format!("{name}@example.com");
    agent
        .post(
            "/register",
            &[("username", name), ("email", &email), ("password", PW)],
        )
        .await
}

#[tokio::test]
async fn the_pages_limit_registrations_per_client_address() {
    let app = app_limiting_registrations("").await;
    let (base, _stop) = app.spawn().await;
    for name in ["user1", "user2"] {
        let r = register_on_the_page(&base, HERE, name).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    }
    let r = register_on_the_page(&base, HERE, "user3").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    let wait: u64 = r.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((60..=3600).contains(&wait), "a wait in the hour: {wait}");
    assert!(r.text.contains("Too many attempts"), "{}", r.text);
    assert!(
        !r.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .any(|c| c.to_str().unwrap().starts_with("session=")),
        "not signed in"
    );
    assert_eq!(
        login(&app, "user3", PW, None).await.status,
        StatusCode::UNAUTHORIZED,
        "no account was made"
    );

    let r = register_on_the_page(&base, NEIGHBOUR, "user3").await;
    assert_eq!(
        r.status,
        StatusCode::SEE_OTHER,
        "another client: {}",
        r.text
    );
    assert_eq!(location(&r), "/profile");
}

#[tokio::test]
async fn over_http2_the_origin_is_checked_against_the_authority() {
    let app = TestApp::new().await;
    app.register("alice").await;
    let cookie = session_cookie(&app, "alice").await;
    let host = axum::Router::new()
        .route(
            "/transfer",
            post(
                |CurrentActor(_): CurrentActor, headers: axum::http::HeaderMap| async move {
                    // The premise: HTTP/2 sends `:authority`, and no `Host` header.
                    assert!(!headers.contains_key(header::HOST));
                    "done"
                },
            ),
        )
        .with_state(app.state.clone());
    let (base, _stop) = crate::spawn_router(host).await;
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let send = |origin: String| {
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("{base}/transfer"))
            .header(header::COOKIE, &cookie)
            .header(header::ORIGIN, origin)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let client = client.clone();
        async move {
            let response = client.request(request).await.unwrap();
            assert_eq!(response.version(), axum::http::Version::HTTP_2);
            response.status()
        }
    };
    let port = base.rsplit_once(':').unwrap().1;
    assert_eq!(send(base.clone()).await, StatusCode::OK, "our own origin");
    assert_eq!(
        send(base.to_uppercase()).await,
        StatusCode::OK,
        "host names ignore case"
    );
    for other in [
        "http://evil.example".to_owned(),
        format!("http://evil.example:{port}"),
        format!("http://127.0.0.1:{}", port.parse::<u16>().unwrap() + 1),
        "null".to_owned(),
    ] {
        assert_eq!(send(other.clone()).await, StatusCode::FORBIDDEN, "{other}");
    }
}

#[tokio::test]
async fn idle_browser_sessions_end_and_used_ones_stay() {
    let app = TestApp::new().await;
    app.register("alice").await;
    let whoami = axum::Router::new()
        .route(
            "/whoami",
            axum::routing::get(|CurrentActor(actor): CurrentActor| async move {
                actor.user_id.to_string()
            }),
        )
        .with_state(app.state.clone());
    let (base, _stop) = crate::spawn_router(app.router.clone().merge(whoami)).await;
    let mut used = signed_in(&base, "alice").await;
    let mut idle = signed_in(&base, "alice").await;
    let idle_timeout = app.state.auth.policy().browser_idle_timeout;
    let step = idle_timeout * 2 / 3;

    app.clock.advance(step);
    assert_eq!(used.get("/profile").await.status, StatusCode::OK);
    app.clock.advance(step);
    // `used` was last used `step` ago, `idle` never since it signed in `2 * step` ago.
    assert_eq!(used.get("/profile").await.status, StatusCode::OK);
    assert_eq!(used.get("/whoami").await.status, StatusCode::OK);
    let r = idle.get("/whoami").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    let r = idle.get("/profile").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(location(&r).starts_with("/login"), "{}", location(&r));

    // Unused for the whole timeout plus a second: gone too.
    app.clock.advance(idle_timeout + Duration::from_secs(1));
    assert_eq!(used.get("/whoami").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(used.get("/profile").await.status, StatusCode::SEE_OTHER);
}

/// A sign-in attempt with a wrong password for a fresh unknown name (so no guess budget
/// locks), over a real socket from `source`.
async fn sign_in_from(source: IpAddr, base: &str, headers: &[(&str, &str)]) -> Reply {
    let name = format!("nobody{}", uuid::Uuid::now_v7().simple());
    let body = json!({ "identifier": name, "password": WRONG });
    post_json_from(Some(source), base, "/api/v1/auth/login", &body, headers).await
}

async fn app_limiting_sign_ins(proxies: &str) -> TestApp {
    let policy = AuthPolicy {
        login_attempts_per_ip_per_minute: std::num::NonZeroU32::new(2),
        ..AuthPolicy::default()
    };
    app_behind(proxies, policy).await
}

/// The statuses of sign-in attempts, one per set of headers, all from `source`.
async fn sign_in_statuses(
    source: IpAddr,
    base: &str,
    attempts: &[&[(&str, &str)]],
) -> Vec<StatusCode> {
    let mut statuses = Vec::new();
    for headers in attempts {
        let r = sign_in_from(source, base, headers).await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert!(r.headers.contains_key(header::RETRY_AFTER));
        }
        statuses.push(r.status);
    }
    statuses
}

const LIMITED: [StatusCode; 3] = [
    StatusCode::UNAUTHORIZED,
    StatusCode::UNAUTHORIZED,
    StatusCode::TOO_MANY_REQUESTS,
];

#[tokio::test]
async fn behind_a_proxy_one_ipv6_64_shares_one_sign_in_limit() {
    let app = app_limiting_sign_ins("127.0.0.1").await;
    let (base, _stop) = app.spawn().await;
    let from = |ip: &'static str| [("x-forwarded-for", ip)];
    let statuses = sign_in_statuses(
        HERE,
        &base,
        &[
            &from("2001:db8:1:2::1"),
            &from("2001:db8:1:2:aaaa:bbbb:cccc:dddd"),
            &from("2001:db8:1:2::99"),
        ],
    )
    .await;
    assert_eq!(statuses, LIMITED, "one /64");
    let r = sign_in_from(HERE, &base, &from("2001:db8:1:3::1")).await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "another /64: {}",
        r.text
    );
}

#[tokio::test]
async fn a_proxy_trusted_for_x_forwarded_for_ignores_forwarded() {
    let app = app_limiting_sign_ins("127.0.0.1").await;
    let (base, _stop) = app.spawn().await;
    let client = ("x-forwarded-for", "198.51.100.7");
    let statuses = sign_in_statuses(
        HERE,
        &base,
        &[
            &[client, ("forwarded", "for=192.0.2.1")],
            &[client, ("forwarded", "for=192.0.2.2")],
            &[client, ("forwarded", "for=192.0.2.3")],
        ],
    )
    .await;
    assert_eq!(statuses, LIMITED, "counted on the X-Forwarded-For client");
    let r = sign_in_from(
        HERE,
        &base,
        &[
            ("x-forwarded-for", "198.51.100.8"),
            ("forwarded", "for=192.0.2.1"),
        ],
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "not on the proxy: {}",
        r.text
    );
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let app = app_limiting_sign_ins("127.0.0.1").await;
    let (base, _stop) = app.spawn().await;
    let statuses = sign_in_statuses(
        NEIGHBOUR,
        &base,
        &[
            &[("x-forwarded-for", "198.51.100.1")],
            &[("x-forwarded-for", "198.51.100.2")],
            &[("x-forwarded-for", "198.51.100.3")],
        ],
    )
    .await;
    assert_eq!(statuses, LIMITED, "all counted on the peer 127.0.0.2");
    // The same header from the trusted proxy names the client.
    let r = sign_in_from(HERE, &base, &[("x-forwarded-for", "198.51.100.1")]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
}
