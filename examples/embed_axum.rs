//! A host axum application that mounts user-management under `/auth` and protects its own
//! routes with the `CurrentActor` and `AdminActor` extractors.
//!
//! ```sh
//! cargo run --example embed_axum      # http://127.0.0.1:3000, data in ./data/embed_axum.db
//! cargo run --example embed_axum -- --addr 127.0.0.1:0 --db /tmp/embed.db
//! ```
//!
//! Then open <http://127.0.0.1:3000/auth/register> in a browser, or use curl:
//!
//! ```sh
//! curl -s -X POST localhost:3000/auth/api/v1/auth/register -H 'content-type: application/json' \
//!   -d '{"username":"alice","email":"alice@example.com","password":"correct horse battery staple"}'
//! TOKEN=$(curl -s -X POST localhost:3000/auth/api/v1/auth/login -H 'content-type: application/json' \
//!   -d '{"identifier":"alice","password":"correct horse battery staple"}' | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
//! curl -s localhost:3000/dashboard -H "authorization: Bearer $TOKEN"
//! ```

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use user_core::Services;
use user_core::auth::SigningKey;
use user_http::{AdminActor, AppState, CurrentActor};
use user_sqlite::{SqliteConfig, SqliteDatabase};

/// The host's own page: anyone may see it.
async fn home() -> &'static str {
    "Welcome! Sign in at /auth/login, then visit /dashboard."
}

/// The host's own route for signed-in people (bearer token or the pages' session cookie).
async fn dashboard(CurrentActor(actor): CurrentActor) -> String {
    format!("dashboard of user {}", actor.user_id)
}

/// The host's own route for admins only.
async fn operations(AdminActor(actor): AdminActor) -> String {
    format!("operations console for admin {}", actor.user_id)
}

/// The host application: its routes, and ours under `/auth`. This is all the wiring.
pub(crate) fn app(db: &SqliteDatabase, signing_key: SigningKey) -> anyhow::Result<Router> {
    let services = Services::builder(db.storage())
        .signing_key(signing_key, vec![])
        .build()?;
    let ping = db.clone();
    let state = AppState::from(&services).with_readiness(Arc::new(move || {
        let db = ping.clone();
        Box::pin(async move { db.ping().await.is_ok() })
    }));
    Ok(Router::new()
        .route("/", get(home))
        .route("/dashboard", get(dashboard))
        .route("/operations", get(operations))
        .with_state(state.clone())
        .nest("/auth", user_http::router(state)))
}

/// Where to listen and keep the data.
#[derive(Debug, clap::Parser)]
struct Args {
    /// The address to listen on (port 0: any free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: std::net::SocketAddr,
    /// The SQLite file, created if missing.
    #[arg(long, default_value = "data/embed_axum.db")]
    db: std::path::PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    use clap::Parser as _;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    if let Some(folder) = args.db.parent() {
        std::fs::create_dir_all(folder)?;
    }
    let db = SqliteDatabase::open(&SqliteConfig::new(&args.db)).await?;
    // A fresh key per start: tokens and cookies' tokens do not survive a restart here.
    let key = SigningKey::generate_ed25519()?;
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    println!(
        "http://{}/  (pages under /auth, API under /auth/api/v1)",
        listener.local_addr()?
    );
    user_http::serve(listener, app(&db, key)?, user_http::trace::layer(), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    db.close().await;
    Ok(())
}
