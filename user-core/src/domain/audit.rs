//! The audit log's records: who did what to whom, from where, and how it ended.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Actor, ClientInfo, UserId};
use crate::error::{ValidationError, ValidationErrors};

/// An audit event's id: a time-ordered UUID (v7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AuditEventId(Uuid);

impl AuditEventId {
    /// A new time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// The underlying UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for AuditEventId {
    fn default() -> Self {
        Self::new()
    }
}

impl From<Uuid> for AuditEventId {
    fn from(id: Uuid) -> Self {
        Self(id)
    }
}

impl fmt::Display for AuditEventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

macro_rules! audit_kinds {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// What happened. Stored and shown by [`AuditKind::as_str`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum AuditKind {
            $($(#[$doc])* $variant,)*
        }

        impl AuditKind {
            /// Every kind, in the order of the docs.
            pub const ALL: &'static [AuditKind] = &[$(AuditKind::$variant,)*];

            /// The stored and wire name, `snake_case`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(AuditKind::$variant => $name,)*
                }
            }
        }

        impl FromStr for AuditKind {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok(AuditKind::$variant),)*
                    _ => Err(ValidationError::new(
                        "kind",
                        "invalid",
                        "is not a known kind of audit event",
                    )),
                }
            }
        }
    };
}

audit_kinds! {
    /// An account was created: by its owner (actor = subject) or by an admin or a tool
    /// (no actor).
    Registered = "registered",
    /// A sign-in: success, or failure (wrong password, unknown identifier, disabled account,
    /// locked, unverified email).
    SignIn = "sign_in",
    /// Failed guesses locked an account's sign-in.
    LockoutStarted = "lockout_started",
    /// An admin lifted a lockout.
    Unlocked = "unlocked",
    /// A session ended by its owner.
    Logout = "logout",
    /// Every session of the owner ended by their request.
    LogoutEverywhere = "logout_everywhere",
    /// The owner ended one of their other sessions.
    SessionRevoked = "session_revoked",
    /// A refresh token was presented again after use: the session was ended.
    RefreshReuse = "refresh_reuse",
    /// A password change by the owner (failure: the current password was wrong).
    PasswordChanged = "password_changed",
    /// A password set through a reset link.
    PasswordReset = "password_reset",
    /// An admin had a reset link mailed to the user.
    PasswordResetSent = "password_reset_sent",
    /// The email address changed.
    EmailChanged = "email_changed",
    /// The email address was verified.
    EmailVerified = "email_verified",
    /// Username or display name changed (`detail` names the fields).
    ProfileUpdated = "profile_updated",
    /// An admin changed the role (`detail`: the new role).
    RoleChanged = "role_changed",
    /// An admin disabled the account.
    Disabled = "disabled",
    /// An admin enabled the account again.
    Enabled = "enabled",
    /// The account was deleted, by its owner or an admin (failure: wrong password).
    Deleted = "deleted",
    /// The owner downloaded their data.
    DataExported = "data_exported",
    /// An authenticator app was enrolled (failure: a wrong code at the confirmation).
    SecondFactorEnabled = "second_factor_enabled",
    /// The second factor was removed: by its owner (password and code), or reset by an admin.
    SecondFactorDisabled = "second_factor_disabled",
    /// The owner replaced their recovery codes.
    RecoveryCodesRegenerated = "recovery_codes_regenerated",
}

impl fmt::Display for AuditKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an audited attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditOutcome {
    /// It was done.
    Success,
    /// It was refused.
    Failure,
}

impl AuditOutcome {
    /// `success` or `failure`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
        }
    }
}

impl fmt::Display for AuditOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuditOutcome {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "success" => Ok(Self::Success),
            "failure" => Ok(Self::Failure),
            _ => Err(ValidationError::new(
                "outcome",
                "invalid",
                "must be success or failure",
            )),
        }
    }
}

