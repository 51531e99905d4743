use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Role, UserId};
use crate::error::ValidationError;

/// A session's id. It appears in access tokens (`sid`); it is not a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(Uuid);

impl SessionId {
    /// A new time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// The underlying UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for SessionId {
    fn default() -> Self {
        Self::new()
    }
}

impl From<Uuid> for SessionId {
    fn from(id: Uuid) -> Self {
        Self(id)
    }
}

impl FromStr for SessionId {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s.trim())
            .map(Self)
            .map_err(|_| ValidationError::new("session_id", "invalid", "is not a valid session id"))
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// How the session's holder proves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionKind {
    /// A browser holding an opaque session cookie.
    Browser,
    /// An API or gRPC client holding a JWT access token and a rotating refresh token.
    Token,
}

impl SessionKind {
    /// The stable lowercase name used in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Browser => "browser",
            Self::Token => "token",
        }
    }

    /// Parses [`SessionKind::as_str`]'s output.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "browser" => Some(Self::Browser),
            "token" => Some(Self::Token),
            _ => None,
        }
    }
}

/// The SHA-256 of an opaque secret token (a session cookie or a refresh token). Only this is
/// stored; equality is constant-time.
#[derive(Clone, Copy, Eq)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// Hashes a presented token.
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// Rebuilds a stored hash.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw digest, for storage.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl PartialEq for TokenHash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl std::hash::Hash for TokenHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash([REDACTED])")
    }
}

/// The key of one guess budget: failed password checks are counted under it. Always a
/// SHA-256, so the store never holds what people typed into the login form.
///
/// Four kinds of budget exist: an existing account's ([`ThrottleKey::account`]), a device
/// token's ([`ThrottleKey::device`]), a signed-in session's for password re-checks
/// ([`ThrottleKey::session`]), and a typed identifier that names no account
/// ([`ThrottleKey::of`]). All but the last hash a `0xFF` tag byte first, which no UTF-8 text
/// contains, so nothing a person types can name another kind's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ThrottleKey([u8; 32]);

impl ThrottleKey {
    /// The key of a login identifier: trimmed and lowercased, then hashed.
    pub fn of(identifier: &str) -> Self {
        Self(Sha256::digest(identifier.trim().to_lowercase().as_bytes()).into())
    }

    /// The budget of an existing account, whichever identifier (username or email) named it.
    pub fn account(id: UserId) -> Self {
        let mut h = Sha256::new();
        h.update([0xFF, b'a']);
        h.update(id.as_uuid().as_bytes());
        Self(h.finalize().into())
    }

    /// The budget of one signed-in session, for re-checks of its user's password.
    pub fn session(id: SessionId) -> Self {
        let mut h = Sha256::new();
        h.update([0xFF, b's']);
        h.update(id.as_uuid().as_bytes());
        Self(h.finalize().into())
    }

    /// The budget of one device token (see [`DeviceToken`]).
    pub fn device(token: &TokenHash) -> Self {
        let mut h = Sha256::new();
        h.update([0xFF, b'd']);
        h.update(token.as_bytes());
        Self(h.finalize().into())
    }

    /// Rebuilds a stored key.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw digest, for storage.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// A device token: a random secret given to a client at a successful sign-in, bound to that
/// account (OWASP's "device cookie"). Its holder's later sign-ins to the account are counted
/// on the device's own guess budget, so a lock that strangers cause does not shut the owner
/// out. Only the SHA-256 of the secret is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceToken {
    /// The account it was issued for.
    pub user_id: UserId,
    /// When it was issued.
    pub created_at: OffsetDateTime,
    /// When it stops counting as known.
    pub expires_at: OffsetDateTime,
}

impl DeviceToken {
    /// Whether it vouches for a client of `user` at `now`.
    pub fn vouches_for(&self, user: UserId, now: OffsetDateTime) -> bool {
        self.user_id == user && now < self.expires_at
    }
}

/// Client details recorded with a session, so that a person can recognise their sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// The `User-Agent`, truncated to 256 characters.
    pub user_agent: Option<String>,
    /// The client's address as the adapter saw it.
    pub ip: Option<String>,
}

