//! The contract of the mail ports, [`Mailer`] and [`MailComposer`]: what their docs promise,
//! as checks every implementation runs (crate `user-mail` runs them on its SMTP mailer, its
//! file outbox and its templates; this crate on [`RecordingMailer`](super::RecordingMailer)).
//!
//! A mailer is checked through what arrived at the other end, read back by the test as
//! [`Delivered`] (the relay's copy, the `.eml` file):
//!
//! ```text
//! let (mailer, log) = ...; // a mailer and a DeliveryLog on what it delivered
//! mail_conformance::mailer_keeps_its_promises(&mailer, &log).await;
//! mail_conformance::unreachable_mailer_is_transient(&mailer_to_a_closed_port).await;
//! mail_conformance::composer_keeps_its_promises(&templates);
//! ```

use std::collections::HashSet;
use std::time::Duration;

use secrecy::SecretString;
use time::macros::datetime;

use crate::domain::Email;
use crate::ports::{Mail, MailComposer, MailError, Mailer, Notice};

/// One message as its receiver reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The recipient's address, as the transport addressed it.
    pub to: String,
    /// The subject, decoded.
    pub subject: String,
    /// The plain-text body, decoded, with `\n` line ends.
    pub text: String,
    /// The HTML body, decoded, with `\n` line ends, if the message had one.
    pub html: Option<String>,
    /// The `Message-ID` header's value.
    pub message_id: String,
}

/// What a mailer under test has delivered so far, oldest first.
#[async_trait::async_trait]
pub trait DeliveryLog: Send + Sync {
    /// Every message delivered so far, in the order it was sent.
    async fn delivered(&self) -> Vec<Delivered>;
}

/// Line ends as `\n` and no trailing blank lines: transports add a final line end (SMTP's
/// end of data, MIME's part boundaries), which is not part of the text.
fn same_lines(text: &str) -> String {
    text.replace("\r\n", "\n").trim_end_matches('\n').to_owned()
}

fn assert_arrived(delivered: &Delivered, mail: &Mail) {
    assert_eq!(
        delivered.to.to_ascii_lowercase(),
        mail.to.as_str(),
        "the recipient"
    );
    assert_eq!(delivered.subject, mail.subject, "the subject");
    assert_eq!(
        same_lines(&delivered.text),
        same_lines(&mail.text),
        "the text"
    );
    assert_eq!(
        delivered.html.as_deref().map(same_lines),
        mail.html.as_deref().map(same_lines),
        "the HTML"
    );
    assert!(
        delivered.message_id.contains(&mail.id.to_string()),
        "the Message-ID {} is derived from the mail's id {}",
        delivered.message_id,
        mail.id
    );
}

/// What [`Mailer::send`] and [`Mail`] promise, against a working transport:
/// - `Ok` means the message arrived, once, to its recipient, with its subject, text and HTML
///   (or without HTML when it has none), in any script, a line that starts with a dot kept;
/// - the `Message-ID` is derived from [`Mail::id`]: the same mail sent again carries the
///   same one, another mail another one;
/// - a subject with a line break is [`MailError::Rejected`] and nothing is delivered.
///
/// `log` must start empty.
pub async fn mailer_keeps_its_promises(mailer: &dyn Mailer, log: &dyn DeliveryLog) {
    assert!(log.delivered().await.is_empty(), "the log starts empty");
    let to = Email::parse("Ada.Lovelace@Example.com").unwrap();
    let with_html = Mail::new(
        to.clone(),
        "Confirm your address",
        "Hello Ada,\n\nopen https://accounts.example.com/verify-email?token=abc-_123 to confirm.\n",
        Some(
            "<p>Hello Ada,</p>\n<p><a href=\"https://accounts.example.com/verify-email?token=abc-_123\">Confirm</a></p>\n"
                .to_owned(),
        ),
    );
    let text_only = Mail::new(
        Email::parse("grace@example.org").unwrap(),
        "Your password was changed",
        "Hello Grace,\n\nyour password was changed.\n",
        None,
    );
    let any_script = Mail::new(
        to.clone(),
        "Bienvenue à Acme — 日本語 ✓",
        "Grüße, Ада!\n.a line that starts with a dot\n..and two\n\n末尾\n",
        Some("<p>Grüße, Ада — 日本語</p>\n".to_owned()),
    );
    for mail in [&with_html, &text_only, &any_script] {
        mailer
            .send(mail)
            .await
            .unwrap_or_else(|e| panic!("a well-formed mail to a working transport is sent: {e}"));
    }
    // Sent again, as the outbox does after a crash between sending and recording it.
    mailer.send(&with_html).await.unwrap();

    let delivered = log.delivered().await;
    assert_eq!(delivered.len(), 4, "each send delivers one message");
    assert_arrived(&delivered[0], &with_html);
    assert_arrived(&delivered[1], &text_only);
    assert_arrived(&delivered[2], &any_script);
    assert_arrived(&delivered[3], &with_html);
    assert_eq!(
        delivered[3].message_id, delivered[0].message_id,
        "a mail sent again keeps its Message-ID, so a receiver can drop the copy"
    );
    let ids: HashSet<&str> = delivered[..3]
        .iter()
        .map(|d| d.message_id.as_str())
        .collect();
    assert_eq!(ids.len(), 3, "other mails get other Message-IDs");

    for subject in [
        "Hello\r\nBcc: eve@example.com",
        "Hello\nBcc: eve@example.com",
        "Hello\r",
    ] {
        let mut injected = text_only.clone();
        injected.id = uuid::Uuid::now_v7();
        injected.subject = subject.to_owned();
        let err = mailer.send(&injected).await.unwrap_err();
        assert!(
            matches!(err, MailError::Rejected(_)),
            "a subject with a line break is refused for good: {err:?}"
        );
    }
    assert_eq!(
        log.delivered().await.len(),
        4,
        "a refused mail delivers nothing"
    );
}

