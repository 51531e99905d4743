use time::OffsetDateTime;

use crate::domain::{DeviceToken, TokenHash, UserId};
use crate::error::RepoError;

/// The device tokens given to clients at a successful sign-in, stored by the SHA-256 of their
/// secret. A client that presents a valid one spends its device's own guess budget.
#[cfg_attr(any(test, feature = "testing"), mockall::automock)]
#[async_trait::async_trait]
pub trait DeviceTokenStore: Send + Sync + 'static {
    /// Stores a device token (by the hash of its secret) for `device.user_id`, or, when that
    /// hash is already stored for the same user, moves its expiry to `device.expires_at`. A
    /// hash stored for another user is left as it is.
    ///
    /// # Errors
    /// - [`RepoError::NotFound`] when the user does not exist.
    /// - [`RepoError::Unavailable`] when the store fails.
    async fn save(&self, hash: &TokenHash, device: &DeviceToken) -> Result<(), RepoError>;

    /// The device token whose secret hashes to `hash`, expired or not. Device tokens are
    /// deleted with their user.
    ///
    /// # Errors
    /// [`RepoError::NotFound`] when there is none.
    async fn find(&self, hash: &TokenHash) -> Result<DeviceToken, RepoError>;

    /// Deletes every device token of `user` (after a password change or a sign-out
    /// everywhere), returning how many.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails.
    async fn delete_for_user(&self, user: UserId) -> Result<u64, RepoError>;

    /// Deletes device tokens that expired before `before`, returning how many.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails.
    async fn purge(&self, before: OffsetDateTime) -> Result<u64, RepoError>;
}
