//! The service suite: the core services end to end over a real database, including what
//! only shows with two instances of the service on one database (a lockout, mail delivery
//! workers) and with two databases (export and import):
//!
//! ```text
//! mod services {
//!     // `database` is an async fn returning a fresh `impl TestDatabase` (or an `Option`
//!     // of one) per call: a new, empty database each time.
//!     user_core::service_tests!(crate::database);
//! }
//! ```

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::conformance::mail;
use super::{FastHasher, FixedClock, Fixture, RecordingMailer};
use crate::auth::{AuthPolicy, Credentials, RegisterUser, SecondStep, SignIn};
use crate::domain::{
    Actor, AuditKind, AuditOutcome, AuditQuery, ClientInfo, PasswordHash, Role, TokenHash, UserId,
    UserStatus,
};
use crate::error::{AuthError, RepoError, UserError};
use crate::factor::{FactorKey, TotpAuthenticator, totp_code};
use crate::mail::{DeliveryPolicy, deliver_periodically};
use crate::password::HashCeiling;
use crate::ports::{Clock, Mail, MailOutbox, Mailer, SystemClock};
use crate::transfer::{ImportEvent, export_users, import_users};
use crate::users::{ChangePassword, UpdateProfile};
use crate::{Ports, Storage};

/// A fresh database under test, which can be opened a second time as another instance of
/// the service would open it. Whatever backs it is dropped with the value.
#[async_trait::async_trait]
pub trait TestDatabase: Send + Sync {
    /// The storage ports of this database, all on one handle (one connection pool).
    fn storage(&self) -> Storage;

    /// The storage ports of a second, independent handle on the same database (its own
    /// connection pool), as another process would open it.
    async fn reopen(&self) -> Storage;
}

/// What a factory of [`service_tests!`](crate::service_tests) returns: a
/// [`TestDatabase`], or an `Option` of one where `None` means that the database is not
/// configured on this machine and the check is skipped.
pub trait MaybeTestDatabase {
    /// The database, when there is one.
    type Database: TestDatabase;

    /// The database, or `None` to skip the check.
    fn into_database(self) -> Option<Self::Database>;
}

impl<D: TestDatabase> MaybeTestDatabase for D {
    type Database = D;

    fn into_database(self) -> Option<D> {
        Some(self)
    }
}

impl<D: TestDatabase> MaybeTestDatabase for Option<D> {
    type Database = D;

    fn into_database(self) -> Option<D> {
        self
    }
}

/// Generates one multi-thread `#[tokio::test]` per service check, each calling
/// `$factory().await` for every fresh database it needs (see [`MaybeTestDatabase`]).
#[macro_export]
macro_rules! service_tests {
    ($factory:path) => {
        $crate::service_tests!(@one $factory;
            register_login_refresh_reuse_and_logout,
            lockout_holds_across_service_instances_sharing_the_database,
            imported_bcrypt_hashes_upgrade_in_the_database,
            disabling_a_user_ends_their_sessions_in_the_database,
            deleting_a_user_ends_their_sessions_in_the_database,
            the_last_two_admins_acting_on_each_other_at_once_leave_one,
            two_instances_deliver_each_of_50_mails_exactly_once,
            an_accounts_life_is_audited_and_its_end_anonymized,
            second_factor_sign_in_spans_instances,
        );
        $crate::service_tests!(@two $factory;
            users_move_between_databases_and_a_rerun_adds_nothing,
        );
    };
    (@one $factory:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                use $crate::testing::services::MaybeTestDatabase as _;
                let ::core::option::Option::Some(database) = $factory().await.into_database()
                else {
                    return;
                };
                $crate::testing::services::$check(&database).await;
            }
        )*
    };
    (@two $factory:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                use $crate::testing::services::MaybeTestDatabase as _;
                let (::core::option::Option::Some(a), ::core::option::Option::Some(b)) = (
                    $factory().await.into_database(),
                    $factory().await.into_database(),
                ) else {
                    return;
                };
                $crate::testing::services::$check(&a, &b).await;
            }
        )*
    };
}

