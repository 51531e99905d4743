//! Per-client-address rate limits (sign-ins, registrations), in memory: each instance counts
//! its own clients. Configured by [`super::AuthPolicy`]; the limiter crate stays private.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::Clock as _;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::domain::ClientInfo;
use crate::error::AuthError;
use crate::metrics as names;

/// A per-client-address allowance (sign-ins or registrations), in memory.
pub(crate) struct AddressLimit {
    what: &'static str,
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    /// When idle addresses were last forgotten, in seconds since `started`.
    last_sweep: AtomicU64,
    started: std::time::Instant,
}

impl AddressLimit {
    /// Idle addresses are forgotten when the table holds more than this...
    const SWEEP_ABOVE: usize = 10_000;
    /// ...at most this often, so a flood of addresses cannot make every request pay a scan.
    const SWEEP_EVERY_SECS: u64 = 10;

    /// At most `n` a minute per client address.
    pub(crate) fn per_minute(what: &'static str, n: NonZeroU32) -> Self {
        Self::new(what, Quota::per_minute(n))
    }

    /// At most `n` an hour per client address.
    pub(crate) fn per_hour(what: &'static str, n: NonZeroU32) -> Self {
        Self::new(what, Quota::per_hour(n))
    }

    fn new(what: &'static str, quota: Quota) -> Self {
        Self {
            what,
            limiter: RateLimiter::keyed(quota),
            last_sweep: AtomicU64::new(0),
            started: std::time::Instant::now(),
        }
    }

    /// Refuses a client address that used up its allowance. Addresses count as
    /// [`ClientInfo::rate_limit_key`] says: IPv6 by its /64.
    pub(crate) fn check(&self, client: &ClientInfo) -> Result<(), AuthError> {
        let Some(key) = client.rate_limit_key() else {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                tracing::warn!(
                    "a request without a client address: per-address rate limits cannot apply \
                     (serve with the peer address, e.g. user_http::serve)"
                );
            });
            return Ok(());
        };
        match self.limiter.check_key(&key) {
            Ok(()) => {
                self.sweep();
                Ok(())
            }
            Err(not_until) => {
                let what = self.what;
                metrics::counter!(names::RATE_LIMITED_TOTAL, "what" => what).increment(1);
                if what == "sign-in" {
                    metrics::counter!(names::LOGINS_TOTAL, "outcome" => "rate_limited")
                        .increment(1);
                }
                tracing::warn!(client_ip = %key, what, "rate limited");
                let retry_after = not_until.wait_time_from(self.limiter.clock().now());
                Err(AuthError::Throttled {
                    retry_after: retry_after.max(Duration::from_secs(1)),
                })
            }
        }
    }

    fn sweep(&self) {
        if self.limiter.len() <= Self::SWEEP_ABOVE {
            return;
        }
        let now = self.started.elapsed().as_secs();
        let last = self.last_sweep.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= Self::SWEEP_EVERY_SECS
            && self
                .last_sweep
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.limiter.retain_recent();
        }
    }
}
