//! The admin user list: pages in username order, filtered by role, status and search text,
//! each served by indexes whatever the number of users.
//!
//! - No search: one range of `users_username_key`, or of `users_role_username`,
//!   `users_status_username` or `users_role_status_username` for the filters, from the
//!   keyset cursor on.
//! - A search of 1 or 2 characters matches the start of the username: one range of the
//!   same index, in username order, whatever the number of users.
//! - A search of 3 characters or more matches a substring of the username, the email or the
//!   lowercase display name, which the FTS5 table `users_search` (trigram tokenizer) finds.
//!
//! The search index yields its matches in its own order, not in username order, so a page
//! cannot be the first rows of one index walk. A substring search is served in up to three
//! steps:
//!
//! 1. A **probe**: a walk of the username order (or of a filter's index) from the cursor
//!    over the next [`Thresholds::probe`] users at most, testing each row. A search that
//!    matches often near the cursor fills its page here; so does any search when no more
//!    users than that are left after the cursor (a rare role or status, the last pages).
//! 2. Otherwise a **count** of the matches the search index yields, up to
//!    [`Thresholds::sample`] (the index alone, no row read). Fewer than that: the **set**
//!    plan reads every match and returns the first `limit + 1` in username order that pass
//!    the cursor and the filters (at most that many row lookups and a sort).
//! 3. Otherwise the search matches many users, and the page comes from a **walk** of the
//!    username order (or of a filter's index) from the cursor on that keeps the rows whose
//!    rowid is among the matches: the index alone (it holds the rowid) against the set of
//!    matching rowids, which the search index yields without reading a row. It reads rows
//!    only for the page. It costs the set (built for each page, about 0.2 µs per match: a
//!    text that matches a third of a million users costs some 70 ms) and a fraction of a
//!    microsecond per user walked past (the distance from the cursor to the page's last
//!    match, long when the matches lie far from the cursor or a filter keeps few of them).
//!
//! The steps run in one read transaction, so each answer is exact: a walk returns the first
//! matches of the username order from the cursor on, and the set plan reads every match of
//! the snapshot that counted them.

use sqlx::{QueryBuilder, Sqlite, SqlitePool};
use user_core::domain::{Role, User, UserPage, UserQuery, UserStatus};
use user_core::error::RepoError;

use crate::map_db_err;
use crate::rows::{UserRow, user_columns};

/// The sizes that choose a search's plan. The list uses [`Thresholds::DEFAULT`]; tests pick
/// small ones to reach every plan with a few users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Thresholds {
    /// How many users, in username order from the cursor, the probe tests at most.
    pub(crate) probe: i64,
    /// The most matches the set plan reads and sorts; a search with more is walked.
    pub(crate) sample: i64,
}

impl Thresholds {
    /// A probe of 1024 users: a search that matches one in fifty of them near the cursor
    /// fills a default page (20) there. A set of 4096 matches: a row read for the set plan
    /// costs about ten users walked past by the walk; at 4096 matches in a million users
    /// the walk meets a default page's matches within about 5,000 users if they spread.
    pub(crate) const DEFAULT: Self = Self {
        probe: 1024,
        sample: 4096,
    };
}

/// What a search text matches (see `UserQuery::search`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Search {
    /// 1 or 2 characters: the start of the username.
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
    /// username column (NOCASE, on lowercase text: byte order). The largest character sorts
    /// after every other; a string of `prefix` followed by it is the one that the range
    /// misses, and no username has it.
    fn prefix_end(prefix: &str) -> String {
        format!("{prefix}\u{10FFFF}")
    }
}

/// Pushes the condition that a row of `users` holds the substring `text`, tested on the row
/// itself.
fn push_test(q: &mut QueryBuilder<Sqlite>, text: &str) {
    q.push("(instr(username, ")
        .push_bind(text.to_owned())
        .push(") > 0 OR instr(email, ")
        .push_bind(text.to_owned())
        .push(") > 0 OR instr(display_name_lower, ")
        .push_bind(text.to_owned())
        .push(") > 0)");
}

/// Pushes the rowids of the users the search index yields as holding the substring `text`,
/// in its own order: `SELECT rowid FROM users_search WHERE ...`, the index alone.
fn push_matching_rowids(q: &mut QueryBuilder<Sqlite>, text: &str) {
    q.push("SELECT rowid FROM users_search WHERE users_search MATCH ")
        .push_bind(Search::fts_phrase(text));
}

