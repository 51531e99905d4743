//! The core's conformance suite against a real SQLite file per check.

user_core::conformance_tests!(crate::stores);

/// `insert_many` is one transaction: a trigger makes the store fail on the saboteur's row.
#[tokio::test]
async fn insert_many_writes_nothing_when_the_store_fails() {
    let t = crate::TestDb::new().await;
    let trigger = format!(
        "CREATE TRIGGER saboteur BEFORE INSERT ON users WHEN new.username = '{}' \
         BEGIN SELECT RAISE(ABORT, 'sabotaged'); END",
        user_core::testing::conformance::SABOTEUR
    );
    sqlx::query(sqlx::AssertSqlSafe(trigger))
        .execute(t.db.pool())
        .await
        .unwrap();
    let stores = user_core::testing::conformance::Stores::new(t.db.storage(), t);
    user_core::testing::conformance::insert_many_writes_nothing_when_the_store_fails(stores).await;
}
