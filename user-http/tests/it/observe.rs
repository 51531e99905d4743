//! The request logs and metrics of `user_http::trace` and `user_http::metrics`: a client
//! error is logged at INFO, overload and timeouts at WARN and a server error at ERROR, every
//! line of a request carries
//! its request id and peer, and made-up paths and methods cannot grow the metrics' label set.

use axum::http::{Method, StatusCode};
use axum::routing::get;
use user_core::testing::observe::{captured_logs, level, prometheus, series};

use crate::TestApp;
use crate::agent::Agent;

/// The adapter plus host routes that always fail (500; 408, 429 and 503 with `Retry-After`
/// as overload and timeouts; 503 without as unavailable), served with the trace and metrics
/// layers.
async fn spawn() -> (TestApp, String, tokio::sync::oneshot::Sender<()>) {
    let app = TestApp::new().await;
    let host = axum::Router::new()
        .route(
            "/observe/boom",
            get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
        )
        .route(
            "/observe/timeout",
            get(|| async { StatusCode::REQUEST_TIMEOUT }),
        )
        .route(
            "/observe/throttled",
            get(|| async { (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "60")]) }),
        )
        .route(
            "/observe/busy",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "1")]) }),
        )
        .route(
            "/observe/down",
            get(|| async { StatusCode::SERVICE_UNAVAILABLE }),
        )
        .merge(app.router.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let layers = (user_http::trace::layer(), user_http::metrics::MetricsLayer);
        user_http::serve(listener, host, layers, async {
            stopped.await.ok();
        })
        .await
        .unwrap();
    });
    (app, base, stop)
}

#[tokio::test]
async fn client_errors_log_at_info_overload_at_warn_and_server_errors_at_error() {
    captured_logs();
    let (_app, base, stop) = spawn().await;
    let mut agent = Agent::new(&base);
    let refused = "/api/v1/admin/users/00000000-0000-0000-0000-00000000abcd";
    assert_eq!(agent.get(refused).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        agent.get("/observe/made-up").await.status,
        StatusCode::NOT_FOUND
    );
    let boom = agent.get("/observe/boom").await;
    assert_eq!(boom.status, StatusCode::INTERNAL_SERVER_ERROR);
    let id = boom.headers["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let busy = ["/observe/timeout", "/observe/throttled", "/observe/busy"];
    for (path, status) in busy
        .into_iter()
        .zip([408, 429, 503])
        .chain([("/observe/down", 503)])
    {
        assert_eq!(agent.get(path).await.status.as_u16(), status, "{path}");
    }
    stop.send(()).unwrap();

    let text = captured_logs();
    let of = |path: &str| -> Vec<&str> {
        text.lines()
            .filter(|l| l.contains(&format!("path={path}}}")))
            .collect()
    };
    for path in [refused, "/observe/made-up"] {
        let lines = of(path);
        assert!(
            lines
                .iter()
                .any(|l| l.contains("finished processing request")),
            "{path}: {text}"
        );
        for line in lines {
            assert_ne!(level(line), "ERROR", "{line}");
        }
    }
    let failed = |path: &str| -> Vec<&str> {
        of(path)
            .into_iter()
            .filter(|l| l.contains("request failed"))
            .collect()
    };
    for path in busy {
        let lines = failed(path);
        assert_eq!(lines.len(), 1, "{path}: {text}");
        assert_eq!(level(lines[0]), "WARN", "{}", lines[0]);
    }
    for path in ["/observe/down", "/observe/boom"] {
        let lines = failed(path);
        assert_eq!(lines.len(), 1, "{path}: {text}");
        assert_eq!(level(lines[0]), "ERROR", "{}", lines[0]);
    }
    let lines = of("/observe/boom");
    // Every line of a request carries its id (the one returned to the client) and its peer.
    for line in lines {
        assert!(line.contains(&format!("request_id={id} ")), "{line}");
        assert!(line.contains("peer=127.0.0.1 "), "{line}");
    }
}

// Other tests of this binary record too (a POST to a missing page is a new `unmatched`
// series), so this checks the series it can cause.
#[tokio::test]
async fn requests_are_counted_by_route_template_and_made_up_ones_share_labels() {
    let handle = prometheus();
    let (_app, base, stop) = spawn().await;
    let mut agent = Agent::new(&base);

    let user = "/api/v1/admin/users/00000000-0000-0000-0000-00000000abcd";
    assert_eq!(agent.get(user).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(agent.get("/healthz").await.status, StatusCode::OK);
    let junk = Method::from_bytes(b"JUNK1000").unwrap();
    agent.call(junk, "/healthz").await;
    agent.get("/junk/1000").await;
    let before = handle.render();
    for i in 0..30 {
        assert_eq!(
            agent.get(&format!("/junk/{i}")).await.status,
            StatusCode::NOT_FOUND
        );
        agent.get(&format!("/api/v1/junk{i}")).await;
        let junk = Method::from_bytes(format!("JUNK{i}").as_bytes()).unwrap();
        assert_eq!(
            agent.call(junk, "/healthz").await.status,
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
    let after = handle.render();
    stop.send(()).unwrap();

    for expected in [
        "http_requests_total{method=\"GET\",route=\"/api/v1/admin/users/{id}\",status=\"401\"}",
        "http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"}",
        "http_requests_total{method=\"other\",route=\"/healthz\",status=\"405\"}",
        "http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}",
    ] {
        assert!(
            after.contains(expected),
            "{expected} missing from:\n{after}"
        );
    }
    let names = |page| {
        let mut all = series(page, "http_requests_total");
        all.extend(series(page, "http_request_duration_seconds"));
        all
    };
    let made_up: Vec<_> = names(&after)
        .into_iter()
        .filter(|s| s.to_lowercase().contains("junk") || s.contains("00000000"))
        .collect();
    assert!(
        made_up.is_empty(),
        "made-up names became labels: {made_up:#?}"
    );
    let shared = |page| {
        names(page)
            .into_iter()
            .filter(|s| {
                s.contains("method=\"other\"") || s.contains("method=\"GET\",route=\"unmatched\"")
            })
            .count()
    };
    assert_eq!(shared(&before), shared(&after), "{after}");
}
