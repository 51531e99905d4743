//! Races that only a real database can lose.

use std::sync::Arc;

use time::OffsetDateTime;
use time::macros::datetime;
use tokio::sync::Barrier;
use user_core::domain::{Email, NewUser, PasswordHash, Role, User, UserId, UserStatus};
use user_core::error::{RepoError, UniqueField};
use user_core::ports::UserRepository;
use user_core::testing::conformance::user;

use crate::TestDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_inserts_of_one_username_yield_one_user() {
    let t = TestDb::new().await;
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
    assert_eq!(t.db.users().count_active_admins().await.unwrap(), 0);
    let page = t.db.users().list(&Default::default()).await.unwrap();
    assert_eq!(page.users.len(), 1);
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
async fn race_the_last_two_admins(first: Step, second: Step) {
    let t = TestDb::new().await;
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
                "round {round}, {first:?} vs {second:?}: expected one success and one \
                 LastActiveAdmin, got {ra:?} and {rb:?}"
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_demotions_of_the_last_two_admins_leave_one() {
    race_the_last_two_admins(Step::Demote, Step::Demote).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_disables_of_the_last_two_admins_leave_one() {
    race_the_last_two_admins(Step::Disable, Step::Disable).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deletes_of_the_last_two_admins_leave_one() {
    race_the_last_two_admins(Step::Delete, Step::Delete).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delete_racing_a_demotion_of_the_last_two_admins_leaves_one() {
    race_the_last_two_admins(Step::Delete, Step::Demote).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_disable_racing_a_demotion_of_the_last_two_admins_leaves_one() {
    race_the_last_two_admins(Step::Disable, Step::Demote).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_disable_racing_a_delete_of_the_last_two_admins_leaves_one() {
    race_the_last_two_admins(Step::Disable, Step::Delete).await;
}
