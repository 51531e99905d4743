use std::collections::HashSet;
use std::fmt;
use std::sync::LazyLock;

use secrecy::{ExposeSecret, SecretString};

use super::{Email, Username};
use crate::error::{ConfigError, ValidationError, ValidationErrors};

const FIELD: &str = "password";

/// Django's list of 20,000 common passwords (BSD-3-Clause, see `COMMON-PASSWORDS.md`),
/// lowercased, one per line.
static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("common-passwords.txt")
        .lines()
        .filter(|l| !l.is_empty())
        .collect()
});

/// The password rules of NIST SP 800-63B and OWASP ASVS 5.0 V6.2: a length range, no
/// composition rules, no common passwords, nothing built from the account's own names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    min_length: usize,
}

impl PasswordPolicy {
    /// The smallest minimum a deployment may configure.
    pub const LOWEST_MIN_LENGTH: usize = 8;
    /// The default minimum length, in characters.
    pub const DEFAULT_MIN_LENGTH: usize = 12;
    /// The maximum length, in characters: a guard against hashing huge inputs.
    pub const MAX_LENGTH: usize = 128;

    /// A policy with a custom minimum length.
    ///
    /// # Errors
    /// [`ConfigError`] when `min_length` is below 8 or above 128.
    pub fn new(min_length: usize) -> Result<Self, ConfigError> {
        if !(Self::LOWEST_MIN_LENGTH..=Self::MAX_LENGTH).contains(&min_length) {
            return Err(ConfigError::new(
                "password_min_length",
                format!(
                    "must be between {} and {}, got {min_length}",
                    Self::LOWEST_MIN_LENGTH,
                    Self::MAX_LENGTH
                ),
            ));
        }
        Ok(Self { min_length })
    }

    /// The configured minimum length, in characters.
    pub fn min_length(&self) -> usize {
        self.min_length
    }

    /// Whether `candidate` is on the common-password list (case-insensitively).
    pub fn is_common(candidate: &str) -> bool {
        COMMON_PASSWORDS.contains(candidate.to_lowercase().as_str())
    }
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: Self::DEFAULT_MIN_LENGTH,
        }
    }
}

/// A new password that passed the [`PasswordPolicy`]. Never printed: `Debug` is redacted and
/// there is no `Display`.
///
/// Stored exactly as typed: never trimmed, case-folded or normalized.
pub struct Password(SecretString);

impl Password {
    /// Checks a candidate against `policy` and the account's own names, collecting every
    /// problem.
    ///
    /// # Errors
    /// [`ValidationErrors`] on field `password` with codes `too_short`, `too_long`,
    /// `common_password`, `contains_username` or `contains_email`.
    pub fn parse(
        candidate: SecretString,
        policy: &PasswordPolicy,
        username: Option<&Username>,
        email: Option<&Email>,
    ) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let pw = candidate.expose_secret();
        let len = pw.chars().count();
        if len == 0 {
            errors.push(ValidationError::required(FIELD));
            return Err(errors);
        }
        if len < policy.min_length {
            errors.push(ValidationError::new(
                FIELD,
                "too_short",
                format!("must be at least {} characters", policy.min_length),
            ));
        }
        if len > PasswordPolicy::MAX_LENGTH {
            errors.push(ValidationError::new(
                FIELD,
                "too_long",
                format!("must be at most {} characters", PasswordPolicy::MAX_LENGTH),
            ));
            // Longer inputs are not inspected further.
            return Err(errors);
        }
        let lower = pw.to_lowercase();
        if COMMON_PASSWORDS.contains(lower.as_str()) {
            errors.push(ValidationError::new(
                FIELD,
                "common_password",
                "is too common; choose a less predictable password",
            ));
        }
        if username.is_some_and(|u| lower.contains(u.as_str())) {
            errors.push(ValidationError::new(
                FIELD,
                "contains_username",
                "must not contain your username",
            ));
        }
        // Very short local parts ("a@example.com") would forbid ordinary letters.
        if let Some(local) = email
            .map(Email::local_part)
            .filter(|l| l.chars().count() >= 3)
            && lower.contains(local)
        {
            errors.push(ValidationError::new(
                FIELD,
                "contains_email",
                "must not contain your email address",
            ));
        }
        errors.into_result().map(|()| Self(candidate))
    }
}

