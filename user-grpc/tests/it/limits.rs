//! Oversized and malformed requests get an error status, never a panic, and the server keeps
//! answering.

use tonic::{Code, Request};
use user_grpc::{GrpcConfig, pb};

use crate::TestApp;
use crate::legacy::call;

/// Field 1 of RegisterUserRequest is a string; this sends a varint there.
#[derive(Clone, PartialEq, prost::Message)]
struct WrongWireType {
    #[prost(int64, tag = "1")]
    username: i64,
}

/// A string field holding bytes that are not UTF-8.
#[derive(Clone, PartialEq, prost::Message)]
struct NotUtf8 {
    #[prost(bytes = "vec", tag = "1")]
    username: Vec<u8>,
}

async fn still_answers(app: &mut TestApp) {
    let r = app.users.login_user(pb::LoginUserRequest::default()).await;
    assert_eq!(
        r.unwrap_err().code(),
        Code::InvalidArgument,
        "the server still answers"
    );
}

#[tokio::test]
async fn an_oversized_message_is_refused() {
    let mut app = TestApp::spawn_with(GrpcConfig::default()).await;
    let req = pb::RegisterUserRequest {
        username: "alice".into(),
        email: "alice@example.com".into(),
        password: "x".repeat(70 * 1024),
        display_name: String::new(),
    };
    let status = app.users.register_user(req).await.unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    still_answers(&mut app).await;
    app.stop().await;
}

#[tokio::test]
async fn long_fields_under_the_limit_are_validation_errors() {
    let mut app = TestApp::spawn().await;
    let req = pb::RegisterUserRequest {
        username: "a".repeat(10_000),
        email: format!("{}@example.com", "b".repeat(10_000)),
        password: "c".repeat(10_000),
        display_name: "d".repeat(10_000),
    };
    let status = app.users.register_user(req).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().len() < 400,
        "a short message: {}",
        status.message()
    );
    app.stop().await;
}

#[tokio::test]
async fn malformed_protobuf_gets_an_error_status() {
    let mut app = TestApp::spawn().await;
    let path = "/user.UserService/RegisterUser";
    let wrong = call::<_, pb::UserResponse>(
        &app.channel,
        path,
        Request::new(WrongWireType { username: 7 }),
    )
    .await;
    let code = wrong.unwrap_err().code();
    assert!(
        matches!(code, Code::Internal | Code::InvalidArgument),
        "{code:?}"
    );
    let bytes = NotUtf8 {
        username: vec![0xff, 0xfe, 0xfd],
    };
    let bad = call::<_, pb::UserResponse>(&app.channel, path, Request::new(bytes)).await;
    let code = bad.unwrap_err().code();
    assert!(
        matches!(code, Code::Internal | Code::InvalidArgument),
        "{code:?}"
    );
    let unknown = call::<_, pb::UserResponse>(
        &app.channel,
        "/user.UserService/Nope",
        Request::new(NotUtf8::default()),
    )
    .await;
    assert_eq!(unknown.unwrap_err().code(), Code::Unimplemented);
    still_answers(&mut app).await;
    app.stop().await;
}

/// A service whose calls never finish, to run into the request timeout.
#[derive(Clone)]
struct Stall;

impl tonic::server::NamedService for Stall {
    const NAME: &'static str = "test.Stall";
}

impl tower::Service<http::Request<tonic::body::Body>> for Stall {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = std::future::Pending<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Request<tonic::body::Body>) -> Self::Future {
        std::future::pending()
    }
}

/// The request timeout travels with the routes: `serve` takes no config, yet a call that
/// runs longer than `GrpcConfig::request_timeout` is cancelled.
#[tokio::test]
async fn the_routes_carry_the_request_timeout_to_serve() {
    let (state, _clock, _db, _dir) = crate::services().await;
    let config = GrpcConfig {
        request_timeout: std::time::Duration::from_millis(200),
        ..GrpcConfig::default()
    };
    let routes = user_grpc::routes(state, &config)
        .await
        .unwrap()
        .add_service(Stall);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(user_grpc::serve(listener, routes, (), async {
        stopped.await.ok();
    }));
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static("/test.Stall/Wait");
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let status = client
        .unary(Request::new(()), path, codec)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Cancelled, "{status:?}");
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
