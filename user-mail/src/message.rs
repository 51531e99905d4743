//! Turns a [`Mail`] into the RFC 5322 message both adapters deliver.

use std::time::SystemTime;

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{Address, Message};
use user_core::ports::{Mail, MailError};

use crate::ConfigError;

/// The `From` of every message, parsed once when the adapter is built.
#[derive(Debug, Clone)]
pub(crate) struct Sender {
    mailbox: Mailbox,
}

impl Sender {
    /// Parses `Site <no-reply@example.com>` or a bare address.
    pub(crate) fn parse(from: &str) -> Result<Self, ConfigError> {
        let refuse = |reason: String| ConfigError::From {
            value: from.to_owned(),
            reason,
        };
        if from.chars().any(char::is_control) {
            return Err(refuse("it has a control character".to_owned()));
        }
        let mailbox: Mailbox = from.trim().parse().map_err(|e| refuse(format!("{e}")))?;
        if !mailbox.email.domain().contains('.') {
            return Err(refuse("the domain needs a dot".to_owned()));
        }
        Ok(Self { mailbox })
    }

    /// The envelope sender and `From` address.
    pub(crate) fn address(&self) -> &Address {
        &self.mailbox.email
    }

    /// The message with `Date: date`: `From`, `To`, `Subject`, `Message-ID:
    /// <{mail.id}@{sender domain}>`, `Auto-Submitted: auto-generated`, and the text alone or
    /// a `multipart/alternative` of the text and the HTML.
    ///
    /// # Errors
    /// [`MailError::Rejected`] for a subject with a line break or a recipient that lettre
    /// does not accept: sending it again would fail again.
    pub(crate) fn message(&self, mail: &Mail, date: SystemTime) -> Result<Message, MailError> {
        if mail.subject.contains(['\r', '\n']) {
            return Err(MailError::Rejected(
                "the subject has a line break".to_owned(),
            ));
        }
        let to: Address = mail.to.as_str().parse().map_err(|e| {
            MailError::Rejected(format!("the recipient is not a deliverable address: {e}"))
        })?;
        let builder = Message::builder()
            .from(self.mailbox.clone())
            .to(Mailbox::new(None, to))
            .subject(mail.subject.as_str())
            .date(date)
            .message_id(Some(format!(
                "<{}@{}>",
                mail.id,
                self.mailbox.email.domain()
            )))
            // RFC 3834: auto-responders (vacation replies) stay quiet.
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("Auto-Submitted"),
                "auto-generated".to_owned(),
            ));
        let text = SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .body(mail.text.clone());
        let built = match &mail.html {
            Some(html) => builder.multipart(
                MultiPart::alternative().singlepart(text).singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(html.clone()),
                ),
            ),
            None => builder.singlepart(text),
        };
        built.map_err(|e| MailError::Rejected(format!("the message cannot be built: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use user_core::domain::Email;

    use super::*;

    fn sender() -> Sender {
        Sender::parse("Acme accounts <no-reply@acme.example>").unwrap()
    }

    fn mail(html: Option<&str>) -> Mail {
        Mail::new(
            Email::parse("ada@example.com").unwrap(),
            "Confirm your address",
            "Hello Ada",
            html.map(str::to_owned),
        )
    }

    #[test]
    fn senders_are_parsed_once_and_bad_ones_refused() {
        assert_eq!(sender().address().to_string(), "no-reply@acme.example");
        assert!(Sender::parse("no-reply@acme.example").is_ok());
        for bad in [
            "",
            "Acme",
            "Acme <no-reply>",
            "Acme <no-reply@localhost>",
            "Acme\r\nBcc: x@y.example <a@b.example>",
        ] {
            assert!(
                matches!(Sender::parse(bad), Err(ConfigError::From { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn message_has_the_headers_and_an_id_derived_from_the_mail() {
        let mail = mail(None);
        let bytes = sender()
            .message(&mail, SystemTime::UNIX_EPOCH)
            .unwrap()
            .formatted();
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.contains(&format!("Message-ID: <{}@acme.example>\r\n", mail.id)),
            "{text}"
        );
        assert!(
            text.contains("Date: Thu, 01 Jan 1970 00:00:00 +0000\r\n"),
            "{text}"
        );
        assert!(text.contains("To: ada@example.com\r\n"), "{text}");
        assert!(
            text.contains("Auto-Submitted: auto-generated\r\n"),
            "{text}"
        );
        assert!(
            text.contains("Content-Type: text/plain; charset=utf-8"),
            "{text}"
        );
        assert!(!text.contains("multipart"), "{text}");
    }

    #[test]
    fn html_makes_a_multipart_alternative() {
        let bytes = sender()
            .message(&mail(Some("<p>Hello</p>")), SystemTime::now())
            .unwrap()
            .formatted();
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.contains("Content-Type: multipart/alternative"),
            "{text}"
        );
        assert!(
            text.contains("Content-Type: text/html; charset=utf-8"),
            "{text}"
        );
    }

    #[test]
    fn a_subject_with_a_line_break_is_rejected() {
        for subject in ["a\r\nBcc: eve@example.com", "a\nb", "a\rb"] {
            let mut mail = mail(None);
            mail.subject = subject.to_owned();
            assert!(matches!(
                sender().message(&mail, SystemTime::now()),
                Err(MailError::Rejected(_))
            ));
        }
    }
}
