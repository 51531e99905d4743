//! [`PageError`]: why a page handler stopped, and the HTML pages column of the error table
//! in ARCHITECTURE.md, in one place.
//!
//! A handler returns `Result<Response, PageError>` and uses `?` on core errors. A
//! `PageError` becomes a bare response that carries it; [`render_error_pages`], the layer of
//! the page routes, renders it with the request's [`Web`] (base path, signed-in person,
//! cookies), which the extractor left in the request's [`ErrorPageSlot`].

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use user_core::error::{AuthError, ErrorKind, ServiceError, UserError, ValidationErrors};

use super::web::Web;

/// Why a page handler stopped without its page.
#[derive(Debug, Clone)]
pub(crate) enum PageError {
    /// Not signed in (or the session ended): 303 to the sign-in page, which comes back here.
    SignIn,
    /// A posted form's CSRF token does not match: 403.
    FormExpired,
    /// The standard error page for a status (400, 403, 404, 413, 500, ...).
    Status(StatusCode),
    /// An error page with its own sentence.
    Page {
        status: StatusCode,
        heading: &'static str,
        message: Cow<'static, str>,
        /// Sent as `Retry-After` (throttled, overloaded).
        retry_after: Option<Duration>,
    },
}

impl PageError {
    /// The page for any core error, by the table. Server faults are logged here, once.
    fn of(e: &dyn ServiceError) -> Self {
        let kind = e.kind();
        if kind.is_server_fault() {
            log_server_error(e);
        }
        let status = status_of(kind);
        match kind {
            ErrorKind::Unauthenticated => Self::SignIn,
            // The standard pages, also shown for unknown addresses and unreadable forms.
            ErrorKind::Forbidden | ErrorKind::NotFound | ErrorKind::Internal => {
                Self::Status(status)
            }
            // Forms show invalid and taken fields beside them; a handler without a form, or
            // a refusal a form does not show, lands here with core's message.
            _ => Self::Page {
                status,
                heading: heading(kind),
                message: sentence(&e.message()).into(),
                retry_after: kind.retry_after(),
            },
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::SignIn => StatusCode::SEE_OTHER,
            Self::FormExpired => StatusCode::FORBIDDEN,
            Self::Status(status) | Self::Page { status, .. } => *status,
        }
    }

    /// The page, rendered with the request's context.
    fn render(&self, web: &Web) -> Response {
        match self {
            Self::SignIn => web.sign_in_redirect(),
            Self::FormExpired => web.render_error(
                StatusCode::FORBIDDEN,
                "This form has expired",
                "Go back, reload the page and try again.",
            ),
            Self::Status(status) => {
                let (heading, message) = standard_page(*status);
                web.render_error(*status, heading, message)
            }
            Self::Page {
                status,
                heading,
                message,
                retry_after,
            } => with_retry_after(web.render_error(*status, heading, message), *retry_after),
        }
    }
}

/// What the page for a status says: a heading and a sentence.
fn standard_page(status: StatusCode) -> (&'static str, &'static str) {
    match status {
        StatusCode::FORBIDDEN => (
            "Not allowed",
            "You do not have permission to see this page.",
        ),
        StatusCode::NOT_FOUND => ("Page not found", "There is nothing at this address."),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "Too much data",
            "The form was too large. Shorten what you typed and try again.",
        ),
        StatusCode::BAD_REQUEST => (
            "Bad request",
            "The form could not be read. Reload the page and try again.",
        ),
        _ => (
            "Something went wrong",
            "An internal error occurred. Try again later.",
        ),
    }
}

/// The HTML pages column of the error table in ARCHITECTURE.md: the status of each kind of
/// core error, on its page or on the form shown again.
pub(crate) fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidInput => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::InvalidCredentials => StatusCode::UNAUTHORIZED,
        ErrorKind::Unauthenticated => StatusCode::SEE_OTHER,
        ErrorKind::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Overloaded | ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict(_) | ErrorKind::LastAdmin | ErrorKind::FailedPrecondition => {
            StatusCode::CONFLICT
        }
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The heading of the page of a kind shown with core's message.
fn heading(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Throttled { .. } => "Too many attempts",
        ErrorKind::Overloaded | ErrorKind::Unavailable => "Busy",
        ErrorKind::Conflict(_) => "Already taken",
        ErrorKind::LastAdmin => "Not allowed",
        _ => "Not accepted",
    }
}

/// Core's safe message as a sentence on a page: capitalised, with a full stop
/// (`too many attempts, try again in 2 minutes` becomes
/// `Too many attempts, try again in 2 minutes.`).
pub(crate) fn sentence(message: &str) -> String {
    let mut chars = message.chars();
    let mut out: String = chars
        .next()
        .map(|first| first.to_uppercase().collect())
        .unwrap_or_default();
    out.push_str(chars.as_str());
    if !out.is_empty() && !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// What a form shows above its fields when the service refused it as a whole (throttled,
/// busy, wrong credentials, last admin): the status of the table, core's message, and how
/// long to wait when the refusal says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
    pub(crate) retry_after: Option<Duration>,
}

impl Refusal {
    /// The form's page with the refusal's `Retry-After`, if any.
    pub(crate) fn apply(&self, response: Response) -> Response {
        with_retry_after(response, self.retry_after)
    }
}

pub(crate) fn refused_form(e: &dyn ServiceError) -> Refusal {
    let kind = e.kind();
    Refusal {
        status: status_of(kind),
        message: sentence(&e.message()),
        retry_after: kind.retry_after(),
    }
}

