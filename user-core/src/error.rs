//! Error types of the core, one family per layer.
//!
//! `Display` texts are lowercase, short and safe to show to a person; causes travel in
//! [`std::error::Error::source`] so that adapters can log them once.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

/// A boxed error from an adapter, carried as the `source` of a core error.
pub type Cause = Box<dyn StdError + Send + Sync + 'static>;

/// An error and its causes on one line (`outer: cause: root cause`), for the log line an
/// adapter writes once when a request fails.
pub fn report(error: &dyn StdError) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// What a taken unique field is told, after its name: `username is already taken`.
pub const TAKEN: &str = "is already taken";

/// What a missing field is told, after its name: `username is required`.
pub const REQUIRED: &str = "is required";

/// What a text that is no user id is told, after its name: `user_id is not a valid user id`.
pub const INVALID_USER_ID: &str = "is not a valid user id";

/// Why a request is refused while password hashing is saturated.
pub const BUSY: &str = "the server is busy, try again shortly";

/// Why a request is refused while storage is unreachable.
pub const UNAVAILABLE: &str = "service temporarily unavailable";

/// Why a throttled attempt is refused, when the wait is not known.
pub const TOO_MANY_ATTEMPTS: &str = "too many attempts, try again later";

/// Why the last active admin keeps their role, status and account.
pub const LAST_ADMIN: &str = "the last active admin cannot be demoted, disabled or deleted";

/// Why a single-use link is refused: unknown, expired, superseded or already used alike.
pub const INVALID_TOKEN: &str = "the link is invalid, has expired or was already used";

/// Why a flow that mails the user cannot run.
pub const MAIL_NOT_CONFIGURED: &str = "mail is not configured";

/// What a failure of the server says: nothing about its cause.
pub const INTERNAL: &str = "internal error";

/// Why [`AuthError::SecondFactorRequired`] refuses a one-step sign-in.
pub const SECOND_FACTOR_REQUIRED: &str =
    "this account signs in with a second factor: use a client or page that asks for the code";

/// A wrong, used or malformed code from an authenticator app or a recovery code.
pub const INVALID_CODE: &str = "the code is not valid";

/// A sign-in challenge that does not work (any more).
pub const CHALLENGE_EXPIRED: &str =
    "this sign-in has expired or was already completed: sign in again";

/// [`UserError::FactorState`]: enrolment asked for while a factor is on.
pub const FACTOR_ALREADY_ON: &str = "a second factor is already enabled: disable it first";

/// [`UserError::FactorState`]: an operation that needs a factor, for an account without one.
pub const FACTOR_OFF: &str = "no second factor is enabled on this account";

/// [`UserError::FactorState`]: a confirmation without an enrolment in progress.
pub const NO_ENROLMENT: &str = "no enrolment is in progress: start it again";

/// [`UserError::FactorState`]: an admin resetting their own second factor.
pub const OWN_FACTOR: &str =
    "turn off your own second factor from your profile, with your password and a code";

/// [`UserError::FactorState`]: the server has no key for second factors.
pub const FACTORS_NOT_CONFIGURED: &str = "second factors are not configured on this server";

/// How long to wait, in whole minutes for a person: `1 minute`, `5 minutes` (rounded up).
pub fn wait_in_minutes(wait: Duration) -> String {
    let minutes = wait.as_secs().div_ceil(60).max(1);
    let unit = if minutes == 1 { "minute" } else { "minutes" };
    format!("{minutes} {unit}")
}

/// One problem with one input field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// The field, as named on the wire (`username`, `email`, `password`, ...).
    pub field: &'static str,
    /// A stable machine code, for example `too_short` or `common_password`.
    pub code: &'static str,
    /// A sentence a person can act on.
    pub message: Cow<'static, str>,
}

