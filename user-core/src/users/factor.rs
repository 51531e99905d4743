//! The owner's second factor: enrolment, recovery codes, removal; and an admin's reset.

use secrecy::{ExposeSecret as _, SecretString};

use super::{AdminUsers, UserService};
use crate::account::greeting;
use crate::auth::Reserved;
use crate::domain::{Actor, AuditEvent, AuditKind, ThrottleKey, User, UserId};
use crate::error::{
    AuthError, FACTOR_ALREADY_ON, FACTOR_OFF, FACTORS_NOT_CONFIGURED, NO_ENROLMENT, OWN_FACTOR,
    RepoError, UserError,
};
use crate::factor::{FactorStatus, TotpAuthenticator, TotpSetup, TypedCode, new_recovery_codes};
use crate::ports::Notice;

impl UserService {
    /// Reserves a guess of a code on `key`'s budget, as a sign-in's second step does.
    async fn reserve_code_guess(
        &self,
        key: &ThrottleKey,
        now: time::OffsetDateTime,
    ) -> Result<Reserved, UserError> {
        self.budget.reserve(key, now).await.map_err(|e| match e {
            AuthError::Throttled { retry_after } => UserError::Throttled { retry_after },
            AuthError::Unavailable(cause) => UserError::Unavailable(cause),
            other => UserError::Internal(Box::new(other)),
        })
    }

    fn totp(&self) -> Result<&TotpAuthenticator, UserError> {
        self.totp
            .as_deref()
            .ok_or(UserError::FactorState(FACTORS_NOT_CONFIGURED))
    }

