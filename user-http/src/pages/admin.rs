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
use user_core::error::UserError;

use super::account::{CsrfForm, EditForm, edit_failed};
use super::{Flash, Posted, UserView, Web, page_try, v};

/// The admin acting, or the response to send instead (sign-in redirect or 403).
fn admin(web: &Web) -> Result<Actor, Response> {
    let me = web.require()?;
    if me.actor.is_admin() {
        Ok(me.actor)
    } else {
        Err(web.error(StatusCode::FORBIDDEN))
    }
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

pub(crate) async fn users(web: Web, Query(q): Query<UsersQuery>) -> Response {
    let actor = page_try!(admin(&web));
    let mut query = UserQuery::parse(Some(&q.q), None, Some(&q.cursor)).unwrap_or_default();
    query.role = q.role.parse::<Role>().ok();
    query.status = q.status.parse::<UserStatus>().ok();
    let page = async { web.state.users.as_admin(&actor)?.list(&query).await }.await;
    let page = match page {
        Ok(page) => page,
        Err(e) => return web.user_error(e),
    };
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
    web.render(StatusCode::OK, "admin_users.html", context)
}

async fn load(web: &Web, actor: &Actor, id: &str) -> Result<User, UserError> {
    let id = id.parse::<UserId>().map_err(|_| UserError::NotFound)?;
    web.state.users.as_admin(actor)?.get(id).await
}

pub(crate) async fn user(web: Web, Path(id): Path<String>) -> Response {
    let actor = page_try!(admin(&web));
    let loaded = async {
        let user = load(&web, &actor, &id).await?;
        let lock = web
            .state
            .users
            .as_admin(&actor)?
            .sign_in_lock(user.id)
            .await?;
        Ok::<_, UserError>((user, lock))
    }
    .await;
    match loaded {
        Ok((user, lock)) => {
            let title = user.username.to_string();
            let locked_for = lock.map(user_core::error::wait_in_minutes);
            web.render(
                StatusCode::OK,
                "admin_user.html",
                context! { user => v(&UserView::from(&user)), locked_for => locked_for, title => title },
            )
        }
        Err(e) => web.user_error(e),
    }
}

pub(crate) async fn unlock(
    web: Web,
    Path(id): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let actor = page_try!(admin(&web));
    page_try!(web.accept(form));
    let Ok(user_id) = id.parse::<UserId>() else {
        return web.error(StatusCode::NOT_FOUND);
    };
    let result = async { web.state.users.as_admin(&actor)?.unlock(user_id).await }.await;
    match result {
        Ok(()) => web.redirect(&format!("/admin/users/{id}"), Some(Flash::Unlocked)),
        Err(e) => web.user_error(e),
    }
}

pub(crate) async fn edit_form(web: Web, Path(id): Path<String>) -> Response {
    let actor = page_try!(admin(&web));
    match load(&web, &actor, &id).await {
        Ok(user) => {
            let action = format!("{}/admin/users/{id}/edit", web.base);
            let back = format!("{}/admin/users/{id}", web.base);
            let page = context! { form => v(&EditForm::of(&user)), action => action, back => back, title => "Edit profile" };
            web.render(StatusCode::OK, "profile_edit.html", page)
        }
        Err(e) => web.user_error(e),
    }
}

pub(crate) async fn edit(
    web: Web,
    Path(id): Path<String>,
    form: Result<Form<EditForm>, FormRejection>,
) -> Response {
    let actor = page_try!(admin(&web));
    let form = page_try!(web.accept(form));
    let Ok(user_id) = id.parse::<UserId>() else {
        return web.error(StatusCode::NOT_FOUND);
    };
    let result = async {
        web.state
            .users
            .as_admin(&actor)?
            .update_profile(user_id, form.update())
            .await
    }
    .await;
    match result {
        Ok(_) => web.redirect(&format!("/admin/users/{id}"), Some(Flash::UserSaved)),
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

/// After a refused change (the last admin), the user's page again with the reason.
async fn refused(web: Web, actor: &Actor, id: &str, e: UserError) -> Response {
    match e {
        UserError::LastAdmin => match load(&web, actor, id).await {
            Ok(user) => {
                let title = user.username.to_string();
                let page = context! { user => v(&UserView::from(&user)), error => "The last active admin can be neither demoted, disabled nor deleted. Make another admin first.", title => title };
                web.render(StatusCode::CONFLICT, "admin_user.html", page)
            }
            Err(e) => web.user_error(e),
        },
        other => web.user_error(other),
    }
}

pub(crate) async fn set_role(
    web: Web,
    Path(id): Path<String>,
    form: Result<Form<RoleForm>, FormRejection>,
) -> Response {
    let actor = page_try!(admin(&web));
    let form = page_try!(web.accept(form));
    let (Ok(user_id), Ok(role)) = (id.parse::<UserId>(), form.role.parse::<Role>()) else {
        return web.error(StatusCode::BAD_REQUEST);
    };
    let result = async {
        web.state
            .users
            .as_admin(&actor)?
            .set_role(user_id, role)
            .await
    }
    .await;
    match result {
        Ok(_) => web.redirect(&format!("/admin/users/{id}"), Some(Flash::RoleChanged)),
        Err(e) => refused(web, &actor, &id, e).await,
    }
}

pub(crate) async fn set_status(
    web: Web,
    Path(id): Path<String>,
    form: Result<Form<StatusForm>, FormRejection>,
) -> Response {
    let actor = page_try!(admin(&web));
    let form = page_try!(web.accept(form));
    let (Ok(user_id), Ok(status)) = (id.parse::<UserId>(), form.status.parse::<UserStatus>())
    else {
        return web.error(StatusCode::BAD_REQUEST);
    };
    let result = async {
        web.state
            .users
            .as_admin(&actor)?
            .set_status(user_id, status)
            .await
    }
    .await;
    match result {
        Ok(_) => web.redirect(&format!("/admin/users/{id}"), Some(Flash::StatusChanged)),
        Err(e) => refused(web, &actor, &id, e).await,
    }
}

pub(crate) async fn confirm_delete(web: Web, Path(id): Path<String>) -> Response {
    let actor = page_try!(admin(&web));
    match load(&web, &actor, &id).await {
        Ok(user) => {
            let title = format!("Delete {}", user.username);
            web.render(
                StatusCode::OK,
                "confirm_delete.html",
                context! { user => v(&UserView::from(&user)), title => title },
            )
        }
        Err(e) => web.user_error(e),
    }
}

pub(crate) async fn delete(
    web: Web,
    Path(id): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let actor = page_try!(admin(&web));
    page_try!(web.accept(form));
    let Ok(user_id) = id.parse::<UserId>() else {
        return web.error(StatusCode::NOT_FOUND);
    };
    let result = async { web.state.users.as_admin(&actor)?.delete(user_id).await }.await;
    match result {
        Ok(()) => web.redirect("/admin/users", Some(Flash::UserDeleted)),
        Err(e) => refused(web, &actor, &id, e).await,
    }
}
