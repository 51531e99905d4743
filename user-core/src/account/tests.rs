use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;

use super::*;
use crate::auth::{AuthService, Credentials, SigningKey};
use crate::domain::{AuditKind, ProfileChanges, Role};
use crate::error::ErrorKind;
use crate::error::ServiceError as _;
use crate::ports::{Clock as _, ComposeError, Mail};
use crate::testing::{FixedClock, Fixture, memory_ports};
use crate::users::{ChangePassword, UpdateProfile, UserService};

const NEW_PASSWORD: &str = "an entirely new passphrase";

/// Writes the kind as the subject and the token, if any, as the whole text.
struct PlainComposer;

impl MailComposer for PlainComposer {
    fn compose(&self, notice: &Notice, to: &Email) -> Result<Mail, ComposeError> {
        let text = match notice {
            Notice::VerifyEmail { token, .. } | Notice::ResetPassword { token, .. } => {
                token.expose_secret().to_owned()
            }
            Notice::EmailChanged { old, new, .. } => format!("{old} -> {new}"),
            Notice::LockoutStarted { until, .. } => until.to_string(),
            Notice::PasswordChanged { name } | Notice::RecoveryCodesReplaced { name } => {
                name.clone()
            }
            Notice::SecondFactorChanged {
                enabled, by_admin, ..
            } => format!("enabled={enabled} by_admin={by_admin}"),
        };
        Ok(Mail::new(to.clone(), notice.kind(), text, None))
    }
}

struct Env {
    auth: AuthService,
    users: UserService,
    account: AccountService,
    ports: Ports,
    clock: Arc<FixedClock>,
}

impl Env {
    fn new() -> Self {
        Self::with(AuthPolicy::default(), true)
    }

    fn with(policy: AuthPolicy, mail: bool) -> Self {
        let clock = Arc::new(FixedClock::default());
        let ports = memory_ports(Arc::clone(&clock));
        let key = SigningKey::generate_ed25519().unwrap();
        let totp = Arc::new(crate::factor::TotpAuthenticator::new(
            crate::factor::FactorKey::generate().unwrap(),
            "user-management",
        ));
        let mut auth = AuthService::new(ports.clone(), policy.clone(), &key, vec![])
            .unwrap()
            .with_second_factors(Arc::clone(&totp));
        let mut users = UserService::new(ports.clone(), &policy).with_second_factors(totp);
        let mut account = AccountService::new(ports.clone(), &policy);
        if mail {
            let composer: Arc<dyn MailComposer> = Arc::new(PlainComposer);
            auth = auth.with_mail_composer(Arc::clone(&composer));
            users = users.with_mail_composer(Arc::clone(&composer));
            account = account.with_mail_composer(composer);
        }
        Self {
            auth,
            users,
            account,
            ports,
            clock,
        }
    }

    async fn register(&self, name: &str) -> User {
        self.auth
            .register(
                crate::auth::RegisterUser {
                    username: name.to_owned(),
                    email: format!("{name}@example.com"),
                    password: SecretString::from(Fixture::PASSWORD),
                    display_name: None,
                },
                &ClientInfo::default(),
            )
            .await
            .unwrap()
    }

    async fn login(&self, name: &str, password: &str) -> Result<crate::auth::TokenPair, AuthError> {
        self.auth
            .login(
                Credentials::new(name, SecretString::from(password)),
                ClientInfo::default(),
            )
            .await
    }

    async fn actor(&self, name: &str) -> Actor {
        let tokens = self.login(name, Fixture::PASSWORD).await.unwrap();
        self.auth
            .authenticate(tokens.access_token.expose_secret())
            .await
            .unwrap()
    }

    /// The mails queued since the last call, as (recipient, kind, text), oldest first.
    async fn mails(&self) -> Vec<(String, String, String)> {
        self.account.settled().await;
        let far = time::macros::datetime!(2100-01-01 00:00 UTC);
        self.ports
            .outbox
            .claim(self.clock.now(), far, 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|c| (c.mail.to.to_string(), c.mail.subject, c.mail.text))
            .collect()
    }

    /// The token of the one mail of `kind` queued since the last call.
    async fn token(&self, kind: &str) -> SecretString {
        let found: Vec<_> = self
            .mails()
            .await
            .into_iter()
            .filter(|(_, k, _)| k == kind)
            .collect();
        assert_eq!(found.len(), 1, "one {kind} mail: {found:?}");
        SecretString::from(found[0].2.clone())
    }

    async fn request_reset(&self, email: &str) -> Result<(), AuthError> {
        self.account
            .request_password_reset(email, &ClientInfo::default())
            .await
    }