const PW: &str = Fixture::PASSWORD;

/// Long enough for a loaded 2-core machine; a check ends as soon as the mail is sent.
const PATIENCE: Duration = Duration::from_secs(30);

/// A real bcrypt hash of "pw" made by Python's `bcrypt.hashpw` (cost 4 to stay fast), as the
/// legacy service stored them.
const PYTHON_BCRYPT_OF_PW: &str = "$2b$04$s4eAIgiVALQYr0XRQZ6cU.N08ObhUoT1iyYIlPhcEWz2A.nF7nqN6";

/// Both services over `storage`, with a fast hasher and a fixed clock: one instance of the
/// service.
fn instance(storage: Storage) -> Fixture {
    let clock = Arc::new(FixedClock::default());
    let ports = Ports::new(storage, Arc::new(FastHasher::new()), clock.clone());
    Fixture::with_ports(ports, clock)
}

/// An instance that seals second-factor secrets with `totp`, as every instance of one
/// deployment shares the key.
fn instance_with(storage: Storage, totp: Arc<TotpAuthenticator>) -> Fixture {
    let clock = Arc::new(FixedClock::default());
    let ports = Ports::new(storage, Arc::new(FastHasher::new()), clock.clone());
    Fixture::with_second_factors(ports, clock, AuthPolicy::default(), totp)
}

/// Ada's password step on `f`: the challenge, or `None` when she is signed in at once.
async fn ada_signs_in(f: &Fixture, device: Option<SecretString>) -> Option<crate::auth::Challenge> {
    let credentials = Credentials::new("ada", SecretString::from(PW)).with_device_token(device);
    match f
        .auth
        .sign_in(credentials, ClientInfo::default())
        .await
        .unwrap()
    {
        SignIn::SecondStep(challenge) => Some(challenge),
        SignIn::Complete(_) => None,
    }
}

/// The two steps of a sign-in with an authenticator app, on two instances sharing the
/// database and the key: the challenge, the spent step, the recovery codes and the trusted
/// device are in the database, so each instance sees what the other did.
pub async fn second_factor_sign_in_spans_instances(db: &dyn TestDatabase) {
    let totp = Arc::new(TotpAuthenticator::new(
        FactorKey::generate().unwrap(),
        "user-management",
    ));
    let one = instance_with(db.storage(), Arc::clone(&totp));
    let two = instance_with(db.reopen().await, totp);
    one.register("ada").await;
    let ada = one.actor("ada").await;
    let (secret, codes) = one.enrol(&ada).await;
    for f in [&one, &two] {
        f.clock.advance(Duration::from_secs(30));
    }
    let code = totp_code(&secret, two.clock.now());
    let challenge = ada_signs_in(&one, None).await.unwrap();
    let step = |challenge: &crate::auth::Challenge, code: &str| {
        SecondStep::new(challenge.token.clone(), SecretString::from(code))
    };
    let pair = two
        .auth
        .complete_sign_in(step(&challenge, &code), ClientInfo::default())
        .await
        .unwrap();
    // (Each fixture signs with its own key: the instance that issued the token checks it.)
    assert!(
        two.auth
            .authenticate(pair.access_token.expose_secret())
            .await
            .is_ok()
    );
    // The challenge was spent on the second instance, the code's step too.
    let err = one
        .auth
        .complete_sign_in(step(&challenge, &code), ClientInfo::default())
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::ChallengeExpired), "{err:?}");
    let again = ada_signs_in(&one, None).await.unwrap();
    let err = one
        .auth
        .complete_sign_in(step(&again, &code), ClientInfo::default())
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::InvalidCode), "a replay: {err:?}");
    // A recovery code spent on one instance is spent on both.
    let recovery = codes[0].expose_secret();
    two.auth
        .complete_sign_in(step(&again, recovery), ClientInfo::default())
        .await
        .unwrap();
    let third = ada_signs_in(&two, None).await.unwrap();
    let err = one
        .auth
        .complete_sign_in(step(&third, recovery), ClientInfo::default())
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::InvalidCode), "{err:?}");
    assert_eq!(
        two.users
            .second_factor(&ada)
            .await
            .unwrap()
            .recovery_codes_left,
        9
    );
    // Trust given on one instance holds on the other.
    let mut trusted = step(&third, codes[1].expose_secret());
    trusted.trust_device = true;
    let pair = one
        .auth
        .complete_sign_in(trusted, ClientInfo::default())
        .await
        .unwrap();
    assert!(ada_signs_in(&two, pair.device_token).await.is_none());
}

