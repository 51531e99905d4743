//! Housekeeping a running service does: [`record_active_sessions`] sets the
//! [`SESSIONS_ACTIVE`](crate::metrics::SESSIONS_ACTIVE) gauge (call it when metrics are
//! scraped), and in the background [`purge_periodically`] deletes, at a fixed interval until
//! shutdown, what no longer counts:
//!
//! - sessions that ended (expired or revoked) more than [`PurgePolicy::keep_ended`] ago, with
//!   their secrets (a week by default: a user still sees recently ended sessions);
//! - guess counts whose last failure is older than the lockout's `forget_after` (they count
//!   no more);
//! - expired device tokens and one-time tokens (email verification, password reset);
//! - dead letters (mail the outbox gave up on) older than [`PurgePolicy::keep_dead_letters`];
//! - audit events older than [`PurgePolicy::keep_audit_events`] (the retention);
//! - expired sign-in challenges and trusted-browser marks, and authenticator-app enrolments
//!   left unconfirmed for [`PurgePolicy::KEEP_PENDING_ENROLMENT`].
//!
//! ```no_run
//! # async fn run(storage: user_core::Storage) {
//! use std::sync::Arc;
//! use user_core::auth::AuthPolicy;
//! use user_core::maintenance::{PurgePolicy, purge_periodically};
//! use user_core::ports::SystemClock;
//!
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let purge = PurgePolicy::new(&AuthPolicy::default());
//! let task = tokio::spawn(purge_periodically(storage, Arc::new(SystemClock), purge, async {
//!     let _ = stopped.await;
//! }));
//! // ... serve; then:
//! let _ = stop.send(());
//! let _ = task.await;
//! # }
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::Storage;
use crate::auth::AuthPolicy;
use crate::error::{RepoError, report};
use crate::ports::{Clock, SessionStore};

/// When and what [`purge_periodically`] deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgePolicy {
    /// Time between two purges; the first runs at once. Less than [`PurgePolicy::MIN_EVERY`]
    /// (zero included) counts as that minimum.
    pub every: Duration,
    /// How long ended sessions are kept before they are deleted.
    pub keep_ended: Duration,
    /// Guess counts whose last failure is older than this are deleted.
    pub forget_failures_after: Duration,
    /// How long the record of a mail the outbox gave up on is kept for operators.
    pub keep_dead_letters: Duration,
    /// How long audit events are kept (the audit log's retention).
    pub keep_audit_events: Duration,
}

impl PurgePolicy {
    /// The shortest time between two purges: a shorter `every` is raised to it.
    pub const MIN_EVERY: Duration = Duration::from_secs(1);
    /// How long audit events are kept by default: a year.
    pub const DEFAULT_AUDIT_RETENTION: Duration = Duration::from_secs(365 * 24 * 3600);
    /// How long an authenticator-app enrolment may stay unconfirmed before it is deleted.
    pub const KEEP_PENDING_ENROLMENT: Duration = Duration::from_secs(24 * 3600);

    /// Every hour, keeping ended sessions a week, dead letters 30 days and audit events 365
    /// days, forgetting failures after the policy's `lockout.forget_after`.
    pub fn new(policy: &AuthPolicy) -> Self {
        Self {
            every: Duration::from_secs(3600),
            keep_ended: Duration::from_secs(7 * 24 * 3600),
            forget_failures_after: policy.lockout.forget_after,
            keep_dead_letters: Duration::from_secs(30 * 24 * 3600),
            keep_audit_events: Self::DEFAULT_AUDIT_RETENTION,
        }
    }
}

/// How many rows one purge deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Ended sessions, with their secrets.
    pub sessions: u64,
    /// Guess counts that count no more.
    pub guess_counts: u64,
    /// Expired device tokens.
    pub devices: u64,
    /// Expired one-time tokens.
    pub one_time_tokens: u64,
    /// Old dead letters.
    pub dead_letters: u64,
    /// Audit events past the retention.
    pub audit_events: u64,
    /// Expired sign-in challenges and trusted-browser marks, abandoned enrolments.
    pub second_factor: u64,
}

