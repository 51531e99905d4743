//! The page routes, the stylesheet, the fallback, and the layer that renders error pages.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::error::{PageError, render_error_pages};
use super::web::Web;
use super::{account, admin, audit, factor, links, privacy};
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(account::home))
        .route("/login", get(account::login_form).post(account::login))
        .route(
            "/login/second-factor",
            get(back_to_login).post(factor::login_second_factor),
        )
        .route("/login/enrol", get(back_to_login).post(factor::login_enrol))
        .route(
            "/register",
            get(account::register_form).post(account::register),
        )
        .route("/logout", post(account::logout))
        .route(
            "/forgot-password",
            get(links::forgot_form).post(links::forgot),
        )
        .route("/reset-password", get(links::reset_form).post(links::reset))
        .route("/verify-email", get(links::verify_form).post(links::verify))
        .route(
            "/verify-email/resend",
            get(links::resend_by_address_form).post(links::resend_by_address),
        )
        .route("/profile/verification", post(links::resend_verification))
        .route("/profile", get(account::profile))
        .route("/profile/edit", get(account::edit_form).post(account::edit))
        .route(
            "/profile/password",
            get(account::password_form).post(account::password),
        )
        .route("/profile/sessions", get(account::sessions))
        .route(
            "/profile/sessions/{id}/revoke",
            post(account::revoke_session),
        )
        .route("/profile/second-factor", get(factor::status))
        .route("/profile/second-factor/setup", post(factor::setup))
        .route("/profile/second-factor/confirm", post(factor::confirm))
        .route(
            "/profile/second-factor/recovery-codes",
            post(factor::recovery_codes),
        )
        .route("/profile/second-factor/disable", post(factor::disable))
        .route("/profile/export", post(privacy::export))
        .route(
            "/profile/delete",
            get(privacy::delete_form).post(privacy::delete),
        )
        .route("/admin/audit", get(audit::audit_log))
        .route("/admin/users", get(admin::users))
        .route("/admin/users/{id}", get(admin::user))
        .route(
            "/admin/users/{id}/edit",
            get(admin::edit_form).post(admin::edit),
        )
        .route("/admin/users/{id}/role", post(admin::set_role))
        .route("/admin/users/{id}/status", post(admin::set_status))
        .route("/admin/users/{id}/unlock", post(admin::unlock))
        .route(
            "/admin/users/{id}/second-factor/reset",
            post(admin::reset_second_factor),
        )
        .route(
            "/admin/users/{id}/password-reset",
            post(admin::send_password_reset),
        )
        .route(
            "/admin/users/{id}/delete",
            get(admin::confirm_delete).post(admin::delete),
        )
        .route("/static/style.css", get(stylesheet))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(render_error_pages))
}

async fn stylesheet(State(state): State<AppState>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        state.templates.stylesheet().to_owned(),
    )
        .into_response()
}

/// The second step of a sign-in lives only in the answer to the password's POST: a GET
/// (a bookmark, a reload) starts the sign-in again.
async fn back_to_login(web: Web) -> Response {
    web.redirect("/login", None)
}

/// The 404 page; it takes [`Web`] so that the page shows who is signed in.
async fn not_found(_web: Web) -> PageError {
    PageError::Status(StatusCode::NOT_FOUND)
}
