use crate::domain::Email;

/// A message ready to send: one recipient, a subject, a plain-text body and, usually, an HTML
/// body. The sender, the site name and the links inside are the composer's business.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// Unique per message and kept across retries: adapters derive the `Message-ID` header
    /// from it, so a receiver can drop a copy sent again after a crash.
    pub id: uuid::Uuid,
    /// The recipient.
    pub to: Email,
    /// The subject line (one line; adapters refuse line breaks).
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body, sent as the alternative to the text when present.
    pub html: Option<String>,
}

impl Mail {
    /// A message with a new id (UUID v7, ordered by creation).
    pub fn new(
        to: Email,
        subject: impl Into<String>,
        text: impl Into<String>,
        html: Option<String>,
    ) -> Self {
        Self {
            id: uuid::Uuid::now_v7(),
            to,
            subject: subject.into(),
            text: text.into(),
            html,
        }
    }
}

/// Why a message was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// Worth trying again later: the relay is down, busy or timed out, or answered with a
    /// temporary (4xx) refusal.
    #[error("mail not sent, will retry: {0}")]
    Transient(String),
    /// Never deliverable as it is: the relay refused the recipient or the message for good
    /// (5xx), or the message is malformed.
    #[error("mail refused: {0}")]
    Rejected(String),
}

/// Sends mail: SMTP to a relay, or a development outbox of `.eml` files (crate `user-mail`).
/// The services never call it during a request: they queue mail and a worker delivers it.
#[cfg_attr(any(test, feature = "testing"), mockall::automock)]
#[async_trait::async_trait]
pub trait Mailer: Send + Sync + 'static {
    /// Hands `mail` to the transport; `Ok` once it accepted the message.
    ///
    /// # Errors
    /// [`MailError::Transient`] when trying again may succeed; [`MailError::Rejected`] when
    /// it cannot.
    async fn send(&self, mail: &Mail) -> Result<(), MailError>;
}
