//! Second factors over real gRPC: enrolment from the profile, the two-step SignIn with codes
//! from the authenticator app (computed here from the secret the server returned, as the
//! app would) and recovery codes, trusted devices, enrolment at sign-in when the policy
//! requires it, removal, and the admin's view and reset. The legacy LoginUser refuses such
//! accounts; no answer but the two enrolment starts carries the secret.

use std::time::Duration;

use prost::Message as _;
use tonic::{Code, Request};
use tonic_types::StatusExt as _;
use user_core::auth::AuthPolicy;
use user_core::domain::UserId;
use user_core::error::{
    CHALLENGE_EXPIRED, FACTOR_OFF, INVALID_CODE, OWN_FACTOR, SECOND_FACTOR_REQUIRED,
};
use user_core::factor::{SecondFactorPolicy, totp_code};
use user_core::ports::Clock as _;
use user_grpc::pb::sign_in_response::Result as SignInResult;
use user_grpc::{GrpcConfig, pb};

use crate::{PW, TestApp, authed, expect_code};

/// One TOTP step.
const STEP: Duration = Duration::from_secs(30);

/// The lockout threshold of the default policy.
const THRESHOLD: usize = 5;

/// An account with an authenticator app, as its owner's client knows it.
struct Enrolled {
    /// The session that enrolled.
    login: pb::LoginUserResponse,
    /// The base32 secret StartTotpEnrolment showed.
    secret: String,
    /// The recovery codes ConfirmTotpEnrolment showed.
    recovery_codes: Vec<String>,
}

fn by_username(name: &str) -> pb::LoginUserRequest {
    pb::LoginUserRequest {
        username: name.into(),
        password: PW.into(),
        ..Default::default()
    }
}

fn password(password: &str) -> pb::PasswordRequest {
    pb::PasswordRequest {
        password: password.into(),
    }
}

fn regenerate(password: &str, code: &str) -> pb::RegenerateRecoveryCodesRequest {
    pb::RegenerateRecoveryCodesRequest {
        password: password.into(),
        code: code.into(),
    }
}

fn step(challenge: &pb::SecondFactorChallenge, code: &str) -> pb::CompleteSignInRequest {
    pb::CompleteSignInRequest {
        challenge: challenge.challenge.clone(),
        code: code.into(),
        ..Default::default()
    }
}

fn admin_request(id: &str) -> pb::AdminUserRequest {
    pb::AdminUserRequest { user_id: id.into() }
}

