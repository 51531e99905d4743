use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};

use super::*;
use crate::auth::{AuthPolicy, Credentials, SecondStep, SignIn};
use crate::domain::{
    Actor, AuditKind, AuditOutcome, AuditQuery, ChallengePurpose, ClientInfo, Role,
};
use crate::error::{AuthError, ErrorKind, ServiceError as _, UserError};
use crate::ports::Clock as _;
use crate::testing::Fixture;
use crate::users::UserService;

const PW: &str = Fixture::PASSWORD;

fn secret(s: &str) -> SecretString {
    SecretString::from(s)
}

fn creds(name: &str) -> Credentials {
    Credentials::new(name, secret(PW))
}

/// The password step of `name`'s token sign-in, which must ask for a second step.
async fn challenge(f: &Fixture, name: &str) -> crate::auth::Challenge {
    match f
        .auth
        .sign_in(creds(name), ClientInfo::default())
        .await
        .unwrap()
    {
        SignIn::SecondStep(challenge) => challenge,
        SignIn::Complete(_) => panic!("{name} signed in without a second step"),
    }
}

/// The password step of `name`'s browser sign-in, presenting `device`, which must ask for a
/// second step.
async fn browser_challenge(
    f: &Fixture,
    name: &str,
    device: Option<SecretString>,
) -> crate::auth::Challenge {
    match f
        .auth
        .sign_in_browser(creds(name).with_device_token(device), ClientInfo::default())
        .await
        .unwrap()
    {
        SignIn::SecondStep(challenge) => challenge,
        SignIn::Complete(_) => panic!("{name}'s browser signed in without a second step"),
    }
}

/// The second step of a browser sign-in with the current code of `secret`, presenting
/// `device` and asking to be trusted or not: the device token the browser is given.
async fn finish_browser(
    f: &Fixture,
    challenge: &crate::auth::Challenge,
    secret: &str,
    trust_device: bool,
    device: Option<SecretString>,
) -> SecretString {
    let mut second = step(challenge, &code_now(f, secret));
    second.trust_device = trust_device;
    second.device_token = device;
    f.auth
        .complete_sign_in_browser(second, ClientInfo::default())
        .await
        .unwrap()
        .device_token
}

fn step(challenge: &crate::auth::Challenge, code: &str) -> SecondStep {
    SecondStep::new(challenge.token.clone(), secret(code))
}

fn code_now(f: &Fixture, secret: &str) -> String {
    totp_code(secret, f.clock.now())
}

/// A user with an enrolled app: the fixture, the user's actor, the secret and the codes.
async fn enrolled(name: &str) -> (Fixture, Actor, String, Vec<SecretString>) {
    let f = Fixture::in_memory();
    f.register(name).await;
    let actor = f.actor(name).await;
    let (secret, codes) = f.enrol(&actor).await;
    // The code used at enrolment is spent; the next one comes with the next step.
    f.clock.advance(Duration::from_secs(30));
    (f, actor, secret, codes)
}

#[test]
fn a_sealed_secret_opens_only_for_its_user_under_its_key() {
    let key = FactorKey::generate().unwrap();
    let user = UserId::new();
    let sealed = key.seal(user, b"twenty bytes secret!").unwrap();
    assert_eq!(sealed[0], 1, "version byte");
    assert!(
        !sealed.windows(8).any(|w| w == b"twenty b"),
        "the plain secret is not stored"
    );
    assert_eq!(
        key.open(user, &sealed).unwrap().expose_secret(),
        b"twenty bytes secret!"
    );
    assert!(matches!(
        key.open(UserId::new(), &sealed),
        Err(SealError::Unreadable)
    ));
    let other = FactorKey::generate().unwrap();
    assert!(matches!(
        other.open(user, &sealed),
        Err(SealError::Unreadable)
    ));
    let mut tampered = sealed.clone();
    *tampered.last_mut().unwrap() ^= 1;
    assert!(matches!(
        key.open(user, &tampered),
        Err(SealError::Unreadable)
    ));
    for short in [&[][..], &[1][..], &sealed[..20]] {
        assert!(matches!(key.open(user, short), Err(SealError::Unreadable)));
    }
    let mut version = sealed;
    version[0] = 2;
    assert!(matches!(
        key.open(user, &version),
        Err(SealError::Unreadable)
    ));
}

