//! Ports: the capabilities the services need from the outside world. Adapters implement them;
//! each documented `# Errors` line is checked by [`crate::testing::conformance`].

mod clock;
mod hasher;
mod sessions;
mod users;

pub use clock::{Clock, SystemClock};
pub use hasher::{PasswordHasher, Verification};
pub use sessions::SessionStore;
pub use users::{Identifier, UserRepository};

#[cfg(any(test, feature = "testing"))]
pub use hasher::MockPasswordHasher;
#[cfg(any(test, feature = "testing"))]
pub use sessions::MockSessionStore;
#[cfg(any(test, feature = "testing"))]
pub use users::MockUserRepository;
