//! Bounded retries: every port method runs its statement or transaction through
//! [`Db::run`], which runs it again after a serialization failure or a deadlock.
//!
//! At SERIALIZABLE isolation (PostgreSQL's when configured, and the default of some
//! PostgreSQL-compatible databases, which we do not claim to support yet) a transaction
//! that conflicts with a concurrent one fails with SQLSTATE 40001 and must be retried from
//! the start; at any level two transactions can deadlock (40P01). Both are transient: the
//! whole operation is run again, a bounded number of times, after a short random wait so
//! that the contenders do not collide again in step.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::PgPool;
use time::OffsetDateTime;
use user_core::error::RepoError;

use crate::map_db_err;

/// SQLSTATE `serialization_failure`.
const SERIALIZATION_FAILURE: &str = "40001";
/// SQLSTATE `deadlock_detected`.
const DEADLOCK_DETECTED: &str = "40P01";

/// The first wait before a retry; each retry waits up to twice as long as the one before.
const FIRST_BACKOFF: Duration = Duration::from_millis(2);
/// The longest wait before a retry.
const MAX_BACKOFF: Duration = Duration::from_millis(100);

/// The pool, and how its stores retry. Shared by every store of one database.
#[derive(Debug, Clone)]
pub(crate) struct Db {
    /// The connection pool.
    pub(crate) pool: PgPool,
    /// Retries after the first attempt.
    retries: u32,
    /// The longest one attempt (a statement or a transaction, with waiting for a
    /// connection) may take before it fails as unavailable: a server that vanished without
    /// closing its connections never answers, and no server-side timeout fires.
    pub(crate) deadline: Duration,
    /// Retries made so far, for [`crate::PostgresDatabase::conflict_retries`].
    retried: Arc<AtomicU64>,
}

/// An attempt that did not finish within [`Db::deadline`].
#[derive(Debug, thiserror::Error)]
#[error("the database did not answer within {0:?}")]
pub(crate) struct NoAnswer(pub(crate) Duration);

/// An operation that kept failing with serialization failures or deadlocks.
#[derive(Debug, thiserror::Error)]
#[error("gave up after {attempts} attempts, each a serialization failure or deadlock")]
struct GaveUp {
    attempts: u32,
    #[source]
    last: sqlx::Error,
}

impl Db {
    pub(crate) fn new(pool: PgPool, retries: u32, deadline: Duration) -> Self {
        Self {
            pool,
            retries,
            deadline,
            retried: Arc::default(),
        }
    }

    pub(crate) fn retries_so_far(&self) -> u64 {
        self.retried.load(Ordering::Relaxed)
    }

    /// Runs `op` (a statement, or a whole transaction) and maps its error; runs it again
    /// while it fails with a serialization failure or a deadlock, up to the configured number
    /// of retries, then gives up with `RepoError::Unavailable`. An attempt that takes longer
    /// than the deadline is abandoned and fails as unavailable, without a retry.
    pub(crate) async fn run<T, F, Fut>(&self, mut op: F) -> Result<T, RepoError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let mut retry = 0;
        loop {
            let Ok(attempt) = tokio::time::timeout(self.deadline, op()).await else {
                return Err(RepoError::unavailable(NoAnswer(self.deadline)));
            };
            match attempt {
                Ok(value) => return Ok(value),
                Err(e) if is_retryable(&e) => {
                    if retry >= self.retries {
                        return Err(RepoError::unavailable(GaveUp {
                            attempts: retry + 1,
                            last: e,
                        }));
                    }
                    retry += 1;
                    self.retried.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(retry, "retrying after a serialization failure or deadlock");
                    tokio::time::sleep(backoff(retry)).await;
                }
                Err(e) => return Err(map_db_err(e)),
            }
        }
    }
}

/// The most rows one statement of a purge deletes: each batch is a short transaction of
/// its own, so a purge of a large backlog neither holds locks for long nor bloats one
/// transaction.
pub(crate) const PURGE_BATCH: u64 = 5000;

