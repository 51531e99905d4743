use std::sync::Arc;

use mockall::predicate::always;
use secrecy::ExposeSecret;

use super::*;
use crate::auth::policy::LockoutPolicy;
use crate::domain::{AuditOutcome, AuditQuery, LoginFailures, SessionKind};
use crate::error::{HashError, UserError};
use crate::ports::{Clock, PasswordHasher as _};
use crate::testing::{
    FastHasher, FixedClock, Fixture, MockLoginFailureStore, MockPasswordHasher, MockSessionStore,
    MockUserRepository, in_memory,
};
use crate::users::{ChangePassword, UserService};

const PW: &str = Fixture::PASSWORD;

fn form(username: &str, email: &str, password: &str) -> RegisterUser {
    RegisterUser {
        username: username.into(),
        email: email.into(),
        password: SecretString::from(password),
        display_name: None,
    }
}

fn creds(identifier: &str, password: &str) -> Credentials {
    Credentials::new(identifier, SecretString::from(password))
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[tokio::test]
async fn register_then_login_by_username_or_email() {
    let f = Fixture::in_memory();
    let user = f.register("alice").await;
    assert_eq!((user.role, user.status), (Role::User, UserStatus::Active));
    for id in ["alice", "ALICE", " alice@Example.com "] {
        let tokens = f.login(id, PW).await.unwrap();
        assert_eq!(tokens.user.id, user.id);
        assert_eq!(tokens.expires_in, secs(900));
        assert_eq!(
            tokens.refresh_token.expose_secret().len(),
            43,
            "256 bits, base64url"
        );
        let actor = f
            .auth
            .authenticate(tokens.access_token.expose_secret())
            .await
            .unwrap();
        assert_eq!(actor.user_id, user.id);
        assert_eq!(actor.session_id, tokens.session_id);
        assert_eq!(actor.role, Role::User);
    }
}

#[tokio::test]
async fn register_reports_every_field_problem_at_once() {
    let f = Fixture::in_memory();
    let err = f
        .auth
        .register(form("_x", "nope", "short"), &ClientInfo::default())
        .await
        .unwrap_err();
    let AuthError::Invalid(errors) = err else {
        panic!("{err:?}")
    };
    let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
    assert_eq!(fields, ["username", "email", "password"]);

    let err = f
        .auth
        .register(
            form("bobby", "bobby@example.com", "bobby-is-my-password"),
            &ClientInfo::default(),
        )
        .await
        .unwrap_err();
    let AuthError::Invalid(errors) = err else {
        panic!("{err:?}")
    };
    assert_eq!(
        errors.iter().map(|e| e.code).collect::<Vec<_>>(),
        ["contains_username", "contains_email"]
    );
}

#[tokio::test]
async fn register_conflicts_name_the_field() {
    let f = Fixture::in_memory();
    f.register("alice").await;
    let taken_name = f
        .auth
        .register(
            form("Alice", "other@example.com", PW),
            &ClientInfo::default(),
        )
        .await;
    assert!(matches!(
        taken_name,
        Err(AuthError::Conflict(crate::error::UniqueField::Username))
    ));
    let taken_email = f
        .auth
        .register(
            form("alice2", "ALICE@example.com", PW),
            &ClientInfo::default(),
        )
        .await;
    assert!(matches!(
        taken_email,
        Err(AuthError::Conflict(crate::error::UniqueField::Email))
    ));
}

#[tokio::test]
async fn unknown_user_wrong_password_and_disabled_account_look_the_same() {
    let f = Fixture::in_memory();
    f.register_admin("root").await;
    let bob = f.register("bob").await;
    let admin_actor = f.actor("root").await;
    f.users
        .as_admin(&admin_actor)
        .unwrap()
        .set_status(bob.id, UserStatus::Disabled)
        .await
        .unwrap();
    for (id, pw) in [
        ("nobody", PW),
        ("root", "wrong password!"),
        ("bob", PW),
        ("", ""),
        ("@@", PW),
    ] {
        let err = f.login(id, pw).await.unwrap_err();
        assert!(
            matches!(err, AuthError::InvalidCredentials),
            "{id}: {err:?}"
        );
        assert_eq!(err.to_string(), "invalid username, email or password");
    }
}

#[tokio::test]
async fn an_unknown_user_costs_one_verification_against_a_dummy_hash() {
    let mut hasher = MockPasswordHasher::new();
    let real = FastHasher::new();
    let dummy = real
        .hash(&Password::trusted(SecretString::from("x")))
        .await
        .unwrap();
    let d = dummy.clone();
    hasher
        .expect_hash()
        .times(1)
        .returning(move |_| Ok(d.clone()));
    hasher
        .expect_verify()
        .withf(move |_, h| h == &dummy)
        .times(2)
        .returning(|_, _| Ok(Verification::Mismatch));
    let clock = Arc::new(FixedClock::default());
    let ports = Ports::new(in_memory(), Arc::new(hasher), clock);
    let auth = AuthService::new(
        ports,
        AuthPolicy::default(),
        &SigningKey::generate_ed25519().unwrap(),
        vec![],
    )
    .unwrap();
    // The dummy is made once and verified once per attempt.
    for _ in 0..2 {
        let r = auth.login(creds("ghost", PW), ClientInfo::default()).await;
        assert!(matches!(r, Err(AuthError::InvalidCredentials)));
    }
}

#[tokio::test]
async fn a_locked_account_never_reaches_the_hasher() {
    let mut failures = MockLoginFailureStore::new();
    let clock = Arc::new(FixedClock::default());
    let now = clock.now();
    let alice = crate::testing::conformance::user("alice");
    let id = alice.id;
    failures
        .expect_get()
        .with(mockall::predicate::eq(ThrottleKey::account(id)))
        .returning(move |_| {
            Ok(Some(LoginFailures {
                count: 5,
                last_failed_at: now,
            }))
        });
    failures.expect_swap().never();
    let mut users = MockUserRepository::new();
    users.expect_credentials().returning(move |_| {
        Ok((
            alice.clone(),
            crate::domain::PasswordHash::new("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA"),
        ))
    });
    let mut hasher = MockPasswordHasher::new();
    hasher.expect_verify().never();
    hasher.expect_hash().never();
    let ports = Ports {
        users: Arc::new(users),
        login_failures: Arc::new(failures),
        ..Ports::new(in_memory(), Arc::new(hasher), clock.clone())
    };
    let auth = AuthService::new(
        ports,
        AuthPolicy::default(),
        &SigningKey::generate_ed25519().unwrap(),
        vec![],
    )
    .unwrap();
    clock.advance(secs(15));
    let err = auth
        .login(creds("Alice", PW), ClientInfo::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, AuthError::Throttled { retry_after } if retry_after == secs(45)),
        "{err:?}"
    );
}

