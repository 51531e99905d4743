//! [`MailTemplates`]: minijinja with the default messages embedded; an application replaces
//! any of them by name.

use std::fs;
use std::path::{Path, PathBuf};

use minijinja::{
    AutoEscape, Environment, Output, State, UndefinedBehavior, Value, context, escape_formatter,
};
use serde::Serialize;
use user_core::domain::Email;
use user_core::ports::Mail;

use crate::MailSettings;

/// The message kinds [`MailTemplates::compose`] knows, and the values each needs beside
/// `name` (how to greet the user) and the `site_name` and `base_url` every message gets:
///
/// | kind | values |
/// | --- | --- |
/// | `verify_email` | `link` |
/// | `reset_password` | `link`, `expires_in` (text, "30 minutes") |
/// | `password_changed` | |
/// | `email_changed` | `old_email`, `new_email` (sent to both addresses) |
/// | `lockout_started` | `until` (text, "14:05 UTC") |
/// | `second_factor_changed` | `enabled`, `by_admin` (booleans) |
/// | `recovery_codes_replaced` | |
pub const KINDS: &[&str] = &[
    "verify_email",
    "reset_password",
    "password_changed",
    "email_changed",
    "lockout_started",
    "second_factor_changed",
    "recovery_codes_replaced",
];

/// Each kind has three templates: `<kind>.subject.txt`, `<kind>.txt` and `<kind>.html`; the
/// HTML ones extend `layout.html`.
const DEFAULTS: &[(&str, &str)] = &[
    ("layout.html", include_str!("../templates/layout.html")),
    (
        "verify_email.subject.txt",
        include_str!("../templates/verify_email.subject.txt"),
    ),
    (
        "verify_email.txt",
        include_str!("../templates/verify_email.txt"),
    ),
    (
        "verify_email.html",
        include_str!("../templates/verify_email.html"),
    ),
    (
        "reset_password.subject.txt",
        include_str!("../templates/reset_password.subject.txt"),
    ),
    (
        "reset_password.txt",
        include_str!("../templates/reset_password.txt"),
    ),
    (
        "reset_password.html",
        include_str!("../templates/reset_password.html"),
    ),
    (
        "password_changed.subject.txt",
        include_str!("../templates/password_changed.subject.txt"),
    ),
    (
        "password_changed.txt",
        include_str!("../templates/password_changed.txt"),
    ),
    (
        "password_changed.html",
        include_str!("../templates/password_changed.html"),
    ),
    (
        "email_changed.subject.txt",
        include_str!("../templates/email_changed.subject.txt"),
    ),
    (
        "email_changed.txt",
        include_str!("../templates/email_changed.txt"),
    ),
    (
        "email_changed.html",
        include_str!("../templates/email_changed.html"),
    ),
    (
        "lockout_started.subject.txt",
        include_str!("../templates/lockout_started.subject.txt"),
    ),
    (
        "lockout_started.txt",
        include_str!("../templates/lockout_started.txt"),
    ),
    (
        "lockout_started.html",
        include_str!("../templates/lockout_started.html"),
    ),
    (
        "second_factor_changed.subject.txt",
        include_str!("../templates/second_factor_changed.subject.txt"),
    ),
    (
        "second_factor_changed.txt",
        include_str!("../templates/second_factor_changed.txt"),
    ),
    (
        "second_factor_changed.html",
        include_str!("../templates/second_factor_changed.html"),
    ),
    (
        "recovery_codes_replaced.subject.txt",
        include_str!("../templates/recovery_codes_replaced.subject.txt"),
    ),
    (
        "recovery_codes_replaced.txt",
        include_str!("../templates/recovery_codes_replaced.txt"),
    ),
    (
        "recovery_codes_replaced.html",
        include_str!("../templates/recovery_codes_replaced.html"),
    ),
];

