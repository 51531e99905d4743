//! One mapping from core errors to `tonic::Status`, per the table in ARCHITECTURE.md.
//! Messages are short, human and safe; causes of internal errors are logged here, once.

use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use user_core::error::{AuthError, UniqueField, UserError, ValidationErrors};

/// How long an overloaded server asks clients to wait.
const OVERLOAD_RETRY: Duration = Duration::from_secs(1);

/// Turns a core error into the gRPC status the clients expect.
pub trait ToStatus {
    /// The status for this error.
    fn to_status(self) -> Status;
}

/// `INVALID_ARGUMENT` with one `BadRequest` field violation per problem.
pub(crate) fn invalid(errors: &ValidationErrors) -> Status {
    let mut details = ErrorDetails::new();
    for e in errors.iter() {
        details.add_bad_request_violation(e.field, e.message.clone());
    }
    Status::with_error_details(Code::InvalidArgument, errors.to_string(), details)
}

fn conflict(field: UniqueField) -> Status {
    let message = format!("{field} is already taken");
    let details = ErrorDetails::with_bad_request_violation(field.as_str(), message.clone());
    Status::with_error_details(Code::AlreadyExists, message, details)
}

fn throttled(retry_after: Duration) -> Status {
    let wait = user_core::error::wait_in_minutes(retry_after);
    Status::with_error_details(
        Code::ResourceExhausted,
        format!("too many attempts, try again in {wait}"),
        ErrorDetails::with_retry_info(Some(retry_after)),
    )
}

fn overloaded() -> Status {
    Status::with_error_details(
        Code::ResourceExhausted,
        "the server is busy, try again shortly",
        ErrorDetails::with_retry_info(Some(OVERLOAD_RETRY)),
    )
}

fn server_error(code: Code, message: &str, error: &dyn std::error::Error) -> Status {
    tracing::error!(error = %user_core::error::report(error), "gRPC request failed");
    Status::new(code, message)
}

impl ToStatus for AuthError {
    fn to_status(self) -> Status {
        match self {
            Self::Invalid(errors) => invalid(&errors),
            Self::InvalidCredentials | Self::Unauthenticated => {
                Status::unauthenticated(self.to_string())
            }
            Self::Throttled { retry_after } => throttled(retry_after),
            Self::Conflict(field) => conflict(field),
            Self::Overloaded => overloaded(),
            Self::Unavailable(_) => {
                server_error(Code::Unavailable, "service temporarily unavailable", &self)
            }
            Self::Internal(_) => server_error(Code::Internal, "internal error", &self),
        }
    }
}

impl ToStatus for UserError {
    fn to_status(self) -> Status {
        match self {
            Self::Invalid(errors) => invalid(&errors),
            Self::InvalidCredentials => Status::unauthenticated(self.to_string()),
            Self::Forbidden => Status::permission_denied(self.to_string()),
            Self::NotFound => Status::not_found(self.to_string()),
            Self::Throttled { retry_after } => throttled(retry_after),
            Self::Conflict(field) => conflict(field),
            Self::LastAdmin => Status::failed_precondition(self.to_string()),
            Self::Overloaded => overloaded(),
            Self::Unavailable(_) => {
                server_error(Code::Unavailable, "service temporarily unavailable", &self)
            }
            Self::Internal(_) => server_error(Code::Internal, "internal error", &self),
        }
    }
}

impl ToStatus for ValidationErrors {
    fn to_status(self) -> Status {
        invalid(&self)
    }
}

/// `.or_status()?` on any result whose error maps to a status.
pub(crate) trait OrStatus<T> {
    /// Maps the error with [`ToStatus`].
    fn or_status(self) -> Result<T, Status>;
}

impl<T, E: ToStatus> OrStatus<T> for Result<T, E> {
    fn or_status(self) -> Result<T, Status> {
        self.map_err(ToStatus::to_status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use user_core::error::ValidationError;

    #[test]
    fn validation_errors_carry_every_field() {
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
        let status = AuthError::Invalid(errors).to_status();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status
                .message()
                .contains("username: must be at least 3 characters")
        );
        let details = status.get_error_details();
        let fields: Vec<_> = details
            .bad_request()
            .unwrap()
            .field_violations
            .iter()
            .map(|v| v.field.as_str())
            .collect();
        assert_eq!(fields, ["username", "email"]);
    }

    #[test]
    fn every_variant_has_its_code() {
        let cases = [
            (
                AuthError::InvalidCredentials.to_status(),
                Code::Unauthenticated,
            ),
            (
                AuthError::Unauthenticated.to_status(),
                Code::Unauthenticated,
            ),
            (
                AuthError::Conflict(UniqueField::Email).to_status(),
                Code::AlreadyExists,
            ),
            (AuthError::Overloaded.to_status(), Code::ResourceExhausted),
            (
                AuthError::Internal("db on fire".into()).to_status(),
                Code::Internal,
            ),
            (
                AuthError::Unavailable("gone".into()).to_status(),
                Code::Unavailable,
            ),
            (UserError::Forbidden.to_status(), Code::PermissionDenied),
            (UserError::NotFound.to_status(), Code::NotFound),
            (UserError::LastAdmin.to_status(), Code::FailedPrecondition),
            (
                UserError::InvalidCredentials.to_status(),
                Code::Unauthenticated,
            ),
        ];
        for (status, code) in cases {
            assert_eq!(status.code(), code, "{status:?}");
        }
    }

    #[test]
    fn internal_causes_stay_out_of_the_message() {
        let status = AuthError::Internal("db password is hunter2".into()).to_status();
        assert_eq!(status.message(), "internal error");
    }

    #[test]
    fn throttling_says_when_to_retry() {
        let status = AuthError::Throttled {
            retry_after: Duration::from_secs(90),
        }
        .to_status();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(
            status.message(),
            "too many attempts, try again in 2 minutes"
        );
        let retry = status.get_error_details().retry_info().unwrap().retry_delay;
        assert_eq!(retry, Some(Duration::from_secs(90)));
        let conflict = AuthError::Conflict(UniqueField::Username).to_status();
        assert_eq!(conflict.message(), "username is already taken");
        let details = conflict.get_error_details();
        assert_eq!(
            details.bad_request().unwrap().field_violations[0].field,
            "username"
        );
    }
}
