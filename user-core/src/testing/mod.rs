//! Test doubles (feature `testing`): in-memory fakes of the storage ports, a fast hasher, a
//! fixed clock and one that follows Tokio's, a scripted mailer, the mockall mocks, the
//! [`conformance`] suite of the storage ports and the [`mail_conformance`] one of the mail
//! ports, and [`observe`]: captured logs and metrics.

// Test support: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod conformance;
mod failing;
pub mod mail_conformance;
mod memory;
#[cfg(any(test, feature = "testing"))]
pub mod observe;
pub mod races;
pub mod services;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use argon2::Params;
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;

pub use crate::ports::{
    MockDeviceTokenStore, MockLoginFailureStore, MockMailOutbox, MockMailer, MockOneTimeTokenStore,
    MockPasswordHasher, MockSessionStore, MockUserRepository,
};
pub use failing::FailingUserRepository;
pub use memory::{
    InMemoryAuditLog, InMemoryDeviceTokenStore, InMemoryLoginFailureStore, InMemoryMailOutbox,
    InMemoryOneTimeTokenStore, InMemorySecondFactorStore, InMemorySessionStore,
    InMemoryUserRepository, in_memory, in_memory_failing_inserts_of,
};

use crate::Ports;
use crate::domain::{Password, PasswordHash};
use crate::error::HashError;
use crate::password::{HashCeiling, Scratch, hash_with, verify_any};
use crate::ports::{Clock, Mail, MailError, Mailer, PasswordHasher, Verification};

/// Real Argon2id (and bcrypt) with the cheapest parameters, inline: about 50 µs a hash.
#[derive(Debug, Clone)]
pub struct FastHasher {
    params: Params,
}

impl FastHasher {
    /// m = 8 KiB, t = 1, p = 1.
    pub fn new() -> Self {
        Self {
            params: Params::new(8, 1, 1, None).unwrap_or_default(),
        }
    }
}

impl Default for FastHasher {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait::async_trait]
impl PasswordHasher for FastHasher {
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError> {
        hash_with(
            &self.params,
            password.expose_secret(),
            &mut Scratch::default(),
        )
    }

    async fn verify(
        &self,
        candidate: &SecretString,
        hash: &PasswordHash,
    ) -> Result<Verification, HashError> {
        verify_any(
            candidate.expose_secret(),
            hash.as_str(),
            &self.params,
            &HashCeiling::default(),
            &mut Scratch::default(),
        )
    }
}

/// A clock that moves only when told.
#[derive(Debug)]
pub struct FixedClock(Mutex<OffsetDateTime>);

impl FixedClock {
    /// A clock stopped at `at`.
    pub fn new(at: OffsetDateTime) -> Self {
        Self(Mutex::new(at))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *now += by;
    }

    /// Sets the clock.
    pub fn set(&self, at: OffsetDateTime) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = at;
    }
}

impl Default for FixedClock {
    /// 2026-01-01 00:00 UTC.
    fn default() -> Self {
        Self::new(time::macros::datetime!(2026-01-01 00:00 UTC))
    }
}

impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A clock that follows Tokio's clock from `start`: under `tokio::time::pause` it moves
/// with `sleep` and the timers a test lets fire, so time-based code sees one consistent time.
#[derive(Debug)]
pub struct TokioClock {
    origin: tokio::time::Instant,
    start: OffsetDateTime,
}

impl TokioClock {
    /// Reads `start` now, and later `start` plus the Tokio time elapsed since.
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            origin: tokio::time::Instant::now(),
            start,
        }
    }
}

impl Default for TokioClock {
    /// Starts at 2026-01-01 00:00 UTC.
    fn default() -> Self {
        Self::new(time::macros::datetime!(2026-01-01 00:00 UTC))
    }
}

impl Clock for TokioClock {
    fn now(&self) -> OffsetDateTime {
        self.start + self.origin.elapsed()
    }
}

/// One call to a [`RecordingMailer`].
#[derive(Debug, Clone)]
pub struct SendAttempt {
    /// The mail it was asked to send.
    pub mail: Mail,
    /// When, on Tokio's clock.
    pub at: tokio::time::Instant,
    /// What it answered.
    pub result: Result<(), MailError>,
}

/// A [`Mailer`] that answers from a script, then with a fixed answer, and records every
/// call. It yields to the scheduler once per call, as a network call would. A subject with a
/// line break is [`MailError::Rejected`] before the script is asked, as the port promises.
#[derive(Debug)]
pub struct RecordingMailer {
    script: Mutex<VecDeque<Result<(), MailError>>>,
    otherwise: Result<(), MailError>,
    attempts: Mutex<Vec<SendAttempt>>,
    changed: tokio::sync::Notify,
}