/// Registration, sign-in by email in any case, refresh, reuse detection (which revokes the
/// session for everybody) and logout.
pub async fn register_login_refresh_reuse_and_logout(db: &dyn TestDatabase) {
    let f = instance(db.storage());
    let alice = f.register("alice").await;
    let first = f.login("Alice@Example.com", PW).await.unwrap();
    assert_eq!(first.user, alice);
    let second = f
        .auth
        .refresh(&first.refresh_token, &crate::domain::ClientInfo::default())
        .await
        .unwrap();
    let actor = f
        .auth
        .authenticate(second.access_token.expose_secret())
        .await
        .unwrap();
    assert_eq!(actor.user_id, alice.id);
    // Reuse of the spent token revokes the session for everybody.
    assert!(matches!(
        f.auth
            .refresh(&first.refresh_token, &crate::domain::ClientInfo::default())
            .await,
        Err(AuthError::Unauthenticated)
    ));
    assert!(matches!(
        f.auth
            .authenticate(second.access_token.expose_secret())
            .await,
        Err(AuthError::Unauthenticated)
    ));

    let third = f.login("alice", PW).await.unwrap();
    let actor = f
        .auth
        .authenticate(third.access_token.expose_secret())
        .await
        .unwrap();
    f.auth.logout(&actor).await.unwrap();
    assert!(matches!(
        f.auth
            .authenticate(third.access_token.expose_secret())
            .await,
        Err(AuthError::Unauthenticated)
    ));
}

/// An account locked by failed sign-ins on one instance is locked on another instance
/// with its own handle on the database.
pub async fn lockout_holds_across_service_instances_sharing_the_database(db: &dyn TestDatabase) {
    let one = instance(db.storage());
    one.register("alice").await;
    for _ in 0..5 {
        assert!(matches!(
            one.login("alice", "wrong wrong wrong").await,
            Err(AuthError::InvalidCredentials)
        ));
    }
    // A second instance (another process in production) sees the same lock.
    let two = instance(db.reopen().await);
    let err = two.login("alice", PW).await.unwrap_err();
    assert!(matches!(err, AuthError::Throttled { .. }), "{err:?}");
}

/// A sign-in with an imported bcrypt hash succeeds and stores an Argon2id hash instead.
pub async fn imported_bcrypt_hashes_upgrade_in_the_database(db: &dyn TestDatabase) {
    let storage = db.storage();
    let users = Arc::clone(&storage.users);
    let f = instance(storage);
    let legacy = f.register("legacy").await;
    let bcrypt = PasswordHash::new(PYTHON_BCRYPT_OF_PW);
    users
        .update_password_hash(legacy.id, &bcrypt, legacy.created_at)
        .await
        .unwrap();
    assert!(f.login("legacy", "pw").await.is_ok());
    let stored = users.password_hash(legacy.id).await.unwrap();
    assert!(stored.as_str().starts_with("$argon2id$"));
}

