//! Password reset and email verification: `/api/v1/auth/password-reset*`,
//! `/api/v1/auth/verify-email*`, `/api/v1/me/verification` and
//! `/api/v1/admin/users/{id}/password-reset`. Tokens travel in bodies only, and are never
//! logged or echoed.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use user_core::account::AccountService;
use user_core::error::AuthError;

use super::PathId;
use super::admin::user_id;
use super::responses::{AdminOnly, Hashing, JsonBody, OtherMethod, SignedIn, Store};
use super::types::{
    PasswordResetBody, RequestVerificationBody, ResetPasswordBody, UserBody, VerifyEmailBody,
};
use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, BearerActor, Client};

/// The account service, or the error of a deployment without mail.
fn account(state: &AppState) -> Result<&Arc<AccountService>, AuthError> {
    state.account.as_ref().ok_or(AuthError::MailNotConfigured)
}

/// Ask for a password-reset link by mail. The answer is the same whether or not an account
/// has that address; the link (valid 30 minutes by default) goes only to an active account.
#[utoipa::path(post, path = "/api/v1/auth/password-reset", tag = "auth",
    request_body = PasswordResetBody,
    responses(
        OtherMethod, JsonBody,
        (status = 202, description = "Accepted: a link is mailed if an active account has this address"),
        (status = 422, description = "`validation_failed`: the body does not match the schema, or `email` is not an email address (`fields`)", body = ErrorBody),
        (status = 500, description = "`internal`: mail is not configured, or an unexpected failure, logged by the server", body = ErrorBody),
        (status = 429, description = "`throttled`: too many requests for this address or from this client address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "`overloaded`: too many reset and verification requests are being handled; try again after `Retry-After`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub(crate) async fn request_password_reset(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<PasswordResetBody>,
) -> Result<StatusCode, ApiError> {
    account(&state)?
        .request_password_reset(&body.email, &client)
        .await?;
    Ok(StatusCode::ACCEPTED)
}

/// Set a new password with the token of a reset link. The link is spent, every session of
/// the account ends, and the caller signs in again with the new password.
#[utoipa::path(post, path = "/api/v1/auth/password-reset/confirm", tag = "auth",
    request_body = ResetPasswordBody,
    responses(
        OtherMethod, JsonBody, Store, Hashing,
        (status = 200, description = "Password set", body = UserBody),
        (status = 422, description = "`validation_failed`: the body does not match the schema; the token is unknown, expired, superseded or used (`fields` names `token`, code `invalid_token`); or the new password breaks a rule (`fields` names `new_password`)", body = ErrorBody),
    ))]
pub(crate) async fn reset_password(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<ResetPasswordBody>,
) -> Result<Json<UserBody>, ApiError> {
    let user = account(&state)?
        .reset_password(&body.token, body.new_password, &client)
        .await?;
    Ok(Json(user.into()))
}

/// Ask for a new email-verification link by address, when sign-in is refused because the
/// address is not confirmed yet (403 `forbidden` from `POST /api/v1/auth/login`). The answer
/// is the same whether or not an account has that address; the link (valid 24 hours by
/// default, older links stop working) goes only to an active account whose address is not
/// verified yet.
#[utoipa::path(post, path = "/api/v1/auth/verify-email/resend", tag = "auth",
    request_body = RequestVerificationBody,
    responses(
        OtherMethod, JsonBody,
        (status = 202, description = "Accepted: a link is mailed if an active account with an unverified address has this address"),
        (status = 422, description = "`validation_failed`: the body does not match the schema, or `email` is not an email address (`fields`)", body = ErrorBody),
        (status = 500, description = "`internal`: mail is not configured, or an unexpected failure, logged by the server", body = ErrorBody),
        (status = 429, description = "`throttled`: too many links asked for this address or from this client address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "`overloaded`: too many reset and verification requests are being handled; try again after `Retry-After`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub(crate) async fn request_verification(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<RequestVerificationBody>,
) -> Result<StatusCode, ApiError> {
    account(&state)?
        .request_verification(&body.email, &client)
        .await?;
    Ok(StatusCode::ACCEPTED)
}

/// Confirm an email address with the token of a verification link.
#[utoipa::path(post, path = "/api/v1/auth/verify-email", tag = "auth",
    request_body = VerifyEmailBody,
    responses(
        OtherMethod, JsonBody, Store,
        (status = 200, description = "Verified", body = UserBody),
        (status = 422, description = "`validation_failed`: the body does not match the schema, or the token is unknown, expired, superseded or used, or the address changed since it was mailed (`fields` names `token`, code `invalid_token`)", body = ErrorBody),
    ))]
pub(crate) async fn verify_email(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<VerifyEmailBody>,
) -> Result<Json<UserBody>, ApiError> {
    let user = account(&state)?.verify_email(&body.token, &client).await?;
    Ok(Json(user.into()))
}

/// Mail the caller a new verification link for their email (the older link stops working).
/// An address verified already gets nothing, with the same answer.
#[utoipa::path(post, path = "/api/v1/me/verification", tag = "me", security(("bearer" = [])),
    responses(
        OtherMethod, SignedIn,
        (status = 202, description = "Accepted: a link is mailed unless the address is verified already"),
        (status = 429, description = "`throttled`: too many links asked for this account or from this client address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub(crate) async fn resend_verification(
    State(state): State<AppState>,
    Client(client): Client,
    BearerActor(actor): BearerActor,
) -> Result<StatusCode, ApiError> {
    account(&state)?
        .resend_verification(&actor, &client)
        .await?;
    Ok(StatusCode::ACCEPTED)
}

/// Mail a user a password-reset link. The admin never sees the token.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/password-reset", tag = "admin",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "User id")),
    responses(
        OtherMethod, AdminOnly,
        (status = 202, description = "Accepted: the link is mailed"),
        (status = 404, description = "`not_found`: no such user", body = ErrorBody),
        (status = 422, description = "`validation_failed`: the id is not a user id", body = ErrorBody),
    ))]
pub(crate) async fn send_password_reset(
    State(state): State<AppState>,
    BearerActor(actor): BearerActor,
    PathId(id): PathId,
) -> Result<StatusCode, ApiError> {
    state.users.as_admin(&actor)?;
    account(&state)?
        .send_password_reset(&actor, user_id(&id)?)
        .await?;
    Ok(StatusCode::ACCEPTED)
}
