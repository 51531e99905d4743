//! The race suite: concurrent calls that only a real database can get wrong. Each check
//! starts its contenders at once (on a multi-thread runtime) and asserts that exactly the
//! outcomes the ports promise happened, round after round:
//!
//! ```text
//! mod races {
//!     // `stores` is an async fn returning fresh `Stores` (or `Option<Stores>`).
//!     user_core::race_tests!(crate::race_stores);
//! }
//! ```
//!
//! The worst race puts [`ROTATIONS`] writers on one row: a factory should give a pool that
//! runs a dozen of them together and, where conflicts fail and are retried (PostgreSQL at
//! SERIALIZABLE), room for about twenty retries of a loser.

use std::sync::Arc;

use time::OffsetDateTime;
use time::macros::datetime;
use tokio::sync::Barrier;

use super::conformance::{Stores, user};
use crate::domain::{
    ClientInfo, DeviceToken, Email, NewSession, NewUser, PasswordHash, Role, Rotation, Session,
    SessionId, SessionKind, TokenHash, User, UserId, UserQuery, UserStatus,
};
use crate::error::{RepoError, UniqueField};
use crate::ports::UserRepository;

/// Generates one multi-thread `#[tokio::test]` per race, each calling `$factory().await` for
/// fresh [`Stores`] (or an `Option<Stores>`, `None` skipping the race when the database is
/// not available on this machine).
#[macro_export]
macro_rules! race_tests {
    ($factory:path) => {
        $crate::race_tests!(@each $factory;
            fifty_concurrent_inserts_of_one_username_yield_one_user,
            concurrent_demotions_of_the_last_two_admins_leave_one,
            concurrent_disables_of_the_last_two_admins_leave_one,
            concurrent_deletes_of_the_last_two_admins_leave_one,
            a_delete_racing_a_demotion_of_the_last_two_admins_leaves_one,
            a_disable_racing_a_demotion_of_the_last_two_admins_leaves_one,
            a_disable_racing_a_delete_of_the_last_two_admins_leaves_one,
            five_concurrent_demotions_of_five_admins_leave_one,
            a_promotion_racing_demotions_of_the_last_two_admins_keeps_one,
            concurrent_rotations_of_one_token_rotate_once,
            session_and_device_writes_racing_the_users_delete_are_not_found,
        );
    };
    (@each $factory:path; $($race:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $race() {
                // A factory returns `Stores`, or `Option<Stores>` where `None` means the
                // database is not configured here and the race is skipped (it says so).
                let stores: ::core::option::Option<$crate::testing::conformance::Stores> =
                    $factory().await.into();
                let ::core::option::Option::Some(stores) = stores else {
                    return;
                };
                $crate::testing::races::$race(stores).await;
            }
        )*
    };
}

const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

/// Rounds per race: each round races fresh rows.
const ROUNDS: usize = 50;

/// How many rotations of one refresh token race at once.
pub const ROTATIONS: usize = 20;

/// Fifty inserts of one username with distinct emails: exactly one succeeds, every other
/// one fails with a username conflict, and one user is stored.
pub async fn fifty_concurrent_inserts_of_one_username_yield_one_user(s: Stores) {
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let users = Arc::clone(&s.users);
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
    assert_eq!(s.users.count_active_admins().await.unwrap(), 0);
    let page = s.users.list(&UserQuery::default()).await.unwrap();
    assert_eq!(page.users.len(), 1);
}

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

async fn insert_user(users: &dyn UserRepository, user: User) {
    users
        .insert(&NewUser {
            user,
            password_hash: PasswordHash::new("h"),
        })
        .await
        .unwrap();
}

async fn insert_admin(users: &dyn UserRepository, name: &str) -> UserId {
    let admin = User {
        role: Role::Admin,
        ..user(name)
    };
    let id = admin.id;
    insert_user(users, admin).await;
    id
}

/// Demotes the admins a previous round left, once the next round's admins are in (the last
/// admin cannot step down), so that a round starts from exactly its own admins.
async fn demote_leftovers(users: &dyn UserRepository, leftovers: &mut Vec<UserId>) {
    for id in leftovers.drain(..) {
        users.set_role(id, Role::User, NOW).await.unwrap();
    }
}

