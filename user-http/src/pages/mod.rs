//! Server-rendered pages: forms with CSRF tokens, post/redirect/get with 303, flash messages,
//! an opaque session cookie. No JavaScript.

// A page handler's early exit is the response itself (a redirect or an error page), built
// once per request; boxing it would only add an allocation.
#![allow(clippy::result_large_err)]

mod account;
mod admin;
mod docs;
mod templates;

use axum::Router;
use axum::extract::{FromRequestParts, OriginalUri};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use minijinja::{Value, context};
use serde::Serialize;
use subtle::ConstantTimeEq;
use user_core::domain::{Actor, User};

use std::sync::Arc;

use crate::AppState;
use crate::extract::Client;

pub(crate) use docs::api_docs;
pub use templates::{TemplateError, Templates};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(account::home))
        .route("/login", get(account::login_form).post(account::login))
        .route(
            "/register",
            get(account::register_form).post(account::register),
        )
        .route("/logout", post(account::logout))
        .route("/profile", get(account::profile))
        .route("/profile/edit", get(account::edit_form).post(account::edit))
        .route(
            "/profile/password",
            get(account::password_form).post(account::password),
        )
        .route("/profile/sessions", get(account::sessions))
        .route(
            "/profile/sessions/{id}/revoke",
            post(account::revoke_session),
        )
        .route("/admin/users", get(admin::users))
        .route("/admin/users/{id}", get(admin::user))
        .route(
            "/admin/users/{id}/edit",
            get(admin::edit_form).post(admin::edit),
        )
        .route("/admin/users/{id}/role", post(admin::set_role))
        .route("/admin/users/{id}/status", post(admin::set_status))
        .route("/admin/users/{id}/unlock", post(admin::unlock))
        .route(
            "/admin/users/{id}/delete",
            get(admin::confirm_delete).post(admin::delete),
        )
        .route("/static/style.css", get(stylesheet))
        .fallback(not_found)
}

async fn stylesheet(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        state.templates.stylesheet().to_owned(),
    )
        .into_response()
}

async fn not_found(web: Web) -> Response {
    web.error(StatusCode::NOT_FOUND)
}

/// One-line messages shown once after a redirect, carried in a cookie as a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flash {
    Welcome,
    SignedOut,
    ProfileSaved,
    PasswordChanged,
    SessionEnded,
    RoleChanged,
    StatusChanged,
    UserSaved,
    UserDeleted,
    Unlocked,
}

impl Flash {
    const ALL: [Self; 10] = [
        Self::Welcome,
        Self::SignedOut,
        Self::ProfileSaved,
        Self::PasswordChanged,
        Self::SessionEnded,
        Self::RoleChanged,
        Self::StatusChanged,
        Self::UserSaved,
        Self::UserDeleted,
        Self::Unlocked,
    ];

    fn code(self) -> &'static str {
        match self {
            Self::Welcome => "welcome",
            Self::SignedOut => "signed-out",
            Self::ProfileSaved => "profile-saved",
            Self::PasswordChanged => "password-changed",
            Self::SessionEnded => "session-ended",
            Self::RoleChanged => "role-changed",
            Self::StatusChanged => "status-changed",
            Self::UserSaved => "user-saved",
            Self::UserDeleted => "user-deleted",
            Self::Unlocked => "unlocked",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::Welcome => "Welcome! Your account is ready.",
            Self::SignedOut => "You are signed out.",
            Self::ProfileSaved => "Your profile was saved.",
            Self::PasswordChanged => {
                "Your password was changed. Your other sessions were signed out."
            }
            Self::SessionEnded => "That session was signed out.",
            Self::RoleChanged => "The role was changed.",
            Self::StatusChanged => "The status was changed.",
            Self::UserSaved => "The profile was saved.",
            Self::UserDeleted => "The user was deleted.",
            Self::Unlocked => "Sign-in was unlocked.",
        }
    }
}

/// The signed-in person on a page.
#[derive(Debug, Clone)]
pub(crate) struct Me {
    pub(crate) actor: Actor,
    pub(crate) user: User,
}

/// Everything a page handler needs: the state, the cookies (with the changes to send back),
/// the signed-in person if any, the CSRF token and the flash message.
pub(crate) struct Web {
    pub(crate) state: AppState,
    jar: CookieJar,
    pub(crate) me: Option<Me>,
    /// The CSRF token forms must carry: bound to the session (see [`csrf_token`]).
    csrf: String,
    /// The device token cookie, if the browser has one.
    pub(crate) device_token: Option<String>,
    flash: Option<&'static str>,
    /// The prefix the router is nested under, e.g. `/auth`, or empty.
    pub(crate) base: String,
    /// Path and query as requested, for `next` after sign-in.
    here: String,
    pub(crate) client: user_core::domain::ClientInfo,
}

