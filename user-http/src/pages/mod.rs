//! Server-rendered pages: forms with CSRF tokens, post/redirect/get with 303, flash messages,
//! an opaque session cookie. No JavaScript.
//!
//! - `routes`: the route table and the layer that renders error pages;
//! - `web`: the [`Web`](web::Web) extractor (cookies, signed-in person, CSRF check);
//! - `flash`: the one-time messages after a redirect;
//! - `views`: what templates see, and rendering;
//! - `error`: [`PageError`](error::PageError), the pages column of the error table;
//! - `account`, `admin`, `audit` (the admin's audit log, the profile's recent activity),
//!   `privacy` (download my data, delete my account), `links` (the flows of mailed links),
//!   `docs`, `factor` (the second step of a sign-in, the owner's two-step sign-in page, the
//!   enrolment's QR code): the handlers; `templates`: [`Templates`].

mod account;
mod admin;
mod audit;
mod docs;
mod error;
mod factor;
mod flash;
mod links;
mod privacy;
mod routes;
mod templates;
mod views;
mod web;

pub(crate) use docs::api_docs;
pub(crate) use routes::routes;
pub use templates::{TemplateError, Templates};