/// Disabling a user ends their sessions in the store: each of their sessions, token and
/// browser, is revoked at the moment of the disable, and their device tokens are gone;
/// other users' sessions are untouched. Enabled again, the user's old access token,
/// refresh token and cookie still do not work: only the revocation can refuse them then
/// (`authenticate` refuses a disabled user whatever their sessions say).
pub async fn disabling_a_user_ends_their_sessions_in_the_database(db: &dyn TestDatabase) {
    let f = instance(db.storage());
    f.register_admin("root").await;
    let bob = f.register("bob").await;
    let bob_tokens = f.login("bob", PW).await.unwrap();
    let bob_browser = f
        .auth
        .login_browser(
            Credentials::new("bob", SecretString::from(PW)),
            ClientInfo::default(),
        )
        .await
        .unwrap();
    let root = f.actor("root").await;
    let sessions = &f.ports.sessions;
    let bobs = [bob_tokens.session_id, bob_browser.session_id];
    let active = sessions.list_active(bob.id, f.clock.now()).await.unwrap();
    assert_eq!(active.len(), 2, "{active:?}");
    let devices = [
        bob_tokens.device_token.as_ref().unwrap(),
        &bob_browser.device_token,
    ]
    .map(|d| TokenHash::of(d.expose_secret()));
    for hash in &devices {
        let found = f.ports.devices.find(hash).await;
        assert_eq!(found.ok().map(|d| d.user_id), Some(bob.id));
    }

    f.clock.advance(Duration::from_secs(5));
    let disabled_at = f.clock.now();
    let admin = f.users.as_admin(&root).unwrap();
    admin
        .set_status(bob.id, UserStatus::Disabled)
        .await
        .unwrap();
    for id in bobs {
        let session = sessions.get(id).await.unwrap();
        assert_eq!(session.revoked_at, Some(disabled_at), "session {id}");
    }
    let active = sessions.list_active(bob.id, disabled_at).await.unwrap();
    assert!(active.is_empty(), "{active:?}");
    for hash in &devices {
        let found = f.ports.devices.find(hash).await;
        assert!(matches!(found, Err(RepoError::NotFound)), "{found:?}");
    }
    let roots = sessions.get(root.session_id).await.unwrap();
    assert_eq!(roots.revoked_at, None, "another user's session");

    admin.set_status(bob.id, UserStatus::Active).await.unwrap();
    let r = f
        .auth
        .authenticate(bob_tokens.access_token.expose_secret())
        .await;
    assert!(matches!(r, Err(AuthError::Unauthenticated)), "{r:?}");
    let r = f
        .auth
        .authenticate_browser(bob_browser.session_token.expose_secret())
        .await;
    assert!(matches!(r, Err(AuthError::Unauthenticated)), "{r:?}");
    let r = f
        .auth
        .refresh(&bob_tokens.refresh_token, &ClientInfo::default())
        .await;
    assert!(matches!(r, Err(AuthError::Unauthenticated)), "{r:?}");
    let back = f.login("bob", PW).await.unwrap();
    assert!(!bobs.contains(&back.session_id), "a new session");
}

