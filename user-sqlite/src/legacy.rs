//! The import of the legacy Python deployment's `users.db` (table `users`: `id` TEXT,
//! `username`, `email`, `hashed_password` as a bcrypt BLOB or TEXT).
//!
//! Ids, usernames, emails and hashes are kept: those users sign in with their old passwords,
//! and the hasher replaces the bcrypt hash by Argon2id at that sign-in. A row our rules
//! refuse (an id that is not a UUID, a username or email that does not parse, a hash that is
//! not well-formed bcrypt within the hasher's cost ceiling) or that collides case-insensitively with another user is reported with its row,
//! id and reason, and the rest are imported. A rerun imports nothing twice
//! ([`ImportBatch`]). The rows are written in batches of
//! [`IMPORT_BATCH`](user_core::transfer::IMPORT_BATCH), one transaction each, and progress
//! is reported after each.
//!
//! ```no_run
//! # async fn run(db: user_sqlite::SqliteDatabase) -> Result<(), Box<dyn std::error::Error>> {
//! use user_sqlite::legacy::LegacyUsers;
//!
//! let legacy = LegacyUsers::read("legacy/users.db".as_ref()).await?;
//! eprintln!("importing {} legacy users", legacy.len());
//! let now = time::OffsetDateTime::now_utc();
//! let ceiling = user_core::password::HashCeiling::default(); // the hasher's
//! let summary = legacy
//!     .import_into(&db.users(), &ceiling, now, |event| eprintln!("{event}"))
//!     .await?;
//! eprintln!("done: {summary}");
//! # Ok(()) }
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use sqlx::Connection as _;
use sqlx::sqlite::SqliteConnectOptions;
use time::OffsetDateTime;
use user_core::domain::{Email, NewUser, Role, User, UserId, UserStatus, Username};
use user_core::error::RepoError;
use user_core::password::HashCeiling;
use user_core::ports::UserRepository;
use user_core::transfer::{ImportBatch, ImportEvent, ImportSummary, importable_hash};
use uuid::Uuid;

/// Why the legacy database could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LegacyError {
    /// The file does not exist.
    #[error("{} does not exist", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// SQLite could not open it.
    #[error("cannot open the legacy database {}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: sqlx::Error,
    },
    /// It has no `users` table.
    #[error("the legacy database has no users table")]
    NoUsersTable(#[source] sqlx::Error),
    /// The `users` table could not be read.
    #[error("cannot read the legacy users table")]
    Read(#[source] sqlx::Error),
}

/// One row of the legacy `users` table, as stored. Its `Debug` leaves the hash out.
#[derive(Clone)]
struct LegacyRow {
    id: String,
    username: String,
    email: String,
    hash: Vec<u8>,
}

impl fmt::Debug for LegacyRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LegacyRow")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("email", &self.email)
            .field("hash", &"[REDACTED]")
            .finish()
    }
}

/// The rows of a legacy `users.db`, read in full (the file is opened read-only and closed).
/// Its `Debug` shows the rows without their hashes.
#[derive(Debug, Clone)]
pub struct LegacyUsers {
    rows: Vec<LegacyRow>,
}

impl LegacyUsers {
    /// Reads every row of the legacy `users` table at `path`, in insertion order.
    ///
    /// # Errors
    /// [`LegacyError`] when the file is missing, cannot be opened, or has no readable
    /// `users` table.
    pub async fn read(path: &Path) -> Result<Self, LegacyError> {
        if !path.exists() {
            return Err(LegacyError::Missing {
                path: path.to_owned(),
            });
        }
        let options = SqliteConnectOptions::new().filename(path).read_only(true);
        let mut legacy = sqlx::SqliteConnection::connect_with(&options)
            .await
            .map_err(|source| LegacyError::Open {
                path: path.to_owned(),
                source,
            })?;
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users")
            .fetch_one(&mut legacy)
            .await
            .map_err(LegacyError::NoUsersTable)?;
        let rows: Vec<(String, String, String, Vec<u8>)> = sqlx::query_as(
            "SELECT CAST(id AS TEXT), CAST(username AS TEXT), CAST(email AS TEXT), \
             CAST(hashed_password AS BLOB) FROM users ORDER BY rowid",
        )
        .fetch_all(&mut legacy)
        .await
        .map_err(LegacyError::Read)?;
        let _ = legacy.close().await;
        let rows = rows
            .into_iter()
            .map(|(id, username, email, hash)| LegacyRow {
                id,
                username,
                email,
                hash,
            })
            .collect();
        Ok(Self { rows })
    }

    /// How many rows were read.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the table was empty.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Inserts every acceptable row into `users` (active users with role `user`, created
    /// `now`), skipping ids already present. A hash must be bcrypt that the hasher configured
    /// with `ceiling` accepts at sign-in ([`importable_hash`]). Each refused row is reported as
    /// `row N (id ID): rejected: reason`, and progress after each batch of
    /// [`IMPORT_BATCH`](user_core::transfer::IMPORT_BATCH) rows (one transaction), through
    /// `on_event`.
    ///
    /// # Errors
    /// [`RepoError`] when the repository fails; every batch written before stays, and a
    /// rerun completes the import.
    pub async fn import_into(
        self,
        users: &dyn UserRepository,
        ceiling: &HashCeiling,
        now: OffsetDateTime,
        mut on_event: impl FnMut(ImportEvent<'_>),
    ) -> Result<ImportSummary, RepoError> {
        let total = self.rows.len() as u64;
        let mut summary = ImportSummary::default();
        let mut batch = ImportBatch::default();
        for (row, legacy) in (1..).zip(self.rows) {
            let at = format!("row {row} (id {})", legacy.id);
            batch.push(at, check(&legacy, ceiling, now));
            if batch.is_full() || row == total {
                batch.flush(users, &mut summary, &mut on_event).await?;
                on_event(ImportEvent::Progress {
                    read: row,
                    total: Some(total),
                    summary: &summary,
                });
            }
        }
        Ok(summary)
    }
}

/// The user a legacy row becomes, or why it cannot.
fn check(row: &LegacyRow, ceiling: &HashCeiling, now: OffsetDateTime) -> Result<NewUser, String> {
    let LegacyRow {
        id,
        username,
        email,
        hash,
    } = row;
    let id = Uuid::parse_str(id.trim()).map_err(|_| format!("id {id:?} is not a UUID"))?;
    let username =
        Username::parse(username).map_err(|e| format!("username {username:?}: {}", e.message))?;
    let email = Email::parse(email).map_err(|e| format!("email {email:?}: {}", e.message))?;
    let hash = std::str::from_utf8(hash)
        .ok()
        .map(str::trim)
        .filter(|h| h.starts_with("$2a$") || h.starts_with("$2b$") || h.starts_with("$2y$"))
        .ok_or("hashed_password is not a bcrypt hash")?;
    let password_hash = importable_hash(hash, ceiling)?;
    Ok(NewUser {
        user: User {
            id: UserId::from(id),
            username,
            email,
            display_name: None,
            role: Role::User,
            status: UserStatus::Active,
            email_verified_at: None,
            created_at: now,
            updated_at: now,
        },
        password_hash,
    })
}