/// One audited event. Never holds a password, a token or a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Id, time-ordered.
    pub id: AuditEventId,
    /// When it happened.
    pub at: OffsetDateTime,
    /// What happened.
    pub kind: AuditKind,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// Who did it: a signed-in user, or `None` for an anonymous caller (a sign-in, a reset
    /// link) or a tool.
    pub actor: Option<UserId>,
    /// Whose account it concerns, when known.
    pub subject: Option<UserId>,
    /// The identifier typed at a sign-in, kept only when it names an account (a stranger's
    /// typo may be a password).
    pub identifier: Option<String>,
    /// Where the request came from.
    pub client: ClientInfo,
    /// A short, non-secret detail: the new role, the fields changed, why a sign-in failed.
    pub detail: Option<String>,
}

impl AuditEvent {
    /// Longest identifier kept, in characters.
    pub const MAX_IDENTIFIER_LEN: usize = 254;
    /// Longest detail kept, in characters.
    pub const MAX_DETAIL_LEN: usize = 200;

    /// A successful event at `at`, with nobody named yet.
    pub fn new(kind: AuditKind, at: OffsetDateTime) -> Self {
        Self {
            id: AuditEventId::new(),
            at,
            kind,
            outcome: AuditOutcome::Success,
            actor: None,
            subject: None,
            identifier: None,
            client: ClientInfo::default(),
            detail: None,
        }
    }

    /// Done by `actor`, from the actor's client.
    #[must_use]
    pub fn by(mut self, actor: &Actor) -> Self {
        self.actor = Some(actor.user_id);
        self.client = actor.client.clone();
        self
    }

    /// Done by `user`, identified some other way than a session (a sign-in, a registration).
    #[must_use]
    pub fn by_user(mut self, user: UserId) -> Self {
        self.actor = Some(user);
        self
    }

    /// Done by `actor` on their own account, from the actor's client.
    #[must_use]
    pub fn by_self(self, actor: &Actor) -> Self {
        let subject = actor.user_id;
        self.by(actor).on(subject)
    }

    /// Concerning `subject`'s account.
    #[must_use]
    pub fn on(mut self, subject: UserId) -> Self {
        self.subject = Some(subject);
        self
    }

    /// From `client`.
    #[must_use]
    pub fn from_client(mut self, client: &ClientInfo) -> Self {
        self.client = client.clone();
        self
    }

    /// The identifier typed, clipped to [`AuditEvent::MAX_IDENTIFIER_LEN`].
    #[must_use]
    pub fn identifier(mut self, identifier: &str) -> Self {
        self.identifier = Some(identifier.chars().take(Self::MAX_IDENTIFIER_LEN).collect());
        self
    }

    /// A detail, clipped to [`AuditEvent::MAX_DETAIL_LEN`].
    #[must_use]
    pub fn detail(mut self, detail: impl AsRef<str>) -> Self {
        self.detail = Some(detail.as_ref().chars().take(Self::MAX_DETAIL_LEN).collect());
        self
    }

    /// Marks it refused.
    #[must_use]
    pub fn failed(mut self) -> Self {
        self.outcome = AuditOutcome::Failure;
        self
    }

    /// The event as `owner`, whose account it concerns, is shown it: what someone else did
    /// (an admin) keeps its time, kind and detail, without that person's address and user
    /// agent, which are theirs, not the owner's.
    #[must_use]
    pub fn owners_view(mut self, owner: UserId) -> Self {
        if self.actor.is_some_and(|actor| actor != owner) {
            self.client = ClientInfo::default();
        }
        self
    }

    /// Where a page that ends with this event continues.
    pub fn cursor(&self) -> AuditCursor {
        AuditCursor {
            at: self.at,
            id: self.id,
        }
    }
}

/// A position in the log, newest first: pages continue with the events strictly older than
/// it (by time, then id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditCursor {
    /// The time of the last event shown.
    pub at: OffsetDateTime,
    /// Its id, to order events of the same time.
    pub id: AuditEventId,
}

impl AuditCursor {
    /// The end of the times a page token may carry (exclusive).
    const LATEST: OffsetDateTime = time::macros::datetime!(2200-01-01 00:00 UTC);