#[test]
fn a_key_round_trips_through_base64_and_bad_text_is_refused() {
    let key = FactorKey::generate().unwrap();
    let text = key.to_base64();
    let again = FactorKey::from_base64(&format!("  {}\n", text.expose_secret())).unwrap();
    let user = UserId::new();
    let sealed = key.seal(user, b"abc").unwrap();
    assert_eq!(again.open(user, &sealed).unwrap().expose_secret(), b"abc");
    for bad in ["", "not base64!", "AAAA", &STANDARD.encode([0u8; 31])] {
        let err = FactorKey::from_base64(bad).unwrap_err();
        assert_eq!(err.setting, "second_factor_key", "{bad}");
    }
    assert_eq!(format!("{key:?}"), "FactorKey([REDACTED])");
}

#[test]
fn typed_codes_are_six_digits_or_a_recovery_code() {
    assert_eq!(TypedCode::parse("123456"), Some(TypedCode::Totp(123_456)));
    assert_eq!(TypedCode::parse(" 012 345 "), Some(TypedCode::Totp(12_345)));
    for bad in ["", "12345", "1234567", "12345a", "١٢٣٤٥٦"] {
        assert_eq!(TypedCode::parse(bad), None, "{bad}");
    }
    assert!(matches!(
        TypedCode::parse("abcd-efgh-jkmn-pqrs-tvwx-yz01"),
        Some(TypedCode::Recovery(_))
    ));
}

#[test]
fn the_policy_refuses_odd_settings() {
    let policy = |f: fn(&mut SecondFactorPolicy)| {
        let mut p = SecondFactorPolicy::default();
        f(&mut p);
        p.validate()
    };
    assert!(policy(|_| {}).is_ok());
    let refused = |r: Result<(), ConfigError>| r.unwrap_err().setting;
    assert_eq!(
        refused(policy(|p| p.challenge_ttl = Duration::from_secs(5))),
        "second_factor.challenge_ttl"
    );
    assert_eq!(
        refused(policy(|p| p.challenge_ttl = Duration::from_secs(7200))),
        "second_factor.challenge_ttl"
    );
    assert_eq!(
        refused(policy(|p| p.issuer = "a:b".into())),
        "second_factor.issuer"
    );
    assert_eq!(
        refused(policy(|p| p.issuer = String::new())),
        "second_factor.issuer"
    );
    let p = SecondFactorPolicy {
        required_for_admins: true,
        ..SecondFactorPolicy::default()
    };
    assert!(p.requires(Role::Admin) && !p.requires(Role::User));
    let p = SecondFactorPolicy {
        required_for_everyone: true,
        ..SecondFactorPolicy::default()
    };
    assert!(p.requires(Role::User));
}

#[tokio::test]
async fn enrolment_needs_the_password_and_a_right_code() {
    let f = Fixture::in_memory();
    f.register("ada").await;
    let actor = f.actor("ada").await;
    let err = f
        .users
        .start_totp_enrolment(&actor, &secret("wrong password"))
        .await
        .unwrap_err();
    assert!(matches!(err, UserError::InvalidCredentials), "{err:?}");
    let err = f
        .users
        .confirm_totp_enrolment(&actor, &secret("123456"))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), crate::error::NO_ENROLMENT);
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition);

    let setup = f
        .users
        .start_totp_enrolment(&actor, &secret(PW))
        .await
        .unwrap();
    assert!(
        setup
            .uri
            .expose_secret()
            .starts_with("otpauth://totp/user-management:ada?")
    );
    assert!(
        setup
            .uri
            .expose_secret()
            .contains(setup.secret.expose_secret())
    );
    assert_eq!(setup.secret.expose_secret().len(), 32, "160 bits in base32");
    let status = f.users.second_factor(&actor).await.unwrap();
    assert!(status.pending && status.enabled_at.is_none());
    // Nothing changes at sign-in while pending.
    assert!(f.login("ada", PW).await.is_ok());

    let right = code_now(&f, setup.secret.expose_secret());
    let wrong = format!("{:06}", (right.parse::<u32>().unwrap() + 1) % 1_000_000);
    let err = f
        .users
        .confirm_totp_enrolment(&actor, &secret(&wrong))
        .await
        .unwrap_err();
    assert!(matches!(err, UserError::InvalidCode), "{err:?}");
    let codes = f
        .users
        .confirm_totp_enrolment(&actor, &secret(&right))
        .await
        .unwrap();
    assert_eq!(codes.len(), 10);
    let status = f.users.second_factor(&actor).await.unwrap();
    assert_eq!(status.enabled_at, Some(f.clock.now()));
    assert_eq!((status.pending, status.recovery_codes_left), (false, 10));
    let err = f
        .users
        .start_totp_enrolment(&actor, &secret(PW))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), crate::error::FACTOR_ALREADY_ON);
    let stored = f.ports.factors.factor(actor.user_id).await.unwrap();
    let raw = totp_rs::Secret::try_from_base32(setup.secret.expose_secret()).unwrap();
    assert!(
        !stored
            .sealed_secret
            .windows(raw.len())
            .any(|w| w == raw.as_ref()),
        "stored sealed"
    );
}

