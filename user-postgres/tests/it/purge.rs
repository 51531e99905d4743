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

/// The second factors' purge deletes in batches too, each kind of row by its own cut-off:
/// challenges and trusted-device marks that expired before T, enrolments left pending since
/// before P; never a confirmed factor.
#[tokio::test]
async fn second_factor_purges_of_several_batches_remove_exactly_the_stale_rows() {
    use user_core::ports::SecondFactorStore as _;

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
    // 8000 challenges, 7000 expired before T: one full batch and a partial one.
    execute(
        &t,
        "INSERT INTO sign_in_challenges (hash, user_id, purpose, created_at, expires_at) \
         SELECT sha256(('challenge' || i)::bytea), $2, 'second_factor', \
                $1 - interval '1 day', \
                CASE WHEN i <= 7000 THEN $1 - interval '1 microsecond' ELSE $1 END \
         FROM generate_series(1, 8000) AS i",
        owner,
    )
    .await;
    // 6000 trusted browsers, exactly 5000 expired: one full batch, then an empty one.
    execute(
        &t,
        "INSERT INTO trusted_devices (device_hash, user_id, expires_at) \
         SELECT sha256(('device' || i)::bytea), $2, \
                CASE WHEN i <= 5000 THEN $1 - interval '1 microsecond' ELSE $1 END \
         FROM generate_series(1, 6000) AS i",
        owner,
    )
    .await;
    // 6000 users with a factor each: 5001 pending since before P (T - 1 day), 499 pending
    // since P, 500 confirmed long before P.
    execute(
        &t,
        "WITH u AS ( \
             INSERT INTO users (id, username, email, password_hash, role, status, \
                                created_at, updated_at) \
             SELECT gen_random_uuid(), 'u' || i, 'u' || i || '@example.com', 'h', 'user', \
                    'active', $1, $1 \
             FROM generate_series(1, 6000) AS i WHERE $2::uuid IS NOT NULL \
             RETURNING id, substr(username, 2)::int AS i) \
         INSERT INTO totp_factors (user_id, sealed_secret, created_at, confirmed_at, \
                                   last_used_step) \
         SELECT id, '\\x00'::bytea, \
                CASE WHEN i <= 5001 THEN $1 - interval '1 day' - interval '1 microsecond' \
                     WHEN i <= 5500 THEN $1 - interval '1 day' \
                     ELSE $1 - interval '2 days' END, \
                CASE WHEN i > 5500 THEN $1 - interval '2 days' END, \
                CASE WHEN i > 5500 THEN 1 END \
         FROM u",
        owner,
    )
    .await;

    let p = T - time::Duration::days(1);
    assert_eq!(
        t.db.factors().purge(T, p).await.unwrap(),
        7000 + 5000 + 5001
    );
    assert_eq!(
        count(
            &t,
            "SELECT COUNT(*) FROM sign_in_challenges WHERE expires_at = $1"
        )
        .await,
        1000
    );
    assert_eq!(
        count(
            &t,
            "SELECT COUNT(*) FROM sign_in_challenges WHERE $1 IS NOT NULL"
        )
        .await,
        1000
    );
    assert_eq!(
        count(
            &t,
            "SELECT COUNT(*) FROM trusted_devices WHERE $1 IS NOT NULL"
        )
        .await,
        1000
    );
    assert_eq!(
        count(
            &t,
            "SELECT COUNT(*) FROM totp_factors \
             WHERE confirmed_at IS NULL AND created_at = $1 - interval '1 day'"
        )
        .await,
        499,
        "the newer enrolments are left"
    );
    assert_eq!(
        count(
            &t,
            "SELECT COUNT(*) FROM totp_factors WHERE confirmed_at IS NOT NULL AND $1 IS NOT NULL"
        )
        .await,
        500,
        "confirmed factors are never purged"
    );
    assert_eq!(t.db.factors().purge(T, p).await.unwrap(), 0);
}
