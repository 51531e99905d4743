//! Row types. They never leave the crate: `TryFrom` turns each into a domain value and bad
//! data into an error.

use sqlx::postgres::{PgTypeInfo, PgValueFormat, PgValueRef};
use sqlx::{Decode, Postgres, Type};
use time::OffsetDateTime;
use time::macros::datetime;
use user_core::domain::{
    AuditEvent, AuditKind, AuditOutcome, ChallengePurpose, ClientInfo, DisplayName, Email,
    PasswordHash, Role, Session, SessionKind, SignInChallenge, TokenHash, TotpFactor, User,
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

/// A `timestamptz` as read from the database.
///
/// sqlx's own decoding of `OffsetDateTime` panics on a value beyond the `time` crate's range
/// (after year 9999, or `infinity`), which PostgreSQL can store; this one fails instead, so a
/// bad row is an error like any other. Values are written as `OffsetDateTime` directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DbTime(pub(crate) OffsetDateTime);

/// Where PostgreSQL counts time from: its binary format is microseconds since then.
const PG_EPOCH: OffsetDateTime = datetime!(2000-01-01 00:00 UTC);

impl Type<Postgres> for DbTime {
    fn type_info() -> PgTypeInfo {
        <OffsetDateTime as Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <OffsetDateTime as Type<Postgres>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Postgres> for DbTime {
    fn decode(value: PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        match value.format() {
            PgValueFormat::Binary => {
                let micros = <i64 as Decode<Postgres>>::decode(value)?;
                PG_EPOCH
                    .checked_add(time::Duration::microseconds(micros))
                    .map(DbTime)
                    .ok_or_else(|| format!("timestamp out of range: {micros} µs after 2000").into())
            }
            // The text format is parsed, not added up: it cannot overflow.
            PgValueFormat::Text => <OffsetDateTime as Decode<Postgres>>::decode(value).map(DbTime),
        }
    }
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
    id: Uuid,
    username: String,
    email: String,
    display_name: Option<String>,
    role: String,
    status: String,
    email_verified_at: Option<DbTime>,
    created_at: DbTime,
    updated_at: DbTime,
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
            id: row.id.into(),
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
            email_verified_at: row.email_verified_at.map(|t| t.0),
            created_at: row.created_at.0,
            updated_at: row.updated_at.0,
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
    id: Uuid,
    user_id: Uuid,
    kind: String,
    user_agent: Option<String>,
    ip: Option<String>,
    created_at: DbTime,
    last_used_at: DbTime,
    expires_at: DbTime,
    revoked_at: Option<DbTime>,
}

impl TryFrom<SessionRow> for Session {
    type Error = RepoError;

    fn try_from(row: SessionRow) -> Result<Self, RepoError> {
        const T: &str = "sessions";
        Ok(Session {
            id: row.id.into(),
            user_id: row.user_id.into(),
            kind: SessionKind::from_name(&row.kind)
                .ok_or_else(|| corrupt(T, format!("unknown kind {:?}", row.kind)))?,
            client: ClientInfo {
                user_agent: row.user_agent,
                ip: row.ip,
            },
            created_at: row.created_at.0,
            last_used_at: row.last_used_at.0,
            expires_at: row.expires_at.0,
            revoked_at: row.revoked_at.map(|t| t.0),
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
    email_verified_at: Option<DbTime>,
    user_created_at: DbTime,
    user_updated_at: DbTime,
}

impl TryFrom<SessionUserRow> for (Session, User) {
    type Error = RepoError;

    fn try_from(row: SessionUserRow) -> Result<Self, RepoError> {
        let user = UserRow {
            id: row.session.user_id,
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
    id: Uuid,
    at: DbTime,
    kind: String,
    outcome: String,
    actor: Option<Uuid>,
    subject: Option<Uuid>,
    identifier: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    detail: Option<String>,
}

impl TryFrom<AuditRow> for AuditEvent {
    type Error = RepoError;

    fn try_from(row: AuditRow) -> Result<Self, RepoError> {
        const T: &str = "audit_events";
        Ok(AuditEvent {
            id: row.id.into(),
            at: row.at.0,
            kind: row
                .kind
                .parse::<AuditKind>()
                .map_err(|_| corrupt(T, format!("unknown kind {:?}", row.kind)))?,
            outcome: row
                .outcome
                .parse::<AuditOutcome>()
                .map_err(|_| corrupt(T, format!("unknown outcome {:?}", row.outcome)))?,
            actor: row.actor.map(Into::into),
            subject: row.subject.map(Into::into),
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
    user_id: Uuid,
    sealed_secret: Vec<u8>,
    created_at: DbTime,
    confirmed_at: Option<DbTime>,
    last_used_step: Option<i64>,
}

impl From<FactorRow> for TotpFactor {
    fn from(row: FactorRow) -> Self {
        TotpFactor {
            user_id: row.user_id.into(),
            sealed_secret: row.sealed_secret,
            created_at: row.created_at.0,
            confirmed_at: row.confirmed_at.map(|t| t.0),
            last_used_step: row.last_used_step,
        }
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
    user_id: Uuid,
    purpose: String,
    device_hash: Option<Vec<u8>>,
    created_at: DbTime,
    expires_at: DbTime,
}

impl TryFrom<ChallengeRow> for SignInChallenge {
    type Error = RepoError;

    fn try_from(row: ChallengeRow) -> Result<Self, RepoError> {
        const T: &str = "sign_in_challenges";
        Ok(SignInChallenge {
            user_id: row.user_id.into(),
            purpose: ChallengePurpose::from_name(&row.purpose)
                .ok_or_else(|| corrupt(T, format!("unknown purpose {:?}", row.purpose)))?,
            device: row.device_hash.map(|d| token_hash(T, &d)).transpose()?,
            created_at: row.created_at.0,
            expires_at: row.expires_at.0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestSchema;

    /// Only a `timestamptz` is read as a time: a number of the same width is refused as a
    /// mismatched column, not taken for microseconds since 2000.
    #[tokio::test]
    async fn only_a_timestamptz_is_read_as_a_time() {
        let Some(schema) = TestSchema::create().await else {
            return;
        };
        let db = schema.open().await;
        let read = |sql: &'static str| sqlx::query_scalar::<_, DbTime>(sql).fetch_one(db.pool());
        let day = read("SELECT TIMESTAMPTZ '2000-01-02 00:00:00+00'")
            .await
            .unwrap();
        assert_eq!(day, DbTime(datetime!(2000-01-02 00:00 UTC)));
        let err = read("SELECT 86400000000::int8").await.unwrap_err();
        assert!(matches!(err, sqlx::Error::ColumnDecode { .. }), "{err:?}");
        db.close().await;
    }
}
