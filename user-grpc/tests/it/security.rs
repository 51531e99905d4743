//! Attacks over real gRPC on the defences of security issue 8: one guess budget per account,
//! device tokens that let the owner through a lock strangers caused, password re-checks on
//! the same budget, the admin's unlock, and the registration limit per client address.
//! Each test fails if its defence is removed.

use std::num::NonZeroU32;
use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;
use user_core::auth::AuthPolicy;
use user_core::domain::TrustedProxies;
use user_grpc::{GrpcConfig, pb};

use crate::{PW, TestApp, authed, expect_code};

/// The lockout threshold of the default policy.
const THRESHOLD: usize = 5;

/// A new password the default policy accepts.
const NEW_PW: &str = "a brand new passphrase";

fn by_username(name: &str, password: &str) -> pb::LoginUserRequest {
    pb::LoginUserRequest {
        username: name.into(),
        password: password.into(),
        ..Default::default()
    }
}

fn by_email(name: &str, password: &str) -> pb::LoginUserRequest {
    pb::LoginUserRequest {
        email: format!("{name}@example.com"),
        password: password.into(),
        ..Default::default()
    }
}

fn with_device(mut request: pb::LoginUserRequest, device_token: &str) -> pb::LoginUserRequest {
    request.device_token = device_token.into();
    request
}

/// Asserts a lockout: `RESOURCE_EXHAUSTED` with a positive `RetryInfo` delay.
fn assert_locked<T: std::fmt::Debug>(result: Result<T, Status>) {
    let status = expect_code(result, Code::ResourceExhausted);
    let delay = status
        .get_error_details()
        .retry_info()
        .expect("a lockout carries RetryInfo")
        .retry_delay
        .expect("RetryInfo has a delay");
    assert!(delay > Duration::ZERO, "{status:?}");
}

/// Spends the account's budget with wrong passwords, by email, as a stranger would.
async fn lock_out(app: &mut TestApp, name: &str) {
    for _ in 0..THRESHOLD {
        expect_code(
            app.users.login_user(by_email(name, "wrong guess")).await,
            Code::Unauthenticated,
        );
    }
}

#[tokio::test]
async fn username_and_email_share_one_budget_per_account() {
    let mut app = TestApp::spawn().await;
    app.register("alice").await;
    lock_out(&mut app, "alice").await;
    assert_locked(app.users.login_user(by_username("alice", PW)).await);
    assert_locked(app.users.login_user(by_email("alice", PW)).await);
    // Another account is not touched.
    app.register("bob").await;
    app.login("bob").await;
    app.stop().await;
}

#[tokio::test]
async fn the_owners_device_token_passes_a_lock_strangers_caused() {
    let mut app = TestApp::spawn().await;
    app.register("alice").await;
    app.register("bob").await;
    let alice_device = app.login("alice").await.device_token;
    let bob_device = app.login("bob").await.device_token;
    assert!(!alice_device.is_empty() && !bob_device.is_empty());
    assert_ne!(alice_device, bob_device);

    lock_out(&mut app, "alice").await;
    assert_locked(app.users.login_user(by_username("alice", PW)).await);

    let owner = app
        .users
        .login_user(with_device(by_username("alice", PW), &alice_device))
        .await
        .expect("the owner's device passes the lock")
        .into_inner();
    assert_eq!(owner.device_token, alice_device, "a valid token is kept");
    assert!(!owner.token.is_empty());

    // The owner's success does not lift the lock for anyone else.
    assert_locked(
        app.users
            .login_user(with_device(
                by_username("alice", PW),
                "made-up-device-token",
            ))
            .await,
    );
    assert_locked(
        app.users
            .login_user(with_device(by_email("alice", PW), &bob_device))
            .await,
    );
    assert_locked(app.users.login_user(by_username("alice", PW)).await);
    app.stop().await;
}

