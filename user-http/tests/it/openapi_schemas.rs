//! The schemas of the served document carry the rules the core enforces: the same lengths
//! as its constants, patterns and enums that accept and refuse what its parsers do, and the
//! server answering at each documented boundary as the document says.

use axum::http::{Method, StatusCode};
use regex::Regex;
use serde_json::{Value, json};
use user_core::auth::AuthPolicy;
use user_core::domain::{
    AuditKind, AuditOutcome, AuditQuery, DisplayName, Email, PasswordPolicy, RecoveryCode, Role,
    UserQuery, UserStatus, Username,
};
use user_core::factor::totp_code;
use user_core::ports::Clock as _;
use user_http::{ErrorCode, HttpConfig, Templates};

use crate::{PW, TestApp};

async fn document(app: &TestApp) -> Value {
    app.json(Method::GET, "/api/v1/openapi.json", None, None)
        .await
        .json()
}

fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    let s = &doc["components"]["schemas"][name];
    assert!(s.is_object(), "no schema {name}");
    s
}

fn property<'a>(doc: &'a Value, name: &str, field: &str) -> &'a Value {
    let p = &schema(doc, name)["properties"][field];
    assert!(p.is_object(), "no property {name}.{field}");
    p
}

fn number(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("no {key} in {v}"))
}

fn pattern(v: &Value) -> Regex {
    Regex::new(
        v["pattern"]
            .as_str()
            .unwrap_or_else(|| panic!("no pattern in {v}")),
    )
    .unwrap()
}

