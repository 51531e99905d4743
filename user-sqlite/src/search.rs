//! The admin user list: pages in username order, filtered by role, status and search text,
//! each served by indexes whatever the number of users.
//!
//! - No search: one range of `users_username_key`, or of `users_role_username`,
//!   `users_status_username` or `users_role_status_username` for the filters, from the
//!   keyset cursor on.
//! - A search of 3 characters or more matches a substring of the username, the email or the
//!   lowercase display name, which the FTS5 table `users_search` (trigram tokenizer) finds;
//!   1 or 2 characters match the start of the username or the email, which their unique
//!   indexes find.
//!
//! A search index yields its matches in its own order, not in username order, so a page
//! cannot be the first rows of one index walk. A search is served in two steps:
//!
//! 1. A **sample**: the first [`SAMPLE`] users the search index yields, with whether each
//!    passes the cursor and the filters. Reading it costs at most [`SAMPLE`] row lookups.
//! 2. If the sample holds every match (fewer than [`SAMPLE`]), the page is those matches
//!    that pass, sorted: the **set** plan, at most [`SAMPLE`] rows to sort. Otherwise the
//!    search matches many users, and the page comes from a **walk** of the username order
//!    (or of a filter's index) from the cursor on, testing each row: dense matches make it
//!    short. The sample bounds it: its `limit + 1`-th passing username is an upper end that
//!    holds a full page, so the walk stops there even when the matches cluster elsewhere in
//!    the username order. Only when fewer than that many sampled users pass (a filter rarer
//!    than the search, or the last pages) does the walk run on to the end, along the index of
//!    the filter.
//!
//! Each step's answer is exact by itself, whatever happened in between: the set plan reads
//! the whole match set again, and a bounded walk that comes back short (users changed since
//! the sample) runs again without the bound.

use sqlx::{QueryBuilder, Sqlite, SqlitePool};
use user_core::domain::{Role, UserQuery, UserStatus};
use user_core::error::RepoError;

use crate::map_db_err;
use crate::rows::{UserRow, user_columns};

/// How many matches the sample reads at most: the most rows the set plan sorts, and what
/// bounds the walk. About √(21 × users) balances the two at a million users (a sorted row
/// costs about as much as a walked one).
pub(crate) const SAMPLE: i64 = 4096;

/// What a search text matches (see `UserQuery::search`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Search {
    /// 1 or 2 characters: the start of the username or the email.
    Prefix(String),
    /// 3 characters or more: anywhere in the username, the email or the lowercase display
    /// name.
    Substring(String),
}

impl Search {
    /// The search of `query`: `None` without one, `Some(None)` when it can match nobody (a
    /// control character, which no username, email or display name has).
    pub(crate) fn of(query: &UserQuery) -> Option<Option<Self>> {
        let text = query.search.as_deref()?.to_lowercase();
        if text.chars().any(char::is_control) {
            return Some(None);
        }
        Some(Some(
            if text.chars().count() < UserQuery::SUBSTRING_MIN_CHARS {
                Self::Prefix(text)
            } else {
                Self::Substring(text)
            },
        ))
    }

    /// The full-text query of a substring: one FTS5 string, every character literal (a `"`
    /// is doubled), which the trigram tokenizer turns into a phrase of consecutive trigrams,
    /// that is, the substring itself.
    fn fts_phrase(text: &str) -> String {
        format!("\"{}\"", text.replace('"', "\"\""))
    }

    /// The upper end of the range of strings that start with `prefix`, in the order of the
    /// username and email columns (NOCASE, on lowercase text: byte order). The largest
    /// character sorts after every other; a string of `prefix` followed by it is the one
    /// that the range misses, and no username or email has it.
    fn prefix_end(prefix: &str) -> String {
        format!("{prefix}\u{10FFFF}")
    }

    /// Pushes the condition that a row of `users` matches, tested on the row itself.
    fn push_test(&self, q: &mut QueryBuilder<Sqlite>) {
        match self {
            Self::Prefix(p) => {
                let chars = i64::try_from(p.chars().count()).unwrap_or(i64::MAX);
                q.push("(substr(username, 1, ")
                    .push_bind(chars)
                    .push(") = ")
                    .push_bind(p.clone())
                    .push(" OR substr(email, 1, ")
                    .push_bind(chars)
                    .push(") = ")
                    .push_bind(p.clone())
                    .push(")");
            }
            Self::Substring(t) => {
                q.push("(instr(username, ")
                    .push_bind(t.clone())
                    .push(") > 0 OR instr(email, ")
                    .push_bind(t.clone())
                    .push(") > 0 OR instr(display_name_lower, ")
                    .push_bind(t.clone())
                    .push(") > 0)");
            }
        }
    }

    /// Pushes a `SELECT` of the rowids of the matching users, from the search indexes.
    fn push_matches(&self, q: &mut QueryBuilder<Sqlite>) {
        match self {
            Self::Prefix(p) => {
                q.push("SELECT rowid FROM users WHERE ");
                self.push_prefix_ranges(q, p);
            }
            Self::Substring(t) => {
                q.push("SELECT rowid FROM users_search WHERE users_search MATCH ")
                    .push_bind(Self::fts_phrase(t));
            }
        }
    }

