//! A database that goes away and comes back: the pool runs through a TCP forwarder that the
//! test cuts (closing every forwarded connection and refusing new ones) or hangs (holding
//! every byte, connections left open), and restores; and a server that ends the pool's
//! connections itself.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use sqlx::postgres::PgConnectOptions;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use user_core::domain::{NewUser, PasswordHash};
use user_core::error::RepoError;
use user_core::ports::UserRepository;
use user_core::testing::conformance::user;
use user_postgres::testing::TestSchema;
use user_postgres::{PostgresConfig, PostgresDatabase};

/// What the forwarder does with the bytes of its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Forwards them.
    Forward,
    /// Holds them: every connection stays open, but no byte goes through, as when the server
    /// or the network vanished without a word (no FIN, no RST).
    Hang,
}

/// Forwards TCP connections from a local port to the server, until cut or hung.
struct Forwarder {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    mode: watch::Sender<Mode>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

/// Copies bytes from `from` to `to` while the mode is `Forward`, holding them while it is
/// `Hang`.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    mut mode: watch::Receiver<Mode>,
) {
    let mut buf = vec![0; 8192];
    loop {
        if mode.wait_for(|m| *m == Mode::Forward).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if mode.wait_for(|m| *m == Mode::Forward).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

impl Forwarder {
    async fn start(target: (String, u16)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let (mode, _) = watch::channel(Mode::Forward);
        let connections = Arc::new(Mutex::new(Vec::new()));
        let accept = tokio::spawn({
            let (cut, connections) = (Arc::clone(&cut), Arc::clone(&connections));
            let mode = mode.clone();
            async move {
                while let Ok((inbound, _)) = listener.accept().await {
                    if cut.load(Ordering::SeqCst) {
                        // Refused: closed at once.
                        drop(inbound);
                        continue;
                    }
                    let target = target.clone();
                    let (up, down) = (mode.subscribe(), mode.subscribe());
                    let forward = tokio::spawn(async move {
                        if let Ok(outbound) = TcpStream::connect(target).await {
                            let (client_read, client_write) = inbound.into_split();
                            let (server_read, server_write) = outbound.into_split();
                            // Either direction ending closes both.
                            tokio::select! {
                                () = pump(client_read, server_write, up) => {}
                                () = pump(server_read, client_write, down) => {}
                            }
                        }
                    });
                    connections.lock().unwrap().push(forward);
                }
            }
        });
        Self {
            addr,
            cut,
            mode,
            connections,
            accept,
        }
    }

    /// Closes every forwarded connection (both ends) and refuses new ones until restored.
    async fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        let open: Vec<_> = self.connections.lock().unwrap().drain(..).collect();
        for connection in open {
            connection.abort();
            // Aborted: its sockets are closed once it has ended.
            let _ = connection.await;
        }
    }

    /// Stops moving bytes, on open connections and new ones alike, keeping them all open.
    fn hang(&self) {
        self.mode.send_replace(Mode::Hang);
    }

    /// Accepts and forwards again; held bytes go through.
    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
        self.mode.send_replace(Mode::Forward);
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.accept.abort();
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }
}

/// `url` with its host and port replaced by `addr`.
fn via(url: &str, addr: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let userinfo = authority
        .rsplit_once('@')
        .map(|(userinfo, _)| format!("{userinfo}@"))
        .unwrap_or_default();
    format!("{scheme}://{userinfo}{addr}{path}")
}

