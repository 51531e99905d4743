use time::OffsetDateTime;

/// The current time. A port so that expiry and lockout are tested without sleeping.
pub trait Clock: Send + Sync + 'static {
    /// The current UTC time.
    fn now(&self) -> OffsetDateTime;
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
    fn the_system_clock_counts_whole_microseconds() {
        for _ in 0..100 {
            assert_eq!(SystemClock.now().nanosecond() % 1_000, 0);
        }
    }
}
