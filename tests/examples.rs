//! The examples, run as real processes over fresh SQLite files: `grpc_embed` serves on port 0
//! and `grpc_client` walks through it; `embed_axum` serves on port 0 and is driven over HTTP;
//! `load_test --quick` drives both servers in process. Each is built with
//! `cargo build --example NAME`; the servers print the address they bound (see `support/`).

// Test helpers panic on failure, by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::http::StatusCode;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use support::{Process, build_example};
use user_core::auth::SigningKey;
use user_sqlite::{SqliteConfig, SqliteDatabase};

/// Longest wait for an example to print its address, or to end.
const STARTUP: Duration = Duration::from_secs(30);

/// Starts `example` with `--addr 127.0.0.1:0 --db DIR/users.db` in `dir` and returns it with
/// the address parsed from the first line `bound` finds it in.
async fn serve(
    example: &str,
    dir: &Path,
    bound: impl Fn(&str) -> Option<&str>,
) -> (Process, SocketAddr) {
    let bin = build_example(example);
    let db = dir.join("users.db");
    let args = ["--addr", "127.0.0.1:0", "--db", db.to_str().unwrap()];
    let mut process = Process::start(&bin, &args, dir);
    let addr = process
        .wait_for(STARTUP, |line| bound(line)?.parse::<SocketAddr>().ok())
        .await;
    (process, addr)
}

/// Ctrl-C, then a clean exit.
async fn stop(mut process: Process) {
    process.interrupt();
    let status = process.wait(STARTUP).await;
    assert!(status.success(), "{status:?}:\n{}", process.log());
}

