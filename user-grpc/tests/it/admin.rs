//! Every `user.AdminService` RPC: happy paths and errors.

use tonic::Code;
use tonic_types::StatusExt;
use user_core::error::{LAST_ADMIN, UserError};
use user_grpc::pb;

use crate::{TestApp, authed, expect_code};

const MISSING: &str = "00000000-0000-7000-8000-000000000000";

async fn app_with_users() -> (TestApp, String, String) {
    let mut app = TestApp::spawn().await;
    app.create_admin("root").await;
    for name in ["alice", "albert", "bob", "carol"] {
        app.register(name).await;
    }
    let root = app.login("root").await.token;
    let alice = app.login("alice").await.token;
    (app, root, alice)
}

fn list(page_size: u32, page_token: &str, search: &str) -> pb::ListUsersRequest {
    pb::ListUsersRequest {
        page_size,
        page_token: page_token.into(),
        search: search.into(),
        ..Default::default()
    }
}

/// The fields of the `BadRequest` violations, in order.
fn violations(status: &tonic::Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

fn names(page: &pb::ListUsersPage) -> Vec<&str> {
    page.users.iter().map(|u| u.username.as_str()).collect()
}

#[tokio::test]
async fn every_admin_rpc_refuses_non_admins_and_anonymous_callers() {
    let (mut app, _, alice) = app_with_users().await;
    let id = || pb::AdminUserRequest {
        user_id: MISSING.into(),
    };
    expect_code(
        app.admin.list_users(authed(list(0, "", ""), &alice)).await,
        Code::PermissionDenied,
    );
    expect_code(
        app.admin.get_user(authed(id(), &alice)).await,
        Code::PermissionDenied,
    );
    expect_code(
        app.admin
            .update_user(authed(pb::AdminUpdateUserRequest::default(), &alice))
            .await,
        Code::PermissionDenied,
    );
    expect_code(
        app.admin
            .set_role(authed(pb::SetRoleRequest::default(), &alice))
            .await,
        Code::PermissionDenied,
    );
    expect_code(
        app.admin
            .set_status(authed(pb::SetStatusRequest::default(), &alice))
            .await,
        Code::PermissionDenied,
    );
    expect_code(
        app.admin.delete_user(authed(id(), &alice)).await,
        Code::PermissionDenied,
    );
    expect_code(
        app.admin.list_users(list(0, "", "")).await,
        Code::Unauthenticated,
    );
    app.stop().await;
}

#[tokio::test]
async fn list_users_pages_searches_and_filters() {
    let (mut app, root, _) = app_with_users().await;
    let first = app
        .admin
        .list_users(authed(list(2, "", ""), &root))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(names(&first), ["albert", "alice"]);
    let second = app
        .admin
        .list_users(authed(list(2, &first.next_page_token, ""), &root))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(names(&second), ["bob", "carol"]);
    let third = app
        .admin
        .list_users(authed(list(2, &second.next_page_token, ""), &root))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(names(&third), ["root"]);
    assert_eq!(third.next_page_token, "");

    let found = app
        .admin
        .list_users(authed(list(0, "", "AL"), &root))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(names(&found), ["albert", "alice"]);
    let admins = pb::ListUsersRequest {
        role: pb::Role::Admin.into(),
        ..Default::default()
    };
    let found = app
        .admin
        .list_users(authed(admins, &root))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(names(&found), ["root"]);

    let bad = pb::ListUsersRequest {
        page_size: 1000,
        page_token: "!!".into(),
        role: 9,
        ..Default::default()
    };
    let status = expect_code(
        app.admin.list_users(authed(bad, &root)).await,
        Code::InvalidArgument,
    );
    let fields: Vec<_> = status
        .get_error_details()
        .bad_request()
        .unwrap()
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect();
    assert_eq!(fields, ["page_size", "page_token", "role"]);
    app.stop().await;
}

#[tokio::test]
async fn get_update_and_delete_any_user() {
    let (mut app, root, _) = app_with_users().await;
    let bob = app.register("bobby").await;
    let req = pb::AdminUserRequest {
        user_id: bob.id.clone(),
    };
    let got = app
        .admin
        .get_user(authed(req.clone(), &root))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.user.unwrap().username, "bobby");

    let edit = pb::AdminUpdateUserRequest {
        user_id: bob.id.clone(),
        email: "robert@example.com".into(),
        display_name: Some("Robert".into()),
        ..Default::default()
    };
    let got = app
        .admin
        .update_user(authed(edit, &root))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(
        (got.email.as_str(), got.display_name.as_str()),
        ("robert@example.com", "Robert")
    );

    app.admin
        .delete_user(authed(req.clone(), &root))
        .await
        .unwrap();
    let missing = pb::AdminUserRequest {
        user_id: MISSING.into(),
    };
    for status in [
        expect_code(
            app.admin.get_user(authed(req.clone(), &root)).await,
            Code::NotFound,
        ),
        expect_code(
            app.admin.delete_user(authed(req, &root)).await,
            Code::NotFound,
        ),
        expect_code(
            app.admin.get_user(authed(missing, &root)).await,
            Code::NotFound,
        ),
    ] {
        assert_eq!(status.message(), UserError::NotFound.to_string());
    }
    let empty = pb::AdminUserRequest::default();
    let status = expect_code(
        app.admin.get_user(authed(empty, &root)).await,
        Code::InvalidArgument,
    );
    assert_eq!(violations(&status), ["user_id"]);
    app.stop().await;
}

