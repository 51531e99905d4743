//! The server example as a real process (built once, see `tests/support`), for what only the
//! example does: its command line and subcommands, its wiring of both protocols and the
//! metrics, the signing key kept across restarts and rotated by `--previous-signing-key-file`,
//! owner-only data files, and every server command of the README.
//! The pieces themselves are tested in their crates (`user_core::auth::key_files`,
//! `user_core::transfer`, `user_core::maintenance`, `user_sqlite::legacy`).

// Test helpers panic on failure, by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;

use secrecy::ExposeSecret as _;
use support::{Server, build_server, client, command, request};
use tonic::metadata::MetadataValue;
use user_grpc::pb;
use user_grpc::pb::user_service_client::UserServiceClient;
use user_postgres::testing::TestSchema;

const PW: &str = "correct horse battery staple";

/// Runs a subcommand to its end in `cwd`, with `env` set.
fn run(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = command(&build_server(), cwd);
    command.args(args).envs(env.iter().copied());
    command.output().expect("cannot run the server example")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a subcommand that must succeed, and returns what it printed on stderr.
fn run_ok(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = run(cwd, args, env);
    assert!(
        out.status.success(),
        "{args:?} failed: {:?}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    stderr(&out)
}

async fn start(dir: &Path, extra: &[&str]) -> Server {
    Server::start(&build_server(), dir, extra).await
}

async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    json: Option<serde_json::Value>,
) -> (u16, String) {
    request(&client(), addr, method, path, json).await.unwrap()
}

async fn users(server: &Server) -> UserServiceClient<tonic::transport::Channel> {
    UserServiceClient::connect(format!("http://{}", server.grpc))
        .await
        .unwrap()
}

fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value = MetadataValue::try_from(format!("Bearer {token}")).unwrap();
    request.metadata_mut().insert("authorization", value);
    request
}

/// The legacy client's call: `LoginUser` with the email in field 1.
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

async fn me(server: &Server, token: &str) -> Result<pb::User, tonic::Status> {
    let reply = users(server)
        .await
        .get_user(authed(pb::GetUserRequest::default(), token))
        .await?;
    Ok(reply.into_inner().user.unwrap())
}

async fn register(server: &Server, name: &str) {
    let body = serde_json::json!({
        "username": name,
        "email": format!("{name}@example.com"),
        "password": PW,
    });
    let (status, body) = http(server.http, "POST", "/api/v1/auth/register", Some(body)).await;
    assert_eq!(status, 201, "{body}");
}

/// The `kid`s the JWKS document lists.
async fn jwks_kids(server: &Server) -> Vec<String> {
    let (status, body) = http(server.http, "GET", "/.well-known/jwks.json", None).await;
    assert_eq!(status, 200, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    doc["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
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
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_both_protocols_keeps_its_key_across_restarts_and_rotates_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]).await;
    assert_eq!(http(server.http, "GET", "/healthz", None).await.0, 200);
    assert_eq!(http(server.http, "GET", "/readyz", None).await.0, 200);
    register(&server, "alice").await;
    let token = grpc_login(&mut users(&server).await, "alice@example.com", PW)
        .await
        .unwrap();
    assert_eq!(me(&server, &token).await.unwrap().username, "alice");
    assert_eq!(
        http(server.http, "GET", "/login", None).await.0,
        200,
        "the pages are served"
    );
    let (status, metrics) = http(server.http, "GET", "/metrics", None).await;
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
    let first_kids = jwks_kids(&server).await;
    assert_eq!(first_kids.len(), 1);
    server.kill();

    let key = dir.path().join("signing-key.pem");
    assert_eq!(mode(&key), "600");
    let again = start(dir.path(), &[]).await;
    assert!(
        me(&again, &token).await.is_ok(),
        "a token from before the restart still works"
    );
    again.kill();

    // A rotation: the key moves aside, a new one is made, the old one only verifies.
    let previous = dir.path().join("signing-key.previous.pem");
    std::fs::rename(&key, &previous).unwrap();
    let rotated = start(
        dir.path(),
        &["--previous-signing-key-file", previous.to_str().unwrap()],
    )
    .await;
    let kids = jwks_kids(&rotated).await;
    assert_eq!(kids.len(), 2, "{kids:?}");
    assert_eq!(
        kids[1], first_kids[0],
        "the previous key is still published"
    );
    assert!(
        me(&rotated, &token).await.is_ok(),
        "a token of the previous key still works"
    );
    let fresh = grpc_login(&mut users(&rotated).await, "alice@example.com", PW)
        .await
        .unwrap();
    rotated.kill();

    let without = start(dir.path(), &[]).await;
    assert_eq!(jwks_kids(&without).await, [kids[0].clone()]);
    assert!(me(&without, &fresh).await.is_ok(), "the new key signs");
    let old = me(&without, &token).await.unwrap_err();
    assert_eq!(
        old.code(),
        tonic::Code::Unauthenticated,
        "the previous key dropped"
    );
    without.kill();
}

