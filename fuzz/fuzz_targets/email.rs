//! `Email::parse` on arbitrary UTF-8.
//!
//! Checks: no panic; an accepted address is the trimmed input lowercased, at most 254 bytes,
//! with an `@`, a non-empty local part, a dotted domain and no control character; it
//! re-parses to itself (idempotent), `Display` and `AsRef` are the stored text, and ASCII
//! upper case input is the same address. A refusal names the `email` field with a
//! documented code.
#![no_main]

use libfuzzer_sys::fuzz_target;
use user_core::domain::Email;

fuzz_target!(|input: &str| {
    match Email::parse(input) {
        Ok(email) => {
            let s = email.as_str();
            assert_eq!(s, input.trim().to_lowercase());
            assert!(s.len() <= Email::MAX_LEN, "{} bytes: {s:?}", s.len());
            let (local, domain) = s.rsplit_once('@').expect("accepted without '@'");
            assert_eq!(email.local_part(), local);
            assert!(!local.is_empty(), "empty local part: {s:?}");
            assert!(domain.contains('.'), "single-label domain: {s:?}");
            assert!(
                !s.chars().any(char::is_control),
                "control character in {s:?}"
            );
            assert_eq!(email.to_string(), s, "Display differs from as_str");
            assert_eq!(email.as_ref() as &str, s);
            assert_eq!(
                Email::parse(s).map_err(|e| e.code),
                Ok(email.clone()),
                "not idempotent: {input:?} -> {s:?}"
            );
            assert_eq!(
                Email::parse(&input.to_ascii_uppercase()).map_err(|e| e.code),
                Ok(email.clone()),
                "upper case is another address: {input:?}"
            );
        }
        Err(e) => {
            assert_eq!(e.field, "email");
            assert!(
                ["required", "too_long", "invalid"].contains(&e.code),
                "undocumented code {:?}",
                e.code
            );
        }
    }
});
