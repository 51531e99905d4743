//! The audit log and the data rights on the pages, over a real socket: the admin's log,
//! the profile's recent activity, downloading one's data and deleting one's account.

use axum::http::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::agent::{Agent, location};
use crate::pages::signed_in;
use crate::{PW, TestApp};

/// An address as a page writes it in an attribute, back as typed.
fn unescape(html: &str) -> String {
    html.replace("&#x2f;", "/")
        .replace("&amp;", "&")
        .replace("&#x3d;", "=")
}

/// The `href` of the link whose text is `text`.
fn link(html: &str, text: &str) -> String {
    let end = html
        .find(&format!(r#"rel="next">{text}</a>"#))
        .unwrap_or_else(|| panic!("no link {text:?} in {html}"));
    let start = html[..end].rfind("href=\"").unwrap() + "href=\"".len();
    let href = &html[start..end];
    unescape(&href[..href.find('"').unwrap()])
}

/// The rows of a page's table, without the filter form above it.
fn rows(html: &str) -> &str {
    html.split("<tbody>")
        .nth(1)
        .unwrap_or_else(|| panic!("no table: {html}"))
}

/// The admin's log as JSON, for checks the page does not show.
async fn logged(app: &TestApp, query: &str) -> Vec<Value> {
    let token = app.token("root").await;
    let r = app
        .json(
            Method::GET,
            &format!("/api/v1/admin/audit{query}"),
            None,
            Some(&token),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json()["events"].as_array().unwrap().clone()
}

#[tokio::test]
async fn the_audit_page_is_for_admins_only() {
    let app = TestApp::new().await;
    app.create_admin("root").await;
    app.register("alice").await;
    let (base, _stop) = app.spawn().await;
    let mut visitor = Agent::new(&base);
    let r = visitor.get("/admin/audit?kind=sign_in").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        location(&r),
        "/login?next=%2Fadmin%2Faudit%3Fkind%3Dsign_in"
    );
    let mut alice = signed_in(&base, "alice").await;
    let r = alice.get("/admin/audit").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(!r.text.contains("Audit log"), "no link in a user's menu");
    let profile = alice.get("/profile").await;
    assert!(!profile.text.contains("/admin/audit"));
}

#[tokio::test]
async fn the_audit_page_lists_filters_and_pages_events() {
    let app = TestApp::new().await;
    app.create_admin("root").await;
    let alice = app.register("alice").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (base, _stop) = app.spawn().await;
    let mut visitor = Agent::new(&base);
    visitor.get("/login").await;
    visitor
        .post(
            "/login",
            &[("identifier", "alice"), ("password", "nope"), ("next", "")],
        )
        .await;
    let mut root = signed_in(&base, "root").await;

    let users = root.get("/admin/users").await;
    assert!(
        users.text.contains(r#"href="/admin/audit""#),
        "{}",
        users.text
    );
    let user = root.get(&format!("/admin/users/{alice}")).await;
    assert!(
        user.text.contains(&format!(
            r#"href="/admin/audit?subject={alice}">Audit events</a>"#
        )),
        "{}",
        user.text
    );

    let r = root.get("/admin/audit").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let table = rows(&r.text);
    for text in [
        "Sign-in",
        "Failed",
        "Succeeded",
        "Account created",
        "wrong_password",
        "test-agent",
        "127.0.0.1",
        &format!(r#"href="/admin/users/{alice}""#),
    ] {
        assert!(table.contains(text), "{text}: {}", r.text);
    }
    assert!(!r.text.contains("Older events"), "one page");
    // Every kind is offered in the filter.
    for kind in user_core::domain::AuditKind::ALL {
        assert!(
            r.text
                .contains(&format!(r#"<option value="{}""#, kind.as_str())),
            "{kind}"
        );
    }

    // A filter keeps its value and narrows the list.
    let r = root
        .get(&format!(
            "/admin/audit?subject={alice}&kind=sign_in&outcome=failure"
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains(r#"<option value="sign_in" selected>"#));
    assert!(r.text.contains(r#"<option value="failure" selected>"#));
    assert!(rows(&r.text).contains("Failed"), "{}", r.text);
    assert!(!rows(&r.text).contains("Account created"));
    assert!(!rows(&r.text).contains("Succeeded"));

    // Bad filters: the form again, each problem beside its field, no error page.
    let r = root
        .get("/admin/audit?subject=nobody&kind=nap&outcome=maybe")
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    for id in ["subject-error", "kind-error", "outcome-error"] {
        assert!(
            r.text.contains(&format!(r#"id="{id}""#)),
            "{id}: {}",
            r.text
        );
    }
    assert!(r.text.contains("must be a user id (a UUID)"));
    assert!(r.text.contains(r#"value="nobody""#), "what was typed stays");
    let r = root.get("/admin/audit?page_token=garbage").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.text.contains("The link to older events is invalid"),
        "{}",
        r.text
    );

    // More than a page: "Older events" carries the filters and the token.
    for _ in 0..55 {
        app.login("alice").await;
    }
    let first = root
        .get(&format!("/admin/audit?subject={alice}&kind=sign_in"))
        .await;
    assert_eq!(
        first.text.matches("<tr>").count(),
        1 + 50,
        "header and 50 rows"
    );
    let older = link(&first.text, "Older events");
    assert!(
        older.starts_with(&format!(
            "/admin/audit?subject={alice}&kind=sign_in&page_token="
        )),
        "{older}"
    );
    let second = root.get(&older).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text);
    // 55 sign-ins, one failure and root's sign-in is not alice's: 56 of alice's in all.
    assert_eq!(
        second.text.matches("<tr>").count(),
        1 + 6,
        "{}",
        second.text
    );
    assert!(!second.text.contains("Older events"));
}

#[tokio::test]
async fn the_profile_shows_recent_security_activity() {
    let app = TestApp::new().await;
    app.register("alice").await;
    let (base, _stop) = app.spawn().await;
    let mut agent = Agent::new(&base);
    agent.user_agent = "Firefox on the test bench".to_owned();
    agent.get("/login").await;
    let r = agent
        .post(
            "/login",
            &[("identifier", "alice"), ("password", "wrong"), ("next", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = agent
        .post(
            "/login",
            &[("identifier", "alice"), ("password", PW), ("next", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let profile = agent.get("/profile").await;
    assert_eq!(profile.status, StatusCode::OK);
    for text in [
        "Recent security activity",
        "Sign-in",
        "Failed",
        "Succeeded",
        "Account created",
        "127.0.0.1",
        "Firefox on the test bench",
        r#"action="/profile/export""#,
        r#"href="/profile/delete""#,
    ] {
        assert!(profile.text.contains(text), "{text}: {}", profile.text);
    }
    // The last ten only.
    for _ in 0..12 {
        app.login("alice").await;
    }
    let profile = agent.get("/profile").await;
    let table = profile
        .text
        .split("Recent security activity")
        .nth(1)
        .unwrap();
    assert_eq!(table.matches("<tr>").count(), 1 + 10);
}

#[tokio::test]
async fn downloading_my_data_needs_the_form_s_token() {
    let app = TestApp::new().await;
    let alice = app.register("alice").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (base, _stop) = app.spawn().await;
    let mut agent = signed_in(&base, "alice").await;
    let session = agent.session().unwrap();
    for token in ["", "forged"] {
        let r = agent
            .post("/profile/export", &[("csrf_token", token)])
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        assert!(r.headers.get(header::CONTENT_DISPOSITION).is_none());
    }
    let r = agent.call(Method::GET, "/profile/export").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);

    let r = agent.post("/profile/export", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.headers[header::CONTENT_DISPOSITION],
        r#"attachment; filename="my-data.json""#
    );
    assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
    let data = r.json();
    assert_eq!(data["user"]["id"], alice.as_str());
    let sessions = data["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["current"], true);
    assert_eq!(sessions[0]["kind"], "browser");
    assert!(data["events"].as_array().unwrap().len() >= 2);
    assert!(!r.text.contains(&session), "no session token");
    assert!(!r.text.contains(PW) && !r.text.contains("$argon2"));

    // Signed out, there is nothing to download.
    let mut visitor = Agent::new(&base);
    visitor.get("/login").await;
    let r = visitor.post("/profile/export", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn deleting_my_account_takes_the_password_and_signs_me_out() {
    let app = TestApp::new().await;
    app.create_admin("root").await;
    let alice = app.register("alice").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (base, _stop) = app.spawn().await;
    let mut agent = signed_in(&base, "alice").await;

    let form = agent.get("/profile/delete").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.text.contains(r#"action="/profile/delete""#));
    assert!(form.text.contains(r#"autocomplete="current-password""#));

    // A wrong password: the form again, nothing deleted, still signed in.
    let r = agent
        .post("/profile/delete", &[("password", "not my password")])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert!(r.text.contains("Your account was not deleted."));
    assert!(r.text.contains(r#"id="password-error""#));
    assert!(!r.text.contains("not my password"));
    assert_eq!(agent.get("/profile").await.status, StatusCode::OK);
    assert_eq!(app.login("alice").await["user"]["id"], alice.as_str());

    // Without the form's token: refused.
    let r = agent
        .post("/profile/delete", &[("password", PW), ("csrf_token", "x")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // The right one: deleted, signed out, told so.
    let r = agent.post("/profile/delete", &[("password", PW)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(location(&r), "/login");
    assert!(agent.session().is_none(), "the session cookie is removed");
    let login = agent.get("/login").await;
    assert!(
        login.text.contains("Your account was deleted."),
        "{}",
        login.text
    );
    assert_eq!(agent.get("/profile").await.status, StatusCode::SEE_OTHER);
    let body = json!({"identifier": "alice", "password": PW});
    let r = app
        .json(Method::POST, "/api/v1/auth/login", Some(body), None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // The admin sees the deletion, and nothing of where the owner was.
    let mut root = signed_in(&base, "root").await;
    let page = root
        .get(&format!("/admin/audit?subject={alice}&kind=deleted"))
        .await;
    assert!(page.text.contains("Account deletion"), "{}", page.text);
    assert!(page.text.contains("by its owner"), "{}", page.text);
    assert!(!page.text.contains("test-agent"), "{}", page.text);
    let events = logged(&app, &format!("?subject={alice}")).await;
    let deleted: Vec<&Value> = events.iter().filter(|e| e["kind"] == "deleted").collect();
    assert_eq!(
        deleted.len(),
        2,
        "the refusal and the deletion: {deleted:?}"
    );
    assert_eq!(deleted[0]["outcome"], "success");
    assert_eq!(deleted[1]["outcome"], "failure");
    for e in &events {
        for field in ["ip", "user_agent", "identifier"] {
            assert!(e[field].is_null(), "{field} kept: {e}");
        }
    }
    assert!(events.iter().any(|e| e["kind"] == "sign_in"), "{events:?}");
}

#[tokio::test]
async fn the_last_admin_and_a_guesser_keep_the_account() {
    let app = TestApp::new().await;
    app.create_admin("root").await;
    app.register("alice").await;
    let (base, _stop) = app.spawn().await;
    let mut root = signed_in(&base, "root").await;
    let r = root.post("/profile/delete", &[("password", PW)]).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert!(
        r.text.contains("You are the last active admin"),
        "{}",
        r.text
    );
    assert_eq!(root.get("/profile").await.status, StatusCode::OK);

    let mut alice = signed_in(&base, "alice").await;
    for _ in 0..5 {
        let r = alice
            .post("/profile/delete", &[("password", "guess")])
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = alice.post("/profile/delete", &[("password", PW)]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert!(
        r.text.contains("Too many attempts, try again in"),
        "{}",
        r.text
    );
    assert!(r.headers.contains_key(header::RETRY_AFTER));
    assert_eq!(alice.get("/profile").await.status, StatusCode::OK);
}
