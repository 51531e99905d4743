//! The request logs and metrics of `user_grpc::trace` and `user_grpc::metrics`: a caller's
//! mistake is logged at INFO, overload and timeouts at WARN and the server's faults at ERROR,
//! every line of a call carries its request id and peer, and made-up methods cannot grow the
//! metrics' label set.

use std::convert::Infallible;
use std::task::{Context, Poll};

use tonic::Code;
use tonic::server::NamedService;
use tonic::transport::Channel;
use user_core::testing::observe::{captured_logs, level, local_prometheus, sample, series};
use user_grpc::GrpcConfig;
use user_grpc::pb;

/// A service that answers `/test.Fail/N` with status code `N`, to provoke any status.
#[derive(Clone)]
struct Fail;

impl NamedService for Fail {
    const NAME: &'static str = "test.Fail";
}

impl tower::Service<http::Request<tonic::body::Body>> for Fail {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let code = request
            .uri()
            .path()
            .rsplit('/')
            .next()
            .and_then(|n| n.parse::<i32>().ok())
            .unwrap_or(2);
        std::future::ready(Ok(
            tonic::Status::new(Code::from(code), "provoked").into_http()
        ))
    }
}

/// Serves our routes and [`Fail`] with the trace layer and, if `metrics`, the metrics layer
/// (only one test provokes statuses on made-up paths, so the other can count them); returns a channel, the
/// stop signal and the server task.
async fn spawn(
    metrics: bool,
) -> (
    Channel,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
    tempfile::TempDir,
) {
    let (state, _clock, _db, dir) = crate::services().await;
    let config = GrpcConfig::default();
    let routes = user_grpc::routes(state, &config)
        .await
        .unwrap()
        .add_service(Fail);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let stopped = async {
            stopped.await.ok();
        };
        let trace = user_grpc::trace::layer();
        if metrics {
            let layers = (trace, user_grpc::metrics::MetricsLayer);
            user_grpc::serve(listener, routes, layers, stopped).await
        } else {
            user_grpc::serve(listener, routes, trace, stopped).await
        }
        .unwrap();
    });
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    (channel, stop, server, dir)
}

