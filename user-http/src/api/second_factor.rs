//! `/api/v1/me/second-factor*`: the caller's authenticator app and recovery codes; and
//! `/api/v1/admin/users/{id}/second-factor`: an admin's view and reset.
//!
//! Answers that carry a secret (the TOTP secret, recovery codes) are never cached: the
//! router's `Cache-Control: no-store`, as for tokens.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::PathId;
use super::admin::user_id;
use super::responses::{AdminOnly, Hashing, JsonBody, OtherMethod, SignedIn};
use super::types::{
    PasswordAndCodeBody, PasswordBody, RecoveryCodesBody, SecondFactorStatusBody, TotpCodeBody,
    TotpSetupBody,
};
use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, BearerActor};

/// The caller's second factor: on since when, recovery codes left, required or not.
#[utoipa::path(get, path = "/api/v1/me/second-factor", tag = "me", security(("bearer" = [])),
    responses(
        OtherMethod, SignedIn,
        (status = 200, description = "The state of the caller's second factor", body = SecondFactorStatusBody),
        (status = 404, description = "`not_found`: the account was deleted while this request ran", body = ErrorBody),
    ))]
pub(crate) async fn status(
    State(state): State<AppState>,
    BearerActor(actor): BearerActor,
) -> Result<Json<SecondFactorStatusBody>, ApiError> {
    Ok(Json(state.users.second_factor(&actor).await?.into()))
}

/// Start enrolling an authenticator app (password required): a new secret, shown this once
/// (it replaces an enrolment started before). Nothing changes at sign-in until
/// `POST /api/v1/me/second-factor/totp/confirm`.
#[utoipa::path(post, path = "/api/v1/me/second-factor/totp", tag = "me", security(("bearer" = [])),
    request_body = PasswordBody,
    responses(
        OtherMethod, JsonBody, SignedIn, Hashing,
        (status = 200, description = "The secret for the app", body = TotpSetupBody),
        (status = 401, description = "`invalid_credentials`: the password is wrong, or `unauthenticated`: no valid access token", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"user-management\"`"))),
        (status = 404, description = "`not_found`: the account was deleted while this request ran", body = ErrorBody),
        (status = 409, description = "`failed_precondition`: a second factor is on already (disable it first), or second factors are not configured on this server", body = ErrorBody),
        (status = 429, description = "`throttled`: too many wrong passwords in this session", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub(crate) async fn start_totp(
    State(state): State<AppState>,
    BearerActor(actor): BearerActor,
    ApiJson(body): ApiJson<PasswordBody>,
) -> Result<Json<TotpSetupBody>, ApiError> {
    let setup = state
        .users
        .start_totp_enrolment(&actor, &body.password)
        .await?;
    Ok(Json(setup.into()))
}

/// Confirm the enrolment with a code from the new app: the second factor is on from the next
/// sign-in, the recovery codes come back, this once, and every other session of the account
/// ends (this one stays).
#[utoipa::path(post, path = "/api/v1/me/second-factor/totp/confirm", tag = "me", security(("bearer" = [])),
    request_body = TotpCodeBody,
    responses(
        OtherMethod, JsonBody, SignedIn,
        (status = 200, description = "Enrolled", body = RecoveryCodesBody),
        (status = 401, description = "`invalid_credentials` (\"the code is not valid\"): a wrong code (the enrolment stays: try again), or `unauthenticated`: no valid access token", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"user-management\"`"))),
        (status = 409, description = "`failed_precondition`: no enrolment is in progress, a second factor is on already, or second factors are not configured on this server", body = ErrorBody),
    ))]
pub(crate) async fn confirm_totp(
    State(state): State<AppState>,
    BearerActor(actor): BearerActor,
    ApiJson(body): ApiJson<TotpCodeBody>,
) -> Result<Json<RecoveryCodesBody>, ApiError> {
    let codes = state
        .users
        .confirm_totp_enrolment(&actor, &body.parse()?)
        .await?;
    Ok(Json(codes.into()))
}

