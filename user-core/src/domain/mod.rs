//! Domain values. A value that exists is valid: each has a private field and a `parse`
//! constructor that names every problem it finds.

mod audit;
mod email;
mod factor;
mod password;
mod proxies;
mod query;
mod session;
mod token;
mod user;
mod username;

pub use audit::{
    AuditCursor, AuditEvent, AuditEventId, AuditFilter, AuditKind, AuditOutcome, AuditPage,
    AuditQuery,
};
pub use email::Email;
pub use factor::{ChallengePurpose, RecoveryCode, SignInChallenge, TotpFactor};
pub use password::{Password, PasswordHash, PasswordPolicy};
pub use proxies::{ForwardedHeader, TrustedProxies};
pub use query::{UserPage, UserQuery};
pub use session::{
    Actor, ClientInfo, DeviceToken, LoginFailures, NewSession, Rotation, Session, SessionId,
    SessionKind, ThrottleKey, TokenHash,
};
pub use token::{OneTimeToken, TokenPurpose};
pub use user::{DisplayName, NewUser, ProfileChanges, Role, User, UserId, UserStatus};
pub use username::Username;