impl ValidationError {
    /// Builds an error for `field`.
    pub fn new(
        field: &'static str,
        code: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            field,
            code,
            message: message.into(),
        }
    }

    /// A missing `field`: code `required`, message [`REQUIRED`].
    pub fn required(field: &'static str) -> Self {
        Self::new(field, "required", REQUIRED)
    }

    /// The same problem reported on `field`, for an input named otherwise on the wire.
    pub fn on(self, field: &'static str) -> Self {
        Self { field, ..self }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl StdError for ValidationError {}

/// Every problem found in one request, so that an adapter can show them all at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors(Vec<ValidationError>);

impl ValidationErrors {
    /// No errors yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one error.
    pub fn push(&mut self, error: ValidationError) {
        self.0.push(error);
    }

    /// Adds every error of `other`.
    pub fn extend(&mut self, other: ValidationErrors) {
        self.0.extend(other.0);
    }

    /// Keeps the value of `result`, or records its errors and returns `None`.
    pub fn collect<T, E: Into<ValidationErrors>>(&mut self, result: Result<T, E>) -> Option<T> {
        result.map_err(|e| self.extend(e.into())).ok()
    }

    /// `Ok(())` when nothing was recorded.
    ///
    /// # Errors
    /// Returns `self` when at least one error was recorded.
    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }

    /// The recorded errors, in the order they were found.
    pub fn iter(&self) -> impl Iterator<Item = &ValidationError> {
        self.0.iter()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The same errors with `from` renamed to `to`, for a form whose field is named otherwise
    /// (`new_password` rather than `password`).
    pub fn renamed(mut self, from: &str, to: &'static str) -> Self {
        for e in &mut self.0 {
            if e.field == from {
                e.field = to;
            }
        }
        self
    }

    /// The errors of one field.
    pub fn field(&self, field: &str) -> impl Iterator<Item = &ValidationError> {
        self.0.iter().filter(move |e| e.field == field)
    }
}

impl From<ValidationError> for ValidationErrors {
    fn from(error: ValidationError) -> Self {
        Self(vec![error])
    }
}

impl IntoIterator for ValidationErrors {
    type Item = ValidationError;
    type IntoIter = std::vec::IntoIter<ValidationError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl StdError for ValidationErrors {}

/// A field that must be unique among users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UniqueField {
    /// The username (compared case-insensitively).
    Username,
    /// The email address (compared case-insensitively).
    Email,
}

impl UniqueField {
    /// The field's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Username => "username",
            Self::Email => "email",
        }
    }
}

impl UniqueField {
    /// The field's problem when it is taken: code `taken`, message `is already taken`, so
    /// that a form or a JSON body shows it beside the field like any validation error.
    pub fn taken(self) -> ValidationError {
        ValidationError::new(self.as_str(), "taken", TAKEN)
    }
}

impl fmt::Display for UniqueField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a storage port reports.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// No row matched.
    #[error("not found")]
    NotFound,
    /// A unique field is taken.
    #[error("{field} {taken}", taken = TAKEN)]
    Conflict {
        /// The field that collided.
        field: UniqueField,
    },
    /// The change would leave no active admin.
    #[error("{}", LAST_ADMIN)]
    LastActiveAdmin,
    /// The store failed or returned data the core cannot accept.
    #[error("storage unavailable")]
    Unavailable(#[source] Cause),
}

impl RepoError {
    /// Wraps any adapter error as [`RepoError::Unavailable`].
    pub fn unavailable(cause: impl Into<Cause>) -> Self {
        Self::Unavailable(cause.into())
    }
}

