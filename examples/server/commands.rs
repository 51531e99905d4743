//! The admin commands: `create-admin`, `export`, `import` and `import-legacy`, over the
//! crates' `user_core::transfer` and `user_sqlite::legacy`.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use secrecy::SecretString;
use user_core::auth::{RegisterUser, key_files};
use user_core::domain::Role;
use user_core::error::{AuthError, ServiceError as _};
use user_core::transfer::{self, ImportEvent, ImportSummary};
use user_sqlite::legacy::{LegacyError, LegacyUsers};

use super::cli::{Config, secret};
use super::{App, open};

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
        Err(e @ AuthError::Conflict(_)) => bail!("{}; nothing changed", e.message()),
        Err(AuthError::Invalid(errors)) => {
            let reasons: Vec<String> = errors.iter().map(ToString::to_string).collect();
            bail!("refused:\n  {}", reasons.join("\n  "))
        }
        Err(e) => Err(e.into()),
    }
}

/// `export`: every user with their hash, as JSON lines, into a new owner-only file. The
/// users are written to a temporary file beside it, flushed to disk, then linked into place,
/// so a failure leaves no partial file behind (and a rerun can start again), and an existing
/// file is never overwritten.
pub(crate) async fn export(config: &Config, to: &Path) -> anyhow::Result<u64> {
    if to.symlink_metadata().is_ok() {
        bail!("{} already exists; nothing was written", to.display());
    }
    let app = open(config).await?;
    let partial = partial_path(to)?;
    // The hashes are sensitive: the file is created new, readable by its owner only.
    let file = key_files::create_private_file(&partial)?;
    let written = write_export(&app, file).await;
    app.db.close().await;
    let count = written.and_then(|count| publish(&partial, to).map(|()| count));
    if count.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    let count = count?;
    eprintln!("exported {count} users to {}", to.display());
    Ok(count)
}

/// `.NAME.partial`, in the folder of `to`.
fn partial_path(to: &Path) -> anyhow::Result<PathBuf> {
    let name = to
        .file_name()
        .with_context(|| format!("--to: {} names no file", to.display()))?;
    let mut partial = std::ffi::OsString::from(".");
    partial.push(name);
    partial.push(".partial");
    Ok(to.with_file_name(partial))
}

/// Exports every user into `file` and flushes it to disk.
async fn write_export(app: &App, file: File) -> anyhow::Result<u64> {
    let mut out = BufWriter::new(file);
    let count = transfer::export_users(&*app.db.storage().users, &mut out).await?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(count)
}

/// Gives the finished `partial` file its name `to`: a hard link, which fails rather than
/// replace a file that appeared meanwhile, then the temporary name goes.
fn publish(partial: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::hard_link(partial, to).with_context(|| format!("cannot create {}", to.display()))?;
    std::fs::remove_file(partial)?;
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Makes the new name durable; not every platform can open a folder, so best effort.
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

/// `import`: users written by `export`; each refused line is reported.
pub(crate) async fn import(config: &Config, from: &Path) -> anyhow::Result<ImportSummary> {
    let app = open(config).await?;
    let file =
        std::fs::File::open(from).with_context(|| format!("cannot open {}", from.display()))?;
    let ceiling = config.hasher()?.ceiling;
    let summary = transfer::import_users(
        &*app.db.storage().users,
        &ceiling,
        BufReader::new(file),
        report,
    )
    .await;
    app.db.close().await;
    let summary = summary?;
    eprintln!("{summary}");
    Ok(summary)
}

/// `import-legacy`: the Python deployment's `users.db` (see `user_sqlite::legacy`).
pub(crate) async fn import_legacy(config: &Config, from: &Path) -> anyhow::Result<ImportSummary> {
    let legacy = LegacyUsers::read(from).await.map_err(|e| match e {
        LegacyError::Missing { .. } => anyhow::anyhow!("--from: {e}"),
        e => e.into(),
    })?;
    let app = open(config).await?;
    eprintln!(
        "importing {} legacy users from {}",
        legacy.len(),
        from.display()
    );
    let summary = legacy
        .import_into(
            &*app.db.storage().users,
            &config.hasher()?.ceiling,
            user_core::ports::Clock::now(&user_core::ports::SystemClock),
            report,
        )
        .await;
    app.db.close().await;
    let summary = summary?;
    eprintln!("done: {summary}");
    Ok(summary)
}

/// Prints what an import reports: each refused row and the progress.
fn report(event: ImportEvent<'_>) {
    eprintln!("{event}");
}