impl Password {
    /// Wraps a password that must not be policy-checked: a login attempt being rehashed, or
    /// the random dummy password.
    pub(crate) fn trusted(secret: SecretString) -> Self {
        Self(secret)
    }
}

impl ExposeSecret<str> for Password {
    fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([REDACTED])")
    }
}

/// A stored password hash: a PHC string (`$argon2id$...`) or a legacy bcrypt string.
///
/// Not a secret in the cryptographic sense, but never logged: `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a stored hash string. The hasher decides whether it can use it.
    pub fn new(encoded: impl Into<String>) -> Self {
        Self(encoded.into())
    }

    /// The encoded hash, for storage.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(pw: &str) -> Result<Password, ValidationErrors> {
        let user = Username::parse("alice").unwrap();
        let email = Email::parse("wonderland@example.com").unwrap();
        Password::parse(
            SecretString::from(pw),
            &PasswordPolicy::default(),
            Some(&user),
            Some(&email),
        )
    }

    fn codes(pw: &str) -> Vec<&'static str> {
        check(pw).unwrap_err().iter().map(|e| e.code).collect()
    }

    #[test]
    fn list_is_large_and_loaded() {
        assert!(COMMON_PASSWORDS.len() >= 19_000);
        assert!(PasswordPolicy::is_common("password"));
        assert!(PasswordPolicy::is_common("PassWord"));
        assert!(!PasswordPolicy::is_common("correct horse battery staple"));
    }

    #[test]
    fn accepts_long_unusual_passwords_as_typed() {
        let pw = check("  correct Horse battery staple  ").unwrap();
        assert_eq!(pw.expose_secret(), "  correct Horse battery staple  ");
        assert!(check("пароль-длинный-очень").is_ok());
        assert!(check(&"🦀".repeat(12)).is_ok());
        assert!(check(&"x7".repeat(64)).is_ok());
    }

    #[test]
    fn every_rejection_names_its_reason() {
        assert_eq!(codes(""), ["required"]);
        assert_eq!(codes("short1!"), ["too_short"]);
        assert_eq!(codes(&"a".repeat(129)), ["too_long"]);
        assert_eq!(codes("1qaz2wsx3edc"), ["common_password"]);
        assert_eq!(codes("QAZWSXEDCRFV"), ["common_password"]);
        assert_eq!(codes("my-ALICE-password-2024"), ["contains_username"]);
        assert_eq!(codes("wonderland-forever-99"), ["contains_email"]);
        assert_eq!(
            codes("alice"),
            ["too_short", "common_password", "contains_username"]
        );
        assert!(
            check("x")
                .unwrap_err()
                .iter()
                .all(|e| e.field == "password")
        );
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        // 12 characters, 36 bytes.
        let err = check(&"й".repeat(11)).unwrap_err();
        assert!(err.iter().any(|e| e.code == "too_short"), "{err:?}");
        assert!(check("日本語のパスワードです。").is_ok());
    }

    #[test]
    fn policy_minimum_is_bounded() {
        for out_of_bounds in [7, 129] {
            let err = PasswordPolicy::new(out_of_bounds).unwrap_err();
            assert_eq!(err.setting, "password_min_length");
        }
        assert_eq!(PasswordPolicy::new(8).unwrap().min_length(), 8);
        let policy = PasswordPolicy::new(8).unwrap();
        assert!(Password::parse(SecretString::from("zebra-fox"), &policy, None, None).is_ok());
    }

    #[test]
    fn debug_is_redacted() {
        let pw = check("a very secret passphrase").unwrap();
        assert_eq!(format!("{pw:?}"), "Password([REDACTED])");
        let hash = PasswordHash::new("$argon2id$v=19$...");
        assert_eq!(format!("{hash:?}"), "PasswordHash([REDACTED])");
    }

    proptest! {
        #[test]
        fn never_panics_and_long_enough_random_text_passes(s in "[a-z]{6}[0-9]{6}[A-Z]{6}") {
            // 18 characters of mixed classes are neither common nor built from the names.
            prop_assume!(!s.to_lowercase().contains("alice") && !s.to_lowercase().contains("wonderland"));
            prop_assert!(check(&s).is_ok());
        }

        #[test]
        fn any_input_gets_an_answer(s in "\\PC{0,200}") {
            let _ = check(&s);
        }
    }
}