/// Deletes, once, what no longer counts at `now` (see the [module](self) docs).
///
/// # Errors
/// [`RepoError::Unavailable`] when the store fails; what was deleted before stays deleted.
pub async fn purge_once(
    storage: &Storage,
    now: OffsetDateTime,
    policy: &PurgePolicy,
) -> Result<Purged, RepoError> {
    let before = |age: Duration| {
        time::Duration::try_from(age).map_or(OffsetDateTime::UNIX_EPOCH, |age| {
            now.checked_sub(age).unwrap_or(OffsetDateTime::UNIX_EPOCH)
        })
    };
    Ok(Purged {
        sessions: storage.sessions.purge(before(policy.keep_ended)).await?,
        guess_counts: storage
            .login_failures
            .purge(before(policy.forget_failures_after))
            .await?,
        devices: storage.devices.purge(now).await?,
        one_time_tokens: storage.tokens.purge(now).await?,
        dead_letters: storage
            .outbox
            .purge(before(policy.keep_dead_letters))
            .await?,
        audit_events: storage
            .audit
            .purge(before(policy.keep_audit_events))
            .await?,
        second_factor: storage
            .factors
            .purge(now, before(PurgePolicy::KEEP_PENDING_ENROLMENT))
            .await?,
    })
}

/// Runs [`purge_once`] every `policy.every`, at least [`PurgePolicy::MIN_EVERY`] (the first
/// at once) until `shutdown` completes.
/// Each purge that deleted something is logged at INFO with its counts; a failed purge is
/// logged at WARN and retried at the next interval.
pub async fn purge_periodically(
    storage: Storage,
    clock: Arc<dyn Clock>,
    policy: PurgePolicy,
    shutdown: impl Future<Output = ()>,
) {
    // `tokio::time::interval` panics on a zero period.
    let mut interval = tokio::time::interval(policy.every.max(PurgePolicy::MIN_EVERY));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = interval.tick() => {
                match purge_once(&storage, clock.now(), &policy).await {
                    Ok(n) if n == Purged::default() => {}
                    Ok(n) => tracing::info!(
                        sessions = n.sessions,
                        guess_counts = n.guess_counts,
                        devices = n.devices,
                        one_time_tokens = n.one_time_tokens,
                        dead_letters = n.dead_letters,
                        audit_events = n.audit_events,
                        second_factor = n.second_factor,
                        "purged"
                    ),
                    Err(e) => tracing::warn!(error = %report(&e), "purge failed"),
                }
            }
        }
    }
}