    /// The opaque page token.
    pub fn to_token(&self) -> String {
        let mut bytes = Vec::with_capacity(32);
        bytes.extend_from_slice(&self.at.unix_timestamp_nanos().to_be_bytes());
        bytes.extend_from_slice(self.id.0.as_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Reads a page token made by [`AuditCursor::to_token`].
    ///
    /// # Errors
    /// `page_token` `invalid` for anything else.
    pub fn from_token(token: &str) -> Result<Self, ValidationError> {
        let invalid = || ValidationError::new("page_token", "invalid", "is not a valid page token");
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        let (nanos, id) = bytes.split_at_checked(16).ok_or_else(invalid)?;
        let nanos = i128::from_be_bytes(nanos.try_into().map_err(|_| invalid())?);
        let id = Uuid::from_slice(id).map_err(|_| invalid())?;
        let at = OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| invalid())?;
        // Every store can compare times in this range; a token from here never holds others.
        if !(OffsetDateTime::UNIX_EPOCH..Self::LATEST).contains(&at) {
            return Err(invalid());
        }
        Ok(Self {
            at,
            id: AuditEventId(id),
        })
    }
}

/// A page request for the audit log: newest first, keyset pagination, every filter optional.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only events concerning this account.
    pub subject: Option<UserId>,
    /// Only events done by this user.
    pub actor: Option<UserId>,
    /// Only events of this kind.
    pub kind: Option<AuditKind>,
    /// Only events with this outcome.
    pub outcome: Option<AuditOutcome>,
    /// Only events strictly older than this position.
    pub before: Option<AuditCursor>,
    /// Page size, 1 to [`AuditQuery::MAX_LIMIT`].
    pub limit: u32,
}

impl Default for AuditQuery {
    fn default() -> Self {
        Self {
            subject: None,
            actor: None,
            kind: None,
            outcome: None,
            before: None,
            limit: Self::DEFAULT_LIMIT,
        }
    }
}

/// The wire form of an [`AuditQuery`]: each filter as the client typed it.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter<'a> {
    /// A user id: events concerning that account.
    pub subject: Option<&'a str>,
    /// A user id: events done by that user.
    pub actor: Option<&'a str>,
    /// An [`AuditKind`] name.
    pub kind: Option<&'a str>,
    /// `success` or `failure`.
    pub outcome: Option<&'a str>,
    /// Page size; 0 or absent means the default.
    pub limit: Option<u32>,
    /// The token of the page to continue from.
    pub page_token: Option<&'a str>,
}

impl AuditQuery {
    /// Page size when none is asked for.
    pub const DEFAULT_LIMIT: u32 = 50;
    /// Largest page size.
    pub const MAX_LIMIT: u32 = 200;
    /// How many of a user's recent events the faces show when none is asked for.
    pub const RECENT_DEFAULT: u32 = 20;

    /// Builds a query from wire values, empty strings counting as absent.
    ///
    /// # Errors
    /// [`ValidationErrors`] naming every bad field: `subject`, `actor` (not a user id),
    /// `kind`, `outcome`, `page_size` (above 200), `page_token`.
    pub fn parse(filter: &AuditFilter<'_>) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let present = |v: Option<&str>| {
            v.map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let mut user = |field: &'static str, v: Option<&str>| {
            present(v).and_then(|v| {
                errors.collect(v.parse::<UserId>().map_err(|_| {
                    ValidationError::new(field, "invalid", "must be a user id (a UUID)")
                }))
            })
        };
        let subject = user("subject", filter.subject);
        let actor = user("actor", filter.actor);
        let kind = present(filter.kind).and_then(|k| errors.collect(k.parse()));
        let outcome = present(filter.outcome).and_then(|o| errors.collect(o.parse()));
        let limit = match filter.limit {
            None | Some(0) => Self::DEFAULT_LIMIT,
            Some(n) if n <= Self::MAX_LIMIT => n,
            Some(_) => {
                errors.push(ValidationError::new(
                    "page_size",
                    "out_of_range",
                    format!("must be between 1 and {}", Self::MAX_LIMIT),
                ));
                Self::DEFAULT_LIMIT
            }
        };
        let before =
            present(filter.page_token).and_then(|t| errors.collect(AuditCursor::from_token(&t)));
        errors.into_result()?;
        Ok(Self {
            subject,
            actor,
            kind,
            outcome,
            before,
            limit,
        })
    }

    /// The page size stores serve: `limit` within 1 to [`AuditQuery::MAX_LIMIT`].
    pub fn page_size(&self) -> u32 {
        self.limit.clamp(1, Self::MAX_LIMIT)
    }

    /// Whether `event` passes the filters (the cursor and limit aside).
    pub fn matches(&self, event: &AuditEvent) -> bool {
        self.subject.is_none_or(|s| event.subject == Some(s))
            && self.actor.is_none_or(|a| event.actor == Some(a))
            && self.kind.is_none_or(|k| event.kind == k)
            && self.outcome.is_none_or(|o| event.outcome == o)
            && self
                .before
                .is_none_or(|c| (event.at, event.id) < (c.at, c.id))
    }
}