/// A template that cannot be replaced or rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// Not one of the template names (see [`KINDS`]; plus `layout.html`).
    #[error(
        "unknown mail template {0:?}: the names are <kind>.subject.txt, <kind>.txt, <kind>.html and layout.html"
    )]
    UnknownName(String),
    /// [`MailTemplates::compose`] was asked for a kind that is not in [`KINDS`].
    #[error("unknown mail kind {0:?}")]
    UnknownKind(String),
    /// The source does not compile.
    #[error("mail template {name:?} does not compile")]
    Syntax {
        /// The template.
        name: String,
        /// minijinja's report, with the line.
        #[source]
        source: minijinja::Error,
    },
    /// Rendering failed, for example on a value the context does not have (an error, never
    /// an empty string).
    #[error("mail template {name:?} does not render")]
    Render {
        /// The template.
        name: String,
        /// minijinja's report.
        #[source]
        source: minijinja::Error,
    },
    /// The rendered subject is empty or more than one line.
    #[error("the subject of mail kind {0:?} must be one line of text")]
    Subject(String),
    /// A file of an override folder could not be read.
    #[error("mail template file {path:?} cannot be read")]
    Read {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Renders a message kind into a [`Mail`]: a one-line subject, a plain-text body and an HTML
/// body, from templates embedded in this crate unless the application replaced them.
///
/// HTML is auto-escaped, plain text and subjects are not. A value a template uses but the
/// context lacks is an error ([`UndefinedBehavior::Strict`]), so a message never goes out with
/// a hole where the link should be. An HTML template that renders to nothing but white space
/// drops the HTML part: the mail is then plain text only.
///
/// ```
/// use user_core::domain::Email;
/// use user_mail::{MailSettings, MailTemplates};
///
/// let settings = MailSettings::new("Acme", "https://accounts.example.com").unwrap();
/// let templates = MailTemplates::new(settings)
///     .with_template("password_changed.subject.txt", "Acme: new password")
///     .unwrap();
/// let mail = templates
///     .compose(
///         "password_changed",
///         Email::parse("ada@example.com").unwrap(),
///         serde_json::json!({ "name": "Ada" }),
///     )
///     .unwrap();
/// assert_eq!(mail.subject, "Acme: new password");
/// assert!(mail.text.contains("https://accounts.example.com"));
/// ```
#[derive(Debug)]
pub struct MailTemplates {
    env: Environment<'static>,
    settings: MailSettings,
}

impl MailTemplates {
    /// The default templates, with `settings` in every context.
    pub fn new(settings: MailSettings) -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_formatter(html_formatter);
        for (name, source) in DEFAULTS {
            // The defaults are compiled by this crate's tests; a failure here is a build
            // defect that `compose` reports for that kind.
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(template = name, error = %e, "default mail template does not compile");
            }
        }
        Self { env, settings }
    }

    /// Replaces one template by name: `verify_email.subject.txt`, `verify_email.txt`,
    /// `verify_email.html`, ..., or `layout.html`.
    ///
    /// # Errors
    /// [`TemplateError::UnknownName`] or [`TemplateError::Syntax`].
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

    /// Replaces the templates found in `dir`, by file name (`reset_password.txt`, ...);
    /// the others keep their defaults. Every `.txt` and `.html` file there must be one of
    /// the names, so a misspelt override is an error rather than silently unused; other
    /// files and folders are left alone.
    ///
    /// # Errors
    /// [`TemplateError::Read`], [`TemplateError::UnknownName`] or [`TemplateError::Syntax`].
    pub fn with_dir(mut self, dir: impl AsRef<Path>) -> Result<Self, TemplateError> {
        let dir = dir.as_ref();
        let read_error = |path: &Path| {
            let path = path.to_owned();
            move |source| TemplateError::Read { path, source }
        };
        let mut files = Vec::new();
        for entry in fs::read_dir(dir).map_err(read_error(dir))? {
            let path = entry.map_err(read_error(dir))?.path();
            let is_template = path
                .extension()
                .is_some_and(|ext| ext == "txt" || ext == "html");
            if path.is_file() && is_template {
                files.push(path);
            }
        }
        files.sort();
        for path in files {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let source = fs::read_to_string(&path).map_err(read_error(&path))?;
            self = self.with_template(&name, source)?;
        }
        Ok(self)
    }

    /// The site name and base URL given to every template.
    pub fn settings(&self) -> &MailSettings {
        &self.settings
    }

    /// Renders `kind` for `to` with `context` (a map: a struct, `serde_json::json!({..})`,
    /// `minijinja::context!{..}`) plus `site_name` and `base_url`, which the context cannot
    /// override. The mail gets a new id.
    ///
    /// # Errors
    /// [`TemplateError::UnknownKind`], [`TemplateError::Render`] (a missing value included),
    /// [`TemplateError::Subject`] for a subject that is empty or has a line break.
    pub fn compose(
        &self,
        kind: &str,
        to: Email,
        context: impl Serialize,
    ) -> Result<Mail, TemplateError> {
        if !KINDS.contains(&kind) {
            return Err(TemplateError::UnknownKind(kind.to_owned()));
        }
        let site = context! {
            site_name => self.settings.site_name(),
            base_url => self.settings.public_base_url(),
        };
        // The last map wins (whatever the example in minijinja's docs suggests).
        let context =
            minijinja::value::merge_maps([Value::from(minijinja::value::Serde(&context)), site]);
        let subject = self.render(&format!("{kind}.subject.txt"), &context)?;
        let subject = subject.trim();
        if subject.is_empty() || subject.chars().any(char::is_control) {
            return Err(TemplateError::Subject(kind.to_owned()));
        }
        let text = self.render(&format!("{kind}.txt"), &context)?;
        let html = self.render(&format!("{kind}.html"), &context)?;
        let html = (!html.trim().is_empty()).then_some(html);
        Ok(Mail::new(to, subject, text, html))
    }

    fn render(&self, name: &str, context: &Value) -> Result<String, TemplateError> {
        let error = |source| TemplateError::Render {
            name: name.to_owned(),
            source,
        };
        self.env
            .get_template(name)
            .map_err(error)?
            .render(context)
            .map_err(error)
    }
}

