//! `/api/v1/me*`: the caller's own account.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use user_core::domain::SessionId;
use user_core::users::ChangePassword;

use super::PathId;
use super::responses::{Hashing, JsonBody, OtherMethod, SignedIn};
use super::types::{ChangePasswordBody, PasswordBody, SessionBody, UpdateProfileBody, UserBody};
use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, BearerActor};

/// The caller's profile.
#[utoipa::path(get, path = "/api/v1/me", tag = "me", security(("bearer" = [])),
    responses(
        OtherMethod, SignedIn,
        (status = 200, description = "Profile", body = UserBody),
        (status = 404, description = "`not_found`: the account was deleted while this request ran", body = ErrorBody),
    ))]
pub(crate) async fn get_me(
    State(state): State<AppState>,
    BearerActor(actor): BearerActor,
) -> Result<Json<UserBody>, ApiError> {
    Ok(Json(state.users.get(&actor, actor.user_id).await?.into()))
}

/// Edit the caller's profile.
#[utoipa::path(patch, path = "/api/v1/me", tag = "me", security(("bearer" = [])),
    request_body = UpdateProfileBody,
    responses(
        OtherMethod, JsonBody, SignedIn,
        (status = 200, description = "Updated profile", body = UserBody),
        (status = 404, description = "`not_found`: the account was deleted while this request ran", body = ErrorBody),
        (status = 409, description = "`conflict`: the username or email is taken (`fields` says which)", body = ErrorBody),
    ))]
pub(crate) async fn update_me(
    State(state): State<AppState>,
    BearerActor(actor): BearerActor,
    ApiJson(body): ApiJson<UpdateProfileBody>,
) -> Result<Json<UserBody>, ApiError> {
    let user = state
        .users
        .update_profile(&actor, actor.user_id, body.into())
        .await?;
    Ok(Json(user.into()))
}

/// Change the caller's password; every other session ends.
#[utoipa::path(put, path = "/api/v1/me/password", tag = "me", security(("bearer" = [])),
    request_body = ChangePasswordBody,
    responses(
        OtherMethod, JsonBody, SignedIn, Hashing,
        (status = 204, description = "Changed"),
        (status = 401, description = "`invalid_credentials`: the current password is wrong, or `unauthenticated`: no valid access token", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"user-management\"`"))),
        (status = 404, description = "`not_found`: the account was deleted while this request ran", body = ErrorBody),
        (status = 429, description = "`throttled`: too many wrong passwords in this session", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub(crate) async fn change_password(
    State(state): State<AppState>,
    BearerActor(actor): BearerActor,
    ApiJson(body): ApiJson<ChangePasswordBody>,
) -> Result<StatusCode, ApiError> {
    let change = ChangePassword {
        current_password: body.current_password,
        new_password: body.new_password,
    };
    state.users.change_password(&actor, change).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Delete the caller's account (password required).
#[utoipa::path(delete, path = "/api/v1/me", tag = "me", security(("bearer" = [])),
    request_body = PasswordBody,
    responses(
        OtherMethod, JsonBody, SignedIn, Hashing,
        (status = 204, description = "Deleted"),
        (status = 401, description = "`invalid_credentials`: the password is wrong, or `unauthenticated`: no valid access token", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"user-management\"`"))),
        (status = 404, description = "`not_found`: the account was deleted while this request ran", body = ErrorBody),
        (status = 409, description = "`last_admin`: the caller is the last active admin", body = ErrorBody),
        (status = 429, description = "`throttled`: too many wrong passwords in this session", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub(crate) async fn delete_me(
    State(state): State<AppState>,
    BearerActor(actor): BearerActor,
    ApiJson(body): ApiJson<PasswordBody>,
) -> Result<StatusCode, ApiError> {
    state
        .users
        .delete_own_account(&actor, &body.password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's active sessions, newest first.
#[utoipa::path(get, path = "/api/v1/me/sessions", tag = "me", security(("bearer" = [])),
    responses(
        OtherMethod, SignedIn,
        (status = 200, description = "Sessions", body = [SessionBody]),
    ))]
pub(crate) async fn sessions(
    State(state): State<AppState>,
    BearerActor(actor): BearerActor,
) -> Result<Json<Vec<SessionBody>>, ApiError> {
    let sessions = state.users.sessions(&actor).await?;
    Ok(Json(
        sessions
            .into_iter()
            .map(|s| SessionBody::new(s, actor.session_id))
            .collect(),
    ))
}

/// End one of the caller's sessions.
#[utoipa::path(delete, path = "/api/v1/me/sessions/{id}", tag = "me", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Session id")),
    responses(
        OtherMethod, SignedIn,
        (status = 204, description = "Ended"),
        (status = 404, description = "`not_found`: no such session of yours", body = ErrorBody),
        (status = 422, description = "`validation_failed`: the id is not a session id", body = ErrorBody),
    ))]
pub(crate) async fn revoke_session(
    State(state): State<AppState>,
    BearerActor(actor): BearerActor,
    PathId(id): PathId,
) -> Result<StatusCode, ApiError> {
    let id = id
        .parse::<SessionId>()
        .map_err(|e| ApiError::from(user_core::error::ValidationErrors::from(e)))?;
    state.users.revoke_session(&actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