impl ClientInfo {
    /// The address rate limits count on: an IPv4 address as is, an IPv6 address by its /64
    /// network (one subscriber usually holds a whole /64), an IPv4-mapped IPv6 address as the
    /// IPv4 address. `None` when there is no address or it does not parse.
    pub fn rate_limit_key(&self) -> Option<IpAddr> {
        let ip: IpAddr = self.ip.as_deref()?.parse().ok()?;
        Some(match ip {
            IpAddr::V4(v4) => IpAddr::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
            },
        })
    }

    /// Builds client info, truncating over-long values.
    pub fn new(user_agent: Option<&str>, ip: Option<&str>) -> Self {
        let clip = |s: &str, n: usize| s.chars().filter(|c| !c.is_control()).take(n).collect();
        Self {
            user_agent: user_agent.map(|s| clip(s, 256)),
            ip: ip.map(|s| clip(s, 64)),
        }
    }
}

/// One signed-in device or client. Browser and token sessions are rows of the same table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Id, carried in access tokens as `sid`.
    pub id: SessionId,
    /// Whose session it is.
    pub user_id: UserId,
    /// Cookie or tokens.
    pub kind: SessionKind,
    /// The signed-in client.
    pub client: ClientInfo,
    /// When it was created (at login).
    pub created_at: OffsetDateTime,
    /// Last login or refresh.
    pub last_used_at: OffsetDateTime,
    /// When it ends on its own.
    pub expires_at: OffsetDateTime,
    /// When it was ended by logout, reuse detection or an admin.
    pub revoked_at: Option<OffsetDateTime>,
}

impl Session {
    /// Whether the session is neither revoked nor past its absolute lifetime at `now` (what
    /// the store means by active).
    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }

    /// Whether the session still authenticates at `now`: active, and used within
    /// `idle_timeout`.
    pub fn is_usable(&self, now: OffsetDateTime, idle_timeout: std::time::Duration) -> bool {
        self.is_active(now) && !self.is_idle(now, idle_timeout)
    }

    /// Whether the session went unused for longer than `idle_timeout` at `now`.
    pub fn is_idle(&self, now: OffsetDateTime, idle_timeout: std::time::Duration) -> bool {
        let idle = time::Duration::try_from(idle_timeout).unwrap_or(time::Duration::MAX);
        now >= self.last_used_at.saturating_add(idle)
    }
}

/// A session to create, with the hash of its first secret: the cookie for a browser, the
/// first refresh token for a token session.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The session row.
    pub session: Session,
    /// Hash of the cookie or of the first refresh token.
    pub secret_hash: TokenHash,
}

/// The outcome of presenting a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was current: it is now spent and the replacement is current.
    Rotated(Session),
    /// The token had already been rotated: the whole session was revoked.
    Reused(SessionId),
    /// The token's session is revoked or expired: nothing changed.
    Inactive(SessionId),
}

/// Consecutive failed logins for one identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginFailures {
    /// Failures since the last success (or since the count was forgotten).
    pub count: u32,
    /// When the last one happened.
    pub last_failed_at: OffsetDateTime,
}

/// The authenticated caller of a privileged operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The caller's user id.
    pub user_id: UserId,
    /// The caller's role when the session or token was checked.
    pub role: Role,
    /// The session the caller used.
    pub session_id: SessionId,
    /// Where this request came from, for the audit log: empty from
    /// [`AuthService::authenticate`](crate::auth::AuthService::authenticate); adapters add it
    /// with [`Actor::with_client`].
    pub client: ClientInfo,
}

impl Actor {
    /// The same caller, at `client`.
    #[must_use]
    pub fn with_client(mut self, client: ClientInfo) -> Self {
        self.client = client;
        self
    }

