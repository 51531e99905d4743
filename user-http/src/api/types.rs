//! Request and response bodies of the JSON API, with their OpenAPI schemas.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use user_core::auth::{Challenge, SecondStep, TokenPair};
use user_core::domain::{AuditEvent, ChallengePurpose, Role, Session, SessionId, User, UserStatus};
use user_core::error::{ValidationError, ValidationErrors};
use user_core::factor::{FactorStatus, TotpSetup};
use user_core::users::PersonalData;
use utoipa::ToSchema;

use super::schema;

/// A role on the wire.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RoleName {
    /// An ordinary user.
    User,
    /// An administrator.
    Admin,
}

impl From<Role> for RoleName {
    fn from(r: Role) -> Self {
        match r {
            Role::User => Self::User,
            Role::Admin => Self::Admin,
        }
    }
}

impl From<RoleName> for Role {
    fn from(r: RoleName) -> Self {
        match r {
            RoleName::User => Self::User,
            RoleName::Admin => Self::Admin,
        }
    }
}

/// A status on the wire.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StatusName {
    /// May sign in.
    Active,
    /// May not sign in.
    Disabled,
}

impl From<UserStatus> for StatusName {
    fn from(s: UserStatus) -> Self {
        match s {
            UserStatus::Active => Self::Active,
            UserStatus::Disabled => Self::Disabled,
        }
    }
}

impl From<StatusName> for UserStatus {
    fn from(s: StatusName) -> Self {
        match s {
            StatusName::Active => Self::Active,
            StatusName::Disabled => Self::Disabled,
        }
    }
}

/// A user account.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserBody {
    /// Stable id (UUID).
    #[schema(schema_with = schema::uuid)]
    pub id: String,
    /// Lowercase username.
    #[schema(schema_with = schema::username)]
    pub username: String,
    /// Lowercase email.
    #[schema(schema_with = schema::email)]
    pub email: String,
    /// Optional name to show.
    #[schema(schema_with = schema::display_name)]
    pub display_name: Option<String>,
    /// Role.
    pub role: RoleName,
    /// Status.
    pub status: StatusName,
    /// Whether the email address was verified.
    pub email_verified: bool,
    /// When the current email address was verified (RFC 3339), or `null` while it is not.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub email_verified_at: Option<OffsetDateTime>,
    /// Creation time (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Last change (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl From<User> for UserBody {
    fn from(u: User) -> Self {
        Self {
            id: u.id.to_string(),
            username: u.username.to_string(),
            email: u.email.to_string(),
            display_name: u.display_name.map(|d| d.to_string()),
            role: u.role.into(),
            status: u.status.into(),
            email_verified: u.email_verified_at.is_some(),
            email_verified_at: u.email_verified_at,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// A registration.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    /// The username.
    #[schema(schema_with = schema::username)]
    pub username: String,
    /// The email address.
    #[schema(schema_with = schema::email)]
    pub email: String,
    /// The password.
    #[schema(schema_with = schema::new_password)]
    pub password: SecretString,
    /// Optional name to show.
    #[schema(schema_with = schema::display_name)]
    #[serde(default)]
    pub display_name: Option<String>,
}

/// Credentials.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    /// Username or email.
    pub identifier: String,
    /// Password.
    #[schema(schema_with = schema::password)]
    pub password: SecretString,
    /// The `device_token` of an earlier sign-in by this client, if it kept one.
    #[schema(schema_with = schema::token_or_null)]
    #[serde(default)]
    pub device_token: Option<SecretString>,
}

/// A refresh token to exchange.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    /// The refresh token from the last login or refresh.
    #[schema(schema_with = schema::token)]
    pub refresh_token: SecretString,
}

/// Tokens for an API client. No `Debug`: it holds secrets.
#[derive(Serialize, ToSchema)]
pub struct TokensBody {
    /// JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Always `Bearer`.
    #[schema(schema_with = schema::token_type)]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Single-use token for `POST /api/v1/auth/refresh`.
    pub refresh_token: String,
    /// After a sign-in: this client's device token for the account; keep it and send it with
    /// the next sign-in. Absent after a refresh.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
    /// The signed-in user.
    pub user: UserBody,
}