    async fn reset(&self, token: &SecretString, password: &str) -> Result<User, AuthError> {
        self.account
            .reset_password(token, SecretString::from(password), &ClientInfo::default())
            .await
    }

    /// Changes the user's email in the store, behind the services' back (no new link, no
    /// revocation), as another instance or an operator might.
    async fn change_email_in_store(&self, id: crate::domain::UserId, email: &str) {
        let changes = ProfileChanges {
            email: Some(Email::parse(email).unwrap()),
            ..ProfileChanges::default()
        };
        self.ports
            .users
            .update_profile(id, &changes, self.clock.now())
            .await
            .unwrap();
    }

    async fn reset_token(&self, email: &str) -> SecretString {
        self.request_reset(email).await.unwrap();
        self.token("reset_password").await
    }
}

fn invalid_token<T: std::fmt::Debug>(r: Result<T, AuthError>, what: &str) {
    assert!(matches!(r, Err(AuthError::InvalidToken)), "{what}: {r:?}");
}

fn from_ip(ip: &str) -> ClientInfo {
    ClientInfo::new(None, Some(ip))
}

#[tokio::test]
async fn a_reset_ends_old_sessions_and_the_new_password_signs_in() {
    let env = Env::new();
    let alice = env.register("alice").await;
    let old = env.login("alice", Fixture::PASSWORD).await.unwrap();
    env.mails().await;

    let token = env.reset_token("Alice@Example.com").await;
    let user = env.reset(&token, NEW_PASSWORD).await.unwrap();
    assert_eq!(user.id, alice.id);

    let access = env
        .auth
        .authenticate(old.access_token.expose_secret())
        .await;
    assert!(
        matches!(access, Err(AuthError::Unauthenticated)),
        "{access:?}"
    );
    let refresh = env
        .auth
        .refresh(&old.refresh_token, &ClientInfo::default())
        .await;
    assert!(
        matches!(refresh, Err(AuthError::Unauthenticated)),
        "{refresh:?}"
    );
    assert!(matches!(
        env.login("alice", Fixture::PASSWORD).await,
        Err(AuthError::InvalidCredentials)
    ));
    assert_eq!(
        env.login("alice", NEW_PASSWORD).await.unwrap().user.id,
        alice.id
    );
    assert_eq!(
        env.mails().await,
        [(
            "alice@example.com".to_owned(),
            "password_changed".to_owned(),
            "alice".to_owned()
        )],
        "the owner is told"
    );
}

#[tokio::test]
async fn a_reset_link_works_once_even_when_used_twice_at_once() {
    let env = Env::new();
    env.register("alice").await;
    let token = env.reset_token("alice@example.com").await;
    let (a, b) = tokio::join!(
        env.reset(&token, NEW_PASSWORD),
        env.reset(&token, NEW_PASSWORD)
    );
    assert!(
        a.is_ok() != b.is_ok(),
        "exactly one concurrent use wins: {a:?} / {b:?}"
    );
    invalid_token(env.reset(&token, NEW_PASSWORD).await, "used");
}

#[tokio::test]
async fn a_reset_link_expires_after_thirty_minutes() {
    let env = Env::new();
    env.register("alice").await;
    let token = env.reset_token("alice@example.com").await;
    env.clock.advance(Duration::from_secs(30 * 60));
    invalid_token(env.reset(&token, NEW_PASSWORD).await, "expired");
    env.login("alice", Fixture::PASSWORD)
        .await
        .expect("the password stays");
}

#[tokio::test]
async fn a_newer_reset_link_kills_the_older_one() {
    let env = Env::new();
    env.register("alice").await;
    let first = env.reset_token("alice@example.com").await;
    let second = env.reset_token("alice@example.com").await;
    invalid_token(env.reset(&first, NEW_PASSWORD).await, "superseded");
    env.reset(&second, NEW_PASSWORD).await.unwrap();
}

#[tokio::test]
async fn a_weak_new_password_keeps_the_link_usable() {
    let env = Env::new();
    env.register("alice").await;
    let token = env.reset_token("alice@example.com").await;
    let refused = env.reset(&token, "short").await;
    let Err(AuthError::Invalid(errors)) = refused else {
        panic!("expected a validation error: {refused:?}");
    };
    assert!(errors.field("new_password").next().is_some(), "{errors}");
    env.reset(&token, NEW_PASSWORD)
        .await
        .expect("the link still works");
}

