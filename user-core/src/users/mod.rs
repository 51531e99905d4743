//! [`UserService`]: profiles, password changes, sessions, self-deletion and administration.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use crate::Ports;
use crate::account::{Notices, greeting};
use crate::auth::{AuthPolicy, GuessBudget};
use crate::domain::{
    Actor, AuditEvent, AuditKind, AuditPage, AuditQuery, DisplayName, Email, Password,
    PasswordPolicy, ProfileChanges, Role, Session, SessionId, SessionKind, ThrottleKey,
    TokenPurpose, User, UserId, UserPage, UserQuery, UserStatus, Username,
};
use crate::error::{AuthError, UserError, ValidationErrors};
use crate::factor::{SecondFactorPolicy, TotpAuthenticator};
use crate::ports::{MailComposer, Notice, Verification};

/// A profile edit as it arrives from an adapter. `None` leaves a field unchanged; an empty
/// `display_name` removes it.
#[derive(Debug, Clone, Default)]
pub struct UpdateProfile {
    /// New username.
    pub username: Option<String>,
    /// New email.
    pub email: Option<String>,
    /// New display name; empty to remove.
    pub display_name: Option<String>,
}

impl UpdateProfile {
    fn parse(self) -> Result<ProfileChanges, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let changes = ProfileChanges {
            username: self
                .username
                .and_then(|u| errors.collect(Username::parse(&u))),
            email: self.email.and_then(|e| errors.collect(Email::parse(&e))),
            display_name: self
                .display_name
                .and_then(|d| errors.collect(DisplayName::parse(&d))),
        };
        errors.into_result().map(|()| changes)
    }
}

/// A password change: the current password confirms it.
#[derive(Debug, Clone)]
pub struct ChangePassword {
    /// The password in use now.
    pub current_password: SecretString,
    /// The new password, checked against the policy.
    pub new_password: SecretString,
}

/// What [`UserService::export_own_data`] returns: everything stored about one user, except
/// secrets (no password hash, no token).
#[derive(Debug, Clone)]
pub struct PersonalData {
    /// The profile.
    pub user: User,
    /// The active sessions.
    pub sessions: Vec<Session>,
    /// The audit events concerning the account, newest first, as its owner sees them: all
    /// of them, up to [`PersonalData::MAX_EVENTS`].
    pub events: Vec<AuditEvent>,
}

impl PersonalData {
    /// The most events one export holds: strangers' failed sign-ins can fill an account's
    /// log, and an export must not grow with them.
    pub const MAX_EVENTS: usize = 10_000;
}

/// Profiles and administration. Every operation takes the acting [`Actor`].
#[derive(Clone)]
pub struct UserService {
    ports: Ports,
    password_policy: PasswordPolicy,
    browser_idle_timeout: Duration,
    token_idle_timeout: Duration,
    budget: GuessBudget,
    notices: Notices,
    second_factor: SecondFactorPolicy,
    totp: Option<Arc<TotpAuthenticator>>,
}

impl std::fmt::Debug for UserService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserService")
            .field("password_policy", &self.password_policy)
            .finish_non_exhaustive()
    }
}

impl UserService {
    /// Builds the service with the same policy as the [`crate::auth::AuthService`]: password
    /// re-checks spend the same guess budget as sign-ins.
    pub fn new(ports: Ports, policy: &AuthPolicy) -> Self {
        let budget = GuessBudget::new(ports.login_failures.clone(), policy.lockout);
        Self {
            notices: Notices::new(ports.clone(), policy.account),
            ports,
            password_policy: policy.password,
            browser_idle_timeout: policy.browser_idle_timeout,
            token_idle_timeout: policy.token_idle_timeout,
            budget,
            second_factor: policy.second_factor.clone(),
            totp: None,
        }
    }

    /// Lets users enrol authenticator apps, with `totp` sealing their secrets. Without it,
    /// enrolment answers [`UserError::FactorState`] (not configured).
    #[must_use]
    pub fn with_second_factors(mut self, totp: Arc<TotpAuthenticator>) -> Self {
        self.totp = Some(totp);
        self
    }

    /// Mails through `composer`: a notice when a password or an email changes, and a
    /// verification link to a new address.
    #[must_use]
    pub fn with_mail_composer(mut self, composer: Arc<dyn MailComposer>) -> Self {
        self.notices.set_composer(composer);
        self
    }

