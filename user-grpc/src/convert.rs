//! Conversions between protobuf messages and core values: wire to domain is `TryFrom` or a
//! parse function returning a field violation, domain to wire is `From`.

use secrecy::{ExposeSecret as _, SecretString};
use time::OffsetDateTime;
use user_core::domain::{
    AuditEvent, ChallengePurpose, Role, Session, SessionId, User, UserId, UserStatus,
};
use user_core::error::{ValidationError, ValidationErrors};
use user_core::factor::{FactorStatus, TotpSetup};

use crate::pb;

pub(crate) fn timestamp(t: OffsetDateTime) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.unix_timestamp(),
        // Always within 0..1e9, so the conversion cannot fail.
        nanos: i32::try_from(t.nanosecond()).unwrap_or_default(),
    }
}

impl From<Role> for pb::Role {
    fn from(role: Role) -> Self {
        match role {
            Role::User => Self::User,
            Role::Admin => Self::Admin,
        }
    }
}

impl From<UserStatus> for pb::Status {
    fn from(status: UserStatus) -> Self {
        match status {
            UserStatus::Active => Self::Active,
            UserStatus::Disabled => Self::Disabled,
        }
    }
}

impl From<User> for pb::User {
    fn from(u: User) -> Self {
        Self {
            id: u.id.to_string(),
            username: u.username.to_string(),
            email: u.email.to_string(),
            role: pb::Role::from(u.role).into(),
            status: pb::Status::from(u.status).into(),
            display_name: u.display_name.map(|d| d.to_string()).unwrap_or_default(),
            email_verified: u.email_verified_at.is_some(),
            created_at: Some(timestamp(u.created_at)),
            updated_at: Some(timestamp(u.updated_at)),
            email_verified_at: u.email_verified_at.map(timestamp),
        }
    }
}

impl From<User> for pb::UserResponse {
    fn from(u: User) -> Self {
        Self {
            user: Some(u.into()),
        }
    }
}

/// A session as the caller sees it; `current` marks the one their token belongs to.
pub(crate) fn session(s: Session, current: SessionId) -> pb::Session {
    pb::Session {
        id: s.id.to_string(),
        kind: s.kind.as_str().to_owned(),
        user_agent: s.client.user_agent.unwrap_or_default(),
        ip: s.client.ip.unwrap_or_default(),
        created_at: Some(timestamp(s.created_at)),
        last_used_at: Some(timestamp(s.last_used_at)),
        expires_at: Some(timestamp(s.expires_at)),
        current: s.id == current,
    }
}

/// An audit event as the wire shows it: absent values are empty strings.
impl From<AuditEvent> for pb::AuditEvent {
    fn from(e: AuditEvent) -> Self {
        let id = |u: Option<UserId>| u.map(|u| u.to_string()).unwrap_or_default();
        Self {
            id: e.id.to_string(),
            at: Some(timestamp(e.at)),
            kind: e.kind.as_str().to_owned(),
            outcome: e.outcome.as_str().to_owned(),
            actor_id: id(e.actor),
            subject_id: id(e.subject),
            identifier: e.identifier.unwrap_or_default(),
            ip: e.client.ip.unwrap_or_default(),
            user_agent: e.client.user_agent.unwrap_or_default(),
            detail: e.detail.unwrap_or_default(),
        }
    }
}

/// A second factor's state: never its secret.
impl From<FactorStatus> for pb::SecondFactorStatus {
    fn from(f: FactorStatus) -> Self {
        Self {
            enabled: f.enabled_at.is_some(),
            enabled_at: f.enabled_at.map(timestamp),
            pending: f.pending,
            recovery_codes_left: f.recovery_codes_left,
            required: f.required,
        }
    }
}

/// What an authenticator app needs: the one answer that carries a TOTP secret.
impl From<TotpSetup> for pb::TotpSetup {
    fn from(s: TotpSetup) -> Self {
        Self {
            secret: s.secret.expose_secret().to_owned(),
            otpauth_uri: s.uri.expose_secret().to_owned(),
            issuer: s.issuer,
            account: s.account,
        }
    }
}

/// `SecondFactorChallenge.step`: what the second step of a sign-in must bring.
pub(crate) fn step(purpose: ChallengePurpose) -> &'static str {
    match purpose {
        ChallengePurpose::SecondFactor => "code",
        ChallengePurpose::Enrolment => "enrolment",
    }
}

/// Recovery codes, to show once.
pub(crate) fn recovery_codes(codes: Vec<SecretString>) -> Vec<String> {
    codes.iter().map(|c| c.expose_secret().to_owned()).collect()
}

/// A required user id.
pub(crate) fn user_id(field: &'static str, raw: &str) -> Result<UserId, ValidationErrors> {
    if raw.trim().is_empty() {
        return Err(ValidationError::required(field).into());
    }
    raw.parse::<UserId>().map_err(|e| e.on(field).into())
}

