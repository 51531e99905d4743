//! Second factors on the pages over a real socket and a real SQLite file: the second step
//! of a sign-in (a code, a recovery code, trust, expiry, throttling), the enrolment a policy
//! requires at sign-in, the owner's two-step sign-in page, and the admin's reset. Codes are
//! computed from the key the page shows, as an authenticator app would.

use std::time::Duration;

use axum::http::{StatusCode, header};
use user_core::auth::AuthPolicy;
use user_core::factor::totp_code;
use user_core::ports::Clock as _;
use user_http::{HttpConfig, Templates};

use crate::agent::{Agent, location};
use crate::pages::signed_in;
use crate::{PW, Reply, TestApp};

/// One step of an authenticator app: each code works once, so tests move on a step.
const STEP: Duration = Duration::from_secs(30);

fn capture(text: &str, pattern: &str) -> Option<String> {
    regex::Regex::new(pattern)
        .unwrap()
        .captures(text)
        .map(|c| c[1].to_owned())
}

/// The key the enrolment page shows, without the spaces of its groups.
fn secret_of(page: &Reply) -> String {
    capture(&page.text, r#"<code id="secret">([A-Z2-7 ]+)</code>"#)
        .unwrap_or_else(|| panic!("no key on the page: {}", page.text))
        .replace(' ', "")
}

/// The hidden challenge of a second-step form.
fn challenge_of(page: &Reply) -> String {
    capture(&page.text, r#"name="challenge" value="([A-Za-z0-9_-]+)""#)
        .unwrap_or_else(|| panic!("no challenge on the page: {}", page.text))
}

/// The recovery codes a page shows.
fn codes_of(page: &Reply) -> Vec<String> {
    regex::Regex::new(r"<li><code>((?:[0-9a-z]{4}-){5}[0-9a-z]{4})</code></li>")
        .unwrap()
        .captures_iter(&page.text)
        .map(|c| c[1].to_owned())
        .collect()
}

/// The inline SVG of a page.
fn svg_of(page: &Reply) -> String {
    let start = page.text.find("<svg").expect("an inline SVG");
    let end = page.text[start..].find("</svg>").expect("the SVG ends") + start + 6;
    page.text[start..end].to_owned()
}

fn assert_no_store(r: &Reply) {
    assert_eq!(r.headers[header::CACHE_CONTROL], "no-store", "{}", r.status);
}

/// The code the app shows now, after moving the clock on a step (a code works once).
fn next_code(app: &TestApp, secret: &str) -> String {
    app.clock.advance(STEP);
    totp_code(secret, app.clock.now())
}

/// The password step of a sign-in through the sign-in page.
async fn password_step(agent: &mut Agent, name: &str, next: &str) -> Reply {
    agent.get("/login").await;
    agent
        .post(
            "/login",
            &[("identifier", name), ("password", PW), ("next", next)],
        )
        .await
}

/// Turns on two-step sign-in from the profile of a signed-in `agent`: the key and the
/// recovery codes.
async fn enrol(app: &TestApp, agent: &mut Agent) -> (String, Vec<String>) {
    let r = agent
        .post("/profile/second-factor/setup", &[("password", PW)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let secret = secret_of(&r);
    let code = next_code(app, &secret);
    let r = agent
        .post("/profile/second-factor/confirm", &[("code", &code)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let codes = codes_of(&r);
    assert_eq!(codes.len(), 10, "{}", r.text);
    (secret, codes)
}

/// `name` registered over the API, enrolled from the profile, signed out: the key, the
/// recovery codes and the user's id.
async fn enrolled(app: &TestApp, base: &str, name: &str) -> (String, Vec<String>, String) {
    let user = app.register(name).await;
    let mut agent = signed_in(base, name).await;
    let (secret, codes) = enrol(app, &mut agent).await;
    agent.post("/logout", &[]).await;
    (secret, codes, user["id"].as_str().unwrap().to_owned())
}

/// The second step of a sign-in with `code`.
async fn second_step(agent: &mut Agent, challenge: &str, code: &str, trust: bool) -> Reply {
    let mut fields = vec![("challenge", challenge), ("code", code), ("next", "")];
    if trust {
        fields.push(("trust_device", "on"));
    }
    agent.post("/login/second-factor", &fields).await
}

/// A whole sign-in with a code; asserts it succeeds.
async fn sign_in_with_code(base: &str, name: &str, code: &str) -> Agent {
    let mut agent = Agent::new(base);
    let r = password_step(&mut agent, name, "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = second_step(&mut agent, &challenge_of(&r), code, false).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    agent
}

#[tokio::test]
async fn a_code_from_the_app_completes_the_sign_in_and_the_device_cookie_is_renewed() {
    let app = TestApp::new().await;
    let (base, _stop) = app.spawn().await;
    let (secret, _, _) = enrolled(&app, &base, "alice").await;

    let mut agent = Agent::new(&base);
    let r = password_step(&mut agent, "alice", "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_no_store(&r);
    assert!(r.text.contains("<h1>Enter a code</h1>"), "{}", r.text);
    assert!(r.text.contains(r#"action="/login/second-factor""#));
    assert!(r.text.contains(r#"autocomplete="one-time-code""#));
    // Text, not a number pad: recovery codes have letters.
    assert!(r.text.contains(r#"inputmode="text""#));
    assert!(
        !r.text.contains("pattern="),
        "a recovery code must fit the field"
    );
    assert!(r.text.contains("Trust this browser for 30 days"));
    assert!(agent.session().is_none(), "no session before the code");
    let challenge = challenge_of(&r);

    // A wrong code: the form again, with the same challenge and the error beside the field.
    let r = second_step(&mut agent, &challenge, "000000", false).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert!(r.text.contains(r#"id="code-error""#), "{}", r.text);
    assert!(r.text.contains("The code is not valid."));
    assert_eq!(challenge_of(&r), challenge);
    assert!(agent.session().is_none());
    for junk in ["", "not a code", "12345"] {
        let r = second_step(&mut agent, &challenge, junk, false).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{junk:?}");
    }

    let before = agent.cookies.get("device").cloned();
    let r = second_step(&mut agent, &challenge, &next_code(&app, &secret), false).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(location(&r), "/profile");
    let session = agent.session().expect("signed in");
    let device = agent.set_cookies.iter().find(|c| c.starts_with("device="));
    let device = device.expect("the device cookie is set, as at a one-step sign-in");
    assert!(device.contains("HttpOnly") && device.contains("SameSite=Strict"));
    assert_ne!(agent.cookies.get("device"), before.as_ref());
    let profile = agent.get("/profile").await;
    assert_eq!(profile.status, StatusCode::OK);
    assert!(profile.text.contains("Two-step sign-in"));
    assert!(
        profile.text.contains("10 recovery codes left"),
        "{}",
        profile.text
    );

    // The challenge is spent: used again, it sends the person back to the sign-in page.
    let mut other = Agent::new(&base);
    other.get("/login").await;
    let r = second_step(&mut other, &challenge, &next_code(&app, &secret), false).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/login");
    assert!(other.session().is_none());
    assert_eq!(agent.session(), Some(session));
}

#[tokio::test]
async fn a_recovery_code_signs_in_once() {
    let app = TestApp::new().await;
    let (base, _stop) = app.spawn().await;
    let (_, codes, _) = enrolled(&app, &base, "alice").await;

    let mut agent = sign_in_with_code(&base, "alice", &codes[0].to_uppercase()).await;
    let r = agent.get("/profile/second-factor").await;
    assert!(r.text.contains("<dd>9</dd>"), "{}", r.text);

    let mut again = Agent::new(&base);
    let r = password_step(&mut again, "alice", "").await;
    let r = second_step(&mut again, &challenge_of(&r), &codes[0], false).await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "a recovery code works once"
    );
    assert!(r.text.contains("The code is not valid."));
    let r = second_step(&mut again, &challenge_of(&r), &codes[1], false).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn an_expired_or_spent_challenge_goes_back_to_the_sign_in_page_with_a_message() {
    let app = TestApp::new().await;
    let (base, _stop) = app.spawn().await;
    let (secret, _, _) = enrolled(&app, &base, "alice").await;

    let mut agent = Agent::new(&base);
    let r = password_step(&mut agent, "alice", "/profile/sessions").await;
    assert!(
        r.text
            .contains(r#"name="next" value="&#x2f;profile&#x2f;sessions""#),
        "{}",
        r.text
    );
    let challenge = challenge_of(&r);
    app.clock.advance(Duration::from_secs(6 * 60));
    let code = totp_code(&secret, app.clock.now());
    let r = agent
        .post(
            "/login/second-factor",
            &[
                ("challenge", &challenge),
                ("code", &code),
                ("next", "/profile/sessions"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/login?next=%2Fprofile%2Fsessions");
    assert!(agent.session().is_none());
    let page = agent.get(&location(&r)).await;
    assert!(
        page.text
            .contains("This sign-in has expired or was already completed. Sign in again."),
        "{}",
        page.text
    );

    // A fresh sign-in goes where it was asked to.
    let r = password_step(&mut agent, "alice", "/profile/sessions").await;
    let r = agent
        .post(
            "/login/second-factor",
            &[
                ("challenge", &challenge_of(&r)),
                ("code", &next_code(&app, &secret)),
                ("next", "/profile/sessions"),
            ],
        )
        .await;
    assert_eq!(location(&r), "/profile/sessions");

    // An unknown challenge, and a GET of the form's address: back to the sign-in.
    let mut stranger = Agent::new(&base);
    stranger.get("/login").await;
    let r = second_step(&mut stranger, "made-up", "123456", false).await;
    assert_eq!(location(&r), "/login");
    for path in ["/login/second-factor", "/login/enrol"] {
        let r = stranger.get(path).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location(&r), "/login");
    }
}

#[tokio::test]
async fn the_second_step_keeps_the_csrf_protection_of_the_sign_in() {
    let app = TestApp::new().await;
    let (base, _stop) = app.spawn().await;
    let (secret, _, _) = enrolled(&app, &base, "alice").await;
    let mut agent = Agent::new(&base);
    let r = password_step(&mut agent, "alice", "").await;
    let challenge = challenge_of(&r);
    let code = next_code(&app, &secret);
    for path in ["/login/second-factor", "/login/enrol"] {
        for token in ["", "forged-token"] {
            let r = agent
                .post(
                    path,
                    &[
                        ("challenge", &challenge),
                        ("code", &code),
                        ("csrf_token", token),
                    ],
                )
                .await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{path} {token:?}");
            assert!(r.text.contains("This form has expired"));
        }
    }
    // Another browser with the challenge (and its own valid token) gets nowhere either:
    // without the first browser's cookie, its token is not that form's.
    let mut stranger = Agent::new(&base);
    let r = stranger
        .post(
            "/login/second-factor",
            &[
                ("challenge", &challenge),
                ("code", &code),
                ("csrf_token", &agent.csrf()),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(agent.session().is_none() && stranger.session().is_none());
    // The challenge still works for its own browser.
    let r = second_step(&mut agent, &challenge, &code, false).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
}

#[tokio::test]
async fn a_trusted_browser_skips_the_second_step_and_others_do_not() {
    let app = TestApp::new().await;
    let (base, _stop) = app.spawn().await;
    let (secret, _, _) = enrolled(&app, &base, "alice").await;

    let mut trusted = Agent::new(&base);
    let r = password_step(&mut trusted, "alice", "").await;
    let r = second_step(
        &mut trusted,
        &challenge_of(&r),
        &next_code(&app, &secret),
        true,
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    trusted.post("/logout", &[]).await;
    let r = password_step(&mut trusted, "alice", "").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "trusted: {}", r.text);
    assert_eq!(location(&r), "/profile");

    let mut other = Agent::new(&base);
    let r = password_step(&mut other, "alice", "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains("Enter a code"));

    // Not ticked: asked again next time.
    let r = second_step(
        &mut other,
        &challenge_of(&r),
        &next_code(&app, &secret),
        false,
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    other.post("/logout", &[]).await;
    let r = password_step(&mut other, "alice", "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains("Enter a code"));
}

#[tokio::test]
async fn wrong_codes_are_throttled_like_wrong_passwords() {
    let app = TestApp::new().await;
    let (base, _stop) = app.spawn().await;
    let (secret, _, _) = enrolled(&app, &base, "alice").await;
    let mut agent = Agent::new(&base);
    let r = password_step(&mut agent, "alice", "").await;
    let challenge = challenge_of(&r);
    for _ in 0..5 {
        let r = second_step(&mut agent, &challenge, "000000", false).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = second_step(&mut agent, &challenge, &next_code(&app, &secret), true).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert!(r.text.contains("Too many attempts"), "{}", r.text);
    assert!(r.headers.contains_key(header::RETRY_AFTER));
    assert!(
        r.text
            .contains(r#"name="trust_device" type="checkbox" value="on" checked"#),
        "the form keeps the tick"
    );
    assert_eq!(challenge_of(&r), challenge);
    assert!(agent.session().is_none());
}

fn enrolment_policy() -> AuthPolicy {
    let mut policy = AuthPolicy::default();
    policy.second_factor.required_for_everyone = true;
    policy
}

/// Asserts the page's QR code is inline SVG, drawn on the server: no script, no external
/// reference, and no script or image anywhere on the page.
fn assert_safe_qr(page: &Reply) {
    let svg = svg_of(page);
    assert!(svg.contains("<path"), "{svg:.300}");
    for absent in [
        "<script",
        "href",
        "http",
        "url(",
        "<image",
        "<use",
        "foreignObject",
        "otpauth",
        " on",
    ] {
        assert!(!svg.contains(absent), "{absent:?} in {svg:.300}");
    }
    for absent in ["<script", "<img", "otpauth://", "<iframe", "<object"] {
        assert!(!page.text.contains(absent), "{absent:?} on the page");
    }
}

#[tokio::test]
async fn the_policy_sends_a_person_without_a_factor_to_enrolment_at_sign_in() {
    let app = TestApp::with_policy(
        HttpConfig::default(),
        Templates::default(),
        enrolment_policy(),
    )
    .await;
    app.register("alice").await;
    let (base, _stop) = app.spawn().await;

    let mut agent = Agent::new(&base);
    let r = password_step(&mut agent, "alice", "/profile/sessions").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_no_store(&r);
    assert!(r.text.contains("<h1>Set up two-step sign-in</h1>"));
    assert!(r.text.contains(r#"action="/login/enrol""#));
    assert!(r.text.contains("Trust this browser for 30 days"));
    assert_safe_qr(&r);
    assert!(agent.session().is_none(), "no session before the enrolment");
    let secret = secret_of(&r);
    assert_eq!(secret.len(), 32, "160 bits in base32");
    let challenge = challenge_of(&r);

    // A wrong code: the form again, without the key (it is never carried in a form).
    let r = agent
        .post(
            "/login/enrol",
            &[
                ("challenge", &challenge),
                ("code", "000000"),
                ("next", "/profile/sessions"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert!(r.text.contains(r#"id="code-error""#));
    assert!(!r.text.contains("<svg") && !r.text.contains(&secret[..8]));
    assert!(
        r.text.contains(r#"href="/login">Start again"#),
        "{}",
        r.text
    );
    assert_eq!(challenge_of(&r), challenge);

    let r = agent
        .post(
            "/login/enrol",
            &[
                ("challenge", &challenge),
                ("code", &next_code(&app, &secret)),
                ("next", "/profile/sessions"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_no_store(&r);
    assert!(r.text.contains("<h1>Your recovery codes</h1>"));
    assert!(r.text.contains("shown only this once"));
    assert_eq!(codes_of(&r).len(), 10);
    assert!(
        r.text
            .contains(r#"href="&#x2f;profile&#x2f;sessions">Continue"#),
        "{}",
        r.text
    );
    assert!(
        r.text.contains("Sign out"),
        "the page shows the person signed in"
    );
    assert!(agent.session().is_some(), "signed in");
    let profile = agent.get("/profile/second-factor").await;
    assert_eq!(profile.status, StatusCode::OK);
    assert!(profile.text.contains("On since"), "{}", profile.text);
    assert!(profile.text.contains("Yes, for your account"));
    // The sign-out form of that page carries the new session's token.
    let r = agent.post("/logout", &[]).await;
    assert_eq!(location(&r), "/login");

    // Next time: the code.
    let r = password_step(&mut agent, "alice", "").await;
    assert!(r.text.contains("Enter a code"), "{}", r.text);
}

#[tokio::test]
async fn registration_under_the_policy_leads_straight_to_the_enrolment() {
    let app = TestApp::with_policy(
        HttpConfig::default(),
        Templates::default(),
        enrolment_policy(),
    )
    .await;
    let (base, _stop) = app.spawn().await;
    let mut agent = Agent::new(&base);
    agent.get("/register").await;
    let r = agent
        .post(
            "/register",
            &[
                ("username", "alice"),
                ("email", "alice@example.com"),
                ("password", PW),
                ("display_name", ""),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("<h1>Set up two-step sign-in</h1>"));
    assert_safe_qr(&r);
    assert!(agent.session().is_none());
    // An expired enrolment: back to the sign-in page.
    app.clock.advance(Duration::from_secs(6 * 60));
    let secret = secret_of(&r);
    let r = agent
        .post(
            "/login/enrol",
            &[
                ("challenge", &challenge_of(&r)),
                ("code", &totp_code(&secret, app.clock.now())),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/login");
}

#[tokio::test]
async fn signed_out_visitors_are_sent_to_the_sign_in_page() {
    let app = TestApp::new().await;
    app.register("alice").await;
    let (base, _stop) = app.spawn().await;
    let mut visitor = Agent::new(&base);
    let r = visitor.get("/profile/second-factor").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/login?next=%2Fprofile%2Fsecond-factor");
    visitor.get("/login").await;
    for path in [
        "/profile/second-factor/setup",
        "/profile/second-factor/confirm",
        "/profile/second-factor/recovery-codes",
        "/profile/second-factor/disable",
    ] {
        let r = visitor
            .post(path, &[("password", PW), ("code", "123456")])
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{path}");
        assert!(location(&r).starts_with("/login?next="), "{path}");
    }
}

#[tokio::test]
async fn the_owner_sets_up_two_step_sign_in_from_the_profile() {
    let app = TestApp::new().await;
    app.register("alice").await;
    let (base, _stop) = app.spawn().await;
    let mut agent = signed_in(&base, "alice").await;
    // Another browser, signed in before the factor is on.
    let mut other = signed_in(&base, "alice").await;

    let profile = agent.get("/profile").await;
    assert!(profile.text.contains("<h2>Two-step sign-in</h2>"));
    assert!(
        profile
            .text
            .contains(r#"<a href="/profile/second-factor">Manage two-step sign-in</a>"#),
        "{}",
        profile.text
    );
    let page = agent.get("/profile/second-factor").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.text
            .contains(r#"<dd id="second-factor-status">Off</dd>"#)
    );
    assert!(
        page.text
            .contains(r#"action="/profile/second-factor/setup""#)
    );
    assert!(!page.text.contains("/profile/second-factor/disable"));

    // A wrong password, beside its field.
    let r = agent
        .post("/profile/second-factor/setup", &[("password", "wrong")])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.text.contains(
            r#"<p class="error" id="setup-password-error">The password is incorrect.</p>"#
        ),
        "{}",
        r.text
    );

    let r = agent
        .post("/profile/second-factor/setup", &[("password", PW)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_no_store(&r);
    assert!(
        r.text
            .contains(r#"action="/profile/second-factor/confirm""#)
    );
    assert!(
        !r.text.contains(r#"name="challenge""#),
        "no challenge on the profile"
    );
    assert_safe_qr(&r);
    let secret = secret_of(&r);
    assert!(
        r.text
            .contains(&format!("{} {}", &secret[..4], &secret[4..8])),
        "grouped in fours"
    );

    // A wrong code: the code form again without the key; the set-up stays pending.
    let r = agent
        .post("/profile/second-factor/confirm", &[("code", "000000")])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.text.contains(r#"id="code-error""#), "{}", r.text);
    assert!(!r.text.contains(&secret[..8]));
    let page = agent.get("/profile/second-factor").await;
    assert!(page.text.contains("a set-up was started and not finished"));
    assert!(
        page.text
            .contains(r#"action="/profile/second-factor/confirm""#)
    );

    // The first code from the app turns it on: ten codes, shown once.
    let r = agent
        .post(
            "/profile/second-factor/confirm",
            &[("code", &next_code(&app, &secret))],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_no_store(&r);
    let codes = codes_of(&r);
    assert_eq!(codes.len(), 10);
    assert!(
        r.text
            .contains(r#"href="&#x2f;profile&#x2f;second-factor">Continue"#)
    );
    assert!(
        r.text.contains("Your other sessions were signed out."),
        "{}",
        r.text
    );
    // The other browser's session ended: its holder now needs a code too.
    let r = other.get("/profile").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(location(&r).starts_with("/login"), "{}", location(&r));
    let page = agent.get("/profile/second-factor").await;
    assert!(page.text.contains("On since 2026-01-01"), "{}", page.text);
    assert!(page.text.contains("<dd>10</dd>"));
    assert!(!page.text.contains(&codes[0]), "codes are shown once");
    let profile = agent.get("/profile").await;
    assert!(profile.text.contains("On since 2026-01-01"));

    // Set up again while on: refused above the forms, 409.
    let r = agent
        .post("/profile/second-factor/setup", &[("password", PW)])
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(
        r.text
            .contains("A second factor is already enabled: disable it first."),
        "{}",
        r.text
    );
    let r = agent
        .post("/profile/second-factor/confirm", &[("code", "123456")])
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn new_recovery_codes_replace_the_old_ones() {
    let app = TestApp::new().await;
    let (base, _stop) = app.spawn().await;
    let (secret, old, _) = enrolled(&app, &base, "alice").await;
    let mut agent = sign_in_with_code(&base, "alice", &old[0]).await;
    let page = agent.get("/profile/second-factor").await;
    assert!(
        page.text
            .contains(r#"action="/profile/second-factor/recovery-codes""#)
    );
    assert!(page.text.contains(r#"id="codes-password""#));
    assert!(page.text.contains(r#"id="codes-code""#), "{}", page.text);
    app.subjects().await;

    // A wrong password, or the password without a right code (a stolen session that knows
    // it), makes no codes: the problem beside its field.
    let r = agent
        .post(
            "/profile/second-factor/recovery-codes",
            &[("password", "wrong"), ("code", &next_code(&app, &secret))],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.text.contains(r#"id="codes-password-error""#),
        "{}",
        r.text
    );
    // (Each wrong code counts on the account's budget, as at sign-in.)
    for code in ["", "000000"] {
        let r = agent
            .post(
                "/profile/second-factor/recovery-codes",
                &[("password", PW), ("code", code)],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{code:?}");
        assert!(
            r.text
                .contains(r#"<p class="error" id="codes-code-error">The code is not valid.</p>"#),
            "{code:?}: {}",
            r.text
        );
        assert!(!r.text.contains(r#"id="codes-password-error""#));
    }
    assert!(app.subjects().await.is_empty(), "nothing changed, no mail");

    // A recovery code does it (and is spent with the rest).
    let r = agent
        .post(
            "/profile/second-factor/recovery-codes",
            &[("password", PW), ("code", &old[1])],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_no_store(&r);
    assert!(r.text.contains("Your previous codes no longer work."));
    let new = codes_of(&r);
    assert_eq!(new.len(), 10);
    assert!(new.iter().all(|c| !old.contains(c)));
    let mails = app.subjects().await;
    assert_eq!(mails.len(), 1, "the owner is told: {mails:?}");
    assert_eq!(mails[0].0, "alice@example.com");
    assert!(mails[0].1.contains("New recovery codes"), "{mails:?}");

    let mut other = Agent::new(&base);
    let r = password_step(&mut other, "alice", "").await;
    let r = second_step(&mut other, &challenge_of(&r), &old[2], false).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "an old code is refused");
    sign_in_with_code(&base, "alice", &new[1]).await;
}

#[tokio::test]
async fn turning_off_takes_the_password_and_a_code() {
    let app = TestApp::new().await;
    let (base, _stop) = app.spawn().await;
    let (secret, _, _) = enrolled(&app, &base, "alice").await;
    let mut agent = sign_in_with_code(&base, "alice", &next_code(&app, &secret)).await;
    let page = agent.get("/profile/second-factor").await;
    assert!(
        page.text
            .contains(r#"action="/profile/second-factor/disable""#)
    );
    assert!(page.text.contains(r#"id="disable-code""#));

    let r = agent
        .post(
            "/profile/second-factor/disable",
            &[("password", "wrong"), ("code", &next_code(&app, &secret))],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.text.contains(r#"id="disable-password-error""#),
        "{}",
        r.text
    );
    let r = agent
        .post(
            "/profile/second-factor/disable",
            &[("password", PW), ("code", "000000")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.text
            .contains(r#"<p class="error" id="disable-code-error">The code is not valid.</p>"#),
        "{}",
        r.text
    );

    let r = agent
        .post(
            "/profile/second-factor/disable",
            &[("password", PW), ("code", &next_code(&app, &secret))],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(location(&r), "/profile/second-factor");
    let page = agent.get("/profile/second-factor").await;
    assert!(page.text.contains("Two-step sign-in is off."));
    assert!(
        page.text
            .contains(r#"<dd id="second-factor-status">Off</dd>"#)
    );

    // Off already: refused above the forms.
    let r = agent
        .post(
            "/profile/second-factor/disable",
            &[("password", PW), ("code", "123456")],
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(
        r.text
            .contains("No second factor is enabled on this account.")
    );

    // The password alone signs in again.
    agent.post("/logout", &[]).await;
    let r = password_step(&mut agent, "alice", "").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn profile_forms_without_the_right_csrf_token_are_refused() {
    let app = TestApp::new().await;
    app.register("alice").await;
    app.register("bob").await;
    let (base, _stop) = app.spawn().await;
    let mut alice = signed_in(&base, "alice").await;
    let bob = signed_in(&base, "bob").await;
    let bobs = bob.csrf();
    for path in [
        "/profile/second-factor/setup",
        "/profile/second-factor/confirm",
        "/profile/second-factor/recovery-codes",
        "/profile/second-factor/disable",
    ] {
        for token in ["", "forged-token", bobs.as_str()] {
            let r = alice
                .post(
                    path,
                    &[("password", PW), ("code", "123456"), ("csrf_token", token)],
                )
                .await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{path} {token:?}");
        }
    }
    let page = alice.get("/profile/second-factor").await;
    assert!(
        page.text
            .contains(r#"<dd id="second-factor-status">Off</dd>"#),
        "nothing started"
    );
}

#[tokio::test]
async fn an_admin_sees_and_resets_a_second_factor_and_nobody_else_can() {
    let app = TestApp::new().await;
    app.create_admin("root").await;
    let (base, _stop) = app.spawn().await;
    let (secret, _, alice_id) = enrolled(&app, &base, "alice").await;
    let user_page = format!("/admin/users/{alice_id}");
    let reset = format!("/admin/users/{alice_id}/second-factor/reset");

    let mut root = signed_in(&base, "root").await;
    let page = root.get(&user_page).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.text.contains(
            r#"<dd id="second-factor-status">on since 2026-01-01 00:00 UTC, 10 recovery codes left</dd>"#
        ),
        "{}",
        page.text
    );
    assert!(page.text.contains(&format!(r#"action="{reset}""#)));
    assert!(page.text.contains("Reset second factor"));

    // Not an admin: refused, even on their own account.
    let mut alice = sign_in_with_code(&base, "alice", &next_code(&app, &secret)).await;
    let r = alice.post(&reset, &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Signed out: to the sign-in page.
    let mut visitor = Agent::new(&base);
    visitor.get("/login").await;
    let r = visitor.post(&reset, &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(location(&r).starts_with("/login"));
    // No or a wrong CSRF token.
    for token in ["", "forged-token", alice.csrf().as_str()] {
        let r = root.post(&reset, &[("csrf_token", token)]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{token:?}");
    }
    assert!(root.get(&user_page).await.text.contains("on since"));

    let r = root.post(&reset, &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(location(&r), user_page);
    let page = root.get(&user_page).await;
    assert!(
        page.text.contains("The second factor was reset"),
        "{}",
        page.text
    );
    assert!(
        page.text
            .contains(r#"<dd id="second-factor-status">off</dd>"#)
    );
    assert!(!page.text.contains("Reset second factor"));
    // Nothing left to reset: the page again with the reason.
    let r = root.post(&reset, &[]).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(
        r.text
            .contains("No second factor is enabled on this account.")
    );
    let r = root
        .post("/admin/users/not-an-id/second-factor/reset", &[])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // The password alone signs alice in now.
    let mut agent = Agent::new(&base);
    let r = password_step(&mut agent, "alice", "").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);

    // An admin turns their own factor off from their profile, never with the reset: their
    // page has no button, and the form is refused with the reason.
    let (root_secret, _) = enrol(&app, &mut root).await;
    let root_id = root.get("/admin/users?q=root").await;
    let root_id = capture(&root_id.text, r#"href="/admin/users/([0-9a-f-]{36})""#).unwrap();
    let own = format!("/admin/users/{root_id}");
    let page = root.get(&own).await;
    assert!(
        page.text
            .contains(r#"<dd id="second-factor-status">on since"#)
    );
    assert!(!page.text.contains("Reset second factor"), "{}", page.text);
    let r = root.post(&format!("{own}/second-factor/reset"), &[]).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(
        r.text.contains(
            "Turn off your own second factor from your profile, with your password and a code."
        ),
        "{}",
        r.text
    );
    sign_in_with_code(&base, "root", &next_code(&app, &root_secret)).await;
}