#[tokio::test]
async fn wrong_current_passwords_lock_change_password_and_sign_in() {
    let mut app = TestApp::spawn().await;
    app.register("alice").await;
    let token = app.login("alice").await.token;
    let change = |current: &str, new: &str| pb::ChangePasswordRequest {
        current_password: current.into(),
        new_password: new.into(),
    };

    for _ in 0..THRESHOLD {
        expect_code(
            app.users
                .change_password(authed(change("wrong guess", NEW_PW), &token))
                .await,
            Code::Unauthenticated,
        );
    }
    assert_locked(
        app.users
            .change_password(authed(change(PW, NEW_PW), &token))
            .await,
    );
    assert_locked(
        app.users
            .delete_account(authed(
                pb::DeleteAccountRequest {
                    password: PW.into(),
                },
                &token,
            ))
            .await,
    );
    assert_locked(app.users.login_user(by_username("alice", PW)).await);
    // A new password the policy refuses is refused first, lock or not.
    expect_code(
        app.users
            .change_password(authed(change(PW, "short"), &token))
            .await,
        Code::InvalidArgument,
    );
    // The password did not change.
    app.clock.advance(Duration::from_secs(3600));
    app.login("alice").await;
    app.stop().await;
}

#[tokio::test]
async fn a_new_password_refused_by_policy_spends_no_guess() {
    let mut app = TestApp::spawn().await;
    app.register("alice").await;
    let token = app.login("alice").await.token;
    for _ in 0..2 * THRESHOLD {
        let status = expect_code(
            app.users
                .change_password(authed(
                    pb::ChangePasswordRequest {
                        current_password: "wrong guess".into(),
                        new_password: "short".into(),
                    },
                    &token,
                ))
                .await,
            Code::InvalidArgument,
        );
        let details = status.get_error_details();
        let violations = details.bad_request().expect("field violations");
        assert_eq!(violations.field_violations[0].field, "new_password");
    }
    // Nothing was counted: the right password still works everywhere.
    app.users
        .change_password(authed(
            pb::ChangePasswordRequest {
                current_password: PW.into(),
                new_password: NEW_PW.into(),
            },
            &token,
        ))
        .await
        .expect("not locked");
    app.users
        .login_user(by_username("alice", NEW_PW))
        .await
        .expect("not locked");
    app.stop().await;
}

#[tokio::test]
async fn wrong_passwords_to_delete_account_lock_it_too() {
    let mut app = TestApp::spawn().await;
    app.register("alice").await;
    let token = app.login("alice").await.token;
    let delete = |password: &str| pb::DeleteAccountRequest {
        password: password.into(),
    };
    for _ in 0..THRESHOLD {
        expect_code(
            app.users
                .delete_account(authed(delete("wrong guess"), &token))
                .await,
            Code::Unauthenticated,
        );
    }
    assert_locked(app.users.delete_account(authed(delete(PW), &token)).await);
    assert_locked(app.users.login_user(by_email("alice", PW)).await);
    // The account is still there once the lock has passed.
    app.clock.advance(Duration::from_secs(3600));
    app.login("alice").await;
    app.stop().await;
}

#[tokio::test]
async fn an_admin_unlocks_a_locked_account() {
    let mut app = TestApp::spawn().await;
    app.create_admin("root").await;
    let alice = app.register("alice").await;
    app.register("bob").await;
    let root = app.login("root").await.token;
    let bob = app.login("bob").await.token;
    let unlock = |id: &str| pb::AdminUserRequest { user_id: id.into() };

    lock_out(&mut app, "alice").await;
    assert_locked(app.users.login_user(by_username("alice", PW)).await);

    expect_code(
        app.admin.unlock_user(authed(unlock(&alice.id), &bob)).await,
        Code::PermissionDenied,
    );
    expect_code(
        app.admin.unlock_user(unlock(&alice.id)).await,
        Code::Unauthenticated,
    );
    expect_code(
        app.admin
            .unlock_user(authed(
                unlock("00000000-0000-7000-8000-000000000000"),
                &root,
            ))
            .await,
        Code::NotFound,
    );
    // None of those lifted the lock.
    assert_locked(app.users.login_user(by_username("alice", PW)).await);

    app.admin
        .unlock_user(authed(unlock(&alice.id), &root))
        .await
        .expect("an admin unlocks");
    // The count is forgotten too: a few more misses do not lock at once.
    for _ in 0..THRESHOLD - 1 {
        expect_code(
            app.users.login_user(by_email("alice", "wrong guess")).await,
            Code::Unauthenticated,
        );
    }
    app.users
        .login_user(by_username("alice", PW))
        .await
        .expect("unlocked");
    app.stop().await;
}

