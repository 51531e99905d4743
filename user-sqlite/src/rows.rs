//! Row types. They never leave the crate: `TryFrom` turns each into a domain value and bad
//! data into an error.

use time::OffsetDateTime;
use user_core::domain::{
    AuditEvent, AuditKind, AuditOutcome, ChallengePurpose, ClientInfo, DisplayName, Email,
    PasswordHash, Role, Session, SessionKind, SignInChallenge, TokenHash, TotpFactor, User, UserId,
    UserStatus, Username,
};
use user_core::error::RepoError;
use uuid::Uuid;

/// A row that does not hold a valid domain value.
#[derive(Debug, thiserror::Error)]
#[error("corrupt {table} row: {reason}")]
pub(crate) struct CorruptRow {
    table: &'static str,
    reason: String,
}

pub(crate) fn corrupt(table: &'static str, reason: impl std::fmt::Display) -> RepoError {
    RepoError::unavailable(CorruptRow {
        table,
        reason: reason.to_string(),
    })
}

/// Nanoseconds since the epoch, as stored.
pub(crate) fn to_db(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

pub(crate) fn from_db(table: &'static str, nanos: i64) -> Result<OffsetDateTime, RepoError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos)).map_err(|e| corrupt(table, e))
}

pub(crate) fn uuid(table: &'static str, s: &str) -> Result<Uuid, RepoError> {
    Uuid::parse_str(s).map_err(|e| corrupt(table, e))
}

/// The columns of [`UserRow`], as a literal for `concat!`.
macro_rules! user_columns {
    () => {
        "id, username, email, display_name, role, status, email_verified_at, created_at, updated_at"
    };
}
pub(crate) use user_columns;

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: String,
    username: String,
    email: String,
    display_name: Option<String>,
    role: String,
    status: String,
    email_verified_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

/// A user row with the password hash, for login only.
#[derive(sqlx::FromRow)]
pub(crate) struct CredentialsRow {
    #[sqlx(flatten)]
    user: UserRow,
    password_hash: String,
}

impl TryFrom<CredentialsRow> for (User, PasswordHash) {
    type Error = RepoError;

    fn try_from(row: CredentialsRow) -> Result<Self, RepoError> {
        Ok((
            User::try_from(row.user)?,
            PasswordHash::new(row.password_hash),
        ))
    }
}

impl TryFrom<UserRow> for User {
    type Error = RepoError;

    fn try_from(row: UserRow) -> Result<Self, RepoError> {
        const T: &str = "users";
        Ok(User {
            id: UserId::from(uuid(T, &row.id)?),
            username: Username::parse(&row.username).map_err(|e| corrupt(T, e))?,
            email: Email::parse(&row.email).map_err(|e| corrupt(T, e))?,
            display_name: match row.display_name {
                Some(d) => DisplayName::parse(&d).map_err(|e| corrupt(T, e))?,
                None => None,
            },
            role: row.role.parse::<Role>().map_err(|e| corrupt(T, e))?,
            status: row
                .status
                .parse::<UserStatus>()
                .map_err(|e| corrupt(T, e))?,
            email_verified_at: row.email_verified_at.map(|t| from_db(T, t)).transpose()?,
            created_at: from_db(T, row.created_at)?,
            updated_at: from_db(T, row.updated_at)?,
        })
    }
}

/// The columns of [`SessionRow`], as a literal for `concat!`.
macro_rules! session_columns {
    () => {
        "id, user_id, kind, user_agent, ip, created_at, last_used_at, expires_at, revoked_at"
    };
}
pub(crate) use session_columns;

#[derive(sqlx::FromRow)]
pub(crate) struct SessionRow {
    id: String,
    user_id: String,
    kind: String,
    user_agent: Option<String>,
    ip: Option<String>,
    created_at: i64,
    last_used_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
}

impl TryFrom<SessionRow> for Session {
    type Error = RepoError;

    fn try_from(row: SessionRow) -> Result<Self, RepoError> {
        const T: &str = "sessions";
        Ok(Session {
            id: uuid(T, &row.id)?.into(),
            user_id: uuid(T, &row.user_id)?.into(),
            kind: SessionKind::from_name(&row.kind)
                .ok_or_else(|| corrupt(T, format!("unknown kind {:?}", row.kind)))?,
            client: ClientInfo {
                user_agent: row.user_agent,
                ip: row.ip,
            },
            created_at: from_db(T, row.created_at)?,
            last_used_at: from_db(T, row.last_used_at)?,
            expires_at: from_db(T, row.expires_at)?,
            revoked_at: row.revoked_at.map(|t| from_db(T, t)).transpose()?,
        })
    }
}

/// The columns of [`SessionUserRow`] for a query over `sessions s JOIN users u`, as a literal
/// for `concat!`: the session's, then the user's but its id (the session's `user_id`) and
/// with its times renamed.
macro_rules! session_user_columns {
    () => {
        "s.id, s.user_id, s.kind, s.user_agent, s.ip, s.created_at, s.last_used_at, \
         s.expires_at, s.revoked_at, u.username, u.email, u.display_name, u.role, u.status, \
         u.email_verified_at, u.created_at AS user_created_at, u.updated_at AS user_updated_at"
    };
}
pub(crate) use session_user_columns;

/// A session and its user, read in one query.
#[derive(sqlx::FromRow)]
pub(crate) struct SessionUserRow {
    #[sqlx(flatten)]
    session: SessionRow,
    username: String,
    email: String,
    display_name: Option<String>,
    role: String,
    status: String,
    email_verified_at: Option<i64>,
    user_created_at: i64,
    user_updated_at: i64,
}

impl TryFrom<SessionUserRow> for (Session, User) {
    type Error = RepoError;

    fn try_from(row: SessionUserRow) -> Result<Self, RepoError> {
        let user = UserRow {
            id: row.session.user_id.clone(),
            username: row.username,
            email: row.email,
            display_name: row.display_name,
            role: row.role,
            status: row.status,
            email_verified_at: row.email_verified_at,
            created_at: row.user_created_at,
            updated_at: row.user_updated_at,
        };
        Ok((Session::try_from(row.session)?, User::try_from(user)?))
    }
}

/// The columns of [`AuditRow`], as a literal for `concat!`.
macro_rules! audit_columns {
    () => {
        "id, at, kind, outcome, actor, subject, identifier, ip, user_agent, detail"
    };
}
pub(crate) use audit_columns;

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    id: String,
    at: i64,
    kind: String,
    outcome: String,
    actor: Option<String>,
    subject: Option<String>,
    identifier: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    detail: Option<String>,
}