#[tokio::test]
async fn known_and_unknown_addresses_get_the_same_answer_and_only_the_known_one_mail() {
    let env = Env::new();
    env.register("alice").await;
    env.mails().await;
    let known = env.request_reset("alice@example.com").await;
    let unknown = env.request_reset("nobody@example.com").await;
    assert_eq!(format!("{known:?}"), format!("{unknown:?}"));
    assert!(known.is_ok());
    let mails = env.mails().await;
    let to: Vec<_> = mails
        .iter()
        .map(|(to, kind, _)| (to.as_str(), kind.as_str()))
        .collect();
    assert_eq!(to, [("alice@example.com", "reset_password")]);

    let bad = env.request_reset("not an address").await;
    let Err(AuthError::Invalid(errors)) = bad else {
        panic!("{bad:?}");
    };
    assert!(errors.field("email").next().is_some(), "{errors}");
}

#[tokio::test]
async fn a_disabled_account_gets_no_reset_link_and_cannot_use_one() {
    let env = Env::new();
    let alice = env.register("alice").await;
    let token = env.reset_token("alice@example.com").await;
    env.ports
        .users
        .set_status(alice.id, UserStatus::Disabled, env.clock.now())
        .await
        .unwrap();
    invalid_token(env.reset(&token, NEW_PASSWORD).await, "disabled");
    env.request_reset("alice@example.com").await.unwrap();
    assert!(env.mails().await.is_empty());
}

#[tokio::test]
async fn reset_requests_are_limited_per_address_and_per_client() {
    let env = Env::new();
    env.register("alice").await;
    for i in 0..5 {
        env.account
            .request_password_reset("alice@example.com", &from_ip(&format!("10.0.0.{i}")))
            .await
            .unwrap();
    }
    let sixth = env
        .account
        .request_password_reset("alice@example.com", &from_ip("10.0.1.1"))
        .await;
    assert!(
        matches!(sixth, Err(AuthError::Throttled { .. })),
        "{sixth:?}"
    );
    // Unknown addresses count alike.
    for _ in 0..5 {
        env.request_reset("ghost@example.com").await.unwrap();
    }
    assert!(matches!(
        env.request_reset("ghost@example.com").await,
        Err(AuthError::Throttled { .. })
    ));

    // Twenty per client address, whatever the addresses asked for.
    for i in 0..20 {
        env.account
            .request_password_reset(&format!("user{i}@example.com"), &from_ip("192.0.2.7"))
            .await
            .unwrap();
    }
    let over = env
        .account
        .request_password_reset("user99@example.com", &from_ip("192.0.2.7"))
        .await;
    assert!(matches!(over, Err(AuthError::Throttled { .. })), "{over:?}");
}

#[tokio::test]
async fn without_a_composer_mail_flows_say_so_and_nothing_is_queued() {
    let env = Env::with(AuthPolicy::default(), false);
    let admin = env.register("root").await;
    env.ports
        .users
        .set_role(admin.id, Role::Admin, env.clock.now())
        .await
        .unwrap();
    let alice = env.register("alice").await;
    let r = env.request_reset("alice@example.com").await;
    assert!(matches!(r, Err(AuthError::MailNotConfigured)), "{r:?}");
    assert_eq!(r.unwrap_err().message(), "mail is not configured");
    let root = env.actor("root").await;
    let r = env.account.send_password_reset(&root, alice.id).await;
    assert!(matches!(r, Err(UserError::MailNotConfigured)), "{r:?}");
    let actor = env.actor("alice").await;
    let r = env
        .account
        .resend_verification(&actor, &ClientInfo::default())
        .await;
    assert!(matches!(r, Err(AuthError::MailNotConfigured)), "{r:?}");
    assert!(
        env.mails().await.is_empty(),
        "no verification at registration"
    );
}

#[tokio::test]
async fn only_an_admin_sends_a_reset_link_and_never_sees_it() {
    let env = Env::new();
    let root = env.register("root").await;
    env.ports
        .users
        .set_role(root.id, Role::Admin, env.clock.now())
        .await
        .unwrap();
    let alice = env.register("alice").await;
    env.mails().await;
    let as_alice = env.actor("alice").await;
    let r = env.account.send_password_reset(&as_alice, root.id).await;
    assert!(matches!(r, Err(UserError::Forbidden)), "{r:?}");
    let as_root = env.actor("root").await;
    let r = env
        .account
        .send_password_reset(&as_root, crate::domain::UserId::new())
        .await;
    assert!(matches!(r, Err(UserError::NotFound)), "{r:?}");
    let () = env
        .account
        .send_password_reset(&as_root, alice.id)
        .await
        .unwrap();
    let token = env.token("reset_password").await;
    env.reset(&token, NEW_PASSWORD).await.unwrap();
}