impl From<TokenPair> for TokensBody {
    fn from(t: TokenPair) -> Self {
        use secrecy::ExposeSecret as _;
        Self {
            access_token: t.access_token.expose_secret().to_owned(),
            token_type: "Bearer",
            expires_in: t.expires_in.as_secs(),
            refresh_token: t.refresh_token.expose_secret().to_owned(),
            device_token: t.device_token.map(|d| d.expose_secret().to_owned()),
            user: t.user.into(),
        }
    }
}

/// A profile edit: absent fields stay unchanged; an empty `display_name` removes it.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProfileBody {
    /// New username.
    #[schema(schema_with = schema::username_or_null)]
    pub username: Option<String>,
    /// New email (clears its verification).
    #[schema(schema_with = schema::email_or_null)]
    pub email: Option<String>,
    /// New display name; empty to remove.
    #[schema(schema_with = schema::display_name)]
    pub display_name: Option<String>,
}

impl From<UpdateProfileBody> for user_core::users::UpdateProfile {
    fn from(b: UpdateProfileBody) -> Self {
        Self {
            username: b.username,
            email: b.email,
            display_name: b.display_name,
        }
    }
}

/// A password change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordBody {
    /// The password in use now.
    #[schema(schema_with = schema::password)]
    pub current_password: SecretString,
    /// The new password.
    #[schema(schema_with = schema::new_password)]
    pub new_password: SecretString,
}

/// A confirmation by password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    /// The account's password.
    #[schema(schema_with = schema::password)]
    pub password: SecretString,
}

/// How many sessions ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionsEnded {
    /// Count.
    pub sessions_ended: u64,
}

/// A signed-in device or client.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionBody {
    /// Session id.
    #[schema(schema_with = schema::uuid)]
    pub id: String,
    /// `browser` or `token`.
    #[schema(schema_with = schema::session_kind)]
    pub kind: &'static str,
    /// The client's user agent, if known.
    pub user_agent: Option<String>,
    /// The client's address, if known.
    pub ip: Option<String>,
    /// Sign-in time.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Last sign-in or refresh.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub last_used_at: OffsetDateTime,
    /// When it ends on its own.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    /// Whether this is the session making the request.
    pub current: bool,
}

impl SessionBody {
    pub(crate) fn new(s: Session, current: SessionId) -> Self {
        Self {
            id: s.id.to_string(),
            kind: s.kind.as_str(),
            user_agent: s.client.user_agent,
            ip: s.client.ip,
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            expires_at: s.expires_at,
            current: s.id == current,
        }
    }
}

/// One page of users.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsersPage {
    /// Users in username order.
    pub users: Vec<UserBody>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A new role.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    /// `user` or `admin`.
    pub role: RoleName,
}

/// A new status.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusBody {
    /// `active` or `disabled`.
    pub status: StatusName,
}

/// A request for a password-reset link.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetBody {
    /// The email address of the account.
    #[schema(schema_with = schema::email)]
    pub email: String,
}

/// A request for a new email-verification link, by address, from someone who cannot sign in
/// while the address is not confirmed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestVerificationBody {
    /// The email address of the account.
    #[schema(schema_with = schema::email)]
    pub email: String,
}

/// A new password, set with the token of a password-reset link.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordBody {
    /// The `token` of the link mailed to the user.
    #[schema(schema_with = schema::token)]
    pub token: SecretString,
    /// The new password.
    #[schema(schema_with = schema::new_password)]
    pub new_password: SecretString,
}

/// The token of an email-verification link.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyEmailBody {
    /// The `token` of the link mailed to the user.
    #[schema(schema_with = schema::token)]
    pub token: SecretString,
}

