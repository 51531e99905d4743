//! The token signing key: HS256 from `USERS_JWT_SECRET` if set, else an Ed25519 key kept in a
//! PEM file, made once with owner-only permissions so tokens survive restarts. Also the
//! owner-only helpers for the data folder and other private files.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use secrecy::ExposeSecret as _;
use user_core::auth::SigningKey;

use super::cli::{Config, secret};

pub(crate) fn signing_key(config: &Config) -> anyhow::Result<SigningKey> {
    if let Some(secret) = secret("USERS_JWT_SECRET")? {
        return SigningKey::hs256("hs256", secret.expose_secret().as_bytes())
            .map_err(|e| anyhow::anyhow!("USERS_JWT_SECRET: {}", e.reason));
    }
    let path = config
        .signing_key_file
        .clone()
        .unwrap_or_else(|| config.data_dir.join("signing-key.pem"));
    if path.exists() {
        refuse_shared(&path)?;
        let pem = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the signing key {}", path.display()))?;
        return SigningKey::ed25519_from_pem(&pem.into())
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.reason));
    }
    let key = SigningKey::generate_ed25519()?;
    let pem = key.to_pem().context("an Ed25519 key has a PEM form")?;
    write_private(&path, pem.expose_secret().as_bytes())?;
    tracing::info!(path = %path.display(), kid = key.kid(), "generated a new signing key");
    Ok(key)
}

/// Refuses a key file that group or others may read or write: anyone who reads it can forge
/// tokens, anyone who writes it can swap it for their own.
fn refuse_shared(path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)
            .with_context(|| format!("cannot read the signing key {}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            anyhow::bail!(
                "the signing key {path} is accessible to group or others (mode {mode:03o}); \
                 make it private with `chmod 600 {path}` and start again",
                path = path.display(),
                mode = mode & 0o777,
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Creates the data folder (and missing parents) with owner-only permissions, 0700. An
/// existing folder is left as it is, with a warning if group or others can access it.
pub(crate) fn create_private_dir(path: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder
        .create(path)
        .with_context(|| format!("cannot create the data folder {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)
            .with_context(|| format!("cannot read the data folder {}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format_args!("{:03o}", mode & 0o777),
                "group or others can access the data folder; consider `chmod 700` on it"
            );
        }
    }
    Ok(())
}

/// Writes a new file readable by its owner only; refuses to overwrite.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}
