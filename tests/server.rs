//! The server example, in-process: both protocols on port 0 over a fresh data folder, the
//! signing key kept across restarts, metrics, the legacy import with real bcrypt hashes and an
//! imported user signing in over gRPC, export/import, create-admin, the README's commands,
//! metrics that made-up paths cannot grow, and owner-only data files.

// Test helpers panic on failure, by design; the example's `main` is not called here.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

#[path = "../examples/server/main.rs"]
mod server;

use std::net::SocketAddr;
use std::path::Path;

use bytes::Bytes;
use clap::Parser as _;
use http_body_util::{BodyExt as _, Full};
use secrecy::SecretString;
use server::cli::Cli;
use tonic::metadata::MetadataValue;
use user_grpc::pb;
use user_grpc::pb::user_service_client::UserServiceClient;

const PW: &str = "correct horse battery staple";

fn config(dir: &Path, extra: &[&str]) -> server::cli::Config {
    let mut args = vec![
        "server",
        "--data-dir",
        dir.to_str().unwrap(),
        "--grpc-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    Cli::try_parse_from(args).unwrap().config
}

struct Running {
    grpc: SocketAddr,
    http: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(dir: &Path) -> Running {
    let server = server::Server::bind(config(dir, &[])).await.unwrap();
    let (grpc, http) = server.addrs().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    Running {
        grpc,
        http,
        stop,
        task,
    }
}

impl Running {
    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }

    async fn users(&self) -> UserServiceClient<tonic::transport::Channel> {
        UserServiceClient::connect(format!("http://{}", self.grpc))
            .await
            .unwrap()
    }
}

async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    json: Option<serde_json::Value>,
) -> (u16, String) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    let body = match json {
        Some(v) => {
            request = request.header("content-type", "application/json");
            Full::new(Bytes::from(v.to_string()))
        }
        None => Full::new(Bytes::new()),
    };
    let response = client.request(request.body(body).unwrap()).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value = MetadataValue::try_from(format!("Bearer {token}")).unwrap();
    request.metadata_mut().insert("authorization", value);
    request
}

