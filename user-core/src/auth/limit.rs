//! Per-client-address rate limits (sign-ins, registrations, reset requests), and per-key ones
//! (an email address, an account), in memory: each instance counts its own clients.
//! Configured by [`super::AuthPolicy`]; the limiter crate stays private. Time comes from the
//! services' [`crate::ports::Clock`], so a test that moves its clock sees allowances come back.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, Reference as _};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use sha2::{Digest as _, Sha256};

use crate::domain::ClientInfo;
use crate::error::AuthError;
use crate::metrics as names;
use crate::ports;

/// The services' clock as governor's: its [`ports::Clock::monotonic`] reading, which never
/// goes back (the system clock's is the process's monotonic time), so a wall clock stepped
/// back cannot hold allowances, nor stop the sweep of idle keys, for the size of the step.
#[derive(Clone)]
pub(crate) struct PortClock(Arc<dyn ports::Clock>);

impl PortClock {
    pub(crate) fn new(clock: Arc<dyn ports::Clock>) -> Self {
        Self(clock)
    }
}

impl Clock for PortClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(self.0.monotonic())
    }
}

/// A per-client-address allowance (sign-ins or registrations), in memory, on the services'
/// clock (governor's fake one in the sweep tests below).
pub(crate) struct AddressLimit<C: Clock = PortClock> {
    what: &'static str,
    limiter: RateLimiter<IpAddr, DashMapStateStore<IpAddr>, C, NoOpMiddleware<C::Instant>>,
    /// When idle addresses were last forgotten, in seconds since `started`.
    last_sweep: AtomicU64,
    started: C::Instant,
}

impl AddressLimit {
    /// At most `n` a minute per client address, on `clock`.
    pub(crate) fn per_minute(
        what: &'static str,
        n: NonZeroU32,
        clock: Arc<dyn ports::Clock>,
    ) -> Self {
        Self::with_clock(what, Quota::per_minute(n), PortClock::new(clock))
    }

    /// At most `n` an hour per client address, on `clock`.
    pub(crate) fn per_hour(
        what: &'static str,
        n: NonZeroU32,
        clock: Arc<dyn ports::Clock>,
    ) -> Self {
        Self::with_clock(what, Quota::per_hour(n), PortClock::new(clock))
    }
}

impl<C: Clock> AddressLimit<C> {
    /// Idle addresses are forgotten when the table holds more than this...
    const SWEEP_ABOVE: usize = 10_000;
    /// ...at most this often, so a flood of addresses cannot make every request pay a scan.
    const SWEEP_EVERY_SECS: u64 = 10;