/// One audited security event. Never holds a password, a token or a hash.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditEventBody {
    /// Event id (a time-ordered UUID).
    #[schema(schema_with = schema::uuid)]
    pub id: String,
    /// When it happened (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(schema_with = schema::date_time)]
    pub at: OffsetDateTime,
    /// What happened.
    #[schema(schema_with = schema::audit_kind)]
    pub kind: &'static str,
    /// How it ended.
    #[schema(schema_with = schema::audit_outcome)]
    pub outcome: &'static str,
    /// Who did it, or `null` for an anonymous caller (a sign-in, a mailed link) or a tool.
    #[schema(schema_with = schema::uuid_or_null, required = true)]
    pub actor_id: Option<String>,
    /// Whose account it concerns, or `null` when no account is known.
    #[schema(schema_with = schema::uuid_or_null, required = true)]
    pub subject_id: Option<String>,
    /// The identifier typed at a sign-in, kept only when it names an account.
    #[schema(required = true)]
    pub identifier: Option<String>,
    /// The client's address, if known (removed when its owner's account is deleted).
    #[schema(required = true)]
    pub ip: Option<String>,
    /// The client's user agent, if known (removed when its owner's account is deleted).
    #[schema(required = true)]
    pub user_agent: Option<String>,
    /// A short detail: the new role, the fields changed, why a sign-in failed.
    #[schema(required = true)]
    pub detail: Option<String>,
}

impl From<AuditEvent> for AuditEventBody {
    fn from(e: AuditEvent) -> Self {
        Self {
            id: e.id.to_string(),
            at: e.at,
            kind: e.kind.as_str(),
            outcome: e.outcome.as_str(),
            actor_id: e.actor.map(|a| a.to_string()),
            subject_id: e.subject.map(|s| s.to_string()),
            identifier: e.identifier,
            ip: e.client.ip,
            user_agent: e.client.user_agent,
            detail: e.detail,
        }
    }
}

/// One page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditLogPage {
    /// Events, newest first.
    pub events: Vec<AuditEventBody>,
    /// Pass as `page_token` for the next page (same filters); `null` on the last page.
    #[schema(required = true)]
    pub next_page_token: Option<String>,
}

/// The caller's recent security events.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventsBody {
    /// Events concerning the caller's account, newest first. What an admin did shows without
    /// the admin's address and user agent.
    pub events: Vec<AuditEventBody>,
}

/// Everything stored about the caller, except secrets (no password hash, no token).
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonalDataBody {
    /// The profile.
    pub user: UserBody,
    /// The active sessions, as `GET /api/v1/me/sessions` lists them.
    pub sessions: Vec<SessionBody>,
    /// Every security event concerning the account, newest first; what an admin did shows
    /// without the admin's address and user agent.
    pub events: Vec<AuditEventBody>,
}

impl PersonalDataBody {
    /// The export of `data`, made from the session `current`.
    pub(crate) fn new(data: PersonalData, current: SessionId) -> Self {
        Self {
            user: data.user.into(),
            sessions: data
                .sessions
                .into_iter()
                .map(|s| SessionBody::new(s, current))
                .collect(),
            events: data.events.into_iter().map(AuditEventBody::from).collect(),
        }
    }
}

/// What the second step of a sign-in asks for.
#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SecondStepKind {
    /// A code from the authenticator app, or a recovery code:
    /// `POST /api/v1/auth/login/second-factor`.
    Code,
    /// The account must enrol an authenticator app first:
    /// `POST /api/v1/auth/login/enrolment`, then `POST /api/v1/auth/login/enrolment/confirm`.
    Enrolment,
}

impl From<ChallengePurpose> for SecondStepKind {
    fn from(p: ChallengePurpose) -> Self {
        match p {
            ChallengePurpose::SecondFactor => Self::Code,
            ChallengePurpose::Enrolment => Self::Enrolment,
        }
    }
}

/// The password was right; the sign-in needs a second step before any session exists.
// No `Debug`: it holds a secret.
#[derive(Serialize, ToSchema)]
pub struct SecondFactorChallenge {
    /// The single-use handle on this sign-in, to send back with the second step. It is not an
    /// access token and opens nothing else.
    #[schema(schema_with = schema::challenge_issued)]
    pub challenge: String,
    /// What the second step must bring.
    pub step: SecondStepKind,
    /// Seconds until the challenge stops working (the sign-in then starts over).
    pub expires_in: u64,
}

