//! Races that only a real database can lose, at READ COMMITTED (PostgreSQL's default) and
//! again at SERIALIZABLE, where conflicts fail with SQLSTATE 40001 and the store retries.

use std::sync::Arc;

use time::OffsetDateTime;
use time::macros::datetime;
use tokio::sync::Barrier;
use user_core::domain::{
    ClientInfo, DeviceToken, Email, NewSession, NewUser, PasswordHash, Role, Rotation, Session,
    SessionId, SessionKind, TokenHash, User, UserId, UserStatus,
};
use user_core::error::{RepoError, UniqueField};
use user_core::ports::{DeviceTokenStore, SessionStore, UserRepository};
use user_core::testing::conformance::user;

use user_postgres::PostgresConfig;

use crate::TestDb;

/// The transaction isolation a race runs at.
#[derive(Debug, Clone, Copy)]
enum Isolation {
    ReadCommitted,
    Serializable,
}

impl Isolation {
    async fn open(self) -> Option<TestDb> {
        self.open_with(|config| config).await
    }

    async fn open_with(
        self,
        change: impl FnOnce(PostgresConfig) -> PostgresConfig,
    ) -> Option<TestDb> {
        match self {
            Self::ReadCommitted => TestDb::with(change).await,
            Self::Serializable => TestDb::serializable_with(change).await,
        }
    }
}

async fn fifty_concurrent_inserts_of_one_username(isolation: Isolation) {
    let Some(t) = isolation.open().await else {
        return;
    };
    let users: Arc<dyn UserRepository> = Arc::new(t.db.users());
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let users = Arc::clone(&users);
            tokio::spawn(async move {
                let mut u = user("racer");
                // Distinct emails, so only the username can collide.
                u.email = Email::parse(&format!("racer{i}@example.com")).unwrap();
                users
                    .insert(&NewUser {
                        user: u,
                        password_hash: PasswordHash::new("h"),
                    })
                    .await
            })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => ok += 1,
            Err(RepoError::Conflict {
                field: UniqueField::Username,
            }) => {}
            Err(other) => panic!("expected a username conflict, got {other:?}"),
        }
    }
    assert_eq!(ok, 1);
    let page = t.db.users().list(&Default::default()).await.unwrap();
    assert_eq!(page.users.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_inserts_of_one_username_yield_one_user() {
    fifty_concurrent_inserts_of_one_username(Isolation::ReadCommitted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_inserts_of_one_username_yield_one_user_when_serializable() {
    fifty_concurrent_inserts_of_one_username(Isolation::Serializable).await;
}

const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

/// Rounds per race: each round races a fresh pair of admins.
const ROUNDS: usize = 50;

/// A change that the last-admin guard must refuse for the last active admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Demote,
    Disable,
    Delete,
}

impl Step {
    async fn apply(self, users: &dyn UserRepository, id: UserId) -> Result<(), RepoError> {
        match self {
            Self::Demote => users.set_role(id, Role::User, NOW).await.map(drop),
            Self::Disable => users
                .set_status(id, UserStatus::Disabled, NOW)
                .await
                .map(drop),
            Self::Delete => users.delete(id).await,
        }
    }

    /// Checks that `id` shows this step's effect.
    async fn assert_applied(self, users: &dyn UserRepository, id: UserId) {
        let after = users.get(id).await;
        match self {
            Self::Demote => assert_eq!(after.unwrap().role, Role::User),
            Self::Disable => assert_eq!(after.unwrap().status, UserStatus::Disabled),
            Self::Delete => assert!(matches!(after, Err(RepoError::NotFound)), "{after:?}"),
        }
    }
}

async fn insert_admin(users: &dyn UserRepository, name: &str) -> UserId {
    let admin = User {
        role: Role::Admin,
        ..user(name)
    };
    let id = admin.id;
    users
        .insert(&NewUser {
            user: admin,
            password_hash: PasswordHash::new("h"),
        })
        .await
        .unwrap();
    id
}

/// Each round: exactly two active admins, `a` and `b`; `first(a)` and `second(b)` start at
/// once on two tasks. Exactly one must succeed, the other must get `LastActiveAdmin`, and the
/// refused one must still be an active admin. The survivor is demoted at the start of the next
/// round, once the new pair is in, so every round starts from exactly two active admins.
async fn race_the_last_two_admins(isolation: Isolation, first: Step, second: Step) {
    let Some(t) = isolation.open().await else {
        return;
    };
    let users: Arc<dyn UserRepository> = Arc::new(t.db.users());
    let mut survivor: Option<UserId> = None;
    for round in 0..ROUNDS {
        let a = insert_admin(&*users, &format!("admin-a-{round}")).await;
        let b = insert_admin(&*users, &format!("admin-b-{round}")).await;
        if let Some(old) = survivor {
            users.set_role(old, Role::User, NOW).await.unwrap();
        }
        assert_eq!(users.count_active_admins().await.unwrap(), 2);

        let start = Arc::new(Barrier::new(2));
        let race = |id: UserId, step: Step| {
            let users = Arc::clone(&users);
            let start = Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                step.apply(&*users, id).await
            })
        };
        let (ta, tb) = (race(a, first), race(b, second));
        let (ra, rb) = (ta.await.unwrap(), tb.await.unwrap());
        let (winner, won, loser) = match (&ra, &rb) {
            (Ok(()), Err(RepoError::LastActiveAdmin)) => (a, first, b),
            (Err(RepoError::LastActiveAdmin), Ok(())) => (b, second, a),
            _ => panic!(
                "{isolation:?}, round {round}, {first:?} vs {second:?}: expected one success \
                 and one LastActiveAdmin, got {ra:?} and {rb:?}"
            ),
        };

        assert_eq!(
            users.count_active_admins().await.unwrap(),
            1,
            "round {round}"
        );
        won.assert_applied(&*users, winner).await;
        let kept = users.get(loser).await.unwrap();
        assert_eq!(
            (kept.role, kept.status),
            (Role::Admin, UserStatus::Active),
            "round {round}: the refused admin must be untouched"
        );
        survivor = Some(loser);
    }
}

