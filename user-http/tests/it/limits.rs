//! Malformed, oversized and unexpected requests get the error shape and the right status.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::json;

use crate::TestApp;

fn raw(
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(ct) = content_type {
        b = b.header(header::CONTENT_TYPE, ct);
    }
    b.body(body.into()).unwrap()
}

#[tokio::test]
async fn bad_bodies_get_clear_errors() {
    let app = TestApp::new().await;
    let path = "/api/v1/auth/register";
    let r = app
        .send(raw(
            Method::POST,
            path,
            Some("application/json"),
            "{not json",
        ))
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "malformed_request")
    );
    let r = app
        .send(raw(Method::POST, path, Some("text/plain"), "{}"))
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );
    let r = app
        .send(raw(
            Method::POST,
            path,
            Some("application/json"),
            r#"{"username": 5}"#,
        ))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.json()["message"].as_str().unwrap().contains("username"),
        "{}",
        r.text
    );
    let big = json!({"username": "a", "email": "b", "password": "x".repeat(70 * 1024)}).to_string();
    let r = app
        .send(raw(Method::POST, path, Some("application/json"), big))
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_use_the_error_shape() {
    let app = TestApp::new().await;
    let r = app.json(Method::GET, "/api/v1/nope", None, None).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let r = app
        .json(Method::GET, "/api/v1/auth/login", None, None)
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    let r = app.json(Method::GET, "/no/such/page", None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.text.contains("Page not found"));
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = TestApp::new().await;
    for path in ["/login", "/api/v1/me", "/healthz", "/static/style.css"] {
        let r = app.json(Method::GET, path, None, None).await;
        let csp = r.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "{path}"
        );
        assert_eq!(r.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(r.headers[header::REFERRER_POLICY], "same-origin");
    }
}