/// What a [`PasswordHasher`](crate::ports::PasswordHasher) reports.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Too many hashes are queued; try again shortly.
    #[error("{}", BUSY)]
    Overloaded,
    /// The stored hash is malformed, of an unknown scheme, or above the parameter ceiling.
    #[error("stored password hash refused")]
    Refused(#[source] Cause),
    /// Hashing failed (for example the blocking task panicked).
    #[error("password hashing failed")]
    Internal(#[source] Cause),
}

/// Errors of [`AuthService`](crate::auth::AuthService): registration, login, tokens.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The input failed validation; every problem is listed.
    #[error("invalid input: {0}")]
    Invalid(ValidationErrors),
    /// Unknown account, wrong password or disabled account: deliberately one error.
    #[error("invalid username, email or password")]
    InvalidCredentials,
    /// Missing, malformed, expired or revoked token or session.
    #[error("not signed in or the session has ended")]
    Unauthenticated,
    /// A locked guess budget, or a client address over its rate limit.
    #[error("{}", TOO_MANY_ATTEMPTS)]
    Throttled {
        /// How long until the next attempt is accepted.
        retry_after: Duration,
    },
    /// The username or email is taken.
    #[error("{0} {taken}", taken = TAKEN)]
    Conflict(UniqueField),
    /// A single-use link (password reset, email verification) that does not work: unknown,
    /// expired, superseded by a newer one, already used, or its account gone or disabled;
    /// deliberately one error. Its kind is [`ErrorKind::InvalidInput`] with the problem on
    /// field `token` (code `invalid_token`), so faces show it beside the form: JSON 422,
    /// the page again with 422, gRPC `InvalidArgument`.
    #[error("{}", INVALID_TOKEN)]
    InvalidToken,
    /// The password was right, but the policy requires a verified email before sign-in and
    /// this account's is not. Only a caller who knows the password learns it. Kind
    /// [`ErrorKind::Forbidden`]: JSON 403, a page that offers to resend the link, gRPC
    /// `PermissionDenied`.
    #[error("confirm your email address before signing in")]
    EmailNotVerified,
    /// The flow needs to mail the user and no [`MailComposer`](crate::ports::MailComposer)
    /// is configured. Kind [`ErrorKind::Internal`] (a server fault worth a log line), with
    /// this safe message.
    #[error("{}", MAIL_NOT_CONFIGURED)]
    MailNotConfigured,
    /// The password was right and the account signs in with a second factor, which this
    /// entry point cannot ask for ([`AuthService::login`](crate::auth::AuthService::login),
    /// used by clients that know one step only). Kind [`ErrorKind::FailedPrecondition`]:
    /// gRPC `FailedPrecondition`, JSON 409. Only a caller who knows the password learns it.
    #[error("{}", SECOND_FACTOR_REQUIRED)]
    SecondFactorRequired,
    /// The code at the second step (or an enrolment's confirmation) is wrong, used already,
    /// or neither a six-digit code nor a recovery code. Kind
    /// [`ErrorKind::InvalidCredentials`]; it counts on the guess budget like a password.
    #[error("{}", INVALID_CODE)]
    InvalidCode,
    /// The sign-in challenge is unknown, used, expired, or its account changed since the
    /// password step: start the sign-in again. Kind [`ErrorKind::Unauthenticated`].
    #[error("{}", CHALLENGE_EXPIRED)]
    ChallengeExpired,
    /// Password hashing is saturated; try again shortly.
    #[error("{}", BUSY)]
    Overloaded,
    /// Storage is unreachable.
    #[error("{}", UNAVAILABLE)]
    Unavailable(#[source] Cause),
    /// Anything else; details are in the source, never in the message.
    #[error("{}", INTERNAL)]
    Internal(#[source] Cause),
}

/// Errors of [`UserService`](crate::users::UserService): profiles and administration.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// The input failed validation; every problem is listed.
    #[error("invalid input: {0}")]
    Invalid(ValidationErrors),
    /// The current password given to confirm a change is wrong.
    #[error("the password is incorrect")]
    InvalidCredentials,
    /// Too many wrong passwords for this account: password checks are refused for a while.
    #[error("{}", TOO_MANY_ATTEMPTS)]
    Throttled {
        /// How long until the next attempt is accepted.
        retry_after: Duration,
    },
    /// The actor may not do this.
    #[error("you are not allowed to do this")]
    Forbidden,
    /// No such user.
    #[error("user not found")]
    NotFound,
    /// The username or email is taken.
    #[error("{0} {taken}", taken = TAKEN)]
    Conflict(UniqueField),
    /// The change would leave no active admin.
    #[error("{}", LAST_ADMIN)]
    LastAdmin,
    /// The operation mails the user and no [`MailComposer`](crate::ports::MailComposer) is
    /// configured. Kind [`ErrorKind::Internal`], with this safe message.
    #[error("{}", MAIL_NOT_CONFIGURED)]
    MailNotConfigured,
    /// The code from the authenticator app (or a recovery code) is wrong or used already.
    /// Kind [`ErrorKind::InvalidCredentials`].
    #[error("{}", INVALID_CODE)]
    InvalidCode,
    /// The account's second factor is not in the state the operation needs (already on,
    /// off, no enrolment started), or second factors are not configured on this server.
    /// Kind [`ErrorKind::FailedPrecondition`]; the message says which.
    #[error("{0}")]
    FactorState(&'static str),
    /// Password hashing is saturated; try again shortly.
    #[error("{}", BUSY)]
    Overloaded,
    /// Storage is unreachable.
    #[error("{}", UNAVAILABLE)]
    Unavailable(#[source] Cause),
    /// Anything else; details are in the source, never in the message.
    #[error("{}", INTERNAL)]
    Internal(#[source] Cause),
}

/// How long an overloaded server asks clients to wait before trying again.
pub const OVERLOAD_RETRY: Duration = Duration::from_secs(1);

/// What kind of failure a core error is. Every adapter maps kinds to its answers once, in
/// one table (ARCHITECTURE.md shows them side by side); what a kind needs travels with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input failed validation; [`ServiceError::fields`] lists every problem.
    InvalidInput,
    /// Wrong credentials: at sign-in one answer for an unknown account, a wrong password and
    /// a disabled account; on a re-check, a wrong current password (the session stays).
    InvalidCredentials,
    /// No, malformed, expired or revoked token or session.
    Unauthenticated,
    /// Too many attempts: a locked guess budget or an address over its rate limit.
    Throttled {
        /// How long until the next attempt is accepted.
        retry_after: Duration,
    },
    /// Password hashing is saturated; retry after [`OVERLOAD_RETRY`].
    Overloaded,
    /// The caller may not do this.
    Forbidden,
    /// No such user (or nothing the caller may know about).
    NotFound,
    /// A unique field is taken.
    Conflict(UniqueField),
    /// The change would leave no active admin.
    LastAdmin,
    /// The account is not in the state the operation needs (a second factor to give at
    /// sign-in, a factor already on or off); the message says which.
    FailedPrecondition,
    /// Storage is unreachable; the cause is in `source()`.
    Unavailable,
    /// Anything else; the cause is in `source()`, never in the message.
    Internal,
}

impl ErrorKind {
    /// How long the client should wait before trying again: the throttle's wait, or
    /// [`OVERLOAD_RETRY`] when overloaded.
    pub fn retry_after(self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after } => Some(retry_after),
            Self::Overloaded => Some(OVERLOAD_RETRY),
            _ => None,
        }
    }

    /// Whether the server is at fault with a cause worth an error log line (storage down or
    /// an internal failure). Everything else is the client's doing, or load, and is not.
    pub fn is_server_fault(self) -> bool {
        matches!(self, Self::Unavailable | Self::Internal)
    }
}

/// What every adapter needs from a core error to answer it: its [`ErrorKind`], a message
/// safe to show, and the problems by field. Implemented by [`AuthError`], [`UserError`] and
/// [`ValidationErrors`], so an adapter writes one mapping for all of them.
pub trait ServiceError: StdError + Send + Sync + 'static {
    /// The kind of failure.
    fn kind(&self) -> ErrorKind;

    /// The validation problems of an [`ErrorKind::InvalidInput`] error.
    fn validation(&self) -> Option<&ValidationErrors>;

    /// A short, lowercase message safe to show to a person: never a cause. Throttling says
    /// how long to wait (`too many attempts, try again in 2 minutes`); invalid input lists
    /// every problem (`username: must be at least 3 characters; ...`).
    fn message(&self) -> String {
        match self.kind() {
            ErrorKind::InvalidInput => self.fields().to_string(),
            ErrorKind::Throttled { retry_after } => {
                format!(
                    "too many attempts, try again in {}",
                    wait_in_minutes(retry_after)
                )
            }
            // The other `Display` texts are safe by construction: causes sit in `source()`.
            _ => self.to_string(),
        }
    }

    /// The problems by field: every validation problem, or the one taken field of a
    /// conflict ([`UniqueField::taken`]); empty for other kinds.
    fn fields(&self) -> ValidationErrors {
        match (self.kind(), self.validation()) {
            (_, Some(errors)) => errors.clone(),
            (ErrorKind::Conflict(field), None) => field.taken().into(),
            _ => ValidationErrors::new(),
        }
    }
}

