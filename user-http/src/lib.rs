//! The HTTP adapter of user-management, on axum, with two faces: a JSON API for programs
//! (`/api/v1`, bearer tokens, OpenAPI 3.1) and server-rendered pages for people (session
//! cookie, CSRF tokens, no JavaScript).
//!
//! # Layout
//!
//! - [`router`] builds everything from an [`AppState`] (the core services, never the ports);
//!   a host application can [`Router::nest`] it under any prefix. [`serve`] runs it on a
//!   listener the caller bound.
//! - `api/`: JSON handlers; [`api::ApiDoc`] is the OpenAPI document, served at
//!   `/api/v1/openapi.json` (as [`api::ApiDoc::for_policy`], with the deployment's password
//!   minimum) and rendered at `/api/v1/docs`. Each operation lists every status it answers
//!   with (405 and 408 included); field schemas are built from user-core's constants.
//! - `pages/`: HTML handlers (`Result<_, PageError>`, the pages' error mapping), the `Web`
//!   extractor with CSRF, flash messages, and [`Templates`] (minijinja, defaults embedded;
//!   replace any template or the stylesheet by name).
//! - [`ApiError`]: the one JSON error shape; one table from core's `ErrorKind` to statuses and
//!   codes, per ARCHITECTURE.md. [`ErrorCode`] is the one list of codes (the schema's enum).
//! - [`CurrentActor`] and [`AdminActor`]: extractors for a host application's own routes.
//! - [`trace`]: request ids and request logs at the levels of one table shared with
//!   `user_grpc::trace`: a client error (4xx) at INFO, overload and timeouts at WARN.
//! - `metrics` (feature `metrics`): request counts and latencies by route template.
//!
//! # Example
//!
//! ```no_run
//! # async fn run(auth: std::sync::Arc<user_core::auth::AuthService>,
//! #              users: std::sync::Arc<user_core::users::UserService>)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! let state = user_http::AppState::new(auth, users);
//! let app = axum::Router::new().nest("/auth", user_http::router(state));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! user_http::serve(listener, app, user_http::trace::layer(), std::future::pending()).await?;
//! # Ok(()) }
//! ```
//!
//! # Features
//!
//! - `metrics`: `metrics::MetricsLayer`, recording [`user_core::metrics`]'s HTTP names
//!   through the `metrics` facade (the application installs a recorder).

// The README's Rust examples compile as doc tests, so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

pub mod api;
mod error;
mod extract;
#[cfg(feature = "metrics")]
pub mod metrics;
mod pages;
pub mod trace;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::convert::Infallible;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::Route;
use axum::serve::ListenerExt as _;
use tokio::net::TcpListener;
use tower::{Layer, Service};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use user_core::account::AccountService;
use user_core::auth::AuthService;
use user_core::domain::TrustedProxies;
use user_core::users::UserService;

pub use error::{ApiError, ErrorBody, ErrorCode, FieldError};
pub use extract::{AdminActor, ApiJson, CurrentActor};
pub use pages::{TemplateError, Templates};
pub use user_core::Readiness;

/// Settings of the HTTP adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Send cookies with `Secure` and the `__Host-` prefix. Turn on behind HTTPS.
    pub secure_cookies: bool,
    /// Largest accepted request body (default 64 KiB); larger gets 413.
    pub body_limit: usize,
    /// Requests running longer get 408 (default 30 s).
    pub request_timeout: Duration,
    /// Reverse proxies whose forwarding header (`X-Forwarded-For` by default) gives the
    /// client address (default: none, the TCP peer is the client). See [`TrustedProxies`].
    pub trusted_proxies: TrustedProxies,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            secure_cookies: false,
            body_limit: 64 * 1024,
            request_timeout: Duration::from_secs(30),
            trusted_proxies: TrustedProxies::none(),
        }
    }
}

impl HttpConfig {
    pub(crate) fn session_cookie_name(&self) -> &'static str {
        if self.secure_cookies {
            "__Host-session"
        } else {
            "session"
        }
    }

    pub(crate) fn csrf_cookie_name(&self) -> &'static str {
        if self.secure_cookies {
            "__Host-csrf"
        } else {
            "csrf"
        }
    }

    pub(crate) fn device_cookie_name(&self) -> &'static str {
        if self.secure_cookies {
            "__Host-device"
        } else {
            "device"
        }
    }
}

