//! Health and reflection answer; health follows a readiness check.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tokio_stream::StreamExt as _;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

use user_core::Readiness;
use user_grpc::GrpcConfig;

use crate::TestApp;

/// The names whose health follows readiness: the whole server and our two services.
const FOLLOWING: [&str; 3] = ["", "user.UserService", "user.AdminService"];

/// How long a test waits for something that should happen within a few check intervals.
const PATIENCE: Duration = Duration::from_secs(10);

/// A readiness check answering `ready`, counting its calls in `checks`. The closure holds the
/// one extra strong reference to each, so their counts show whether it still exists.
fn flag_check(ready: &Arc<AtomicBool>, checks: &Arc<AtomicUsize>) -> Readiness {
    let (ready, checks) = (Arc::clone(ready), Arc::clone(checks));
    Arc::new(move || {
        checks.fetch_add(1, Ordering::SeqCst);
        let answer = ready.load(Ordering::SeqCst);
        Box::pin(async move { answer })
    })
}

/// A config that runs the check every 50 ms.
fn fast_checks() -> GrpcConfig {
    GrpcConfig {
        health_check_interval: Duration::from_millis(50),
        ..GrpcConfig::default()
    }
}

/// Polls `condition` every 10 ms until it holds; fails the test after [`PATIENCE`].
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Checks every name of [`FOLLOWING`] until all report `expected`; fails after [`PATIENCE`].
async fn wait_for_health(channel: &Channel, expected: ServingStatus) {
    let mut health = HealthClient::new(channel.clone());
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut seen = Vec::new();
        for service in FOLLOWING {
            let res = health
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .unwrap()
                .into_inner();
            seen.push(res.status());
        }
        if seen.iter().all(|status| *status == expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "expected {expected:?} for {FOLLOWING:?}, still {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn health_reports_both_services_serving() {
    let app = TestApp::spawn().await;
    let mut health = HealthClient::new(app.channel.clone());
    for service in ["", "user.UserService", "user.AdminService"] {
        let res = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(res.status(), ServingStatus::Serving, "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "nope".into(),
        })
        .await;
    assert_eq!(unknown.unwrap_err().code(), tonic::Code::NotFound);
    app.stop().await;
}

#[tokio::test]
async fn reflection_lists_and_describes_our_services() {
    let app = TestApp::spawn().await;
    let mut client = ServerReflectionClient::new(app.channel.clone());
    let requests = tokio_stream::iter([
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        },
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "user.UserService".into(),
            )),
        },
    ]);
    let mut responses = client
        .server_reflection_info(requests)
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list")
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    for expected in [
        "user.UserService",
        "user.AdminService",
        "grpc.health.v1.Health",
    ] {
        assert!(names.contains(&expected), "{names:?}");
    }
    let Some(MessageResponse::FileDescriptorResponse(files)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected a file descriptor")
    };
    assert!(!files.file_descriptor_proto.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn health_follows_readiness_and_its_task_ends_with_the_server() {
    let (state, _clock, _db, _dir) = crate::services().await;
    let ready = Arc::new(AtomicBool::new(true));
    let checks = Arc::new(AtomicUsize::new(0));
    let state = state.with_readiness(flag_check(&ready, &checks));
    let routes = user_grpc::routes(state, &fast_checks()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(user_grpc::serve(listener, routes, (), async {
        stopped.await.ok();
    }));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();

    wait_for_health(&channel, ServingStatus::Serving).await;
    eventually("the check has run", || checks.load(Ordering::SeqCst) > 0).await;

    ready.store(false, Ordering::SeqCst);
    wait_for_health(&channel, ServingStatus::NotServing).await;
    // Services nobody registered stay unknown.
    let unknown = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: "nope".into(),
        })
        .await;
    assert_eq!(unknown.unwrap_err().code(), tonic::Code::NotFound);

    ready.store(true, Ordering::SeqCst);
    wait_for_health(&channel, ServingStatus::Serving).await;

    drop(channel);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    eventually("the readiness task has dropped its check", || {
        Arc::strong_count(&ready) == 1
    })
    .await;
    assert_eq!(Arc::strong_count(&checks), 1);
}

#[tokio::test]
async fn the_readiness_task_lives_while_any_copy_of_the_routes_does() {
    let (state, _clock, _db, _dir) = crate::services().await;
    let ready = Arc::new(AtomicBool::new(true));
    let checks = Arc::new(AtomicUsize::new(0));
    let state = state.with_readiness(flag_check(&ready, &checks));
    let routes = user_grpc::routes(state, &fast_checks()).await.unwrap();
    let copy = routes.clone();
    eventually("the check has run", || checks.load(Ordering::SeqCst) > 0).await;

    drop(routes);
    let before = checks.load(Ordering::SeqCst);
    eventually("the check runs on for the clone", || {
        checks.load(Ordering::SeqCst) > before
    })
    .await;

    // The plain tonic routes, for a host's own server, keep it running too.
    let plain = copy.into_routes();
    let before = checks.load(Ordering::SeqCst);
    eventually("the check runs on for the plain routes", || {
        checks.load(Ordering::SeqCst) > before
    })
    .await;
    assert_eq!(Arc::strong_count(&ready), 2, "the task holds the check");

    drop(plain);
    eventually("the readiness task has dropped its check", || {
        Arc::strong_count(&ready) == 1
    })
    .await;
    // Dropped, the check can never run again.
    assert_eq!(Arc::strong_count(&checks), 1);
}
