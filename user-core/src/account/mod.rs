//! [`AccountService`]: password reset and email verification, the flows that reach a user
//! by mail. Security notices (password changed, email changed, lockout started) are queued
//! by the service whose operation causes them, through the same composer.
//!
//! Every mail goes through the [`MailOutbox`](crate::ports::MailOutbox): a link's token and
//! its mail commit together ([`OneTimeTokenStore::issue`](crate::ports::OneTimeTokenStore::issue)),
//! and the delivery worker ([`crate::mail::deliver_periodically`]) sends it later. Tokens are
//! 256 random bits, URL-safe base64, stored only as their SHA-256; single use; a newer one
//! kills the older ones of its purpose.

mod notices;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use secrecy::{ExposeSecret as _, SecretString};
use tokio::sync::Notify;

use crate::Ports;
use crate::auth::{AccountPolicy, AddressLimit, AuthPolicy, GuessBudget, KeyLimit};
use crate::domain::{
    Actor, AuditEvent, AuditKind, ClientInfo, Email, Password, PasswordPolicy, ThrottleKey,
    TokenHash, TokenPurpose, User, UserId, UserStatus,
};
use crate::error::{AuthError, RepoError, UserError, ValidationError, ValidationErrors, report};
use crate::ports::{MailComposer, Notice};

pub(crate) use notices::{Notices, greeting};

/// Counts background tasks still running, so a shutdown (or a test) can wait for them.
#[derive(Default)]
struct InFlight {
    running: AtomicUsize,
    idle: Notify,
}

/// Held by a background task; dropping it marks the task done.
struct Running(Arc<InFlight>);

impl InFlight {
    /// Counts one more task, unless `limit` are running already.
    fn try_enter(self: &Arc<Self>, limit: usize) -> Option<Running> {
        self.running
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| Running(Arc::clone(self)))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.running.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Password reset and email verification. Build it with [`crate::Services::builder`] (and
/// [`ServicesBuilder::mail_composer`](crate::ServicesBuilder::mail_composer)), or with
/// [`AccountService::new`]; without a composer every flow here answers
/// [`AuthError::MailNotConfigured`].
pub struct AccountService {
    ports: Ports,
    password_policy: PasswordPolicy,
    notices: Notices,
    budget: GuessBudget,
    reset_per_ip: Option<AddressLimit>,
    reset_per_address: Option<KeyLimit>,
    resend_per_ip: Option<AddressLimit>,
    resend_per_address: Option<KeyLimit>,
    in_flight: Arc<InFlight>,
    max_pending_link_requests: usize,
}

impl std::fmt::Debug for AccountService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountService")
            .field("mail_configured", &self.notices.configured())
            .finish_non_exhaustive()
    }
}

impl AccountService {
    /// Builds the service on `ports` with `policy` (the same as the
    /// [`AuthService`](crate::auth::AuthService)'s: a reset clears the lockout it counts),
    /// without mail until [`AccountService::with_mail_composer`].
    pub fn new(ports: Ports, policy: &AuthPolicy) -> Self {
        let AccountPolicy {
            reset_requests_per_address_per_hour,
            reset_requests_per_ip_per_hour,
            verification_resends_per_address_per_hour,
            verification_resends_per_ip_per_hour,
            max_pending_link_requests,
            ..
        } = policy.account;
        let clock = &ports.clock;
        Self {
            reset_per_ip: reset_requests_per_ip_per_hour
                .map(|n| AddressLimit::per_hour("password-reset", n, clock.clone())),
            reset_per_address: reset_requests_per_address_per_hour
                .map(|n| KeyLimit::per_hour("password-reset", n, clock.clone())),
            resend_per_ip: verification_resends_per_ip_per_hour
                .map(|n| AddressLimit::per_hour("verification-resend", n, clock.clone())),
            resend_per_address: verification_resends_per_address_per_hour
                .map(|n| KeyLimit::per_hour("verification-resend", n, clock.clone())),
            notices: Notices::new(ports.clone(), policy.account),
            budget: GuessBudget::new(ports.login_failures.clone(), policy.lockout),
            ports,
            password_policy: policy.password,
            in_flight: Arc::default(),
            max_pending_link_requests,
        }
    }

    /// Mails through `composer`.
    #[must_use]
    pub fn with_mail_composer(mut self, composer: Arc<dyn MailComposer>) -> Self {
        self.notices.set_composer(composer);
        self
    }

