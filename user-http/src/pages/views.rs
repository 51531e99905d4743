//! What templates see, and rendering: every page goes through [`Web::render`], which adds the
//! common context (base path, CSRF token, flash, the signed-in person) and the cookies.

use std::collections::BTreeMap;

use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::{Value, context};
use serde::Serialize;
use user_core::domain::User;
use user_core::error::ValidationErrors;

use super::web::Web;

/// A person as templates see them.
#[derive(Debug, Serialize)]
pub(crate) struct UserView {
    id: String,
    username: String,
    email: String,
    display_name: Option<String>,
    role: &'static str,
    status: &'static str,
    email_verified: bool,
    created_at: String,
    is_admin: bool,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.to_string(),
            username: u.username.to_string(),
            email: u.email.to_string(),
            display_name: u.display_name.as_ref().map(ToString::to_string),
            role: u.role.as_str(),
            status: u.status.as_str(),
            email_verified: u.email_verified_at.is_some(),
            created_at: date(u.created_at),
            is_admin: u.is_active_admin(),
        }
    }
}

/// A date a person reads: `2026-01-02 15:04 UTC`.
pub(crate) fn date(t: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    t.to_offset(time::UtcOffset::UTC)
        .format(&f)
        .unwrap_or_default()
}

/// A time a person reads, to the second: `2026-01-02 15:04:05 UTC`.
pub(crate) fn time(t: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    t.to_offset(time::UtcOffset::UTC)
        .format(&f)
        .unwrap_or_default()
}

/// A serializable value for a template context.
pub(crate) fn v<T: Serialize + ?Sized>(value: &T) -> Value {
    Value::from(minijinja::value::Serde(value))
}

/// Field errors as templates see them: field name -> messages.
pub(crate) fn field_errors(errors: &ValidationErrors) -> BTreeMap<&'static str, Vec<String>> {
    let mut map = BTreeMap::<&'static str, Vec<String>>::new();
    for e in errors.iter() {
        map.entry(e.field).or_default().push(e.message.to_string());
    }
    map
}

impl Web {
    fn context(&self, page: Value) -> Value {
        let me = self.me.as_ref().map(|m| UserView::from(&m.user));
        context! {
            base => self.base.clone(),
            csrf_token => self.csrf.clone(),
            flash => self.flash,
            me => v(&me),
            ..page
        }
    }

    fn render_ref(&self, status: StatusCode, name: &str, page: Value) -> Response {
        match self.state.templates.render(name, self.context(page)) {
            Ok(html) => (
                status,
                self.jar.clone(),
                [(header::CACHE_CONTROL, "no-store")],
                Html(html),
            )
                .into_response(),
            Err(e) => {
                tracing::error!(template = name, error = %user_core::error::report(&e), "page failed to render");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
            }
        }
    }

    /// Renders a page with the common context and the cookies.
    pub(crate) fn render(self, status: StatusCode, name: &str, page: Value) -> Response {
        self.render_ref(status, name, page)
    }

    /// The error page: a heading and a sentence.
    pub(crate) fn render_error(
        &self,
        status: StatusCode,
        heading: &str,
        message: &str,
    ) -> Response {
        let page = context! { heading => heading, message => message, title => heading };
        self.render_ref(status, "error.html", page)
    }
}
