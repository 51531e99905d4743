use std::time::Duration;

use secrecy::SecretString;
use time::OffsetDateTime;

use super::Mail;
use crate::domain::Email;
use crate::error::Cause;

/// A message the services send a user: what happened, and what the message needs to say it.
/// A [`MailComposer`] turns it into a [`Mail`]; the services queue that in the outbox.
///
/// `name` is how to greet the user (their display name, else their username). Tokens are
/// secrets: `Debug` shows them redacted, and they leave the process only inside the mail.
#[derive(Debug, Clone)]
pub enum Notice {
    /// Confirm the address: a link to `/verify-email` carrying `token`.
    VerifyEmail {
        /// How to greet the user.
        name: String,
        /// The single-use token the link carries.
        token: SecretString,
        /// How long the link works.
        expires_in: Duration,
    },
    /// Choose a new password: a link to `/reset-password` carrying `token`.
    ResetPassword {
        /// How to greet the user.
        name: String,
        /// The single-use token the link carries.
        token: SecretString,
        /// How long the link works.
        expires_in: Duration,
    },
    /// The password was changed (or reset) and other sessions ended.
    PasswordChanged {
        /// How to greet the user.
        name: String,
    },
    /// The account's email address changed; sent to the old and to the new address.
    EmailChanged {
        /// How to greet the user.
        name: String,
        /// The address before the change.
        old: Email,
        /// The address after the change.
        new: Email,
    },
    /// Failed sign-in attempts locked the account's sign-in.
    LockoutStarted {
        /// How to greet the user.
        name: String,
        /// When sign-in works again.
        until: OffsetDateTime,
    },
    /// The account's second factor was turned on, or off (by its owner, or reset by an
    /// admin).
    SecondFactorChanged {
        /// How to greet the user.
        name: String,
        /// On (`true`) or off.
        enabled: bool,
        /// An admin reset it.
        by_admin: bool,
    },
    /// New recovery codes replaced the old ones.
    RecoveryCodesReplaced {
        /// How to greet the user.
        name: String,
    },
}

impl Notice {
    /// The stable name of the kind of message: `verify_email`, `reset_password`,
    /// `password_changed`, `email_changed`, `lockout_started`, `second_factor_changed` or
    /// `recovery_codes_replaced`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::VerifyEmail { .. } => "verify_email",
            Self::ResetPassword { .. } => "reset_password",
            Self::PasswordChanged { .. } => "password_changed",
            Self::EmailChanged { .. } => "email_changed",
            Self::LockoutStarted { .. } => "lockout_started",
            Self::SecondFactorChanged { .. } => "second_factor_changed",
            Self::RecoveryCodesReplaced { .. } => "recovery_codes_replaced",
        }
    }
}

/// Why a [`Notice`] could not become a [`Mail`] (a template that does not render, say). The
/// cause is in `source()`; it never holds the token.
#[derive(Debug, thiserror::Error)]
#[error("mail could not be composed")]
pub struct ComposeError(#[source] Cause);

impl ComposeError {
    /// Wraps the composer's own error.
    pub fn new(cause: impl Into<Cause>) -> Self {
        Self(cause.into())
    }
}

/// Turns a [`Notice`] into a [`Mail`] for one recipient: subject, bodies and links are the
/// composer's business (crate `user-mail` implements it with its templates). Pure and quick:
/// it is called during requests, before the mail is queued.
#[cfg_attr(any(test, feature = "testing"), mockall::automock)]
pub trait MailComposer: Send + Sync + 'static {
    /// The message telling `to` about `notice`, with a new id.
    ///
    /// # Errors
    /// [`ComposeError`] when the message cannot be rendered.
    fn compose(&self, notice: &Notice, to: &Email) -> Result<Mail, ComposeError>;
}
