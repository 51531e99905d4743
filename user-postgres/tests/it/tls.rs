//! TLS follows the URL's `sslmode`. The test server has `ssl = on` with a self-signed
//! certificate (checked first), so `prefer` and `require` encrypt, `disable` does not, and
//! `verify-full` refuses the certificate, which no public root signs.

use secrecy::ExposeSecret;
use user_postgres::testing::TestSchema;
use user_postgres::{OpenError, PostgresConfig, PostgresDatabase};

/// `config` with `sslmode=mode` in its URL.
fn with_sslmode(config: PostgresConfig, mode: &str) -> PostgresConfig {
    let url = config.url.expose_secret();
    let separator = if url.contains('?') { '&' } else { '?' };
    PostgresConfig {
        url: format!("{url}{separator}sslmode={mode}").into(),
        ..config
    }
}

/// Whether the pool's connection is encrypted, as the server sees it.
async fn encrypted(db: &PostgresDatabase) -> bool {
    sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(db.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn sslmode_decides_whether_connections_are_encrypted() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let plain = PostgresDatabase::open(&with_sslmode(schema.config(), "disable"))
        .await
        .unwrap();
    let ssl: String = sqlx::query_scalar("SHOW ssl")
        .fetch_one(plain.pool())
        .await
        .unwrap();
    assert_eq!(
        ssl, "on",
        "these checks expect a test server that offers TLS"
    );
    assert!(!encrypted(&plain).await, "disable");
    plain.close().await;

    for mode in ["prefer", "require"] {
        let db = PostgresDatabase::open(&with_sslmode(schema.config(), mode))
            .await
            .unwrap();
        assert!(encrypted(&db).await, "{mode}");
        db.close().await;
    }
    let default = schema.open().await;
    assert!(encrypted(&default).await, "the default is prefer");
    default.close().await;

    let err = PostgresDatabase::open(&with_sslmode(schema.config(), "verify-full"))
        .await
        .unwrap_err();
    assert!(matches!(err, OpenError::Connect { .. }), "{err:?}");
    let report = user_core::error::report(&err);
    assert!(report.contains("cannot connect"), "{report}");
}
