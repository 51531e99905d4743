//! [`UserService`]: profiles, password changes, sessions, self-deletion and administration.

use secrecy::SecretString;

use crate::Ports;
use crate::domain::{
    Actor, DisplayName, Email, Password, PasswordPolicy, ProfileChanges, Role, Session, SessionId,
    User, UserId, UserPage, UserQuery, UserStatus, Username,
};
use crate::error::{UserError, ValidationErrors};
use crate::ports::Verification;

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

/// Profiles and administration. Every operation takes the acting [`Actor`].
#[derive(Debug, Clone)]
pub struct UserService {
    ports: Ports,
    password_policy: PasswordPolicy,
}

impl UserService {
    /// Builds the service.
    pub fn new(ports: Ports, password_policy: PasswordPolicy) -> Self {
        Self {
            ports,
            password_policy,
        }
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
    /// verification.
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
        let now = self.ports.clock.now();
        let user = self.ports.users.update_profile(id, &changes, now).await?;
        tracing::info!(user_id = %id, actor = %actor.user_id, "profile updated");
        Ok(user)
    }

    async fn confirm_password(&self, id: UserId, password: &SecretString) -> Result<(), UserError> {
        let hash = self.ports.users.password_hash(id).await?;
        match self.ports.hasher.verify(password, &hash).await? {
            Verification::Match { .. } => Ok(()),
            Verification::Mismatch => Err(UserError::InvalidCredentials),
        }
    }

    /// Changes the actor's own password and ends every other session of theirs.
    ///
    /// # Errors
    /// [`UserError::InvalidCredentials`] when the current password is wrong;
    /// [`UserError::Invalid`] on field `new_password` when the new one breaks the policy.
    pub async fn change_password(
        &self,
        actor: &Actor,
        change: ChangePassword,
    ) -> Result<(), UserError> {
        let user = self.ports.users.get(actor.user_id).await?;
        let new = Password::parse(
            change.new_password,
            &self.password_policy,
            Some(&user.username),
            Some(&user.email),
        )
        .map_err(|errors| UserError::Invalid(errors.renamed("password", "new_password")));
        // Check the current password first, so a wrong one is reported even when the new one
        // is also rejected.
        self.confirm_password(user.id, &change.current_password)
            .await?;
        let new = new?;
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
        tracing::info!(user_id = %user.id, other_sessions_ended = ended, "password changed");
        Ok(())
    }

    /// Deletes the actor's own account after checking their password.
    ///
    /// # Errors
    /// [`UserError::InvalidCredentials`] when the password is wrong; [`UserError::LastAdmin`]
    /// for the last active admin.
    pub async fn delete_own_account(
        &self,
        actor: &Actor,
        password: &SecretString,
    ) -> Result<(), UserError> {
        self.confirm_password(actor.user_id, password).await?;
        self.ports.users.delete(actor.user_id).await?;
        tracing::info!(user_id = %actor.user_id, "account deleted by its owner");
        Ok(())
    }

    /// The actor's active sessions, newest first.
    ///
    /// # Errors
    /// [`UserError::Unavailable`] when the store fails.
    pub async fn sessions(&self, actor: &Actor) -> Result<Vec<Session>, UserError> {
        let now = self.ports.clock.now();
        Ok(self.ports.sessions.list_active(actor.user_id, now).await?)
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
        Ok(self
            .ports
            .sessions
            .revoke(id, self.ports.clock.now())
            .await?)
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
        }
        tracing::info!(user_id = %id, actor = %self.actor.user_id, status = %status, "status changed");
        Ok(user)
    }

    /// Deletes a user and all their sessions.
    ///
    /// # Errors
    /// [`UserError::NotFound`]; [`UserError::LastAdmin`] when deleting the last active admin.
    pub async fn delete(&self, id: UserId) -> Result<(), UserError> {
        self.service.ports.users.delete(id).await?;
        tracing::info!(user_id = %id, actor = %self.actor.user_id, "user deleted by an admin");
        Ok(())
    }
}

#[cfg(test)]
mod tests;