#[test]
fn via_replaces_only_the_host_and_port() {
    let addr: SocketAddr = "127.0.0.1:4321".parse().unwrap();
    assert_eq!(
        via("postgres://postgres@127.0.0.1:5432/postgres", addr),
        "postgres://postgres@127.0.0.1:4321/postgres"
    );
    assert_eq!(
        via("postgresql://u:p@db.example.com/app?sslmode=disable", addr),
        "postgresql://u:p@127.0.0.1:4321/app?sslmode=disable"
    );
    assert_eq!(
        via("postgres://localhost", addr),
        "postgres://127.0.0.1:4321"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_a_lost_database_and_the_pool_recovers_without_reopening() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let direct = schema.config();
    let server = PgConnectOptions::from_str(direct.url.expose_secret()).unwrap();
    let forwarder = Forwarder::start((server.get_host().to_owned(), server.get_port())).await;
    let config = PostgresConfig {
        url: via(direct.url.expose_secret(), forwarder.addr).into(),
        acquire_timeout: Duration::from_secs(1),
        max_connections: 2,
        ..direct
    };
    let db = PostgresDatabase::open(&config).await.unwrap();
    let users = db.users();
    let alice = user("alice");
    users
        .insert(&NewUser {
            user: alice.clone(),
            password_hash: PasswordHash::new("h"),
        })
        .await
        .unwrap();
    let ready = db.readiness();
    assert!(ready().await, "reachable: ready");

    forwarder.cut().await;
    assert!(!ready().await, "cut: not ready");
    let got = users.get(alice.id).await;
    assert!(matches!(got, Err(RepoError::Unavailable(_))), "{got:?}");
    assert!(!ready().await, "still cut: still not ready");

    forwarder.restore();
    assert!(ready().await, "restored: ready again");
    assert_eq!(users.get(alice.id).await.unwrap(), alice, "the same pool");
    db.close().await;
}

/// A database behind `forwarder`, in `schema`, with short timeouts so that a silent server
/// is noticed quickly.
async fn open_via(schema: &TestSchema, forwarder: &Forwarder) -> PostgresDatabase {
    let direct = schema.config();
    let config = PostgresConfig {
        url: via(direct.url.expose_secret(), forwarder.addr).into(),
        acquire_timeout: Duration::from_secs(1),
        statement_timeout: Duration::from_secs(1),
        max_connections: 2,
        ..direct
    };
    PostgresDatabase::open(&config).await.unwrap()
}

async fn forwarder_to(schema: &TestSchema) -> Forwarder {
    let server = PgConnectOptions::from_str(schema.config().url.expose_secret()).unwrap();
    Forwarder::start((server.get_host().to_owned(), server.get_port())).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_database_fails_calls_within_the_deadline_and_the_pool_recovers() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let forwarder = forwarder_to(&schema).await;
    let db = open_via(&schema, &forwarder).await;
    let users = db.users();
    let alice = user("alice");
    users
        .insert(&NewUser {
            user: alice.clone(),
            password_hash: PasswordHash::new("h"),
        })
        .await
        .unwrap();
    let ready = db.readiness();
    assert!(ready().await, "answering: ready");

    forwarder.hang();
    // statement_timeout 1 s + acquire_timeout 1 s + the 2 s margin; a little more for a
    // loaded host.
    let bound = Duration::from_secs(4) + Duration::from_millis(1500);
    let started = Instant::now();
    let got = users.get(alice.id).await;
    let took = started.elapsed();
    assert!(matches!(got, Err(RepoError::Unavailable(_))), "{got:?}");
    assert!(took < bound, "a silent server held the call for {took:?}");
    let started = Instant::now();
    assert!(!ready().await, "silent: not ready");
    assert!(started.elapsed() < bound, "{:?}", started.elapsed());

    forwarder.restore();
    let mut recovered = false;
    for _ in 0..20 {
        if ready().await && users.get(alice.id).await.is_ok_and(|u| u == alice) {
            recovered = true;
            break;
        }
    }
    assert!(recovered, "the same pool answers once the server does");
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_server_ends_are_replaced() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    // The schema's name marks this test's connections, so that only they are ended.
    let direct = schema.config();
    let config = PostgresConfig {
        min_connections: 2,
        ..with_url_option_raw(direct, "application_name", schema.name())
    };
    let db = PostgresDatabase::open(&config).await.unwrap();
    let users = db.users();
    let alice = user("alice");
    users
        .insert(&NewUser {
            user: alice.clone(),
            password_hash: PasswordHash::new("h"),
        })
        .await
        .unwrap();

    let admin = schema.open().await;
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(schema.name())
    .fetch_all(admin.pool())
    .await
    .unwrap();
    assert!(!ended.is_empty() && ended.iter().all(|e| *e), "{ended:?}");

    for _ in 0..3 {
        assert_eq!(users.get(alice.id).await.unwrap(), alice);
    }
    assert!(db.readiness()().await);
    admin.close().await;
    db.close().await;
}

/// `config` with a query parameter added to its URL.
fn with_url_option_raw(config: PostgresConfig, name: &str, value: &str) -> PostgresConfig {
    let url = config.url.expose_secret();
    let separator = if url.contains('?') { '&' } else { '?' };
    PostgresConfig {
        url: format!("{url}{separator}{name}={value}").into(),
        ..config
    }
}

/// Busy is not down: with every connection of the pool in use, a ping through the pool
/// times out, but readiness asks the server over a connection of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_pool_is_still_ready() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let config = PostgresConfig {
        max_connections: 1,
        acquire_timeout: Duration::from_millis(500),
        ..schema.config()
    };
    let db = PostgresDatabase::open(&config).await.unwrap();
    let ready = db.readiness();
    assert!(ready().await, "idle: ready");

    let held = db.pool().acquire().await.unwrap();
    // Not `num_idle()`: sqlx updates its idle count apart from the connection handed out,
    // and a read in between saw `usize::MAX` once in CI. The ping timing out below is what
    // shows the only connection is in use.
    assert_eq!(db.pool().size(), 1);
    let ping = db.ping().await;
    assert!(matches!(ping, Err(RepoError::Unavailable(_))), "{ping:?}");
    assert!(ready().await, "every connection in use: still ready");
    drop(held);

    assert!(ready().await, "released: ready");
    db.close().await;
}

/// A pool whose only connection waits on a server that stopped answering is not "busy":
/// the check over a connection of its own fails too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_stuck_on_a_silent_server_is_not_ready() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let forwarder = forwarder_to(&schema).await;
    let direct = schema.config();
    let config = PostgresConfig {
        url: via(direct.url.expose_secret(), forwarder.addr).into(),
        acquire_timeout: Duration::from_millis(500),
        // The deadline of the check: 1 s + 0.5 s + the 2 s margin.
        statement_timeout: Duration::from_secs(1),
        max_connections: 1,
        ..direct
    };
    let db = PostgresDatabase::open(&config).await.unwrap();
    let ready = db.readiness();
    let held = db.pool().acquire().await.unwrap();
    forwarder.hang();
    assert!(!ready().await, "silent and full: not ready");
    forwarder.restore();
    assert!(ready().await, "answering and full: ready");
    drop(held);
    db.close().await;
}