/// A role filter or value: `ROLE_UNSPECIFIED` is `None`.
pub(crate) fn role(raw: i32) -> Result<Option<Role>, ValidationError> {
    match pb::Role::try_from(raw) {
        Ok(pb::Role::Unspecified) => Ok(None),
        Ok(pb::Role::User) => Ok(Some(Role::User)),
        Ok(pb::Role::Admin) => Ok(Some(Role::Admin)),
        Err(_) => Err(ValidationError::new(
            "role",
            "invalid",
            "must be ROLE_USER or ROLE_ADMIN",
        )),
    }
}

/// A status filter or value: `STATUS_UNSPECIFIED` is `None`.
pub(crate) fn status(raw: i32) -> Result<Option<UserStatus>, ValidationError> {
    match pb::Status::try_from(raw) {
        Ok(pb::Status::Unspecified) => Ok(None),
        Ok(pb::Status::Active) => Ok(Some(UserStatus::Active)),
        Ok(pb::Status::Disabled) => Ok(Some(UserStatus::Disabled)),
        Err(_) => Err(ValidationError::new(
            "status",
            "invalid",
            "must be STATUS_ACTIVE or STATUS_DISABLED",
        )),
    }
}

/// An optional text field: proto3 sends "" for "not set".
pub(crate) fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_map_both_ways() {
        assert_eq!(role(pb::Role::Admin as i32).unwrap(), Some(Role::Admin));
        assert_eq!(role(0).unwrap(), None);
        assert_eq!(role(99).unwrap_err().field, "role");
        assert_eq!(
            status(pb::Status::Disabled as i32).unwrap(),
            Some(UserStatus::Disabled)
        );
        assert_eq!(status(-1).unwrap_err().field, "status");
        assert_eq!(pb::Role::from(Role::User), pb::Role::User);
    }

    #[test]
    fn user_ids_are_required_and_checked() {
        let err = user_id("user_id", "").unwrap_err();
        assert_eq!(err.iter().next().unwrap().code, "required");
        let err = user_id("user_id", "nope").unwrap_err();
        assert_eq!(err.iter().next().unwrap().code, "invalid");
        let err = user_id("id", "nope").unwrap_err();
        let e = err.iter().next().unwrap();
        assert_eq!(
            (e.field, e.message.as_ref()),
            ("id", "is not a valid user id")
        );
        let id = UserId::new();
        assert_eq!(user_id("user_id", &id.to_string()).unwrap(), id);
    }

    #[test]
    fn audit_events_show_absent_values_as_empty_strings() {
        use user_core::domain::{AuditKind, ClientInfo};

        let at = time::macros::datetime!(2026-01-02 03:04:05 UTC);
        let subject = UserId::new();
        let event = AuditEvent::new(AuditKind::SignIn, at)
            .failed()
            .on(subject)
            .from_client(&ClientInfo::new(None, Some("192.0.2.7")))
            .detail("wrong_password");
        let wire = pb::AuditEvent::from(event.clone());
        assert_eq!(wire.id, event.id.to_string());
        assert_eq!(wire.at, Some(timestamp(at)));
        assert_eq!(
            (wire.kind.as_str(), wire.outcome.as_str()),
            ("sign_in", "failure")
        );
        assert_eq!(
            (wire.actor_id.as_str(), wire.subject_id),
            ("", subject.to_string())
        );
        assert_eq!(
            (wire.ip.as_str(), wire.user_agent.as_str()),
            ("192.0.2.7", "")
        );
        assert_eq!(
            (wire.identifier.as_str(), wire.detail.as_str()),
            ("", "wrong_password")
        );
    }

    #[test]
    fn factor_states_and_steps() {
        let at = time::macros::datetime!(2026-01-02 03:04:05 UTC);
        let on = pb::SecondFactorStatus::from(FactorStatus {
            enabled_at: Some(at),
            pending: false,
            recovery_codes_left: 7,
            required: true,
        });
        assert!(on.enabled && on.required && !on.pending);
        assert_eq!(
            (on.enabled_at, on.recovery_codes_left),
            (Some(timestamp(at)), 7)
        );
        let off = pb::SecondFactorStatus::from(FactorStatus {
            enabled_at: None,
            pending: true,
            recovery_codes_left: 0,
            required: false,
        });
        assert!(!off.enabled && off.pending && off.enabled_at.is_none());
        assert_eq!(step(ChallengePurpose::SecondFactor), "code");
        assert_eq!(step(ChallengePurpose::Enrolment), "enrolment");
    }

    #[test]
    fn timestamps_keep_nanoseconds() {
        let t = time::macros::datetime!(2026-01-02 03:04:05.123456789 UTC);
        let ts = timestamp(t);
        assert_eq!((ts.seconds, ts.nanos), (t.unix_timestamp(), 123_456_789));
    }
}
