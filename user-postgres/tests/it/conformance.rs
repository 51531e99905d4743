//! The core's conformance suite against a real PostgreSQL schema per check, at PostgreSQL's
//! default isolation and at SERIALIZABLE, where the retries take part; and checks that keep
//! this adapter in step with SQLite's where the two databases differ.

use user_core::domain::{NewUser, PasswordHash, UserQuery};
use user_core::ports::UserRepository;
use user_core::testing::conformance::user;

use crate::TestDb;

mod read_committed {
    user_core::conformance_tests!(crate::stores);
}

mod serializable {
    user_core::conformance_tests!(crate::serializable_stores);
}

/// SQLite's `LIKE` ignores ASCII case; PostgreSQL's under `COLLATE "C"` does not. The
/// search is a prefix of lowercase names, so `AL` must find `alice` here as it does there.
#[tokio::test]
async fn a_mixed_case_search_finds_lowercase_names() {
    let Some(t) = TestDb::new().await else {
        return;
    };
    let users = t.db.users();
    for name in ["alice", "albert", "bob"] {
        users
            .insert(&NewUser {
                user: user(name),
                password_hash: PasswordHash::new("h"),
            })
            .await
            .unwrap();
    }
    for search in ["AL", "Al", "aL", "al"] {
        let page = users
            .list(&UserQuery {
                search: Some(search.into()),
                ..UserQuery::default()
            })
            .await
            .unwrap();
        let names: Vec<String> = page.users.iter().map(|u| u.username.to_string()).collect();
        assert_eq!(names, ["albert", "alice"], "{search}");
    }
    let page = users
        .list(&UserQuery {
            search: Some("ALICE@".into()),
            ..UserQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.users.len(), 1, "emails too");
}
