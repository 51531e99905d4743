//! The account flows that go through a mailed link: asking for a password reset
//! (`/forgot-password`), the pages the links open (`/reset-password?token=...`,
//! `/verify-email?token=...`), and asking for a new confirmation link, by address while
//! signed out (`/verify-email/resend`) or from the profile.
//!
//! A link's page is a form that posts the token back: a mail scanner that fetches the link
//! changes nothing. These pages send `Referrer-Policy: no-referrer`, so the token in their
//! address never leaves in a `Referer`; tokens are never logged or shown but in the hidden
//! field of their own form.

use std::sync::Arc;

use axum::Form;
use axum::extract::Query;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use minijinja::context;
use secrecy::SecretString;
use serde::Deserialize;
use user_core::account::AccountService;
use user_core::error::{AuthError, ErrorKind, ServiceError as _};

use super::account::CsrfForm;
use super::error::{PageError, refused_fields, refused_form};
use super::flash::Flash;
use super::views::{field_errors, v};
use super::web::{Posted, Web};

/// The account service, or the error page of a deployment without mail (500).
fn account(web: &Web) -> Result<Arc<AccountService>, PageError> {
    web.state
        .account
        .clone()
        .ok_or_else(|| AuthError::MailNotConfigured.into())
}

/// Keeps the token in a page's address from leaking to the next site in a `Referer`.
fn no_referrer(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// Which link a page serves, for the page shown when its token is refused.
#[derive(Debug, Clone, Copy)]
enum Link {
    Reset,
    Verify,
}

/// 422: the link is unknown, expired, superseded or used, with the way to a new one.
fn invalid_link(web: Web, link: Link) -> Response {
    let (title, link) = match link {
        Link::Reset => ("This reset link is invalid or expired", "reset"),
        Link::Verify => ("This confirmation link is invalid or expired", "verify"),
    };
    let page = context! { title => title, link => link };
    no_referrer(web.render(StatusCode::UNPROCESSABLE_ENTITY, "link_invalid.html", page))
}

/// The token in a link's address.
#[derive(Default, Deserialize)]
pub(crate) struct TokenQuery {
    #[serde(default)]
    token: String,
}

pub(crate) async fn forgot_form(web: Web) -> Result<Response, PageError> {
    account(&web)?;
    let page = context! { email => "", title => FORGOT_TITLE };
    Ok(web.render(StatusCode::OK, "forgot_password.html", page))
}

const FORGOT_TITLE: &str = "Forgot your password?";
const RESEND_TITLE: &str = "Get a new confirmation link";

/// An email address typed into a form that asks for a mailed link: a password reset, or a
/// new confirmation link.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AddressForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    email: String,
}

impl Posted for AddressForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

/// The form that asked for a link, again after the service refused it: the wait above it
/// when throttled or busy (with its status and `Retry-After`), the problem beside the
/// `email` field when it is no address, or the error page for anything else.
fn link_request_refused(
    web: Web,
    e: AuthError,
    email: String,
    template: &str,
    title: &str,
) -> Result<Response, PageError> {
    if matches!(
        e.kind(),
        ErrorKind::Throttled { .. } | ErrorKind::Overloaded
    ) {
        let refusal = refused_form(&e);
        let page = context! { email => email, error => &refusal.message, title => title };
        return Ok(refusal.apply(web.render(refusal.status, template, page)));
    }
    let (status, errors) = refused_fields(e)?;
    let page = context! {
        email => email,
        errors => v(&field_errors(&errors)),
        error => "Please correct the highlighted fields.",
        title => title,
    };
    Ok(web.render(status, template, page))
}

/// The answer is the same page for every address, known or not: the page does not say
/// which address was typed, and the service answers before it looks the address up.
pub(crate) async fn forgot(
    web: Web,
    form: Result<Form<AddressForm>, FormRejection>,
) -> Result<Response, PageError> {
    let account = account(&web)?;
    let form = web.accept(form)?;
    match account
        .request_password_reset(&form.email, &web.client)
        .await
    {
        Ok(()) => {
            let page = context! { title => "Check your email" };
            Ok(web.render(StatusCode::OK, "forgot_password_sent.html", page))
        }
        Err(e) => link_request_refused(web, e, form.email, "forgot_password.html", FORGOT_TITLE),
    }
}

/// The form that asks for a new confirmation link by address, for a person who cannot sign
/// in until their address is confirmed (the sign-in page offers it then, prefilled).
pub(crate) async fn resend_by_address_form(web: Web) -> Result<Response, PageError> {
    account(&web)?;
    let page = context! { email => "", title => RESEND_TITLE };
    Ok(web.render(StatusCode::OK, "verify_email_resend.html", page))
}

