//! The admin user list: pages in username order, filtered by role, status and search text,
//! each served by indexes whatever the number of users.
//!
//! - No search: one range of `users_username_key`, or of `users_role_username`,
//!   `users_status_username` or `users_role_status_username` for the filters, from the
//!   keyset cursor on (the planner picks it: each serves its filters in order).
//! - A search of 1 or 2 characters matches the start of the username: one range of the same
//!   index, in username order (`COLLATE "C"` lets a btree serve `LIKE 'ab%'`).
//! - A search of 3 characters or more matches a substring of the username, the email or
//!   `lower(display_name)`, which the GIN index `users_search` (pg_trgm) finds.
//!
//! Left to itself the planner serves `ORDER BY username LIMIT n` with a substring by walking
//! the username index and filtering, on the estimate that matches spread evenly: a search
//! whose matches cluster in the username order (a first name, say) or are fewer than
//! estimated then reads most of the table. So a search takes the SQLite adapter's steps, in
//! one read-only transaction whose plans are chosen with `enable_*` settings (`SET LOCAL`,
//! through `set_config`):
//!
//! 1. A **probe** (index scans only): a walk of the username order (or of a filter's index)
//!    from the cursor over the next [`Thresholds::probe`] users at most, testing each row. A
//!    search that matches often near the cursor fills its page here; so does any search when
//!    no more users are left after the cursor. This matters more here than on SQLite: a GIN
//!    bitmap holds every match before its first row is read, so the sample below costs in
//!    proportion to the matches, which the probe keeps to searches that do not match near
//!    the cursor.
//! 2. Otherwise a **sample** (bitmap scans of the search indexes only): of the first
//!    [`Thresholds::sample`] matches, the first `limit + 1` in username order that pass the
//!    cursor and the filters, and how many were sampled. If that is every match, it is the
//!    page: the **set** plan.
//! 3. Otherwise a **walk** (index scans only) from the cursor, up to the sample's
//!    `limit + 1`-th passing username, or to the end when fewer passed.
//!
//! Each answer is exact by itself: a walk returns the first matches of a range of the
//! username order, and is taken as the page only when it is full or its range reaches the
//! end; the set plan is one statement that saw every match.

use sqlx::{FromRow as _, PgConnection, Postgres, QueryBuilder, Row as _};
use user_core::domain::{Role, User, UserPage, UserQuery, UserStatus};
use user_core::error::RepoError;

use crate::retry::Db;
use crate::rows::{UserRow, user_columns};

/// The sizes that choose a search's plan (see the SQLite adapter's, which are the same).
/// The list uses [`Thresholds::DEFAULT`]; tests pick small ones to reach every plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Thresholds {
    /// How many users, in username order from the cursor, the probe tests at most.
    pub(crate) probe: i64,
    /// How many matches the sample reads at most.
    pub(crate) sample: i64,
}

impl Thresholds {
    /// A probe of 1024 users, a sample of 4096 matches.
    pub(crate) const DEFAULT: Self = Self {
        probe: 1024,
        sample: 4096,
    };
}

/// The plan that served a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Plan {
    /// A prefix: one range.
    Range,
    /// The probe filled the page, or saw every user left.
    Probe,
    /// The sample held every match.
    Set,
    /// A walk up to the sample's bound.
    BoundedWalk,
    /// A walk to the end.
    Walk,
}

/// What a search text matches (see `UserQuery::search`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Search {
    /// 1 or 2 characters: the start of the username, a `LIKE` pattern.
    Prefix(String),
    /// 3 characters or more: anywhere in the username, the email or the lowercase display
    /// name, a `LIKE` pattern.
    Substring(String),
}

impl Search {
    /// The search of `query`: `None` without one, `Some(None)` when it can match nobody (a
    /// control character, which no username, email or display name has, and a NUL that
    /// PostgreSQL would refuse).
    pub(crate) fn of(query: &UserQuery) -> Option<Option<Self>> {
        let text = query.search.as_deref()?.to_lowercase();
        if text.chars().any(char::is_control) {
            return Some(None);
        }
        let literal = escape_like(&text);
        Some(Some(
            if text.chars().count() < UserQuery::SUBSTRING_MIN_CHARS {
                Self::Prefix(format!("{literal}%"))
            } else {
                Self::Substring(format!("%{literal}%"))
            },
        ))
    }