/// Calls any path with an empty message; the answer's status code.
async fn call(channel: &Channel, path: &str) -> Code {
    let mut client = tonic::client::Grpc::new(channel.clone());
    client.ready().await.unwrap();
    let path = http::uri::PathAndQuery::try_from(path).unwrap();
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    match client.unary(tonic::Request::new(()), path, codec).await {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

const CALLERS: [Code; 6] = [
    Code::InvalidArgument,
    Code::NotFound,
    Code::AlreadyExists,
    Code::PermissionDenied,
    Code::FailedPrecondition,
    Code::Unauthenticated,
];
/// Overload, throttling and timeouts.
const BUSY: [Code; 2] = [Code::ResourceExhausted, Code::DeadlineExceeded];
const SERVERS: [Code; 3] = [Code::Unknown, Code::Internal, Code::Unavailable];

#[tokio::test]
async fn caller_errors_log_at_info_overload_at_warn_and_server_errors_at_error() {
    captured_logs();
    let (channel, stop, server, _dir) = spawn(false).await;

    // A real refusal: GetUser without a token, under a request id of the client's.
    let mut users = pb::user_service_client::UserServiceClient::new(channel.clone());
    let mut request = tonic::Request::new(pb::GetUserRequest::default());
    let id = "observe-get-user-without-token";
    request
        .metadata_mut()
        .insert("x-request-id", id.parse().unwrap());
    let refused = users.get_user(request).await;
    assert_eq!(refused.unwrap_err().code(), Code::Unauthenticated);
    for code in CALLERS.into_iter().chain(BUSY).chain(SERVERS) {
        let path = format!("/test.Fail/{}", code as i32);
        assert_eq!(call(&channel, &path).await, code, "{path}");
    }
    stop.send(()).unwrap();
    server.await.unwrap();

    let logs = captured_logs();
    let lines: Vec<&str> = logs.lines().collect();
    let failure_of = |needle: &str| -> String {
        let matching: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.contains(needle))
            .filter(|l| l.contains("request refused") || l.contains("request failed"))
            .collect();
        assert_eq!(matching.len(), 1, "{needle}: {lines:#?}");
        matching[0].to_owned()
    };

    let get_user = failure_of(&format!("request_id={id} "));
    assert!(
        get_user.contains("path=/user.UserService/GetUser}"),
        "{get_user}"
    );
    assert_eq!(level(&get_user), "INFO", "{get_user}");
    assert!(get_user.contains("code=Unauthenticated"), "{get_user}");
    for code in CALLERS {
        let line = failure_of(&format!("path=/test.Fail/{}}}", code as i32));
        assert_eq!(level(&line), "INFO", "{line}");
        assert!(line.contains(&format!("code={code:?}")), "{line}");
    }
    for code in BUSY {
        let line = failure_of(&format!("path=/test.Fail/{}}}", code as i32));
        assert_eq!(level(&line), "WARN", "{line}");
        assert!(line.contains(&format!("code={code:?}")), "{line}");
    }
    for code in SERVERS {
        let line = failure_of(&format!("path=/test.Fail/{}}}", code as i32));
        assert_eq!(level(&line), "ERROR", "{line}");
        assert!(line.contains(&format!("code={code:?}")), "{line}");
    }
    // Each line of a call carries a request id, made by the server when the client sent
    // none, and the client's address.
    let in_calls: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("path=/test.Fail/"))
        .collect();
    assert!(in_calls.len() >= 2 * (CALLERS.len() + BUSY.len() + SERVERS.len()));
    for line in in_calls {
        assert!(line.contains("peer=127.0.0.1"), "{line}");
        let id = line
            .split("request_id=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_default();
        assert_eq!(id.len(), 36, "a UUID: {line}");
    }
}

// The recorder is this test's own (the server's and the channel's tasks run on the test's
// thread), so every count is exactly this test's calls.
#[tokio::test]
async fn calls_are_counted_by_served_method_and_made_up_methods_share_one_label() {
    let recorder = local_prometheus();
    let _local = metrics::set_default_local_recorder(&recorder);
    let handle = recorder.handle();
    let (channel, stop, server, _dir) = spawn(true).await;

    assert_eq!(
        call(&channel, "/grpc.health.v1.Health/Check").await,
        Code::Ok
    );
    let mut users = pb::user_service_client::UserServiceClient::new(channel.clone());
    let refused = users.get_user(pb::GetUserRequest::default()).await;
    assert_eq!(refused.unwrap_err().code(), Code::Unauthenticated);

    let junk = |i: usize| match i % 3 {
        0 => format!("/junk.Service{i}/Method{i}"),
        1 => format!("/user.UserService/Junk{i}"),
        _ => format!("/junk{i}"),
    };
    let unknown = "grpc_requests_total{method=\"unknown\",code=\"12\"}";
    assert_eq!(call(&channel, &junk(1000)).await, Code::Unimplemented);
    let before = handle.render();
    for i in 0..30 {
        assert_eq!(
            call(&channel, &junk(i)).await,
            Code::Unimplemented,
            "{}",
            junk(i)
        );
    }
    let after = handle.render();
    stop.send(()).unwrap();
    server.await.unwrap();

    // One Health/Check, one refused GetUser and 31 made-up calls.
    for (expected, calls) in [
        (
            "grpc_requests_total{method=\"/grpc.health.v1.Health/Check\",code=\"0\"}",
            1.0,
        ),
        (
            "grpc_requests_total{method=\"/user.UserService/GetUser\",code=\"16\"}",
            1.0,
        ),
        (
            "grpc_request_duration_seconds_count{method=\"/user.UserService/GetUser\"}",
            1.0,
        ),
        (unknown, 31.0),
    ] {
        assert_eq!(sample(&after, expected), calls, "{expected}:\n{after}");
    }
    let made_up: Vec<_> = series(&after, "grpc_")
        .into_iter()
        .filter(|s| s.to_lowercase().contains("junk"))
        .collect();
    assert!(
        made_up.is_empty(),
        "made-up names became labels: {made_up:#?}"
    );
    let unknowns = |page| {
        series(page, "grpc_")
            .into_iter()
            .filter(|s| s.contains("method=\"unknown\""))
            .count()
    };
    assert_eq!(unknowns(&before), unknowns(&after), "{after}");
}
