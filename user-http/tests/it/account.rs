//! Password reset and email verification through the JSON API, over a real socket: the
//! tokens come out of the mails queued in the outbox, as a user's mail client would see them.

use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use user_core::auth::AuthPolicy;
use user_core::ports::Clock as _;
use user_http::{AppState, HttpConfig, Templates};

use crate::{PW, Reply, TestApp, spawn_router};

const MISSING: &str = "00000000-0000-7000-8000-000000000000";
const RESET: &str = user_mail::RESET_PASSWORD_PATH;
const VERIFY: &str = user_mail::VERIFY_EMAIL_PATH;
const NEW_PW: &str = "a fresh new passphrase";

/// A JSON client for a server on a real socket (also used by `second_factor_api.rs`).
pub(crate) struct Api {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Api {
    pub(crate) async fn serve(app: &TestApp) -> Self {
        let (base, stop) = app.spawn().await;
        Self::at(base, stop)
    }

    fn at(base: String, stop: tokio::sync::oneshot::Sender<()>) -> Self {
        Self {
            base,
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
            _stop: stop,
        }
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> Reply {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}/api/v1{path}", self.base));
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(v) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(v.to_string()))
            }
            None => Full::new(Bytes::new()),
        };
        let response = self
            .client
            .request(builder.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(body), None).await
    }

    /// [`Api::post`] over a connection from the local address `source` (any 127.x.y.z is
    /// local on Linux), so the server sees another client address.
    async fn post_from(&self, source: IpAddr, path: &str, body: Value) -> Reply {
        let mut connector = HttpConnector::new();
        connector.set_local_address(Some(source));
        let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("{}/api/v1{path}", self.base))
            .header(header::CONTENT_TYPE, "application/json")
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

    async fn request_verification(&self, email: &str) -> Reply {
        self.post("/auth/verify-email/resend", json!({ "email": email }))
            .await
    }

    pub(crate) async fn request_reset(&self, email: &str) -> Reply {
        self.post("/auth/password-reset", json!({ "email": email }))
            .await
    }

    pub(crate) async fn confirm(&self, token: &str, new_password: &str) -> Reply {
        self.post(
            "/auth/password-reset/confirm",
            json!({ "token": token, "new_password": new_password }),
        )
        .await
    }

    pub(crate) async fn login(&self, name: &str, password: &str) -> Reply {
        self.post(
            "/auth/login",
            json!({ "identifier": name, "password": password }),
        )
        .await
    }

    pub(crate) async fn me(&self, token: &str) -> Reply {
        self.call(Method::GET, "/me", None, Some(token)).await
    }
}

