//! Tests of the HTTP adapter over a real SQLite file: router tests without sockets for the
//! JSON API, socket tests on 127.0.0.1:0 for cookies and redirects, and browser tests in
//! headless Chromium.

// Test helpers panic on failure, by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod account;
mod agent;
mod api;
mod audit;
mod browser;
mod failures_api;
mod failures_pages;
mod limits;
mod observe;
mod openapi;
mod openapi_schemas;
mod openapi_statuses;
mod page_errors;
mod pages;
mod pages_account;
mod pages_audit;
mod pages_second_factor;
mod second_factor_api;
mod security;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tempfile::TempDir;
use tower::ServiceExt as _;
use user_core::Ports;
use user_core::account::AccountService;
use user_core::auth::{AuthPolicy, AuthService, RegisterUser, SigningKey};
use user_core::domain::Role;
use user_core::factor::{FactorKey, TotpAuthenticator};
use user_core::ports::{Clock as _, MailComposer, MailOutbox as _, PasswordHasher};
use user_core::testing::{FastHasher, FixedClock, Fixture};
use user_core::users::UserService;
use user_http::{AppState, HttpConfig, Templates};
use user_mail::{MailSettings, MailTemplates};
use user_sqlite::{SqliteConfig, SqliteDatabase};

/// The password every helper uses.
pub const PW: &str = Fixture::PASSWORD;

/// The adapter over a fresh database, with a fixed clock and cheap hashing.
pub struct TestApp {
    /// The whole router.
    pub router: Router,
    /// The state it was built from.
    pub state: AppState,
    /// The clock the services read.
    pub clock: Arc<FixedClock>,
    /// The database.
    pub db: SqliteDatabase,
    /// Password reset and email verification, with mail composed by `user_mail`.
    pub account: Arc<AccountService>,
    _dir: TempDir,
}

/// A response, read whole.
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body as text.
    pub text: String,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }

    /// The `code` of an error body.
    pub fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_owned()
    }
}

impl TestApp {
    /// Default settings and templates.
    pub async fn new() -> Self {
        Self::with(HttpConfig::default(), Templates::default()).await
    }

    /// Custom settings and templates.
    pub async fn with(config: HttpConfig, templates: Templates) -> Self {
        Self::with_policy(config, templates, AuthPolicy::default()).await
    }

    /// Custom settings, templates and policy.
    pub async fn with_policy(config: HttpConfig, templates: Templates, policy: AuthPolicy) -> Self {
        Self::with_hasher(config, templates, policy, Arc::new(FastHasher::new())).await
    }

    /// Custom settings, templates, policy and password hasher.
    pub async fn with_hasher(
        config: HttpConfig,
        templates: Templates,
        policy: AuthPolicy,
        hasher: Arc<dyn PasswordHasher>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteDatabase::open(&SqliteConfig::new(dir.path().join("users.db")))
            .await
            .unwrap();
        let clock = Arc::new(FixedClock::default());
        let ports = Ports::new(db.storage(), hasher, clock.clone());
        let key = SigningKey::generate_ed25519().unwrap();
        // Mail is composed as in production and left queued in the outbox, where tests read
        // the links.
        let settings = MailSettings::new("Test site", "https://example.com/accounts").unwrap();
        let composer: Arc<dyn MailComposer> = Arc::new(MailTemplates::new(settings));
        // Second factors on, as `Services::builder(..).second_factor_key(..)` does.
        let totp = Arc::new(TotpAuthenticator::new(
            FactorKey::generate().unwrap(),
            policy.second_factor.issuer.clone(),
        ));
        let users = Arc::new(
            UserService::new(ports.clone(), &policy)
                .with_mail_composer(Arc::clone(&composer))
                .with_second_factors(Arc::clone(&totp)),
        );
        let account = Arc::new(
            AccountService::new(ports.clone(), &policy).with_mail_composer(Arc::clone(&composer)),
        );
        let auth = Arc::new(
            AuthService::new(ports, policy, &key, vec![])
                .unwrap()
                .with_mail_composer(composer)
                .with_second_factors(totp),
        );
        let ping_db = db.clone();
        let state = AppState::new(auth, users)
            .with_account(Arc::clone(&account))
            .with_config(config)
            .with_templates(templates)
            .with_readiness(Arc::new(move || {
                let db = ping_db.clone();
                Box::pin(async move { db.ping().await.is_ok() })
            }));
        Self {
            router: user_http::router(state.clone()),
            state,
            clock,
            db,
            account,
            _dir: dir,
        }
    }

