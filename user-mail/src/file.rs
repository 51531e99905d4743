//! [`FileMailer`]: the development outbox, one `.eml` file per message.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use async_trait::async_trait;
use time::OffsetDateTime;
use time::macros::format_description;
use user_core::ports::{Mail, MailError, Mailer};

use crate::ConfigError;
use crate::message::Sender;

/// Writes each [`Mail`] to `<folder>/<UTC time>-<id>.eml` instead of sending it: the same
/// RFC 5322 bytes [`SmtpMailer`](crate::SmtpMailer) would send, readable by any mail client.
///
/// The folder is created readable by its owner only (0700) and each file likewise (0600):
/// the messages carry single-use links. A file is always new, never overwritten. Each
/// message is logged at INFO with its file and recipient, never its body.
#[derive(Debug, Clone)]
pub struct FileMailer {
    dir: PathBuf,
    sender: Sender,
}

impl FileMailer {
    /// An outbox in `dir`, created now (with its parents) if missing, and made private to
    /// its owner if it was not.
    ///
    /// # Errors
    /// [`ConfigError::From`] for a sender that is not a mailbox, [`ConfigError::Outbox`]
    /// when the folder cannot be created or secured.
    pub fn new(dir: impl Into<PathBuf>, from: &str) -> Result<Self, ConfigError> {
        let dir = dir.into();
        let sender = Sender::parse(from)?;
        ensure_private_dir(&dir).map_err(|e| ConfigError::Outbox {
            path: dir.clone(),
            reason: e.to_string(),
        })?;
        Ok(Self { dir, sender })
    }

    /// The outbox folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[async_trait]
impl Mailer for FileMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let now = SystemTime::now();
        let bytes = self.sender.message(mail, now)?.formatted();
        let dir = self.dir.clone();
        let stem = file_stem(now, mail);
        let path = tokio::task::spawn_blocking(move || write_new(&dir, &stem, &bytes))
            .await
            .map_err(|e| MailError::Transient(format!("outbox writer stopped: {e}")))?
            .map_err(|e| MailError::Transient(format!("outbox not writable: {e}")))?;
        tracing::info!(
            path = %path.display(),
            to = %mail.to,
            mail_id = %mail.id,
            "mail written to the outbox"
        );
        Ok(())
    }
}

/// `20260102T030405.123456Z-<id>`: files sort by time, and the id finds a given mail.
fn file_stem(now: SystemTime, mail: &Mail) -> String {
    let time = OffsetDateTime::from(now)
        .format(format_description!(
            "[year][month][day]T[hour][minute][second].[subsecond digits:6]Z"
        ))
        // Formatting a UTC time with this description cannot fail; the id alone still
        // names the file uniquely.
        .unwrap_or_default();
    format!("{time}-{}", mail.id)
}

/// Writes `bytes` to `<dir>/<stem>.eml`, or `<stem>-1.eml`, ... when that exists (the same
/// mail sent twice in one microsecond): never over an existing file.
fn write_new(dir: &Path, stem: &str, bytes: &[u8]) -> io::Result<PathBuf> {
    ensure_private_dir(dir)?;
    for attempt in 0..100_u32 {
        let name = if attempt == 0 {
            format!("{stem}.eml")
        } else {
            format!("{stem}-{attempt}.eml")
        };
        let path = dir.join(name);
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&path) {
            Ok(mut file) => {
                file.write_all(bytes)?;
                file.sync_all()?;
                return Ok(path);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free file name for this mail",
    ))
}

/// Creates `dir` and its missing parents with mode 0700, and takes group and other access
/// away from an existing `dir`.
fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        builder.mode(0o700).create(dir)?;
        let mode = fs::metadata(dir)?.permissions().mode();
        if mode & 0o077 != 0 {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
            tracing::warn!(
                path = %dir.display(),
                was = format_args!("{:o}", mode & 0o777),
                "outbox folder was open to other users; now 0700"
            );
        }
        Ok(())
    }
    #[cfg(not(unix))]
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_name_gets_a_suffix_and_the_first_file_stays() {
        let tmp = tempfile::tempdir().unwrap();
        let first = write_new(tmp.path(), "stem", b"first").unwrap();
        let second = write_new(tmp.path(), "stem", b"second").unwrap();
        let third = write_new(tmp.path(), "stem", b"third").unwrap();
        assert_eq!(first, tmp.path().join("stem.eml"));
        assert_eq!(second, tmp.path().join("stem-1.eml"));
        assert_eq!(third, tmp.path().join("stem-2.eml"));
        assert_eq!(fs::read(first).unwrap(), b"first");
        assert_eq!(fs::read(second).unwrap(), b"second");
    }
}
