//! The failures a client can meet that the other files leave open (issue 15): every admin
//! RPC without a live token and with a user's token, every UserService RPC that needs a
//! token, AdminService.UpdateUser's errors, SetRole and SetStatus on an unknown user, the
//! last admin's own DeleteAccount, malformed user ids, SendPasswordReset without mail or to
//! a disabled account, what disabling, re-enabling and deleting a user do to their sessions
//! in the store, ResendVerification's limit, a server without second factors, and a
//! saturated password hasher. Each test checks the code, the message where it is part of
//! the contract, and that the refused call changed nothing.
//!
//! The RPC lists are the proto's, read from the descriptor set the server embeds: an RPC
//! added to the proto without an entry here fails the tests that enumerate them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prost::Message as _;
use secrecy::SecretString;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt as _;
use user_core::domain::{Password, PasswordHash, SessionId};
use user_core::error::{
    AuthError, FACTORS_NOT_CONFIGURED, HashError, LAST_ADMIN, RepoError, UserError,
};
use user_core::ports::{Clock as _, PasswordHasher, Verification};
use user_core::testing::FastHasher;
use user_grpc::pb;

use crate::{PW, TestApp, authed, expect_code};

/// A well-formed id no user has.
const MISSING: &str = "00000000-0000-7000-8000-000000000000";

/// A string that is no access token.
const GARBAGE: &str = "x.y.z";

/// Every RPC of `user.AdminService`, in proto order.
const ADMIN_RPCS: [&str; 11] = [
    "ListUsers",
    "GetUser",
    "UpdateUser",
    "SetRole",
    "SetStatus",
    "DeleteUser",
    "UnlockUser",
    "SendPasswordReset",
    "ListAuditEvents",
    "GetSecondFactor",
    "ResetSecondFactor",
];

/// The RPCs of `user.UserService` that need no token (sign-in, registration, links).
const ANONYMOUS_USER_RPCS: [&str; 11] = [
    "RegisterUser",
    "LoginUser",
    "RefreshToken",
    "RequestPasswordReset",
    "ResetPassword",
    "VerifyEmail",
    "RequestVerification",
    "SignIn",
    "CompleteSignIn",
    "StartEnrolment",
    "CompleteEnrolment",
];

/// The RPCs of `user.UserService` that need a token, in proto order.
const TOKEN_USER_RPCS: [&str; 17] = [
    "GetUser",
    "UpdateUserProfile",
    "ListAllUsers",
    "Logout",
    "LogoutEverywhere",
    "ChangePassword",
    "DeleteAccount",
    "ListSessions",
    "RevokeSession",
    "ResendVerification",
    "ListMyEvents",
    "ExportMyData",
    "GetSecondFactor",
    "StartTotpEnrolment",
    "ConfirmTotpEnrolment",
    "RegenerateRecoveryCodes",
    "DisableSecondFactor",
];

/// The method names of `user.<service>` in the descriptor set the server embeds.
fn methods(service: &str) -> Vec<String> {
    let set = prost_types::FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET).unwrap();
    let found: Vec<_> = set
        .file
        .iter()
        .filter(|f| f.package() == "user")
        .flat_map(|f| &f.service)
        .filter(|s| s.name() == service)
        .flat_map(|s| s.method.iter().map(|m| m.name().to_owned()))
        .collect();
    assert!(!found.is_empty(), "no methods for user.{service}");
    found
}

/// `message`, with `authorization: Bearer <token>` when there is a token.
fn with<T>(message: T, token: Option<&str>) -> Request<T> {
    match token {
        Some(token) => authed(message, token),
        None => Request::new(message),
    }
}

