//! The heart of user-management: domain values, ports, the security policy and the services.
//! No I/O adapter lives here: no database, HTTP or gRPC crate is a dependency.
//!
//! # Layout
//!
//! - [`domain`]: values that are valid once they exist ([`domain::Username`],
//!   [`domain::Email`], [`domain::Password`], ...), users and sessions.
//! - [`ports`]: the traits adapters implement, one per capability ([`ports::UserRepository`],
//!   [`ports::SessionStore`], [`ports::LoginFailureStore`], [`ports::DeviceTokenStore`],
//!   [`ports::OneTimeTokenStore`], [`ports::MailOutbox`], [`ports::PasswordHasher`],
//!   [`ports::Clock`], [`ports::Mailer`]); [`Storage`] gathers the six storage ports of one
//!   database.
//! - [`password`]: [`password::Argon2Hasher`], Argon2id with bounded concurrency that also
//!   verifies imported bcrypt hashes.
//! - [`auth`]: [`auth::AuthPolicy`], signing keys and [`auth::AuthService`] (register, login,
//!   refresh, logout, authenticate), and [`auth::bearer_token`], the one reader of
//!   `Authorization: Bearer` values. [`auth::key_files`] keeps the signing key in a file and
//!   reads previous keys for a rotation (the one module that touches the file system).
//! - [`users`]: [`users::UserService`] (profiles, password change, sessions, second-factor
//!   enrolment, admin).
//! - [`factor`]: second factors: the key that seals TOTP secrets, the policy, setup data.
//! - [`transfer`]: export and import of users with their hashes as JSON lines, and the
//!   idempotent, reporting insert every import uses.
//! - [`mail`]: [`mail::deliver_periodically`], the background worker that sends the mail
//!   queued in the [`ports::MailOutbox`], with retries and backoff.
//! - [`maintenance`]: [`maintenance::purge_periodically`], the background purge of ended
//!   sessions, old guess counts, expired device and one-time tokens, and old dead letters.
//! - [`metrics`]: the name and meaning of every metric the crates record.
//! - [`error`]: one error family per layer; [`error::ServiceError`] gives every service error
//!   its [`error::ErrorKind`], safe message and field problems, which each adapter maps once.
//! - `testing` (feature `testing`): in-memory fakes, a fast hasher, a fixed clock, mockall
//!   mocks and the conformance suite every storage adapter runs.
//!
//! # Wiring
//!
//! ```no_run
//! # async fn wire(storage: user_core::Storage) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use user_core::auth::{AuthPolicy, AuthService, SigningKey};
//! use user_core::password::{Argon2Hasher, HasherConfig};
//! use user_core::ports::SystemClock;
//! use user_core::users::UserService;
//!
//! // `storage`: for example user_sqlite::SqliteDatabase::storage()
//! let ports = user_core::Ports::new(
//!     storage,
//!     Arc::new(Argon2Hasher::new(HasherConfig::default())?),
//!     Arc::new(SystemClock),
//! );
//! let policy = AuthPolicy::default();
//! let key = SigningKey::generate_ed25519()?;
//! let users = UserService::new(ports.clone(), &policy);
//! let auth = AuthService::new(ports, policy, &key, vec![])?;
//! # Ok(()) }
//! ```

pub mod account;
mod audit;
pub mod auth;
pub mod domain;
pub mod error;
pub mod factor;
pub mod mail;
pub mod maintenance;
pub mod metrics;
pub mod password;
pub mod ports;
mod services;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod transfer;
pub mod users;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use services::{Services, ServicesBuilder};

use ports::{
    AuditLog, Clock, DeviceTokenStore, LoginFailureStore, MailOutbox, OneTimeTokenStore,
    PasswordHasher, SecondFactorStore, SessionStore, UserRepository,
};

/// A readiness probe, e.g. a database ping: each call answers `true` when the service can
/// do its work. Adapters report it (`user_http`'s `/readyz`, `user_grpc`'s health service);
/// storage adapters provide one (`Arc::new(user_sqlite::SqliteDatabase::readiness())`).
pub type Readiness = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// The storage ports, usually eight views of one database (for example
/// `user_sqlite::SqliteDatabase::storage()`).
#[derive(Clone)]
pub struct Storage {
    /// Users and their password hashes.
    pub users: Arc<dyn UserRepository>,
    /// Sessions and their secrets.
    pub sessions: Arc<dyn SessionStore>,
    /// The guess budgets (failed sign-ins per account, device or identifier).
    pub login_failures: Arc<dyn LoginFailureStore>,
    /// Device tokens.
    pub devices: Arc<dyn DeviceTokenStore>,
    /// One-time tokens (email verification, password reset); issuing one queues its mail in
    /// [`Storage::outbox`] in the same transaction.
    pub tokens: Arc<dyn OneTimeTokenStore>,
    /// The durable queue of outgoing mail.
    pub outbox: Arc<dyn MailOutbox>,
    /// The audit log.
    pub audit: Arc<dyn AuditLog>,
    /// Second factors, recovery codes, trusted browsers and sign-in challenges.
    pub factors: Arc<dyn SecondFactorStore>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage").finish_non_exhaustive()
    }
}

/// The ports the services are built from, shared by [`auth::AuthService`] and
/// [`users::UserService`].
#[derive(Clone)]
pub struct Ports {
    /// User storage.
    pub users: Arc<dyn UserRepository>,
    /// Session storage.
    pub sessions: Arc<dyn SessionStore>,
    /// The guess budgets.
    pub login_failures: Arc<dyn LoginFailureStore>,
    /// Device tokens.
    pub devices: Arc<dyn DeviceTokenStore>,
    /// One-time tokens.
    pub tokens: Arc<dyn OneTimeTokenStore>,
    /// The mail outbox.
    pub outbox: Arc<dyn MailOutbox>,
    /// The audit log.
    pub audit: Arc<dyn AuditLog>,
    /// Second factors.
    pub factors: Arc<dyn SecondFactorStore>,
    /// Password hashing.
    pub hasher: Arc<dyn PasswordHasher>,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

impl Ports {
    /// The storage ports with a hasher and a clock.
    pub fn new(storage: Storage, hasher: Arc<dyn PasswordHasher>, clock: Arc<dyn Clock>) -> Self {
        let Storage {
            users,
            sessions,
            login_failures,
            devices,
            tokens,
            outbox,
            audit,
            factors,
        } = storage;
        Self {
            users,
            sessions,
            login_failures,
            devices,
            tokens,
            outbox,
            audit,
            factors,
            hasher,
            clock,
        }
    }
}

impl std::fmt::Debug for Ports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ports").finish_non_exhaustive()
    }
}