/// The legacy schema, from legacy-wire.md, with a bcrypt hash as Python wrote it.
async fn legacy_db(path: &Path, rows: &[(&str, &str, &str, &str)]) {
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
    for (id, username, email, password) in rows {
        sqlx::query("INSERT INTO users VALUES (?, ?, ?, ?)")
            .bind(*id)
            .bind(*username)
            .bind(*email)
            .bind(bcrypt::hash(password, 4).unwrap().into_bytes())
            .execute(&mut conn)
            .await
            .unwrap();
    }
    conn.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_legacy_reports_rows_reruns_cleanly_and_its_users_sign_in_over_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy.db");
    let alice_id = "6f1c2c0e-3b7a-4d55-9a3e-0c2f7d6b9e11";
    legacy_db(
        &legacy,
        &[
            (alice_id, "alice", "Alice@Example.com", "hunter2"),
            (
                "4a7b9c1d-2e3f-4051-8a6b-7c8d9e0f1a2b",
                "x",
                "x@example.com",
                "x",
            ),
        ],
    )
    .await;
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let from = legacy.to_str().unwrap();
    let args = ["--data-dir", data_arg, "import-legacy", "--from", from];

    let log = run_ok(dir.path(), &args, &[]);
    assert!(
        log.contains(&format!("importing 2 legacy users from {from}")),
        "{log}"
    );
    assert!(
        log.contains("row 2 (id 4a7b9c1d-2e3f-4051-8a6b-7c8d9e0f1a2b): rejected: username \"x\""),
        "{log}"
    );
    assert!(
        log.contains("done: 1 imported, 0 already present, 1 rejected"),
        "{log}"
    );
    let log = run_ok(dir.path(), &args, &[]);
    assert!(
        log.contains("done: 0 imported, 1 already present, 1 rejected"),
        "{log}"
    );

    let missing = run(
        dir.path(),
        &["--data-dir", data_arg, "import-legacy", "--from", "nope.db"],
        &[],
    );
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("--from: nope.db does not exist"),
        "{}",
        stderr(&missing)
    );

    let server = start(&data, &[]).await;
    let token = grpc_login(&mut users(&server).await, "alice@example.com", "hunter2")
        .await
        .unwrap();
    let alice = me(&server, &token).await.unwrap();
    assert_eq!(
        (alice.id.as_str(), alice.email.as_str()),
        (alice_id, "alice@example.com")
    );
    server.kill();
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_import_move_users_between_data_folders() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let (a_arg, b_arg) = (a.to_str().unwrap(), b.to_str().unwrap());
    let admin = [
        "--data-dir",
        a_arg,
        "create-admin",
        "--username",
        "root",
        "--email",
        "root@example.com",
    ];
    let out = run(dir.path(), &admin, &[("USERS_ADMIN_PASSWORD", PW)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("created admin root ("));
    let server = start(&a, &[]).await;
    register(&server, "alice").await;
    server.kill();

    let file = dir.path().join("users.jsonl");
    let export = [
        "--data-dir",
        a_arg,
        "export",
        "--to",
        file.to_str().unwrap(),
    ];
    let log = run_ok(dir.path(), &export, &[]);
    assert!(log.contains("exported 2 users to"), "{log}");
    assert_eq!(mode(&file), "600", "the export holds hashes");
    let before = std::fs::read(&file).unwrap();
    assert!(
        !run(dir.path(), &export, &[]).status.success(),
        "never overwritten"
    );
    assert_eq!(std::fs::read(&file).unwrap(), before);

    let import = [
        "--data-dir",
        b_arg,
        "import",
        "--from",
        file.to_str().unwrap(),
    ];
    let log = run_ok(dir.path(), &import, &[]);
    assert!(
        log.contains("2 imported, 0 already present, 0 rejected"),
        "{log}"
    );
    let log = run_ok(dir.path(), &import, &[]);
    assert!(
        log.contains("0 imported, 2 already present, 0 rejected"),
        "{log}"
    );

    let server = start(&b, &[]).await;
    let token = grpc_login(&mut users(&server).await, "root@example.com", PW)
        .await
        .unwrap();
    let all = users(&server)
        .await
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
    server.kill();
}

