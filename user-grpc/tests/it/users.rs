//! Every `user.UserService` RPC: the happy path and each documented error.

use tonic::Code;
use tonic_types::StatusExt;
use user_grpc::pb;

use crate::{PW, TestApp, authed, expect_code};

fn register(name: &str, email: &str, password: &str) -> pb::RegisterUserRequest {
    pb::RegisterUserRequest {
        username: name.into(),
        email: email.into(),
        password: password.into(),
        display_name: String::new(),
    }
}

fn violations(status: &tonic::Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn register_returns_the_new_user() {
    let mut app = TestApp::spawn().await;
    let mut req = register("Alice", "Alice@Example.com", PW);
    req.display_name = "Alice L.".into();
    let user = app
        .users
        .register_user(req)
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(
        (user.username.as_str(), user.email.as_str()),
        ("alice", "alice@example.com")
    );
    assert_eq!(user.role(), pb::Role::User);
    assert_eq!(user.status(), pb::Status::Active);
    assert_eq!(user.display_name, "Alice L.");
    assert!(!user.email_verified);
    assert!(user.created_at.is_some());
    assert_eq!(
        (user.id.len(), user.id.matches('-').count()),
        (36, 4),
        "a UUID"
    );
    app.stop().await;
}

#[tokio::test]
async fn register_reports_every_invalid_field_and_conflicts() {
    let mut app = TestApp::spawn().await;
    let status = expect_code(
        app.users
            .register_user(register("x", "not-an-email", "short"))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violations(&status), ["username", "email", "password"]);
    assert!(
        status
            .message()
            .contains("username: must be at least 3 characters")
    );

    let status = expect_code(
        app.users.register_user(register("", "", "")).await,
        Code::InvalidArgument,
    );
    assert_eq!(violations(&status), ["username", "email", "password"]);

    app.register("alice").await;
    let status = expect_code(
        app.users
            .register_user(register("ALICE", "other@example.com", PW))
            .await,
        Code::AlreadyExists,
    );
    assert_eq!(status.message(), "username is already taken");
    assert_eq!(violations(&status), ["username"]);
    let status = expect_code(
        app.users
            .register_user(register("alice2", "alice@EXAMPLE.com", PW))
            .await,
        Code::AlreadyExists,
    );
    assert_eq!(violations(&status), ["email"]);
    app.stop().await;
}

#[tokio::test]
async fn login_by_email_or_username_and_its_errors() {
    let mut app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    for req in [
        pb::LoginUserRequest {
            email: "Alice@example.com".into(),
            password: PW.into(),
            ..Default::default()
        },
        pb::LoginUserRequest {
            username: "alice".into(),
            password: PW.into(),
            ..Default::default()
        },
    ] {
        let login = app.users.login_user(req).await.unwrap().into_inner();
        assert_eq!(login.token_type, "Bearer");
        assert_eq!(login.expires_in, 900);
        assert!(!login.refresh_token.is_empty());
        assert_eq!(login.user.unwrap().id, alice.id);
        let me = app
            .users
            .get_user(authed(pb::GetUserRequest::default(), &login.token))
            .await;
        assert_eq!(me.unwrap().into_inner().user.unwrap().id, alice.id);
    }

    for (username, password) in [("alice", "wrong password"), ("nobody", PW)] {
        let req = pb::LoginUserRequest {
            username: username.into(),
            password: password.into(),
            ..Default::default()
        };
        let status = expect_code(app.users.login_user(req).await, Code::Unauthenticated);
        assert_eq!(status.message(), "invalid username, email or password");
    }
    let status = expect_code(
        app.users.login_user(pb::LoginUserRequest::default()).await,
        Code::InvalidArgument,
    );
    assert_eq!(violations(&status), ["email", "password"]);
    app.stop().await;
}

#[tokio::test]
async fn a_locked_identifier_gets_resource_exhausted_with_retry_info() {
    let mut app = TestApp::spawn().await;
    app.register("alice").await;
    let attempt = |password: &str| pb::LoginUserRequest {
        username: "alice".into(),
        password: password.into(),
        ..Default::default()
    };
    for _ in 0..5 {
        expect_code(
            app.users.login_user(attempt("wrong")).await,
            Code::Unauthenticated,
        );
    }
    let status = expect_code(
        app.users.login_user(attempt(PW)).await,
        Code::ResourceExhausted,
    );
    assert_eq!(status.message(), "too many attempts, try again in 1 minute");
    let retry = status.get_error_details().retry_info().unwrap().retry_delay;
    assert_eq!(retry, Some(std::time::Duration::from_secs(60)));
    app.clock.advance(std::time::Duration::from_secs(60));
    assert!(app.users.login_user(attempt(PW)).await.is_ok());
    app.stop().await;
}

#[tokio::test]
async fn get_user_answers_for_the_caller_and_admins_only() {
    let mut app = TestApp::spawn().await;
    app.create_admin("root").await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let token = app.login("alice").await.token;
    let get = |id: &str| pb::GetUserRequest { user_id: id.into() };

    for id in ["", alice.id.as_str()] {
        let me = app
            .users
            .get_user(authed(get(id), &token))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(me.user.unwrap().username, "alice");
    }
    expect_code(
        app.users.get_user(authed(get(&bob.id), &token)).await,
        Code::PermissionDenied,
    );
    let status = expect_code(
        app.users.get_user(authed(get("nope"), &token)).await,
        Code::InvalidArgument,
    );
    assert_eq!(violations(&status), ["user_id"]);
    expect_code(app.users.get_user(get("")).await, Code::Unauthenticated);
    let status = expect_code(
        app.users.get_user(authed(get(""), "garbage")).await,
        Code::Unauthenticated,
    );
    assert_eq!(status.message(), "not signed in or the session has ended");

    let root = app.login("root").await.token;
    let got = app
        .users
        .get_user(authed(get(&bob.id), &root))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.user.unwrap().username, "bob");
    let missing = "00000000-0000-7000-8000-000000000000";
    expect_code(
        app.users.get_user(authed(get(missing), &root)).await,
        Code::NotFound,
    );
    app.stop().await;
}

