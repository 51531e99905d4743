//! `/api/v1/admin/users*`: administration.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use user_core::domain::{Role, UserId, UserQuery, UserStatus};
use user_core::error::ValidationErrors;
use utoipa::IntoParams;

use super::PathId;
use super::responses::{AdminOnly, JsonBody, OtherMethod};
use super::schema;
use super::types::{RoleBody, StatusBody, UpdateProfileBody, UserBody, UsersPage};
use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, BearerActor};

/// Filters and paging of the user list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Text in the username, email or display name (3 characters or more), or the start of
    /// the username (fewer).
    #[param(schema_with = schema::search)]
    search: Option<String>,
    /// Only users with this role.
    #[param(schema_with = schema::role)]
    role: Option<String>,
    /// Only users with this status.
    #[param(schema_with = schema::status)]
    status: Option<String>,
    /// Page size.
    #[param(schema_with = schema::limit)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

impl ListQuery {
    fn parse(self) -> Result<UserQuery, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let limit = match self.limit.as_deref().map(str::parse::<u32>) {
            None => None,
            Some(Ok(n)) if n > 0 => Some(n),
            Some(_) => {
                errors.push(user_core::error::ValidationError::new(
                    "limit",
                    "out_of_range",
                    UserQuery::limit_rule(),
                ));
                None
            }
        };
        let query = errors.collect(
            UserQuery::parse(self.search.as_deref(), limit, self.cursor.as_deref()).map_err(|e| {
                e.renamed("page_size", "limit")
                    .renamed("page_token", "cursor")
            }),
        );
        let role = self
            .role
            .as_deref()
            .and_then(|r| errors.collect(r.parse::<Role>()));
        let status = self
            .status
            .as_deref()
            .and_then(|s| errors.collect(s.parse::<UserStatus>()));
        errors.into_result()?;
        Ok(UserQuery {
            role,
            status,
            ..query.unwrap_or_default()
        })
    }
}

pub(super) fn user_id(raw: &str) -> Result<UserId, ApiError> {
    raw.parse::<UserId>()
        .map_err(|e| ApiError::from(ValidationErrors::from(e)))
}

/// List users: keyset pages in username order, with search and filters.
#[utoipa::path(get, path = "/api/v1/admin/users", tag = "admin", security(("bearer" = [])),
    params(ListQuery),
    responses(
        OtherMethod, AdminOnly,
        (status = 200, description = "A page of users", body = UsersPage),
        (status = 400, description = "`malformed_request`: the query string could not be read", body = ErrorBody),
        (status = 422, description = "`validation_failed`: a filter, the page size or the cursor is invalid (`fields` lists every problem)", body = ErrorBody),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    BearerActor(actor): BearerActor,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<UsersPage>, ApiError> {
    let admin = state.users.as_admin(&actor)?;
    let Query(query) =
        query.map_err(|_| ApiError::malformed("the query string could not be read"))?;
    let page = admin.list(&query.parse()?).await?;
    Ok(Json(UsersPage {
        next_cursor: page.next_page_token(),
        users: page.users.into_iter().map(UserBody::from).collect(),
    }))
}

/// Any user's profile.
#[utoipa::path(get, path = "/api/v1/admin/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "User id")),
    responses(
        OtherMethod, AdminOnly,
        (status = 200, description = "Profile", body = UserBody),
        (status = 404, description = "`not_found`: no such user", body = ErrorBody),
        (status = 422, description = "`validation_failed`: the id is not a user id", body = ErrorBody),
    ))]
pub(crate) async fn get(
    State(state): State<AppState>,
    BearerActor(actor): BearerActor,
    PathId(id): PathId,
) -> Result<Json<UserBody>, ApiError> {
    let admin = state.users.as_admin(&actor)?;
    Ok(Json(admin.get(user_id(&id)?).await?.into()))
}

