//! The log subscriber and the Prometheus recorder with its `/metrics` page. The request logs
//! and request metrics come from the adapters' layers (`user_http::trace`,
//! `user_grpc::metrics`...); metric names and meanings are listed in `user_core::metrics`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use user_core::Storage;

use super::cli::LogFormat;

/// Installs the log subscriber once (tests may call it again).
pub(crate) fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The process-wide Prometheus recorder.
pub(crate) fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ])
            .unwrap_or_else(|_| PrometheusBuilder::new())
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed");
        }
        handle
    })
}

/// `GET /metrics`: the Prometheus text format, with the active sessions and the mail waiting
/// in the outbox counted on scrape.
pub(crate) fn metrics_route(storage: Storage) -> axum::Router {
    let handle = prometheus().clone();
    let (sessions, outbox) = (storage.sessions, storage.outbox);
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let (handle, sessions, outbox) = (handle.clone(), sessions.clone(), outbox.clone());
            async move {
                let clock = user_core::ports::SystemClock;
                let _ = user_core::maintenance::record_active_sessions(&*sessions, &clock).await;
                let _ = user_core::mail::record_pending_mail(&*outbox, &clock).await;
                handle.run_upkeep();
                handle.render()
            }
        }),
    )
}