/// Declares the six last-two-admins races at one isolation level.
macro_rules! admin_races {
    ($isolation:expr; $($name:ident: $first:ident vs $second:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                race_the_last_two_admins($isolation, Step::$first, Step::$second).await;
            }
        )*
    };
}

admin_races!(Isolation::ReadCommitted;
    concurrent_demotions_of_the_last_two_admins_leave_one: Demote vs Demote,
    concurrent_disables_of_the_last_two_admins_leave_one: Disable vs Disable,
    concurrent_deletes_of_the_last_two_admins_leave_one: Delete vs Delete,
    a_delete_racing_a_demotion_of_the_last_two_admins_leaves_one: Delete vs Demote,
    a_disable_racing_a_demotion_of_the_last_two_admins_leaves_one: Disable vs Demote,
    a_disable_racing_a_delete_of_the_last_two_admins_leaves_one: Disable vs Delete,
);

admin_races!(Isolation::Serializable;
    serializable_concurrent_demotions_of_the_last_two_admins_leave_one: Demote vs Demote,
    serializable_concurrent_disables_of_the_last_two_admins_leave_one: Disable vs Disable,
    serializable_concurrent_deletes_of_the_last_two_admins_leave_one: Delete vs Delete,
    serializable_a_delete_racing_a_demotion_of_the_last_two_admins_leaves_one: Delete vs Demote,
    serializable_a_disable_racing_a_demotion_of_the_last_two_admins_leaves_one: Disable vs Demote,
    serializable_a_disable_racing_a_delete_of_the_last_two_admins_leaves_one: Disable vs Delete,
);