/// Deleting a user, by an admin or by themselves, ends their sessions in the store: the
/// sessions, their refresh tokens and cookies, and the device tokens are gone; other users'
/// sessions are untouched.
pub async fn deleting_a_user_ends_their_sessions_in_the_database(db: &dyn TestDatabase) {
    let f = instance(db.storage());
    f.register_admin("root").await;
    let root = f.actor("root").await;
    for (name, by_admin) in [("bob", true), ("carol", false)] {
        let user = f.register(name).await;
        let tokens = f.login(name, PW).await.unwrap();
        let browser = f
            .auth
            .login_browser(
                Credentials::new(name, SecretString::from(PW)),
                ClientInfo::default(),
            )
            .await
            .unwrap();
        let sessions = &f.ports.sessions;
        assert_eq!(
            sessions
                .list_active(user.id, f.clock.now())
                .await
                .unwrap()
                .len(),
            2
        );
        let devices = [tokens.device_token.as_ref().unwrap(), &browser.device_token]
            .map(|d| TokenHash::of(d.expose_secret()));
        for hash in &devices {
            let found = f.ports.devices.find(hash).await;
            assert_eq!(found.ok().map(|d| d.user_id), Some(user.id), "{name}");
        }
        if by_admin {
            f.users
                .as_admin(&root)
                .unwrap()
                .delete(user.id)
                .await
                .unwrap();
        } else {
            let actor = f
                .auth
                .authenticate(tokens.access_token.expose_secret())
                .await
                .unwrap();
            f.users
                .delete_own_account(&actor, &SecretString::from(PW))
                .await
                .unwrap();
        }
        for id in [tokens.session_id, browser.session_id] {
            let got = sessions.get(id).await;
            assert!(matches!(got, Err(RepoError::NotFound)), "{name}: {got:?}");
        }
        let cookie = TokenHash::of(browser.session_token.expose_secret());
        let got = sessions.find_by_cookie(&cookie).await;
        assert!(matches!(got, Err(RepoError::NotFound)), "{name}: {got:?}");
        let now = f.clock.now();
        let got = sessions
            .rotate_refresh_token(
                &TokenHash::of(tokens.refresh_token.expose_secret()),
                &TokenHash::of("next"),
                now,
                now - time::Duration::hours(1),
            )
            .await;
        assert!(matches!(got, Err(RepoError::NotFound)), "{name}: {got:?}");
        for hash in &devices {
            let got = f.ports.devices.find(hash).await;
            assert!(matches!(got, Err(RepoError::NotFound)), "{name}: {got:?}");
        }
        let roots = sessions.get(root.session_id).await.unwrap();
        assert_eq!(roots.revoked_at, None, "another user's session");
    }
}

/// What an admin does to the other of the last two active admins.
#[derive(Debug, Clone, Copy)]
enum AdminStep {
    Demote,
    Disable,
    Delete,
}

impl AdminStep {
    async fn apply(self, f: &Fixture, by: &Actor, on: UserId) -> Result<(), UserError> {
        let admin = f.users.as_admin(by)?;
        match self {
            Self::Demote => admin.set_role(on, Role::User).await.map(drop),
            Self::Disable => admin.set_status(on, UserStatus::Disabled).await.map(drop),
            Self::Delete => admin.delete(on).await,
        }
    }
}

/// Rounds of each race in [`the_last_two_admins_acting_on_each_other_at_once_leave_one`].
const ADMIN_RACE_ROUNDS: usize = 5;

/// The last two active admins demote, disable or delete each other at once, through the
/// service, on two threads: every round, exactly one succeeds, the other is refused with
/// `LastAdmin`, and exactly one active admin is left, untouched.
pub async fn the_last_two_admins_acting_on_each_other_at_once_leave_one(db: &dyn TestDatabase) {
    let f = Arc::new(instance(db.storage()));
    let mut survivor: Option<(UserId, Actor)> = None;
    for step in [AdminStep::Demote, AdminStep::Disable, AdminStep::Delete] {
        for round in 0..ADMIN_RACE_ROUNDS {
            let (a, b) = (format!("a-{step:?}-{round}"), format!("b-{step:?}-{round}"));
            let (a_user, b_user) = (f.register_admin(&a).await, f.register_admin(&b).await);
            let (a_actor, b_actor) = (f.actor(&a).await, f.actor(&b).await);
            // Start from exactly these two: the last round's survivor steps down.
            if let Some((id, _)) = survivor.take() {
                let admin = f.users.as_admin(&a_actor).unwrap();
                admin.set_role(id, Role::User).await.unwrap();
            }
            assert_eq!(f.ports.users.count_active_admins().await.unwrap(), 2);

            let start = Arc::new(tokio::sync::Barrier::new(2));
            let race = |by: Actor, on: UserId| {
                let (f, start) = (Arc::clone(&f), Arc::clone(&start));
                tokio::spawn(async move {
                    start.wait().await;
                    step.apply(&f, &by, on).await
                })
            };
            let (ta, tb) = (
                race(a_actor.clone(), b_user.id),
                race(b_actor.clone(), a_user.id),
            );
            let (ra, rb) = (ta.await.unwrap(), tb.await.unwrap());
            let kept = match (&ra, &rb) {
                (Ok(()), Err(UserError::LastAdmin)) => (a_user.id, a_actor),
                (Err(UserError::LastAdmin), Ok(())) => (b_user.id, b_actor),
                _ => panic!("{step:?}, round {round}: {ra:?} and {rb:?}"),
            };
            assert_eq!(
                f.ports.users.count_active_admins().await.unwrap(),
                1,
                "{step:?}, round {round}"
            );
            let left = f.ports.users.get(kept.0).await.unwrap();
            assert_eq!(
                (left.role, left.status),
                (Role::Admin, UserStatus::Active),
                "{step:?}, round {round}"
            );
            survivor = Some(kept);
        }
    }
}

