//! Guess budgets: every password check, at sign-in or to confirm a change, spends one guess
//! from a budget kept in the store, reserved before the hash is checked.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use super::policy::LockoutPolicy;
use crate::domain::{LoginFailures, ThrottleKey};
use crate::error::{AuthError, RepoError};
use crate::ports::LoginFailureStore;

/// How many times a reservation retries when concurrent guesses changed the count under it.
/// Each retry means another guess was counted, so giving up (as throttled) is safe.
const MAX_RACES: usize = 8;

/// The outcome of a reservation that was let through.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reserved {
    /// The failures counted, this guess included (it counts until it proves right).
    pub(crate) failures: LoginFailures,
    /// What was stored before.
    previous: Option<LoginFailures>,
}

/// Reserves and settles guesses on the budgets of [`ThrottleKey`]s.
#[derive(Clone)]
pub(crate) struct GuessBudget {
    store: Arc<dyn LoginFailureStore>,
    policy: LockoutPolicy,
}

impl GuessBudget {
    pub(crate) fn new(store: Arc<dyn LoginFailureStore>, policy: LockoutPolicy) -> Self {
        Self { store, policy }
    }

    /// Spends one guess of `key`'s budget before the password is checked: the guess counts as
    /// a failure until [`GuessBudget::clear`] forgets it. While the budget is locked, the
    /// guess is refused with [`AuthError::Throttled`] and the password is never checked.
    ///
    /// The count moves by compare-and-set in the store, so of concurrent guesses at most
    /// `threshold` get through, on one instance or many.
    pub(crate) async fn reserve(
        &self,
        key: &ThrottleKey,
        now: OffsetDateTime,
    ) -> Result<Reserved, AuthError> {
        self.count(key, now, true).await
    }

    /// Counts one failure on `key`'s budget whether or not it is locked (a wrong password
    /// checked on another budget that also weighs on this one).
    pub(crate) async fn add_failure(&self, key: &ThrottleKey, now: OffsetDateTime) {
        if let Err(e) = self.count(key, now, false).await {
            tracing::warn!(error = %crate::error::report(&e), "failure not counted");
        }
    }

    async fn count(
        &self,
        key: &ThrottleKey,
        now: OffsetDateTime,
        refuse_when_locked: bool,
    ) -> Result<Reserved, AuthError> {
        for _ in 0..MAX_RACES {
            let stored = self.store.get(key).await?;
            let current = stored.filter(|f| self.remembered(f, now));
            if refuse_when_locked
                && let Some(retry_after) = current.and_then(|f| self.policy.retry_after(&f, now))
            {
                return Err(AuthError::Throttled { retry_after });
            }
            let next = LoginFailures {
                count: current.map_or(0, |f| f.count).saturating_add(1),
                // Never move the last failure back (clocks of several instances may differ).
                last_failed_at: stored.map_or(now, |f| f.last_failed_at.max(now)),
            };
            if self.store.swap(key, stored, &next).await? {
                return Ok(Reserved {
                    failures: next,
                    previous: stored,
                });
            }
        }
        // Every try lost to another guess on the same budget, each of them counted: a flood.
        tracing::warn!("guess budget contended; attempt refused");
        Err(AuthError::Throttled {
            retry_after: Duration::from_secs(1),
        })
    }

    /// Whether `failures` still count at `now` (not older than `forget_after`).
    fn remembered(&self, failures: &LoginFailures, now: OffsetDateTime) -> bool {
        failures.last_failed_at >= now - std_to_time(self.policy.forget_after)
    }

    /// The guess proved right, or an admin unlocked: the budget is whole again.
    pub(crate) async fn clear(&self, key: &ThrottleKey) -> Result<(), RepoError> {
        self.store.clear(key).await
    }

    /// The guess could not be checked (the hasher was saturated): give it back, unless other
    /// guesses were counted since (then it stays counted, which errs on the safe side).
    pub(crate) async fn release(&self, key: &ThrottleKey, reserved: Reserved) {
        let given_back = match reserved.previous {
            Some(previous) => {
                self.store
                    .swap(key, Some(reserved.failures), &previous)
                    .await
            }
            None => {
                // No row before: a count of zero reads as no failures at all.
                let zero = LoginFailures {
                    count: 0,
                    last_failed_at: reserved.failures.last_failed_at,
                };
                self.store.swap(key, Some(reserved.failures), &zero).await
            }
        };
        if let Err(e) = given_back {
            tracing::warn!(error = %crate::error::report(&e), "unchecked guess not given back");
        }
    }

    /// Whether the budget of `key` is locked at `now`, and for how long.
    pub(crate) async fn locked_for(
        &self,
        key: &ThrottleKey,
        now: OffsetDateTime,
    ) -> Result<Option<Duration>, RepoError> {
        Ok(self
            .store
            .get(key)
            .await?
            .filter(|f| self.remembered(f, now))
            .and_then(|f| self.policy.retry_after(&f, now)))
    }

    /// Whether `failures` lock the budget (the threshold is reached).
    pub(crate) fn locks(&self, failures: &LoginFailures) -> bool {
        failures.count >= self.policy.threshold
    }
}

pub(crate) fn std_to_time(d: Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}