/// What the handlers need: the core services and the adapter's settings.
#[derive(Clone)]
pub struct AppState {
    /// Registration, login, tokens.
    pub auth: Arc<AuthService>,
    /// Profiles and administration.
    pub users: Arc<UserService>,
    /// Password reset and email verification; without it those routes answer 500
    /// (mail is not configured).
    pub(crate) account: Option<Arc<AccountService>>,
    pub(crate) config: Arc<HttpConfig>,
    pub(crate) templates: Arc<Templates>,
    pub(crate) readiness: Option<Readiness>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl From<&user_core::Services> for AppState {
    fn from(services: &user_core::Services) -> Self {
        Self::new(Arc::clone(&services.auth), Arc::clone(&services.users))
            .with_account(Arc::clone(&services.account))
    }
}

impl AppState {
    /// State with default settings and templates.
    pub fn new(auth: Arc<AuthService>, users: Arc<UserService>) -> Self {
        Self {
            auth,
            users,
            account: None,
            config: Arc::new(HttpConfig::default()),
            templates: Arc::new(Templates::default()),
            readiness: None,
        }
    }

    /// Replaces the settings.
    #[must_use]
    pub fn with_config(mut self, config: HttpConfig) -> Self {
        self.config = Arc::new(config);
        self
    }

    /// Replaces the templates (see [`Templates::with_template`]).
    #[must_use]
    pub fn with_templates(mut self, templates: Templates) -> Self {
        self.templates = Arc::new(templates);
        self
    }

    /// Serves password reset and email verification through `account` (set already when
    /// the state is built from [`user_core::Services`]).
    #[must_use]
    pub fn with_account(mut self, account: Arc<AccountService>) -> Self {
        self.account = Some(account);
        self
    }

    /// Sets the check behind `/readyz`.
    #[must_use]
    pub fn with_readiness(mut self, check: Readiness) -> Self {
        self.readiness = Some(check);
        self
    }
}

/// Security headers on every response: a strict Content-Security-Policy (no scripts at all),
/// no framing, no MIME sniffing, no referrer across origins, `Cache-Control: no-store` unless
/// the handler allows caching (tokens and personal data never sit in a cache), and HSTS when
/// cookies are `Secure` (that is, behind HTTPS).
fn security_headers(router: Router, config: &HttpConfig) -> Router {
    let router = router.layer(SetResponseHeaderLayer::if_not_present(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    ));
    let router = if config.secure_cookies {
        router.layer(SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        ))
    } else {
        router
    };
    let headers: [(HeaderName, &'static str); 5] = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ];
    headers.into_iter().fold(router, |router, (name, value)| {
        router.layer(SetResponseHeaderLayer::if_not_present(
            name,
            HeaderValue::from_static(value),
        ))
    })
}

/// The whole adapter: JSON API, OpenAPI, JWKS, health checks and pages.
pub fn router(state: AppState) -> Router {
    let (v1, root) = api::routes();
    let config = Arc::clone(&state.config);
    let app = Router::new()
        .nest("/api/v1", v1)
        .merge(root)
        .merge(pages::routes())
        .with_state(state)
        .layer(DefaultBodyLimit::max(config.body_limit))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ));
    security_headers(app, &config)
}

/// Serves `app` on `listener` until `shutdown` completes, then lets in-flight requests
/// finish. Client addresses reach the handlers (they are recorded with sessions).
///
/// `layer` wraps every route of `app` after routing (as [`Router::layer`] does, so it sees
/// the matched route): [`trace::layer`] for request ids and logs, `metrics::MetricsLayer`
/// (feature `metrics`), any tower layer of the host, several as a tuple, or `()` for none.
/// Accepted sockets get `TCP_NODELAY`, so a response is never held back waiting for the
/// client's delayed ACK.
///
/// [`user_grpc::serve`](https://docs.rs/user-grpc) has the same shape.
///
/// # Errors
/// When accepting connections fails.
pub async fn serve<L>(
    listener: TcpListener,
    app: Router,
    layer: L,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: Layer<Route> + Clone + Send + Sync + 'static,
    L::Service: Service<axum::extract::Request> + Clone + Send + Sync + 'static,
    <L::Service as Service<axum::extract::Request>>::Response: IntoResponse + 'static,
    <L::Service as Service<axum::extract::Request>>::Error: Into<Infallible> + 'static,
    <L::Service as Service<axum::extract::Request>>::Future: Send + 'static,
{
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(
        listener,
        app.layer(layer)
            .into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