/// Users exported from one database as JSON lines import into another, field for field,
/// and can sign in there; importing the same file again adds nothing.
pub async fn users_move_between_databases_and_a_rerun_adds_nothing(
    a: &dyn TestDatabase,
    b: &dyn TestDatabase,
) {
    let (a_storage, b_storage) = (a.storage(), b.storage());
    let (a_users, b_users) = (Arc::clone(&a_storage.users), Arc::clone(&b_storage.users));
    let from = instance(a_storage);
    from.register_admin("root").await;
    from.register("alice").await;
    let mut file = Vec::new();
    assert_eq!(export_users(&*a_users, &mut file).await.unwrap(), 2);

    let mut rejected = Vec::new();
    let summary = import_users(&*b_users, &HashCeiling::default(), file.as_slice(), |e| {
        if matches!(e, ImportEvent::Rejected { .. }) {
            rejected.push(e.to_string());
        }
    })
    .await
    .unwrap();
    assert_eq!(
        summary.to_string(),
        "2 imported, 0 already present, 0 rejected"
    );
    assert!(rejected.is_empty(), "{rejected:?}");
    let again = import_users(&*b_users, &HashCeiling::default(), file.as_slice(), |_| {})
        .await
        .unwrap();
    assert_eq!((again.imported, again.already_present), (0, 2));

    let to = instance(b_storage);
    let root = to.login("root", PW).await.unwrap();
    assert_eq!(root.user.role, Role::Admin);
    let mut copy = Vec::new();
    export_users(&*b_users, &mut copy).await.unwrap();
    assert_eq!(
        String::from_utf8(copy).unwrap(),
        String::from_utf8(file).unwrap(),
        "the same users, field for field"
    );
}

/// A delivery worker on `outbox`, stopped by the returned sender.
fn spawn_worker(
    outbox: Arc<dyn MailOutbox>,
    mailer: &Arc<RecordingMailer>,
    policy: DeliveryPolicy,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(deliver_periodically(
        outbox,
        Arc::clone(mailer) as Arc<dyn Mailer>,
        Arc::new(SystemClock),
        policy,
        async {
            let _ = stopped.await;
        },
    ));
    (stop, task)
}