/// Replace the caller's recovery codes with new ones: the password, then a current code from
/// the app or a recovery code (which is spent). The old codes stop working, and the owner is
/// mailed. A wrong code counts on the account's budget of guesses, as at sign-in.
#[utoipa::path(post, path = "/api/v1/me/second-factor/recovery-codes", tag = "me", security(("bearer" = [])),
    request_body = PasswordAndCodeBody,
    responses(
        OtherMethod, JsonBody, SignedIn, Hashing,
        (status = 200, description = "The new codes", body = RecoveryCodesBody),
        (status = 401, description = "`invalid_credentials`: the password or the code is wrong, or `unauthenticated`: no valid access token", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"user-management\"`"))),
        (status = 404, description = "`not_found`: the account was deleted while this request ran", body = ErrorBody),
        (status = 409, description = "`failed_precondition`: no second factor is on, or second factors are not configured on this server", body = ErrorBody),
        (status = 429, description = "`throttled`: too many wrong passwords in this session, or too many wrong codes for this account", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub(crate) async fn regenerate_recovery_codes(
    State(state): State<AppState>,
    BearerActor(actor): BearerActor,
    ApiJson(body): ApiJson<PasswordAndCodeBody>,
) -> Result<Json<RecoveryCodesBody>, ApiError> {
    let (password, code) = body.parse()?;
    let codes = state
        .users
        .regenerate_recovery_codes(&actor, &password, &code)
        .await?;
    Ok(Json(codes.into()))
}

/// Turn the caller's second factor off: the password, then a current code from the app or a
/// recovery code. Recovery codes and trusted devices go too. A wrong code counts on the
/// account's budget of guesses, as at sign-in.
#[utoipa::path(post, path = "/api/v1/me/second-factor/disable", tag = "me", security(("bearer" = [])),
    request_body = PasswordAndCodeBody,
    responses(
        OtherMethod, JsonBody, SignedIn, Hashing,
        (status = 204, description = "Turned off"),
        (status = 401, description = "`invalid_credentials`: the password or the code is wrong, or `unauthenticated`: no valid access token", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"user-management\"`"))),
        (status = 404, description = "`not_found`: the account was deleted while this request ran", body = ErrorBody),
        (status = 409, description = "`failed_precondition`: no second factor is on, or second factors are not configured on this server", body = ErrorBody),
        (status = 429, description = "`throttled`: too many wrong passwords in this session, or too many wrong codes for this account", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub(crate) async fn disable(
    State(state): State<AppState>,
    BearerActor(actor): BearerActor,
    ApiJson(body): ApiJson<PasswordAndCodeBody>,
) -> Result<StatusCode, ApiError> {
    let (password, code) = body.parse()?;
    state
        .users
        .disable_second_factor(&actor, &password, &code)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The state of a user's second factor (never its secret).
#[utoipa::path(get, path = "/api/v1/admin/users/{id}/second-factor", tag = "admin", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "User id")),
    responses(
        OtherMethod, AdminOnly,
        (status = 200, description = "The state of the user's second factor", body = SecondFactorStatusBody),
        (status = 404, description = "`not_found`: no such user", body = ErrorBody),
        (status = 422, description = "`validation_failed`: the id is not a user id", body = ErrorBody),
    ))]
pub(crate) async fn admin_status(
    State(state): State<AppState>,
    BearerActor(actor): BearerActor,
    PathId(id): PathId,
) -> Result<Json<SecondFactorStatusBody>, ApiError> {
    let admin = state.users.as_admin(&actor)?;
    Ok(Json(admin.second_factor(user_id(&id)?).await?.into()))
}

/// Remove a user's second factor (a lost phone): their recovery codes and trusted devices go
/// too, and they are mailed. Where the policy requires a factor, they enrol again at their
/// next sign-in.
#[utoipa::path(delete, path = "/api/v1/admin/users/{id}/second-factor", tag = "admin", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "User id")),
    responses(
        OtherMethod, AdminOnly,
        (status = 204, description = "Removed"),
        (status = 404, description = "`not_found`: no such user", body = ErrorBody),
        (status = 409, description = "`failed_precondition`: the user has no second factor", body = ErrorBody),
        (status = 422, description = "`validation_failed`: the id is not a user id", body = ErrorBody),
    ))]
pub(crate) async fn admin_reset(
    State(state): State<AppState>,
    BearerActor(actor): BearerActor,
    PathId(id): PathId,
) -> Result<StatusCode, ApiError> {
    let admin = state.users.as_admin(&actor)?;
    admin.reset_second_factor(user_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