    /// Whether the actor is an admin.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The conversions the stores use: ids to and from UUIDs, kinds to and from their names.
    #[test]
    fn ids_and_kinds_round_trip_as_stored() {
        let uuid = Uuid::parse_str("0190a8b4-1c2d-7e3f-8a9b-0c1d2e3f4a5b").unwrap();
        let id = SessionId::from(uuid);
        assert_eq!(id.as_uuid(), uuid);
        assert_eq!(id.to_string(), uuid.to_string());
        assert_eq!(id.to_string().parse::<SessionId>().unwrap(), id);
        assert_ne!(SessionId::new(), SessionId::new());
        for (kind, name) in [
            (SessionKind::Browser, "browser"),
            (SessionKind::Token, "token"),
        ] {
            assert_eq!(kind.as_str(), name);
            assert_eq!(SessionKind::from_name(name), Some(kind));
        }
        assert_eq!(SessionKind::from_name("Browser"), None);
        assert_eq!(SessionKind::from_name(""), None);

        let key = ThrottleKey::of(" Ada@Example.com ");
        assert_eq!(key, ThrottleKey::of("ada@example.com"), "trimmed, any case");
        assert_eq!(ThrottleKey::from_bytes(*key.as_bytes()), key);
        let hash = TokenHash::of("a refresh token");
        assert_eq!(TokenHash::from_bytes(*hash.as_bytes()), hash);
        let user = crate::domain::UserId::from(uuid);
        let kinds = [
            key,
            ThrottleKey::account(user),
            ThrottleKey::session(id),
            ThrottleKey::device(&hash),
        ];
        for (i, a) in kinds.iter().enumerate() {
            for b in &kinds[i + 1..] {
                assert_ne!(a, b, "each kind of budget has keys of its own");
            }
        }
    }

    #[test]
    fn token_hashes_compare_by_digest() {
        assert_eq!(TokenHash::of("abc"), TokenHash::of("abc"));
        assert_ne!(TokenHash::of("abc"), TokenHash::of("abd"));
        assert_eq!(
            TokenHash::from_bytes(*TokenHash::of("x").as_bytes()),
            TokenHash::of("x")
        );
        assert_eq!(format!("{:?}", TokenHash::of("x")), "TokenHash([REDACTED])");
        assert_eq!(ThrottleKey::of(" Alice "), ThrottleKey::of("alice"));
    }

    #[test]
    fn budgets_of_accounts_devices_and_identifiers_never_meet() {
        let id = UserId::new();
        let account = ThrottleKey::account(id);
        assert_eq!(account, ThrottleKey::account(id));
        assert_ne!(account, ThrottleKey::account(UserId::new()));
        assert_ne!(account, ThrottleKey::of(&id.to_string()));
        let device = ThrottleKey::device(&TokenHash::of("d"));
        assert_ne!(device, ThrottleKey::of("d"));
        assert_ne!(device, ThrottleKey::device(&TokenHash::of("e")));
        let session = SessionId::from(id.as_uuid());
        assert_ne!(
            ThrottleKey::session(session),
            account,
            "same uuid, other kind"
        );
    }

    #[test]
    fn rate_limits_count_ipv6_by_its_64() {
        let key = |ip: &str| ClientInfo::new(None, Some(ip)).rate_limit_key();
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::2"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:10.0.0.1"), key("10.0.0.1"));
        assert_ne!(key("10.0.0.1"), key("10.0.0.2"));
        assert_eq!(key("not an address"), None);
        assert_eq!(ClientInfo::default().rate_limit_key(), None);
    }

    #[test]
    fn sessions_end_when_idle() {
        use time::macros::datetime;
        let t0 = datetime!(2026-01-01 12:00 UTC);
        let s = Session {
            id: SessionId::new(),
            user_id: UserId::new(),
            kind: SessionKind::Browser,
            client: ClientInfo::default(),
            created_at: t0,
            last_used_at: t0,
            expires_at: t0 + time::Duration::hours(12),
            revoked_at: None,
        };
        let idle = std::time::Duration::from_secs(1800);
        assert!(s.is_usable(t0 + time::Duration::minutes(29), idle));
        assert!(!s.is_usable(t0 + time::Duration::minutes(30), idle));
        let used = Session {
            last_used_at: t0 + time::Duration::hours(11),
            ..s.clone()
        };
        assert!(used.is_usable(t0 + time::Duration::minutes(11 * 60 + 29), idle));
        assert!(
            !used.is_usable(t0 + time::Duration::hours(12), idle),
            "absolute end"
        );
    }

    #[test]
    fn client_info_is_clipped() {
        let c = ClientInfo::new(Some(&"a".repeat(1000)), Some("1.2.3.4\n"));
        assert_eq!(c.user_agent.unwrap().len(), 256);
        assert_eq!(c.ip.unwrap(), "1.2.3.4");
    }
}
