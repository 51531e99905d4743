//! Feature `metrics`: [`MetricsLayer`] counts and times each call by method and status code,
//! under the names of [`user_core::metrics`] ([`GRPC_REQUESTS_TOTAL`](names::GRPC_REQUESTS_TOTAL),
//! [`GRPC_REQUEST_DURATION_SECONDS`](names::GRPC_REQUEST_DURATION_SECONDS)), through the
//! [`metrics`](https://docs.rs/metrics) facade: the application installs the recorder.
//!
//! The `method` label is a method this server answers, or `unknown`: made-up paths cannot
//! grow the label set.
//!
//! ```no_run
//! # async fn run(routes: user_grpc::GrpcRoutes) -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:50051").await?;
//! let layers = (user_grpc::trace::layer(), user_grpc::metrics::MetricsLayer);
//! user_grpc::serve(listener, routes, layers, std::future::pending()).await?;
//! # Ok(()) }
//! ```

use std::collections::HashSet;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;

use user_core::metrics as names;

/// The gRPC methods this server answers, as request paths (`/user.UserService/LoginUser`):
/// every RPC of the descriptor set generated from `user-grpc/proto` (the one reflection
/// serves), plus gRPC health and reflection v1, which [`routes`](crate::routes) adds.
pub fn known_methods() -> &'static HashSet<String> {
    static METHODS: OnceLock<HashSet<String>> = OnceLock::new();
    METHODS.get_or_init(|| {
        let mut methods = descriptor::methods(crate::pb::FILE_DESCRIPTOR_SET);
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
pub fn method_label(path: &str) -> &'static str {
    known_methods().get(path).map_or("unknown", String::as_str)
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
pub struct MetricsLayer;

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = Metrics<S>;
    fn layer(&self, inner: S) -> Metrics<S> {
        Metrics { inner }
    }
}

/// The service [`MetricsLayer`] makes.
#[derive(Debug, Clone)]
pub struct Metrics<S> {
    inner: S,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B, R> tower::Service<http::Request<B>> for Metrics<S>
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
        let method = method_label(request.uri().path());
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
            metrics::counter!(names::GRPC_REQUESTS_TOTAL, "method" => method, "code" => code)
                .increment(1);
            metrics::histogram!(names::GRPC_REQUEST_DURATION_SECONDS, "method" => method)
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
        let proto = include_str!("../proto/user.proto");
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
        let known: HashSet<String> = known_methods()
            .iter()
            .filter(|m| m.starts_with("/user."))
            .cloned()
            .collect();
        assert!(expected.len() >= 5, "{expected:?}");
        assert_eq!(known, expected);
        for service in [
            crate::pb::user_service_server::SERVICE_NAME,
            crate::pb::admin_service_server::SERVICE_NAME,
        ] {
            assert!(known.iter().any(|m| m.starts_with(&format!("/{service}/"))));
        }
    }

    #[test]
    fn other_grpc_paths_are_unknown() {
        assert_eq!(
            method_label("/user.UserService/LoginUser"),
            "/user.UserService/LoginUser"
        );
        assert_eq!(
            method_label("/grpc.health.v1.Health/Check"),
            "/grpc.health.v1.Health/Check"
        );
        for path in [
            "/user.UserService/Nope",
            "/user.UserService/LoginUser/",
            "/junk.Service/Method",
            "/",
            "",
        ] {
            assert_eq!(method_label(path), "unknown", "{path}");
        }
    }
}
