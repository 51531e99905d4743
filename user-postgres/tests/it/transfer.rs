//! Export and import of users as JSON lines between two real PostgreSQL schemas.

use user_core::password::HashCeiling;
use user_core::testing::Fixture;
use user_core::transfer::{export_users, import_users};

use crate::TestDb;

#[tokio::test]
async fn users_move_between_databases_and_a_rerun_adds_nothing() {
    let (Some(a), Some(b)) = (TestDb::new().await, TestDb::new().await) else {
        return;
    };
    let from = a.fixture();
    from.register_admin("root").await;
    from.register("alice").await;
    let mut file = Vec::new();
    assert_eq!(export_users(&a.db.users(), &mut file).await.unwrap(), 2);

    let mut rejected = Vec::new();
    let summary = import_users(
        &b.db.users(),
        &HashCeiling::default(),
        file.as_slice(),
        |e| {
            rejected.push(e.to_string());
        },
    )
    .await
    .unwrap();
    assert_eq!(
        summary.to_string(),
        "2 imported, 0 already present, 0 rejected"
    );
    assert!(rejected.is_empty(), "{rejected:?}");
    let again = import_users(
        &b.db.users(),
        &HashCeiling::default(),
        file.as_slice(),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!((again.imported, again.already_present), (0, 2));

    let to = b.fixture();
    let root = to.login("root", Fixture::PASSWORD).await.unwrap();
    assert_eq!(root.user.role, user_core::domain::Role::Admin);
    let mut copy = Vec::new();
    export_users(&b.db.users(), &mut copy).await.unwrap();
    assert_eq!(
        String::from_utf8(copy).unwrap(),
        String::from_utf8(file).unwrap(),
        "the same users, field for field"
    );
}
