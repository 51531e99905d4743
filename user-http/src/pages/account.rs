//! Sign-up, sign-in, sign-out and the person's own profile, password and sessions.

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;
use secrecy::SecretString;
use serde::Deserialize;
use user_core::auth::{BrowserLogin, Credentials, RegisterUser, SignIn};
use user_core::domain::{Email, SessionId};
use user_core::error::{
    AuthError, ErrorKind, ServiceError as _, UserError, ValidationError, ValidationErrors,
};
use user_core::users::{ChangePassword, UpdateProfile};

use super::audit::{EventView, PROFILE_EVENTS};
use super::error::{PageError, Refusal, log_server_error, refused_fields, refused_form, status_of};
use super::factor::{self, StatusView};
use super::flash::Flash;
use super::views::{UserView, date, field_errors, v};
use super::web::{Posted, Web, local_path};

pub(crate) async fn home(web: Web) -> Response {
    let to = if web.me.is_some() {
        "/profile"
    } else {
        "/login"
    };
    web.redirect(to, None)
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct NextQuery {
    #[serde(default)]
    next: String,
}

pub(crate) async fn login_form(web: Web, Query(q): Query<NextQuery>) -> Response {
    if web.me.is_some() {
        return web.redirect("/profile", None);
    }
    let next = local_path(&q.next).unwrap_or_default().to_owned();
    let page = context! { identifier => "", next => next, mail => web.state.account.is_some(), title => "Sign in" };
    web.render(StatusCode::OK, "login.html", page)
}

// No `Debug`: it holds a password.
#[derive(Default, Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    identifier: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

impl Posted for LoginForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

pub(crate) async fn login(
    mut web: Web,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = web.accept(form)?;
    let credentials = Credentials::new(form.identifier.clone(), SecretString::from(form.password))
        .with_device_token(web.device_token.clone().map(SecretString::from));
    let (refusal, unverified) = match web
        .state
        .auth
        .sign_in_browser(credentials, web.client.clone())
        .await
    {
        Ok(SignIn::Complete(login)) => {
            start_session(&mut web, &login).await;
            let next = after_sign_in(&web, &form.next);
            return Ok(web.redirect(&next, None));
        }
        // The password was right; the code form or the enrolment, right in this answer.
        Ok(SignIn::SecondStep(challenge)) => {
            let next = local_path(&form.next).unwrap_or_default().to_owned();
            return factor::second_step_page(web, challenge, &next).await;
        }
        // Only a caller who knows the password gets here: the page says so, and offers
        // a new confirmation link.
        Err(e @ AuthError::EmailNotVerified) => (refused_form(&e), true),
        Err(e) => (refused_sign_in(e)?, false),
    };
    let next = local_path(&form.next).unwrap_or_default().to_owned();
    // The link form is prefilled only with an address the person typed, never with one
    // looked up from a username.
    let resend_email = if unverified && Email::parse(&form.identifier).is_ok() {
        form.identifier.trim()
    } else {
        ""
    };
    let page = context! {
        identifier => &form.identifier,
        next => next,
        error => &refusal.message,
        mail => web.state.account.is_some(),
        unverified => unverified,
        resend_email => resend_email,
        title => "Sign in",
    };
    Ok(refusal.apply(web.render(refusal.status, "login.html", page)))
}

/// Starts the session of a sign-in: a new session every time, so the old cookie, if any,
/// stops working; sets the session and device cookies.
pub(super) async fn start_session(web: &mut Web, login: &BrowserLogin) {
    if let Some(me) = web.me.take()
        && let Err(e) = web.state.auth.logout(&me.actor).await
    {
        log_server_error(&e);
    }
    web.signed_in(login);
}

/// Where a sign-in leads (a path under the base): the local `next` it was asked for, never
/// back to the sign-in, else the profile.
pub(super) fn after_sign_in(web: &Web, next: &str) -> String {
    let Some(next) = local_path(next) else {
        return "/profile".to_owned();
    };
    // `next` came from this site (it is already under the base).
    let next = next.strip_prefix(web.base.as_str()).unwrap_or(next);
    if next.is_empty() || next.starts_with("/login") {
        "/profile".to_owned()
    } else {
        next.to_owned()
    }
}

/// What the sign-in form says again after a refused sign-in, or the error page. Whatever
/// is wrong with the identity (unknown, wrong password, disabled, unreadable), the form says
/// the one generic thing of [`AuthError::InvalidCredentials`], with its status.
fn refused_sign_in(e: AuthError) -> Result<Refusal, PageError> {
    match e.kind() {
        ErrorKind::Throttled { .. } | ErrorKind::Overloaded => Ok(refused_form(&e)),
        ErrorKind::InvalidCredentials | ErrorKind::InvalidInput | ErrorKind::Unauthenticated => {
            Ok(refused_form(&AuthError::InvalidCredentials))
        }
        _ => Err(e.into()),
    }
}

// No `Debug`: it holds a password (and `Serialize`, for the form shown again, skips it).
#[derive(Default, Deserialize, serde::Serialize)]
pub(crate) struct RegisterForm {
    #[serde(default, skip_serializing)]
    csrf_token: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    display_name: String,
    #[serde(default, skip_serializing)]
    password: String,
}

impl Posted for RegisterForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

fn min_password(web: &Web) -> usize {
    web.state.auth.policy().password.min_length()
}

pub(crate) async fn register_form(web: Web) -> Response {
    if web.me.is_some() {
        return web.redirect("/profile", None);
    }
    let page = context! { form => v(&RegisterForm::default()), min_password => min_password(&web), title => "Create account" };
    web.render(StatusCode::OK, "register.html", page)
}

pub(crate) async fn register(
    mut web: Web,
    form: Result<Form<RegisterForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = web.accept(form)?;
    let registration = RegisterUser {
        username: form.username.clone(),
        email: form.email.clone(),
        password: SecretString::from(form.password.clone()),
        display_name: Some(form.display_name.clone()),
    };
    let (status, errors) = match web.state.auth.register(registration, &web.client).await {
        Ok(_) => {
            let credentials =
                Credentials::new(form.username.clone(), SecretString::from(form.password));
            return match web
                .state
                .auth
                .sign_in_browser(credentials, web.client.clone())
                .await
            {
                Ok(SignIn::Complete(login)) => {
                    web.signed_in(&login);
                    Ok(web.redirect("/profile", Some(Flash::Welcome)))
                }
                // A policy that requires a second factor of everyone: the enrolment, now.
                Ok(SignIn::SecondStep(challenge)) => {
                    factor::second_step_page(web, challenge, "").await
                }
                Err(_) => Ok(web.redirect("/login", None)),
            };
        }
        Err(e) if matches!(e.kind(), ErrorKind::Throttled { .. }) => {
            let refusal = refused_form(&e);
            let page = context! {
                form => v(&form),
                error => &refusal.message,
                min_password => min_password(&web),
                title => "Create account",
            };
            return Ok(refusal.apply(web.render(refusal.status, "register.html", page)));
        }
        Err(e) => refused_fields(e)?,
    };
    let page = context! {
        form => v(&form),
        errors => v(&field_errors(&errors)),
        error => "Please correct the highlighted fields.",
        min_password => min_password(&web),
        title => "Create account",
    };
    Ok(web.render(status, "register.html", page))
}

#[derive(Debug, Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    pub(crate) csrf_token: String,
}

