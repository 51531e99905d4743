//! `create-admin`, `export` and `import`.

use std::io::{BufRead as _, BufWriter, Write as _};
use std::path::Path;

use anyhow::{Context as _, bail};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use user_core::auth::RegisterUser;
use user_core::domain::{
    DisplayName, Email, NewUser, PasswordHash, Role, User, UserId, UserQuery, UserStatus, Username,
};
use user_core::error::{AuthError, RepoError, UniqueField};
use user_core::ports::UserRepository as _;
use uuid::Uuid;

use super::cli::{Config, secret};
use super::open;

/// The admin's password: `USERS_ADMIN_PASSWORD` (or `_FILE`), else asked twice without echo.
pub(crate) fn admin_password() -> anyhow::Result<SecretString> {
    if let Some(password) = secret("USERS_ADMIN_PASSWORD")? {
        return Ok(password);
    }
    let first = rpassword::prompt_password("Password for the new admin: ")
        .context("no terminal to ask for a password; set USERS_ADMIN_PASSWORD")?;
    let second = rpassword::prompt_password("Repeat the password: ")?;
    if first != second {
        bail!("the passwords do not match");
    }
    Ok(SecretString::from(first))
}

pub(crate) async fn create_admin(
    config: &Config,
    username: String,
    email: String,
    password: SecretString,
) -> anyhow::Result<()> {
    let app = open(config).await?;
    let form = RegisterUser {
        username,
        email,
        password,
        display_name: None,
    };
    let result = app.services.auth.create_user(form, Role::Admin).await;
    app.db.close().await;
    match result {
        Ok(user) => {
            println!("created admin {} ({})", user.username, user.id);
            Ok(())
        }
        Err(AuthError::Conflict(field)) => {
            bail!("a user with that {field} already exists; nothing changed")
        }
        Err(AuthError::Invalid(errors)) => {
            let reasons: Vec<String> = errors.iter().map(ToString::to_string).collect();
            bail!("refused:\n  {}", reasons.join("\n  "))
        }
        Err(e) => Err(e.into()),
    }
}

/// One user in the export format.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Record {
    id: Uuid,
    username: String,
    email: String,
    display_name: Option<String>,
    role: String,
    status: String,
    #[serde(with = "time::serde::rfc3339::option")]
    email_verified_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
    password_hash: String,
}

impl Record {
    fn of(user: User, hash: &PasswordHash) -> Self {
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

    fn into_new_user(self) -> anyhow::Result<NewUser> {
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
            password_hash: PasswordHash::new(self.password_hash),
        })
    }
}

/// What an import did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Summary {
    pub(crate) imported: u64,
    pub(crate) already_present: u64,
    pub(crate) rejected: u64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} imported, {} already present, {} rejected",
            self.imported, self.already_present, self.rejected
        )
    }
}

impl Summary {
    /// Inserts one user unless their id is already present; a collision with another user is
    /// reported under `label` and counted as rejected.
    pub(crate) async fn insert_once(
        &mut self,
        users: &user_sqlite::SqliteUserRepository,
        new: &NewUser,
        label: &str,
    ) -> anyhow::Result<()> {
        if users.get(new.user.id).await.is_ok() {
            self.already_present += 1;
            return Ok(());
        }
        match users.insert(new).await {
            Ok(()) => self.imported += 1,
            Err(RepoError::Conflict { field }) => {
                let value = match field {
                    UniqueField::Username => new.user.username.to_string(),
                    UniqueField::Email => new.user.email.to_string(),
                };
                eprintln!(
                    "{label}: rejected: {field} {value:?} collides with another user \
                     (usernames and emails are compared case-insensitively)"
                );
                self.rejected += 1;
            }
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }
}

pub(crate) async fn export(config: &Config, to: &Path) -> anyhow::Result<u64> {
    let app = open(config).await?;
    let users = app.db.users();
    // The hashes are sensitive: the file is created new, readable by its owner only.
    let mut out = BufWriter::new(user_core::auth::key_files::create_private_file(to)?);
    let mut query = UserQuery {
        limit: UserQuery::MAX_LIMIT,
        ..UserQuery::default()
    };
    let mut count = 0;
    loop {
        let page = users.list(&query).await?;
        for user in page.users {
            let hash = users.password_hash(user.id).await?;
            serde_json::to_writer(&mut out, &Record::of(user, &hash))?;
            out.write_all(b"\n")?;
            count += 1;
        }
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    out.flush()?;
    app.db.close().await;
    eprintln!("exported {count} users to {}", to.display());
    Ok(count)
}

pub(crate) async fn import(config: &Config, from: &Path) -> anyhow::Result<Summary> {
    let app = open(config).await?;
    let users = app.db.users();
    let file =
        std::fs::File::open(from).with_context(|| format!("cannot open {}", from.display()))?;
    let mut summary = Summary::default();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let new = serde_json::from_str::<Record>(&line)
            .map_err(anyhow::Error::from)
            .and_then(Record::into_new_user);
        let new = match new {
            Ok(new) => new,
            Err(e) => {
                eprintln!("line {}: rejected: {e:#}", i + 1);
                summary.rejected += 1;
                continue;
            }
        };
        summary
            .insert_once(&users, &new, &format!("line {}", i + 1))
            .await?;
    }
    app.db.close().await;
    eprintln!("{summary}");
    Ok(summary)
}