    fn may_access(actor: &Actor, id: UserId) -> Result<(), UserError> {
        if actor.user_id == id || actor.is_admin() {
            Ok(())
        } else {
            Err(UserError::Forbidden)
        }
    }

    /// A user's profile: one's own, or anyone's for an admin.
    ///
    /// # Errors
    /// [`UserError::Forbidden`] for someone else's profile without the admin role (checked
    /// before existence, so it reveals nothing); [`UserError::NotFound`].
    pub async fn get(&self, actor: &Actor, id: UserId) -> Result<User, UserError> {
        Self::may_access(actor, id)?;
        Ok(self.ports.users.get(id).await?)
    }

    /// Edits a profile: one's own, or anyone's for an admin. Changing the email clears its
    /// verification; with mail configured, both the old and the new address are told, and
    /// the new one is sent a verification link.
    ///
    /// # Errors
    /// [`UserError::Forbidden`], [`UserError::Invalid`] listing every field problem,
    /// [`UserError::Conflict`] when the new username or email is taken,
    /// [`UserError::NotFound`].
    pub async fn update_profile(
        &self,
        actor: &Actor,
        id: UserId,
        edit: UpdateProfile,
    ) -> Result<User, UserError> {
        Self::may_access(actor, id)?;
        let changes = edit.parse()?;
        // The old address, to tell it about a change (read only when one may happen).
        let before = match &changes.email {
            Some(_) if self.notices.configured() => Some(self.ports.users.get(id).await?.email),
            _ => None,
        };
        let now = self.ports.clock.now();
        let user = self.ports.users.update_profile(id, &changes, now).await?;
        tracing::info!(user_id = %id, actor = %actor.user_id, "profile updated");
        self.audit_profile_update(actor, id, &changes).await;
        if changes.email.is_some() {
            // Reset links went to the address before; they die with it (reset_password also
            // checks the address, this keeps none waiting).
            self.ports
                .tokens
                .revoke_all(id, TokenPurpose::ResetPassword)
                .await?;
        }
        if let Some(old) = before.filter(|old| old != &user.email) {
            let notice = Notice::EmailChanged {
                name: greeting(&user),
                old: old.clone(),
                new: user.email.clone(),
            };
            self.notices.send(&user, notice.clone(), &old).await;
            self.notices.send(&user, notice, &user.email).await;
            self.notices.send_verification(&user).await;
        }
        Ok(user)
    }

