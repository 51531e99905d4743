//! The JSON error shape and the mapping of core errors to HTTP, per ARCHITECTURE.md.
//! 5xx bodies are generic; their cause is logged here, once.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Serialize, Serializer};
use user_core::error::{
    AuthError, ErrorKind, ServiceError, UserError, ValidationError, ValidationErrors,
};
use utoipa::ToSchema;
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};

/// The stable machine code of an [`ErrorBody`]. This is the one list of codes: the JSON API
/// answers with no other, and the OpenAPI schema of `ErrorBody.code` is built from
/// [`ErrorCode::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 422: the body does not match the schema, or a value breaks a rule (`fields`).
    ValidationFailed,
    /// 401: unknown identifier, wrong password or disabled account.
    InvalidCredentials,
    /// 401: no valid access token or session.
    Unauthenticated,
    /// 429: too many attempts (`Retry-After`).
    Throttled,
    /// 503: too many passwords are being hashed (`Retry-After`).
    Overloaded,
    /// 403: the caller may not do this.
    Forbidden,
    /// 403: a cookie-authenticated state-changing request from another site
    /// ([`crate::CurrentActor`]).
    CrossSite,
    /// 404: no such resource or endpoint.
    NotFound,
    /// 405: the endpoint does not accept that method.
    MethodNotAllowed,
    /// 409: a unique value is taken (`fields`).
    Conflict,
    /// 409: the change would leave no active admin.
    LastAdmin,
    /// 409: the account is not in the state the request needs (a second factor already on
    /// or off; a one-step sign-in for an account with a second factor).
    FailedPrecondition,
    /// 400: the body or query could not be read.
    MalformedRequest,
    /// 415: the body is not sent as JSON.
    UnsupportedMediaType,
    /// 413: the body is above the limit.
    PayloadTooLarge,
    /// 503: the database does not answer.
    Unavailable,
    /// 500: an unexpected failure, logged by the server. Stays last (see `ALL`).
    Internal,
}

impl ErrorCode {
    /// Every code, in declaration order.
    pub const ALL: [Self; 17] = [
        Self::ValidationFailed,
        Self::InvalidCredentials,
        Self::Unauthenticated,
        Self::Throttled,
        Self::Overloaded,
        Self::Forbidden,
        Self::CrossSite,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::Conflict,
        Self::LastAdmin,
        Self::FailedPrecondition,
        Self::MalformedRequest,
        Self::UnsupportedMediaType,
        Self::PayloadTooLarge,
        Self::Unavailable,
        Self::Internal,
    ];

    /// The code as sent, in snake case: `validation_failed`, ...
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ValidationFailed => "validation_failed",
            Self::InvalidCredentials => "invalid_credentials",
            Self::Unauthenticated => "unauthenticated",
            Self::Throttled => "throttled",
            Self::Overloaded => "overloaded",
            Self::Forbidden => "forbidden",
            Self::CrossSite => "cross_site",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::LastAdmin => "last_admin",
            Self::FailedPrecondition => "failed_precondition",
            Self::MalformedRequest => "malformed_request",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge => "payload_too_large",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The schema of `ErrorBody.code`: a string, one of [`ErrorCode::ALL`].
fn error_code_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(ErrorCode::ALL.map(ErrorCode::as_str)))
        .description(Some(
            "A stable machine code; the status and the description of each response say \
             which codes it carries.",
        ))
        .build()
}

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
    /// Stable machine code, one of [`ErrorCode::ALL`].
    #[schema(schema_with = error_code_schema)]
    pub code: ErrorCode,
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
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
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
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::MalformedRequest,
            message,
        )
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
        if kind.is_server_fault() {
            let status = status_and_code(kind).0.as_u16();
            tracing::error!(error = %user_core::error::report(e), status, "request failed");
        }
        let mut error = Self::of_kind(kind, e.message());
        error.body.fields = e.fields().into_iter().map(FieldError::from).collect();
        error
    }

    /// An error of `kind`, by the table (status, code, `Retry-After`), with `message`. Logs
    /// nothing: for failures the adapter itself finds, which have no cause to log.
    pub(crate) fn of_kind(kind: ErrorKind, message: impl Into<String>) -> Self {
        let (status, code) = status_and_code(kind);
        let mut error = Self::new(status, code, message);
        error.retry_after = kind.retry_after().map(|wait| wait.as_secs().max(1));
        error
    }
}

/// The JSON API column of the table in ARCHITECTURE.md: the status and the stable `code`.
fn status_and_code(kind: ErrorKind) -> (StatusCode, ErrorCode) {
    match kind {
        ErrorKind::InvalidInput => (
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::ValidationFailed,
        ),
        ErrorKind::InvalidCredentials => (StatusCode::UNAUTHORIZED, ErrorCode::InvalidCredentials),
        ErrorKind::Unauthenticated => (StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated),
        ErrorKind::Throttled { .. } => (StatusCode::TOO_MANY_REQUESTS, ErrorCode::Throttled),
        ErrorKind::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Overloaded),
        ErrorKind::Forbidden => (StatusCode::FORBIDDEN, ErrorCode::Forbidden),
        ErrorKind::NotFound => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
        ErrorKind::Conflict(_) => (StatusCode::CONFLICT, ErrorCode::Conflict),
        ErrorKind::LastAdmin => (StatusCode::CONFLICT, ErrorCode::LastAdmin),
        ErrorKind::FailedPrecondition => (StatusCode::CONFLICT, ErrorCode::FailedPrecondition),
        ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable),
        ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal),
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
            (
                AuthError::InvalidToken.into(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
            ),
            (
                AuthError::EmailNotVerified.into(),
                StatusCode::FORBIDDEN,
                "forbidden",
            ),
            (
                AuthError::MailNotConfigured.into(),
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
            ),
            (
                UserError::MailNotConfigured.into(),
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
            ),
        ];
        for (e, status, code) in cases {
            assert_eq!((e.status(), e.body().code.as_str()), (status, code));
        }
    }

    #[test]
    fn all_lists_every_code_once() {
        // The variants are numbered in declaration order and `Internal` is the last.
        assert_eq!(ErrorCode::ALL.len(), ErrorCode::Internal as usize + 1);
        for (i, code) in ErrorCode::ALL.into_iter().enumerate() {
            assert_eq!(code as usize, i, "{code}");
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
        let names: std::collections::BTreeSet<_> =
            ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), ErrorCode::ALL.len());
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
    fn an_invalid_token_is_a_problem_of_field_token() {
        let e = ApiError::from(AuthError::InvalidToken);
        let fields: Vec<_> = e
            .body()
            .fields
            .iter()
            .map(|f| (f.field.as_str(), f.code.as_str()))
            .collect();
        assert_eq!(fields, [("token", "invalid_token")]);
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