/// The fields of the `BadRequest` violations, in order.
fn violations(status: &Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

fn by_id(id: &str) -> pb::AdminUserRequest {
    pb::AdminUserRequest { user_id: id.into() }
}

/// Calls AdminService's `method` with `token`, on a request about `target` that an admin
/// would have answered: only the guard can refuse it.
async fn call_admin(
    app: &mut TestApp,
    method: &str,
    token: Option<&str>,
    target: &str,
) -> Result<(), Status> {
    let admin = &mut app.admin;
    match method {
        "ListUsers" => admin
            .list_users(with(pb::ListUsersRequest::default(), token))
            .await
            .map(drop),
        "GetUser" => admin.get_user(with(by_id(target), token)).await.map(drop),
        "UpdateUser" => {
            let edit = pb::AdminUpdateUserRequest {
                user_id: target.into(),
                username: "renamed".into(),
                email: "renamed@example.com".into(),
                display_name: Some("Renamed".into()),
            };
            admin.update_user(with(edit, token)).await.map(drop)
        }
        "SetRole" => {
            let promote = pb::SetRoleRequest {
                user_id: target.into(),
                role: pb::Role::Admin.into(),
            };
            admin.set_role(with(promote, token)).await.map(drop)
        }
        "SetStatus" => {
            let disable = pb::SetStatusRequest {
                user_id: target.into(),
                status: pb::Status::Disabled.into(),
            };
            admin.set_status(with(disable, token)).await.map(drop)
        }
        "DeleteUser" => admin
            .delete_user(with(by_id(target), token))
            .await
            .map(drop),
        "UnlockUser" => admin
            .unlock_user(with(by_id(target), token))
            .await
            .map(drop),
        "SendPasswordReset" => admin
            .send_password_reset(with(by_id(target), token))
            .await
            .map(drop),
        "ListAuditEvents" => admin
            .list_audit_events(with(pb::ListAuditEventsRequest::default(), token))
            .await
            .map(drop),
        "GetSecondFactor" => admin
            .get_second_factor(with(by_id(target), token))
            .await
            .map(drop),
        "ResetSecondFactor" => admin
            .reset_second_factor(with(by_id(target), token))
            .await
            .map(drop),
        other => panic!("AdminService.{other} has no call here: add one"),
    }
}

/// Calls UserService's `method`, one that needs a token, with `token` and a request that
/// would otherwise pass validation.
async fn call_user(app: &mut TestApp, method: &str, token: Option<&str>) -> Result<(), Status> {
    let users = &mut app.users;
    let empty = || pb::EmptyRequest {};
    match method {
        "GetUser" => users
            .get_user(with(pb::GetUserRequest::default(), token))
            .await
            .map(drop),
        "UpdateUserProfile" => {
            let edit = pb::UpdateUserProfileRequest {
                display_name: Some("Changed".into()),
                ..Default::default()
            };
            users.update_user_profile(with(edit, token)).await.map(drop)
        }
        "ListAllUsers" => users.list_all_users(with(empty(), token)).await.map(drop),
        "Logout" => users.logout(with(empty(), token)).await.map(drop),
        "LogoutEverywhere" => users
            .logout_everywhere(with(empty(), token))
            .await
            .map(drop),
        "ChangePassword" => {
            let change = pb::ChangePasswordRequest {
                current_password: PW.into(),
                new_password: "a whole new passphrase".into(),
            };
            users.change_password(with(change, token)).await.map(drop)
        }
        "DeleteAccount" => {
            let delete = pb::DeleteAccountRequest {
                password: PW.into(),
            };
            users.delete_account(with(delete, token)).await.map(drop)
        }
        "ListSessions" => users.list_sessions(with(empty(), token)).await.map(drop),
        "RevokeSession" => {
            let revoke = pb::RevokeSessionRequest {
                session_id: SessionId::new().to_string(),
            };
            users.revoke_session(with(revoke, token)).await.map(drop)
        }
        "ResendVerification" => users
            .resend_verification(with(empty(), token))
            .await
            .map(drop),
        "ListMyEvents" => users
            .list_my_events(with(pb::ListMyEventsRequest { limit: 5 }, token))
            .await
            .map(drop),
        "ExportMyData" => users.export_my_data(with(empty(), token)).await.map(drop),
        "GetSecondFactor" => users
            .get_second_factor(with(empty(), token))
            .await
            .map(drop),
        "StartTotpEnrolment" => {
            let password = pb::PasswordRequest {
                password: PW.into(),
            };
            users
                .start_totp_enrolment(with(password, token))
                .await
                .map(drop)
        }
        "ConfirmTotpEnrolment" => {
            let code = pb::CodeRequest {
                code: "123456".into(),
            };
            users
                .confirm_totp_enrolment(with(code, token))
                .await
                .map(drop)
        }
        "RegenerateRecoveryCodes" => {
            let request = pb::RegenerateRecoveryCodesRequest {
                password: PW.into(),
                code: "123456".into(),
            };
            users
                .regenerate_recovery_codes(with(request, token))
                .await
                .map(drop)
        }
        "DisableSecondFactor" => {
            let request = pb::DisableSecondFactorRequest {
                password: PW.into(),
                code: "123456".into(),
            };
            users
                .disable_second_factor(with(request, token))
                .await
                .map(drop)
        }
        other => panic!("UserService.{other} has no call here: add one"),
    }
}

impl TestApp {
    /// The session of a live access token.
    async fn session_of(&self, token: &str) -> SessionId {
        self.state
            .auth
            .authenticate(token)
            .await
            .unwrap()
            .session_id
    }

    /// How many active sessions the store holds for `user_id`.
    async fn active_sessions(&self, user_id: &str) -> usize {
        self.db
            .storage()
            .sessions
            .list_active(user_id.parse().unwrap(), self.clock.now())
            .await
            .unwrap()
            .len()
    }

    /// A user as an admin's GetUser shows it.
    async fn user_as_admin(&mut self, admin: &str, id: &str) -> pb::User {
        self.admin
            .get_user(authed(by_id(id), admin))
            .await
            .unwrap()
            .into_inner()
            .user
            .unwrap()
    }

    /// Signs in by username with [`PW`].
    async fn try_login(&mut self, name: &str) -> Result<pb::LoginUserResponse, Status> {
        let request = pb::LoginUserRequest {
            username: name.into(),
            password: PW.into(),
            ..Default::default()
        };
        self.users.login_user(request).await.map(|r| r.into_inner())
    }

    /// Mails waiting in the outbox.
    async fn pending_mails(&self) -> u64 {
        self.state.account.settled().await;
        self.db
            .storage()
            .outbox
            .pending(self.clock.now())
            .await
            .unwrap()
    }
}

#[test]
fn the_rpc_lists_here_are_the_protos() {
    assert_eq!(methods("AdminService"), ADMIN_RPCS);
    let mut known: Vec<&str> = ANONYMOUS_USER_RPCS
        .iter()
        .chain(&TOKEN_USER_RPCS)
        .copied()
        .collect();
    known.sort_unstable();
    let mut proto = methods("UserService");
    proto.sort_unstable();
    assert_eq!(
        proto, known,
        "each UserService RPC is anonymous or needs a token"
    );
}

#[tokio::test]
async fn every_admin_rpc_refuses_a_caller_without_a_live_token() {
    let mut app = TestApp::spawn_mailing().await;
    app.create_admin("root").await;
    let bob = app.register("bob").await;
    let bobs = app.login("bob").await.token;
    let root = app.login("root").await.token;
    // An admin's token whose session has ended is no admin's token any more.
    let ended = app.login("root").await.token;
    app.users
        .logout(authed(pb::EmptyRequest {}, &ended))
        .await
        .unwrap();
    let mails = app.pending_mails().await;

    for method in methods("AdminService") {
        for token in [None, Some(GARBAGE), Some(ended.as_str())] {
            let status = expect_code(
                call_admin(&mut app, &method, token, &bob.id).await,
                Code::Unauthenticated,
            );
            assert_eq!(
                status.message(),
                AuthError::Unauthenticated.to_string(),
                "{method}"
            );
        }
    }

    let after = app.user_as_admin(&root, &bob.id).await;
    assert_eq!(
        (after.username.as_str(), after.display_name.as_str()),
        ("bob", "")
    );
    assert_eq!(
        (after.role(), after.status()),
        (pb::Role::User, pb::Status::Active)
    );
    assert_eq!(app.active_sessions(&bob.id).await, 1, "bob's session lives");
    assert_eq!(app.pending_mails().await, mails, "no reset link was mailed");
    assert!(
        app.users
            .get_user(authed(pb::GetUserRequest::default(), &bobs))
            .await
            .is_ok()
    );
    app.stop().await;
}

#[tokio::test]
async fn every_admin_rpc_refuses_a_user_who_is_no_admin() {
    let mut app = TestApp::spawn_mailing().await;
    app.create_admin("root").await;
    let bob = app.register("bob").await;
    let alice = app.register("alice").await;
    let bobs = app.login("bob").await.token;
    let alices = app.login("alice").await.token;
    let root = app.login("root").await.token;
    let mails = app.pending_mails().await;

    for method in methods("AdminService") {
        // About another user and about themselves: neither is an admin's business for them.
        for target in [&bob.id, &alice.id] {
            let status = expect_code(
                call_admin(&mut app, &method, Some(&alices), target).await,
                Code::PermissionDenied,
            );
            assert_eq!(
                status.message(),
                UserError::Forbidden.to_string(),
                "{method}"
            );
        }
    }

    for (id, name) in [(&bob.id, "bob"), (&alice.id, "alice")] {
        let after = app.user_as_admin(&root, id).await;
        assert_eq!(
            (after.username.as_str(), after.display_name.as_str()),
            (name, "")
        );
        assert_eq!(
            (after.role(), after.status()),
            (pb::Role::User, pb::Status::Active)
        );
        assert_eq!(app.active_sessions(id).await, 1, "{name}'s session lives");
    }
    assert_eq!(app.pending_mails().await, mails, "no reset link was mailed");
    assert!(
        app.users
            .get_user(authed(pb::GetUserRequest::default(), &bobs))
            .await
            .is_ok()
    );
    app.stop().await;
}

#[tokio::test]
async fn every_user_rpc_that_needs_a_token_refuses_a_caller_without_a_live_one() {
    let mut app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let live = app.login("alice").await.token;
    let ended = app.login("alice").await.token;
    app.users
        .logout(authed(pb::EmptyRequest {}, &ended))
        .await
        .unwrap();

    let anonymous: Vec<&str> = ANONYMOUS_USER_RPCS.to_vec();
    for method in methods("UserService") {
        if anonymous.contains(&method.as_str()) {
            continue;
        }
        for token in [None, Some(GARBAGE), Some(ended.as_str())] {
            let status = expect_code(
                call_user(&mut app, &method, token).await,
                Code::Unauthenticated,
            );
            assert_eq!(
                status.message(),
                AuthError::Unauthenticated.to_string(),
                "{method}"
            );
        }
    }

    // Nothing was ended, changed or deleted.
    assert_eq!(app.active_sessions(&alice.id).await, 1);
    let me = app
        .users
        .get_user(authed(pb::GetUserRequest::default(), &live))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(me.display_name, "");
    app.try_login("alice")
        .await
        .expect("the password is unchanged");
    app.stop().await;
}

#[tokio::test]
async fn logout_everywhere_and_list_sessions_refuse_ended_sessions_and_end_nothing() {
    let mut app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let ended = app.login("alice").await.token;
    let kept = app.login("alice").await;
    app.users
        .logout(authed(pb::EmptyRequest {}, &ended))
        .await
        .unwrap();
    let message = AuthError::Unauthenticated.to_string();

    for token in [None, Some(GARBAGE), Some(ended.as_str())] {
        let status = expect_code(
            app.users
                .logout_everywhere(with(pb::EmptyRequest {}, token))
                .await,
            Code::Unauthenticated,
        );
        assert_eq!(status.message(), message);
        let status = expect_code(
            app.users
                .list_sessions(with(pb::EmptyRequest {}, token))
                .await,
            Code::Unauthenticated,
        );
        assert_eq!(status.message(), message);
    }

    // The live session is still in the store, and usable.
    assert_eq!(app.active_sessions(&alice.id).await, 1);
    let sessions = app
        .users
        .list_sessions(authed(pb::EmptyRequest {}, &kept.token))
        .await
        .unwrap()
        .into_inner()
        .sessions;
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        sessions[0].id,
        app.session_of(&kept.token).await.to_string()
    );
    app.stop().await;
}