/// The text after `prefix` on the line of `output` that starts with it.
fn after<'a>(output: &'a str, prefix: &str) -> &'a str {
    output
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line `{prefix}...` in:\n{output}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_client_walks_through_the_embedded_server() {
    let dir = tempfile::tempdir().unwrap();
    // `gRPC on http://ADDR (Ctrl-C to stop)`
    let (server, addr) = serve("grpc_embed", dir.path(), |line| {
        line.strip_prefix("gRPC on http://")?
            .split_whitespace()
            .next()
    })
    .await;

    let client = build_example("grpc_client");
    let mut walk = Process::start(&client, &[&format!("http://{addr}"), "walker"], dir.path());
    let status = walk.wait(STARTUP).await;
    let output = walk.log();
    assert!(status.success(), "{status:?}:\n{output}");

    // `registered walker (ID)`
    let registered = after(&output, "registered walker (");
    let id = registered.trim_end_matches(')');
    assert_eq!(id.len(), 36, "a user id: {output}");
    // `host service saw OWNER and returned [...]`: the host saw the signed-in user.
    let seen = after(&output, "host service saw ");
    assert!(seen.starts_with(&format!("{id} and returned")), "{output}");
    assert_eq!(
        after(&output, "logged out: the old token now gets "),
        "Unauthenticated",
        "{output}"
    );
    stop(server).await;
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

async fn call(
    client: &Client,
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (StatusCode, String) {
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let body = match body {
        Some(json) => {
            request = request.header("content-type", "application/json");
            Full::new(Bytes::from(json.to_string()))
        }
        None => Full::new(Bytes::new()),
    };
    let response = client.request(request.body(body).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_axum_host_protects_its_own_routes_with_our_extractors() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // `http://ADDR/  (pages under /auth, API under /auth/api/v1)`
    let (server, addr) = serve("embed_axum", dir.path(), |line| {
        line.strip_prefix("http://")?.split('/').next()
    })
    .await;
    let client: Client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let call = |method, path, token, body| call(&client, addr, method, path, token, body);
    let password = "correct horse battery staple";

    let (status, _) = call("GET", "/", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call("GET", "/dashboard", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("\"code\":\"unauthenticated\""), "{body}");

    let register = serde_json::json!({"username": "alice", "email": "alice@example.com", "password": password});
    let (status, body) = call("POST", "/auth/api/v1/auth/register", None, Some(register)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let user: serde_json::Value = serde_json::from_str(&body)?;
    let login = serde_json::json!({"identifier": "alice", "password": password});
    let (_, body) = call("POST", "/auth/api/v1/auth/login", None, Some(login)).await;
    let tokens: serde_json::Value = serde_json::from_str(&body)?;
    let token = tokens["access_token"].as_str().unwrap_or_default();

    let (status, body) = call("GET", "/dashboard", Some(token), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        format!(
            "dashboard of user {}",
            user["id"].as_str().unwrap_or_default()
        )
    );
    let (status, _) = call("GET", "/operations", Some(token), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "alice is no admin");
    let (status, _) = call("GET", "/auth/login", None, None).await;
    assert_eq!(status, StatusCode::OK, "the pages are mounted under /auth");

    // An admin, made in the example's database the way an operator's tool would, passes
    // `AdminActor`.
    let db = SqliteDatabase::open(&SqliteConfig::new(dir.path().join("users.db"))).await?;
    let ports = user_core::Ports::new(
        db.storage(),
        std::sync::Arc::new(user_core::testing::FastHasher::new()),
        std::sync::Arc::new(user_core::ports::SystemClock),
    );
    let key = SigningKey::generate_ed25519()?;
    let tool = user_core::auth::AuthService::new(ports, Default::default(), &key, vec![])?;
    let form = user_core::auth::RegisterUser {
        username: "root".into(),
        email: "root@example.com".into(),
        password: secrecy::SecretString::from(password),
        display_name: None,
    };
    tool.create_user(form, user_core::domain::Role::Admin)
        .await?;
    db.close().await;
    let login = serde_json::json!({"identifier": "root", "password": password});
    let (_, body) = call("POST", "/auth/api/v1/auth/login", None, Some(login)).await;
    let tokens: serde_json::Value = serde_json::from_str(&body)?;
    let root = tokens["access_token"].as_str().unwrap_or_default();
    let (status, body) = call("GET", "/operations", Some(root), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("operations console for admin"), "{body}");
    stop(server).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_test_runs_every_scenario_and_prints_its_tables() {
    // `--quick`: in process over a temporary SQLite file, half a second per scenario. The
    // exit status says whether every call was answered (shedding aside); the figures are
    // never asserted.
    let dir = tempfile::tempdir().unwrap();
    let bin = build_example("load_test");
    let mut run = Process::start(&bin, &["--quick"], dir.path());
    let status = run.wait(Duration::from_secs(180)).await;
    // Reads stdout to its end: nothing is awaited, so this returns the whole output once the
    // pipe closes.
    let output = run
        .try_wait_for(Duration::from_secs(10), |_| None::<()>)
        .await
        .unwrap_err();
    assert!(status.success(), "{status:?}:\n{output}");

    let header = "| scenario | transport | clients | conns | requests | shed | errors | ok/s | p50 ms | p99 ms |";
    assert!(output.contains(header), "no scenario table in:\n{output}");
    assert!(
        output.contains("| ratio | measured | target | holds? |"),
        "no ratio table in:\n{output}"
    );
    for call in [
        "| read GetUser | gRPC |",
        "| read Health/Check | gRPC |",
        "| read GET /api/v1/me | HTTP |",
        "| read GET /healthz | HTTP |",
        "| write RegisterUser | gRPC |",
        "| write POST /api/v1/auth/refresh | HTTP |",
        "| sign-in LoginUser | gRPC |",
        "| sign-in POST /api/v1/auth/login | HTTP |",
        "| read during flood GetUser | gRPC |",
        "| admin ListUsers (search) | gRPC |",
        "| admin GET /api/v1/admin/users?cursor= | HTTP |",
        "| raw Argon2id",
        "export (in process, to nowhere): ",
    ] {
        assert!(output.contains(call), "no row `{call}` in:\n{output}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dataset_builds_users_and_sessions_and_a_rerun_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bin = build_example("dataset");
    let path = dir.path().join("users.db");
    let url = format!("sqlite:{}", path.display());
    let args = [
        "--users",
        "300",
        "--sessions-every",
        "10",
        "--database-url",
        &url,
    ];
    for expected in [
        "300 users inserted, 0 already present, 0 conflicts, 30 sessions",
        "0 users inserted, 300 already present, 0 conflicts, 0 sessions",
    ] {
        let mut run = Process::start(&bin, &args, dir.path());
        let status = run.wait(Duration::from_secs(120)).await;
        assert!(status.success(), "{status:?}:\n{}", run.log());
        assert!(
            run.log().contains(expected),
            "{expected:?} in:\n{}",
            run.log()
        );
    }
    let db = SqliteDatabase::open(&SqliteConfig::new(&path))
        .await
        .unwrap();
    let storage = db.storage();
    let users = storage.users.export_page(None, 1000).await.unwrap();
    assert_eq!(users.len(), 300);
    assert!(storage.users.count_active_admins().await.unwrap() >= 1);
    assert!(users.iter().any(|(u, _)| u.display_name.is_some()));
    let now = time::OffsetDateTime::now_utc();
    assert_eq!(storage.sessions.count_active(now).await.unwrap(), 30);
    db.close().await;

    // The load test over the dataset: its users sign in with the dataset's password, an
    // admin of it searches and pages, every user is exported, and nobody is registered.
    let load_test = build_example("load_test");
    let scenarios = "reads,writes,signin-few,admin,export";
    let args = ["--quick", "--dataset", &url, "--scenarios", scenarios];
    let mut run = Process::start(&load_test, &args, dir.path());
    let status = run.wait(Duration::from_secs(180)).await;
    let output = run
        .try_wait_for(Duration::from_secs(10), |_| None::<()>)
        .await
        .unwrap_err();
    assert!(status.success(), "{status:?}:\n{output}");
    for row in [
        "| sign-in POST /api/v1/auth/login | HTTP |",
        "| write RefreshToken | gRPC |",
        "| admin GET /api/v1/admin/users?search= | HTTP |",
        "| admin ListUsers (next page) | gRPC |",
        "export (in process, to nowhere): 300 users",
    ] {
        assert!(output.contains(row), "no `{row}` in:\n{output}");
    }
    assert!(!output.contains("RegisterUser"), "{output}");
    let db = SqliteDatabase::open(&SqliteConfig::new(&path))
        .await
        .unwrap();
    let users = db.storage().users.export_page(None, 1000).await.unwrap();
    assert_eq!(users.len(), 300, "the load test registered nobody");
    db.close().await;
}
