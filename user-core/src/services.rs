//! [`Services`]: the three services from the storage ports with safe defaults, for the few lines
//! of wiring an embedding application writes.

use std::sync::Arc;

use crate::account::AccountService;
use crate::auth::{AuthPolicy, AuthService, SigningKey, VerifyingKey};
use crate::error::ConfigError;
use crate::factor::{FactorKey, TotpAuthenticator};
use crate::password::{Argon2Hasher, HasherConfig};
use crate::ports::{Clock, MailComposer, PasswordHasher, SystemClock};
use crate::users::UserService;
use crate::{Ports, Storage};

/// The core services, ready to hand to the adapters.
#[derive(Debug, Clone)]
pub struct Services {
    /// Registration, login, tokens.
    pub auth: Arc<AuthService>,
    /// Profiles and administration.
    pub users: Arc<UserService>,
    /// Password reset and email verification.
    pub account: Arc<AccountService>,
}

impl Services {
    /// Starts a builder on the storage ports (usually of one database).
    pub fn builder(storage: Storage) -> ServicesBuilder {
        ServicesBuilder {
            storage,
            hasher: None,
            clock: None,
            policy: AuthPolicy::default(),
            signing_key: None,
            previous_keys: Vec::new(),
            composer: None,
            factor_key: None,
        }
    }
}

/// Builds [`Services`] with safe defaults: Argon2id at OWASP parameters with bounded
/// concurrency, the system clock, [`AuthPolicy::default`], and a fresh Ed25519 signing key.
///
/// A fresh key means tokens do not survive a restart: pass a stored key with
/// [`ServicesBuilder::signing_key`] in production.
pub struct ServicesBuilder {
    storage: Storage,
    hasher: Option<Arc<dyn PasswordHasher>>,
    clock: Option<Arc<dyn Clock>>,
    policy: AuthPolicy,
    signing_key: Option<SigningKey>,
    previous_keys: Vec<VerifyingKey>,
    composer: Option<Arc<dyn MailComposer>>,
    factor_key: Option<FactorKey>,
}

impl std::fmt::Debug for ServicesBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServicesBuilder")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl ServicesBuilder {
    /// Replaces the policy.
    #[must_use]
    pub fn policy(mut self, policy: AuthPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Replaces the password hasher.
    #[must_use]
    pub fn hasher(mut self, hasher: impl PasswordHasher) -> Self {
        self.hasher = Some(Arc::new(hasher));
        self
    }

    /// Replaces the clock.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Signs tokens with this key; `previous` still verify tokens during a rotation.
    #[must_use]
    pub fn signing_key(mut self, key: SigningKey, previous: Vec<VerifyingKey>) -> Self {
        self.signing_key = Some(key);
        self.previous_keys = previous;
        self
    }

    /// Mails users through `composer`: verification links, password resets and security
    /// notices, queued in the storage's outbox. Without it, mail flows answer
    /// [`AuthError::MailNotConfigured`](crate::error::AuthError::MailNotConfigured) and
    /// notices are skipped.
    #[must_use]
    pub fn mail_composer(mut self, composer: Arc<dyn MailComposer>) -> Self {
        self.composer = Some(composer);
        self
    }

    /// Lets users enrol authenticator apps, their secrets sealed under `key` (keep it apart
    /// from the database, the same on every instance:
    /// [`key_files::load_or_create_factor_key`](crate::auth::key_files::load_or_create_factor_key)).
    /// Without a key, enrolment answers "not configured".
    #[must_use]
    pub fn second_factor_key(mut self, key: FactorKey) -> Self {
        self.factor_key = Some(key);
        self
    }

    /// Builds the services.
    ///
    /// # Errors
    /// [`ConfigError`] when the policy is out of range, the keys do not fit together, or the
    /// policy requires second factors without a [`second_factor_key`](Self::second_factor_key).
    pub fn build(self) -> Result<Services, ConfigError> {
        let factors_required = self.policy.second_factor.required_for_admins
            || self.policy.second_factor.required_for_everyone;
        if factors_required && self.factor_key.is_none() {
            return Err(ConfigError::new(
                "second_factor",
                "requiring second factors needs a second-factor key",
            ));
        }
        let hasher = match self.hasher {
            Some(h) => h,
            None => Arc::new(Argon2Hasher::new(HasherConfig::default())?),
        };
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let ports = Ports::new(self.storage, hasher, clock);
        let key = match self.signing_key {
            Some(key) => key,
            None => SigningKey::generate_ed25519()?,
        };
        let totp = self.factor_key.map(|key| {
            Arc::new(TotpAuthenticator::new(
                key,
                self.policy.second_factor.issuer.clone(),
            ))
        });
        let mut users = UserService::new(ports.clone(), &self.policy);
        let mut account = AccountService::new(ports.clone(), &self.policy);
        let mut auth = AuthService::new(ports, self.policy, &key, self.previous_keys)?;
        if let Some(totp) = totp {
            users = users.with_second_factors(Arc::clone(&totp));
            auth = auth.with_second_factors(totp);
        }
        if let Some(composer) = self.composer {
            users = users.with_mail_composer(Arc::clone(&composer));
            account = account.with_mail_composer(Arc::clone(&composer));
            auth = auth.with_mail_composer(composer);
        }
        Ok(Services {
            auth: Arc::new(auth),
            users: Arc::new(users),
            account: Arc::new(account),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FastHasher, in_memory};

    #[tokio::test]
    async fn the_defaults_work_end_to_end() {
        let services = Services::builder(in_memory())
            .hasher(FastHasher::new())
            .build()
            .unwrap();
        let user = services
            .auth
            .register(
                crate::auth::RegisterUser {
                    username: "alice".into(),
                    email: "alice@example.com".into(),
                    password: secrecy::SecretString::from("correct horse battery staple"),
                    display_name: None,
                },
                &crate::domain::ClientInfo::default(),
            )
            .await
            .unwrap();
        assert_eq!(user.username.as_str(), "alice");
        assert_eq!(services.auth.jwks().keys.len(), 1, "a fresh Ed25519 key");
    }

    #[test]
    fn a_bad_policy_is_refused() {
        let policy = AuthPolicy {
            leeway: std::time::Duration::from_secs(60),
            ..AuthPolicy::default()
        };
        let err = Services::builder(in_memory())
            .policy(policy)
            .build()
            .unwrap_err();
        assert_eq!(err.setting, "leeway");
    }
}