    fn with_clock(what: &'static str, quota: Quota, clock: C) -> Self {
        let started = clock.now();
        Self {
            what,
            limiter: RateLimiter::dashmap_with_clock(quota, clock),
            last_sweep: AtomicU64::new(0),
            started,
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
        let now = Duration::from(self.limiter.clock().now().duration_since(self.started)).as_secs();
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

/// A per-key allowance (an email address's reset requests, an account's verification
/// resends), in memory, on the services' clock. Keys are kept as SHA-256 digests, so the
/// table never holds an address.
pub(crate) struct KeyLimit {
    what: &'static str,
    limiter: RateLimiter<[u8; 32], DashMapStateStore<[u8; 32]>, PortClock, NoOpMiddleware<Nanos>>,
    checks: AtomicU64,
}

impl KeyLimit {
    /// Forget idle keys when the table holds more than this, every 1,024 checks.
    const SWEEP_ABOVE: usize = 10_000;

    /// At most `n` an hour per key (bursts of `n`), on `clock`.
    pub(crate) fn per_hour(
        what: &'static str,
        n: NonZeroU32,
        clock: Arc<dyn ports::Clock>,
    ) -> Self {
        Self {
            what,
            limiter: RateLimiter::dashmap_with_clock(Quota::per_hour(n), PortClock::new(clock)),
            checks: AtomicU64::new(0),
        }
    }

    /// Refuses `key` once it used up its allowance.
    pub(crate) fn check(&self, key: &str) -> Result<(), AuthError> {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        if self
            .checks
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(1024)
            && self.limiter.len() > Self::SWEEP_ABOVE
        {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&digest).map_err(|not_until| {
            let what = self.what;
            metrics::counter!(names::RATE_LIMITED_TOTAL, "what" => what).increment(1);
            tracing::warn!(what, "rate limited");
            let retry_after = not_until.wait_time_from(self.limiter.clock().now());
            AuthError::Throttled {
                retry_after: retry_after.max(Duration::from_secs(1)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use governor::clock::FakeRelativeClock;

    use super::*;

    type Limit = AddressLimit<FakeRelativeClock>;

    /// One sign-in a minute per address, on a clock the test moves.
    fn one_a_minute() -> (Limit, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let quota = Quota::per_minute(NonZeroU32::MIN);
        (Limit::with_clock("sign-in", quota, clock.clone()), clock)
    }

    fn client(ip: impl Into<IpAddr>) -> ClientInfo {
        ClientInfo::new(None, Some(&ip.into().to_string()))
    }

    /// Checks `n` addresses never seen before, from `first` on; each is let through.
    fn flood(limit: &Limit, first: u32, n: u32) {
        for i in first..first + n {
            limit
                .check(&client(Ipv4Addr::from(i)))
                .expect("a fresh address is let through");
        }
    }

    fn refused(limit: &Limit, ip: Ipv4Addr) -> bool {
        matches!(
            limit.check(&client(ip)),
            Err(AuthError::Throttled { retry_after }) if retry_after >= Duration::from_secs(1)
        )
    }

    const FLOOD: u32 = Limit::SWEEP_ABOVE as u32 + 1;
    const FIRST: u32 = 0x0a00_0000; // 10.0.0.0
    const SECOND: u32 = 0x0b00_0000; // 11.0.0.0
    const HOT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

    #[test]
    fn a_flood_of_addresses_is_swept_at_most_every_ten_seconds_and_spares_a_limited_one() {
        let (limit, clock) = one_a_minute();
        assert_eq!(Limit::SWEEP_EVERY_SECS, 10);

        // 10,001 addresses at 0 s: none is idle yet, so nothing can be forgotten. An address
        // used once at `u` is forgettable from `u + 2 min` (governor keeps a state until it
        // is indistinguishable from a fresh one).
        flood(&limit, FIRST, FLOOD);
        assert_eq!(limit.limiter.len(), FLOOD as usize);

        // 10,001 more at 115 s. A sweep runs (more than 10 s since the start) but forgets
        // nobody: the first flood is forgettable only from 120 s.
        clock.advance(Duration::from_secs(115));
        flood(&limit, SECOND, FLOOD);
        assert_eq!(limit.limiter.len(), 2 * FLOOD as usize);

        // 121 s: the first flood is idle, and an address spends its allowance.
        clock.advance(Duration::from_secs(6));
        limit.check(&client(HOT)).expect("the first sign-in passes");
        assert!(
            refused(&limit, HOT),
            "the second within a minute is refused"
        );
        // Only 6 s since the last sweep: the idle addresses are still there.
        assert_eq!(limit.limiter.len(), 2 * FLOOD as usize + 1);

        // 125 s, 10 s after the last sweep: the next request sweeps. The first flood is
        // forgotten; the second flood and the limited address are not.
        clock.advance(Duration::from_secs(4));
        flood(&limit, 0x0c00_0000, 1);
        assert_eq!(limit.limiter.len(), FLOOD as usize + 2);
        assert!(
            refused(&limit, HOT),
            "a swept table still refuses the limited address"
        );

        // A forgotten address starts afresh, once; a remembered one is still limited.
        limit
            .check(&client(Ipv4Addr::from(FIRST)))
            .expect("a forgotten address starts afresh");
        assert!(refused(&limit, Ipv4Addr::from(FIRST)));
        assert!(refused(&limit, Ipv4Addr::from(SECOND)));
    }

    #[test]
    fn below_the_threshold_idle_addresses_are_kept() {
        let (limit, clock) = one_a_minute();
        flood(&limit, FIRST, FLOOD - 1);
        clock.advance(Duration::from_secs(3600));
        // A known address again: the table stays at 10,000 entries, so no sweep runs,
        // however long they have been idle.
        limit
            .check(&client(Ipv4Addr::from(FIRST)))
            .expect("an idle address is let through");
        assert_eq!(limit.limiter.len(), FLOOD as usize - 1);
    }

    /// Checks `n` new keys, `key-<first>` on.
    fn fill(limit: &KeyLimit, first: usize, n: usize) {
        for i in first..first + n {
            limit.check(&format!("key-{i}")).unwrap();
        }
    }

    /// Checks a known key until the check counter reaches the next multiple of 1,024 (the
    /// check that may sweep) and one past it.
    fn checks_through_the_next_sweep(limit: &KeyLimit) {
        let done = limit.checks.load(Ordering::Relaxed);
        for _ in done..=done.next_multiple_of(1024) {
            let _ = limit.check("key-0");
        }
    }

    #[test]
    fn above_the_threshold_idle_keys_are_forgotten_at_the_1024th_check() {
        let clock = Arc::new(crate::testing::FixedClock::default());
        let limit = KeyLimit::per_hour("password-reset", NonZeroU32::MIN, clock.clone());
        fill(&limit, 0, KeyLimit::SWEEP_ABOVE + 1);
        // Governor keeps a key's state until it is indistinguishable from a fresh one: two
        // periods after its use.
        clock.advance(Duration::from_secs(2 * 3600 + 1));
        checks_through_the_next_sweep(&limit);
        assert!(limit.limiter.len() <= 1, "{}", limit.limiter.len());
        // And a forgotten key has its whole allowance, as an idle one had.
        limit.check("key-1").unwrap();
    }

    #[test]
    fn below_the_threshold_idle_keys_are_kept() {
        let clock = Arc::new(crate::testing::FixedClock::default());
        let limit = KeyLimit::per_hour("password-reset", NonZeroU32::MIN, clock.clone());
        fill(&limit, 0, 100);
        clock.advance(Duration::from_secs(2 * 3600 + 1));
        checks_through_the_next_sweep(&limit);
        assert_eq!(limit.limiter.len(), 100);
    }

    /// The limits run on the services' clock: moving a fake one brings an allowance back,
    /// without sleeping, and only once the quota's interval has passed on it.
    #[test]
    fn an_allowance_comes_back_when_the_injected_clock_moves() {
        let clock = Arc::new(crate::testing::FixedClock::default());
        let by_address = AddressLimit::per_minute("sign-in", NonZeroU32::MIN, clock.clone());
        let by_key = KeyLimit::per_hour("password-reset", NonZeroU32::MIN, clock.clone());
        let hot = client(HOT);

        by_address.check(&hot).expect("the first sign-in passes");
        by_key
            .check("a@example.com")
            .expect("the first request passes");
        let r = by_address.check(&hot);
        assert!(
            matches!(r, Err(AuthError::Throttled { retry_after }) if retry_after == Duration::from_secs(60)),
            "{r:?}"
        );
        let r = by_key.check("a@example.com");
        assert!(
            matches!(r, Err(AuthError::Throttled { retry_after }) if retry_after == Duration::from_secs(3600)),
            "{r:?}"
        );

        // Just short of the interval: still refused, and told how long is left.
        clock.advance(Duration::from_secs(59));
        let r = by_address.check(&hot);
        assert!(
            matches!(r, Err(AuthError::Throttled { retry_after }) if retry_after == Duration::from_secs(1)),
            "{r:?}"
        );
        clock.advance(Duration::from_secs(1));
        by_address
            .check(&hot)
            .expect("a minute later on the injected clock, the address may sign in again");

        clock.advance(Duration::from_secs(58 * 60));
        assert!(matches!(
            by_key.check("a@example.com"),
            Err(AuthError::Throttled { .. })
        ));
        clock.advance(Duration::from_secs(60));
        by_key
            .check("a@example.com")
            .expect("an hour later on the injected clock, the key is let through again");
    }
}
