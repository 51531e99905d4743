//! Crash safety of the server example, as a real process: registrations run concurrently, the
//! process gets SIGKILL while some are in flight, and it restarts on the same data folder.
//! Every registration answered 201 must still be there and sign in, the file must pass
//! `PRAGMA integrity_check` (checked after the kill, before the restart, so SQLite's WAL
//! recovery is part of what is checked), no account may appear that was never sent, and the
//! restarted server must serve. Meanwhile one client rotates a refresh token in a loop: cheap
//! writes that keep SQLite committing when the kill lands. Two rounds: the second crash hits a
//! recovered file.
//!
//! SIGKILL ends the process, not the machine: what the process wrote stays in the OS cache.
//! So this proves that a 201 means committed and that the file survives the process dying
//! mid-write; power loss, where `--sqlite-sync` matters, is out of its reach.
//!
//! The binary is built by `cargo build --example server --message-format=json`, which names
//! the executable it made; the server prints the addresses it bound on port 0 (both in
//! `tests/support`, shared with `tests/server.rs`).

// Test helpers panic on failure, by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqlx::Connection as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use support::{Server, build_server, client, request};
use tokio::sync::mpsc;

/// Clients registering at once, each one request after another on its own connection.
const CLIENTS: usize = 8;
/// Acknowledged registrations per round before the kill.
const ACKS_BEFORE_KILL: usize = 24;
/// Crash-and-restart rounds.
const ROUNDS: usize = 2;
/// The whole test after the build; a healthy run takes a few seconds.
const BUDGET: Duration = Duration::from_secs(30);
/// Every acknowledged account signs in after the restart, from one address.
const NO_RATE_LIMITS: &[&str] = &["--login-rate-limit", "0", "--registration-rate-limit", "0"];

/// An account this test tried to register.
#[derive(Debug, Clone)]
struct Account {
    username: String,
    password: String,
}

impl Account {
    fn new(round: usize, client: usize, seq: usize) -> Self {
        Self {
            username: format!("crash-r{round}-c{client}-{seq}"),
            password: format!("staple horse {round}.{client}.{seq}"),
        }
    }

    fn register_body(&self) -> serde_json::Value {
        serde_json::json!({
            "username": self.username,
            "email": format!("{}@example.com", self.username),
            "password": self.password,
        })
    }

    fn login_body(&self) -> serde_json::Value {
        serde_json::json!({"identifier": self.username, "password": self.password})
    }
}

/// What one registering client saw until the kill cut it off.
struct ClientRun {
    attempted: Vec<String>,
    /// Its last request was sent before the kill and never answered.
    cut_mid_request: bool,
}

/// Registers accounts one after another, sending each 201 to `acks`, until a request fails
/// after `killed` is set. A failure before the kill, or any status but 201, is an error.
async fn register_until_killed(
    addr: SocketAddr,
    round: usize,
    client_no: usize,
    killed: Arc<AtomicBool>,
    acks: mpsc::UnboundedSender<Account>,
) -> Result<ClientRun, String> {
    let client = client();
    let mut attempted = Vec::new();
    for seq in 0.. {
        let account = Account::new(round, client_no, seq);
        attempted.push(account.username.clone());
        let sent_before_kill = !killed.load(Ordering::SeqCst);
        let result = request(
            &client,
            addr,
            "POST",
            "/api/v1/auth/register",
            Some(account.register_body()),
        )
        .await;
        match result {
            Ok((201, _)) => {
                let _ = acks.send(account);
            }
            Ok((status, body)) => {
                return Err(format!("{}: {status} {body}", account.username));
            }
            Err(_) if killed.load(Ordering::SeqCst) => {
                return Ok(ClientRun {
                    attempted,
                    cut_mid_request: sent_before_kill,
                });
            }
            Err(e) => return Err(format!("{} before the kill: {e:#}", account.username)),
        }
    }
    unreachable!("the loop ends with a response or an error")
}

/// Signs `account` in, then rotates its refresh token again and again until a request fails
/// after `killed` is set: cheap writes (no password hash) that keep SQLite busy committing, so
/// the kill lands mid-write more often than the 25 ms registrations alone would allow.
/// Returns the rotations acknowledged.
async fn refresh_until_killed(
    addr: SocketAddr,
    account: Account,
    killed: Arc<AtomicBool>,
) -> Result<usize, String> {
    let client = client();
    let login = request(
        &client,
        addr,
        "POST",
        "/api/v1/auth/login",
        Some(account.login_body()),
    );
    let (mut token, mut rotations) = match login.await {
        Ok((200, body)) => (refresh_token(&body), 0),
        other => return Err(format!("{} cannot sign in: {other:?}", account.username)),
    };
    loop {
        let body = serde_json::json!({ "refresh_token": token });
        match request(&client, addr, "POST", "/api/v1/auth/refresh", Some(body)).await {
            Ok((200, body)) => {
                token = refresh_token(&body);
                rotations += 1;
            }
            Ok((status, body)) => return Err(format!("refresh: {status} {body}")),
            Err(_) if killed.load(Ordering::SeqCst) => return Ok(rotations),
            Err(e) => return Err(format!("refresh before the kill: {e:#}")),
        }
    }
}

fn refresh_token(tokens: &str) -> String {
    let tokens: serde_json::Value = serde_json::from_str(tokens).unwrap();
    tokens["refresh_token"].as_str().unwrap().to_owned()
}

