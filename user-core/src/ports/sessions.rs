use time::OffsetDateTime;

use crate::domain::{
    DeviceToken, LoginFailures, NewSession, Rotation, Session, SessionId, ThrottleKey, TokenHash,
    UserId,
};
use crate::error::RepoError;

/// Sessions, their secrets, device tokens, and the guess budgets (failed-login counters).
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

    /// The failures counted for `key`, if any.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails.
    async fn login_failures(&self, key: &ThrottleKey) -> Result<Option<LoginFailures>, RepoError>;

    /// Compare-and-set of the failures of `key`: stores `next` only if the stored value is
    /// still `expected` (`None`: no row), and says whether it did. Of concurrent calls with
    /// the same `expected`, exactly one succeeds; this is what lets the service reserve a
    /// guess before checking a password, so that concurrent guesses cannot pass the lock.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails.
    async fn swap_login_failures(
        &self,
        key: &ThrottleKey,
        expected: Option<LoginFailures>,
        next: &LoginFailures,
    ) -> Result<bool, RepoError>;

    /// Forgets the failures of `key` (after a successful login, or an admin's unlock).
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails.
    async fn clear_login_failures(&self, key: &ThrottleKey) -> Result<(), RepoError>;

    /// Deletes failure counts whose last failure is older than `before`, returning how many.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails.
    async fn purge_login_failures(&self, before: OffsetDateTime) -> Result<u64, RepoError>;

    /// Stores a device token (by the hash of its secret) for `device.user_id`, or, when that
    /// hash is already stored for the same user, moves its expiry to `device.expires_at`.
    ///
    /// # Errors
    /// - [`RepoError::NotFound`] when the user does not exist.
    /// - [`RepoError::Unavailable`] when the store fails.
    async fn create_device(&self, hash: &TokenHash, device: &DeviceToken) -> Result<(), RepoError>;

    /// Deletes every device token of `user` (after a password change or a sign-out
    /// everywhere), returning how many.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails.
    async fn delete_devices(&self, user: UserId) -> Result<u64, RepoError>;

    /// The device token whose secret hashes to `hash`, expired or not. Device tokens are
    /// deleted with their user.
    ///
    /// # Errors
    /// [`RepoError::NotFound`] when there is none.
    async fn find_device(&self, hash: &TokenHash) -> Result<DeviceToken, RepoError>;

    /// Deletes device tokens that expired before `before`, returning how many.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails.
    async fn purge_devices(&self, before: OffsetDateTime) -> Result<u64, RepoError>;
}