/// A policy allowing two registrations per client address per hour.
fn two_registrations() -> AuthPolicy {
    AuthPolicy {
        registrations_per_ip_per_hour: NonZeroU32::new(2),
        ..AuthPolicy::default()
    }
}

/// A RegisterUser request for `name`, sent as forwarded for `client` when given.
fn registration(name: &str, client: Option<&str>) -> Request<pb::RegisterUserRequest> {
    let mut request = Request::new(pb::RegisterUserRequest {
        username: name.into(),
        email: format!("{name}@example.com"),
        password: PW.into(),
        display_name: String::new(),
    });
    if let Some(client) = client {
        request
            .metadata_mut()
            .insert("x-forwarded-for", MetadataValue::try_from(client).unwrap());
    }
    request
}

#[tokio::test]
async fn the_third_registration_from_one_client_is_refused() {
    let mut app = TestApp::spawn_configured(two_registrations(), GrpcConfig::default()).await;
    app.users
        .register_user(registration("alice", None))
        .await
        .unwrap();
    app.users
        .register_user(registration("bob", None))
        .await
        .unwrap();
    assert_locked(app.users.register_user(registration("carol", None)).await);
    app.stop().await;
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let mut app = TestApp::spawn_configured(two_registrations(), GrpcConfig::default()).await;
    app.users
        .register_user(registration("alice", Some("198.51.100.7")))
        .await
        .unwrap();
    app.users
        .register_user(registration("bob", Some("198.51.100.8")))
        .await
        .unwrap();
    // All three count as 127.0.0.1, whatever the header says.
    assert_locked(
        app.users
            .register_user(registration("carol", Some("198.51.100.9")))
            .await,
    );
    app.stop().await;
}

#[tokio::test]
async fn forwarded_for_from_a_trusted_proxy_names_the_client() {
    let config = GrpcConfig {
        trusted_proxies: TrustedProxies::parse("127.0.0.1").unwrap(),
        ..GrpcConfig::default()
    };
    let mut app = TestApp::spawn_configured(two_registrations(), config).await;
    let first = Some("198.51.100.7");
    let second = Some("198.51.100.8");
    for name in ["alice", "bob"] {
        app.users
            .register_user(registration(name, first))
            .await
            .unwrap();
    }
    assert_locked(app.users.register_user(registration("carol", first)).await);
    // Another client behind the same proxy has its own allowance; the refused
    // registration created nobody.
    for name in ["carol", "dave"] {
        app.users
            .register_user(registration(name, second))
            .await
            .unwrap();
    }
    assert_locked(app.users.register_user(registration("erin", second)).await);
    // The proxy's own requests count on its own address.
    app.users
        .register_user(registration("erin", None))
        .await
        .unwrap();
    app.stop().await;
}

fn refresh(token: &str) -> pb::RefreshTokenRequest {
    pb::RefreshTokenRequest {
        refresh_token: token.into(),
    }
}

