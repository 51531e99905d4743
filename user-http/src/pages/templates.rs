//! [`Templates`]: minijinja with the default pages embedded; an application replaces any
//! template or the stylesheet by name.

use minijinja::{Environment, Value};

/// The default templates, embedded at build time: `(name, source)`.
const DEFAULTS: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/base.html")),
    ("forms.html", include_str!("../../templates/forms.html")),
    ("login.html", include_str!("../../templates/login.html")),
    (
        "register.html",
        include_str!("../../templates/register.html"),
    ),
    ("profile.html", include_str!("../../templates/profile.html")),
    (
        "profile_edit.html",
        include_str!("../../templates/profile_edit.html"),
    ),
    (
        "password.html",
        include_str!("../../templates/password.html"),
    ),
    (
        "sessions.html",
        include_str!("../../templates/sessions.html"),
    ),
    (
        "admin_users.html",
        include_str!("../../templates/admin_users.html"),
    ),
    (
        "admin_user.html",
        include_str!("../../templates/admin_user.html"),
    ),
    (
        "admin_audit.html",
        include_str!("../../templates/admin_audit.html"),
    ),
    (
        "delete_account.html",
        include_str!("../../templates/delete_account.html"),
    ),
    (
        "confirm_delete.html",
        include_str!("../../templates/confirm_delete.html"),
    ),
    ("error.html", include_str!("../../templates/error.html")),
    (
        "forgot_password.html",
        include_str!("../../templates/forgot_password.html"),
    ),
    (
        "forgot_password_sent.html",
        include_str!("../../templates/forgot_password_sent.html"),
    ),
    (
        "reset_password.html",
        include_str!("../../templates/reset_password.html"),
    ),
    (
        "verify_email.html",
        include_str!("../../templates/verify_email.html"),
    ),
    (
        "verify_email_resend.html",
        include_str!("../../templates/verify_email_resend.html"),
    ),
    (
        "link_invalid.html",
        include_str!("../../templates/link_invalid.html"),
    ),
    (
        "api_docs.html",
        include_str!("../../templates/api_docs.html"),
    ),
    (
        "login_second_factor.html",
        include_str!("../../templates/login_second_factor.html"),
    ),
    (
        "totp_setup.html",
        include_str!("../../templates/totp_setup.html"),
    ),
    (
        "recovery_codes.html",
        include_str!("../../templates/recovery_codes.html"),
    ),
    (
        "second_factor.html",
        include_str!("../../templates/second_factor.html"),
    ),
];

const STYLESHEET: &str = include_str!("../../templates/style.css");

/// A template that does not compile, or a name that is not one of ours.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// Not one of the pages' template names.
    #[error("unknown template {0:?}; the names are those in user-http/templates/")]
    UnknownName(String),
    /// The source does not compile.
    #[error("template {name:?} does not compile")]
    Syntax {
        /// The template.
        name: String,
        /// minijinja's report, with the line.
        #[source]
        source: minijinja::Error,
    },
}

/// The page templates and the stylesheet. Auto-escaping is on for every `.html` template, so
/// user-supplied text is always escaped.
///
/// ```
/// let templates = user_http::Templates::default()
///     .with_site_name("Acme accounts")
///     .with_template("login.html", r#"{% extends "base.html" %}{% block content %}<h1>Welcome back</h1>{% endblock %}"#)
///     .unwrap()
///     .with_stylesheet("body { font-family: serif; }");
/// # let _ = templates;
/// ```
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
    stylesheet: String,
}

impl Default for Templates {
    fn default() -> Self {
        let mut env = Environment::new();
        for (name, source) in DEFAULTS {
            // The defaults are compiled by this crate's tests; a failure here is a build defect
            // that `render` reports as a 500 for that page.
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(template = name, error = %e, "default template does not compile");
            }
        }
        env.add_global("site_name", "Accounts");
        Self {
            env,
            stylesheet: STYLESHEET.to_owned(),
        }
    }
}

impl Templates {
    /// Replaces one of the templates by name (`login.html`, `base.html`, ...).
    ///
    /// # Errors
    /// [`TemplateError`] for an unknown name or a source that does not compile.
    pub fn with_template(
        mut self,
        name: &str,
        source: impl Into<String>,
    ) -> Result<Self, TemplateError> {
        let Some((known, _)) = DEFAULTS.iter().find(|(n, _)| *n == name) else {
            return Err(TemplateError::UnknownName(name.to_owned()));
        };
        self.env
            .add_template_owned(*known, source.into())
            .map_err(|source| TemplateError::Syntax {
                name: name.to_owned(),
                source,
            })?;
        Ok(self)
    }

    /// Replaces the stylesheet served at `/static/style.css`.
    #[must_use]
    pub fn with_stylesheet(mut self, css: impl Into<String>) -> Self {
        self.stylesheet = css.into();
        self
    }

    /// Sets the name shown in the header and the titles (default "Accounts").
    #[must_use]
    pub fn with_site_name(mut self, name: &str) -> Self {
        self.env.add_global("site_name", name.to_owned());
        self
    }

    pub(crate) fn stylesheet(&self) -> &str {
        &self.stylesheet
    }

    pub(crate) fn render(&self, name: &str, context: Value) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_compiles_and_unknown_names_are_refused() {
        let t = Templates::default();
        for (name, _) in DEFAULTS {
            assert!(t.env.get_template(name).is_ok(), "{name}");
        }
        assert!(matches!(
            Templates::default().with_template("nope.html", ""),
            Err(TemplateError::UnknownName(_))
        ));
        assert!(matches!(
            Templates::default().with_template("login.html", "{% if %}"),
            Err(TemplateError::Syntax { .. })
        ));
    }

    #[test]
    fn html_is_escaped() {
        let t = Templates::default();
        let html = t
            .render(
                "error.html",
                minijinja::context! { heading => "<script>alert(1)</script>", message => "x", base => "" },
            )
            .unwrap();
        assert!(html.contains("&lt;script&gt;alert(1)"), "{html}");
        assert!(!html.contains("<script>"));
    }
}
