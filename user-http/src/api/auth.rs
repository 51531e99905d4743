//! `/api/v1/auth/*`: registration, login, refresh, logout.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use user_core::auth::{Credentials, RegisterUser};

use super::types::{LoginBody, RefreshBody, RegisterBody, SessionsEnded, TokensBody, UserBody};
use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, BearerUser, Client};

/// Register a user.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth",
    request_body = RegisterBody,
    responses(
        (status = 201, description = "Registered", body = UserBody),
        (status = 409, description = "Username or email taken", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
        (status = 429, description = "Too many registrations from this client; see Retry-After", body = ErrorBody),
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
        (status = 200, description = "Signed in", body = TokensBody),
        (status = 401, description = "Wrong credentials (one message for every cause)", body = ErrorBody),
        (status = 429, description = "Too many failures; see Retry-After", body = ErrorBody),
        (status = 503, description = "Busy; see Retry-After", body = ErrorBody),
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
        (status = 200, description = "New tokens", body = TokensBody),
        (status = 401, description = "Unknown, spent or expired token", body = ErrorBody),
    ))]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshBody>,
) -> Result<Json<TokensBody>, ApiError> {
    Ok(Json(state.auth.refresh(&body.refresh_token).await?.into()))
}

/// End this session.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "Not signed in", body = ErrorBody),
    ))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    BearerUser(actor): BearerUser,
) -> Result<StatusCode, ApiError> {
    state.auth.logout(&actor).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// End every session of the caller, on every device.
#[utoipa::path(post, path = "/api/v1/auth/logout-all", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Signed out everywhere", body = SessionsEnded),
        (status = 401, description = "Not signed in", body = ErrorBody),
    ))]
pub(crate) async fn logout_all(
    State(state): State<AppState>,
    BearerUser(actor): BearerUser,
) -> Result<Json<SessionsEnded>, ApiError> {
    let sessions_ended = state.auth.logout_everywhere(&actor).await?;
    Ok(Json(SessionsEnded { sessions_ended }))
}
