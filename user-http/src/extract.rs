//! Extractors: the JSON body with our error shape, and the signed-in caller for our routes
//! and for a host application's own routes.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum_extra::extract::CookieJar;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use user_core::domain::Actor;

use crate::AppState;
use crate::error::{ApiError, ErrorCode};

/// A JSON request body. Rejections use the API's error shape: 415 without
/// `Content-Type: application/json`, 400 for broken JSON, 422 for JSON of the wrong shape
/// (anything but an object with the body's fields), 413 above the body limit.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // The content type, the size and the syntax first, as `Json` checks them; then the
        // shape. serde reads a struct from an array of its fields in order too: a body read
        // into a struct must be an object.
        let axum::Json(raw) = axum::Json::<Box<RawValue>>::from_request(req, state)
            .await
            .map_err(|rejection| json_rejection(&rejection))?;
        if is_struct::<T>() && !raw.get().trim_start().starts_with('{') {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::ValidationFailed,
                "the body does not match the expected shape: it must be a JSON object",
            ));
        }
        match axum::Json::<T>::from_bytes(raw.get().as_bytes()) {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

/// Whether `T` deserializes as a struct (rather than a sequence, a map, a value...).
fn is_struct<T: DeserializeOwned>() -> bool {
    matches!(T::deserialize(StructProbe), Err(e) if e.0)
}

/// A deserializer that only tells whether it was asked for a struct.
struct StructProbe;

/// Its answer: `true` when a struct was asked for.
#[derive(Debug)]
struct Probed(bool);

impl std::fmt::Display for Probed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("probed")
    }
}

impl std::error::Error for Probed {}

impl serde::de::Error for Probed {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        Self(false)
    }
}

impl<'de> serde::Deserializer<'de> for StructProbe {
    type Error = Probed;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Probed> {
        Err(Probed(false))
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Probed> {
        Err(Probed(true))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "send the body as JSON with Content-Type: application/json",
        ),
        JsonRejection::JsonSyntaxError(_) => ApiError::malformed("the body is not valid JSON"),
        JsonRejection::JsonDataError(e) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::ValidationFailed,
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
        ErrorCode::PayloadTooLarge,
        "the request body is too large",
    )
}

/// The signed-in caller: from `Authorization: Bearer <access token>`, or else from the
/// session cookie of the web pages. Rejects with 401.
///
/// A cookie rides along with requests that other sites make the browser send, so on a
/// state-changing method (anything but `GET`, `HEAD`, `OPTIONS`, `TRACE`) a cookie-signed-in
/// caller is accepted only from the same origin: the browser's `Sec-Fetch-Site` must say
/// `same-origin` (or `none`: typed by the user), or, from a browser too old to send it, the
/// `Origin` must match `Host`. Anything else gets 403. Bearer tokens are never sent by a
/// browser on its own and need no such check.
///
/// Use it on a host application's own routes:
///
/// ```no_run
/// use axum::{Router, routing::get};
/// use user_http::{AppState, CurrentActor};
///
/// async fn dashboard(CurrentActor(actor): CurrentActor) -> String {
///     format!("hello {}", actor.user_id)
/// }
/// # fn app(state: AppState) -> Router {
/// Router::new().route("/dashboard", get(dashboard)).with_state(state)
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct CurrentActor(pub Actor);

impl<S> FromRequestParts<S> for CurrentActor
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        if let Some(token) = bearer(parts) {
            return match state.auth.authenticate(token).await {
                Ok(actor) => Ok(Self(actor.with_client(client_info(parts, &state)))),
                Err(e) => Err(e.into()),
            };
        }
        let jar = CookieJar::from_headers(&parts.headers);
        match jar.get(state.config.session_cookie_name()) {
            Some(_) if !parts.method.is_safe() && !same_origin(parts) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::CrossSite,
                "this request came from another site and was refused",
            )),
            Some(cookie) => state
                .auth
                .authenticate_browser(cookie.value())
                .await
                .map(|actor| Self(actor.with_client(client_info(parts, &state))))
                .map_err(ApiError::from),
            None => Err(ApiError::unauthenticated()),
        }
    }
}

/// Whether the browser says the request comes from our own pages (see [`CurrentActor`]).
fn same_origin(parts: &Parts) -> bool {
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    // HTTP/2 carries the host in the request's authority rather than a `Host` header.
    let host = header("host").or_else(|| parts.uri.authority().map(|a| a.as_str()));
    match header("sec-fetch-site") {
        Some(site) => matches!(site, "same-origin" | "none"),
        None => match (header("origin"), host) {
            (Some(origin), Some(host)) => origin
                .split_once("://")
                .is_some_and(|(_, origin_host)| origin_host.eq_ignore_ascii_case(host)),
            _ => false,
        },
    }
}

/// The bearer token of the `Authorization` header, if any.
pub(crate) fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()
        .and_then(user_core::auth::bearer_token)
}

/// Like [`CurrentActor`], and an admin: rejects with 401, or 403 for anyone else.
#[derive(Debug, Clone)]
pub struct AdminActor(pub Actor);

impl<S> FromRequestParts<S> for AdminActor
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let CurrentActor(actor) = CurrentActor::from_request_parts(parts, state).await?;
        if actor.is_admin() {
            Ok(Self(actor))
        } else {
            Err(user_core::error::UserError::Forbidden.into())
        }
    }
}

/// The caller of our own JSON API: bearer tokens only, so a browser's cookie can never be
/// used to act through the API from another site.
#[derive(Debug, Clone)]
pub(crate) struct BearerActor(pub(crate) Actor);

impl FromRequestParts<AppState> for BearerActor {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or_else(ApiError::unauthenticated)?;
        let actor = state.auth.authenticate(token).await?;
        Ok(Self(actor.with_client(client_info(parts, state))))
    }
}

/// The caller of our own JSON API (bearer tokens only, as [`BearerActor`]) as their user
/// record, read with their session in one store read: for reads of the caller's own account
/// that act on nothing.
#[derive(Debug, Clone)]
pub(crate) struct BearerUser(pub(crate) user_core::domain::User);

impl FromRequestParts<AppState> for BearerUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or_else(ApiError::unauthenticated)?;
        let (_, user) = state.auth.authenticate_with_user(token).await?;
        Ok(Self(user))
    }
}

/// The client's user agent and address, recorded with a new session; rate limits count on
/// the address. It is the TCP peer's, or, when the peer is a trusted proxy
/// ([`crate::HttpConfig::trusted_proxies`]), the one its forwarding header gives.
#[derive(Debug, Clone)]
pub(crate) struct Client(pub(crate) user_core::domain::ClientInfo);

impl<S> FromRequestParts<S> for Client
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(client_info(parts, &AppState::from_ref(state))))
    }
}

/// See [`Client`]; the actor extractors put it on the [`Actor`] for the audit log.
pub(crate) fn client_info(parts: &Parts, state: &AppState) -> user_core::domain::ClientInfo {
    let agent = parts
        .headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let proxies = &state.config.trusted_proxies;
    let forwarded: Vec<&str> = parts
        .headers
        .get_all(proxies.header().name())
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let ip = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| {
            proxies
                .client_addr(c.0.ip(), forwarded.into_iter())
                .to_string()
        });
    user_core::domain::ClientInfo::new(agent, ip.as_deref())
}