impl ServiceError for AuthError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Invalid(_) => ErrorKind::InvalidInput,
            Self::InvalidCredentials => ErrorKind::InvalidCredentials,
            Self::Unauthenticated => ErrorKind::Unauthenticated,
            Self::Throttled { retry_after } => ErrorKind::Throttled {
                retry_after: *retry_after,
            },
            Self::Conflict(field) => ErrorKind::Conflict(*field),
            Self::InvalidToken => ErrorKind::InvalidInput,
            Self::EmailNotVerified => ErrorKind::Forbidden,
            Self::SecondFactorRequired => ErrorKind::FailedPrecondition,
            Self::InvalidCode => ErrorKind::InvalidCredentials,
            Self::ChallengeExpired => ErrorKind::Unauthenticated,
            Self::Overloaded => ErrorKind::Overloaded,
            Self::Unavailable(_) => ErrorKind::Unavailable,
            Self::MailNotConfigured | Self::Internal(_) => ErrorKind::Internal,
        }
    }

    fn validation(&self) -> Option<&ValidationErrors> {
        match self {
            Self::Invalid(errors) => Some(errors),
            _ => None,
        }
    }

    fn fields(&self) -> ValidationErrors {
        match self {
            Self::Invalid(errors) => errors.clone(),
            Self::Conflict(field) => field.taken().into(),
            Self::InvalidToken => {
                ValidationError::new("token", "invalid_token", INVALID_TOKEN).into()
            }
            _ => ValidationErrors::new(),
        }
    }
}

