//! gRPC health that follows a readiness check: a task runs the check every interval and sets
//! the status of the whole server (`""`) and of our two services, for as long as the routes
//! serving the health service exist.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::MissedTickBehavior;
use tonic::server::NamedService;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower::Service;
use user_core::Readiness;

use crate::pb::{admin_service_server, user_service_server};

/// The names whose status follows readiness: the whole server and our two services.
const REPORTED: [&str; 3] = [
    "",
    user_service_server::SERVICE_NAME,
    admin_service_server::SERVICE_NAME,
];

/// The shortest interval between two checks: `tokio::time::interval` refuses zero.
const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// Stops the readiness task when the last copy of it is dropped: dropping the sender wakes the
/// task's receiver.
#[derive(Debug)]
struct StopOnDrop {
    _stop: oneshot::Sender<()>,
}

/// A service that keeps the readiness task alive as long as any clone of it exists: in the
/// routes, their clones, and the server running them.
#[derive(Debug, Clone)]
pub(crate) struct Followed<S> {
    inner: S,
    _task: Arc<StopOnDrop>,
}

impl<S: NamedService> NamedService for Followed<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, R> Service<R> for Followed<S>
where
    S: Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.inner.call(request)
    }
}

/// Spawns the task that runs `check` every `interval` and reports through `reporter`, and
/// returns the health `service` tied to it: the task ends once every clone of the returned
/// service is dropped.
///
/// # Panics
/// Outside a Tokio runtime.
pub(crate) fn follow<S>(
    check: Readiness,
    interval: Duration,
    reporter: HealthReporter,
    service: S,
) -> Followed<S> {
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        tokio::select! {
            _ = stopped => {}
            () = report(check, interval, reporter) => {}
        }
    });
    Followed {
        inner: service,
        _task: Arc::new(StopOnDrop { _stop: stop }),
    }
}

/// Runs `check` every `interval` (the first at once) and, when its answer changes, sets every
/// reported name to SERVING or NOT_SERVING and logs the change once. A check that takes
/// longer than the interval counts as not ready. Never returns.
async fn report(check: Readiness, interval: Duration, reporter: HealthReporter) {
    let interval = interval.max(MIN_INTERVAL);
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // `routes` starts every name SERVING.
    let mut ready = true;
    loop {
        ticks.tick().await;
        let now_ready = tokio::time::timeout(interval, check())
            .await
            .unwrap_or(false);
        if now_ready == ready {
            continue;
        }
        ready = now_ready;
        let status = if ready {
            tracing::info!("readiness check passes again: gRPC health reports SERVING");
            ServingStatus::Serving
        } else {
            tracing::warn!("readiness check fails: gRPC health reports NOT_SERVING");
            ServingStatus::NotServing
        };
        for name in REPORTED {
            reporter.set_service_status(name, status).await;
        }
    }
}
