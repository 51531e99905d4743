use time::OffsetDateTime;

use crate::domain::{NewSession, Rotation, Session, SessionId, TokenHash, User, UserId};
use crate::error::RepoError;

/// Sessions and their secrets.
///
/// A session row is shared by both kinds of client. Its secrets (the browser cookie, or the
/// chain of refresh tokens) are stored only as SHA-256 hashes.
#[cfg_attr(any(test, feature = "testing"), mockall::automock)]
#[async_trait::async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Stores a new session and its first secret.
    ///
    /// # Errors
    /// - [`RepoError::NotFound`] when the user does not exist.
    /// - [`RepoError::Unavailable`] when the store fails.
    async fn create(&self, new: &NewSession) -> Result<(), RepoError>;

    /// Fetches a session by id, active or not.
    ///
    /// # Errors
    /// [`RepoError::NotFound`] when there is no such session.
    async fn get(&self, id: SessionId) -> Result<Session, RepoError>;

    /// Finds the browser session whose cookie hashes to `hash`, active or not. Refresh tokens
    /// never match.
    ///
    /// # Errors
    /// [`RepoError::NotFound`] when no browser session has that secret.
    async fn find_by_cookie(&self, hash: &TokenHash) -> Result<Session, RepoError>;

    /// Fetches a session by id, active or not, with its user, whatever the user's status, in
    /// one read: what every authenticated request needs, so a store should answer it in one
    /// round trip (a join).
    ///
    /// # Errors
    /// - [`RepoError::NotFound`] when there is no such session.
    /// - [`RepoError::Unavailable`] when the store fails.
    async fn get_with_user(&self, id: SessionId) -> Result<(Session, User), RepoError>;

    /// Finds the browser session whose cookie hashes to `hash`, active or not, with its
    /// user, whatever the user's status, in one read (see [`SessionStore::get_with_user`]).
    /// Refresh tokens never match.
    ///
    /// # Errors
    /// - [`RepoError::NotFound`] when no browser session has that secret.
    /// - [`RepoError::Unavailable`] when the store fails.
    async fn find_by_cookie_with_user(
        &self,
        hash: &TokenHash,
    ) -> Result<(Session, User), RepoError>;

    /// Spends a refresh token and makes `replacement` current, in one atomic step:
    /// - the current token of an active session last used after `idle_since`:
    ///   [`Rotation::Rotated`], `last_used_at = now`;
    /// - a token already spent: the session is revoked, [`Rotation::Reused`];
    /// - the current token of a revoked or expired session, or of one last used at or before
    ///   `idle_since` (idle): [`Rotation::Inactive`], nothing changed.
    ///
    /// Of two concurrent calls with the same token, exactly one rotates.
    ///
    /// # Errors
    /// [`RepoError::NotFound`] when the token was never issued.
    async fn rotate_refresh_token(
        &self,
        presented: &TokenHash,
        replacement: &TokenHash,
        now: OffsetDateTime,
        idle_since: OffsetDateTime,
    ) -> Result<Rotation, RepoError>;

    /// Records that a session was used at `now` (moves `last_used_at` forward, never back).
    ///
    /// # Errors
    /// [`RepoError::NotFound`] when there is no such session.
    async fn touch(&self, id: SessionId, now: OffsetDateTime) -> Result<(), RepoError>;

    /// Revokes one session. Revoking a revoked session changes nothing.
    ///
    /// # Errors
    /// [`RepoError::NotFound`] when there is no such session.
    async fn revoke(&self, id: SessionId, now: OffsetDateTime) -> Result<(), RepoError>;

    /// Revokes every active session of `user` except `keep`, returning how many it revoked.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails.
    async fn revoke_all(
        &self,
        user: UserId,
        keep: Option<SessionId>,
        now: OffsetDateTime,
    ) -> Result<u64, RepoError>;

    /// The user's sessions that are active at `now`, newest first.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails.
    async fn list_active(
        &self,
        user: UserId,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, RepoError>;

    /// Counts the sessions of all users that are active at `now`, for metrics.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails.
    async fn count_active(&self, now: OffsetDateTime) -> Result<u64, RepoError>;

    /// Deletes sessions that expired or were revoked before `before`, returning how many.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails.
    async fn purge(&self, before: OffsetDateTime) -> Result<u64, RepoError>;
}
