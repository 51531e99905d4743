//! File storage of signing keys, and the owner-only data folder they live in.
//!
//! The one place in the core that touches the file system (std, and `rustix` on unix for
//! what std lacks; no adapter): a service keeps its Ed25519 signing key in a PKCS#8 PEM file
//! so that tokens survive restarts.
//!
//! - [`load_or_create_signing_key`] reads the key, or makes a new one when the file is
//!   missing: written whole to a temporary file (0600) beside it, flushed, then hard-linked
//!   into place, so a failed write leaves no file, an existing file is never overwritten, and
//!   of two processes starting together the second reads the first one's key.
//! - A key file is opened once, without following a symbolic link (a link is refused), and
//!   checked on that open handle before it is read from it: it must belong to the effective
//!   user of the process ([`KeyFileError::NotOwned`]).
//! - A private key file that group or others may read or write is refused
//!   ([`KeyFileError::Shared`]): whoever reads it can forge tokens.
//! - [`read_verifying_key`] reads a *previous* key for a rotation: its retired private key
//!   file (checked as above), or only its public half (`-----BEGIN PUBLIC KEY-----`), which
//!   anyone may read but which is refused when group or others may write it
//!   ([`KeyFileError::Writable`]): whoever writes it can swap in their own key. Its public
//!   key stays in the JWKS and its tokens still verify; only the current key signs.
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
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret as _, SecretString};

use super::{SigningKey, VerifyingKey};
use crate::error::{ConfigError, KeyFileError};
use crate::factor::FactorKey;

/// Reads the Ed25519 signing key at `path`, or, when there is no file, makes a new key and
/// writes it there (PKCS#8 PEM, mode 0600). The key is written whole to a temporary file
/// beside it and then linked into place, so a failed write leaves no file behind and an
/// existing file is never overwritten: when another process made the key first, its key is
/// read.
///
/// # Errors
/// As [`read_signing_key`], and [`KeyFileError::Io`] when the path cannot be inspected or
/// the key cannot be written, [`KeyFileError::Generate`] when the random source fails.
pub fn load_or_create_signing_key(path: &Path) -> Result<SigningKey, KeyFileError> {
    let exists = path.try_exists().map_err(|source| KeyFileError::Io {
        action: "look for the signing key",
        path: path.to_owned(),
        source,
    })?;
    if exists {
        return read_signing_key(path);
    }
    let key = SigningKey::generate_ed25519().map_err(KeyFileError::Generate)?;
    let pem = key.to_pem().ok_or_else(|| KeyFileError::Invalid {
        path: path.to_owned(),
        reason: "an Ed25519 key has a PEM form".into(),
    })?;
    match write_new(path, pem.expose_secret().as_bytes()) {
        Ok(()) => {
            tracing::info!(path = %path.display(), kid = key.kid(), "generated a new signing key");
            Ok(key)
        }
        Err(source) if source.kind() == std::io::ErrorKind::AlreadyExists => {
            tracing::info!(path = %path.display(), "another process made the signing key first");
            read_signing_key(path)
        }
        Err(source) => Err(KeyFileError::Io {
            action: "create",
            path: path.to_owned(),
            source,
        }),
    }
}

/// Reads the second-factor key at `path` (32 bytes in base64, see [`FactorKey`]), or, when
/// there is no file, makes a new key and writes it there, owner-only, with the same
/// all-or-nothing write and the same checks as [`load_or_create_signing_key`]. Every
/// instance serving one database must read the same key: a lost key makes every enrolled
/// authenticator useless (recovery codes still work).
///
/// # Errors
/// As [`read_factor_key`]; [`KeyFileError::Io`] when the key cannot be written,
/// [`KeyFileError::Generate`] when the random source fails.
pub fn load_or_create_factor_key(path: &Path) -> Result<FactorKey, KeyFileError> {
    let exists = path.try_exists().map_err(|source| KeyFileError::Io {
        action: "look for the second-factor key",
        path: path.to_owned(),
        source,
    })?;
    if exists {
        return read_factor_key(path);
    }
    let key = FactorKey::generate().map_err(|e| {
        KeyFileError::Generate(ConfigError::new("second_factor_key", e.to_string()))
    })?;
    let mut text = key.to_base64().expose_secret().to_owned();
    text.push('\n');
    let written = write_new(path, text.as_bytes());
    drop(SecretString::from(text));
    match written {
        Ok(()) => {
            tracing::info!(path = %path.display(), "generated a new second-factor key");
            Ok(key)
        }
        Err(source) if source.kind() == std::io::ErrorKind::AlreadyExists => read_factor_key(path),
        Err(source) => Err(KeyFileError::Io {
            action: "create",
            path: path.to_owned(),
            source,
        }),
    }
}