    /// Starts a password reset for the account of `email`, asked by a client at `client`.
    ///
    /// The answer is the same `Ok(())` whether or not an account has that address, and does
    /// not wait for the lookup: the lookup and the issue of the link run on a spawned task,
    /// so neither the answer nor its timing tells whether the address is known. For an
    /// active account, a link valid for
    /// [`AccountPolicy::reset_token_ttl`](crate::auth::AccountPolicy::reset_token_ttl) is
    /// mailed (queued with its token); for anything else nothing happens. Failures of that
    /// task are logged. [`AccountService::settled`] waits for such tasks.
    ///
    /// # Errors
    /// [`AuthError::MailNotConfigured`]; [`AuthError::Invalid`] on field `email` when it is
    /// no address; [`AuthError::Throttled`] when the client address or the email address
    /// asked too often (known or not alike); [`AuthError::Overloaded`] while
    /// [`AccountPolicy::max_pending_link_requests`](crate::auth::AccountPolicy::max_pending_link_requests)
    /// requests are still being handled.
    pub async fn request_password_reset(
        &self,
        email: &str,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let limits = (self.reset_per_ip.as_ref(), self.reset_per_address.as_ref());
        self.request_link(email, client, limits, TokenPurpose::ResetPassword)
    }

    /// Mails a new verification link to `email`, for a person who cannot sign in because
    /// [`AuthPolicy::require_verified_email`](crate::auth::AuthPolicy::require_verified_email)
    /// refuses an unverified address. Like [`AccountService::request_password_reset`], the
    /// answer and its timing are the same whether or not an account has that address; a
    /// link goes only to an active account whose address is not verified yet.
    ///
    /// # Errors
    /// [`AuthError::MailNotConfigured`]; [`AuthError::Invalid`] on field `email`;
    /// [`AuthError::Throttled`] when the client address or the email address asked too often
    /// (the verification resend limits); [`AuthError::Overloaded`] as for a reset request.
    pub async fn request_verification(
        &self,
        email: &str,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let limits = (
            self.resend_per_ip.as_ref(),
            self.resend_per_address.as_ref(),
        );
        self.request_link(email, client, limits, TokenPurpose::VerifyEmail)
    }

    /// A link asked for by address: checks mail is configured, the address, and the limits
    /// per client and per address, then hands the lookup to [`Self::spawn_for_address`].
    fn request_link(
        &self,
        email: &str,
        client: &ClientInfo,
        (per_ip, per_address): (Option<&AddressLimit>, Option<&KeyLimit>),
        purpose: TokenPurpose,
    ) -> Result<(), AuthError> {
        self.notices.composer()?;
        let email = Email::parse(email).map_err(|e| AuthError::Invalid(e.on("email").into()))?;
        if let Some(limit) = per_ip {
            limit.check(client)?;
        }
        if let Some(limit) = per_address {
            limit.check(email.as_str())?;
        }
        self.spawn_for_address(email, purpose)
    }

    /// Looks up the account of `email` and mails it a `purpose` link, on a spawned task, so
    /// that the caller's answer is the same for known and unknown addresses. Bounded, so
    /// that a flood cannot pile up tasks; the refusal does not depend on the address.
    fn spawn_for_address(&self, email: Email, purpose: TokenPurpose) -> Result<(), AuthError> {
        let running = self
            .in_flight
            .try_enter(self.max_pending_link_requests)
            .ok_or(AuthError::Overloaded)?;
        let users = Arc::clone(&self.ports.users);
        let notices = self.notices.clone();
        let what = purpose.as_str();
        tokio::spawn(async move {
            let _running = running;
            match users.get_by_email(&email).await {
                Ok(user)
                    if user.status == UserStatus::Active
                        && (purpose == TokenPurpose::ResetPassword
                            || user.email_verified_at.is_none()) =>
                {
                    if let Err(e) = notices.issue(&user, purpose).await {
                        tracing::warn!(user_id = %user.id, purpose = what, error = %report(&e), "link not mailed");
                    }
                }
                Ok(user) => {
                    tracing::info!(user_id = %user.id, purpose = what, "link asked for a disabled or verified account; nothing sent");
                }
                Err(RepoError::NotFound) => {
                    tracing::info!(
                        purpose = what,
                        "link asked for an address without an account; nothing sent"
                    );
                }
                Err(e) => {
                    tracing::warn!(purpose = what, error = %report(&e), "link request not handled")
                }
            }
        });
        Ok(())
    }