/// Each round: exactly two active admins, `a` and `b`; `first(a)` and `second(b)` start at
/// once on two tasks. Exactly one must succeed, the other must get `LastActiveAdmin`, and the
/// refused one must still be an active admin. The survivor is demoted at the start of the next
/// round, once the new pair is in, so every round starts from exactly two active admins.
async fn race_the_last_two_admins(s: Stores, first: Step, second: Step) {
    let users = &s.users;
    let mut survivor = Vec::new();
    for round in 0..ROUNDS {
        let a = insert_admin(&**users, &format!("admin-a-{round}")).await;
        let b = insert_admin(&**users, &format!("admin-b-{round}")).await;
        demote_leftovers(&**users, &mut survivor).await;
        assert_eq!(users.count_active_admins().await.unwrap(), 2);

        let start = Arc::new(Barrier::new(2));
        let race = |id: UserId, step: Step| {
            let users = Arc::clone(users);
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
                "round {round}, {first:?} vs {second:?}: expected one success and one \
                 LastActiveAdmin, got {ra:?} and {rb:?}"
            ),
        };

        assert_eq!(
            users.count_active_admins().await.unwrap(),
            1,
            "round {round}"
        );
        won.assert_applied(&**users, winner).await;
        let kept = users.get(loser).await.unwrap();
        assert_eq!(
            (kept.role, kept.status),
            (Role::Admin, UserStatus::Active),
            "round {round}: the refused admin must be untouched"
        );
        survivor.push(loser);
    }
}

/// Both of the last two admins demoted at once: one steps down, one stays.
pub async fn concurrent_demotions_of_the_last_two_admins_leave_one(s: Stores) {
    race_the_last_two_admins(s, Step::Demote, Step::Demote).await;
}

/// Both of the last two admins disabled at once: one is disabled, one stays.
pub async fn concurrent_disables_of_the_last_two_admins_leave_one(s: Stores) {
    race_the_last_two_admins(s, Step::Disable, Step::Disable).await;
}

/// Both of the last two admins deleted at once: one goes, one stays.
pub async fn concurrent_deletes_of_the_last_two_admins_leave_one(s: Stores) {
    race_the_last_two_admins(s, Step::Delete, Step::Delete).await;
}

/// One of the last two admins deleted while the other is demoted: one admin stays.
pub async fn a_delete_racing_a_demotion_of_the_last_two_admins_leaves_one(s: Stores) {
    race_the_last_two_admins(s, Step::Delete, Step::Demote).await;
}

/// One of the last two admins disabled while the other is demoted: one admin stays.
pub async fn a_disable_racing_a_demotion_of_the_last_two_admins_leaves_one(s: Stores) {
    race_the_last_two_admins(s, Step::Disable, Step::Demote).await;
}

/// One of the last two admins disabled while the other is deleted: one admin stays.
pub async fn a_disable_racing_a_delete_of_the_last_two_admins_leaves_one(s: Stores) {
    race_the_last_two_admins(s, Step::Disable, Step::Delete).await;
}