#[tokio::test]
async fn registration_mails_a_link_that_verifies_the_address() {
    let env = Env::new();
    let alice = env.register("alice").await;
    assert_eq!(alice.email_verified_at, None);
    let mails = env.mails().await;
    assert_eq!(mails.len(), 1);
    assert_eq!(
        (mails[0].0.as_str(), mails[0].1.as_str()),
        ("alice@example.com", "verify_email")
    );
    let token = SecretString::from(mails[0].2.clone());
    env.clock.advance(Duration::from_secs(60));
    let verified = env
        .account
        .verify_email(&token, &ClientInfo::default())
        .await
        .unwrap();
    assert_eq!(verified.email_verified_at, Some(env.clock.now()));
    assert_eq!(
        env.ports
            .users
            .get(alice.id)
            .await
            .unwrap()
            .email_verified_at,
        Some(env.clock.now())
    );
    invalid_token(
        env.account
            .verify_email(&token, &ClientInfo::default())
            .await,
        "used",
    );
}

#[tokio::test]
async fn a_verification_link_fails_once_the_email_changed() {
    let env = Env::new();
    let alice = env.register("alice").await;
    let token = env.token("verify_email").await;
    // Changed behind the service's back, so the old link is not superseded by a new one.
    env.change_email_in_store(alice.id, "alice@example.org")
        .await;
    invalid_token(
        env.account
            .verify_email(&token, &ClientInfo::default())
            .await,
        "address changed",
    );
    assert_eq!(
        env.ports
            .users
            .get(alice.id)
            .await
            .unwrap()
            .email_verified_at,
        None
    );
}

#[tokio::test]
async fn a_verification_link_expires_after_a_day() {
    let env = Env::new();
    env.register("alice").await;
    let token = env.token("verify_email").await;
    env.clock.advance(Duration::from_secs(24 * 3600));
    invalid_token(
        env.account
            .verify_email(&token, &ClientInfo::default())
            .await,
        "expired",
    );
}

#[tokio::test]
async fn resend_sends_a_new_link_limited_per_address_and_none_once_verified() {
    let env = Env::new();
    env.register("alice").await;
    let first = env.token("verify_email").await;
    let actor = env.actor("alice").await;
    let client = ClientInfo::default();
    env.account
        .resend_verification(&actor, &client)
        .await
        .unwrap();
    let second = env.token("verify_email").await;
    invalid_token(
        env.account
            .verify_email(&first, &ClientInfo::default())
            .await,
        "superseded",
    );
    // The latest link is the one that works.
    env.account
        .verify_email(&second, &ClientInfo::default())
        .await
        .unwrap();
    // A new address has a budget of its own, which asking by address spends too.
    env.change_email_in_store(actor.user_id, "alice@example.org")
        .await;
    for _ in 0..4 {
        env.account
            .resend_verification(&actor, &client)
            .await
            .unwrap();
    }
    env.account
        .request_verification("alice@example.org", &from_ip("10.0.0.7"))
        .await
        .unwrap();
    let sixth = env.account.resend_verification(&actor, &client).await;
    assert!(
        matches!(sixth, Err(AuthError::Throttled { .. })),
        "{sixth:?}"
    );
    let by_address = env
        .account
        .request_verification("alice@example.org", &from_ip("10.0.0.8"))
        .await;
    assert!(
        matches!(by_address, Err(AuthError::Throttled { .. })),
        "{by_address:?}"
    );
    assert_eq!(env.mails().await.len(), 5, "one mail per accepted request");

    let env = Env::new();
    env.register("alice").await;
    let token = env.token("verify_email").await;
    env.account
        .verify_email(&token, &ClientInfo::default())
        .await
        .unwrap();
    let actor = env.actor("alice").await;
    env.account
        .resend_verification(&actor, &client)
        .await
        .unwrap();
    assert!(env.mails().await.is_empty(), "verified: nothing to send");
}

#[tokio::test]
async fn the_policy_can_require_a_verified_email_to_sign_in() {
    let policy = AuthPolicy {
        require_verified_email: true,
        ..AuthPolicy::default()
    };
    let env = Env::with(policy, true);
    env.register("alice").await;
    let token = env.token("verify_email").await;
    let refused = env.login("alice", Fixture::PASSWORD).await;
    assert!(
        matches!(refused, Err(AuthError::EmailNotVerified)),
        "{refused:?}"
    );
    assert_eq!(refused.unwrap_err().kind(), ErrorKind::Forbidden);
    // A wrong password learns nothing about the address.
    assert!(matches!(
        env.login("alice", "not the password at all").await,
        Err(AuthError::InvalidCredentials)
    ));
    env.account
        .verify_email(&token, &ClientInfo::default())
        .await
        .unwrap();
    env.login("alice", Fixture::PASSWORD)
        .await
        .expect("verified: signed in");
}