#[test]
fn create_admin_refuses_weak_passwords_and_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let create = |username: &str, password: &str| {
        let args = [
            "--data-dir",
            "data",
            "create-admin",
            "--username",
            username,
            "--email",
            "root@example.com",
        ];
        run(dir.path(), &args, &[("USERS_ADMIN_PASSWORD", password)])
    };
    let weak = create("root", "password123");
    assert!(!weak.status.success());
    assert!(stderr(&weak).contains("password"), "{}", stderr(&weak));
    let made = create("root", PW);
    assert!(made.status.success(), "{}", stderr(&made));
    let again = create("ROOT", PW);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("is already taken; nothing changed"),
        "{}",
        stderr(&again)
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_grpc_paths_and_http_requests_do_not_grow_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.grpc))
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
    junk_http(server.http, 1000).await;
    let (_, before) = http(server.http, "GET", "/metrics", None).await;

    for i in 0..60 {
        let status = grpc_call(&channel, &junk_grpc(i), ()).await.unwrap_err();
        assert_eq!(
            status.code(),
            tonic::Code::Unimplemented,
            "{}",
            junk_grpc(i)
        );
        junk_http(server.http, i).await;
    }
    let (status, after) = http(server.http, "GET", "/metrics", None).await;
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
    server.kill();
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_folder_and_database_are_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The server makes the missing folder: it runs in the parent.
    let mut serve = command(&build_server(), dir.path());
    serve.arg("--data-dir").arg(&data).args([
        "--grpc-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
    ]);
    let server = Server::spawn(serve).await.unwrap();
    assert_eq!(mode(&data), "700", "the data folder");
    for file in [
        "users.db",
        "users.db-wal",
        "users.db-shm",
        "signing-key.pem",
        "second-factor.key",
    ] {
        assert_eq!(mode(&data.join(file)), "600", "{file}");
    }
    server.kill();

    // An existing folder is the operator's: left as it is (with a warning in the log).
    set_mode(&data, 0o750);
    let again = start(&data, &[]).await;
    assert_eq!(mode(&data), "750");
    again.kill();
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signing_key_others_can_read_refuses_start() {
    let dir = tempfile::tempdir().unwrap();
    start(dir.path(), &[]).await.kill();
    let key = dir.path().join("signing-key.pem");
    set_mode(&key, 0o644);

    let Err(log) = Server::try_start(&build_server(), dir.path(), &[]).await else {
        panic!("started with a signing key others can read");
    };
    assert!(log.contains(&key.display().to_string()), "{log}");
    assert!(
        log.contains(&format!("chmod 600 {}", key.display())),
        "{log}"
    );

    set_mode(&key, 0o600);
    start(dir.path(), &[]).await.kill();
}

/// The second-factor key is checked like the signing key: a file others can read stops the
/// start, naming the file.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_factor_key_others_can_read_refuses_start() {
    let dir = tempfile::tempdir().unwrap();
    start(dir.path(), &[]).await.kill();
    let key = dir.path().join("second-factor.key");
    assert_eq!(mode(&key), "600");
    set_mode(&key, 0o644);
    let Err(log) = Server::try_start(&build_server(), dir.path(), &[]).await else {
        panic!("started with a second-factor key others can read");
    };
    assert!(log.contains(&key.display().to_string()), "{log}");
    assert!(log.contains("--second-factor-key-file"), "{log}");
    set_mode(&key, 0o600);
    start(dir.path(), &[]).await.kill();
}