/// The delivery workers of two instances (two handles on one database) share the outbox:
/// each of 50 queued mails is sent exactly once, then deleted.
pub async fn two_instances_deliver_each_of_50_mails_exactly_once(db: &dyn TestDatabase) {
    let (one, two) = (db.storage(), db.reopen().await);
    let mails: Vec<Mail> = (0..50)
        .map(|n| mail(&format!("user{n}@example.com"), &n.to_string()))
        .collect();
    let now = SystemClock.now();
    for m in &mails {
        one.outbox.enqueue(m, now).await.unwrap();
    }
    let mailer = Arc::new(RecordingMailer::accepting());
    let policy = DeliveryPolicy {
        every: Duration::from_millis(100),
        batch: 7,
        ..DeliveryPolicy::default()
    };
    let (stop_a, a) = spawn_worker(Arc::clone(&one.outbox), &mailer, policy);
    let (stop_b, b) = spawn_worker(two.outbox, &mailer, policy);
    tokio::time::timeout(PATIENCE, mailer.wait_for_calls(50))
        .await
        .expect("all 50 mails sent");
    stop_a.send(()).unwrap();
    stop_b.send(()).unwrap();
    a.await.unwrap();
    b.await.unwrap();
    let accepted = mailer.accepted();
    assert_eq!(accepted.len(), 50, "no mail sent twice");
    let unique: HashSet<_> = accepted.into_iter().collect();
    assert_eq!(unique, mails.iter().map(|m| m.id).collect::<HashSet<_>>());
    let later = SystemClock.now() + Duration::from_secs(3600);
    assert_eq!(one.outbox.pending(later).await.unwrap(), 0, "all deleted");
}

fn from_ip(ip: &str) -> ClientInfo {
    ClientInfo::new(Some("test-agent/1.0"), Some(ip))
}

async fn sign_in(
    f: &Fixture,
    identifier: &str,
    password: &str,
    ip: &str,
) -> Result<crate::auth::TokenPair, AuthError> {
    f.auth
        .login(
            Credentials::new(identifier, SecretString::from(password)),
            from_ip(ip),
        )
        .await
}

/// Signs `name` in from `ip` and returns the actor of that session, at that address.
async fn signed_in(f: &Fixture, name: &str, password: &str, ip: &str) -> crate::domain::Actor {
    let tokens = sign_in(f, name, password, ip).await.unwrap();
    f.auth
        .authenticate(tokens.access_token.expose_secret())
        .await
        .unwrap()
        .with_client(from_ip(ip))
}

