//! [`Notices`]: the services' one way to mail a user, shared by the three services.

use std::sync::Arc;

use secrecy::ExposeSecret as _;

use crate::Ports;
use crate::auth::{AccountPolicy, new_secret, std_to_time};
use crate::domain::{Email, OneTimeToken, TokenHash, TokenPurpose, User};
use crate::error::{AuthError, RepoError, report};
use crate::ports::{MailComposer, Notice};

/// Composes notices and queues them in the outbox, or issues a single-use token together
/// with the mail that carries it. Without a composer, notices are skipped and the flows that
/// need mail refuse with [`AuthError::MailNotConfigured`].
#[derive(Clone)]
pub(crate) struct Notices {
    ports: Ports,
    composer: Option<Arc<dyn MailComposer>>,
    policy: AccountPolicy,
}

/// How to greet a user: their display name, else their username.
pub(crate) fn greeting(user: &User) -> String {
    user.display_name.as_ref().map_or_else(
        || user.username.as_str().to_owned(),
        |d| d.as_str().to_owned(),
    )
}

impl Notices {
    pub(crate) fn new(ports: Ports, policy: AccountPolicy) -> Self {
        Self {
            ports,
            composer: None,
            policy,
        }
    }

    pub(crate) fn set_composer(&mut self, composer: Arc<dyn MailComposer>) {
        self.composer = Some(composer);
    }

    /// The composer, or the error of a flow that cannot run without one.
    pub(crate) fn composer(&self) -> Result<&dyn MailComposer, AuthError> {
        self.composer.as_deref().ok_or(AuthError::MailNotConfigured)
    }

    pub(crate) fn configured(&self) -> bool {
        self.composer.is_some()
    }

    /// Queues `notice` for `to`. A notice reports a change already made, so a failure is
    /// logged and does not undo or fail it. Does nothing without a composer.
    pub(crate) async fn send(&self, user: &User, notice: Notice, to: &Email) {
        let Some(composer) = &self.composer else {
            return;
        };
        let kind = notice.kind();
        let queued = match composer.compose(&notice, to) {
            Ok(mail) => self
                .ports
                .outbox
                .enqueue(&mail, self.ports.clock.now())
                .await
                .map_err(|e| report(&e)),
            Err(e) => Err(report(&e)),
        };
        match queued {
            Ok(()) => tracing::info!(user_id = %user.id, kind, "notice queued"),
            Err(error) => tracing::warn!(user_id = %user.id, kind, %error, "notice not queued"),
        }
    }

    /// Issues a new single-use token of `purpose` for `user`'s current email, and queues the
    /// mail carrying it in the same transaction; earlier tokens of that purpose die. Only
    /// the token's SHA-256 is stored.
    ///
    /// # Errors
    /// [`AuthError::MailNotConfigured`]; [`AuthError::Internal`] when the mail cannot be
    /// composed or the user is gone; [`AuthError::Unavailable`].
    pub(crate) async fn issue(&self, user: &User, purpose: TokenPurpose) -> Result<(), AuthError> {
        let composer = self.composer()?;
        let secret = new_secret()?;
        let ttl = match purpose {
            TokenPurpose::ResetPassword => self.policy.reset_token_ttl,
            TokenPurpose::VerifyEmail => self.policy.verify_token_ttl,
        };
        let name = greeting(user);
        let notice = match purpose {
            TokenPurpose::ResetPassword => Notice::ResetPassword {
                name,
                token: secret.clone(),
                expires_in: ttl,
            },
            TokenPurpose::VerifyEmail => Notice::VerifyEmail {
                name,
                token: secret.clone(),
                expires_in: ttl,
            },
        };
        let mail = composer
            .compose(&notice, &user.email)
            .map_err(|e| AuthError::Internal(Box::new(e)))?;
        let now = self.ports.clock.now();
        let token = OneTimeToken {
            user_id: user.id,
            purpose,
            email: user.email.clone(),
            created_at: now,
            expires_at: now + std_to_time(ttl),
        };
        let hash = TokenHash::of(secret.expose_secret());
        match self.ports.tokens.issue(&hash, &token, &mail).await {
            Ok(()) => {
                tracing::info!(user_id = %user.id, purpose = %purpose, "single-use link mailed");
                Ok(())
            }
            Err(RepoError::NotFound) => Err(AuthError::Internal("the user is gone".into())),
            Err(e) => Err(e.into()),
        }
    }

    /// Mails `user` a verification link, when mail is configured; a failure is logged (the
    /// user can ask again with
    /// [`AccountService::resend_verification`](super::AccountService::resend_verification)).
    pub(crate) async fn send_verification(&self, user: &User) {
        if !self.configured() {
            return;
        }
        if let Err(e) = self.issue(user, TokenPurpose::VerifyEmail).await {
            tracing::warn!(user_id = %user.id, error = %report(&e), "verification link not mailed");
        }
    }
}
