//! The document lists every status each route answers with: every route is walked with the
//! requests that provoke each failure a client can meet (no token, a bad token, a non-admin,
//! broken JSON, a wrong content type, an oversized body, invalid values, unknown ids,
//! conflicts, throttling, a database that does not answer), and each answer's status must be
//! documented for that route and method, with the body the document gives it (an `ErrorBody`
//! whose `code` is in the schema's enum, or nothing). Wrong methods (405) and requests that
//! outlive a short timeout (408: a body that never arrives, a store with no free
//! connection) are walked too. Then every documented status and every code of the enum must
//! have been seen, so the document promises nothing the server cannot do.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use user_core::auth::AuthPolicy;
use user_core::ports::Clock as _;
use user_http::{ErrorCode, HttpConfig, Templates};

use crate::page_errors::SaturableHasher;
use crate::{PW, Reply, TestApp};

const MISSING: &str = "00000000-0000-7000-8000-000000000000";

/// Documented statuses no request can provoke here: internal failures, and a signed-in
/// caller's account deleted while their own request runs.
const NOT_PROVOKED: &[(&str, &str, u16)] = &[
    ("patch", "/api/v1/me", 404),
    ("delete", "/api/v1/me", 404),
    ("put", "/api/v1/me/password", 404),
    ("get", "/api/v1/me/export", 404),
    ("get", SF_STATUS.1, 404),
    ("post", SF_TOTP.1, 404),
    ("post", SF_CODES.1, 404),
    ("post", SF_DISABLE.1, 404),
];

/// Error codes no request to a documented route can provoke: internal failures, and the
/// refusal of a cookie from another site, which only a host's routes using `CurrentActor`
/// give (tested in `security.rs`).
const CODES_NOT_PROVOKED: &[ErrorCode] = &[ErrorCode::Internal, ErrorCode::CrossSite];

/// What a request carries.
#[derive(Clone)]
enum Payload {
    None,
    Json(Value),
    Raw(Option<&'static str>, String),
    /// A JSON body that never arrives.
    Stalled,
}

/// The served document, every (method, path template, status) and every error code answered
/// so far.
struct Walk {
    app: TestApp,
    hasher: std::sync::Arc<SaturableHasher>,
    doc: Value,
    seen: BTreeSet<(String, String, u16)>,
    codes: BTreeSet<String>,
    /// The senders of stalled bodies, kept so the bodies stay open.
    stalled: Vec<http_body_util::channel::Sender<Bytes>>,
}

impl Walk {
    async fn new() -> Self {
        // One registration and one sign-in per minute per client address, so the limits are
        // reached in two requests; requests without a client address are not limited.
        let policy = AuthPolicy {
            registrations_per_ip_per_hour: NonZeroU32::new(1),
            login_attempts_per_ip_per_minute: NonZeroU32::new(1),
            ..AuthPolicy::default()
        };
        let hasher = std::sync::Arc::new(SaturableHasher::default());
        let app = TestApp::with_hasher(
            HttpConfig::default(),
            Templates::default(),
            policy,
            hasher.clone(),
        )
        .await;
        let doc = app
            .json(Method::GET, "/api/v1/openapi.json", None, None)
            .await
            .json();
        Self {
            app,
            hasher,
            doc,
            seen: BTreeSet::new(),
            codes: BTreeSet::new(),
            stalled: Vec::new(),
        }
    }

    /// The values of `ErrorBody.code`'s enum.
    fn code_enum(&self) -> Vec<String> {
        let codes = &self.doc["components"]["schemas"]["ErrorBody"]["properties"]["code"]["enum"];
        codes
            .as_array()
            .expect("ErrorBody.code has an enum")
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect()
    }

    fn documented(&self, method: &str, template: &str) -> Vec<u16> {
        let responses = &self.doc["paths"][template][method]["responses"];
        let responses = responses
            .as_object()
            .unwrap_or_else(|| panic!("{method} {template} is not in the document"));
        responses.keys().map(|s| s.parse().unwrap()).collect()
    }