/// Reads the second-factor key at `path`: 32 bytes in base64, in a file only the service's
/// user owns and may read.
///
/// # Errors
/// As [`read_signing_key`], with [`KeyFileError::Invalid`] when the file holds no such key.
pub fn read_factor_key(path: &Path) -> Result<FactorKey, KeyFileError> {
    let file = read_key_file(path)?;
    file.check_private()?;
    FactorKey::from_base64(file.text.expose_secret()).map_err(|e| KeyFileError::Invalid {
        path: path.to_owned(),
        reason: e.reason,
    })
}

/// Reads the Ed25519 signing key (PKCS#8 PEM) at `path`.
///
/// The file is opened once, without following a symbolic link, and checked on that handle:
/// it must belong to the user the service runs as and be private to it.
///
/// # Errors
/// [`KeyFileError::NotOwned`] when the file belongs to another user,
/// [`KeyFileError::Shared`] when group or others may access it, [`KeyFileError::Invalid`]
/// when it is a symbolic link or holds no Ed25519 private key, [`KeyFileError::Io`] when it
/// cannot be read.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, KeyFileError> {
    let file = read_key_file(path)?;
    file.check_private()?;
    file.signing_key()
}

/// Reads a previous key, to keep verifying its tokens during a rotation: a retired signing
/// key (private PKCS#8 PEM, checked like the current one) or its public half (SPKI PEM,
/// `-----BEGIN PUBLIC KEY-----`, which anyone may read but only its owner may write).
///
/// # Errors
/// [`KeyFileError::NotOwned`] when the file belongs to another user,
/// [`KeyFileError::Shared`] for a private key file group or others may access,
/// [`KeyFileError::Writable`] for a public key file group or others may write,
/// [`KeyFileError::Invalid`] when it is a symbolic link or holds no Ed25519 key,
/// [`KeyFileError::Io`] when it cannot be read.
pub fn read_verifying_key(path: &Path) -> Result<VerifyingKey, KeyFileError> {
    let file = read_key_file(path)?;
    if file.text.expose_secret().contains("PRIVATE KEY") {
        file.check_private()?;
        return file.signing_key().map(|key| key.verifying_key());
    }
    file.check_not_writable()?;
    VerifyingKey::ed25519_from_public_pem(file.text.expose_secret()).map_err(|_| {
        KeyFileError::Invalid {
            path: path.to_owned(),
            reason: "not an Ed25519 key in PEM (private PKCS#8 or public SPKI)".into(),
        }
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
    create_new_private(path).map_err(|source| KeyFileError::Io {
        action: "create",
        path: path.to_owned(),
        source,
    })
}

/// Creates a new owner-only (0600) file; `AlreadyExists` if there is one.
fn create_new_private(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)
}

/// Writes `bytes` to a new file at `path`, owner-only, all or nothing: first to a temporary
/// file in the same folder, flushed to disk, then hard-linked into place, which fails with
/// `AlreadyExists` rather than overwrite; the folder is flushed last so the name survives a
/// crash.
fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let folder = folder_of(path);
    let (temp, mut file) = TempFile::create(folder, path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::hard_link(&temp.0, path)?;
    drop(temp);
    #[cfg(unix)]
    File::open(folder)?.sync_all()?;
    Ok(())
}

/// The folder a file at `path` goes in: its parent, or the current folder for a bare name.
fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// The number in the next temporary file's name (`.<name>.<pid>.<n>.tmp`).
static NEXT_TEMP: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A temporary file, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    /// Creates a new owner-only file named after `target`, in `folder`; a name that is taken
    /// is skipped (up to 16 tries).
    fn create(folder: &Path, target: &Path) -> std::io::Result<(Self, File)> {
        let name = target.file_name().unwrap_or_default().to_string_lossy();
        for _ in 0..16 {
            let n = NEXT_TEMP.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let temp = folder.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
            match create_new_private(&temp) {
                Ok(file) => return Ok((Self(temp), file)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::other("no free name for a temporary file"))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_file(&self.0) {
            tracing::warn!(path = %self.0.display(), %error, "cannot remove a temporary key file");
        }
    }
}

/// A key file's text, read from the handle whose owner and mode were taken.
struct KeyFile<'a> {
    path: &'a Path,
    text: SecretString,
    /// Permission bits; 0 where there are none (not unix).
    mode: u32,
}

impl KeyFile<'_> {
    /// Refuses a file that group or others may read or write.
    fn check_private(&self) -> Result<(), KeyFileError> {
        if self.mode & 0o077 != 0 {
            return Err(KeyFileError::Shared {
                path: self.path.to_owned(),
                mode: self.mode,
            });
        }
        Ok(())
    }

    /// Refuses a file that group or others may write.
    fn check_not_writable(&self) -> Result<(), KeyFileError> {
        if self.mode & 0o022 != 0 {
            return Err(KeyFileError::Writable {
                path: self.path.to_owned(),
                mode: self.mode,
            });
        }
        Ok(())
    }

    fn signing_key(&self) -> Result<SigningKey, KeyFileError> {
        SigningKey::ed25519_from_pem(&self.text).map_err(|e| KeyFileError::Invalid {
            path: self.path.to_owned(),
            reason: e.reason,
        })
    }
}

