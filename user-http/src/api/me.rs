//! `/api/v1/me*`: the caller's own account.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use user_core::domain::{AuditQuery, SessionId};
use user_core::error::ValidationErrors;
use user_core::users::{ChangePassword, PersonalData};
use utoipa::IntoParams;

use super::PathId;
use super::audit::page_size;
use super::responses::{Hashing, JsonBody, OtherMethod, SignedIn};
use super::schema;
use super::types::{
    AuditEventBody, ChangePasswordBody, EventsBody, PasswordBody, PersonalDataBody, SessionBody,
    UpdateProfileBody, UserBody,
};
use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, BearerActor, BearerUser};

/// The caller's profile.
#[utoipa::path(get, path = "/api/v1/me", tag = "me", security(("bearer" = [])),
    responses(
        OtherMethod, SignedIn,
        (status = 200, description = "Profile", body = UserBody),
    ))]
pub(crate) async fn get_me(BearerUser(user): BearerUser) -> Json<UserBody> {
    // The user was read with the session that the token names: one store read in all.
    Json(user.into())
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

/// How many of the caller's events to list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventsQuery {
    /// How many events.
    #[param(schema_with = schema::recent_events_limit)]
    limit: Option<String>,
}

/// The caller's recent security events (sign-ins, password and email changes, sessions
/// ended, what admins did to the account), newest first.
#[utoipa::path(get, path = "/api/v1/me/events", tag = "me", security(("bearer" = [])),
    params(EventsQuery),
    responses(
        OtherMethod, SignedIn,
        (status = 200, description = "Events concerning the caller's account", body = EventsBody),
        (status = 400, description = "`malformed_request`: the query string could not be read", body = ErrorBody),
        (status = 422, description = "`validation_failed`: `limit` is not between 1 and 200", body = ErrorBody),
    ))]
pub(crate) async fn events(
    State(state): State<AppState>,
    BearerActor(actor): BearerActor,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<EventsBody>, ApiError> {
    let Query(query) =
        query.map_err(|_| ApiError::malformed("the query string could not be read"))?;
    let limit = page_size(query.limit.as_deref(), "limit", AuditQuery::MAX_LIMIT)
        .map_err(ValidationErrors::from)?
        .unwrap_or(AuditQuery::RECENT_DEFAULT);
    let events = state.users.recent_events(&actor, limit).await?;
    Ok(Json(EventsBody {
        events: events.into_iter().map(AuditEventBody::from).collect(),
    }))
}

/// The name of the file a data export is saved as.
pub(crate) const EXPORT_FILE_NAME: &str = "my-data.json";

/// A data export as a JSON file to save: `Content-Disposition: attachment`, never cached.
pub(crate) fn export_attachment(data: PersonalData, current: SessionId) -> Response {
    let disposition = format!("attachment; filename=\"{EXPORT_FILE_NAME}\"");
    (
        [
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Json(PersonalDataBody::new(data, current)),
    )
        .into_response()
}

/// Download everything stored about the caller: the profile, the active sessions and the
/// security events concerning the account (never a password hash or a token). The download
/// is itself recorded (`data_exported`).
#[utoipa::path(get, path = "/api/v1/me/export", tag = "me", security(("bearer" = [])),
    responses(
        OtherMethod, SignedIn,
        (status = 200, description = "The caller's data, as a file to save", body = PersonalDataBody,
            headers(("Content-Disposition" = String, description = "`attachment; filename=\"my-data.json\"`"))),
        (status = 404, description = "`not_found`: the account was deleted while this request ran", body = ErrorBody),
    ))]
pub(crate) async fn export(
    State(state): State<AppState>,
    BearerActor(actor): BearerActor,
) -> Result<Response, ApiError> {
    let data = state.users.export_own_data(&actor).await?;
    Ok(export_attachment(data, actor.session_id))
}
