//! The request logs and metrics of `user_http::trace` and `user_http::metrics`: a client
//! error is logged at INFO, overload and timeouts at WARN and a server error at ERROR, every
//! line of a request carries
//! its request id and peer, and made-up paths and methods cannot grow the metrics' label set.

use axum::http::{Method, StatusCode};
use axum::routing::get;
use user_core::testing::observe::{captured_logs, level, local_prometheus, sample, series};

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

/// GETs `path`, asserts its status and returns the request id the server gave it.
async fn get_id(agent: &mut Agent, path: &str, status: u16) -> String {
    let reply = agent.get(path).await;
    assert_eq!(reply.status.as_u16(), status, "{path}: {}", reply.text);
    let id = reply.headers["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    id
}

// The log is process-wide and other tests' servers log too, so each request's lines are
// found by the request id the server returned for it.
#[tokio::test]
async fn client_errors_log_at_info_overload_at_warn_and_server_errors_at_error() {
    captured_logs();
    let (_app, base, stop) = spawn().await;
    let mut agent = Agent::new(&base);
    let refused = "/api/v1/admin/users/00000000-0000-0000-0000-00000000abcd";
    let calm = [
        (refused, get_id(&mut agent, refused, 401).await),
        (
            "/observe/made-up",
            get_id(&mut agent, "/observe/made-up", 404).await,
        ),
    ];
    let boom = get_id(&mut agent, "/observe/boom", 500).await;
    let mut busy = Vec::new();
    for (path, status) in [
        ("/observe/timeout", 408),
        ("/observe/throttled", 429),
        ("/observe/busy", 503),
    ] {
        busy.push((path, get_id(&mut agent, path, status).await));
    }
    let down = get_id(&mut agent, "/observe/down", 503).await;
    stop.send(()).unwrap();

    let text = captured_logs();
    let of = |path: &str, id: &str| -> Vec<&str> {
        text.lines()
            .filter(|l| l.contains(&format!("request_id={id} ")))
            .inspect(|l| assert!(l.contains(&format!("path={path}}}")), "{l}"))
            .collect()
    };
    for (path, id) in &calm {
        let lines = of(path, id);
        assert!(
            lines
                .iter()
                .any(|l| l.contains("finished processing request")),
            "{path} ({id}): {text}"
        );
        for line in lines {
            assert_ne!(level(line), "ERROR", "{line}");
        }
    }
    let failed = |path: &str, id: &str| -> Vec<&str> {
        of(path, id)
            .into_iter()
            .filter(|l| l.contains("request failed"))
            .collect()
    };
    for (path, id) in &busy {
        let lines = failed(path, id);
        assert_eq!(lines.len(), 1, "{path}: {text}");
        assert_eq!(level(lines[0]), "WARN", "{}", lines[0]);
    }
    for (path, id) in [("/observe/down", &down), ("/observe/boom", &boom)] {
        let lines = failed(path, id);
        assert_eq!(lines.len(), 1, "{path}: {text}");
        assert_eq!(level(lines[0]), "ERROR", "{}", lines[0]);
    }
    // Every line of a request carries its id (the one returned to the client) and its peer.
    let lines = of("/observe/boom", &boom);
    assert!(!lines.is_empty(), "{text}");
    for line in lines {
        assert!(line.contains("peer=127.0.0.1 "), "{line}");
    }
}

// The recorder is this test's own (the server's tasks run on the test's thread), so every
// count is exactly this test's calls.
#[tokio::test]
async fn requests_are_counted_by_route_template_and_made_up_ones_share_labels() {
    let recorder = local_prometheus();
    let _local = metrics::set_default_local_recorder(&recorder);
    let handle = recorder.handle();
    let (_app, base, stop) = spawn().await;
    let mut agent = Agent::new(&base);

    let user = "/api/v1/admin/users/00000000-0000-0000-0000-00000000abcd";
    assert_eq!(agent.get(user).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(agent.get("/healthz").await.status, StatusCode::OK);
    // One made-up method and path first, so that their shared series exist in `before`.
    let junk = Method::from_bytes(b"JUNK1000").unwrap();
    assert_eq!(
        agent.call(junk, "/healthz").await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(agent.get("/junk/1000").await.status, StatusCode::NOT_FOUND);
    let before = handle.render();
    for i in 0..30 {
        assert_eq!(
            agent.get(&format!("/junk/{i}")).await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            agent.get(&format!("/api/v1/junk{i}")).await.status,
            StatusCode::NOT_FOUND
        );
        let junk = Method::from_bytes(format!("JUNK{i}").as_bytes()).unwrap();
        assert_eq!(
            agent.call(junk, "/healthz").await.status,
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
    let after = handle.render();
    stop.send(()).unwrap();

    for (expected, calls) in [
        (
            "http_requests_total{method=\"GET\",route=\"/api/v1/admin/users/{id}\",status=\"401\"}",
            1.0,
        ),
        (
            "http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"}",
            1.0,
        ),
        (
            "http_requests_total{method=\"other\",route=\"/healthz\",status=\"405\"}",
            31.0,
        ),
        (
            "http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}",
            61.0,
        ),
    ] {
        assert_eq!(sample(&after, expected), calls, "{expected}:\n{after}");
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