#[tokio::test]
async fn a_password_change_tells_the_owner() {
    let env = Env::new();
    env.register("alice").await;
    let actor = env.actor("alice").await;
    env.mails().await;
    env.users
        .change_password(
            &actor,
            ChangePassword {
                current_password: SecretString::from(Fixture::PASSWORD),
                new_password: SecretString::from(NEW_PASSWORD),
            },
        )
        .await
        .unwrap();
    let mails = env.mails().await;
    let to: Vec<_> = mails
        .iter()
        .map(|(to, kind, _)| (to.as_str(), kind.as_str()))
        .collect();
    assert_eq!(to, [("alice@example.com", "password_changed")]);
}

#[tokio::test]
async fn an_email_change_tells_both_addresses_and_verifies_the_new_one() {
    let env = Env::new();
    let alice = env.register("alice").await;
    let actor = env.actor("alice").await;
    env.mails().await;
    let edit = UpdateProfile {
        email: Some("alice@example.org".to_owned()),
        ..UpdateProfile::default()
    };
    env.users
        .update_profile(&actor, alice.id, edit)
        .await
        .unwrap();
    let mails = env.mails().await;
    let to: Vec<_> = mails
        .iter()
        .map(|(to, kind, _)| (to.as_str(), kind.as_str()))
        .collect();
    assert_eq!(
        to,
        [
            ("alice@example.com", "email_changed"),
            ("alice@example.org", "email_changed"),
            ("alice@example.org", "verify_email"),
        ]
    );
    assert_eq!(mails[0].2, "alice@example.com -> alice@example.org");
    let token = SecretString::from(mails[2].2.clone());
    let verified = env
        .account
        .verify_email(&token, &ClientInfo::default())
        .await
        .unwrap();
    assert_eq!(verified.email.as_str(), "alice@example.org");
    assert!(verified.email_verified_at.is_some());

    // A profile edit that keeps the address sends nothing.
    let same = UpdateProfile {
        email: Some("alice@example.org".to_owned()),
        ..UpdateProfile::default()
    };
    env.users
        .update_profile(&actor, alice.id, same)
        .await
        .unwrap();
    assert!(env.mails().await.is_empty());
}

#[tokio::test]
async fn a_lockout_tells_the_owner_once_per_streak() {
    let env = Env::new();
    env.register("alice").await;
    env.mails().await;
    let threshold = AuthPolicy::default().lockout.threshold;
    for _ in 0..threshold {
        assert!(matches!(
            env.login("alice", "wrong guess, wrong guess").await,
            Err(AuthError::InvalidCredentials)
        ));
    }
    let mails = env.mails().await;
    let until: OffsetDateTime = env.clock.now() + time::Duration::minutes(1);
    assert_eq!(
        mails,
        [(
            "alice@example.com".to_owned(),
            "lockout_started".to_owned(),
            until.to_string()
        )]
    );
    // Locked: refused without a check. Once the lock ends, the next failure doubles it
    // without another mail.
    assert!(matches!(
        env.login("alice", "wrong guess, wrong guess").await,
        Err(AuthError::Throttled { .. })
    ));
    env.clock.advance(Duration::from_secs(61));
    assert!(matches!(
        env.login("alice", "wrong guess, wrong guess").await,
        Err(AuthError::InvalidCredentials)
    ));
    assert!(env.mails().await.is_empty());
}

#[tokio::test]
async fn a_reset_clears_the_lockout() {
    let env = Env::new();
    env.register("alice").await;
    for _ in 0..AuthPolicy::default().lockout.threshold {
        let r = env.login("alice", "wrong guess, wrong guess").await;
        assert!(matches!(r, Err(AuthError::InvalidCredentials)), "{r:?}");
    }
    assert!(matches!(
        env.login("alice", NEW_PASSWORD).await,
        Err(AuthError::Throttled { .. })
    ));
    let token = env.reset_token("alice@example.com").await;
    env.reset(&token, NEW_PASSWORD).await.unwrap();
    env.login("alice", NEW_PASSWORD)
        .await
        .expect("the lock is lifted");
}

