//! Ports: the capabilities the services need from the outside world, one trait each. Adapters
//! implement them; each documented `# Errors` line is checked by
//! [`crate::testing::conformance`].
//!
//! Storage: [`UserRepository`], [`SessionStore`], [`LoginFailureStore`] (the guess budgets),
//! [`DeviceTokenStore`], [`OneTimeTokenStore`], [`MailOutbox`], [`AuditLog`] and
//! [`SecondFactorStore`], usually eight views of one
//! database, gathered in [`crate::Storage`]. The rest: [`PasswordHasher`], [`Clock`],
//! [`Mailer`] and [`MailComposer`].

mod audit;
mod clock;
mod composer;
mod devices;
mod factors;
mod hasher;
mod login_failures;
mod mailer;
mod outbox;
mod sessions;
mod tokens;
mod users;

pub use audit::AuditLog;
pub use clock::{Clock, SystemClock};
pub use composer::{ComposeError, MailComposer, Notice};
pub use devices::DeviceTokenStore;
pub use factors::SecondFactorStore;
pub use hasher::{PasswordHasher, Verification};
pub use login_failures::LoginFailureStore;
pub use mailer::{Mail, MailError, Mailer};
pub use outbox::{ClaimedMail, DeadLetter, MailOutbox};
pub use sessions::SessionStore;
pub use tokens::OneTimeTokenStore;
pub use users::{Identifier, Inserted, UserRepository};

#[cfg(any(test, feature = "testing"))]
pub use audit::MockAuditLog;
#[cfg(any(test, feature = "testing"))]
pub use composer::MockMailComposer;
#[cfg(any(test, feature = "testing"))]
pub use devices::MockDeviceTokenStore;
#[cfg(any(test, feature = "testing"))]
pub use factors::MockSecondFactorStore;
#[cfg(any(test, feature = "testing"))]
pub use hasher::MockPasswordHasher;
#[cfg(any(test, feature = "testing"))]
pub use login_failures::MockLoginFailureStore;
#[cfg(any(test, feature = "testing"))]
pub use mailer::MockMailer;
#[cfg(any(test, feature = "testing"))]
pub use outbox::MockMailOutbox;
#[cfg(any(test, feature = "testing"))]
pub use sessions::MockSessionStore;
#[cfg(any(test, feature = "testing"))]
pub use tokens::MockOneTimeTokenStore;
#[cfg(any(test, feature = "testing"))]
pub use users::MockUserRepository;
