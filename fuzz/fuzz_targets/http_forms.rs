//! The HTTP adapter end to end, in process: `user_http::router` on in-memory services gets
//! one request through tower's `oneshot`: an HTML form post (fuzzed fields, with a right,
//! wrong or missing CSRF token), a page with a fuzzed query string (`next`, the admin user
//! list's search, filters and cursor), or a JSON API call (fuzzed body or fields, the admin
//! list's query string), as nobody, a user or an admin.
//!
//! Checks: no panic and no 5xx; every redirect stays on this site (`Location` starts with one
//! `/`, no `//` or `/\`); no HTML page contains `<script` (the templates have none, so fuzzed
//! text got through unescaped); a form post with a bad CSRF token changes nothing (403/400,
//! or the sign-in redirect for a signed-out caller, and never a new session cookie); JSON
//! errors carry a `code`; a successful API registration returns the normalized username and
//! email; an API user list obeys its limit.
#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use http::{Method, StatusCode, header};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;
use user_core::domain::{Email, UserQuery, Username};
use user_core::testing::Fixture;
use user_http::AppState;
use user_management_fuzz::{NEW_PASSWORD, Str, World, block_on};

/// A well-formed CSRF token (43 characters) that the request sends as its cookie.
const CSRF: &str = "fuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuz";

#[derive(Debug, Clone, Copy, PartialEq, Arbitrary)]
enum Who {
    Nobody,
    User,
    Admin,
}

#[derive(Debug, Arbitrary)]
enum Csrf {
    Good,
    Missing,
    Wrong(String),
}

#[derive(Debug, Arbitrary)]
enum Target {
    Me,
    Admin,
    Text(String),
}

