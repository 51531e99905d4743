//! `RequireAuthLayer` in front of a host application's own service. The health service stands
//! in for the host's service: any tonic service works the same.

use std::sync::Arc;

use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower::Layer as _;
use user_grpc::RequireAuthLayer;

use crate::{TestApp, authed, expect_code};

#[tokio::test]
async fn only_requests_with_a_live_token_reach_the_host_service() {
    let mut app = TestApp::spawn().await;
    app.register("alice").await;
    let login = app.login("alice").await;

    let (_reporter, host_service) = tonic_health::server::health_reporter();
    let protected = RequireAuthLayer::new(Arc::clone(&app.state.auth)).layer(host_service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(protected)
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                async {
                    rx.await.ok();
                },
            ),
    );
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);
    let check = || HealthCheckRequest {
        service: String::new(),
    };

    let status = expect_code(client.check(check()).await, Code::Unauthenticated);
    assert_eq!(status.message(), "not signed in or the session has ended");
    expect_code(
        client.check(authed(check(), "not-a-token")).await,
        Code::Unauthenticated,
    );
    assert!(client.check(authed(check(), &login.token)).await.is_ok());

    // Logging out takes effect on the host's service too.
    app.users
        .logout(authed(user_grpc::pb::EmptyRequest {}, &login.token))
        .await
        .unwrap();
    expect_code(
        client.check(authed(check(), &login.token)).await,
        Code::Unauthenticated,
    );

    tx.send(()).unwrap();
    server.await.unwrap().unwrap();
    app.stop().await;
}
