//! `MailTemplates` with the embedded defaults and overrides.

use std::fs;

use serde_json::{Value, json};
use user_core::domain::Email;
use user_mail::{KINDS, MailSettings, MailTemplates, TemplateError};

fn settings() -> MailSettings {
    MailSettings::new("Acme accounts", "https://accounts.example.com/").unwrap()
}

fn templates() -> MailTemplates {
    MailTemplates::new(settings())
}

fn to() -> Email {
    Email::parse("ada@example.com").unwrap()
}

/// Every value any default uses.
fn values(kind: &str) -> Value {
    let link = settings().link("/x", "tok_123");
    match kind {
        "verify_email" => json!({ "name": "Ada", "link": link }),
        "reset_password" => json!({ "name": "Ada", "link": link, "expires_in": "30 minutes" }),
        "password_changed" => json!({ "name": "Ada" }),
        "email_changed" => json!({
            "name": "Ada",
            "old_email": "ada@old.example",
            "new_email": "ada@new.example",
        }),
        "lockout_started" => json!({ "name": "Ada", "until": "14:05 UTC" }),
        "second_factor_changed" => json!({ "name": "Ada", "enabled": true, "by_admin": false }),
        "recovery_codes_replaced" => json!({ "name": "Ada" }),
        other => panic!("no values for {other}"),
    }
}

#[test]
fn every_default_renders_a_short_plain_message() {
    for kind in KINDS {
        let mail = templates().compose(kind, to(), values(kind)).unwrap();
        assert_eq!(mail.to, to());
        assert!(
            mail.subject.contains("Acme accounts"),
            "{kind}: {}",
            mail.subject
        );
        assert!(!mail.subject.contains(['\r', '\n']), "{kind}");
        assert!(mail.text.contains("Hello Ada"), "{kind}: {}", mail.text);
        assert!(mail.text.contains("https://accounts.example.com"), "{kind}");
        assert!(
            !mail.text.contains("https://accounts.example.com/\n"),
            "{kind}"
        );
        let html = mail.html.clone().unwrap();
        assert!(html.contains("Hello Ada"), "{kind}: {html}");
        for remote in ["<img", "<script", "<link", "src=", "url(", "@import"] {
            assert!(!html.contains(remote), "{kind} has {remote}");
        }
        // The text values appear as given; flags (booleans) choose the wording.
        for value in values(kind)
            .as_object()
            .unwrap()
            .values()
            .filter_map(Value::as_str)
        {
            assert!(mail.text.contains(value), "{kind} text lacks {value}");
            assert!(html.contains(value), "{kind} html lacks {value}");
        }
    }
}

#[test]
fn links_arrive_whole_in_both_bodies() {
    let link = settings().link("/reset-password", "a+b/c=");
    let mail = templates()
        .compose(
            "reset_password",
            to(),
            json!({ "name": "Ada", "link": link, "expires_in": "30 minutes" }),
        )
        .unwrap();
    assert_eq!(
        link,
        "https://accounts.example.com/reset-password?token=a%2Bb%2Fc%3D"
    );
    assert!(mail.text.contains(&link), "{}", mail.text);
    assert!(
        mail.html.unwrap().contains(&format!("href=\"{link}\"")),
        "the link must not be escaped into something else"
    );
}

#[test]
fn html_is_escaped_and_text_is_not() {
    let name = "<script>alert('1\")</script> & Co";
    let mail = templates()
        .compose("password_changed", to(), json!({ "name": name }))
        .unwrap();
    let html = mail.html.unwrap();
    assert!(
        html.contains("&lt;script&gt;alert(&#x27;1&quot;)&lt;/script&gt; &amp; Co"),
        "{html}"
    );
    assert!(!html.contains("<script>"), "{html}");
    assert!(mail.text.contains(name), "{}", mail.text);
}

#[test]
fn a_missing_value_is_an_error_not_an_empty_string() {
    let err = templates()
        .compose(
            "reset_password",
            to(),
            json!({ "name": "Ada", "link": "https://accounts.example.com/r?token=t" }),
        )
        .unwrap_err();
    assert!(
        matches!(&err, TemplateError::Render { name, .. } if name.starts_with("reset_password")),
        "{err:?}"
    );
}

