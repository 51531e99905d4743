//! Races that only a real database can lose.

use std::sync::Arc;

use user_core::domain::{Email, NewUser, PasswordHash};
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