impl SecondFactorChallenge {
    /// The answer for `challenge`, which lives `ttl`.
    pub(crate) fn new(challenge: Challenge, ttl: std::time::Duration) -> Self {
        use secrecy::ExposeSecret as _;
        Self {
            challenge: challenge.token.expose_secret().to_owned(),
            step: challenge.purpose.into(),
            expires_in: ttl.as_secs(),
        }
    }
}

/// Every field among `fields` (as named on the wire) that is missing, `null` or empty, as
/// 422 problems (code `required`), all at once.
fn required_fields<const N: usize>(
    fields: [(&'static str, bool); N],
) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::new();
    for (field, present) in fields {
        if !present {
            errors.push(ValidationError::required(field));
        }
    }
    errors.into_result()
}

/// `value`, or an empty secret when absent (only after [`required_fields`] passed).
fn take(value: Option<SecretString>) -> SecretString {
    value.unwrap_or_else(|| SecretString::from(String::new()))
}

/// Whether a required secret was sent, non-empty.
fn given(value: Option<&SecretString>) -> bool {
    use secrecy::ExposeSecret as _;
    value.is_some_and(|v| !v.expose_secret().is_empty())
}

/// The second step of a sign-in: the challenge and a code. Missing fields are all reported
/// (422); a wrong code is a 401, never a 422.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecondStepBody {
    /// The `challenge` of the sign-in's 202 answer.
    #[schema(schema_with = schema::challenge, required = true)]
    #[serde(default)]
    pub challenge: Option<SecretString>,
    /// The six-digit code the authenticator app shows now, or one of the recovery codes
    /// (`xxxx-xxxx-xxxx-xxxx-xxxx-xxxx`; case, spaces and dashes do not matter). At the
    /// enrolment, a code from the new app.
    #[schema(schema_with = schema::code, required = true)]
    #[serde(default)]
    pub code: Option<SecretString>,
    /// The `device_token` this client sent at the password step, if any: it is renewed
    /// rather than replaced.
    #[schema(schema_with = schema::token_or_null)]
    #[serde(default)]
    pub device_token: Option<SecretString>,
    /// Trust this client: its next sign-ins with the `device_token` of the answer skip the
    /// second step (30 days by default). Default `false`.
    #[schema(schema_with = schema::trust_device)]
    #[serde(default)]
    pub trust_device: Option<bool>,
}

impl SecondStepBody {
    /// The core's second step, or every missing field.
    pub(crate) fn parse(self) -> Result<SecondStep, ValidationErrors> {
        required_fields([
            ("challenge", given(self.challenge.as_ref())),
            ("code", given(self.code.as_ref())),
        ])?;
        Ok(SecondStep {
            challenge: take(self.challenge),
            code: take(self.code),
            device_token: self.device_token,
            trust_device: self.trust_device.unwrap_or(false),
        })
    }
}

/// A sign-in challenge whose step is `enrolment`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChallengeBody {
    /// The `challenge` of the sign-in's 202 answer.
    #[schema(schema_with = schema::challenge, required = true)]
    #[serde(default)]
    pub challenge: Option<SecretString>,
}

impl ChallengeBody {
    /// The challenge, or its absence as a field problem.
    pub(crate) fn parse(self) -> Result<SecretString, ValidationErrors> {
        required_fields([("challenge", given(self.challenge.as_ref()))])?;
        Ok(take(self.challenge))
    }
}

/// What an authenticator app needs, shown once: type `secret` in, or show `otpauth_uri` as a
/// QR code.
// No `Debug`: it holds the secret.
#[derive(Serialize, ToSchema)]
pub struct TotpSetupBody {
    /// The shared secret, base32 without padding (TOTP: SHA-1, 6 digits, 30-second steps).
    #[schema(schema_with = schema::totp_secret)]
    pub secret: String,
    /// `otpauth://totp/Issuer:account?secret=...&issuer=...`, what a QR code carries.
    #[schema(schema_with = schema::otpauth_uri)]
    pub otpauth_uri: String,
    /// The issuer the app shows.
    pub issuer: String,
    /// The account name the app shows (the username).
    pub account: String,
}