/// The CSRF token of a browser: HMAC-SHA256 keyed with the secret it is bound to, the
/// session cookie when signed in, else the anonymous `csrf` cookie. Both are random,
/// `HttpOnly` and never leave the browser but to us, so a page of another site can neither
/// read nor compute the token; a token made up by a client, or taken from another session,
/// does not match. Both secrets change at sign-in and sign-out, and so does the token. No
/// server key is needed, so every instance of the service agrees.
fn csrf_token(bound_to: &str) -> String {
    use hmac::Mac as _;
    match hmac::Hmac::<sha2::Sha256>::new_from_slice(bound_to.as_bytes()) {
        Ok(mut mac) => {
            mac.update(b"user-management csrf v1");
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        }
        // Unreachable (HMAC takes keys of any length); were it reached, the empty token
        // would refuse every form.
        Err(_) => String::new(),
    }
}

/// 256 random bits for a CSRF token, or `None` if the OS random source fails (then every
/// form is refused: fail closed, never a predictable token).
fn random_token() -> Option<String> {
    let mut bytes = [0u8; 32];
    match getrandom::fill(&mut bytes) {
        Ok(()) => Some(URL_SAFE_NO_PAD.encode(bytes)),
        Err(e) => {
            tracing::error!(error = %e, "random source failed while making a CSRF token");
            None
        }
    }
}

impl FromRequestParts<AppState> for Web {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let mut jar = CookieJar::from_headers(&parts.headers);
        let config = &state.config;
        let original = parts
            .extensions
            .get::<OriginalUri>()
            .map_or_else(|| parts.uri.clone(), |o| o.0.clone());
        let base = original
            .path()
            .strip_suffix(parts.uri.path())
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_owned();
        let here = original
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());

        let flash = jar.get("flash").and_then(|c| {
            Flash::ALL
                .into_iter()
                .find(|f| f.code() == c.value())
                .map(Flash::message)
        });
        if jar.get("flash").is_some() {
            jar = jar.remove(removal(config, "flash"));
        }

        let mut me = None;
        let mut session = None;
        let session_name = config.session_cookie_name();
        if let Some(cookie) = jar.get(session_name).map(|c| c.value().to_owned()) {
            match state.auth.authenticate_browser(&cookie).await {
                Ok(actor) => match state.users.get(&actor, actor.user_id).await {
                    Ok(user) => {
                        me = Some(Me { actor, user });
                        session = Some(cookie);
                    }
                    Err(e) => tracing::warn!(error = %e, "signed-in user could not be read"),
                },
                Err(_) => jar = jar.remove(removal(config, session_name)),
            }
        }

        let anonymous = jar
            .get(config.csrf_cookie_name())
            .map(|c| c.value().to_owned())
            .filter(|token| token.len() == 43);
        let csrf = match (session, anonymous) {
            (Some(session), _) => csrf_token(&session),
            (None, Some(anonymous)) => csrf_token(&anonymous),
            (None, None) => match random_token() {
                Some(anonymous) => {
                    jar = jar.add(anonymous_cookie(config, anonymous.clone()));
                    csrf_token(&anonymous)
                }
                None => String::new(),
            },
        };
        let device_token = jar
            .get(config.device_cookie_name())
            .map(|c| c.value().to_owned())
            .filter(|t| t.len() <= 64);

        let Ok(Client(client)) = Client::from_request_parts(parts, state).await;
        Ok(Self {
            state: state.clone(),
            jar,
            me,
            csrf,
            device_token,
            flash,
            base,
            here,
            client,
        })
    }
}

/// The anonymous cookie that binds the CSRF token of a signed-out browser.
fn anonymous_cookie(config: &crate::HttpConfig, value: String) -> Cookie<'static> {
    secure_cookie(config, config.csrf_cookie_name(), value, SameSite::Strict)
}

/// The removal of one of our cookies: same name, path and `Secure` as when it was set
/// (browsers ignore the removal of a `__Host-` cookie without `Secure`).
pub(crate) fn removal(config: &crate::HttpConfig, name: &'static str) -> Cookie<'static> {
    Cookie::build(name)
        .path("/")
        .secure(config.secure_cookies)
        .http_only(true)
        .build()
}

/// A cookie with our defaults: HttpOnly, Path=/, and Secure when configured.
pub(crate) fn secure_cookie(
    config: &crate::HttpConfig,
    name: &'static str,
    value: String,
    same_site: SameSite,
) -> Cookie<'static> {
    Cookie::build((name, value))
        .http_only(true)
        .path("/")
        .same_site(same_site)
        .secure(config.secure_cookies)
        .build()
}