#[tokio::test]
async fn sign_in_asks_for_a_code_and_refuses_one_step_clients() {
    let (f, _, secret_b32, _) = enrolled("ada").await;
    let err = f.login("ada", PW).await.unwrap_err();
    assert!(matches!(err, AuthError::SecondFactorRequired), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
    // A wrong password still says nothing about the factor.
    let err = f.login("ada", "wrong password").await.unwrap_err();
    assert!(matches!(err, AuthError::InvalidCredentials));

    let before = f
        .ports
        .factors
        .purge(f.clock.now() + time::Duration::hours(1), f.clock.now())
        .await
        .unwrap();
    assert_eq!(
        before, 0,
        "a one-step sign-in stores no challenge it would throw away"
    );
    let challenge = challenge(&f, "ada").await;
    assert_eq!(challenge.purpose, ChallengePurpose::SecondFactor);
    assert_eq!(
        challenge.expires_at,
        f.clock.now() + time::Duration::minutes(5)
    );
    // The challenge is no token.
    assert!(matches!(
        f.auth.authenticate(challenge.token.expose_secret()).await,
        Err(AuthError::Unauthenticated)
    ));
    let err = f
        .auth
        .complete_sign_in(step(&challenge, "000000"), ClientInfo::default())
        .await;
    let err = err.unwrap_err();
    assert!(matches!(err, AuthError::InvalidCode), "{err:?}");
    // The challenge survives a wrong code.
    let code = code_now(&f, &secret_b32);
    let pair = f
        .auth
        .complete_sign_in(step(&challenge, &code), ClientInfo::default())
        .await
        .unwrap();
    assert!(
        f.auth
            .authenticate(pair.access_token.expose_secret())
            .await
            .is_ok()
    );
    assert!(pair.device_token.is_some());
    // Single use.
    let err = f
        .auth
        .complete_sign_in(step(&challenge, &code), ClientInfo::default())
        .await;
    assert!(matches!(err, Err(AuthError::ChallengeExpired)), "{err:?}");
    // The same code at a new sign-in is a replay.
    let again = self::challenge(&f, "ada").await;
    let err = f
        .auth
        .complete_sign_in(step(&again, &code), ClientInfo::default())
        .await;
    assert!(matches!(err, Err(AuthError::InvalidCode)), "{err:?}");
    f.clock.advance(Duration::from_secs(30));
    let code = code_now(&f, &secret_b32);
    assert!(
        f.auth
            .complete_sign_in(step(&again, &code), ClientInfo::default())
            .await
            .is_ok()
    );

    let events = f
        .ports
        .audit
        .list(&AuditQuery::default())
        .await
        .unwrap()
        .events;
    let sign_ins: Vec<_> = events
        .iter()
        .filter(|e| e.kind == AuditKind::SignIn)
        .collect();
    assert!(sign_ins.iter().any(|e| e.outcome == AuditOutcome::Failure
        && e.detail.as_deref() == Some("second step: wrong_code")));
    assert!(sign_ins.iter().any(|e| e.outcome == AuditOutcome::Success
        && e.detail.as_deref() == Some("account, authenticator app")));
}

#[tokio::test]
async fn codes_one_step_either_side_pass_and_two_steps_do_not() {
    let (f, _, secret_b32, _) = enrolled("ada").await;
    for (offset, accepted) in [(-60, false), (60, false), (-30, true), (30, true)] {
        f.clock.advance(Duration::from_secs(90));
        let code = totp_code(&secret_b32, f.clock.now() + time::Duration::seconds(offset));
        let challenge = challenge(&f, "ada").await;
        let result = f
            .auth
            .complete_sign_in(step(&challenge, &code), ClientInfo::default())
            .await;
        assert_eq!(result.is_ok(), accepted, "offset {offset}: {result:?}");
    }
}

#[tokio::test]
async fn a_challenge_expires() {
    let (f, _, secret_b32, _) = enrolled("ada").await;
    let challenge = challenge(&f, "ada").await;
    f.clock.advance(Duration::from_secs(5 * 60));
    let code = code_now(&f, &secret_b32);
    let err = f
        .auth
        .complete_sign_in(step(&challenge, &code), ClientInfo::default())
        .await;
    assert!(matches!(err, Err(AuthError::ChallengeExpired)), "{err:?}");
    assert_eq!(
        AuthError::ChallengeExpired.kind(),
        ErrorKind::Unauthenticated
    );
}

#[tokio::test]
async fn a_recovery_code_works_once() {
    let (f, actor, _, codes) = enrolled("ada").await;
    let code = codes[3].expose_secret().to_uppercase();
    let first = challenge(&f, "ada").await;
    f.auth
        .complete_sign_in(step(&first, &code), ClientInfo::default())
        .await
        .unwrap();
    let second = challenge(&f, "ada").await;
    let err = f
        .auth
        .complete_sign_in(step(&second, &code), ClientInfo::default())
        .await;
    assert!(matches!(err, Err(AuthError::InvalidCode)), "{err:?}");
    assert_eq!(
        f.users
            .second_factor(&actor)
            .await
            .unwrap()
            .recovery_codes_left,
        9
    );
}

#[tokio::test]
async fn wrong_codes_spend_the_guess_budget_and_a_right_password_does_not_refill_it() {
    let (f, _, secret_b32, _) = enrolled("ada").await;
    // Four wrong codes, each after a fresh (right) password step.
    for _ in 0..4 {
        let challenge = challenge(&f, "ada").await;
        let err = f
            .auth
            .complete_sign_in(step(&challenge, "000000"), ClientInfo::default())
            .await;
        assert!(matches!(err, Err(AuthError::InvalidCode)), "{err:?}");
    }
    let challenge = challenge(&f, "ada").await;
    let err = f
        .auth
        .complete_sign_in(step(&challenge, "000001"), ClientInfo::default())
        .await;
    assert!(matches!(err, Err(AuthError::InvalidCode)), "{err:?}");
    // Five failures: the account is locked, for the right code and for the password step.
    let code = code_now(&f, &secret_b32);
    let err = f
        .auth
        .complete_sign_in(step(&challenge, &code), ClientInfo::default())
        .await;
    assert!(matches!(err, Err(AuthError::Throttled { .. })), "{err:?}");
    let err = f.auth.sign_in(creds("ada"), ClientInfo::default()).await;
    assert!(matches!(err, Err(AuthError::Throttled { .. })), "{err:?}");
    f.clock.advance(Duration::from_secs(61));
    let challenge = self::challenge(&f, "ada").await;
    let code = code_now(&f, &secret_b32);
    f.auth
        .complete_sign_in(step(&challenge, &code), ClientInfo::default())
        .await
        .unwrap();
    // Success clears the count.
    let challenge = self::challenge(&f, "ada").await;
    let err = f
        .auth
        .complete_sign_in(step(&challenge, "000000"), ClientInfo::default())
        .await;
    assert!(matches!(err, Err(AuthError::InvalidCode)), "{err:?}");
}

#[tokio::test]
async fn a_trusted_browser_skips_the_second_step_until_the_trust_ends() {
    let (f, _, secret_b32, _) = enrolled("ada").await;
    let browser = |device: Option<SecretString>| creds("ada").with_device_token(device);
    let challenge = browser_challenge(&f, "ada", None).await;
    let mut second = step(&challenge, &code_now(&f, &secret_b32));
    second.trust_device = false;
    let untrusted = f
        .auth
        .complete_sign_in_browser(second, ClientInfo::default())
        .await
        .unwrap();
    // Known but not trusted: still two steps.
    let challenge = browser_challenge(&f, "ada", Some(untrusted.device_token.clone())).await;
    f.clock.advance(Duration::from_secs(30));
    let mut second = step(&challenge, &code_now(&f, &secret_b32));
    second.trust_device = true;
    second.device_token = Some(untrusted.device_token.clone());
    let trusted = f
        .auth
        .complete_sign_in_browser(second, ClientInfo::default())
        .await
        .unwrap();
    assert_eq!(
        trusted.device_token.expose_secret(),
        untrusted.device_token.expose_secret(),
        "the device token that vouched is renewed, not replaced"
    );
    let skip = f
        .auth
        .sign_in_browser(
            browser(Some(trusted.device_token.clone())),
            ClientInfo::default(),
        )
        .await
        .unwrap();
    assert!(
        matches!(skip, SignIn::Complete(_)),
        "a trusted browser signs in with its password"
    );
    // Another browser is not trusted, nor is this one after the trust ends.
    let other = f
        .auth
        .sign_in_browser(browser(None), ClientInfo::default())
        .await
        .unwrap();
    assert!(matches!(other, SignIn::SecondStep(_)));
    f.clock.advance(Duration::from_secs(30 * 24 * 3600));
    let later = f
        .auth
        .sign_in_browser(
            browser(Some(trusted.device_token.clone())),
            ClientInfo::default(),
        )
        .await
        .unwrap();
    assert!(matches!(later, SignIn::SecondStep(_)));
}

/// The device token that vouched at the password step is renewed; another one presented at
/// the second step is not handed back (it was never stored): the browser gets a new one.
#[tokio::test]
async fn a_device_token_swapped_between_the_steps_is_replaced() {
    let (f, _, secret_b32, _) = enrolled("ada").await;
    let challenge = browser_challenge(&f, "ada", None).await;
    let first = f
        .auth
        .complete_sign_in_browser(
            step(&challenge, &code_now(&f, &secret_b32)),
            ClientInfo::default(),
        )
        .await
        .unwrap();
    let challenge = browser_challenge(&f, "ada", Some(first.device_token.clone())).await;
    f.clock.advance(Duration::from_secs(30));
    let mut second = step(&challenge, &code_now(&f, &secret_b32));
    let swapped = secret("a-device-token-nobody-was-given");
    second.device_token = Some(swapped.clone());
    let done = f
        .auth
        .complete_sign_in_browser(second, ClientInfo::default())
        .await
        .unwrap();
    let given = done.device_token.expose_secret();
    assert_ne!(given, swapped.expose_secret(), "not the swapped token");
    assert_ne!(given, first.device_token.expose_secret(), "a new one");
}

/// Bob's trusted device token, presented at Ada's second step, is neither handed to Ada's
/// browser nor made to vouch for Ada; Bob's browser keeps its trust.
#[tokio::test]
async fn another_accounts_trusted_device_token_at_the_second_step_does_not_help() {
    let (f, _, ada_secret, _) = enrolled("ada").await;
    f.register("bob").await;
    let bob = f.actor("bob").await;
    let (bob_secret, _) = f.enrol(&bob).await;
    f.clock.advance(Duration::from_secs(30));
    let challenge = browser_challenge(&f, "bob", None).await;
    let bobs = finish_browser(&f, &challenge, &bob_secret, true, None).await;

    let challenge = browser_challenge(&f, "ada", None).await;
    let given = finish_browser(&f, &challenge, &ada_secret, false, Some(bobs.clone())).await;
    assert_ne!(
        given.expose_secret(),
        bobs.expose_secret(),
        "not Bob's token"
    );
    // Ada's browser with Bob's token, or with the one it was given, still needs a code.
    browser_challenge(&f, "ada", Some(bobs.clone())).await;
    browser_challenge(&f, "ada", Some(given)).await;

    // Ada's browser holding Bob's token at both steps, asking to be trusted: Bob's token is
    // not renewed for Ada; she gets a token of her own, which then vouches for her alone.
    f.clock.advance(Duration::from_secs(30));
    let challenge = browser_challenge(&f, "ada", Some(bobs.clone())).await;
    let adas = finish_browser(&f, &challenge, &ada_secret, true, Some(bobs.clone())).await;
    assert_ne!(
        adas.expose_secret(),
        bobs.expose_secret(),
        "not Bob's token"
    );
    let skip = |name: &'static str, token: &SecretString| {
        let token = token.clone();
        let f = &f;
        async move {
            let signed_in = f
                .auth
                .sign_in_browser(
                    creds(name).with_device_token(Some(token)),
                    ClientInfo::default(),
                )
                .await
                .unwrap();
            matches!(signed_in, SignIn::Complete(_))
        }
    };
    assert!(
        skip("ada", &adas).await,
        "Ada's own trusted token vouches for her"
    );
    assert!(!skip("bob", &adas).await, "and not for Bob");
    assert!(
        !skip("ada", &bobs).await,
        "Bob's token never vouches for Ada"
    );
    assert!(skip("bob", &bobs).await, "Bob's browser keeps its trust");
}

