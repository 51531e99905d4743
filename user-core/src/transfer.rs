//! Moving users between deployments: every user with their hash, role and status as JSON
//! lines ([`export_users`], [`import_users`]), over the [`UserRepository`] port, and the
//! bookkeeping every import shares ([`ImportBatch`]; the SQLite adapter's legacy import uses
//! it too).
//!
//! Both move users in bulk: the export reads [`EXPORT_PAGE`] users with their hashes per
//! query ([`UserRepository::export_page`]), an import writes [`IMPORT_BATCH`] users per
//! transaction ([`UserRepository::insert_many`]). A failure mid-way leaves every batch
//! written before it in place, and a rerun completes the import.
//!
//! An import is idempotent: a user whose id is already present is skipped, so a rerun
//! imports nothing twice. A row that does not parse, whose password hash the hasher would
//! refuse at sign-in ([`HashCeiling::check`]), or whose username or email collides
//! case-insensitively with another user, is not dropped silently: it is reported through the
//! caller's `on_event` with where it was and why, and the rest are imported.
//!
//! ```no_run
//! # async fn run(users: &dyn user_core::ports::UserRepository, other: &dyn user_core::ports::UserRepository)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! use user_core::transfer::{export_users, import_users};
//!
//! let mut file = Vec::new(); // an owner-only file: it holds password hashes
//! let count = export_users(users, &mut file).await?;
//! let ceiling = user_core::password::HashCeiling::default(); // the hasher's
//! let summary = import_users(other, &ceiling, file.as_slice(), |event| eprintln!("{event}")).await?;
//! println!("{count} exported; {summary}");
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::{Future as _, poll_fn};
use std::io::{BufRead, Write};
use std::pin::pin;
use std::task::Poll;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{
    DisplayName, Email, NewUser, PasswordHash, Role, User, UserId, UserStatus, Username,
};
use crate::error::{HashError, RepoError, UniqueField, ValidationError};
use crate::password::HashCeiling;
use crate::ports::{Inserted, UserRepository};

/// Rows an import writes per transaction ([`UserRepository::insert_many`]).
///
/// One row per transaction paid a disk flush per row (300,000 users took 4 minutes on
/// SQLite). Past the flush, each commit still writes every index page its rows touched:
/// SQLite (WAL) writes each such page once per commit, so the fewer the commits the fewer
/// the writes, most of all for the id index, which an import in username order fills at
/// random places. Measured on SQLite (release build, 300,000 users in username order): 1,000
/// rows per transaction imported about 20,000 rows/s, 5,000 about 22,000 (and 26,000 at
/// 100,000 users). 5,000 rows keep a transaction short: about a quarter of a second, the
/// longest that a writer (a sign-in creating its session) waits behind an import, well
/// within the stores' busy and statement timeouts; a batch is a few megabytes of memory,
/// and a failure loses at most one batch of work, which a rerun redoes.
pub const IMPORT_BATCH: usize = 5000;

/// Users an export reads per query ([`UserRepository::export_page`]): large enough that the
/// round trip and the index seek of each page cost little next to its rows, small enough
/// that a page (about 2 MB of users) is no burden and no query holds a snapshot for long.
pub const EXPORT_PAGE: u32 = 5000;

/// One user in the export format: one JSON object per line. Its `Debug` leaves the password
/// hash out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// The user id.
    pub id: Uuid,
    /// The username, as stored (lowercase).
    pub username: String,
    /// The email address, as stored (lowercase).
    pub email: String,
    /// The display name, if any.
    pub display_name: Option<String>,
    /// `user` or `admin`.
    pub role: String,
    /// `active` or `disabled`.
    pub status: String,
    /// When the email address was verified (RFC 3339).
    #[serde(with = "time::serde::rfc3339::option")]
    pub email_verified_at: Option<OffsetDateTime>,
    /// Creation time (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// The password hash (PHC string or bcrypt).
    pub password_hash: String,
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("email", &self.email)
            .field("display_name", &self.display_name)
            .field("role", &self.role)
            .field("status", &self.status)
            .field("email_verified_at", &self.email_verified_at)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("password_hash", &"[REDACTED]")
            .finish()
    }
}