/// Mails a new confirmation link to the account of the typed address, if it has one that
/// is not confirmed yet. The answer is the same redirect to the sign-in page for every
/// address, known or not, confirmed or not.
pub(crate) async fn resend_by_address(
    web: Web,
    form: Result<Form<AddressForm>, FormRejection>,
) -> Result<Response, PageError> {
    let account = account(&web)?;
    let form = web.accept(form)?;
    match account.request_verification(&form.email, &web.client).await {
        Ok(()) => Ok(web.redirect("/login", Some(Flash::VerificationRequested))),
        Err(e) => {
            link_request_refused(web, e, form.email, "verify_email_resend.html", RESEND_TITLE)
        }
    }
}

fn min_password(web: &Web) -> usize {
    web.state.auth.policy().password.min_length()
}

pub(crate) async fn reset_form(
    web: Web,
    Query(q): Query<TokenQuery>,
) -> Result<Response, PageError> {
    account(&web)?;
    if q.token.is_empty() {
        return Ok(invalid_link(web, Link::Reset));
    }
    let page = context! {
        token => q.token,
        min_password => min_password(&web),
        title => "Choose a new password",
    };
    Ok(no_referrer(web.render(
        StatusCode::OK,
        "reset_password.html",
        page,
    )))
}

// No `Debug`: it holds a token and a password.
#[derive(Default, Deserialize)]
pub(crate) struct ResetForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    new_password: String,
}

impl Posted for ResetForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

/// Sets the new password. The account's sessions end, this browser's too if it was signed
/// in to that account; the person signs in again with the new password.
pub(crate) async fn reset(
    mut web: Web,
    form: Result<Form<ResetForm>, FormRejection>,
) -> Result<Response, PageError> {
    let account = account(&web)?;
    let form = web.accept(form)?;
    let token = SecretString::from(form.token.clone());
    let (status, errors) = match account
        .reset_password(&token, SecretString::from(form.new_password), &web.client)
        .await
    {
        Ok(user) => {
            if web.me.as_ref().is_some_and(|me| me.user.id == user.id) {
                web.me = None;
                web.clear_session();
            }
            return Ok(no_referrer(
                web.redirect("/login", Some(Flash::PasswordReset)),
            ));
        }
        Err(AuthError::InvalidToken) => return Ok(invalid_link(web, Link::Reset)),
        Err(e) => refused_fields(e)?,
    };
    // A password the policy refuses: the form again, with the link still usable.
    let page = context! {
        token => form.token,
        errors => v(&field_errors(&errors)),
        error => "Please correct the highlighted fields.",
        min_password => min_password(&web),
        title => "Choose a new password",
    };
    Ok(no_referrer(web.render(status, "reset_password.html", page)))
}

pub(crate) async fn verify_form(
    web: Web,
    Query(q): Query<TokenQuery>,
) -> Result<Response, PageError> {
    account(&web)?;
    if q.token.is_empty() {
        return Ok(invalid_link(web, Link::Verify));
    }
    let page = context! { token => q.token, title => "Confirm your email address" };
    Ok(no_referrer(web.render(
        StatusCode::OK,
        "verify_email.html",
        page,
    )))
}

#[derive(Default, Deserialize)]
pub(crate) struct VerifyForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    token: String,
}

impl Posted for VerifyForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

/// Confirms the address: to the profile when signed in, else to the sign-in page, with the
/// news.
pub(crate) async fn verify(
    web: Web,
    form: Result<Form<VerifyForm>, FormRejection>,
) -> Result<Response, PageError> {
    let account = account(&web)?;
    let form = web.accept(form)?;
    match account
        .verify_email(&SecretString::from(form.token), &web.client)
        .await
    {
        Ok(_) => {
            let to = if web.me.is_some() {
                "/profile"
            } else {
                "/login"
            };
            Ok(no_referrer(web.redirect(to, Some(Flash::EmailVerified))))
        }
        Err(AuthError::InvalidToken) => Ok(invalid_link(web, Link::Verify)),
        Err(e) => Err(e.into()),
    }
}

/// Mails the signed-in person a new confirmation link; 429 past the limits.
pub(crate) async fn resend_verification(
    web: Web,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, PageError> {
    let actor = web.require()?.actor.clone();
    web.accept(form)?;
    account(&web)?
        .resend_verification(&actor, &web.client)
        .await?;
    Ok(web.redirect("/profile", Some(Flash::VerificationSent)))
}