    /// Pushes the condition that a user matches: a `LIKE` that the username index serves
    /// as a range (a prefix), or that the search indexes serve (a bitmap scan) or a walk
    /// tests on each row (a substring).
    fn push_condition(&self, q: &mut QueryBuilder<Postgres>) {
        match self {
            Self::Prefix(p) => {
                q.push("username LIKE ").push_bind(p.clone());
            }
            Self::Substring(p) => {
                q.push("(username LIKE ")
                    .push_bind(p.clone())
                    .push(" OR email LIKE ")
                    .push_bind(p.clone())
                    .push(" OR lower(display_name) LIKE ")
                    .push_bind(p.clone())
                    .push(")");
            }
        }
    }
}

/// `text` with `\`, `%` and `_` escaped for `LIKE` (whose escape character is `\`), so that
/// each stands for itself.
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The cursor and filters of a query, pushed as ` AND ...` conditions on `users`.
fn push_filters(q: &mut QueryBuilder<Postgres>, query: &UserQuery) {
    if let Some(after) = &query.after {
        q.push(" AND username > ")
            .push_bind(after.as_str().to_owned());
    }
    if let Some(role) = query.role {
        q.push(" AND role = ").push_bind(Role::as_str(role));
    }
    if let Some(status) = query.status {
        q.push(" AND status = ")
            .push_bind(UserStatus::as_str(status));
    }
}

fn push_order(q: &mut QueryBuilder<Postgres>, limit: u32) {
    q.push(" ORDER BY username LIMIT ")
        .push_bind(i64::from(limit) + 1);
}

/// A page without a search: the first `limit + 1` users from the cursor on that pass the
/// filters. `q` holds what goes before the statement (nothing, or `EXPLAIN`).
pub(crate) fn page_query(
    mut q: QueryBuilder<Postgres>,
    query: &UserQuery,
    limit: u32,
) -> QueryBuilder<Postgres> {
    q.push(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE TRUE"
    ));
    push_filters(&mut q, query);
    push_order(&mut q, limit);
    q
}

/// A page of the users whose username starts with the prefix of `search`: the first
/// `limit + 1` from the cursor on that pass the filters, one range of an index in username
/// order.
pub(crate) fn prefix_query(
    mut q: QueryBuilder<Postgres>,
    search: &Search,
    query: &UserQuery,
    limit: u32,
) -> QueryBuilder<Postgres> {
    q.push(concat!("SELECT ", user_columns!(), " FROM users WHERE "));
    search.push_condition(&mut q);
    push_filters(&mut q, query);
    push_order(&mut q, limit);
    q
}

/// The username [`Thresholds::probe`] users after the cursor, among those that pass the
/// filters: the end of the probe's range, or none when fewer are left.
pub(crate) fn probe_end_query(
    mut q: QueryBuilder<Postgres>,
    query: &UserQuery,
    th: Thresholds,
) -> QueryBuilder<Postgres> {
    q.push("SELECT username FROM users WHERE TRUE");
    push_filters(&mut q, query);
    q.push(" ORDER BY username OFFSET ")
        .push_bind(th.probe - 1)
        .push(" LIMIT 1");
    q
}

/// The sample: of the first [`Thresholds::sample`] matches the search indexes yield, the
/// first `limit + 1` in username order that pass the cursor and the filters, each with the
/// number of matches sampled (`sampled`).
pub(crate) fn sample_query(
    mut q: QueryBuilder<Postgres>,
    search: &Search,
    query: &UserQuery,
    limit: u32,
    th: Thresholds,
) -> QueryBuilder<Postgres> {
    q.push("WITH sample AS MATERIALIZED (SELECT users.*, (TRUE");
    push_filters(&mut q, query);
    q.push(") AS passes FROM users WHERE ");
    search.push_condition(&mut q);
    q.push(" LIMIT ").push_bind(th.sample).push(concat!(
        ") SELECT ",
        user_columns!(),
        ", (SELECT COUNT(*) FROM sample) AS sampled FROM sample WHERE passes"
    ));
    push_order(&mut q, limit);
    q
}

/// How many matches the search indexes yield, up to [`Thresholds::sample`]: asked when no
/// sampled user passes the cursor and the filters.
pub(crate) fn count_query(
    mut q: QueryBuilder<Postgres>,
    search: &Search,
    th: Thresholds,
) -> QueryBuilder<Postgres> {
    q.push("SELECT COUNT(*) FROM (SELECT 1 FROM users WHERE ");
    search.push_condition(&mut q);
    q.push(" LIMIT ").push_bind(th.sample).push(") AS sample");
    q
}

