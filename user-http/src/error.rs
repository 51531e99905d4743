//! The JSON error shape and the mapping of core errors to HTTP, per ARCHITECTURE.md.
//! 5xx bodies are generic; their cause is logged here, once.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use user_core::error::{
    AuthError, ErrorKind, ServiceError, UserError, ValidationError, ValidationErrors,
};
use utoipa::ToSchema;

/// One field's problem.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldError {
    /// The request field, e.g. `username`.
    pub field: String,
    /// A stable machine code, e.g. `too_short`.
    pub code: String,
    /// A sentence a person can act on.
    pub message: String,
}

/// Every error of the JSON API has this shape.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine code: `validation_failed`, `invalid_credentials`, `unauthenticated`,
    /// `throttled`, `overloaded`, `forbidden`, `not_found`, `conflict`, `last_admin`,
    /// `malformed_request`, `unsupported_media_type`, `payload_too_large`, `unavailable`,
    /// `internal`.
    pub code: &'static str,
    /// A human message, safe to show.
    pub message: String,
    /// Per-field problems, for `validation_failed` and `conflict`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldError>,
}

/// An error response of the JSON API.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                code,
                message: message.into(),
                fields: Vec::new(),
            },
            retry_after: None,
        }
    }

    /// 401 for a missing, expired or revoked token or session.
    pub fn unauthenticated() -> Self {
        AuthError::Unauthenticated.into()
    }

    /// 400 for a body or query that could not be read.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed_request", message)
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The body.
    pub fn body(&self) -> &ErrorBody {
        &self.body
    }

    /// Any core error, by the table: status and code from its kind, core's message, its
    /// field problems, `Retry-After` when it has a wait. 5xx causes are logged here, once.
    fn of(e: &dyn ServiceError) -> Self {
        let kind = e.kind();
        let (status, code) = status_and_code(kind);
        if kind.is_server_fault() {
            tracing::error!(error = %user_core::error::report(e), status = status.as_u16(), "request failed");
        }
        let mut error = Self::new(status, code, e.message());
        error.body.fields = e.fields().into_iter().map(FieldError::from).collect();
        error.retry_after = kind.retry_after().map(|wait| wait.as_secs().max(1));
        error
    }
}

/// The JSON API column of the table in ARCHITECTURE.md: the status and the stable `code`.
fn status_and_code(kind: ErrorKind) -> (StatusCode, &'static str) {
    match kind {
        ErrorKind::InvalidInput => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        ErrorKind::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
        ErrorKind::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
        ErrorKind::Throttled { .. } => (StatusCode::TOO_MANY_REQUESTS, "throttled"),
        ErrorKind::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
        ErrorKind::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
        ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        ErrorKind::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
        ErrorKind::LastAdmin => (StatusCode::CONFLICT, "last_admin"),
        ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

impl From<ValidationError> for FieldError {
    fn from(e: ValidationError) -> Self {
        Self {
            field: e.field.to_owned(),
            code: e.code.to_owned(),
            message: e.message.into_owned(),
        }
    }
}

impl From<&ValidationErrors> for ApiError {
    fn from(errors: &ValidationErrors) -> Self {
        Self::of(errors)
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(errors: ValidationErrors) -> Self {
        Self::of(&errors)
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        Self::of(&e)
    }
}

impl From<UserError> for ApiError {
    fn from(e: UserError) -> Self {
        Self::of(&e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(&self.body)).into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"user-management\""),
            );
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use user_core::error::UniqueField;

    #[test]
    fn codes_and_statuses_follow_the_table() {
        let cases: Vec<(ApiError, StatusCode, &str)> = vec![
            (
                AuthError::InvalidCredentials.into(),
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
            ),
            (
                AuthError::Unauthenticated.into(),
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
            ),
            (
                AuthError::Overloaded.into(),
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
            ),
            (
                AuthError::Conflict(UniqueField::Email).into(),
                StatusCode::CONFLICT,
                "conflict",
            ),
            (
                AuthError::Internal("boom".into()).into(),
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
            ),
            (
                UserError::Forbidden.into(),
                StatusCode::FORBIDDEN,
                "forbidden",
            ),
            (
                UserError::NotFound.into(),
                StatusCode::NOT_FOUND,
                "not_found",
            ),
            (
                UserError::LastAdmin.into(),
                StatusCode::CONFLICT,
                "last_admin",
            ),
            (
                UserError::Unavailable("down".into()).into(),
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
            ),
        ];
        for (e, status, code) in cases {
            assert_eq!((e.status(), e.body().code), (status, code));
        }
    }

    #[test]
    fn headers_say_how_to_authenticate_and_when_to_retry() {
        let r = ApiError::from(AuthError::Unauthenticated).into_response();
        assert!(r.headers().contains_key(header::WWW_AUTHENTICATE));
        let r = ApiError::from(AuthError::Throttled {
            retry_after: Duration::from_secs(61),
        })
        .into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "61");
        let r = ApiError::from(AuthError::Overloaded).into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn validation_lists_every_field_and_internal_hides_the_cause() {
        let mut errors = ValidationErrors::new();
        errors.push(ValidationError::new(
            "username",
            "too_short",
            "must be at least 3 characters",
        ));
        errors.push(ValidationError::new(
            "email",
            "invalid",
            "is not a valid email address",
        ));
        let e = ApiError::from(errors);
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let fields: Vec<_> = e.body().fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["username", "email"]);
        let e = ApiError::from(AuthError::Internal("secret cause".into()));
        assert_eq!(e.body().message, "internal error");
    }

    #[test]
    fn a_conflict_names_the_taken_field() {
        let e = ApiError::from(UserError::Conflict(UniqueField::Email));
        assert_eq!(e.body().message, "email is already taken");
        let fields: Vec<_> = e
            .body()
            .fields
            .iter()
            .map(|f| (f.field.as_str(), f.code.as_str(), f.message.as_str()))
            .collect();
        assert_eq!(fields, [("email", "taken", "is already taken")]);
        let e = ApiError::from(UserError::Throttled {
            retry_after: Duration::from_secs(120),
        });
        assert_eq!(
            e.body().message,
            "too many attempts, try again in 2 minutes"
        );
        assert!(e.body().fields.is_empty());
    }
}
