use time::OffsetDateTime;

use crate::domain::{
    LoginFailures, NewSession, Rotation, Session, SessionId, ThrottleKey, TokenHash, UserId,
};
use crate::error::RepoError;

/// Sessions, their secrets, and the failed-login counters.
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

    /// Spends a refresh token and makes `replacement` current, in one atomic step:
    /// - the current token of an active session: [`Rotation::Rotated`], `last_used_at = now`;
    /// - a token already spent: the session is revoked, [`Rotation::Reused`];
    /// - the current token of a revoked or expired session: [`Rotation::Inactive`].
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
    ) -> Result<Rotation, RepoError>;

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

    /// Counts one more failed login for `key` and returns the new count. A previous count
    /// whose last failure is older than `forget_before` starts again from one. Concurrent
    /// calls never lose a failure.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails.
    async fn record_login_failure(
        &self,
        key: &ThrottleKey,
        now: OffsetDateTime,
        forget_before: OffsetDateTime,
    ) -> Result<LoginFailures, RepoError>;

    /// The failures counted for `key`, if any.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails.
    async fn login_failures(&self, key: &ThrottleKey) -> Result<Option<LoginFailures>, RepoError>;

    /// Forgets the failures of `key` (after a successful login).
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails.
    async fn clear_login_failures(&self, key: &ThrottleKey) -> Result<(), RepoError>;
}
