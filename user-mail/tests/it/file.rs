//! `FileMailer` on a real temporary folder.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use user_core::domain::Email;
use user_core::ports::{Mail, Mailer as _};
use user_core::testing::observe::{captured_logs, level};
use user_mail::FileMailer;

use crate::mime::Part;

const FROM: &str = "Acme accounts <no-reply@acme.example>";

fn mail(to: &str) -> Mail {
    Mail::new(
        Email::parse(to).unwrap(),
        "Reset your password",
        "Open https://accounts.example.com/reset-password?token=single-use-secret\n",
        Some("<p><a href=\"https://accounts.example.com/reset-password?token=single-use-secret\">Reset</a></p>\n".to_owned()),
    )
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn eml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn writes_a_private_eml_file_in_a_private_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data").join("outbox");
    let outbox = FileMailer::new(&dir, FROM).unwrap();
    assert_eq!(outbox.dir(), dir);
    assert_eq!(mode(&dir), 0o700);
    let mail = mail("ada@example.com");

    outbox.send(&mail).await.unwrap();

    let files = eml_files(&dir);
    assert_eq!(files.len(), 1);
    let name = files[0].file_name().unwrap().to_str().unwrap();
    let (time, id) = name.strip_suffix(".eml").unwrap().split_once('-').unwrap();
    assert_eq!(id, mail.id.to_string(), "{name}");
    // 20260102T030405.123456Z
    assert_eq!(time.len(), 23, "{name}");
    assert!(time.ends_with('Z') && time.as_bytes()[8] == b'T', "{name}");
    assert_eq!(mode(&files[0]), 0o600);

    let message = Part::parse(&fs::read(&files[0]).unwrap());
    assert_eq!(
        message.header("Message-ID").unwrap(),
        format!("<{}@acme.example>", mail.id)
    );
    assert_eq!(message.header("To").unwrap(), "ada@example.com");
    assert_eq!(message.header("Subject").unwrap(), mail.subject);
    assert!(message.header("Date").is_some());
    let parts = message.parts();
    assert_eq!(parts[0].text().replace("\r\n", "\n"), mail.text);
    assert_eq!(
        parts[1].text().replace("\r\n", "\n"),
        mail.html.clone().unwrap()
    );
}

#[tokio::test]
async fn mails_never_overwrite_each_other() {
    let tmp = tempfile::tempdir().unwrap();
    let outbox = FileMailer::new(tmp.path().join("outbox"), FROM).unwrap();
    let first = mail("ada@example.com");
    let second = mail("grace@example.com");

    // The same mail twice (a retry) keeps both copies.
    outbox.send(&first).await.unwrap();
    outbox.send(&first).await.unwrap();
    outbox.send(&second).await.unwrap();

    let files = eml_files(outbox.dir());
    assert_eq!(files.len(), 3, "{files:?}");
    let recipients: Vec<String> = files
        .iter()
        .map(|f| Part::parse(&fs::read(f).unwrap()).header("To").unwrap())
        .collect();
    assert_eq!(
        recipients
            .iter()
            .filter(|to| *to == "ada@example.com")
            .count(),
        2
    );
    assert!(recipients.contains(&"grace@example.com".to_owned()));
}

#[tokio::test]
async fn an_open_folder_is_made_private_and_a_removed_one_comes_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("outbox");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();

    let outbox = FileMailer::new(&dir, FROM).unwrap();
    assert_eq!(mode(&dir), 0o700);

    fs::remove_dir(&dir).unwrap();
    outbox.send(&mail("ada@example.com")).await.unwrap();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(eml_files(&dir).len(), 1);
}

#[tokio::test]
async fn logs_the_file_and_the_recipient_never_the_body() {
    let tmp = tempfile::tempdir().unwrap();
    let outbox = FileMailer::new(tmp.path().join("outbox"), FROM).unwrap();
    let mail = mail("logged-recipient@example.com");
    captured_logs();

    outbox.send(&mail).await.unwrap();

    let logs = captured_logs();
    let line = logs
        .lines()
        .find(|l| l.contains(&mail.id.to_string()))
        .unwrap_or_else(|| panic!("no line for the mail in {logs}"));
    assert_eq!(level(line), "INFO", "{line}");
    assert!(line.contains("logged-recipient@example.com"), "{line}");
    let file = &eml_files(outbox.dir())[0];
    assert!(line.contains(&file.display().to_string()), "{line}");
    assert!(!logs.contains("single-use-secret"), "{logs}");
}

#[test]
fn a_bad_sender_or_an_unusable_folder_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(matches!(
        FileMailer::new(tmp.path(), "nobody"),
        Err(user_mail::ConfigError::From { .. })
    ));
    let file = tmp.path().join("a-file");
    fs::write(&file, b"").unwrap();
    assert!(matches!(
        FileMailer::new(file.join("outbox"), FROM),
        Err(user_mail::ConfigError::Outbox { .. })
    ));
}