/// Only local paths may follow a sign-in: `/profile`, never `//evil.example` or `https://...`.
pub(crate) fn local_path(next: &str) -> Option<&str> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control);
    ok.then_some(next)
}

/// A signed-in person as templates see them.
#[derive(Debug, Serialize)]
pub(crate) struct UserView {
    id: String,
    username: String,
    email: String,
    display_name: Option<String>,
    role: &'static str,
    status: &'static str,
    email_verified: bool,
    created_at: String,
    is_admin: bool,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.to_string(),
            username: u.username.to_string(),
            email: u.email.to_string(),
            display_name: u.display_name.as_ref().map(ToString::to_string),
            role: u.role.as_str(),
            status: u.status.as_str(),
            email_verified: u.email_verified_at.is_some(),
            created_at: date(u.created_at),
            is_admin: u.is_active_admin(),
        }
    }
}

/// A date a person reads: `2026-01-02 15:04 UTC`.
pub(crate) fn date(t: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    t.to_offset(time::UtcOffset::UTC)
        .format(&f)
        .unwrap_or_default()
}

impl Web {
    /// The signed-in person, or a redirect to the sign-in page that comes back here.
    pub(crate) fn require(&self) -> Result<&Me, Response> {
        self.me.as_ref().ok_or_else(|| {
            let next =
                serde_urlencoded::to_string([("next", self.here.as_str())]).unwrap_or_default();
            Redirect::to(&format!("{}/login?{next}", self.base)).into_response()
        })
    }

    /// Refuses a form whose CSRF token does not match the cookie's.
    pub(crate) fn check_csrf(&self, token: &str) -> Result<(), Response> {
        if !self.csrf.is_empty() && bool::from(token.as_bytes().ct_eq(self.csrf.as_bytes())) {
            return Ok(());
        }
        Err(self.render_error(
            StatusCode::FORBIDDEN,
            "This form has expired",
            "Go back, reload the page and try again.",
        ))
    }

    fn context(&self, page: Value) -> Value {
        let me = self.me.as_ref().map(|m| UserView::from(&m.user));
        context! {
            base => self.base.clone(),
            csrf_token => self.csrf.clone(),
            flash => self.flash,
            me => v(&me),
            ..page
        }
    }

    fn render_with(&self, jar: CookieJar, status: StatusCode, name: &str, page: Value) -> Response {
        match self.state.templates.render(name, self.context(page)) {
            Ok(html) => (
                status,
                jar,
                [(header::CACHE_CONTROL, "no-store")],
                Html(html),
            )
                .into_response(),
            Err(e) => {
                tracing::error!(template = name, error = %user_core::error::report(&e), "page failed to render");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
            }
        }
    }

    /// Renders a page with the common context.
    pub(crate) fn render(self, status: StatusCode, name: &str, page: Value) -> Response {
        self.render_with(self.jar.clone(), status, name, page)
    }

    fn render_error(&self, status: StatusCode, heading: &str, message: &str) -> Response {
        let page = context! { heading => heading, message => message, title => heading };
        self.render_with(self.jar.clone(), status, "error.html", page)
    }

    /// The error page for a status.
    pub(crate) fn error(&self, status: StatusCode) -> Response {
        let (heading, message) = match status {
            StatusCode::FORBIDDEN => (
                "Not allowed",
                "You do not have permission to see this page.",
            ),
            StatusCode::NOT_FOUND => ("Page not found", "There is nothing at this address."),
            StatusCode::PAYLOAD_TOO_LARGE => (
                "Too much data",
                "The form was too large. Shorten what you typed and try again.",
            ),
            StatusCode::BAD_REQUEST => (
                "Bad request",
                "The form could not be read. Reload the page and try again.",
            ),
            StatusCode::SERVICE_UNAVAILABLE => (
                "Busy",
                "The service is busy or unavailable. Try again in a moment.",
            ),
            _ => (
                "Something went wrong",
                "An internal error occurred. Try again later.",
            ),
        };
        self.render_error(status, heading, message)
    }

    /// 303 to a path under the base, with an optional flash message.
    pub(crate) fn redirect(self, to: &str, flash: Option<Flash>) -> Response {
        let mut jar = self.jar;
        if let Some(flash) = flash {
            let cookie = secure_cookie(
                &self.state.config,
                "flash",
                flash.code().to_owned(),
                SameSite::Lax,
            );
            jar = jar.add(cookie);
        }
        (jar, Redirect::to(&format!("{}{to}", self.base))).into_response()
    }