/// Adds `Retry-After` (whole seconds, at least 1) to a 429 or 503 page that knows the wait,
/// as the JSON API does.
fn with_retry_after(mut response: Response, wait: Option<Duration>) -> Response {
    if let Some(wait) = wait {
        let seconds = wait.as_secs().max(1);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

impl From<AuthError> for PageError {
    fn from(e: AuthError) -> Self {
        Self::of(&e)
    }
}

impl From<UserError> for PageError {
    fn from(e: UserError) -> Self {
        Self::of(&e)
    }
}

impl From<ValidationErrors> for PageError {
    fn from(e: ValidationErrors) -> Self {
        Self::of(&e)
    }
}

impl IntoResponse for PageError {
    /// A bare response with the status, carrying the error for [`render_error_pages`].
    fn into_response(self) -> Response {
        let mut response = self.status().into_response();
        response.extensions_mut().insert(self);
        response
    }
}

/// Where the [`Web`] extractor leaves the request's context, for an error page.
#[derive(Clone, Default)]
pub(crate) struct ErrorPageSlot(Arc<OnceLock<Web>>);

impl ErrorPageSlot {
    /// Keeps the first context of the request.
    pub(super) fn fill(&self, web: &Web) {
        let _ = self.0.set(web.clone());
    }
}

/// The layer of the page routes: renders a handler's [`PageError`] as its page.
pub(crate) async fn render_error_pages(mut request: Request, next: Next) -> Response {
    let slot = ErrorPageSlot::default();
    request.extensions_mut().insert(slot.clone());
    let mut response = next.run(request).await;
    let Some(error) = response.extensions_mut().remove::<PageError>() else {
        return response;
    };
    match slot.0.get() {
        Some(web) => error.render(web),
        // Every page handler takes `Web`; were one not to, the status still holds.
        None => (error.status(), standard_page(error.status()).1).into_response(),
    }
}

/// Logs the cause of a server fault, once.
pub(crate) fn log_server_error(e: &dyn std::error::Error) {
    tracing::error!(error = %user_core::error::report(e), "page request failed");
}

/// The answer to a form the service refused for what was typed: the status and the
/// problems to show beside their fields (422 for invalid input, 409 for a taken field), or
/// the error page for anything else.
pub(crate) fn refused_fields<E>(e: E) -> Result<(StatusCode, ValidationErrors), PageError>
where
    E: ServiceError + Into<PageError>,
{
    match e.kind() {
        kind @ (ErrorKind::InvalidInput | ErrorKind::Conflict(_)) => {
            Ok((status_of(kind), e.fields()))
        }
        _ => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use user_core::error::UniqueField;

    #[test]
    fn core_errors_get_the_status_of_the_table() {
        let cases: Vec<(PageError, StatusCode)> = vec![
            (AuthError::Unauthenticated.into(), StatusCode::SEE_OTHER),
            (
                AuthError::Overloaded.into(),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                UserError::Overloaded.into(),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                UserError::Unavailable("down".into()).into(),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                AuthError::Internal("boom".into()).into(),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (UserError::Forbidden.into(), StatusCode::FORBIDDEN),
            (UserError::NotFound.into(), StatusCode::NOT_FOUND),
            (
                UserError::InvalidCredentials.into(),
                StatusCode::UNAUTHORIZED,
            ),
            (UserError::LastAdmin.into(), StatusCode::CONFLICT),
            (
                UserError::Conflict(UniqueField::Email).into(),
                StatusCode::CONFLICT,
            ),
            (
                UserError::Throttled {
                    retry_after: Duration::from_secs(61),
                }
                .into(),
                StatusCode::TOO_MANY_REQUESTS,
            ),
            (
                ValidationErrors::new().into(),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
        ];
        for (error, status) in cases {
            assert_eq!(error.status(), status, "{error:?}");
        }
    }

    #[test]
    fn pages_say_when_to_retry_and_never_show_a_cause() {
        let PageError::Page { message, .. } = PageError::from(UserError::Throttled {
            retry_after: Duration::from_secs(61),
        }) else {
            panic!("a page of its own");
        };
        assert_eq!(message, "Too many attempts, try again in 2 minutes.");
        let internal = PageError::from(UserError::Internal("db password hunter2".into()));
        assert!(!format!("{internal:?}").contains("hunter2"));
    }

    #[test]
    fn forms_keep_invalid_and_taken_fields_and_pass_on_the_rest() {
        let (status, fields) = refused_fields(UserError::Conflict(UniqueField::Username))
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(fields.field("username").count(), 1);
        let refused = refused_fields(AuthError::Overloaded).map(|_| ());
        assert!(matches!(
            refused,
            Err(PageError::Page {
                status: StatusCode::SERVICE_UNAVAILABLE,
                ..
            })
        ));
    }

    #[test]
    fn pages_and_forms_say_core_s_message_as_a_sentence() {
        assert_eq!(
            sentence("the server is busy, try again shortly"),
            "The server is busy, try again shortly."
        );
        assert_eq!(sentence("Already a sentence."), "Already a sentence.");
        assert_eq!(sentence("émile"), "Émile.");
        assert_eq!(sentence(""), "");
        assert_eq!(
            refused_form(&UserError::LastAdmin),
            Refusal {
                status: StatusCode::CONFLICT,
                message: "The last active admin cannot be demoted, disabled or deleted.".to_owned(),
                retry_after: None,
            }
        );
        let PageError::Page {
            message,
            retry_after,
            ..
        } = PageError::from(AuthError::Overloaded)
        else {
            panic!("a page of its own");
        };
        let busy = refused_form(&AuthError::Overloaded);
        assert_eq!(message, busy.message);
        assert_eq!(retry_after, busy.retry_after);
        assert!(retry_after.is_some(), "an overload says when to come back");
    }
}
