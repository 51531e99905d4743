//! The mail flows over gRPC: password reset (self-service and by an admin), email
//! verification and its resend. Tokens come from the mails the server queued in the outbox,
//! as a user would read them from the link.

use std::time::Duration;

use time::OffsetDateTime;
use time::macros::datetime;
use tonic::Code;
use user_core::error::AuthError;
use user_core::ports::Clock as _;
use user_grpc::pb;

use crate::{PW, TestApp, authed, expect_code};

const NEW_PASSWORD: &str = "an entirely new passphrase";

/// `t` as the wire writes it.
fn timestamp(t: OffsetDateTime) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.unix_timestamp(),
        nanos: t.nanosecond().try_into().unwrap(),
    }
}

/// A queued mail: its recipient and the token of its link to `path`, if it has one.
#[derive(Debug)]
struct Queued {
    to: String,
    path: &'static str,
    token: String,
}

/// The token of the first link to `path` in `text`.
fn link_token(text: &str, path: &str) -> Option<String> {
    let marker = format!("{path}?token=");
    let start = text.find(&marker)? + marker.len();
    let token: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    (!token.is_empty()).then_some(token)
}

impl TestApp {
    /// The reset and verification mails queued since the last call (after the background
    /// work of reset requests is done), oldest first. Other mails (notices) are dropped.
    async fn mails(&self) -> Vec<Queued> {
        self.state.account.settled().await;
        let far = datetime!(2100-01-01 00:00 UTC);
        let claimed = self
            .db
            .storage()
            .outbox
            .claim(self.clock.now(), far, 1000)
            .await
            .unwrap();
        claimed
            .into_iter()
            .filter_map(|c| {
                [user_mail::RESET_PASSWORD_PATH, user_mail::VERIFY_EMAIL_PATH]
                    .into_iter()
                    .find_map(|path| {
                        link_token(&c.mail.text, path).map(|token| Queued {
                            to: c.mail.to.to_string(),
                            path,
                            token,
                        })
                    })
            })
            .collect()
    }

    /// The token of the one mail with a link to `path` queued since the last call, for `to`.
    async fn token(&self, path: &str, to: &str) -> String {
        let found: Vec<_> = self
            .mails()
            .await
            .into_iter()
            .filter(|m| m.path == path)
            .collect();
        assert_eq!(found.len(), 1, "one {path} mail: {found:?}");
        assert_eq!(found[0].to, to);
        found[0].token.clone()
    }

