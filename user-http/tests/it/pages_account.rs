//! The pages of password reset and email verification over a real socket: the tokens come
//! out of the mails queued in the outbox, as a person's mail client would see them.

use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::http::{Method, StatusCode, header};
use user_core::auth::AuthPolicy;
use user_http::{AppState, HttpConfig, Templates};

use crate::agent::{Agent, location};
use crate::pages::signed_in;
use crate::{PW, TestApp, spawn_router};

const RESET: &str = user_mail::RESET_PASSWORD_PATH;
const VERIFY: &str = user_mail::VERIFY_EMAIL_PATH;
const NEW_PW: &str = "a fresh new passphrase";
const INVALID_RESET: &str = "This reset link is invalid or expired";
const INVALID_VERIFY: &str = "This confirmation link is invalid or expired";
const UNKNOWN: &str = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2U";

/// A page that keeps its link's token out of `Referer`.
fn assert_no_referrer(r: &crate::Reply) {
    assert_eq!(
        r.headers[header::REFERRER_POLICY],
        "no-referrer",
        "{}",
        r.status
    );
}

/// Signs in with `password` through the sign-in page; returns the status of the answer.
async fn sign_in_with(agent: &mut Agent, name: &str, password: &str) -> StatusCode {
    agent.get("/login").await;
    agent
        .post(
            "/login",
            &[("identifier", name), ("password", password), ("next", "")],
        )
        .await
        .status
}