impl Db {
    /// Runs `sql`, a `DELETE` of at most `$2` rows that are stale at `$1`, again and again
    /// until a batch deletes fewer than [`PURGE_BATCH`] rows, each batch an operation of its
    /// own (see [`Db::run`]); returns how many rows were deleted in all.
    ///
    /// A batch is written `WHERE key = ANY (ARRAY (SELECT key ... WHERE <stale> LIMIT $2))`
    /// (or with the stale condition on the outer rows too): the keys come from the index on
    /// the time column, and each row is then found by its primary key. `key IN (SELECT ...)`
    /// would let the planner join the batch to the whole table, which it does when the
    /// table is small next to a batch: a sequential scan of the table per batch.
    pub(crate) async fn purge_in_batches(
        &self,
        sql: &'static str,
        before: OffsetDateTime,
    ) -> Result<u64, RepoError> {
        let pool = &self.pool;
        let batch = i64::try_from(PURGE_BATCH).unwrap_or(i64::MAX);
        let mut total = 0;
        loop {
            let deleted = self
                .run(|| async move {
                    sqlx::query(sql)
                        .bind(before)
                        .bind(batch)
                        .execute(pool)
                        .await
                })
                .await?
                .rows_affected();
            total += deleted;
            if deleted < PURGE_BATCH {
                return Ok(total);
            }
        }
    }
}

/// Whether `e` is a serialization failure or a deadlock, after which the whole operation can
/// be run again.
pub(crate) fn is_retryable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code == SERIALIZATION_FAILURE || code == DEADLOCK_DETECTED),
        _ => false,
    }
}

/// The wait before retry number `retry` (from 1): a random time between half of and the
/// whole of `FIRST_BACKOFF * 2^(retry-1)`, capped at `MAX_BACKOFF`.
fn backoff(retry: u32) -> Duration {
    let ceiling = FIRST_BACKOFF
        .saturating_mul(1 << retry.saturating_sub(1).min(16))
        .min(MAX_BACKOFF);
    let half = ceiling / 2;
    // Any 64 random bits will do; a v4 UUID has them at hand.
    let random = uuid::Uuid::new_v4().as_u64_pair().0;
    let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX).max(1);
    half + Duration::from_nanos(random % nanos)
}

#[cfg(test)]
mod tests {
    use sqlx::error::ErrorKind;

    use super::*;
    use crate::tests::db_error;

    #[test]
    fn serialization_failures_and_deadlocks_are_retryable() {
        assert!(is_retryable(&db_error("40001", None, ErrorKind::Other)));
        assert!(is_retryable(&db_error("40P01", None, ErrorKind::Other)));
    }

    #[test]
    fn other_failures_are_not_retried() {
        for code in [
            "23505", "23503", "57014", "40000", "40003", "08006", "XX000",
        ] {
            assert!(
                !is_retryable(&db_error(code, None, ErrorKind::Other)),
                "{code}"
            );
        }
        assert!(!is_retryable(&sqlx::Error::PoolTimedOut));
        assert!(!is_retryable(&sqlx::Error::RowNotFound));
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(!is_retryable(&sqlx::Error::Io(io)));
    }

    #[test]
    fn backoff_grows_within_bounds() {
        for retry in 1..40 {
            let wait = backoff(retry);
            assert!(wait >= FIRST_BACKOFF / 2, "{retry}: {wait:?}");
            assert!(wait <= MAX_BACKOFF, "{retry}: {wait:?}");
        }
        assert!(backoff(1) <= FIRST_BACKOFF);
        assert!(backoff(10) >= MAX_BACKOFF / 2);
    }

    /// The pool is never used here: the operation fails before touching it.
    fn db(retries: u32) -> Db {
        let options = sqlx::postgres::PgConnectOptions::new().port(1);
        Db::new(
            PgPool::connect_lazy_with(options),
            retries,
            Duration::from_secs(5),
        )
    }

    #[tokio::test]
    async fn retries_are_bounded_then_unavailable() {
        let db = db(3);
        let mut attempts = 0;
        let got: Result<(), RepoError> = db
            .run(|| {
                attempts += 1;
                async { Err(db_error("40001", None, ErrorKind::Other)) }
            })
            .await;
        assert_eq!(attempts, 4, "the first attempt and three retries");
        assert_eq!(db.retries_so_far(), 3);
        let err = got.unwrap_err();
        assert!(matches!(err, RepoError::Unavailable(_)), "{err:?}");
        let report = user_core::error::report(&err);
        assert!(report.contains("gave up after 4 attempts"), "{report}");
    }