    async fn audit_profile_update(&self, actor: &Actor, id: UserId, changes: &ProfileChanges) {
        if changes.email.is_some() {
            let event = self.ports.event(AuditKind::EmailChanged).by(actor);
            self.ports.audit(event.on(id)).await;
        }
        let fields: Vec<&str> = [
            changes.username.as_ref().map(|_| "username"),
            changes.display_name.as_ref().map(|_| "display_name"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !fields.is_empty() {
            let event = self.ports.event(AuditKind::ProfileUpdated).by(actor);
            self.ports
                .audit(event.on(id).detail(fields.join(", ")))
                .await;
        }
    }

    /// Checks the password of a signed-in user. The check spends a guess of the session's
    /// own budget, reserved before the hash runs, so a stolen session cannot try passwords
    /// faster than a stranger at the sign-in form; a wrong password also counts on the
    /// account's budget, which the sign-in form shares. A lock that strangers put on the
    /// account does not stop its signed-in owner from confirming their password.
    async fn confirm_password(
        &self,
        actor: &Actor,
        password: &SecretString,
        purpose: AuditKind,
    ) -> Result<(), UserError> {
        let id = actor.user_id;
        let hash = self.ports.users.password_hash(id).await?;
        let key = ThrottleKey::session(actor.session_id);
        let now = self.ports.clock.now();
        let reserved = self.budget.reserve(&key, now).await.map_err(|e| match e {
            AuthError::Throttled { retry_after } => {
                tracing::warn!(user_id = %id, session_id = %actor.session_id, outcome = "locked", "password re-check refused");
                UserError::Throttled { retry_after }
            }
            AuthError::Unavailable(cause) => UserError::Unavailable(cause),
            other => UserError::Internal(Box::new(other)),
        })?;
        let verdict = match self.ports.hasher.verify(password, &hash).await {
            Ok(verdict) => verdict,
            Err(e) => {
                self.budget.release(&key, reserved).await;
                return Err(e.into());
            }
        };
        match verdict {
            Verification::Match { .. } => {
                self.budget.clear(&key).await?;
                Ok(())
            }
            Verification::Mismatch => {
                self.budget
                    .add_failure(&ThrottleKey::account(id), now)
                    .await;
                tracing::warn!(
                    user_id = %id,
                    session_id = %actor.session_id,
                    failures = reserved.failures.count,
                    outcome = "wrong_password",
                    "password re-check failed"
                );
                let event = AuditEvent::new(purpose, now).by_self(actor).failed();
                self.ports.audit(event.detail("wrong_password")).await;
                Err(UserError::InvalidCredentials)
            }
        }
    }

    /// Changes the actor's own password and ends every other session of theirs.
    ///
    /// # Errors
    /// [`UserError::Invalid`] on field `new_password` when the new one breaks the policy
    /// (checked first, without looking at the current one); [`UserError::InvalidCredentials`]
    /// when the current password is wrong; [`UserError::Throttled`] while the session's guess
    /// budget is locked.
    pub async fn change_password(
        &self,
        actor: &Actor,
        change: ChangePassword,
    ) -> Result<(), UserError> {
        let user = self.ports.users.get(actor.user_id).await?;
        // The new password is judged first, and its verdict never depends on the current one:
        // an answer must not tell a right guess of the current password from a wrong one.
        let new = Password::parse(
            change.new_password,
            &self.password_policy,
            Some(&user.username),
            Some(&user.email),
        )
        .map_err(|errors| UserError::Invalid(errors.renamed("password", "new_password")))?;
        self.confirm_password(actor, &change.current_password, AuditKind::PasswordChanged)
            .await?;
        let hash = self.ports.hasher.hash(&new).await?;
        let now = self.ports.clock.now();
        self.ports
            .users
            .update_password_hash(user.id, &hash, now)
            .await?;
        let ended = self
            .ports
            .sessions
            .revoke_all(user.id, Some(actor.session_id), now)
            .await?;
        // Devices that knew the old password are strangers now.
        self.ports.devices.delete_for_user(user.id).await?;
        // A reset link asked for before would undo the new password.
        self.ports
            .tokens
            .revoke_all(user.id, TokenPurpose::ResetPassword)
            .await?;
        tracing::info!(user_id = %user.id, other_sessions_ended = ended, "password changed");
        let event = AuditEvent::new(AuditKind::PasswordChanged, now).by_self(actor);
        self.ports
            .audit(event.detail(format!("{ended} other sessions ended")))
            .await;
        let notice = Notice::PasswordChanged {
            name: greeting(&user),
        };
        self.notices.send(&user, notice, &user.email).await;
        Ok(())
    }

    /// Deletes the actor's own account after checking their password.
    ///
    /// # Errors
    /// [`UserError::InvalidCredentials`] when the password is wrong; [`UserError::Throttled`]
    /// while the session's guess budget is locked; [`UserError::LastAdmin`] for the last
    /// active admin.
    pub async fn delete_own_account(
        &self,
        actor: &Actor,
        password: &SecretString,
    ) -> Result<(), UserError> {
        self.confirm_password(actor, password, AuditKind::Deleted)
            .await?;
        self.ports.users.delete(actor.user_id).await?;
        tracing::info!(user_id = %actor.user_id, "account deleted by its owner");
        self.forget(actor.user_id).await;
        // The record that the account was deleted by its owner, without where from.
        let event = self.ports.event(AuditKind::Deleted).on(actor.user_id);
        self.ports
            .audit(event.by_user(actor.user_id).detail("by its owner"))
            .await;
        Ok(())
    }

    /// Anonymizes the audit trail of a deleted user (a failure is logged: the account is
    /// gone either way, and the next deletion of nothing cannot retry it).
    async fn forget(&self, id: UserId) {
        if let Err(e) = self.ports.audit.anonymize(id).await {
            metrics::counter!(crate::metrics::AUDIT_WRITE_FAILURES_TOTAL).increment(1);
            tracing::error!(user_id = %id, error = %crate::error::report(&e), "audit trail of a deleted user not anonymized");
        }
    }

    /// The actor's most recent security events (those concerning their account), newest
    /// first, at most `limit` (1 to [`AuditQuery::MAX_LIMIT`]), as
    /// [`AuditEvent::owners_view`] shows them.
    ///
    /// # Errors
    /// [`UserError::Unavailable`] when the store fails.
    pub async fn recent_events(
        &self,
        actor: &Actor,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, UserError> {
        let query = AuditQuery {
            subject: Some(actor.user_id),
            limit: limit.clamp(1, AuditQuery::MAX_LIMIT),
            ..AuditQuery::default()
        };
        let events = self.ports.audit.list(&query).await?.events;
        Ok(events
            .into_iter()
            .map(|e| e.owners_view(actor.user_id))
            .collect())
    }

    /// Everything stored about the actor, for them to download: the profile, the active
    /// sessions, and the audit events concerning their account (up to
    /// [`PersonalData::MAX_EVENTS`], newest first, as
    /// [`AuditEvent::owners_view`] shows them). The export is audited.
    ///
    /// # Errors
    /// [`UserError::NotFound`] when the account is gone; [`UserError::Unavailable`].
    pub async fn export_own_data(&self, actor: &Actor) -> Result<PersonalData, UserError> {
        let user = self.ports.users.get(actor.user_id).await?;
        let sessions = self.sessions(actor).await?;
        let mut events = Vec::new();
        let mut query = AuditQuery {
            subject: Some(actor.user_id),
            limit: AuditQuery::MAX_LIMIT,
            ..AuditQuery::default()
        };
        while events.len() < PersonalData::MAX_EVENTS {
            let page = self.ports.audit.list(&query).await?;
            let owned = page
                .events
                .into_iter()
                .map(|e| e.owners_view(actor.user_id));
            events.extend(owned);
            match page.next {
                Some(next) => query.before = Some(next),
                None => break,
            }
        }
        events.truncate(PersonalData::MAX_EVENTS);
        let event = self.ports.event(AuditKind::DataExported).by_self(actor);
        self.ports.audit(event).await;
        Ok(PersonalData {
            user,
            sessions,
            events,
        })
    }

    /// The actor's active sessions, newest first.
    ///
    /// # Errors
    /// [`UserError::Unavailable`] when the store fails.
    pub async fn sessions(&self, actor: &Actor) -> Result<Vec<Session>, UserError> {
        let now = self.ports.clock.now();
        let mut sessions = self.ports.sessions.list_active(actor.user_id, now).await?;
        sessions.retain(|s| {
            let idle = match s.kind {
                SessionKind::Browser => self.browser_idle_timeout,
                SessionKind::Token => self.token_idle_timeout,
            };
            s.is_usable(now, idle)
        });
        Ok(sessions)
    }

    /// Ends one of the actor's own sessions.
    ///
    /// # Errors
    /// [`UserError::NotFound`] when the session does not exist or belongs to someone else.
    pub async fn revoke_session(&self, actor: &Actor, id: SessionId) -> Result<(), UserError> {
        let session = self.ports.sessions.get(id).await?;
        if session.user_id != actor.user_id {
            return Err(UserError::NotFound);
        }
        self.ports
            .sessions
            .revoke(id, self.ports.clock.now())
            .await?;
        let event = self.ports.event(AuditKind::SessionRevoked).by_self(actor);
        self.ports
            .audit(event.detail(format!("session {id}")))
            .await;
        Ok(())
    }

    /// The admin operations, if the actor is an admin.
    ///
    /// # Errors
    /// [`UserError::Forbidden`] for anyone else.
    pub fn as_admin<'a>(&'a self, actor: &'a Actor) -> Result<AdminUsers<'a>, UserError> {
        if actor.is_admin() {
            Ok(AdminUsers {
                service: self,
                actor,
            })
        } else {
            Err(UserError::Forbidden)
        }
    }
}

/// What an admin may do to any account. Obtained from [`UserService::as_admin`].
#[derive(Debug)]
pub struct AdminUsers<'a> {
    service: &'a UserService,
    actor: &'a Actor,
}

impl AdminUsers<'_> {
    /// One page of users.
    ///
    /// # Errors
    /// [`UserError::Unavailable`] when the store fails.
    pub async fn list(&self, query: &UserQuery) -> Result<UserPage, UserError> {
        Ok(self.service.ports.users.list(query).await?)
    }

    /// One page of the audit log, newest first.
    ///
    /// # Errors
    /// [`UserError::Unavailable`] when the store fails.
    pub async fn audit_log(&self, query: &AuditQuery) -> Result<AuditPage, UserError> {
        Ok(self.service.ports.audit.list(query).await?)
    }

    /// Any user's profile.
    ///
    /// # Errors
    /// [`UserError::NotFound`].
    pub async fn get(&self, id: UserId) -> Result<User, UserError> {
        self.service.get(self.actor, id).await
    }

    /// Edits any user's profile.
    ///
    /// # Errors
    /// As [`UserService::update_profile`].
    pub async fn update_profile(&self, id: UserId, edit: UpdateProfile) -> Result<User, UserError> {
        self.service.update_profile(self.actor, id, edit).await
    }

    /// Changes a user's role.
    ///
    /// # Errors
    /// [`UserError::NotFound`]; [`UserError::LastAdmin`] when demoting the last active admin.
    pub async fn set_role(&self, id: UserId, role: Role) -> Result<User, UserError> {
        let ports = &self.service.ports;
        let user = ports.users.set_role(id, role, ports.clock.now()).await?;
        tracing::info!(user_id = %id, actor = %self.actor.user_id, role = %role, "role changed");
        let event = ports.event(AuditKind::RoleChanged).by(self.actor).on(id);
        ports.audit(event.detail(role.to_string())).await;
        Ok(user)
    }

    /// Disables or re-enables a user. Disabling ends all their sessions at once.
    ///
    /// # Errors
    /// [`UserError::NotFound`]; [`UserError::LastAdmin`] when disabling the last active admin.
    pub async fn set_status(&self, id: UserId, status: UserStatus) -> Result<User, UserError> {
        let ports = &self.service.ports;
        let now = ports.clock.now();
        let user = ports.users.set_status(id, status, now).await?;
        if status == UserStatus::Disabled {
            ports.sessions.revoke_all(id, None, now).await?;
            ports.devices.delete_for_user(id).await?;
            // Links mailed before must not work again if the account is enabled soon after.
            for purpose in TokenPurpose::ALL {
                ports.tokens.revoke_all(id, purpose).await?;
            }
        }
        tracing::info!(user_id = %id, actor = %self.actor.user_id, status = %status, "status changed");
        let kind = match status {
            UserStatus::Active => AuditKind::Enabled,
            UserStatus::Disabled => AuditKind::Disabled,
        };
        ports.audit(ports.event(kind).by(self.actor).on(id)).await;
        Ok(user)
    }

    /// How long the user's sign-in stays locked by failed guesses on the account's budget
    /// (`None`: not locked). Clients holding a device token for the account are not held by
    /// it.
    ///
    /// # Errors
    /// [`UserError::NotFound`].
    pub async fn sign_in_lock(&self, id: UserId) -> Result<Option<Duration>, UserError> {
        let ports = &self.service.ports;
        ports.users.get(id).await?;
        Ok(self
            .service
            .budget
            .locked_for(&ThrottleKey::account(id), ports.clock.now())
            .await?)
    }

    /// Lifts the lock that failed guesses put on the user's sign-in, and forgets the count.
    ///
    /// # Errors
    /// [`UserError::NotFound`].
    pub async fn unlock(&self, id: UserId) -> Result<(), UserError> {
        self.service.ports.users.get(id).await?;
        self.service.budget.clear(&ThrottleKey::account(id)).await?;
        tracing::info!(user_id = %id, actor = %self.actor.user_id, "sign-in unlocked by an admin");
        let ports = &self.service.ports;
        ports
            .audit(ports.event(AuditKind::Unlocked).by(self.actor).on(id))
            .await;
        Ok(())
    }

    /// Deletes a user and all their sessions.
    ///
    /// # Errors
    /// [`UserError::NotFound`]; [`UserError::LastAdmin`] when deleting the last active admin.
    pub async fn delete(&self, id: UserId) -> Result<(), UserError> {
        let ports = &self.service.ports;
        ports.users.delete(id).await?;
        tracing::info!(user_id = %id, actor = %self.actor.user_id, "user deleted by an admin");
        self.service.forget(id).await;
        let event = ports.event(AuditKind::Deleted).by(self.actor).on(id);
        ports.audit(event.detail("by an admin")).await;
        Ok(())
    }
}

mod factor;
#[cfg(test)]
mod tests;
