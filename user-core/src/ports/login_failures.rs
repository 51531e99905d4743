use time::OffsetDateTime;

use crate::domain::{LoginFailures, ThrottleKey};
use crate::error::RepoError;

/// The guess budgets: failed sign-ins counted per [`ThrottleKey`] (an account, a device or a
/// typed identifier).
///
/// Every password check reserves its guess here before the hash is checked, by
/// compare-and-set, so the store must be shared by every instance of the service.
#[cfg_attr(any(test, feature = "testing"), mockall::automock)]
#[async_trait::async_trait]
pub trait LoginFailureStore: Send + Sync + 'static {
    /// The failures counted for `key`, if any.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails.
    async fn get(&self, key: &ThrottleKey) -> Result<Option<LoginFailures>, RepoError>;

    /// Compare-and-set of the failures of `key`: stores `next` only if the stored value is
    /// still `expected` (`None`: no row), and says whether it did. Of concurrent calls with
    /// the same `expected`, exactly one succeeds; this is what lets the service reserve a
    /// guess before checking a password, so that concurrent guesses cannot pass the lock.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails.
    async fn swap(
        &self,
        key: &ThrottleKey,
        expected: Option<LoginFailures>,
        next: &LoginFailures,
    ) -> Result<bool, RepoError>;

    /// Forgets the failures of `key` (after a successful sign-in, or an admin's unlock).
    /// Clearing a key with no failures changes nothing.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails.
    async fn clear(&self, key: &ThrottleKey) -> Result<(), RepoError>;

    /// Deletes failure counts whose last failure is older than `before`, returning how many.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails.
    async fn purge(&self, before: OffsetDateTime) -> Result<u64, RepoError>;
}
