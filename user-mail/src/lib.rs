//! Mail adapters of user-management: the [`Mailer`](user_core::ports::Mailer) port over SMTP
//! and as a development outbox, plus the templates that turn a message kind into a
//! [`Mail`](user_core::ports::Mail).
//!
//! # Place in the hexagon
//!
//! `user-core` owns the port (`Mailer`, `Mail`, `MailError`); this crate is an outbound
//! adapter beside the storage adapters, and depends on `user-core` only. The services never
//! send during a request: they queue mail, and a worker hands it to a mailer from here.
//!
//! # Layout
//!
//! - [`SmtpMailer`] with [`SmtpConfig`]: lettre 0.11 over tokio, with STARTTLS (port 587),
//!   implicit TLS (465) or plain text for a local relay ([`SmtpSecurity`]). rustls on ring,
//!   webpki root certificates compiled in.
//! - [`FileMailer`]: writes each message as `<folder>/<UTC time>-<id>.eml` (the bytes SMTP
//!   would send) and logs where it went. For development and for tests that read mail.
//! - [`MailTemplates`] with [`MailSettings`]: minijinja, the default messages embedded, each
//!   overridable by name from a string or a folder. The kinds are listed in [`KINDS`].
//!   `MailTemplates` is also the core's [`MailComposer`](user_core::ports::MailComposer): each
//!   [`Notice`](user_core::ports::Notice) becomes its kind, links pointing at
//!   [`VERIFY_EMAIL_PATH`] and [`RESET_PASSWORD_PATH`] below the public base URL.
//!
//! # Wiring
//!
//! ```no_run
//! use std::sync::Arc;
//! use user_core::{domain::Email, ports::Mailer};
//! use user_mail::{FileMailer, MailSettings, MailTemplates, SmtpConfig, SmtpMailer, SmtpSecurity};
//!
//! # async fn run(
//! #     smtp_host: Option<&str>,
//! #     smtp_password: secrecy::SecretString,
//! # ) -> Result<(), Box<dyn std::error::Error>> {
//! let settings = MailSettings::new("Acme accounts", "https://accounts.example.com")?;
//! let templates = MailTemplates::new(settings.clone());
//!
//! let mailer: Arc<dyn Mailer> = if let Some(host) = smtp_host {
//!     let mut config = SmtpConfig::new(host, "Acme accounts <no-reply@example.com>");
//!     config.credentials = Some(("acme".to_owned(), smtp_password));
//!     Arc::new(SmtpMailer::new(config)?)
//! } else {
//!     Arc::new(FileMailer::new("data/outbox", "Acme accounts <no-reply@example.com>")?)
//! };
//!
//! let to = Email::parse("ada@example.com")?;
//! let link = settings.link("/verify-email", "c2VjcmV0");
//! let mail = templates.compose(
//!     "verify_email",
//!     to,
//!     serde_json::json!({ "name": "Ada", "link": link, "expires_in": "24 hours" }),
//! )?;
//! mailer.send(&mail).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # What is never logged
//!
//! Bodies (they carry single-use links), SMTP passwords and tokens. The outbox logs the file
//! and the recipient; SMTP logs the message id and the relay host (DEBUG); errors carry the
//! relay's reply, never what was sent.

mod composer;
mod config;
mod file;
mod message;
mod settings;
mod smtp;
mod templates;

pub use composer::{RESET_PASSWORD_PATH, VERIFY_EMAIL_PATH};
pub use config::ConfigError;
pub use file::FileMailer;
pub use settings::MailSettings;
pub use smtp::{SmtpConfig, SmtpMailer, SmtpSecurity};
pub use templates::{KINDS, MailTemplates, TemplateError};