    /// The username and email ranges of `prefix`: each a range of its unique index.
    fn push_prefix_ranges(&self, q: &mut QueryBuilder<Sqlite>, prefix: &str) {
        let end = Self::prefix_end(prefix);
        q.push("(username >= ")
            .push_bind(prefix.to_owned())
            .push(" AND username < ")
            .push_bind(end.clone())
            .push(" OR email >= ")
            .push_bind(prefix.to_owned())
            .push(" AND email < ")
            .push_bind(end)
            .push(")");
    }
}

/// The cursor and filters of a query, pushed as ` AND ...` conditions on `users`, each
/// column written `{column}`: `u.username` when the table has an alias, or `+username`,
/// which SQLite never serves from an index (the set plan must be driven by the match set,
/// not by a walk of the username order).
fn push_filters(q: &mut QueryBuilder<Sqlite>, query: &UserQuery, column: &str) {
    if let Some(after) = &query.after {
        q.push(format_args!(" AND {column}username > "))
            .push_bind(after.as_str().to_owned());
    }
    if let Some(role) = query.role {
        q.push(format_args!(" AND {column}role = "))
            .push_bind(Role::as_str(role));
    }
    if let Some(status) = query.status {
        q.push(format_args!(" AND {column}status = "))
            .push_bind(UserStatus::as_str(status));
    }
}

/// The index that serves the filters of `query` in username order. Named in the statements
/// (`INDEXED BY`): without statistics SQLite would rather take the status index for both
/// filters, and walk every active user to find the active admins.
fn ordered_index(query: &UserQuery) -> &'static str {
    match (query.role, query.status) {
        (None, None) => "users_username_key",
        (Some(_), None) => "users_role_username",
        (None, Some(_)) => "users_status_username",
        (Some(_), Some(_)) => "users_role_status_username",
    }
}

/// `SELECT <user columns> FROM users INDEXED BY <the index of the filters> WHERE `.
fn select_in_username_order(query: &UserQuery) -> QueryBuilder<Sqlite> {
    let mut q = QueryBuilder::new(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users INDEXED BY "
    ));
    q.push(ordered_index(query)).push(" WHERE ");
    q
}

/// A page without a search: the first `limit + 1` users from the cursor on that pass the
/// filters, one index range.
pub(crate) fn page_query(query: &UserQuery, limit: u32) -> QueryBuilder<Sqlite> {
    let mut q = select_in_username_order(query);
    q.push("1");
    push_filters(&mut q, query, "");
    push_order(&mut q, limit);
    q
}

fn push_order(q: &mut QueryBuilder<Sqlite>, limit: u32) {
    q.push(" ORDER BY username LIMIT ")
        .push_bind(i64::from(limit) + 1);
}

/// The sample: how many matches the search index yields, up to [`SAMPLE`], and the
/// `limit + 1`-th username, in order, of those that pass the cursor and the filters.
pub(crate) fn sample_query(search: &Search, query: &UserQuery, limit: u32) -> QueryBuilder<Sqlite> {
    let mut q = QueryBuilder::new("WITH sample AS MATERIALIZED (SELECT u.username AS username, (1");
    push_filters(&mut q, query, "u.");
    q.push(") AS passes FROM ");
    match search {
        Search::Prefix(p) => {
            q.push("users AS u WHERE ");
            search.push_prefix_ranges(&mut q, p);
        }
        Search::Substring(t) => {
            q.push(
                "users_search AS s JOIN users AS u ON u.rowid = s.rowid \
                 WHERE s.users_search MATCH ",
            )
            .push_bind(Search::fts_phrase(t));
        }
    }
    q.push(" LIMIT ")
        .push_bind(SAMPLE)
        .push(
            ") SELECT (SELECT COUNT(*) FROM sample), \
             (SELECT username FROM sample WHERE passes ORDER BY username LIMIT 1 OFFSET ",
        )
        .push_bind(i64::from(limit))
        .push(")");
    q
}

/// The set plan: every match, from the search index, that passes the cursor and the
/// filters, sorted; the first `limit + 1`.
pub(crate) fn set_query(search: &Search, query: &UserQuery, limit: u32) -> QueryBuilder<Sqlite> {
    let mut q = QueryBuilder::new(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE rowid IN ("
    ));
    search.push_matches(&mut q);
    q.push(")");
    push_filters(&mut q, query, "+");
    push_order(&mut q, limit);
    q
}

/// The walk: users in username order from the cursor on, up to `bound` if given, that pass
/// the filters and match, tested row by row; the first `limit + 1`.
pub(crate) fn walk_query(
    search: &Search,
    query: &UserQuery,
    limit: u32,
    bound: Option<&str>,
) -> QueryBuilder<Sqlite> {
    let mut q = select_in_username_order(query);
    search.push_test(&mut q);
    push_filters(&mut q, query, "");
    if let Some(bound) = bound {
        q.push(" AND username <= ").push_bind(bound.to_owned());
    }
    push_order(&mut q, limit);
    q
}

