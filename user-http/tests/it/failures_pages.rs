//! The refusals of the web pages, each with its effect: the admin area refuses a non-admin
//! (403) and sends a signed-out visitor to the sign-in page, and a refused form changes
//! nothing in the store; the session, admin edit, password and registration forms that had
//! no test of their failures.

use axum::http::StatusCode;
use user_core::domain::{Role, SessionId, User, UserId, UserStatus, Username};
use user_core::error::RepoError;
use user_core::ports::{Clock as _, SessionStore as _, UserRepository as _};

use crate::agent::{Agent, location};
use crate::pages::signed_in;
use crate::{PW, TestApp};

const MISSING: &str = "00000000-0000-7000-8000-000000000000";

/// The user as stored.
async fn stored(app: &TestApp, id: &str) -> User {
    app.db
        .users()
        .get(id.parse::<UserId>().unwrap())
        .await
        .unwrap()
}

/// The ids of the user's active sessions in the store.
async fn active_sessions(app: &TestApp, id: &str) -> Vec<SessionId> {
    app.db
        .sessions()
        .list_active(id.parse().unwrap(), app.clock.now())
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect()
}

/// `next=...` as the sign-in redirect writes it.
fn next(path: &str) -> String {
    format!(
        "/login?{}",
        serde_urlencoded::to_string([("next", path)]).unwrap()
    )
}

/// A form's path and fields.
type Form = (String, Vec<(&'static str, &'static str)>);

/// Every admin page, and every admin form with fields it accepts, for the user `id`.
fn admin_pages(id: &str) -> (Vec<String>, Vec<Form>) {
    let user = format!("/admin/users/{id}");
    let gets = vec![
        "/admin/users".to_owned(),
        "/admin/audit".to_owned(),
        user.clone(),
        format!("{user}/edit"),
        format!("{user}/delete"),
    ];
    let posts = vec![
        (
            format!("{user}/edit"),
            vec![
                ("username", "mallory"),
                ("email", "mallory@example.com"),
                ("display_name", "M"),
            ],
        ),
        (format!("{user}/role"), vec![("role", "admin")]),
        (format!("{user}/status"), vec![("status", "disabled")]),
        (format!("{user}/unlock"), vec![]),
        (format!("{user}/second-factor/reset"), vec![]),
        (format!("{user}/password-reset"), vec![]),
        (format!("{user}/delete"), vec![]),
    ];
    (gets, posts)
}

/// Bob as registered, with his session still working.
async fn assert_bob_untouched(app: &TestApp, bob_id: &str, bob: &mut Agent) {
    let user = stored(app, bob_id).await;
    assert_eq!(user.username.as_str(), "bob");
    assert_eq!(user.email.as_str(), "bob@example.com");
    assert!(user.display_name.is_none());
    assert_eq!((user.role, user.status), (Role::User, UserStatus::Active));
    assert_eq!(active_sessions(app, bob_id).await.len(), 1);
    assert_eq!(bob.get("/profile").await.status, StatusCode::OK);
    assert!(
        app.subjects().await.is_empty(),
        "no mail (a reset link) was sent"
    );
}

#[tokio::test]
async fn every_admin_page_refuses_a_non_admin_and_changes_nothing() {
    let app = TestApp::new().await;
    app.create_admin("root").await;
    app.register("alice").await;
    let bob_id = app.register("bob").await["id"].as_str().unwrap().to_owned();
    let (base, _stop) = app.spawn().await;
    let mut bob = signed_in(&base, "bob").await;
    let mut alice = signed_in(&base, "alice").await;
    app.subjects().await;

    let (gets, posts) = admin_pages(&bob_id);
    for path in &gets {
        let r = alice.get(path).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.text);
        assert!(r.text.contains("Not allowed"), "{path}: {}", r.text);
        assert!(!r.text.contains("bob@example.com"), "{path}: no data");
    }
    for (path, fields) in &posts {
        let r = alice.post(path, fields).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.text);
        assert!(r.text.contains("Not allowed"), "{path}: {}", r.text);
    }
    assert_bob_untouched(&app, &bob_id, &mut bob).await;
    assert_eq!(alice.get("/profile").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_non_admin_cannot_promote_or_edit_themself_on_the_admin_pages() {
    let app = TestApp::new().await;
    app.create_admin("root").await;
    let alice_id = app.register("alice").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (base, _stop) = app.spawn().await;
    let mut alice = signed_in(&base, "alice").await;
    let (_, posts) = admin_pages(&alice_id);
    for (path, fields) in &posts {
        let r = alice.post(path, fields).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.text);
    }
    let user = stored(&app, &alice_id).await;
    assert_eq!(user.username.as_str(), "alice");
    assert_eq!((user.role, user.status), (Role::User, UserStatus::Active));
    assert_eq!(alice.get("/profile").await.status, StatusCode::OK);
}

