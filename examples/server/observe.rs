//! Logs and metrics: a request id on every line of a request, one line per request with
//! method, route, status and latency, and Prometheus counters and histograms.

use std::collections::HashSet;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

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

/// The span of one request: its id (set by `SetRequestIdLayer`), method and path. Every log
/// line of the request carries them; query strings are left out.
pub(crate) fn request_span<B>(request: &http::Request<B>) -> tracing::Span {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    // The TCP peer (HTTP through axum's ConnectInfo, gRPC through tonic's TcpConnectInfo); the
    // services log the client address they derive, proxies included, with each sign-in.
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
        .or_else(|| {
            request
                .extensions()
                .get::<tonic::transport::server::TcpConnectInfo>()
                .and_then(|c| c.remote_addr())
                .map(|a| a.ip())
        });
    let peer = peer.map(|ip| ip.to_string()).unwrap_or_default();
    tracing::info_span!("request", request_id = %id, peer = %peer, method = %request.method(), path = %request.uri().path())
}

/// `GET /metrics`: the Prometheus text format, with the active-session count read on scrape.
pub(crate) fn metrics_route(sessions: user_sqlite::SqliteSessionStore) -> axum::Router {
    use user_core::ports::{Clock as _, SessionStore as _};
    let handle = prometheus().clone();
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let (handle, sessions) = (handle.clone(), sessions.clone());
            async move {
                let now = user_core::ports::SystemClock.now();
                if let Ok(active) = sessions.count_active(now).await {
                    metrics::gauge!("user_sessions_active").set(active as f64);
                }
                handle.run_upkeep();
                handle.render()
            }
        }),
    )
}

/// axum middleware: counts and times each request by route template (never the raw path) and
/// standard method, so made-up paths and methods cannot add series to `/metrics`.
pub(crate) async fn http_metrics(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = http_method_label(request.method());
    let start = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    response
}

/// The standard methods by name; any extension method (`FOO /healthz` reaches the route and
/// gets its 405) is `other`.
fn http_method_label(method: &http::Method) -> &'static str {
    use http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// The gRPC methods this server answers, as request paths (`/user.UserService/LoginUser`):
/// every RPC of the descriptor set generated from `user-grpc/proto` (the one reflection
/// serves), plus gRPC health and reflection v1, which `user_grpc::routes` adds.
pub(crate) fn grpc_methods() -> &'static HashSet<String> {
    static METHODS: OnceLock<HashSet<String>> = OnceLock::new();
    METHODS.get_or_init(|| {
        let mut methods = descriptor::methods(user_grpc::pb::FILE_DESCRIPTOR_SET);
        methods.extend(HEALTH_AND_REFLECTION.iter().map(|m| (*m).to_owned()));
        methods
    })
}

/// The methods of `grpc.health.v1.Health` and `grpc.reflection.v1.ServerReflection`
/// (tonic-health and tonic-reflection 0.14); the server test calls Check and
/// ServerReflectionInfo and checks their labels.
const HEALTH_AND_REFLECTION: &[&str] = &[
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
];

/// The `method` label of a gRPC request path: a method we serve, or `unknown`.
fn grpc_method_label(path: &str) -> &'static str {
    grpc_methods().get(path).map_or("unknown", String::as_str)
}

/// Just enough of `google/protobuf/descriptor.proto` to list the RPCs of a descriptor set;
/// prost skips the other fields.
mod descriptor {
    use std::collections::HashSet;

    use prost::Message as _;

