//! Token lifetimes, logout, refresh rotation and reuse, over the wire.

use std::time::Duration;

use tonic::Code;
use user_grpc::pb;

use crate::{TestApp, authed, expect_code};

fn me() -> pb::GetUserRequest {
    pb::GetUserRequest::default()
}

fn refresh(token: &str) -> pb::RefreshTokenRequest {
    pb::RefreshTokenRequest {
        refresh_token: token.into(),
    }
}

#[tokio::test]
async fn access_tokens_expire_by_the_injected_clock() {
    let mut app = TestApp::spawn().await;
    app.register("alice").await;
    let login = app.login("alice").await;
    app.clock.advance(Duration::from_secs(900 + 5));
    expect_code(
        app.users.get_user(authed(me(), &login.token)).await,
        Code::Unauthenticated,
    );
    let renewed = app
        .users
        .refresh_token(refresh(&login.refresh_token))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(renewed.refresh_token, login.refresh_token);
    assert_eq!(renewed.expires_in, 900);
    assert!(
        app.users
            .get_user(authed(me(), &renewed.token))
            .await
            .is_ok()
    );
    app.stop().await;
}

#[tokio::test]
async fn logout_refuses_the_old_tokens_at_once() {
    let mut app = TestApp::spawn().await;
    app.register("alice").await;
    let login = app.login("alice").await;
    let other = app.login("alice").await;
    app.users
        .logout(authed(pb::EmptyRequest {}, &login.token))
        .await
        .unwrap();
    expect_code(
        app.users.get_user(authed(me(), &login.token)).await,
        Code::Unauthenticated,
    );
    expect_code(
        app.users.refresh_token(refresh(&login.refresh_token)).await,
        Code::Unauthenticated,
    );
    expect_code(
        app.users
            .logout(authed(pb::EmptyRequest {}, &login.token))
            .await,
        Code::Unauthenticated,
    );
    assert!(
        app.users.get_user(authed(me(), &other.token)).await.is_ok(),
        "other sessions live on"
    );
    app.stop().await;
}

#[tokio::test]
async fn refresh_rotates_and_reuse_ends_the_session() {
    let mut app = TestApp::spawn().await;
    app.register("alice").await;
    let login = app.login("alice").await;
    let second = app
        .users
        .refresh_token(refresh(&login.refresh_token))
        .await
        .unwrap()
        .into_inner();
    let third = app
        .users
        .refresh_token(refresh(&second.refresh_token))
        .await
        .unwrap()
        .into_inner();
    assert!(app.users.get_user(authed(me(), &third.token)).await.is_ok());
    // Replaying a spent token ends the session for everyone holding its tokens.
    expect_code(
        app.users.refresh_token(refresh(&login.refresh_token)).await,
        Code::Unauthenticated,
    );
    expect_code(
        app.users.get_user(authed(me(), &third.token)).await,
        Code::Unauthenticated,
    );
    expect_code(
        app.users.refresh_token(refresh(&third.refresh_token)).await,
        Code::Unauthenticated,
    );

    expect_code(
        app.users.refresh_token(refresh("")).await,
        Code::InvalidArgument,
    );
    expect_code(
        app.users.refresh_token(refresh("garbage")).await,
        Code::Unauthenticated,
    );
    app.stop().await;
}

#[tokio::test]
async fn disabling_a_user_refuses_their_token_at_once() {
    let mut app = TestApp::spawn().await;
    app.create_admin("root").await;
    let bob = app.register("bob").await;
    let bobs = app.login("bob").await;
    let root = app.login("root").await.token;
    let disable = pb::SetStatusRequest {
        user_id: bob.id.clone(),
        status: pb::Status::Disabled.into(),
    };
    app.admin.set_status(authed(disable, &root)).await.unwrap();
    expect_code(
        app.users.get_user(authed(me(), &bobs.token)).await,
        Code::Unauthenticated,
    );
    expect_code(
        app.users.refresh_token(refresh(&bobs.refresh_token)).await,
        Code::Unauthenticated,
    );
    app.stop().await;
}
