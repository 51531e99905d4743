//! `/api/v1/auth/*`: registration, login and its second step, refresh, logout.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use user_core::auth::{Credentials, RegisterUser, SignIn};

use super::responses::{Hashing, JsonBody, OtherMethod, SignedIn, Store};
use super::types::{
    ChallengeBody, EnrolledTokensBody, LoginBody, RefreshBody, RegisterBody, SecondFactorChallenge,
    SecondStepBody, SessionsEnded, TokensBody, TotpSetupBody, UserBody,
};
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
/// clients) do not lock this client out, and a client the user chose to trust skips the
/// second step.
///
/// An account with a second factor (or one the policy requires to have one) is not signed
/// in yet: the answer is 202 with a `challenge` for the second step, which `step` names
/// (`code`: `POST /api/v1/auth/login/second-factor`; `enrolment`:
/// `POST /api/v1/auth/login/enrolment`).
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth",
    request_body = LoginBody,
    responses(
        OtherMethod, JsonBody, Store, Hashing,
        (status = 200, description = "Signed in", body = TokensBody),
        (status = 202, description = "The password is right; a second step is needed before any session exists", body = SecondFactorChallenge),
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
) -> Result<Response, ApiError> {
    let credentials =
        Credentials::new(body.identifier, body.password).with_device_token(body.device_token);
    Ok(match state.auth.sign_in(credentials, client).await? {
        SignIn::Complete(pair) => Json(TokensBody::from(pair)).into_response(),
        SignIn::SecondStep(challenge) => {
            let ttl = state.auth.policy().second_factor.challenge_ttl;
            let body = SecondFactorChallenge::new(challenge, ttl);
            (StatusCode::ACCEPTED, Json(body)).into_response()
        }
    })
}

/// Complete a sign-in with a code from the authenticator app, or a recovery code (spent).
/// A wrong code leaves the challenge usable until it expires, and counts as a failed
/// sign-in: after as many as lock a wrong password, the account (or this device) is locked.
/// With `trust_device`, the `device_token` of the answer skips this step at the next
/// sign-ins.
#[utoipa::path(post, path = "/api/v1/auth/login/second-factor", tag = "auth",
    request_body = SecondStepBody,
    responses(
        OtherMethod, JsonBody, Store,
        (status = 200, description = "Signed in", body = TokensBody),
        (status = 401, description = "`invalid_credentials` (\"the code is not valid\"): a wrong, used or malformed code; or `unauthenticated`: the challenge is unknown, used or expired (sign in again)", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"user-management\"`"))),
        (status = 429, description = "`throttled`: the account (or this device) is locked after failed attempts", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub(crate) async fn second_factor(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<SecondStepBody>,
) -> Result<Json<TokensBody>, ApiError> {
    let pair = state.auth.complete_sign_in(body.parse()?, client).await?;
    Ok(Json(pair.into()))
}

/// Start the enrolment a sign-in asked for (`step` `enrolment`): a new secret for the
/// authenticator app, shown this once. Asking again replaces it.
#[utoipa::path(post, path = "/api/v1/auth/login/enrolment", tag = "auth",
    request_body = ChallengeBody,
    responses(
        OtherMethod, JsonBody, Store,
        (status = 200, description = "The secret for the app", body = TotpSetupBody),
        (status = 401, description = "`unauthenticated`: the challenge is unknown, used, expired or not for an enrolment (sign in again)", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"user-management\"`"))),
    ))]
pub(crate) async fn start_enrolment(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ChallengeBody>,
) -> Result<Json<TotpSetupBody>, ApiError> {
    let setup = state.auth.start_enrolment(&body.parse()?).await?;
    Ok(Json(setup.into()))
}

/// Complete an enrolment at sign-in with a code from the new app: the second factor is on,
/// the account's earlier sessions end, the client is signed in, and the recovery codes come
/// back, this once. A wrong code counts as at `POST /api/v1/auth/login/second-factor`.
#[utoipa::path(post, path = "/api/v1/auth/login/enrolment/confirm", tag = "auth",
    request_body = SecondStepBody,
    responses(
        OtherMethod, JsonBody, Store,
        (status = 200, description = "Enrolled and signed in", body = EnrolledTokensBody),
        (status = 401, description = "`invalid_credentials` (\"the code is not valid\"): a wrong or malformed code; or `unauthenticated`: the challenge is unknown, used, expired or not for an enrolment, or the enrolment was not started (sign in again)", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"user-management\"`"))),
        (status = 429, description = "`throttled`: the account (or this device) is locked after failed attempts", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub(crate) async fn confirm_enrolment(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<SecondStepBody>,
) -> Result<Json<EnrolledTokensBody>, ApiError> {
    let enrolled = state.auth.complete_enrolment(body.parse()?, client).await?;
    Ok(Json(enrolled.into()))
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