impl Posted for CsrfForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

pub(crate) async fn logout(
    mut web: Web,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, PageError> {
    web.accept(form)?;
    if let Some(me) = web.me.take()
        && let Err(e) = web.state.auth.logout(&me.actor).await
    {
        log_server_error(&e);
    }
    web.clear_session();
    Ok(web.redirect("/login", Some(Flash::SignedOut)))
}

/// The profile, with the account's recent security activity.
pub(crate) async fn profile(web: Web) -> Result<Response, PageError> {
    let me = web.require()?;
    let user = UserView::from(&me.user);
    let actor = me.actor.clone();
    // The profile stays usable when the audit log cannot be read: the table is left out.
    let events: Option<Vec<EventView>> =
        match web.state.users.recent_events(&actor, PROFILE_EVENTS).await {
            Ok(events) => Some(
                events
                    .into_iter()
                    .map(|e| EventView::owned(e, actor.user_id))
                    .collect(),
            ),
            Err(e) => {
                log_server_error(&e);
                None
            }
        };
    // Nor does it fail when the second factor cannot be read: the section shows its link.
    let second_factor = match web.state.users.second_factor(&actor).await {
        Ok(status) => Some(StatusView::from(status)),
        Err(e) => {
            log_server_error(&e);
            None
        }
    };
    let mail = web.state.account.is_some();
    Ok(web.render(
        StatusCode::OK,
        "profile.html",
        context! {
            user => v(&user),
            events => v(&events),
            second_factor => v(&second_factor),
            mail => mail,
            title => "Profile",
        },
    ))
}

#[derive(Debug, Default, Deserialize, serde::Serialize)]
pub(crate) struct EditForm {
    #[serde(default, skip_serializing)]
    pub(crate) csrf_token: String,
    #[serde(default)]
    pub(crate) username: String,
    #[serde(default)]
    pub(crate) email: String,
    #[serde(default)]
    pub(crate) display_name: String,
}

impl Posted for EditForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

impl EditForm {
    pub(crate) fn of(user: &user_core::domain::User) -> Self {
        Self {
            csrf_token: String::new(),
            username: user.username.to_string(),
            email: user.email.to_string(),
            display_name: user
                .display_name
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
        }
    }

    pub(crate) fn update(&self) -> UpdateProfile {
        UpdateProfile {
            username: Some(self.username.clone()),
            email: Some(self.email.clone()),
            display_name: Some(self.display_name.clone()),
        }
    }
}

pub(crate) async fn edit_form(web: Web) -> Result<Response, PageError> {
    let form = EditForm::of(&web.require()?.user);
    let action = format!("{}/profile/edit", web.base);
    let back = format!("{}/profile", web.base);
    let page =
        context! { form => v(&form), action => action, back => back, title => "Edit profile" };
    Ok(web.render(StatusCode::OK, "profile_edit.html", page))
}

/// Renders a profile form again with its errors, or the error page.
pub(crate) fn edit_failed(
    web: Web,
    form: EditForm,
    e: UserError,
    action: String,
    back: String,
) -> Result<Response, PageError> {
    let (status, errors) = refused_fields(e)?;
    let page = context! {
        form => v(&form),
        errors => v(&field_errors(&errors)),
        error => "Please correct the highlighted fields.",
        action => action,
        back => back,
        title => "Edit profile",
    };
    Ok(web.render(status, "profile_edit.html", page))
}

pub(crate) async fn edit(
    web: Web,
    form: Result<Form<EditForm>, FormRejection>,
) -> Result<Response, PageError> {
    let actor = web.require()?.actor.clone();
    let form = web.accept(form)?;
    match web
        .state
        .users
        .update_profile(&actor, actor.user_id, form.update())
        .await
    {
        Ok(_) => Ok(web.redirect("/profile", Some(Flash::ProfileSaved))),
        Err(e) => {
            let action = format!("{}/profile/edit", web.base);
            let back = format!("{}/profile", web.base);
            edit_failed(web, form, e, action, back)
        }
    }
}

pub(crate) async fn password_form(web: Web) -> Result<Response, PageError> {
    web.require()?;
    let page = context! { min_password => min_password(&web), title => "Change password" };
    Ok(web.render(StatusCode::OK, "password.html", page))
}

// No `Debug`: it holds passwords.
#[derive(Deserialize)]
pub(crate) struct PasswordForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
}

