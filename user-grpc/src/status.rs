//! One mapping from core errors to `tonic::Status`, per the table in ARCHITECTURE.md.
//! Messages come from core ([`ServiceError::message`]): short, human and safe; causes of
//! server faults are logged here, once.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use user_core::error::{ErrorKind, ServiceError};

/// Turns a core error into the gRPC status the clients expect.
pub trait ToStatus {
    /// The status for this error.
    fn to_status(self) -> Status;
}

impl<E: ServiceError> ToStatus for E {
    fn to_status(self) -> Status {
        status(&self)
    }
}

/// The gRPC column of the table in ARCHITECTURE.md.
fn code(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::InvalidInput => Code::InvalidArgument,
        ErrorKind::InvalidCredentials | ErrorKind::Unauthenticated => Code::Unauthenticated,
        ErrorKind::Throttled { .. } | ErrorKind::Overloaded => Code::ResourceExhausted,
        ErrorKind::Forbidden => Code::PermissionDenied,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::Conflict(_) => Code::AlreadyExists,
        ErrorKind::LastAdmin | ErrorKind::FailedPrecondition => Code::FailedPrecondition,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::Internal => Code::Internal,
    }
}

/// The status of any core error: its code, core's message, and the details clients read:
/// `BadRequest` field violations (invalid input, a taken field) and `RetryInfo` (throttled,
/// overloaded).
fn status(e: &dyn ServiceError) -> Status {
    let kind = e.kind();
    if kind.is_server_fault() {
        tracing::error!(error = %user_core::error::report(e), "gRPC request failed");
    }
    let message = e.message();
    let details = match kind {
        ErrorKind::InvalidInput => {
            let mut details = ErrorDetails::new();
            for v in e.fields() {
                details.add_bad_request_violation(v.field, v.message);
            }
            Some(details)
        }
        ErrorKind::Conflict(field) => Some(ErrorDetails::with_bad_request_violation(
            field.as_str(),
            message.clone(),
        )),
        ErrorKind::Throttled { .. } | ErrorKind::Overloaded => {
            Some(ErrorDetails::with_retry_info(kind.retry_after()))
        }
        _ => None,
    };
    match details {
        Some(details) => Status::with_error_details(code(kind), message, details),
        None => Status::new(code(kind), message),
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
    use std::time::Duration;

    use super::*;
    use user_core::error::{AuthError, UniqueField, UserError, ValidationError, ValidationErrors};

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
        let overloaded = UserError::Overloaded.to_status();
        assert_eq!(
            overloaded.message(),
            "the server is busy, try again shortly"
        );
        let retry = overloaded
            .get_error_details()
            .retry_info()
            .unwrap()
            .retry_delay;
        assert_eq!(retry, Some(Duration::from_secs(1)));
        let forbidden = UserError::Forbidden.to_status();
        assert!(
            forbidden.details().is_empty(),
            "no details where none apply"
        );
        let conflict = AuthError::Conflict(UniqueField::Username).to_status();
        assert_eq!(conflict.message(), "username is already taken");
        let details = conflict.get_error_details();
        assert_eq!(
            details.bad_request().unwrap().field_violations[0].field,
            "username"
        );
    }
}