/// Edit any user's profile.
#[utoipa::path(patch, path = "/api/v1/admin/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "User id")),
    request_body = UpdateProfileBody,
    responses(
        OtherMethod, JsonBody, AdminOnly,
        (status = 200, description = "Updated profile", body = UserBody),
        (status = 404, description = "`not_found`: no such user", body = ErrorBody),
        (status = 409, description = "`conflict`: the username or email is taken (`fields` says which)", body = ErrorBody),
    ))]
pub(crate) async fn update(
    State(state): State<AppState>,
    BearerActor(actor): BearerActor,
    PathId(id): PathId,
    ApiJson(body): ApiJson<UpdateProfileBody>,
) -> Result<Json<UserBody>, ApiError> {
    let admin = state.users.as_admin(&actor)?;
    Ok(Json(
        admin
            .update_profile(user_id(&id)?, body.into())
            .await?
            .into(),
    ))
}

/// Change a user's role.
#[utoipa::path(put, path = "/api/v1/admin/users/{id}/role", tag = "admin", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "User id")),
    request_body = RoleBody,
    responses(
        OtherMethod, JsonBody, AdminOnly,
        (status = 200, description = "Updated", body = UserBody),
        (status = 404, description = "`not_found`: no such user", body = ErrorBody),
        (status = 409, description = "`last_admin`: this would leave no active admin", body = ErrorBody),
    ))]
pub(crate) async fn set_role(
    State(state): State<AppState>,
    BearerActor(actor): BearerActor,
    PathId(id): PathId,
    ApiJson(body): ApiJson<RoleBody>,
) -> Result<Json<UserBody>, ApiError> {
    let admin = state.users.as_admin(&actor)?;
    Ok(Json(
        admin
            .set_role(user_id(&id)?, body.role.into())
            .await?
            .into(),
    ))
}

/// Disable or enable a user; disabling ends all their sessions.
#[utoipa::path(put, path = "/api/v1/admin/users/{id}/status", tag = "admin", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "User id")),
    request_body = StatusBody,
    responses(
        OtherMethod, JsonBody, AdminOnly,
        (status = 200, description = "Updated", body = UserBody),
        (status = 404, description = "`not_found`: no such user", body = ErrorBody),
        (status = 409, description = "`last_admin`: this would leave no active admin", body = ErrorBody),
    ))]
pub(crate) async fn set_status(
    State(state): State<AppState>,
    BearerActor(actor): BearerActor,
    PathId(id): PathId,
    ApiJson(body): ApiJson<StatusBody>,
) -> Result<Json<UserBody>, ApiError> {
    let admin = state.users.as_admin(&actor)?;
    Ok(Json(
        admin
            .set_status(user_id(&id)?, body.status.into())
            .await?
            .into(),
    ))
}

/// Lift the lock that failed sign-ins put on a user's account, and forget the count.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/unlock", tag = "admin", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "User id")),
    responses(
        OtherMethod, AdminOnly,
        (status = 204, description = "Unlocked (or was not locked)"),
        (status = 404, description = "`not_found`: no such user", body = ErrorBody),
        (status = 422, description = "`validation_failed`: the id is not a user id", body = ErrorBody),
    ))]
pub(crate) async fn unlock(
    State(state): State<AppState>,
    BearerActor(actor): BearerActor,
    PathId(id): PathId,
) -> Result<StatusCode, ApiError> {
    let admin = state.users.as_admin(&actor)?;
    admin.unlock(user_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Delete a user and all their sessions.
#[utoipa::path(delete, path = "/api/v1/admin/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "User id")),
    responses(
        OtherMethod, AdminOnly,
        (status = 204, description = "Deleted"),
        (status = 404, description = "`not_found`: no such user", body = ErrorBody),
        (status = 409, description = "`last_admin`: this would leave no active admin", body = ErrorBody),
        (status = 422, description = "`validation_failed`: the id is not a user id", body = ErrorBody),
    ))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    BearerActor(actor): BearerActor,
    PathId(id): PathId,
) -> Result<StatusCode, ApiError> {
    let admin = state.users.as_admin(&actor)?;
    admin.delete(user_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