/// The field problems of an error body, as (field, code).
fn fields(r: &Reply) -> Vec<(String, String)> {
    r.json()["fields"]
        .as_array()
        .map(|fields| {
            fields
                .iter()
                .map(|f| {
                    (
                        f["field"].as_str().unwrap().to_owned(),
                        f["code"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A refused token: 422 `validation_failed` on field `token`, without the token in the body.
fn assert_invalid_token(r: &Reply, token: &str) {
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.code(), "validation_failed");
    assert_eq!(
        fields(r),
        [("token".to_owned(), "invalid_token".to_owned())]
    );
    assert!(token.is_empty() || !r.text.contains(token), "{}", r.text);
}

/// A JSON RFC 3339 time.
fn rfc3339(v: &Value) -> OffsetDateTime {
    let s = v.as_str().unwrap_or_else(|| panic!("{v} is not a string"));
    OffsetDateTime::parse(s, &Rfc3339).unwrap()
}

/// Headers that may differ between two identical answers.
fn stable(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| *name != header::DATE && name.as_str() != "x-request-id")
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
        .collect()
}

#[tokio::test]
async fn a_reset_link_sets_a_new_password_once_and_ends_every_session() {
    let app = TestApp::new().await;
    let api = Api::serve(&app).await;
    app.register("alice").await;
    let old_access = app.token("alice").await;

    let r = api.request_reset("Alice@Example.com").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert!(r.text.is_empty(), "{}", r.text);
    let first = app.link_token(RESET, "alice@example.com").await;
    // A newer link kills the older one.
    api.request_reset("alice@example.com").await;
    let second = app.link_token(RESET, "alice@example.com").await;
    assert_ne!(first, second);

    // A password the policy refuses leaves the link usable.
    let r = api.confirm(&second, "password").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(
        fields(&r).iter().all(|(field, _)| field == "new_password"),
        "{}",
        r.text
    );
    assert!(!r.text.contains(&second));

    let r = api.confirm(&second, NEW_PW).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["username"], "alice");
    assert!(!r.text.contains(&second));

    // The same link twice, and the superseded one, are refused alike.
    assert_invalid_token(
        &api.confirm(&second, "another new passphrase").await,
        &second,
    );
    assert_invalid_token(&api.confirm(&first, "another new passphrase").await, &first);

    // Sessions from before the reset are over; the old password no longer works.
    assert_eq!(api.me(&old_access).await.status, StatusCode::UNAUTHORIZED);
    let r = api.login("alice", PW).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    let r = api.login("alice", NEW_PW).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let access = r.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(api.me(&access).await.status, StatusCode::OK);
}

#[tokio::test]
async fn known_and_unknown_addresses_get_the_same_answer() {
    let app = TestApp::new().await;
    let api = Api::serve(&app).await;
    app.register("alice").await;

    let known = api.request_reset("alice@example.com").await;
    let unknown = api.request_reset("nobody@example.com").await;
    assert_eq!(known.status, StatusCode::ACCEPTED);
    assert_eq!(
        (unknown.status, stable(&unknown.headers), &unknown.text),
        (known.status, stable(&known.headers), &known.text)
    );
    // Only the account's address gets a mail.
    let links = app.links(RESET).await;
    let to: Vec<&str> = links.iter().map(|(to, _)| to.as_str()).collect();
    assert_eq!(to, ["alice@example.com"]);

    // No address at all is a field problem, not an accepted request.
    let r = api.request_reset("not an address").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(fields(&r)[0].0, "email");

    // Each address may ask a few times an hour (5 by default), known or not alike.
    for email in ["alice@example.com", "nobody@example.com"] {
        let mut last = None;
        for _ in 0..6 {
            last = Some(api.request_reset(email).await);
        }
        let last = last.unwrap();
        assert_eq!(last.status, StatusCode::TOO_MANY_REQUESTS, "{email}");
        assert_eq!(last.code(), "throttled");
        assert!(last.headers.contains_key(header::RETRY_AFTER));
    }
}

#[tokio::test]
async fn a_verification_link_verifies_the_address_once() {
    let app = TestApp::new().await;
    let api = Api::serve(&app).await;
    app.register("bob").await;
    let access = app.token("bob").await;
    let me = api.me(&access).await.json();
    assert_eq!(me["email_verified"], false);
    assert_eq!(me.get("email_verified_at"), Some(&Value::Null));

    // Registration mailed a first link; a resend kills it.
    let first = app.link_token(VERIFY, "bob@example.com").await;
    let resend = |token: Option<String>| {
        let api = &api;
        async move {
            api.call(Method::POST, "/me/verification", None, token.as_deref())
                .await
        }
    };
    assert_eq!(resend(None).await.status, StatusCode::UNAUTHORIZED);
    let r = resend(Some(access.clone())).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert!(r.text.is_empty());
    let token = app.link_token(VERIFY, "bob@example.com").await;

    assert_invalid_token(
        &api.post("/auth/verify-email", json!({ "token": first }))
            .await,
        &first,
    );
    // Verified a minute after registering: the time is the verification's, not the account's.
    app.clock.advance(Duration::from_secs(60));
    let verified_at = app.clock.now();
    let r = api
        .post("/auth/verify-email", json!({ "token": token }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["email_verified"], true);
    assert_eq!(rfc3339(&r.json()["email_verified_at"]), verified_at);
    assert!(!r.text.contains(&token));
    let me = api.me(&access).await.json();
    assert_eq!(me["email_verified"], true);
    assert_eq!(rfc3339(&me["email_verified_at"]), verified_at);
    assert_ne!(me["email_verified_at"], me["created_at"]);

    assert_invalid_token(
        &api.post("/auth/verify-email", json!({ "token": token }))
            .await,
        &token,
    );
    // A verified address gets no more links, with the same answer.
    let r = resend(Some(access.clone())).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert!(app.links(VERIFY).await.is_empty());
}

#[tokio::test]
async fn verification_links_are_limited_per_account() {
    let app = TestApp::new().await;
    let api = Api::serve(&app).await;
    app.register("carol").await;
    let access = app.token("carol").await;
    app.link_token(VERIFY, "carol@example.com").await;
    for _ in 0..5 {
        let r = api
            .call(Method::POST, "/me/verification", None, Some(&access))
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    }
    let r = api
        .call(Method::POST, "/me/verification", None, Some(&access))
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert!(r.headers.contains_key(header::RETRY_AFTER));
    // Only the newest of the links works.
    let links = app.links(VERIFY).await;
    assert_eq!(links.len(), 5);
    let r = api
        .post("/auth/verify-email", json!({ "token": links[0].1 }))
        .await;
    assert_invalid_token(&r, &links[0].1);
    let r = api
        .post("/auth/verify-email", json!({ "token": links[4].1 }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn an_unverified_address_is_refused_at_sign_in_when_the_policy_says_so() {
    let policy = AuthPolicy {
        require_verified_email: true,
        ..AuthPolicy::default()
    };
    let app = TestApp::with_policy(HttpConfig::default(), Templates::default(), policy).await;
    let api = Api::serve(&app).await;
    app.register("uma").await;
    let r = api.login("uma", PW).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(r.code(), "forbidden");
    // A wrong password learns nothing about the address.
    let r = api.login("uma", "wrong password").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);

    let token = app.link_token(VERIFY, "uma@example.com").await;
    let r = api
        .post("/auth/verify-email", json!({ "token": token }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = api.login("uma", PW).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn an_admin_mails_a_reset_link_and_never_sees_it() {
    let app = TestApp::new().await;
    let api = Api::serve(&app).await;
    app.create_admin("root").await;
    let dave = app.register("dave").await;
    let dave_id = dave["id"].as_str().unwrap();
    let admin = app.token("root").await;
    let user = app.token("dave").await;
    let path = |id: &str| format!("/admin/users/{id}/password-reset");

    let r = api
        .call(Method::POST, &path(dave_id), None, Some(&user))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(app.links(RESET).await.is_empty());

    let r = api
        .call(Method::POST, &path(dave_id), None, Some(&admin))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert!(r.text.is_empty(), "{}", r.text);
    let token = app.link_token(RESET, "dave@example.com").await;

    let r = api
        .call(Method::POST, &path(MISSING), None, Some(&admin))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = api
        .call(Method::POST, &path("not-an-id"), None, Some(&admin))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);

    let r = api.confirm(&token, NEW_PW).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(api.login("dave", NEW_PW).await.status, StatusCode::OK);
}

#[tokio::test]
async fn malformed_and_unknown_tokens_are_refused() {
    let app = TestApp::new().await;
    let api = Api::serve(&app).await;
    let unknown = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2U";
    for token in ["", "not a token", "%%%", unknown] {
        assert_invalid_token(&api.confirm(token, NEW_PW).await, token);
        let r = api
            .post("/auth/verify-email", json!({ "token": token }))
            .await;
        assert_invalid_token(&r, token);
    }
    let r = api.post("/auth/verify-email", json!({})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    // A real token of the other kind: a verification link does not reset a password.
    app.register("alice").await;
    let verify = app.link_token(VERIFY, "alice@example.com").await;
    assert_invalid_token(&api.confirm(&verify, NEW_PW).await, &verify);
}

#[tokio::test]
async fn without_mail_the_flows_answer_internal() {
    let app = TestApp::new().await;
    app.create_admin("root").await;
    let alice = app.register("alice").await;
    let admin = app.token("root").await;
    let access = app.token("alice").await;
    // The state of an application that wired no account service (so no mail).
    let state = AppState::new(Arc::clone(&app.state.auth), Arc::clone(&app.state.users));
    let (base, stop) = spawn_router(user_http::router(state)).await;
    let api = Api::at(base, stop);
    let admin_reset = format!(
        "/admin/users/{}/password-reset",
        alice["id"].as_str().unwrap()
    );
    let answers = [
        api.request_reset("alice@example.com").await,
        api.confirm("whatever", NEW_PW).await,
        api.post("/auth/verify-email", json!({ "token": "whatever" }))
            .await,
        api.request_verification("alice@example.com").await,
        api.call(Method::POST, "/me/verification", None, Some(&access))
            .await,
        api.call(Method::POST, &admin_reset, None, Some(&admin))
            .await,
    ];
    for r in answers {
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.text);
        assert_eq!(r.code(), "internal");
    }
}

#[tokio::test]
async fn a_signed_out_person_asks_for_a_new_link_by_address_and_then_signs_in() {
    let policy = AuthPolicy {
        require_verified_email: true,
        ..AuthPolicy::default()
    };
    let app = TestApp::with_policy(HttpConfig::default(), Templates::default(), policy).await;
    let api = Api::serve(&app).await;
    app.register("uma").await;
    // Registration mailed a first link, which the person lost.
    let lost = app.link_token(VERIFY, "uma@example.com").await;
    let r = api.login("uma", PW).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(r.code(), "forbidden");

    // No token needed; known and unknown addresses get the same empty 202.
    let known = api.request_verification("Uma@Example.com").await;
    assert_eq!(known.status, StatusCode::ACCEPTED, "{}", known.text);
    assert!(known.text.is_empty(), "{}", known.text);
    let unknown = api.request_verification("nobody@example.com").await;
    assert_eq!(
        (unknown.status, stable(&unknown.headers), &unknown.text),
        (known.status, stable(&known.headers), &known.text)
    );
    let token = app.link_token(VERIFY, "uma@example.com").await;
    assert_ne!(token, lost);

    // The new link replaces the lost one, verifies, and sign-in works.
    let r = api
        .post("/auth/verify-email", json!({ "token": lost }))
        .await;
    assert_invalid_token(&r, &lost);
    let r = api
        .post("/auth/verify-email", json!({ "token": token }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["email_verified"], true);
    let r = api.login("uma", PW).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // A confirmed address gets no more links, with the same answer.
    let r = api.request_verification("uma@example.com").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert!(app.links(VERIFY).await.is_empty());
}

#[tokio::test]
async fn verification_requests_by_address_need_an_address_and_are_limited() {
    let app = TestApp::new().await;
    let api = Api::serve(&app).await;
    let r = api.request_verification("not an address").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(fields(&r), [("email".to_owned(), "invalid".to_owned())]);
    let r = api.post("/auth/verify-email/resend", json!({})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);

    // Five an hour per address (by default), known or not alike; others keep their own.
    app.register("vic").await;
    app.links(VERIFY).await;
    for email in ["vic@example.com", "nobody@example.com"] {
        for _ in 0..5 {
            let r = api.request_verification(email).await;
            assert_eq!(r.status, StatusCode::ACCEPTED, "{email}: {}", r.text);
        }
        let r = api.request_verification(email).await;
        assert_eq!(
            r.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{email}: {}",
            r.text
        );
        assert_eq!(r.code(), "throttled");
        assert!(r.headers.contains_key(header::RETRY_AFTER));
    }
    let r = api.request_verification("wes@example.com").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(app.links(VERIFY).await.len(), 5, "vic's five links");
}

#[tokio::test]
async fn with_too_many_link_requests_in_progress_both_requests_answer_503() {
    let mut policy = AuthPolicy::default();
    policy.account.max_pending_link_requests = 0;
    let app = TestApp::with_policy(HttpConfig::default(), Templates::default(), policy).await;
    let api = Api::serve(&app).await;
    app.register("alice").await;
    app.links(VERIFY).await;
    for email in ["alice@example.com", "nobody@example.com"] {
        for r in [
            api.request_reset(email).await,
            api.request_verification(email).await,
        ] {
            assert_eq!(
                r.status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{email}: {}",
                r.text
            );
            assert_eq!(r.code(), "overloaded");
            assert_eq!(r.headers[header::RETRY_AFTER], "1");
        }
    }
    assert!(app.links(RESET).await.is_empty());
}

#[tokio::test]
async fn reset_requests_are_limited_per_client_address() {
    let mut policy = AuthPolicy::default();
    policy.account.reset_requests_per_ip_per_hour = NonZeroU32::new(2);
    let app = TestApp::with_policy(HttpConfig::default(), Templates::default(), policy).await;
    let api = Api::serve(&app).await;
    app.register("alice").await;
    let noisy = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
    let reset = |source, email: &str| {
        let body = json!({ "email": email });
        let api = &api;
        async move { api.post_from(source, "/auth/password-reset", body).await }
    };

    // Known and unknown addresses count alike against the client address.
    for email in ["alice@example.com", "nobody@example.com"] {
        let r = reset(noisy, email).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{email}: {}", r.text);
    }
    let r = reset(noisy, "someone@example.com").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert_eq!(r.code(), "throttled");
    let wait: u64 = r.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&wait), "a wait within the hour: {wait}");

    // Another client address still gets its answer, for the same account.
    let r = reset(other, "alice@example.com").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let r = reset(noisy, "alice@example.com").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "still limited");
    let links = app.links(RESET).await;
    let to: Vec<&str> = links.iter().map(|(to, _)| to.as_str()).collect();
    assert_eq!(to, ["alice@example.com", "alice@example.com"]);
}