impl ServiceError for UserError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Invalid(_) => ErrorKind::InvalidInput,
            Self::InvalidCredentials => ErrorKind::InvalidCredentials,
            Self::Throttled { retry_after } => ErrorKind::Throttled {
                retry_after: *retry_after,
            },
            Self::Forbidden => ErrorKind::Forbidden,
            Self::NotFound => ErrorKind::NotFound,
            Self::Conflict(field) => ErrorKind::Conflict(*field),
            Self::LastAdmin => ErrorKind::LastAdmin,
            Self::InvalidCode => ErrorKind::InvalidCredentials,
            Self::FactorState(_) => ErrorKind::FailedPrecondition,
            Self::Overloaded => ErrorKind::Overloaded,
            Self::Unavailable(_) => ErrorKind::Unavailable,
            Self::MailNotConfigured | Self::Internal(_) => ErrorKind::Internal,
        }
    }

    fn validation(&self) -> Option<&ValidationErrors> {
        match self {
            Self::Invalid(errors) => Some(errors),
            _ => None,
        }
    }
}

impl ServiceError for ValidationErrors {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidInput
    }

    fn validation(&self) -> Option<&ValidationErrors> {
        Some(self)
    }
}

impl From<RepoError> for AuthError {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::Conflict { field } => Self::Conflict(field),
            RepoError::Unavailable(cause) => Self::Unavailable(cause),
            other @ (RepoError::NotFound | RepoError::LastActiveAdmin) => {
                Self::Internal(Box::new(other))
            }
        }
    }
}

impl From<RepoError> for UserError {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::NotFound => Self::NotFound,
            RepoError::Conflict { field } => Self::Conflict(field),
            RepoError::LastActiveAdmin => Self::LastAdmin,
            RepoError::Unavailable(cause) => Self::Unavailable(cause),
        }
    }
}

impl From<HashError> for AuthError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Overloaded => Self::Overloaded,
            other => Self::Internal(Box::new(other)),
        }
    }
}

impl From<HashError> for UserError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Overloaded => Self::Overloaded,
            other => Self::Internal(Box::new(other)),
        }
    }
}

impl From<ValidationErrors> for AuthError {
    fn from(e: ValidationErrors) -> Self {
        Self::Invalid(e)
    }
}

impl From<ValidationErrors> for UserError {
    fn from(e: ValidationErrors) -> Self {
        Self::Invalid(e)
    }
}

/// What [`auth::key_files`](crate::auth::key_files) reports about a key file or the data
/// folder. The texts name the file, so an operator knows what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The file or folder could not be read, created or written.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done: `read the key`, `look for the signing key`, `create`,
        /// `create the data folder`.
        action: &'static str,
        /// The file or folder.
        path: std::path::PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A private key file that group or others may read or write: anyone who reads it can
    /// forge tokens, anyone who writes it can swap it for their own.
    #[error(
        "the signing key {path} is accessible to group or others (mode {mode:03o}); \
         make it private with `chmod 600 {path}` and start again",
        path = path.display()
    )]
    Shared {
        /// The key file.
        path: std::path::PathBuf,
        /// Its permission bits (`0o644`).
        mode: u32,
    },
    /// A key file, even a public one, that group or others may write: anyone who writes it
    /// can swap in their own key and forge tokens.
    #[error(
        "the key file {path} can be written by group or others (mode {mode:03o}); \
         make it writable by its owner only with `chmod go-w {path}` and start again",
        path = path.display()
    )]
    Writable {
        /// The key file.
        path: std::path::PathBuf,
        /// Its permission bits (`0o666`).
        mode: u32,
    },
    /// A key file that belongs to another user than the one the service runs as: that user
    /// can change it, or its permissions, at any time.
    #[error(
        "the key file {path} belongs to uid {owner}, not to the service's user (uid {expected}); \
         give it to that user with `chown` and start again",
        path = path.display()
    )]
    NotOwned {
        /// The key file.
        path: std::path::PathBuf,
        /// The uid that owns it.
        owner: u32,
        /// The effective uid of the service.
        expected: u32,
    },
    /// The file holds no key of the expected kind.
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The key file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A new key could not be made (the random source failed).
    #[error("cannot generate a signing key")]
    Generate(#[source] ConfigError),
}

