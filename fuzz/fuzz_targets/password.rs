//! `Password::parse` with the default `PasswordPolicy` (or a custom minimum), with and
//! without the account's username and email.
//!
//! Checks: no panic; the result agrees with the rules exactly. Accepted means 12 (or the
//! minimum) to 128 characters, not on the common list, not containing the username or an
//! email local part of 3+ characters (case-insensitively), and the secret is kept byte for
//! byte. Each refusal code is justified, and no rule is missed. `Debug` never shows it.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use secrecy::{ExposeSecret, SecretString};
use user_core::domain::{Email, Password, PasswordPolicy, Username};

#[derive(Debug, Arbitrary)]
struct Input {
    password: String,
    username: Option<String>,
    email: Option<String>,
    /// `None`: the default policy; otherwise a custom minimum, if valid.
    min_length: Option<u8>,
}

fuzz_target!(|input: Input| {
    let policy = match input.min_length {
        None => PasswordPolicy::default(),
        Some(n) => match PasswordPolicy::new(usize::from(n)) {
            Ok(p) => p,
            Err(_) => {
                assert!(
                    !(PasswordPolicy::LOWEST_MIN_LENGTH..=PasswordPolicy::MAX_LENGTH)
                        .contains(&usize::from(n))
                );
                return;
            }
        },
    };
    let username = input
        .username
        .as_deref()
        .and_then(|u| Username::parse(u).ok());
    let email = input.email.as_deref().and_then(|e| Email::parse(e).ok());
    let pw = input.password.as_str();
    let result = Password::parse(
        SecretString::from(pw),
        &policy,
        username.as_ref(),
        email.as_ref(),
    );

    // The rules, computed independently.
    let len = pw.chars().count();
    let lower = pw.to_lowercase();
    let required = len == 0;
    let too_short = !required && len < policy.min_length();
    let too_long = len > PasswordPolicy::MAX_LENGTH;
    let inspected = !required && !too_long;
    let common = inspected && PasswordPolicy::is_common(pw);
    let has_username = inspected
        && username
            .as_ref()
            .is_some_and(|u| lower.contains(u.as_str()));
    let has_email = inspected
        && email
            .as_ref()
            .map(Email::local_part)
            .is_some_and(|l| l.chars().count() >= 3 && lower.contains(l));
    let mut expected = Vec::new();
    for (broken, code) in [
        (required, "required"),
        (too_short, "too_short"),
        (too_long, "too_long"),
        (common, "common_password"),
        (has_username, "contains_username"),
        (has_email, "contains_email"),
    ] {
        if broken {
            expected.push(code);
        }
    }

    match result {
        Ok(password) => {
            assert!(expected.is_empty(), "accepted although {expected:?}");
            assert_eq!(password.expose_secret(), pw, "not kept as typed");
            assert!((policy.min_length()..=PasswordPolicy::MAX_LENGTH).contains(&len));
            let debug = format!("{password:?}");
            assert_eq!(debug, "Password([REDACTED])");
        }
        Err(errors) => {
            let codes: Vec<&str> = errors.iter().map(|e| e.code).collect();
            assert!(errors.iter().all(|e| e.field == "password"));
            assert_eq!(codes, expected, "password of {len} characters");
        }
    }
});
