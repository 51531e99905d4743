//! Second factors through the JSON API, over a real socket and a real SQLite file: the tests
//! play the authenticator app with `user_core::factor::totp_code` on the secret the API gave,
//! at the time of the app's fixed clock.

use std::time::Duration;

use axum::http::{Method, StatusCode, header};
use serde_json::{Value, json};
use user_core::auth::AuthPolicy;
use user_core::error::{CHALLENGE_EXPIRED, INVALID_CODE};
use user_core::factor::{SecondFactorPolicy, totp_code};
use user_core::ports::Clock as _;
use user_http::{HttpConfig, Templates};

use crate::account::Api;
use crate::{PW, Reply, TestApp};

const MISSING: &str = "00000000-0000-7000-8000-000000000000";
/// One TOTP step: the next code of the app.
const STEP: Duration = Duration::from_secs(30);

/// The server, its clock, and a client on a real socket.
struct Harness {
    app: TestApp,
    api: Api,
}

impl Harness {
    async fn new() -> Self {
        Self::with_policy(AuthPolicy::default()).await
    }

    async fn with_policy(policy: AuthPolicy) -> Self {
        let app = TestApp::with_policy(HttpConfig::default(), Templates::default(), policy).await;
        let api = Api::serve(&app).await;
        Self { app, api }
    }

    /// The code the app shows now for `secret`.
    fn code(&self, secret: &str) -> String {
        totp_code(secret, self.app.clock.now())
    }

    /// A six-digit code that is not the right one now (nor one step either side).
    fn wrong_code(&self, secret: &str) -> String {
        let now = self.app.clock.now();
        let near: Vec<String> = [-30, 0, 30]
            .iter()
            .map(|s| totp_code(secret, now + time::Duration::seconds(*s)))
            .collect();
        (0..)
            .map(|n: u32| format!("{:06}", n * 7919 % 1_000_000))
            .find(|c| !near.contains(c))
            .unwrap()
    }

    /// The next step of the app's clock: a fresh code.
    fn next_step(&self) {
        self.app.clock.advance(STEP);
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.api.call(Method::GET, path, None, token).await
    }

    async fn post(&self, path: &str, body: Value, token: Option<&str>) -> Reply {
        self.api.call(Method::POST, path, Some(body), token).await
    }