#[test]
fn the_site_values_cannot_be_overridden_by_the_context() {
    let mail = templates()
        .compose(
            "password_changed",
            to(),
            json!({ "name": "Ada", "site_name": "Evil", "base_url": "https://evil.example" }),
        )
        .unwrap();
    assert!(mail.subject.contains("Acme accounts"), "{}", mail.subject);
    assert!(!mail.text.contains("evil.example"), "{}", mail.text);
}

#[test]
fn overrides_by_string_win() {
    let templates = templates()
        .with_template(
            "verify_email.subject.txt",
            "Welcome to {{ site_name }}, {{ name }}",
        )
        .unwrap()
        .with_template(
            "layout.html",
            "<html><body>{% block body %}{% endblock %}<footer>custom</footer></body></html>",
        )
        .unwrap();
    let mail = templates
        .compose("verify_email", to(), values("verify_email"))
        .unwrap();
    assert_eq!(mail.subject, "Welcome to Acme accounts, Ada");
    let html = mail.html.unwrap();
    assert!(html.contains("<footer>custom</footer>"), "{html}");
    assert!(html.contains("Confirm my email address"), "{html}");
    // The other kinds keep their defaults.
    let other = templates
        .compose("password_changed", to(), values("password_changed"))
        .unwrap();
    assert_eq!(other.subject, "Your Acme accounts password was changed");
}

#[test]
fn an_empty_html_override_sends_text_only() {
    let mail = templates()
        .with_template("password_changed.html", "  \n")
        .unwrap()
        .compose("password_changed", to(), values("password_changed"))
        .unwrap();
    assert_eq!(mail.html, None);
}

#[test]
fn overrides_from_a_folder_win() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("reset_password.txt"),
        "Reset at {{ link }} within {{ expires_in }}.\n",
    )
    .unwrap();
    fs::write(
        dir.path().join("reset_password.subject.txt"),
        "{{ site_name }}: reset\n",
    )
    .unwrap();
    fs::write(dir.path().join("README.md"), "not a template").unwrap();
    fs::create_dir(dir.path().join("drafts.txt")).unwrap();

    let templates = templates().with_dir(dir.path()).unwrap();
    let mail = templates
        .compose("reset_password", to(), values("reset_password"))
        .unwrap();

    assert_eq!(mail.subject, "Acme accounts: reset");
    assert_eq!(
        mail.text,
        "Reset at https://accounts.example.com/x?token=tok_123 within 30 minutes."
    );
    assert!(mail.html.unwrap().contains("Choose a new password"));
}

#[test]
fn a_folder_with_a_misspelt_or_broken_template_is_refused() {
    let misspelt = tempfile::tempdir().unwrap();
    fs::write(misspelt.path().join("reset-password.txt"), "x").unwrap();
    assert!(matches!(
        templates().with_dir(misspelt.path()),
        Err(TemplateError::UnknownName(name)) if name == "reset-password.txt"
    ));

    let broken = tempfile::tempdir().unwrap();
    fs::write(broken.path().join("verify_email.html"), "{% if %}").unwrap();
    assert!(matches!(
        templates().with_dir(broken.path()),
        Err(TemplateError::Syntax { .. })
    ));

    assert!(matches!(
        templates().with_dir(misspelt.path().join("missing")),
        Err(TemplateError::Read { .. })
    ));
}

#[test]
fn a_subject_with_a_newline_is_refused() {
    let two_lines = templates()
        .with_template("password_changed.subject.txt", "Hello\n{{ name }}")
        .unwrap();
    assert!(matches!(
        two_lines.compose("password_changed", to(), values("password_changed")),
        Err(TemplateError::Subject(kind)) if kind == "password_changed"
    ));

    let with_name = templates()
        .with_template("password_changed.subject.txt", "Hello {{ name }}")
        .unwrap();
    assert!(matches!(
        with_name.compose(
            "password_changed",
            to(),
            json!({ "name": "Ada\r\nBcc: eve@example.com" })
        ),
        Err(TemplateError::Subject(_))
    ));
}

#[test]
fn unknown_names_and_kinds_are_refused() {
    assert!(matches!(
        templates().with_template("welcome.txt", "hi"),
        Err(TemplateError::UnknownName(_))
    ));
    assert!(matches!(
        templates().compose("welcome", to(), json!({})),
        Err(TemplateError::UnknownKind(_))
    ));
}
