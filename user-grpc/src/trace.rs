//! Request logs for the gRPC server: a request id and the client's address on every line of a
//! call, one line per call, and a failed call logged at a level that says whose fault it is.
//!
//! The level follows one table, the same as `user_http::trace` (ARCHITECTURE.md, "Log
//! levels"); see [`level`]:
//!
//! - INFO: the caller's mistake (a refused token, a bad argument, a missing user, a method
//!   that does not exist...): the service working as designed.
//! - WARN: overload, throttling and timeouts (`RESOURCE_EXHAUSTED`, `DEADLINE_EXCEEDED`,
//!   `CANCELLED`): nobody's bug, but worth watching.
//! - ERROR: the server's fault (`INTERNAL`, `UNAVAILABLE`, `UNKNOWN`, `DATA_LOSS`) or a
//!   transport error.
//!
//! Tower-http's default for gRPC logs every non-OK status as an ERROR.
//!
//! ```no_run
//! # async fn run(routes: user_grpc::GrpcRoutes) -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:50051").await?;
//! user_grpc::serve(listener, routes, user_grpc::trace::layer(), std::future::pending()).await?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use tonic::Code;
use tower::layer::util::Stack;
use tower_http::classify::{GrpcErrorsAsFailures, GrpcFailureClass, SharedClassifier};
use tower_http::request_id::{MakeRequestUuid, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, MakeSpan, OnFailure, TraceLayer};
use tracing::{Level, Span};

/// The tower-http trace layer with our span and failure levels.
pub type GrpcTraceLayer = TraceLayer<
    SharedClassifier<GrpcErrorsAsFailures>,
    RequestSpan,
    tower_http::trace::DefaultOnRequest,
    DefaultOnResponse,
    tower_http::trace::DefaultOnBodyChunk,
    tower_http::trace::DefaultOnEos,
    LogFailure,
>;

/// [`layer`]: a request id (`x-request-id`, kept when the client sent one), then the trace.
pub type RequestLayer = Stack<GrpcTraceLayer, SetRequestIdLayer<MakeRequestUuid>>;

/// Sets a request id on each call, then traces it with [`trace_layer`].
pub fn layer() -> RequestLayer {
    Stack::new(
        trace_layer(),
        SetRequestIdLayer::x_request_id(MakeRequestUuid),
    )
}

/// One span per call ([`RequestSpan`]), one INFO line when the response starts, and each
/// failure at the level of [`LogFailure`]. Needs the request id set by an outer layer
/// (as [`layer`] does) for the span to carry it.
pub fn trace_layer() -> GrpcTraceLayer {
    TraceLayer::new_for_grpc()
        .make_span_with(RequestSpan)
        .on_response(DefaultOnResponse::new().level(Level::INFO))
        .on_failure(LogFailure)
}

/// The span of one call: its request id (`x-request-id`), the TCP peer's address, the HTTP
/// method and the path (`/package.Service/Method`). Every log line of the call carries them.
/// The services log the client address they derive, proxies included, with each sign-in.
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
            .get::<tonic::transport::server::TcpConnectInfo>()
            .and_then(|c| c.remote_addr())
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        tracing::info_span!("request", request_id = %id, peer = %peer, method = %request.method(), path = %request.uri().path())
    }
}

/// Logs a failed call at its [`level`]: "request refused" at INFO, "request failed" at WARN
/// or ERROR.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogFailure;

impl OnFailure<GrpcFailureClass> for LogFailure {
    fn on_failure(&mut self, failure: GrpcFailureClass, latency: Duration, _span: &Span) {
        let latency_ms = latency.as_millis();
        match failure {
            GrpcFailureClass::Status(status) => {
                let code = Code::from(status.code_raw());
                match level(code) {
                    Level::INFO => tracing::info!(code = ?code, latency_ms, "request refused"),
                    Level::WARN => tracing::warn!(code = ?code, latency_ms, "request failed"),
                    _ => tracing::error!(code = ?code, latency_ms, "request failed"),
                }
            }
            GrpcFailureClass::Error(error) => {
                tracing::error!(error, latency_ms, "request failed");
            }
            other => tracing::error!(failure = %other, latency_ms, "request failed"),
        }
    }
}

/// The level a call that ended with `code` is logged at (the table of the [module](self)):
/// INFO for the caller's mistakes (the codes google.rpc.Code maps to a 4xx, plus
/// `UNIMPLEMENTED`, which our server answers only to a method it does not have), WARN for
/// overload, throttling and timeouts, ERROR for the server's faults.
pub fn level(code: Code) -> Level {
    match code {
        Code::Ok
        | Code::InvalidArgument
        | Code::NotFound
        | Code::AlreadyExists
        | Code::PermissionDenied
        | Code::FailedPrecondition
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unimplemented
        | Code::Unauthenticated => Level::INFO,
        Code::ResourceExhausted | Code::DeadlineExceeded | Code::Cancelled => Level::WARN,
        Code::Unknown | Code::Internal | Code::Unavailable | Code::DataLoss => Level::ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_errors_are_info_overload_and_timeouts_warn_server_faults_error() {
        for code in [
            Code::InvalidArgument,
            Code::Unauthenticated,
            Code::PermissionDenied,
            Code::NotFound,
            Code::AlreadyExists,
            Code::FailedPrecondition,
            Code::OutOfRange,
            Code::Unimplemented,
        ] {
            assert_eq!(level(code), Level::INFO, "{code:?}");
        }
        for code in [
            Code::ResourceExhausted,
            Code::DeadlineExceeded,
            Code::Cancelled,
        ] {
            assert_eq!(level(code), Level::WARN, "{code:?}");
        }
        for code in [
            Code::Internal,
            Code::Unavailable,
            Code::Unknown,
            Code::DataLoss,
        ] {
            assert_eq!(level(code), Level::ERROR, "{code:?}");
        }
    }
}
