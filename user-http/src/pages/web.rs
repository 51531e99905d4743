//! The request extractor of every page: the cookies, the signed-in person, the CSRF token,
//! the flash message; and what a handler does with them (check a posted form, redirect,
//! set or clear the session cookie).

use std::sync::Arc;

use axum::extract::{FromRequestParts, OriginalUri};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;
use user_core::domain::{Actor, ClientInfo, User};

use super::error::{ErrorPageSlot, PageError};
use super::flash::Flash;
use crate::AppState;
use crate::extract::Client;

/// The signed-in caller on a page: the [`Actor`] with their user record.
#[derive(Debug, Clone)]
pub(crate) struct PageActor {
    pub(crate) actor: Actor,
    pub(crate) user: User,
}

/// Everything a page handler needs: the state, the cookies (with the changes to send back),
/// the signed-in person if any, the CSRF token and the flash message. Every page handler
/// takes it: it is also what a [`PageError`] is rendered with.
#[derive(Clone)]
pub(crate) struct Web {
    pub(crate) state: AppState,
    pub(super) jar: CookieJar,
    pub(crate) me: Option<PageActor>,
    /// The CSRF token forms must carry: bound to the session (see [`csrf_token`]).
    pub(super) csrf: String,
    /// The device token cookie, if the browser has one.
    pub(crate) device_token: Option<String>,
    pub(super) flash: Option<&'static str>,
    /// The prefix the router is nested under, e.g. `/auth`, or empty.
    pub(crate) base: String,
    /// Path and query as requested, for `next` after sign-in.
    here: String,
    pub(crate) client: ClientInfo,
}

/// A form that carries the CSRF token.
pub(crate) trait Posted {
    /// The token the form sent back.
    fn csrf_token(&self) -> &str;
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

        let flash = jar
            .get(Flash::COOKIE)
            .and_then(|c| Flash::from_code(c.value()))
            .map(Flash::message);
        if jar.get(Flash::COOKIE).is_some() {
            jar = jar.remove(removal(config, Flash::COOKIE));
        }

        let Ok(Client(client)) = Client::from_request_parts(parts, state).await;
        let mut me = None;
        let mut session = None;
        let session_name = config.session_cookie_name();
        if let Some(cookie) = jar.get(session_name).map(|c| c.value().to_owned()) {
            match state.auth.authenticate_browser(&cookie).await {
                Ok(actor) => match state.users.get(&actor, actor.user_id).await {
                    Ok(user) => {
                        let actor = actor.with_client(client.clone());
                        me = Some(PageActor { actor, user });
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

        let web = Self {
            state: state.clone(),
            jar,
            me,
            csrf,
            device_token,
            flash,
            base,
            here,
            client,
        };
        if let Some(slot) = parts.extensions.get::<ErrorPageSlot>() {
            slot.fill(&web);
        }
        Ok(web)
    }
}

/// The anonymous cookie that binds the CSRF token of a signed-out browser.
fn anonymous_cookie(config: &crate::HttpConfig, value: String) -> Cookie<'static> {
    secure_cookie(config, config.csrf_cookie_name(), value, SameSite::Strict)
}

/// The removal of one of our cookies: same name, path and `Secure` as when it was set
/// (browsers ignore the removal of a `__Host-` cookie without `Secure`).
fn removal(config: &crate::HttpConfig, name: &'static str) -> Cookie<'static> {
    Cookie::build(name)
        .path("/")
        .secure(config.secure_cookies)
        .http_only(true)
        .build()
}

/// A cookie with our defaults: HttpOnly, Path=/, and Secure when configured.
fn secure_cookie(
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

impl Web {
    /// The signed-in person, or [`PageError::SignIn`].
    pub(crate) fn require(&self) -> Result<&PageActor, PageError> {
        self.me.as_ref().ok_or(PageError::SignIn)
    }

    /// The redirect to the sign-in page that comes back here afterwards.
    pub(super) fn sign_in_redirect(&self) -> Response {
        let next = serde_urlencoded::to_string([("next", self.here.as_str())]).unwrap_or_default();
        Redirect::to(&format!("{}/login?{next}", self.base)).into_response()
    }

    /// Refuses a form whose CSRF token does not match the cookie's.
    fn check_csrf(&self, token: &str) -> Result<(), PageError> {
        if !self.csrf.is_empty() && bool::from(token.as_bytes().ct_eq(self.csrf.as_bytes())) {
            Ok(())
        } else {
            Err(PageError::FormExpired)
        }
    }

    /// A posted form, read and CSRF-checked; or the error page saying why not (400, 413,
    /// or 403 for a CSRF token that does not match).
    pub(crate) fn accept<T: Posted>(
        &self,
        form: Result<axum::Form<T>, axum::extract::rejection::FormRejection>,
    ) -> Result<T, PageError> {
        let axum::Form(form) = form.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                PageError::Status(StatusCode::PAYLOAD_TOO_LARGE)
            } else {
                PageError::Status(StatusCode::BAD_REQUEST)
            }
        })?;
        self.check_csrf(form.csrf_token())?;
        Ok(form)
    }

    /// 303 to a path under the base, with an optional flash message.
    pub(crate) fn redirect(self, to: &str, flash: Option<Flash>) -> Response {
        let mut jar = self.jar;
        if let Some(flash) = flash {
            let cookie = secure_cookie(
                &self.state.config,
                Flash::COOKIE,
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
        // A page rendered in this response (not a redirect) shows the person signed in, and
        // its forms carry the token of the new session.
        self.csrf = csrf_token(login.session_token.expose_secret());
        let actor = Actor {
            user_id: login.user.id,
            role: login.user.role,
            session_id: login.session_id,
            client: self.client.clone(),
        };
        self.me = Some(PageActor {
            actor,
            user: login.user.clone(),
        });
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
