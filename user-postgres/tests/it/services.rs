//! The core services end to end over a real PostgreSQL schema.

use secrecy::ExposeSecret;
use user_core::domain::{PasswordHash, UserStatus};
use user_core::error::AuthError;
use user_core::ports::UserRepository;
use user_core::testing::Fixture;

use crate::TestDb;

const PW: &str = Fixture::PASSWORD;

#[tokio::test]
async fn register_login_refresh_reuse_and_logout() {
    let Some(t) = TestDb::new().await else {
        return;
    };
    let f = t.fixture();
    let alice = f.register("alice").await;
    let first = f.login("Alice@Example.com", PW).await.unwrap();
    assert_eq!(first.user, alice);
    let second = f.auth.refresh(&first.refresh_token).await.unwrap();
    let actor = f
        .auth
        .authenticate(second.access_token.expose_secret())
        .await
        .unwrap();
    assert_eq!(actor.user_id, alice.id);
    // Reuse of the spent token revokes the session for everybody.
    assert!(matches!(
        f.auth.refresh(&first.refresh_token).await,
        Err(AuthError::Unauthenticated)
    ));
    assert!(
        f.auth
            .authenticate(second.access_token.expose_secret())
            .await
            .is_err()
    );

    let third = f.login("alice", PW).await.unwrap();
    let actor = f
        .auth
        .authenticate(third.access_token.expose_secret())
        .await
        .unwrap();
    f.auth.logout(&actor).await.unwrap();
    assert!(
        f.auth
            .authenticate(third.access_token.expose_secret())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn lockout_holds_across_service_instances_sharing_the_database() {
    let Some(t) = TestDb::new().await else {
        return;
    };
    let one = t.fixture();
    one.register("alice").await;
    for _ in 0..5 {
        assert!(one.login("alice", "wrong wrong wrong").await.is_err());
    }
    // A second instance (another process in production) sees the same lock.
    let two = t.fixture();
    let err = two.login("alice", PW).await.unwrap_err();
    assert!(matches!(err, AuthError::Throttled { .. }), "{err:?}");
}

#[tokio::test]
async fn imported_bcrypt_hashes_upgrade_in_the_database() {
    let Some(t) = TestDb::new().await else {
        return;
    };
    let f = t.fixture();
    let legacy = f.register("legacy").await;
    let bcrypt = PasswordHash::new(PYTHON_BCRYPT_OF_PW);
    t.db.users()
        .update_password_hash(legacy.id, &bcrypt, legacy.created_at)
        .await
        .unwrap();
    assert!(f.login("legacy", "pw").await.is_ok());
    let stored = t.db.users().password_hash(legacy.id).await.unwrap();
    assert!(stored.as_str().starts_with("$argon2id$"));
}

/// A real bcrypt hash of "pw" made by Python's `bcrypt.hashpw` (cost 4 to stay fast), as the
/// legacy service stored them.
const PYTHON_BCRYPT_OF_PW: &str = "$2b$04$s4eAIgiVALQYr0XRQZ6cU.N08ObhUoT1iyYIlPhcEWz2A.nF7nqN6";

#[tokio::test]
async fn disabling_a_user_ends_their_sessions_in_the_database() {
    let Some(t) = TestDb::new().await else {
        return;
    };
    let f = t.fixture();
    f.register_admin("root").await;
    let bob = f.register("bob").await;
    let bob_tokens = f.login("bob", PW).await.unwrap();
    let root = f.actor("root").await;
    f.users
        .as_admin(&root)
        .unwrap()
        .set_status(bob.id, UserStatus::Disabled)
        .await
        .unwrap();
    assert!(
        f.auth
            .authenticate(bob_tokens.access_token.expose_secret())
            .await
            .is_err()
    );
    assert!(f.auth.refresh(&bob_tokens.refresh_token).await.is_err());
}
