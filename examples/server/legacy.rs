//! `import-legacy`: the Python deployment's `users.db` (id TEXT, username, email,
//! hashed_password as a bcrypt BLOB or TEXT). Ids, usernames, emails and hashes are kept; the
//! users sign in with their old passwords and move to Argon2id on that login. Rows our rules
//! refuse, or that collide case-insensitively, are reported one by one; a rerun imports
//! nothing twice.

use std::path::Path;

use anyhow::Context as _;
use sqlx::Connection as _;
use sqlx::sqlite::SqliteConnectOptions;
use time::OffsetDateTime;
use user_core::domain::{Email, NewUser, PasswordHash, Role, User, UserId, UserStatus, Username};
use uuid::Uuid;

use super::cli::Config;
use super::commands::Summary;
use super::open;

/// Why a legacy row was not imported.
fn check(
    id: &str,
    username: &str,
    email: &str,
    hash: &[u8],
    now: OffsetDateTime,
) -> Result<NewUser, String> {
    let id = Uuid::parse_str(id.trim()).map_err(|_| format!("id {id:?} is not a UUID"))?;
    let username =
        Username::parse(username).map_err(|e| format!("username {username:?}: {}", e.message))?;
    let email = Email::parse(email).map_err(|e| format!("email {email:?}: {}", e.message))?;
    let hash = std::str::from_utf8(hash)
        .ok()
        .map(str::trim)
        .filter(|h| h.starts_with("$2a$") || h.starts_with("$2b$") || h.starts_with("$2y$"))
        .ok_or("hashed_password is not a bcrypt hash")?;
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
        password_hash: PasswordHash::new(hash),
    })
}

pub(crate) async fn import(config: &Config, from: &Path) -> anyhow::Result<Summary> {
    if !from.exists() {
        anyhow::bail!("--from: {} does not exist", from.display());
    }
    let options = SqliteConnectOptions::new().filename(from).read_only(true);
    let mut legacy = sqlx::SqliteConnection::connect_with(&options)
        .await
        .with_context(|| format!("cannot open the legacy database {}", from.display()))?;
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&mut legacy)
        .await
        .context("the legacy database has no users table")?;
    let rows: Vec<(String, String, String, Vec<u8>)> = sqlx::query_as(
        "SELECT CAST(id AS TEXT), CAST(username AS TEXT), CAST(email AS TEXT), \
         CAST(hashed_password AS BLOB) FROM users ORDER BY rowid",
    )
    .fetch_all(&mut legacy)
    .await
    .context("cannot read the legacy users table")?;
    legacy.close().await?;

    let app = open(config).await?;
    let users = app.db.users();
    let now = OffsetDateTime::now_utc();
    let mut summary = Summary::default();
    eprintln!("importing {total} legacy users from {}", from.display());
    for (i, (id, username, email, hash)) in rows.into_iter().enumerate() {
        let row = i + 1;
        if row % 1000 == 0 {
            eprintln!("  {row}/{total} rows read ({summary})");
        }
        let new = match check(&id, &username, &email, &hash, now) {
            Ok(new) => new,
            Err(reason) => {
                eprintln!("row {row} (id {id}): rejected: {reason}");
                summary.rejected += 1;
                continue;
            }
        };
        summary
            .insert_once(&users, &new, &format!("row {row} (id {id})"))
            .await?;
    }
    app.db.close().await;
    eprintln!("done: {summary}");
    Ok(summary)
}
