use time::OffsetDateTime;

use super::Mail;
use crate::domain::{OneTimeToken, TokenHash, TokenPurpose, UserId};
use crate::error::RepoError;

/// Single-use tokens mailed to users (email verification, password reset), stored by the
/// SHA-256 of their secret and deleted with their user.
#[cfg_attr(any(test, feature = "testing"), mockall::automock)]
#[async_trait::async_trait]
pub trait OneTimeTokenStore: Send + Sync + 'static {
    /// In one transaction: deletes every earlier token of `token.user_id` for
    /// `token.purpose` (a newer token kills the older ones), stores this one under `hash`,
    /// and queues `mail` (the message carrying it) in the [`MailOutbox`](super::MailOutbox)
    /// of the same database, due at `token.created_at`. Either all of it is written or none.
    ///
    /// # Errors
    /// - [`RepoError::NotFound`] when the user does not exist; nothing is written, no mail
    ///   queued.
    /// - [`RepoError::Unavailable`] when the store fails.
    async fn issue(
        &self,
        hash: &TokenHash,
        token: &OneTimeToken,
        mail: &Mail,
    ) -> Result<(), RepoError>;

    /// Returns the token stored under `hash` when it serves `purpose` and has not expired
    /// (`expires_at > now`), leaving it in place: to check a link before the work that spends
    /// it (a new password the policy may refuse), then [`consume`](Self::consume) it.
    ///
    /// # Errors
    /// - [`RepoError::NotFound`] when no such token works now, as for `consume`.
    /// - [`RepoError::Unavailable`] when the store fails.
    async fn find(
        &self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        now: OffsetDateTime,
    ) -> Result<OneTimeToken, RepoError>;

    /// Deletes and returns the token stored under `hash`, when it serves `purpose` and has
    /// not expired (`expires_at > now`), in one atomic step: of concurrent calls with one
    /// token, exactly one gets it.
    ///
    /// # Errors
    /// - [`RepoError::NotFound`] when no such token works now: unknown, used, superseded,
    ///   expired, or issued for another purpose (that token is left as it is).
    /// - [`RepoError::Unavailable`] when the store fails.
    async fn consume(
        &self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        now: OffsetDateTime,
    ) -> Result<OneTimeToken, RepoError>;

    /// Deletes every token of `user` for `purpose` (after a password reset, say), returning
    /// how many.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails.
    async fn revoke_all(&self, user: UserId, purpose: TokenPurpose) -> Result<u64, RepoError>;

    /// Deletes tokens that expired before `before`, returning how many.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails.
    async fn purge(&self, before: OffsetDateTime) -> Result<u64, RepoError>;
}
