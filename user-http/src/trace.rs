//! Request logs for the HTTP server: a request id (`x-request-id`, returned to the client) and
//! the client's address on every line of a request, one INFO line per response with its
//! status and latency, and a "request failed" line for a response that is not the client's
//! mistake, at the level of one table, the same as `user_grpc::trace` (ARCHITECTURE.md, "Log
//! levels"); see [`level`]:
//!
//! - INFO only: a client error (4xx: a refused token, a bad form, a made-up path), the
//!   service working as designed.
//! - WARN: overload, throttling and timeouts: 408, 429, and a 503 with `Retry-After` (the
//!   server is busy and says when to come back).
//! - ERROR: any other server error (5xx: unavailable, internal).
//!
//! ```no_run
//! # async fn run(app: axum::Router) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! user_http::serve(listener, app, user_http::trace::layer(), std::future::pending()).await
//! # }
//! ```

use std::time::Duration;

use http::{StatusCode, header};
use tower::layer::util::Stack;
use tower_http::classify::{ServerErrorsAsFailures, ServerErrorsFailureClass, SharedClassifier};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{
    DefaultOnBodyChunk, DefaultOnEos, DefaultOnRequest, MakeSpan, OnFailure, OnResponse, TraceLayer,
};
use tracing::{Level, Span};

/// The tower-http trace layer with our span and levels ([`LogResponse`], [`LogFailure`]).
pub type HttpTraceLayer = TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    RequestSpan,
    DefaultOnRequest,
    LogResponse,
    DefaultOnBodyChunk,
    DefaultOnEos,
    LogFailure,
>;

/// [`layer`]: a request id (kept when the client sent one), the trace, and the id copied to
/// the response.
pub type RequestLayer =
    Stack<Stack<PropagateRequestIdLayer, HttpTraceLayer>, SetRequestIdLayer<MakeRequestUuid>>;

/// Sets a request id on each request, traces it with [`trace_layer`] and returns the id in
/// the `x-request-id` response header.
pub fn layer() -> RequestLayer {
    Stack::new(
        Stack::new(PropagateRequestIdLayer::x_request_id(), trace_layer()),
        SetRequestIdLayer::x_request_id(MakeRequestUuid),
    )
}

/// One span per request ([`RequestSpan`]), one INFO line per response ([`LogResponse`]), a
/// "request failed" line at WARN or ERROR by [`level`]. Needs the request id set by an outer layer (as [`layer`] does) for the span
/// to carry it.
pub fn trace_layer() -> HttpTraceLayer {
    TraceLayer::new_for_http()
        .make_span_with(RequestSpan)
        .on_response(LogResponse)
        .on_failure(LogFailure)
}

/// Logs each response at INFO ("finished processing request", with its status and latency),
/// then, unless the [`level`] of the response is INFO, a "request failed" line at that level.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogResponse;

impl<B> OnResponse<B> for LogResponse {
    fn on_response(self, response: &http::Response<B>, latency: Duration, _span: &Span) {
        let status = response.status().as_u16();
        let latency_ms = latency.as_millis();
        tracing::info!(status, latency_ms, "finished processing request");
        match level(response) {
            Level::INFO => {}
            Level::WARN => tracing::warn!(status, latency_ms, "request failed"),
            _ => tracing::error!(status, latency_ms, "request failed"),
        }
    }
}

/// Logs what [`LogResponse`] cannot see: an error of the service or of the response body,
/// at ERROR. A 5xx status is [`LogResponse`]'s to log.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogFailure;

impl OnFailure<ServerErrorsFailureClass> for LogFailure {
    fn on_failure(&mut self, failure: ServerErrorsFailureClass, latency: Duration, _span: &Span) {
        if let ServerErrorsFailureClass::Error(error) = failure {
            let latency_ms = latency.as_millis();
            tracing::error!(error, latency_ms, "request failed");
        }
    }
}

/// The level a response is logged at (the table of the [module](self)): INFO for success and
/// the client's mistakes, WARN for overload, throttling and timeouts (408, 429, a 503 with
/// `Retry-After`), ERROR for any other server error.
pub fn level<B>(response: &http::Response<B>) -> Level {
    let status = response.status();
    match status {
        StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => Level::WARN,
        StatusCode::SERVICE_UNAVAILABLE if response.headers().contains_key(header::RETRY_AFTER) => {
            Level::WARN
        }
        _ if status.is_server_error() => Level::ERROR,
        _ => Level::INFO,
    }
}

/// The span of one request: its request id (`x-request-id`), the TCP peer's address (from
/// axum's `ConnectInfo`, which [`serve`](crate::serve) provides), the method and the path
/// without its query string. Every log line of the request carries them. The services log the
/// client address they derive, proxies included, with each sign-in.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &http::Request<B>) -> Span {
        let id = request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let peer = request
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip().to_string())
            .unwrap_or_default();
        tracing::info_span!("request", request_id = %id, peer = %peer, method = %request.method(), path = %request.uri().path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, retry_after: bool) -> http::Response<()> {
        let mut response = http::Response::builder().status(status);
        if retry_after {
            response = response.header(header::RETRY_AFTER, "1");
        }
        response.body(()).unwrap()
    }

    #[test]
    fn client_errors_are_info_overload_and_timeouts_warn_server_faults_error() {
        for status in [200, 303, 400, 401, 403, 404, 409, 413, 415, 422] {
            assert_eq!(level(&response(status, false)), Level::INFO, "{status}");
        }
        assert_eq!(level(&response(401, true)), Level::INFO);
        for (status, retry_after) in [(408, false), (429, true), (429, false), (503, true)] {
            assert_eq!(
                level(&response(status, retry_after)),
                Level::WARN,
                "{status} {retry_after}"
            );
        }
        for status in [500, 502, 503, 504] {
            assert_eq!(level(&response(status, false)), Level::ERROR, "{status}");
        }
    }
}