    /// Sends one request through the router, without a socket.
    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// A JSON request, with a bearer token if given.
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> Reply {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(v) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        self.send(builder.body(body).unwrap()).await
    }

    /// Registers `name` over the API and returns the user JSON.
    pub async fn register(&self, name: &str) -> Value {
        let body =
            json!({ "username": name, "email": format!("{name}@example.com"), "password": PW });
        let r = self
            .json(Method::POST, "/api/v1/auth/register", Some(body), None)
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.json()
    }

    /// Creates an admin through the core.
    pub async fn create_admin(&self, name: &str) {
        let form = RegisterUser {
            username: name.into(),
            email: format!("{name}@example.com"),
            password: secrecy::SecretString::from(PW),
            display_name: None,
        };
        self.state
            .auth
            .create_user(form, Role::Admin)
            .await
            .unwrap();
    }

    /// Signs in over the API and returns the token JSON.
    pub async fn login(&self, name: &str) -> Value {
        let body = json!({ "identifier": name, "password": PW });
        let r = self
            .json(Method::POST, "/api/v1/auth/login", Some(body), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.json()
    }

    /// The access token of a fresh sign-in.
    pub async fn token(&self, name: &str) -> String {
        self.login(name).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The links to `path` (`/reset-password`, `/verify-email`) in the mails queued since
    /// the last call, as (recipient, token), oldest first. Waits for the reset requests
    /// accepted so far; claims every queued mail, so each mail is read once.
    pub async fn links(&self, path: &str) -> Vec<(String, String)> {
        self.account.settled().await;
        let far = time::macros::datetime!(2100-01-01 00:00 UTC);
        let claimed = self
            .db
            .outbox()
            .claim(self.clock.now(), far, 1000)
            .await
            .unwrap();
        let link = regex::Regex::new(&format!(
            r"https://example\.com/accounts{}\?token=([A-Za-z0-9_-]+)",
            regex::escape(path)
        ))
        .unwrap();
        claimed
            .into_iter()
            .filter_map(|c| {
                let token = link.captures(&c.mail.text)?[1].to_owned();
                Some((c.mail.to.to_string(), token))
            })
            .collect()
    }

    /// The mails queued since the last call, as (recipient, subject), oldest first; claims
    /// every queued mail, as [`links`](Self::links) does.
    pub async fn subjects(&self) -> Vec<(String, String)> {
        self.account.settled().await;
        let far = time::macros::datetime!(2100-01-01 00:00 UTC);
        let claimed = self
            .db
            .outbox()
            .claim(self.clock.now(), far, 1000)
            .await
            .unwrap();
        claimed
            .into_iter()
            .map(|c| (c.mail.to.to_string(), c.mail.subject))
            .collect()
    }

    /// The token of the one link to `path` queued since the last call, mailed to `to`.
    pub async fn link_token(&self, path: &str, to: &str) -> String {
        let links = self.links(path).await;
        assert_eq!(links.len(), 1, "one {path} link: {links:?}");
        assert_eq!(links[0].0, to);
        links[0].1.clone()
    }

    /// Serves the router on 127.0.0.1:0; returns the base URL and a stop handle.
    pub async fn spawn(&self) -> (String, tokio::sync::oneshot::Sender<()>) {
        spawn_router(self.router.clone()).await
    }
}

/// Serves `router` (the adapter's, or a host application's around it) through
/// `user_http::serve` on 127.0.0.1:0; returns the base URL and a stop handle.
pub async fn spawn_router(router: Router) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let layers = (user_http::trace::layer(), user_http::metrics::MetricsLayer);
        user_http::serve(listener, router, layers, async {
            rx.await.ok();
        })
        .await
        .unwrap();
    });
    (base, tx)
}
