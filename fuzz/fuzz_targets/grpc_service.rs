//! The gRPC adapter end to end, in process: a request message (fuzzed bytes, or fuzzed
//! fields) is framed and sent through `user_grpc::routes` with tower's `oneshot`, so tonic
//! decodes it and the crate's conversions (`convert.rs`: ids, role and status enums,
//! optional fields, page tokens) and services run on in-memory fakes.
//!
//! Checks: no panic; no `UNKNOWN`, `INTERNAL` (except tonic's own for bytes that do not
//! decode as the message), `UNIMPLEMENTED` or `DATA_LOSS`; a call without a token is
//! `UNAUTHENTICATED`, a non-admin's admin call `PERMISSION_DENIED`; a registration succeeds
//! exactly when every field parses (or is `ALREADY_EXISTS`) and returns the normalized
//! values; a user list obeys its page size and filters; a successful response decodes.
#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use secrecy::SecretString;
use tonic::Code;
use tower::ServiceExt;
use user_core::domain::{DisplayName, Email, Password, PasswordPolicy, UserQuery, Username};
use user_core::testing::Fixture;
use user_grpc::{GrpcConfig, GrpcState, pb};
use user_management_fuzz::{NEW_PASSWORD, Str, World, block_on};

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Caller {
    Nobody,
    User,
    Admin,
    Garbage,
}

#[derive(Debug, Arbitrary)]
enum Target {
    Empty,
    Me,
    Admin,
    Text(String),
}

#[derive(Debug, Arbitrary)]
enum Call {
    Register {
        username: Str,
        email: Str,
        password: Str,
        display_name: Str,
    },
    Login {
        email: Str,
        username: Str,
        password: Str,
    },
    GetUser(Target),
    UpdateProfile {
        target: Target,
        username: String,
        email: String,
        display_name: Option<String>,
    },
    ListAll,
    Refresh(String),
    ChangePassword {
        current: Str,
        new: Str,
    },
    RevokeSession(String),
    ListUsers {
        page_size: u32,
        page_token: String,
        search: String,
        role: i32,
        status: i32,
    },
    AdminGet(Target),
    AdminUpdate {
        target: Target,
        username: String,
        email: String,
        display_name: Option<String>,
    },
    SetRole(Target, i32),
    SetStatus(Target, i32),
    AdminDelete(Target),
    /// Raw bytes as the message of method number `n`.
    Raw(u8, Vec<u8>),
}

const METHODS: [&str; 18] = [
    "/user.UserService/RegisterUser",
    "/user.UserService/LoginUser",
    "/user.UserService/GetUser",
    "/user.UserService/UpdateUserProfile",
    "/user.UserService/ListAllUsers",
    "/user.UserService/RefreshToken",
    "/user.UserService/Logout",
    "/user.UserService/LogoutEverywhere",
    "/user.UserService/ChangePassword",
    "/user.UserService/DeleteAccount",
    "/user.UserService/ListSessions",
    "/user.UserService/RevokeSession",
    "/user.AdminService/ListUsers",
    "/user.AdminService/GetUser",
    "/user.AdminService/UpdateUser",
    "/user.AdminService/SetRole",
    "/user.AdminService/SetStatus",
    "/user.AdminService/DeleteUser",
];

/// Whether `bytes` decode as the request message of `METHODS[n]`.
fn decodes(n: usize, bytes: &[u8]) -> bool {
    match n {
        0 => pb::RegisterUserRequest::decode(bytes).is_ok(),
        1 => pb::LoginUserRequest::decode(bytes).is_ok(),
        2 => pb::GetUserRequest::decode(bytes).is_ok(),
        3 => pb::UpdateUserProfileRequest::decode(bytes).is_ok(),
        4 | 6 | 7 | 10 => pb::EmptyRequest::decode(bytes).is_ok(),
        5 => pb::RefreshTokenRequest::decode(bytes).is_ok(),
        8 => pb::ChangePasswordRequest::decode(bytes).is_ok(),
        9 => pb::DeleteAccountRequest::decode(bytes).is_ok(),
        11 => pb::RevokeSessionRequest::decode(bytes).is_ok(),
        12 => pb::ListUsersRequest::decode(bytes).is_ok(),
        13 | 17 => pb::AdminUserRequest::decode(bytes).is_ok(),
        14 => pb::AdminUpdateUserRequest::decode(bytes).is_ok(),
        15 => pb::SetRoleRequest::decode(bytes).is_ok(),
        _ => pb::SetStatusRequest::decode(bytes).is_ok(),
    }
}

struct Reply {
    code: Code,
    message: Option<Bytes>,
}