impl TryFrom<AuditRow> for AuditEvent {
    type Error = RepoError;

    fn try_from(row: AuditRow) -> Result<Self, RepoError> {
        const T: &str = "audit_events";
        let user = |id: Option<String>| -> Result<Option<UserId>, RepoError> {
            id.map(|id| uuid(T, &id).map(UserId::from)).transpose()
        };
        Ok(AuditEvent {
            id: uuid(T, &row.id)?.into(),
            at: from_db(T, row.at)?,
            kind: row
                .kind
                .parse::<AuditKind>()
                .map_err(|_| corrupt(T, format!("unknown kind {:?}", row.kind)))?,
            outcome: row
                .outcome
                .parse::<AuditOutcome>()
                .map_err(|_| corrupt(T, format!("unknown outcome {:?}", row.outcome)))?,
            actor: user(row.actor)?,
            subject: user(row.subject)?,
            identifier: row.identifier,
            client: ClientInfo {
                user_agent: row.user_agent,
                ip: row.ip,
            },
            detail: row.detail,
        })
    }
}

/// A stored SHA-256, which must be 32 bytes.
pub(crate) fn token_hash(table: &'static str, bytes: &[u8]) -> Result<TokenHash, RepoError> {
    <[u8; 32]>::try_from(bytes)
        .map(TokenHash::from_bytes)
        .map_err(|_| corrupt(table, format!("a hash of {} bytes", bytes.len())))
}

/// The columns of [`FactorRow`], as a literal for `concat!`.
macro_rules! factor_columns {
    () => {
        "user_id, sealed_secret, created_at, confirmed_at, last_used_step"
    };
}
pub(crate) use factor_columns;

#[derive(sqlx::FromRow)]
pub(crate) struct FactorRow {
    user_id: String,
    sealed_secret: Vec<u8>,
    created_at: i64,
    confirmed_at: Option<i64>,
    last_used_step: Option<i64>,
}

impl TryFrom<FactorRow> for TotpFactor {
    type Error = RepoError;

    fn try_from(row: FactorRow) -> Result<Self, RepoError> {
        const T: &str = "totp_factors";
        Ok(TotpFactor {
            user_id: uuid(T, &row.user_id)?.into(),
            sealed_secret: row.sealed_secret,
            created_at: from_db(T, row.created_at)?,
            confirmed_at: row.confirmed_at.map(|t| from_db(T, t)).transpose()?,
            last_used_step: row.last_used_step,
        })
    }
}

/// The columns of [`ChallengeRow`], as a literal for `concat!`.
macro_rules! challenge_columns {
    () => {
        "user_id, purpose, device_hash, created_at, expires_at"
    };
}
pub(crate) use challenge_columns;

#[derive(sqlx::FromRow)]
pub(crate) struct ChallengeRow {
    user_id: String,
    purpose: String,
    device_hash: Option<Vec<u8>>,
    created_at: i64,
    expires_at: i64,
}

impl TryFrom<ChallengeRow> for SignInChallenge {
    type Error = RepoError;

    fn try_from(row: ChallengeRow) -> Result<Self, RepoError> {
        const T: &str = "sign_in_challenges";
        Ok(SignInChallenge {
            user_id: uuid(T, &row.user_id)?.into(),
            purpose: ChallengePurpose::from_name(&row.purpose)
                .ok_or_else(|| corrupt(T, format!("unknown purpose {:?}", row.purpose)))?,
            device: row.device_hash.map(|d| token_hash(T, &d)).transpose()?,
            created_at: from_db(T, row.created_at)?,
            expires_at: from_db(T, row.expires_at)?,
        })
    }
}