/// Five active admins, five concurrent demotions: exactly four succeed, the fifth gets
/// `LastActiveAdmin`, and one active admin is left.
async fn demote_five_admins_at_once(isolation: Isolation) {
    let Some(t) = isolation
        .open_with(|config| PostgresConfig {
            max_connections: 6,
            // Five-way contention at SERIALIZABLE: room for the losers' retries.
            serialization_retries: 20,
            ..config
        })
        .await
    else {
        return;
    };
    let users: Arc<dyn UserRepository> = Arc::new(t.db.users());
    for round in 0..10 {
        // Start from no admin at all: the previous round's survivor is a plain user again.
        sqlx::query("UPDATE users SET role = 'user'")
            .execute(t.db.pool())
            .await
            .unwrap();
        let mut admins = Vec::new();
        for i in 0..5 {
            admins.push(insert_admin(&*users, &format!("admin-{round}-{i}")).await);
        }
        let start = Arc::new(Barrier::new(admins.len()));
        let tasks: Vec<_> = admins
            .iter()
            .map(|&id| {
                let (users, start) = (Arc::clone(&users), Arc::clone(&start));
                tokio::spawn(async move {
                    start.wait().await;
                    Step::Demote.apply(&*users, id).await
                })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap());
        }
        let ok = results.iter().filter(|r| r.is_ok()).count();
        let refused = results
            .iter()
            .filter(|r| matches!(r, Err(RepoError::LastActiveAdmin)))
            .count();
        assert_eq!(
            (ok, refused),
            (4, 1),
            "{isolation:?} round {round}: {results:?}"
        );
        assert_eq!(users.count_active_admins().await.unwrap(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_concurrent_demotions_of_five_admins_leave_one() {
    demote_five_admins_at_once(Isolation::ReadCommitted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serializable_five_concurrent_demotions_of_five_admins_leave_one() {
    demote_five_admins_at_once(Isolation::Serializable).await;
}

/// The last two admins are demoted while a user is promoted: the guard of a demotion that
/// waited for the other one's lock re-reads the locked rows. Whatever the order, an active
/// admin is always left, the promotion always succeeds, and the admins left are exactly
/// those that the successful calls say.
async fn promote_while_demoting_the_last_two(isolation: Isolation) {
    let Some(t) = isolation.open().await else {
        return;
    };
    let users: Arc<dyn UserRepository> = Arc::new(t.db.users());
    for round in 0..ROUNDS {
        // Start from no admin at all: the previous round's are plain users again.
        sqlx::query("UPDATE users SET role = 'user'")
            .execute(t.db.pool())
            .await
            .unwrap();
        let a = insert_admin(&*users, &format!("admin-a-{round}")).await;
        let b = insert_admin(&*users, &format!("admin-b-{round}")).await;
        let c = user(&format!("user-c-{round}"));
        let c_id = c.id;
        users
            .insert(&NewUser {
                user: c,
                password_hash: PasswordHash::new("h"),
            })
            .await
            .unwrap();
        let start = Arc::new(Barrier::new(3));
        let change = |id: UserId, role: Role| {
            let (users, start) = (Arc::clone(&users), Arc::clone(&start));
            tokio::spawn(async move {
                start.wait().await;
                users.set_role(id, role, NOW).await.map(drop)
            })
        };
        let tasks = [
            change(a, Role::User),
            change(b, Role::User),
            change(c_id, Role::Admin),
        ];
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap());
        }
        assert!(results[2].is_ok(), "the promotion: {results:?}");
        for r in &results[..2] {
            assert!(
                matches!(r, Ok(()) | Err(RepoError::LastActiveAdmin)),
                "{isolation:?} round {round}: {results:?}"
            );
        }
        let demoted = results[..2].iter().filter(|r| r.is_ok()).count();
        assert!(
            demoted >= 1,
            "one of the last two always steps down: {results:?}"
        );
        let left = users.count_active_admins().await.unwrap();
        assert_eq!(
            left,
            3 - demoted as u64,
            "{isolation:?} round {round}: {results:?}"
        );
        for (id, r) in [a, b].into_iter().zip(&results) {
            let role = users.get(id).await.unwrap().role;
            let expected = if r.is_ok() { Role::User } else { Role::Admin };
            assert_eq!(role, expected, "round {round}");
        }
        assert_eq!(users.get(c_id).await.unwrap().role, Role::Admin);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_promotion_racing_demotions_of_the_last_two_admins_keeps_one() {
    promote_while_demoting_the_last_two(Isolation::ReadCommitted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serializable_a_promotion_racing_demotions_of_the_last_two_admins_keeps_one() {
    promote_while_demoting_the_last_two(Isolation::Serializable).await;
}

/// How many rotations of one refresh token race at once.
const ROTATIONS: usize = 20;

/// `ROTATIONS` concurrent rotations of one token, on a pool large enough to run them at
/// once: exactly one rotates, every other one sees the token spent, and the session ends
/// revoked (the reuse was detected).
async fn rotate_one_token_at_once(isolation: Isolation) {
    let Some(t) = isolation
        .open_with(|config| PostgresConfig {
            max_connections: 12,
            // Twenty-way contention on one row: at SERIALIZABLE a loser may fail with 40001
            // several times before it reads the token spent.
            serialization_retries: 20,
            ..config
        })
        .await
    else {
        return;
    };
    let owner = user("alice");
    t.db.users()
        .insert(&NewUser {
            user: owner.clone(),
            password_hash: PasswordHash::new("h"),
        })
        .await
        .unwrap();
    let session = Session {
        id: SessionId::new(),
        user_id: owner.id,
        kind: SessionKind::Token,
        client: ClientInfo::default(),
        created_at: NOW,
        last_used_at: NOW,
        expires_at: NOW + time::Duration::hours(1),
        revoked_at: None,
    };
    let sessions: Arc<dyn SessionStore> = Arc::new(t.db.sessions());
    sessions
        .create(&NewSession {
            session: session.clone(),
            secret_hash: TokenHash::of("r1"),
        })
        .await
        .unwrap();

    let start = Arc::new(Barrier::new(ROTATIONS));
    let tasks: Vec<_> = (0..ROTATIONS)
        .map(|i| {
            let sessions = Arc::clone(&sessions);
            let start = Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                sessions
                    .rotate_refresh_token(
                        &TokenHash::of("r1"),
                        &TokenHash::of(&format!("next-{i}")),
                        NOW + time::Duration::seconds(1),
                        NOW - time::Duration::hours(1),
                    )
                    .await
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    let rotated = results
        .iter()
        .filter(|r| matches!(r, Ok(Rotation::Rotated(_))))
        .count();
    let reused = results
        .iter()
        .filter(|r| matches!(r, Ok(Rotation::Reused(id)) if *id == session.id))
        .count();
    assert_eq!(rotated, 1, "{isolation:?}: {results:?}");
    assert_eq!(reused, ROTATIONS - 1, "{isolation:?}: {results:?}");
    let after = sessions.get(session.id).await.unwrap();
    assert!(after.revoked_at.is_some(), "reuse revokes the session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_rotations_of_one_token_rotate_once() {
    rotate_one_token_at_once(Isolation::ReadCommitted).await;
}

/// Whether the losers were retried depends on timing; `retry.rs` tests the 40001 path
/// deterministically.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_rotations_of_one_token_rotate_once_when_serializable() {
    rotate_one_token_at_once(Isolation::Serializable).await;
}

/// A user deleted while a session or a device token is written for them: the write fails
/// `NotFound` (or succeeds first and is deleted with the user), never `Unavailable`.
async fn writes_racing_the_owners_delete(isolation: Isolation) {
    let Some(t) = isolation.open().await else {
        return;
    };
    let users: Arc<dyn UserRepository> = Arc::new(t.db.users());
    let sessions: Arc<dyn SessionStore> = Arc::new(t.db.sessions());
    let devices: Arc<dyn DeviceTokenStore> = Arc::new(t.db.devices());
    for round in 0..ROUNDS {
        let owner = user(&format!("owner-{round}"));
        users
            .insert(&NewUser {
                user: owner.clone(),
                password_hash: PasswordHash::new("h"),
            })
            .await
            .unwrap();
        let start = Arc::new(Barrier::new(3));
        let session = Session {
            id: SessionId::new(),
            user_id: owner.id,
            kind: SessionKind::Browser,
            client: ClientInfo::default(),
            created_at: NOW,
            last_used_at: NOW,
            expires_at: NOW + time::Duration::hours(1),
            revoked_at: None,
        };
        let create = tokio::spawn({
            let (sessions, start) = (Arc::clone(&sessions), Arc::clone(&start));
            let secret_hash = TokenHash::of(&format!("cookie-{round}"));
            async move {
                start.wait().await;
                sessions
                    .create(&NewSession {
                        session,
                        secret_hash,
                    })
                    .await
            }
        });
        let save = tokio::spawn({
            let (devices, start) = (Arc::clone(&devices), Arc::clone(&start));
            let device = DeviceToken {
                user_id: owner.id,
                created_at: NOW,
                expires_at: NOW + time::Duration::days(30),
            };
            let hash = TokenHash::of(&format!("device-{round}"));
            async move {
                start.wait().await;
                devices.save(&hash, &device).await
            }
        });
        let delete = tokio::spawn({
            let (users, start) = (Arc::clone(&users), Arc::clone(&start));
            async move {
                start.wait().await;
                users.delete(owner.id).await
            }
        });
        delete.await.unwrap().unwrap();
        for (what, got) in [
            ("create", create.await.unwrap()),
            ("save", save.await.unwrap()),
        ] {
            assert!(
                matches!(got, Ok(()) | Err(RepoError::NotFound)),
                "{isolation:?} round {round}, {what}: {got:?}"
            );
        }
        // Whatever was written went with the user.
        let left: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM sessions WHERE user_id = $1) \
                  + (SELECT COUNT(*) FROM devices WHERE user_id = $1)",
        )
        .bind(owner.id.as_uuid())
        .fetch_one(t.db.pool())
        .await
        .unwrap();
        assert_eq!(left, 0, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn session_and_device_writes_racing_the_users_delete_are_not_found() {
    writes_racing_the_owners_delete(Isolation::ReadCommitted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serializable_session_and_device_writes_racing_the_users_delete_are_not_found() {
    writes_racing_the_owners_delete(Isolation::Serializable).await;
}
