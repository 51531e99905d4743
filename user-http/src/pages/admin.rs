//! The admin area: search and page through users, change roles and statuses, edit and
//! delete (with confirmation).

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;
use serde::Deserialize;
use user_core::domain::{Actor, Role, User, UserId, UserQuery, UserStatus};
use user_core::error::{ErrorKind, ServiceError as _, UserError};

use super::account::{CsrfForm, EditForm, edit_failed};
use super::error::{PageError, Refusal, refused_form};
use super::factor::StatusView;
use super::flash::Flash;
use super::views::{UserView, v};
use super::web::{Posted, Web};

/// The admin acting, or the sign-in redirect, or 403.
pub(super) fn admin(web: &Web) -> Result<Actor, PageError> {
    let me = web.require()?;
    if me.actor.is_admin() {
        Ok(me.actor.clone())
    } else {
        Err(UserError::Forbidden.into())
    }
}

/// The id in the path; a malformed one names no user.
fn user_id(id: &str) -> Result<UserId, PageError> {
    id.parse::<UserId>()
        .map_err(|_| PageError::from(UserError::NotFound))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct UsersQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    cursor: String,
}

pub(crate) async fn users(web: Web, Query(q): Query<UsersQuery>) -> Result<Response, PageError> {
    let actor = admin(&web)?;
    let mut query = UserQuery::parse(Some(&q.q), None, Some(&q.cursor)).unwrap_or_default();
    query.role = q.role.parse::<Role>().ok();
    query.status = q.status.parse::<UserStatus>().ok();
    let page = web.state.users.as_admin(&actor)?.list(&query).await?;
    let next_url = page.next_page_token().map(|cursor| {
        let query = serde_urlencoded::to_string([
            ("q", q.q.as_str()),
            ("role", q.role.as_str()),
            ("status", q.status.as_str()),
            ("cursor", cursor.as_str()),
        ])
        .unwrap_or_default();
        format!("{}/admin/users?{query}", web.base)
    });
    let users: Vec<UserView> = page.users.iter().map(UserView::from).collect();
    let context = context! {
        users => v(&users), q => q.q, role => q.role, status => q.status,
        next_url => next_url, title => "Users",
    };
    Ok(web.render(StatusCode::OK, "admin_users.html", context))
}

async fn load(web: &Web, actor: &Actor, id: &str) -> Result<User, PageError> {
    let id = user_id(id)?;
    Ok(web.state.users.as_admin(actor)?.get(id).await?)
}

pub(crate) async fn user(web: Web, Path(id): Path<String>) -> Result<Response, PageError> {
    let actor = admin(&web)?;
    user_page(web, &actor, &id, None).await
}

/// The admin's page of a user, with a refusal above its buttons.
async fn user_page(
    web: Web,
    actor: &Actor,
    id: &str,
    refusal: Option<Refusal>,
) -> Result<Response, PageError> {
    let user = load(&web, actor, id).await?;
    let admin = web.state.users.as_admin(actor)?;
    let lock = admin.sign_in_lock(user.id).await?;
    let second_factor = StatusView::from(admin.second_factor(user.id).await?);
    let title = user.username.to_string();
    let locked_for = lock.map(user_core::error::wait_in_minutes);
    let mail = web.state.account.is_some();
    let status = refusal.as_ref().map_or(StatusCode::OK, |r| r.status);
    let page = context! {
        user => v(&UserView::from(&user)),
        locked_for => locked_for,
        second_factor => v(&second_factor),
        error => refusal.as_ref().map(|r| r.message.clone()),
        mail => mail,
        title => title,
    };
    let response = web.render(status, "admin_user.html", page);
    Ok(match refusal {
        Some(refusal) => refusal.apply(response),
        None => response,
    })
}

