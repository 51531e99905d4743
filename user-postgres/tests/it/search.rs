//! The admin search on a real server: its plans agree with the reference at scale, a schema
//! from before the search index gains it with its users, and the index finds `pg_trgm`
//! wherever the database has it, or creates it.

use std::str::FromStr as _;

use secrecy::ExposeSecret as _;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection as _, PgConnection};
use user_core::domain::UserQuery;
use user_core::ports::UserRepository as _;
use user_core::testing::conformance::{Stores, list_matches_the_reference_with_many_users};
use user_postgres::testing::{TestSchema, URL_VAR};
use user_postgres::{PostgresConfig, PostgresDatabase};

use crate::{TestDb, migrations};

/// Every page of every search, at the scale where a search reads its sample and walks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_matches_the_reference_with_many_users_on_postgres() {
    let Some(t) = TestDb::new().await else {
        return;
    };
    let storage = t.db.storage();
    list_matches_the_reference_with_many_users(Stores::new(storage, t)).await;
}

/// The usernames a search for `text` finds.
async fn found(db: &PostgresDatabase, text: &str) -> Vec<String> {
    let q = UserQuery {
        search: Some(text.to_owned()),
        limit: UserQuery::MAX_LIMIT,
        ..UserQuery::default()
    };
    let page = db.users().list(&q).await.unwrap();
    page.users
        .into_iter()
        .map(|u| u.username.to_string())
        .collect()
}

/// A schema at migration 0004, with users (display names in ASCII and beyond), gains the
/// search and filter indexes when it is opened: its users are found at once, by every name.
#[tokio::test]
async fn a_schema_from_before_the_search_index_gains_it_with_its_users() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let config = schema.config();
    let options = PgConnectOptions::from_str(config.url.expose_secret())
        .unwrap()
        .options([("search_path", schema.name())]);
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap();
    sqlx::migrate!("./migrations")
        .run_to(4, &pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO users (id, username, email, display_name, password_hash, role, status, \
         created_at, updated_at) \
         SELECT gen_random_uuid(), name, name || '@example.com', display, 'h', 'user', \
                'active', now(), now() \
         FROM (VALUES ('alice', 'Alice Liddell'), ('emile', 'ÉMILE Zola'), \
                      ('dmitri', 'Дмитрий ПЕТРОВ'), ('bob', NULL)) AS v (name, display)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let db = schema.open().await;
    assert_eq!(found(&db, "liddell").await, ["alice"]);
    assert_eq!(found(&db, "émile").await, ["emile"]);
    assert_eq!(found(&db, "петров").await, ["dmitri"]);
    assert_eq!(
        found(&db, "example.com").await,
        ["alice", "bob", "dmitri", "emile"]
    );
    assert_eq!(found(&db, "bo").await, ["bob"]);
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(applied, migrations());
    db.close().await;
}

/// A database of its own on the test server, dropped (with `FORCE`) when the test ends.
struct TestDatabase {
    server: PgConnectOptions,
    name: String,
}

impl TestDatabase {
    /// Creates the database on the server that [`URL_VAR`] names.
    async fn create() -> Self {
        let url = std::env::var(URL_VAR).unwrap();
        let server = PgConnectOptions::from_str(&url).unwrap();
        let name = format!("users_test_db_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect_with(&server).await.unwrap();
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        Self { server, name }
    }

    fn config(&self, schema: &str) -> PostgresConfig {
        let url = self.server.clone().database(&self.name);
        let url = format!(
            "postgres://{}@{}:{}/{}",
            url.get_username(),
            url.get_host(),
            url.get_port(),
            self.name
        );
        PostgresConfig {
            schema: Some(schema.to_owned()),
            ..PostgresConfig::new(url)
        }
    }

    async fn drop(self) {
        let mut conn = PgConnection::connect_with(&self.server).await.unwrap();
        let drop = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        sqlx::query(AssertSqlSafe(drop))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
}

/// In a database without `pg_trgm`, the first schema migrated gets it; a second schema,
/// whose connections see only itself on the search_path, builds its index on the first
/// one's operator class and searches as well.
#[tokio::test]
async fn the_search_index_finds_pg_trgm_in_any_schema_or_creates_it() {
    // Skipped, or failing in CI, as every test on the server is.
    let Some(_same_rules) = TestSchema::create().await else {
        return;
    };
    let database = TestDatabase::create().await;
    let first = database.config("first_app");
    let second = database.config("second_app");
    let checked = tokio::spawn(async move {
        let a = PostgresDatabase::open(&first).await.unwrap();
        let home: String = sqlx::query_scalar(
            "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_trgm'",
        )
        .fetch_one(a.pool())
        .await
        .unwrap();
        assert_eq!(home, "first_app");
        let b = PostgresDatabase::open(&second).await.unwrap();
        for db in [&a, &b] {
            crate::insert_user(db, "alice", Some("Alice Liddell")).await;
            assert_eq!(found(db, "liddell").await, ["alice"]);
            // The operator class of the three columns, with the schema that holds it.
            let classes: Vec<String> = sqlx::query_scalar(
                "SELECT o.opcnamespace::regnamespace::text || '.' || o.opcname \
                 FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid \
                 JOIN pg_opclass AS o ON o.oid = ANY (i.indclass::oid[]) \
                 WHERE c.relname = 'users_search' \
                   AND c.relnamespace = current_schema()::regnamespace",
            )
            .fetch_all(db.pool())
            .await
            .unwrap();
            assert_eq!(classes, ["first_app.gin_trgm_ops"]);
            let mut tx = db.pool().begin().await.unwrap();
            sqlx::query("SET LOCAL enable_seqscan = off")
                .execute(&mut *tx)
                .await
                .unwrap();
            let plan: Vec<String> = sqlx::query_scalar(
                "EXPLAIN SELECT id FROM users WHERE lower(display_name) LIKE '%liddell%'",
            )
            .fetch_all(&mut *tx)
            .await
            .unwrap();
            let plan = plan.join("\n");
            assert!(plan.contains("users_search"), "{plan}");
        }
        a.close().await;
        b.close().await;
    })
    .await;
    database.drop().await;
    if let Err(e) = checked {
        std::panic::resume_unwind(e.into_panic());
    }
}