#[derive(Debug, Arbitrary)]
enum Field {
    Identifier,
    Password,
    Next,
    Username,
    Email,
    DisplayName,
    CurrentPassword,
    NewPassword,
    Role,
    Status,
    Other(String),
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum PostPage {
    Login,
    Register,
    Logout,
    ProfileEdit,
    ProfilePassword,
    RevokeSession,
    AdminEdit,
    AdminRole,
    AdminStatus,
    AdminDelete,
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum GetPage {
    Home,
    Login,
    Register,
    Profile,
    AdminUsers,
    AdminUser,
    AdminEdit,
    Missing,
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum ApiCall {
    Register,
    Login,
    Refresh,
    UpdateMe,
    ChangePassword,
    DeleteMe,
    AdminUpdate,
    AdminRole,
    AdminStatus,
    AdminGet,
    RevokeSession,
}

#[derive(Debug, Arbitrary)]
enum Req {
    /// The sign-in form with a fuzzed `next` (where to go after signing in).
    SignIn {
        identifier: Str,
        password: Str,
        next: String,
        /// Put a `/` before `next`, so that it passes as a local path more often.
        slash: bool,
    },
    Form {
        page: PostPage,
        target: Target,
        csrf: Csrf,
        fields: Vec<(Field, Str)>,
        /// Appended to the encoded body as is.
        raw_tail: Option<String>,
    },
    Page {
        page: GetPage,
        target: Target,
        query: Vec<(String, String)>,
    },
    Api {
        call: ApiCall,
        target: Target,
        body: String,
    },
    ApiRegister {
        username: Str,
        email: Str,
        password: Str,
        display_name: Option<String>,
    },
    ApiList {
        search: Option<String>,
        role: Option<String>,
        status: Option<String>,
        limit: Option<String>,
        cursor: Option<String>,
    },
}

/// A value known to be valid for the field.
fn good_value(f: &Field) -> &'static str {
    match f {
        Field::Identifier => "alice",
        Field::Password | Field::CurrentPassword => Fixture::PASSWORD,
        Field::NewPassword => NEW_PASSWORD,
        Field::Next => "/profile",
        Field::Username => "bob",
        Field::Email => "bob@example.com",
        Field::DisplayName => "Bob",
        Field::Role => "admin",
        Field::Status => "disabled",
        Field::Other(_) => "",
    }
}

fn field_name(f: &Field) -> &str {
    match f {
        Field::Identifier => "identifier",
        Field::Password => "password",
        Field::Next => "next",
        Field::Username => "username",
        Field::Email => "email",
        Field::DisplayName => "display_name",
        Field::CurrentPassword => "current_password",
        Field::NewPassword => "new_password",
        Field::Role => "role",
        Field::Status => "status",
        Field::Other(s) => s,
    }
}

/// Percent-encodes a path segment.
fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn id(world: &World, t: &Target) -> String {
    match t {
        Target::Me => world.user.user.id.to_string(),
        Target::Admin => world.admin.user.id.to_string(),
        Target::Text(s) => segment(s),
    }
}

struct Answer {
    status: StatusCode,
    location: Option<String>,
    set_cookies: Vec<String>,
    content_type: String,
    body: Bytes,
}

fn build(
    world: &World,
    who: Who,
    method: Method,
    uri: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Option<http::Request<axum::body::Body>> {
    let mut cookies = format!("csrf={CSRF}");
    let mut request = http::Request::builder().method(method).uri(uri);
    match who {
        Who::Nobody => {}
        Who::User => {
            cookies.push_str(&format!("; session={}", world.user.cookie));
            request = request.header(
                header::AUTHORIZATION,
                format!("Bearer {}", world.user.token),
            );
        }
        Who::Admin => {
            cookies.push_str(&format!("; session={}", world.admin.cookie));
            request = request.header(
                header::AUTHORIZATION,
                format!("Bearer {}", world.admin.token),
            );
        }
    }
    request = request.header(header::COOKIE, cookies);
    if let Some(ct) = content_type {
        request = request.header(header::CONTENT_TYPE, ct);
    }
    request.body(axum::body::Body::from(body)).ok()
}

async fn send(world: &World, request: http::Request<axum::body::Body>) -> Answer {
    let app = user_http::router(AppState::new(world.auth.clone(), world.users.clone()));
    let response = app.oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    let text = |v: &http::HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
    Answer {
        status: parts.status,
        location: parts.headers.get(header::LOCATION).map(text),
        set_cookies: parts
            .headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(text)
            .collect(),
        content_type: parts
            .headers
            .get(header::CONTENT_TYPE)
            .map(text)
            .unwrap_or_default(),
        body,
    }
}

fn check_common(what: &str, a: &Answer) {
    assert!(
        !a.status.is_server_error(),
        "{what}: {} {}",
        a.status,
        String::from_utf8_lossy(&a.body)
    );
    if let Some(location) = &a.location {
        assert!(
            location.starts_with('/')
                && !location.starts_with("//")
                && !location.starts_with("/\\"),
            "{what}: redirect off the site: {location:?}"
        );
        assert!(
            !location.chars().any(char::is_control),
            "{what}: {location:?}"
        );
    }
    if a.content_type.starts_with("text/html") {
        let page = String::from_utf8_lossy(&a.body).to_ascii_lowercase();
        assert!(!page.contains("<script"), "{what}: a <script> in the page");
    }
    if a.content_type.starts_with("application/json") && !a.status.is_success() {
        let v: serde_json::Value = serde_json::from_slice(&a.body).expect("JSON error body");
        assert!(
            v.get("code").is_some_and(serde_json::Value::is_string),
            "{what}: {v}"
        );
    }
}

fn new_session(a: &Answer) -> bool {
    a.set_cookies
        .iter()
        .any(|c| c.starts_with("session=") && !c.starts_with("session=;"))
}

fuzz_target!(|input: (Who, Req)| {
    let (who, req) = input;
    block_on(async {
        let world = World::new().await;
        match req {
            Req::SignIn {
                identifier,
                password,
                next,
                slash,
            } => {
                let next = if slash { format!("/{next}") } else { next };
                let (identifier, password) =
                    (identifier.or("alice"), password.or(Fixture::PASSWORD));
                let body = serde_urlencoded::to_string([
                    ("csrf_token", CSRF),
                    ("identifier", &identifier),
                    ("password", &password),
                    ("next", &next),
                ])
                .expect("encodes");
                let Some(request) = build(
                    &world,
                    who,
                    Method::POST,
                    "/login",
                    Some("application/x-www-form-urlencoded"),
                    body.into_bytes(),
                ) else {
                    return;
                };
                let a = send(&world, request).await;
                check_common("POST /login", &a);
                if a.status == StatusCode::SEE_OTHER {
                    assert!(new_session(&a), "signed in without a new session");
                }
            }
            Req::Form {
                page,
                target,
                csrf,
                fields,
                raw_tail,
            } => {
                let t = id(&world, &target);
                let path = match page {
                    PostPage::Login => "/login".to_owned(),
                    PostPage::Register => "/register".to_owned(),
                    PostPage::Logout => "/logout".to_owned(),
                    PostPage::ProfileEdit => "/profile/edit".to_owned(),
                    PostPage::ProfilePassword => "/profile/password".to_owned(),
                    PostPage::RevokeSession => format!("/profile/sessions/{t}/revoke"),
                    PostPage::AdminEdit => format!("/admin/users/{t}/edit"),
                    PostPage::AdminRole => format!("/admin/users/{t}/role"),
                    PostPage::AdminStatus => format!("/admin/users/{t}/status"),
                    PostPage::AdminDelete => format!("/admin/users/{t}/delete"),
                };
                let mut pairs: Vec<(&str, &str)> = Vec::new();
                let good = matches!(csrf, Csrf::Good);
                match &csrf {
                    Csrf::Good => pairs.push(("csrf_token", CSRF)),
                    Csrf::Missing => {}
                    Csrf::Wrong(s) => pairs.push(("csrf_token", s)),
                }
                let csrf_ok_anyway = matches!(&csrf, Csrf::Wrong(s) if s == CSRF);
                // A fuzzed field named `csrf_token` would decide the check: keep it out.
                let values: Vec<(&str, String)> = fields
                    .iter()
                    .filter(|(f, _)| field_name(f) != "csrf_token")
                    .map(|(f, v)| (field_name(f), v.or(good_value(f))))
                    .collect();
                for (f, v) in &values {
                    pairs.push((f, v));
                }
                let mut body = serde_urlencoded::to_string(&pairs).expect("encodes");
                if let Some(tail) = raw_tail.filter(|t| !t.contains("csrf_token")) {
                    body.push('&');
                    body.push_str(&tail);
                }
                let Some(request) = build(
                    &world,
                    who,
                    Method::POST,
                    &path,
                    Some("application/x-www-form-urlencoded"),
                    body.into_bytes(),
                ) else {
                    return;
                };
                let a = send(&world, request).await;
                check_common(&format!("POST {path}"), &a);
                if !good && !csrf_ok_anyway {
                    let to_login = a
                        .location
                        .as_deref()
                        .is_some_and(|l| l.starts_with("/login?next="));
                    assert!(
                        matches!(
                            a.status,
                            StatusCode::FORBIDDEN
                                | StatusCode::BAD_REQUEST
                                | StatusCode::NOT_FOUND
                                | StatusCode::METHOD_NOT_ALLOWED
                        ) || (who == Who::Nobody && to_login)
                            || (who == Who::User && a.status == StatusCode::FORBIDDEN),
                        "POST {path} without the CSRF token answered {} {:?}",
                        a.status,
                        a.location
                    );
                    assert!(!new_session(&a), "POST {path}: session cookie without CSRF");
                }
            }
            Req::Page {
                page,
                target,
                query,
            } => {
                let t = id(&world, &target);
                let path = match page {
                    GetPage::Home => "/".to_owned(),
                    GetPage::Login => "/login".to_owned(),
                    GetPage::Register => "/register".to_owned(),
                    GetPage::Profile => "/profile".to_owned(),
                    GetPage::AdminUsers => "/admin/users".to_owned(),
                    GetPage::AdminUser => format!("/admin/users/{t}"),
                    GetPage::AdminEdit => format!("/admin/users/{t}/edit"),
                    GetPage::Missing => format!("/{t}"),
                };
                let query = serde_urlencoded::to_string(&query).expect("encodes");
                let uri = format!("{path}?{query}");
                let Some(request) = build(&world, who, Method::GET, &uri, None, vec![]) else {
                    return;
                };
                let a = send(&world, request).await;
                check_common(&format!("GET {uri}"), &a);
            }
            Req::Api { call, target, body } => {
                let t = id(&world, &target);
                let (method, path) = match call {
                    ApiCall::Register => (Method::POST, "/api/v1/auth/register".to_owned()),
                    ApiCall::Login => (Method::POST, "/api/v1/auth/login".to_owned()),
                    ApiCall::Refresh => (Method::POST, "/api/v1/auth/refresh".to_owned()),
                    ApiCall::UpdateMe => (Method::PATCH, "/api/v1/me".to_owned()),
                    ApiCall::ChangePassword => (Method::PUT, "/api/v1/me/password".to_owned()),
                    ApiCall::DeleteMe => (Method::DELETE, "/api/v1/me".to_owned()),
                    ApiCall::AdminUpdate => (Method::PATCH, format!("/api/v1/admin/users/{t}")),
                    ApiCall::AdminRole => (Method::PUT, format!("/api/v1/admin/users/{t}/role")),
                    ApiCall::AdminStatus => {
                        (Method::PUT, format!("/api/v1/admin/users/{t}/status"))
                    }
                    ApiCall::AdminGet => (Method::GET, format!("/api/v1/admin/users/{t}")),
                    ApiCall::RevokeSession => (Method::DELETE, format!("/api/v1/me/sessions/{t}")),
                };
                let Some(request) = build(
                    &world,
                    who,
                    method.clone(),
                    &path,
                    Some("application/json"),
                    body.into_bytes(),
                ) else {
                    return;
                };
                let a = send(&world, request).await;
                check_common(&format!("{method} {path}"), &a);
            }
            Req::ApiRegister {
                username,
                email,
                password,
                display_name,
            } => {
                let username = username.or("bob");
                let email = email.or("bob@example.com");
                let password = password.or(NEW_PASSWORD);
                let body = serde_json::json!({
                    "username": username, "email": email,
                    "password": password, "display_name": display_name,
                });
                let Some(request) = build(
                    &world,
                    who,
                    Method::POST,
                    "/api/v1/auth/register",
                    Some("application/json"),
                    body.to_string().into_bytes(),
                ) else {
                    return;
                };
                let a = send(&world, request).await;
                check_common("POST /api/v1/auth/register", &a);
                if a.status == StatusCode::CREATED {
                    let v: serde_json::Value = serde_json::from_slice(&a.body).expect("JSON");
                    let u = Username::parse(&username).expect("registered an invalid username");
                    let e = Email::parse(&email).expect("registered an invalid email");
                    assert_eq!(v["username"], u.as_str());
                    assert_eq!(v["email"], e.as_str());
                    assert_eq!(v["role"], "user");
                }
            }
            Req::ApiList {
                search,
                role,
                status,
                limit,
                cursor,
            } => {
                let mut pairs = Vec::new();
                for (k, v) in [
                    ("search", &search),
                    ("role", &role),
                    ("status", &status),
                    ("limit", &limit),
                    ("cursor", &cursor),
                ] {
                    if let Some(v) = v {
                        pairs.push((k, v.as_str()));
                    }
                }
                let uri = format!(
                    "/api/v1/admin/users?{}",
                    serde_urlencoded::to_string(&pairs).expect("encodes")
                );
                let Some(request) = build(&world, who, Method::GET, &uri, None, vec![]) else {
                    return;
                };
                let a = send(&world, request).await;
                check_common(&format!("GET {uri}"), &a);
                if a.status == StatusCode::OK {
                    assert_eq!(who, Who::Admin, "non-admin listed users");
                    let v: serde_json::Value = serde_json::from_slice(&a.body).expect("JSON");
                    let n = v["users"].as_array().expect("users").len();
                    let max = limit
                        .as_deref()
                        .and_then(|l| l.parse::<u32>().ok())
                        .unwrap_or(UserQuery::DEFAULT_LIMIT);
                    assert!(n as u32 <= max, "{n} users for limit {max}");
                }
            }
        }
    });
});
