//! The one reader of `Authorization: Bearer <token>` values, for every adapter.

/// The token of an `Authorization` value `Bearer <token>` (RFC 6750): the scheme is
/// case-insensitive, the token is trimmed and must not be empty. Anything else, `Basic ...`
/// included, is `None`, which adapters answer as unauthenticated.
///
/// ```
/// use user_core::auth::bearer_token;
/// assert_eq!(bearer_token("Bearer abc.def"), Some("abc.def"));
/// assert_eq!(bearer_token("Basic abc"), None);
/// ```
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::bearer_token;
    use proptest::prelude::*;

    #[test]
    fn bearer_tokens_are_read_strictly() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("BEARER abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearerabc"), None);
        assert_eq!(bearer_token(""), None);
    }

    proptest! {
        #[test]
        fn a_token_without_spaces_round_trips(token in "[A-Za-z0-9._~+/=-]{1,200}") {
            let value = format!("Bearer {token}");
            prop_assert_eq!(bearer_token(&value), Some(token.as_str()));
        }

        #[test]
        fn other_schemes_are_refused(scheme in "[A-Za-z]{1,10}", token in "[a-z]{1,20}") {
            prop_assume!(!scheme.eq_ignore_ascii_case("bearer"));
            let value = format!("{scheme} {token}");
            prop_assert_eq!(bearer_token(&value), None);
        }
    }
}