    /// Sends a request to the route `method template` (with `{id}` replaced by `id`), checks
    /// that its status is documented there, and returns the answer.
    async fn send(
        &mut self,
        (method, template): (&str, &str),
        id: &str,
        token: Option<&str>,
        payload: Payload,
        client: Option<&str>,
    ) -> Reply {
        let path = template.replace("{id}", id);
        let mut b = Request::builder()
            .method(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap())
            .uri(&path);
        if let Some(token) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match payload {
            Payload::None => Body::empty(),
            Payload::Json(v) => {
                b = b.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            Payload::Raw(content_type, text) => {
                if let Some(ct) = content_type {
                    b = b.header(header::CONTENT_TYPE, ct);
                }
                Body::from(text)
            }
            Payload::Stalled => {
                b = b.header(header::CONTENT_TYPE, "application/json");
                let (sender, body) = http_body_util::channel::Channel::<Bytes>::new(1);
                self.stalled.push(sender);
                Body::new(body)
            }
        };
        let mut request = b.body(body).unwrap();
        if let Some(ip) = client {
            let addr: SocketAddr = format!("{ip}:40000").parse().unwrap();
            request.extensions_mut().insert(ConnectInfo(addr));
        }
        let r = self.app.send(request).await;
        self.check(method, template, &r);
        r
    }

    /// Checks that `r` is documented for `method template`, with its body, and records it.
    fn check(&mut self, method: &str, template: &str, r: &Reply) {
        let status = r.status.as_u16();
        let documented = self.documented(method, template);
        assert!(
            documented.contains(&status),
            "{method} {template} answered {status}, not documented (documented: {documented:?}): {}",
            r.text
        );
        let response = &self.doc["paths"][template][method]["responses"][status.to_string()];
        let error_body = response["content"]["application/json"]["schema"]["$ref"]
            == "#/components/schemas/ErrorBody";
        if error_body {
            let code = r.code();
            assert!(
                self.code_enum().contains(&code),
                "{method} {template} {status}: code {code:?} is not in ErrorBody.code's enum: {}",
                r.text
            );
            self.codes.insert(code);
        } else if response.get("content").is_none() {
            assert!(
                r.text.is_empty(),
                "{method} {template} {status}: documented without a body: {}",
                r.text
            );
        }
        self.seen
            .insert((method.to_owned(), template.to_owned(), status));
    }

    /// [`Walk::send`], expecting `status`.
    async fn expect(
        &mut self,
        route: (&str, &str),
        id: &str,
        token: Option<&str>,
        payload: Payload,
        status: StatusCode,
    ) -> Reply {
        let r = self.send(route, id, token, payload, None).await;
        assert_eq!(r.status, status, "{} {} {id}: {}", route.0, route.1, r.text);
        r
    }

    async fn tokens(&self, name: &str) -> Value {
        self.app.login(name).await
    }
}

fn json(v: Value) -> Payload {
    Payload::Json(v)
}

fn register_body(name: &str) -> Value {
    json!({"username": name, "email": format!("{name}@example.com"), "password": PW})
}

/// Every route with what it needs: whom it admits, and a body it accepts.
struct Route {
    route: (&'static str, &'static str),
    auth: Auth,
    body: Option<Value>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Auth {
    Anyone,
    SignedIn,
    Admin,
}

fn routes() -> Vec<Route> {
    let r = |method, path, auth, body| Route {
        route: (method, path),
        auth,
        body,
    };
    vec![
        r(
            "post",
            "/api/v1/auth/register",
            Auth::Anyone,
            Some(register_body("zed")),
        ),
        r(
            "post",
            "/api/v1/auth/login",
            Auth::Anyone,
            Some(json!({"identifier": "alice", "password": PW})),
        ),
        r(
            "post",
            "/api/v1/auth/refresh",
            Auth::Anyone,
            Some(json!({"refresh_token": "x"})),
        ),
        r(
            "post",
            "/api/v1/auth/password-reset",
            Auth::Anyone,
            Some(json!({"email": "nobody@example.com"})),
        ),
        r(
            "post",
            "/api/v1/auth/password-reset/confirm",
            Auth::Anyone,
            Some(json!({"token": "x", "new_password": "a fresh new passphrase"})),
        ),
        r(
            "post",
            "/api/v1/auth/verify-email",
            Auth::Anyone,
            Some(json!({"token": "x"})),
        ),
        r(
            "post",
            VERIFY_REQUEST,
            Auth::Anyone,
            Some(json!({"email": "nobody@example.com"})),
        ),
        r("post", "/api/v1/me/verification", Auth::SignedIn, None),
        r(
            "post",
            "/api/v1/admin/users/{id}/password-reset",
            Auth::Admin,
            None,
        ),
        r("post", "/api/v1/auth/logout", Auth::SignedIn, None),
        r("post", "/api/v1/auth/logout-all", Auth::SignedIn, None),
        r("get", "/api/v1/me", Auth::SignedIn, None),
        r(
            "patch",
            "/api/v1/me",
            Auth::SignedIn,
            Some(json!({"display_name": "Al"})),
        ),
        r(
            "delete",
            "/api/v1/me",
            Auth::SignedIn,
            Some(json!({"password": "wrong password"})),
        ),
        r(
            "put",
            "/api/v1/me/password",
            Auth::SignedIn,
            Some(
                json!({"current_password": "wrong password", "new_password": "a fresh new passphrase"}),
            ),
        ),
        r("get", "/api/v1/me/sessions", Auth::SignedIn, None),
        r("get", "/api/v1/me/events", Auth::SignedIn, None),
        r("get", "/api/v1/me/export", Auth::SignedIn, None),
        r("get", "/api/v1/admin/audit", Auth::Admin, None),
        r("delete", "/api/v1/me/sessions/{id}", Auth::SignedIn, None),
        r("get", "/api/v1/admin/users", Auth::Admin, None),
        r("get", "/api/v1/admin/users/{id}", Auth::Admin, None),
        r(
            "patch",
            "/api/v1/admin/users/{id}",
            Auth::Admin,
            Some(json!({"display_name": "X"})),
        ),
        r("delete", "/api/v1/admin/users/{id}", Auth::Admin, None),
        r(
            "put",
            "/api/v1/admin/users/{id}/role",
            Auth::Admin,
            Some(json!({"role": "user"})),
        ),
        r(
            "put",
            "/api/v1/admin/users/{id}/status",
            Auth::Admin,
            Some(json!({"status": "active"})),
        ),
        r("post", "/api/v1/admin/users/{id}/unlock", Auth::Admin, None),
        r(
            SF_SECOND_STEP.0,
            SF_SECOND_STEP.1,
            Auth::Anyone,
            Some(json!({"challenge": "x", "code": "123456"})),
        ),
        r(
            SF_ENROL.0,
            SF_ENROL.1,
            Auth::Anyone,
            Some(json!({"challenge": "x"})),
        ),
        r(
            SF_ENROL_CONFIRM.0,
            SF_ENROL_CONFIRM.1,
            Auth::Anyone,
            Some(json!({"challenge": "x", "code": "123456"})),
        ),
        r(SF_STATUS.0, SF_STATUS.1, Auth::SignedIn, None),
        r(
            SF_TOTP.0,
            SF_TOTP.1,
            Auth::SignedIn,
            Some(json!({"password": "wrong password"})),
        ),
        r(
            SF_TOTP_CONFIRM.0,
            SF_TOTP_CONFIRM.1,
            Auth::SignedIn,
            Some(json!({"code": "123456"})),
        ),
        r(
            SF_CODES.0,
            SF_CODES.1,
            Auth::SignedIn,
            Some(json!({"password": "wrong password", "code": "123456"})),
        ),
        r(
            SF_DISABLE.0,
            SF_DISABLE.1,
            Auth::SignedIn,
            Some(json!({"password": "wrong password", "code": "123456"})),
        ),
        r(SF_ADMIN.0, SF_ADMIN.1, Auth::Admin, None),
        r(SF_ADMIN_RESET.0, SF_ADMIN_RESET.1, Auth::Admin, None),
        r("get", "/.well-known/jwks.json", Auth::Anyone, None),
        r("get", "/healthz", Auth::Anyone, None),
        r("get", "/readyz", Auth::Anyone, None),
    ]
}

/// The failures every route shares: authentication, the role, the body, the id.
async fn common_failures(w: &mut Walk, user: &str, admin: &str) {
    let oversized = json!({ "password": "x".repeat(70 * 1024) }).to_string();
    for Route { route, auth, body } in routes() {
        let token = match auth {
            Auth::Anyone => None,
            Auth::SignedIn => Some(user),
            Auth::Admin => Some(admin),
        };
        let payload = body.clone().map_or(Payload::None, json);
        if auth != Auth::Anyone {
            for bad in [None, Some("not-a-token")] {
                let r = w.send(route, MISSING, bad, payload.clone(), None).await;
                assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{route:?}");
            }
        }
        if auth == Auth::Admin {
            let r = w
                .send(route, MISSING, Some(user), payload.clone(), None)
                .await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{route:?}");
        }
        if body.is_some() {
            let cases = [
                (Some("application/json"), "{not json".to_owned(), 400),
                (Some("text/plain"), "{}".to_owned(), 415),
                (None, "{}".to_owned(), 415),
                (Some("application/json"), oversized.clone(), 413),
                (Some("application/json"), "[]".to_owned(), 422),
                (
                    Some("application/json"),
                    r#"{"unknown": 1}"#.to_owned(),
                    422,
                ),
            ];
            for (content_type, text, status) in cases {
                let r = w
                    .send(
                        route,
                        MISSING,
                        token,
                        Payload::Raw(content_type, text),
                        None,
                    )
                    .await;
                assert_eq!(r.status.as_u16(), status, "{route:?}: {}", r.text);
            }
        }
        if route.1.contains("{id}") {
            for bad in ["not-an-id", "%FF", "%20"] {
                let r = w.send(route, bad, token, payload.clone(), None).await;
                // A malformed id is invalid input on every `{id}` route: 422, not 400 or 404.
                assert_eq!(
                    r.status,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "{route:?} {bad}: {}",
                    r.text
                );
            }
            let r = w.send(route, MISSING, token, payload.clone(), None).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{route:?}: {}", r.text);
        }
    }
}

const REGISTER: (&str, &str) = ("post", "/api/v1/auth/register");
const LOGIN: (&str, &str) = ("post", "/api/v1/auth/login");
const REFRESH: (&str, &str) = ("post", "/api/v1/auth/refresh");
const ME: &str = "/api/v1/me";
const PASSWORD: (&str, &str) = ("put", "/api/v1/me/password");
const USERS: (&str, &str) = ("get", "/api/v1/admin/users");
const USER: &str = "/api/v1/admin/users/{id}";
const RESET_REQUEST: &str = "/api/v1/auth/password-reset";
const VERIFY_REQUEST: &str = "/api/v1/auth/verify-email/resend";
const RESET_CONFIRM: (&str, &str) = ("post", "/api/v1/auth/password-reset/confirm");
const VERIFY_EMAIL: (&str, &str) = ("post", "/api/v1/auth/verify-email");
const RESEND: (&str, &str) = ("post", "/api/v1/me/verification");
const SF_SECOND_STEP: (&str, &str) = ("post", "/api/v1/auth/login/second-factor");
const SF_ENROL: (&str, &str) = ("post", "/api/v1/auth/login/enrolment");
const SF_ENROL_CONFIRM: (&str, &str) = ("post", "/api/v1/auth/login/enrolment/confirm");
const SF_STATUS: (&str, &str) = ("get", "/api/v1/me/second-factor");
const SF_TOTP: (&str, &str) = ("post", "/api/v1/me/second-factor/totp");
const SF_TOTP_CONFIRM: (&str, &str) = ("post", "/api/v1/me/second-factor/totp/confirm");
const SF_CODES: (&str, &str) = ("post", "/api/v1/me/second-factor/recovery-codes");
const SF_DISABLE: (&str, &str) = ("post", "/api/v1/me/second-factor/disable");
const SF_ADMIN: (&str, &str) = ("get", "/api/v1/admin/users/{id}/second-factor");
const SF_ADMIN_RESET: (&str, &str) = ("delete", "/api/v1/admin/users/{id}/second-factor");

async fn auth_routes(w: &mut Walk) {
    w.expect(
        REGISTER,
        "",
        None,
        json(register_body("dave")),
        StatusCode::CREATED,
    )
    .await;
    let dup = json!({"username": "DAVE", "email": "d2@example.com", "password": PW});
    w.expect(REGISTER, "", None, json(dup), StatusCode::CONFLICT)
        .await;
    let invalid = json!({"username": "x", "email": "nope", "password": "short"});
    w.expect(
        REGISTER,
        "",
        None,
        json(invalid),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let from = Some("10.0.0.1");
    let r = w
        .send(REGISTER, "", None, json(register_body("erin")), from)
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = w
        .send(REGISTER, "", None, json(register_body("fred")), from)
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);

    let login = |name: &str, pw: &str| json(json!({"identifier": name, "password": pw}));
    w.expect(LOGIN, "", None, login("dave", PW), StatusCode::OK)
        .await;
    w.expect(
        LOGIN,
        "",
        None,
        login("dave", "wrong"),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let r = w.send(LOGIN, "", None, login("erin", PW), from).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = w.send(LOGIN, "", None, login("erin", PW), from).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "rate limit");
    for _ in 0..4 {
        w.expect(
            LOGIN,
            "",
            None,
            login("dave", "wrong"),
            StatusCode::UNAUTHORIZED,
        )
        .await;
    }
    w.expect(
        LOGIN,
        "",
        None,
        login("dave", PW),
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;

    let tokens = w.tokens("erin").await;
    let refresh = json!({"refresh_token": tokens["refresh_token"]});
    w.expect(REFRESH, "", None, json(refresh.clone()), StatusCode::OK)
        .await;
    w.expect(REFRESH, "", None, json(refresh), StatusCode::UNAUTHORIZED)
        .await;

    let token = w.app.token("erin").await;
    w.expect(
        ("post", "/api/v1/auth/logout-all"),
        "",
        Some(&token),
        Payload::None,
        StatusCode::OK,
    )
    .await;
    let token = w.app.token("erin").await;
    w.expect(
        ("post", "/api/v1/auth/logout"),
        "",
        Some(&token),
        Payload::None,
        StatusCode::NO_CONTENT,
    )
    .await;
}

async fn me_routes(w: &mut Walk, admin: &str) {
    w.app.register("gina").await;
    w.app.register("hank").await;
    let gina = w.app.token("gina").await;
    let gina = Some(gina.as_str());
    w.expect(("get", ME), "", gina, Payload::None, StatusCode::OK)
        .await;
    w.expect(
        ("patch", ME),
        "",
        gina,
        json(json!({"display_name": "G"})),
        StatusCode::OK,
    )
    .await;
    w.expect(
        ("patch", ME),
        "",
        gina,
        json(json!({"username": "hank"})),
        StatusCode::CONFLICT,
    )
    .await;
    let bad = json!({"username": "", "display_name": "a\u{7}"});
    w.expect(
        ("patch", ME),
        "",
        gina,
        json(bad),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;

    let change =
        |current: &str, new: &str| json(json!({"current_password": current, "new_password": new}));
    w.expect(
        PASSWORD,
        "",
        gina,
        change(PW, "password"),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    // Each session has its own budget of password re-checks, and wrong passwords lock
    // Hank's sign-in too: his sessions start first.
    let first = w.app.token("hank").await;
    let second = w.app.token("hank").await;
    let third = w.app.token("hank").await;
    let fourth = w.app.token("hank").await;
    let doomed = w.app.token("hank").await;
    for _ in 0..5 {
        w.expect(
            PASSWORD,
            "",
            Some(&first),
            change("wrong password", "a fresh new passphrase"),
            StatusCode::UNAUTHORIZED,
        )
        .await;
    }
    w.expect(
        PASSWORD,
        "",
        Some(&first),
        change(PW, "a fresh new passphrase"),
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
    let confirm = |pw: &str| json(json!({"password": pw}));
    for _ in 0..5 {
        w.expect(
            ("delete", ME),
            "",
            Some(&second),
            confirm("nope"),
            StatusCode::UNAUTHORIZED,
        )
        .await;
    }
    w.expect(
        ("delete", ME),
        "",
        Some(&second),
        confirm(PW),
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
    w.expect(
        PASSWORD,
        "",
        gina,
        change(PW, "a fresh new passphrase"),
        StatusCode::NO_CONTENT,
    )
    .await;

    let sessions = ("get", "/api/v1/me/sessions");
    let r = w
        .expect(sessions, "", gina, Payload::None, StatusCode::OK)
        .await;
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    let list = w
        .expect(sessions, "", Some(&doomed), Payload::None, StatusCode::OK)
        .await
        .json();
    let doomed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .unwrap();
    w.expect(
        ("delete", "/api/v1/me/sessions/{id}"),
        doomed["id"].as_str().unwrap(),
        Some(&third),
        Payload::None,
        StatusCode::NO_CONTENT,
    )
    .await;

    // The only admin may not delete their own account; anyone else may.
    w.expect(
        ("delete", ME),
        "",
        Some(admin),
        confirm(PW),
        StatusCode::CONFLICT,
    )
    .await;
    w.expect(
        ("delete", ME),
        "",
        Some(&fourth),
        confirm(PW),
        StatusCode::NO_CONTENT,
    )
    .await;
}

async fn admin_routes(w: &mut Walk, admin: &str, admin_id: &str) {
    let admin = Some(admin);
    w.expect(USERS, "", admin, Payload::None, StatusCode::OK)
        .await;
    for query in [
        "?limit=0",
        "?role=root",
        "?status=gone",
        "?cursor=%25",
        "?limit=101",
    ] {
        let route = ("get", "/api/v1/admin/users");
        let path = format!("{}{query}", route.1);
        let r = w.app.json(Method::GET, &path, None, admin).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {}",
            r.text
        );
        assert!(w.documented(route.0, route.1).contains(&422));
        w.seen.insert((route.0.into(), route.1.into(), 422));
    }
    let r = w
        .app
        .json(
            Method::GET,
            "/api/v1/admin/users?limit=1&limit=2",
            None,
            admin,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(w.documented(USERS.0, USERS.1).contains(&400));
    w.seen.insert((USERS.0.into(), USERS.1.into(), 400));

    let ivy = w.app.register("ivy").await;
    let ivy = ivy["id"].as_str().unwrap().to_owned();
    w.expect(("get", USER), &ivy, admin, Payload::None, StatusCode::OK)
        .await;
    let patch = ("patch", USER);
    w.expect(
        patch,
        &ivy,
        admin,
        json(json!({"display_name": "Ivy"})),
        StatusCode::OK,
    )
    .await;
    w.expect(
        patch,
        &ivy,
        admin,
        json(json!({"email": "gina@example.com"})),
        StatusCode::CONFLICT,
    )
    .await;
    w.expect(
        patch,
        &ivy,
        admin,
        json(json!({"email": "no"})),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    for (route, field, value) in [
        (("put", "/api/v1/admin/users/{id}/role"), "role", "admin"),
        (
            ("put", "/api/v1/admin/users/{id}/status"),
            "status",
            "active",
        ),
    ] {
        w.expect(
            route,
            &ivy,
            admin,
            json(json!({ field: value })),
            StatusCode::OK,
        )
        .await;
        w.expect(
            route,
            &ivy,
            admin,
            json(json!({ field: "root" })),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    // Ivy is an admin now; back to one admin, who may not demote or disable themself.
    let role = ("put", "/api/v1/admin/users/{id}/role");
    w.expect(
        role,
        &ivy,
        admin,
        json(json!({"role": "user"})),
        StatusCode::OK,
    )
    .await;
    w.expect(
        role,
        admin_id,
        admin,
        json(json!({"role": "user"})),
        StatusCode::CONFLICT,
    )
    .await;
    let status = ("put", "/api/v1/admin/users/{id}/status");
    w.expect(
        status,
        admin_id,
        admin,
        json(json!({"status": "disabled"})),
        StatusCode::CONFLICT,
    )
    .await;
    w.expect(
        ("post", "/api/v1/admin/users/{id}/unlock"),
        &ivy,
        admin,
        Payload::None,
        StatusCode::NO_CONTENT,
    )
    .await;
    w.expect(
        ("delete", USER),
        admin_id,
        admin,
        Payload::None,
        StatusCode::CONFLICT,
    )
    .await;
    w.expect(
        ("delete", USER),
        &ivy,
        admin,
        Payload::None,
        StatusCode::NO_CONTENT,
    )
    .await;
}

/// The audit log, the caller's events and the export: pages, filters that do not parse, and
/// query strings that cannot be read.
async fn audit_routes(w: &mut Walk, user: &str, admin: &str) {
    let audit = ("get", "/api/v1/admin/audit");
    let events = ("get", "/api/v1/me/events");
    let export = ("get", "/api/v1/me/export");
    let r = w
        .expect(audit, "", Some(admin), Payload::None, StatusCode::OK)
        .await;
    assert!(!r.json()["events"].as_array().unwrap().is_empty());
    w.expect(events, "", Some(user), Payload::None, StatusCode::OK)
        .await;
    let r = w
        .expect(export, "", Some(user), Payload::None, StatusCode::OK)
        .await;
    assert!(r.headers.contains_key(header::CONTENT_DISPOSITION));
    let cases = [
        (audit, admin, "?kind=nap", StatusCode::UNPROCESSABLE_ENTITY),
        (
            audit,
            admin,
            "?page_size=0",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            audit,
            admin,
            "?page_token=%25",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (audit, admin, "?kind=a&kind=b", StatusCode::BAD_REQUEST),
        (events, user, "?limit=0", StatusCode::UNPROCESSABLE_ENTITY),
        (events, user, "?limit=1&limit=2", StatusCode::BAD_REQUEST),
    ];
    for (route, token, query, status) in cases {
        let path = format!("{}{query}", route.1);
        let r = w.app.json(Method::GET, &path, None, Some(token)).await;
        assert_eq!(r.status, status, "{path}: {}", r.text);
        w.check(route.0, route.1, &r);
    }
}

/// Password reset and email verification, with the tokens from the queued mails.
async fn account_routes(w: &mut Walk, admin: &str) {
    let reset = ("post", RESET_REQUEST);
    let email = |e: &str| json(json!({ "email": e }));
    let kim = w.app.register("kim").await;
    let kim_id = kim["id"].as_str().unwrap().to_owned();
    w.expect(
        reset,
        "",
        None,
        email("kim@example.com"),
        StatusCode::ACCEPTED,
    )
    .await;
    w.expect(
        reset,
        "",
        None,
        email("no address"),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    for _ in 0..5 {
        w.expect(
            reset,
            "",
            None,
            email("lee@example.com"),
            StatusCode::ACCEPTED,
        )
        .await;
    }
    w.expect(
        reset,
        "",
        None,
        email("lee@example.com"),
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;

    let token = w.app.link_token("/reset-password", "kim@example.com").await;
    let confirm = |pw: &str| json(json!({ "token": token, "new_password": pw }));
    w.expect(
        RESET_CONFIRM,
        "",
        None,
        confirm("password"),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    w.expect(
        RESET_CONFIRM,
        "",
        None,
        confirm("a fresh new passphrase"),
        StatusCode::OK,
    )
    .await;

    let body = json!({"identifier": "kim", "password": "a fresh new passphrase"});
    let r = w
        .app
        .json(Method::POST, "/api/v1/auth/login", Some(body), None)
        .await;
    let kim_token = r.json()["access_token"].as_str().unwrap().to_owned();
    let kim_token = Some(kim_token.as_str());
    w.expect(RESEND, "", kim_token, Payload::None, StatusCode::ACCEPTED)
        .await;
    let token = w.app.link_token("/verify-email", "kim@example.com").await;
    let verify = json!({ "token": token });
    w.expect(VERIFY_EMAIL, "", None, json(verify.clone()), StatusCode::OK)
        .await;
    w.expect(
        VERIFY_EMAIL,
        "",
        None,
        json(verify),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    for _ in 0..4 {
        w.expect(RESEND, "", kim_token, Payload::None, StatusCode::ACCEPTED)
            .await;
    }
    w.expect(
        RESEND,
        "",
        kim_token,
        Payload::None,
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;

    w.expect(
        ("post", "/api/v1/admin/users/{id}/password-reset"),
        &kim_id,
        Some(admin),
        Payload::None,
        StatusCode::ACCEPTED,
    )
    .await;
    w.app.link_token("/reset-password", "kim@example.com").await;

    // A new verification link by address: accepted for every address, five an hour each.
    let verify_request = ("post", VERIFY_REQUEST);
    w.app.register("max").await;
    w.app.link_token("/verify-email", "max@example.com").await;
    w.expect(
        verify_request,
        "",
        None,
        email("max@example.com"),
        StatusCode::ACCEPTED,
    )
    .await;
    w.app.link_token("/verify-email", "max@example.com").await;
    w.expect(
        verify_request,
        "",
        None,
        email("no address"),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    for _ in 0..5 {
        w.expect(
            verify_request,
            "",
            None,
            email("ned@example.com"),
            StatusCode::ACCEPTED,
        )
        .await;
    }
    let r = w
        .expect(
            verify_request,
            "",
            None,
            email("ned@example.com"),
            StatusCode::TOO_MANY_REQUESTS,
        )
        .await;
    assert!(r.headers.contains_key(header::RETRY_AFTER));
}

/// The code `secret`'s app shows at the walk's clock.
fn totp(w: &Walk, secret: &str) -> String {
    user_core::factor::totp_code(secret, w.app.clock.now())
}

/// Enrols an authenticator app for the caller of `token` through the profile routes; its
/// secret. The clock then moves to the next step, so the next code is fresh.
async fn enrol(w: &mut Walk, token: &str) -> String {
    let r = w
        .expect(
            SF_TOTP,
            "",
            Some(token),
            json(json!({"password": PW})),
            StatusCode::OK,
        )
        .await;
    let secret = r.json()["secret"].as_str().unwrap().to_owned();
    let code = totp(w, &secret);
    w.expect(
        SF_TOTP_CONFIRM,
        "",
        Some(token),
        json(json!({ "code": code })),
        StatusCode::OK,
    )
    .await;
    w.app.clock.advance(Duration::from_secs(30));
    secret
}

/// The password step of `name`, whose account has a factor: the challenge.
async fn challenge(w: &mut Walk, name: &str) -> String {
    let body = json(json!({"identifier": name, "password": PW}));
    let r = w.expect(LOGIN, "", None, body, StatusCode::ACCEPTED).await;
    r.json()["challenge"].as_str().unwrap().to_owned()
}

/// A two-step sign-in of `name`, whose app has `secret`: the access token. The clock then
/// moves to the next step, so the next code is fresh.
async fn two_step_token(w: &mut Walk, name: &str, secret: &str) -> String {
    let challenge = challenge(w, name).await;
    let code = totp(w, secret);
    let r = w
        .expect(
            SF_SECOND_STEP,
            "",
            None,
            json(json!({"challenge": challenge, "code": code})),
            StatusCode::OK,
        )
        .await;
    w.app.clock.advance(Duration::from_secs(30));
    r.json()["access_token"].as_str().unwrap().to_owned()
}

/// Second factors: enrolment, the second step of a sign-in, recovery codes, removal, the
/// admin's view and reset, and enrolment at sign-in where the policy requires a factor.
/// Returns the token of a user whose factor is on, for [`overloaded`].
async fn second_factor_routes(w: &mut Walk, admin: &str) -> String {
    let wrong_code = |secret: &str, w: &Walk| {
        let now = w.app.clock.now();
        let near: Vec<String> = [-30, 0, 30]
            .iter()
            .map(|s| user_core::factor::totp_code(secret, now + time::Duration::seconds(*s)))
            .collect();
        ["000000", "111111", "222222"]
            .into_iter()
            .find(|c| !near.iter().any(|n| n == c))
            .unwrap()
            .to_owned()
    };
    let otto = w.app.register("otto").await;
    let otto_id = otto["id"].as_str().unwrap().to_owned();
    let otto = w.app.token("otto").await;
    let otto = otto.as_str();
    w.expect(SF_STATUS, "", Some(otto), Payload::None, StatusCode::OK)
        .await;
    w.expect(
        SF_TOTP,
        "",
        Some(otto),
        json(json!({"password": "wrong password"})),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    w.expect(
        SF_TOTP_CONFIRM,
        "",
        Some(otto),
        json(json!({"code": "123456"})),
        StatusCode::CONFLICT,
    )
    .await;
    let r = w
        .expect(
            SF_TOTP,
            "",
            Some(otto),
            json(json!({"password": PW})),
            StatusCode::OK,
        )
        .await;
    let secret = r.json()["secret"].as_str().unwrap().to_owned();
    let code = wrong_code(&secret, w);
    w.expect(
        SF_TOTP_CONFIRM,
        "",
        Some(otto),
        json(json!({ "code": code })),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let code = totp(w, &secret);
    w.expect(
        SF_TOTP_CONFIRM,
        "",
        Some(otto),
        json(json!({ "code": code })),
        StatusCode::OK,
    )
    .await;
    w.app.clock.advance(Duration::from_secs(30));
    w.expect(
        SF_TOTP,
        "",
        Some(otto),
        json(json!({"password": PW})),
        StatusCode::CONFLICT,
    )
    .await;
    // New recovery codes: the password and a code, both checked.
    w.expect(
        SF_CODES,
        "",
        Some(otto),
        json(json!({"password": PW})),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let code = totp(w, &secret);
    w.expect(
        SF_CODES,
        "",
        Some(otto),
        json(json!({"password": "wrong password", "code": code})),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let code = wrong_code(&secret, w);
    w.expect(
        SF_CODES,
        "",
        Some(otto),
        json(json!({"password": PW, "code": code})),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let code = totp(w, &secret);
    w.expect(
        SF_CODES,
        "",
        Some(otto),
        json(json!({"password": PW, "code": code})),
        StatusCode::OK,
    )
    .await;
    w.app.clock.advance(Duration::from_secs(30));

    // The second step: missing fields, an unknown challenge, a wrong code, the right one.
    let otto_challenge = challenge(w, "otto").await;
    w.expect(
        SF_SECOND_STEP,
        "",
        None,
        json(json!({})),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    w.expect(
        SF_SECOND_STEP,
        "",
        None,
        json(json!({"challenge": "unknown", "code": "123456"})),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let step = |code: String| json(json!({"challenge": otto_challenge, "code": code}));
    w.expect(
        SF_SECOND_STEP,
        "",
        None,
        step(wrong_code(&secret, w)),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    w.expect(
        SF_SECOND_STEP,
        "",
        None,
        step(totp(w, &secret)),
        StatusCode::OK,
    )
    .await;
    w.app.clock.advance(Duration::from_secs(30));
    // The enrolment at sign-in, with challenges that do not work (see `enrolment_at_sign_in`).
    w.expect(
        SF_ENROL_CONFIRM,
        "",
        None,
        json(json!({"challenge": "unknown", "code": "123456"})),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    w.expect(
        SF_ENROL,
        "",
        None,
        json(json!({"challenge": "unknown"})),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    w.expect(
        SF_ENROL,
        "",
        None,
        json(json!({})),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;

    // Wrong codes lock the account: the second step answers 429.
    w.app.register("rita").await;
    let rita = w.app.token("rita").await;
    let rita_secret = enrol(w, &rita).await;
    let rita_challenge = challenge(w, "rita").await;
    for _ in 0..5 {
        let code = wrong_code(&rita_secret, w);
        w.expect(
            SF_SECOND_STEP,
            "",
            None,
            json(json!({"challenge": rita_challenge, "code": code})),
            StatusCode::UNAUTHORIZED,
        )
        .await;
    }
    let code = totp(w, &rita_secret);
    w.expect(
        SF_SECOND_STEP,
        "",
        None,
        json(json!({"challenge": rita_challenge, "code": code})),
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;

    // Turned off with the password and a code; then there is nothing to turn off or renew.
    w.app.register("pia").await;
    let pia = w.app.token("pia").await;
    let pia_secret = enrol(w, &pia).await;
    let code = totp(w, &pia_secret);
    w.expect(
        SF_DISABLE,
        "",
        Some(&pia),
        json(json!({"password": PW, "code": code})),
        StatusCode::NO_CONTENT,
    )
    .await;
    w.expect(
        SF_DISABLE,
        "",
        Some(&pia),
        json(json!({"password": PW, "code": code})),
        StatusCode::CONFLICT,
    )
    .await;
    w.expect(
        SF_CODES,
        "",
        Some(&pia),
        json(json!({"password": PW, "code": code})),
        StatusCode::CONFLICT,
    )
    .await;
    w.expect(
        SF_DISABLE,
        "",
        Some(otto),
        json(json!({"password": "wrong password", "code": "123456"})),
        StatusCode::UNAUTHORIZED,
    )
    .await;

    // Wrong passwords lock the session's re-checks (each route on a session of its own,
    // signed in after the enrolment, which ends the sessions from before it).
    w.app.register("quinn").await;
    let quinn = w.app.token("quinn").await;
    let quinn_secret = enrol(w, &quinn).await;
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(two_step_token(w, "quinn", &quinn_secret).await);
    }
    let wrong = json!({"password": "wrong password", "code": "123456"});
    let right = json!({"password": PW, "code": "123456"});
    for (route, token) in [
        (SF_TOTP, &sessions[0]),
        (SF_CODES, &sessions[1]),
        (SF_DISABLE, &sessions[2]),
    ] {
        let body = |v: &Value| {
            let mut v = v.clone();
            if route == SF_TOTP {
                v.as_object_mut().unwrap().remove("code");
            }
            json(v)
        };
        for _ in 0..5 {
            w.expect(
                route,
                "",
                Some(token),
                body(&wrong),
                StatusCode::UNAUTHORIZED,
            )
            .await;
        }
        let r = w
            .expect(
                route,
                "",
                Some(token),
                body(&right),
                StatusCode::TOO_MANY_REQUESTS,
            )
            .await;
        assert!(r.headers.contains_key(header::RETRY_AFTER), "{route:?}");
    }

    // The admin's view and reset.
    let admin = Some(admin);
    w.expect(SF_ADMIN, &otto_id, admin, Payload::None, StatusCode::OK)
        .await;
    let pia_id = w
        .app
        .json(Method::GET, "/api/v1/me", None, Some(&pia))
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    w.expect(
        SF_ADMIN_RESET,
        &pia_id,
        admin,
        Payload::None,
        StatusCode::CONFLICT,
    )
    .await;
    let rita_id = w
        .app
        .json(Method::GET, "/api/v1/me", None, Some(&rita))
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    w.expect(
        SF_ADMIN_RESET,
        &rita_id,
        admin,
        Payload::None,
        StatusCode::NO_CONTENT,
    )
    .await;

    enrolment_at_sign_in(w).await;
    otto.to_owned()
}

/// Where the policy requires admins to have a factor, an admin without one enrols at
/// sign-in: 202 with step `enrolment`, the secret, then tokens and recovery codes; wrong
/// codes lock as at the second step (the document is the same for every policy).
async fn enrolment_at_sign_in(w: &mut Walk) {
    let mut policy = AuthPolicy::default();
    policy.second_factor.required_for_admins = true;
    let strict = TestApp::with_policy(HttpConfig::default(), Templates::default(), policy).await;
    for name in ["una", "vic"] {
        strict.create_admin(name).await;
    }
    let post = |path: &'static str, body: Value| {
        let strict = &strict;
        async move { strict.json(Method::POST, path, Some(body), None).await }
    };
    let mut secrets = Vec::new();
    for name in ["una", "vic"] {
        let r = post(LOGIN.1, json!({"identifier": name, "password": PW})).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        assert_eq!(r.json()["step"], "enrolment");
        w.check(LOGIN.0, LOGIN.1, &r);
        let challenge = r.json()["challenge"].as_str().unwrap().to_owned();
        let r = post(SF_ENROL.1, json!({ "challenge": challenge })).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        w.check(SF_ENROL.0, SF_ENROL.1, &r);
        secrets.push((challenge, r.json()["secret"].as_str().unwrap().to_owned()));
    }
    let now = strict.clock.now();
    let (una, una_secret) = &secrets[0];
    let right = user_core::factor::totp_code(una_secret, now);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    for _ in 0..5 {
        let r = post(SF_ENROL_CONFIRM.1, json!({"challenge": una, "code": wrong})).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
        w.check(SF_ENROL_CONFIRM.0, SF_ENROL_CONFIRM.1, &r);
    }
    let r = post(SF_ENROL_CONFIRM.1, json!({"challenge": una, "code": right})).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    w.check(SF_ENROL_CONFIRM.0, SF_ENROL_CONFIRM.1, &r);
    let (vic, vic_secret) = &secrets[1];
    let code = user_core::factor::totp_code(vic_secret, now);
    let r = post(SF_ENROL_CONFIRM.1, json!({"challenge": vic, "code": code})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    w.check(SF_ENROL_CONFIRM.0, SF_ENROL_CONFIRM.1, &r);
}

/// The requests for a link by address, refused as a whole: 503 `overloaded` while too many
/// are in progress (a bound of 0 refuses every one), and 500 `internal` from a deployment
/// without mail.
async fn link_requests_refused(w: &mut Walk) {
    let mut policy = AuthPolicy::default();
    policy.account.max_pending_link_requests = 0;
    let busy = TestApp::with_policy(HttpConfig::default(), Templates::default(), policy).await;
    let without_mail = user_http::router(user_http::AppState::new(
        std::sync::Arc::clone(&w.app.state.auth),
        std::sync::Arc::clone(&w.app.state.users),
    ));
    for path in [RESET_REQUEST, VERIFY_REQUEST] {
        let body = Some(json!({ "email": "kim@example.com" }));
        let r = busy.json(Method::POST, path, body.clone(), None).await;
        assert_eq!(
            r.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{path}: {}",
            r.text
        );
        assert_eq!(r.code(), "overloaded", "{path}");
        assert!(r.headers.contains_key(header::RETRY_AFTER), "{path}");
        w.check("post", path, &r);

        let patient = std::mem::replace(&mut w.app.router, without_mail.clone());
        let r = w.app.json(Method::POST, path, body, None).await;
        w.app.router = patient;
        assert_eq!(
            r.status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{path}: {}",
            r.text
        );
        assert_eq!(r.code(), "internal", "{path}");
        w.check("post", path, &r);
    }
}

/// With a policy that requires a verified email, a right password for an unverified
/// address is refused with 403 (the document is the same for every policy but the
/// password's minimum length).
async fn unverified_sign_in(w: &mut Walk) {
    let policy = AuthPolicy {
        require_verified_email: true,
        ..AuthPolicy::default()
    };
    let strict = TestApp::with_policy(HttpConfig::default(), Templates::default(), policy).await;
    strict.register("uma").await;
    let body = json!({"identifier": "uma", "password": PW});
    let r = strict.json(Method::POST, LOGIN.1, Some(body), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    w.check(LOGIN.0, LOGIN.1, &r);
}

/// A method a path does not have answers 405 with the API's error shape, and `Allow` lists
/// the methods the document gives the path; the 405 of each of its operations is seen.
async fn wrong_methods(w: &mut Walk) {
    let paths: Vec<(String, Vec<String>)> = w.doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(template, item)| {
            (
                template.clone(),
                item.as_object().unwrap().keys().cloned().collect(),
            )
        })
        .collect();
    for (template, methods) in paths {
        let wrong = ["get", "post", "put", "patch", "delete"]
            .into_iter()
            .find(|m| !methods.iter().any(|d| d == m))
            .unwrap();
        let request = Request::builder()
            .method(Method::from_bytes(wrong.to_uppercase().as_bytes()).unwrap())
            .uri(template.replace("{id}", MISSING))
            .body(Body::empty())
            .unwrap();
        let r = w.app.send(request).await;
        assert_eq!(
            r.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{wrong} {template}: {}",
            r.text
        );
        assert_eq!(r.code(), "method_not_allowed");
        let allow = r.headers[header::ALLOW].to_str().unwrap().to_lowercase();
        let allow: Vec<&str> = allow.split(',').map(str::trim).collect();
        for method in &methods {
            assert!(
                allow.contains(&method.as_str()),
                "{template}: Allow {allow:?} lacks {method}"
            );
            w.check(method, &template, &r);
        }
    }
}

/// With a short timeout, a body that never arrives and a store without a free connection
/// both end in 408; the routes that wait for nothing (JWKS, `/healthz`) still answer.
async fn timeouts(w: &mut Walk, user: &str, admin: &str) {
    let config = HttpConfig {
        request_timeout: Duration::from_millis(50),
        ..HttpConfig::default()
    };
    let impatient = user_http::router(w.app.state.clone().with_config(config));
    let patient = std::mem::replace(&mut w.app.router, impatient);
    let token = |auth| match auth {
        Auth::Anyone => None,
        Auth::SignedIn => Some(user),
        Auth::Admin => Some(admin),
    };
    for Route { route, auth, body } in routes() {
        if body.is_some() {
            w.expect(
                route,
                MISSING,
                token(auth),
                Payload::Stalled,
                StatusCode::REQUEST_TIMEOUT,
            )
            .await;
        }
    }
    let pool = w.app.db.pool().clone();
    let mut held = Vec::new();
    for _ in 0..pool.options().get_max_connections() {
        held.push(pool.acquire().await.unwrap());
    }
    for Route { route, auth, body } in routes() {
        let expected = match route.1 {
            "/.well-known/jwks.json" | "/healthz" => StatusCode::OK,
            // Accepted at once: the lookup runs after the answer.
            RESET_REQUEST | VERIFY_REQUEST => StatusCode::ACCEPTED,
            _ => StatusCode::REQUEST_TIMEOUT,
        };
        let payload = body.map_or(Payload::None, json);
        w.expect(route, MISSING, token(auth), payload, expected)
            .await;
    }
    drop(held);
    w.app.router = patient;
}

/// With the password hasher saturated, every route that hashes or checks a password
/// answers 503 `overloaded` with `Retry-After`.
async fn overloaded(w: &mut Walk, user: &str, with_factor: &str) {
    w.hasher.saturate();
    let routes = [
        (SF_TOTP, Some(user), json!({"password": PW})),
        (
            SF_CODES,
            Some(with_factor),
            json!({"password": PW, "code": "123456"}),
        ),
        (
            SF_DISABLE,
            Some(with_factor),
            json!({"password": PW, "code": "123456"}),
        ),
        (REGISTER, None, register_body("olga")),
        (LOGIN, None, json!({"identifier": "alice", "password": PW})),
        (
            PASSWORD,
            Some(user),
            json!({"current_password": PW, "new_password": "a fresh new passphrase"}),
        ),
        (("delete", ME), Some(user), json!({"password": PW})),
    ];
    for (route, token, body) in routes {
        let r = w
            .expect(
                route,
                "",
                token,
                json(body),
                StatusCode::SERVICE_UNAVAILABLE,
            )
            .await;
        assert_eq!(r.code(), "overloaded", "{route:?}");
        assert!(r.headers.contains_key(header::RETRY_AFTER), "{route:?}");
    }
}

/// With the database closed, every route that needs it answers 503; the others still work.
async fn database_down(w: &mut Walk, user_tokens: &Value, admin: &str) {
    let user = user_tokens["access_token"].as_str().unwrap();
    let refresh = json!({"refresh_token": user_tokens["refresh_token"]});
    w.app.db.close().await;
    for Route { route, auth, body } in routes() {
        let token = match auth {
            Auth::Anyone => None,
            Auth::SignedIn => Some(user),
            Auth::Admin => Some(admin),
        };
        let body = match route {
            REFRESH => Some(refresh.clone()),
            ("put", "/api/v1/me/password") => {
                Some(json!({"current_password": PW, "new_password": "a fresh new passphrase"}))
            }
            _ => body,
        };
        let payload = body.map_or(Payload::None, json);
        let r = w.send(route, MISSING, token, payload, None).await;
        let expected = match route.1 {
            "/.well-known/jwks.json" | "/healthz" => StatusCode::OK,
            RESET_REQUEST | VERIFY_REQUEST => StatusCode::ACCEPTED,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        assert_eq!(r.status, expected, "{route:?}: {}", r.text);
    }
}

#[tokio::test]
async fn every_answer_is_documented_and_every_documented_answer_happens() {
    let mut w = Walk::new().await;
    w.app.create_admin("root").await;
    w.app.register("alice").await;
    let admin_tokens = w.tokens("root").await;
    let admin = admin_tokens["access_token"].as_str().unwrap().to_owned();
    let admin_id = admin_tokens["user"]["id"].as_str().unwrap().to_owned();
    let user = w.app.token("alice").await;

    common_failures(&mut w, &user, &admin).await;
    auth_routes(&mut w).await;
    me_routes(&mut w, &admin).await;
    admin_routes(&mut w, &admin, &admin_id).await;
    audit_routes(&mut w, &user, &admin).await;
    account_routes(&mut w, &admin).await;
    let with_factor = second_factor_routes(&mut w, &admin).await;
    link_requests_refused(&mut w).await;
    unverified_sign_in(&mut w).await;
    for route in [
        ("get", "/.well-known/jwks.json"),
        ("get", "/healthz"),
        ("get", "/readyz"),
    ] {
        w.expect(route, "", None, Payload::None, StatusCode::OK)
            .await;
    }
    wrong_methods(&mut w).await;
    timeouts(&mut w, &user, &admin).await;
    let alice = w.tokens("alice").await;
    overloaded(&mut w, &user, &with_factor).await;
    database_down(&mut w, &alice, &admin).await;

    // Every documented status was met, apart from those no request can provoke.
    let mut missing = Vec::new();
    for (template, item) in w.doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for status in op["responses"].as_object().unwrap().keys() {
                let status: u16 = status.parse().unwrap();
                let key = (method.clone(), template.clone(), status);
                let excused = status == 500
                    || NOT_PROVOKED.contains(&(method.as_str(), template.as_str(), status));
                if !excused && !w.seen.contains(&key) {
                    missing.push(key);
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "documented but never answered: {missing:?}"
    );
    // And every code of ErrorBody's enum was answered, apart from those no route can give.
    let unseen: Vec<String> = w
        .code_enum()
        .into_iter()
        .filter(|c| !w.codes.contains(c))
        .filter(|c| !CODES_NOT_PROVOKED.iter().any(|n| n.as_str() == c))
        .collect();
    assert!(unseen.is_empty(), "codes never answered: {unseen:?}");
}