/// A user whose role is admin, signed in.
async fn admin(env: &Env, name: &str) -> Actor {
    let user = env.register(name).await;
    env.ports
        .users
        .set_role(user.id, Role::Admin, env.clock.now())
        .await
        .unwrap();
    env.actor(name).await
}

#[tokio::test]
async fn a_reset_link_dies_with_the_address_it_was_sent_to() {
    let env = Env::new();
    let alice = env.register("alice").await;
    // Changed behind the service's back: the link is refused by the address check.
    let token = env.reset_token("alice@example.com").await;
    env.change_email_in_store(alice.id, "alice@example.org")
        .await;
    invalid_token(
        env.reset(&token, NEW_PASSWORD).await,
        "sent to the old address",
    );

    // Changed through the service: the link is revoked as well.
    let token = env.reset_token("alice@example.org").await;
    let actor = env.actor("alice").await;
    let edit = UpdateProfile {
        email: Some("alice@example.net".to_owned()),
        ..UpdateProfile::default()
    };
    env.users
        .update_profile(&actor, alice.id, edit)
        .await
        .unwrap();
    let stored = env
        .ports
        .tokens
        .find(
            &TokenHash::of(token.expose_secret()),
            TokenPurpose::ResetPassword,
            env.clock.now(),
        )
        .await;
    assert!(
        matches!(stored, Err(RepoError::NotFound)),
        "revoked in the store: {stored:?}"
    );
    invalid_token(env.reset(&token, NEW_PASSWORD).await, "revoked");
}

#[tokio::test]
async fn a_password_change_kills_outstanding_reset_links() {
    let env = Env::new();
    env.register("alice").await;
    let token = env.reset_token("alice@example.com").await;
    let actor = env.actor("alice").await;
    env.users
        .change_password(
            &actor,
            ChangePassword {
                current_password: SecretString::from(Fixture::PASSWORD),
                new_password: SecretString::from(NEW_PASSWORD),
            },
        )
        .await
        .unwrap();
    invalid_token(
        env.reset(&token, "yet another passphrase here").await,
        "a link asked for before the change",
    );
}

#[tokio::test]
async fn disabling_kills_links_so_enabling_again_does_not_revive_them() {
    let env = Env::new();
    let root = admin(&env, "root").await;
    env.mails().await;
    let alice = env.register("alice").await;
    let verify = env.token("verify_email").await;
    let reset = env.reset_token("alice@example.com").await;
    let admin = env.users.as_admin(&root).unwrap();
    admin
        .set_status(alice.id, UserStatus::Disabled)
        .await
        .unwrap();
    admin
        .set_status(alice.id, UserStatus::Active)
        .await
        .unwrap();
    invalid_token(env.reset(&reset, NEW_PASSWORD).await, "reset link");
    invalid_token(
        env.account
            .verify_email(&verify, &ClientInfo::default())
            .await,
        "verification link",
    );
    // And an admin cannot mail a disabled account a link.
    admin
        .set_status(alice.id, UserStatus::Disabled)
        .await
        .unwrap();
    let r = env.account.send_password_reset(&root, alice.id).await;
    let Err(UserError::Invalid(errors)) = r else {
        panic!("expected a refusal: {r:?}");
    };
    assert!(errors.field("user_id").next().is_some(), "{errors}");
    assert!(env.mails().await.is_empty(), "nothing queued");
}

/// The audit events of `subject`, oldest first, as (kind, outcome, actor, ip).
async fn audited(
    env: &Env,
    subject: crate::domain::UserId,
) -> Vec<(
    AuditKind,
    crate::domain::AuditOutcome,
    Option<crate::domain::UserId>,
    Option<String>,
)> {
    let query = crate::domain::AuditQuery {
        subject: Some(subject),
        ..crate::domain::AuditQuery::default()
    };
    let mut events = env.ports.audit.list(&query).await.unwrap().events;
    events.reverse();
    events
        .into_iter()
        .map(|e| (e.kind, e.outcome, e.actor, e.client.ip))
        .collect()
}

