//! `/api/v1/auth/*`: registration, login, refresh, logout.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use user_core::auth::{Credentials, RegisterUser};

use super::responses::{Hashing, JsonBody, OtherMethod, SignedIn, Store};
use super::types::{LoginBody, RefreshBody, RegisterBody, SessionsEnded, TokensBody, UserBody};
use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, BearerActor, Client};

/// Register a user.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth",
    request_body = RegisterBody,
    responses(
        OtherMethod, JsonBody, Store, Hashing,
        (status = 201, description = "Registered", body = UserBody),
        (status = 409, description = "`conflict`: the username or email is taken (`fields` says which)", body = ErrorBody),
        (status = 429, description = "`throttled`: too many registrations from this client address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub(crate) async fn register(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<RegisterBody>,
) -> Result<(StatusCode, Json<UserBody>), ApiError> {
    let user = state
        .auth
        .register(
            RegisterUser {
                username: body.username,
                email: body.email,
                password: body.password,
                display_name: body.display_name,
            },
            &client,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// Sign in with a username or email and a password. Send back the `device_token` of an
/// earlier sign-in: with it, failed guesses by others (who lock the account for unknown
/// clients) do not lock this client out.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth",
    request_body = LoginBody,
    responses(
        OtherMethod, JsonBody, Store, Hashing,
        (status = 200, description = "Signed in", body = TokensBody),
        (status = 401, description = "`invalid_credentials`: unknown identifier, wrong password or disabled account (one answer for every cause)", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"user-management\"`"))),
        (status = 403, description = "`forbidden`: the password is right, but this deployment requires a verified email address before sign-in and the account's is not verified (the link mailed at registration verifies it; `POST /api/v1/auth/verify-email/resend` mails a new one)", body = ErrorBody),
        (status = 429, description = "`throttled`: the identifier (or this device) is locked after failed attempts, or too many sign-ins from this client address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub(crate) async fn login(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Json<TokensBody>, ApiError> {
    let credentials =
        Credentials::new(body.identifier, body.password).with_device_token(body.device_token);
    Ok(Json(state.auth.login(credentials, client).await?.into()))
}

/// Exchange a refresh token for new tokens. The presented token is spent; presenting it
/// again ends the session.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth",
    request_body = RefreshBody,
    responses(
        OtherMethod, JsonBody, Store,
        (status = 200, description = "New tokens", body = TokensBody),
        (status = 401, description = "`unauthenticated`: an unknown, spent or expired refresh token, or a session that ended", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"user-management\"`"))),
    ))]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<RefreshBody>,
) -> Result<Json<TokensBody>, ApiError> {
    let tokens = state.auth.refresh(&body.refresh_token, &client).await?;
    Ok(Json(tokens.into()))
}

/// End this session.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    security(("bearer" = [])),
    responses(
        OtherMethod, SignedIn,
        (status = 204, description = "Signed out"),
    ))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    BearerActor(actor): BearerActor,
) -> Result<StatusCode, ApiError> {
    state.auth.logout(&actor).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// End every session of the caller, on every device.
#[utoipa::path(post, path = "/api/v1/auth/logout-all", tag = "auth",
    security(("bearer" = [])),
    responses(
        OtherMethod, SignedIn,
        (status = 200, description = "Signed out everywhere", body = SessionsEnded),
    ))]
pub(crate) async fn logout_all(
    State(state): State<AppState>,
    BearerActor(actor): BearerActor,
) -> Result<Json<SessionsEnded>, ApiError> {
    let sessions_ended = state.auth.logout_everywhere(&actor).await?;
    Ok(Json(SessionsEnded { sessions_ended }))
}