    async fn request_reset(&mut self, email: &str) -> Result<pb::EmptyResponse, tonic::Status> {
        self.users
            .request_password_reset(pb::RequestPasswordResetRequest {
                email: email.into(),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    async fn request_verification(
        &mut self,
        email: &str,
    ) -> Result<pb::EmptyResponse, tonic::Status> {
        self.users
            .request_verification(pb::RequestVerificationRequest {
                email: email.into(),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    async fn reset(&mut self, token: &str, password: &str) -> Result<pb::User, tonic::Status> {
        self.users
            .reset_password(pb::ResetPasswordRequest {
                token: token.into(),
                new_password: password.into(),
            })
            .await
            .map(|r| r.into_inner().user.unwrap())
    }

    async fn verify(&mut self, token: &str) -> Result<pb::User, tonic::Status> {
        self.users
            .verify_email(pb::VerifyEmailRequest {
                token: token.into(),
            })
            .await
            .map(|r| r.into_inner().user.unwrap())
    }

    async fn sign_in(&mut self, name: &str, password: &str) -> Result<(), tonic::Status> {
        self.users
            .login_user(pb::LoginUserRequest {
                username: name.into(),
                password: password.into(),
                ..Default::default()
            })
            .await
            .map(drop)
    }

    async fn me(&mut self, token: &str) -> Result<pb::User, tonic::Status> {
        self.users
            .get_user(authed(pb::GetUserRequest::default(), token))
            .await
            .map(|r| r.into_inner().user.unwrap())
    }
}

/// Asserts an INVALID_ARGUMENT whose only field violation is on `field`.
fn expect_field(result: Result<impl std::fmt::Debug, tonic::Status>, field: &str) {
    use tonic_types::StatusExt as _;
    let status = expect_code(result, Code::InvalidArgument);
    let details = status.get_error_details();
    let fields: Vec<_> = details
        .bad_request()
        .expect("field violations")
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect();
    assert_eq!(fields, [field], "{status:?}");
}

#[tokio::test]
async fn a_reset_link_sets_a_new_password_once_and_ends_the_old_sessions() {
    let mut app = TestApp::spawn_mailing().await;
    app.register("alice").await;
    let old = app.login("alice").await;
    app.mails().await;

    app.request_reset("alice@example.com").await.unwrap();
    let token = app
        .token(user_mail::RESET_PASSWORD_PATH, "alice@example.com")
        .await;

    let user = app.reset(&token, NEW_PASSWORD).await.unwrap();
    assert_eq!(user.username, "alice");

    // The sessions of before are over: neither the access token nor the refresh token works.
    expect_code(app.me(&old.token).await, Code::Unauthenticated);
    let refreshed = app
        .users
        .refresh_token(pb::RefreshTokenRequest {
            refresh_token: old.refresh_token.clone(),
        })
        .await;
    expect_code(refreshed, Code::Unauthenticated);

    // The new password signs in, the old one no longer does.
    app.sign_in("alice", NEW_PASSWORD).await.unwrap();
    expect_code(app.sign_in("alice", PW).await, Code::Unauthenticated);

    // The same link twice is refused, on field `token`.
    expect_field(app.reset(&token, "yet another passphrase").await, "token");
    app.sign_in("alice", NEW_PASSWORD).await.unwrap();
    app.stop().await;
}

#[tokio::test]
async fn a_refused_new_password_leaves_the_link_usable() {
    let mut app = TestApp::spawn_mailing().await;
    app.register("alice").await;
    app.mails().await;
    app.request_reset("alice@example.com").await.unwrap();
    let token = app
        .token(user_mail::RESET_PASSWORD_PATH, "alice@example.com")
        .await;

    expect_field(app.reset(&token, "short").await, "new_password");
    app.reset(&token, NEW_PASSWORD).await.unwrap();
    app.sign_in("alice", NEW_PASSWORD).await.unwrap();
    app.stop().await;
}

#[tokio::test]
async fn known_and_unknown_addresses_get_the_same_answer() {
    let mut app = TestApp::spawn_mailing().await;
    app.register("alice").await;
    app.mails().await;

    let known = app
        .users
        .request_password_reset(pb::RequestPasswordResetRequest {
            email: "alice@example.com".into(),
        })
        .await
        .unwrap();
    let unknown = app
        .users
        .request_password_reset(pb::RequestPasswordResetRequest {
            email: "nobody@example.com".into(),
        })
        .await
        .unwrap();
    assert_eq!(known.get_ref(), unknown.get_ref());
    let keys = |r: &tonic::Response<pb::EmptyResponse>| {
        let mut keys: Vec<String> = r
            .metadata()
            .keys()
            .map(|k| format!("{k:?}"))
            .filter(|k| !k.contains("date") && !k.contains("request-id"))
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(keys(&known), keys(&unknown));

    // Only the known address got mail.
    let mails = app.mails().await;
    let recipients: Vec<_> = mails.iter().map(|m| m.to.as_str()).collect();
    assert_eq!(recipients, ["alice@example.com"]);
    app.stop().await;
}

#[tokio::test]
async fn a_reset_request_needs_an_address() {
    let mut app = TestApp::spawn_mailing().await;
    expect_field(app.request_reset("not an address").await, "email");
    expect_field(app.request_reset("").await, "email");
    app.stop().await;
}

#[tokio::test]
async fn malformed_and_unknown_tokens_are_refused_on_field_token() {
    let mut app = TestApp::spawn_mailing().await;
    app.register("alice").await;
    for token in [
        "",
        "not-a-token",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        expect_field(app.reset(token, NEW_PASSWORD).await, "token");
        expect_field(app.verify(token).await, "token");
    }
    // A verification token is no reset token.
    let tokens = app.login("alice").await;
    app.mails().await;
    app.users
        .resend_verification(authed(pb::EmptyRequest {}, &tokens.token))
        .await
        .unwrap();
    let verify = app
        .token(user_mail::VERIFY_EMAIL_PATH, "alice@example.com")
        .await;
    expect_field(app.reset(&verify, NEW_PASSWORD).await, "token");
    app.sign_in("alice", PW).await.unwrap();
    app.stop().await;
}

#[tokio::test]
async fn a_verification_link_marks_the_email_verified() {
    let mut app = TestApp::spawn_mailing().await;
    app.register("alice").await;
    let tokens = app.login("alice").await;
    let me = app.me(&tokens.token).await.unwrap();
    assert!(!me.email_verified);
    assert_eq!(me.email_verified_at, None);
    app.mails().await;

    app.users
        .resend_verification(authed(pb::EmptyRequest {}, &tokens.token))
        .await
        .unwrap();
    let token = app
        .token(user_mail::VERIFY_EMAIL_PATH, "alice@example.com")
        .await;

    // Verified a minute after registering: the time is the verification's, not the account's.
    app.clock.advance(Duration::from_secs(60));
    let verified_at = Some(timestamp(app.clock.now()));
    let user = app.verify(&token).await.unwrap();
    assert!(user.email_verified);
    assert_eq!(user.email_verified_at, verified_at);
    assert_ne!(user.email_verified_at, user.created_at);
    let me = app.me(&tokens.token).await.unwrap();
    assert!(me.email_verified);
    assert_eq!(me.email_verified_at, verified_at);

    // The link is spent, and a verified address gets no new one.
    expect_field(app.verify(&token).await, "token");
    app.users
        .resend_verification(authed(pb::EmptyRequest {}, &tokens.token))
        .await
        .unwrap();
    assert!(app.mails().await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_resent_link_replaces_the_older_one() {
    let mut app = TestApp::spawn_mailing().await;
    app.register("alice").await;
    let tokens = app.login("alice").await;
    app.mails().await;
    for _ in 0..2 {
        app.users
            .resend_verification(authed(pb::EmptyRequest {}, &tokens.token))
            .await
            .unwrap();
    }
    let mails = app.mails().await;
    assert_eq!(mails.len(), 2, "{mails:?}");
    expect_field(app.verify(&mails[0].token).await, "token");
    assert!(app.verify(&mails[1].token).await.unwrap().email_verified);
    app.stop().await;
}

#[tokio::test]
async fn resending_needs_a_token() {
    let mut app = TestApp::spawn_mailing().await;
    let anonymous = app.users.resend_verification(pb::EmptyRequest {}).await;
    expect_code(anonymous, Code::Unauthenticated);
    let forged = app
        .users
        .resend_verification(authed(pb::EmptyRequest {}, "forged"))
        .await;
    expect_code(forged, Code::Unauthenticated);
    assert!(app.mails().await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn an_admin_mails_a_reset_link_and_others_may_not() {
    let mut app = TestApp::spawn_mailing().await;
    app.create_admin("root").await;
    let bob = app.register("bob").await;
    let alice = app.register("alice").await;
    let root = app.login("root").await;
    let bob_tokens = app.login("bob").await;
    app.mails().await;

    // A user may not send one, not even for another user or for themselves.
    for id in [&alice.id, &bob.id] {
        let refused = app
            .admin
            .send_password_reset(authed(
                pb::AdminUserRequest {
                    user_id: id.clone(),
                },
                &bob_tokens.token,
            ))
            .await;
        expect_code(refused, Code::PermissionDenied);
    }
    assert!(app.mails().await.is_empty());

    let unknown = app
        .admin
        .send_password_reset(authed(
            pb::AdminUserRequest {
                user_id: "0190f3c4-0000-7000-8000-000000000000".into(),
            },
            &root.token,
        ))
        .await;
    expect_code(unknown, Code::NotFound);

    app.admin
        .send_password_reset(authed(
            pb::AdminUserRequest {
                user_id: bob.id.clone(),
            },
            &root.token,
        ))
        .await
        .unwrap();
    let token = app
        .token(user_mail::RESET_PASSWORD_PATH, "bob@example.com")
        .await;
    app.reset(&token, NEW_PASSWORD).await.unwrap();
    app.sign_in("bob", NEW_PASSWORD).await.unwrap();
    app.stop().await;
}

#[tokio::test]
async fn without_mail_the_flows_answer_internal() {
    let mut app = TestApp::spawn().await;
    app.register("alice").await;
    let tokens = app.login("alice").await;
    let status = expect_code(app.request_reset("alice@example.com").await, Code::Internal);
    assert_eq!(status.message(), "mail is not configured");
    let status = expect_code(
        app.request_verification("alice@example.com").await,
        Code::Internal,
    );
    assert_eq!(status.message(), "mail is not configured");
    let resend = app
        .users
        .resend_verification(authed(pb::EmptyRequest {}, &tokens.token))
        .await;
    let status = expect_code(resend, Code::Internal);
    assert_eq!(status.message(), "mail is not configured");
    app.stop().await;
}

/// A reset request from `client`, as a trusted proxy at 127.0.0.1 forwards it.
fn forwarded(email: &str, client: &str) -> tonic::Request<pb::RequestPasswordResetRequest> {
    let mut request = tonic::Request::new(pb::RequestPasswordResetRequest {
        email: email.into(),
    });
    request.metadata_mut().insert(
        "x-forwarded-for",
        tonic::metadata::MetadataValue::try_from(client).unwrap(),
    );
    request
}

#[tokio::test]
async fn reset_requests_are_limited_per_client_address_behind_a_trusted_proxy() {
    use std::num::NonZeroU32;
    use tonic_types::StatusExt as _;

    let mut policy = user_core::auth::AuthPolicy::default();
    policy.account.reset_requests_per_ip_per_hour = NonZeroU32::new(2);
    policy.account.reset_requests_per_address_per_hour = None;
    let config = user_grpc::GrpcConfig {
        trusted_proxies: user_core::domain::TrustedProxies::parse("127.0.0.1").unwrap(),
        ..Default::default()
    };
    let mut app = TestApp::spawn_mailing_with(policy, config).await;
    app.register("alice").await;
    app.mails().await;

    // Known and unknown addresses count alike.
    for email in ["alice@example.com", "nobody@example.com"] {
        app.users
            .request_password_reset(forwarded(email, "203.0.113.7"))
            .await
            .unwrap();
    }
    let throttled = app
        .users
        .request_password_reset(forwarded("alice@example.com", "203.0.113.7"))
        .await;
    let status = expect_code(throttled, Code::ResourceExhausted);
    assert!(status.get_error_details().retry_info().is_some());

    // Another client behind the same proxy has its own budget.
    app.users
        .request_password_reset(forwarded("alice@example.com", "203.0.113.8"))
        .await
        .unwrap();
    let mails = app.mails().await;
    assert_eq!(mails.len(), 2, "{mails:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_signed_out_person_gets_a_new_verification_link_by_address() {
    let policy = user_core::auth::AuthPolicy {
        require_verified_email: true,
        ..Default::default()
    };
    let mut app = TestApp::spawn_mailing_with(policy, user_grpc::GrpcConfig::default()).await;
    app.register("alice").await;
    app.mails().await;
    let refused = app.sign_in("alice", PW).await;
    expect_code(refused, Code::PermissionDenied);

    // No token: the address is all it takes. Known and unknown addresses look alike.
    let known = app.request_verification("Alice@Example.com").await.unwrap();
    let unknown = app
        .request_verification("nobody@example.com")
        .await
        .unwrap();
    assert_eq!(known, unknown);
    let token = app
        .token(user_mail::VERIFY_EMAIL_PATH, "alice@example.com")
        .await;
    assert!(app.verify(&token).await.unwrap().email_verified);
    app.sign_in("alice", PW).await.unwrap();

    // A confirmed address gets nothing more, with the same answer.
    app.request_verification("alice@example.com").await.unwrap();
    assert!(app.mails().await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_verification_request_needs_an_address() {
    let mut app = TestApp::spawn_mailing().await;
    expect_field(app.request_verification("not an address").await, "email");
    expect_field(app.request_verification("").await, "email");
    app.stop().await;
}

#[tokio::test]
async fn verification_requests_are_limited_per_address() {
    use tonic_types::StatusExt as _;

    let mut app = TestApp::spawn_mailing().await;
    app.register("alice").await;
    app.mails().await;
    // Five an hour per address by default, known or not alike.
    for email in ["alice@example.com", "nobody@example.com"] {
        for _ in 0..5 {
            app.request_verification(email).await.unwrap();
        }
        let status = expect_code(
            app.request_verification(email).await,
            Code::ResourceExhausted,
        );
        assert!(status.get_error_details().retry_info().is_some(), "{email}");
    }
    // Another address still has its own budget.
    app.request_verification("carol@example.com").await.unwrap();
    let mails = app.mails().await;
    assert_eq!(mails.len(), 5, "alice's five links: {mails:?}");
    assert!(mails.iter().all(|m| m.to == "alice@example.com"));
    app.stop().await;
}

#[tokio::test]
async fn with_too_many_link_requests_in_progress_both_requests_are_refused_as_busy() {
    use tonic_types::StatusExt as _;

    let mut policy = user_core::auth::AuthPolicy::default();
    policy.account.max_pending_link_requests = 0;
    let mut app = TestApp::spawn_mailing_with(policy, user_grpc::GrpcConfig::default()).await;
    app.register("alice").await;
    app.mails().await;
    for email in ["alice@example.com", "nobody@example.com"] {
        for result in [
            app.request_reset(email).await,
            app.request_verification(email).await,
        ] {
            let status = expect_code(result, Code::ResourceExhausted);
            assert_eq!(status.message(), AuthError::Overloaded.to_string());
            let retry = status
                .get_error_details()
                .retry_info()
                .map(|r| r.retry_delay);
            assert_eq!(
                retry,
                Some(Some(user_core::error::OVERLOAD_RETRY)),
                "{email}"
            );
        }
    }
    // A malformed address is still a field problem, before any work is queued.
    expect_field(app.request_verification("not an address").await, "email");
    assert!(app.mails().await.is_empty());
    app.stop().await;
}
