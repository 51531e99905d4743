//! Sign-up, sign-in, sign-out and the person's own profile, password and sessions.

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;
use secrecy::SecretString;
use serde::Deserialize;
use user_core::auth::{Credentials, RegisterUser};
use user_core::domain::SessionId;
use user_core::error::{AuthError, UniqueField, UserError, ValidationError, ValidationErrors};
use user_core::users::{ChangePassword, UpdateProfile};

use super::{
    Flash, Posted, UserView, Web, date, field_errors, local_path, log_server_error, page_try, v,
};

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
    let page = context! { identifier => "", next => next, title => "Sign in" };
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

pub(crate) async fn login(mut web: Web, form: Result<Form<LoginForm>, FormRejection>) -> Response {
    let form = page_try!(web.accept(form));
    let credentials = Credentials::new(form.identifier.clone(), SecretString::from(form.password))
        .with_device_token(web.device_token.clone().map(SecretString::from));
    let (status, error) = match web
        .state
        .auth
        .login_browser(credentials, web.client.clone())
        .await
    {
        Ok(login) => {
            // A new session on every sign-in: the old cookie, if any, stops working.
            if let Some(me) = web.me.take() {
                let _ = web.state.auth.logout(&me.actor).await;
            }
            web.signed_in(&login);
            let next = local_path(&form.next)
                .filter(|n| !n.starts_with("/login"))
                .unwrap_or("/profile")
                .to_owned();
            // `next` came from this site (it is already under the base).
            let next = next
                .strip_prefix(web.base.as_str())
                .map(str::to_owned)
                .unwrap_or(next);
            return web.redirect(&next, None);
        }
        Err(AuthError::Throttled { retry_after }) => {
            let wait = user_core::error::wait_in_minutes(retry_after);
            (
                StatusCode::TOO_MANY_REQUESTS,
                format!("Too many sign-in attempts. Try again in {wait}."),
            )
        }
        Err(AuthError::Overloaded) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The service is busy. Try again in a moment.".to_owned(),
        ),
        Err(AuthError::InvalidCredentials | AuthError::Invalid(_) | AuthError::Unauthenticated) => {
            (
                StatusCode::UNAUTHORIZED,
                "The username, email or password is not right.".to_owned(),
            )
        }
        Err(e) => {
            log_server_error(&e);
            return web.error(StatusCode::INTERNAL_SERVER_ERROR);
        }
    };
    let next = local_path(&form.next).unwrap_or_default().to_owned();
    let page = context! { identifier => form.identifier, next => next, error => error, title => "Sign in" };
    web.render(status, "login.html", page)
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
) -> Response {
    let form = page_try!(web.accept(form));
    let registration = RegisterUser {
        username: form.username.clone(),
        email: form.email.clone(),
        password: SecretString::from(form.password.clone()),
        display_name: Some(form.display_name.clone()),
    };
    let errors = match web.state.auth.register(registration, &web.client).await {
        Ok(_) => {
            let credentials =
                Credentials::new(form.username.clone(), SecretString::from(form.password));
            return match web
                .state
                .auth
                .login_browser(credentials, web.client.clone())
                .await
            {
                Ok(login) => {
                    web.signed_in(&login);
                    web.redirect("/profile", Some(Flash::Welcome))
                }
                Err(_) => web.redirect("/login", None),
            };
        }
        Err(AuthError::Invalid(errors)) => (StatusCode::UNPROCESSABLE_ENTITY, errors),
        Err(AuthError::Conflict(field)) => (StatusCode::CONFLICT, taken(field)),
        Err(AuthError::Overloaded) => return web.error(StatusCode::SERVICE_UNAVAILABLE),
        Err(AuthError::Throttled { retry_after }) => {
            let wait = user_core::error::wait_in_minutes(retry_after);
            let page = context! {
                form => v(&form),
                error => format!("Too many new accounts from your network. Try again in {wait}."),
                min_password => min_password(&web),
                title => "Create account",
            };
            return web.render(StatusCode::TOO_MANY_REQUESTS, "register.html", page);
        }
        Err(e) => {
            log_server_error(&e);
            return web.error(StatusCode::INTERNAL_SERVER_ERROR);
        }
    };
    let (status, errors) = errors;
    let page = context! {
        form => v(&form),
        errors => v(&field_errors(&errors)),
        error => "Please correct the highlighted fields.",
        min_password => min_password(&web),
        title => "Create account",
    };
    web.render(status, "register.html", page)
}