#[tokio::test]
async fn lockout_grows_resets_on_success_and_spares_other_identifiers() {
    let f = Fixture::in_memory();
    f.register("alice").await;
    for _ in 0..5 {
        assert!(matches!(
            f.login("alice", "nope nope nope").await,
            Err(AuthError::InvalidCredentials)
        ));
    }
    // Locked: even the right password is refused, without saying whether it was right.
    let err = f.login("alice", PW).await.unwrap_err();
    assert!(
        matches!(err, AuthError::Throttled { retry_after } if retry_after == secs(60)),
        "{err:?}"
    );
    // The account has one budget, whichever identifier names it.
    let err = f.login("alice@example.com", PW).await.unwrap_err();
    assert!(matches!(err, AuthError::Throttled { .. }), "{err:?}");

    f.clock.advance(secs(60));
    assert!(matches!(
        f.login("alice", "nope nope nope").await,
        Err(AuthError::InvalidCredentials)
    ));
    let err = f.login("alice", PW).await.unwrap_err();
    assert!(
        matches!(err, AuthError::Throttled { retry_after } if retry_after == secs(120)),
        "doubled: {err:?}"
    );

    f.clock.advance(secs(120));
    assert!(
        f.login("alice", PW).await.is_ok(),
        "the right password after the lock"
    );
    // Success reset the count: four failures do not lock.
    for _ in 0..4 {
        assert!(matches!(
            f.login("alice", "nope nope nope").await,
            Err(AuthError::InvalidCredentials)
        ));
    }
    assert!(f.login("alice", PW).await.is_ok());
}

#[tokio::test]
async fn unknown_identifiers_lock_exactly_like_real_ones() {
    let f = Fixture::in_memory();
    f.register("alice").await;
    let mut retry = Vec::new();
    for id in ["alice", "ghost"] {
        for _ in 0..5 {
            assert!(matches!(
                f.login(id, "nope nope nope").await,
                Err(AuthError::InvalidCredentials)
            ));
        }
        match f.login(id, PW).await {
            Err(AuthError::Throttled { retry_after }) => retry.push(retry_after),
            other => panic!("{id}: {other:?}"),
        }
    }
    assert_eq!(retry, [secs(60), secs(60)]);
}

#[tokio::test]
async fn overload_is_reported_and_not_counted_as_a_failure() {
    let storage = in_memory();
    let failures = Arc::clone(&storage.login_failures);
    let mut hasher = MockPasswordHasher::new();
    hasher
        .expect_hash()
        .returning(|_| Err(HashError::Overloaded));
    hasher
        .expect_verify()
        .returning(|_, _| Err(HashError::Overloaded));
    let ports = Ports::new(storage, Arc::new(hasher), Arc::new(FixedClock::default()));
    let auth = AuthService::new(
        ports,
        AuthPolicy::default(),
        &SigningKey::generate_ed25519().unwrap(),
        vec![],
    )
    .unwrap();
    let r = auth.login(creds("ghost", PW), ClientInfo::default()).await;
    assert!(matches!(r, Err(AuthError::Overloaded)), "{r:?}");
    let counted = failures.get(&ThrottleKey::of("ghost")).await.unwrap();
    assert_eq!(counted.map_or(0, |f| f.count), 0, "given back");
    let r = auth
        .register(
            form("newbie", "newbie@example.com", PW),
            &ClientInfo::default(),
        )
        .await;
    assert!(matches!(r, Err(AuthError::Overloaded)), "{r:?}");
}