#[tokio::test]
async fn verification_admin_reset_links_and_resets_are_audited_with_their_client() {
    use crate::domain::AuditOutcome::Success;
    let env = Env::new();
    let root = admin(&env, "root").await.with_client(from_ip("10.0.0.1"));
    env.mails().await;
    let alice = env.register("alice").await;
    let token = env.token("verify_email").await;
    env.clock.advance(Duration::from_secs(1));
    env.account
        .verify_email(&token, &from_ip("10.0.0.2"))
        .await
        .unwrap();
    env.clock.advance(Duration::from_secs(1));
    env.account
        .send_password_reset(&root, alice.id)
        .await
        .unwrap();
    let token = env.token("reset_password").await;
    env.clock.advance(Duration::from_secs(1));
    env.account
        .reset_password(
            &token,
            SecretString::from(NEW_PASSWORD),
            &from_ip("10.0.0.3"),
        )
        .await
        .unwrap();
    assert_eq!(
        audited(&env, alice.id).await,
        [
            (AuditKind::Registered, Success, Some(alice.id), None),
            (
                AuditKind::EmailVerified,
                Success,
                None,
                Some("10.0.0.2".into())
            ),
            (
                AuditKind::PasswordResetSent,
                Success,
                Some(root.user_id),
                Some("10.0.0.1".into())
            ),
            (
                AuditKind::PasswordReset,
                Success,
                None,
                Some("10.0.0.3".into())
            ),
        ]
    );
    // A link refused leaves no success behind.
    invalid_token(
        env.account
            .reset_password(
                &token,
                SecretString::from(NEW_PASSWORD),
                &from_ip("10.0.0.4"),
            )
            .await,
        "used",
    );
    assert_eq!(audited(&env, alice.id).await.len(), 4);
}

/// Holds every composition until the test opens the gate.
struct GatedComposer(Arc<std::sync::Mutex<std::sync::mpsc::Receiver<()>>>);