/// Pushes the rows of `users AS u` that the search index yields as holding the substring
/// `text`, in its own order: a join of the FTS5 table to `users AS u`.
fn push_source(q: &mut QueryBuilder<Sqlite>, text: &str) {
    q.push(
        "users_search AS s JOIN users AS u ON u.rowid = s.rowid \
         WHERE s.users_search MATCH ",
    )
    .push_bind(Search::fts_phrase(text));
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

/// A page of the users whose username starts with `prefix`: the first `limit + 1` from the
/// cursor on that pass the filters, one index range.
pub(crate) fn prefix_query(query: &UserQuery, prefix: &str, limit: u32) -> QueryBuilder<Sqlite> {
    let mut q = select_in_username_order(query);
    q.push("username >= ")
        .push_bind(prefix.to_owned())
        .push(" AND username < ")
        .push_bind(Search::prefix_end(prefix));
    push_filters(&mut q, query, "");
    push_order(&mut q, limit);
    q
}

fn push_order(q: &mut QueryBuilder<Sqlite>, limit: u32) {
    q.push(" ORDER BY username LIMIT ")
        .push_bind(i64::from(limit) + 1);
}

/// The username [`Thresholds::probe`] users after the cursor, among those that pass the
/// filters: the end of the probe's range, or none when fewer are left. One range of a
/// covering index.
pub(crate) fn probe_end_query(query: &UserQuery, th: Thresholds) -> QueryBuilder<Sqlite> {
    let mut q = QueryBuilder::new("SELECT username FROM users INDEXED BY ");
    q.push(ordered_index(query)).push(" WHERE 1");
    push_filters(&mut q, query, "");
    q.push(" ORDER BY username LIMIT 1 OFFSET ")
        .push_bind(th.probe - 1);
    q
}

/// The set plan: of the first [`Thresholds::sample`] matches the search index yields (every
/// match, when [`count_query`] counted fewer), the first `limit + 1` in username order that
/// pass the cursor and the filters.
pub(crate) fn sample_query(
    text: &str,
    query: &UserQuery,
    limit: u32,
    th: Thresholds,
) -> QueryBuilder<Sqlite> {
    let mut q = QueryBuilder::new("WITH sample AS MATERIALIZED (SELECT u.*, (1");
    push_filters(&mut q, query, "u.");
    q.push(") AS passes FROM ");
    push_source(&mut q, text);
    q.push(" LIMIT ").push_bind(th.sample).push(concat!(
        ") SELECT ",
        user_columns!(),
        " FROM sample WHERE passes"
    ));
    push_order(&mut q, limit);
    q
}

/// How many matches the search index yields, up to [`Thresholds::sample`]: from the index
/// alone.
pub(crate) fn count_query(text: &str, th: Thresholds) -> QueryBuilder<Sqlite> {
    let mut q = QueryBuilder::new("SELECT COUNT(*) FROM (");
    push_matching_rowids(&mut q, text);
    q.push(" LIMIT ").push_bind(th.sample).push(")");
    q
}

/// The walk of a search with many matches: users in username order from the cursor on that
/// pass the filters and whose rowid the search index yields; the first `limit + 1`. The
/// index of the filters holds the username and the rowid: the walk reads no row but the
/// page's.
pub(crate) fn match_walk_query(text: &str, query: &UserQuery, limit: u32) -> QueryBuilder<Sqlite> {
    let mut q = select_in_username_order(query);
    q.push("rowid IN (");
    push_matching_rowids(&mut q, text);
    q.push(")");
    push_filters(&mut q, query, "");
    push_order(&mut q, limit);
    q
}

/// The probe's walk: users in username order from the cursor on, up to `bound` if given,
/// that pass the filters and match, tested row by row; the first `limit + 1`.
pub(crate) fn walk_query(
    text: &str,
    query: &UserQuery,
    limit: u32,
    bound: Option<&str>,
) -> QueryBuilder<Sqlite> {
    let mut q = select_in_username_order(query);
    push_test(&mut q, text);
    push_filters(&mut q, query, "");
    if let Some(bound) = bound {
        q.push(" AND username <= ").push_bind(bound.to_owned());
    }
    push_order(&mut q, limit);
    q
}

/// The plan that served a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Plan {
    /// A prefix: one range.
    Range,
    /// The probe filled the page, or saw every user left.
    Probe,
    /// Fewer matches than [`Thresholds::sample`]: all read and sorted.
    Set,
    /// A walk of the username order against the matches.
    Walk,
}

