//! The examples, exercised: `grpc_embed` serves on port 0 over a fresh SQLite file and
//! `grpc_client` walks through it.

// The examples' `main` functions are not called here.
#[allow(dead_code)]
#[path = "../examples/grpc_client.rs"]
mod grpc_client;
#[allow(dead_code)]
#[path = "../examples/grpc_embed.rs"]
mod grpc_embed;

use tonic::Code;
use user_core::auth::SigningKey;
use user_sqlite::{SqliteConfig, SqliteDatabase};

#[tokio::test]
async fn the_grpc_client_walks_through_the_embedded_server() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = SqliteDatabase::open(&SqliteConfig::new(dir.path().join("users.db"))).await?;
    let key = SigningKey::generate_ed25519()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        grpc_embed::run(listener, &db, &key, async {
            let _ = stopped.await;
        })
        .await
    });

    let seen = grpc_client::run(endpoint, "walker").await?;
    assert_eq!(seen.user.username, "walker");
    assert_eq!(
        seen.inventory_owner, seen.user.id,
        "the host saw the signed-in user"
    );
    assert_eq!(seen.after_logout, Code::Unauthenticated);

    let _ = stop.send(());
    server.await??;
    Ok(())
}
