use secrecy::SecretString;

use crate::domain::{Password, PasswordHash};
use crate::error::HashError;

/// The result of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The password is right. `needs_rehash` asks the caller to store a fresh hash made with
    /// the current algorithm and parameters.
    Match {
        /// Whether the stored hash is outdated.
        needs_rehash: bool,
    },
    /// The password is wrong.
    Mismatch,
}

/// Hashes and verifies passwords.
#[cfg_attr(any(test, feature = "testing"), mockall::automock)]
#[async_trait::async_trait]
pub trait PasswordHasher: Send + Sync + 'static {
    /// Hashes a new password with the current parameters and a fresh salt.
    ///
    /// # Errors
    /// - [`HashError::Overloaded`] when too many hashes are already queued.
    /// - [`HashError::Internal`] when hashing itself failed.
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError>;

    /// Checks `candidate` against a stored hash.
    ///
    /// # Errors
    /// - [`HashError::Overloaded`] when too many hashes are already queued.
    /// - [`HashError::Refused`] when the stored hash is malformed, of an unknown scheme, or
    ///   asks for more work than the configured ceiling.
    async fn verify(
        &self,
        candidate: &SecretString,
        hash: &PasswordHash,
    ) -> Result<Verification, HashError>;
}