impl UserRecord {
    /// The record of `user` and their stored hash.
    pub fn new(user: User, hash: &PasswordHash) -> Self {
        Self {
            id: user.id.as_uuid(),
            username: user.username.to_string(),
            email: user.email.to_string(),
            display_name: user.display_name.map(|d| d.to_string()),
            role: user.role.as_str().to_owned(),
            status: user.status.as_str().to_owned(),
            email_verified_at: user.email_verified_at,
            created_at: user.created_at,
            updated_at: user.updated_at,
            password_hash: hash.as_str().to_owned(),
        }
    }

    /// The user to insert, every field parsed by the domain's rules, and the password hash
    /// checked as the hasher will check it at sign-in ([`importable_hash`]).
    ///
    /// # Errors
    /// The first field that does not parse; field `password_hash` (code `refused_hash`) for
    /// a hash the hasher would refuse.
    pub fn into_new_user(self, ceiling: &HashCeiling) -> Result<NewUser, ValidationError> {
        let password_hash = importable_hash(&self.password_hash, ceiling)
            .map_err(|reason| ValidationError::new("password_hash", "refused_hash", reason))?;
        let user = User {
            id: UserId::from(self.id),
            username: Username::parse(&self.username)?,
            email: Email::parse(&self.email)?,
            display_name: match self.display_name {
                Some(d) => DisplayName::parse(&d)?,
                None => None,
            },
            role: self.role.parse::<Role>()?,
            status: self.status.parse::<UserStatus>()?,
            email_verified_at: self.email_verified_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        };
        Ok(NewUser {
            user,
            password_hash,
        })
    }
}

/// The password hash an import may store: one the hasher configured with `ceiling` accepts
/// at sign-in ([`HashCeiling::check`]). Every import checks its hashes here, so that no
/// account is stored that could only ever be refused (such a login would skip the hash and
/// answer faster than any other).
///
/// # Errors
/// Why the hash is refused, safe to show: the reason never quotes the hash.
pub fn importable_hash(hash: &str, ceiling: &HashCeiling) -> Result<PasswordHash, String> {
    match ceiling.check(hash) {
        Ok(()) => Ok(PasswordHash::new(hash)),
        Err(HashError::Refused(reason)) => Err(format!("the password hash is refused: {reason}")),
        Err(other) => Err(format!("the password hash is refused: {other}")),
    }
}

/// What an export or import could not do. A rejected row is not an error: it is reported
/// and counted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// The repository failed.
    #[error("storage failed")]
    Storage(#[source] RepoError),
    /// Reading the input or writing the output failed.
    #[error("cannot read or write the users file")]
    Io(#[source] std::io::Error),
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Users inserted.
    pub imported: u64,
    /// Users skipped because their id was already present (a rerun).
    pub already_present: u64,
    /// Rows reported and not imported.
    pub rejected: u64,
}

impl fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} imported, {} already present, {} rejected",
            self.imported, self.already_present, self.rejected
        )
    }
}

/// Something an import reports while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImportEvent<'a> {
    /// A row was not imported; `at` says where (`line 3`, `row 2 (id ...)`).
    Rejected {
        /// Where the row is in the input.
        at: &'a str,
        /// Why it was not imported, safe to show.
        reason: &'a str,
    },
    /// `read` rows (of `total`, when the input says) have been read and handled so far:
    /// reported after each batch.
    Progress {
        /// Rows read.
        read: u64,
        /// Rows in the input, when known before the end (a legacy table; not a file read as
        /// it goes).
        total: Option<u64>,
        /// What happened to them.
        summary: &'a ImportSummary,
    },
}

impl fmt::Display for ImportEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rejected { at, reason } => write!(f, "{at}: rejected: {reason}"),
            Self::Progress {
                read,
                total: Some(total),
                summary,
            } => write!(f, "  {read}/{total} rows read ({summary})"),
            Self::Progress {
                read,
                total: None,
                summary,
            } => write!(f, "  {read} rows read ({summary})"),
        }
    }
}