    #[derive(Clone, PartialEq, prost::Message)]
    struct FileDescriptorSet {
        #[prost(message, repeated, tag = "1")]
        file: Vec<FileDescriptorProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    struct FileDescriptorProto {
        #[prost(string, optional, tag = "2")]
        package: Option<String>,
        #[prost(message, repeated, tag = "6")]
        service: Vec<ServiceDescriptorProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    struct ServiceDescriptorProto {
        #[prost(string, optional, tag = "1")]
        name: Option<String>,
        #[prost(message, repeated, tag = "2")]
        method: Vec<MethodDescriptorProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    struct MethodDescriptorProto {
        #[prost(string, optional, tag = "1")]
        name: Option<String>,
    }

    /// `/package.Service/Method` for every RPC in an encoded `FileDescriptorSet`; none if it
    /// does not decode (the set is generated at build time, so the tests would catch that).
    pub(super) fn methods(encoded: &[u8]) -> HashSet<String> {
        let Ok(set) = FileDescriptorSet::decode(encoded) else {
            tracing::warn!("cannot decode the gRPC descriptor set: every gRPC metric is `unknown`");
            return HashSet::new();
        };
        let mut methods = HashSet::new();
        for file in set.file {
            let package = file.package.unwrap_or_default();
            for ServiceDescriptorProto { name, method } in file.service {
                let name = name.unwrap_or_default();
                let service = if package.is_empty() {
                    name
                } else {
                    format!("{package}.{name}")
                };
                for rpc in method {
                    methods.insert(format!("/{service}/{}", rpc.name.unwrap_or_default()));
                }
            }
        }
        methods
    }
}

/// tower layer for the gRPC server: counts and times each call by method and status code.
/// Methods we do not serve share one `unknown` label, so made-up paths cannot grow `/metrics`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GrpcMetricsLayer;

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;
    fn layer(&self, inner: S) -> GrpcMetrics<S> {
        GrpcMetrics { inner }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct GrpcMetrics<S> {
    inner: S,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B, R> tower::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Send,
    S::Future: Send + 'static,
    R: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = grpc_method_label(request.uri().path());
        let start = Instant::now();
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await;
            // Errors are sent "trailers-only", with grpc-status in the headers; a success puts
            // it in the trailers, so a missing header here means OK.
            let code = match &response {
                Ok(r) => r
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("0")
                    .to_owned(),
                Err(_) => "transport_error".to_owned(),
            };
            metrics::counter!("grpc_requests_total", "method" => method, "code" => code)
                .increment(1);
            metrics::histogram!("grpc_request_duration_seconds", "method" => method)
                .record(start.elapsed().as_secs_f64());
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `rpc` of `user.proto`, under its `service`, is a known method, and nothing else
    /// of `package user` is.
    #[test]
    fn the_known_grpc_methods_are_the_rpcs_of_the_proto_file() {
        let proto = include_str!("../../user-grpc/proto/user.proto");
        let mut service = None;
        let mut expected = HashSet::new();
        for line in proto.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("service ") {
                service = rest.split_whitespace().next();
            } else if let Some(rest) = line.strip_prefix("rpc ") {
                let rpc = rest.split('(').next().unwrap_or_default().trim();
                expected.insert(format!("/user.{}/{rpc}", service.unwrap_or_default()));
            }
        }
        let known: HashSet<String> = grpc_methods()
            .iter()
            .filter(|m| m.starts_with("/user."))
            .cloned()
            .collect();
        assert!(expected.len() >= 5, "{expected:?}");
        assert_eq!(known, expected);
        for service in [
            user_grpc::pb::user_service_server::SERVICE_NAME,
            user_grpc::pb::admin_service_server::SERVICE_NAME,
        ] {
            assert!(known.iter().any(|m| m.starts_with(&format!("/{service}/"))));
        }
    }

    #[test]
    fn other_grpc_paths_are_unknown() {
        assert_eq!(
            grpc_method_label("/user.UserService/LoginUser"),
            "/user.UserService/LoginUser"
        );
        assert_eq!(
            grpc_method_label("/grpc.health.v1.Health/Check"),
            "/grpc.health.v1.Health/Check"
        );
        for path in [
            "/user.UserService/Nope",
            "/user.UserService/LoginUser/",
            "/junk.Service/Method",
            "/",
            "",
        ] {
            assert_eq!(grpc_method_label(path), "unknown", "{path}");
        }
    }

    #[test]
    fn extension_http_methods_are_other() {
        assert_eq!(http_method_label(&http::Method::GET), "GET");
        let junk = http::Method::from_bytes(b"JUNK42").unwrap();
        assert_eq!(http_method_label(&junk), "other");
    }
}