/// A configuration value outside its allowed range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting `{setting}`: {reason}")]
pub struct ConfigError {
    /// The setting, named as in the config struct.
    pub setting: &'static str,
    /// What is wrong and what is allowed.
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn new(setting: &'static str, reason: impl Into<String>) -> Self {
        Self {
            setting,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_round_up_to_whole_minutes() {
        assert_eq!(wait_in_minutes(Duration::from_secs(1)), "1 minute");
        assert_eq!(wait_in_minutes(Duration::from_secs(60)), "1 minute");
        assert_eq!(wait_in_minutes(Duration::from_secs(61)), "2 minutes");
        assert_eq!(wait_in_minutes(Duration::ZERO), "1 minute");
    }

    #[test]
    fn messages_are_safe_and_say_what_to_do() {
        let throttled = AuthError::Throttled {
            retry_after: Duration::from_secs(90),
        };
        assert_eq!(
            throttled.message(),
            "too many attempts, try again in 2 minutes"
        );
        assert_eq!(
            throttled.kind().retry_after(),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            UserError::Overloaded.kind().retry_after(),
            Some(OVERLOAD_RETRY)
        );
        assert_eq!(
            UserError::Conflict(UniqueField::Email).message(),
            "email is already taken"
        );
        let internal = UserError::Internal("db password is hunter2".into());
        assert_eq!(internal.message(), "internal error");
        assert!(internal.kind().is_server_fault());
        let unavailable = AuthError::Unavailable("connection refused".into());
        assert_eq!(unavailable.message(), "service temporarily unavailable");
        assert!(!AuthError::Unauthenticated.kind().is_server_fault());
    }

    #[test]
    fn shared_texts_are_written_once() {
        let missing = ValidationError::required("email");
        assert_eq!(missing.to_string(), "email: is required");
        assert_eq!(missing.code, "required");
        assert_eq!(missing.on("login").to_string(), "login: is required");
        assert_eq!(
            AuthError::Overloaded.to_string(),
            HashError::Overloaded.to_string()
        );
        assert_eq!(
            UserError::LastAdmin.to_string(),
            RepoError::LastActiveAdmin.to_string()
        );
        assert_eq!(
            AuthError::Throttled {
                retry_after: Duration::ZERO
            }
            .to_string(),
            "too many attempts, try again later"
        );
    }

    #[test]
    fn fields_list_validation_problems_or_the_taken_field() {
        let mut errors = ValidationErrors::new();
        errors.push(ValidationError::new(
            "username",
            "too_short",
            "is too short",
        ));
        errors.push(ValidationError::new("email", "invalid", "is not valid"));
        let invalid = UserError::Invalid(errors.clone());
        assert_eq!(invalid.kind(), ErrorKind::InvalidInput);
        assert_eq!(invalid.fields(), errors);
        assert_eq!(
            invalid.message(),
            "username: is too short; email: is not valid"
        );
        assert_eq!(errors.kind(), ErrorKind::InvalidInput);
        let taken: Vec<_> = AuthError::Conflict(UniqueField::Username)
            .fields()
            .into_iter()
            .map(|e| (e.field, e.code, e.message.into_owned()))
            .collect();
        assert_eq!(
            taken,
            [("username", "taken", "is already taken".to_owned())]
        );
        assert!(UserError::NotFound.fields().is_empty());
    }

    #[test]
    fn a_refused_link_is_invalid_input_on_the_token_field() {
        let e = AuthError::InvalidToken;
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        let fields: Vec<_> = e.fields().into_iter().map(|f| (f.field, f.code)).collect();
        assert_eq!(fields, [("token", "invalid_token")]);
        assert_eq!(e.message(), format!("token: {INVALID_TOKEN}"));
        assert_eq!(AuthError::EmailNotVerified.kind(), ErrorKind::Forbidden);
        assert_eq!(AuthError::MailNotConfigured.kind(), ErrorKind::Internal);
        assert_eq!(
            AuthError::MailNotConfigured.message(),
            UserError::MailNotConfigured.message()
        );
        assert_eq!(
            UserError::MailNotConfigured.message(),
            "mail is not configured"
        );
    }
}