impl ImportSummary {
    /// Reports a row that is not imported, and counts it.
    pub fn reject(&mut self, at: &str, reason: &str, on_event: &mut dyn FnMut(ImportEvent<'_>)) {
        on_event(ImportEvent::Rejected { at, reason });
        self.rejected += 1;
    }
}

/// The rows an import has read and not yet written: each where it was in the input (`line
/// 3`, `row 2 (id ...)`) and the user it holds, or why it is refused. [`ImportBatch::flush`]
/// writes the users in one transaction and reports every row in input order.
#[derive(Debug, Default)]
pub struct ImportBatch {
    rows: Vec<(String, Result<NewUser, String>)>,
}

impl ImportBatch {
    /// Adds the row read at `at`: a user to insert, or the reason it is refused.
    pub fn push(&mut self, at: String, row: Result<NewUser, String>) {
        self.rows.push((at, row));
    }

    /// Whether it holds [`IMPORT_BATCH`] rows: time to [`flush`](Self::flush).
    pub fn is_full(&self) -> bool {
        self.rows.len() >= IMPORT_BATCH
    }

    /// Rows held, refused ones included.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether it holds no row.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Inserts the users held in one transaction ([`UserRepository::insert_many`]) and
    /// counts every row into `summary`: users inserted, users whose id was already present,
    /// and rejected rows, each refused row and each collision with another user reported
    /// through `on_event` under its place, in input order. The batch is empty afterwards.
    ///
    /// # Errors
    /// [`RepoError`] when the repository fails: nothing of this batch is written or counted,
    /// and the batch keeps its rows.
    pub async fn flush(
        &mut self,
        users: &dyn UserRepository,
        summary: &mut ImportSummary,
        on_event: &mut dyn FnMut(ImportEvent<'_>),
    ) -> Result<(), RepoError> {
        let news: Vec<NewUser> = self
            .rows
            .iter()
            .filter_map(|(_, row)| row.as_ref().ok().cloned())
            .collect();
        let outcomes = if news.is_empty() {
            Vec::new()
        } else {
            users.insert_many(&news).await?
        };
        if outcomes.len() != news.len() {
            return Err(RepoError::unavailable(format!(
                "the store answered {} outcomes for {} users",
                outcomes.len(),
                news.len()
            )));
        }
        let mut outcomes = outcomes.into_iter();
        for (at, row) in self.rows.drain(..) {
            let new = match row {
                Ok(new) => new,
                Err(reason) => {
                    summary.reject(&at, &reason, on_event);
                    continue;
                }
            };
            match outcomes.next() {
                Some(Inserted::Inserted) => summary.imported += 1,
                Some(Inserted::AlreadyPresent) => summary.already_present += 1,
                Some(Inserted::Conflict(field)) => {
                    let value = match field {
                        UniqueField::Username => new.user.username.to_string(),
                        UniqueField::Email => new.user.email.to_string(),
                    };
                    let reason = format!(
                        "{field} {value:?} collides with another user \
                         (usernames and emails are compared case-insensitively)"
                    );
                    summary.reject(&at, &reason, on_event);
                }
                // Checked above: as many outcomes as users.
                None => {}
            }
        }
        Ok(())
    }
}

/// Writes every user, in username order, as one [`UserRecord`] per line, and returns how many:
/// [`EXPORT_PAGE`] users with their hashes per query. The output holds password hashes:
/// give it a file only its owner can read
/// ([`key_files::create_private_file`](crate::auth::key_files::create_private_file)).
///
/// # Errors
/// [`TransferError::Storage`] when the repository fails, [`TransferError::Io`] when writing
/// fails.
pub async fn export_users(
    users: &dyn UserRepository,
    out: &mut dyn Write,
) -> Result<u64, TransferError> {
    let mut after = None;
    let mut count = 0;
    loop {
        let page = users
            .export_page(after.clone(), EXPORT_PAGE)
            .await
            .map_err(TransferError::Storage)?;
        let full = page.len() >= EXPORT_PAGE as usize;
        if let Some((last, _)) = page.last() {
            after = Some(last.username.clone());
        }
        for (user, hash) in page {
            serde_json::to_writer(&mut *out, &UserRecord::new(user, &hash))
                .map_err(|e| TransferError::Io(e.into()))?;
            out.write_all(b"\n").map_err(TransferError::Io)?;
            count += 1;
        }
        if !full {
            break;
        }
    }
    out.flush().map_err(TransferError::Io)?;
    Ok(count)
}

/// Imports users written by [`export_users`], one per line (blank lines are skipped),
/// [`IMPORT_BATCH`] users per transaction. Each line that does not parse, holds a password
/// hash that the hasher configured with `ceiling` would refuse, or collides with another
/// user, is reported as `line N: rejected: reason` through `on_event`, in line order; users
/// already present are skipped; progress is reported after each batch.
///
/// # Errors
/// [`TransferError::Storage`] when the repository fails, [`TransferError::Io`] when reading
/// fails. Every batch written before stays written, and a rerun completes the import.
pub async fn import_users(
    users: &dyn UserRepository,
    ceiling: &HashCeiling,
    input: impl BufRead,
    mut on_event: impl FnMut(ImportEvent<'_>),
) -> Result<ImportSummary, TransferError> {
    let mut summary = ImportSummary::default();
    let mut reader = Reader {
        lines: input.lines(),
        ceiling,
        read: 0,
        end: false,
    };
    let mut batch = ImportBatch::default();
    reader.fill(&mut batch, IMPORT_BATCH)?;
    while !batch.is_empty() {
        let read = reader.read;
        // The next batch is read and parsed while the store writes this one, a few lines
        // between two polls of the write: the parsing costs about a fifth of an import's
        // time, and the store works on another thread (SQLite's) or server.
        let mut next = ImportBatch::default();
        let mut unread = None;
        let flushed = {
            let mut flush = pin!(batch.flush(users, &mut summary, &mut on_event));
            poll_fn(|cx| {
                if let Poll::Ready(flushed) = flush.as_mut().poll(cx) {
                    return Poll::Ready(flushed);
                }
                if unread.is_none() && !reader.end && !next.is_full() {
                    if let Err(e) = reader.fill(&mut next, READ_BETWEEN_POLLS) {
                        unread = Some(e);
                    }
                    // Polled again at once: the write may have moved on meanwhile.
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            })
            .await
        };
        flushed.map_err(TransferError::Storage)?;
        on_event(ImportEvent::Progress {
            read,
            total: None,
            summary: &summary,
        });
        if let Some(e) = unread {
            return Err(e);
        }
        reader.fill(&mut next, IMPORT_BATCH)?;
        batch = next;
    }
    Ok(summary)
}

/// Lines an import reads and parses between two polls of the batch being written.
const READ_BETWEEN_POLLS: usize = 32;

/// The lines of an export file, read into batches.
struct Reader<'a, R> {
    lines: std::io::Lines<R>,
    ceiling: &'a HashCeiling,
    /// Lines read so far, blank ones included.
    read: u64,
    /// Whether the input has ended.
    end: bool,
}

impl<R: BufRead> Reader<'_, R> {
    /// Reads lines into `batch` until it holds `rows` more rows, is full, or the input ends.
    fn fill(&mut self, batch: &mut ImportBatch, rows: usize) -> Result<(), TransferError> {
        let until = batch.len().saturating_add(rows).min(IMPORT_BATCH);
        while batch.len() < until {
            let Some(line) = self.lines.next() else {
                self.end = true;
                return Ok(());
            };
            let line = line.map_err(TransferError::Io)?;
            self.read += 1;
            if line.trim().is_empty() {
                continue;
            }
            let new = serde_json::from_str::<UserRecord>(&line)
                .map_err(|e| e.to_string())
                .and_then(|record| {
                    record
                        .into_new_user(self.ceiling)
                        .map_err(|e| e.to_string())
                });
            batch.push(format!("line {}", self.read), new);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
