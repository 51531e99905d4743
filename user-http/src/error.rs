//! The JSON error shape and the mapping of core errors to HTTP, per ARCHITECTURE.md.
//! 5xx bodies are generic; their cause is logged here, once.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use user_core::error::{AuthError, UniqueField, UserError, ValidationErrors};
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

    fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }

    fn server(
        status: StatusCode,
        code: &'static str,
        message: &str,
        e: &dyn std::error::Error,
    ) -> Self {
        tracing::error!(error = %user_core::error::report(e), status = status.as_u16(), "request failed");
        Self::new(status, code, message)
    }
}

impl From<&ValidationErrors> for ApiError {
    fn from(errors: &ValidationErrors) -> Self {
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            errors.to_string(),
        );
        e.body.fields = errors
            .iter()
            .map(|v| FieldError {
                field: v.field.to_owned(),
                code: v.code.to_owned(),
                message: v.message.to_string(),
            })
            .collect();
        e
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(errors: ValidationErrors) -> Self {
        Self::from(&errors)
    }
}

fn throttled(retry_after: std::time::Duration) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "throttled",
        format!(
            "too many attempts, try again in {}",
            user_core::error::wait_in_minutes(retry_after)
        ),
    )
    .with_retry_after(retry_after.as_secs())
}

fn conflict(field: UniqueField) -> ApiError {
    let message = format!("{field} is already taken");
    let mut e = ApiError::new(StatusCode::CONFLICT, "conflict", message.clone());
    e.body.fields = vec![FieldError {
        field: field.as_str().to_owned(),
        code: "taken".to_owned(),
        message: "is already taken".to_owned(),
    }];
    e
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Invalid(errors) => errors.into(),
            AuthError::InvalidCredentials => Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                e.to_string(),
            ),
            AuthError::Unauthenticated => {
                Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", e.to_string())
            }
            AuthError::Throttled { retry_after } => throttled(retry_after),
            AuthError::Conflict(field) => conflict(field),
            AuthError::Overloaded => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", e.to_string())
                    .with_retry_after(1)
            }
            AuthError::Unavailable(_) => Self::server(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "service temporarily unavailable",
                &e,
            ),
            AuthError::Internal(_) => Self::server(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
                &e,
            ),
        }
    }
}

impl From<UserError> for ApiError {
    fn from(e: UserError) -> Self {
        match e {
            UserError::Invalid(errors) => errors.into(),
            // A wrong confirmation password: the session stays valid, so no WWW-Authenticate.
            UserError::InvalidCredentials => Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                e.to_string(),
            ),
            UserError::Forbidden => Self::new(StatusCode::FORBIDDEN, "forbidden", e.to_string()),
            UserError::NotFound => Self::new(StatusCode::NOT_FOUND, "not_found", e.to_string()),
            UserError::Throttled { retry_after } => throttled(retry_after),
            UserError::Conflict(field) => conflict(field),
            UserError::LastAdmin => Self::new(StatusCode::CONFLICT, "last_admin", e.to_string()),
            UserError::Overloaded => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", e.to_string())
                    .with_retry_after(1)
            }
            UserError::Unavailable(_) => Self::server(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "service temporarily unavailable",
                &e,
            ),
            UserError::Internal(_) => Self::server(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
                &e,
            ),
        }
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
    use user_core::error::ValidationError;

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
}