#[tokio::test]
async fn access_tokens_expire_by_the_clock_and_refresh_renews_them() {
    let f = Fixture::in_memory();
    f.register("alice").await;
    let tokens = f.login("alice", PW).await.unwrap();
    let access = tokens.access_token.expose_secret().to_owned();
    f.clock.advance(secs(900 + 4));
    assert!(f.auth.authenticate(&access).await.is_ok(), "within leeway");
    f.clock.advance(secs(1));
    assert!(matches!(
        f.auth.authenticate(&access).await,
        Err(AuthError::Unauthenticated)
    ));

    let next = f
        .auth
        .refresh(&tokens.refresh_token, &ClientInfo::default())
        .await
        .unwrap();
    assert_eq!(next.session_id, tokens.session_id);
    assert_ne!(
        next.refresh_token.expose_secret(),
        tokens.refresh_token.expose_secret()
    );
    assert!(
        f.auth
            .authenticate(next.access_token.expose_secret())
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_reused_refresh_token_revokes_the_whole_session() {
    let f = Fixture::in_memory();
    f.register("alice").await;
    let first = f.login("alice", PW).await.unwrap();
    let second = f
        .auth
        .refresh(&first.refresh_token, &ClientInfo::default())
        .await
        .unwrap();
    // An attacker replays the spent token.
    assert!(matches!(
        f.auth
            .refresh(&first.refresh_token, &ClientInfo::default())
            .await,
        Err(AuthError::Unauthenticated)
    ));
    // Now the legitimate holder is out too: the session is revoked.
    assert!(matches!(
        f.auth
            .refresh(&second.refresh_token, &ClientInfo::default())
            .await,
        Err(AuthError::Unauthenticated)
    ));
    let access = second.access_token.expose_secret();
    assert!(matches!(
        f.auth.authenticate(access).await,
        Err(AuthError::Unauthenticated)
    ));
    // Garbage is refused the same way.
    assert!(matches!(
        f.auth
            .refresh(&SecretString::from("garbage"), &ClientInfo::default())
            .await,
        Err(AuthError::Unauthenticated)
    ));
}

#[tokio::test]
async fn reuse_is_decided_by_the_store_and_stops_there() {
    let mut sessions = MockSessionStore::new();
    let sid = SessionId::new();
    sessions
        .expect_rotate_refresh_token()
        .with(
            mockall::predicate::eq(TokenHash::of("spent")),
            always(),
            always(),
            always(),
        )
        .times(1)
        .returning(move |_, _, _, _| Ok(Rotation::Reused(sid)));
    // Read only to name the owner in the audit log.
    let owner = UserId::new();
    sessions
        .expect_get()
        .with(mockall::predicate::eq(sid))
        .times(1)
        .returning(move |id| {
            Ok(Session {
                id,
                user_id: owner,
                kind: SessionKind::Token,
                client: ClientInfo::default(),
                created_at: OffsetDateTime::UNIX_EPOCH,
                last_used_at: OffsetDateTime::UNIX_EPOCH,
                expires_at: OffsetDateTime::UNIX_EPOCH,
                revoked_at: None,
            })
        });
    let mut users = MockUserRepository::new();
    users.expect_get().never();
    let ports = Ports {
        users: Arc::new(users),
        sessions: Arc::new(sessions),
        ..crate::testing::memory_ports(Arc::new(FixedClock::default()))
    };
    let audit = Arc::clone(&ports.audit);
    let auth = AuthService::new(
        ports,
        AuthPolicy::default(),
        &SigningKey::generate_ed25519().unwrap(),
        vec![],
    )
    .unwrap();
    let thief = ClientInfo::new(Some("curl"), Some("198.51.100.9"));
    let r = auth.refresh(&SecretString::from("spent"), &thief).await;
    assert!(matches!(r, Err(AuthError::Unauthenticated)), "{r:?}");
    let events = audit.list(&AuditQuery::default()).await.unwrap().events;
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(
        (event.kind, event.outcome, event.subject, &event.client),
        (
            AuditKind::RefreshReuse,
            AuditOutcome::Failure,
            Some(owner),
            &thief
        )
    );
}

#[tokio::test]
async fn refresh_stops_at_the_session_lifetime_and_for_disabled_users() {
    let f = Fixture::in_memory();
    f.register_admin("root").await;
    let bob = f.register("bob").await;
    let tokens = f.login("bob", PW).await.unwrap();
    f.clock.advance(secs(30 * 24 * 3600));
    assert!(matches!(
        f.auth
            .refresh(&tokens.refresh_token, &ClientInfo::default())
            .await,
        Err(AuthError::Unauthenticated)
    ));

    let tokens = f.login("bob", PW).await.unwrap();
    let root = f.actor("root").await;
    f.users
        .as_admin(&root)
        .unwrap()
        .set_status(bob.id, UserStatus::Disabled)
        .await
        .unwrap();
    assert!(matches!(
        f.auth
            .refresh(&tokens.refresh_token, &ClientInfo::default())
            .await,
        Err(AuthError::Unauthenticated)
    ));
}

#[tokio::test]
async fn logout_and_disable_take_effect_at_once() {
    let f = Fixture::in_memory();
    f.register_admin("root").await;
    let bob = f.register("bob").await;
    let one = f.login("bob", PW).await.unwrap();
    let two = f.login("bob", PW).await.unwrap();
    let a1 = f
        .auth
        .authenticate(one.access_token.expose_secret())
        .await
        .unwrap();
    f.auth.logout(&a1).await.unwrap();
    assert!(matches!(
        f.auth.authenticate(one.access_token.expose_secret()).await,
        Err(AuthError::Unauthenticated)
    ));
    assert!(
        f.auth
            .authenticate(two.access_token.expose_secret())
            .await
            .is_ok(),
        "only that session"
    );
    assert!(matches!(
        f.auth
            .refresh(&one.refresh_token, &ClientInfo::default())
            .await,
        Err(AuthError::Unauthenticated)
    ));

    let root = f.actor("root").await;
    f.users
        .as_admin(&root)
        .unwrap()
        .set_status(bob.id, UserStatus::Disabled)
        .await
        .unwrap();
    assert!(matches!(
        f.auth.authenticate(two.access_token.expose_secret()).await,
        Err(AuthError::Unauthenticated)
    ));
    f.users
        .as_admin(&root)
        .unwrap()
        .set_status(bob.id, UserStatus::Active)
        .await
        .unwrap();
    assert!(
        matches!(
            f.auth.authenticate(two.access_token.expose_secret()).await,
            Err(AuthError::Unauthenticated)
        ),
        "disabling revoked the sessions; re-enabling does not restore them"
    );
    assert!(f.login("bob", PW).await.is_ok());
}

#[tokio::test]
async fn logout_everywhere_ends_every_session() {
    let f = Fixture::in_memory();
    f.register("alice").await;
    let sessions: Vec<_> = [
        f.login("alice", PW).await.unwrap(),
        f.login("alice", PW).await.unwrap(),
    ]
    .into();
    let browser = f
        .auth
        .login_browser(creds("alice", PW), ClientInfo::default())
        .await
        .unwrap();
    let actor = f
        .auth
        .authenticate(sessions[0].access_token.expose_secret())
        .await
        .unwrap();
    assert_eq!(f.auth.logout_everywhere(&actor).await.unwrap(), 3);
    for s in &sessions {
        assert!(matches!(
            f.auth.authenticate(s.access_token.expose_secret()).await,
            Err(AuthError::Unauthenticated)
        ));
    }
    assert!(matches!(
        f.auth
            .authenticate_browser(browser.session_token.expose_secret())
            .await,
        Err(AuthError::Unauthenticated)
    ));
}

#[tokio::test]
async fn browser_sessions_use_opaque_cookies() {
    let f = Fixture::in_memory();
    let alice = f.register("alice").await;
    let login = f
        .auth
        .login_browser(creds("alice", PW), ClientInfo::new(Some("Firefox"), None))
        .await
        .unwrap();
    assert_eq!(login.expires_at, f.clock.now() + time::Duration::hours(12));
    let actor = f
        .auth
        .authenticate_browser(login.session_token.expose_secret())
        .await
        .unwrap();
    assert_eq!(
        (actor.user_id, actor.session_id),
        (alice.id, login.session_id)
    );
    let stored = f.ports.sessions.get(login.session_id).await.unwrap();
    assert_eq!(stored.kind, SessionKind::Browser);
    assert_eq!(stored.client.user_agent.as_deref(), Some("Firefox"));
    // A cookie is not an access token, and a refresh token is not a cookie.
    assert!(matches!(
        f.auth
            .authenticate(login.session_token.expose_secret())
            .await,
        Err(AuthError::Unauthenticated)
    ));
    let tokens = f.login("alice", PW).await.unwrap();
    assert!(matches!(
        f.auth
            .authenticate_browser(tokens.refresh_token.expose_secret())
            .await,
        Err(AuthError::Unauthenticated)
    ));
    f.clock.advance(secs(12 * 3600));
    assert!(
        matches!(
            f.auth
                .authenticate_browser(login.session_token.expose_secret())
                .await,
            Err(AuthError::Unauthenticated)
        ),
        "expired"
    );
}

#[tokio::test]
async fn imported_bcrypt_users_log_in_and_are_upgraded_to_argon2id() {
    let f = Fixture::in_memory();
    let user = f.register("legacy").await;
    let bcrypt_hash = PasswordHash::new(bcrypt::hash("hunter2", 4).unwrap());
    f.ports
        .users
        .update_password_hash(user.id, &bcrypt_hash, f.clock.now())
        .await
        .unwrap();
    // A short, common legacy password still verifies.
    assert!(f.login("legacy", "hunter2").await.is_ok());
    let upgraded = f.ports.users.password_hash(user.id).await.unwrap();
    assert!(
        upgraded.as_str().starts_with("$argon2id$"),
        "upgraded on login"
    );
    assert!(
        f.login("legacy", "hunter2").await.is_ok(),
        "and still works"
    );
    assert!(matches!(
        f.login("legacy", "hunter3").await,
        Err(AuthError::InvalidCredentials)
    ));
}

#[tokio::test]
async fn a_refused_stored_hash_denies_login_without_an_internal_error() {
    let f = Fixture::in_memory();
    let user = f.register("mallory").await;
    let hostile =
        PasswordHash::new("$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo");
    f.ports
        .users
        .update_password_hash(user.id, &hostile, f.clock.now())
        .await
        .unwrap();
    assert!(matches!(
        f.login("mallory", PW).await,
        Err(AuthError::InvalidCredentials)
    ));
}

/// A [`FastHasher`] that counts the verifications it really ran (not refused unread).
#[derive(Default)]
struct CountingHasher {
    inner: FastHasher,
    ran: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl crate::ports::PasswordHasher for CountingHasher {
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError> {
        self.inner.hash(password).await
    }

    async fn verify(
        &self,
        candidate: &SecretString,
        hash: &PasswordHash,
    ) -> Result<Verification, HashError> {
        let verdict = self.inner.verify(candidate, hash).await;
        if verdict.is_ok() {
            self.ran.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        verdict
    }
}

#[tokio::test]
async fn a_refused_stored_hash_costs_one_verification_like_any_login() {
    let hasher = Arc::new(CountingHasher::default());
    let clock = Arc::new(FixedClock::default());
    let ports = Ports::new(in_memory(), hasher.clone(), clock.clone());
    let f = Fixture::with_ports(ports, clock);
    let user = f.register("mallory").await;
    let ran = || hasher.ran.load(std::sync::atomic::Ordering::SeqCst);
    let before = ran();
    assert!(matches!(
        f.login("mallory", "wrong password").await,
        Err(AuthError::InvalidCredentials)
    ));
    assert_eq!(ran() - before, 1, "a wrong password: one verification");
    let broken = PasswordHash::new("$2b$04$not-a-bcrypt-hash");
    f.ports
        .users
        .update_password_hash(user.id, &broken, f.clock.now())
        .await
        .unwrap();
    for _ in 0..2 {
        let before = ran();
        assert!(matches!(
            f.login("mallory", PW).await,
            Err(AuthError::InvalidCredentials)
        ));
        assert_eq!(ran() - before, 1, "the dummy hash is verified instead");
    }
}

#[tokio::test]
async fn the_service_shows_its_policy_and_keys_never_a_secret() {
    let policy = AuthPolicy {
        issuer: "accounts.example".to_owned(),
        ..AuthPolicy::default()
    };
    let f = Fixture::in_memory_with(policy.clone());
    assert_eq!(
        f.auth.policy(),
        &policy,
        "the policy in force is the one given"
    );
    let shown = format!("{:?}", f.auth);
    assert!(
        shown.starts_with("AuthService { policy: AuthPolicy {"),
        "{shown}"
    );
    assert!(shown.contains("accounts.example"), "{shown}");
    assert!(shown.contains("keys: TokenKeys {"), "{shown}");
}

/// Disabling a user ends their sessions in the same step; a refresh that still finds the
/// session (the status written by another path, or between the two reads) is refused by the
/// user's status.
#[tokio::test]
async fn a_disabled_user_whose_session_survived_cannot_refresh() {
    let f = Fixture::in_memory();
    let alice = f.register("alice").await;
    let tokens = f.login("alice", PW).await.unwrap();
    f.ports
        .users
        .set_status(alice.id, UserStatus::Disabled, f.clock.now())
        .await
        .unwrap();
    let r = f
        .auth
        .refresh(&tokens.refresh_token, &ClientInfo::default())
        .await;
    assert!(matches!(r, Err(AuthError::Unauthenticated)), "{r:?}");
}

/// The longest password a policy may allow is checked; one character more cannot be right,
/// and is refused without spending a verification.
#[tokio::test]
async fn the_longest_password_signs_in_and_a_longer_one_is_refused_unhashed() {
    let hasher = Arc::new(CountingHasher::default());
    let clock = Arc::new(FixedClock::default());
    let ports = Ports::new(in_memory(), hasher.clone(), clock.clone());
    let f = Fixture::with_ports(ports, clock);
    let longest = "é".repeat(PasswordPolicy::MAX_LENGTH);
    f.auth
        .register(
            RegisterUser {
                username: "maxine".to_owned(),
                email: "maxine@example.com".to_owned(),
                password: SecretString::from(longest.clone()),
                display_name: None,
            },
            &ClientInfo::default(),
        )
        .await
        .unwrap();
    let ran = || hasher.ran.load(std::sync::atomic::Ordering::SeqCst);
    let before = ran();
    f.login("maxine", &longest).await.unwrap();
    assert_eq!(ran() - before, 1, "the longest password is verified");
    let before = ran();
    assert!(matches!(
        f.login("maxine", &format!("{longest}é")).await,
        Err(AuthError::InvalidCredentials)
    ));
    assert_eq!(ran() - before, 0, "a longer one is refused unread");
}

#[tokio::test]
async fn a_password_change_ends_every_other_session() {
    let f = Fixture::in_memory();
    f.register("alice").await;
    let keep = f.login("alice", PW).await.unwrap();
    let other = f.login("alice", PW).await.unwrap();
    let actor = f
        .auth
        .authenticate(keep.access_token.expose_secret())
        .await
        .unwrap();
    let users = UserService::new(f.ports.clone(), &AuthPolicy::default());
    users
        .change_password(
            &actor,
            ChangePassword {
                current_password: SecretString::from(PW),
                new_password: SecretString::from("a brand new passphrase"),
            },
        )
        .await
        .unwrap();
    assert!(
        f.auth
            .authenticate(keep.access_token.expose_secret())
            .await
            .is_ok()
    );
    assert!(matches!(
        f.auth
            .authenticate(other.access_token.expose_secret())
            .await,
        Err(AuthError::Unauthenticated)
    ));
    assert!(matches!(
        f.login("alice", PW).await,
        Err(AuthError::InvalidCredentials)
    ));
    assert!(f.login("alice", "a brand new passphrase").await.is_ok());
}

#[test]
fn policy_and_keys_are_checked_at_construction() {
    let ports = crate::testing::memory_ports(Arc::new(FixedClock::default()));
    let bad = AuthPolicy {
        lockout: LockoutPolicy {
            threshold: 0,
            ..LockoutPolicy::default()
        },
        ..AuthPolicy::default()
    };
    let key = SigningKey::generate_ed25519().unwrap();
    assert_eq!(
        AuthService::new(ports, bad, &key, vec![])
            .unwrap_err()
            .setting,
        "lockout.threshold"
    );
}

#[tokio::test]
async fn one_client_address_is_limited_across_identifiers() {
    let clock = Arc::new(FixedClock::default());
    let ports = crate::testing::memory_ports(clock.clone());
    let policy = AuthPolicy {
        login_attempts_per_ip_per_minute: std::num::NonZeroU32::new(3),
        ..AuthPolicy::default()
    };
    let auth = AuthService::new(
        ports,
        policy,
        &SigningKey::generate_ed25519().unwrap(),
        vec![],
    )
    .unwrap();
    let from = |ip: &str| ClientInfo::new(None, Some(ip));
    for name in ["a1x", "b2x", "c3x"] {
        let r = auth.login(creds(name, PW), from("192.0.2.7")).await;
        assert!(matches!(r, Err(AuthError::InvalidCredentials)), "{r:?}");
    }
    let r = auth.login(creds("d4x", PW), from("192.0.2.7")).await;
    assert!(
        matches!(r, Err(AuthError::Throttled { retry_after }) if retry_after >= secs(1)),
        "{r:?}"
    );
    let r = auth.login(creds("d4x", PW), from("192.0.2.8")).await;
    assert!(
        matches!(r, Err(AuthError::InvalidCredentials)),
        "another address is not limited"
    );
    let r = auth.login(creds("d4x", PW), ClientInfo::default()).await;
    assert!(
        matches!(r, Err(AuthError::InvalidCredentials)),
        "no address, no limit"
    );
    // The limit runs on the injected clock: 20 s later one attempt (of 3 a minute) is back,
    // and only one.
    clock.advance(secs(20));
    let r = auth.login(creds("d4x", PW), from("192.0.2.7")).await;
    assert!(matches!(r, Err(AuthError::InvalidCredentials)), "{r:?}");
    let r = auth.login(creds("d4x", PW), from("192.0.2.7")).await;
    assert!(
        matches!(r, Err(AuthError::Throttled { retry_after }) if retry_after == secs(20)),
        "{r:?}"
    );
}

fn with_ip(ip: &str) -> ClientInfo {
    ClientInfo::new(Some("test"), Some(ip))
}

/// Five wrong guesses by a stranger lock the account for strangers (and on every identifier).
async fn locked_by_a_stranger(f: &Fixture) {
    for _ in 0..5 {
        let r = f.login("alice@example.com", "nope nope nope").await;
        assert!(matches!(r, Err(AuthError::InvalidCredentials)), "{r:?}");
    }
    let r = f.login("alice", PW).await;
    assert!(matches!(r, Err(AuthError::Throttled { .. })), "{r:?}");
}

#[tokio::test]
async fn a_device_token_lets_the_owner_in_through_a_strangers_lock() {
    let f = Fixture::in_memory();
    f.register("alice").await;
    let device = f.login("alice", PW).await.unwrap().device_token.unwrap();
    locked_by_a_stranger(&f).await;

    let owner = creds("alice", PW).with_device_token(Some(device.clone()));
    let pair = f.auth.login(owner, ClientInfo::default()).await.unwrap();
    assert_eq!(
        pair.device_token.map(|t| t.expose_secret().to_owned()),
        Some(device.expose_secret().to_owned()),
        "a valid device token is kept"
    );
    // The stranger is still locked out.
    let r = f.login("alice", PW).await;
    assert!(matches!(r, Err(AuthError::Throttled { .. })), "{r:?}");
}

#[tokio::test]
async fn a_device_token_of_another_account_or_made_up_does_not_help() {
    let f = Fixture::in_memory();
    f.register("alice").await;
    f.register("mallory").await;
    let mallorys = f.login("mallory", PW).await.unwrap().device_token.unwrap();
    locked_by_a_stranger(&f).await;
    for token in [mallorys, SecretString::from("made-up")] {
        let attempt = creds("alice", PW).with_device_token(Some(token));
        let r = f.auth.login(attempt, ClientInfo::default()).await;
        assert!(matches!(r, Err(AuthError::Throttled { .. })), "{r:?}");
    }
}

#[tokio::test]
async fn an_expired_device_token_is_a_stranger() {
    let f = Fixture::in_memory();
    f.register("alice").await;
    let device = f.login("alice", PW).await.unwrap().device_token.unwrap();
    f.clock.advance(AuthPolicy::default().device_token_ttl);
    locked_by_a_stranger(&f).await;
    let attempt = creds("alice", PW).with_device_token(Some(device));
    let r = f.auth.login(attempt, ClientInfo::default()).await;
    assert!(matches!(r, Err(AuthError::Throttled { .. })), "{r:?}");
}

#[tokio::test]
async fn a_device_has_its_own_budget_that_locks_too() {
    let f = Fixture::in_memory();
    f.register("alice").await;
    let device = f.login("alice", PW).await.unwrap().device_token.unwrap();
    let with_device = |pw: &str| creds("alice", pw).with_device_token(Some(device.clone()));
    for _ in 0..5 {
        let r = f
            .auth
            .login(with_device("nope nope nope"), ClientInfo::default())
            .await;
        assert!(matches!(r, Err(AuthError::InvalidCredentials)), "{r:?}");
    }
    let r = f.auth.login(with_device(PW), ClientInfo::default()).await;
    assert!(
        matches!(r, Err(AuthError::Throttled { .. })),
        "the stolen device locks: {r:?}"
    );
    // The device's guesses did not touch the account's budget.
    assert!(f.login("alice", PW).await.is_ok());
}

#[tokio::test]
async fn each_sign_in_without_a_device_token_gets_a_new_one() {
    let f = Fixture::in_memory();
    f.register("alice").await;
    let a = f.login("alice", PW).await.unwrap().device_token.unwrap();
    let b = f.login("alice", PW).await.unwrap().device_token.unwrap();
    assert_ne!(a.expose_secret(), b.expose_secret());
    assert_eq!(a.expose_secret().len(), 43, "256 bits, base64url");
    let refreshed = f
        .auth
        .refresh(
            &f.login("alice", PW).await.unwrap().refresh_token,
            &ClientInfo::default(),
        )
        .await;
    assert!(
        refreshed.unwrap().device_token.is_none(),
        "a refresh is no sign-in"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_guesses_never_pass_the_threshold() {
    let f = Arc::new(Fixture::in_memory());
    f.register("alice").await;
    for round in 0..2 {
        let tasks: Vec<_> = (0..24)
            .map(|_| {
                let f = Arc::clone(&f);
                tokio::spawn(async move { f.login("alice", "nope nope nope").await })
            })
            .collect();
        let mut checked = 0;
        for t in tasks {
            match t.await.unwrap() {
                Err(AuthError::InvalidCredentials) => checked += 1,
                Err(AuthError::Throttled { .. }) => {}
                other => panic!("{other:?}"),
            }
        }
        // Round 0: the threshold; round 1, after the lock expired: exactly one more.
        assert_eq!(checked, if round == 0 { 5 } else { 1 }, "round {round}");
        f.clock.advance(secs(3600));
    }
}

#[tokio::test]
async fn password_re_checks_spend_the_sign_in_budget() {
    let f = Fixture::in_memory();
    f.register("alice").await;
    let actor = f.actor("alice").await;
    let change = |current: &str| ChangePassword {
        current_password: SecretString::from(current),
        new_password: SecretString::from("a brand new passphrase"),
    };
    for _ in 0..5 {
        let r = f
            .users
            .change_password(&actor, change("nope nope nope"))
            .await;
        assert!(matches!(r, Err(UserError::InvalidCredentials)), "{r:?}");
    }
    // Now even the right password is refused without being checked, on every re-check...
    let r = f.users.change_password(&actor, change(PW)).await;
    assert!(matches!(r, Err(UserError::Throttled { .. })), "{r:?}");
    let r = f
        .users
        .delete_own_account(&actor, &SecretString::from(PW))
        .await;
    assert!(matches!(r, Err(UserError::Throttled { .. })), "{r:?}");
    // ...and at the sign-in form, which shares the budget.
    let r = f.login("alice", PW).await;
    assert!(matches!(r, Err(AuthError::Throttled { .. })), "{r:?}");
    f.clock.advance(secs(60));
    assert!(f.users.change_password(&actor, change(PW)).await.is_ok());
}

#[tokio::test]
async fn a_refused_new_password_says_nothing_about_the_current_one() {
    let f = Fixture::in_memory();
    f.register("alice").await;
    let actor = f.actor("alice").await;
    for current in [PW, "nope nope nope"] {
        let r = f
            .users
            .change_password(
                &actor,
                ChangePassword {
                    current_password: SecretString::from(current),
                    new_password: SecretString::from("short"),
                },
            )
            .await;
        assert!(matches!(r, Err(UserError::Invalid(_))), "{current}: {r:?}");
    }
    let failures = f
        .ports
        .login_failures
        .get(&ThrottleKey::account(actor.user_id))
        .await;
    assert_eq!(
        failures.unwrap(),
        None,
        "the current password was never checked"
    );
}

#[tokio::test]
async fn an_admin_unlocks_an_account() {
    let f = Fixture::in_memory();
    let alice = f.register("alice").await;
    f.register_admin("root").await;
    let admin = f.actor("root").await;
    locked_by_a_stranger(&f).await;
    let admin_view = f.users.as_admin(&admin).unwrap();
    assert_eq!(
        admin_view.sign_in_lock(alice.id).await.unwrap(),
        Some(secs(60))
    );
    admin_view.unlock(alice.id).await.unwrap();
    assert_eq!(admin_view.sign_in_lock(alice.id).await.unwrap(), None);
    assert!(f.login("alice", PW).await.is_ok());
    assert!(matches!(
        admin_view.unlock(UserId::new()).await,
        Err(UserError::NotFound)
    ));
    let alice_actor = f.actor("alice").await;
    assert!(matches!(
        f.users.as_admin(&alice_actor).map(drop),
        Err(UserError::Forbidden)
    ));
}

#[tokio::test]
async fn registrations_are_limited_per_client_address() {
    let policy = AuthPolicy {
        registrations_per_ip_per_hour: std::num::NonZeroU32::new(2),
        ..AuthPolicy::default()
    };
    let f = Fixture::in_memory_with(policy);
    let register = |name: &'static str, ip: &'static str| {
        let auth = &f.auth;
        async move {
            auth.register(form(name, &format!("{name}@example.com"), PW), &with_ip(ip))
                .await
        }
    };
    assert!(register("user1", "10.0.0.1").await.is_ok());
    assert!(register("user2", "10.0.0.1").await.is_ok());
    let r = register("user3", "10.0.0.1").await;
    assert!(
        matches!(r, Err(AuthError::Throttled { retry_after }) if retry_after >= secs(60)),
        "{r:?}"
    );
    assert!(
        register("user3", "10.0.0.2").await.is_ok(),
        "another client"
    );
    // IPv6 clients count by their /64.
    assert!(register("user4", "2001:db8::1").await.is_ok());
    assert!(register("user5", "2001:db8::2").await.is_ok());
    let r = register("user6", "2001:db8::3").await;
    assert!(matches!(r, Err(AuthError::Throttled { .. })), "{r:?}");
    assert!(
        register("user6", "2001:db8:0:1::3").await.is_ok(),
        "another /64"
    );
}

#[tokio::test]
async fn sign_ins_are_limited_per_ipv6_64() {
    let policy = AuthPolicy {
        login_attempts_per_ip_per_minute: std::num::NonZeroU32::new(2),
        ..AuthPolicy::default()
    };
    let f = Fixture::in_memory_with(policy);
    f.register("alice").await;
    for ip in ["2001:db8::1", "2001:db8::2"] {
        assert!(f.auth.login(creds("alice", PW), with_ip(ip)).await.is_ok());
    }
    let r = f
        .auth
        .login(creds("alice", PW), with_ip("2001:db8::ffff"))
        .await;
    assert!(matches!(r, Err(AuthError::Throttled { .. })), "{r:?}");
}

#[tokio::test]
async fn browser_sessions_end_when_idle_and_stay_while_used() {
    let f = Fixture::in_memory();
    f.register("alice").await;
    let login = f
        .auth
        .login_browser(creds("alice", PW), ClientInfo::default())
        .await
        .unwrap();
    let cookie = login.session_token.expose_secret().to_owned();
    // Used every 20 minutes for two hours: still signed in.
    for _ in 0..6 {
        f.clock.advance(secs(20 * 60));
        assert!(f.auth.authenticate_browser(&cookie).await.is_ok());
    }
    f.clock.advance(secs(30 * 60));
    assert!(matches!(
        f.auth.authenticate_browser(&cookie).await,
        Err(AuthError::Unauthenticated)
    ));
}

#[tokio::test]
async fn token_sessions_end_when_the_refresh_token_sits_idle() {
    let f = Fixture::in_memory();
    f.register("alice").await;
    let pair = f.login("alice", PW).await.unwrap();
    f.clock.advance(secs(13 * 24 * 3600));
    let pair = f
        .auth
        .refresh(&pair.refresh_token, &ClientInfo::default())
        .await
        .unwrap();
    f.clock.advance(secs(14 * 24 * 3600 + 1));
    assert!(matches!(
        f.auth
            .refresh(&pair.refresh_token, &ClientInfo::default())
            .await,
        Err(AuthError::Unauthenticated)
    ));
}

#[tokio::test]
async fn failed_sign_ins_are_logged_with_address_and_outcome_never_what_was_typed() {
    // The process-wide capture: a thread-local subscriber would miss events whose callsites
    // another test registered first (tracing caches callsite interest globally).
    crate::testing::observe::captured_logs();
    let f = Fixture::in_memory();
    f.register("alice").await;
    let guess = "hunter2 secret guess";
    let attempt = |identifier: &'static str| creds(identifier, guess);
    // An address no other test uses, to find this test's lines.
    let client = with_ip("198.51.100.77");
    for identifier in ["alice@example.com", "ghost-typed-name"] {
        let r = f.auth.login(attempt(identifier), client.clone()).await;
        assert!(matches!(r, Err(AuthError::InvalidCredentials)), "{r:?}");
    }
    // The wrong password typed with the email was alice's first failure; four more make
    // five, the lockout threshold, so the fifth attempt here is refused unchecked.
    for n in 1..=5 {
        let r = f.auth.login(attempt("alice"), client.clone()).await;
        if n < 5 {
            assert!(
                matches!(r, Err(AuthError::InvalidCredentials)),
                "{n}: {r:?}"
            );
        } else {
            assert!(matches!(r, Err(AuthError::Throttled { .. })), "{n}: {r:?}");
        }
    }
    let all = crate::testing::observe::captured_logs();
    let text: String = all
        .lines()
        .filter(|line| line.contains("client_ip=\"198.51.100.77\""))
        .collect::<Vec<_>>()
        .join("\n");
    for expected in [
        "sign-in failed",
        "outcome=\"wrong_password\"",
        "outcome=\"unknown_identifier\"",
        "outcome=\"locked\"",
        "budget=\"account\"",
    ] {
        assert!(text.contains(expected), "{expected} missing in:\n{text}");
    }
    for secret in [guess, "ghost-typed-name", "alice@example.com"] {
        assert!(!all.contains(secret), "{secret} logged:\n{text}");
    }
}

#[tokio::test]
async fn a_strangers_lock_does_not_stop_the_signed_in_owner_from_re_checking() {
    let f = Fixture::in_memory();
    f.register("alice").await;
    let owner = f.actor("alice").await;
    locked_by_a_stranger(&f).await;
    let change = ChangePassword {
        current_password: SecretString::from(PW),
        new_password: SecretString::from("a brand new passphrase"),
    };
    f.users.change_password(&owner, change).await.unwrap();
}

#[tokio::test]
async fn a_device_in_use_stays_known_and_a_password_change_forgets_devices() {
    let f = Fixture::in_memory();
    f.register("alice").await;
    let device = f.login("alice", PW).await.unwrap().device_token.unwrap();
    let with_device = || creds("alice", PW).with_device_token(Some(device.clone()));
    // Used on day 80, so still known on day 100 (90 days after its last use, not its issue).
    f.clock.advance(secs(80 * 24 * 3600));
    f.auth
        .login(with_device(), ClientInfo::default())
        .await
        .unwrap();
    f.clock.advance(secs(20 * 24 * 3600));
    locked_by_a_stranger(&f).await;
    let pair = f
        .auth
        .login(with_device(), ClientInfo::default())
        .await
        .unwrap();

    // After a password change the device is a stranger: it knew the old password.
    let actor = f
        .auth
        .authenticate(pair.access_token.expose_secret())
        .await
        .unwrap();
    f.clock.advance(secs(3600));
    let change = ChangePassword {
        current_password: SecretString::from(PW),
        new_password: SecretString::from("a brand new passphrase"),
    };
    f.users.change_password(&actor, change).await.unwrap();
    // The stranger's earlier lock has run out, but its failures still count: one more
    // wrong password locks alice again, and a longer while.
    let r = f.login("alice", "nope nope nope").await;
    assert!(matches!(r, Err(AuthError::InvalidCredentials)), "{r:?}");
    for _ in 0..4 {
        let r = f.login("alice", "nope nope nope").await;
        assert!(matches!(r, Err(AuthError::Throttled { .. })), "{r:?}");
    }
    let attempt = creds("alice", "a brand new passphrase").with_device_token(Some(device.clone()));
    let r = f.auth.login(attempt, ClientInfo::default()).await;
    assert!(matches!(r, Err(AuthError::Throttled { .. })), "{r:?}");
}

/// A token remembered as verified still meets the store on every call: a revoked session,
/// a new role and a disabled account take effect at the next request.
#[tokio::test]
async fn a_remembered_token_still_sees_revocation_role_and_status_at_once() {
    let f = Fixture::in_memory();
    let alice = f.register("alice").await;
    let (one, two) = (
        f.login("alice", PW).await.unwrap(),
        f.login("alice", PW).await.unwrap(),
    );
    let (one, two) = (
        one.access_token.expose_secret(),
        two.access_token.expose_secret(),
    );
    let (actor, user) = f.auth.authenticate_with_user(one).await.unwrap();
    assert_eq!((actor.user_id, actor.role), (alice.id, Role::User));
    assert_eq!(user, alice);
    assert!(f.auth.authenticate(two).await.is_ok());

    f.auth.logout(&actor).await.unwrap();
    assert!(matches!(
        f.auth.authenticate(one).await,
        Err(AuthError::Unauthenticated)
    ));

    let now = f.clock.now();
    // Another admin, so that alice may be disabled once promoted.
    let bob = f.register("bob").await;
    f.ports
        .users
        .set_role(bob.id, Role::Admin, now)
        .await
        .unwrap();
    f.ports
        .users
        .set_role(alice.id, Role::Admin, now)
        .await
        .unwrap();
    let (actor, user) = f.auth.authenticate_with_user(two).await.unwrap();
    assert_eq!((actor.role, user.role), (Role::Admin, Role::Admin));

    f.ports
        .users
        .set_status(alice.id, UserStatus::Disabled, now)
        .await
        .unwrap();
    assert!(matches!(
        f.auth.authenticate(two).await,
        Err(AuthError::Unauthenticated)
    ));
}

/// Each check of an access token is one read of the store (the session with its user), and
/// a token past its expiry is refused before the store is asked, remembered or not.
#[tokio::test]
async fn an_access_token_costs_one_store_read() {
    let clock = Arc::new(FixedClock::default());
    let user = crate::testing::conformance::user("alice");
    let session = Session {
        id: SessionId::new(),
        user_id: user.id,
        kind: SessionKind::Token,
        client: ClientInfo::default(),
        created_at: clock.now(),
        last_used_at: clock.now(),
        expires_at: clock.now() + time::Duration::days(1),
        revoked_at: None,
    };
    let mut sessions = MockSessionStore::new();
    let found = (session.clone(), user.clone());
    sessions
        .expect_get_with_user()
        .with(mockall::predicate::eq(session.id))
        .times(3)
        .returning(move |_| Ok(found.clone()));
    sessions.expect_get().never();
    let mut users = MockUserRepository::new();
    users.expect_get().never();
    let ports = Ports {
        users: Arc::new(users),
        sessions: Arc::new(sessions),
        ..crate::testing::memory_ports(Arc::clone(&clock))
    };
    let auth = AuthService::new(
        ports,
        AuthPolicy::default(),
        &SigningKey::generate_ed25519().unwrap(),
        vec![],
    )
    .unwrap();
    let (token, _) = auth
        .keys
        .issue(user.id, session.id, user.role, clock.now(), secs(900))
        .unwrap();
    for _ in 0..3 {
        let (actor, got) = auth.authenticate_with_user(&token).await.unwrap();
        assert_eq!((actor.user_id, actor.session_id), (user.id, session.id));
        assert_eq!(got, user);
    }
    clock.advance(secs(900 + 5));
    assert!(matches!(
        auth.authenticate(&token).await,
        Err(AuthError::Unauthenticated)
    ));
}

/// A cookie check returns the user as stored with the session, and sees a disabled account
/// at once.
#[tokio::test]
async fn a_cookie_check_returns_the_user_as_stored() {
    let f = Fixture::in_memory();
    let alice = f.register("alice").await;
    let login = f
        .auth
        .login_browser(creds("alice", PW), ClientInfo::default())
        .await
        .unwrap();
    let cookie = login.session_token.expose_secret();
    let (actor, user) = f.auth.authenticate_browser_with_user(cookie).await.unwrap();
    assert_eq!((actor.session_id, user), (login.session_id, alice.clone()));
    f.ports
        .users
        .set_status(alice.id, UserStatus::Disabled, f.clock.now())
        .await
        .unwrap();
    assert!(matches!(
        f.auth.authenticate_browser(cookie).await,
        Err(AuthError::Unauthenticated)
    ));
}

/// Failures older than `forget_after` no longer count: four wrong guesses, a quiet day, four
/// more, and the account is not locked.
#[tokio::test]
async fn failures_older_than_forget_after_are_forgotten() {
    let f = Fixture::in_memory();
    f.register("alice").await;
    let threshold = AuthPolicy::default().lockout.threshold;
    for _ in 1..threshold {
        let r = f.login("alice", "nope nope nope").await;
        assert!(matches!(r, Err(AuthError::InvalidCredentials)), "{r:?}");
    }
    f.clock
        .advance(AuthPolicy::default().lockout.forget_after + secs(1));
    for n in 1..threshold {
        let r = f.login("alice", "nope nope nope").await;
        assert!(
            matches!(r, Err(AuthError::InvalidCredentials)),
            "{n} after the pause: {r:?}"
        );
    }
    assert!(f.login("alice", PW).await.is_ok(), "not locked");
}

/// The lockout counter counts the failure that reaches the threshold, not those before it.
/// (Through a recorder local to this thread: other tests' sign-ins do not show.)
#[tokio::test]
async fn the_failure_that_locks_is_counted_as_a_lockout() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let f = Fixture::in_memory();
    f.register("alice").await;
    let threshold = AuthPolicy::default().lockout.threshold;
    let _local = metrics::set_default_local_recorder(&recorder);
    let lockouts = || crate::testing::observe::sample(&handle.render(), names::LOCKOUTS_TOTAL);
    for n in 1..threshold {
        let r = f.login("alice", "nope nope nope").await;
        assert!(matches!(r, Err(AuthError::InvalidCredentials)), "{r:?}");
        assert_eq!(lockouts(), 0.0, "after {n} failures");
    }
    let r = f.login("alice", "nope nope nope").await;
    assert!(matches!(r, Err(AuthError::InvalidCredentials)), "{r:?}");
    assert_eq!(lockouts(), 1.0, "the failure that reached the threshold");
}

/// A sign-in turned away by the per-address limit counts as a rate-limited sign-in.
/// (Through a recorder local to this thread: other tests' sign-ins do not show.)
#[tokio::test]
async fn a_rate_limited_sign_in_is_counted_as_one() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let policy = AuthPolicy {
        login_attempts_per_ip_per_minute: std::num::NonZeroU32::new(1),
        ..AuthPolicy::default()
    };
    let f = Fixture::in_memory_with(policy);
    f.register("alice").await;
    let _local = metrics::set_default_local_recorder(&recorder);
    let limited = || {
        let series = format!("{}{{outcome=\"rate_limited\"}}", names::LOGINS_TOTAL);
        crate::testing::observe::sample(&handle.render(), &series)
    };
    let client = with_ip("192.0.2.44");
    assert!(
        f.auth
            .login(creds("alice", PW), client.clone())
            .await
            .is_ok()
    );
    assert_eq!(limited(), 0.0);
    let r = f.auth.login(creds("alice", PW), client).await;
    assert!(matches!(r, Err(AuthError::Throttled { .. })), "{r:?}");
    assert_eq!(limited(), 1.0, "{}", handle.render());
}
