//! A database that goes away and comes back: the pool runs through a TCP forwarder that the
//! test cuts (closing every forwarded connection and refusing new ones) and restores.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::postgres::PgConnectOptions;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use user_core::domain::{NewUser, PasswordHash};
use user_core::error::RepoError;
use user_core::ports::UserRepository;
use user_core::testing::conformance::user;
use user_postgres::testing::TestSchema;
use user_postgres::{PostgresConfig, PostgresDatabase};

/// Forwards TCP connections from a local port to the server, until cut.
struct Forwarder {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Forwarder {
    async fn start(target: (String, u16)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let accept = tokio::spawn({
            let (cut, connections) = (Arc::clone(&cut), Arc::clone(&connections));
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if cut.load(Ordering::SeqCst) {
                        // Refused: closed at once.
                        drop(inbound);
                        continue;
                    }
                    let target = target.clone();
                    let forward = tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(target).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    connections.lock().unwrap().push(forward);
                }
            }
        });
        Self {
            addr,
            cut,
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

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
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