    #[tokio::test]
    async fn a_retry_that_succeeds_returns_its_value() {
        let database = crate::PostgresDatabase { db: db(5) };
        let db = &database.db;
        let mut attempts = 0;
        let got = db
            .run(|| {
                attempts += 1;
                let n = attempts;
                async move {
                    if n < 3 {
                        Err(db_error("40P01", None, ErrorKind::Other))
                    } else {
                        Ok(n)
                    }
                }
            })
            .await;
        assert_eq!(got.unwrap(), 3);
        assert_eq!(db.retries_so_far(), 2);
        assert_eq!(
            database.conflict_retries(),
            2,
            "what a host application reads"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_that_never_answers_fails_at_the_deadline() {
        let db = db(5);
        let started = tokio::time::Instant::now();
        let got: Result<(), RepoError> = db.run(std::future::pending).await;
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        let err = got.unwrap_err();
        assert!(matches!(err, RepoError::Unavailable(_)), "{err:?}");
        let report = user_core::error::report(&err);
        assert!(report.contains("did not answer within 5s"), "{report}");
        assert_eq!(db.retries_so_far(), 0, "a silent server is not retried");
    }

    /// Two SERIALIZABLE transactions made to conflict (write skew: each reads what the other
    /// writes) on a real server: the one that commits second fails with 40001, and
    /// [`Db::run`] runs it again, alone this time, successfully.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_real_serialization_failure_is_retried() {
        let Ok(url) = std::env::var("USERS_TEST_POSTGRES_URL") else {
            assert!(std::env::var_os("CI").is_none(), "CI must run this test");
            eprintln!("*** skipped: USERS_TEST_POSTGRES_URL is unset ***");
            return;
        };
        let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .unwrap();
        let table = format!("retry_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE {table} (k text NOT NULL)"
        )))
        .execute(&pool)
        .await
        .unwrap();
        let db = Db::new(pool.clone(), 5, Duration::from_secs(30));
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let (pool, table, attempts) = (&pool, table.as_str(), &attempts);
        let serializable = "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE";
        let read = |k: &str| format!("SELECT COUNT(*) FROM {table} WHERE k = '{k}'");
        let write = |k: &str| format!("INSERT INTO {table} (k) VALUES ('{k}')");
        let got = db
            .run(|| async move {
                let attempt = attempts.fetch_add(1, Ordering::SeqCst) + 1;
                let mut tx = pool.begin().await?;
                sqlx::query(serializable).execute(&mut *tx).await?;
                sqlx::query(sqlx::AssertSqlSafe(read("b")))
                    .execute(&mut *tx)
                    .await?;
                if attempt == 1 {
                    // The other transaction reads what this one will write, writes what
                    // this one read, and commits first.
                    let mut other = pool.begin().await?;
                    sqlx::query(serializable).execute(&mut *other).await?;
                    sqlx::query(sqlx::AssertSqlSafe(read("a")))
                        .execute(&mut *other)
                        .await?;
                    sqlx::query(sqlx::AssertSqlSafe(write("b")))
                        .execute(&mut *other)
                        .await?;
                    other.commit().await?;
                }
                sqlx::query(sqlx::AssertSqlSafe(write("a")))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(attempt)
            })
            .await;
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT k FROM {table} ORDER BY k"
        )))
        .fetch_all(pool)
        .await
        .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {table}")))
            .execute(pool)
            .await
            .unwrap();
        assert_eq!(got.unwrap(), 2, "the second attempt succeeded");
        assert_eq!(db.retries_so_far(), 1);
        assert_eq!(rows, ["a", "b"], "each transaction wrote once");
    }

    #[tokio::test]
    async fn other_errors_are_mapped_at_once() {
        let db = db(5);
        let mut attempts = 0;
        let got: Result<(), RepoError> = db
            .run(|| {
                attempts += 1;
                async {
                    Err(db_error(
                        "23505",
                        Some("users_email_key"),
                        ErrorKind::UniqueViolation,
                    ))
                }
            })
            .await;
        assert_eq!(attempts, 1);
        assert!(matches!(got, Err(RepoError::Conflict { .. })), "{got:?}");
    }
}
