//! `SmtpMailer` against a real SMTP server on 127.0.0.1:0 (see `relay.rs`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use user_core::domain::Email;
use user_core::ports::{Mail, MailError, Mailer as _};
use user_mail::{SmtpConfig, SmtpMailer, SmtpSecurity};

use crate::mime::Part;
use crate::relay::{Behaviour, Relay, SilentRelay, closed_port};

const FROM: &str = "Acme accounts <no-reply@acme.example>";

fn config(addr: SocketAddr) -> SmtpConfig {
    let mut config = SmtpConfig::new("127.0.0.1", FROM).with_security(SmtpSecurity::Plain);
    config.port = addr.port();
    config.timeout = Duration::from_secs(5);
    config
}

fn mailer(addr: SocketAddr) -> SmtpMailer {
    SmtpMailer::new(config(addr)).unwrap()
}

fn mail(html: Option<&str>) -> Mail {
    Mail::new(
        Email::parse("Ada@Example.com").unwrap(),
        "Bienvenue à Acme: confirm your address",
        "Hello Ada,\n\nopen https://accounts.example.com/verify-email?token=abc-_123 to confirm.\nMerci, à bientôt.\n",
        html.map(str::to_owned),
    )
}

/// CRLF or LF, the text is the same. lettre ends a message with one more CRLF than the
/// text has, and the SMTP end of data adds another, so trailing blank lines are dropped.
fn lines(text: &str) -> String {
    format!("{}\n", text.replace("\r\n", "\n").trim_end_matches('\n'))
}

#[tokio::test]
async fn delivers_the_envelope_the_headers_and_both_bodies() {
    let relay = Relay::start(Behaviour::default()).await;
    let html = "<p>Hello Ada,</p>\n<p><a href=\"https://accounts.example.com/verify-email?token=abc-_123\">Confirm</a> — merci.</p>\n";
    let mail = mail(Some(html));

    mailer(relay.addr).send(&mail).await.unwrap();

    let sessions = relay.sessions();
    assert_eq!(sessions.len(), 1);
    let session = &sessions[0];
    assert_eq!(
        session.mail_from.as_deref(),
        Some("<no-reply@acme.example>")
    );
    assert_eq!(session.rcpt_to, ["<ada@example.com>"]);
    assert!(session.auth_plain.is_none());
    assert!(!session.commands.iter().any(|c| c.starts_with("AUTH")));
    assert_eq!(session.commands.last().map(String::as_str), Some("QUIT"));

    let message = Part::parse(session.data.as_deref().unwrap());
    assert_eq!(
        message.header("From").unwrap(),
        "\"Acme accounts\" <no-reply@acme.example>"
    );
    assert_eq!(message.header("To").unwrap(), "ada@example.com");
    assert_eq!(message.header("Subject").unwrap(), mail.subject);
    assert_eq!(
        message.header("Message-ID").unwrap(),
        format!("<{}@acme.example>", mail.id)
    );
    let date = message.header("Date").unwrap();
    assert!(
        time::OffsetDateTime::parse(&date, &time::format_description::well_known::Rfc2822).is_ok(),
        "{date}"
    );
    assert_eq!(message.header("MIME-Version").unwrap(), "1.0");
    assert_eq!(message.header("Auto-Submitted").unwrap(), "auto-generated");
    for single in ["From", "To", "Subject", "Message-ID", "Date"] {
        assert_eq!(message.count(single), 1, "{single}");
    }
    assert_eq!(message.media_type(), "multipart/alternative");

    let parts = message.parts();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].media_type(), "text/plain");
    assert!(
        parts[0]
            .header("Content-Type")
            .unwrap()
            .contains("charset=utf-8")
    );
    assert_eq!(lines(&parts[0].text()), mail.text);
    assert_eq!(parts[1].media_type(), "text/html");
    assert_eq!(lines(&parts[1].text()), html);
}

#[tokio::test]
async fn a_mail_without_html_is_plain_text_only() {
    let relay = Relay::start(Behaviour::default()).await;
    let mail = mail(None);

    mailer(relay.addr).send(&mail).await.unwrap();

    let message = Part::parse(relay.sessions()[0].data.as_deref().unwrap());
    assert_eq!(message.media_type(), "text/plain");
    assert_eq!(lines(&message.text()), mail.text);
}

#[tokio::test]
async fn text_in_any_script_arrives_intact() {
    let relay = Relay::start(Behaviour::default()).await;
    let mut mail = mail(Some(
        "<p>エイダさん、こんにちは。リンクを開いてください。</p>\n",
    ));
    mail.subject = "アカウントの確認".to_owned();
    mail.text = "エイダさん、こんにちは。\nリンクを開いてアドレスを確認してください。\n".repeat(3);

    mailer(relay.addr).send(&mail).await.unwrap();

    let data = relay.sessions()[0].data.clone().unwrap();
    assert!(data.is_ascii(), "headers and bodies are transfer-encoded");
    let message = Part::parse(&data);
    assert_eq!(message.header("Subject").unwrap(), mail.subject);
    let parts = message.parts();
    assert_eq!(
        parts[0].header("Content-Transfer-Encoding").unwrap(),
        "base64"
    );
    assert_eq!(lines(&parts[0].text()), mail.text);
    assert_eq!(lines(&parts[1].text()), mail.html.unwrap());
}

#[tokio::test]
async fn a_dot_at_the_start_of_a_line_survives() {
    let relay = Relay::start(Behaviour::default()).await;
    let mut mail = mail(None);
    mail.text = "first\n.\n.second\n".to_owned();

    mailer(relay.addr).send(&mail).await.unwrap();

    let message = Part::parse(relay.sessions()[0].data.as_deref().unwrap());
    assert_eq!(lines(&message.text()), mail.text);
}

