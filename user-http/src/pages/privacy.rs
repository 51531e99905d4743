//! The person's rights over their data: download it (`POST /profile/export`, the same JSON
//! file as `GET /api/v1/me/export`) and delete the account (`/profile/delete`, confirmed by
//! the password).

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use minijinja::context;
use secrecy::SecretString;
use serde::Deserialize;
use user_core::error::{ErrorKind, ServiceError as _, ValidationError, ValidationErrors};

use super::account::CsrfForm;
use super::error::{PageError, Refusal, refused_form};
use super::flash::Flash;
use super::views::{field_errors, v};
use super::web::{Posted, Web};

/// The file of everything stored about the signed-in person. A form posts it, so another
/// site cannot make the browser download it (nor fill the audit log with downloads).
pub(crate) async fn export(
    web: Web,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, PageError> {
    let actor = web.require()?.actor.clone();
    web.accept(form)?;
    let data = web.state.users.export_own_data(&actor).await?;
    let file = crate::api::export_attachment(data, actor.session_id);
    Ok((web.jar.clone(), file).into_response())
}

const DELETE_TITLE: &str = "Delete your account";

pub(crate) async fn delete_form(web: Web) -> Result<Response, PageError> {
    web.require()?;
    Ok(web.render(
        StatusCode::OK,
        "delete_account.html",
        context! { title => DELETE_TITLE },
    ))
}

// No `Debug`: it holds a password.
#[derive(Deserialize)]
pub(crate) struct DeleteForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    password: String,
}

impl Posted for DeleteForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

/// Why the last active admin keeps their account, on the confirmation form.
const LAST_ADMIN: &str = "You are the last active admin, so your account cannot be deleted. \
     Make another user an admin first, then try again.";

/// Deletes the signed-in person's account once their password confirms it, then signs the
/// browser out. A wrong password, too many of them, or the last admin: the form again.
pub(crate) async fn delete(
    mut web: Web,
    form: Result<Form<DeleteForm>, FormRejection>,
) -> Result<Response, PageError> {
    let actor = web.require()?.actor.clone();
    let form = web.accept(form)?;
    let password = SecretString::from(form.password);
    let (refusal, errors) = match web.state.users.delete_own_account(&actor, &password).await {
        Ok(()) => {
            web.me = None;
            web.clear_session();
            return Ok(web.redirect("/login", Some(Flash::AccountDeleted)));
        }
        // A wrong password: beside its field, with the table's status; the session stays.
        Err(e) if e.kind() == ErrorKind::InvalidCredentials => {
            let refusal = refused_form(&e);
            let errors =
                ValidationErrors::from(ValidationError::new("password", "incorrect", e.message()));
            (
                Refusal {
                    message: "Your account was not deleted.".to_owned(),
                    ..refusal
                },
                errors,
            )
        }
        Err(e) if e.kind() == ErrorKind::LastAdmin => (
            Refusal {
                message: LAST_ADMIN.to_owned(),
                ..refused_form(&e)
            },
            ValidationErrors::new(),
        ),
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::Throttled { .. } | ErrorKind::Overloaded
            ) =>
        {
            (refused_form(&e), ValidationErrors::new())
        }
        Err(e) => return Err(e.into()),
    };
    let page = context! {
        errors => v(&field_errors(&errors)),
        error => &refusal.message,
        title => DELETE_TITLE,
    };
    Ok(refusal.apply(web.render(refusal.status, "delete_account.html", page)))
}