#[tokio::test]
async fn roles_and_statuses_and_the_last_admin() {
    let (mut app, root, _) = app_with_users().await;
    let me = app
        .users
        .get_user(authed(pb::GetUserRequest::default(), &root))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    let bob = app.register("bobby").await;

    let demote = pb::SetRoleRequest {
        user_id: me.id.clone(),
        role: pb::Role::User.into(),
    };
    let status = expect_code(
        app.admin.set_role(authed(demote.clone(), &root)).await,
        Code::FailedPrecondition,
    );
    assert_eq!(status.message(), LAST_ADMIN);
    let disable_me = pb::SetStatusRequest {
        user_id: me.id.clone(),
        status: pb::Status::Disabled.into(),
    };
    let status = expect_code(
        app.admin.set_status(authed(disable_me, &root)).await,
        Code::FailedPrecondition,
    );
    assert_eq!(status.message(), LAST_ADMIN);
    let status = expect_code(
        app.admin
            .delete_user(authed(
                pb::AdminUserRequest {
                    user_id: me.id.clone(),
                },
                &root,
            ))
            .await,
        Code::FailedPrecondition,
    );
    assert_eq!(status.message(), LAST_ADMIN);

    let unspecified = pb::SetRoleRequest {
        user_id: bob.id.clone(),
        role: 0,
    };
    let status = expect_code(
        app.admin.set_role(authed(unspecified, &root)).await,
        Code::InvalidArgument,
    );
    assert_eq!(violations(&status), ["role"]);
    let unspecified = pb::SetStatusRequest {
        user_id: bob.id.clone(),
        status: 0,
    };
    let status = expect_code(
        app.admin.set_status(authed(unspecified, &root)).await,
        Code::InvalidArgument,
    );
    assert_eq!(violations(&status), ["status"]);

    let promote = pb::SetRoleRequest {
        user_id: bob.id.clone(),
        role: pb::Role::Admin.into(),
    };
    let got = app
        .admin
        .set_role(authed(promote, &root))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(got.role(), pb::Role::Admin);
    let got = app
        .admin
        .set_role(authed(demote, &root))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(
        got.role(),
        pb::Role::User,
        "with another admin, stepping down is allowed"
    );
    // Root is no admin any more: the next call is refused.
    expect_code(
        app.admin.list_users(authed(list(0, "", ""), &root)).await,
        Code::PermissionDenied,
    );

    let bobs = app.login("bobby").await.token;
    let disable = pb::SetStatusRequest {
        user_id: me.id.clone(),
        status: pb::Status::Disabled.into(),
    };
    let got = app
        .admin
        .set_status(authed(disable, &bobs))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(got.status(), pb::Status::Disabled);
    expect_code(
        app.users
            .get_user(authed(pb::GetUserRequest::default(), &root))
            .await,
        Code::Unauthenticated,
    );
    let enable = pb::SetStatusRequest {
        user_id: me.id,
        status: pb::Status::Active.into(),
    };
    let got = app
        .admin
        .set_status(authed(enable, &bobs))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(got.status(), pb::Status::Active);
    app.stop().await;
}