    async fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        self.api.call(Method::DELETE, path, None, token).await
    }

    /// The password step, with a device token if given.
    async fn login(&self, name: &str, device: Option<&str>) -> Reply {
        let body = json!({ "identifier": name, "password": PW, "device_token": device });
        self.post("/auth/login", body, None).await
    }

    /// The password step of an account with a factor: the challenge.
    async fn challenge(&self, name: &str) -> String {
        let r = self.login(name, None).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        assert_eq!(r.json()["step"], "code");
        r.json()["challenge"].as_str().unwrap().to_owned()
    }

    /// The second step.
    async fn second_step(&self, challenge: &str, code: &str) -> Reply {
        let body = json!({ "challenge": challenge, "code": code });
        self.post("/auth/login/second-factor", body, None).await
    }

    /// Registers `name` and signs them in (one step: no factor yet); the access token.
    async fn user(&self, name: &str) -> String {
        self.app.register(name).await;
        self.app.token(name).await
    }

    /// Enrols an authenticator app through the profile routes: its secret and the recovery
    /// codes. The clock then moves to the next step, so the code used here is not reused.
    async fn enrol(&self, token: &str) -> (String, Vec<String>) {
        let r = self
            .post(
                "/me/second-factor/totp",
                json!({ "password": PW }),
                Some(token),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let secret = r.json()["secret"].as_str().unwrap().to_owned();
        let r = self
            .post(
                "/me/second-factor/totp/confirm",
                json!({ "code": self.code(&secret) }),
                Some(token),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        self.next_step();
        (secret, codes(&r))
    }

    /// A full two-step sign-in of `name`, whose app has `secret`: the token JSON.
    async fn sign_in(&self, name: &str, secret: &str) -> Value {
        let challenge = self.challenge(name).await;
        let r = self.second_step(&challenge, &self.code(secret)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        self.next_step();
        r.json()
    }

    async fn status(&self, token: &str) -> Value {
        let r = self.get("/me/second-factor", Some(token)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.json()
    }
}

fn codes(r: &Reply) -> Vec<String> {
    r.json()["recovery_codes"]
        .as_array()
        .unwrap_or_else(|| panic!("no recovery codes: {}", r.text))
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect()
}

fn access(tokens: &Value) -> String {
    tokens["access_token"].as_str().unwrap().to_owned()
}

/// 401 with `code` and the header that says how to authenticate.
fn assert_401(r: &Reply, code: &str) {
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert_eq!(r.code(), code, "{}", r.text);
    assert!(r.headers.contains_key(header::WWW_AUTHENTICATE));
}

fn assert_not_cached(r: &Reply) {
    assert_eq!(r.headers[header::CACHE_CONTROL], "no-store", "{}", r.text);
}

/// The field problems of an error body, as (field, code).
fn fields(r: &Reply) -> Vec<(String, String)> {
    r.json()["fields"]
        .as_array()
        .map(|f| {
            f.iter()
                .map(|f| {
                    let s = |k: &str| f[k].as_str().unwrap().to_owned();
                    (s("field"), s("code"))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn enrolled_through_the_profile_a_sign_in_takes_two_steps() {
    let h = Harness::new().await;
    let token = h.user("alice").await;
    let status = h.status(&token).await;
    assert_eq!(
        status,
        json!({"enabled": false, "enabled_at": null, "pending": false, "recovery_codes_left": 0, "required": false})
    );

    // The secret is shown once, never cached, with what the app needs.
    let r = h
        .post(
            "/me/second-factor/totp",
            json!({ "password": PW }),
            Some(&token),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_not_cached(&r);
    let setup = r.json();
    let secret = setup["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 32, "160 bits of base32: {secret}");
    let uri = setup["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    assert_eq!(setup["issuer"], "user-management");
    assert_eq!(setup["account"], "alice");
    assert_eq!(h.status(&token).await["pending"], true);
    // Until it is confirmed, sign-ins take one step.
    let before = h.login("alice", None).await;
    assert_eq!(before.status, StatusCode::OK, "{}", before.text);
    let before = before.json();
    assert_eq!(h.api.me(&access(&before)).await.status, StatusCode::OK);

    let confirm = |code: String| json!({ "code": code });
    let r = h
        .post(
            "/me/second-factor/totp/confirm",
            confirm(h.wrong_code(&secret)),
            Some(&token),
        )
        .await;
    assert_401(&r, "invalid_credentials");
    assert_eq!(r.json()["message"], INVALID_CODE);
    let r = h
        .post(
            "/me/second-factor/totp/confirm",
            confirm(h.code(&secret)),
            Some(&token),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_not_cached(&r);
    let recovery = codes(&r);
    assert_eq!(recovery.len(), 10);
    // Every other session of the account ended: its holder now needs a code too. The
    // session that enrolled goes on.
    assert_401(&h.api.me(&access(&before)).await, "unauthenticated");
    let r = h
        .post(
            "/auth/refresh",
            json!({ "refresh_token": before["refresh_token"] }),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    let status = h.status(&token).await;
    assert_eq!(status["enabled"], true);
    assert_eq!(status["pending"], false);
    assert_eq!(status["recovery_codes_left"], 10);
    assert_eq!(status["enabled_at"], "2026-01-01T00:00:00Z");
    // The code that confirmed the enrolment is spent.
    let confirming_code = h.code(&secret);
    h.next_step();

    // The password step answers 202 with a challenge, and no token.
    let r = h.login("alice", None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_not_cached(&r);
    let body = r.json();
    assert_eq!(body["step"], "code");
    assert_eq!(body["expires_in"], 300);
    assert!(body.get("access_token").is_none(), "{body}");
    let challenge = body["challenge"].as_str().unwrap().to_owned();

    // A wrong code leaves the challenge usable; the right one signs in.
    let r = h.second_step(&challenge, &h.wrong_code(&secret)).await;
    assert_401(&r, "invalid_credentials");
    assert_eq!(r.json()["message"], "the code is not valid");
    let r = h.second_step(&challenge, &confirming_code).await;
    assert_401(&r, "invalid_credentials");
    let code = h.code(&secret);
    let r = h.second_step(&challenge, &code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_not_cached(&r);
    let tokens = r.json();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["user"]["username"], "alice");
    assert!(tokens["device_token"].is_string());
    let me = h.api.me(&access(&tokens)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json()["username"], "alice");
    // The refresh token works as after any sign-in.
    let r = h
        .post(
            "/auth/refresh",
            json!({ "refresh_token": tokens["refresh_token"] }),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // The challenge is spent, and the code too: replayed at a new challenge, it is refused.
    let r = h.second_step(&challenge, &h.code(&secret)).await;
    assert_401(&r, "unauthenticated");
    let again = h.challenge("alice").await;
    let r = h.second_step(&again, &code).await;
    assert_401(&r, "invalid_credentials");
    h.next_step();
    let r = h.second_step(&again, &h.code(&secret)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // A one-step client meets the second step too: nobody signs in with the password alone.
    let r = h.login("alice", None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_recovery_code_signs_in_once() {
    let h = Harness::new().await;
    let token = h.user("alice").await;
    let (_, recovery) = h.enrol(&token).await;

    let challenge = h.challenge("alice").await;
    let r = h.second_step(&challenge, &recovery[0]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(h.status(&token).await["recovery_codes_left"], 9);

    let challenge = h.challenge("alice").await;
    let r = h.second_step(&challenge, &recovery[0]).await;
    assert_401(&r, "invalid_credentials");
    // Case, spaces and dashes do not matter.
    let typed = recovery[1].to_uppercase().replace('-', " ");
    let r = h.second_step(&challenge, &typed).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(h.status(&token).await["recovery_codes_left"], 8);
}

#[tokio::test]
async fn expired_unknown_and_spent_challenges_are_refused() {
    let h = Harness::new().await;
    let token = h.user("alice").await;
    let (secret, _) = h.enrol(&token).await;

    let challenge = h.challenge("alice").await;
    h.app.clock.advance(Duration::from_secs(301));
    let r = h.second_step(&challenge, &h.code(&secret)).await;
    assert_401(&r, "unauthenticated");
    assert_eq!(r.json()["message"], CHALLENGE_EXPIRED);

    for unknown in ["nope", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] {
        let r = h.second_step(unknown, &h.code(&secret)).await;
        assert_401(&r, "unauthenticated");
        let r = h
            .post(
                "/auth/login/enrolment",
                json!({ "challenge": unknown }),
                None,
            )
            .await;
        assert_401(&r, "unauthenticated");
    }

    // A change to the account after the password step (here the password, from a session)
    // ends the challenge: the right code no longer signs in with it.
    let challenge = h.challenge("alice").await;
    h.app.clock.advance(Duration::from_secs(1));
    let change = json!({ "current_password": PW, "new_password": "another long passphrase" });
    let r = h
        .api
        .call(Method::PUT, "/me/password", Some(change), Some(&token))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = h.second_step(&challenge, &h.code(&secret)).await;
    assert_401(&r, "unauthenticated");
    assert_eq!(r.json()["message"], CHALLENGE_EXPIRED);
    let change = json!({ "current_password": "another long passphrase", "new_password": PW });
    let r = h
        .api
        .call(Method::PUT, "/me/password", Some(change), Some(&token))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);

    // A challenge for a code does not start an enrolment.
    let challenge = h.challenge("alice").await;
    let r = h
        .post(
            "/auth/login/enrolment",
            json!({ "challenge": challenge }),
            None,
        )
        .await;
    assert_401(&r, "unauthenticated");
    let r = h.second_step(&challenge, &h.code(&secret)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn wrong_codes_lock_the_account_after_the_threshold() {
    let h = Harness::new().await;
    let token = h.user("alice").await;
    let (secret, recovery) = h.enrol(&token).await;
    let challenge = h.challenge("alice").await;
    let threshold = AuthPolicy::default().lockout.threshold;
    for _ in 0..threshold {
        let r = h.second_step(&challenge, &h.wrong_code(&secret)).await;
        assert_401(&r, "invalid_credentials");
    }
    // Locked: even the right code, or a recovery code, is not checked now.
    for code in [h.code(&secret), recovery[0].clone()] {
        let r = h.second_step(&challenge, &code).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
        assert_eq!(r.code(), "throttled");
        assert!(r.headers.contains_key(header::RETRY_AFTER));
    }
    // And the password step is locked too: a new challenge does not reset the count.
    let r = h.login("alice", None).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);

    // Once the lock has passed, the right code signs in and clears the count.
    h.app.clock.advance(Duration::from_secs(61));
    let r = h.second_step(&challenge, &h.code(&secret)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    h.next_step();
    h.sign_in("alice", &secret).await;
}

/// A password reset does not lift the lock wrong codes put on an account with a factor:
/// control of the mailbox (with the password or not) buys no fresh guesses at the code.
#[tokio::test]
async fn a_reset_leaves_the_lock_of_wrong_codes_in_place() {
    let h = Harness::new().await;
    let token = h.user("alice").await;
    let (secret, _) = h.enrol(&token).await;
    let challenge = h.challenge("alice").await;
    for _ in 0..AuthPolicy::default().lockout.threshold {
        let r = h.second_step(&challenge, &h.wrong_code(&secret)).await;
        assert_401(&r, "invalid_credentials");
    }
    assert_eq!(
        h.login("alice", None).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let r = h.api.request_reset("alice@example.com").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let link = h
        .app
        .link_token(user_mail::RESET_PASSWORD_PATH, "alice@example.com")
        .await;
    let new_password = "a brand new passphrase";
    let r = h.api.confirm(&link, new_password).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let body = json!({ "identifier": "alice", "password": new_password });
    let r = h.post("/auth/login", body, None).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert!(r.headers.contains_key(header::RETRY_AFTER));
    // The lock passes with its time, as any other.
    h.app.clock.advance(Duration::from_secs(61));
    let body = json!({ "identifier": "alice", "password": new_password });
    let r = h.post("/auth/login", body, None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
}

#[tokio::test]
async fn a_trusted_device_skips_the_second_step() {
    let h = Harness::new().await;
    let token = h.user("alice").await;
    let (secret, _) = h.enrol(&token).await;

    // Signed in without trust: the device token alone does not skip the second step.
    let tokens = h.sign_in("alice", &secret).await;
    let untrusted = tokens["device_token"].as_str().unwrap().to_owned();
    let r = h.login("alice", Some(&untrusted)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);

    // With trust_device, and the device token sent back at the password step, the same
    // device token comes back renewed and trusted.
    let challenge = r.json()["challenge"].as_str().unwrap().to_owned();
    let body = json!({
        "challenge": challenge,
        "code": h.code(&secret),
        "device_token": untrusted,
        "trust_device": true,
    });
    let r = h.post("/auth/login/second-factor", body, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let trusted = r.json()["device_token"].as_str().unwrap().to_owned();
    assert_eq!(
        trusted, untrusted,
        "the device token is renewed, not replaced"
    );
    h.next_step();

    let r = h.login("alice", Some(&trusted)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["device_token"], trusted.as_str());
    assert_eq!(h.api.me(&access(&r.json())).await.status, StatusCode::OK);
    // Another client (no device token, or another one) still meets the second step.
    assert_eq!(h.login("alice", None).await.status, StatusCode::ACCEPTED);
    assert_eq!(
        h.login("alice", Some("forged")).await.status,
        StatusCode::ACCEPTED
    );
    // The trust lasts 30 days.
    h.app
        .clock
        .advance(SecondFactorPolicy::default().trusted_device_ttl);
    let r = h.login("alice", Some(&trusted)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
}

fn admins_must_enrol() -> AuthPolicy {
    AuthPolicy {
        second_factor: SecondFactorPolicy {
            required_for_admins: true,
            ..SecondFactorPolicy::default()
        },
        ..AuthPolicy::default()
    }
}

#[tokio::test]
async fn an_admin_required_to_have_a_factor_enrols_at_sign_in() {
    let h = Harness::with_policy(admins_must_enrol()).await;
    h.app.create_admin("root").await;
    // Users are not required to.
    h.app.register("bob").await;
    assert_eq!(h.login("bob", None).await.status, StatusCode::OK);

    let r = h.login("root", None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.json()["step"], "enrolment");
    let challenge = r.json()["challenge"].as_str().unwrap().to_owned();
    // Not a challenge for a code, and no enrolment started yet.
    let r = h.second_step(&challenge, "123456").await;
    assert_401(&r, "unauthenticated");
    let confirm = |code: &str| json!({ "challenge": challenge, "code": code });
    let r = h
        .post("/auth/login/enrolment/confirm", confirm("123456"), None)
        .await;
    assert_401(&r, "unauthenticated");

    let r = h
        .post(
            "/auth/login/enrolment",
            json!({ "challenge": challenge }),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_not_cached(&r);
    assert_eq!(r.json()["account"], "root");
    let secret = r.json()["secret"].as_str().unwrap().to_owned();

    let r = h
        .post(
            "/auth/login/enrolment/confirm",
            confirm(&h.wrong_code(&secret)),
            None,
        )
        .await;
    assert_401(&r, "invalid_credentials");
    let r = h
        .post(
            "/auth/login/enrolment/confirm",
            confirm(&h.code(&secret)),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_not_cached(&r);
    let enrolled = r.json();
    assert_eq!(codes(&r).len(), 10);
    assert_eq!(enrolled["token_type"], "Bearer");
    assert_eq!(enrolled["user"]["username"], "root");
    assert!(enrolled["device_token"].is_string());
    let token = access(&enrolled);
    let status = h.status(&token).await;
    assert_eq!(status["enabled"], true);
    assert_eq!(status["required"], true);
    assert_eq!(status["recovery_codes_left"], 10);
    // The challenge is spent.
    let r = h
        .post(
            "/auth/login/enrolment/confirm",
            confirm(&h.code(&secret)),
            None,
        )
        .await;
    assert_401(&r, "unauthenticated");
    h.next_step();

    // From now on, a code.
    h.sign_in("root", &secret).await;
    // One of the codes of the enrolment works too.
    let challenge = h.challenge("root").await;
    let r = h
        .second_step(&challenge, enrolled["recovery_codes"][0].as_str().unwrap())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn recovery_codes_are_replaced_and_the_factor_turned_off_with_password_and_code() {
    let h = Harness::new().await;
    let token = h.user("alice").await;
    // Nothing to replace or turn off yet, and nothing to confirm.
    let r = h
        .post(
            "/me/second-factor/recovery-codes",
            json!({ "password": PW, "code": "123456" }),
            Some(&token),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.code(), "failed_precondition");
    let r = h
        .post(
            "/me/second-factor/totp/confirm",
            json!({ "code": "123456" }),
            Some(&token),
        )
        .await;
    assert_eq!(r.code(), "failed_precondition", "{}", r.text);

    let (secret, old) = h.enrol(&token).await;
    let r = h
        .post(
            "/me/second-factor/totp",
            json!({ "password": PW }),
            Some(&token),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "already on: {}", r.text);
    assert_eq!(r.code(), "failed_precondition");

    let regenerate = |password: &str, code: &str| json!({ "password": password, "code": code });
    let r = h
        .post(
            "/me/second-factor/recovery-codes",
            regenerate("wrong password", &h.code(&secret)),
            Some(&token),
        )
        .await;
    assert_401(&r, "invalid_credentials");
    // The password alone (a stolen session that knows it) mints no codes.
    let r = h
        .post(
            "/me/second-factor/recovery-codes",
            json!({ "password": PW }),
            Some(&token),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let r = h
        .post(
            "/me/second-factor/recovery-codes",
            regenerate(PW, &h.wrong_code(&secret)),
            Some(&token),
        )
        .await;
    assert_401(&r, "invalid_credentials");
    assert_eq!(r.json()["message"], INVALID_CODE);
    assert_eq!(h.status(&token).await["recovery_codes_left"], 10);
    let r = h
        .post(
            "/me/second-factor/recovery-codes",
            regenerate(PW, &h.code(&secret)),
            Some(&token),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_not_cached(&r);
    let new = codes(&r);
    assert_eq!(new.len(), 10);
    assert!(new.iter().all(|c| !old.contains(c)));
    // The owner is told, once.
    let told: Vec<_> = h
        .app
        .subjects()
        .await
        .into_iter()
        .filter(|(_, subject)| subject.contains("New recovery codes"))
        .collect();
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0].0, "alice@example.com");
    // The code from the app that did it is spent.
    let r = h
        .post(
            "/me/second-factor/recovery-codes",
            regenerate(PW, &h.code(&secret)),
            Some(&token),
        )
        .await;
    assert_401(&r, "invalid_credentials");
    h.next_step();
    let challenge = h.challenge("alice").await;
    assert_401(
        &h.second_step(&challenge, &old[0]).await,
        "invalid_credentials",
    );
    let r = h.second_step(&challenge, &new[0]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let disable = |password: &str, code: &str| json!({ "password": password, "code": code });
    let r = h
        .post(
            "/me/second-factor/disable",
            disable("wrong password", &h.code(&secret)),
            Some(&token),
        )
        .await;
    assert_401(&r, "invalid_credentials");
    let r = h
        .post(
            "/me/second-factor/disable",
            disable(PW, &h.wrong_code(&secret)),
            Some(&token),
        )
        .await;
    assert_401(&r, "invalid_credentials");
    assert_eq!(r.json()["message"], INVALID_CODE);
    assert_eq!(h.status(&token).await["enabled"], true);
    let r = h
        .post(
            "/me/second-factor/disable",
            disable(PW, &h.code(&secret)),
            Some(&token),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert!(r.text.is_empty());
    let status = h.status(&token).await;
    assert_eq!(status["enabled"], false);
    assert_eq!(status["recovery_codes_left"], 0);
    assert_eq!(h.login("alice", None).await.status, StatusCode::OK);
    let r = h
        .post(
            "/me/second-factor/disable",
            disable(PW, &h.code(&secret)),
            Some(&token),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.code(), "failed_precondition");
}

#[tokio::test]
async fn a_recovery_code_turns_the_factor_off_once() {
    let h = Harness::new().await;
    let token = h.user("alice").await;
    let (_, recovery) = h.enrol(&token).await;
    let r = h
        .post(
            "/me/second-factor/disable",
            json!({ "password": PW, "code": recovery[3] }),
            Some(&token),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(h.status(&token).await["enabled"], false);
}

#[tokio::test]
async fn an_admin_sees_and_resets_a_users_factor() {
    let h = Harness::new().await;
    h.app.create_admin("root").await;
    let admin = h.app.token("root").await;
    let alice = h.app.register("alice").await;
    let id = alice["id"].as_str().unwrap().to_owned();
    let token = h.app.token("alice").await;
    let path = format!("/admin/users/{id}/second-factor");

    let r = h.get(&path, Some(&admin)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["enabled"], false);
    let r = h.delete(&path, Some(&admin)).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.code(), "failed_precondition");

    h.enrol(&token).await;
    let r = h.get(&path, Some(&admin)).await;
    assert_eq!(r.json()["enabled"], true);
    assert_eq!(r.json()["recovery_codes_left"], 10);
    assert!(r.json().get("secret").is_none());

    // Not for users, not for unknown users or ids.
    for r in [
        h.get(&path, Some(&token)).await,
        h.delete(&path, Some(&token)).await,
    ] {
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        assert_eq!(r.code(), "forbidden");
    }
    let unknown = format!("/admin/users/{MISSING}/second-factor");
    for r in [
        h.get(&unknown, Some(&admin)).await,
        h.delete(&unknown, Some(&admin)).await,
    ] {
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    }
    let r = h.get("/admin/users/nope/second-factor", Some(&admin)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);

    let r = h.delete(&path, Some(&admin)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(h.get(&path, Some(&admin)).await.json()["enabled"], false);
    assert_eq!(h.login("alice", None).await.status, StatusCode::OK);
    let r = h.delete(&path, Some(&admin)).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
}

/// The authenticated routes of the second factor, with a body each accepts.
fn signed_in_routes() -> Vec<(Method, String, Option<Value>)> {
    let admin = format!("/admin/users/{MISSING}/second-factor");
    vec![
        (Method::GET, "/me/second-factor".to_owned(), None),
        (
            Method::POST,
            "/me/second-factor/totp".to_owned(),
            Some(json!({ "password": PW })),
        ),
        (
            Method::POST,
            "/me/second-factor/totp/confirm".to_owned(),
            Some(json!({ "code": "123456" })),
        ),
        (
            Method::POST,
            "/me/second-factor/recovery-codes".to_owned(),
            Some(json!({ "password": PW, "code": "123456" })),
        ),
        (
            Method::POST,
            "/me/second-factor/disable".to_owned(),
            Some(json!({ "password": PW, "code": "123456" })),
        ),
        (Method::GET, admin.clone(), None),
        (Method::DELETE, admin, None),
    ]
}

#[tokio::test]
async fn every_route_needs_a_token_and_a_challenge_is_not_one() {
    let h = Harness::new().await;
    let token = h.user("alice").await;
    h.enrol(&token).await;
    let challenge = h.challenge("alice").await;
    for (method, path, body) in signed_in_routes() {
        for bearer in [None, Some("not-a-token"), Some(challenge.as_str())] {
            let r = h
                .api
                .call(method.clone(), &path, body.clone(), bearer)
                .await;
            assert_401(&r, "unauthenticated");
        }
    }
    assert_401(&h.api.me(&challenge).await, "unauthenticated");
    // Nor is the API reachable with the session cookie of the pages: bearer tokens only.
    assert_401(&h.get("/me/second-factor", None).await, "unauthenticated");
}

#[tokio::test]
async fn bodies_are_checked_at_the_edge_and_every_missing_field_is_reported() {
    let h = Harness::new().await;
    let token = h.user("alice").await;
    let field = |f: &str| (f.to_owned(), "required".to_owned());
    let cases = [
        (
            "/auth/login/second-factor",
            json!({}),
            vec!["challenge", "code"],
        ),
        (
            "/auth/login/second-factor",
            json!({ "challenge": null, "code": "" }),
            vec!["challenge", "code"],
        ),
        (
            "/auth/login/second-factor",
            json!({ "challenge": "x", "trust_device": null }),
            vec!["code"],
        ),
        ("/auth/login/enrolment", json!({}), vec!["challenge"]),
        (
            "/auth/login/enrolment",
            json!({ "challenge": "" }),
            vec!["challenge"],
        ),
        (
            "/auth/login/enrolment/confirm",
            json!({ "device_token": null }),
            vec!["challenge", "code"],
        ),
        ("/me/second-factor/totp/confirm", json!({}), vec!["code"]),
        (
            "/me/second-factor/disable",
            json!({}),
            vec!["password", "code"],
        ),
        (
            "/me/second-factor/disable",
            json!({ "password": PW }),
            vec!["code"],
        ),
        (
            "/me/second-factor/recovery-codes",
            json!({}),
            vec!["password", "code"],
        ),
        (
            "/me/second-factor/recovery-codes",
            json!({ "password": PW, "code": "" }),
            vec!["code"],
        ),
        (
            "/me/second-factor/recovery-codes",
            json!({ "code": "123456" }),
            vec!["password"],
        ),
    ];
    for (path, body, missing) in cases {
        let r = h.post(path, body.clone(), Some(&token)).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path} {body}: {}",
            r.text
        );
        assert_eq!(r.code(), "validation_failed");
        let expected: Vec<_> = missing.into_iter().map(field).collect();
        assert_eq!(fields(&r), expected, "{path} {body}");
    }
    // The shape is the extractor's: unknown fields, wrong types, other media, too large.
    for (path, body) in [
        (
            "/auth/login/second-factor",
            json!({ "challenge": "x", "code": "1", "extra": 1 }),
        ),
        (
            "/auth/login/second-factor",
            json!({ "challenge": "x", "code": 123456 }),
        ),
        (
            "/auth/login/second-factor",
            json!({ "challenge": "x", "code": "1", "trust_device": "yes" }),
        ),
        ("/me/second-factor/totp", json!({})),
    ] {
        let r = h.post(path, body.clone(), Some(&token)).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path} {body}: {}",
            r.text
        );
    }
    let big = json!({ "challenge": "x".repeat(70 * 1024), "code": "123456" });
    let r = h.post("/auth/login/second-factor", big, None).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text);
}

/// Wrong codes on the profile routes spend guesses as at the second step of a sign-in: turning
/// the factor off and new recovery codes count them on the account's budget (the right
/// password checked first does not refill it), confirming an enrolment on the session's. A
/// holder of a session (and, for the first two, the password) cannot try every code.
#[tokio::test]
async fn wrong_codes_on_the_profile_routes_are_throttled() {
    let h = Harness::new().await;
    let threshold = AuthPolicy::default().lockout.threshold;
    let token = h.user("alice").await;
    let (secret, _) = h.enrol(&token).await;
    let mut statuses = Vec::new();
    for _ in 0..=threshold {
        let body = json!({ "password": PW, "code": h.wrong_code(&secret) });
        let r = h
            .post("/me/second-factor/disable", body, Some(&token))
            .await;
        statuses.push(r.status);
    }
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "disable: {statuses:?}"
    );
    // One budget for the account: new recovery codes are locked too, even with the right code.
    let body = json!({ "password": PW, "code": h.code(&secret) });
    let r = h
        .post("/me/second-factor/recovery-codes", body, Some(&token))
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);

    let carol = h.user("carol").await;
    let (secret, recovery) = h.enrol(&carol).await;
    for _ in 0..threshold {
        let body = json!({ "password": PW, "code": h.wrong_code(&secret) });
        let r = h
            .post("/me/second-factor/recovery-codes", body, Some(&carol))
            .await;
        assert_401(&r, "invalid_credentials");
        assert_eq!(r.json()["message"], INVALID_CODE);
    }
    // Locked: neither the right code nor a recovery code is checked now.
    for code in [h.code(&secret), recovery[0].clone()] {
        let body = json!({ "password": PW, "code": code });
        let r = h
            .post("/me/second-factor/recovery-codes", body, Some(&carol))
            .await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
        assert_eq!(r.code(), "throttled");
        assert!(r.headers.contains_key(header::RETRY_AFTER));
    }
    assert_eq!(h.status(&carol).await["recovery_codes_left"], 10);
    // Nor is the sign-in's second step a way round: the same budget.
    assert_eq!(
        h.login("carol", None).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Once the lock has passed, the right code works.
    h.app.clock.advance(Duration::from_secs(61));
    let body = json!({ "password": PW, "code": recovery[0] });
    let r = h
        .post("/me/second-factor/recovery-codes", body, Some(&carol))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let bob = h.user("bob").await;
    let r = h
        .post(
            "/me/second-factor/totp",
            json!({ "password": PW }),
            Some(&bob),
        )
        .await;
    let secret = r.json()["secret"].as_str().unwrap().to_owned();
    let mut statuses = Vec::new();
    for _ in 0..=threshold {
        let body = json!({ "code": h.wrong_code(&secret) });
        let r = h
            .post("/me/second-factor/totp/confirm", body, Some(&bob))
            .await;
        statuses.push(r.status);
    }
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "confirm: {statuses:?}"
    );
}