/// The first `limit + 1` users of the page `query` asks for, with its search.
pub(crate) async fn search(
    pool: &SqlitePool,
    search: &Search,
    query: &UserQuery,
    limit: u32,
) -> Result<Vec<UserRow>, RepoError> {
    let (sampled, bound): (i64, Option<String>) = sample_query(search, query, limit)
        .build_query_as()
        .fetch_one(pool)
        .await
        .map_err(map_db_err)?;
    if sampled < SAMPLE {
        return fetch(pool, set_query(search, query, limit)).await;
    }
    if let Some(bound) = bound {
        let rows = fetch(pool, walk_query(search, query, limit, Some(&bound))).await?;
        if rows.len() > limit as usize {
            return Ok(rows);
        }
    }
    fetch(pool, walk_query(search, query, limit, None)).await
}

/// The first `limit + 1` users of the page `query` asks for, without a search.
pub(crate) async fn page(
    pool: &SqlitePool,
    query: &UserQuery,
    limit: u32,
) -> Result<Vec<UserRow>, RepoError> {
    fetch(pool, page_query(query, limit)).await
}

async fn fetch(pool: &SqlitePool, mut q: QueryBuilder<Sqlite>) -> Result<Vec<UserRow>, RepoError> {
    q.build_query_as().fetch_all(pool).await.map_err(map_db_err)
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
        assert_eq!(search("Al"), Some(Some(Search::Prefix("al".into()))));
        assert_eq!(search("élo"), Some(Some(Search::Substring("élo".into()))));
        assert_eq!(search("a\u{0}b"), Some(None));
        assert_eq!(Search::of(&UserQuery::default()), None);
    }

    #[test]
    fn fts_phrases_quote_everything() {
        assert_eq!(Search::fts_phrase("a\"b"), "\"a\"\"b\"");
        assert_eq!(Search::fts_phrase("x OR y*"), "\"x OR y*\"");
    }
}

/// Every statement of the list reads indexes, never the whole `users` table, and a walk
/// never sorts: the plan of each statement, for every combination of cursor and filters.
#[cfg(test)]
mod plans {
    use user_core::domain::Username;

    use super::*;
    use crate::{SqliteConfig, SqliteDatabase};

    async fn plan(pool: &SqlitePool, q: &QueryBuilder<Sqlite>) -> Vec<String> {
        // Unbound parameters read as NULL; the plan does not depend on their values.
        let sql = format!("EXPLAIN QUERY PLAN {}", q.sql().as_str());
        let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(pool)
            .await
            .unwrap();
        rows.into_iter().map(|r| r.3).collect()
    }

    /// Every query shape: each combination of cursor, role and status.
    fn queries() -> Vec<UserQuery> {
        let mut out = Vec::new();
        for after in [None, Some(Username::parse("bob").unwrap())] {
            for role in [None, Some(Role::Admin)] {
                for status in [None, Some(UserStatus::Disabled)] {
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

    fn scans_users(plan: &[String]) -> bool {
        plan.iter()
            .any(|step| step == "SCAN users" || step == "SCAN u")
    }

    #[tokio::test]
    async fn every_statement_of_the_list_uses_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.db");
        let db = SqliteDatabase::open(&SqliteConfig::new(path))
            .await
            .unwrap();
        let pool = db.pool();
        let searches = [
            Search::Prefix("al".into()),
            Search::Substring("alice".into()),
        ];
        for query in queries() {
            let index = ordered_index(&query);
            let page = plan(pool, &page_query(&query, 20)).await;
            let ok = page.len() == 1 && page[0].contains(index) && !scans_users(&page);
            assert!(ok, "page {query:?}: {page:?}");

            for search in &searches {
                let from_index = |plan: &[String]| match search {
                    Search::Prefix(_) => {
                        plan.iter()
                            .any(|s| s.contains("users_username_key (username>?"))
                            && plan.iter().any(|s| s.contains("users_email_key (email>?"))
                    }
                    Search::Substring(_) => {
                        plan.iter().any(|s| s.contains("VIRTUAL TABLE INDEX 0:M"))
                    }
                };
                let sample = plan(pool, &sample_query(search, &query, 20)).await;
                assert!(
                    from_index(&sample) && !scans_users(&sample),
                    "sample {search:?} {query:?}: {sample:?}"
                );
                let set = plan(pool, &set_query(search, &query, 20)).await;
                let by_rowid = set
                    .first()
                    .is_some_and(|s| s == "SEARCH users USING INTEGER PRIMARY KEY (rowid=?)");
                assert!(
                    by_rowid && from_index(&set) && !scans_users(&set),
                    "set {search:?} {query:?}: {set:?}"
                );
                for bound in [None, Some("x")] {
                    let walk = plan(pool, &walk_query(search, &query, 20, bound)).await;
                    let ok = walk.len() == 1 && walk[0].contains(index) && !scans_users(&walk);
                    assert!(ok, "walk {search:?} {query:?} {bound:?}: {walk:?}");
                    if query.after.is_some() || bound.is_some() {
                        assert!(walk[0].starts_with("SEARCH"), "a range: {walk:?}");
                    }
                }
            }
        }
    }
}