#[tokio::test]
async fn admin_update_user_errors_name_the_problem_and_change_nothing() {
    let mut app = TestApp::spawn().await;
    app.create_admin("root").await;
    let bob = app.register("bob").await;
    app.register("carol").await;
    let root = app.login("root").await.token;
    let edit = |id: &str, username: &str, email: &str| pb::AdminUpdateUserRequest {
        user_id: id.into(),
        username: username.into(),
        email: email.into(),
        display_name: Some("Changed".into()),
    };

    let status = expect_code(
        app.admin
            .update_user(authed(edit(MISSING, "newname", ""), &root))
            .await,
        Code::NotFound,
    );
    assert_eq!(status.message(), UserError::NotFound.to_string());

    for bad in ["", "nope"] {
        let status = expect_code(
            app.admin
                .update_user(authed(edit(bad, "newname", ""), &root))
                .await,
            Code::InvalidArgument,
        );
        assert_eq!(violations(&status), ["user_id"], "{bad:?}");
    }

    let status = expect_code(
        app.admin
            .update_user(authed(edit(&bob.id, "b", "not an address"), &root))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violations(&status), ["username", "email"]);
    assert!(
        status
            .message()
            .contains("username: must be at least 3 characters"),
        "{status:?}"
    );

    for (username, email, field) in [
        ("carol", "", "username"),
        ("", "carol@example.com", "email"),
    ] {
        let status = expect_code(
            app.admin
                .update_user(authed(edit(&bob.id, username, email), &root))
                .await,
            Code::AlreadyExists,
        );
        assert_eq!(status.message(), format!("{field} is already taken"));
        assert_eq!(violations(&status), [field]);
    }

    let after = app.user_as_admin(&root, &bob.id).await;
    assert_eq!(
        (
            after.username.as_str(),
            after.email.as_str(),
            after.display_name.as_str()
        ),
        ("bob", "bob@example.com", ""),
        "no refused edit changed anything"
    );
    app.stop().await;
}

