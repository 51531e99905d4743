//! [`MailSettings`]: the site name and public base URL every message refers to.

use url::Url;

use crate::ConfigError;

/// The site's name and public address, given to every template as `site_name` and
/// `base_url`, and the base of the links mailed to users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailSettings {
    site_name: String,
    base: Url,
    /// `base` without a trailing slash: `https://example.com`, `https://example.com/accounts`.
    base_url: String,
}

impl MailSettings {
    /// Checks the name (one line of text) and the URL where users reach the site: absolute,
    /// `http` or `https`, with a host, and without credentials, query or fragment. A
    /// trailing slash makes no difference (`https://example.com/accounts/` is
    /// `https://example.com/accounts`).
    ///
    /// # Errors
    /// [`ConfigError::SiteName`] or [`ConfigError::BaseUrl`].
    pub fn new(site_name: impl Into<String>, public_base_url: &str) -> Result<Self, ConfigError> {
        let site_name = site_name.into().trim().to_owned();
        if site_name.is_empty() || site_name.chars().any(char::is_control) {
            return Err(ConfigError::SiteName);
        }
        let base = Url::parse(public_base_url.trim())
            .map_err(|_| ConfigError::BaseUrl("is not an absolute URL"))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(ConfigError::BaseUrl("must start with https:// or http://"));
        }
        if base.host_str().is_none_or(str::is_empty) {
            return Err(ConfigError::BaseUrl("has no host"));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(ConfigError::BaseUrl(
                "must not carry a user name or password",
            ));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(ConfigError::BaseUrl("must not have a query or a fragment"));
        }
        let base_url = base.as_str().trim_end_matches('/').to_owned();
        Ok(Self {
            site_name,
            base,
            base_url,
        })
    }

    /// The site's name, as shown in subjects and signatures.
    pub fn site_name(&self) -> &str {
        &self.site_name
    }

    /// The public base URL, without a trailing slash.
    pub fn public_base_url(&self) -> &str {
        &self.base_url
    }

    /// The address of page `path` (below the base URL) carrying `token` in its query:
    /// `link("/verify-email", t)` is `{base}/verify-email?token={t, URL-encoded}`.
    ///
    /// The token travels in the query rather than the fragment because the pages work
    /// without JavaScript: the page that opens reads the token server-side and puts it in a
    /// one-click confirmation form, which spends it with a POST (so a mail scanner that
    /// fetches the link spends nothing). A fragment never reaches the server and would need a
    /// script. The cost, a token in the query, is contained by the site: request logs record
    /// the path without the query, the tokens are single-use and short-lived, and the
    /// confirmation page should send `Referrer-Policy: no-referrer` and load nothing from
    /// elsewhere.
    pub fn link(&self, path: &str, token: &str) -> String {
        let mut url = self.base.clone();
        let prefix = url.path().trim_end_matches('/').to_owned();
        // `set_path` percent-encodes what a path cannot hold, `?` and `#` included.
        url.set_path(&format!("{prefix}/{}", path.trim_start_matches('/')));
        url.query_pairs_mut().clear().append_pair("token", token);
        url.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_is_normalized_without_a_trailing_slash() {
        for (input, expected) in [
            ("https://example.com", "https://example.com"),
            ("https://example.com/", "https://example.com"),
            (
                "https://Example.COM/accounts/",
                "https://example.com/accounts",
            ),
            (" http://localhost:8080/a/b ", "http://localhost:8080/a/b"),
        ] {
            let settings = MailSettings::new("Acme", input).unwrap();
            assert_eq!(settings.public_base_url(), expected, "{input}");
        }
    }

    #[test]
    fn bad_base_urls_are_refused_without_echoing_them() {
        for bad in [
            "example.com",
            "/accounts",
            "ftp://example.com",
            "mailto:ada@example.com",
            "https://user:secret@example.com",
            "https://example.com/?next=1",
            "https://example.com/#top",
            "",
        ] {
            let err = MailSettings::new("Acme", bad).unwrap_err();
            assert!(matches!(err, ConfigError::BaseUrl(_)), "{bad}: {err:?}");
            assert!(!err.to_string().contains("secret"), "{err}");
        }
    }

    #[test]
    fn site_name_is_one_line() {
        assert_eq!(
            MailSettings::new("  Acme  ", "https://example.com")
                .unwrap()
                .site_name(),
            "Acme"
        );
        for bad in ["", "   ", "Acme\nBcc: x", "Ac\rme", "Ac\u{7}me"] {
            assert_eq!(
                MailSettings::new(bad, "https://example.com").unwrap_err(),
                ConfigError::SiteName
            );
        }
    }

    #[test]
    fn links_join_the_path_once_and_encode_the_token() {
        let root = MailSettings::new("Acme", "https://example.com/").unwrap();
        assert_eq!(
            root.link("/verify-email", "abc-_123"),
            "https://example.com/verify-email?token=abc-_123"
        );
        assert_eq!(
            root.link("verify-email", "a+b/c=="),
            "https://example.com/verify-email?token=a%2Bb%2Fc%3D%3D"
        );
        let below = MailSettings::new("Acme", "https://example.com/accounts/").unwrap();
        assert_eq!(
            below.link("/reset-password", "t&x=1#y"),
            "https://example.com/accounts/reset-password?token=t%26x%3D1%23y"
        );
        assert_eq!(
            below.link("/odd?path#x", "t"),
            "https://example.com/accounts/odd%3Fpath%23x?token=t"
        );
    }
}
