//! Feature `metrics`: [`MetricsLayer`] counts and times each request by method, route and
//! status, under the names of [`user_core::metrics`]
//! ([`HTTP_REQUESTS_TOTAL`](names::HTTP_REQUESTS_TOTAL),
//! [`HTTP_REQUEST_DURATION_SECONDS`](names::HTTP_REQUEST_DURATION_SECONDS)), through the
//! [`metrics`](https://docs.rs/metrics) facade: the application installs the recorder.
//!
//! The `route` label is the matched route template (`/api/v1/admin/users/{id}`), never the raw
//! path, or `unmatched`; the `method` label is a standard method or `other`: made-up paths
//! and methods cannot grow the label set. The layer must run after routing, as
//! [`serve`](crate::serve)'s layer and [`Router::layer`](axum::Router::layer) do.
//!
//! ```no_run
//! # async fn run(app: axum::Router) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let layers = (user_http::trace::layer(), user_http::metrics::MetricsLayer);
//! user_http::serve(listener, app, layers, std::future::pending()).await
//! # }
//! ```

use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::MatchedPath;
use user_core::metrics as names;

/// tower layer: records each request under its route template and method.
#[derive(Debug, Clone, Copy, Default)]
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
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
        let method = method_label(request.method());
        let start = Instant::now();
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await?;
            let status = response.status().as_u16().to_string();
            metrics::counter!(names::HTTP_REQUESTS_TOTAL, "method" => method, "route" => route.clone(), "status" => status)
                .increment(1);
            metrics::histogram!(names::HTTP_REQUEST_DURATION_SECONDS, "method" => method, "route" => route)
                .record(start.elapsed().as_secs_f64());
            Ok(response)
        })
    }
}

/// The `method` label: a standard method by name; any extension method (`FOO /healthz`
/// reaches the route and gets its 405) is `other`.
pub fn method_label(method: &http::Method) -> &'static str {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_http_methods_are_other() {
        assert_eq!(method_label(&http::Method::GET), "GET");
        assert_eq!(method_label(&http::Method::DELETE), "DELETE");
        let junk = http::Method::from_bytes(b"JUNK42").unwrap();
        assert_eq!(method_label(&junk), "other");
    }
}