    /// Waits until the background work of every reset request accepted so far is done (a
    /// graceful shutdown calls it; so do tests before reading the outbox).
    pub async fn settled(&self) {
        loop {
            let idle = self.in_flight.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.in_flight.running.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }

    /// Sets a new password with a reset link's token. The token is checked first without
    /// spending it, so a password the policy refuses leaves the link usable; then it is
    /// spent (of two concurrent uses, one wins), the password replaced, every session and
    /// device token of the account ended, every other reset link revoked, the sign-in
    /// lockout cleared, and a "password changed" notice queued.
    ///
    /// # Errors
    /// [`AuthError::InvalidToken`] for an unknown, expired, superseded or used token, or an
    /// account gone or disabled; [`AuthError::Invalid`] on field `new_password` when the
    /// policy refuses it; [`AuthError::Overloaded`] when hashing is saturated (the link
    /// stays usable).
    pub async fn reset_password(
        &self,
        token: &SecretString,
        new_password: SecretString,
        client: &ClientInfo,
    ) -> Result<User, AuthError> {
        let hash = TokenHash::of(token.expose_secret());
        let now = self.ports.clock.now();
        let found = match self
            .ports
            .tokens
            .find(&hash, TokenPurpose::ResetPassword, now)
            .await
        {
            Ok(found) => found,
            Err(RepoError::NotFound) => return Err(AuthError::InvalidToken),
            Err(e) => return Err(e.into()),
        };
        let user = self.active_user(found.user_id).await?;
        // The link was sent to an address; after an email change it no longer reaches the
        // owner, so it no longer resets the password.
        if found.email != user.email {
            return Err(AuthError::InvalidToken);
        }
        let password = Password::parse(
            new_password,
            &self.password_policy,
            Some(&user.username),
            Some(&user.email),
        )
        .map_err(|errors| AuthError::Invalid(errors.renamed("password", "new_password")))?;
        let password_hash = self.ports.hasher.hash(&password).await?;
        match self
            .ports
            .tokens
            .consume(&hash, TokenPurpose::ResetPassword, now)
            .await
        {
            Ok(spent) if spent.user_id == user.id => {}
            Ok(_) | Err(RepoError::NotFound) => return Err(AuthError::InvalidToken),
            Err(e) => return Err(e.into()),
        }
        let users = &self.ports.users;
        match users
            .update_password_hash(user.id, &password_hash, now)
            .await
        {
            Ok(()) => {}
            Err(RepoError::NotFound) => return Err(AuthError::InvalidToken),
            Err(e) => return Err(e.into()),
        }
        // The password is changed: every step that locks out whoever knew the old one runs,
        // even when an earlier one failed, and the first failure is reported after all ran.
        let sessions = self.ports.sessions.revoke_all(user.id, None, now).await;
        let devices = self.ports.devices.delete_for_user(user.id).await;
        let links = self
            .ports
            .tokens
            .revoke_all(user.id, TokenPurpose::ResetPassword)
            .await;
        // The lock wrong passwords caused goes; the one wrong codes of a second factor caused
        // stays, or control of the mailbox alone would buy fresh code guesses at every reset.
        let budget = match self.ports.factors.factor(user.id).await {
            Ok(factor) if factor.is_confirmed() => Ok(()),
            Ok(_) | Err(RepoError::NotFound) => {
                self.budget.clear(&ThrottleKey::account(user.id)).await
            }
            Err(e) => Err(e),
        };
        let ended = sessions?;
        devices?;
        links?;
        budget?;
        tracing::info!(user_id = %user.id, sessions_ended = ended, "password reset");
        let event = AuditEvent::new(AuditKind::PasswordReset, now)
            .on(user.id)
            .from_client(client)
            .detail(format!("{ended} sessions ended"));
        self.ports.audit(event).await;
        let name = greeting(&user);
        self.notices
            .send(&user, Notice::PasswordChanged { name }, &user.email)
            .await;
        match users.get(user.id).await {
            Ok(user) => Ok(user),
            Err(RepoError::NotFound) => Err(AuthError::InvalidToken),
            Err(e) => Err(e.into()),
        }
    }

    /// Mails user `id` a password-reset link, for an admin. The admin never sees the token
    /// and never sets the password. The link works once the account is active.
    ///
    /// # Errors
    /// [`UserError::Forbidden`] for a non-admin; [`UserError::MailNotConfigured`];
    /// [`UserError::NotFound`].
    pub async fn send_password_reset(&self, admin: &Actor, id: UserId) -> Result<(), UserError> {
        if !admin.is_admin() {
            return Err(UserError::Forbidden);
        }
        if !self.notices.configured() {
            return Err(UserError::MailNotConfigured);
        }
        let user = self.ports.users.get(id).await?;
        if user.status != UserStatus::Active {
            // A disabled account's link would be refused anyway; mailing it helps nobody.
            let mut errors = ValidationErrors::new();
            errors.push(ValidationError::new(
                "user_id",
                "disabled",
                "the account is disabled; enable it first",
            ));
            return Err(UserError::Invalid(errors));
        }
        self.notices
            .issue(&user, TokenPurpose::ResetPassword)
            .await
            .map_err(|e| match e {
                AuthError::Unavailable(cause) => UserError::Unavailable(cause),
                other => UserError::Internal(Box::new(other)),
            })?;
        tracing::info!(user_id = %id, actor = %admin.user_id, "reset link sent by an admin");
        let event = self.ports.event(AuditKind::PasswordResetSent).by(admin);
        self.ports.audit(event.on(id)).await;
        Ok(())
    }

    /// Mails the actor a new verification link for their current email (the older link
    /// dies). Rate limited per email address (the budget [`Self::request_verification`]
    /// spends too) and per client address. An address verified already
    /// gets nothing, and the answer is the same `Ok(())`.
    ///
    /// # Errors
    /// [`AuthError::MailNotConfigured`]; [`AuthError::Throttled`];
    /// [`AuthError::Unauthenticated`] when the actor's account is gone or disabled.
    pub async fn resend_verification(
        &self,
        actor: &Actor,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        self.notices.composer()?;
        if let Some(limit) = &self.resend_per_ip {
            limit.check(client)?;
        }
        let user = match self.ports.users.get(actor.user_id).await {
            Ok(user) if user.status == UserStatus::Active => user,
            Ok(_) | Err(RepoError::NotFound) => return Err(AuthError::Unauthenticated),
            Err(e) => return Err(e.into()),
        };
        // One budget per address, shared with the signed-out request by address.
        if let Some(limit) = &self.resend_per_address {
            limit.check(user.email.as_str())?;
        }
        if user.email_verified_at.is_some() {
            return Ok(());
        }
        self.notices.issue(&user, TokenPurpose::VerifyEmail).await
    }

    /// Verifies an email address with a verification link's token: the token is spent, and
    /// `email_verified_at` set only if the account's email is still the one the link was
    /// mailed to.
    ///
    /// # Errors
    /// [`AuthError::InvalidToken`] for an unknown, expired, superseded or used token, or
    /// when the account is gone or its email changed since.
    pub async fn verify_email(
        &self,
        token: &SecretString,
        client: &ClientInfo,
    ) -> Result<User, AuthError> {
        let hash = TokenHash::of(token.expose_secret());
        let now = self.ports.clock.now();
        let spent = match self
            .ports
            .tokens
            .consume(&hash, TokenPurpose::VerifyEmail, now)
            .await
        {
            Ok(spent) => spent,
            Err(RepoError::NotFound) => return Err(AuthError::InvalidToken),
            Err(e) => return Err(e.into()),
        };
        match self
            .ports
            .users
            .mark_email_verified(spent.user_id, &spent.email, now)
            .await
        {
            Ok(user) => {
                tracing::info!(user_id = %user.id, "email verified");
                let event = AuditEvent::new(AuditKind::EmailVerified, now).on(user.id);
                self.ports.audit(event.from_client(client)).await;
                Ok(user)
            }
            Err(RepoError::NotFound) => Err(AuthError::InvalidToken),
            Err(e) => Err(e.into()),
        }
    }

    async fn active_user(&self, id: UserId) -> Result<User, AuthError> {
        match self.ports.users.get(id).await {
            Ok(user) if user.status == UserStatus::Active => Ok(user),
            Ok(_) | Err(RepoError::NotFound) => Err(AuthError::InvalidToken),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests;