/// A mailer whose transport cannot be reached (a closed port, a folder that cannot be
/// written) says [`MailError::Transient`]: the outbox tries again later.
pub async fn unreachable_mailer_is_transient(mailer: &dyn Mailer) {
    let mail = Mail::new(
        Email::parse("ada@example.com").unwrap(),
        "Your password was changed",
        "Hello Ada,\n",
        None,
    );
    let err = mailer.send(&mail).await.unwrap_err();
    assert!(
        matches!(err, MailError::Transient(_)),
        "an unreachable transport is worth trying again: {err:?}"
    );
}

/// The token the link notices carry in these checks: URL-safe, as the services' tokens are.
pub const NOTICE_TOKEN: &str = "tok_Zx9-Ab3_q";

/// One notice of every kind, greeting `name`; the link notices carry [`NOTICE_TOKEN`].
pub fn every_notice(name: &str) -> Vec<Notice> {
    let name = name.to_owned();
    let token = || SecretString::from(NOTICE_TOKEN);
    vec![
        Notice::VerifyEmail {
            name: name.clone(),
            token: token(),
            expires_in: Duration::from_secs(24 * 3600),
        },
        Notice::ResetPassword {
            name: name.clone(),
            token: token(),
            expires_in: Duration::from_secs(30 * 60),
        },
        Notice::PasswordChanged { name: name.clone() },
        Notice::EmailChanged {
            name: name.clone(),
            old: Email::parse("ada@old.example").unwrap(),
            new: Email::parse("ada@new.example").unwrap(),
        },
        Notice::LockoutStarted {
            name: name.clone(),
            until: datetime!(2026-02-03 14:05 UTC),
        },
        Notice::SecondFactorChanged {
            name: name.clone(),
            enabled: true,
            by_admin: false,
        },
        Notice::SecondFactorChanged {
            name: name.clone(),
            enabled: false,
            by_admin: true,
        },
        Notice::RecoveryCodesReplaced { name },
    ]
}

/// What [`MailComposer::compose`] and [`Notice`] promise, for every kind of notice:
/// - the mail goes to `to`, with a new id each time it is composed;
/// - its subject is one line, not empty, and the kinds are told apart by their subjects;
/// - its text greets the user by `name` (and so does the HTML, when there is one);
/// - `VerifyEmail` carries a link to `/verify-email` with the token, `ResetPassword` one to
///   `/reset-password`, in the text and the HTML; no other kind carries the token;
/// - second factor turned on and off read differently.
pub fn composer_keeps_its_promises(composer: &dyn MailComposer) {
    let to = Email::parse("ada@example.com").unwrap();
    let name = "Ada Zyxwv";
    let mut subjects: Vec<(&'static str, String)> = Vec::new();
    let mut factor_texts = Vec::new();
    for notice in every_notice(name) {
        let kind = notice.kind();
        let mail = composer
            .compose(&notice, &to)
            .unwrap_or_else(|e| panic!("{kind} is composed: {e}"));
        let again = composer.compose(&notice, &to).unwrap();
        assert_eq!(mail.to, to, "{kind}: the recipient");
        assert_ne!(mail.id, again.id, "{kind}: every mail gets a new id");
        assert!(!mail.subject.trim().is_empty(), "{kind}: a subject");
        assert!(
            !mail.subject.contains(['\r', '\n']),
            "{kind}: one line of subject: {:?}",
            mail.subject
        );
        assert!(
            mail.text.contains(name),
            "{kind}: the text greets the user: {}",
            mail.text
        );
        if let Some(html) = &mail.html {
            assert!(html.contains(name), "{kind}: the HTML greets the user");
        }
        let link = match kind {
            "verify_email" => Some("/verify-email"),
            "reset_password" => Some("/reset-password"),
            _ => None,
        };
        for body in std::iter::once(&mail.text).chain(&mail.html) {
            match link {
                Some(path) => {
                    let at = body
                        .find(path)
                        .unwrap_or_else(|| panic!("{kind}: a link to {path}: {body}"));
                    assert!(
                        body[at..].contains(NOTICE_TOKEN),
                        "{kind}: the link carries the token: {body}"
                    );
                }
                None => assert!(
                    !body.contains(NOTICE_TOKEN),
                    "{kind}: no token in a mail that has no link"
                ),
            }
        }
        if kind == "second_factor_changed" {
            factor_texts.push(mail.text.clone());
        } else {
            subjects.push((kind, mail.subject));
        }
    }
    for (i, (kind, subject)) in subjects.iter().enumerate() {
        for (other, other_subject) in &subjects[i + 1..] {
            assert_ne!(subject, other_subject, "{kind} and {other} share a subject");
        }
    }
    assert_ne!(
        factor_texts[0], factor_texts[1],
        "turning the second factor on and off read differently"
    );
}

/// A log over [`RecordingMailer`](super::RecordingMailer): what it accepted, with the mail's
/// id as its `Message-ID` (it is no transport; the suite's own test runs on it).
#[async_trait::async_trait]
impl DeliveryLog for super::RecordingMailer {
    async fn delivered(&self) -> Vec<Delivered> {
        self.attempts()
            .into_iter()
            .filter(|a| a.result.is_ok())
            .map(|a| Delivered {
                to: a.mail.to.as_str().to_owned(),
                subject: a.mail.subject,
                text: a.mail.text,
                html: a.mail.html,
                message_id: format!("<{}@recording>", a.mail.id),
            })
            .collect()
    }
}
