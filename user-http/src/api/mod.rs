//! The JSON API under `/api/v1`, its OpenAPI document, JWKS and health checks.
//!
//! The document is exact: each handler's `responses(...)` names the shared sets of
//! `responses.rs` that apply to it, then its own answers; `schema.rs` builds the field
//! schemas from user-core's constants. `tests/it/openapi_*.rs` hold it to the server.

mod account;
mod admin;
mod audit;
mod auth;
mod me;
mod responses;
mod schema;
mod second_factor;
pub mod types;

use axum::Json;
use axum::Router;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post, put};
use serde::Serialize;
use user_core::domain::PasswordPolicy;
use user_core::error::ErrorKind;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ErrorBody, ErrorCode, FieldError};
use responses::{OtherMethod, Timeout};

pub(crate) use me::export_attachment;

/// The OpenAPI 3.1 document of the JSON API, generated from the handlers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "user-management",
        description = "Registration, login (with a second factor: an authenticator app and \
            recovery codes), tokens, password reset and email verification, profiles and \
            administration.\n\n\
            Each operation lists every status it answers with, including 405 for a method \
            its path does not have and 408 (empty body) when it runs longer than the \
            server's timeout (30 s by default); error bodies are `ErrorBody`. A path the API \
            does not have gets 404."
    ),
    paths(
        auth::register, auth::login, auth::second_factor, auth::start_enrolment,
        auth::confirm_enrolment, auth::refresh, auth::logout, auth::logout_all,
        account::request_password_reset, account::reset_password, account::verify_email,
        account::request_verification,
        me::get_me, me::update_me, me::change_password, me::delete_me, me::sessions,
        me::revoke_session, me::events, me::export, account::resend_verification,
        second_factor::status, second_factor::start_totp, second_factor::confirm_totp,
        second_factor::regenerate_recovery_codes, second_factor::disable,
        admin::list, admin::get, admin::update, admin::set_role, admin::set_status,
        admin::delete, admin::unlock, account::send_password_reset,
        second_factor::admin_status, second_factor::admin_reset, audit::list,
        jwks, healthz, readyz,
    ),
    components(schemas(ErrorBody, FieldError, schema::JwksSchema)),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Sign up, sign in, tokens"),
        (name = "me", description = "The caller's own account"),
        (name = "admin", description = "Administration (admins only)"),
        (name = "meta", description = "Keys and health"),
    )
)]
pub struct ApiDoc;

impl ApiDoc {
    /// The document for a deployment whose passwords follow `policy`: new passwords' minimum
    /// length is the configured one (`ApiDoc::openapi()` gives the default's). This is the
    /// document `/api/v1/openapi.json` serves.
    pub fn for_policy(policy: &PasswordPolicy) -> utoipa::openapi::OpenApi {
        let mut doc = Self::openapi();
        let schemas = doc
            .components
            .as_mut()
            .map(|c| &mut c.schemas)
            .into_iter()
            .flatten();
        for (name, entry) in schemas {
            let field = match name.as_str() {
                "RegisterBody" => "password",
                "ChangePasswordBody" | "ResetPasswordBody" => "new_password",
                _ => continue,
            };
            if let RefOr::T(Schema::Object(object)) = entry {
                object.properties.insert(
                    field.to_owned(),
                    RefOr::T(Schema::Object(schema::new_password_for(policy))),
                );
            }
        }
        doc
    }
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The public keys that verify our access tokens (RFC 7517).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "meta",
    responses(
        OtherMethod,
        (status = 200, description = "JSON Web Key Set", body = schema::JwksSchema),
    ))]
pub(crate) async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    Json(state.auth.jwks().clone())
}

/// The answer of the health checks.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HealthBody {
    /// `ok` from `/healthz`, `ready` from `/readyz`.
    #[schema(schema_with = schema::health)]
    status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "meta",
    responses(
        OtherMethod,
        (status = 200, description = "Up", body = HealthBody),
    ))]