impl RecordingMailer {
    /// Accepts every mail.
    pub fn accepting() -> Self {
        Self::scripted([], Ok(()))
    }

    /// Answers the calls with `script` in order, then every later call with `otherwise`.
    pub fn scripted(
        script: impl IntoIterator<Item = Result<(), MailError>>,
        otherwise: Result<(), MailError>,
    ) -> Self {
        Self {
            script: Mutex::new(script.into_iter().collect()),
            otherwise,
            attempts: Mutex::new(Vec::new()),
            changed: tokio::sync::Notify::new(),
        }
    }

    /// Every call so far, in order.
    pub fn attempts(&self) -> Vec<SendAttempt> {
        self.attempts.lock().unwrap().clone()
    }

    /// The ids of the mails it accepted, in order.
    pub fn accepted(&self) -> Vec<uuid::Uuid> {
        self.attempts
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.result.is_ok())
            .map(|a| a.mail.id)
            .collect()
    }

    /// Waits until it has answered `calls` calls.
    pub async fn wait_for_calls(&self, calls: usize) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.attempts.lock().unwrap().len() >= calls {
                return;
            }
            changed.await;
        }
    }
}

#[async_trait::async_trait]
impl Mailer for RecordingMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        tokio::task::yield_now().await;
        let result = if mail.subject.contains(['\r', '\n']) {
            Err(MailError::Rejected(
                "the subject has a line break".to_owned(),
            ))
        } else {
            self.script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or_else(|| self.otherwise.clone())
        };
        self.attempts.lock().unwrap().push(SendAttempt {
            mail: mail.clone(),
            at: tokio::time::Instant::now(),
            result: result.clone(),
        });
        self.changed.notify_waiters();
        result
    }
}

/// Ports on in-memory fakes, a [`FastHasher`] and the given clock.
pub fn memory_ports(clock: Arc<FixedClock>) -> Ports {
    Ports::new(in_memory(), Arc::new(FastHasher::new()), clock)
}

/// Both services over the given ports, with default policy and a fresh Ed25519 key, plus
/// helpers that register and sign in users.
pub struct Fixture {
    /// The auth service.
    pub auth: crate::auth::AuthService,
    /// The user service.
    pub users: crate::users::UserService,
    /// The ports the services use.
    pub ports: Ports,
    /// The clock they read.
    pub clock: Arc<FixedClock>,
}

impl Fixture {
    /// The password [`Fixture::register`] uses.
    pub const PASSWORD: &'static str = "correct horse battery staple";

    /// Services on in-memory fakes.
    pub fn in_memory() -> Self {
        let clock = Arc::new(FixedClock::default());
        Self::with_ports(memory_ports(Arc::clone(&clock)), clock)
    }

    /// Services on in-memory fakes with the given policy.
    pub fn in_memory_with(policy: crate::auth::AuthPolicy) -> Self {
        let clock = Arc::new(FixedClock::default());
        Self::with_ports_and_policy(memory_ports(Arc::clone(&clock)), clock, policy)
    }

    /// Services on the given ports; `clock` must be the one in `ports`.
    pub fn with_ports(ports: Ports, clock: Arc<FixedClock>) -> Self {
        Self::with_ports_and_policy(ports, clock, crate::auth::AuthPolicy::default())
    }

    /// Services on the given ports and policy; `clock` must be the one in `ports`.
    pub fn with_ports_and_policy(
        ports: Ports,
        clock: Arc<FixedClock>,
        policy: crate::auth::AuthPolicy,
    ) -> Self {
        let totp = Arc::new(crate::factor::TotpAuthenticator::new(
            crate::factor::FactorKey::generate().unwrap(),
            policy.second_factor.issuer.clone(),
        ));
        Self::with_second_factors(ports, clock, policy, totp)
    }

    /// Services on the given ports and policy, sealing second-factor secrets with `totp`
    /// (share one between fixtures that play instances of one deployment).
    pub fn with_second_factors(
        ports: Ports,
        clock: Arc<FixedClock>,
        policy: crate::auth::AuthPolicy,
        totp: Arc<crate::factor::TotpAuthenticator>,
    ) -> Self {
        let key = crate::auth::SigningKey::generate_ed25519().unwrap();
        Self {
            users: crate::users::UserService::new(ports.clone(), &policy)
                .with_second_factors(Arc::clone(&totp)),
            auth: crate::auth::AuthService::new(ports.clone(), policy, &key, vec![])
                .unwrap()
                .with_second_factors(totp),
            ports,
            clock,
        }
    }

