//! The pages answer core errors by the table in ARCHITECTURE.md: an overloaded hasher is a
//! 503, a wrong current password a 401, storage down a 503, each on the right page.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::{StatusCode, header};
use secrecy::SecretString;
use user_core::auth::AuthPolicy;
use user_core::domain::{Password, PasswordHash};
use user_core::error::HashError;
use user_core::ports::{PasswordHasher, Verification};
use user_core::testing::FastHasher;
use user_http::{HttpConfig, Templates};

use crate::agent::{Agent, location};
use crate::pages::signed_in;
use crate::{PW, TestApp};

/// A fast hasher that can be switched to answer `Overloaded`, as a saturated pool does.
#[derive(Default)]
pub(crate) struct SaturableHasher {
    inner: FastHasher,
    saturated: AtomicBool,
}

impl SaturableHasher {
    pub(crate) fn saturate(&self) {
        self.saturated.store(true, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), HashError> {
        if self.saturated.load(Ordering::SeqCst) {
            Err(HashError::Overloaded)
        } else {
            Ok(())
        }
    }
}

#[async_trait::async_trait]
impl PasswordHasher for SaturableHasher {
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError> {
        self.check()?;
        self.inner.hash(password).await
    }

    async fn verify(
        &self,
        candidate: &SecretString,
        hash: &PasswordHash,
    ) -> Result<Verification, HashError> {
        self.check()?;
        self.inner.verify(candidate, hash).await
    }
}

async fn saturable_app() -> (TestApp, Arc<SaturableHasher>) {
    let hasher = Arc::new(SaturableHasher::default());
    let app = TestApp::with_hasher(
        HttpConfig::default(),
        Templates::default(),
        AuthPolicy::default(),
        hasher.clone(),
    )
    .await;
    (app, hasher)
}

const NEW_PASSWORD: &str = "a whole new passphrase";

#[tokio::test]
async fn an_overloaded_hasher_answers_503_on_every_form_that_hashes() {
    let (app, hasher) = saturable_app().await;
    app.register("alice").await;
    let (base, _stop) = app.spawn().await;
    let mut agent = signed_in(&base, "alice").await;
    hasher.saturate();

    let r = agent
        .post(
            "/profile/password",
            &[("current_password", PW), ("new_password", NEW_PASSWORD)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert!(
        r.text.contains("The server is busy, try again shortly."),
        "{}",
        r.text
    );
    assert_eq!(
        r.headers[header::RETRY_AFTER],
        "1",
        "an overload says when to retry"
    );

    let mut stranger = Agent::new(&base);
    stranger.get("/register").await;
    let r = stranger
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
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);

    stranger.get("/login").await;
    let r = stranger
        .post(
            "/login",
            &[("identifier", "alice"), ("password", PW), ("next", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert_eq!(r.headers[header::RETRY_AFTER], "1");
    assert!(r.text.contains(r#"value="alice""#), "the form again");
}

#[tokio::test]
async fn a_wrong_current_password_is_401_and_keeps_the_session() {
    let app = TestApp::new().await;
    app.register("alice").await;
    let (base, _stop) = app.spawn().await;
    let mut agent = signed_in(&base, "alice").await;
    let r = agent
        .post(
            "/profile/password",
            &[
                ("current_password", "not the password"),
                ("new_password", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.text.contains("the password is incorrect"));
    assert!(r.text.contains(r#"aria-invalid="true""#), "by its field");
    let profile = agent.get("/profile").await;
    assert_eq!(profile.status, StatusCode::OK, "still signed in");
}

#[tokio::test]
async fn storage_down_is_a_503_page_and_signed_out_pages_redirect() {
    let app = TestApp::new().await;
    app.register("alice").await;
    let (base, _stop) = app.spawn().await;
    let mut agent = Agent::new(&base);
    let r = agent.get("/profile/sessions").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/login?next=%2Fprofile%2Fsessions");

    agent.get("/login").await;
    app.db.close().await;
    let r = agent
        .post(
            "/login",
            &[("identifier", "alice"), ("password", PW), ("next", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert!(!r.text.contains("pool"), "no cause on the page");
}

#[tokio::test]
async fn error_pages_are_whole_pages_with_the_request_s_cookies_and_person() {
    let app = TestApp::new().await;
    app.register("bob").await;
    let (base, _stop) = app.spawn().await;

    let mut stranger = Agent::new(&base);
    let r = stranger.get("/no/such/page").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.text.contains("Page not found") && r.text.contains("Sign in"));
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        stranger.set_cookies.iter().any(|c| c.starts_with("csrf=")),
        "the anonymous CSRF cookie the extractor made is kept: {:?}",
        stranger.set_cookies
    );

    let mut bob = signed_in(&base, "bob").await;
    let r = bob.get("/admin/users/not-an-id").await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "permission before existence"
    );
    assert!(r.text.contains("Not allowed") && r.text.contains("Sign out"));
    assert_eq!(r.headers["cache-control"], "no-store");
}
