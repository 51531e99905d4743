//! The admin search on a real file: its index stays in step with every change and survives
//! VACUUM, and a file from before the index gains it with its users. (Its plans are checked
//! against the reference in `src/search.rs`.)

use user_core::domain::{DisplayName, NewUser, PasswordHash, ProfileChanges, UserQuery};
use user_core::ports::UserRepository as _;
use user_core::testing::conformance::user;
use user_sqlite::{Durability, SqliteConfig, SqliteDatabase};

use crate::TestDb;

/// FTS5's own check of the search index against `users`: it fails on any row the triggers
/// left out of step.
async fn integrity_check(db: &SqliteDatabase) {
    sqlx::query("INSERT INTO users_search (users_search, rank) VALUES ('integrity-check', 1)")
        .execute(db.pool())
        .await
        .unwrap();
}

/// The usernames a search for `text` finds.
async fn found(db: &SqliteDatabase, text: &str) -> Vec<String> {
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

fn named(name: &str, display: &str) -> NewUser {
    NewUser {
        user: user_core::domain::User {
            display_name: DisplayName::parse(display).unwrap(),
            ..user(name)
        },
        password_hash: PasswordHash::new("h"),
    }
}

/// A file at migration 0005, with users (display names in ASCII and beyond) and sessions,
/// gains the search index when it is opened: its users are found at once, by every name.
#[tokio::test]
async fn a_file_from_before_the_search_index_gains_it_with_its_users() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.db");
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    sqlx::migrate!("./migrations")
        .run_to(5, &pool)
        .await
        .unwrap();
    for (i, (name, display)) in [
        ("alice", Some("Alice Liddell")),
        ("emile", Some("ÉMILE Zola")),
        ("dmitri", Some("Дмитрий ПЕТРОВ")),
        ("bob", None),
    ]
    .into_iter()
    .enumerate()
    {
        sqlx::query(
            "INSERT INTO users (id, username, email, display_name, password_hash, role, \
             status, created_at, updated_at) VALUES (?, ?, ?, ?, 'h', 'user', 'active', 0, 0)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(name)
        .bind(format!("{name}@example.com"))
        .bind(display)
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO sessions (id, user_id, kind, created_at, last_used_at, expires_at) \
             SELECT ?, id, 'browser', 0, 0, ? FROM users WHERE username = ?",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(i64::try_from(i).unwrap())
        .bind(name)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;

    let db = SqliteDatabase::open(&SqliteConfig::new(&path))
        .await
        .unwrap();
    assert_eq!(found(&db, "liddell").await, ["alice"]);
    assert_eq!(
        found(&db, "émile").await,
        ["emile"],
        "lowercased beyond ASCII"
    );
    assert_eq!(found(&db, "петров").await, ["dmitri"]);
    assert_eq!(
        found(&db, "example.com").await,
        ["alice", "bob", "dmitri", "emile"]
    );
    assert_eq!(found(&db, "bo").await, ["bob"]);
    integrity_check(&db).await;
    let unlowered: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM users WHERE display_name IS NOT NULL AND display_name_lower IS NULL",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(unlowered, 0);
    let active: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sessions INDEXED BY sessions_active_expires_at \
         WHERE revoked_at IS NULL AND expires_at > 0",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(
        active, 3,
        "the partial index holds the sessions already there"
    );
    db.close().await;

    // Opening again finds nothing left to lowercase.
    let db = SqliteDatabase::open(&SqliteConfig::new(&path))
        .await
        .unwrap();
    assert_eq!(found(&db, "zola").await, ["emile"]);
}

/// The search index is keyed by the rowids of `users`, which VACUUM keeps (the table has
/// indexes): after deletes leave gaps and a VACUUM, searches find the right users, and
/// later changes keep the index in step.
#[tokio::test]
async fn the_search_index_survives_vacuum() {
    let t = TestDb::new().await;
    let users = t.db.users();
    let mut ids = Vec::new();
    for i in 0..30 {
        let new = named(&format!("user{i:02}"), &format!("Person Number {i:02}"));
        ids.push(new.user.id);
        users.insert(&new).await.unwrap();
    }
    for id in ids.iter().step_by(3) {
        users.delete(*id).await.unwrap();
    }
    sqlx::query("VACUUM").execute(t.db.pool()).await.unwrap();
    integrity_check(&t.db).await;
    assert_eq!(found(&t.db, "number 01").await, ["user01"]);
    assert_eq!(found(&t.db, "number 03").await, Vec::<String>::new());
    assert_eq!(found(&t.db, "person").await.len(), 20);

    let changes = ProfileChanges {
        display_name: Some(DisplayName::parse("Renamed").unwrap()),
        ..ProfileChanges::default()
    };
    users
        .update_profile(ids[1], &changes, time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    users.delete(ids[2]).await.unwrap();
    assert_eq!(found(&t.db, "renamed").await, ["user01"]);
    assert_eq!(found(&t.db, "number 02").await, Vec::<String>::new());
    integrity_check(&t.db).await;
}

/// A row whose lowercase display name is missing, or set without a display name, is
/// refused: every writer of `users` must keep the two together.
#[tokio::test]
async fn a_display_name_without_its_lowercase_is_refused() {
    let t = TestDb::new().await;
    let insert = |lower: Option<&'static str>, display: Option<&'static str>| {
        sqlx::query(
            "INSERT INTO users (id, username, email, display_name, display_name_lower, \
             password_hash, role, status, created_at, updated_at) \
             VALUES (?, 'x' || hex(randomblob(4)), hex(randomblob(4)) || '@example.com', ?, ?, \
             'h', 'user', 'active', 0, 0)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(display)
        .bind(lower)
        .execute(t.db.pool())
    };
    for (lower, display) in [(None, Some("Alice")), (Some("alice"), None)] {
        let refused = insert(lower, display).await;
        assert!(refused_by_the_trigger(&refused), "{refused:?}");
    }
    insert(Some("alice"), Some("Alice")).await.unwrap();
    insert(None, None).await.unwrap();
    let cleared =
        sqlx::query("UPDATE users SET display_name_lower = NULL WHERE display_name IS NOT NULL")
            .execute(t.db.pool())
            .await;
    assert!(refused_by_the_trigger(&cleared), "{cleared:?}");
}

/// Whether `r` is the refusal of the triggers that keep `display_name_lower` with
/// `display_name`.
fn refused_by_the_trigger<T>(r: &Result<T, sqlx::Error>) -> bool {
    matches!(r, Err(sqlx::Error::Database(e))
        if e.message().contains("display_name_lower must be set with display_name"))
}

/// Rough timings of the admin search on a file of many users (100,000, or
/// `USERS_SEARCH_TIMING_USERS`), generated in one transaction with a fixed hash:
///
/// ```text
/// USERS_SEARCH_TIMING_USERS=100000 cargo test -p user-sqlite --test it -- --ignored \
///     --nocapture search_timing
/// ```
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a timing run, not a check"]
async fn search_timing() {
    use std::time::{Duration, Instant};

    use user_core::domain::{Role, UserQuery, UserStatus, Username};
    use user_core::ports::UserRepository as _;

    let n: usize = std::env::var("USERS_SEARCH_TIMING_USERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let config = SqliteConfig {
        durability: Durability::Normal,
        ..SqliteConfig::new(dir.path().join("users.db"))
    };
    let db = SqliteDatabase::open(&config).await.unwrap();
    let started = Instant::now();
    generate(&db, n).await;
    eprintln!("{n} users generated in {:?}", started.elapsed());

    let users = db.users();
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

fn searching(text: &str) -> user_core::domain::UserQuery {
    user_core::domain::UserQuery {
        search: Some(text.to_owned()),
        ..user_core::domain::UserQuery::default()
    }
}

/// Inserts `n` users with realistic names in one transaction: one admin in a thousand, one
/// user in fifty disabled, four in five with a display name, some of them beyond ASCII.
async fn generate(db: &SqliteDatabase, n: usize) {
    const FIRST: &[&str] = &[
        "james",
        "mary",
        "john",
        "patricia",
        "robert",
        "jennifer",
        "michael",
        "linda",
        "william",
        "elizabeth",
        "david",
        "barbara",
        "richard",
        "susan",
        "joseph",
        "jessica",
        "thomas",
        "sarah",
        "charles",
        "karen",
        "christopher",
        "nancy",
        "daniel",
        "lisa",
        "matthew",
        "betty",
        "anthony",
        "margaret",
        "mark",
        "sandra",
        "élodie",
        "zoë",
        "jürgen",
        "søren",
        "олег",
        "lucía",
        "françois",
    ];
    const LAST: &[&str] = &[
        "smith",
        "johnson",
        "williams",
        "brown",
        "jones",
        "garcia",
        "miller",
        "davis",
        "rodriguez",
        "martinez",
        "hernandez",
        "lopez",
        "gonzalez",
        "wilson",
        "anderson",
        "thomas",
        "taylor",
        "moore",
        "jackson",
        "martin",
        "lee",
        "perez",
        "thompson",
        "white",
        "müller",
        "öztürk",
        "петров",
        "łukasiewicz",
    ];
    const DOMAINS: &[&str] = &[
        "example.com",
        "gmail.com",
        "outlook.com",
        "corp.example.org",
    ];
    let has_lower: bool = sqlx::query_scalar(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('users') WHERE name = 'display_name_lower'",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    let mut tx = db.pool().begin().await.unwrap();
    let mut seed: u64 = 7;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    for i in 0..n {
        let (first, last) = (FIRST[next() % FIRST.len()], LAST[next() % LAST.len()]);
        // Usernames are ASCII: `олег.петров1` becomes `o.p1`.
        let ascii = |s: &str| -> String {
            let a: String = s.chars().filter(char::is_ascii_alphanumeric).collect();
            if a.is_empty() {
                s.chars().take(1).map(|_| 'o').collect()
            } else {
                a
            }
        };
        let username = format!("{}.{}{i}", ascii(first), ascii(last));
        let email = format!(
            "{}{}{i}@{}",
            first.chars().next().unwrap(),
            last,
            DOMAINS[next() % DOMAINS.len()]
        );
        let display = (next() % 5 != 0).then(|| {
            let cap = |s: &str| {
                let mut c = s.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect::<String>())
                    .unwrap_or_default()
            };
            format!("{} {}", cap(first), cap(last))
        });
        let role = if next() % 1000 == 0 { "admin" } else { "user" };
        let status = if next() % 50 == 0 {
            "disabled"
        } else {
            "active"
        };
        let sql = if has_lower {
            "INSERT INTO users (id, username, email, display_name, password_hash, role, status, \
             created_at, updated_at, display_name_lower) VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0, ?)"
        } else {
            "INSERT INTO users (id, username, email, display_name, password_hash, role, status, \
             created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0)"
        };
        let mut q = sqlx::query(sql)
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(username)
            .bind(email)
            .bind(display.clone())
            .bind("$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG")
            .bind(role)
            .bind(status);
        if has_lower {
            q = q.bind(display.map(|d| d.to_lowercase()));
        }
        q.execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
}
