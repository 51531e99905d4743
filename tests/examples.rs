//! The examples, exercised over fresh SQLite files: `grpc_embed` serves on port 0 and
//! `grpc_client` walks through it; `embed_axum`'s routes are driven through its router.

// Test helpers panic on failure, by design.
#![allow(clippy::unwrap_used)]

// The examples' `main` functions are not called here.
#[allow(dead_code)]
#[path = "../examples/embed_axum.rs"]
mod embed_axum;
#[allow(dead_code)]
#[path = "../examples/grpc_client.rs"]
mod grpc_client;
#[allow(dead_code)]
#[path = "../examples/grpc_embed.rs"]
mod grpc_embed;
#[allow(dead_code)]
#[path = "../examples/load_test.rs"]
mod load_test;

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
        grpc_embed::run(listener, &db, key, async {
            let _ = stopped.await;
        })
        .await
    });

    let seen = grpc_client::run(endpoint, "walker").await?;
    assert_eq!(seen.user.username, "walker");
    assert_eq!(
        seen.inventory_owner.as_deref(),
        Some(seen.user.id.as_str()),
        "the host saw the signed-in user"
    );
    assert_eq!(seen.after_logout, Code::Unauthenticated);

    let _ = stop.send(());
    server.await??;
    Ok(())
}

async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (axum::http::StatusCode, String) {
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;
    let mut request = axum::http::Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let body = match body {
        Some(json) => {
            request = request.header("content-type", "application/json");
            axum::body::Body::from(json.to_string())
        }
        None => axum::body::Body::empty(),
    };
    let response = app
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn the_axum_host_protects_its_own_routes_with_our_extractors() -> anyhow::Result<()> {
    use axum::http::StatusCode;
    let dir = tempfile::tempdir()?;
    let db = SqliteDatabase::open(&SqliteConfig::new(dir.path().join("users.db"))).await?;
    let app = embed_axum::app(&db, SigningKey::generate_ed25519()?)?;
    let password = "correct horse battery staple";

    let (status, _) = call(&app, "GET", "/", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call(&app, "GET", "/dashboard", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("\"code\":\"unauthenticated\""), "{body}");

    let register = serde_json::json!({"username": "alice", "email": "alice@example.com", "password": password});
    let (status, body) = call(
        &app,
        "POST",
        "/auth/api/v1/auth/register",
        None,
        Some(register),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let user: serde_json::Value = serde_json::from_str(&body)?;
    let login = serde_json::json!({"identifier": "alice", "password": password});
    let (_, body) = call(&app, "POST", "/auth/api/v1/auth/login", None, Some(login)).await;
    let tokens: serde_json::Value = serde_json::from_str(&body)?;
    let token = tokens["access_token"].as_str().unwrap_or_default();

    let (status, body) = call(&app, "GET", "/dashboard", Some(token), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        format!(
            "dashboard of user {}",
            user["id"].as_str().unwrap_or_default()
        )
    );
    let (status, _) = call(&app, "GET", "/operations", Some(token), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "alice is no admin");
    let (status, _) = call(&app, "GET", "/auth/login", None, None).await;
    assert_eq!(status, StatusCode::OK, "the pages are mounted under /auth");

    // An admin, made the way an operator's tool would, passes `AdminUser`.
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
    let login = serde_json::json!({"identifier": "root", "password": password});
    let (_, body) = call(&app, "POST", "/auth/api/v1/auth/login", None, Some(login)).await;
    let tokens: serde_json::Value = serde_json::from_str(&body)?;
    let root = tokens["access_token"].as_str().unwrap_or_default();
    let (status, body) = call(&app, "GET", "/operations", Some(root), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("operations console for admin"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_test_answers_every_sign_in() -> anyhow::Result<()> {
    // A small flood: the point is that every attempt gets an answer, not how fast.
    let report = load_test::run(12, 6).await?;
    assert_eq!(report.attempts, 12);
    assert_eq!(report.failed, 0, "{report}");
    assert!(report.signed_in >= 1, "{report}");
    assert!(report.to_string().contains("sign-ins in"));
    Ok(())
}
