//! Extractors: the JSON body with our error shape, and the signed-in caller for our routes
//! and for a host application's own routes.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum_extra::extract::CookieJar;
use serde::de::DeserializeOwned;
use user_core::domain::Actor;

use crate::AppState;
use crate::error::ApiError;

/// A JSON request body. Rejections use the API's error shape: 415 without
/// `Content-Type: application/json`, 400 for broken JSON, 422 for JSON of the wrong shape,
/// 413 above the body limit.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        ),
        JsonRejection::JsonSyntaxError(_) => ApiError::malformed("the body is not valid JSON"),
        JsonRejection::JsonDataError(e) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            // serde's message names the field and the expected type, never a value.
            format!(
                "the body does not match the expected shape: {}",
                data_error(e)
            ),
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => payload_too_large(),
        _ => ApiError::malformed("the body could not be read"),
    }
}

fn data_error(e: &axum::extract::rejection::JsonDataError) -> String {
    let text = e.body_text();
    text.split_once(": ")
        .map_or(text.clone(), |(_, detail)| detail.to_owned())
}

/// 413 with the API's error shape.
pub(crate) fn payload_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "the request body is too large",
    )
}

/// The signed-in caller: from `Authorization: Bearer <access token>`, or else from the
/// session cookie of the web pages. Rejects with 401.
///
/// Use it on a host application's own routes:
///
/// ```no_run
/// use axum::{Router, routing::get};
/// use user_http::{AppState, CurrentUser};
///
/// async fn dashboard(CurrentUser(actor): CurrentUser) -> String {
///     format!("hello {}", actor.user_id)
/// }
/// # fn app(state: AppState) -> Router {
/// Router::new().route("/dashboard", get(dashboard)).with_state(state)
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct CurrentUser(pub Actor);

impl<S> FromRequestParts<S> for CurrentUser
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        if let Some(token) = bearer(parts) {
            return match state.auth.authenticate(token).await {
                Ok(actor) => Ok(Self(actor)),
                Err(e) => Err(e.into()),
            };
        }
        let jar = CookieJar::from_headers(&parts.headers);
        match jar.get(state.config.session_cookie_name()) {
            Some(cookie) => state
                .auth
                .authenticate_browser(cookie.value())
                .await
                .map(Self)
                .map_err(ApiError::from),
            None => Err(ApiError::unauthenticated()),
        }
    }
}

/// The bearer token of the `Authorization` header, if any.
pub(crate) fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Like [`CurrentUser`], and an admin: rejects with 401, or 403 for anyone else.
#[derive(Debug, Clone, Copy)]
pub struct AdminUser(pub Actor);

impl<S> FromRequestParts<S> for AdminUser
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let CurrentUser(actor) = CurrentUser::from_request_parts(parts, state).await?;
        if actor.is_admin() {
            Ok(Self(actor))
        } else {
            Err(user_core::error::UserError::Forbidden.into())
        }
    }
}

/// The caller of our own JSON API: bearer tokens only, so a browser's cookie can never be
/// used to act through the API from another site.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BearerUser(pub(crate) Actor);

impl FromRequestParts<AppState> for BearerUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or_else(ApiError::unauthenticated)?;
        Ok(Self(state.auth.authenticate(token).await?))
    }
}

/// The client's user agent and address, recorded with a new session.
#[derive(Debug, Clone)]
pub(crate) struct Client(pub(crate) user_core::domain::ClientInfo);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let agent = parts
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok());
        let ip = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        Ok(Self(user_core::domain::ClientInfo::new(
            agent,
            ip.as_deref(),
        )))
    }
}
