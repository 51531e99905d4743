//! Purges delete in batches (5000 rows a statement): a backlog of several batches goes,
//! exactly, and nothing else does.

use time::OffsetDateTime;
use time::macros::datetime;
use user_core::domain::{NewUser, PasswordHash};
use user_core::ports::{
    AuditLog, DeviceTokenStore, LoginFailureStore, SessionStore, UserRepository,
};
use user_core::testing::conformance::user;

use crate::TestDb;

const T: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

async fn count(t: &TestDb, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(T)
        .fetch_one(t.db.pool())
        .await
        .unwrap()
}

async fn execute(t: &TestDb, sql: &str, owner: uuid::Uuid) {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(T)
        .bind(owner)
        .execute(t.db.pool())
        .await
        .unwrap();
}

#[tokio::test]
async fn purges_of_several_batches_remove_exactly_the_stale_rows() {
    let Some(t) = TestDb::new().await else {
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
    let owner = owner.id.as_uuid();

    // 15000 sessions: a third expired, a third revoked before T, a third expiring exactly
    // at T (kept: stale means before T). 10000 stale: two full batches, then an empty one.
    execute(
        &t,
        "INSERT INTO sessions (id, user_id, kind, created_at, last_used_at, expires_at, \
         revoked_at) \
         SELECT gen_random_uuid(), $2, 'token', $1 - interval '1 day', $1 - interval '1 day', \
                CASE i % 3 WHEN 0 THEN $1 - interval '1 microsecond' \
                           WHEN 1 THEN $1 + interval '1 hour' ELSE $1 END, \
                CASE i % 3 WHEN 1 THEN $1 - interval '1 hour' END \
         FROM generate_series(1, 15000) AS i",
        owner,
    )
    .await;
    // 12000 budgets, 7000 last failed before T: one full batch and a partial one.
    execute(
        &t,
        "INSERT INTO login_failures (key, count, last_failed_at) \
         SELECT sha256(i::text::bytea), 1, \
                CASE WHEN i <= 7000 THEN $1 - interval '1 second' ELSE $1 END \
         FROM generate_series(1, 12000) AS i WHERE $2::uuid IS NOT NULL",
        owner,
    )
    .await;
    // 6000 devices, exactly 5000 expired: one full batch, then an empty one.
    execute(
        &t,
        "INSERT INTO devices (hash, user_id, created_at, expires_at) \
         SELECT sha256(('device' || i)::bytea), $2, $1 - interval '1 day', \
                CASE WHEN i <= 5000 THEN $1 - interval '1 microsecond' ELSE $1 END \
         FROM generate_series(1, 6000) AS i",
        owner,
    )
    .await;

    assert_eq!(t.db.sessions().purge(T).await.unwrap(), 10_000);
    assert_eq!(
        count(&t, "SELECT COUNT(*) FROM sessions WHERE $1 IS NOT NULL").await,
        5000
    );
    assert_eq!(
        count(
            &t,
            "SELECT COUNT(*) FROM sessions WHERE expires_at = $1 AND revoked_at IS NULL"
        )
        .await,
        5000,
        "exactly the live ones are left"
    );

    assert_eq!(t.db.login_failures().purge(T).await.unwrap(), 7000);
    assert_eq!(
        count(
            &t,
            "SELECT COUNT(*) FROM login_failures WHERE last_failed_at = $1"
        )
        .await,
        5000
    );
    assert_eq!(
        count(
            &t,
            "SELECT COUNT(*) FROM login_failures WHERE $1 IS NOT NULL"
        )
        .await,
        5000
    );

    assert_eq!(t.db.devices().purge(T).await.unwrap(), 5000);
    assert_eq!(
        count(&t, "SELECT COUNT(*) FROM devices WHERE expires_at = $1").await,
        1000
    );
    assert_eq!(
        count(&t, "SELECT COUNT(*) FROM devices WHERE $1 IS NOT NULL").await,
        1000
    );

    // 11000 audit events, 10001 before T: two full batches and one of a single event.
    // Events name users that no longer exist (no foreign key), here the owner's id.
    execute(
        &t,
        "INSERT INTO audit_events (id, at, kind, outcome, subject) \
         SELECT gen_random_uuid(), \
                CASE WHEN i <= 10001 THEN $1 - i * interval '1 microsecond' ELSE $1 END, \
                'sign_in', 'success', $2 \
         FROM generate_series(1, 11000) AS i",
        owner,
    )
    .await;
    assert_eq!(t.db.audit().purge(T).await.unwrap(), 10_001);
    assert_eq!(
        count(&t, "SELECT COUNT(*) FROM audit_events WHERE at = $1").await,
        999
    );
    assert_eq!(
        count(&t, "SELECT COUNT(*) FROM audit_events WHERE $1 IS NOT NULL").await,
        999
    );

    // Nothing stale is left: a second purge deletes nothing.
    assert_eq!(t.db.sessions().purge(T).await.unwrap(), 0);
    assert_eq!(t.db.login_failures().purge(T).await.unwrap(), 0);
    assert_eq!(t.db.devices().purge(T).await.unwrap(), 0);
    assert_eq!(t.db.audit().purge(T).await.unwrap(), 0);
}