/// Every `cargo run --release --example server ...` line of the README (and the `mv` of the
/// key rotation), run for real in order in an empty folder (both listeners on port 0): a
/// server line must serve, every other line must end without a usage error (clap's exit code
/// 2). An import from a made-up path fails, but not on its arguments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_commands_run() {
    let readme = include_str!("../README.md");
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("USERS_GRPC_ADDR", "127.0.0.1:0"),
        ("USERS_HTTP_ADDR", "127.0.0.1:0"),
        ("USERS_ADMIN_PASSWORD", PW),
    ];
    // The PostgreSQL lines run against the test server, in a schema of their own.
    let postgres = TestSchema::create().await;
    let mut seen = 0;
    for line in readme.lines() {
        // The key rotation's `mv`, done as the operator would.
        if let Some(paths) = line.trim().strip_prefix("mv ") {
            let (from, to) = paths.trim().split_once(' ').unwrap();
            std::fs::rename(dir.path().join(from), dir.path().join(to)).unwrap();
            continue;
        }
        let Some(rest) = line
            .trim()
            .strip_prefix("cargo run --release --example server")
        else {
            continue;
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let mut args: Vec<String> = rest
            .trim()
            .strip_prefix("--")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let mut env = env.map(|(k, v)| (k, v.to_owned())).to_vec();
        if let Some(url) = args.iter_mut().find(|a| a.starts_with("postgres://")) {
            let Some(schema) = &postgres else {
                continue;
            };
            let config = schema.config();
            *url = config.url.expose_secret().to_owned();
            env.push(("USERS_POSTGRES_SCHEMA", config.schema.unwrap()));
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        seen += 1;
        let commands = [
            "create-admin",
            "import-legacy",
            "export",
            "import",
            "--help",
        ];
        let serves = !args.iter().any(|a| commands.contains(a));
        if serves {
            let mut serve = command(&build_server(), dir.path());
            serve.args(&args).envs(env.iter().copied());
            let server = Server::spawn(serve)
                .await
                .unwrap_or_else(|log| panic!("README line {line:?} does not serve:\n{log}"));
            server.kill();
            continue;
        }
        let out = run(dir.path(), &args, &env);
        assert_ne!(
            out.status.code(),
            Some(2),
            "README line {line:?} is refused by the command line:\n{}",
            stderr(&out)
        );
    }
    assert!(
        seen >= 4,
        "the README shows the server's commands ({seen} found)"
    );
}

/// Ctrl-C and SIGTERM stop the server gracefully, even when they come as soon as it printed
/// where it listens (the handlers are installed before the listeners are bound).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_and_sigterm_stop_the_server_cleanly() {
    for signal in ["INT", "TERM"] {
        let dir = tempfile::tempdir().unwrap();
        let server = start(dir.path(), &[]).await;
        let status = server.stop(signal).await;
        assert!(status.success(), "SIG{signal}: {status:?}");
    }
}

/// An export that fails mid-way (here a corrupt row) leaves no file, so a rerun can start
/// again once the cause is fixed.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_export_leaves_no_partial_file_behind() {
    use sqlx::Connection as _;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    for name in ["root", "zed"] {
        let email = format!("{name}@example.com");
        let admin = [
            "--data-dir",
            data_arg,
            "create-admin",
            "--username",
            name,
            "--email",
            &email,
        ];
        run_ok(dir.path(), &admin, &[("USERS_ADMIN_PASSWORD", PW)]);
    }
    let db = data.join("users.db");
    let set_username = |from: &'static str, to: &'static str| {
        let db = db.clone();
        async move {
            let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&db);
            let mut conn = sqlx::SqliteConnection::connect_with(&options)
                .await
                .unwrap();
            sqlx::query("UPDATE users SET username = ? WHERE username = ?")
                .bind(to)
                .bind(from)
                .execute(&mut conn)
                .await
                .unwrap();
            conn.close().await.unwrap();
        }
    };
    // A user that no longer parses: the export fails once the file is open.
    set_username("zed", "!!bad").await;
    let file = dir.path().join("users.jsonl");
    let export = [
        "--data-dir",
        data_arg,
        "export",
        "--to",
        file.to_str().unwrap(),
    ];
    assert!(!run(dir.path(), &export, &[]).status.success());
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["data"], "nothing written beside the data folder");

    set_username("!!bad", "zed").await;
    let log = run_ok(dir.path(), &export, &[]);
    assert!(log.contains("exported 2 users to"), "{log}");
    assert_eq!(mode(&file), "600", "the export holds hashes");
    assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 2);
}