pub(crate) async fn healthz() -> impl IntoResponse {
    Json(HealthBody { status: "ok" })
}

/// The database is reachable.
#[utoipa::path(get, path = "/readyz", tag = "meta",
    responses(
        OtherMethod, Timeout,
        (status = 200, description = "Ready", body = HealthBody),
        (status = 503, description = "`unavailable`: the database does not answer", body = ErrorBody),
    ))]
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    match &state.readiness {
        Some(check) if !check().await => Err(ApiError::of_kind(
            ErrorKind::Unavailable,
            "the database does not answer",
        )),
        _ => Ok(Json(HealthBody { status: "ready" })),
    }
}

/// The `{id}` of a route, as sent. A segment that is not UTF-8 reads as empty, so it is
/// refused like any other id that does not parse (422, in the API's error shape) rather than
/// with axum's plain-text 400.
pub(crate) struct PathId(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let id = Path::<String>::from_request_parts(parts, state).await;
        Ok(Self(id.map_or_else(|_| String::new(), |Path(id)| id)))
    }
}

async fn openapi_json(State(state): State<AppState>) -> impl IntoResponse {
    Json(ApiDoc::for_policy(&state.auth.policy().password))
}

async fn not_found() -> ApiError {
    ApiError::of_kind(ErrorKind::NotFound, "no such API endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        "this endpoint does not accept that method",
    )
}

/// The routes under `/api/v1`, plus JWKS and health, which live at the root.
pub(crate) fn routes() -> (Router<AppState>, Router<AppState>) {
    let v1 = Router::new()
        .route("/auth/register", post(auth::register))
        .route("/auth/login", post(auth::login))
        .route("/auth/login/second-factor", post(auth::second_factor))
        .route("/auth/login/enrolment", post(auth::start_enrolment))
        .route(
            "/auth/login/enrolment/confirm",
            post(auth::confirm_enrolment),
        )
        .route("/auth/refresh", post(auth::refresh))
        .route("/auth/logout", post(auth::logout))
        .route("/auth/logout-all", post(auth::logout_all))
        .route(
            "/auth/password-reset",
            post(account::request_password_reset),
        )
        .route(
            "/auth/password-reset/confirm",
            post(account::reset_password),
        )
        .route("/auth/verify-email", post(account::verify_email))
        .route(
            "/auth/verify-email/resend",
            post(account::request_verification),
        )
        .route(
            "/me",
            get(me::get_me).patch(me::update_me).delete(me::delete_me),
        )
        .route("/me/password", put(me::change_password))
        .route("/me/sessions", get(me::sessions))
        .route("/me/sessions/{id}", delete(me::revoke_session))
        .route("/me/verification", post(account::resend_verification))
        .route("/me/events", get(me::events))
        .route("/me/export", get(me::export))
        .route("/me/second-factor", get(second_factor::status))
        .route("/me/second-factor/totp", post(second_factor::start_totp))
        .route(
            "/me/second-factor/totp/confirm",
            post(second_factor::confirm_totp),
        )
        .route(
            "/me/second-factor/recovery-codes",
            post(second_factor::regenerate_recovery_codes),
        )
        .route("/me/second-factor/disable", post(second_factor::disable))
        .route("/admin/users", get(admin::list))
        .route(
            "/admin/users/{id}",
            get(admin::get).patch(admin::update).delete(admin::delete),
        )
        .route("/admin/users/{id}/role", put(admin::set_role))
        .route("/admin/users/{id}/status", put(admin::set_status))
        .route("/admin/users/{id}/unlock", post(admin::unlock))
        .route(
            "/admin/users/{id}/second-factor",
            get(second_factor::admin_status).delete(second_factor::admin_reset),
        )
        .route(
            "/admin/users/{id}/password-reset",
            post(account::send_password_reset),
        )
        .route("/admin/audit", get(audit::list))
        .route("/openapi.json", get(openapi_json))
        .route("/docs", get(crate::pages::api_docs))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    let root = Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .method_not_allowed_fallback(method_not_allowed);
    (v1, root)
}
