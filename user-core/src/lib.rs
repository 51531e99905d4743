//! The heart of user-management: domain values, ports, the security policy and the services.
//! No I/O adapter lives here: no database, HTTP or gRPC crate is a dependency.
//!
//! # Layout
//!
//! - [`domain`]: values that are valid once they exist ([`domain::Username`],
//!   [`domain::Email`], [`domain::Password`], ...), users and sessions.
//! - [`ports`]: the traits adapters implement ([`ports::UserRepository`],
//!   [`ports::SessionStore`], [`ports::PasswordHasher`], [`ports::Clock`]).
//! - [`password`]: [`password::Argon2Hasher`], Argon2id with bounded concurrency that also
//!   verifies imported bcrypt hashes.
//! - [`auth`]: [`auth::AuthPolicy`], signing keys and [`auth::AuthService`] (register, login,
//!   refresh, logout, authenticate).
//! - [`users`]: [`users::UserService`] (profiles, password change, sessions, admin).
//! - [`error`]: one error family per layer.
//! - [`metrics`]: the name and meaning of every metric the crates record.
//! - `testing` (feature `testing`): in-memory fakes, a fast hasher, a fixed clock, mockall
//!   mocks and the conformance suite every storage adapter runs.
//!
//! # Wiring
//!
//! ```no_run
//! # async fn wire(users: std::sync::Arc<dyn user_core::ports::UserRepository>,
//! #               sessions: std::sync::Arc<dyn user_core::ports::SessionStore>)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use user_core::auth::{AuthPolicy, AuthService, SigningKey};
//! use user_core::password::{Argon2Hasher, HasherConfig};
//! use user_core::ports::SystemClock;
//! use user_core::users::UserService;
//!
//! let ports = user_core::Ports {
//!     users,    // for example user_sqlite::SqliteDatabase::users()
//!     sessions, // for example user_sqlite::SqliteDatabase::sessions()
//!     hasher: Arc::new(Argon2Hasher::new(HasherConfig::default())?),
//!     clock: Arc::new(SystemClock),
//! };
//! let policy = AuthPolicy::default();
//! let key = SigningKey::generate_ed25519()?;
//! let users = UserService::new(ports.clone(), &policy);
//! let auth = AuthService::new(ports, policy, &key, vec![])?;
//! # Ok(()) }
//! ```

pub mod auth;
pub mod domain;
pub mod error;
pub mod metrics;
pub mod password;
pub mod ports;
mod services;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod users;

use std::sync::Arc;

pub use services::{Services, ServicesBuilder};

use ports::{Clock, PasswordHasher, SessionStore, UserRepository};

/// The ports the services are built from, shared by [`auth::AuthService`] and
/// [`users::UserService`].
#[derive(Clone)]
pub struct Ports {
    /// User storage.
    pub users: Arc<dyn UserRepository>,
    /// Session storage and failed-login counters.
    pub sessions: Arc<dyn SessionStore>,
    /// Password hashing.
    pub hasher: Arc<dyn PasswordHasher>,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Ports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ports").finish_non_exhaustive()
    }
}