/// Opens the file read-only, as the killed process left it, and checks it: intact, every
/// acknowledged account present, nothing that was never sent.
async fn check_file(db: &Path, acked: &[Account], attempted: &BTreeSet<String>) -> usize {
    let options = SqliteConnectOptions::new().filename(db).read_only(true);
    let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
    let integrity: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(integrity, ["ok"], "integrity_check after the kill");
    let dangling = sqlx::query("PRAGMA foreign_key_check")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert!(
        dangling.is_empty(),
        "{} rows break a foreign key",
        dangling.len()
    );
    let stored: BTreeSet<String> = sqlx::query_scalar("SELECT username FROM users")
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .collect();
    conn.close().await.unwrap();

    let lost: Vec<_> = acked
        .iter()
        .filter(|a| !stored.contains(&a.username))
        .map(|a| &a.username)
        .collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    let unknown: Vec<_> = stored.difference(attempted).collect();
    assert!(unknown.is_empty(), "stored but never sent: {unknown:?}");
    stored.len()
}

/// The restarted server answers health checks, signs in every acknowledged account, takes a
/// new registration, and listens for gRPC.
async fn check_serves(server: &Server, acked: &[Account], fresh: &Account) {
    let c = client();
    let (addr, log) = (server.http, || server.log());
    for path in ["/healthz", "/readyz"] {
        let (status, body) = request(&c, addr, "GET", path, None).await.unwrap();
        assert_eq!(status, 200, "{path}: {body}\n{}", log());
    }
    // Four at a time: each sign-in verifies an Argon2 hash.
    let signers: Vec<_> = (0..4)
        .map(|i| {
            let (c, mine) = (c.clone(), acked.iter().skip(i).step_by(4).cloned());
            let mine: Vec<Account> = mine.collect();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                for a in mine {
                    let r = request(&c, addr, "POST", "/api/v1/auth/login", Some(a.login_body()));
                    seen.push((a.username, r.await));
                }
                seen
            })
        })
        .collect();
    for signer in signers {
        for (username, r) in signer.await.unwrap() {
            let (status, body) = r.unwrap();
            assert_eq!(status, 200, "{username} cannot sign in: {body}\n{}", log());
        }
    }
    let (status, body) = request(
        &c,
        addr,
        "POST",
        "/api/v1/auth/register",
        Some(fresh.register_body()),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "a new registration: {body}\n{}", log());
    tokio::net::TcpStream::connect(server.grpc)
        .await
        .expect("the gRPC port does not accept connections");
}

async fn crash_and_restart(bin: PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("users.db");
    let mut server = Server::start(&bin, dir.path(), NO_RATE_LIMITS).await;
    let mut acked: Vec<Account> = Vec::new();
    let mut attempted: BTreeSet<String> = BTreeSet::new();

    for round in 0..ROUNDS {
        let killed = Arc::new(AtomicBool::new(false));
        let churner = Account::new(round, CLIENTS, 0);
        let (status, body) = request(
            &client(),
            server.http,
            "POST",
            "/api/v1/auth/register",
            Some(churner.register_body()),
        )
        .await
        .unwrap();
        assert_eq!(status, 201, "{body}");
        attempted.insert(churner.username.clone());
        acked.push(churner.clone());
        let churn = tokio::spawn(refresh_until_killed(
            server.http,
            churner,
            Arc::clone(&killed),
        ));
        let (acks, mut ack_rx) = mpsc::unbounded_channel();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|n| {
                let (killed, acks) = (Arc::clone(&killed), acks.clone());
                tokio::spawn(register_until_killed(server.http, round, n, killed, acks))
            })
            .collect();
        drop(acks);

        // Kill on the ACKS_BEFORE_KILL-th 201, while the other clients wait for answers.
        let mut this_round = 0;
        while this_round < ACKS_BEFORE_KILL {
            let Some(account) = ack_rx.recv().await else {
                break; // every client stopped: their errors are reported below
            };
            acked.push(account);
            this_round += 1;
        }
        killed.store(true, Ordering::SeqCst);
        let log = server.kill();

        let mut cut = 0;
        for client in clients {
            match client.await.unwrap() {
                Ok(run) => {
                    attempted.extend(run.attempted);
                    cut += usize::from(run.cut_mid_request);
                }
                Err(e) => panic!("round {round}: {e}\n{log}"),
            }
        }
        let rotations = match churn.await.unwrap() {
            Ok(n) => n,
            Err(e) => panic!("round {round}: {e}\n{log}"),
        };
        // 201s that arrived between the last count and the kill.
        while let Ok(account) = ack_rx.try_recv() {
            acked.push(account);
        }
        assert!(
            this_round >= ACKS_BEFORE_KILL,
            "round {round}: only {this_round} registrations acknowledged"
        );
        assert!(
            cut > 0,
            "round {round}: no request was in flight at the kill, so nothing was cut off"
        );

        let stored = check_file(&db, &acked, &attempted).await;
        println!(
            "round {round}: {} registrations acknowledged, {stored} stored, {} sent, {cut} cut \
             off by the kill; {rotations} refresh rotations",
            acked.len(),
            attempted.len()
        );

        server = Server::start(&bin, dir.path(), NO_RATE_LIMITS).await;
        let fresh = Account::new(round, CLIENTS + 1, 0);
        attempted.insert(fresh.username.clone());
        check_serves(&server, &acked, &fresh).await;
        acked.push(fresh);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_registrations_survive_sigkill_and_the_file_stays_intact() {
    let bin = build_server();
    let started = Instant::now();
    tokio::time::timeout(BUDGET, crash_and_restart(bin))
        .await
        .unwrap_or_else(|_| panic!("the crash test took longer than {BUDGET:?}"));
    println!("crash test: {:?} after the build", started.elapsed());
}
