//! [`SmtpMailer`]: the [`Mailer`] port over SMTP with lettre, one connection per message.

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use secrecy::{ExposeSecret as _, SecretString};
use user_core::ports::{Mail, MailError, Mailer};

use crate::ConfigError;
use crate::message::Sender;

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain text first, then `STARTTLS`, which the relay must offer: without it nothing is
    /// sent, so an attacker who strips the offer gains nothing. Submission port 587.
    #[default]
    StartTls,
    /// TLS from the first byte ("implicit TLS", SMTPS). Port 465.
    Tls,
    /// No encryption, for a relay on this machine or a trusted network (port 25).
    /// Credentials are accepted only when the relay is on this machine.
    Plain,
}

impl SmtpSecurity {
    /// The usual port: 587 for STARTTLS, 465 for TLS, 25 for plain text.
    pub fn default_port(self) -> u16 {
        match self {
            Self::StartTls => 587,
            Self::Tls => 465,
            Self::Plain => 25,
        }
    }
}

/// Where and how [`SmtpMailer`] sends. `Debug` shows the user name but not the password.
#[derive(Clone)]
pub struct SmtpConfig {
    /// The relay's host name or IP address; also the name its TLS certificate must carry.
    pub host: String,
    /// The relay's port (default 587, see [`SmtpSecurity::default_port`]).
    pub port: u16,
    /// How the connection is protected (default [`SmtpSecurity::StartTls`]).
    pub security: SmtpSecurity,
    /// User name and password for `AUTH PLAIN` or `AUTH LOGIN`, whichever the relay offers
    /// (default none: no `AUTH`).
    pub credentials: Option<(String, SecretString)>,
    /// The sender: `Site <no-reply@example.com>` or a bare address. Its domain also ends
    /// every `Message-ID`.
    pub from: String,
    /// The longest one delivery may take: connecting, TLS, `AUTH` and the message together
    /// (default 10 s). Past it the attempt fails as [`MailError::Transient`].
    pub timeout: Duration,
}

impl SmtpConfig {
    /// STARTTLS to `host` on port 587, no credentials, a 10 s timeout.
    pub fn new(host: impl Into<String>, from: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            port: SmtpSecurity::StartTls.default_port(),
            security: SmtpSecurity::StartTls,
            credentials: None,
            from: from.into(),
            timeout: Duration::from_secs(10),
        }
    }

    /// Sets the security and the port that goes with it.
    #[must_use]
    pub fn with_security(mut self, security: SmtpSecurity) -> Self {
        self.security = security;
        self.port = security.default_port();
        self
    }
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field(
                "credentials",
                &self
                    .credentials
                    .as_ref()
                    .map(|(user, _)| (user, "[redacted]")),
            )
            .field("from", &self.from)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Sends each [`Mail`] over a new SMTP connection to the configured relay.
///
/// Errors map to the port's two kinds:
/// - [`MailError::Rejected`]: a permanent (5xx) answer to `MAIL FROM`, `RCPT TO` or the
///   message, or a message that cannot be built (a subject with a line break).
/// - [`MailError::Transient`]: everything else: no connection, a timeout, a TLS failure, a
///   4xx answer, and any refusal before the message starts (greeting, `EHLO`, `STARTTLS`,
///   `AUTH`), since those say the relay or the configuration is wrong, not the message.
///
/// Bodies and credentials are never logged.
pub struct SmtpMailer {
    host: String,
    port: u16,
    security: SmtpSecurity,
    tls: Option<TlsParameters>,
    credentials: Option<Credentials>,
    sender: Sender,
    timeout: Duration,
}

impl SmtpMailer {
    /// Checks `config` and prepares the TLS client; connects only when sending.
    ///
    /// # Errors
    /// [`ConfigError::EmptyHost`], [`ConfigError::From`] for a sender that is not a mailbox,
    /// [`ConfigError::PlainTextCredentials`] for credentials with [`SmtpSecurity::Plain`] to
    /// a relay that is not on this machine, [`ConfigError::Tls`] when the TLS client cannot
    /// be set up for `host`.
    pub fn new(config: SmtpConfig) -> Result<Self, ConfigError> {
        let host = config.host.trim().to_owned();
        if host.is_empty() {
            return Err(ConfigError::EmptyHost);
        }
        let sender = Sender::parse(&config.from)?;
        let tls = match config.security {
            SmtpSecurity::StartTls | SmtpSecurity::Tls => Some(
                TlsParameters::new_rustls(host.clone())
                    .map_err(|e| ConfigError::Tls(e.to_string()))?,
            ),
            SmtpSecurity::Plain => None,
        };
        // lettre itself sends AUTH over plain text whenever the relay offers it.
        if config.security == SmtpSecurity::Plain
            && config.credentials.is_some()
            && !is_this_machine(&host)
        {
            return Err(ConfigError::PlainTextCredentials { host });
        }
        let credentials = config
            .credentials
            .map(|(user, password)| Credentials::new(user, password.expose_secret().to_owned()));
        Ok(Self {
            host,
            port: config.port,
            security: config.security,
            tls,
            credentials,
            sender,
            timeout: config.timeout,
        })
    }