/// The walk (with index scans only): users in username order from the cursor on, up to
/// `bound` if given, that pass the filters and match, tested row by row; the first
/// `limit + 1`.
pub(crate) fn walk_query(
    mut q: QueryBuilder<Postgres>,
    search: &Search,
    query: &UserQuery,
    limit: u32,
    bound: Option<&str>,
) -> QueryBuilder<Postgres> {
    q.push(concat!("SELECT ", user_columns!(), " FROM users WHERE "));
    search.push_condition(&mut q);
    push_filters(&mut q, query);
    if let Some(bound) = bound {
        q.push(" AND username <= ").push_bind(bound.to_owned());
    }
    push_order(&mut q, limit);
    q
}

/// The plans a statement may use, for the rest of the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scans {
    /// Bitmap scans only: the search indexes, whose matches come in no useful order.
    Bitmap,
    /// Index scans only: a walk of a btree in username order.
    Ordered,
}

/// Sets the planner to `scans` until the transaction ends.
pub(crate) async fn plan_with(conn: &mut PgConnection, scans: Scans) -> Result<(), sqlx::Error> {
    let (bitmap, index) = match scans {
        Scans::Bitmap => ("on", "off"),
        Scans::Ordered => ("off", "on"),
    };
    sqlx::query(
        "SELECT set_config('enable_seqscan', 'off', true), \
                set_config('enable_bitmapscan', $1, true), \
                set_config('enable_indexscan', $2, true), \
                set_config('enable_indexonlyscan', $2, true)",
    )
    .bind(bitmap)
    .bind(index)
    .execute(conn)
    .await
    .map(drop)
}

