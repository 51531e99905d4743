//! The admin search on a real server: a schema from before the search index gains it with
//! its users, and the index finds `pg_trgm` wherever the database has it, or creates it.
//! (Its plans are checked against the reference in `src/search.rs`.)

use std::str::FromStr as _;

use secrecy::ExposeSecret as _;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection as _, PgConnection};
use user_core::domain::UserQuery;
use user_core::ports::UserRepository as _;
use user_postgres::testing::{TestSchema, URL_VAR};
use user_postgres::{PostgresConfig, PostgresDatabase};

use crate::{TestDb, migrations};

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

/// Rough timings of the admin search on a schema of many users (100,000, or
/// `USERS_SEARCH_TIMING_USERS`), generated by one statement with a fixed hash:
///
/// ```text
/// USERS_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
///     USERS_SEARCH_TIMING_USERS=100000 \
///     cargo test -p user-postgres --test it -- --ignored --nocapture search_timing
/// ```
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a timing run, not a check"]
async fn search_timing() {
    use std::time::{Duration, Instant};

    use user_core::domain::{Role, UserStatus, Username};

    let Some(t) = TestDb::new().await else {
        return;
    };
    let n: i64 = std::env::var("USERS_SEARCH_TIMING_USERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let started = Instant::now();
    // The names of the SQLite timing run's generator, in the same proportions.
    sqlx::query(
        "WITH names AS (SELECT \
           ARRAY['james', 'mary', 'john', 'patricia', 'robert', 'jennifer', 'michael', \
                 'linda', 'william', 'elizabeth', 'david', 'barbara', 'richard', 'susan', \
                 'joseph', 'jessica', 'thomas', 'sarah', 'charles', 'karen', 'christopher', \
                 'nancy', 'daniel', 'lisa', 'matthew', 'betty', 'anthony', 'margaret', 'mark', \
                 'sandra', 'élodie', 'zoë', 'jürgen', 'søren', 'олег', 'lucía', 'françois'] \
             AS first, \
           ARRAY['smith', 'johnson', 'williams', 'brown', 'jones', 'garcia', 'miller', \
                 'davis', 'rodriguez', 'martinez', 'hernandez', 'lopez', 'gonzalez', 'wilson', \
                 'anderson', 'thomas', 'taylor', 'moore', 'jackson', 'martin', 'lee', 'perez', \
                 'thompson', 'white', 'müller', 'öztürk', 'петров', 'łukasiewicz'] AS last, \
           ARRAY['example.com', 'gmail.com', 'outlook.com', 'corp.example.org'] AS domains), \
         picked AS (SELECT i, first[1 + floor(random() * 37)::int] AS f, \
                           last[1 + floor(random() * 28)::int] AS l, \
                           domains[1 + floor(random() * 4)::int] AS d \
                    FROM generate_series(1, $1) AS i, names) \
         INSERT INTO users (id, username, email, display_name, password_hash, role, status, \
                            created_at, updated_at) \
         SELECT gen_random_uuid(), \
                coalesce(nullif(regexp_replace(f, '[^a-z0-9]', '', 'g'), ''), 'o') || '.' || \
                coalesce(nullif(regexp_replace(l, '[^a-z0-9]', '', 'g'), ''), 'o') || i, \
                left(f, 1) || l || i || '@' || d, \
                CASE WHEN random() < 0.8 THEN initcap(f) || ' ' || initcap(l) END, \
                '$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG', \
                CASE WHEN random() < 0.001 THEN 'admin' ELSE 'user' END, \
                CASE WHEN random() < 0.02 THEN 'disabled' ELSE 'active' END, now(), now() \
         FROM picked",
    )
    .bind(n)
    .execute(t.db.pool())
    .await
    .unwrap();
    sqlx::query("VACUUM ANALYZE users")
        .execute(t.db.pool())
        .await
        .unwrap();
    eprintln!("{n} users generated in {:?}", started.elapsed());

    let searching = |text: &str| UserQuery {
        search: Some(text.to_owned()),
        ..UserQuery::default()
    };
    let users = t.db.users();
    let cases: Vec<(&str, UserQuery)> = vec![
        ("no search, first page", UserQuery::default()),
        (
            "no search, page after 'mmm'",
            UserQuery {
                after: Some(Username::parse("mmm").unwrap()),
                ..UserQuery::default()
            },
        ),
        (
            "role admin",
            UserQuery {
                role: Some(Role::Admin),
                ..UserQuery::default()
            },
        ),
        (
            "status disabled",
            UserQuery {
                status: Some(UserStatus::Disabled),
                ..UserQuery::default()
            },
        ),
        ("search 'smith12' (few)", searching("smith12")),
        ("search 'jürgen' (some, clustered)", searching("jürgen")),
        ("search 'william.' (many, clustered)", searching("william.")),
        ("search 'example' (a third)", searching("example")),
        (
            "search 'gmail.com' + admin",
            UserQuery {
                role: Some(Role::Admin),
                ..searching("gmail.com")
            },
        ),
        ("search 'zzzq' (none)", searching("zzzq")),
        ("search 'al' (prefix)", searching("al")),
        ("search 'zo' (prefix, clustered)", searching("zo")),
        ("search 'a' (prefix, many)", searching("a")),
    ];
    for (name, q) in cases {
        let mut times: Vec<Duration> = Vec::new();
        for _ in 0..7 {
            let start = Instant::now();
            let page = users.list(&q).await.unwrap();
            times.push(start.elapsed());
            assert!(page.users.len() <= q.limit as usize);
        }
        times.sort();
        eprintln!(
            "{name:40} median {:>9.3?}  max {:>9.3?}",
            times[3], times[6]
        );
    }
}