#[tokio::test]
async fn a_refresh_token_left_idle_is_refused_before_the_session_expires() {
    let hour = Duration::from_secs(3600);
    let policy = AuthPolicy {
        token_idle_timeout: hour,
        ..AuthPolicy::default()
    };
    assert!(
        policy.refresh_token_ttl > 3 * hour,
        "far from the absolute lifetime"
    );
    let mut app = TestApp::spawn_configured(policy, GrpcConfig::default()).await;
    app.register("alice").await;
    let used = app.login("alice").await.refresh_token;
    let idle = app.login("alice").await.refresh_token;

    // Used within the idle timeout, twice in a row: it rotates each time, and each use
    // starts the idle timeout again (two hours after sign-in, past one idle timeout).
    let mut used = used;
    for _ in 0..2 {
        app.clock.advance(hour - Duration::from_secs(60));
        let renewed = app
            .users
            .refresh_token(refresh(&used))
            .await
            .expect("a refresh token used within the idle timeout rotates")
            .into_inner();
        assert_ne!(renewed.refresh_token, used);
        assert!(!renewed.token.is_empty());
        used = renewed.refresh_token;
    }

    // The other session's token sat unused for 1 h 58 min: refused, though its
    // session would last 30 days.
    let status = expect_code(
        app.users.refresh_token(refresh(&idle)).await,
        Code::Unauthenticated,
    );
    assert!(!status.message().contains(&idle), "{status:?}");
    // Refused for good, and without ending the session in use.
    expect_code(
        app.users.refresh_token(refresh(&idle)).await,
        Code::Unauthenticated,
    );
    app.users
        .refresh_token(refresh(&used))
        .await
        .expect("the session in use is not touched");
    app.stop().await;
}

/// A policy allowing two sign-in attempts per client address per minute.
fn two_sign_ins() -> AuthPolicy {
    AuthPolicy {
        login_attempts_per_ip_per_minute: NonZeroU32::new(2),
        ..AuthPolicy::default()
    }
}

/// A sign-in with a wrong password for an unknown name, sent as forwarded for `client`.
/// Each uses its own name so that no per-identifier lock is involved.
fn sign_in_from(name: &str, client: &str) -> Request<pb::LoginUserRequest> {
    let mut request = Request::new(by_username(name, "wrong guess"));
    request
        .metadata_mut()
        .insert("x-forwarded-for", MetadataValue::try_from(client).unwrap());
    request
}

#[tokio::test]
async fn ipv6_clients_behind_a_trusted_proxy_share_the_sign_in_limit_per_64() {
    let config = GrpcConfig {
        trusted_proxies: TrustedProxies::parse("127.0.0.1").unwrap(),
        ..GrpcConfig::default()
    };
    let mut app = TestApp::spawn_configured(two_sign_ins(), config).await;
    // Two addresses of one /64 spend one allowance...
    let same_64 = ["2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:fffe"];
    for (i, client) in same_64.iter().enumerate() {
        expect_code(
            app.users
                .login_user(sign_in_from(&format!("nobody{i}"), client))
                .await,
            Code::Unauthenticated,
        );
    }
    for (i, client) in same_64.iter().enumerate() {
        assert_locked(
            app.users
                .login_user(sign_in_from(&format!("other{i}"), client))
                .await,
        );
    }
    // ...while the next /64, and the proxy's own address, have their own.
    for i in 0..2 {
        expect_code(
            app.users
                .login_user(sign_in_from(&format!("next{i}"), "2001:db8:1:3::1"))
                .await,
            Code::Unauthenticated,
        );
    }
    expect_code(
        app.users
            .login_user(by_username("nobody", "wrong guess"))
            .await,
        Code::Unauthenticated,
    );
    app.stop().await;
}

#[tokio::test]
async fn forwarded_ipv6_from_an_untrusted_peer_does_not_escape_the_sign_in_limit() {
    // A proxy is trusted, but not the peer these requests come from (127.0.0.1).
    let config = GrpcConfig {
        trusted_proxies: TrustedProxies::parse("192.0.2.0/24").unwrap(),
        ..GrpcConfig::default()
    };
    let mut app = TestApp::spawn_configured(two_sign_ins(), config).await;
    // Addresses in different /64s, all counted on the peer's address.
    let clients = ["2001:db8:1:1::1", "2001:db8:2:2::2", "2001:db8:3:3::3"];
    for (i, client) in clients[..2].iter().enumerate() {
        expect_code(
            app.users
                .login_user(sign_in_from(&format!("nobody{i}"), client))
                .await,
            Code::Unauthenticated,
        );
    }
    assert_locked(
        app.users
            .login_user(sign_in_from("nobody2", clients[2]))
            .await,
    );
    assert_locked(
        app.users
            .login_user(by_username("nobody3", "wrong guess"))
            .await,
    );
    app.stop().await;
}
