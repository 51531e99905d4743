use std::sync::OnceLock;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

/// The current time. A port so that expiry and lockout are tested without sleeping.
pub trait Clock: Send + Sync + 'static {
    /// The current UTC time.
    fn now(&self) -> OffsetDateTime;

    /// A reading for measuring how much time passes, never below an earlier one: the rate
    /// limits count with it, so that a wall clock stepped back (or forward, then back) does
    /// not hold their allowances for as long as the step. The default is [`Clock::now`]
    /// since the Unix epoch (0 before it), right for a clock that only moves forward, as a
    /// test's does.
    fn monotonic(&self) -> Duration {
        let nanos = self.now().unix_timestamp_nanos().max(0);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

/// The system's wall clock, to the microsecond: the precision of PostgreSQL's `timestamptz`
/// (and of most databases), so a time read back from any store equals the time written.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        let now = OffsetDateTime::now_utc();
        // Cannot fail: the value is below 1,000,000,000 like the nanosecond it comes from.
        now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
            .unwrap_or(now)
    }

    /// The time since this process first asked, on the system's monotonic clock.
    fn monotonic(&self) -> Duration {
        static START: OnceLock<Instant> = OnceLock::new();
        START.get_or_init(Instant::now).elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_tells_utc_time_now() {
        crate::testing::conformance::clock_tells_utc(&SystemClock);
        let (before, now) = (OffsetDateTime::now_utc(), SystemClock.now());
        // Truncated to the microsecond, so up to 1 µs before `before`; a loaded machine may
        // take a while between the two reads, never a minute.
        assert!(
            now >= before - time::Duration::microseconds(1),
            "{before} {now}"
        );
        assert!(now - before < time::Duration::MINUTE, "{before} {now}");
    }

    #[test]
    fn the_system_clock_measures_time_without_going_back() {
        let first = SystemClock.monotonic();
        let mut last = first;
        for _ in 0..1000 {
            let now = SystemClock.monotonic();
            assert!(now >= last, "{last:?} then {now:?}");
            last = now;
        }
        std::thread::sleep(Duration::from_millis(2));
        assert!(SystemClock.monotonic() - first >= Duration::from_millis(2));
    }

    #[test]
    fn a_test_clock_measures_with_its_own_time() {
        let clock = crate::testing::FixedClock::default();
        let before = clock.monotonic();
        clock.advance(Duration::from_secs(20));
        assert_eq!(clock.monotonic() - before, Duration::from_secs(20));
    }

    #[test]
    fn the_system_clock_counts_whole_microseconds() {
        for _ in 0..100 {
            assert_eq!(SystemClock.now().nanosecond() % 1_000, 0);
        }
    }
}
