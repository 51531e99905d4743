//! File storage of signing keys, and the owner-only data folder they live in.
//!
//! The one place in the core that touches the file system (std only, no adapter): a service
//! keeps its Ed25519 signing key in a PKCS#8 PEM file so that tokens survive restarts.
//!
//! - [`load_or_create_signing_key`] reads the key, or makes a new one when the file is
//!   missing, written with mode 0600 (created new: an existing file is never overwritten).
//! - A private key file that group or others may read or write is refused
//!   ([`KeyFileError::Shared`]): whoever reads it can forge tokens.
//! - [`read_verifying_key`] reads a *previous* key for a rotation: its retired private key
//!   file, or only its public half (`-----BEGIN PUBLIC KEY-----`). Its public key stays in
//!   the JWKS and its tokens still verify; only the current key signs.
//! - [`create_private_dir`] and [`create_private_file`] make the data folder (0700) and other
//!   owner-only files (an export holding password hashes, 0600).
//!
//! # Rotating the signing key
//!
//! Move the current key aside and start with it as a previous key: a new key is made, signs
//! every new token, and the old tokens keep working until they expire. After one access-token
//! lifetime (15 min by default) the previous key can be dropped.
//!
//! ```no_run
//! # fn run(storage: user_core::Storage) -> Result<(), Box<dyn std::error::Error>> {
//! use user_core::auth::key_files;
//!
//! // mv data/signing-key.pem data/signing-key.previous.pem, then at start-up:
//! key_files::create_private_dir("data".as_ref())?;
//! let key = key_files::load_or_create_signing_key("data/signing-key.pem".as_ref())?;
//! let previous = vec![key_files::read_verifying_key("data/signing-key.previous.pem".as_ref())?];
//! let services = user_core::Services::builder(storage)
//!     .signing_key(key, previous)
//!     .build()?;
//! # let _ = services; Ok(()) }
//! ```

use std::fs::File;
use std::io::Write as _;
use std::path::Path;

use secrecy::{ExposeSecret as _, SecretString};

use super::{SigningKey, VerifyingKey};
use crate::error::KeyFileError;

/// Reads the Ed25519 signing key at `path`, or, when there is no file, makes a new key and
/// writes it there (PKCS#8 PEM, mode 0600, created new so that nothing is overwritten).
///
/// # Errors
/// [`KeyFileError::Shared`] when group or others may access the file,
/// [`KeyFileError::Invalid`] when it holds no Ed25519 private key, [`KeyFileError::Io`] when
/// it cannot be read or created, [`KeyFileError::Generate`] when the random source fails.
pub fn load_or_create_signing_key(path: &Path) -> Result<SigningKey, KeyFileError> {
    if path.exists() {
        return read_signing_key(path);
    }
    let key = SigningKey::generate_ed25519().map_err(KeyFileError::Generate)?;
    let pem = key.to_pem().ok_or_else(|| KeyFileError::Invalid {
        path: path.to_owned(),
        reason: "an Ed25519 key has a PEM form".into(),
    })?;
    write_new(path, "create", pem.expose_secret().as_bytes())?;
    tracing::info!(path = %path.display(), kid = key.kid(), "generated a new signing key");
    Ok(key)
}

/// Reads the Ed25519 signing key (PKCS#8 PEM) at `path`.
///
/// # Errors
/// [`KeyFileError::Shared`] when group or others may access the file,
/// [`KeyFileError::Invalid`] when it holds no Ed25519 private key, [`KeyFileError::Io`] when
/// it cannot be read.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, KeyFileError> {
    let pem = read_private(path)?;
    SigningKey::ed25519_from_pem(&pem).map_err(|e| KeyFileError::Invalid {
        path: path.to_owned(),
        reason: e.reason,
    })
}

/// Reads a previous key, to keep verifying its tokens during a rotation: a retired signing
/// key (private PKCS#8 PEM, checked like the current one) or its public half (SPKI PEM,
/// `-----BEGIN PUBLIC KEY-----`, which anyone may read).
///
/// # Errors
/// [`KeyFileError::Shared`] for a private key file group or others may access,
/// [`KeyFileError::Invalid`] when the file holds no Ed25519 key, [`KeyFileError::Io`] when it
/// cannot be read.
pub fn read_verifying_key(path: &Path) -> Result<VerifyingKey, KeyFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Io {
        action: "read the key",
        path: path.to_owned(),
        source,
    })?;
    if text.contains("PRIVATE KEY") {
        // Wiped on drop; the key is read again with the owner-only check.
        drop(SecretString::from(text));
        return read_signing_key(path).map(|key| key.verifying_key());
    }
    VerifyingKey::ed25519_from_public_pem(&text).map_err(|_| KeyFileError::Invalid {
        path: path.to_owned(),
        reason: "not an Ed25519 key in PEM (private PKCS#8 or public SPKI)".into(),
    })
}

/// Creates a folder (and missing parents) with owner-only permissions, 0700, for the
/// database and the keys. An existing folder is left as it is, with a warning in the log if
/// group or others can access it.
///
/// # Errors
/// [`KeyFileError::Io`] when the folder cannot be created or inspected.
pub fn create_private_dir(path: &Path) -> Result<(), KeyFileError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(path).map_err(|source| KeyFileError::Io {
        action: "create the data folder",
        path: path.to_owned(),
        source,
    })?;
    #[cfg(unix)]
    {
        let mode = mode(path, "read the data folder")?;
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

/// Creates a new, empty file readable and writable by its owner only (0600), for data as
/// sensitive as an export of password hashes. Refuses to overwrite an existing file.
///
/// # Errors
/// [`KeyFileError::Io`] when the file exists or cannot be created.
pub fn create_private_file(path: &Path) -> Result<File, KeyFileError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path).map_err(|source| KeyFileError::Io {
        action: "create",
        path: path.to_owned(),
        source,
    })
}

/// Writes `bytes` to a new owner-only file and flushes it to disk.
fn write_new(path: &Path, action: &'static str, bytes: &[u8]) -> Result<(), KeyFileError> {
    let mut file = create_private_file(path)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|source| KeyFileError::Io {
            action,
            path: path.to_owned(),
            source,
        })
}

/// Reads a private key file after checking that only its owner may access it.
fn read_private(path: &Path) -> Result<SecretString, KeyFileError> {
    #[cfg(unix)]
    {
        let mode = mode(path, "read the signing key")?;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::Shared {
                path: path.to_owned(),
                mode: mode & 0o777,
            });
        }
    }
    std::fs::read_to_string(path)
        .map(SecretString::from)
        .map_err(|source| KeyFileError::Io {
            action: "read the signing key",
            path: path.to_owned(),
            source,
        })
}

/// The permission bits of `path`.
#[cfg(unix)]
fn mode(path: &Path, action: &'static str) -> Result<u32, KeyFileError> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .map(|m| m.permissions().mode())
        .map_err(|source| KeyFileError::Io {
            action,
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests;