    /// The state of `user`'s second factor (never its secret).
    async fn factor_status(&self, user: &User) -> Result<FactorStatus, UserError> {
        let required = self.second_factor.requires(user.role);
        let factor = match self.ports.factors.factor(user.id).await {
            Ok(factor) => Some(factor),
            Err(RepoError::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
        let enabled_at = factor.as_ref().and_then(|f| f.confirmed_at);
        let recovery_codes_left = match enabled_at {
            Some(_) => self.ports.factors.recovery_codes_left(user.id).await?,
            None => 0,
        };
        Ok(FactorStatus {
            enabled_at,
            pending: factor.is_some_and(|f| !f.is_confirmed()),
            recovery_codes_left,
            required,
        })
    }

    /// The actor's own second factor: on since when, recovery codes left, required or not.
    ///
    /// # Errors
    /// [`UserError::NotFound`] when the account is gone.
    pub async fn second_factor(&self, actor: &Actor) -> Result<FactorStatus, UserError> {
        let user = self.ports.users.get(actor.user_id).await?;
        self.factor_status(&user).await
    }

    /// Starts enrolling an authenticator app, after the actor's password: a new secret
    /// (replacing an enrolment started before), to show once as a QR code and as text.
    /// Nothing changes at sign-in until [`confirm_totp_enrolment`](Self::confirm_totp_enrolment).
    ///
    /// # Errors
    /// [`UserError::InvalidCredentials`] and [`UserError::Throttled`] as for a password
    /// change; [`UserError::FactorState`] when a factor is on already, or second factors are
    /// not configured.
    pub async fn start_totp_enrolment(
        &self,
        actor: &Actor,
        password: &SecretString,
    ) -> Result<TotpSetup, UserError> {
        let totp = self.totp()?;
        self.confirm_password(actor, password, AuditKind::SecondFactorEnabled)
            .await?;
        let user = self.ports.users.get(actor.user_id).await?;
        let now = self.ports.clock.now();
        let (factor, setup) = totp
            .new_factor(user.id, user.username.as_str(), now)
            .map_err(UserError::Internal)?;
        if !self.ports.factors.begin_enrolment(&factor).await? {
            return Err(UserError::FactorState(FACTOR_ALREADY_ON));
        }
        tracing::info!(user_id = %user.id, "authenticator enrolment started");
        Ok(setup)
    }

    /// Completes the enrolment with a code from the app: the factor is on from the next
    /// sign-in, every other session of the account ends, and ten recovery codes come back,
    /// to show once. Each
    /// wrong code spends a guess of the session's budget (a stolen session cannot try codes
    /// for an enrolment its owner started).
    ///
    /// # Errors
    /// [`UserError::InvalidCode`] for a wrong code (the enrolment stays, try again);
    /// [`UserError::Throttled`] while the session's budget is locked;
    /// [`UserError::FactorState`] when no enrolment is in progress.
    pub async fn confirm_totp_enrolment(
        &self,
        actor: &Actor,
        code: &SecretString,
    ) -> Result<Vec<SecretString>, UserError> {
        let totp = self.totp()?;
        let factor = match self.ports.factors.factor(actor.user_id).await {
            Ok(factor) if !factor.is_confirmed() => factor,
            Ok(_) => return Err(UserError::FactorState(FACTOR_ALREADY_ON)),
            Err(RepoError::NotFound) => return Err(UserError::FactorState(NO_ENROLMENT)),
            Err(e) => return Err(e.into()),
        };
        let now = self.ports.clock.now();
        let key = ThrottleKey::session(actor.session_id);
        let reserved = self.reserve_code_guess(&key, now).await?;
        let step = match TypedCode::parse(code.expose_secret()) {
            Some(TypedCode::Totp(code)) => match totp.check(&factor, code, now) {
                Ok(step) => step,
                Err(e) => {
                    self.budget.release(&key, reserved).await;
                    return Err(UserError::Internal(e));
                }
            },
            _ => None,
        };
        let Some(step) = step else {
            let event = AuditEvent::new(AuditKind::SecondFactorEnabled, now).by_self(actor);
            self.ports.audit(event.failed().detail("wrong_code")).await;
            return Err(UserError::InvalidCode);
        };
        self.budget.clear(&key).await?;
        let (plain, hashes) = new_recovery_codes().map_err(UserError::Internal)?;
        match self
            .ports
            .factors
            .confirm_enrolment(actor.user_id, step, &hashes, now)
            .await
        {
            Ok(()) => {}
            Err(RepoError::NotFound) => return Err(UserError::FactorState(NO_ENROLMENT)),
            Err(e) => return Err(e.into()),
        }
        // Whoever held another session of this account before the factor was on must now
        // show a code: every other session ends (devices stay known; they still need codes).
        let ended = self
            .ports
            .sessions
            .revoke_all(actor.user_id, Some(actor.session_id), now)
            .await?;
        tracing::info!(user_id = %actor.user_id, other_sessions_ended = ended, "authenticator enrolled");
        let event = AuditEvent::new(AuditKind::SecondFactorEnabled, now).by_self(actor);
        self.ports.audit(event).await;
        self.notify(actor.user_id, false, true).await;
        Ok(plain)
    }

    /// Checks the password, then a current code from the app or a recovery code (spent), for
    /// an operation on a confirmed factor. A wrong code counts on the account's guess budget,
    /// as at the second step of a sign-in: a right password does not refill it, so someone
    /// with the session and the password cannot try codes without end.
    async fn confirm_password_and_code(
        &self,
        actor: &Actor,
        password: &SecretString,
        code: &SecretString,
        purpose: AuditKind,
    ) -> Result<(), UserError> {
        let totp = self.totp()?;
        let factor = match self.ports.factors.factor(actor.user_id).await {
            Ok(factor) if factor.is_confirmed() => factor,
            Ok(_) | Err(RepoError::NotFound) => return Err(UserError::FactorState(FACTOR_OFF)),
            Err(e) => return Err(e.into()),
        };
        self.confirm_password(actor, password, purpose).await?;
        let now = self.ports.clock.now();
        let key = ThrottleKey::account(actor.user_id);
        let reserved = self.reserve_code_guess(&key, now).await?;
        let right = match TypedCode::parse(code.expose_secret()) {
            Some(TypedCode::Totp(code)) => {
                match totp
                    .check(&factor, code, now)
                    .map_err(UserError::Internal)?
                {
                    Some(step) => self.ports.factors.use_step(actor.user_id, step).await?,
                    None => false,
                }
            }
            Some(TypedCode::Recovery(hash)) => {
                self.ports
                    .factors
                    .use_recovery_code(actor.user_id, &hash)
                    .await?
            }
            None => false,
        };
        if !right {
            // The reserved guess stays counted.
            let event = AuditEvent::new(purpose, now).by_self(actor);
            self.ports.audit(event.failed().detail("wrong_code")).await;
            return Err(UserError::InvalidCode);
        }
        self.budget.release(&key, reserved).await;
        Ok(())
    }

    /// Replaces the actor's recovery codes with ten new ones, after their password and a
    /// current code (from the app, or one of the old recovery codes): the old ones stop
    /// working, and the owner is mailed. A password alone (with a stolen session) does not
    /// mint codes that would outlive the session.
    ///
    /// # Errors
    /// As [`disable_second_factor`](Self::disable_second_factor).
    pub async fn regenerate_recovery_codes(
        &self,
        actor: &Actor,
        password: &SecretString,
        code: &SecretString,
    ) -> Result<Vec<SecretString>, UserError> {
        self.confirm_password_and_code(actor, password, code, AuditKind::RecoveryCodesRegenerated)
            .await?;
        let (plain, hashes) = new_recovery_codes().map_err(UserError::Internal)?;
        match self
            .ports
            .factors
            .replace_recovery_codes(actor.user_id, &hashes)
            .await
        {
            Ok(()) => {}
            Err(RepoError::NotFound) => return Err(UserError::FactorState(FACTOR_OFF)),
            Err(e) => return Err(e.into()),
        }
        let event = self.ports.event(AuditKind::RecoveryCodesRegenerated);
        self.ports.audit(event.by_self(actor)).await;
        if let Ok(user) = self.ports.users.get(actor.user_id).await {
            let notice = Notice::RecoveryCodesReplaced {
                name: greeting(&user),
            };
            self.notices.send(&user, notice, &user.email).await;
        }
        Ok(plain)
    }

    /// Turns the actor's second factor off: their password, then a current code from the app
    /// or a recovery code. A wrong code counts on the account's guess budget, as at the
    /// second step of a sign-in (a right password does not refill it, so someone with the
    /// session and the password cannot try codes without end). Trusted devices are forgotten.
    ///
    /// # Errors
    /// As [`start_totp_enrolment`](Self::start_totp_enrolment); [`UserError::InvalidCode`]
    /// for a wrong code; [`UserError::Throttled`] while the account's budget is locked;
    /// [`UserError::FactorState`] when no factor is on.
    pub async fn disable_second_factor(
        &self,
        actor: &Actor,
        password: &SecretString,
        code: &SecretString,
    ) -> Result<(), UserError> {
        self.confirm_password_and_code(actor, password, code, AuditKind::SecondFactorDisabled)
            .await?;
        self.ports.factors.remove(actor.user_id).await?;
        tracing::info!(user_id = %actor.user_id, "second factor removed by its owner");
        let event = self
            .ports
            .event(AuditKind::SecondFactorDisabled)
            .by_self(actor);
        self.ports.audit(event.detail("by its owner")).await;
        self.notify(actor.user_id, false, false).await;
        Ok(())
    }

    /// Mails the owner that their second factor was turned on or off.
    async fn notify(&self, id: UserId, by_admin: bool, enabled: bool) {
        let Ok(user) = self.ports.users.get(id).await else {
            return;
        };
        let notice = Notice::SecondFactorChanged {
            name: greeting(&user),
            enabled,
            by_admin,
        };
        self.notices.send(&user, notice, &user.email).await;
    }
}

impl AdminUsers<'_> {
    /// The state of a user's second factor (never its secret).
    ///
    /// # Errors
    /// [`UserError::NotFound`].
    pub async fn second_factor(&self, id: UserId) -> Result<FactorStatus, UserError> {
        let user = self.service.ports.users.get(id).await?;
        self.service.factor_status(&user).await
    }

    /// Removes a user's second factor (a lost phone): their recovery codes and trusted
    /// devices go too; the user is mailed. With a policy that requires a factor, they enrol
    /// again at their next sign-in.
    ///
    /// An admin's own factor is not reset here: they turn it off from their profile, with
    /// their password and a code, so a stolen admin session cannot strip its own account.
    ///
    /// # Errors
    /// [`UserError::NotFound`]; [`UserError::FactorState`] when the user has no factor, or is
    /// the acting admin.
    pub async fn reset_second_factor(&self, id: UserId) -> Result<(), UserError> {
        if id == self.actor.user_id {
            return Err(UserError::FactorState(OWN_FACTOR));
        }
        let ports = &self.service.ports;
        ports.users.get(id).await?;
        if !ports.factors.remove(id).await? {
            return Err(UserError::FactorState(FACTOR_OFF));
        }
        tracing::info!(user_id = %id, actor = %self.actor.user_id, "second factor reset by an admin");
        let event = ports
            .event(AuditKind::SecondFactorDisabled)
            .by(self.actor)
            .on(id);
        ports.audit(event.detail("reset by an admin")).await;
        self.service.notify(id, true, false).await;
        Ok(())
    }
}