#[tokio::test]
async fn update_user_profile_needs_a_token_and_the_right_to_edit() {
    let mut app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let token = app.login("alice").await.token;
    let edit = |id: &str, username: &str, email: &str, display: Option<&str>| {
        pb::UpdateUserProfileRequest {
            user_id: id.into(),
            username: username.into(),
            email: email.into(),
            display_name: display.map(Into::into),
        }
    };

    let got = app
        .users
        .update_user_profile(authed(edit("", "alice2", "", Some("Alice")), &token))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(
        (got.username.as_str(), got.email.as_str()),
        ("alice2", "alice@example.com")
    );
    assert_eq!(got.display_name, "Alice");
    let got = app
        .users
        .update_user_profile(authed(
            edit(&alice.id, "", "new@example.com", Some("")),
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(
        (got.email.as_str(), got.display_name.as_str()),
        ("new@example.com", "")
    );

    let status = expect_code(
        app.users
            .update_user_profile(authed(edit("", "bob", "", None), &token))
            .await,
        Code::AlreadyExists,
    );
    assert_eq!(violations(&status), ["username"]);
    let status = expect_code(
        app.users
            .update_user_profile(authed(edit("", "b", "bad", None), &token))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violations(&status), ["username", "email"]);
    expect_code(
        app.users
            .update_user_profile(authed(edit(&bob.id, "", "", Some("x")), &token))
            .await,
        Code::PermissionDenied,
    );
    // The legacy server accepted this without a token; we do not.
    expect_code(
        app.users
            .update_user_profile(edit(&alice.id, "hacker", "", None))
            .await,
        Code::Unauthenticated,
    );
    app.stop().await;
}

#[tokio::test]
async fn list_all_users_is_admin_only_and_capped() {
    let config = user_grpc::GrpcConfig {
        list_all_users_cap: 3,
        ..Default::default()
    };
    let mut app = TestApp::spawn_with(config).await;
    app.create_admin("root").await;
    for name in ["dave", "carol", "bob", "alice"] {
        app.register(name).await;
    }
    let token = app.login("alice").await.token;
    expect_code(
        app.users
            .list_all_users(authed(pb::EmptyRequest {}, &token))
            .await,
        Code::PermissionDenied,
    );
    expect_code(
        app.users.list_all_users(pb::EmptyRequest {}).await,
        Code::Unauthenticated,
    );
    let root = app.login("root").await.token;
    let all = app
        .users
        .list_all_users(authed(pb::EmptyRequest {}, &root))
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = all.users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(
        names,
        ["alice", "bob", "carol"],
        "username order, capped at 3"
    );
    app.stop().await;
}

#[tokio::test]
async fn change_password_and_its_errors() {
    let mut app = TestApp::spawn().await;
    app.register("alice").await;
    let keep = app.login("alice").await;
    let other = app.login("alice").await;
    let change = |current: &str, new: &str| pb::ChangePasswordRequest {
        current_password: current.into(),
        new_password: new.into(),
    };
    let status = expect_code(
        app.users
            .change_password(authed(
                change("wrong", "a whole new passphrase"),
                &keep.token,
            ))
            .await,
        Code::Unauthenticated,
    );
    assert_eq!(status.message(), "the password is incorrect");
    let status = expect_code(
        app.users
            .change_password(authed(change(PW, "1qaz2wsx3edc"), &keep.token))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violations(&status), ["new_password"]);
    let status = expect_code(
        app.users
            .change_password(authed(change("", ""), &keep.token))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violations(&status), ["current_password"]);

    app.users
        .change_password(authed(change(PW, "a whole new passphrase"), &keep.token))
        .await
        .unwrap();
    let get = || pb::GetUserRequest::default();
    assert!(
        app.users.get_user(authed(get(), &keep.token)).await.is_ok(),
        "this session stays"
    );
    expect_code(
        app.users.get_user(authed(get(), &other.token)).await,
        Code::Unauthenticated,
    );
    let login = pb::LoginUserRequest {
        username: "alice".into(),
        password: "a whole new passphrase".into(),
        ..Default::default()
    };
    assert!(app.users.login_user(login).await.is_ok());
    app.stop().await;
}

#[tokio::test]
async fn delete_account_needs_the_password() {
    let mut app = TestApp::spawn().await;
    app.register("alice").await;
    let token = app.login("alice").await.token;
    let del = |pw: &str| pb::DeleteAccountRequest {
        password: pw.into(),
    };
    expect_code(
        app.users.delete_account(authed(del("wrong"), &token)).await,
        Code::Unauthenticated,
    );
    expect_code(
        app.users.delete_account(authed(del(""), &token)).await,
        Code::InvalidArgument,
    );
    app.users
        .delete_account(authed(del(PW), &token))
        .await
        .unwrap();
    expect_code(
        app.users
            .get_user(authed(pb::GetUserRequest::default(), &token))
            .await,
        Code::Unauthenticated,
    );
    let login = pb::LoginUserRequest {
        username: "alice".into(),
        password: PW.into(),
        ..Default::default()
    };
    expect_code(app.users.login_user(login).await, Code::Unauthenticated);
    app.stop().await;
}

#[tokio::test]
async fn sessions_are_listed_and_ended_one_by_one() {
    let mut app = TestApp::spawn().await;
    app.register("alice").await;
    app.register("bob").await;
    let first = app.login("alice").await;
    app.clock.advance(std::time::Duration::from_secs(1));
    let second = app.login("alice").await;
    let bobs = app.login("bob").await;

    let list = app
        .users
        .list_sessions(authed(pb::EmptyRequest {}, &second.token))
        .await;
    let sessions = list.unwrap().into_inner().sessions;
    assert_eq!(sessions.len(), 2);
    assert!(sessions[0].current, "newest first, and it is this one");
    assert!(!sessions[1].current);
    assert_eq!(sessions[0].kind, "token");
    assert!(sessions[0].ip.starts_with("127.0.0.1"));
    assert!(
        !sessions[0].user_agent.is_empty(),
        "tonic sends a user-agent"
    );

    let bob_sessions = app
        .users
        .list_sessions(authed(pb::EmptyRequest {}, &bobs.token))
        .await;
    let bob_session = bob_sessions.unwrap().into_inner().sessions.remove(0).id;
    let revoke = |id: &str| pb::RevokeSessionRequest {
        session_id: id.into(),
    };
    expect_code(
        app.users
            .revoke_session(authed(revoke(&bob_session), &second.token))
            .await,
        Code::NotFound,
    );
    expect_code(
        app.users
            .revoke_session(authed(revoke("nope"), &second.token))
            .await,
        Code::InvalidArgument,
    );
    app.users
        .revoke_session(authed(revoke(&sessions[1].id), &second.token))
        .await
        .unwrap();
    expect_code(
        app.users
            .get_user(authed(pb::GetUserRequest::default(), &first.token))
            .await,
        Code::Unauthenticated,
    );

    let third = app.login("alice").await;
    let ended = app
        .users
        .logout_everywhere(authed(pb::EmptyRequest {}, &third.token))
        .await;
    assert_eq!(ended.unwrap().into_inner().sessions_ended, 2);
    for token in [&second.token, &third.token] {
        expect_code(
            app.users
                .get_user(authed(pb::GetUserRequest::default(), token))
                .await,
            Code::Unauthenticated,
        );
    }
    assert!(
        app.users
            .get_user(authed(pb::GetUserRequest::default(), &bobs.token))
            .await
            .is_ok()
    );
    app.stop().await;
}