    /// Enrols an authenticator app for the signed-in `actor` (password
    /// [`Fixture::PASSWORD`]) and returns its base32 secret and the ten recovery codes.
    pub async fn enrol(&self, actor: &crate::domain::Actor) -> (String, Vec<SecretString>) {
        let setup = self
            .users
            .start_totp_enrolment(actor, &SecretString::from(Self::PASSWORD))
            .await
            .unwrap();
        let secret = setup.secret.expose_secret().to_owned();
        let code = crate::factor::totp_code(&secret, self.clock.now());
        let codes = self
            .users
            .confirm_totp_enrolment(actor, &SecretString::from(code))
            .await
            .unwrap();
        (secret, codes)
    }

    /// Registers `name` with email `name@example.com` and password [`Fixture::PASSWORD`].
    pub async fn register(&self, name: &str) -> crate::domain::User {
        self.auth
            .register(
                crate::auth::RegisterUser {
                    username: name.to_owned(),
                    email: format!("{name}@example.com"),
                    password: SecretString::from(Self::PASSWORD),
                    display_name: None,
                },
                &crate::domain::ClientInfo::default(),
            )
            .await
            .unwrap()
    }

    /// Registers `name` as an admin.
    pub async fn register_admin(&self, name: &str) -> crate::domain::User {
        self.auth
            .create_user(
                crate::auth::RegisterUser {
                    username: name.to_owned(),
                    email: format!("{name}@example.com"),
                    password: SecretString::from(Self::PASSWORD),
                    display_name: None,
                },
                crate::domain::Role::Admin,
            )
            .await
            .unwrap()
    }

    /// Signs in with tokens.
    pub async fn login(
        &self,
        identifier: &str,
        password: &str,
    ) -> Result<crate::auth::TokenPair, crate::error::AuthError> {
        self.auth
            .login(
                crate::auth::Credentials::new(identifier, SecretString::from(password)),
                crate::domain::ClientInfo::default(),
            )
            .await
    }

    /// Signs in with [`Fixture::PASSWORD`] and authenticates the access token.
    pub async fn actor(&self, name: &str) -> crate::domain::Actor {
        let tokens = self.login(name, Self::PASSWORD).await.unwrap();
        self.auth
            .authenticate(tokens.access_token.expose_secret())
            .await
            .unwrap()
    }
}

#[cfg(test)]
mod tests {
    async fn memory_stores() -> super::conformance::Stores {
        super::conformance::Stores::new(super::in_memory(), ())
    }

    crate::conformance_tests!(memory_stores);
    crate::race_tests!(memory_stores);

    #[tokio::test]
    async fn the_fast_hasher_keeps_the_promises_of_the_port() {
        super::conformance::hasher_keeps_its_promises(&super::FastHasher::new()).await;
    }

    #[tokio::test]
    async fn the_recording_mailer_keeps_the_promises_of_the_port() {
        let mailer = super::RecordingMailer::accepting();
        super::mail_conformance::mailer_keeps_its_promises(&mailer, &mailer).await;
        let down = super::RecordingMailer::scripted(
            [],
            Err(crate::ports::MailError::Transient("relay down".to_owned())),
        );
        super::mail_conformance::unreachable_mailer_is_transient(&down).await;
    }

    #[tokio::test]
    async fn the_test_clocks_tell_utc_time() {
        use crate::ports::Clock as _;
        let fixed = super::FixedClock::default();
        super::conformance::clock_tells_utc(&fixed);
        let before = fixed.now();
        fixed.advance(std::time::Duration::from_secs(90));
        assert_eq!(fixed.now() - before, time::Duration::seconds(90));
        super::conformance::clock_tells_utc(&fixed);
        super::conformance::clock_tells_utc(&super::TokioClock::default());
    }

    #[tokio::test]
    async fn insert_many_writes_nothing_when_the_store_fails() {
        let name = crate::domain::Username::parse(super::conformance::SABOTEUR).unwrap();
        let storage = super::in_memory_failing_inserts_of(name);
        super::conformance::insert_many_writes_nothing_when_the_store_fails(
            super::conformance::Stores::new(storage, ()),
        )
        .await;
    }

    /// One in-memory database; "reopening" it hands out the same state, as a second
    /// handle on one database would see it.
    struct MemoryDatabase(crate::Storage);

    #[async_trait::async_trait]
    impl super::services::TestDatabase for MemoryDatabase {
        fn storage(&self) -> crate::Storage {
            self.0.clone()
        }

        async fn reopen(&self) -> crate::Storage {
            self.0.clone()
        }
    }

    async fn memory_database() -> MemoryDatabase {
        MemoryDatabase(super::in_memory())
    }

    crate::service_tests!(memory_database);
}