    /// Connects, secures and authenticates as configured: every failure here is transient.
    async fn open(&self) -> Result<AsyncSmtpConnection, lettre::transport::smtp::Error> {
        let hello = ClientId::default();
        let wrapper = match self.security {
            SmtpSecurity::Tls => self.tls.clone(),
            SmtpSecurity::StartTls | SmtpSecurity::Plain => None,
        };
        let mut connection = AsyncSmtpConnection::connect_tokio1(
            (self.host.as_str(), self.port),
            Some(self.timeout),
            &hello,
            wrapper,
            None,
        )
        .await?;
        if let (SmtpSecurity::StartTls, Some(tls)) = (self.security, &self.tls) {
            // Fails, before any credentials or mail, when the relay does not offer STARTTLS.
            connection.starttls(tls.clone(), &hello).await?;
        }
        if let Some(credentials) = &self.credentials {
            connection
                .auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await?;
        }
        Ok(connection)
    }

    async fn deliver(&self, envelope: &Envelope, message: &[u8]) -> Result<(), MailError> {
        let mut connection = self
            .open()
            .await
            .map_err(|e| MailError::Transient(format!("SMTP relay not usable: {e}")))?;
        connection.send(envelope, message).await.map_err(|e| {
            // A client error here is SMTPUTF8 or 8BITMIME missing on the relay: this
            // message will never pass through it.
            if e.is_permanent() || e.is_client() {
                MailError::Rejected(format!("SMTP relay refused the mail: {e}"))
            } else {
                MailError::Transient(format!("SMTP relay did not take the mail: {e}"))
            }
        })?;
        // The message is accepted; a failed goodbye changes nothing.
        let _ = connection.quit().await;
        Ok(())
    }
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("authenticates", &self.credentials.is_some())
            .field("from", &self.sender.address())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let message = self.sender.message(mail, SystemTime::now())?;
        let bytes = message.formatted();
        // lettre's own timeout covers the TCP connect only: a relay that accepts and then
        // stays silent would hold the worker forever.
        match tokio::time::timeout(self.timeout, self.deliver(message.envelope(), &bytes)).await {
            Ok(Ok(())) => {
                tracing::debug!(mail_id = %mail.id, relay = %self.host, "mail accepted by the SMTP relay");
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(MailError::Transient(format!(
                "SMTP relay did not finish within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }
}

/// `localhost` or a loopback address: traffic to it never leaves the machine.
fn is_this_machine(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FROM: &str = "Acme <no-reply@acme.example>";

    #[test]
    fn defaults_are_starttls_on_587_with_a_10_s_timeout() {
        let config = SmtpConfig::new("smtp.example.com", FROM);
        assert_eq!(config.security, SmtpSecurity::StartTls);
        assert_eq!(config.port, 587);
        assert_eq!(config.timeout, Duration::from_secs(10));
        let tls = config.with_security(SmtpSecurity::Tls);
        assert_eq!(tls.port, 465);
        assert_eq!(tls.with_security(SmtpSecurity::Plain).port, 25);
    }

    #[test]
    fn debug_shows_the_user_but_never_the_password() {
        let mut config = SmtpConfig::new("smtp.example.com", FROM);
        config.credentials = Some(("acme".to_owned(), SecretString::from("hunter2-secret")));
        let shown = format!("{config:?}");
        assert!(shown.contains("acme"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        let mailer = SmtpMailer::new(config).unwrap();
        let shown = format!("{mailer:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("authenticates: true"), "{shown}");
    }

    #[test]
    fn plain_text_credentials_only_to_this_machine() {
        let with_credentials = |host: &str| {
            let mut config = SmtpConfig::new(host, FROM).with_security(SmtpSecurity::Plain);
            config.credentials = Some(("acme".to_owned(), SecretString::from("pw")));
            SmtpMailer::new(config)
        };
        for local in [
            "127.0.0.1",
            "127.0.0.53",
            "localhost",
            "LOCALHOST",
            "::1",
            "[::1]",
        ] {
            assert!(with_credentials(local).is_ok(), "{local}");
        }
        for remote in [
            "smtp.example.com",
            "10.0.0.25",
            "192.168.1.1",
            "localhost.example.com",
        ] {
            assert!(
                matches!(
                    with_credentials(remote),
                    Err(ConfigError::PlainTextCredentials { .. })
                ),
                "{remote}"
            );
        }
        // Without credentials a plain relay may be anywhere the operator trusts.
        let config =
            SmtpConfig::new("relay.internal.example", FROM).with_security(SmtpSecurity::Plain);
        assert!(SmtpMailer::new(config).is_ok());
        // Over TLS, credentials go anywhere.
        let mut config = SmtpConfig::new("smtp.example.com", FROM);
        config.credentials = Some(("acme".to_owned(), SecretString::from("pw")));
        assert!(SmtpMailer::new(config).is_ok());
    }

    #[test]
    fn bad_hosts_and_senders_are_refused() {
        assert_eq!(
            SmtpMailer::new(SmtpConfig::new("  ", FROM)).unwrap_err(),
            ConfigError::EmptyHost
        );
        assert!(matches!(
            SmtpMailer::new(SmtpConfig::new("smtp.example.com", "not a mailbox")),
            Err(ConfigError::From { .. })
        ));
    }
}