/// Every step of an account's life leaves its event, with who did it and from where; the
/// owner's deletion strips their addresses and typed identifiers and leaves a `deleted`
/// record, while an admin's own address on what they did stays.
pub async fn an_accounts_life_is_audited_and_its_end_anonymized(db: &dyn TestDatabase) {
    use AuditKind as K;
    use AuditOutcome::{Failure as F, Success as S};
    let f = instance(db.storage());
    let tick = || f.clock.advance(Duration::from_secs(1));
    f.register_admin("root").await;
    let root = f.actor("root").await.with_client(from_ip("10.0.0.1"));
    let admin = f.users.as_admin(&root).unwrap();
    let alice = f
        .auth
        .register(
            RegisterUser {
                username: "alice".into(),
                email: "alice@example.com".into(),
                password: SecretString::from(PW),
                display_name: None,
            },
            &from_ip("10.1.0.1"),
        )
        .await
        .unwrap();
    tick();
    assert!(matches!(
        sign_in(&f, "nobody", "x", "10.9.9.9").await,
        Err(AuthError::InvalidCredentials)
    ));
    assert!(matches!(
        sign_in(&f, "Alice", "wrong guess", "10.9.9.9").await,
        Err(AuthError::InvalidCredentials)
    ));
    tick();
    let me = signed_in(&f, "alice", PW, "10.1.0.2").await;
    tick();
    let change = |current: &str| ChangePassword {
        current_password: SecretString::from(current),
        new_password: SecretString::from("a brand new passphrase"),
    };
    assert!(matches!(
        f.users.change_password(&me, change("wrong")).await,
        Err(UserError::InvalidCredentials)
    ));
    f.users.change_password(&me, change(PW)).await.unwrap();
    tick();
    let edit = UpdateProfile {
        email: Some("alice@example.org".into()),
        display_name: Some("Alice".into()),
        ..UpdateProfile::default()
    };
    f.users.update_profile(&me, alice.id, edit).await.unwrap();
    tick();
    admin.set_role(alice.id, Role::Admin).await.unwrap();
    admin.set_role(alice.id, Role::User).await.unwrap();
    tick();
    admin
        .set_status(alice.id, UserStatus::Disabled)
        .await
        .unwrap();
    admin
        .set_status(alice.id, UserStatus::Active)
        .await
        .unwrap();
    admin.unlock(alice.id).await.unwrap();
    tick();
    let me = signed_in(&f, "alice", "a brand new passphrase", "10.1.0.3").await;
    let data = f.users.export_own_data(&me).await.unwrap();
    assert_eq!(data.user.id, alice.id);
    assert_eq!(data.sessions.len(), 1, "only the session in use is active");
    assert!(
        data.events.iter().all(|e| e.subject == Some(alice.id)),
        "only alice's events"
    );
    tick();
    f.auth.logout(&me).await.unwrap();

    let query = AuditQuery {
        subject: Some(alice.id),
        limit: AuditQuery::MAX_LIMIT,
        ..AuditQuery::default()
    };
    let mut events = f.ports.audit.list(&query).await.unwrap().events;
    events.reverse();
    let (a, r) = (Some(alice.id), Some(root.user_id));
    let seen: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e.kind,
                e.outcome,
                e.actor,
                e.client.ip.as_deref(),
                e.identifier.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (K::Registered, S, a, Some("10.1.0.1"), None),
            (K::SignIn, F, None, Some("10.9.9.9"), Some("Alice")),
            (K::SignIn, S, a, Some("10.1.0.2"), Some("alice")),
            (K::PasswordChanged, F, a, Some("10.1.0.2"), None),
            (K::PasswordChanged, S, a, Some("10.1.0.2"), None),
            (K::EmailChanged, S, a, Some("10.1.0.2"), None),
            (K::ProfileUpdated, S, a, Some("10.1.0.2"), None),
            (K::RoleChanged, S, r, Some("10.0.0.1"), None),
            (K::RoleChanged, S, r, Some("10.0.0.1"), None),
            (K::Disabled, S, r, Some("10.0.0.1"), None),
            (K::Enabled, S, r, Some("10.0.0.1"), None),
            (K::Unlocked, S, r, Some("10.0.0.1"), None),
            (K::SignIn, S, a, Some("10.1.0.3"), Some("alice")),
            (K::DataExported, S, a, Some("10.1.0.3"), None),
            (K::Logout, S, a, Some("10.1.0.3"), None),
        ]
    );
    let details: Vec<_> = events.iter().map(|e| e.detail.as_deref()).collect();
    assert_eq!(details[1], Some("wrong_password"));
    assert_eq!(details[6], Some("display_name"));
    assert_eq!(details[7], Some("admin"));
    // The unknown identifier left an event naming nobody and keeping no typed text.
    let anonymous = AuditQuery {
        kind: Some(K::SignIn),
        outcome: Some(F),
        ..AuditQuery::default()
    };
    let failures = f.ports.audit.list(&anonymous).await.unwrap().events;
    let stranger = failures.iter().find(|e| e.subject.is_none()).unwrap();
    assert_eq!(
        (stranger.identifier.as_deref(), stranger.detail.as_deref()),
        (None, Some("unknown_identifier"))
    );

    // The owner leaves: their addresses and typed identifiers go, the admin's stay.
    let me = signed_in(&f, "alice", "a brand new passphrase", "10.1.0.4").await;
    tick();
    f.users
        .delete_own_account(&me, &SecretString::from("a brand new passphrase"))
        .await
        .unwrap();
    let events = f.ports.audit.list(&query).await.unwrap().events;
    let last = &events[0];
    assert_eq!(
        (last.kind, last.outcome, last.actor, &last.client),
        (K::Deleted, S, a, &ClientInfo::default())
    );
    for e in &events {
        assert_eq!(e.identifier, None, "{e:?}");
        if e.actor == r {
            assert_eq!(e.client.ip.as_deref(), Some("10.0.0.1"), "{e:?}");
        } else {
            assert_eq!(e.client, ClientInfo::default(), "{e:?}");
        }
    }
}