/// The page `query` asks for, its plans chosen by `th`, and the plan of its search.
pub(crate) async fn list(
    pool: &SqlitePool,
    query: &UserQuery,
    th: Thresholds,
) -> Result<(UserPage, Option<Plan>), RepoError> {
    let limit = query.limit.clamp(1, UserQuery::MAX_LIMIT);
    let (rows, plan) = match Search::of(query) {
        None => (fetch(pool, page_query(query, limit)).await?, None),
        Some(None) => (Vec::new(), None),
        Some(Some(Search::Prefix(p))) => (
            fetch(pool, prefix_query(query, &p, limit)).await?,
            Some(Plan::Range),
        ),
        Some(Some(Search::Substring(text))) => {
            let (rows, plan) = search(pool, &text, query, limit, th).await?;
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

/// The first `limit + 1` users of the page `query` asks for, with its substring `text`.
async fn search(
    pool: &SqlitePool,
    text: &str,
    query: &UserQuery,
    limit: u32,
    th: Thresholds,
) -> Result<(Vec<UserRow>, Plan), RepoError> {
    // One read transaction: its statements see one snapshot, so the count that chooses the
    // set plan still holds when the set is read.
    let mut tx = pool.begin().await.map_err(map_db_err)?;
    let end: Option<String> = probe_end_query(query, th)
        .build_query_scalar()
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_db_err)?;
    let rows = fetch(&mut *tx, walk_query(text, query, limit, end.as_deref())).await?;
    let found = if rows.len() > limit as usize || end.is_none() {
        (rows, Plan::Probe)
    } else {
        let count: i64 = count_query(text, th)
            .build_query_scalar()
            .fetch_one(&mut *tx)
            .await
            .map_err(map_db_err)?;
        if count < th.sample {
            let rows = fetch(&mut *tx, sample_query(text, query, limit, th)).await?;
            (rows, Plan::Set)
        } else {
            let rows = fetch(&mut *tx, match_walk_query(text, query, limit)).await?;
            (rows, Plan::Walk)
        }
    };
    tx.commit().await.map_err(map_db_err)?;
    Ok(found)
}

async fn fetch<'e>(
    executor: impl sqlx::SqliteExecutor<'e>,
    mut q: QueryBuilder<Sqlite>,
) -> Result<Vec<UserRow>, RepoError> {
    q.build_query_as()
        .fetch_all(executor)
        .await
        .map_err(map_db_err)
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
        for query in queries() {
            let index = ordered_index(&query);
            let page = plan(pool, &page_query(&query, 20)).await;
            let ok = page.len() == 1 && page[0].contains(index) && !scans_users(&page);
            assert!(ok, "page {query:?}: {page:?}");
            let prefix = plan(pool, &prefix_query(&query, "al", 20)).await;
            let ok = prefix.len() == 1
                && prefix[0].starts_with("SEARCH")
                && prefix[0].contains(index)
                && prefix[0].contains("username>? AND username<?");
            assert!(ok, "prefix {query:?}: {prefix:?}");

            for search in ["alice"] {
                let from_index =
                    |plan: &[String]| plan.iter().any(|s| s.contains("VIRTUAL TABLE INDEX 0:M"));
                let sample =
                    plan(pool, &sample_query(search, &query, 20, Thresholds::DEFAULT)).await;
                assert!(
                    from_index(&sample) && !scans_users(&sample),
                    "sample {search:?} {query:?}: {sample:?}"
                );
                let end = plan(pool, &probe_end_query(&query, Thresholds::DEFAULT)).await;
                let ok = end.len() == 1 && end[0].contains(&format!("COVERING INDEX {index}"));
                assert!(ok, "probe end {query:?}: {end:?}");
                let count = plan(pool, &count_query(search, Thresholds::DEFAULT)).await;
                let ok = from_index(&count) && !count.iter().any(|s| s.contains("users USING"));
                assert!(ok, "count {search:?}: {count:?}");
                let walk = plan(pool, &match_walk_query(search, &query, 20)).await;
                let ok = walk[0].contains(index)
                    && from_index(&walk)
                    && !scans_users(&walk)
                    && !walk.iter().any(|s| s.contains("TEMP B-TREE"));
                assert!(ok, "match walk {search:?} {query:?}: {walk:?}");
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

/// Every plan gives the pages of the in-memory reference: with small thresholds the
/// searches of `search_dataset` reach the range, the probe, the set plan and the walk; with the
/// default ones the range or the probe serves them all.
#[cfg(test)]
mod paths {
    use std::collections::HashSet;

    use user_core::domain::{NewUser, PasswordHash, Username};
    use user_core::ports::UserRepository as _;
    use user_core::testing::InMemoryUserRepository;
    use user_core::testing::conformance::{search_dataset, search_queries};

    use super::*;
    use crate::{Durability, SqliteConfig, SqliteDatabase};

    #[tokio::test]
    async fn every_plan_gives_the_pages_of_the_reference() {
        let dir = tempfile::tempdir().unwrap();
        let config = SqliteConfig {
            durability: Durability::Normal,
            ..SqliteConfig::new(dir.path().join("users.db"))
        };
        let db = SqliteDatabase::open(&config).await.unwrap();
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
        let tiny = Thresholds {
            probe: 2,
            sample: 4,
        };
        for th in [small, tiny, Thresholds::DEFAULT] {
            let mut plans = HashSet::new();
            for first in search_queries() {
                let mut q = first.clone();
                for pages in 1.. {
                    let (got, plan) = list(db.pool(), &q, th).await.unwrap();
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
                let every = [Plan::Range, Plan::Probe, Plan::Set, Plan::Walk];
                assert!(
                    every.iter().all(|p| plans.contains(&Some(*p))),
                    "{th:?}: {plans:?}"
                );
            }
        }
        sqlx::query("INSERT INTO users_search (users_search, rank) VALUES ('integrity-check', 1)")
            .execute(db.pool())
            .await
            .unwrap();
    }

    /// Ten users, `user0` to `user9`, inserted last to first.
    async fn ten_users() -> (tempfile::TempDir, SqliteDatabase) {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteDatabase::open(&SqliteConfig::new(dir.path().join("users.db")))
            .await
            .unwrap();
        for i in (0..10).rev() {
            let user = user_core::testing::conformance::user(&format!("user{i}"));
            let new = NewUser {
                user,
                password_hash: PasswordHash::new("h"),
            };
            db.users().insert(&new).await.unwrap();
        }
        (dir, db)
    }

    fn after(name: &str) -> UserQuery {
        UserQuery {
            after: Some(Username::parse(name).unwrap()),
            ..UserQuery::default()
        }
    }

    /// A search, its thresholds, and the plan, page and cursor it must give.
    type Case<'a> = (UserQuery, Thresholds, Plan, &'a [&'a str], Option<&'a str>);

    /// The probe's range ends at the `probe`-th user after the cursor, and has no end when
    /// fewer are left.
    #[tokio::test]
    async fn the_probe_ends_at_its_last_user() {
        let (_dir, db) = ten_users().await;
        let th = Thresholds {
            probe: 3,
            sample: 100,
        };
        for (query, end) in [
            (UserQuery::default(), Some("user2")),
            (after("user5"), Some("user8")),
            (after("user6"), Some("user9")),
            (after("user7"), None),
        ] {
            let got: Option<String> = probe_end_query(&query, th)
                .build_query_scalar()
                .fetch_optional(db.pool())
                .await
                .unwrap();
            assert_eq!(got.as_deref(), end, "{query:?}");
        }
    }

    /// The probe answers when its range holds more than a page of matches, or is the rest of
    /// the users; otherwise the count chooses between the set and the walk. Each plan gives
    /// its page in username order, whatever order the users were inserted in.
    #[tokio::test]
    async fn the_probe_answers_when_it_fills_the_page_or_sees_every_user() {
        let (_dir, db) = ten_users().await;
        let search = |text: &str, after: Option<&str>| UserQuery {
            search: Some(text.to_owned()),
            after: after.map(|a| Username::parse(a).unwrap()),
            limit: 2,
            ..UserQuery::default()
        };
        let th = |probe, sample| Thresholds { probe, sample };
        let cases: [Case<'_>; 5] = [
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
            // the set, read in the search index's order (last inserted first), sorted.
            (
                search("ser", None),
                th(1, 100),
                Plan::Set,
                &["user0", "user1"],
                Some("user1"),
            ),
            // No match in the range; as many in all as the sample.
            (
                search("user9", None),
                th(4, 1),
                Plan::Walk,
                &["user9"],
                None,
            ),
        ];
        for (query, th, plan, names, next) in cases {
            let (page, got) = list(db.pool(), &query, th).await.unwrap();
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
    }
}
