use time::OffsetDateTime;

use crate::domain::{SignInChallenge, TokenHash, TotpFactor, UserId};
use crate::error::RepoError;

/// Second factors: each user's authenticator-app factor (at most one, pending or confirmed),
/// their recovery codes (stored by SHA-256), the browsers they trust to skip the second step,
/// and the sign-in challenges between the password step and the code step. Everything here
/// is deleted with its user.
#[cfg_attr(any(test, feature = "testing"), mockall::automock)]
#[async_trait::async_trait]
pub trait SecondFactorStore: Send + Sync + 'static {
    /// The factor of `user`, pending or confirmed.
    ///
    /// # Errors
    /// - [`RepoError::NotFound`] when the user has none.
    /// - [`RepoError::Unavailable`] when the store fails.
    async fn factor(&self, user: UserId) -> Result<TotpFactor, RepoError>;

    /// Stores `factor` as the user's pending enrolment (its `confirmed_at` and
    /// `last_used_step` are ignored and stored empty), replacing a pending one, and says
    /// whether it did: `false` when the user has a confirmed factor, which is left as it is.
    ///
    /// # Errors
    /// - [`RepoError::NotFound`] when the user does not exist.
    /// - [`RepoError::Unavailable`] when the store fails.
    async fn begin_enrolment(&self, factor: &TotpFactor) -> Result<bool, RepoError>;

    /// In one transaction: confirms the pending factor of `user` at `now` with `step` as its
    /// last used step, and replaces the user's recovery codes with `recovery_codes` (a set:
    /// a code given twice is stored once).
    ///
    /// # Errors
    /// - [`RepoError::NotFound`] when the user has no pending factor (none, or confirmed
    ///   already); nothing is written.
    /// - [`RepoError::Unavailable`] when the store fails.
    async fn confirm_enrolment(
        &self,
        user: UserId,
        step: i64,
        recovery_codes: &[TokenHash],
        now: OffsetDateTime,
    ) -> Result<(), RepoError>;

    /// Records `step` as the last used step of the confirmed factor of `user` when it is later
    /// than the stored one, in one atomic step, and says whether it did: of concurrent calls
    /// with one step, exactly one gets `true`; a step at or before the stored one gets
    /// `false` (a replayed code).
    ///
    /// # Errors
    /// - [`RepoError::NotFound`] when the user has no confirmed factor.
    /// - [`RepoError::Unavailable`] when the store fails.
    async fn use_step(&self, user: UserId, step: i64) -> Result<bool, RepoError>;

    /// Replaces every recovery code of `user` with `recovery_codes` (a set, as for
    /// `confirm_enrolment`), in one transaction.
    ///
    /// # Errors
    /// - [`RepoError::NotFound`] when the user has no confirmed factor; nothing is written.
    /// - [`RepoError::Unavailable`] when the store fails.
    async fn replace_recovery_codes(
        &self,
        user: UserId,
        recovery_codes: &[TokenHash],
    ) -> Result<(), RepoError>;

    /// Deletes the recovery code of `user` stored under `code`, in one atomic step, and says
    /// whether there was one: of concurrent calls with one code, exactly one gets `true`.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails.
    async fn use_recovery_code(&self, user: UserId, code: &TokenHash) -> Result<bool, RepoError>;

    /// How many unused recovery codes `user` has.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails.
    async fn recovery_codes_left(&self, user: UserId) -> Result<u32, RepoError>;

    /// Deletes the factor of `user` (pending or confirmed), their recovery codes and their
    /// trusted browsers, and says whether there was a factor.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails.
    async fn remove(&self, user: UserId) -> Result<bool, RepoError>;

    /// Trusts the device whose token hashes to `device` to skip the second step for `user`
    /// until `until` (replacing an earlier mark of the same device and user).
    ///
    /// # Errors
    /// - [`RepoError::NotFound`] when the user does not exist.
    /// - [`RepoError::Unavailable`] when the store fails.
    async fn trust_device(
        &self,
        device: &TokenHash,
        user: UserId,
        until: OffsetDateTime,
    ) -> Result<(), RepoError>;

    /// Whether `device` is trusted for `user` at `now` (a mark whose `until` is after `now`).
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails.
    async fn is_trusted(
        &self,
        device: &TokenHash,
        user: UserId,
        now: OffsetDateTime,
    ) -> Result<bool, RepoError>;

    /// Stores a sign-in challenge under the hash of its secret.
    ///
    /// # Errors
    /// - [`RepoError::NotFound`] when the user does not exist.
    /// - [`RepoError::Unavailable`] when the store fails.
    async fn create_challenge(
        &self,
        hash: &TokenHash,
        challenge: &SignInChallenge,
    ) -> Result<(), RepoError>;

    /// The challenge stored under `hash` when it has not expired (`expires_at > now`), left in
    /// place: a wrong code does not end it.
    ///
    /// # Errors
    /// - [`RepoError::NotFound`] when no such challenge works now (unknown, used, expired).
    /// - [`RepoError::Unavailable`] when the store fails.
    async fn find_challenge(
        &self,
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> Result<SignInChallenge, RepoError>;

    /// Deletes and returns the challenge stored under `hash` when it has not expired, in one
    /// atomic step: of concurrent calls with one challenge, exactly one gets it.
    ///
    /// # Errors
    /// - [`RepoError::NotFound`] when no such challenge works now, as for `find_challenge`.
    /// - [`RepoError::Unavailable`] when the store fails.
    async fn consume_challenge(
        &self,
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> Result<SignInChallenge, RepoError>;

    /// Deletes challenges and trusted-device marks that expired before `expired_before`, and
    /// pending enrolments started before `pending_before`; returns how many rows went.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails.
    async fn purge(
        &self,
        expired_before: OffsetDateTime,
        pending_before: OffsetDateTime,
    ) -> Result<u64, RepoError>;
}
