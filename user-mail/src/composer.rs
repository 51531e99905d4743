//! [`MailTemplates`] as the core's [`MailComposer`]: each [`Notice`] becomes its template kind,
//! with links built by [`MailSettings::link`](crate::MailSettings::link).

use std::time::Duration;

use minijinja::context;
use secrecy::ExposeSecret;
use time::{OffsetDateTime, UtcOffset};
use user_core::domain::Email;
use user_core::ports::{ComposeError, Mail, MailComposer, Notice};

use crate::MailTemplates;

/// The page a verification link opens, below the public base URL.
pub const VERIFY_EMAIL_PATH: &str = "/verify-email";

/// The page a password-reset link opens, below the public base URL.
pub const RESET_PASSWORD_PATH: &str = "/reset-password";

impl MailComposer for MailTemplates {
    fn compose(&self, notice: &Notice, to: &Email) -> Result<Mail, ComposeError> {
        let settings = self.settings();
        let kind = notice.kind();
        let to = to.clone();
        let composed = match notice {
            Notice::VerifyEmail {
                name,
                token,
                expires_in,
            } => {
                let link = settings.link(VERIFY_EMAIL_PATH, token.expose_secret());
                let expires_in = duration_text(*expires_in);
                MailTemplates::compose(self, kind, to, context! { name, link, expires_in })
            }
            Notice::ResetPassword {
                name,
                token,
                expires_in,
            } => {
                let link = settings.link(RESET_PASSWORD_PATH, token.expose_secret());
                let expires_in = duration_text(*expires_in);
                MailTemplates::compose(self, kind, to, context! { name, link, expires_in })
            }
            Notice::PasswordChanged { name } | Notice::RecoveryCodesReplaced { name } => {
                MailTemplates::compose(self, kind, to, context! { name })
            }
            Notice::EmailChanged { name, old, new } => MailTemplates::compose(
                self,
                kind,
                to,
                context! { name, old_email => old.as_str(), new_email => new.as_str() },
            ),
            Notice::LockoutStarted { name, until } => {
                let until = utc_text(*until);
                MailTemplates::compose(self, kind, to, context! { name, until })
            }
            Notice::SecondFactorChanged {
                name,
                enabled,
                by_admin,
            } => MailTemplates::compose(self, kind, to, context! { name, enabled, by_admin }),
        };
        composed.map_err(ComposeError::new)
    }
}

/// A lifetime for a person, in the largest whole unit: `30 minutes`, `24 hours`, `2 days`.
fn duration_text(d: Duration) -> String {
    let secs = d.as_secs();
    let (n, unit) = match secs {
        s if s >= 86_400 && s % 86_400 == 0 => (s / 86_400, "day"),
        s if s >= 3_600 && s % 3_600 == 0 => (s / 3_600, "hour"),
        s if s >= 60 => (s.div_ceil(60), "minute"),
        s => (s.max(1), "second"),
    };
    let plural = if n == 1 { "" } else { "s" };
    format!("{n} {unit}{plural}")
}

/// A moment in UTC, to the minute: `2026-01-01 14:05 UTC`.
fn utc_text(at: OffsetDateTime) -> String {
    let at = at.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute()
    )
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;
    use time::macros::datetime;

    use super::*;
    use crate::MailSettings;

    fn templates() -> MailTemplates {
        MailTemplates::new(MailSettings::new("Acme", "https://example.com/accounts/").unwrap())
    }

    fn email(s: &str) -> Email {
        Email::parse(s).unwrap()
    }

    #[test]
    fn every_notice_composes_for_its_recipient() {
        let templates = templates();
        let ada = email("ada@example.com");
        let notices = [
            Notice::VerifyEmail {
                name: "Ada".into(),
                token: SecretString::from("verify-TOKEN_1"),
                expires_in: Duration::from_secs(24 * 3600),
            },
            Notice::ResetPassword {
                name: "Ada".into(),
                token: SecretString::from("reset-TOKEN_2"),
                expires_in: Duration::from_secs(30 * 60),
            },
            Notice::PasswordChanged { name: "Ada".into() },
            Notice::EmailChanged {
                name: "Ada".into(),
                old: email("ada@example.com"),
                new: email("ada@example.org"),
            },
            Notice::LockoutStarted {
                name: "Ada".into(),
                until: datetime!(2026-01-01 14:05:30 +02:00),
            },
            Notice::SecondFactorChanged {
                name: "Ada".into(),
                enabled: true,
                by_admin: false,
            },
            Notice::SecondFactorChanged {
                name: "Ada".into(),
                enabled: false,
                by_admin: true,
            },
            Notice::RecoveryCodesReplaced { name: "Ada".into() },
        ];
        for notice in &notices {
            let mail = MailComposer::compose(&templates, notice, &ada).unwrap();
            assert_eq!(mail.to, ada, "{}", notice.kind());
            assert!(!mail.subject.is_empty(), "{}", notice.kind());
            assert!(mail.text.contains("Hello Ada"), "{}", notice.kind());
            assert!(mail.html.is_some(), "{}", notice.kind());
        }
        let text = |i: usize| {
            MailComposer::compose(&templates, &notices[i], &ada)
                .unwrap()
                .text
        };
        assert!(text(0).contains("https://example.com/accounts/verify-email?token=verify-TOKEN_1"));
        let reset = text(1);
        assert!(reset.contains("https://example.com/accounts/reset-password?token=reset-TOKEN_2"));
        assert!(reset.contains("expires in 30 minutes"), "{reset}");
        let changed = text(3);
        assert!(changed.contains("from: ada@example.com"), "{changed}");
        assert!(changed.contains("to:   ada@example.org"), "{changed}");
        assert!(
            text(4).contains("until 2026-01-01 12:05 UTC"),
            "{}",
            text(4)
        );
        assert!(text(5).contains("now asks for a code"), "{}", text(5));
        assert!(
            text(6).contains("An administrator") || text(6).contains("an administrator"),
            "{}",
            text(6)
        );
        let subject = |i: usize| {
            MailComposer::compose(&templates, &notices[i], &ada)
                .unwrap()
                .subject
        };
        assert!(subject(5).contains("turned on"), "{}", subject(5));
        assert!(subject(6).contains("turned off"), "{}", subject(6));
    }

    #[test]
    fn the_link_in_both_bodies_carries_the_token() {
        let templates = templates();
        let mail = MailComposer::compose(
            &templates,
            &Notice::ResetPassword {
                name: "Ada".into(),
                token: SecretString::from("abc_DEF-123"),
                expires_in: Duration::from_secs(1800),
            },
            &email("ada@example.com"),
        )
        .unwrap();
        let link = "https://example.com/accounts/reset-password?token=abc_DEF-123";
        assert!(mail.text.contains(link));
        assert!(mail.html.unwrap().contains(link));
    }

    #[test]
    fn lifetimes_read_in_whole_units() {
        for (secs, text) in [
            (1800, "30 minutes"),
            (3600, "1 hour"),
            (86_400, "1 day"),
            (2 * 86_400, "2 days"),
            (36 * 3600, "36 hours"),
            (90, "2 minutes"),
            (1, "1 second"),
        ] {
            assert_eq!(duration_text(Duration::from_secs(secs)), text);
        }
    }
}
