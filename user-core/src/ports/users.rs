use time::OffsetDateTime;

use crate::domain::{
    Email, NewUser, PasswordHash, ProfileChanges, Role, User, UserId, UserPage, UserQuery,
    UserStatus, Username,
};
use crate::error::RepoError;

/// What a person types to name their account at sign-in: a username or an email address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identifier {
    /// By username.
    Username(Username),
    /// By email address.
    Email(Email),
}

impl Identifier {
    /// Reads an identifier: an email when it contains `@`, a username otherwise.
    /// `None` when it is neither, which can match no account.
    pub fn parse(identifier: &str) -> Option<Self> {
        if identifier.contains('@') {
            Email::parse(identifier).ok().map(Self::Email)
        } else {
            Username::parse(identifier).ok().map(Self::Username)
        }
    }
}

/// Where users live.
///
/// Usernames and emails are unique case-insensitively (both are stored lowercase). The store
/// also keeps one invariant of its own: there is always at least one active admin once there
/// has been one, because the check and the change must be one atomic step.
#[cfg_attr(any(test, feature = "testing"), mockall::automock)]
#[async_trait::async_trait]
pub trait UserRepository: Send + Sync + 'static {
    /// Inserts a user with their password hash.
    ///
    /// # Errors
    /// - [`RepoError::Conflict`] naming `username` or `email` when either is taken; nothing is
    ///   written.
    /// - [`RepoError::Unavailable`] when the store fails.
    async fn insert(&self, new: &NewUser) -> Result<(), RepoError>;

    /// Fetches a user by id.
    ///
    /// # Errors
    /// [`RepoError::NotFound`] when there is no such user.
    async fn get(&self, id: UserId) -> Result<User, RepoError>;

    /// Fetches a user by username.
    ///
    /// # Errors
    /// [`RepoError::NotFound`] when there is no such user.
    async fn get_by_username(&self, username: &Username) -> Result<User, RepoError>;

    /// Fetches a user by email.
    ///
    /// # Errors
    /// [`RepoError::NotFound`] when there is no such user.
    async fn get_by_email(&self, email: &Email) -> Result<User, RepoError>;

    /// Fetches a user and their password hash, for login, in one read.
    ///
    /// # Errors
    /// [`RepoError::NotFound`] when no user has that username or email.
    async fn credentials(&self, identifier: &Identifier)
    -> Result<(User, PasswordHash), RepoError>;

    /// Fetches a user's password hash.
    ///
    /// # Errors
    /// [`RepoError::NotFound`] when there is no such user.
    async fn password_hash(&self, id: UserId) -> Result<PasswordHash, RepoError>;

    /// Applies a profile edit and returns the updated user. A new email that differs from the
    /// old one clears `email_verified_at`; `updated_at` becomes `now`.
    ///
    /// # Errors
    /// - [`RepoError::NotFound`] when there is no such user.
    /// - [`RepoError::Conflict`] naming the field when the new username or email is taken by
    ///   another user; nothing is written.
    async fn update_profile(
        &self,
        id: UserId,
        changes: &ProfileChanges,
        now: OffsetDateTime,
    ) -> Result<User, RepoError>;

    /// Marks the user's email verified at `now`, only while it is still `email` (the address
    /// a verification token was mailed to), and returns the updated user. One atomic step, so
    /// a concurrent email change either comes before (and the address no longer matches) or
    /// after (and clears the verification again). Already verified: `email_verified_at`
    /// becomes `now`.
    ///
    /// # Errors
    /// - [`RepoError::NotFound`] when there is no such user, or their email is no longer
    ///   `email`; nothing is written.
    /// - [`RepoError::Unavailable`] when the store fails.
    async fn mark_email_verified(
        &self,
        id: UserId,
        email: &Email,
        now: OffsetDateTime,
    ) -> Result<User, RepoError>;

    /// Replaces a user's password hash.
    ///
    /// # Errors
    /// [`RepoError::NotFound`] when there is no such user.
    async fn update_password_hash(
        &self,
        id: UserId,
        hash: &PasswordHash,
        now: OffsetDateTime,
    ) -> Result<(), RepoError>;

    /// Changes a user's role and returns the updated user.
    ///
    /// # Errors
    /// - [`RepoError::NotFound`] when there is no such user.
    /// - [`RepoError::LastActiveAdmin`] when this would demote the last active admin.
    async fn set_role(
        &self,
        id: UserId,
        role: Role,
        now: OffsetDateTime,
    ) -> Result<User, RepoError>;

    /// Enables or disables a user and returns the updated user.
    ///
    /// # Errors
    /// - [`RepoError::NotFound`] when there is no such user.
    /// - [`RepoError::LastActiveAdmin`] when this would disable the last active admin.
    async fn set_status(
        &self,
        id: UserId,
        status: UserStatus,
        now: OffsetDateTime,
    ) -> Result<User, RepoError>;

    /// Deletes a user and, with them, all their sessions.
    ///
    /// # Errors
    /// - [`RepoError::NotFound`] when there is no such user.
    /// - [`RepoError::LastActiveAdmin`] when this would delete the last active admin.
    async fn delete(&self, id: UserId) -> Result<(), RepoError>;

    /// Lists users in username order after `query.after`, filtered by role, status and
    /// search text: 3 characters or more match anywhere in the username, the email or the
    /// display name (in lowercase), 1 or 2 the start of the username or the email, every
    /// character literally (see [`UserQuery::search`]). `next` is set when the page is full.
    ///
    /// Stores serve every page from indexes, whatever the number of users: the filters and
    /// the order from indexes on `(role, username)`, `(status, username)` and `(role,
    /// status, username)`, a search of 3 characters or more from a trigram index.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails.
    async fn list(&self, query: &UserQuery) -> Result<UserPage, RepoError>;

    /// Counts the users who are both admin and active.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails.
    async fn count_active_admins(&self) -> Result<u64, RepoError>;
}
