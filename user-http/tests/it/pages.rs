//! The web pages over a real socket: cookies, CSRF, redirects, forms, escaping, admin area.

use axum::http::{StatusCode, header};
use user_http::{HttpConfig, Templates};

use crate::agent::{Agent, location};
use crate::{PW, TestApp};

const XSS: &str = "<script>alert('x')</script>";

async fn signed_up(app: &TestApp, base: &str, name: &str) -> Agent {
    let mut agent = Agent::new(base);
    agent.get("/register").await;
    let email = format!("{name}@example.com");
    let r = agent
        .post(
            "/register",
            &[
                ("username", name),
                ("email", &email),
                ("password", PW),
                ("display_name", ""),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let _ = app;
    agent
}

pub(crate) async fn signed_in(base: &str, name: &str) -> Agent {
    let mut agent = Agent::new(base);
    agent.get("/login").await;
    let r = agent
        .post(
            "/login",
            &[("identifier", name), ("password", PW), ("next", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    agent
}

#[tokio::test]
async fn register_signs_in_with_a_safe_cookie_and_greets_once() {
    let app = TestApp::new().await;
    let (base, _stop) = app.spawn().await;
    let mut agent = Agent::new(&base);
    let form = agent.get("/register").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.text.contains(r#"autocomplete="new-password""#));
    let r = agent
        .post(
            "/register",
            &[
                ("username", "alice"),
                ("email", "alice@example.com"),
                ("password", PW),
                ("display_name", "Alice"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/profile");
    let session = agent
        .set_cookies
        .iter()
        .find(|c| c.starts_with("session="))
        .unwrap();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(session.contains(attribute), "{session}");
    }
    assert!(!session.contains("Secure"), "not configured");
    let profile = agent.get("/profile").await;
    assert!(profile.text.contains("Welcome! Your account is ready."));
    assert!(profile.text.contains("alice@example.com"));
    assert_eq!(profile.headers["cache-control"], "no-store");
    let again = agent.get("/profile").await;
    assert!(!again.text.contains("Welcome!"), "a flash shows once");
}

#[tokio::test]
async fn a_failed_sign_in_is_generic_and_keeps_what_was_typed() {
    let app = TestApp::new().await;
    app.register("alice").await;
    let (base, _stop) = app.spawn().await;
    let mut agent = Agent::new(&base);
    agent.get("/login").await;
    for identifier in ["alice", "nobody"] {
        let r = agent
            .post(
                "/login",
                &[
                    ("identifier", identifier),
                    ("password", "wrong password"),
                    ("next", ""),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(r.text.contains("Invalid username, email or password."));
        assert!(r.text.contains(&format!(r#"value="{identifier}""#)));
        assert!(
            !r.text.contains("wrong password"),
            "the password is never echoed"
        );
    }
    // One failure for "alice" so far; four more reach the threshold of five.
    for _ in 0..4 {
        agent
            .post(
                "/login",
                &[("identifier", "alice"), ("password", "nope"), ("next", "")],
            )
            .await;
    }
    let r = agent
        .post(
            "/login",
            &[("identifier", "alice"), ("password", PW), ("next", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.text.contains("Too many attempts, try again in 1 minute."));
    let wait: u64 = r.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
}

#[tokio::test]
async fn forms_without_the_csrf_token_are_refused() {
    let app = TestApp::new().await;
    app.register("alice").await;
    let (base, _stop) = app.spawn().await;
    let mut agent = Agent::new(&base);
    agent.get("/login").await;
    for token in ["", "forged-token"] {
        let r = agent
            .post(
                "/login",
                &[
                    ("identifier", "alice"),
                    ("password", PW),
                    ("csrf_token", token),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert!(r.text.contains("This form has expired"));
    }
    let mut stranger = Agent::new(&base);
    let r = stranger
        .post("/login", &[("identifier", "alice"), ("password", PW)])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "no cookie, no token");
    assert!(agent.session().is_none());
}

#[tokio::test]
async fn sign_in_rotates_the_cookie_and_follows_only_local_next() {
    let app = TestApp::new().await;
    app.register("alice").await;
    let (base, _stop) = app.spawn().await;
    let mut agent = Agent::new(&base);
    let r = agent.get("/profile/sessions").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/login?next=%2Fprofile%2Fsessions");
    let form = agent.get("/login?next=%2Fprofile%2Fsessions").await;
    assert!(
        form.text
            .contains(r#"name="next" value="&#x2f;profile&#x2f;sessions""#),
        "{}",
        form.text
    );
    let r = agent
        .post(
            "/login",
            &[
                ("identifier", "alice"),
                ("password", PW),
                ("next", "/profile/sessions"),
            ],
        )
        .await;
    assert_eq!(location(&r), "/profile/sessions");
    let first = agent.session().unwrap();

    let r = agent
        .post(
            "/login",
            &[
                ("identifier", "alice"),
                ("password", PW),
                ("next", "//evil.example/x"),
            ],
        )
        .await;
    assert_eq!(location(&r), "/profile");
    let second = agent.session().unwrap();
    assert_ne!(first, second, "a new cookie on every sign-in");
    let mut old = Agent::new(&base);
    old.cookies.insert("session".into(), first);
    assert_eq!(
        old.get("/profile").await.status,
        StatusCode::SEE_OTHER,
        "the old cookie stopped working"
    );
    for next in ["https://evil.example", "/\\evil.example"] {
        let r = agent
            .post(
                "/login",
                &[("identifier", "alice"), ("password", PW), ("next", next)],
            )
            .await;
        assert_eq!(location(&r), "/profile", "{next}");
    }
}

#[tokio::test]
async fn sign_out_ends_the_session() {
    let app = TestApp::new().await;
    app.register("alice").await;
    let (base, _stop) = app.spawn().await;
    let mut agent = signed_in(&base, "alice").await;
    let cookie = agent.session().unwrap();
    let r = agent.post("/logout", &[]).await;
    assert_eq!(location(&r), "/login");
    assert!(agent.session().is_none(), "cleared");
    assert!(
        agent
            .get("/login")
            .await
            .text
            .contains("You are signed out.")
    );
    let mut replay = Agent::new(&base);
    replay.cookies.insert("session".into(), cookie);
    assert_eq!(
        replay.get("/profile").await.status,
        StatusCode::SEE_OTHER,
        "revoked on the server"
    );
}

#[tokio::test]
async fn edits_keep_input_and_show_each_error_by_its_field() {
    let app = TestApp::new().await;
    app.register("bob").await;
    let (base, _stop) = app.spawn().await;
    let mut agent = signed_up(&app, &base, "alice").await;
    let r = agent
        .post(
            "/profile/edit",
            &[
                ("username", "x!"),
                ("email", "not-an-email"),
                ("display_name", "Kept Name"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text.contains(r#"value="x!""#) && r.text.contains(r#"value="Kept Name""#));
    assert!(r.text.contains(r#"id="username-error""#) && r.text.contains(r#"id="email-error""#));
    assert!(r.text.contains(r#"aria-invalid="true""#));

    let r = agent
        .post(
            "/profile/edit",
            &[
                ("username", "bob"),
                ("email", "alice@example.com"),
                ("display_name", ""),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.text.contains("is already taken"));

    let r = agent
        .post(
            "/profile/edit",
            &[
                ("username", "alice2"),
                ("email", "alice@example.com"),
                ("display_name", "Alice"),
            ],
        )
        .await;
    assert_eq!(location(&r), "/profile");
    assert!(agent.get("/profile").await.text.contains("alice2"));

    let r = agent
        .post(
            "/profile/password",
            &[
                ("current_password", "wrong"),
                ("new_password", "a whole new passphrase"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "the table says 401");
    assert!(r.text.contains("the password is incorrect"));
    let r = agent
        .post(
            "/profile/password",
            &[
                ("current_password", PW),
                ("new_password", "a whole new passphrase"),
            ],
        )
        .await;
    assert_eq!(location(&r), "/profile");
    assert!(
        agent
            .get("/profile")
            .await
            .text
            .contains("Your password was changed.")
    );
}

#[tokio::test]
async fn user_text_is_escaped_on_every_page() {
    let app = TestApp::new().await;
    app.create_admin("root").await;
    let (base, _stop) = app.spawn().await;
    let mut victim = signed_up(&app, &base, "mallory").await;
    victim.user_agent = XSS.to_owned();
    let r = victim
        .post(
            "/login",
            &[("identifier", "mallory"), ("password", PW), ("next", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = victim
        .post(
            "/profile/edit",
            &[
                ("username", "mallory"),
                ("email", "mallory@example.com"),
                ("display_name", XSS),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let id = app
        .json(
            axum::http::Method::GET,
            "/api/v1/admin/users?search=mallory",
            None,
            Some(&app.token("root").await),
        )
        .await
        .json()["users"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut admin = signed_in(&base, "root").await;
    let pages = [
        victim.get("/profile").await,
        victim.get("/profile/edit").await,
        victim.get("/profile/sessions").await,
        admin.get("/admin/users").await,
        admin.get(&format!("/admin/users/{id}")).await,
        admin.get(&format!("/admin/users/{id}/delete")).await,
        admin.get(&format!("/admin/users/{id}/edit")).await,
        victim.get(&format!("/login?next={}", urlencode(XSS))).await,
    ];
    for page in pages {
        assert!(
            !page.text.contains("<script"),
            "raw script in: {}",
            page.text
        );
    }
    assert!(victim.get("/profile").await.text.contains("&lt;script&gt;"));
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("x", s)])
        .unwrap()
        .trim_start_matches("x=")
        .to_owned()
}

#[tokio::test]
async fn the_admin_area() {
    let app = TestApp::new().await;
    app.create_admin("root").await;
    let (base, _stop) = app.spawn().await;
    let mut bob = signed_up(&app, &base, "bob").await;
    assert_eq!(bob.get("/admin/users").await.status, StatusCode::FORBIDDEN);
    for name in ["carol", "dave"] {
        app.register(name).await;
    }
    let mut admin = signed_in(&base, "root").await;
    let list = admin.get("/admin/users?q=b").await;
    assert!(list.text.contains(">bob<") && !list.text.contains(">carol<"));
    let root_token = app.token("root").await;
    let users = app
        .json(
            axum::http::Method::GET,
            "/api/v1/admin/users",
            None,
            Some(&root_token),
        )
        .await
        .json();
    let id_of = |name: &str| {
        users["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["username"] == name)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (bob_id, root_id) = (id_of("bob"), id_of("root"));

    let r = admin
        .post(
            &format!("/admin/users/{bob_id}/status"),
            &[("status", "disabled")],
        )
        .await;
    assert_eq!(location(&r), format!("/admin/users/{bob_id}"));
    assert_eq!(
        bob.get("/profile").await.status,
        StatusCode::SEE_OTHER,
        "bob's session ended"
    );
    let r = admin
        .post(
            &format!("/admin/users/{bob_id}/status"),
            &[("status", "active")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // Enabled again, bob signs in again (`signed_in` asserts the sign-in's redirect).
    let mut bob = signed_in(&base, "bob").await;
    assert_eq!(bob.get("/profile").await.status, StatusCode::OK);

    let r = admin
        .post(&format!("/admin/users/{root_id}/role"), &[("role", "user")])
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.text.contains("The last active admin"));

    let confirm = admin.get(&format!("/admin/users/{bob_id}/delete")).await;
    assert!(confirm.text.contains("cannot be undone"));
    let r = admin
        .post(&format!("/admin/users/{bob_id}/delete"), &[])
        .await;
    assert_eq!(location(&r), "/admin/users");
    assert!(
        admin
            .get("/admin/users")
            .await
            .text
            .contains("The user was deleted.")
    );
    assert_eq!(
        bob.get("/profile").await.status,
        StatusCode::SEE_OTHER,
        "the deleted user's session ended"
    );
    assert_eq!(
        admin.get(&format!("/admin/users/{bob_id}")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn pages_paginate() {
    let app = TestApp::new().await;
    app.create_admin("root").await;
    for i in 0..25 {
        app.register(&format!("user{i:02}")).await;
    }
    let (base, _stop) = app.spawn().await;
    let mut admin = signed_in(&base, "root").await;
    let first = admin.get("/admin/users").await;
    assert!(first.text.contains("20 users on this page"));
    let next = first.text.split("rel=\"next\"").next().unwrap();
    let href = next
        .rsplit("href=\"")
        .next()
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&")
        .replace("&#x2f;", "/");
    let second = admin.get(&href).await;
    assert!(
        second.text.contains("6 users on this page"),
        "{href}: {}",
        second.text
    );
}

#[tokio::test]
async fn secure_cookies_use_the_host_prefix() {
    let config = HttpConfig {
        secure_cookies: true,
        ..HttpConfig::default()
    };
    let app = TestApp::with(config, Templates::default()).await;
    app.register("alice").await;
    let (base, _stop) = app.spawn().await;
    let mut agent = Agent::new(&base);
    agent.get("/login").await;
    assert!(
        agent
            .set_cookies
            .iter()
            .any(|c| c.starts_with("__Host-csrf=") && c.contains("Secure"))
    );
    agent
        .post(
            "/login",
            &[("identifier", "alice"), ("password", PW), ("next", "")],
        )
        .await;
    let session = agent
        .set_cookies
        .iter()
        .find(|c| c.starts_with("__Host-session="))
        .unwrap();
    assert!(
        session.contains("Secure") && session.contains("HttpOnly") && session.contains("Path=/")
    );
}

#[tokio::test]
async fn an_application_replaces_templates_and_the_stylesheet() {
    let templates = Templates::default()
        .with_site_name("Acme")
        .with_template(
            "login.html",
            r#"{% extends "base.html" %}{% block content %}<h1>Acme sign-in</h1>{% endblock %}"#,
        )
        .unwrap()
        .with_stylesheet("body { color: rebeccapurple; }");
    let app = TestApp::with(HttpConfig::default(), templates).await;
    let (base, _stop) = app.spawn().await;
    let mut agent = Agent::new(&base);
    let login = agent.get("/login").await;
    assert!(login.text.contains("Acme sign-in"));
    assert!(
        login.text.contains("<title>Sign in · Acme</title>")
            || login.text.contains("· Acme</title>")
    );
    let css = agent.get("/static/style.css").await;
    assert_eq!(css.text, "body { color: rebeccapurple; }");
    assert!(
        css.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
}

#[tokio::test]
async fn an_oversized_form_gets_a_413_page() {
    let app = TestApp::new().await;
    let (base, _stop) = app.spawn().await;
    let mut agent = Agent::new(&base);
    agent.get("/login").await;
    let huge = "x".repeat(100 * 1024);
    let r = agent
        .post("/login", &[("identifier", &huge), ("password", "x")])
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.text.contains("Too much data"));
}

#[tokio::test]
async fn the_pages_work_under_a_prefix() {
    let app = TestApp::new().await;
    app.register("alice").await;
    let host = axum::Router::new().nest("/auth", app.router.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { user_http::serve(listener, host, (), std::future::pending()).await });
    let mut agent = Agent::new(&base);
    let login = agent.get("/auth/login").await;
    assert!(
        login.text.contains(r#"action="&#x2f;auth/login""#),
        "{}",
        login.text
    );
    let r = agent
        .post(
            "/auth/login",
            &[("identifier", "alice"), ("password", PW), ("next", "")],
        )
        .await;
    assert_eq!(location(&r), "/auth/profile");
    assert_eq!(agent.get("/auth/profile").await.status, StatusCode::OK);
}
