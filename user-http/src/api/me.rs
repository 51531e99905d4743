//! `/api/v1/me*`: the caller's own account.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use user_core::domain::SessionId;
use user_core::users::ChangePassword;

use super::types::{ChangePasswordBody, PasswordBody, SessionBody, UpdateProfileBody, UserBody};
use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, BearerUser};

/// The caller's profile.
#[utoipa::path(get, path = "/api/v1/me", tag = "me", security(("bearer" = [])),
    responses(
        (status = 200, description = "Profile", body = UserBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
    ))]
pub(crate) async fn get_me(
    State(state): State<AppState>,
    BearerUser(actor): BearerUser,
) -> Result<Json<UserBody>, ApiError> {
    Ok(Json(state.users.get(&actor, actor.user_id).await?.into()))
}

/// Edit the caller's profile.
#[utoipa::path(patch, path = "/api/v1/me", tag = "me", security(("bearer" = [])),
    request_body = UpdateProfileBody,
    responses(
        (status = 200, description = "Updated profile", body = UserBody),
        (status = 409, description = "Username or email taken", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
    ))]
pub(crate) async fn update_me(
    State(state): State<AppState>,
    BearerUser(actor): BearerUser,
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
        (status = 204, description = "Changed"),
        (status = 401, description = "Current password wrong, or not signed in", body = ErrorBody),
        (status = 422, description = "New password refused", body = ErrorBody),
    ))]
pub(crate) async fn change_password(
    State(state): State<AppState>,
    BearerUser(actor): BearerUser,
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
        (status = 204, description = "Deleted"),
        (status = 401, description = "Password wrong, or not signed in", body = ErrorBody),
        (status = 409, description = "The last active admin", body = ErrorBody),
    ))]
pub(crate) async fn delete_me(
    State(state): State<AppState>,
    BearerUser(actor): BearerUser,
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
        (status = 200, description = "Sessions", body = [SessionBody]),
        (status = 401, description = "Not signed in", body = ErrorBody),
    ))]
pub(crate) async fn sessions(
    State(state): State<AppState>,
    BearerUser(actor): BearerUser,
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
    params(("id" = String, Path, description = "Session id")),
    responses(
        (status = 204, description = "Ended"),
        (status = 404, description = "No such session of yours", body = ErrorBody),
        (status = 422, description = "Not a session id", body = ErrorBody),
    ))]
pub(crate) async fn revoke_session(
    State(state): State<AppState>,
    BearerUser(actor): BearerUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = id
        .parse::<SessionId>()
        .map_err(|e| ApiError::from(user_core::error::ValidationErrors::from(e)))?;
    state.users.revoke_session(&actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
