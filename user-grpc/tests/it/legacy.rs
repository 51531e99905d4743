//! A legacy client: messages with only the fields of the legacy proto (legacy-wire.md), talking
//! to the new server over raw gRPC paths. What the Python clients saw, they still see.

use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use crate::{PW, TestApp, authed, expect_code};

/// The legacy messages, field numbers as in legacy-wire.md and nothing more.
mod old {
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct User {
        #[prost(string, tag = "1")]
        pub(super) id: String,
        #[prost(string, tag = "2")]
        pub(super) username: String,
        #[prost(string, tag = "3")]
        pub(super) email: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct UserResponse {
        #[prost(message, optional, tag = "1")]
        pub(super) user: Option<User>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct RegisterUserRequest {
        #[prost(string, tag = "1")]
        pub(super) username: String,
        #[prost(string, tag = "2")]
        pub(super) email: String,
        #[prost(string, tag = "3")]
        pub(super) password: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct LoginUserRequest {
        #[prost(string, tag = "1")]
        pub(super) email: String,
        #[prost(string, tag = "2")]
        pub(super) password: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct LoginUserResponse {
        #[prost(string, tag = "1")]
        pub(super) token: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct GetUserRequest {
        #[prost(string, tag = "1")]
        pub(super) user_id: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct UpdateUserProfileRequest {
        #[prost(string, tag = "1")]
        pub(super) user_id: String,
        #[prost(string, tag = "2")]
        pub(super) username: String,
        #[prost(string, tag = "3")]
        pub(super) email: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct EmptyRequest {}
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct ListUsersResponse {
        #[prost(message, repeated, tag = "1")]
        pub(super) users: Vec<User>,
    }
}

/// One unary call on a raw method path, as a client generated from the old proto makes it.
pub(crate) async fn call<Req, Resp>(
    channel: &Channel,
    method: &'static str,
    request: Request<Req>,
) -> Result<Resp, Status>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let path = http::uri::PathAndQuery::from_static(method);
    let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
    grpc.unary(request, path, codec)
        .await
        .map(tonic::Response::into_inner)
}

const REGISTER: &str = "/user.UserService/RegisterUser";
const LOGIN: &str = "/user.UserService/LoginUser";
const GET: &str = "/user.UserService/GetUser";
const UPDATE: &str = "/user.UserService/UpdateUserProfile";
const LIST: &str = "/user.UserService/ListAllUsers";

fn register_req(name: &str) -> Request<old::RegisterUserRequest> {
    Request::new(old::RegisterUserRequest {
        username: name.into(),
        email: format!("{name}@example.com"),
        password: PW.into(),
    })
}

async fn login(channel: &Channel, email: &str) -> Result<old::LoginUserResponse, Status> {
    let req = old::LoginUserRequest {
        email: email.into(),
        password: PW.into(),
    };
    call(channel, LOGIN, Request::new(req)).await
}

#[tokio::test]
async fn the_legacy_flow_works_unchanged() {
    let app = TestApp::spawn().await;
    let ch = &app.channel;

    let created: old::UserResponse = call(ch, REGISTER, register_req("alice")).await.unwrap();
    let alice = created.user.unwrap();
    assert_eq!(
        (alice.username.as_str(), alice.email.as_str()),
        ("alice", "alice@example.com")
    );
    assert_eq!(alice.id.len(), 36);

    let token = login(ch, "alice@example.com").await.unwrap().token;
    assert_eq!(token.split('.').count(), 3, "a JWT, as before");

    for user_id in ["", alice.id.as_str()] {
        let req = authed(
            old::GetUserRequest {
                user_id: user_id.into(),
            },
            &token,
        );
        let got: old::UserResponse = call(ch, GET, req).await.unwrap();
        assert_eq!(got.user.unwrap(), alice);
    }

    let edit = old::UpdateUserProfileRequest {
        user_id: alice.id.clone(),
        username: "alice_l".into(),
        email: "alice.l@example.com".into(),
    };
    let got: old::UserResponse = call(ch, UPDATE, authed(edit, &token)).await.unwrap();
    let got = got.user.unwrap();
    assert_eq!(
        (got.username.as_str(), got.email.as_str()),
        ("alice_l", "alice.l@example.com")
    );
    assert!(login(ch, "alice.l@example.com").await.is_ok());
    app.stop().await;
}

#[tokio::test]
async fn the_errors_legacy_clients_look_at() {
    let app = TestApp::spawn().await;
    let ch = &app.channel;
    let _: old::UserResponse = call(ch, REGISTER, register_req("alice")).await.unwrap();

    let dup = call::<_, old::UserResponse>(ch, REGISTER, register_req("alice")).await;
    let status = expect_code(dup, Code::AlreadyExists);
    // Username and email both collide; the message names one of them, briefly.
    assert!(
        status.message().ends_with(" is already taken"),
        "{}",
        status.message()
    );

    let missing = Request::new(old::RegisterUserRequest::default());
    let status = expect_code(
        call::<_, old::UserResponse>(ch, REGISTER, missing).await,
        Code::InvalidArgument,
    );
    assert_eq!(
        status.message(),
        "username: is required; email: is required; password: is required"
    );

    let bad = old::LoginUserRequest {
        email: "alice@example.com".into(),
        password: "wrong".into(),
    };
    let status = expect_code(
        call::<_, old::LoginUserResponse>(ch, LOGIN, Request::new(bad)).await,
        Code::Unauthenticated,
    );
    assert_eq!(status.message(), "invalid username, email or password");

    let no_token = Request::new(old::GetUserRequest::default());
    expect_code(
        call::<_, old::UserResponse>(ch, GET, no_token).await,
        Code::Unauthenticated,
    );
    let expired = authed(old::GetUserRequest::default(), "eyJhbGciOiJIUzI1NiJ9.e30.x");
    expect_code(
        call::<_, old::UserResponse>(ch, GET, expired).await,
        Code::Unauthenticated,
    );
    app.stop().await;
}

#[tokio::test]
async fn what_the_legacy_server_allowed_anyone_now_needs_a_token_or_admin() {
    let app = TestApp::spawn().await;
    let ch = &app.channel;
    app.create_admin("root").await;
    let created: old::UserResponse = call(ch, REGISTER, register_req("alice")).await.unwrap();
    let alice = created.user.unwrap();

    let anonymous_edit = old::UpdateUserProfileRequest {
        user_id: alice.id.clone(),
        username: "pwned".into(),
        email: String::new(),
    };
    expect_code(
        call::<_, old::UserResponse>(ch, UPDATE, Request::new(anonymous_edit)).await,
        Code::Unauthenticated,
    );
    expect_code(
        call::<_, old::ListUsersResponse>(ch, LIST, Request::new(old::EmptyRequest {})).await,
        Code::Unauthenticated,
    );
    let token = login(ch, "alice@example.com").await.unwrap().token;
    expect_code(
        call::<_, old::ListUsersResponse>(ch, LIST, authed(old::EmptyRequest {}, &token)).await,
        Code::PermissionDenied,
    );

    let root = login(ch, "root@example.com").await.unwrap().token;
    let all: old::ListUsersResponse = call(ch, LIST, authed(old::EmptyRequest {}, &root))
        .await
        .unwrap();
    let names: Vec<_> = all.users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["alice", "root"]);
    let root_edit = old::UpdateUserProfileRequest {
        user_id: alice.id,
        username: "alice2".into(),
        email: String::new(),
    };
    let got: old::UserResponse = call(ch, UPDATE, authed(root_edit, &root)).await.unwrap();
    assert_eq!(
        got.user.unwrap().username,
        "alice2",
        "admins may edit anyone"
    );
    app.stop().await;
}
