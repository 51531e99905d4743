//! Request logs for the HTTP server: a request id (`x-request-id`, returned to the client) and
//! the client's address on every line of a request, one INFO line per response with its
//! status and latency, and an ERROR line only for a server error (5xx). A client error (4xx:
//! a refused token, a bad form, a made-up path) is the service working as designed, so it is
//! logged at INFO only.
//!
//! ```no_run
//! # async fn run(app: axum::Router) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! user_http::serve(listener, app, user_http::trace::layer(), std::future::pending()).await
//! # }
//! ```

use tower::layer::util::Stack;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{
    DefaultOnBodyChunk, DefaultOnEos, DefaultOnFailure, DefaultOnRequest, DefaultOnResponse,
    MakeSpan, TraceLayer,
};
use tracing::{Level, Span};

/// The tower-http trace layer with our span: 5xx are failures, logged at ERROR.
pub type HttpTraceLayer = TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    RequestSpan,
    DefaultOnRequest,
    DefaultOnResponse,
    DefaultOnBodyChunk,
    DefaultOnEos,
    DefaultOnFailure,
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

/// One span per request ([`RequestSpan`]), one INFO line per response, an ERROR line per
/// server error. Needs the request id set by an outer layer (as [`layer`] does) for the span
/// to carry it.
pub fn trace_layer() -> HttpTraceLayer {
    TraceLayer::new_for_http()
        .make_span_with(RequestSpan)
        .on_response(DefaultOnResponse::new().level(Level::INFO))
        .on_failure(DefaultOnFailure::new().level(Level::ERROR))
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