/// One page of the audit log, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    /// The events.
    pub events: Vec<AuditEvent>,
    /// Where the next page starts: set when more events match.
    pub next: Option<AuditCursor>,
}

impl AuditPage {
    /// Cuts a newest-first list of up to `limit + 1` matching events to a page: the extra one
    /// only says there is a next page.
    pub fn from_overfetch(mut events: Vec<AuditEvent>, limit: u32) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let next = if events.len() > limit {
            events.truncate(limit);
            events.last().map(AuditEvent::cursor)
        } else {
            None
        };
        Self { events, next }
    }

    /// The opaque token that asks for the next page, if any.
    pub fn next_page_token(&self) -> Option<String> {
        self.next.as_ref().map(AuditCursor::to_token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn kinds_round_trip_by_name() {
        for kind in AuditKind::ALL {
            assert_eq!(kind.as_str().parse::<AuditKind>().unwrap(), *kind);
        }
        assert_eq!("signin".parse::<AuditKind>().unwrap_err().field, "kind");
        assert_eq!(
            "failure".parse::<AuditOutcome>().unwrap(),
            AuditOutcome::Failure
        );
        assert_eq!(
            "failed".parse::<AuditOutcome>().unwrap_err().field,
            "outcome"
        );
    }

    #[test]
    fn ids_kinds_and_outcomes_show_as_they_are_stored() {
        let uuid = Uuid::now_v7();
        let id = AuditEventId::from(uuid);
        assert_eq!(id.as_uuid(), uuid);
        assert_eq!(id.to_string(), uuid.hyphenated().to_string());
        for kind in AuditKind::ALL {
            assert!(!kind.as_str().is_empty());
            assert_eq!(kind.to_string(), kind.as_str());
        }
        for (outcome, name) in [
            (AuditOutcome::Success, "success"),
            (AuditOutcome::Failure, "failure"),
        ] {
            assert_eq!(outcome.as_str(), name);
            assert_eq!(outcome.to_string(), name);
            assert_eq!(name.parse::<AuditOutcome>().unwrap(), outcome);
        }
    }

    #[test]
    fn the_largest_page_is_allowed_and_one_more_is_not() {
        let largest = AuditQuery::parse(&AuditFilter {
            limit: Some(AuditQuery::MAX_LIMIT),
            ..AuditFilter::default()
        })
        .unwrap();
        assert_eq!(largest.limit, AuditQuery::MAX_LIMIT);
        let err = AuditQuery::parse(&AuditFilter {
            limit: Some(AuditQuery::MAX_LIMIT + 1),
            ..AuditFilter::default()
        })
        .unwrap_err();
        assert_eq!(
            err.iter().map(|e| e.field).collect::<Vec<_>>(),
            ["page_size"]
        );
    }

    #[test]
    fn a_page_with_more_after_it_gives_the_token_of_its_last_event() {
        let at = datetime!(2026-01-02 03:04:05 UTC);
        let events: Vec<_> = (0..3i64)
            .map(|i| AuditEvent::new(AuditKind::SignIn, at - time::Duration::seconds(i)))
            .collect();
        let page = AuditPage::from_overfetch(events.clone(), 2);
        assert_eq!(page.events, events[..2]);
        let token = page.next_page_token().unwrap();
        assert_eq!(AuditCursor::from_token(&token).unwrap(), events[1].cursor());
        let last = AuditPage::from_overfetch(events[..2].to_vec(), 2);
        assert_eq!(last.next_page_token(), None);
    }

    #[test]
    fn page_tokens_round_trip_and_junk_is_refused() {
        let event = AuditEvent::new(AuditKind::SignIn, datetime!(2026-01-02 03:04:05.123456 UTC));
        let token = event.cursor().to_token();
        let parsed = AuditQuery::parse(&AuditFilter {
            page_token: Some(&token),
            ..AuditFilter::default()
        })
        .unwrap();
        assert_eq!(parsed.before, Some(event.cursor()));
        let far = |at: OffsetDateTime| {
            let mut bytes = at.unix_timestamp_nanos().to_be_bytes().to_vec();
            bytes.extend_from_slice(Uuid::nil().as_bytes());
            URL_SAFE_NO_PAD.encode(bytes)
        };
        let before_1970 = far(datetime!(1969-12-31 23:59:59 UTC));
        let after_2200 = far(datetime!(2200-01-01 00:00 UTC));
        for junk in [
            "%%%",
            "AAAA",
            &URL_SAFE_NO_PAD.encode([0u8; 31]),
            &before_1970,
            &after_2200,
        ] {
            assert_eq!(
                AuditCursor::from_token(junk).unwrap_err().field,
                "page_token",
                "{junk}"
            );
        }
    }

    #[test]
    fn every_bad_filter_is_named() {
        let err = AuditQuery::parse(&AuditFilter {
            subject: Some("nobody"),
            actor: Some("x"),
            kind: Some("nap"),
            outcome: Some("maybe"),
            limit: Some(201),
            page_token: Some("!"),
        })
        .unwrap_err();
        let fields: Vec<_> = err.iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "subject",
                "actor",
                "kind",
                "outcome",
                "page_size",
                "page_token"
            ]
        );
        let blank = AuditQuery::parse(&AuditFilter {
            subject: Some(" "),
            kind: Some(""),
            limit: Some(0),
            ..AuditFilter::default()
        })
        .unwrap();
        assert_eq!(blank, AuditQuery::default());
    }

    #[test]
    fn the_owner_sees_what_others_did_without_their_address() {
        let (owner, admin) = (UserId::new(), UserId::new());
        let client = ClientInfo::new(Some("agent"), Some("192.0.2.1"));
        let at = OffsetDateTime::UNIX_EPOCH;
        let by_admin = AuditEvent::new(AuditKind::Disabled, at)
            .on(owner)
            .by_user(admin)
            .from_client(&client);
        let seen = by_admin.clone().owners_view(owner);
        assert_eq!(seen.client, ClientInfo::default());
        assert_eq!((seen.actor, seen.kind), (Some(admin), AuditKind::Disabled));
        for own in [
            AuditEvent::new(AuditKind::SignIn, at)
                .on(owner)
                .by_user(owner),
            AuditEvent::new(AuditKind::SignIn, at).on(owner).failed(),
        ] {
            let own = own.from_client(&client);
            assert_eq!(
                own.clone().owners_view(owner),
                own,
                "the owner's own and anonymous attempts"
            );
        }
    }

    #[test]
    fn page_sizes_stay_within_the_documented_range() {
        for (asked, got) in [(0, 1), (1, 1), (50, 50), (200, 200), (10_000, 200)] {
            let query = AuditQuery {
                limit: asked,
                ..AuditQuery::default()
            };
            assert_eq!(query.page_size(), got, "{asked}");
        }
    }

    #[test]
    fn identifier_and_detail_are_clipped() {
        let event = AuditEvent::new(AuditKind::SignIn, OffsetDateTime::UNIX_EPOCH)
            .identifier(&"a".repeat(1000))
            .detail("d".repeat(1000));
        assert_eq!(
            event.identifier.unwrap().len(),
            AuditEvent::MAX_IDENTIFIER_LEN
        );
        assert_eq!(event.detail.unwrap().len(), AuditEvent::MAX_DETAIL_LEN);
    }

    #[test]
    fn an_overfetched_list_has_a_next_page_only_when_longer_than_the_limit() {
        let at = datetime!(2026-01-01 00:00 UTC);
        let events: Vec<_> = (0..3)
            .map(|i| AuditEvent::new(AuditKind::Logout, at - time::Duration::seconds(i)))
            .collect();
        let page = AuditPage::from_overfetch(events.clone(), 2);
        assert_eq!(page.events, events[..2]);
        assert_eq!(page.next, Some(events[1].cursor()));
        let page = AuditPage::from_overfetch(events.clone(), 3);
        assert_eq!(page.events.len(), 3);
        assert!(page.next.is_none());
    }
}