pub(crate) async fn unlock(
    web: Web,
    Path(id): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, PageError> {
    let actor = admin(&web)?;
    web.accept(form)?;
    let user_id = user_id(&id)?;
    web.state.users.as_admin(&actor)?.unlock(user_id).await?;
    Ok(web.redirect(&format!("/admin/users/{id}"), Some(Flash::Unlocked)))
}

/// Mails the user a password-reset link; the admin never sees it.
pub(crate) async fn send_password_reset(
    web: Web,
    Path(id): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, PageError> {
    let actor = admin(&web)?;
    web.accept(form)?;
    let user_id = user_id(&id)?;
    let account = web
        .state
        .account
        .as_ref()
        .ok_or(UserError::MailNotConfigured)?;
    account.send_password_reset(&actor, user_id).await?;
    Ok(web.redirect(&format!("/admin/users/{id}"), Some(Flash::ResetLinkSent)))
}

pub(crate) async fn edit_form(web: Web, Path(id): Path<String>) -> Result<Response, PageError> {
    let actor = admin(&web)?;
    let user = load(&web, &actor, &id).await?;
    let action = format!("{}/admin/users/{id}/edit", web.base);
    let back = format!("{}/admin/users/{id}", web.base);
    let page = context! { form => v(&EditForm::of(&user)), action => action, back => back, title => "Edit profile" };
    Ok(web.render(StatusCode::OK, "profile_edit.html", page))
}

pub(crate) async fn edit(
    web: Web,
    Path(id): Path<String>,
    form: Result<Form<EditForm>, FormRejection>,
) -> Result<Response, PageError> {
    let actor = admin(&web)?;
    let form = web.accept(form)?;
    let user_id = user_id(&id)?;
    let result = web
        .state
        .users
        .as_admin(&actor)?
        .update_profile(user_id, form.update())
        .await;
    match result {
        Ok(_) => Ok(web.redirect(&format!("/admin/users/{id}"), Some(Flash::UserSaved))),
        Err(e) => {
            let action = format!("{}/admin/users/{id}/edit", web.base);
            let back = format!("{}/admin/users/{id}", web.base);
            edit_failed(web, form, e, action, back)
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct RoleForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    role: String,
}

impl Posted for RoleForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct StatusForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    status: String,
}

impl Posted for StatusForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

/// After a refused change: the user's page again with the reason (the last admin, no second
/// factor to reset), or the error page.
async fn refused(web: Web, actor: &Actor, id: &str, e: UserError) -> Result<Response, PageError> {
    if !matches!(
        e.kind(),
        ErrorKind::LastAdmin | ErrorKind::FailedPrecondition
    ) {
        return Err(e.into());
    }
    user_page(web, actor, id, Some(refused_form(&e))).await
}

/// Removes a user's second factor (a lost phone); the user is mailed.
pub(crate) async fn reset_second_factor(
    web: Web,
    Path(id): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, PageError> {
    let actor = admin(&web)?;
    web.accept(form)?;
    let user_id = user_id(&id)?;
    match web
        .state
        .users
        .as_admin(&actor)?
        .reset_second_factor(user_id)
        .await
    {
        Ok(()) => Ok(web.redirect(
            &format!("/admin/users/{id}"),
            Some(Flash::SecondFactorReset),
        )),
        Err(e) => refused(web, &actor, &id, e).await,
    }
}

pub(crate) async fn set_role(
    web: Web,
    Path(id): Path<String>,
    form: Result<Form<RoleForm>, FormRejection>,
) -> Result<Response, PageError> {
    let actor = admin(&web)?;
    let form = web.accept(form)?;
    let (Ok(user_id), Ok(role)) = (id.parse::<UserId>(), form.role.parse::<Role>()) else {
        return Err(PageError::Status(StatusCode::BAD_REQUEST));
    };
    match web
        .state
        .users
        .as_admin(&actor)?
        .set_role(user_id, role)
        .await
    {
        Ok(_) => Ok(web.redirect(&format!("/admin/users/{id}"), Some(Flash::RoleChanged))),
        Err(e) => refused(web, &actor, &id, e).await,
    }
}

pub(crate) async fn set_status(
    web: Web,
    Path(id): Path<String>,
    form: Result<Form<StatusForm>, FormRejection>,
) -> Result<Response, PageError> {
    let actor = admin(&web)?;
    let form = web.accept(form)?;
    let (Ok(user_id), Ok(status)) = (id.parse::<UserId>(), form.status.parse::<UserStatus>())
    else {
        return Err(PageError::Status(StatusCode::BAD_REQUEST));
    };
    match web
        .state
        .users
        .as_admin(&actor)?
        .set_status(user_id, status)
        .await
    {
        Ok(_) => Ok(web.redirect(&format!("/admin/users/{id}"), Some(Flash::StatusChanged))),
        Err(e) => refused(web, &actor, &id, e).await,
    }
}

pub(crate) async fn confirm_delete(
    web: Web,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let actor = admin(&web)?;
    let user = load(&web, &actor, &id).await?;
    let title = format!("Delete {}", user.username);
    Ok(web.render(
        StatusCode::OK,
        "confirm_delete.html",
        context! { user => v(&UserView::from(&user)), title => title },
    ))
}

pub(crate) async fn delete(
    web: Web,
    Path(id): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, PageError> {
    let actor = admin(&web)?;
    web.accept(form)?;
    let user_id = user_id(&id)?;
    match web.state.users.as_admin(&actor)?.delete(user_id).await {
        Ok(()) => Ok(web.redirect("/admin/users", Some(Flash::UserDeleted))),
        Err(e) => refused(web, &actor, &id, e).await,
    }
}
