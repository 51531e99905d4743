//! Admin list queries: `UserQuery::parse` (search, page size, opaque page token) and the
//! cursor round trip through `UserPage::next_page_token`.
//!
//! Checks: no panic; an accepted query has a page size of 1-100 (0 or none meaning 20), a
//! trimmed, lowercased, non-empty search of at most 254 characters, and a cursor that is a
//! valid username; every refusal names `search`, `page_size` or `page_token` for a reason
//! that holds; a token the service issues parses back to the same cursor.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use user_core::domain::{UserPage, UserQuery, Username};

#[derive(Debug, Arbitrary)]
struct Input {
    search: Option<String>,
    /// The search is repeated this many times more, to reach the length limit.
    repeat: u8,
    limit: Option<u32>,
    page_token: Option<String>,
    /// A username whose next-page token must round-trip.
    next: String,
}

fuzz_target!(|input: Input| {
    let mut input = input;
    input.search = input
        .search
        .map(|s| s.repeat(usize::from(input.repeat) + 1));
    let result = UserQuery::parse(
        input.search.as_deref(),
        input.limit,
        input.page_token.as_deref(),
    );
    let search = input
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    // The limit holds for the lowercase text that is searched.
    let search_too_long =
        search.is_some_and(|s| s.to_lowercase().chars().count() > UserQuery::MAX_SEARCH_LEN);
    let limit_bad = input.limit.is_some_and(|n| n > UserQuery::MAX_LIMIT);
    match result {
        Ok(q) => {
            assert!((1..=UserQuery::MAX_LIMIT).contains(&q.limit));
            match input.limit {
                None | Some(0) => assert_eq!(q.limit, UserQuery::DEFAULT_LIMIT),
                Some(n) => assert_eq!(q.limit, n),
            }
            assert_eq!(q.search, search.map(str::to_lowercase));
            if let Some(s) = &q.search {
                assert!(!s.is_empty());
                assert_eq!(s.trim(), s, "search not trimmed");
                assert!(
                    s.chars().count() <= UserQuery::MAX_SEARCH_LEN,
                    "accepted search is {} characters (input {:?} chars)",
                    s.chars().count(),
                    search.map(|s| s.chars().count())
                );
            }
            assert!(q.role.is_none() && q.status.is_none());
            match (
                &q.after,
                input.page_token.as_deref().filter(|t| !t.is_empty()),
            ) {
                (None, None) => {}
                (Some(after), Some(_)) => {
                    assert_eq!(Username::parse(after.as_str()).as_ref(), Ok(after));
                    // Re-issuing the cursor gives a token that parses to the same cursor.
                    let token = UserPage {
                        users: vec![],
                        next: Some(after.clone()),
                    }
                    .next_page_token()
                    .expect("a next page has a token");
                    let again = UserQuery::parse(None, None, Some(&token)).expect("own token");
                    assert_eq!(again.after.as_ref(), Some(after));
                }
                (after, token) => panic!("cursor {after:?} from token {token:?}"),
            }
        }
        Err(errors) => {
            let mut fields = Vec::new();
            for e in errors.iter() {
                fields.push(e.field);
                match e.field {
                    "search" => assert!(search_too_long, "search refused: {:?}", input.search),
                    "page_size" => assert!(limit_bad, "page size refused: {:?}", input.limit),
                    "page_token" => assert!(input.page_token.is_some()),
                    other => panic!("unexpected field {other}"),
                }
            }
            assert_eq!(
                fields.contains(&"search"),
                search_too_long,
                "search check missed"
            );
            assert_eq!(
                fields.contains(&"page_size"),
                limit_bad,
                "page size check missed"
            );
        }
    }

    // Every valid username makes a token that comes back as the same cursor.
    if let Ok(name) = Username::parse(&input.next) {
        let token = UserPage {
            users: vec![],
            next: Some(name.clone()),
        }
        .next_page_token()
        .expect("a next page has a token");
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "token is not URL-safe: {token:?}"
        );
        let q = UserQuery::parse(None, None, Some(&token)).expect("own token refused");
        assert_eq!(q.after, Some(name));
    }
});
