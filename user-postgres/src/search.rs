//! The admin user list: pages in username order, filtered by role, status and search text,
//! each served by indexes whatever the number of users.
//!
//! - No search: one range of `users_username_key`, or of `users_role_username`,
//!   `users_status_username` or `users_role_status_username` for the filters, from the
//!   keyset cursor on (the planner picks it: each serves its filters in order).
//! - A search of 3 characters or more matches a substring of the username, the email or
//!   `lower(display_name)`, which the GIN index `users_search` (pg_trgm) finds; 1 or 2
//!   characters match the start of the username or the email, which their unique indexes
//!   find (`COLLATE "C"` lets a btree serve `LIKE 'ab%'`).
//!
//! Left to itself the planner serves `ORDER BY username LIMIT n` with a search by walking
//! the username index and filtering, on the estimate that matches spread evenly: a search
//! whose matches cluster in the username order (a first name, say) or are fewer than
//! estimated then reads most of the table. So a search runs as the SQLite adapter's does,
//! in one read-only transaction whose plans are chosen with `enable_*` settings
//! (`SET LOCAL`, through `set_config`):
//!
//! 1. A **sample**, from bitmap scans of the search indexes only: the first [`SAMPLE`]
//!    matches, with whether each passes the cursor and the filters.
//! 2. Fewer than [`SAMPLE`]: the **set** plan, the same bitmap scans, every match that
//!    passes, sorted. Otherwise the **walk**: index scans only (no bitmap, no sequential
//!    scan), in username order from the cursor up to the sample's `limit + 1`-th passing
//!    username, or to the end when the sample holds fewer.
//!
//! Each answer is exact by itself: the set plan reads the whole match set, and a bounded
//! walk that comes back short runs again without the bound.

use sqlx::{PgConnection, Postgres, QueryBuilder};
use user_core::domain::{Role, UserQuery, UserStatus};

use crate::rows::{UserRow, user_columns};

/// How many matches the sample reads at most: the most rows the set plan sorts, and what
/// bounds the walk (see the SQLite adapter's `search.rs`).
pub(crate) const SAMPLE: i64 = 4096;

/// What a search text matches (see `UserQuery::search`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Search {
    /// 1 or 2 characters: the start of the username or the email, a `LIKE` pattern.
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

    /// Pushes the condition that a user matches: a `LIKE` that the search indexes serve
    /// (a bitmap scan) or that a walk tests on each row.
    fn push_condition(&self, q: &mut QueryBuilder<Postgres>) {
        match self {
            Self::Prefix(p) => {
                q.push("(username LIKE ")
                    .push_bind(p.clone())
                    .push(" OR email LIKE ")
                    .push_bind(p.clone())
                    .push(")");
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

/// The sample: how many matches the search indexes yield, up to [`SAMPLE`], and the
/// `limit + 1`-th username, in order, of those that pass the cursor and the filters.
pub(crate) fn sample_query(
    mut q: QueryBuilder<Postgres>,
    search: &Search,
    query: &UserQuery,
    limit: u32,
) -> QueryBuilder<Postgres> {
    q.push("WITH sample AS MATERIALIZED (SELECT username, (TRUE");
    push_filters(&mut q, query);
    q.push(") AS passes FROM users WHERE ");
    search.push_condition(&mut q);
    q.push(" LIMIT ")
        .push_bind(SAMPLE)
        .push(
            ") SELECT (SELECT COUNT(*) FROM sample), \
             (SELECT username FROM sample WHERE passes ORDER BY username OFFSET ",
        )
        .push_bind(i64::from(limit))
        .push(" LIMIT 1)");
    q
}

/// The set plan: every match, from the search indexes, that passes the cursor and the
/// filters, sorted; the first `limit + 1`. The cursor and filters apply outside a subquery
/// that the planner cannot flatten (`OFFSET 0`), so that the matches are read from the
/// search indexes, not from a filter's index (which may hold most of the table).
pub(crate) fn set_query(
    mut q: QueryBuilder<Postgres>,
    search: &Search,
    query: &UserQuery,
    limit: u32,
) -> QueryBuilder<Postgres> {
    q.push(concat!(
        "SELECT ",
        user_columns!(),
        " FROM (SELECT * FROM users WHERE "
    ));
    search.push_condition(&mut q);
    q.push(" OFFSET 0) AS users WHERE TRUE");
    push_filters(&mut q, query);
    push_order(&mut q, limit);
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

/// The first `limit + 1` users of the page `query` asks for, with its search, in one
/// read-only transaction.
pub(crate) async fn search(
    conn: &mut PgConnection,
    search: &Search,
    query: &UserQuery,
    limit: u32,
) -> Result<Vec<UserRow>, sqlx::Error> {
    let start = || QueryBuilder::new("");
    plan_with(conn, Scans::Bitmap).await?;
    let (sampled, bound): (i64, Option<String>) = sample_query(start(), search, query, limit)
        .build_query_as()
        .fetch_one(&mut *conn)
        .await?;
    if sampled < SAMPLE {
        return set_query(start(), search, query, limit)
            .build_query_as()
            .fetch_all(&mut *conn)
            .await;
    }
    plan_with(conn, Scans::Ordered).await?;
    if let Some(bound) = bound {
        let rows: Vec<UserRow> = walk_query(start(), search, query, limit, Some(&bound))
            .build_query_as()
            .fetch_all(&mut *conn)
            .await?;
        if rows.len() > limit as usize {
            return Ok(rows);
        }
    }
    walk_query(start(), search, query, limit, None)
        .build_query_as()
        .fetch_all(&mut *conn)
        .await
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

        let searches = [
            Search::Prefix("us%".into()),
            Search::Substring("%smith1%".into()),
        ];
        for query in queries() {
            let page = plan(&mut conn, None, page_query(explain(), &query, 20)).await;
            let ok = page.contains("Index") && !page.contains("Seq Scan") && !page.contains("Sort");
            assert!(ok, "page {query:?}:\n{page}");

            for search in &searches {
                let from_index = |plan: &str| match search {
                    Search::Prefix(_) => plan.contains("Bitmap Index Scan on users_"),
                    Search::Substring(_) => plan.contains("Bitmap Index Scan on users_search"),
                };
                let sample = plan(
                    &mut conn,
                    Some(Scans::Bitmap),
                    sample_query(explain(), search, &query, 20),
                )
                .await;
                let ok = from_index(&sample) && !sample.contains("Seq Scan");
                assert!(ok, "sample {search:?} {query:?}:\n{sample}");
                let set = set_query(explain(), search, &query, 20);
                let set = plan(&mut conn, Some(Scans::Bitmap), set).await;
                let ok = from_index(&set)
                    && !set.contains("Seq Scan")
                    && !set.contains("users_role_")
                    && !set.contains("users_status_");
                assert!(ok, "set {search:?} {query:?}:\n{set}");
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