/// The page `query` asks for, its plans chosen by `th`, and the plan of its search.
pub(crate) async fn list(
    db: &Db,
    query: &UserQuery,
    th: Thresholds,
) -> Result<(UserPage, Option<Plan>), RepoError> {
    let limit = query.limit.clamp(1, UserQuery::MAX_LIMIT);
    let pool = &db.pool;
    let (rows, plan) = match Search::of(query) {
        None => {
            let rows = db
                .run(|| async move {
                    page_query(QueryBuilder::new(""), query, limit)
                        .build_query_as()
                        .fetch_all(pool)
                        .await
                })
                .await?;
            (rows, None)
        }
        Some(None) => (Vec::new(), None),
        Some(Some(s @ Search::Prefix(_))) => {
            let s = &s;
            let rows = db
                .run(|| async move {
                    prefix_query(QueryBuilder::new(""), s, query, limit)
                        .build_query_as()
                        .fetch_all(pool)
                        .await
                })
                .await?;
            (rows, Some(Plan::Range))
        }
        Some(Some(s)) => {
            let s = &s;
            let (rows, plan) = db
                .run(|| async move {
                    let mut tx = pool.begin_with("BEGIN READ ONLY").await?;
                    let found = search(&mut tx, s, query, limit, th).await?;
                    tx.commit().await?;
                    Ok(found)
                })
                .await?;
            (rows, Some(plan))
        }
    };
    let more = rows.len() > limit as usize;
    let users = rows
        .into_iter()
        .take(limit as usize)
        .map(User::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    let next = if more {
        users.last().map(|u| u.username.clone())
    } else {
        None
    };
    Ok((UserPage { users, next }, plan))
}

/// The first `limit + 1` users of the page `query` asks for, with its search, and the plan
/// that found them, in the caller's read-only transaction.
async fn search(
    conn: &mut PgConnection,
    search: &Search,
    query: &UserQuery,
    limit: u32,
    th: Thresholds,
) -> Result<(Vec<UserRow>, Plan), sqlx::Error> {
    let start = || QueryBuilder::new("");
    let full = |rows: &Vec<UserRow>| rows.len() > limit as usize;

    plan_with(conn, Scans::Ordered).await?;
    let end: Option<String> = probe_end_query(start(), query, th)
        .build_query_scalar()
        .fetch_optional(&mut *conn)
        .await?;
    let rows: Vec<UserRow> = walk_query(start(), search, query, limit, end.as_deref())
        .build_query_as()
        .fetch_all(&mut *conn)
        .await?;
    if full(&rows) || end.is_none() {
        return Ok((rows, Plan::Probe));
    }

    plan_with(conn, Scans::Bitmap).await?;
    let sample = sample_query(start(), search, query, limit, th)
        .build()
        .fetch_all(&mut *conn)
        .await?;
    let sampled: i64 = match sample.first() {
        Some(row) => row.try_get("sampled")?,
        None => {
            count_query(start(), search, th)
                .build_query_scalar()
                .fetch_one(&mut *conn)
                .await?
        }
    };
    if sampled < th.sample {
        let rows = sample
            .iter()
            .map(UserRow::from_row)
            .collect::<Result<_, _>>()?;
        return Ok((rows, Plan::Set));
    }

    plan_with(conn, Scans::Ordered).await?;
    if let Some(last) = sample.get(limit as usize) {
        let bound: String = last.try_get("username")?;
        let rows: Vec<UserRow> = walk_query(start(), search, query, limit, Some(&bound))
            .build_query_as()
            .fetch_all(&mut *conn)
            .await?;
        if full(&rows) {
            return Ok((rows, Plan::BoundedWalk));
        }
    }
    let rows = walk_query(start(), search, query, limit, None)
        .build_query_as()
        .fetch_all(&mut *conn)
        .await?;
    Ok((rows, Plan::Walk))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(text: &str) -> Option<Option<Search>> {
        Search::of(&UserQuery {
            search: Some(text.to_owned()),
            ..UserQuery::default()
        })
    }

    #[test]
    fn short_text_is_a_prefix_and_longer_a_substring() {
        assert_eq!(search("Al"), Some(Some(Search::Prefix("al%".into()))));
        assert_eq!(search("_%"), Some(Some(Search::Prefix("\\_\\%%".into()))));
        assert_eq!(
            search("a\\b_"),
            Some(Some(Search::Substring("%a\\\\b\\_%".into())))
        );
        assert_eq!(search("a\u{0}b"), Some(None));
        assert_eq!(Search::of(&UserQuery::default()), None);
    }
}

/// Every statement of the list reads indexes, never the whole `users` table, on a table of
/// some size whose statistics are known: the plan of each, for every combination of cursor
/// and filters.
#[cfg(test)]
mod plans {
    use sqlx::Connection as _;
    use user_core::domain::Username;

    use super::*;
    use crate::testing::TestSchema;

    /// The plan of `q` under `scans` (`None`: the planner's own choice).
    async fn plan(
        conn: &mut PgConnection,
        scans: Option<Scans>,
        mut q: QueryBuilder<Postgres>,
    ) -> String {
        let mut tx = conn.begin().await.unwrap();
        if let Some(scans) = scans {
            plan_with(&mut tx, scans).await.unwrap();
        }
        let lines: Vec<String> = q.build_query_scalar().fetch_all(&mut *tx).await.unwrap();
        tx.rollback().await.unwrap();
        lines.join("\n")
    }

    fn explain() -> QueryBuilder<Postgres> {
        QueryBuilder::new("EXPLAIN ")
    }

    /// Every query shape: each combination of cursor, role and status.
    fn queries() -> Vec<UserQuery> {
        let mut out = Vec::new();
        for after in [None, Some(Username::parse("user010000").unwrap())] {
            for role in [None, Some(Role::Admin), Some(Role::User)] {
                for status in [None, Some(UserStatus::Disabled), Some(UserStatus::Active)] {
                    out.push(UserQuery {
                        after: after.clone(),
                        role,
                        status,
                        ..UserQuery::default()
                    });
                }
            }
        }
        out
    }

    #[tokio::test]
    async fn every_statement_of_the_list_uses_indexes() {
        let Some(schema) = TestSchema::create().await else {
            return;
        };
        let db = schema.open().await;
        let mut conn = db.pool().acquire().await.unwrap();
        // 20,000 users: one in a thousand an admin, one in fifty disabled.
        sqlx::query(
            "INSERT INTO users (id, username, email, display_name, password_hash, role, \
             status, created_at, updated_at) \
             SELECT gen_random_uuid(), 'user' || lpad(i::text, 6, '0'), \
                    'u' || i || '@' || (ARRAY['example.com', 'gmail.com', 'corp.org'])[1 + i % 3], \
                    CASE WHEN i % 5 <> 0 THEN \
                        (ARRAY['Ann', 'Émile', 'Zoë', 'Bob'])[1 + i % 4] || ' Smith' || i END, \
                    'h', CASE WHEN i % 1000 = 0 THEN 'admin' ELSE 'user' END, \
                    CASE WHEN i % 50 = 0 THEN 'disabled' ELSE 'active' END, now(), now() \
             FROM generate_series(1, 20000) AS i",
        )
        .execute(&mut *conn)
        .await
        .unwrap();
        sqlx::query("ANALYZE users")
            .execute(&mut *conn)
            .await
            .unwrap();

        let searches = [Search::Substring("%smith1%".into())];
        for query in queries() {
            let page = plan(&mut conn, None, page_query(explain(), &query, 20)).await;
            let ok = page.contains("Index") && !page.contains("Seq Scan") && !page.contains("Sort");
            assert!(ok, "page {query:?}:\n{page}");
            for prefix in ["us%", "user01%"] {
                let search = Search::Prefix(prefix.into());
                let range = prefix_query(explain(), &search, &query, 20);
                let range = plan(&mut conn, None, range).await;
                let ok = range.contains("Index")
                    && !range.contains("Seq Scan")
                    && !range.contains("Sort")
                    && !range.contains("users_search");
                assert!(ok, "prefix {prefix} {query:?}:\n{range}");
            }

            for search in &searches {
                let from_index = |plan: &str| plan.contains("Bitmap Index Scan on users_search");
                let th = Thresholds::DEFAULT;
                let sample = sample_query(explain(), search, &query, 20, th);
                let sample = plan(&mut conn, Some(Scans::Bitmap), sample).await;
                let ok = from_index(&sample)
                    && !sample.contains("Seq Scan")
                    && !sample.contains("users_role_")
                    && !sample.contains("users_status_");
                assert!(ok, "sample {search:?} {query:?}:\n{sample}");
                let count = count_query(explain(), search, th);
                let count = plan(&mut conn, Some(Scans::Bitmap), count).await;
                let ok = from_index(&count) && !count.contains("Seq Scan");
                assert!(ok, "count {search:?}:\n{count}");
                let end = probe_end_query(explain(), &query, th);
                let end = plan(&mut conn, Some(Scans::Ordered), end).await;
                let ok = end.contains("Scan using users_")
                    && !end.contains("Seq Scan")
                    && !end.contains("Bitmap")
                    && !end.contains("Sort");
                assert!(ok, "probe end {query:?}:\n{end}");
                for bound in [None, Some("user015000")] {
                    let walk = walk_query(explain(), search, &query, 20, bound);
                    let walk = plan(&mut conn, Some(Scans::Ordered), walk).await;
                    let ok = walk.contains("Index Scan using users_")
                        && !walk.contains("Seq Scan")
                        && !walk.contains("Bitmap")
                        && !walk.contains("Sort");
                    assert!(ok, "walk {search:?} {query:?} {bound:?}:\n{walk}");
                }
            }
        }
        drop(conn);
        db.close().await;
    }
}

/// Every plan gives the pages of the in-memory reference: with small thresholds the
/// searches of `search_dataset` reach the probe, the set plan and both walks; with the
/// default ones the probe serves them all.
#[cfg(test)]
mod paths {
    use std::collections::HashSet;

    use user_core::domain::{NewUser, PasswordHash, Username};
    use user_core::ports::UserRepository as _;
    use user_core::testing::InMemoryUserRepository;
    use user_core::testing::conformance::{search_dataset, search_queries};

    use super::*;
    use crate::testing::TestSchema;

    #[tokio::test]
    async fn every_plan_gives_the_pages_of_the_reference() {
        let Some(schema) = TestSchema::create().await else {
            return;
        };
        let db = schema.open().await;
        let reference = InMemoryUserRepository::default();
        for user in search_dataset() {
            let new = NewUser {
                user,
                password_hash: PasswordHash::new("h"),
            };
            db.users().insert(&new).await.unwrap();
            reference.insert(&new).await.unwrap();
        }
        let small = Thresholds {
            probe: 8,
            sample: 32,
        };
        for th in [small, Thresholds::DEFAULT] {
            let mut plans = HashSet::new();
            for first in search_queries() {
                let mut q = first.clone();
                for pages in 1.. {
                    let (got, plan) = list(&db.db, &q, th).await.unwrap();
                    plans.insert(plan);
                    assert_eq!(got, reference.list(&q).await.unwrap(), "{th:?} {q:?}");
                    assert!(pages < 60, "pagination must end");
                    match got.next {
                        Some(next) => q.after = Some(next),
                        None => break,
                    }
                }
            }
            if th == small {
                let every = [Plan::Probe, Plan::Set, Plan::BoundedWalk, Plan::Walk];
                assert!(every.iter().all(|p| plans.contains(&Some(*p))), "{plans:?}");
            }
        }
        db.close().await;
    }

    /// A schema with ten users, `user0` to `user9`, inserted last to first.
    async fn ten_users() -> Option<(TestSchema, crate::PostgresDatabase)> {
        let schema = TestSchema::create().await?;
        let db = schema.open().await;
        for i in (0..10).rev() {
            let user = user_core::testing::conformance::user(&format!("user{i}"));
            let new = NewUser {
                user,
                password_hash: PasswordHash::new("h"),
            };
            db.users().insert(&new).await.unwrap();
        }
        Some((schema, db))
    }

    /// A search, its thresholds, and the plan, page and cursor it must give.
    type Case<'a> = (UserQuery, Thresholds, Plan, &'a [&'a str], Option<&'a str>);

    /// The probe's range ends at the `probe`-th user after the cursor, and has no end when
    /// fewer are left.
    #[tokio::test]
    async fn the_probe_ends_at_its_last_user() {
        let Some((_schema, db)) = ten_users().await else {
            return;
        };
        let th = Thresholds {
            probe: 3,
            sample: 100,
        };
        let after = |name: &str| UserQuery {
            after: Some(Username::parse(name).unwrap()),
            ..UserQuery::default()
        };
        for (query, end) in [
            (UserQuery::default(), Some("user2")),
            (after("user5"), Some("user8")),
            (after("user6"), Some("user9")),
            (after("user7"), None),
        ] {
            let got: Option<String> = probe_end_query(QueryBuilder::new(""), &query, th)
                .build_query_scalar()
                .fetch_optional(&db.db.pool)
                .await
                .unwrap();
            assert_eq!(got.as_deref(), end, "{query:?}");
        }
        db.close().await;
    }

    /// The probe answers when its range holds more than a page of matches, or is the rest of
    /// the users; otherwise the sample chooses between the set and the walks. Each plan gives
    /// its page in username order, whatever order the users were inserted in.
    #[tokio::test]
    async fn each_plan_answers_where_it_should() {
        let Some((_schema, db)) = ten_users().await else {
            return;
        };
        let search = |text: &str, after: Option<&str>| UserQuery {
            search: Some(text.to_owned()),
            after: after.map(|a| Username::parse(a).unwrap()),
            limit: 2,
            ..UserQuery::default()
        };
        let th = |probe, sample| Thresholds { probe, sample };
        let cases: [Case<'_>; 6] = [
            // Four matches in the probe's range, more than the page.
            (
                search("user", None),
                th(4, 100),
                Plan::Probe,
                &["user0", "user1"],
                Some("user1"),
            ),
            // Two users left: the range is the rest, and the probe saw every one.
            (
                search("user", Some("user7")),
                th(4, 100),
                Plan::Probe,
                &["user8", "user9"],
                None,
            ),
            // No match in the range; one in all, fewer than the sample.
            (
                search("user9", None),
                th(4, 100),
                Plan::Set,
                &["user9"],
                None,
            ),
            // One match in the range, fewer than a page; ten in all, fewer than the sample:
            // the set, read in the table's order (last inserted first), sorted.
            (
                search("ser", None),
                th(1, 100),
                Plan::Set,
                &["user0", "user1"],
                Some("user1"),
            ),
            // As many matches as the sample, more than a page of them sampled: the walk up
            // to the page's last sampled user.
            (
                search("ser", None),
                th(1, 3),
                Plan::BoundedWalk,
                &["user0", "user1"],
                Some("user1"),
            ),
            // No match in the range; as many in all as the sample, too few for a page.
            (
                search("user9", None),
                th(4, 1),
                Plan::Walk,
                &["user9"],
                None,
            ),
        ];
        for (query, th, plan, names, next) in cases {
            let (page, got) = list(&db.db, &query, th).await.unwrap();
            let got_names: Vec<&str> = page.users.iter().map(|u| u.username.as_str()).collect();
            assert_eq!(
                (
                    got,
                    got_names.as_slice(),
                    page.next.as_ref().map(Username::as_str)
                ),
                (Some(plan), names, next),
                "{query:?} {th:?}"
            );
        }
        db.close().await;
    }
}