/// Five active admins, five concurrent demotions, ten rounds: exactly four succeed, the
/// fifth gets `LastActiveAdmin`, and one active admin is left.
pub async fn five_concurrent_demotions_of_five_admins_leave_one(s: Stores) {
    let users = &s.users;
    let mut survivor = Vec::new();
    for round in 0..10 {
        let mut admins = Vec::new();
        for i in 0..5 {
            admins.push(insert_admin(&**users, &format!("admin-{round}-{i}")).await);
        }
        demote_leftovers(&**users, &mut survivor).await;
        assert_eq!(users.count_active_admins().await.unwrap(), 5);

        let start = Arc::new(Barrier::new(admins.len()));
        let tasks: Vec<_> = admins
            .iter()
            .map(|&id| {
                let (users, start) = (Arc::clone(users), Arc::clone(&start));
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
        assert_eq!((ok, refused), (4, 1), "round {round}: {results:?}");
        assert_eq!(users.count_active_admins().await.unwrap(), 1);
        survivor.extend(
            admins
                .iter()
                .zip(&results)
                .filter(|(_, r)| r.is_err())
                .map(|(&id, _)| id),
        );
    }
}

/// The last two admins are demoted while a user is promoted: the guard of a demotion that
/// waited for the other one's lock re-reads the locked rows. Whatever the order, an active
/// admin is always left, the promotion always succeeds, and the admins left are exactly
/// those that the successful calls say.
pub async fn a_promotion_racing_demotions_of_the_last_two_admins_keeps_one(s: Stores) {
    let users = &s.users;
    let mut leftovers = Vec::new();
    for round in 0..ROUNDS {
        let a = insert_admin(&**users, &format!("admin-a-{round}")).await;
        let b = insert_admin(&**users, &format!("admin-b-{round}")).await;
        // Start from these two admins only: the previous round's are plain users again.
        demote_leftovers(&**users, &mut leftovers).await;
        assert_eq!(users.count_active_admins().await.unwrap(), 2);
        let c = user(&format!("user-c-{round}"));
        let c_id = c.id;
        insert_user(&**users, c).await;

        let start = Arc::new(Barrier::new(3));
        let change = |id: UserId, role: Role| {
            let (users, start) = (Arc::clone(users), Arc::clone(&start));
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
                "round {round}: {results:?}"
            );
        }
        let demoted = results[..2].iter().filter(|r| r.is_ok()).count();
        assert!(
            demoted >= 1,
            "one of the last two always steps down: {results:?}"
        );
        let left = users.count_active_admins().await.unwrap();
        assert_eq!(left, 3 - demoted as u64, "round {round}: {results:?}");
        for (id, r) in [a, b].into_iter().zip(&results) {
            let role = users.get(id).await.unwrap().role;
            let expected = if r.is_ok() { Role::User } else { Role::Admin };
            assert_eq!(role, expected, "round {round}");
            if r.is_err() {
                leftovers.push(id);
            }
        }
        assert_eq!(users.get(c_id).await.unwrap().role, Role::Admin);
        leftovers.push(c_id);
    }
}

/// [`ROTATIONS`] concurrent rotations of one refresh token: exactly one rotates, every other
/// one sees the token spent, and the session ends revoked (the reuse was detected).
pub async fn concurrent_rotations_of_one_token_rotate_once(s: Stores) {
    let owner = user("alice");
    insert_user(&*s.users, owner.clone()).await;
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
    s.sessions
        .create(&NewSession {
            session: session.clone(),
            secret_hash: TokenHash::of("r1"),
        })
        .await
        .unwrap();

    let start = Arc::new(Barrier::new(ROTATIONS));
    let tasks: Vec<_> = (0..ROTATIONS)
        .map(|i| {
            let sessions = Arc::clone(&s.sessions);
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
    assert_eq!(rotated, 1, "{results:?}");
    assert_eq!(reused, ROTATIONS - 1, "{results:?}");
    let after = s.sessions.get(session.id).await.unwrap();
    assert_eq!(
        after.revoked_at,
        Some(NOW + time::Duration::seconds(1)),
        "reuse revokes the session"
    );
}

/// A user deleted while a session and a device token are written for them: each write
/// fails `NotFound` (or succeeds first and is deleted with the user), never `Unavailable`,
/// and nothing of the user is left.
pub async fn session_and_device_writes_racing_the_users_delete_are_not_found(s: Stores) {
    for round in 0..ROUNDS {
        let owner = user(&format!("owner-{round}"));
        let owner_id = owner.id;
        insert_user(&*s.users, owner).await;
        let start = Arc::new(Barrier::new(3));
        let session = Session {
            id: SessionId::new(),
            user_id: owner_id,
            kind: SessionKind::Browser,
            client: ClientInfo::default(),
            created_at: NOW,
            last_used_at: NOW,
            expires_at: NOW + time::Duration::hours(1),
            revoked_at: None,
        };
        let session_id = session.id;
        let create = tokio::spawn({
            let (sessions, start) = (Arc::clone(&s.sessions), Arc::clone(&start));
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
        let device_hash = TokenHash::of(&format!("device-{round}"));
        let save = tokio::spawn({
            let (devices, start) = (Arc::clone(&s.devices), Arc::clone(&start));
            let device = DeviceToken {
                user_id: owner_id,
                created_at: NOW,
                expires_at: NOW + time::Duration::days(30),
            };
            let hash = device_hash;
            async move {
                start.wait().await;
                devices.save(&hash, &device).await
            }
        });
        let delete = tokio::spawn({
            let (users, start) = (Arc::clone(&s.users), Arc::clone(&start));
            async move {
                start.wait().await;
                users.delete(owner_id).await
            }
        });
        delete.await.unwrap().unwrap();
        for (what, got) in [
            ("create", create.await.unwrap()),
            ("save", save.await.unwrap()),
        ] {
            assert!(
                matches!(got, Ok(()) | Err(RepoError::NotFound)),
                "round {round}, {what}: {got:?}"
            );
        }
        // Whatever was written went with the user.
        let session = s.sessions.get(session_id).await;
        assert!(
            matches!(session, Err(RepoError::NotFound)),
            "round {round}: {session:?}"
        );
        let device = s.devices.find(&device_hash).await;
        assert!(
            matches!(device, Err(RepoError::NotFound)),
            "round {round}: {device:?}"
        );
        let left = s.sessions.list_active(owner_id, NOW).await.unwrap();
        assert!(left.is_empty(), "round {round}: {left:?}");
    }
}