/// The server on PostgreSQL: the legacy import and create-admin write there, the served
/// instance signs the legacy user in over the legacy gRPC call, and export/import move the
/// users back to a SQLite data folder.
#[tokio::test]
async fn the_server_runs_on_postgres_and_moves_users_to_and_from_it() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let config = schema.config();
    let url = config.url.expose_secret().to_owned();
    let schema_name = config.schema.unwrap();
    let pg = [
        ("USERS_DATABASE_URL", url.as_str()),
        ("USERS_POSTGRES_SCHEMA", schema_name.as_str()),
        ("USERS_ADMIN_PASSWORD", PW),
    ];
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy.db");
    let alice_id = "6f1c2c0e-3b7a-4d55-9a3e-0c2f7d6b9e11";
    legacy_db(
        &legacy,
        &[(alice_id, "alice", "alice@example.com", "hunter2")],
    )
    .await;

    let log = run_ok(
        dir.path(),
        &["import-legacy", "--from", legacy.to_str().unwrap()],
        &pg,
    );
    assert!(log.contains("done: 1 imported"), "{log}");
    run_ok(
        dir.path(),
        &[
            "create-admin",
            "--username",
            "root",
            "--email",
            "root@example.com",
        ],
        &pg,
    );
    assert!(
        !dir.path().join("data/users.db").exists(),
        "nothing was written to SQLite"
    );

    let server = start(
        &dir.path().join("data"),
        &["--database-url", &url, "--postgres-schema", &schema_name],
    )
    .await;
    let token = grpc_login(&mut users(&server).await, "alice@example.com", "hunter2")
        .await
        .unwrap();
    assert_eq!(me(&server, &token).await.unwrap().id, alice_id);
    assert_eq!(http(server.http, "GET", "/readyz", None).await.0, 200);
    server.kill();

    let export = dir.path().join("users.jsonl");
    let log = run_ok(
        dir.path(),
        &["export", "--to", export.to_str().unwrap()],
        &pg,
    );
    assert!(log.contains("exported 2 users"), "{log}");
    let log = run_ok(
        dir.path(),
        &[
            "--data-dir",
            "sqlite-data",
            "import",
            "--from",
            export.to_str().unwrap(),
        ],
        &[],
    );
    assert!(log.contains("2 imported"), "{log}");
    let server = start(&dir.path().join("sqlite-data"), &[]).await;
    let token = grpc_login(&mut users(&server).await, "alice@example.com", "hunter2")
        .await
        .unwrap();
    assert_eq!(me(&server, &token).await.unwrap().id, alice_id);
    server.kill();
}

/// Mail queued in the database is delivered by the running server: without `--smtp-host`,
/// into the `.eml` outbox in the data folder, owner-only, and taken off the queue.
#[tokio::test]
async fn queued_mail_is_delivered_to_the_outbox_folder() {
    use user_core::domain::Email;
    use user_core::ports::{Clock as _, Mail, SystemClock};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&data)
            .unwrap();
    }
    // A first start makes the database.
    start(&data, &[]).await.kill();
    let db =
        user_sqlite::SqliteDatabase::open(&user_sqlite::SqliteConfig::new(data.join("users.db")))
            .await
            .unwrap();
    let mail = Mail::new(
        Email::parse("ada@example.com").unwrap(),
        "Queued before the start",
        "The body of the queued mail.",
        None,
    );
    let outbox = db.storage().outbox;
    outbox.enqueue(&mail, SystemClock.now()).await.unwrap();

    let server = start(&data, &[]).await;
    let file = wait_for_mail(&data.join("outbox"), "Queued before the start", &server).await;
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("Subject: Queued before the start"), "{text}");
    assert!(
        text.contains(&mail.id.to_string()),
        "the Message-ID carries the mail id: {text}"
    );
    assert_eq!(mode(&file), "600");
    // Delivered mail leaves the queue.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while outbox.pending(SystemClock.now()).await.unwrap() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the mail stays queued"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    server.kill();
    db.close().await;
}

/// The first `.eml` in `folder` whose text contains `needle`, waiting up to 15 s.
async fn wait_for_mail(
    folder: &Path,
    needle: &str,
    server: &support::Server,
) -> std::path::PathBuf {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let found = std::fs::read_dir(folder)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .find(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains(needle)));
        if let Some(file) = found {
            return file;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no mail with {needle:?} in {} after 15 s:\n{}",
            folder.display(),
            server.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Registration mails a verification link to the configured public address; the token in it
/// verifies the address through the JSON API, once.
#[tokio::test]
async fn a_registration_mails_a_link_that_verifies_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&data)
            .unwrap();
    }
    let server = start(
        &data,
        &[
            "--public-base-url",
            "https://accounts.example.com",
            "--site-name",
            "Acme",
        ],
    )
    .await;
    register(&server, "vera").await;
    let file = wait_for_mail(&data.join("outbox"), "vera@example.com", &server).await;
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("Acme"),
        "the site name is in the mail: {text}"
    );
    // The text body is quoted-printable: join its soft line breaks, then decode `=3D`.
    let unfolded = text
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=");
    let start = unfolded
        .find("https://accounts.example.com/verify-email?token=")
        .unwrap_or_else(|| panic!("no verification link in {unfolded}"));
    let token: String = unfolded[start..]
        .trim_start_matches("https://accounts.example.com/verify-email?token=")
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert!(token.len() >= 43, "a 256-bit token: {token:?}");

    let body = serde_json::json!({ "token": token });
    let (status, user) = http(
        server.http,
        "POST",
        "/api/v1/auth/verify-email",
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, 200, "{user}");
    assert!(user.contains("\"email_verified\":true"), "{user}");
    let (status, _) = http(server.http, "POST", "/api/v1/auth/verify-email", Some(body)).await;
    assert_eq!(status, 422, "a link works once");
    server.kill();
}