#[tokio::test]
async fn every_admin_page_sends_a_signed_out_visitor_to_sign_in() {
    let app = TestApp::new().await;
    app.create_admin("root").await;
    let bob_id = app.register("bob").await["id"].as_str().unwrap().to_owned();
    let (base, _stop) = app.spawn().await;
    let mut bob = signed_in(&base, "bob").await;
    app.subjects().await;
    let mut visitor = Agent::new(&base);
    visitor.get("/login").await;

    let (gets, posts) = admin_pages(&bob_id);
    for path in &gets {
        let r = visitor.get(path).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{path}: {}", r.text);
        assert_eq!(location(&r), next(path), "{path}");
    }
    // With the visitor's own valid form token: refused for want of a sign-in, not of a token.
    for (path, fields) in &posts {
        let r = visitor.post(path, fields).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{path}: {}", r.text);
        assert!(location(&r).starts_with("/login?next="), "{path}");
    }
    assert_bob_untouched(&app, &bob_id, &mut bob).await;
}

#[tokio::test]
async fn profile_pages_send_a_signed_out_visitor_to_sign_in() {
    let app = TestApp::new().await;
    let alice_id = app.register("alice").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (base, _stop) = app.spawn().await;
    let mut alice = signed_in(&base, "alice").await;
    let session = active_sessions(&app, &alice_id).await[0].to_string();
    let mut visitor = Agent::new(&base);
    visitor.get("/login").await;
    for path in [
        "/profile",
        "/profile/edit",
        "/profile/password",
        "/profile/sessions",
        "/profile/delete",
    ] {
        let r = visitor.get(path).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{path}: {}", r.text);
        assert_eq!(location(&r), next(path), "{path}");
    }
    let revoke = format!("/profile/sessions/{session}/revoke");
    let posts: [(&str, Vec<(&str, &str)>); 6] = [
        (
            "/profile/edit",
            vec![
                ("username", "mallory"),
                ("email", "mallory@example.com"),
                ("display_name", ""),
            ],
        ),
        (
            "/profile/password",
            vec![
                ("current_password", PW),
                ("new_password", "a whole new passphrase"),
            ],
        ),
        (&revoke, vec![]),
        ("/profile/export", vec![]),
        ("/profile/delete", vec![("password", PW)]),
        ("/profile/verification", vec![]),
    ];
    for (path, fields) in &posts {
        let r = visitor.post(path, fields).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{path}: {}", r.text);
        assert!(location(&r).starts_with("/login?next="), "{path}");
    }
    assert_eq!(
        active_sessions(&app, &alice_id).await.len(),
        1,
        "alice's session was not revoked"
    );
    assert_eq!(alice.get("/profile").await.status, StatusCode::OK);
    assert_eq!(stored(&app, &alice_id).await.username.as_str(), "alice");
}