async fn call(world: &World, caller: Caller, method: &str, msg: Vec<u8>) -> Reply {
    let state = GrpcState::new(
        world.auth.clone(),
        world.users.clone(),
        world.account.clone(),
    );
    let routes = user_grpc::routes(state, &GrpcConfig::default())
        .await
        .expect("routes");
    let mut body = Vec::with_capacity(msg.len() + 5);
    body.push(0);
    body.extend_from_slice(&u32::try_from(msg.len()).expect("small").to_be_bytes());
    body.extend_from_slice(&msg);
    let mut request = http::Request::post(format!("http://localhost{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    match caller {
        Caller::Nobody => {}
        Caller::User => {
            request = request.header("authorization", format!("Bearer {}", world.user.token));
        }
        Caller::Admin => {
            request = request.header("authorization", format!("Bearer {}", world.admin.token));
        }
        Caller::Garbage => request = request.header("authorization", "Bearer x.y.z"),
    }
    let request = request.body(Full::new(Bytes::from(body))).expect("request");
    let response = routes.oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let collected = body.collect().await.expect("response body");
    let trailers = collected.trailers().cloned();
    let data = collected.to_bytes();
    let status = trailers
        .as_ref()
        .and_then(|t| t.get("grpc-status"))
        .or_else(|| parts.headers.get("grpc-status"))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .expect("a grpc-status");
    let message = (data.len() >= 5).then(|| {
        let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
        assert_eq!(data.len(), 5 + len, "one response message");
        data.slice(5..)
    });
    Reply {
        code: Code::from_i32(status),
        message,
    }
}

fn target_id(world: &World, t: &Target) -> String {
    match t {
        Target::Empty => String::new(),
        Target::Me => world.user.user.id.to_string(),
        Target::Admin => world.admin.user.id.to_string(),
        Target::Text(s) => s.clone(),
    }
}

fn needs_token(method: usize) -> bool {
    !matches!(method, 0 | 1 | 5)
}

fn is_admin_rpc(method: usize) -> bool {
    method >= 12
}

fuzz_target!(|input: (Caller, Call)| {
    let (caller, call_) = input;
    block_on(async {
        let world = World::new().await;
        let (method, msg) = match &call_ {
            Call::Register {
                username,
                email,
                password,
                display_name,
            } => (
                0,
                pb::RegisterUserRequest {
                    username: username.or("bob"),
                    email: email.or("bob@example.com"),
                    password: password.or(NEW_PASSWORD),
                    display_name: display_name.or("Bob"),
                }
                .encode_to_vec(),
            ),
            Call::Login {
                email,
                username,
                password,
            } => (
                1,
                pb::LoginUserRequest {
                    email: email.or("alice@example.com"),
                    password: password.or(Fixture::PASSWORD),
                    username: username.or("alice"),
                    device_token: String::new(),
                }
                .encode_to_vec(),
            ),
            Call::GetUser(t) => (
                2,
                pb::GetUserRequest {
                    user_id: target_id(&world, t),
                }
                .encode_to_vec(),
            ),
            Call::UpdateProfile {
                target,
                username,
                email,
                display_name,
            } => (
                3,
                pb::UpdateUserProfileRequest {
                    user_id: target_id(&world, target),
                    username: username.clone(),
                    email: email.clone(),
                    display_name: display_name.clone(),
                }
                .encode_to_vec(),
            ),
            Call::ListAll => (4, Vec::new()),
            Call::Refresh(t) => (
                5,
                pb::RefreshTokenRequest {
                    refresh_token: t.clone(),
                }
                .encode_to_vec(),
            ),
            Call::ChangePassword { current, new } => (
                8,
                pb::ChangePasswordRequest {
                    current_password: current.or(Fixture::PASSWORD),
                    new_password: new.or(NEW_PASSWORD),
                }
                .encode_to_vec(),
            ),
            Call::RevokeSession(s) => (
                11,
                pb::RevokeSessionRequest {
                    session_id: s.clone(),
                }
                .encode_to_vec(),
            ),
            Call::ListUsers {
                page_size,
                page_token,
                search,
                role,
                status,
            } => (
                12,
                pb::ListUsersRequest {
                    page_size: *page_size,
                    page_token: page_token.clone(),
                    search: search.clone(),
                    role: *role,
                    status: *status,
                }
                .encode_to_vec(),
            ),
            Call::AdminGet(t) => (
                13,
                pb::AdminUserRequest {
                    user_id: target_id(&world, t),
                }
                .encode_to_vec(),
            ),
            Call::AdminUpdate {
                target,
                username,
                email,
                display_name,
            } => (
                14,
                pb::AdminUpdateUserRequest {
                    user_id: target_id(&world, target),
                    username: username.clone(),
                    email: email.clone(),
                    display_name: display_name.clone(),
                }
                .encode_to_vec(),
            ),
            Call::SetRole(t, role) => (
                15,
                pb::SetRoleRequest {
                    user_id: target_id(&world, t),
                    role: *role,
                }
                .encode_to_vec(),
            ),
            Call::SetStatus(t, status) => (
                16,
                pb::SetStatusRequest {
                    user_id: target_id(&world, t),
                    status: *status,
                }
                .encode_to_vec(),
            ),
            Call::AdminDelete(t) => (
                17,
                pb::AdminUserRequest {
                    user_id: target_id(&world, t),
                }
                .encode_to_vec(),
            ),
            Call::Raw(n, bytes) => (usize::from(*n) % METHODS.len(), bytes.clone()),
        };
        if msg.len() > GrpcConfig::default().max_message_size {
            return;
        }
        let well_formed = decodes(method, &msg);
        let reply = call(&world, caller, METHODS[method], msg).await;
        let code = reply.code;

        assert!(
            !matches!(code, Code::Unknown | Code::Unimplemented | Code::DataLoss),
            "{} answered {code:?}",
            METHODS[method]
        );
        if well_formed {
            assert_ne!(
                code,
                Code::Internal,
                "{} answered INTERNAL",
                METHODS[method]
            );
        } else {
            return;
        }
        if needs_token(method) && matches!(caller, Caller::Nobody | Caller::Garbage) {
            assert_eq!(code, Code::Unauthenticated, "{}", METHODS[method]);
        }
        if is_admin_rpc(method) && matches!(caller, Caller::User) {
            assert_eq!(code, Code::PermissionDenied, "{}", METHODS[method]);
        }
        if code == Code::Ok && method != 6 && method != 7 {
            assert!(reply.message.is_some(), "OK without a message");
        }

        match &call_ {
            Call::Register {
                username,
                email,
                password,
                display_name,
            } => {
                let (username, email, password, display_name) = (
                    &username.or("bob"),
                    &email.or("bob@example.com"),
                    &password.or(NEW_PASSWORD),
                    &display_name.or("Bob"),
                );
                let u = Username::parse(username).ok();
                let e = Email::parse(email).ok();
                let d = DisplayName::parse(display_name).is_ok();
                let p = Password::parse(
                    SecretString::from(password.as_str()),
                    &PasswordPolicy::default(),
                    u.as_ref(),
                    e.as_ref(),
                )
                .is_ok();
                let valid = u.is_some() && e.is_some() && d && p;
                if valid {
                    assert!(
                        matches!(code, Code::Ok | Code::AlreadyExists),
                        "valid registration answered {code:?}"
                    );
                } else {
                    assert_eq!(code, Code::InvalidArgument, "invalid registration");
                }
                if code == Code::Ok {
                    let r =
                        pb::UserResponse::decode(reply.message.expect("message")).expect("decodes");
                    let user = r.user.expect("user");
                    assert_eq!(
                        Some(user.username.as_str()),
                        u.as_ref().map(Username::as_str)
                    );
                    assert_eq!(Some(user.email.as_str()), e.as_ref().map(Email::as_str));
                    assert_eq!(user.role, pb::Role::User as i32);
                    assert_eq!(user.status, pb::Status::Active as i32);
                }
            }
            Call::ListUsers {
                page_size,
                page_token,
                search,
                role,
                status,
            } if matches!(caller, Caller::Admin) => {
                let query_ok =
                    UserQuery::parse(Some(search), Some(*page_size), Some(page_token)).is_ok();
                let enums_ok =
                    pb::Role::try_from(*role).is_ok() && pb::Status::try_from(*status).is_ok();
                if query_ok && enums_ok {
                    assert_eq!(code, Code::Ok, "valid list request");
                    let page = pb::ListUsersPage::decode(reply.message.expect("message"))
                        .expect("decodes");
                    let limit = if *page_size == 0 { 20 } else { *page_size } as usize;
                    assert!(page.users.len() <= limit, "page larger than asked");
                    for u in &page.users {
                        if *role != 0 {
                            assert_eq!(u.role, *role, "role filter");
                        }
                        if *status != 0 {
                            assert_eq!(u.status, *status, "status filter");
                        }
                    }
                } else {
                    assert_eq!(code, Code::InvalidArgument, "invalid list request");
                }
            }
            Call::SetRole(_, role) if code == Code::Ok => {
                let r = pb::UserResponse::decode(reply.message.expect("message")).expect("decodes");
                assert_eq!(r.user.expect("user").role, *role);
            }
            Call::SetStatus(_, status) if code == Code::Ok => {
                let r = pb::UserResponse::decode(reply.message.expect("message")).expect("decodes");
                assert_eq!(r.user.expect("user").status, *status);
            }
            _ => {}
        }
    });
});
