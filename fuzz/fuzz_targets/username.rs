//! `Username::parse` on arbitrary UTF-8.
//!
//! Checks: no panic; an accepted name is the trimmed input in ASCII lowercase, 3-32 allowed
//! characters starting with a letter or digit; it re-parses to itself (idempotent), its
//! `Display` and `AsRef` are the stored text, and case does not matter. A refusal names the
//! `username` field and one of the documented codes, and is right to refuse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use user_core::domain::Username;

const CODES: [&str; 5] = [
    "required",
    "too_short",
    "too_long",
    "invalid_characters",
    "invalid_start",
];

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

fuzz_target!(|input: &str| {
    match Username::parse(input) {
        Ok(name) => {
            let s = name.as_str();
            assert_eq!(s, input.trim().to_ascii_lowercase());
            assert!(
                (Username::MIN_LEN..=Username::MAX_LEN).contains(&s.chars().count()),
                "length {} out of range: {s:?}",
                s.chars().count()
            );
            assert!(s.chars().all(allowed), "forbidden character in {s:?}");
            assert!(
                !s.chars().any(|c| c.is_ascii_uppercase()),
                "not lowercase: {s:?}"
            );
            assert!(s.starts_with(|c: char| c.is_ascii_alphanumeric()));
            assert_eq!(name.to_string(), s, "Display differs from as_str");
            assert_eq!(name.as_ref() as &str, s);
            assert_eq!(Username::parse(s).as_ref(), Ok(&name), "not idempotent");
            assert_eq!(
                Username::parse(&input.to_ascii_uppercase()).as_ref(),
                Ok(&name),
                "case changes the user"
            );
        }
        Err(e) => {
            assert_eq!(e.field, "username");
            assert!(CODES.contains(&e.code), "undocumented code {:?}", e.code);
            let s = input.trim();
            let n = s.chars().count();
            // A refusal must be justified by one of the rules.
            assert!(
                !(Username::MIN_LEN..=Username::MAX_LEN).contains(&n)
                    || !s.chars().all(allowed)
                    || !s.starts_with(|c: char| c.is_ascii_alphanumeric()),
                "refused a valid name {s:?} with {:?}",
                e.code
            );
        }
    }
});
