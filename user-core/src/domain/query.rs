use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{Role, User, UserStatus, Username};
use crate::error::{ValidationError, ValidationErrors};

/// A page request for the admin user list: keyset pagination in username order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserQuery {
    /// Text to look for, lowercase (the stores lowercase it again). How it matches depends on
    /// its length in characters (see [`UserQuery::SUBSTRING_MIN_CHARS`]):
    ///
    /// - 3 or more: anywhere in the username, the email or the display name, the display
    ///   name compared in lowercase (as Rust lowercases; on PostgreSQL as the database's
    ///   locale does, which differs only for a few letters such as a final `Σ`, and folds
    ///   ASCII only under the `C` locale);
    /// - 1 or 2: the start of the username (one range of the username order, however many
    ///   users; the start of an email is a substring from 3 characters on).
    ///
    /// Every character stands for itself: `%`, `_`, `\`, quotes, `*` and words such as `OR`
    /// or `NEAR` are no wildcards or operators of any query language. A text with a control
    /// character matches nobody (no username, email or display name has one).
    pub search: Option<String>,
    /// Only users with this role.
    pub role: Option<Role>,
    /// Only users with this status.
    pub status: Option<UserStatus>,
    /// Start after this username (exclusive).
    pub after: Option<Username>,
    /// Page size, 1 to [`UserQuery::MAX_LIMIT`].
    pub limit: u32,
}

impl Default for UserQuery {
    fn default() -> Self {
        Self {
            search: None,
            role: None,
            status: None,
            after: None,
            limit: Self::DEFAULT_LIMIT,
        }
    }
}

impl UserQuery {
    /// Page size when none is asked for.
    pub const DEFAULT_LIMIT: u32 = 20;
    /// Largest page size.
    pub const MAX_LIMIT: u32 = 100;
    /// Longest search text, in characters.
    pub const MAX_SEARCH_LEN: usize = 254;
    /// The shortest search text that matches anywhere in a username, email or display name:
    /// the stores find those with trigram indexes (SQLite's FTS5 `trigram` tokenizer,
    /// PostgreSQL's `pg_trgm`), which cannot serve fewer than three characters. A shorter
    /// text matches the start of the username, which the username index serves in order.
    pub const SUBSTRING_MIN_CHARS: usize = 3;

    /// The rule a page size breaks: `must be between 1 and 100`, the message of code
    /// `out_of_range`, whatever the wire calls the field (`page_size`, `limit`).
    pub fn limit_rule() -> String {
        format!("must be between 1 and {}", Self::MAX_LIMIT)
    }

    /// Builds a query from wire values: an optional search text, an optional page size (0 or
    /// absent means the default) and an optional opaque page token.
    ///
    /// # Errors
    /// [`ValidationErrors`] for a search longer than 254 characters, a page size above 100 or
    /// a page token this service did not issue.
    pub fn parse(
        search: Option<&str>,
        limit: Option<u32>,
        page_token: Option<&str>,
    ) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        // The limit holds for the lowercase text that is searched: lowercasing can add
        // characters (`İ` becomes two).
        let search = search
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_lowercase);
        if search
            .as_ref()
            .is_some_and(|s| s.chars().count() > Self::MAX_SEARCH_LEN)
        {
            errors.push(ValidationError::new(
                "search",
                "too_long",
                format!("must be at most {} characters", Self::MAX_SEARCH_LEN),
            ));
        }
        let limit = match limit {
            None | Some(0) => Self::DEFAULT_LIMIT,
            Some(n) if n <= Self::MAX_LIMIT => n,
            Some(_) => {
                errors.push(ValidationError::new(
                    "page_size",
                    "out_of_range",
                    Self::limit_rule(),
                ));
                Self::DEFAULT_LIMIT
            }
        };
        let after = match page_token.filter(|t| !t.is_empty()) {
            None => None,
            Some(token) => errors.collect(decode_cursor(token)),
        };
        errors.into_result()?;
        Ok(Self {
            search,
            after,
            limit,
            ..Self::default()
        })
    }
}

fn decode_cursor(token: &str) -> Result<Username, ValidationError> {
    let invalid = || ValidationError::new("page_token", "invalid", "is not a valid page token");
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    Username::parse(&text).map_err(|_| invalid())
}

/// One page of users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPage {
    /// The users, in username order.
    pub users: Vec<User>,
    /// Where the next page starts (the last username of this page) when more users follow;
    /// `None` on the last page, a full one included.
    pub next: Option<Username>,
}

impl UserPage {
    /// The opaque token that asks for the next page, if any.
    pub fn next_page_token(&self) -> Option<String> {
        self.next
            .as_ref()
            .map(|u| URL_SAFE_NO_PAD.encode(u.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip() {
        let page = UserPage {
            users: vec![],
            next: Some(Username::parse("bob").unwrap()),
        };
        let token = page.next_page_token().unwrap();
        let q = UserQuery::parse(None, None, Some(&token)).unwrap();
        assert_eq!(q.after.unwrap().as_str(), "bob");
        assert_eq!(q.limit, UserQuery::DEFAULT_LIMIT);
    }

    #[test]
    fn bad_values_are_all_reported() {
        let err = UserQuery::parse(Some(&"x".repeat(300)), Some(101), Some("%%%")).unwrap_err();
        let fields: Vec<_> = err.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["search", "page_size", "page_token"]);
        let size = err.field("page_size").next().unwrap();
        assert_eq!(size.message, "must be between 1 and 100");
        assert_eq!(size.message, UserQuery::limit_rule());
    }

    #[test]
    fn search_is_trimmed_and_lowercased() {
        let q = UserQuery::parse(Some("  Al "), Some(5), None).unwrap();
        assert_eq!(q.search.as_deref(), Some("al"));
        assert_eq!(q.limit, 5);
        assert_eq!(
            UserQuery::parse(Some("  "), None, None).unwrap().search,
            None
        );
    }

    // Found by fuzz/ (fuzz/regressions/page_token): 254 `İ` pass a check on the typed text but
    // lowercase to 508 characters.
    #[test]
    fn the_limit_holds_for_the_lowercase_search() {
        let max = UserQuery::MAX_SEARCH_LEN;
        let err = UserQuery::parse(Some(&"\u{130}".repeat(max)), None, None).unwrap_err();
        assert_eq!(
            err.iter().next().map(|e| (e.field, e.code)),
            Some(("search", "too_long"))
        );
        let q = UserQuery::parse(Some(&"\u{130}".repeat(max / 2)), None, None).unwrap();
        assert_eq!(q.search.map(|s| s.chars().count()), Some(max));
    }
}
