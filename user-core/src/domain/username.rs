use std::fmt;

use crate::error::ValidationError;

const FIELD: &str = "username";

/// A username: 3-32 ASCII letters, digits, `_`, `.` or `-`, starting with a letter or a digit.
///
/// Stored and compared in lowercase, so `Alice` and `alice` are the same user. Surrounding
/// white space is ignored.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Username(String);

impl Username {
    /// Shortest accepted username, in characters.
    pub const MIN_LEN: usize = 3;
    /// Longest accepted username, in characters.
    pub const MAX_LEN: usize = 32;

    /// Parses and normalizes a username.
    ///
    /// # Errors
    /// A [`ValidationError`] on field `username` naming the first rule broken.
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        let s = input.trim();
        let len = s.chars().count();
        if len == 0 {
            return Err(ValidationError::required(FIELD));
        }
        if len < Self::MIN_LEN {
            return Err(ValidationError::new(
                FIELD,
                "too_short",
                format!("must be at least {} characters", Self::MIN_LEN),
            ));
        }
        if len > Self::MAX_LEN {
            return Err(ValidationError::new(
                FIELD,
                "too_long",
                format!("must be at most {} characters", Self::MAX_LEN),
            ));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(ValidationError::new(
                FIELD,
                "invalid_characters",
                "may contain only letters a-z, digits, '_', '.' and '-'",
            ));
        }
        if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(ValidationError::new(
                FIELD,
                "invalid_start",
                "must start with a letter or a digit",
            ));
        }
        Ok(Self(s.to_ascii_lowercase()))
    }

    /// The normalized (lowercase) username.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Username {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_username_shows_as_stored() {
        let name = Username::parse("Ada_Lovelace").unwrap();
        assert_eq!(name.as_str(), "ada_lovelace");
        assert_eq!(name.as_ref(), "ada_lovelace");
        assert_eq!(name.to_string(), "ada_lovelace");
    }

    #[test]
    fn accepts_and_lowercases() {
        assert_eq!(
            Username::parse("Alice_1.x-y").unwrap().as_str(),
            "alice_1.x-y"
        );
        assert_eq!(Username::parse("  bob  ").unwrap().as_str(), "bob");
        assert_eq!(Username::parse("9lives").unwrap().as_str(), "9lives");
    }

    #[test]
    fn rejects_with_a_named_reason() {
        let code = |s: &str| Username::parse(s).unwrap_err().code;
        assert_eq!(code(""), "required");
        assert_eq!(code("  "), "required");
        assert_eq!(code("ab"), "too_short");
        assert_eq!(code(&"a".repeat(33)), "too_long");
        assert_eq!(code("al ice"), "invalid_characters");
        assert_eq!(code("alïce"), "invalid_characters");
        assert_eq!(code("<script>"), "invalid_characters");
        assert_eq!(code("_alice"), "invalid_start");
        assert_eq!(code(".alice"), "invalid_start");
        assert_eq!(Username::parse("x").unwrap_err().field, "username");
    }

    #[test]
    fn length_limits_are_inclusive() {
        assert!(Username::parse("abc").is_ok());
        assert!(Username::parse(&"a".repeat(32)).is_ok());
    }

    proptest! {
        #[test]
        fn valid_names_round_trip_lowercased(s in "[A-Za-z0-9][A-Za-z0-9_.-]{2,31}") {
            let u = Username::parse(&s).unwrap();
            prop_assert_eq!(u.as_str(), s.to_ascii_lowercase());
            prop_assert_eq!(Username::parse(u.as_str()).unwrap(), u);
        }

        #[test]
        fn never_panics_and_output_obeys_rules(s in "\\PC{0,40}") {
            if let Ok(u) = Username::parse(&s) {
                let n = u.as_str();
                prop_assert!((3..=32).contains(&n.len()));
                prop_assert!(n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c)));
            }
        }

        #[test]
        fn case_variants_are_equal(s in "[a-z0-9][a-z0-9_.-]{2,31}") {
            prop_assert_eq!(Username::parse(&s).unwrap(), Username::parse(&s.to_ascii_uppercase()).unwrap());
        }
    }
}