fn taken(field: UniqueField) -> ValidationErrors {
    ValidationError::new(field.as_str(), "taken", "is already taken").into()
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

pub(crate) async fn logout(mut web: Web, form: Result<Form<CsrfForm>, FormRejection>) -> Response {
    page_try!(web.accept(form));
    if let Some(me) = web.me.take()
        && let Err(e) = web.state.auth.logout(&me.actor).await
    {
        log_server_error(&e);
    }
    web.clear_session();
    web.redirect("/login", Some(Flash::SignedOut))
}

pub(crate) async fn profile(web: Web) -> Response {
    let me = match web.require() {
        Ok(me) => UserView::from(&me.user),
        Err(redirect) => return redirect,
    };
    web.render(
        StatusCode::OK,
        "profile.html",
        context! { user => v(&me), title => "Profile" },
    )
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

pub(crate) async fn edit_form(web: Web) -> Response {
    let form = match web.require() {
        Ok(me) => EditForm::of(&me.user),
        Err(redirect) => return redirect,
    };
    let action = format!("{}/profile/edit", web.base);
    let back = format!("{}/profile", web.base);
    let page =
        context! { form => v(&form), action => action, back => back, title => "Edit profile" };
    web.render(StatusCode::OK, "profile_edit.html", page)
}

/// Renders a profile form again with its errors, or the error page.
pub(crate) fn edit_failed(
    web: Web,
    form: EditForm,
    e: UserError,
    action: String,
    back: String,
) -> Response {
    let (status, errors) = match e {
        UserError::Invalid(errors) => (StatusCode::UNPROCESSABLE_ENTITY, errors),
        UserError::Conflict(field) => (StatusCode::CONFLICT, taken(field)),
        other => return web.user_error(other),
    };
    let page = context! {
        form => v(&form),
        errors => v(&field_errors(&errors)),
        error => "Please correct the highlighted fields.",
        action => action,
        back => back,
        title => "Edit profile",
    };
    web.render(status, "profile_edit.html", page)
}

pub(crate) async fn edit(web: Web, form: Result<Form<EditForm>, FormRejection>) -> Response {
    let actor = page_try!(web.require()).actor;
    let form = page_try!(web.accept(form));
    match web
        .state
        .users
        .update_profile(&actor, actor.user_id, form.update())
        .await
    {
        Ok(_) => web.redirect("/profile", Some(Flash::ProfileSaved)),
        Err(e) => {
            let action = format!("{}/profile/edit", web.base);
            let back = format!("{}/profile", web.base);
            edit_failed(web, form, e, action, back)
        }
    }
}

pub(crate) async fn password_form(web: Web) -> Response {
    if let Err(redirect) = web.require() {
        return redirect;
    }
    let page = context! { min_password => min_password(&web), title => "Change password" };
    web.render(StatusCode::OK, "password.html", page)
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
) -> Response {
    let actor = page_try!(web.require()).actor;
    let form = page_try!(web.accept(form));
    let change = ChangePassword {
        current_password: SecretString::from(form.current_password),
        new_password: SecretString::from(form.new_password),
    };
    let errors = match web.state.users.change_password(&actor, change).await {
        Ok(()) => return web.redirect("/profile", Some(Flash::PasswordChanged)),
        Err(UserError::InvalidCredentials) => ValidationErrors::from(ValidationError::new(
            "current_password",
            "incorrect",
            "is not your current password",
        )),
        Err(UserError::Invalid(errors)) => errors,
        Err(other) => return web.user_error(other),
    };
    let page = context! {
        errors => v(&field_errors(&errors)),
        error => "Please correct the highlighted fields.",
        min_password => min_password(&web),
        title => "Change password",
    };
    web.render(StatusCode::UNPROCESSABLE_ENTITY, "password.html", page)
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

pub(crate) async fn sessions(web: Web) -> Response {
    let actor = page_try!(web.require()).actor;
    let list = match web.state.users.sessions(&actor).await {
        Ok(list) => list,
        Err(e) => return web.user_error(e),
    };
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
    web.render(
        StatusCode::OK,
        "sessions.html",
        context! { sessions => v(&views), title => "Your sessions" },
    )
}

pub(crate) async fn revoke_session(
    web: Web,
    Path(id): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let actor = page_try!(web.require()).actor;
    page_try!(web.accept(form));
    let Ok(id) = id.parse::<SessionId>() else {
        return web.error(StatusCode::NOT_FOUND);
    };
    match web.state.users.revoke_session(&actor, id).await {
        Ok(()) => web.redirect("/profile/sessions", Some(Flash::SessionEnded)),
        Err(e) => web.user_error(e),
    }
}