    /// Sets the session cookie and the device cookie after a sign-in, and a new anonymous
    /// CSRF secret for when the session ends.
    pub(crate) fn signed_in(&mut self, login: &user_core::auth::BrowserLogin) {
        use secrecy::ExposeSecret as _;
        let config = Arc::clone(&self.state.config);
        let token = login.session_token.expose_secret().to_owned();
        let mut cookie = secure_cookie(&config, config.session_cookie_name(), token, SameSite::Lax);
        cookie.set_expires(login.expires_at);
        let device = login.device_token.expose_secret().to_owned();
        let mut device = secure_cookie(
            &config,
            config.device_cookie_name(),
            device,
            SameSite::Strict,
        );
        let ttl = self.state.auth.policy().device_token_ttl;
        device.set_max_age(time::Duration::try_from(ttl).unwrap_or(time::Duration::MAX));
        self.jar = self.jar.clone().add(cookie).add(device);
        self.renew_anonymous_secret();
    }

    /// Clears the session cookie (after sign-out), with a new anonymous CSRF secret.
    pub(crate) fn clear_session(&mut self) {
        let config = Arc::clone(&self.state.config);
        self.jar = self
            .jar
            .clone()
            .remove(removal(&config, config.session_cookie_name()));
        self.renew_anonymous_secret();
    }

    fn renew_anonymous_secret(&mut self) {
        if let Some(anonymous) = random_token() {
            let cookie = anonymous_cookie(&self.state.config, anonymous);
            self.jar = self.jar.clone().add(cookie);
        }
    }

    /// The page for a core error that is not about a form field.
    pub(crate) fn user_error(&self, e: user_core::error::UserError) -> Response {
        use user_core::error::UserError;
        match e {
            UserError::Forbidden => self.error(StatusCode::FORBIDDEN),
            UserError::NotFound => self.error(StatusCode::NOT_FOUND),
            UserError::Throttled { retry_after } => {
                let wait = user_core::error::wait_in_minutes(retry_after);
                let message =
                    format!("Too many wrong passwords for this account. Try again in {wait}.");
                self.render_error(StatusCode::TOO_MANY_REQUESTS, "Too many attempts", &message)
            }
            UserError::Overloaded | UserError::Unavailable(_) => {
                log_server_error(&e);
                self.error(StatusCode::SERVICE_UNAVAILABLE)
            }
            other => {
                log_server_error(&other);
                self.error(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    /// A posted form, read and CSRF-checked; or the page saying why not.
    pub(crate) fn accept<T: Posted>(
        &self,
        form: Result<axum::Form<T>, axum::extract::rejection::FormRejection>,
    ) -> Result<T, Response> {
        let axum::Form(form) = form.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                self.error(StatusCode::PAYLOAD_TOO_LARGE)
            } else {
                self.error(StatusCode::BAD_REQUEST)
            }
        })?;
        self.check_csrf(form.csrf_token())?;
        Ok(form)
    }
}

/// A serializable value for a template context.
pub(crate) fn v<T: Serialize + ?Sized>(value: &T) -> Value {
    Value::from(minijinja::value::Serde(value))
}

/// A form that carries the CSRF token.
pub(crate) trait Posted {
    /// The token the form sent back.
    fn csrf_token(&self) -> &str;
}

/// Unwraps a page step or returns its response (a redirect or an error page).
macro_rules! page_try {
    ($step:expr) => {
        match $step {
            Ok(value) => value,
            Err(response) => return response,
        }
    };
}
pub(crate) use page_try;

pub(crate) fn log_server_error(e: &dyn std::error::Error) {
    tracing::error!(error = %user_core::error::report(e), "page request failed");
}

/// Field errors as templates see them: field name -> messages.
pub(crate) fn field_errors(
    errors: &user_core::error::ValidationErrors,
) -> std::collections::BTreeMap<&'static str, Vec<String>> {
    let mut map = std::collections::BTreeMap::<&'static str, Vec<String>>::new();
    for e in errors.iter() {
        map.entry(e.field).or_default().push(e.message.to_string());
    }
    map
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn only_local_paths_follow_a_sign_in() {
        assert_eq!(local_path("/profile"), Some("/profile"));
        assert_eq!(local_path("/admin/users?q=a"), Some("/admin/users?q=a"));
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil",
            "",
            "profile",
            "/a\nb",
        ] {
            assert_eq!(local_path(bad), None, "{bad:?}");
        }
    }
}