/// The session ids of the page's "Sign out" forms (the other sessions).
fn revoke_links(page: &str) -> Vec<String> {
    let re = regex::Regex::new(r#"/profile/sessions/([0-9a-f-]{36})/revoke"#).unwrap();
    re.captures_iter(page).map(|c| c[1].to_owned()).collect()
}

#[tokio::test]
async fn a_person_signs_out_another_of_their_sessions_and_not_someone_else_s() {
    let app = TestApp::new().await;
    let alice_id = app.register("alice").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob_id = app.register("bob").await["id"].as_str().unwrap().to_owned();
    let (base, _stop) = app.spawn().await;
    let mut laptop = signed_in(&base, "alice").await;
    let mut phone = signed_in(&base, "alice").await;
    let mut bob = signed_in(&base, "bob").await;

    let page = laptop.get("/profile/sessions").await;
    assert_eq!(page.status, StatusCode::OK);
    let others = revoke_links(&page.text);
    assert_eq!(others.len(), 1, "only the other session has the form");
    let phone_session = &others[0];

    // Someone else's session, and ids that name no session: 404, nothing revoked.
    let bobs = active_sessions(&app, &bob_id).await[0].to_string();
    for id in [bobs.as_str(), MISSING, "not-an-id"] {
        let r = laptop
            .post(&format!("/profile/sessions/{id}/revoke"), &[])
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{id}: {}", r.text);
    }
    assert_eq!(bob.get("/profile").await.status, StatusCode::OK);
    assert_eq!(active_sessions(&app, &bob_id).await.len(), 1);
    assert_eq!(active_sessions(&app, &alice_id).await.len(), 2);

    let r = laptop
        .post(&format!("/profile/sessions/{phone_session}/revoke"), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(location(&r), "/profile/sessions");
    let page = laptop.get("/profile/sessions").await;
    assert!(page.text.contains("That session was signed out."));
    assert!(revoke_links(&page.text).is_empty());
    let revoked = app
        .db
        .sessions()
        .get(phone_session.parse().unwrap())
        .await
        .unwrap();
    assert!(revoked.revoked_at.is_some(), "revoked in the store");
    let r = phone.get("/profile").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "the phone is signed out");
    assert_eq!(laptop.get("/profile").await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_admin_edits_a_user_and_a_refused_edit_changes_nothing() {
    let app = TestApp::new().await;
    app.create_admin("root").await;
    app.register("alice").await;
    let bob_id = app.register("bob").await["id"].as_str().unwrap().to_owned();
    let (base, _stop) = app.spawn().await;
    let mut root = signed_in(&base, "root").await;
    let edit = format!("/admin/users/{bob_id}/edit");

    let form = root.get(&edit).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.text.contains(r#"value="bob@example.com""#));

    let r = root
        .post(
            &edit,
            &[
                ("username", "alice"),
                ("email", "bob@example.com"),
                ("display_name", "Robert"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert!(r.text.contains("is already taken"));
    assert!(r.text.contains(r#"id="username-error""#), "{}", r.text);
    assert!(r.text.contains(r#"value="Robert""#), "what was typed stays");
    let r = root
        .post(
            &edit,
            &[
                ("username", "bob"),
                ("email", "not-an-email"),
                ("display_name", "Robert"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.text.contains(r#"id="email-error""#), "{}", r.text);
    let user = stored(&app, &bob_id).await;
    assert_eq!(user.username.as_str(), "bob");
    assert_eq!(user.email.as_str(), "bob@example.com");
    assert!(user.display_name.is_none(), "refused edits change nothing");

    for id in [MISSING, "not-an-id"] {
        let r = root
            .post(
                &format!("/admin/users/{id}/edit"),
                &[("username", "ghost"), ("email", "ghost@example.com")],
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{id}: {}", r.text);
    }

    let r = root
        .post(
            &edit,
            &[
                ("username", "robert"),
                ("email", "robert@example.com"),
                ("display_name", "Robert"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(location(&r), format!("/admin/users/{bob_id}"));
    let page = root.get(&location(&r)).await;
    assert!(page.text.contains("The profile was saved."));
    let user = stored(&app, &bob_id).await;
    assert_eq!(user.username.as_str(), "robert");
    assert_eq!(user.email.as_str(), "robert@example.com");
    assert_eq!(
        user.display_name.as_ref().map(|d| d.as_str()),
        Some("Robert")
    );
    let by_old_name = app
        .db
        .users()
        .get_by_username(&Username::parse("bob").unwrap())
        .await;
    assert!(matches!(by_old_name, Err(RepoError::NotFound)));
}

#[tokio::test]
async fn a_new_password_the_policy_refuses_is_shown_by_its_field_and_the_old_one_stays() {
    let app = TestApp::new().await;
    app.register("alice").await;
    let (base, _stop) = app.spawn().await;
    let mut agent = signed_in(&base, "alice").await;
    let mut other = signed_in(&base, "alice").await;
    // Too short, and long enough but well known.
    for refused in ["Zq9-short", "1qaz2wsx3edc"] {
        let r = agent
            .post(
                "/profile/password",
                &[("current_password", PW), ("new_password", refused)],
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{refused}: {}",
            r.text
        );
        assert!(
            r.text.contains(r#"id="new_password-error""#),
            "by its field: {}",
            r.text
        );
        assert!(!r.text.contains(r#"id="current_password-error""#));
        assert!(!r.text.contains(refused), "the password is not echoed");
        let old = agent_sign_in(&base, "alice", PW).await;
        assert_eq!(old, StatusCode::SEE_OTHER, "the old password still works");
        let new = agent_sign_in(&base, "alice", refused).await;
        assert_eq!(new, StatusCode::UNAUTHORIZED, "{refused} was not set");
    }
    assert_eq!(agent.get("/profile").await.status, StatusCode::OK);
    assert_eq!(
        other.get("/profile").await.status,
        StatusCode::OK,
        "a refused change signs no session out"
    );
}

/// The status of a sign-in on the page from a fresh browser.
async fn agent_sign_in(base: &str, name: &str, password: &str) -> StatusCode {
    let mut agent = Agent::new(base);
    agent.get("/login").await;
    agent
        .post(
            "/login",
            &[("identifier", name), ("password", password), ("next", "")],
        )
        .await
        .status
}

#[tokio::test]
async fn registration_errors_are_shown_by_field_and_create_nobody() {
    let app = TestApp::new().await;
    app.register("alice").await;
    let (base, _stop) = app.spawn().await;
    let mut visitor = Agent::new(&base);
    visitor.get("/register").await;
    let secret = "Zq9-x";
    let r = visitor
        .post(
            "/register",
            &[
                ("username", "c"),
                ("email", "not-an-email"),
                ("password", secret),
                ("display_name", "Carol C"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    for field in ["username", "email", "password"] {
        assert!(
            r.text.contains(&format!(r#"id="{field}-error""#)),
            "{field}: {}",
            r.text
        );
    }
    assert!(!r.text.contains(r#"id="display_name-error""#));
    assert!(r.text.contains(r#"value="not-an-email""#) && r.text.contains(r#"value="Carol C""#));
    assert!(!r.text.contains(secret), "the password is not echoed");
    assert!(visitor.session().is_none(), "not signed in");

    for (username, email, field) in [
        ("ALICE", "carol@example.com", "username"),
        ("carol", "Alice@Example.com", "email"),
    ] {
        let r = visitor
            .post(
                "/register",
                &[
                    ("username", username),
                    ("email", email),
                    ("password", PW),
                    ("display_name", ""),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{field}: {}", r.text);
        assert!(r.text.contains("is already taken"));
        assert!(
            r.text.contains(&format!(r#"id="{field}-error""#)),
            "{field}: {}",
            r.text
        );
        assert!(visitor.session().is_none(), "not signed in");
    }
    let carol = app
        .db
        .users()
        .get_by_username(&Username::parse("carol").unwrap())
        .await;
    assert!(matches!(carol, Err(RepoError::NotFound)), "{carol:?}");
    let alice = app
        .db
        .users()
        .get_by_username(&Username::parse("alice").unwrap())
        .await
        .unwrap();
    assert_eq!(alice.email.as_str(), "alice@example.com");
    assert_eq!(
        agent_sign_in(&base, "alice", PW).await,
        StatusCode::SEE_OTHER,
        "alice keeps her password"
    );
}

#[tokio::test]
async fn admin_forms_refuse_bad_values_missing_users_and_the_last_admin() {
    let app = TestApp::new().await;
    app.create_admin("root").await;
    let bob_id = app.register("bob").await["id"].as_str().unwrap().to_owned();
    let (base, _stop) = app.spawn().await;
    let mut root = signed_in(&base, "root").await;
    let mut bob = signed_in(&base, "bob").await;
    app.subjects().await;
    let user = format!("/admin/users/{bob_id}");

    // Values no form offers: 400, bob unchanged.
    for (path, fields) in [
        (format!("{user}/role"), [("role", "emperor")]),
        (format!("{user}/role"), [("role", "")]),
        (format!("{user}/status"), [("status", "gone")]),
        (
            "/admin/users/not-an-id/role".to_owned(),
            [("role", "admin")],
        ),
        (
            "/admin/users/not-an-id/status".to_owned(),
            [("status", "active")],
        ),
    ] {
        let r = root.post(&path, &fields).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.text);
    }
    assert_bob_untouched(&app, &bob_id, &mut bob).await;

    // A user that does not exist, or an id that names nobody: 404 on every page and form.
    for id in [MISSING, "not-an-id"] {
        let (gets, posts) = admin_pages(id);
        for path in gets.iter().skip(2) {
            let r = root.get(path).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.text);
        }
        for (path, fields) in &posts {
            if id != MISSING && (path.ends_with("/role") || path.ends_with("/status")) {
                continue; // 400 above
            }
            let r = root.post(path, fields).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.text);
        }
    }

    // The last active admin may not disable, demote or delete themself.
    let root_id = app
        .db
        .users()
        .get_by_username(&Username::parse("root").unwrap())
        .await
        .unwrap()
        .id
        .to_string();
    let me = format!("/admin/users/{root_id}");
    for (path, fields) in [
        (format!("{me}/status"), vec![("status", "disabled")]),
        (format!("{me}/role"), vec![("role", "user")]),
        (format!("{me}/delete"), vec![]),
    ] {
        let r = root.post(&path, &fields).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{path}: {}", r.text);
        assert!(
            r.text.contains("The last active admin"),
            "{path}: {}",
            r.text
        );
    }
    let stored_root = stored(&app, &root_id).await;
    assert_eq!(
        (stored_root.role, stored_root.status),
        (Role::Admin, UserStatus::Active)
    );
    assert_eq!(active_sessions(&app, &root_id).await.len(), 1);
    assert_eq!(root.get("/admin/users").await.status, StatusCode::OK);
}

#[tokio::test]
async fn disabling_on_the_page_ends_the_sessions_in_the_store_and_enabling_lets_the_user_back() {
    let app = TestApp::new().await;
    app.create_admin("root").await;
    let bob_id = app.register("bob").await["id"].as_str().unwrap().to_owned();
    let (base, _stop) = app.spawn().await;
    let mut root = signed_in(&base, "root").await;
    let mut laptop = signed_in(&base, "bob").await;
    let _phone = signed_in(&base, "bob").await;
    let sessions = active_sessions(&app, &bob_id).await;
    assert_eq!(sessions.len(), 2);
    let status = format!("/admin/users/{bob_id}/status");

    let r = root.post(&status, &[("status", "disabled")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(stored(&app, &bob_id).await.status, UserStatus::Disabled);
    for id in &sessions {
        let session = app.db.sessions().get(*id).await.unwrap();
        assert!(session.revoked_at.is_some(), "{id} revoked in the store");
    }
    assert_eq!(laptop.get("/profile").await.status, StatusCode::SEE_OTHER);
    let mut again = Agent::new(&base);
    again.get("/login").await;
    let r = again
        .post(
            "/login",
            &[("identifier", "bob"), ("password", PW), ("next", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert!(r.text.contains("Invalid username, email or password."));
    assert!(again.session().is_none());

    let r = root.post(&status, &[("status", "active")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(stored(&app, &bob_id).await.status, UserStatus::Active);
    let r = again
        .post(
            "/login",
            &[("identifier", "bob"), ("password", PW), ("next", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(location(&r), "/profile");
    assert_eq!(again.get("/profile").await.status, StatusCode::OK);
    // The sessions that were ended stay ended.
    assert_eq!(laptop.get("/profile").await.status, StatusCode::SEE_OTHER);
    assert_eq!(active_sessions(&app, &bob_id).await.len(), 1);
}

#[tokio::test]
async fn deleting_on_the_page_removes_the_user_and_their_sessions() {
    let app = TestApp::new().await;
    app.create_admin("root").await;
    let bob_id = app.register("bob").await["id"].as_str().unwrap().to_owned();
    let (base, _stop) = app.spawn().await;
    let mut root = signed_in(&base, "root").await;
    let mut bob = signed_in(&base, "bob").await;
    let sessions = active_sessions(&app, &bob_id).await;
    assert_eq!(sessions.len(), 1);

    let r = root
        .post(&format!("/admin/users/{bob_id}/delete"), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let gone = app.db.users().get(bob_id.parse().unwrap()).await;
    assert!(matches!(gone, Err(RepoError::NotFound)), "{gone:?}");
    for id in &sessions {
        match app.db.sessions().get(*id).await {
            Err(RepoError::NotFound) => {}
            Ok(s) => assert!(s.revoked_at.is_some(), "{id} still active"),
            Err(e) => panic!("{id}: {e}"),
        }
    }
    assert_eq!(bob.get("/profile").await.status, StatusCode::SEE_OTHER);
    assert_eq!(
        agent_sign_in(&base, "bob", PW).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_entry_pages_send_each_visitor_where_they_belong() {
    let app = TestApp::new().await;
    app.register("alice").await;
    let (base, _stop) = app.spawn().await;
    let mut visitor = Agent::new(&base);
    let r = visitor.get("/").await;
    assert_eq!(
        (r.status, location(&r)),
        (StatusCode::SEE_OTHER, "/login".to_owned())
    );
    visitor.get("/login").await;
    let r = visitor.post("/logout", &[]).await;
    assert_eq!(
        r.status,
        StatusCode::SEE_OTHER,
        "signing out twice is harmless"
    );
    assert_eq!(location(&r), "/login");

    let mut alice = signed_in(&base, "alice").await;
    for path in ["/", "/login", "/register"] {
        let r = alice.get(path).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location(&r), "/profile", "{path}");
    }
    assert_eq!(alice.get("/profile").await.status, StatusCode::OK);
}

#[tokio::test]
async fn wrong_current_passwords_on_the_password_page_are_throttled_and_change_nothing() {
    let app = TestApp::new().await;
    app.register("alice").await;
    let (base, _stop) = app.spawn().await;
    let mut agent = signed_in(&base, "alice").await;
    let new_password = "a whole new passphrase";
    for _ in 0..5 {
        let r = agent
            .post(
                "/profile/password",
                &[
                    ("current_password", "a guess"),
                    ("new_password", new_password),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    }
    let r = agent
        .post(
            "/profile/password",
            &[("current_password", PW), ("new_password", new_password)],
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert!(r.text.contains("Too many attempts"), "{}", r.text);
    let wait: u64 = r.headers[axum::http::header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        agent.get("/profile").await.status,
        StatusCode::OK,
        "still signed in"
    );
    // Once the lock is over, the old password signs in: the new one was never set.
    app.clock.advance(std::time::Duration::from_secs(wait + 1));
    assert_eq!(
        agent_sign_in(&base, "alice", PW).await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        agent_sign_in(&base, "alice", new_password).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_role_changed_on_the_page_takes_effect_on_the_user_s_session() {
    let app = TestApp::new().await;
    app.create_admin("root").await;
    let bob_id = app.register("bob").await["id"].as_str().unwrap().to_owned();
    let (base, _stop) = app.spawn().await;
    let mut root = signed_in(&base, "root").await;
    let mut bob = signed_in(&base, "bob").await;
    assert_eq!(bob.get("/admin/users").await.status, StatusCode::FORBIDDEN);
    let role = format!("/admin/users/{bob_id}/role");

    let r = root.post(&role, &[("role", "admin")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(location(&r), format!("/admin/users/{bob_id}"));
    assert!(
        root.get(&location(&r))
            .await
            .text
            .contains("The role was changed.")
    );
    assert_eq!(stored(&app, &bob_id).await.role, Role::Admin);
    assert_eq!(bob.get("/admin/users").await.status, StatusCode::OK);

    let r = root.post(&role, &[("role", "user")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(stored(&app, &bob_id).await.role, Role::User);
    assert_eq!(bob.get("/admin/users").await.status, StatusCode::FORBIDDEN);
}