#[tokio::test]
async fn set_role_and_set_status_of_an_unknown_user_are_not_found() {
    let mut app = TestApp::spawn().await;
    app.create_admin("root").await;
    let root = app.login("root").await.token;
    let not_found = UserError::NotFound.to_string();

    for role in [pb::Role::Admin, pb::Role::User] {
        let request = pb::SetRoleRequest {
            user_id: MISSING.into(),
            role: role.into(),
        };
        let status = expect_code(
            app.admin.set_role(authed(request, &root)).await,
            Code::NotFound,
        );
        assert_eq!(status.message(), not_found, "{role:?}");
    }
    for user_status in [pb::Status::Disabled, pb::Status::Active] {
        let request = pb::SetStatusRequest {
            user_id: MISSING.into(),
            status: user_status.into(),
        };
        let status = expect_code(
            app.admin.set_status(authed(request, &root)).await,
            Code::NotFound,
        );
        assert_eq!(status.message(), not_found, "{user_status:?}");
    }

    // A bad id and a missing value are reported together, an unknown value by name.
    let status = expect_code(
        app.admin
            .set_role(authed(
                pb::SetRoleRequest {
                    user_id: "nope".into(),
                    role: 0,
                },
                &root,
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violations(&status), ["user_id", "role"]);
    let status = expect_code(
        app.admin
            .set_status(authed(
                pb::SetStatusRequest {
                    user_id: String::new(),
                    status: 0,
                },
                &root,
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violations(&status), ["user_id", "status"]);
    let status = expect_code(
        app.admin
            .set_role(authed(
                pb::SetRoleRequest {
                    user_id: MISSING.into(),
                    role: 9,
                },
                &root,
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violations(&status), ["role"]);
    assert!(
        status.message().contains("must be ROLE_USER or ROLE_ADMIN"),
        "{status:?}"
    );

    let all = app
        .admin
        .list_users(authed(pb::ListUsersRequest::default(), &root))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.users.len(), 1, "no user was made by the refused calls");
    app.stop().await;
}

#[tokio::test]
async fn the_last_active_admin_cannot_delete_their_own_account() {
    let mut app = TestApp::spawn().await;
    app.create_admin("root").await;
    app.create_admin("ops").await;
    let root = app.login("root").await.token;
    let ops = app.login("ops").await.token;
    let ops_id = app
        .users
        .get_user(authed(pb::GetUserRequest::default(), &ops))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap()
        .id;
    let set_ops = |status: pb::Status| pb::SetStatusRequest {
        user_id: ops_id.clone(),
        status: status.into(),
    };
    let delete = || pb::DeleteAccountRequest {
        password: PW.into(),
    };
    // A disabled admin does not count.
    app.admin
        .set_status(authed(set_ops(pb::Status::Disabled), &root))
        .await
        .unwrap();

    let status = expect_code(
        app.users.delete_account(authed(delete(), &root)).await,
        Code::FailedPrecondition,
    );
    assert_eq!(status.message(), LAST_ADMIN);
    // Still there, still signed in, still signing in.
    assert!(
        app.users
            .get_user(authed(pb::GetUserRequest::default(), &root))
            .await
            .is_ok()
    );
    app.try_login("root").await.expect("the account is kept");

    // With another active admin, the same request deletes the account.
    app.admin
        .set_status(authed(set_ops(pb::Status::Active), &root))
        .await
        .unwrap();
    app.users
        .delete_account(authed(delete(), &root))
        .await
        .unwrap();
    let status = expect_code(app.try_login("root").await.map(drop), Code::Unauthenticated);
    assert_eq!(status.message(), AuthError::InvalidCredentials.to_string());
    app.stop().await;
}

#[tokio::test]
async fn disabling_revokes_every_session_in_the_store_and_enabling_lets_the_user_back() {
    let mut app = TestApp::spawn().await;
    app.create_admin("root").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let root = app.login("root").await.token;
    let first = app.login("bob").await;
    let second = app.login("bob").await;
    app.login("carol").await;
    let sessions = [
        app.session_of(&first.token).await,
        app.session_of(&second.token).await,
    ];
    let set_bob = |status: pb::Status| pb::SetStatusRequest {
        user_id: bob.id.clone(),
        status: status.into(),
    };

    app.admin
        .set_status(authed(set_bob(pb::Status::Disabled), &root))
        .await
        .unwrap();
    let store = app.db.storage().sessions;
    for id in sessions {
        let session = store.get(id).await.unwrap();
        assert!(session.revoked_at.is_some(), "revoked in the store");
    }
    assert_eq!(app.active_sessions(&bob.id).await, 0);
    assert_eq!(
        app.active_sessions(&carol.id).await,
        1,
        "others keep theirs"
    );
    let status = expect_code(app.try_login("bob").await.map(drop), Code::Unauthenticated);
    assert_eq!(status.message(), AuthError::InvalidCredentials.to_string());

    let enabled = app
        .admin
        .set_status(authed(set_bob(pb::Status::Active), &root))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(enabled.status(), pb::Status::Active);
    // Bob signs in again and the new session works; the old ones stay ended.
    let back = app.try_login("bob").await.expect("enabled again");
    let me = app
        .users
        .get_user(authed(pb::GetUserRequest::default(), &back.token))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(me.id, bob.id);
    assert_eq!(app.active_sessions(&bob.id).await, 1);
    for old in [&first, &second] {
        expect_code(
            app.users
                .get_user(authed(pb::GetUserRequest::default(), &old.token))
                .await,
            Code::Unauthenticated,
        );
        let refresh = pb::RefreshTokenRequest {
            refresh_token: old.refresh_token.clone(),
        };
        expect_code(
            app.users.refresh_token(refresh).await.map(drop),
            Code::Unauthenticated,
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn deleting_a_user_removes_their_sessions_from_the_store() {
    let mut app = TestApp::spawn().await;
    app.create_admin("root").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let root = app.login("root").await.token;
    let bobs = app.login("bob").await.token;
    let carols = app.login("carol").await.token;
    let bobs_other = app.login("bob").await.token;
    let ended = [
        app.session_of(&bobs).await,
        app.session_of(&bobs_other).await,
        app.session_of(&carols).await,
    ];
    let roots = app.session_of(&root).await;

    // Bob by an admin, carol by herself.
    app.admin
        .delete_user(authed(by_id(&bob.id), &root))
        .await
        .unwrap();
    app.users
        .delete_account(authed(
            pb::DeleteAccountRequest {
                password: PW.into(),
            },
            &carols,
        ))
        .await
        .unwrap();

    let store = app.db.storage().sessions;
    for id in ended {
        match store.get(id).await {
            Err(RepoError::NotFound) => {}
            other => panic!("a deleted user's session is still stored: {other:?}"),
        }
    }
    for id in [&bob.id, &carol.id] {
        assert_eq!(app.active_sessions(id).await, 0);
    }
    assert!(store.get(roots).await.unwrap().revoked_at.is_none());
    app.stop().await;
}

#[tokio::test]
async fn admin_rpcs_about_one_user_refuse_a_malformed_id_on_user_id() {
    let mut app = TestApp::spawn_mailing().await;
    app.create_admin("root").await;
    let root = app.login("root").await.token;
    let about_one_user = methods("AdminService")
        .into_iter()
        .filter(|m| !matches!(m.as_str(), "ListUsers" | "ListAuditEvents"));
    let mut checked = 0;
    for method in about_one_user {
        for bad in ["", "nope"] {
            let status = expect_code(
                call_admin(&mut app, &method, Some(&root), bad).await,
                Code::InvalidArgument,
            );
            assert_eq!(violations(&status), ["user_id"], "{method} {bad:?}");
            assert!(status.message().starts_with("user_id: "), "{status:?}");
        }
        checked += 1;
    }
    assert_eq!(checked, ADMIN_RPCS.len() - 2);
    let me = app
        .users
        .get_user(authed(pb::GetUserRequest::default(), &root))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(
        (me.role(), me.status()),
        (pb::Role::Admin, pb::Status::Active)
    );
    app.stop().await;
}

#[tokio::test]
async fn send_password_reset_without_mail_or_to_a_disabled_account_is_refused() {
    let mut app = TestApp::spawn().await;
    app.create_admin("root").await;
    let bob = app.register("bob").await;
    let root = app.login("root").await.token;
    let status = expect_code(
        app.admin
            .send_password_reset(authed(by_id(&bob.id), &root))
            .await,
        Code::Internal,
    );
    assert_eq!(status.message(), UserError::MailNotConfigured.to_string());
    app.stop().await;

    let mut app = TestApp::spawn_mailing().await;
    app.create_admin("root").await;
    let bob = app.register("bob").await;
    let root = app.login("root").await.token;
    let disable = pb::SetStatusRequest {
        user_id: bob.id.clone(),
        status: pb::Status::Disabled.into(),
    };
    app.admin.set_status(authed(disable, &root)).await.unwrap();
    let mails = app.pending_mails().await;
    let status = expect_code(
        app.admin
            .send_password_reset(authed(by_id(&bob.id), &root))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violations(&status), ["user_id"]);
    assert!(status.message().contains("disabled"), "{status:?}");
    assert_eq!(app.pending_mails().await, mails, "no link was mailed");

    // Enabled again, the same request mails a link: the count above can see one.
    let enable = pb::SetStatusRequest {
        user_id: bob.id.clone(),
        status: pb::Status::Active.into(),
    };
    app.admin.set_status(authed(enable, &root)).await.unwrap();
    let mails = app.pending_mails().await;
    app.admin
        .send_password_reset(authed(by_id(&bob.id), &root))
        .await
        .unwrap();
    assert_eq!(app.pending_mails().await, mails + 1);
    app.stop().await;
}

#[tokio::test]
async fn resend_verification_is_limited_per_address_and_mails_nothing_past_it() {
    let mut app = TestApp::spawn_mailing().await;
    app.register("alice").await;
    let token = app.login("alice").await.token;
    let before = app.pending_mails().await;
    // Five an hour per address by default.
    for _ in 0..5 {
        app.users
            .resend_verification(authed(pb::EmptyRequest {}, &token))
            .await
            .unwrap();
    }
    assert_eq!(app.pending_mails().await, before + 5);

    let status = expect_code(
        app.users
            .resend_verification(authed(pb::EmptyRequest {}, &token))
            .await,
        Code::ResourceExhausted,
    );
    assert!(
        status
            .message()
            .starts_with("too many attempts, try again in"),
        "{status:?}"
    );
    assert!(status.get_error_details().retry_info().is_some());
    // The signed-out request by address spends the same budget.
    let by_address = pb::RequestVerificationRequest {
        email: "alice@example.com".into(),
    };
    expect_code(
        app.users.request_verification(by_address).await,
        Code::ResourceExhausted,
    );
    assert_eq!(
        app.pending_mails().await,
        before + 5,
        "no link past the limit"
    );
    app.stop().await;
}

#[tokio::test]
async fn without_second_factors_the_factor_rpcs_are_failed_precondition() {
    let mut app = TestApp::spawn_without_second_factors().await;
    app.register("alice").await;
    let token = app.login("alice").await.token;
    let code = || "123456".to_owned();
    let statuses = [
        app.users
            .start_totp_enrolment(authed(
                pb::PasswordRequest {
                    password: PW.into(),
                },
                &token,
            ))
            .await
            .map(drop),
        app.users
            .confirm_totp_enrolment(authed(pb::CodeRequest { code: code() }, &token))
            .await
            .map(drop),
        app.users
            .regenerate_recovery_codes(authed(
                pb::RegenerateRecoveryCodesRequest {
                    password: PW.into(),
                    code: code(),
                },
                &token,
            ))
            .await
            .map(drop),
        app.users
            .disable_second_factor(authed(
                pb::DisableSecondFactorRequest {
                    password: PW.into(),
                    code: code(),
                },
                &token,
            ))
            .await
            .map(drop),
    ];
    for status in statuses {
        let status = expect_code(status, Code::FailedPrecondition);
        assert_eq!(status.message(), FACTORS_NOT_CONFIGURED);
    }
    let factor = app
        .users
        .get_second_factor(authed(pb::EmptyRequest {}, &token))
        .await
        .unwrap()
        .into_inner();
    assert!(!factor.enabled && !factor.pending, "nothing was started");
    let signed_in = app
        .users
        .sign_in(pb::LoginUserRequest {
            username: "alice".into(),
            password: PW.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        matches!(
            signed_in.result,
            Some(pb::sign_in_response::Result::SignedIn(_))
        ),
        "one step"
    );
    app.stop().await;
}

/// [`FastHasher`], or an overloaded hasher while the switch is on.
struct Saturable {
    inner: FastHasher,
    overloaded: Arc<AtomicBool>,
}

#[tonic::async_trait]
impl PasswordHasher for Saturable {
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError> {
        if self.overloaded.load(Ordering::SeqCst) {
            return Err(HashError::Overloaded);
        }
        self.inner.hash(password).await
    }

    async fn verify(
        &self,
        candidate: &SecretString,
        hash: &PasswordHash,
    ) -> Result<Verification, HashError> {
        if self.overloaded.load(Ordering::SeqCst) {
            return Err(HashError::Overloaded);
        }
        self.inner.verify(candidate, hash).await
    }
}

#[tokio::test]
async fn a_saturated_server_asks_to_retry_shortly_and_counts_no_failure() {
    let overloaded = Arc::new(AtomicBool::new(false));
    let mut app = TestApp::spawn_hashing(Saturable {
        inner: FastHasher::new(),
        overloaded: Arc::clone(&overloaded),
    })
    .await;
    app.register("alice").await;
    let token = app.login("alice").await.token;
    overloaded.store(true, Ordering::SeqCst);

    let login = || pb::LoginUserRequest {
        username: "alice".into(),
        password: PW.into(),
        ..Default::default()
    };
    let register = pb::RegisterUserRequest {
        username: "bob".into(),
        email: "bob@example.com".into(),
        password: PW.into(),
        display_name: String::new(),
    };
    let change = pb::ChangePasswordRequest {
        current_password: PW.into(),
        new_password: "a whole new passphrase".into(),
    };
    let mut statuses = Vec::new();
    // More than the lockout threshold (five): overload must not count as wrong passwords.
    for _ in 0..6 {
        statuses.push(app.users.login_user(login()).await.map(drop));
    }
    statuses.push(app.users.sign_in(login()).await.map(drop));
    statuses.push(app.users.register_user(register).await.map(drop));
    statuses.push(
        app.users
            .change_password(authed(change, &token))
            .await
            .map(drop),
    );
    for status in statuses {
        let status = expect_code(status, Code::ResourceExhausted);
        assert_eq!(status.message(), AuthError::Overloaded.to_string());
        let retry = status.get_error_details().retry_info().unwrap().retry_delay;
        assert_eq!(retry, Some(Duration::from_secs(1)));
    }

    overloaded.store(false, Ordering::SeqCst);
    app.try_login("alice")
        .await
        .expect("not locked out by the overload");
    expect_code(app.try_login("bob").await.map(drop), Code::Unauthenticated);
    app.stop().await;
}