/// Counts the sessions active now and sets the
/// [`SESSIONS_ACTIVE`](crate::metrics::SESSIONS_ACTIVE) gauge through the `metrics` facade
/// (to the application's recorder), for example on each scrape of a `/metrics` page. Returns
/// the count.
///
/// # Errors
/// [`RepoError::Unavailable`] when the store fails; the gauge then keeps its last value.
pub async fn record_active_sessions(
    sessions: &dyn SessionStore,
    clock: &dyn Clock,
) -> Result<u64, RepoError> {
    let active = sessions.count_active(clock.now()).await?;
    metrics::gauge!(crate::metrics::SESSIONS_ACTIVE).set(active as f64);
    Ok(active)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::ports::{
        MockAuditLog, MockDeviceTokenStore, MockLoginFailureStore, MockMailOutbox,
        MockOneTimeTokenStore, MockSecondFactorStore, MockSessionStore, MockUserRepository,
    };
    use crate::testing::FixedClock;

    const HOUR: Duration = Duration::from_secs(3600);

    fn policy() -> PurgePolicy {
        PurgePolicy {
            every: HOUR,
            keep_ended: 7 * 24 * HOUR,
            forget_failures_after: 24 * HOUR,
            keep_dead_letters: 30 * 24 * HOUR,
            keep_audit_events: 90 * 24 * HOUR,
        }
    }

    /// Storage over mocks: the users are never touched; one-time tokens and dead letters
    /// purge nothing unless given.
    fn storage(
        sessions: MockSessionStore,
        login_failures: MockLoginFailureStore,
        devices: MockDeviceTokenStore,
    ) -> Storage {
        let mut tokens = MockOneTimeTokenStore::new();
        tokens.expect_purge().returning(|_| Ok(0));
        let mut outbox = MockMailOutbox::new();
        outbox.expect_purge().returning(|_| Ok(0));
        let mut audit = MockAuditLog::new();
        audit.expect_purge().returning(|_| Ok(0));
        let mut factors = MockSecondFactorStore::new();
        factors.expect_purge().returning(|_, _| Ok(0));
        storage_with(
            sessions,
            login_failures,
            devices,
            tokens,
            outbox,
            audit,
            factors,
        )
    }

    fn storage_with(
        sessions: MockSessionStore,
        login_failures: MockLoginFailureStore,
        devices: MockDeviceTokenStore,
        tokens: MockOneTimeTokenStore,
        outbox: MockMailOutbox,
        audit: MockAuditLog,
        factors: MockSecondFactorStore,
    ) -> Storage {
        Storage {
            users: Arc::new(MockUserRepository::new()),
            sessions: Arc::new(sessions),
            login_failures: Arc::new(login_failures),
            devices: Arc::new(devices),
            tokens: Arc::new(tokens),
            outbox: Arc::new(outbox),
            audit: Arc::new(audit),
            factors: Arc::new(factors),
        }
    }

    #[tokio::test]
    async fn one_purge_passes_each_cut_off() {
        let clock = FixedClock::default();
        let now = clock.now();
        let mut sessions = MockSessionStore::new();
        sessions
            .expect_purge()
            .withf(move |before| *before == now - time::Duration::days(7))
            .times(1)
            .returning(|_| Ok(3));
        let mut failures = MockLoginFailureStore::new();
        failures
            .expect_purge()
            .withf(move |before| *before == now - time::Duration::days(1))
            .times(1)
            .returning(|_| Ok(2));
        let mut devices = MockDeviceTokenStore::new();
        devices
            .expect_purge()
            .withf(move |before| *before == now)
            .times(1)
            .returning(|_| Ok(1));
        let mut tokens = MockOneTimeTokenStore::new();
        tokens
            .expect_purge()
            .withf(move |before| *before == now)
            .times(1)
            .returning(|_| Ok(4));
        let mut outbox = MockMailOutbox::new();
        outbox
            .expect_purge()
            .withf(move |before| *before == now - time::Duration::days(30))
            .times(1)
            .returning(|_| Ok(5));
        let mut audit = MockAuditLog::new();
        audit
            .expect_purge()
            .withf(move |before| *before == now - time::Duration::days(90))
            .times(1)
            .returning(|_| Ok(6));
        let mut factors = MockSecondFactorStore::new();
        factors
            .expect_purge()
            .withf(move |expired, pending| {
                *expired == now && *pending == now - time::Duration::days(1)
            })
            .times(1)
            .returning(|_, _| Ok(7));
        let store = storage_with(sessions, failures, devices, tokens, outbox, audit, factors);
        let purged = purge_once(&store, now, &policy()).await.unwrap();
        assert_eq!(
            purged,
            Purged {
                sessions: 3,
                guess_counts: 2,
                devices: 1,
                one_time_tokens: 4,
                dead_letters: 5,
                audit_events: 6,
                second_factor: 7,
            }
        );
    }

    #[tokio::test]
    async fn cut_offs_before_the_epoch_do_not_overflow() {
        let mut sessions = MockSessionStore::new();
        sessions
            .expect_purge()
            .withf(|before| *before == OffsetDateTime::UNIX_EPOCH)
            .returning(|_| Ok(0));
        let mut failures = MockLoginFailureStore::new();
        failures
            .expect_purge()
            .withf(|before| *before == OffsetDateTime::UNIX_EPOCH)
            .returning(|_| Ok(0));
        let mut devices = MockDeviceTokenStore::new();
        devices.expect_purge().returning(|_| Ok(0));
        let store = storage(sessions, failures, devices);
        let policy = PurgePolicy {
            keep_ended: Duration::MAX,
            forget_failures_after: Duration::from_secs(u64::MAX / 2),
            ..policy()
        };
        purge_once(&store, OffsetDateTime::UNIX_EPOCH, &policy)
            .await
            .unwrap();
    }

    /// A store whose purges count their calls; the first purge of sessions fails.
    fn counting_store(calls: &Arc<AtomicUsize>) -> Storage {
        let mut sessions = MockSessionStore::new();
        let seen = Arc::clone(calls);
        sessions.expect_purge().returning(move |_| {
            if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(RepoError::unavailable("disk on fire"))
            } else {
                Ok(1)
            }
        });
        let mut failures = MockLoginFailureStore::new();
        failures.expect_purge().returning(|_| Ok(0));
        let mut devices = MockDeviceTokenStore::new();
        devices.expect_purge().returning(|_| Ok(0));
        storage(sessions, failures, devices)
    }

    /// Runs `record_active_sessions` under a recorder of its own; the rendered page.
    fn record_with(sessions: MockSessionStore) -> (Result<u64, RepoError>, String) {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let result = metrics::with_local_recorder(&recorder, || {
            runtime.block_on(record_active_sessions(&sessions, &FixedClock::default()))
        });
        (result, handle.render())
    }

    #[test]
    fn active_sessions_are_counted_now_and_set_the_gauge() {
        let now = FixedClock::default().now();
        let mut sessions = MockSessionStore::new();
        sessions
            .expect_count_active()
            .withf(move |at| *at == now)
            .times(1)
            .returning(|_| Ok(7));
        let (result, page) = record_with(sessions);
        assert_eq!(result.unwrap(), 7);
        assert!(
            page.lines()
                .any(|l| l == format!("{} 7", crate::metrics::SESSIONS_ACTIVE)),
            "{page}"
        );
    }

    #[test]
    fn a_failed_count_sets_no_gauge() {
        let mut sessions = MockSessionStore::new();
        sessions
            .expect_count_active()
            .returning(|_| Err(RepoError::unavailable("disk on fire")));
        let (result, page) = record_with(sessions);
        assert!(matches!(result, Err(RepoError::Unavailable(_))));
        assert!(!page.contains(crate::metrics::SESSIONS_ACTIVE), "{page}");
    }

    #[tokio::test(start_paused = true)]
    async fn purges_at_once_then_every_interval_until_shutdown() {
        let calls = Arc::new(AtomicUsize::new(0));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(purge_periodically(
            counting_store(&calls),
            Arc::new(FixedClock::default()),
            policy(),
            async {
                let _ = stopped.await;
            },
        ));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "the first purge runs at once"
        );
        tokio::time::sleep(2 * HOUR).await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            3,
            "one per hour, and a failed purge does not stop the next"
        );
        stop.send(()).unwrap();
        task.await.unwrap();
        tokio::time::sleep(3 * HOUR).await;
        assert_eq!(calls.load(Ordering::SeqCst), 3, "nothing after shutdown");
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_interval_purges_once_a_second_instead_of_panicking() {
        let calls = Arc::new(AtomicUsize::new(0));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(purge_periodically(
            counting_store(&calls),
            Arc::new(FixedClock::default()),
            PurgePolicy {
                every: Duration::ZERO,
                ..policy()
            },
            async {
                let _ = stopped.await;
            },
        ));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 3, "at once, then each second");
        stop.send(()).unwrap();
        task.await.unwrap();
    }
}