#[tokio::test]
async fn a_permanent_refusal_of_the_recipient_is_rejected() {
    let relay = Relay::start(Behaviour {
        rcpt_reply: Some("550 5.1.1 no such mailbox"),
        ..Behaviour::default()
    })
    .await;

    let err = mailer(relay.addr).send(&mail(None)).await.unwrap_err();

    let MailError::Rejected(reason) = err else {
        panic!("expected Rejected, got {err:?}");
    };
    assert!(reason.contains("550"), "{reason}");
    assert!(relay.sessions()[0].data.is_none());
}

#[tokio::test]
async fn a_temporary_refusal_of_the_recipient_is_transient() {
    let relay = Relay::start(Behaviour {
        rcpt_reply: Some("451 4.3.0 try again later"),
        ..Behaviour::default()
    })
    .await;

    let err = mailer(relay.addr).send(&mail(None)).await.unwrap_err();

    assert!(
        matches!(&err, MailError::Transient(r) if r.contains("451")),
        "{err:?}"
    );
    assert!(relay.sessions()[0].data.is_none());
}

#[tokio::test]
async fn a_closed_port_is_transient() {
    let (_bound, addr) = closed_port();

    let err = mailer(addr).send(&mail(None)).await.unwrap_err();

    assert!(matches!(err, MailError::Transient(_)), "{err:?}");
}

#[tokio::test]
async fn a_relay_that_never_answers_is_transient_within_the_timeout() {
    let relay = SilentRelay::start().await;
    let mut config = config(relay.addr);
    config.timeout = Duration::from_millis(300);
    let mailer = SmtpMailer::new(config).unwrap();

    let started = Instant::now();
    let err = mailer.send(&mail(None)).await.unwrap_err();
    let took = started.elapsed();

    assert!(
        matches!(&err, MailError::Transient(r) if r.contains("300 ms")),
        "{err:?}"
    );
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test]
async fn credentials_are_sent_with_auth_plain_before_the_mail() {
    let relay = Relay::start(Behaviour {
        offer_auth: true,
        ..Behaviour::default()
    })
    .await;
    let mut config = config(relay.addr);
    config.credentials = Some(("acme-mailer".to_owned(), SecretString::from("s3cret pass")));

    SmtpMailer::new(config)
        .unwrap()
        .send(&mail(None))
        .await
        .unwrap();

    let session = &relay.sessions()[0];
    assert_eq!(
        session.auth_plain,
        Some((
            String::new(),
            "acme-mailer".to_owned(),
            "s3cret pass".to_owned()
        ))
    );
    let auth = session
        .commands
        .iter()
        .position(|c| c.starts_with("AUTH PLAIN"));
    let mail_from = session
        .commands
        .iter()
        .position(|c| c.starts_with("MAIL FROM"));
    assert!(auth < mail_from, "{:?}", session.commands);
    assert!(session.data.is_some());
}

#[tokio::test]
async fn refused_credentials_are_transient_not_the_mails_fault() {
    let relay = Relay::start(Behaviour {
        offer_auth: true,
        auth_reply: Some("535 5.7.8 authentication failed"),
        ..Behaviour::default()
    })
    .await;
    let mut config = config(relay.addr);
    config.credentials = Some(("acme-mailer".to_owned(), SecretString::from("wrong")));

    let err = SmtpMailer::new(config)
        .unwrap()
        .send(&mail(None))
        .await
        .unwrap_err();

    assert!(
        matches!(&err, MailError::Transient(r) if r.contains("535")),
        "{err:?}"
    );
    assert!(!err.to_string().contains("wrong"), "{err}");
    assert!(relay.sessions()[0].mail_from.is_none());
}

#[tokio::test]
async fn starttls_sends_nothing_to_a_relay_that_does_not_offer_it() {
    let relay = Relay::start(Behaviour {
        offer_auth: true,
        ..Behaviour::default()
    })
    .await;
    let mut config = config(relay.addr).with_security(SmtpSecurity::StartTls);
    config.port = relay.addr.port();
    config.credentials = Some(("acme-mailer".to_owned(), SecretString::from("s3cret")));

    let err = SmtpMailer::new(config)
        .unwrap()
        .send(&mail(None))
        .await
        .unwrap_err();

    assert!(matches!(err, MailError::Transient(_)), "{err:?}");
    let session = &relay.sessions()[0];
    assert!(session.auth_plain.is_none(), "{:?}", session.commands);
    assert!(session.mail_from.is_none(), "{:?}", session.commands);
}

#[tokio::test]
async fn implicit_tls_to_a_plain_text_relay_is_transient() {
    let relay = Relay::start(Behaviour::default()).await;
    let mut config = config(relay.addr).with_security(SmtpSecurity::Tls);
    config.port = relay.addr.port();

    let err = SmtpMailer::new(config)
        .unwrap()
        .send(&mail(None))
        .await
        .unwrap_err();

    assert!(matches!(err, MailError::Transient(_)), "{err:?}");
    assert!(relay.sessions().iter().all(|s| s.mail_from.is_none()));
}

#[tokio::test]
async fn a_subject_with_a_line_break_is_rejected_before_connecting() {
    let relay = Relay::start(Behaviour::default()).await;
    let mut mail = mail(None);
    mail.subject = "Hello\r\nBcc: eve@example.com".to_owned();

    let err = mailer(relay.addr).send(&mail).await.unwrap_err();

    assert!(matches!(err, MailError::Rejected(_)), "{err:?}");
    assert!(relay.sessions().is_empty());
}