/// Opens a key file once, without following a symbolic link, checks that the service's
/// user owns it, and reads it from the same handle.
fn read_key_file(path: &Path) -> Result<KeyFile<'_>, KeyFileError> {
    let io = |source| KeyFileError::Io {
        action: "read the key",
        path: path.to_owned(),
        source,
    };
    let mut file = open_no_follow(path)?;
    #[cfg(unix)]
    let mode = {
        use std::os::unix::fs::MetadataExt as _;
        let metadata = file.metadata().map_err(io)?;
        let expected = rustix::process::geteuid().as_raw();
        if metadata.uid() != expected {
            return Err(KeyFileError::NotOwned {
                path: path.to_owned(),
                owner: metadata.uid(),
                expected,
            });
        }
        metadata.mode() & 0o777
    };
    #[cfg(not(unix))]
    let mode = 0;
    let mut text = String::new();
    let read = file.read_to_string(&mut text);
    // Wiped on drop, whatever the outcome.
    let text = SecretString::from(text);
    read.map_err(io)?;
    Ok(KeyFile { path, text, mode })
}

#[cfg(unix)]
fn open_no_follow(path: &Path) -> Result<File, KeyFileError> {
    use rustix::fs::{Mode, OFlags};
    // NONBLOCK: a FIFO put in the key's place cannot hang the start.
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(fd) => Ok(File::from(fd)),
        Err(rustix::io::Errno::LOOP) => Err(KeyFileError::Invalid {
            path: path.to_owned(),
            reason: "is a symbolic link; name the key file itself".into(),
        }),
        Err(errno) => Err(KeyFileError::Io {
            action: "read the key",
            path: path.to_owned(),
            source: errno.into(),
        }),
    }
}

#[cfg(not(unix))]
fn open_no_follow(path: &Path) -> Result<File, KeyFileError> {
    File::open(path).map_err(|source| KeyFileError::Io {
        action: "read the key",
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
