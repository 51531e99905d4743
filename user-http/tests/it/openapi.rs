//! The OpenAPI document lists every route the router serves, and the docs page renders it.

use axum::http::{Method, StatusCode};

use crate::TestApp;

/// Every JSON route, as the router serves it.
const ROUTES: &[(&str, &str)] = &[
    ("post", "/api/v1/auth/register"),
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/login/second-factor"),
    ("post", "/api/v1/auth/login/enrolment"),
    ("post", "/api/v1/auth/login/enrolment/confirm"),
    ("post", "/api/v1/auth/refresh"),
    ("post", "/api/v1/auth/logout"),
    ("post", "/api/v1/auth/logout-all"),
    ("post", "/api/v1/auth/password-reset"),
    ("post", "/api/v1/auth/password-reset/confirm"),
    ("post", "/api/v1/auth/verify-email"),
    ("post", "/api/v1/auth/verify-email/resend"),
    ("get", "/api/v1/me"),
    ("patch", "/api/v1/me"),
    ("delete", "/api/v1/me"),
    ("put", "/api/v1/me/password"),
    ("get", "/api/v1/me/sessions"),
    ("delete", "/api/v1/me/sessions/{id}"),
    ("post", "/api/v1/me/verification"),
    ("get", "/api/v1/me/events"),
    ("get", "/api/v1/me/export"),
    ("get", "/api/v1/me/second-factor"),
    ("post", "/api/v1/me/second-factor/totp"),
    ("post", "/api/v1/me/second-factor/totp/confirm"),
    ("post", "/api/v1/me/second-factor/recovery-codes"),
    ("post", "/api/v1/me/second-factor/disable"),
    ("get", "/api/v1/admin/users"),
    ("get", "/api/v1/admin/users/{id}"),
    ("patch", "/api/v1/admin/users/{id}"),
    ("delete", "/api/v1/admin/users/{id}"),
    ("put", "/api/v1/admin/users/{id}/role"),
    ("put", "/api/v1/admin/users/{id}/status"),
    ("post", "/api/v1/admin/users/{id}/unlock"),
    ("post", "/api/v1/admin/users/{id}/password-reset"),
    ("get", "/api/v1/admin/users/{id}/second-factor"),
    ("delete", "/api/v1/admin/users/{id}/second-factor"),
    ("get", "/api/v1/admin/audit"),
    ("get", "/.well-known/jwks.json"),
    ("get", "/healthz"),
    ("get", "/readyz"),
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
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    expected.sort();
    assert_eq!(documented, expected);

    // And the router really serves each of them (anything but 404/405).
    for (method, path) in ROUTES {
        let path = path.replace("{id}", "00000000-0000-7000-8000-000000000000");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let r = app.json(method.clone(), &path, None, None).await;
        // Without a token or body every route answers with its own error, never the
        // router's "no such endpoint" or "wrong method".
        let code = if r.text.starts_with('{') {
            r.code()
        } else {
            String::new()
        };
        assert!(
            !["not_found", "method_not_allowed"].contains(&code.as_str()),
            "{method} {path}: {}",
            r.text
        );
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
