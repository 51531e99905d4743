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

/// `insert_many` is one transaction: a trigger makes the store fail on the saboteur's row.
#[tokio::test]
async fn insert_many_writes_nothing_when_the_store_fails() {
    let Some(t) = TestDb::new().await else {
        return;
    };
    let function = format!(
        "CREATE FUNCTION saboteur() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         IF NEW.username = '{}' THEN RAISE EXCEPTION 'sabotaged'; END IF; RETURN NEW; END $$",
        user_core::testing::conformance::SABOTEUR
    );
    for sql in [
        function,
        "CREATE TRIGGER saboteur BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION saboteur()"
            .to_owned(),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(t.db.pool())
            .await
            .unwrap();
    }
    let stores = user_core::testing::conformance::Stores::new(t.db.storage(), t);
    user_core::testing::conformance::insert_many_writes_nothing_when_the_store_fails(stores).await;
}
