//! The OpenAPI document lists every route the router serves, and the docs page renders it.

use axum::http::{Method, StatusCode};

use crate::TestApp;

/// A route that needs a bearer token.
const TOKEN: bool = true;
/// A route anyone may call.
const OPEN: bool = false;

/// Every JSON route, as the router serves it, and whether it needs a token.
const ROUTES: &[(&str, &str, bool)] = &[
    ("post", "/api/v1/auth/register", OPEN),
    ("post", "/api/v1/auth/login", OPEN),
    ("post", "/api/v1/auth/login/second-factor", OPEN),
    ("post", "/api/v1/auth/login/enrolment", OPEN),
    ("post", "/api/v1/auth/login/enrolment/confirm", OPEN),
    ("post", "/api/v1/auth/refresh", OPEN),
    ("post", "/api/v1/auth/logout", TOKEN),
    ("post", "/api/v1/auth/logout-all", TOKEN),
    ("post", "/api/v1/auth/password-reset", OPEN),
    ("post", "/api/v1/auth/password-reset/confirm", OPEN),
    ("post", "/api/v1/auth/verify-email", OPEN),
    ("post", "/api/v1/auth/verify-email/resend", OPEN),
    ("get", "/api/v1/me", TOKEN),
    ("patch", "/api/v1/me", TOKEN),
    ("delete", "/api/v1/me", TOKEN),
    ("put", "/api/v1/me/password", TOKEN),
    ("get", "/api/v1/me/sessions", TOKEN),
    ("delete", "/api/v1/me/sessions/{id}", TOKEN),
    ("post", "/api/v1/me/verification", TOKEN),
    ("get", "/api/v1/me/events", TOKEN),
    ("get", "/api/v1/me/export", TOKEN),
    ("get", "/api/v1/me/second-factor", TOKEN),
    ("post", "/api/v1/me/second-factor/totp", TOKEN),
    ("post", "/api/v1/me/second-factor/totp/confirm", TOKEN),
    ("post", "/api/v1/me/second-factor/recovery-codes", TOKEN),
    ("post", "/api/v1/me/second-factor/disable", TOKEN),
    ("get", "/api/v1/admin/users", TOKEN),
    ("get", "/api/v1/admin/users/{id}", TOKEN),
    ("patch", "/api/v1/admin/users/{id}", TOKEN),
    ("delete", "/api/v1/admin/users/{id}", TOKEN),
    ("put", "/api/v1/admin/users/{id}/role", TOKEN),
    ("put", "/api/v1/admin/users/{id}/status", TOKEN),
    ("post", "/api/v1/admin/users/{id}/unlock", TOKEN),
    ("post", "/api/v1/admin/users/{id}/password-reset", TOKEN),
    ("get", "/api/v1/admin/users/{id}/second-factor", TOKEN),
    ("delete", "/api/v1/admin/users/{id}/second-factor", TOKEN),
    ("get", "/api/v1/admin/audit", TOKEN),
    ("get", "/.well-known/jwks.json", OPEN),
    ("get", "/healthz", OPEN),
    ("get", "/readyz", OPEN),
];

#[tokio::test]
async fn the_document_and_the_router_agree() {
    let app = TestApp::new().await;
    let doc = app
        .json(Method::GET, "/api/v1/openapi.json", None, None)
        .await
        .json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let mut documented = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.push((method.clone(), path.clone()));
        }
    }
    documented.sort();
    let mut expected: Vec<_> = ROUTES
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    expected.sort();
    assert_eq!(documented, expected);

    for (method, template, needs_token) in ROUTES {
        // The document asks for the bearer token exactly where the server does.
        let security = &doc["paths"][template][method]["security"];
        assert_eq!(
            security.is_array(),
            *needs_token,
            "{method} {template}: security {security}"
        );
        let path = template.replace("{id}", "00000000-0000-7000-8000-000000000000");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let r = app.json(method.clone(), &path, None, None).await;
        let code = if r.text.starts_with('{') {
            r.code()
        } else {
            String::new()
        };
        if *needs_token {
            // Without a token: 401 before anything else (the body, the id, the role).
            assert_eq!(
                (r.status, code.as_str()),
                (StatusCode::UNAUTHORIZED, "unauthenticated"),
                "{method} {path}: {}",
                r.text
            );
            assert!(
                r.headers.contains_key(axum::http::header::WWW_AUTHENTICATE),
                "{method} {path}"
            );
        } else {
            // Each open route answers with its own error (or its answer), never the
            // router's "no such endpoint" or "wrong method", and never asks for a token.
            assert!(
                !["not_found", "method_not_allowed"].contains(&code.as_str()),
                "{method} {path}: {}",
                r.text
            );
            assert_ne!(
                r.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path}: {}",
                r.text
            );
        }
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn the_docs_page_needs_no_download() {
    let app = TestApp::new().await;
    let r = app.json(Method::GET, "/api/v1/docs", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    // minijinja escapes '/' as &#x2f; in text; the browser shows the path as is.
    assert!(
        r.text.contains("api&#x2f;v1&#x2f;auth&#x2f;login"),
        "{}",
        r.text
    );
    assert!(
        r.text
            .contains("Sign in with a username or email and a password.")
    );
    assert!(!r.text.contains("<script"), "no scripts at all");
    assert!(!r.text.contains("https://"), "nothing from a CDN");
}