impl MailComposer for GatedComposer {
    fn compose(&self, notice: &Notice, to: &Email) -> Result<Mail, ComposeError> {
        let gate = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = gate.recv();
        PlainComposer.compose(notice, to)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_requests_in_progress_are_bounded_whatever_the_address() {
    let policy = AuthPolicy {
        account: crate::auth::AccountPolicy {
            max_pending_link_requests: 1,
            ..crate::auth::AccountPolicy::default()
        },
        ..AuthPolicy::default()
    };
    let env = Env::with(policy.clone(), true);
    env.register("alice").await;
    let (open, gate) = std::sync::mpsc::channel();
    let account = AccountService::new(env.ports.clone(), &policy).with_mail_composer(Arc::new(
        GatedComposer(Arc::new(std::sync::Mutex::new(gate))),
    ));
    let client = from_ip("10.0.0.1");
    account
        .request_password_reset("alice@example.com", &client)
        .await
        .unwrap();
    // The first is held in composition: known and unknown addresses alike are refused.
    for email in ["alice@example.com", "nobody@example.com"] {
        let r = account.request_password_reset(email, &client).await;
        assert!(matches!(r, Err(AuthError::Overloaded)), "{email}: {r:?}");
    }
    open.send(()).unwrap();
    account.settled().await;
    drop(open);
    account
        .request_password_reset("nobody@example.com", &client)
        .await
        .unwrap();
    account.settled().await;
}

#[tokio::test]
async fn a_signed_out_person_gets_a_new_verification_link_only_for_an_unverified_account() {
    let env = Env::new();
    let alice = env.register("alice").await;
    // The first link is lost.
    let first = env.token("verify_email").await;
    let client = from_ip("10.0.0.9");
    for email in ["alice@example.com", "nobody@example.com"] {
        let r = env.account.request_verification(email, &client).await;
        assert!(r.is_ok(), "{email}: {r:?}");
    }
    let mails = env.mails().await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(
        (mails[0].0.as_str(), mails[0].1.as_str()),
        ("alice@example.com", "verify_email")
    );
    // The new link verifies; the one before it died.
    invalid_token(
        env.account.verify_email(&first, &client).await,
        "superseded",
    );
    let token = SecretString::from(mails[0].2.clone());
    let verified = env.account.verify_email(&token, &client).await.unwrap();
    assert_eq!(verified.id, alice.id);
    // A verified address gets nothing, with the same answer.
    env.account
        .request_verification("alice@example.com", &client)
        .await
        .unwrap();
    assert_eq!(env.mails().await, [], "nothing for a verified address");
    let bad = env
        .account
        .request_verification("not an address", &client)
        .await;
    assert!(matches!(bad, Err(AuthError::Invalid(_))), "{bad:?}");
}

#[tokio::test]
async fn verification_requests_by_address_are_limited_per_address() {
    let env = Env::new();
    env.register("alice").await;
    env.mails().await;
    let mut answers = Vec::new();
    for i in 0..6 {
        let client = from_ip(&format!("10.0.1.{i}"));
        answers.push(
            env.account
                .request_verification("alice@example.com", &client)
                .await
                .is_ok(),
        );
    }
    assert_eq!(answers, [true, true, true, true, true, false]);
}

#[tokio::test]
async fn every_change_of_a_second_factor_is_mailed_to_its_owner() {
    use crate::auth::{SecondStep, SignIn};
    use crate::factor::totp_code;

    let mut policy = AuthPolicy::default();
    policy.second_factor.required_for_admins = true;
    let env = Env::with(policy, true);
    let root = env
        .auth
        .create_user(
            crate::auth::RegisterUser {
                username: "root".into(),
                email: "root@example.com".into(),
                password: SecretString::from(Fixture::PASSWORD),
                display_name: None,
            },
            Role::Admin,
        )
        .await
        .unwrap();
    env.register("ada").await;
    env.mails().await;

    // Enrolment required at sign-in: whoever knew the password enrolled an app.
    let credentials = Credentials::new("root", SecretString::from(Fixture::PASSWORD));
    let SignIn::SecondStep(challenge) = env
        .auth
        .sign_in(credentials, ClientInfo::default())
        .await
        .unwrap()
    else {
        panic!("no enrolment asked for");
    };
    let setup = env.auth.start_enrolment(&challenge.token).await.unwrap();
    let code = totp_code(setup.secret.expose_secret(), env.clock.now());
    let step = SecondStep::new(challenge.token, SecretString::from(code));
    let (pair, _) = env
        .auth
        .complete_enrolment(step, ClientInfo::default())
        .await
        .unwrap();
    let mails = env.mails().await;
    assert_eq!(
        mails,
        [(
            "root@example.com".to_owned(),
            "second_factor_changed".to_owned(),
            "enabled=true by_admin=false".to_owned()
        )]
    );

    // From the profile, and an admin's reset.
    let ada = env.actor("ada").await;
    let setup = env
        .users
        .start_totp_enrolment(&ada, &SecretString::from(Fixture::PASSWORD))
        .await
        .unwrap();
    let code = totp_code(setup.secret.expose_secret(), env.clock.now());
    env.users
        .confirm_totp_enrolment(&ada, &SecretString::from(code))
        .await
        .unwrap();
    let root_actor = env
        .auth
        .authenticate(pair.access_token.expose_secret())
        .await
        .unwrap();
    assert_eq!(root_actor.user_id, root.id);
    env.users
        .as_admin(&root_actor)
        .unwrap()
        .reset_second_factor(ada.user_id)
        .await
        .unwrap();
    let kinds: Vec<_> = env
        .mails()
        .await
        .into_iter()
        .map(|(to, _, text)| (to, text))
        .collect();
    assert_eq!(
        kinds,
        [
            (
                "ada@example.com".to_owned(),
                "enabled=true by_admin=false".to_owned()
            ),
            (
                "ada@example.com".to_owned(),
                "enabled=false by_admin=true".to_owned()
            ),
        ]
    );
}

#[tokio::test]
async fn a_reset_does_not_refill_the_budget_wrong_codes_spent() {
    use crate::auth::{SecondStep, SignIn};
    use crate::factor::totp_code;

    let env = Env::new();
    env.register("ada").await;
    let ada = env.actor("ada").await;
    let setup = env
        .users
        .start_totp_enrolment(&ada, &SecretString::from(Fixture::PASSWORD))
        .await
        .unwrap();
    let code = totp_code(setup.secret.expose_secret(), env.clock.now());
    env.users
        .confirm_totp_enrolment(&ada, &SecretString::from(code))
        .await
        .unwrap();
    let sign_in = |password: &'static str| {
        env.auth.sign_in(
            Credentials::new("ada", SecretString::from(password)),
            ClientInfo::default(),
        )
    };
    // Someone with the password but not the phone spends the account's budget on codes.
    for _ in 0..5 {
        let Ok(SignIn::SecondStep(challenge)) = sign_in(Fixture::PASSWORD).await else {
            panic!("no second step");
        };
        let step = SecondStep::new(challenge.token, SecretString::from("000000"));
        let err = env.auth.complete_sign_in(step, ClientInfo::default()).await;
        assert!(matches!(err, Err(AuthError::InvalidCode)), "{err:?}");
    }
    // With the mailbox too, a reset does not buy fresh guesses.
    env.mails().await;
    env.request_reset("ada@example.com").await.unwrap();
    let token = env.token("reset_password").await;
    env.reset(&token, NEW_PASSWORD).await.unwrap();
    let err = sign_in(NEW_PASSWORD).await;
    assert!(matches!(err, Err(AuthError::Throttled { .. })), "{err:?}");
}
