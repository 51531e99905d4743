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

use secrecy::ExposeSecret;

use super::conformance::mail;
use super::{FastHasher, FixedClock, Fixture, RecordingMailer};
use crate::domain::{PasswordHash, Role, UserStatus};
use crate::error::AuthError;
use crate::mail::{DeliveryPolicy, deliver_periodically};
use crate::password::HashCeiling;
use crate::ports::{Clock, Mail, MailOutbox, Mailer, SystemClock};
use crate::transfer::{export_users, import_users};
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
            two_instances_deliver_each_of_50_mails_exactly_once,
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
    assert!(
        f.auth
            .authenticate(second.access_token.expose_secret())
            .await
            .is_err()
    );

    let third = f.login("alice", PW).await.unwrap();
    let actor = f
        .auth
        .authenticate(third.access_token.expose_secret())
        .await
        .unwrap();
    f.auth.logout(&actor).await.unwrap();
    assert!(
        f.auth
            .authenticate(third.access_token.expose_secret())
            .await
            .is_err()
    );
}

/// An account locked by failed sign-ins on one instance is locked on another instance
/// with its own handle on the database.
pub async fn lockout_holds_across_service_instances_sharing_the_database(db: &dyn TestDatabase) {
    let one = instance(db.storage());
    one.register("alice").await;
    for _ in 0..5 {
        assert!(one.login("alice", "wrong wrong wrong").await.is_err());
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

/// An admin disabling a user ends the user's access and refresh tokens.
pub async fn disabling_a_user_ends_their_sessions_in_the_database(db: &dyn TestDatabase) {
    let f = instance(db.storage());
    f.register_admin("root").await;
    let bob = f.register("bob").await;
    let bob_tokens = f.login("bob", PW).await.unwrap();
    let root = f.actor("root").await;
    f.users
        .as_admin(&root)
        .unwrap()
        .set_status(bob.id, UserStatus::Disabled)
        .await
        .unwrap();
    assert!(
        f.auth
            .authenticate(bob_tokens.access_token.expose_secret())
            .await
            .is_err()
    );
    assert!(
        f.auth
            .refresh(
                &bob_tokens.refresh_token,
                &crate::domain::ClientInfo::default()
            )
            .await
            .is_err()
    );
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
        rejected.push(e.to_string());
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