impl Posted for PasswordForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

pub(crate) async fn password(
    web: Web,
    form: Result<Form<PasswordForm>, FormRejection>,
) -> Result<Response, PageError> {
    let actor = web.require()?.actor.clone();
    let form = web.accept(form)?;
    let change = ChangePassword {
        current_password: SecretString::from(form.current_password),
        new_password: SecretString::from(form.new_password),
    };
    let (status, errors) = match web.state.users.change_password(&actor, change).await {
        Ok(()) => return Ok(web.redirect("/profile", Some(Flash::PasswordChanged))),
        // A wrong current password: the table's status, beside its field; the session stays.
        Err(e) if e.kind() == ErrorKind::InvalidCredentials => (
            status_of(e.kind()),
            ValidationErrors::from(ValidationError::new(
                "current_password",
                "incorrect",
                e.message(),
            )),
        ),
        Err(e) => refused_fields(e)?,
    };
    let page = context! {
        errors => v(&field_errors(&errors)),
        error => "Please correct the highlighted fields.",
        min_password => min_password(&web),
        title => "Change password",
    };
    Ok(web.render(status, "password.html", page))
}

#[derive(Debug, serde::Serialize)]
struct SessionView {
    id: String,
    kind: &'static str,
    user_agent: Option<String>,
    ip: Option<String>,
    created_at: String,
    expires_at: String,
    current: bool,
}

pub(crate) async fn sessions(web: Web) -> Result<Response, PageError> {
    let actor = web.require()?.actor.clone();
    let list = web.state.users.sessions(&actor).await?;
    let views: Vec<SessionView> = list
        .into_iter()
        .map(|s| SessionView {
            id: s.id.to_string(),
            kind: s.kind.as_str(),
            current: s.id == actor.session_id,
            user_agent: s.client.user_agent,
            ip: s.client.ip,
            created_at: date(s.created_at),
            expires_at: date(s.expires_at),
        })
        .collect();
    Ok(web.render(
        StatusCode::OK,
        "sessions.html",
        context! { sessions => v(&views), title => "Your sessions" },
    ))
}

pub(crate) async fn revoke_session(
    web: Web,
    Path(id): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, PageError> {
    let actor = web.require()?.actor.clone();
    web.accept(form)?;
    let id = id
        .parse::<SessionId>()
        .map_err(|_| PageError::Status(StatusCode::NOT_FOUND))?;
    web.state.users.revoke_session(&actor, id).await?;
    Ok(web.redirect("/profile/sessions", Some(Flash::SessionEnded)))
}