#[tokio::test]
async fn a_reset_link_sets_a_new_password_once_and_signs_every_session_out() {
    let app = TestApp::new().await;
    app.register("alice").await;
    let (base, _stop) = app.spawn().await;
    let mut old = signed_in(&base, "alice").await;

    let mut visitor = Agent::new(&base);
    let login = visitor.get("/login").await;
    assert!(login.text.contains(r#"href="/forgot-password""#));
    let form = visitor.get("/forgot-password").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.text.contains(r#"action="/forgot-password""#));
    let r = visitor
        .post("/forgot-password", &[("email", "Alice@Example.com")])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("Check your email"));
    let token = app.link_token(RESET, "alice@example.com").await;

    // The link opens a form that carries the token in a hidden field.
    let link = format!("{RESET}?token={token}");
    let r = visitor.get(&link).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_no_referrer(&r);
    assert!(r.text.contains(&format!(r#"name="token" value="{token}""#)));

    // Another session's CSRF token is refused, and the link stays usable.
    let r = visitor
        .post(
            RESET,
            &[
                ("token", &token),
                ("new_password", NEW_PW),
                ("csrf_token", &old.csrf()),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);

    // A weak password: the form again, the error by its field, the link still usable.
    let r = visitor
        .post(RESET, &[("token", &token), ("new_password", "password")])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_no_referrer(&r);
    assert!(r.text.contains(r#"id="new_password-error""#), "{}", r.text);
    assert!(r.text.contains(&format!(r#"name="token" value="{token}""#)));

    let r = visitor
        .post(RESET, &[("token", &token), ("new_password", NEW_PW)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(location(&r), "/login");
    let r = visitor.get("/login").await;
    assert!(
        r.text
            .contains("Your password was changed. Sign in with your new password."),
        "{}",
        r.text
    );

    // The same link twice is refused with the way to a new one.
    let r = visitor
        .post(RESET, &[("token", &token), ("new_password", NEW_PW)])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.text.contains(INVALID_RESET), "{}", r.text);
    assert!(r.text.contains(r#"href="/forgot-password""#));
    assert!(!r.text.contains(&token));

    // The session from before is over; the old password fails, the new one signs in.
    let r = old.get("/profile").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(location(&r).starts_with("/login"));
    let mut fresh = Agent::new(&base);
    assert_eq!(
        sign_in_with(&mut fresh, "alice", PW).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        sign_in_with(&mut fresh, "alice", NEW_PW).await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(fresh.get("/profile").await.status, StatusCode::OK);
}

#[tokio::test]
async fn known_and_unknown_addresses_get_the_same_page() {
    let app = TestApp::new().await;
    app.register("alice").await;
    let (base, _stop) = app.spawn().await;
    let mut agent = Agent::new(&base);
    agent.get("/forgot-password").await;

    let known = agent
        .post("/forgot-password", &[("email", "alice@example.com")])
        .await;
    let unknown = agent
        .post("/forgot-password", &[("email", "nobody@example.com")])
        .await;
    assert_eq!(known.status, StatusCode::OK, "{}", known.text);
    assert_eq!((unknown.status, &unknown.text), (known.status, &known.text));
    assert!(!known.text.contains("alice@example.com"));
    let links = app.links(RESET).await;
    let to: Vec<&str> = links.iter().map(|(to, _)| to.as_str()).collect();
    assert_eq!(to, ["alice@example.com"]);

    // No address at all: the form again with the problem by its field.
    let r = agent
        .post("/forgot-password", &[("email", "not an address")])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.text.contains(r#"id="email-error""#), "{}", r.text);

    // A form from another session is refused.
    let other = signed_in(&base, "alice").await;
    let r = agent
        .post(
            "/forgot-password",
            &[
                ("email", "alice@example.com"),
                ("csrf_token", &other.csrf()),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);

    // Each address may ask a few times an hour (5 by default), known or not alike.
    for email in ["alice@example.com", "nobody@example.com"] {
        let mut last = None;
        for _ in 0..5 {
            last = Some(agent.post("/forgot-password", &[("email", email)]).await);
        }
        let last = last.unwrap();
        assert_eq!(last.status, StatusCode::TOO_MANY_REQUESTS, "{email}");
        assert!(last.headers.contains_key(header::RETRY_AFTER));
        assert!(last.text.contains("Too many"), "{}", last.text);
    }
}

#[tokio::test]
async fn a_verification_link_verifies_only_when_its_button_is_pressed() {
    let app = TestApp::new().await;
    let (base, _stop) = app.spawn().await;
    let mut bob = Agent::new(&base);
    bob.get("/register").await;
    let r = bob
        .post(
            "/register",
            &[
                ("username", "bob"),
                ("email", "bob@example.com"),
                ("password", PW),
                ("display_name", ""),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let token = app.link_token(VERIFY, "bob@example.com").await;
    let link = format!("{VERIFY}?token={token}");

    // A mail scanner fetching the link verifies nothing.
    let mut scanner = Agent::new(&base);
    let r = scanner.get(&link).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_no_referrer(&r);
    assert!(r.text.contains("Confirm your email address"));
    assert_eq!(r.text.matches("<form").count(), 1, "one button: {}", r.text);
    assert!(r.text.contains(r#"method="post" action="/verify-email""#));
    let profile = bob.get("/profile").await;
    assert!(profile.text.contains("(not verified)"));
    assert!(profile.text.contains("Send the link again"));

    // Another session's CSRF token is refused.
    let r = bob
        .post(
            VERIFY,
            &[("token", &token), ("csrf_token", &scanner.csrf())],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);

    let r = bob.get(&link).await;
    assert_no_referrer(&r);
    let r = bob.post(VERIFY, &[("token", &token)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(location(&r), "/profile");
    let profile = bob.get("/profile").await;
    assert!(profile.text.contains("Your email address is verified."));
    assert!(profile.text.contains("(verified)"));
    assert!(!profile.text.contains("Send the link again"));
    let me = app
        .json(
            Method::GET,
            "/api/v1/me",
            None,
            Some(&app.token("bob").await),
        )
        .await;
    assert_eq!(me.json()["email_verified"], true);

    // The same link twice is refused.
    let r = scanner.post(VERIFY, &[("token", &token)]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_no_referrer(&r);
    assert!(r.text.contains(INVALID_VERIFY), "{}", r.text);
}

#[tokio::test]
async fn a_signed_out_visitor_verifies_and_is_sent_to_sign_in() {
    let app = TestApp::new().await;
    app.register("erin").await;
    let (base, _stop) = app.spawn().await;
    let token = app.link_token(VERIFY, "erin@example.com").await;
    let mut visitor = Agent::new(&base);
    visitor.get(&format!("{VERIFY}?token={token}")).await;
    let r = visitor.post(VERIFY, &[("token", &token)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(location(&r), "/login");
    let r = visitor.get("/login").await;
    assert!(r.text.contains("Your email address is verified."));
}

#[tokio::test]
async fn the_profile_mails_the_confirmation_link_again_within_limits() {
    let app = TestApp::new().await;
    app.register("carol").await;
    let (base, _stop) = app.spawn().await;
    app.link_token(VERIFY, "carol@example.com").await;
    let mut carol = signed_in(&base, "carol").await;
    let stranger = signed_in(&base, "carol").await;

    let r = carol
        .post("/profile/verification", &[("csrf_token", &stranger.csrf())])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = Agent::new(&base).post("/profile/verification", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "signed out: to sign-in");
    assert!(location(&r).starts_with("/login"));

    let r = carol.post("/profile/verification", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(location(&r), "/profile");
    let profile = carol.get("/profile").await;
    assert!(profile.text.contains("We sent a new confirmation link"));
    let token = app.link_token(VERIFY, "carol@example.com").await;

    // Five links an hour per account (by default); the sixth ask gets the 429 page.
    for _ in 0..4 {
        let r = carol.post("/profile/verification", &[]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    }
    let r = carol.post("/profile/verification", &[]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert!(r.headers.contains_key(header::RETRY_AFTER));
    assert!(r.text.contains("Too many attempts"), "{}", r.text);

    // Only the newest link works.
    let links = app.links(VERIFY).await;
    assert_eq!(links.len(), 4);
    let r = carol.post(VERIFY, &[("token", &token)]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let r = carol.post(VERIFY, &[("token", &links[3].1)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
}

#[tokio::test]
async fn an_admin_sends_a_reset_link_from_the_user_page() {
    let app = TestApp::new().await;
    app.create_admin("root").await;
    let dave = app.register("dave").await;
    let id = dave["id"].as_str().unwrap();
    let (base, _stop) = app.spawn().await;
    let mut admin = signed_in(&base, "root").await;
    let mut user = signed_in(&base, "dave").await;
    let page = format!("/admin/users/{id}");
    let action = format!("/admin/users/{id}/password-reset");

    let r = admin.get(&page).await;
    assert!(
        r.text.contains(&format!(r#"action="{action}""#)),
        "{}",
        r.text
    );
    assert!(r.text.contains("Send password reset"));

    let r = user.post(&action, &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = admin.post(&action, &[("csrf_token", &user.csrf())]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(app.links(RESET).await.is_empty());

    let r = admin.post(&action, &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(location(&r), page);
    let r = admin.get(&page).await;
    assert!(
        r.text.contains("A password reset link was sent"),
        "{}",
        r.text
    );
    let token = app.link_token(RESET, "dave@example.com").await;
    assert!(!r.text.contains(&token));

    // Dave's own browser, signed in, sets the new password and is signed out by it.
    let r = user
        .post(RESET, &[("token", &token), ("new_password", NEW_PW)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(location(&r), "/login");
    assert!(user.session().is_none(), "{:?}", user.set_cookies);
    assert_eq!(
        sign_in_with(&mut user, "dave", NEW_PW).await,
        StatusCode::SEE_OTHER
    );

    let missing = "/admin/users/00000000-0000-7000-8000-000000000000/password-reset";
    assert_eq!(admin.post(missing, &[]).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn malformed_and_unknown_tokens_get_the_invalid_link_page() {
    let app = TestApp::new().await;
    let (base, _stop) = app.spawn().await;
    let mut agent = Agent::new(&base);
    agent.get("/forgot-password").await;
    for token in ["", "not a token", "%%%", UNKNOWN] {
        let r = agent
            .post(RESET, &[("token", token), ("new_password", NEW_PW)])
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{token}");
        assert!(r.text.contains(INVALID_RESET), "{}", r.text);
        let r = agent.post(VERIFY, &[("token", token)]).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{token}");
        assert!(r.text.contains(INVALID_VERIFY), "{}", r.text);
    }
    for path in [RESET, VERIFY] {
        let r = agent.get(path).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{path}");
        assert_no_referrer(&r);
    }
}

#[tokio::test]
async fn without_mail_the_pages_offer_no_links_and_answer_500() {
    let app = TestApp::new().await;
    app.register("alice").await;
    let state = AppState::new(Arc::clone(&app.state.auth), Arc::clone(&app.state.users));
    let (base, _stop) = spawn_router(user_http::router(state)).await;
    let mut agent = signed_in(&base, "alice").await;
    let profile = agent.get("/profile").await;
    assert!(!profile.text.contains("Send the link again"));
    let r = agent.post("/profile/verification", &[]).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.text);
    let mut visitor = Agent::new(&base);
    let login = visitor.get("/login").await;
    assert!(!login.text.contains("/forgot-password"));
    assert!(!login.text.contains("/verify-email/resend"));
    for path in [
        "/forgot-password",
        "/reset-password?token=x",
        "/verify-email/resend",
    ] {
        let r = visitor.get(path).await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
    }
}

const RESEND: &str = "/verify-email/resend";
const ON_ITS_WAY: &str = "If an unconfirmed account has this address, a new link is on its way.";
const SIGN_IN_REFUSED: &str = "Confirm your email address before signing in.";

/// An app whose sign-in needs a confirmed address.
async fn requiring_verified_email() -> TestApp {
    let policy = AuthPolicy {
        require_verified_email: true,
        ..AuthPolicy::default()
    };
    TestApp::with_policy(HttpConfig::default(), Templates::default(), policy).await
}

/// The value of the `email` field of the page's form, or `None` without one.
fn email_field(page: &str) -> Option<&str> {
    let start = page.find(r#"name="email" type="email" value=""#)?;
    let rest = &page[start + r#"name="email" type="email" value=""#.len()..];
    rest.split('"').next()
}

#[tokio::test]
async fn a_sign_in_refused_for_an_unconfirmed_address_offers_a_new_link() {
    let app = requiring_verified_email().await;
    app.register("uma").await;
    let lost = app.link_token(VERIFY, "uma@example.com").await;
    let (base, _stop) = app.spawn().await;
    let mut visitor = Agent::new(&base);

    // Signed in with the address: the form to ask again, with that address.
    visitor.get("/login").await;
    let fields = [
        ("identifier", "Uma@Example.com"),
        ("password", PW),
        ("next", ""),
    ];
    let r = visitor.post("/login", &fields).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(r.text.contains(SIGN_IN_REFUSED), "{}", r.text);
    assert!(
        r.text.contains(r#"action="/verify-email/resend""#),
        "{}",
        r.text
    );
    assert_eq!(email_field(&r.text), Some("Uma@Example.com"));
    assert!(visitor.session().is_none(), "not signed in");

    // With the username: the same offer, the address left for the person to type.
    let fields = [("identifier", "uma"), ("password", PW), ("next", "")];
    let r = visitor.post("/login", &fields).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(r.text.contains(SIGN_IN_REFUSED));
    assert_eq!(email_field(&r.text), Some(""));
    assert!(!r.text.contains("uma@example.com"), "{}", r.text);

    // A wrong password learns nothing about the address.
    let fields = [
        ("identifier", "uma"),
        ("password", "wrong password"),
        ("next", ""),
    ];
    let r = visitor.post("/login", &fields).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert!(!r.text.contains(SIGN_IN_REFUSED));
    assert_eq!(email_field(&r.text), None);

    // The form's answer is the same for a known and an unknown address.
    let known = visitor.post(RESEND, &[("email", "uma@example.com")]).await;
    assert_eq!(known.status, StatusCode::SEE_OTHER, "{}", known.text);
    assert_eq!(location(&known), "/login");
    let known_cookies = visitor.set_cookies.clone();
    let unknown = visitor
        .post(RESEND, &[("email", "nobody@example.com")])
        .await;
    assert_eq!(
        (unknown.status, location(&unknown), &visitor.set_cookies),
        (known.status, location(&known), &known_cookies)
    );
    let r = visitor.get("/login").await;
    assert!(r.text.contains(ON_ITS_WAY), "{}", r.text);
    let links = app.links(VERIFY).await;
    let to: Vec<&str> = links.iter().map(|(to, _)| to.as_str()).collect();
    assert_eq!(to, ["uma@example.com"]);

    // The new link confirms the address (the lost one no longer does); sign-in works.
    let r = visitor.post(VERIFY, &[("token", &lost)]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(
        r.text.contains(r#"href="/verify-email/resend""#),
        "{}",
        r.text
    );
    let r = visitor.post(VERIFY, &[("token", &links[0].1)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(location(&r), "/login");
    let r = visitor
        .post(
            "/login",
            &[("identifier", "uma"), ("password", PW), ("next", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(location(&r), "/profile");
}

#[tokio::test]
async fn the_sign_in_page_leads_to_the_new_link_form() {
    let app = TestApp::new().await;
    app.register("alice").await;
    app.links(VERIFY).await;
    let (base, _stop) = app.spawn().await;
    let mut visitor = Agent::new(&base);
    let login = visitor.get("/login").await;
    assert!(
        login.text.contains(r#"href="/verify-email/resend""#),
        "{}",
        login.text
    );
    assert!(login.text.contains("Didn't get the confirmation mail?"));
    let form = visitor.get(RESEND).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text);
    assert!(form.text.contains(r#"action="/verify-email/resend""#));
    assert_eq!(email_field(&form.text), Some(""));

    // No address at all: the form again with the problem by its field, what was typed kept.
    let r = visitor.post(RESEND, &[("email", "not an address")]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.text.contains(r#"id="email-error""#), "{}", r.text);
    assert_eq!(email_field(&r.text), Some("not an address"));

    // A form from another session is refused.
    let other = signed_in(&base, "alice").await;
    let r = visitor
        .post(
            RESEND,
            &[
                ("email", "alice@example.com"),
                ("csrf_token", &other.csrf()),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);

    // Five an hour per address (by default); then the wait, on the form.
    for _ in 0..5 {
        let r = visitor
            .post(RESEND, &[("email", "alice@example.com")])
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    }
    let r = visitor
        .post(RESEND, &[("email", "alice@example.com")])
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert!(r.headers.contains_key(header::RETRY_AFTER));
    assert!(
        r.text.contains("Too many attempts, try again in"),
        "{}",
        r.text
    );
    assert_eq!(email_field(&r.text), Some("alice@example.com"));
    assert_eq!(app.links(VERIFY).await.len(), 5);
}

#[tokio::test]
async fn with_too_many_link_requests_in_progress_the_forms_say_busy() {
    let mut policy = AuthPolicy::default();
    policy.account.max_pending_link_requests = 0;
    let app = TestApp::with_policy(HttpConfig::default(), Templates::default(), policy).await;
    let (base, _stop) = app.spawn().await;
    let mut visitor = Agent::new(&base);
    visitor.get("/login").await;
    for path in ["/forgot-password", RESEND] {
        let r = visitor.post(path, &[("email", "alice@example.com")]).await;
        assert_eq!(
            r.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{path}: {}",
            r.text
        );
        assert_eq!(r.headers[header::RETRY_AFTER], "1", "{path}");
        assert!(r.text.contains("busy"), "{path}: {}", r.text);
        assert_eq!(email_field(&r.text), Some("alice@example.com"), "{path}");
    }
}

#[tokio::test]
async fn the_forgot_password_page_limits_requests_per_client_address() {
    let mut policy = AuthPolicy::default();
    policy.account.reset_requests_per_ip_per_hour = NonZeroU32::new(2);
    let app = TestApp::with_policy(HttpConfig::default(), Templates::default(), policy).await;
    app.register("alice").await;
    let (base, _stop) = app.spawn().await;
    let mut noisy = Agent::from_address(&base, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
    let mut other = Agent::from_address(&base, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)));
    noisy.get("/forgot-password").await;
    other.get("/forgot-password").await;

    for email in ["alice@example.com", "nobody@example.com"] {
        let r = noisy.post("/forgot-password", &[("email", email)]).await;
        assert_eq!(r.status, StatusCode::OK, "{email}: {}", r.text);
        assert!(r.text.contains("Check your email"));
    }
    let r = noisy
        .post("/forgot-password", &[("email", "someone@example.com")])
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert!(r.headers.contains_key(header::RETRY_AFTER));
    assert!(
        r.text.contains("Too many attempts, try again in"),
        "{}",
        r.text
    );
    assert_eq!(email_field(&r.text), Some("someone@example.com"));

    // Another client address still gets its link.
    let r = other
        .post("/forgot-password", &[("email", "alice@example.com")])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("Check your email"));
    let links = app.links(RESET).await;
    let to: Vec<&str> = links.iter().map(|(to, _)| to.as_str()).collect();
    assert_eq!(to, ["alice@example.com", "alice@example.com"]);
}