/// minijinja's formatter, except that HTML escaping leaves `/` alone: the default writes
/// it as `&#x2f;`, which turns every link into `https:&#x2f;&#x2f;...`, valid HTML that mail
/// filters and readers of the source take for obfuscation. `&`, `<`, `>`, `"` and `'` are
/// enough for text and quoted attributes.
fn html_formatter(
    out: &mut Output<'_>,
    state: &mut State<'_, '_>,
    value: &Value,
) -> Result<(), minijinja::Error> {
    match (state.auto_escape(), value.as_str()) {
        (AutoEscape::Html, Some(text)) if !value.is_safe() => {
            let mut escaped = String::with_capacity(text.len());
            for c in text.chars() {
                match c {
                    '&' => escaped.push_str("&amp;"),
                    '<' => escaped.push_str("&lt;"),
                    '>' => escaped.push_str("&gt;"),
                    '"' => escaped.push_str("&quot;"),
                    '\'' => escaped.push_str("&#x27;"),
                    other => escaped.push(other),
                }
            }
            Ok(out.write_str(&escaped)?)
        }
        _ => escape_formatter(out, state, value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_three_templates_and_every_default_compiles() {
        let templates = MailTemplates::new(MailSettings::new("Acme", "https://a.example").unwrap());
        for (name, _) in DEFAULTS {
            assert!(templates.env.get_template(name).is_ok(), "{name}");
        }
        for kind in KINDS {
            for suffix in ["subject.txt", "txt", "html"] {
                let name = format!("{kind}.{suffix}");
                assert!(DEFAULTS.iter().any(|(n, _)| *n == name), "{name}");
            }
        }
        assert_eq!(DEFAULTS.len(), KINDS.len() * 3 + 1);
    }
}
