//! The mail ports' contract (`user_core::testing::mail_conformance`) on every implementation
//! here: the SMTP mailer against a relay on 127.0.0.1:0, the file outbox in a temporary
//! folder, and the templates as the composer.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use user_core::testing::mail_conformance::{
    self, Delivered, DeliveryLog, composer_keeps_its_promises, mailer_keeps_its_promises,
    unreachable_mailer_is_transient,
};
use user_mail::{FileMailer, MailSettings, MailTemplates, SmtpConfig, SmtpMailer, SmtpSecurity};

use crate::mime::Part;
use crate::relay::{Behaviour, Relay, closed_port};

const FROM: &str = "Acme accounts <no-reply@acme.example>";

/// A message's parts as its receiver reads them; `to` is where the transport addressed it.
fn read_back(raw: &[u8], to: &str) -> Delivered {
    let message = Part::parse(raw);
    let (text, html) = if message.media_type() == "multipart/alternative" {
        let parts = message.parts();
        assert_eq!(parts.len(), 2, "text and HTML");
        assert_eq!(parts[0].media_type(), "text/plain");
        assert_eq!(parts[1].media_type(), "text/html");
        (parts[0].text(), Some(parts[1].text()))
    } else {
        assert_eq!(message.media_type(), "text/plain");
        (message.text(), None)
    };
    Delivered {
        to: to.trim_matches(['<', '>']).to_owned(),
        subject: message.header("Subject").expect("a subject"),
        text,
        html,
        message_id: message.header("Message-ID").expect("a Message-ID"),
    }
}

fn smtp_config(port: u16) -> SmtpConfig {
    let mut config = SmtpConfig::new("127.0.0.1", FROM).with_security(SmtpSecurity::Plain);
    config.port = port;
    config.timeout = Duration::from_secs(5);
    config
}

struct RelayLog(Relay);

#[async_trait::async_trait]
impl DeliveryLog for RelayLog {
    async fn delivered(&self) -> Vec<Delivered> {
        self.0
            .sessions()
            .iter()
            .filter_map(|s| {
                let data = s.data.as_deref()?;
                assert_eq!(s.rcpt_to.len(), 1, "one recipient a message");
                Some(read_back(data, &s.rcpt_to[0]))
            })
            .collect()
    }
}

struct OutboxLog(PathBuf);

#[async_trait::async_trait]
impl DeliveryLog for OutboxLog {
    async fn delivered(&self) -> Vec<Delivered> {
        let Ok(entries) = fs::read_dir(&self.0) else {
            return Vec::new();
        };
        // `<UTC time to the microsecond>-<id>.eml`: by name is the order they were written.
        let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
        files.sort();
        files
            .iter()
            .map(|path| {
                let raw = fs::read(path).unwrap();
                let to = Part::parse(&raw).header("To").expect("a To header");
                read_back(&raw, &to)
            })
            .collect()
    }
}

#[tokio::test]
async fn the_smtp_mailer_keeps_the_promises_of_the_port() {
    let relay = Relay::start(Behaviour::default()).await;
    let mailer = SmtpMailer::new(smtp_config(relay.addr.port())).unwrap();
    mailer_keeps_its_promises(&mailer, &RelayLog(relay)).await;
}

#[tokio::test]
async fn the_smtp_mailer_to_a_closed_port_is_transient() {
    let (_held, addr) = closed_port();
    let mailer = SmtpMailer::new(smtp_config(addr.port())).unwrap();
    unreachable_mailer_is_transient(&mailer).await;
}

#[tokio::test]
async fn the_file_outbox_keeps_the_promises_of_the_port() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("outbox");
    let mailer = FileMailer::new(&dir, FROM).unwrap();
    mailer_keeps_its_promises(&mailer, &OutboxLog(dir)).await;
}

#[tokio::test]
async fn the_file_outbox_on_a_folder_it_cannot_write_is_transient() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("outbox");
    let mailer = FileMailer::new(&dir, FROM).unwrap();
    // The folder becomes a file: nothing can be written there, even as root.
    fs::remove_dir(&dir).unwrap();
    fs::write(&dir, b"not a folder").unwrap();
    unreachable_mailer_is_transient(&mailer).await;
}

#[test]
fn the_templates_keep_the_promises_of_the_composer_port() {
    let settings = MailSettings::new("Acme accounts", "https://accounts.example.com/").unwrap();
    composer_keeps_its_promises(&MailTemplates::new(settings));
}

#[test]
fn the_checks_cover_every_kind_the_templates_have() {
    let kinds: std::collections::BTreeSet<&str> = mail_conformance::every_notice("Ada")
        .iter()
        .map(|n| n.kind())
        .collect();
    let templates: std::collections::BTreeSet<&str> = user_mail::KINDS.iter().copied().collect();
    assert_eq!(kinds, templates);
}