/// The fields named by a status's `BadRequest` violations.
fn violations(status: &tonic::Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

impl TestApp {
    /// The code the app shows now.
    fn code(&self, secret: &str) -> String {
        totp_code(secret, self.clock.now())
    }

    /// A six-digit code the app shows at no step the server accepts now (the current one
    /// and one either side).
    fn wrong_code(&self, secret: &str) -> String {
        let now = self.clock.now();
        let near: Vec<String> = [now - STEP, now, now + STEP]
            .into_iter()
            .map(|t| totp_code(secret, t))
            .collect();
        (0..)
            .map(|n| format!("{n:06}"))
            .find(|c| !near.contains(c))
            .unwrap()
    }

    /// Moves to the next TOTP step, so the app shows a code not used yet.
    fn next_step(&self) {
        self.clock.advance(STEP);
    }

    /// Registers `name`, signs in and enrols an authenticator app over the profile RPCs.
    /// A session signed in before the enrolment ends with it; the one that enrolled stays.
    async fn enrolled(&mut self, name: &str) -> Enrolled {
        self.register(name).await;
        let before = self.login(name).await;
        let login = self.login(name).await;
        let setup = self
            .users
            .start_totp_enrolment(authed(password(PW), &login.token))
            .await
            .unwrap()
            .into_inner();
        assert!(!setup.secret.is_empty());
        assert!(
            setup.otpauth_uri.starts_with("otpauth://totp/")
                && setup
                    .otpauth_uri
                    .contains(&format!("secret={}", setup.secret)),
            "{}",
            setup.otpauth_uri
        );
        assert_eq!(
            (setup.issuer.as_str(), setup.account.as_str()),
            ("user-management", name)
        );
        let pending = self
            .users
            .get_second_factor(authed(pb::EmptyRequest {}, &login.token))
            .await
            .unwrap()
            .into_inner();
        assert!(pending.pending && !pending.enabled, "{pending:?}");
        let code = pb::CodeRequest {
            code: self.code(&setup.secret),
        };
        let codes = self
            .users
            .confirm_totp_enrolment(authed(code, &login.token))
            .await
            .unwrap()
            .into_inner()
            .recovery_codes;
        assert_eq!(codes.len(), 10);
        expect_code(
            self.users
                .get_user(authed(pb::GetUserRequest::default(), &before.token))
                .await,
            Code::Unauthenticated,
        );
        assert_eq!(self.whoami(&login.token).await, name);
        // The enrolment used the current step's code.
        self.next_step();
        Enrolled {
            login,
            secret: setup.secret,
            recovery_codes: codes,
        }
    }

    /// SignIn by username with the right password, with a device token or none.
    async fn start_sign_in(&mut self, name: &str, device_token: &str) -> SignInResult {
        let mut request = by_username(name);
        request.device_token = device_token.into();
        self.users
            .sign_in(request)
            .await
            .unwrap()
            .into_inner()
            .result
            .unwrap()
    }

    /// SignIn that must ask for a second step of `kind` ("code" or "enrolment").
    async fn challenge(&mut self, name: &str, kind: &str) -> pb::SecondFactorChallenge {
        match self.start_sign_in(name, "").await {
            SignInResult::SecondStep(c) => {
                assert_eq!(c.step, kind);
                assert_eq!(c.expires_in, 300, "the default challenge TTL");
                assert!(!c.challenge.is_empty());
                c
            }
            other => panic!("expected a second step, got {other:?}"),
        }
    }

    /// The caller's username, read with `token`.
    async fn whoami(&mut self, token: &str) -> String {
        self.users
            .get_user(authed(pb::GetUserRequest::default(), token))
            .await
            .unwrap()
            .into_inner()
            .user
            .unwrap()
            .username
    }

    async fn factor(&mut self, token: &str) -> pb::SecondFactorStatus {
        self.users
            .get_second_factor(authed(pb::EmptyRequest {}, token))
            .await
            .unwrap()
            .into_inner()
    }
}

#[tokio::test]
async fn a_profile_enrolment_turns_sign_in_into_two_steps() {
    let mut app = TestApp::spawn().await;
    let alice = app.enrolled("alice").await;
    let status = app.factor(&alice.login.token).await;
    assert!(status.enabled && !status.pending && !status.required);
    assert!(status.enabled_at.is_some());
    assert_eq!(status.recovery_codes_left, 10);

    // The legacy one-step sign-in refuses, with core's message, after the right password
    // only: a wrong one is the usual UNAUTHENTICATED.
    let refused = expect_code(
        app.users.login_user(by_username("alice")).await,
        Code::FailedPrecondition,
    );
    assert_eq!(refused.message(), SECOND_FACTOR_REQUIRED);
    let mut wrong = by_username("alice");
    wrong.password = "not the password".into();
    expect_code(app.users.login_user(wrong).await, Code::Unauthenticated);

    let challenge = app.challenge("alice", "code").await;
    let wrong = expect_code(
        app.users
            .complete_sign_in(step(&challenge, &app.wrong_code(&alice.secret)))
            .await,
        Code::Unauthenticated,
    );
    assert_eq!(wrong.message(), INVALID_CODE);
    // The challenge survives a wrong code.
    let code = app.code(&alice.secret);
    let tokens = app
        .users
        .complete_sign_in(step(&challenge, &code))
        .await
        .unwrap()
        .into_inner();
    assert!(!tokens.refresh_token.is_empty() && !tokens.device_token.is_empty());
    assert_eq!(tokens.token_type, "Bearer");
    assert_eq!(app.whoami(&tokens.token).await, "alice");

    // The same code at a new challenge is a replay.
    let again = app.challenge("alice", "code").await;
    let replay = expect_code(
        app.users.complete_sign_in(step(&again, &code)).await,
        Code::Unauthenticated,
    );
    assert_eq!(replay.message(), INVALID_CODE);
    // A used challenge does not work again, even with a fresh code.
    app.next_step();
    let used = expect_code(
        app.users
            .complete_sign_in(step(&challenge, &app.code(&alice.secret)))
            .await,
        Code::Unauthenticated,
    );
    assert_eq!(used.message(), CHALLENGE_EXPIRED);
    // The new one does; spaces in a typed code do not matter.
    let spaced = {
        let c = app.code(&alice.secret);
        format!("{} {}", &c[..3], &c[3..])
    };
    app.users
        .complete_sign_in(step(&again, &spaced))
        .await
        .unwrap();

    // The audit log has the second step, from the client's address.
    let events = app
        .users
        .list_my_events(authed(pb::ListMyEventsRequest { limit: 50 }, &tokens.token))
        .await
        .unwrap()
        .into_inner()
        .events;
    let signed_in = events
        .iter()
        .find(|e| e.kind == "sign_in" && e.detail.contains("authenticator app"))
        .expect("a sign-in by the app");
    assert_eq!(signed_in.outcome, "success");
    assert!(signed_in.ip.starts_with("127.0.0.1"), "{signed_in:?}");
    assert!(
        events
            .iter()
            .any(|e| e.kind == "sign_in" && e.outcome == "failure" && e.detail.contains("code")),
        "the wrong code is recorded: {events:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_legacy_client_is_refused_with_failed_precondition() {
    /// LoginUserRequest and LoginUserResponse as the legacy clients know them.
    #[derive(Clone, PartialEq, prost::Message)]
    struct OldLogin {
        #[prost(string, tag = "1")]
        email: String,
        #[prost(string, tag = "2")]
        password: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct OldToken {
        #[prost(string, tag = "1")]
        token: String,
    }

    let mut app = TestApp::spawn().await;
    app.enrolled("alice").await;
    let result: Result<OldToken, _> = crate::legacy::call(
        &app.channel,
        "/user.UserService/LoginUser",
        Request::new(OldLogin {
            email: "alice@example.com".into(),
            password: PW.into(),
        }),
    )
    .await;
    let status = expect_code(result, Code::FailedPrecondition);
    assert_eq!(status.message(), SECOND_FACTOR_REQUIRED);
    app.stop().await;
}

#[tokio::test]
async fn recovery_codes_work_once_and_regenerating_replaces_them() {
    let mut app = TestApp::spawn().await;
    let alice = app.enrolled("alice").await;
    let first = alice.recovery_codes[0].clone();

    // Case does not matter in a typed recovery code.
    let challenge = app.challenge("alice", "code").await;
    let tokens = app
        .users
        .complete_sign_in(step(&challenge, &first.to_uppercase()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(app.factor(&tokens.token).await.recovery_codes_left, 9);
    let challenge = app.challenge("alice", "code").await;
    let spent = expect_code(
        app.users.complete_sign_in(step(&challenge, &first)).await,
        Code::Unauthenticated,
    );
    assert_eq!(spent.message(), INVALID_CODE);

    // New codes need the password and a current code; the old ones die.
    let wrong = expect_code(
        app.users
            .regenerate_recovery_codes(authed(
                regenerate("not the password", &app.code(&alice.secret)),
                &tokens.token,
            ))
            .await,
        Code::Unauthenticated,
    );
    assert!(violations(&wrong).is_empty());
    let missing = expect_code(
        app.users
            .regenerate_recovery_codes(authed(regenerate("", " "), &tokens.token))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violations(&missing), ["password", "code"]);
    let oversized = expect_code(
        app.users
            .regenerate_recovery_codes(authed(
                regenerate(&"p".repeat(129), &"1".repeat(65)),
                &tokens.token,
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violations(&oversized), ["password", "code"]);
    // The password alone (a stolen session that knows it) mints no codes.
    let wrong = expect_code(
        app.users
            .regenerate_recovery_codes(authed(
                regenerate(PW, &app.wrong_code(&alice.secret)),
                &tokens.token,
            ))
            .await,
        Code::Unauthenticated,
    );
    assert_eq!(wrong.message(), INVALID_CODE);
    // An old client sends the PasswordRequest this call took before: field 1 is still the
    // password, and the missing code is refused at the edge.
    let old_client: Result<pb::RecoveryCodesResponse, _> = crate::legacy::call(
        &app.channel,
        "/user.UserService/RegenerateRecoveryCodes",
        authed(password(PW), &tokens.token),
    )
    .await;
    let old_client = expect_code(old_client, Code::InvalidArgument);
    assert_eq!(violations(&old_client), ["code"]);
    assert_eq!(app.factor(&tokens.token).await.recovery_codes_left, 9);
    let fresh = app
        .users
        .regenerate_recovery_codes(authed(
            regenerate(PW, &app.code(&alice.secret)),
            &tokens.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .recovery_codes;
    assert_eq!(fresh.len(), 10);
    assert!(fresh.iter().all(|c| !alice.recovery_codes.contains(c)));
    assert_eq!(app.factor(&tokens.token).await.recovery_codes_left, 10);
    let old = expect_code(
        app.users
            .complete_sign_in(step(&challenge, &alice.recovery_codes[1]))
            .await,
        Code::Unauthenticated,
    );
    assert_eq!(old.message(), INVALID_CODE);
    let signed_in = app
        .users
        .complete_sign_in(step(&challenge, &fresh[0]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(app.whoami(&signed_in.token).await, "alice");
    app.stop().await;
}

#[tokio::test]
async fn bad_challenges_and_missing_fields() {
    let mut app = TestApp::spawn().await;
    let alice = app.enrolled("alice").await;

    // Missing and oversized fields never reach the core.
    let missing = expect_code(
        app.users
            .complete_sign_in(pb::CompleteSignInRequest::default())
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violations(&missing), ["challenge", "code"]);
    let missing = expect_code(
        app.users
            .complete_enrolment(pb::CompleteSignInRequest::default())
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violations(&missing), ["challenge", "code"]);
    let missing = expect_code(
        app.users
            .start_enrolment(pb::StartEnrolmentRequest::default())
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violations(&missing), ["challenge"]);
    let oversized = expect_code(
        app.users
            .complete_sign_in(pb::CompleteSignInRequest {
                challenge: "c".repeat(10_000),
                code: "1".repeat(10_000),
                device_token: "d".repeat(10_000),
                trust_device: true,
            })
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violations(&oversized),
        ["challenge", "code", "device_token"]
    );
    assert!(oversized.message().len() < 400, "{}", oversized.message());
    let missing = expect_code(
        app.users.sign_in(pb::LoginUserRequest::default()).await,
        Code::InvalidArgument,
    );
    assert_eq!(violations(&missing), ["email", "password"]);

    // Unknown challenges.
    let unknown = pb::SecondFactorChallenge {
        challenge: "no-such-challenge".into(),
        ..Default::default()
    };
    for status in [
        app.users
            .complete_sign_in(step(&unknown, &app.code(&alice.secret)))
            .await
            .unwrap_err(),
        app.users
            .complete_enrolment(step(&unknown, &app.code(&alice.secret)))
            .await
            .unwrap_err(),
        app.users
            .start_enrolment(pb::StartEnrolmentRequest {
                challenge: unknown.challenge.clone(),
            })
            .await
            .unwrap_err(),
    ] {
        assert_eq!(
            (status.code(), status.message()),
            (Code::Unauthenticated, CHALLENGE_EXPIRED)
        );
    }

    // A challenge for a code serves no enrolment.
    let challenge = app.challenge("alice", "code").await;
    expect_code(
        app.users
            .start_enrolment(pb::StartEnrolmentRequest {
                challenge: challenge.challenge.clone(),
            })
            .await,
        Code::Unauthenticated,
    );
    expect_code(
        app.users
            .complete_enrolment(step(&challenge, &app.code(&alice.secret)))
            .await,
        Code::Unauthenticated,
    );

    // An expired challenge, with a right code of the moment.
    app.clock.advance(Duration::from_secs(301));
    let expired = expect_code(
        app.users
            .complete_sign_in(step(&challenge, &app.code(&alice.secret)))
            .await,
        Code::Unauthenticated,
    );
    assert_eq!(expired.message(), CHALLENGE_EXPIRED);
    // A change to the account after the password step (here its password, from a session)
    // ends the challenge: the right code no longer completes it.
    let change = |from: &str, to: &str| pb::ChangePasswordRequest {
        current_password: from.into(),
        new_password: to.into(),
    };
    let challenge = app.challenge("alice", "code").await;
    app.clock.advance(Duration::from_secs(1));
    let other = "another long passphrase";
    app.users
        .change_password(authed(change(PW, other), &alice.login.token))
        .await
        .unwrap();
    let changed = expect_code(
        app.users
            .complete_sign_in(step(&challenge, &app.code(&alice.secret)))
            .await,
        Code::Unauthenticated,
    );
    assert_eq!(changed.message(), CHALLENGE_EXPIRED);
    app.users
        .change_password(authed(change(other, PW), &alice.login.token))
        .await
        .unwrap();
    // A sign-in started now works.
    let challenge = app.challenge("alice", "code").await;
    app.users
        .complete_sign_in(step(&challenge, &app.code(&alice.secret)))
        .await
        .unwrap();
    app.stop().await;
}

#[tokio::test]
async fn wrong_codes_lock_the_account() {
    let mut app = TestApp::spawn().await;
    let alice = app.enrolled("alice").await;
    let challenge = app.challenge("alice", "code").await;
    for _ in 0..THRESHOLD {
        expect_code(
            app.users
                .complete_sign_in(step(&challenge, &app.wrong_code(&alice.secret)))
                .await,
            Code::Unauthenticated,
        );
    }
    // Locked: even the right code waits, and so does the password step.
    let locked = expect_code(
        app.users
            .complete_sign_in(step(&challenge, &app.code(&alice.secret)))
            .await,
        Code::ResourceExhausted,
    );
    let retry = locked.get_error_details().retry_info().unwrap().retry_delay;
    assert!(retry.is_some_and(|d| d > Duration::ZERO), "{locked:?}");
    expect_code(
        app.users.sign_in(by_username("alice")).await,
        Code::ResourceExhausted,
    );
    // An admin's unlock lets the owner through.
    app.create_admin("root").await;
    let root = app.login("root").await;
    app.admin
        .unlock_user(authed(
            admin_request(&alice.login.user.as_ref().unwrap().id),
            &root.token,
        ))
        .await
        .unwrap();
    let challenge = app.challenge("alice", "code").await;
    app.users
        .complete_sign_in(step(&challenge, &app.code(&alice.secret)))
        .await
        .unwrap();
    app.stop().await;
}

#[tokio::test]
async fn a_trusted_device_skips_the_second_step() {
    let mut app = TestApp::spawn().await;
    let alice = app.enrolled("alice").await;

    // Not trusted: the device token alone does not skip the step.
    let challenge = app.challenge("alice", "code").await;
    let untrusted = app
        .users
        .complete_sign_in(step(&challenge, &app.code(&alice.secret)))
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(
        app.start_sign_in("alice", &untrusted.device_token).await,
        SignInResult::SecondStep(_)
    ));

    app.next_step();
    let challenge = app.challenge("alice", "code").await;
    let trusted = app
        .users
        .complete_sign_in(pb::CompleteSignInRequest {
            trust_device: true,
            ..step(&challenge, &app.code(&alice.secret))
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!trusted.device_token.is_empty());
    let SignInResult::SignedIn(tokens) = app.start_sign_in("alice", &trusted.device_token).await
    else {
        panic!("a trusted device signs in in one step");
    };
    assert_eq!(app.whoami(&tokens.token).await, "alice");
    assert_eq!(
        tokens.device_token, trusted.device_token,
        "kept for the device"
    );
    // Other clients still get the second step.
    assert!(matches!(
        app.start_sign_in("alice", "").await,
        SignInResult::SecondStep(_)
    ));
    // The trust ends with its time (30 days by default).
    app.clock.advance(Duration::from_secs(31 * 24 * 3600));
    assert!(matches!(
        app.start_sign_in("alice", &trusted.device_token).await,
        SignInResult::SecondStep(_)
    ));
    app.stop().await;
}

#[tokio::test]
async fn accounts_without_a_factor_sign_in_in_one_step() {
    let mut app = TestApp::spawn().await;
    app.register("bob").await;
    let SignInResult::SignedIn(tokens) = app.start_sign_in("bob", "").await else {
        panic!("no factor, no second step");
    };
    assert_eq!(app.whoami(&tokens.token).await, "bob");
    assert!(!tokens.device_token.is_empty());
    let mut wrong = by_username("bob");
    wrong.password = "not the password".into();
    expect_code(app.users.sign_in(wrong).await, Code::Unauthenticated);
    let status = app.factor(&tokens.token).await;
    assert_eq!(
        status,
        pb::SecondFactorStatus {
            enabled: false,
            enabled_at: None,
            pending: false,
            recovery_codes_left: 0,
            required: false,
        }
    );
    app.stop().await;
}

#[tokio::test]
async fn admins_enrol_at_sign_in_when_the_policy_requires_it() {
    let policy = AuthPolicy {
        second_factor: SecondFactorPolicy {
            required_for_admins: true,
            ..SecondFactorPolicy::default()
        },
        ..AuthPolicy::default()
    };
    let mut app = TestApp::spawn_configured(policy, GrpcConfig::default()).await;
    app.create_admin("root").await;
    app.register("bob").await;
    // Users are not concerned.
    assert!(matches!(
        app.start_sign_in("bob", "").await,
        SignInResult::SignedIn(_)
    ));

    let refused = expect_code(
        app.users.login_user(by_username("root")).await,
        Code::FailedPrecondition,
    );
    assert_eq!(refused.message(), SECOND_FACTOR_REQUIRED);
    let challenge = app.challenge("root", "enrolment").await;
    // Not a challenge for a code; no enrolment started yet.
    expect_code(
        app.users.complete_sign_in(step(&challenge, "123456")).await,
        Code::Unauthenticated,
    );
    expect_code(
        app.users
            .complete_enrolment(step(&challenge, "123456"))
            .await,
        Code::Unauthenticated,
    );

    let setup = app
        .users
        .start_enrolment(pb::StartEnrolmentRequest {
            challenge: challenge.challenge.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (setup.issuer.as_str(), setup.account.as_str()),
        ("user-management", "root")
    );
    assert!(setup.otpauth_uri.contains(&setup.secret));
    let wrong = expect_code(
        app.users
            .complete_enrolment(step(&challenge, &app.wrong_code(&setup.secret)))
            .await,
        Code::Unauthenticated,
    );
    assert_eq!(wrong.message(), INVALID_CODE);
    let enrolled = app
        .users
        .complete_enrolment(step(&challenge, &app.code(&setup.secret)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(enrolled.recovery_codes.len(), 10);
    let mut distinct = enrolled.recovery_codes.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 10);
    let login = enrolled.login.unwrap();
    assert!(!login.device_token.is_empty());
    assert_eq!(app.whoami(&login.token).await, "root");
    let status = app.factor(&login.token).await;
    assert!(status.enabled && status.required && !status.pending);
    assert_eq!(status.recovery_codes_left, 10);
    // The challenge is spent, and the next sign-in asks for a code.
    expect_code(
        app.users
            .start_enrolment(pb::StartEnrolmentRequest {
                challenge: challenge.challenge.clone(),
            })
            .await,
        Code::Unauthenticated,
    );
    app.next_step();
    let challenge = app.challenge("root", "code").await;
    app.users
        .complete_sign_in(step(&challenge, &app.code(&setup.secret)))
        .await
        .unwrap();
    app.stop().await;
}

#[tokio::test]
async fn profile_enrolment_errors_and_a_restart_replaces_the_secret() {
    let mut app = TestApp::spawn().await;
    app.register("alice").await;
    let token = app.login("alice").await.token;

    let missing = expect_code(
        app.users
            .start_totp_enrolment(authed(password(" "), &token))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violations(&missing), ["password"]);
    let long = expect_code(
        app.users
            .start_totp_enrolment(authed(password(&"p".repeat(129)), &token))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violations(&long), ["password"]);
    expect_code(
        app.users
            .start_totp_enrolment(authed(password("not the password"), &token))
            .await,
        Code::Unauthenticated,
    );
    let none = expect_code(
        app.users
            .confirm_totp_enrolment(authed(
                pb::CodeRequest {
                    code: "123456".into(),
                },
                &token,
            ))
            .await,
        Code::FailedPrecondition,
    );
    assert_eq!(none.message(), user_core::error::NO_ENROLMENT);
    let missing = expect_code(
        app.users
            .confirm_totp_enrolment(authed(pb::CodeRequest::default(), &token))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violations(&missing), ["code"]);

    let first = app
        .users
        .start_totp_enrolment(authed(password(PW), &token))
        .await
        .unwrap()
        .into_inner();
    let second = app
        .users
        .start_totp_enrolment(authed(password(PW), &token))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(first.secret, second.secret);
    // The first secret's code no longer confirms.
    let stale = pb::CodeRequest {
        code: app.code(&first.secret),
    };
    let wrong = expect_code(
        app.users
            .confirm_totp_enrolment(authed(stale, &token))
            .await,
        Code::Unauthenticated,
    );
    assert_eq!(wrong.message(), INVALID_CODE);
    assert!(app.factor(&token).await.pending);
    let right = pb::CodeRequest {
        code: app.code(&second.secret),
    };
    app.users
        .confirm_totp_enrolment(authed(right, &token))
        .await
        .unwrap();
    let already = expect_code(
        app.users
            .start_totp_enrolment(authed(password(PW), &token))
            .await,
        Code::FailedPrecondition,
    );
    assert_eq!(already.message(), user_core::error::FACTOR_ALREADY_ON);
    app.stop().await;
}

#[tokio::test]
async fn disabling_needs_the_password_and_a_right_code() {
    let mut app = TestApp::spawn().await;
    let alice = app.enrolled("alice").await;
    let token = alice.login.token.clone();
    let disable = |password: &str, code: &str| pb::DisableSecondFactorRequest {
        password: password.into(),
        code: code.into(),
    };

    let missing = expect_code(
        app.users
            .disable_second_factor(authed(disable("", ""), &token))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violations(&missing), ["password", "code"]);
    expect_code(
        app.users
            .disable_second_factor(authed(
                disable("not the password", &app.code(&alice.secret)),
                &token,
            ))
            .await,
        Code::Unauthenticated,
    );
    let wrong = expect_code(
        app.users
            .disable_second_factor(authed(disable(PW, &app.wrong_code(&alice.secret)), &token))
            .await,
        Code::Unauthenticated,
    );
    assert_eq!(wrong.message(), INVALID_CODE);
    assert!(app.factor(&token).await.enabled, "still on");

    app.users
        .disable_second_factor(authed(disable(PW, &app.code(&alice.secret)), &token))
        .await
        .unwrap();
    let status = app.factor(&token).await;
    assert!(!status.enabled && status.enabled_at.is_none());
    assert_eq!(status.recovery_codes_left, 0);
    // One step again; nothing left to disable or regenerate.
    assert_eq!(app.login("alice").await.user.unwrap().username, "alice");
    let off = expect_code(
        app.users
            .disable_second_factor(authed(disable(PW, &alice.recovery_codes[0]), &token))
            .await,
        Code::FailedPrecondition,
    );
    assert_eq!(off.message(), user_core::error::FACTOR_OFF);
    let off = expect_code(
        app.users
            .regenerate_recovery_codes(authed(regenerate(PW, &alice.recovery_codes[1]), &token))
            .await,
        Code::FailedPrecondition,
    );
    assert_eq!(off.message(), FACTOR_OFF);
    app.stop().await;
}

#[tokio::test]
async fn disabling_with_a_recovery_code_works() {
    let mut app = TestApp::spawn().await;
    let alice = app.enrolled("alice").await;
    let request = pb::DisableSecondFactorRequest {
        password: PW.into(),
        code: alice.recovery_codes[3].clone(),
    };
    app.users
        .disable_second_factor(authed(request, &alice.login.token))
        .await
        .unwrap();
    assert!(!app.factor(&alice.login.token).await.enabled);
    app.stop().await;
}

#[tokio::test]
async fn admins_see_and_reset_a_users_second_factor() {
    let mut app = TestApp::spawn().await;
    let alice = app.enrolled("alice").await;
    let alice_id = alice.login.user.as_ref().unwrap().id.clone();
    app.create_admin("root").await;
    let root = app.login("root").await.token;
    app.register("bob").await;
    let bob = app.login("bob").await.token;

    let status = app
        .admin
        .get_second_factor(authed(admin_request(&alice_id), &root))
        .await
        .unwrap()
        .into_inner();
    assert!(status.enabled && !status.required);
    assert_eq!(status.recovery_codes_left, 10);
    assert!(
        !contains(&status.encode_to_vec(), &alice.secret),
        "no secret in the status"
    );

    let unknown = UserId::new().to_string();
    for status in [
        app.admin
            .get_second_factor(authed(admin_request(&alice_id), &bob))
            .await
            .unwrap_err(),
        app.admin
            .reset_second_factor(authed(admin_request(&alice_id), &bob))
            .await
            .unwrap_err(),
    ] {
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    }
    for status in [
        app.admin
            .get_second_factor(authed(admin_request(&unknown), &root))
            .await
            .unwrap_err(),
        app.admin
            .reset_second_factor(authed(admin_request(&unknown), &root))
            .await
            .unwrap_err(),
    ] {
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        assert_eq!(status.message(), "user not found");
    }
    for bad in ["", "nope"] {
        let status = expect_code(
            app.admin
                .reset_second_factor(authed(admin_request(bad), &root))
                .await,
            Code::InvalidArgument,
        );
        assert_eq!(violations(&status), ["user_id"]);
    }

    app.admin
        .reset_second_factor(authed(admin_request(&alice_id), &root))
        .await
        .unwrap();
    let status = app
        .admin
        .get_second_factor(authed(admin_request(&alice_id), &root))
        .await
        .unwrap()
        .into_inner();
    assert!(!status.enabled && status.recovery_codes_left == 0);
    let status = expect_code(
        app.admin
            .reset_second_factor(authed(admin_request(&alice_id), &root))
            .await,
        Code::FailedPrecondition,
    );
    assert_eq!(status.message(), FACTOR_OFF);
    // Alice signs in with her password alone again.
    assert!(matches!(
        app.start_sign_in("alice", "").await,
        SignInResult::SignedIn(_)
    ));
    app.stop().await;
}

#[tokio::test]
async fn an_admin_cannot_reset_their_own_second_factor() {
    let mut app = TestApp::spawn().await;
    let alice = app.enrolled("alice").await;
    let alice_id = alice.login.user.as_ref().unwrap().id.clone();
    app.create_admin("root").await;
    let root = app.login("root").await.token;
    let promote = pb::SetRoleRequest {
        user_id: alice_id.clone(),
        role: pb::Role::Admin.into(),
    };
    app.admin.set_role(authed(promote, &root)).await.unwrap();

    let status = expect_code(
        app.admin
            .reset_second_factor(authed(admin_request(&alice_id), &alice.login.token))
            .await,
        Code::FailedPrecondition,
    );
    assert_eq!(status.message(), OWN_FACTOR);
    let factor = app.factor(&alice.login.token).await;
    assert!(factor.enabled, "the factor stays");
    assert_eq!(factor.recovery_codes_left, 10);

    // Another admin may.
    app.admin
        .reset_second_factor(authed(admin_request(&alice_id), &root))
        .await
        .unwrap();
    assert!(!app.factor(&alice.login.token).await.enabled);
    app.stop().await;
}

/// Whether `needle`'s bytes appear in `haystack`.
fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn only_the_two_enrolment_starts_show_the_secret() {
    let mut app = TestApp::spawn().await;
    let alice = app.enrolled("alice").await;
    let token = alice.login.token.clone();
    let mut answers: Vec<Vec<u8>> = vec![alice.login.encode_to_vec()];
    answers.push(app.factor(&token).await.encode_to_vec());
    let challenge = app.challenge("alice", "code").await;
    answers.push(challenge.encode_to_vec());
    let tokens = app
        .users
        .complete_sign_in(step(&challenge, &app.code(&alice.secret)))
        .await
        .unwrap()
        .into_inner();
    answers.push(tokens.encode_to_vec());
    answers.push(
        app.users
            .regenerate_recovery_codes(authed(regenerate(PW, &alice.recovery_codes[0]), &token))
            .await
            .unwrap()
            .into_inner()
            .encode_to_vec(),
    );
    answers.push(
        app.users
            .export_my_data(authed(pb::EmptyRequest {}, &token))
            .await
            .unwrap()
            .into_inner()
            .encode_to_vec(),
    );
    answers.push(
        app.users
            .list_my_events(authed(pb::ListMyEventsRequest { limit: 200 }, &token))
            .await
            .unwrap()
            .into_inner()
            .encode_to_vec(),
    );
    for answer in &answers {
        assert!(!contains(answer, &alice.secret), "a secret in an answer");
    }
    app.stop().await;
}

#[tokio::test]
async fn every_new_authenticated_rpc_needs_a_token() {
    fn with<T>(message: T, token: Option<&str>) -> Request<T> {
        match token {
            None => Request::new(message),
            Some(token) => authed(message, token),
        }
    }
    let mut app = TestApp::spawn().await;
    let id = UserId::new().to_string();
    for garbage in [None, Some("x.y.z")] {
        let statuses = [
            app.users
                .get_second_factor(with(pb::EmptyRequest {}, garbage))
                .await
                .map(drop),
            app.users
                .start_totp_enrolment(with(password(PW), garbage))
                .await
                .map(drop),
            app.users
                .confirm_totp_enrolment(with(
                    pb::CodeRequest {
                        code: "123456".into(),
                    },
                    garbage,
                ))
                .await
                .map(drop),
            app.users
                .regenerate_recovery_codes(with(regenerate(PW, "123456"), garbage))
                .await
                .map(drop),
            app.users
                .disable_second_factor(with(
                    pb::DisableSecondFactorRequest {
                        password: PW.into(),
                        code: "123456".into(),
                    },
                    garbage,
                ))
                .await
                .map(drop),
        ];
        for status in statuses {
            expect_code(status, Code::Unauthenticated);
        }
        let statuses = [
            app.admin
                .get_second_factor(with(admin_request(&id), garbage))
                .await
                .map(drop),
            app.admin
                .reset_second_factor(with(admin_request(&id), garbage))
                .await
                .map(drop),
        ];
        for status in statuses {
            expect_code(status, Code::Unauthenticated);
        }
    }
    // Every new RPC is served and counted under its own name.
    for method in [
        "SignIn",
        "CompleteSignIn",
        "StartEnrolment",
        "CompleteEnrolment",
        "GetSecondFactor",
        "StartTotpEnrolment",
        "ConfirmTotpEnrolment",
        "RegenerateRecoveryCodes",
        "DisableSecondFactor",
    ] {
        let path = format!("/user.UserService/{method}");
        assert_eq!(user_grpc::metrics::method_label(&path), path);
    }
    for method in ["GetSecondFactor", "ResetSecondFactor"] {
        let path = format!("/user.AdminService/{method}");
        assert_eq!(user_grpc::metrics::method_label(&path), path);
    }
    app.stop().await;
}