fn required(doc: &Value, name: &str) -> Vec<String> {
    let mut fields: Vec<String> = schema(doc, name)["required"]
        .as_array()
        .map(|a| a.iter().map(|f| f.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default();
    fields.sort();
    fields
}

#[tokio::test]
async fn lengths_are_the_core_constants() {
    let app = TestApp::new().await;
    let doc = document(&app).await;
    for body in ["RegisterBody", "UpdateProfileBody", "UserBody"] {
        let username = property(&doc, body, "username");
        assert_eq!(number(username, "minLength"), Username::MIN_LEN as u64);
        assert_eq!(number(username, "maxLength"), Username::MAX_LEN as u64);
        let email = property(&doc, body, "email");
        assert_eq!(number(email, "maxLength"), Email::MAX_LEN as u64);
        assert_eq!(email["format"], "idn-email");
        let display = property(&doc, body, "display_name");
        assert_eq!(number(display, "maxLength"), DisplayName::MAX_LEN as u64);
    }
    for body in ["PasswordResetBody", "RequestVerificationBody"] {
        let email = property(&doc, body, "email");
        assert_eq!(number(email, "maxLength"), Email::MAX_LEN as u64);
        assert_eq!(email["format"], "idn-email");
    }
    for (body, field) in [
        ("RegisterBody", "password"),
        ("ChangePasswordBody", "new_password"),
        ("ResetPasswordBody", "new_password"),
    ] {
        let password = property(&doc, body, field);
        assert_eq!(
            number(password, "minLength"),
            PasswordPolicy::DEFAULT_MIN_LENGTH as u64
        );
        assert_eq!(
            number(password, "maxLength"),
            PasswordPolicy::MAX_LENGTH as u64
        );
        assert_eq!(password["format"], "password");
    }
    // Passwords that are only checked are not constrained: a wrong one is a 401, never a 422.
    for (body, field) in [
        ("LoginBody", "password"),
        ("ChangePasswordBody", "current_password"),
        ("PasswordBody", "password"),
    ] {
        let password = property(&doc, body, field);
        assert!(password.get("minLength").is_none() && password.get("maxLength").is_none());
    }

    let params = doc["paths"]["/api/v1/admin/users"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let param = |name: &str| {
        &params
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no parameter {name}"))["schema"]
    };
    assert_eq!(number(param("limit"), "minimum"), 1);
    assert_eq!(
        number(param("limit"), "maximum"),
        u64::from(UserQuery::MAX_LIMIT)
    );
    assert_eq!(
        number(param("limit"), "default"),
        u64::from(UserQuery::DEFAULT_LIMIT)
    );
    assert_eq!(param("limit")["type"], "integer");
    assert_eq!(
        number(param("search"), "maxLength"),
        UserQuery::MAX_SEARCH_LEN as u64
    );
    let values = |name: &str| -> Vec<String> {
        param(name)["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(values("role"), [Role::User.as_str(), Role::Admin.as_str()]);
    assert_eq!(
        values("status"),
        [UserStatus::Active.as_str(), UserStatus::Disabled.as_str()]
    );
    for v in values("role") {
        assert!(v.parse::<Role>().is_ok());
    }
    for v in values("status") {
        assert!(v.parse::<UserStatus>().is_ok());
    }
}

#[tokio::test]
async fn the_served_minimum_is_the_configured_one() {
    let policy = AuthPolicy {
        password: PasswordPolicy::new(16).unwrap(),
        ..AuthPolicy::default()
    };
    let app = TestApp::with_policy(HttpConfig::default(), Templates::default(), policy).await;
    let doc = document(&app).await;
    assert_eq!(
        number(property(&doc, "RegisterBody", "password"), "minLength"),
        16
    );
    assert_eq!(
        number(
            property(&doc, "ChangePasswordBody", "new_password"),
            "minLength"
        ),
        16
    );
    assert_eq!(
        number(
            property(&doc, "ResetPasswordBody", "new_password"),
            "minLength"
        ),
        16
    );
    // One character short of the documented minimum is refused, the minimum is accepted.
    let register = |password: &str| json!({"username": "alice", "email": "alice@example.com", "password": password});
    let short = "qz".repeat(8);
    let r = app
        .json(
            Method::POST,
            "/api/v1/auth/register",
            Some(register(&short[1..])),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json()["fields"][0]["code"], "too_short");
    let r = app
        .json(
            Method::POST,
            "/api/v1/auth/register",
            Some(register(&short)),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

#[tokio::test]
async fn patterns_accept_and_refuse_what_the_parsers_do() {
    let app = TestApp::new().await;
    let doc = document(&app).await;
    let username = property(&doc, "RegisterBody", "username");
    let re = pattern(username);
    let min = number(username, "minLength") as usize;
    let max = number(username, "maxLength") as usize;
    let long = "a".repeat(Username::MAX_LEN);
    let too_long = "a".repeat(Username::MAX_LEN + 1);
    for s in [
        "abc", "Alice", "9lives", "a_b.c-d", "_ab", ".ab", "-ab", "ab", "a", "al ice", "alïce",
        "<script>", "a@b", &long, &too_long,
    ] {
        let len = s.chars().count();
        let documented = re.is_match(s) && (min..=max).contains(&len);
        assert_eq!(documented, Username::parse(s).is_ok(), "{s:?}");
    }

    let display = property(&doc, "RegisterBody", "display_name");
    let re = pattern(display);
    let max = number(display, "maxLength") as usize;
    let long = "é".repeat(DisplayName::MAX_LEN);
    let too_long = "é".repeat(DisplayName::MAX_LEN + 1);
    for s in [
        "Zoë",
        "Alice <b>L</b>",
        "a\u{7}b",
        "a\nb",
        "a\u{85}b",
        "a\u{7f}b",
        "a\u{a0}b",
        &long,
        &too_long,
    ] {
        let documented = re.is_match(s) && s.chars().count() <= max;
        assert_eq!(documented, DisplayName::parse(s).is_ok(), "{s:?}");
    }
}

#[tokio::test]
async fn the_server_answers_at_each_documented_boundary() {
    let app = TestApp::new().await;
    let doc = document(&app).await;
    let max = |field: &str| number(property(&doc, "RegisterBody", field), "maxLength") as usize;
    let username = |n: usize| format!("u{}", "x".repeat(n - 1));
    // A local part of 64 (the most allowed) and labels of at most 63 characters.
    let email = |n: usize| {
        let last = n - (64 + 1 + 63 + 1 + 63 + 1 + ".com".len());
        format!(
            "{}@{}.{}.{}.com",
            "e".repeat(64),
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(last)
        )
    };
    let cases = [
        (
            "username",
            json!(username(max("username"))),
            json!(username(max("username") + 1)),
        ),
        (
            "email",
            json!(email(max("email"))),
            json!(email(max("email") + 1)),
        ),
        (
            "password",
            json!(format!("{PW}{}", "p".repeat(max("password") - PW.len()))),
            json!(format!(
                "{PW}{}",
                "p".repeat(max("password") + 1 - PW.len())
            )),
        ),
        (
            "display_name",
            json!("d".repeat(max("display_name"))),
            json!("d".repeat(max("display_name") + 1)),
        ),
    ];
    for (i, (field, longest, too_long)) in cases.into_iter().enumerate() {
        let body = |value: &Value| {
            let mut body = json!({
                "username": format!("user{i}"),
                "email": format!("user{i}@example.com"),
                "password": PW,
            });
            body[field] = value.clone();
            body
        };
        let r = app
            .json(
                Method::POST,
                "/api/v1/auth/register",
                Some(body(&too_long)),
                None,
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}: {}",
            r.text
        );
        assert_eq!(r.json()["fields"][0]["field"], field);
        assert_eq!(r.json()["fields"][0]["code"], "too_long");
        let r = app
            .json(
                Method::POST,
                "/api/v1/auth/register",
                Some(body(&longest)),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{field}: {}", r.text);
    }

    // The page size: the documented range is accepted, one beyond either end refused.
    app.create_admin("root").await;
    let token = app.token("root").await;
    let limit = |n: u64| format!("/api/v1/admin/users?limit={n}");
    for (n, status) in [
        (0, StatusCode::UNPROCESSABLE_ENTITY),
        (1, StatusCode::OK),
        (u64::from(UserQuery::MAX_LIMIT), StatusCode::OK),
        (
            u64::from(UserQuery::MAX_LIMIT) + 1,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let r = app.json(Method::GET, &limit(n), None, Some(&token)).await;
        assert_eq!(r.status, status, "limit={n}: {}", r.text);
    }
    let search = |n: usize| format!("/api/v1/admin/users?search={}", "s".repeat(n));
    let r = app
        .json(
            Method::GET,
            &search(UserQuery::MAX_SEARCH_LEN),
            None,
            Some(&token),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .json(
            Method::GET,
            &search(UserQuery::MAX_SEARCH_LEN + 1),
            None,
            Some(&token),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn required_fields_and_closed_bodies() {
    let app = TestApp::new().await;
    let doc = document(&app).await;
    assert_eq!(
        required(&doc, "RegisterBody"),
        ["email", "password", "username"]
    );
    assert_eq!(required(&doc, "LoginBody"), ["identifier", "password"]);
    assert_eq!(required(&doc, "RefreshBody"), ["refresh_token"]);
    assert_eq!(
        required(&doc, "ChangePasswordBody"),
        ["current_password", "new_password"]
    );
    assert_eq!(required(&doc, "PasswordBody"), ["password"]);
    assert!(required(&doc, "UpdateProfileBody").is_empty());
    assert_eq!(required(&doc, "RoleBody"), ["role"]);
    assert_eq!(required(&doc, "StatusBody"), ["status"]);
    assert_eq!(required(&doc, "PasswordResetBody"), ["email"]);
    assert_eq!(required(&doc, "RequestVerificationBody"), ["email"]);
    assert_eq!(
        required(&doc, "ResetPasswordBody"),
        ["new_password", "token"]
    );
    assert_eq!(required(&doc, "VerifyEmailBody"), ["token"]);
    // Every request body refuses unknown fields, as the server does (422).
    for (_, item) in doc["paths"].as_object().unwrap() {
        for (_, op) in item.as_object().unwrap() {
            let Some(r) =
                op["requestBody"]["content"]["application/json"]["schema"]["$ref"].as_str()
            else {
                continue;
            };
            let name = r.rsplit('/').next().unwrap();
            assert_eq!(schema(&doc, name)["additionalProperties"], false, "{name}");
        }
    }
    // Enums of bodies: what the server writes and accepts.
    let values = |name: &str| schema(&doc, name)["enum"].clone();
    assert_eq!(values("RoleName"), json!(["user", "admin"]));
    assert_eq!(values("StatusName"), json!(["active", "disabled"]));
    assert_eq!(
        property(&doc, "SessionBody", "kind")["enum"],
        json!(["browser", "token"])
    );
    assert_eq!(
        property(&doc, "TokensBody", "token_type")["enum"],
        json!(["Bearer"])
    );
    assert_eq!(property(&doc, "UserBody", "id")["format"], "uuid");
    // The verification time is always written: a time, or null while unverified.
    let verified_at = property(&doc, "UserBody", "email_verified_at");
    assert_eq!(verified_at["type"], json!(["string", "null"]));
    assert_eq!(verified_at["format"], "date-time");
    assert!(required(&doc, "UserBody").contains(&"email_verified_at".to_owned()));
    assert_eq!(
        property(&doc, "HealthBody", "status")["enum"],
        json!(["ok", "ready"])
    );

    // And every error answer is an ErrorBody, which the document defines, except the
    // timeout's, which has no body.
    assert_eq!(required(&doc, "ErrorBody"), ["code", "message"]);
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (status, r) in op["responses"].as_object().unwrap() {
                if status == "408" {
                    assert!(r.get("content").is_none(), "{method} {path} 408");
                } else if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        r["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn error_codes_are_the_one_list() {
    let app = TestApp::new().await;
    let doc = document(&app).await;
    let codes = property(&doc, "ErrorBody", "code");
    let listed: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(codes["enum"], json!(listed));
    for code in ["method_not_allowed", "cross_site", "validation_failed"] {
        assert!(listed.contains(&code), "{code}");
    }
}

/// Whether `value` has the JSON Schema type `ty`.
fn has_type(ty: &str, value: &Value) -> bool {
    match ty {
        "string" => value.is_string(),
        "integer" => value.is_u64() || value.is_i64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    }
}

/// Whether `value` conforms to `schema`, for the keywords the document's answers use:
/// `$ref`, `allOf`, `type` (one or several), `enum`, `pattern`, `minItems`, `maxItems`,
/// `items`, `required`, `properties` and `additionalProperties: false`.
fn conforms(doc: &Value, schema: &Value, value: &Value) -> Result<(), String> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap();
        return conforms(doc, self::schema(doc, name), value);
    }
    if let Some(parts) = schema["allOf"].as_array() {
        for part in parts {
            conforms(doc, part, value)?;
        }
    }
    if let Some(values) = schema["enum"].as_array()
        && !values.contains(value)
    {
        return Err(format!("{value} is not one of {values:?}"));
    }
    if let (Some(re), Some(text)) = (schema["pattern"].as_str(), value.as_str())
        && !Regex::new(re).unwrap().is_match(text)
    {
        return Err(format!("{value} does not match {re}"));
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(ty) => vec![ty.as_str()],
        Value::Array(types) => types.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !types.is_empty() && !types.iter().any(|ty| has_type(ty, value)) {
        return Err(format!("{value} is not of type {types:?}"));
    }
    if let Some(items) = value.as_array() {
        let count = items.len() as u64;
        if schema["minItems"].as_u64().is_some_and(|min| count < min)
            || schema["maxItems"].as_u64().is_some_and(|max| count > max)
        {
            return Err(format!("{count} items is out of bounds: {schema}"));
        }
        if !schema["items"].is_null() {
            items
                .iter()
                .try_for_each(|item| conforms(doc, &schema["items"], item))?;
        }
    }
    if let (Some(object), Some(properties)) = (value.as_object(), schema["properties"].as_object())
    {
        for field in schema["required"].as_array().into_iter().flatten() {
            let field = field.as_str().unwrap();
            if !object.contains_key(field) {
                return Err(format!("{value} lacks {field}"));
            }
        }
        for (field, v) in object {
            match properties.get(field) {
                Some(s) => conforms(doc, s, v).map_err(|e| format!("{field}: {e}"))?,
                None if schema["additionalProperties"] == false => {
                    return Err(format!("{field} is not in the schema"));
                }
                None => {}
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn the_jwks_answer_matches_its_schema() {
    let app = TestApp::new().await;
    let doc = document(&app).await;
    let ok = &doc["paths"]["/.well-known/jwks.json"]["get"]["responses"]["200"];
    let schema = &ok["content"]["application/json"]["schema"];
    assert_eq!(schema["$ref"], "#/components/schemas/Jwks");
    let r = app
        .json(Method::GET, "/.well-known/jwks.json", None, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let jwks = r.json();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1, "{jwks}");
    conforms(&doc, schema, &jwks).unwrap();
    // Every field of a key is required, and the schema refuses what a key is not.
    let key = &jwks["keys"][0];
    let jwk = self::schema(&doc, "Jwk");
    let mut fields: Vec<&str> = key
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(required(&doc, "Jwk"), fields);
    for (field, bad) in [
        ("kty", json!("RSA")),
        ("crv", json!("P-256")),
        ("alg", json!("RS256")),
        ("use", json!("enc")),
        ("x", json!("too short")),
        ("extra", json!(1)),
    ] {
        let mut key = key.clone();
        key[field] = bad;
        // Refused for that field, not for something else about the key.
        let refusal = conforms(&doc, jwk, &key).expect_err(field);
        assert!(refusal.starts_with(field), "{field}: {refusal}");
    }
}

/// The parameters of one operation, by name.
fn parameters(doc: &Value, method: &str, path: &str) -> Vec<Value> {
    doc["paths"][path][method]["parameters"]
        .as_array()
        .unwrap_or_else(|| panic!("no parameters for {method} {path}"))
        .clone()
}

fn parameter(params: &[Value], name: &str) -> Value {
    params
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no parameter {name}"))["schema"]
        .clone()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn audit_schemas_are_the_core_s_kinds_outcomes_and_limits() {
    let app = TestApp::new().await;
    let doc = document(&app).await;
    let kinds: Vec<&str> = AuditKind::ALL.iter().map(|k| k.as_str()).collect();
    let outcomes = [
        AuditOutcome::Success.as_str(),
        AuditOutcome::Failure.as_str(),
    ];
    assert_eq!(
        strings(&property(&doc, "AuditEventBody", "kind")["enum"]),
        kinds
    );
    assert_eq!(
        strings(&property(&doc, "AuditEventBody", "outcome")["enum"]),
        outcomes
    );
    // Every field is written, the optional ones as null.
    assert_eq!(
        required(&doc, "AuditEventBody"),
        [
            "actor_id",
            "at",
            "detail",
            "id",
            "identifier",
            "ip",
            "kind",
            "outcome",
            "subject_id",
            "user_agent"
        ]
    );
    for field in [
        "actor_id",
        "subject_id",
        "identifier",
        "ip",
        "user_agent",
        "detail",
    ] {
        let p = property(&doc, "AuditEventBody", field);
        assert_eq!(p["type"], json!(["string", "null"]), "{field}");
    }
    for field in ["id", "actor_id", "subject_id"] {
        assert_eq!(property(&doc, "AuditEventBody", field)["format"], "uuid");
    }
    assert_eq!(
        property(&doc, "AuditEventBody", "at")["format"],
        "date-time"
    );
    assert_eq!(
        required(&doc, "AuditLogPage"),
        ["events", "next_page_token"]
    );
    assert_eq!(required(&doc, "EventsBody"), ["events"]);
    assert_eq!(
        required(&doc, "PersonalDataBody"),
        ["events", "sessions", "user"]
    );
    assert_eq!(
        property(&doc, "PersonalDataBody", "sessions")["items"]["$ref"],
        "#/components/schemas/SessionBody"
    );

    let params = parameters(&doc, "get", "/api/v1/admin/audit");
    assert_eq!(strings(&parameter(&params, "kind")["enum"]), kinds);
    assert_eq!(strings(&parameter(&params, "outcome")["enum"]), outcomes);
    for name in ["subject", "actor"] {
        assert_eq!(parameter(&params, name)["format"], "uuid");
    }
    let size = parameter(&params, "page_size");
    assert_eq!(number(&size, "minimum"), 1);
    assert_eq!(number(&size, "maximum"), u64::from(AuditQuery::MAX_LIMIT));
    assert_eq!(
        number(&size, "default"),
        u64::from(AuditQuery::DEFAULT_LIMIT)
    );
    assert!(params.iter().any(|p| p["name"] == "page_token"));
    let limit = parameter(&parameters(&doc, "get", "/api/v1/me/events"), "limit");
    assert_eq!(number(&limit, "minimum"), 1);
    assert_eq!(number(&limit, "maximum"), u64::from(AuditQuery::MAX_LIMIT));
    assert_eq!(number(&limit, "default"), 20);
    let export = &doc["paths"]["/api/v1/me/export"]["get"]["responses"]["200"];
    assert!(
        export["headers"]["Content-Disposition"].is_object(),
        "{export}"
    );

    // Each documented kind and outcome is accepted as a filter, and the page sizes at the
    // documented ends too; one beyond either end is refused.
    app.create_admin("root").await;
    let token = app.token("root").await;
    let get = |path: String| {
        let (app, token) = (&app, token.clone());
        async move { app.json(Method::GET, &path, None, Some(&token)).await }
    };
    for kind in &kinds {
        let r = get(format!("/api/v1/admin/audit?kind={kind}")).await;
        assert_eq!(r.status, StatusCode::OK, "{kind}: {}", r.text);
    }
    for outcome in outcomes {
        let r = get(format!("/api/v1/admin/audit?outcome={outcome}")).await;
        assert_eq!(r.status, StatusCode::OK, "{outcome}");
    }
    let max = AuditQuery::MAX_LIMIT;
    for (path, param) in [
        ("/api/v1/admin/audit", "page_size"),
        ("/api/v1/me/events", "limit"),
    ] {
        for (n, status) in [
            (0, StatusCode::UNPROCESSABLE_ENTITY),
            (1, StatusCode::OK),
            (max, StatusCode::OK),
            (max + 1, StatusCode::UNPROCESSABLE_ENTITY),
        ] {
            let r = get(format!("{path}?{param}={n}")).await;
            assert_eq!(r.status, status, "{path}?{param}={n}: {}", r.text);
        }
    }
}

#[tokio::test]
async fn audit_and_export_answers_match_their_schemas() {
    let app = TestApp::new().await;
    let doc = document(&app).await;
    app.create_admin("root").await;
    app.register("alice").await;
    let body = json!({"identifier": "alice", "password": "wrong"});
    app.json(Method::POST, "/api/v1/auth/login", Some(body), None)
        .await;
    let admin = app.token("root").await;
    let alice = app.token("alice").await;
    for (path, token) in [
        ("/api/v1/admin/audit?page_size=2", &admin),
        ("/api/v1/me/events", &alice),
        ("/api/v1/me/export", &alice),
    ] {
        let template = path.split('?').next().unwrap();
        let ok = &doc["paths"][template]["get"]["responses"]["200"];
        let schema = &ok["content"]["application/json"]["schema"];
        let r = app.json(Method::GET, path, None, Some(token)).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
        conforms(&doc, schema, &r.json()).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(!r.json()["events"].as_array().unwrap().is_empty(), "{path}");
    }
}

#[tokio::test]
async fn second_factor_schemas_say_what_the_server_checks() {
    let app = TestApp::new().await;
    let doc = document(&app).await;
    assert_eq!(required(&doc, "SecondStepBody"), ["challenge", "code"]);
    assert_eq!(required(&doc, "ChallengeBody"), ["challenge"]);
    assert_eq!(required(&doc, "TotpCodeBody"), ["code"]);
    assert_eq!(required(&doc, "PasswordAndCodeBody"), ["code", "password"]);
    assert!(
        doc["components"]["schemas"]["DisableSecondFactorBody"].is_null(),
        "one body for both routes that take a password and a code"
    );
    for path in [
        "/api/v1/me/second-factor/disable",
        "/api/v1/me/second-factor/recovery-codes",
    ] {
        let body = &doc["paths"][path]["post"]["requestBody"]["content"]["application/json"];
        assert_eq!(
            body["schema"]["$ref"], "#/components/schemas/PasswordAndCodeBody",
            "{path}"
        );
    }
    assert_eq!(
        schema(&doc, "SecondStepKind")["enum"],
        json!(["code", "enrolment"])
    );
    // Codes are only checked: any non-empty string is accepted at the edge, and a wrong or
    // malformed one is a 401, never a 422.
    for (body, field) in [
        ("SecondStepBody", "code"),
        ("TotpCodeBody", "code"),
        ("PasswordAndCodeBody", "code"),
        ("SecondStepBody", "challenge"),
        ("ChallengeBody", "challenge"),
    ] {
        let p = property(&doc, body, field);
        assert_eq!(number(p, "minLength"), 1, "{body}.{field}");
        assert!(p.get("maxLength").is_none() && p.get("pattern").is_none());
    }
    let token = {
        app.register("alice").await;
        app.token("alice").await
    };
    let confirm = |code: &str| json!({ "code": code });
    let r = app
        .json(
            Method::POST,
            "/api/v1/me/second-factor/totp/confirm",
            Some(confirm("")),
            Some(&token),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    app.json(
        Method::POST,
        "/api/v1/me/second-factor/totp",
        Some(json!({ "password": PW })),
        Some(&token),
    )
    .await;
    let r = app
        .json(
            Method::POST,
            "/api/v1/me/second-factor/totp/confirm",
            Some(confirm("x")),
            Some(&token),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);

    // The recovery codes' pattern is the core's alphabet, in its groups.
    let codes = property(&doc, "RecoveryCodesBody", "recovery_codes");
    assert_eq!(number(codes, "minItems"), RecoveryCode::COUNT as u64);
    assert_eq!(number(codes, "maxItems"), RecoveryCode::COUNT as u64);
    let re = pattern(&codes["items"]);
    for _ in 0..200 {
        let code = RecoveryCode::generate().unwrap();
        assert!(re.is_match(&code), "{code}");
    }
    for bad in [
        "abcd-efgh-jkmn",
        "abcd-efgh-jkmn-pqrs-tvwx-yz0",
        "abcd-efgh-jkmn-pqrs-tvwx-yz01-2345",
        "abcd-efgh-jkmn-pqrs-tvwx-yzl1",
        "abcdefghjkmnpqrstvwxyz01",
        "ABCD-EFGH-JKMN-PQRS-TVWX-YZ01",
    ] {
        assert!(!re.is_match(bad), "{bad}");
    }

    // The second step signs in with the same answer as the password step.
    let ok = |path: &str| {
        doc["paths"][path]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
            ["$ref"]
            .clone()
    };
    assert_eq!(ok("/api/v1/auth/login"), "#/components/schemas/TokensBody");
    assert_eq!(
        ok("/api/v1/auth/login/second-factor"),
        ok("/api/v1/auth/login")
    );
    assert_eq!(
        doc["paths"]["/api/v1/auth/login"]["post"]["responses"]["202"]["content"]["application/json"]
            ["schema"]["$ref"],
        "#/components/schemas/SecondFactorChallenge"
    );
    assert_eq!(
        schema(&doc, "EnrolledTokensBody")["allOf"][0]["$ref"],
        "#/components/schemas/TokensBody"
    );
    assert_eq!(
        required(&doc, "SecondFactorStatusBody"),
        [
            "enabled",
            "enabled_at",
            "pending",
            "recovery_codes_left",
            "required"
        ]
    );
}

/// Checks that `r`'s body matches the schema the document gives its status on
/// `method path`, and that there is one (or none, for an empty body).
fn matches_document(doc: &Value, method: &str, path: &str, r: &crate::Reply) {
    let response = &doc["paths"][path][method]["responses"][r.status.as_str()];
    assert!(
        response.is_object(),
        "{method} {path} {}: not documented",
        r.status
    );
    let schema = &response["content"]["application/json"]["schema"];
    if schema.is_null() {
        assert!(r.text.is_empty(), "{method} {path}: {}", r.text);
    } else {
        conforms(doc, schema, &r.json())
            .unwrap_or_else(|e| panic!("{method} {path} {}: {e}", r.status));
    }
}

#[tokio::test]
async fn second_factor_answers_match_their_schemas() {
    let mut policy = AuthPolicy::default();
    policy.second_factor.required_for_admins = true;
    let app = TestApp::with_policy(HttpConfig::default(), Templates::default(), policy).await;
    let doc = document(&app).await;
    let send = |method: &'static str,
                path: &'static str,
                id: Option<String>,
                body: Option<Value>,
                token: Option<String>| {
        let (app, doc) = (&app, &doc);
        async move {
            let concrete = path.replace("{id}", id.as_deref().unwrap_or_default());
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = app.json(m, &concrete, body, token.as_deref()).await;
            matches_document(doc, method, path, &r);
            r
        }
    };
    let alice = app.register("alice").await;
    let alice_id = alice["id"].as_str().map(str::to_owned);
    let token = Some(app.token("alice").await);
    let status = "/api/v1/me/second-factor";
    send("get", status, None, None, token.clone()).await;
    let r = send(
        "post",
        "/api/v1/me/second-factor/totp",
        None,
        Some(json!({ "password": PW })),
        token.clone(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let secret = r.json()["secret"].as_str().unwrap().to_owned();
    let confirm = "/api/v1/me/second-factor/totp/confirm";
    let r = send(
        "post",
        confirm,
        None,
        Some(json!({ "code": "000000x" })),
        token.clone(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let code = totp_code(&secret, app.clock.now());
    let r = send(
        "post",
        confirm,
        None,
        Some(json!({ "code": code })),
        token.clone(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    // The app's code is spent: one of the recovery codes just given (spent too).
    let recovery = r.json()["recovery_codes"][0].as_str().unwrap().to_owned();
    let r = send(
        "post",
        "/api/v1/me/second-factor/recovery-codes",
        None,
        Some(json!({ "password": PW, "code": recovery })),
        token.clone(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send("get", status, None, None, token.clone()).await;
    assert_eq!(r.json()["enabled"], true);
    app.clock.advance(std::time::Duration::from_secs(30));

    let login = |name: &str| json!({ "identifier": name, "password": PW });
    let r = send(
        "post",
        "/api/v1/auth/login",
        None,
        Some(login("alice")),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let challenge = r.json()["challenge"].clone();
    let code = totp_code(&secret, app.clock.now());
    let step = json!({ "challenge": challenge, "code": code, "trust_device": false });
    let r = send(
        "post",
        "/api/v1/auth/login/second-factor",
        None,
        Some(step.clone()),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send(
        "post",
        "/api/v1/auth/login/second-factor",
        None,
        Some(step),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    app.create_admin("root").await;
    let r = send(
        "post",
        "/api/v1/auth/login",
        None,
        Some(login("root")),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.json()["step"], "enrolment");
    let challenge = r.json()["challenge"].clone();
    let r = send(
        "post",
        "/api/v1/auth/login/enrolment",
        None,
        Some(json!({ "challenge": challenge })),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let root_secret = r.json()["secret"].as_str().unwrap().to_owned();
    let code = totp_code(&root_secret, app.clock.now());
    let r = send(
        "post",
        "/api/v1/auth/login/enrolment/confirm",
        None,
        Some(json!({ "challenge": challenge, "code": code })),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let admin = r.json()["access_token"].as_str().map(str::to_owned);
    let admin_path = "/api/v1/admin/users/{id}/second-factor";
    let r = send("get", admin_path, alice_id.clone(), None, admin.clone()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["required"], false);
    let r = send("delete", admin_path, alice_id.clone(), None, admin.clone()).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = send("delete", admin_path, alice_id, None, admin).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
}