async fn grpc_login(
    users: &mut UserServiceClient<tonic::transport::Channel>,
    email: &str,
    password: &str,
) -> Result<String, tonic::Status> {
    let request = pb::LoginUserRequest {
        email: email.into(),
        password: password.into(),
        ..Default::default()
    };
    users
        .login_user(request)
        .await
        .map(|r| r.into_inner().token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_both_protocols_and_keeps_its_key_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path()).await;
    assert_eq!(http(running.http, "GET", "/healthz", None).await.0, 200);
    assert_eq!(http(running.http, "GET", "/readyz", None).await.0, 200);

    let register =
        serde_json::json!({"username": "alice", "email": "alice@example.com", "password": PW});
    let (status, body) = http(
        running.http,
        "POST",
        "/api/v1/auth/register",
        Some(register),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let mut users = running.users().await;
    let token = grpc_login(&mut users, "alice@example.com", PW)
        .await
        .unwrap();
    let me = users
        .get_user(authed(pb::GetUserRequest::default(), &token))
        .await
        .unwrap();
    assert_eq!(me.into_inner().user.unwrap().username, "alice");
    assert_eq!(
        http(running.http, "GET", "/login", None).await.0,
        200,
        "the pages are served"
    );

    let (status, metrics) = http(running.http, "GET", "/metrics", None).await;
    assert_eq!(status, 200);
    for expected in [
        "http_requests_total{method=\"POST\",route=\"/api/v1/auth/register\",status=\"201\"}",
        "grpc_requests_total{method=\"/user.UserService/LoginUser\",code=\"0\"}",
        "user_logins_total{outcome=\"success\"}",
        "user_sessions_active",
        "user_hash_wait_seconds",
    ] {
        assert!(
            metrics.contains(expected),
            "{expected} missing from:\n{metrics}"
        );
    }
    running.stop().await;

    let key = dir.path().join("signing-key.pem");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let again = start(dir.path()).await;
    let mut users = again.users().await;
    let me = users
        .get_user(authed(pb::GetUserRequest::default(), &token))
        .await;
    assert!(
        me.is_ok(),
        "a token from before the restart still works: {me:?}"
    );
    again.stop().await;
}

/// The legacy schema, from legacy-wire.md, with hashes as Python wrote them.
async fn legacy_db(path: &Path, rows: &[(&str, &str, &str, Vec<u8>, bool)]) {
    use sqlx::Connection as _;
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    sqlx::query(
        "CREATE TABLE users (id TEXT PRIMARY KEY, username TEXT NOT NULL UNIQUE, \
         email TEXT NOT NULL UNIQUE, hashed_password TEXT NOT NULL)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    for (id, username, email, hash, as_blob) in rows {
        let q = sqlx::query("INSERT INTO users VALUES (?, ?, ?, ?)")
            .bind(*id)
            .bind(*username)
            .bind(*email);
        let q = if *as_blob {
            q.bind(hash.clone())
        } else {
            q.bind(String::from_utf8(hash.clone()).unwrap())
        };
        q.execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_the_legacy_database_and_its_users_sign_in_over_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy.db");
    let bcrypt = |pw: &str| bcrypt::hash(pw, 4).unwrap().into_bytes();
    let alice_id = "6f1c2c0e-3b7a-4d55-9a3e-0c2f7d6b9e11";
    legacy_db(
        &legacy,
        &[
            (
                alice_id,
                "alice",
                "Alice@Example.com",
                bcrypt("hunter2"),
                true,
            ),
            (
                "0b8f6e5e-2f44-4e0c-8f8b-6a1d3c2e7f90",
                "bob",
                "bob@example.com",
                bcrypt("bobs password"),
                false,
            ),
            (
                "2d5e1c7a-9b3f-4a6e-8c1d-5f0e2a4b6c8d",
                "ALICE",
                "alice.other@example.com",
                bcrypt("x"),
                true,
            ),
            (
                "4a7b9c1d-2e3f-4051-8a6b-7c8d9e0f1a2b",
                "x",
                "x@example.com",
                bcrypt("x"),
                true,
            ),
            (
                "5b8c0d2e-3f40-4162-9b7c-8d9e0f1a2b3c",
                "carol",
                "not-an-email",
                bcrypt("x"),
                true,
            ),
            (
                "6c9d1e3f-4051-4273-8c8d-9e0f1a2b3c4d",
                "dave",
                "dave@example.com",
                b"plaintext".to_vec(),
                true,
            ),
            ("not-a-uuid", "erin", "erin@example.com", bcrypt("x"), true),
        ],
    )
    .await;
    let cfg = config(dir.path(), &[]);
    let first = server::legacy::import(&cfg, &legacy).await.unwrap();
    assert_eq!(
        (first.imported, first.already_present, first.rejected),
        (2, 0, 5)
    );
    let again = server::legacy::import(&cfg, &legacy).await.unwrap();
    assert_eq!(
        (again.imported, again.already_present, again.rejected),
        (0, 2, 5),
        "a rerun duplicates nothing"
    );

    let running = start(dir.path()).await;
    let mut users = running.users().await;
    // The legacy client's call: LoginUser with the email in field 1 and the old password.
    let token = grpc_login(&mut users, "alice@example.com", "hunter2")
        .await
        .unwrap();
    let me = users
        .get_user(authed(pb::GetUserRequest::default(), &token))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(
        (me.id.as_str(), me.username.as_str(), me.email.as_str()),
        (alice_id, "alice", "alice@example.com")
    );
    assert!(
        grpc_login(&mut users, "bob@example.com", "bobs password")
            .await
            .is_ok(),
        "TEXT hashes too"
    );
    assert!(
        grpc_login(&mut users, "alice@example.com", "hunter3")
            .await
            .is_err()
    );
    running.stop().await;

    let db = user_sqlite::SqliteDatabase::open(&user_sqlite::SqliteConfig::new(
        dir.path().join("users.db"),
    ))
    .await
    .unwrap();
    use user_core::ports::UserRepository as _;
    let hash = db
        .users()
        .password_hash(alice_id.parse().unwrap())
        .await
        .unwrap();
    assert!(
        hash.as_str().starts_with("$argon2id$"),
        "upgraded on that login"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_import_move_users_between_databases() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cfg_a = config(a.path(), &[]);
    server::commands::create_admin(
        &cfg_a,
        "root".into(),
        "root@example.com".into(),
        SecretString::from(PW),
    )
    .await
    .unwrap();
    let app = server::open(&cfg_a).await.unwrap();
    app.services
        .auth
        .register(
            user_core::auth::RegisterUser {
                username: "alice".into(),
                email: "alice@example.com".into(),
                password: SecretString::from(PW),
                display_name: Some("Alice".into()),
            },
            &user_core::domain::ClientInfo::default(),
        )
        .await
        .unwrap();
    app.db.close().await;

    let file = a.path().join("users.jsonl");
    assert_eq!(server::commands::export(&cfg_a, &file).await.unwrap(), 2);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let cfg_b = config(b.path(), &[]);
    let summary = server::commands::import(&cfg_b, &file).await.unwrap();
    assert_eq!(
        (summary.imported, summary.already_present, summary.rejected),
        (2, 0, 0)
    );
    let summary = server::commands::import(&cfg_b, &file).await.unwrap();
    assert_eq!((summary.imported, summary.already_present), (0, 2));

    let running = start(b.path()).await;
    let mut users = running.users().await;
    let token = grpc_login(&mut users, "root@example.com", PW)
        .await
        .unwrap();
    let all = users
        .list_all_users(authed(pb::EmptyRequest {}, &token))
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = all
        .users
        .iter()
        .map(|u| (u.username.as_str(), u.role()))
        .collect();
    assert_eq!(
        names,
        [("alice", pb::Role::User), ("root", pb::Role::Admin)]
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_admin_refuses_weak_passwords_and_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &[]);
    let weak = server::commands::create_admin(
        &cfg,
        "root".into(),
        "root@example.com".into(),
        SecretString::from("password123"),
    )
    .await;
    let message = format!("{:#}", weak.unwrap_err());
    assert!(message.contains("password"), "{message}");
    server::commands::create_admin(
        &cfg,
        "root".into(),
        "root@example.com".into(),
        SecretString::from(PW),
    )
    .await
    .unwrap();
    let again = server::commands::create_admin(
        &cfg,
        "ROOT".into(),
        "other@example.com".into(),
        SecretString::from(PW),
    )
    .await;
    assert!(format!("{:#}", again.unwrap_err()).contains("already exists"));
}

/// Calls any gRPC path with any message, ignoring the answer's content.
async fn grpc_call<M: prost::Message + Send + Sync + 'static>(
    channel: &tonic::transport::Channel,
    path: &str,
    message: M,
) -> Result<(), tonic::Status> {
    let mut client = tonic::client::Grpc::new(channel.clone());
    client.ready().await.unwrap();
    let path = http::uri::PathAndQuery::try_from(path).unwrap();
    let codec = tonic_prost::ProstCodec::<M, ()>::default();
    client
        .unary(tonic::Request::new(message), path, codec)
        .await
        .map(drop)
}

/// `grpc.reflection.v1.ServerReflectionRequest` with its `list_services` field only.
#[derive(Clone, PartialEq, prost::Message)]
struct ListServices {
    #[prost(string, optional, tag = "7")]
    list_services: Option<String>,
}

/// The series of a Prometheus text page: each sample line without its value.
fn series(page: &str) -> Vec<&str> {
    page.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.rsplit_once(' ').map_or(l, |(s, _)| s))
        .collect()
}

/// The value of the sample line `series`, or 0.
fn sample(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

// The recorder is process-wide and the other tests run beside this one, so it checks the
// series it can cause, not the whole page's length.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_grpc_paths_and_http_requests_do_not_grow_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path()).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", running.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();

    // The methods we serve are labelled by name, health and reflection included.
    grpc_call(&channel, "/grpc.health.v1.Health/Check", ())
        .await
        .unwrap();
    let mut client = tonic::client::Grpc::new(channel.clone());
    client.ready().await.unwrap();
    let request = ListServices {
        list_services: Some(String::new()),
    };
    let mut answers = client
        .streaming(
            tonic::Request::new(tonic::codegen::tokio_stream::once(request)),
            http::uri::PathAndQuery::from_static(
                "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            ),
            tonic_prost::ProstCodec::<ListServices, ()>::default(),
        )
        .await
        .unwrap()
        .into_inner();
    assert!(answers.message().await.unwrap().is_some());

    // One of each kind first, so the `unknown` and `other` series exist before counting.
    let unknown = "grpc_requests_total{method=\"unknown\",code=\"12\"}";
    let junk_grpc = |i: usize| match i % 3 {
        0 => format!("/junk.Service{i}/Method{i}"),
        1 => format!("/user.UserService/Junk{i}"),
        _ => format!("/junk{i}"),
    };
    let junk_http = |addr, i: usize| async move {
        http(addr, "GET", &format!("/junk/{i}"), None).await;
        http(addr, "GET", &format!("/api/v1/junk{i}"), None).await;
        http(addr, &format!("JUNK{i}"), "/healthz", None).await;
    };
    let status = grpc_call(&channel, &junk_grpc(1000), ()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    junk_http(running.http, 1000).await;
    let (_, before) = http(running.http, "GET", "/metrics", None).await;

    for i in 0..60 {
        let status = grpc_call(&channel, &junk_grpc(i), ()).await.unwrap_err();
        assert_eq!(
            status.code(),
            tonic::Code::Unimplemented,
            "{}",
            junk_grpc(i)
        );
        junk_http(running.http, i).await;
    }
    let (status, after) = http(running.http, "GET", "/metrics", None).await;
    assert_eq!(status, 200);

    for expected in [
        "grpc_requests_total{method=\"/grpc.health.v1.Health/Check\",code=\"0\"}",
        "grpc_requests_total{method=\"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo\",code=\"0\"}",
        "http_requests_total{method=\"other\",route=\"/healthz\",status=\"405\"}",
    ] {
        assert!(
            after.contains(expected),
            "{expected} missing from:\n{after}"
        );
    }
    assert!(
        sample(&after, unknown) - sample(&before, unknown) >= 60.0,
        "{unknown} counts the made-up calls:\n{after}"
    );
    let junk: Vec<_> = series(&after)
        .into_iter()
        .filter(|s| s.to_lowercase().contains("junk"))
        .collect();
    assert!(junk.is_empty(), "made-up names became labels: {junk:#?}");
    let ours = |page| {
        series(page)
            .into_iter()
            .filter(|s| {
                s.contains("method=\"unknown\"")
                    || s.contains("method=\"other\"")
                    || s.contains("route=\"unmatched\"")
            })
            .count()
    };
    assert_eq!(ours(&before), ours(&after), "{after}");
    running.stop().await;
}

#[cfg(unix)]
/// The permission bits, in octal as `ls` and `chmod` show them.
fn mode(path: &Path) -> String {
    use std::os::unix::fs::PermissionsExt as _;
    format!(
        "{:o}",
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    )
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_folder_and_database_are_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let running = start(&data).await;
    assert_eq!(mode(&data), "700", "the data folder");
    for file in [
        "users.db",
        "users.db-wal",
        "users.db-shm",
        "signing-key.pem",
    ] {
        assert_eq!(mode(&data.join(file)), "600", "{file}");
    }
    running.stop().await;

    // An existing folder is the operator's: left as it is (with a warning in the log).
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o750)).unwrap();
    let again = start(&data).await;
    assert_eq!(mode(&data), "750");
    again.stop().await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signing_key_others_can_read_refuses_start() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    start(dir.path()).await.stop().await;
    let key = dir.path().join("signing-key.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();

    let Err(e) = server::Server::bind(config(dir.path(), &[])).await else {
        panic!("started with a signing key others can read");
    };
    let message = format!("{e:#}");
    assert!(message.contains(&key.display().to_string()), "{message}");
    assert!(
        message.contains(&format!("chmod 600 {}", key.display())),
        "{message}"
    );

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    start(dir.path()).await.stop().await;
}

#[test]
fn the_readme_commands_are_accepted() {
    let readme = include_str!("../README.md");
    let mut seen = 0;
    for line in readme.lines() {
        let Some(rest) = line
            .trim()
            .strip_prefix("cargo run --release --example server")
        else {
            continue;
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let args: Vec<&str> = std::iter::once("server")
            .chain(
                rest.trim()
                    .strip_prefix("--")
                    .unwrap_or_default()
                    .split_whitespace(),
            )
            .collect();
        if let Err(e) = Cli::try_parse_from(&args) {
            // `--help` and `--version` "fail" by printing; anything else is a wrong README.
            assert!(
                matches!(
                    e.kind(),
                    clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
                ),
                "README line {line:?}: {e}"
            );
        }
        seen += 1;
    }
    assert!(
        seen >= 4,
        "the README shows the server's commands ({seen} found)"
    );
}
