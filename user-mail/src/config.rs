//! [`ConfigError`]: a mail setting refused at construction, before anything is sent.

/// A mail setting that cannot work, refused when the adapter or the settings are built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The sender is not a mailbox such as `Site <no-reply@example.com>`.
    #[error("the sender {value:?} is not a mailbox like \"Site <no-reply@example.com>\": {reason}")]
    From {
        /// The value as configured.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// The SMTP host is empty.
    #[error("the SMTP host is empty")]
    EmptyHost,
    /// Credentials with [`SmtpSecurity::Plain`](crate::SmtpSecurity::Plain) to a relay that is
    /// not on this machine: the password would cross the network in clear text.
    #[error(
        "SMTP credentials without TLS are sent only to a relay on this machine (localhost, \
         127.0.0.0/8 or ::1), not to {host:?}: use STARTTLS or TLS"
    )]
    PlainTextCredentials {
        /// The configured host.
        host: String,
    },
    /// The TLS client could not be set up for the host.
    #[error("TLS setup for the SMTP host failed: {0}")]
    Tls(String),
    /// The public base URL is not an absolute `http(s)` URL without query, fragment or
    /// credentials. The value is not repeated: it might hold a password.
    #[error("the public base URL {0}")]
    BaseUrl(&'static str),
    /// The site name is empty or has a control character (it goes into subjects).
    #[error("the site name must be one line of text")]
    SiteName,
    /// The outbox folder could not be created or secured.
    #[error("the outbox folder {path:?} is not usable: {reason}")]
    Outbox {
        /// The folder.
        path: std::path::PathBuf,
        /// What failed.
        reason: String,
    },
}