#[tokio::test]
async fn a_required_factor_is_enrolled_at_sign_in() {
    let mut policy = AuthPolicy::default();
    policy.second_factor.required_for_admins = true;
    let f = Fixture::in_memory_with(policy);
    f.register_admin("root").await;
    f.register("ada").await;
    assert!(
        f.login("ada", PW).await.is_ok(),
        "users are not required to enrol"
    );
    let err = f.login("root", PW).await.unwrap_err();
    assert!(matches!(err, AuthError::SecondFactorRequired));
    let challenge = challenge(&f, "root").await;
    assert_eq!(challenge.purpose, ChallengePurpose::Enrolment);
    // An enrolment challenge is not a code challenge.
    let err = f
        .auth
        .complete_sign_in(step(&challenge, "123456"), ClientInfo::default())
        .await;
    assert!(matches!(err, Err(AuthError::ChallengeExpired)), "{err:?}");
    let err = f
        .auth
        .complete_enrolment(step(&challenge, "123456"), ClientInfo::default())
        .await;
    assert!(
        matches!(err, Err(AuthError::ChallengeExpired)),
        "enrolment not started: {err:?}"
    );
    let setup = f.auth.start_enrolment(&challenge.token).await.unwrap();
    let code = code_now(&f, setup.secret.expose_secret());
    // Nor once the enrolment started: the pending app's right code does not sign in.
    let err = f
        .auth
        .complete_sign_in(step(&challenge, &code), ClientInfo::default())
        .await;
    assert!(matches!(err, Err(AuthError::ChallengeExpired)), "{err:?}");
    let err = f
        .auth
        .complete_enrolment(step(&challenge, "000000"), ClientInfo::default())
        .await;
    assert!(matches!(err, Err(AuthError::InvalidCode)), "{err:?}");
    let (pair, codes) = f
        .auth
        .complete_enrolment(step(&challenge, &code), ClientInfo::default())
        .await
        .unwrap();
    assert_eq!(codes.len(), 10);
    assert_eq!(pair.user.role, Role::Admin);
    // From now on: a code challenge.
    let next = self::challenge(&f, "root").await;
    assert_eq!(next.purpose, ChallengePurpose::SecondFactor);
    let recovery = codes[0].expose_secret().to_owned();
    f.auth
        .complete_sign_in(step(&next, &recovery), ClientInfo::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn the_owner_turns_the_factor_off_with_password_and_code() {
    let (f, actor, secret_b32, _) = enrolled("ada").await;
    let code = code_now(&f, &secret_b32);
    let err = f
        .users
        .disable_second_factor(&actor, &secret("wrong"), &secret(&code))
        .await;
    assert!(matches!(err, Err(UserError::InvalidCredentials)), "{err:?}");
    let err = f
        .users
        .disable_second_factor(&actor, &secret(PW), &secret("000000"))
        .await;
    assert!(matches!(err, Err(UserError::InvalidCode)), "{err:?}");
    f.users
        .disable_second_factor(&actor, &secret(PW), &secret(&code))
        .await
        .unwrap();
    assert!(f.login("ada", PW).await.is_ok(), "one step again");
    let err = f
        .users
        .disable_second_factor(&actor, &secret(PW), &secret(&code))
        .await;
    assert!(
        matches!(err, Err(UserError::FactorState(crate::error::FACTOR_OFF))),
        "{err:?}"
    );
}

/// A pending enrolment is no factor yet: nothing to disable or to regenerate codes for,
/// even with a right code; a confirmed one cannot be confirmed again.
#[tokio::test]
async fn a_pending_enrolment_is_not_a_factor_and_a_confirmed_one_is_not_confirmed_twice() {
    let f = Fixture::in_memory();
    f.register("ada").await;
    let actor = f.actor("ada").await;
    let setup = f
        .users
        .start_totp_enrolment(&actor, &secret(PW))
        .await
        .unwrap();
    let app = setup.secret.expose_secret().to_owned();
    let code = code_now(&f, &app);
    let err = f
        .users
        .disable_second_factor(&actor, &secret(PW), &secret(&code))
        .await;
    assert!(
        matches!(err, Err(UserError::FactorState(crate::error::FACTOR_OFF))),
        "{err:?}"
    );
    let err = f
        .users
        .regenerate_recovery_codes(&actor, &secret(PW), &secret(&code))
        .await;
    assert!(
        matches!(err, Err(UserError::FactorState(crate::error::FACTOR_OFF))),
        "{err:?}"
    );
    f.users
        .confirm_totp_enrolment(&actor, &secret(&code))
        .await
        .unwrap();
    f.clock.advance(Duration::from_secs(30));
    let err = f
        .users
        .confirm_totp_enrolment(&actor, &secret(&code_now(&f, &app)))
        .await;
    assert!(
        matches!(
            err,
            Err(UserError::FactorState(crate::error::FACTOR_ALREADY_ON))
        ),
        "{err:?}"
    );
}

/// The factor changes between the two steps of a sign-in, from the owner's other session:
/// turned off and a new enrolment started. The pending app is no second factor yet: its
/// right code does not complete the sign-in, and the challenge is over.
#[tokio::test]
async fn a_factor_turned_off_and_reenrolled_between_the_steps_ends_the_challenge() {
    let (f, actor, app, _) = enrolled("ada").await;
    let challenge = challenge(&f, "ada").await;
    f.users
        .disable_second_factor(&actor, &secret(PW), &secret(&code_now(&f, &app)))
        .await
        .unwrap();
    let setup = f
        .users
        .start_totp_enrolment(&actor, &secret(PW))
        .await
        .unwrap();
    f.clock.advance(Duration::from_secs(30));
    let code = code_now(&f, setup.secret.expose_secret());
    let err = f
        .auth
        .complete_sign_in(step(&challenge, &code), ClientInfo::default())
        .await;
    assert!(matches!(err, Err(AuthError::ChallengeExpired)), "{err:?}");
}

/// Two enrolment challenges of one account (two browsers): once one of them enrolled the
/// app, the other cannot enrol it again, even with its right code.
#[tokio::test]
async fn an_enrolment_finished_elsewhere_ends_the_other_enrolment_challenge() {
    let mut policy = AuthPolicy::default();
    policy.second_factor.required_for_admins = true;
    let f = Fixture::in_memory_with(policy);
    f.register_admin("root").await;
    let first = challenge(&f, "root").await;
    let second = challenge(&f, "root").await;
    let setup = f.auth.start_enrolment(&second.token).await.unwrap();
    let app = setup.secret.expose_secret().to_owned();
    f.auth
        .complete_enrolment(step(&second, &code_now(&f, &app)), ClientInfo::default())
        .await
        .unwrap();
    f.clock.advance(Duration::from_secs(30));
    let err = f
        .auth
        .complete_enrolment(step(&first, &code_now(&f, &app)), ClientInfo::default())
        .await;
    assert!(matches!(err, Err(AuthError::ChallengeExpired)), "{err:?}");
}

#[tokio::test]
async fn new_recovery_codes_replace_the_old_ones() {
    let (f, actor, secret_b32, old) = enrolled("ada").await;
    let code = code_now(&f, &secret_b32);
    let err = f
        .users
        .regenerate_recovery_codes(&actor, &secret("wrong"), &secret(&code))
        .await;
    assert!(matches!(err, Err(UserError::InvalidCredentials)), "{err:?}");
    // The password alone (a stolen session that knows it) mints no codes.
    let err = f
        .users
        .regenerate_recovery_codes(&actor, &secret(PW), &secret("000000"))
        .await;
    assert!(matches!(err, Err(UserError::InvalidCode)), "{err:?}");
    let new = f
        .users
        .regenerate_recovery_codes(&actor, &secret(PW), &secret(&code))
        .await
        .unwrap();
    assert_eq!(new.len(), 10);
    let challenge = challenge(&f, "ada").await;
    let err = f
        .auth
        .complete_sign_in(
            step(&challenge, old[0].expose_secret()),
            ClientInfo::default(),
        )
        .await;
    assert!(matches!(err, Err(AuthError::InvalidCode)), "{err:?}");
    f.auth
        .complete_sign_in(
            step(&challenge, new[0].expose_secret()),
            ClientInfo::default(),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn an_admin_resets_a_factor_without_seeing_it() {
    let (f, ada, _, _) = enrolled("ada").await;
    f.register_admin("root").await;
    let root = f.actor("root").await;
    assert!(matches!(f.users.as_admin(&ada), Err(UserError::Forbidden)));
    let admin = f.users.as_admin(&root).unwrap();
    let status = admin.second_factor(ada.user_id).await.unwrap();
    assert!(status.enabled_at.is_some());
    admin.reset_second_factor(ada.user_id).await.unwrap();
    assert!(f.login("ada", PW).await.is_ok());
    let err = admin.reset_second_factor(ada.user_id).await;
    assert!(matches!(err, Err(UserError::FactorState(_))), "{err:?}");
    let err = admin.reset_second_factor(UserId::new()).await;
    assert!(matches!(err, Err(UserError::NotFound)), "{err:?}");
    let (_, _) = f.enrol(&root).await;
    let err = admin.reset_second_factor(root.user_id).await;
    assert!(
        matches!(err, Err(UserError::FactorState(crate::error::OWN_FACTOR))),
        "an admin's own factor goes from the profile: {err:?}"
    );
    let events = f
        .ports
        .audit
        .list(&AuditQuery::default())
        .await
        .unwrap()
        .events;
    let reset = events
        .iter()
        .find(|e| e.kind == AuditKind::SecondFactorDisabled)
        .unwrap();
    assert_eq!(
        (reset.actor, reset.subject),
        (Some(root.user_id), Some(ada.user_id))
    );
}

#[tokio::test]
async fn a_challenge_dies_with_its_account() {
    let (f, _, secret_b32, _) = enrolled("ada").await;
    f.register_admin("root").await;
    let root = f.actor("root").await;
    let challenge = challenge(&f, "ada").await;
    let ada = f
        .ports
        .users
        .get(challenge_user(&f, &challenge).await)
        .await
        .unwrap();
    f.users
        .as_admin(&root)
        .unwrap()
        .set_status(ada.id, crate::domain::UserStatus::Disabled)
        .await
        .unwrap();
    let code = code_now(&f, &secret_b32);
    let err = f
        .auth
        .complete_sign_in(step(&challenge, &code), ClientInfo::default())
        .await;
    assert!(matches!(err, Err(AuthError::ChallengeExpired)), "{err:?}");
}

async fn challenge_user(f: &Fixture, challenge: &crate::auth::Challenge) -> UserId {
    let hash = TokenHash::of(challenge.token.expose_secret());
    f.ports
        .factors
        .find_challenge(&hash, f.clock.now())
        .await
        .unwrap()
        .user_id
}

#[tokio::test]
async fn without_a_key_factors_are_not_configured() {
    let f = Fixture::in_memory();
    f.register("ada").await;
    let actor = f.actor("ada").await;
    let users = UserService::new(f.ports.clone(), &AuthPolicy::default());
    let err = users
        .start_totp_enrolment(&actor, &secret(PW))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), crate::error::FACTORS_NOT_CONFIGURED);
    let mut policy = AuthPolicy::default();
    policy.second_factor.required_for_everyone = true;
    let err = crate::Services::builder(crate::testing::in_memory())
        .hasher(crate::testing::FastHasher::new())
        .policy(policy.clone())
        .build()
        .unwrap_err();
    assert_eq!(err.setting, "second_factor");
    let built = crate::Services::builder(crate::testing::in_memory())
        .hasher(crate::testing::FastHasher::new())
        .policy(policy)
        .second_factor_key(FactorKey::generate().unwrap())
        .build();
    assert!(built.is_ok());
}

#[tokio::test]
async fn wrong_codes_on_the_profile_are_throttled_too() {
    // Turning the factor off: the right password does not refill the budget codes spend.
    let (f, actor, secret_b32, _) = enrolled("ada").await;
    for _ in 0..5 {
        let err = f
            .users
            .disable_second_factor(&actor, &secret(PW), &secret("000000"))
            .await;
        assert!(matches!(err, Err(UserError::InvalidCode)), "{err:?}");
    }
    let code = code_now(&f, &secret_b32);
    let err = f
        .users
        .disable_second_factor(&actor, &secret(PW), &secret(&code))
        .await;
    assert!(matches!(err, Err(UserError::Throttled { .. })), "{err:?}");
    f.clock.advance(Duration::from_secs(61));
    let code = code_now(&f, &secret_b32);
    f.users
        .disable_second_factor(&actor, &secret(PW), &secret(&code))
        .await
        .unwrap();

    // Confirming an enrolment: a stolen session cannot try codes without end.
    let setup = f
        .users
        .start_totp_enrolment(&actor, &secret(PW))
        .await
        .unwrap();
    for _ in 0..5 {
        let err = f
            .users
            .confirm_totp_enrolment(&actor, &secret("000000"))
            .await;
        assert!(matches!(err, Err(UserError::InvalidCode)), "{err:?}");
    }
    let code = code_now(&f, setup.secret.expose_secret());
    let err = f.users.confirm_totp_enrolment(&actor, &secret(&code)).await;
    assert!(matches!(err, Err(UserError::Throttled { .. })), "{err:?}");
}

#[tokio::test]
async fn account_changes_end_pending_challenges_and_enrolment_ends_other_sessions() {
    let (f, actor, secret_b32, _) = enrolled("ada").await;
    // Enrolment from the profile ended every other session.
    let other = f.login("ada", PW).await.unwrap_err();
    assert!(matches!(other, AuthError::SecondFactorRequired));
    let challenge = challenge(&f, "ada").await;
    f.clock.advance(Duration::from_secs(1));
    // The password changes (on another device, or by a reset) after the password step.
    f.users
        .change_password(
            &actor,
            crate::users::ChangePassword {
                current_password: secret(PW),
                new_password: secret("a brand new passphrase"),
            },
        )
        .await
        .unwrap();
    let code = code_now(&f, &secret_b32);
    let err = f
        .auth
        .complete_sign_in(step(&challenge, &code), ClientInfo::default())
        .await;
    assert!(matches!(err, Err(AuthError::ChallengeExpired)), "{err:?}");
}

#[tokio::test]
async fn enrolling_ends_the_other_sessions() {
    let f = Fixture::in_memory();
    f.register("ada").await;
    let first = f.login("ada", PW).await.unwrap();
    let actor = f.actor("ada").await;
    f.enrol(&actor).await;
    assert!(
        matches!(
            f.auth
                .authenticate(first.access_token.expose_secret())
                .await,
            Err(AuthError::Unauthenticated)
        ),
        "a session from before the factor ends"
    );
    assert!(
        f.users.second_factor(&actor).await.is_ok(),
        "this one stays"
    );
    let sessions = f.users.sessions(&actor).await.unwrap();
    assert_eq!(sessions.len(), 1);
}