impl From<TotpSetup> for TotpSetupBody {
    fn from(s: TotpSetup) -> Self {
        use secrecy::ExposeSecret as _;
        Self {
            secret: s.secret.expose_secret().to_owned(),
            otpauth_uri: s.uri.expose_secret().to_owned(),
            issuer: s.issuer,
            account: s.account,
        }
    }
}

fn plain_codes(codes: Vec<SecretString>) -> Vec<String> {
    use secrecy::ExposeSecret as _;
    codes.iter().map(|c| c.expose_secret().to_owned()).collect()
}

/// New recovery codes, shown once: each signs in once in place of a code from the app.
// No `Debug`: they are secrets.
#[derive(Serialize, ToSchema)]
pub struct RecoveryCodesBody {
    /// The codes; the earlier ones no longer work.
    #[schema(schema_with = schema::recovery_codes)]
    pub recovery_codes: Vec<String>,
}

impl From<Vec<SecretString>> for RecoveryCodesBody {
    fn from(codes: Vec<SecretString>) -> Self {
        Self {
            recovery_codes: plain_codes(codes),
        }
    }
}

/// Tokens after an enrolment at sign-in, with the new recovery codes, shown once.
// No `Debug`: it holds secrets.
#[derive(Serialize, ToSchema)]
pub struct EnrolledTokensBody {
    /// As the answer of a sign-in.
    #[serde(flatten)]
    pub tokens: TokensBody,
    /// The recovery codes of the new factor: keep them apart from the device.
    #[schema(schema_with = schema::recovery_codes)]
    pub recovery_codes: Vec<String>,
}

impl From<(TokenPair, Vec<SecretString>)> for EnrolledTokensBody {
    fn from((pair, codes): (TokenPair, Vec<SecretString>)) -> Self {
        Self {
            tokens: pair.into(),
            recovery_codes: plain_codes(codes),
        }
    }
}

/// The state of an account's second factor (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct SecondFactorStatusBody {
    /// Whether an authenticator app is enrolled: sign-ins ask for its codes.
    pub enabled: bool,
    /// When it was enrolled (RFC 3339), or `null` when there is none.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(schema_with = schema::enabled_at, required = true)]
    pub enabled_at: Option<OffsetDateTime>,
    /// Whether an enrolment was started and not confirmed yet.
    pub pending: bool,
    /// Unused recovery codes (0 without a factor).
    pub recovery_codes_left: u32,
    /// Whether the policy requires this account to have a factor (one without is sent to
    /// enrolment at its next sign-in).
    pub required: bool,
}

impl From<FactorStatus> for SecondFactorStatusBody {
    fn from(s: FactorStatus) -> Self {
        Self {
            enabled: s.enabled_at.is_some(),
            enabled_at: s.enabled_at,
            pending: s.pending,
            recovery_codes_left: s.recovery_codes_left,
            required: s.required,
        }
    }
}

/// A code from the newly enrolled app, which confirms the enrolment.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpCodeBody {
    /// The six-digit code the new app shows now.
    #[schema(schema_with = schema::code, required = true)]
    #[serde(default)]
    pub code: Option<SecretString>,
}

impl TotpCodeBody {
    /// The code, or its absence as a field problem.
    pub(crate) fn parse(self) -> Result<SecretString, ValidationErrors> {
        required_fields([("code", given(self.code.as_ref()))])?;
        Ok(take(self.code))
    }
}

/// The password and a current code, for an operation on a second factor that is on: turning it
/// off, or new recovery codes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordAndCodeBody {
    /// The account's password.
    #[schema(schema_with = schema::password, required = true)]
    #[serde(default)]
    pub password: Option<SecretString>,
    /// A code from the app, or a recovery code (which is spent).
    #[schema(schema_with = schema::code, required = true)]
    #[serde(default)]
    pub code: Option<SecretString>,
}

impl PasswordAndCodeBody {
    /// The password and the code, or every missing field.
    pub(crate) fn parse(self) -> Result<(SecretString, SecretString), ValidationErrors> {
        required_fields([
            ("password", self.password.is_some()),
            ("code", given(self.code.as_ref())),
        ])?;
        Ok((take(self.password), take(self.code)))
    }
}
