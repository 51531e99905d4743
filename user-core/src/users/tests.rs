use secrecy::{ExposeSecret, SecretString};

use super::*;
use crate::error::{RepoError, UniqueField};
use crate::testing::Fixture;

const PW: &str = Fixture::PASSWORD;

fn edit(username: Option<&str>, email: Option<&str>, display_name: Option<&str>) -> UpdateProfile {
    UpdateProfile {
        username: username.map(Into::into),
        email: email.map(Into::into),
        display_name: display_name.map(Into::into),
    }
}

#[tokio::test]
async fn users_see_themselves_and_admins_see_everyone() {
    let f = Fixture::in_memory();
    let (root, alice, bob) = (
        f.register_admin("root").await,
        f.register("alice").await,
        f.register("bob").await,
    );
    let a = f.actor("alice").await;
    assert_eq!(f.users.get(&a, alice.id).await.unwrap(), alice);
    assert!(matches!(
        f.users.get(&a, bob.id).await,
        Err(UserError::Forbidden)
    ));
    assert!(
        matches!(
            f.users.get(&a, UserId::new()).await,
            Err(UserError::Forbidden)
        ),
        "forbidden before existence: nothing is revealed"
    );
    let r = f.actor("root").await;
    assert_eq!(f.users.get(&r, bob.id).await.unwrap(), bob);
    assert_eq!(f.users.get(&r, root.id).await.unwrap(), root);
    assert!(matches!(
        f.users.get(&r, UserId::new()).await,
        Err(UserError::NotFound)
    ));
}

#[tokio::test]
async fn profile_edits_are_validated_and_conflicts_named() {
    let f = Fixture::in_memory();
    let alice = f.register("alice").await;
    let bob = f.register("bob").await;
    let a = f.actor("alice").await;
    let got = f
        .users
        .update_profile(
            &a,
            alice.id,
            edit(Some("Alice2"), Some("A2@Example.com"), Some(" Alice ")),
        )
        .await
        .unwrap();
    assert_eq!(got.username.as_str(), "alice2");
    assert_eq!(got.email.as_str(), "a2@example.com");
    assert_eq!(got.display_name.as_ref().map(|d| d.as_str()), Some("Alice"));
    let cleared = f
        .users
        .update_profile(&a, alice.id, edit(None, None, Some("")))
        .await
        .unwrap();
    assert_eq!(cleared.display_name, None);

    let err = f
        .users
        .update_profile(
            &a,
            alice.id,
            edit(Some("x"), Some("bad"), Some(&"d".repeat(65))),
        )
        .await
        .unwrap_err();
    let UserError::Invalid(errors) = err else {
        panic!("{err:?}")
    };
    assert_eq!(
        errors.iter().map(|e| e.field).collect::<Vec<_>>(),
        ["username", "email", "display_name"]
    );

    let r = f
        .users
        .update_profile(&a, alice.id, edit(Some("BOB"), None, None))
        .await;
    assert!(matches!(r, Err(UserError::Conflict(UniqueField::Username))));
    let r = f
        .users
        .update_profile(&a, alice.id, edit(None, Some("bob@example.com"), None))
        .await;
    assert!(matches!(r, Err(UserError::Conflict(UniqueField::Email))));
    let r = f
        .users
        .update_profile(&a, bob.id, edit(None, None, Some("hacked")))
        .await;
    assert!(matches!(r, Err(UserError::Forbidden)));
    // The new username signs in.
    assert!(f.login("alice2", PW).await.is_ok());
}

#[tokio::test]
async fn admins_edit_anyone() {
    let f = Fixture::in_memory();
    f.register_admin("root").await;
    let bob = f.register("bob").await;
    let r = f.actor("root").await;
    let admin = f.users.as_admin(&r).unwrap();
    let got = admin
        .update_profile(bob.id, edit(None, None, Some("Robert")))
        .await
        .unwrap();
    assert_eq!(
        got.display_name.map(|d| d.to_string()).as_deref(),
        Some("Robert")
    );
    assert_eq!(admin.get(bob.id).await.unwrap().id, bob.id);
}

#[tokio::test]
async fn change_password_checks_the_current_one_and_the_policy() {
    let f = Fixture::in_memory();
    f.register("alice").await;
    let a = f.actor("alice").await;
    let change = |current: &str, new: &str| ChangePassword {
        current_password: SecretString::from(current),
        new_password: SecretString::from(new),
    };
    let r = f
        .users
        .change_password(&a, change("wrong", "a brand new passphrase"))
        .await;
    assert!(matches!(r, Err(UserError::InvalidCredentials)), "{r:?}");
    let r = f
        .users
        .change_password(&a, change(PW, "alice1234567"))
        .await;
    let Err(UserError::Invalid(errors)) = r else {
        panic!("{r:?}")
    };
    assert!(errors.iter().all(|e| e.field == "new_password"));
    assert_eq!(
        errors.iter().map(|e| e.code).collect::<Vec<_>>(),
        ["contains_username", "contains_email"]
    );
    assert!(f.login("alice", PW).await.is_ok(), "nothing changed");
}

#[tokio::test]
async fn deleting_ones_own_account_needs_the_password() {
    let f = Fixture::in_memory();
    let alice = f.register("alice").await;
    let a = f.actor("alice").await;
    let r = f
        .users
        .delete_own_account(&a, &SecretString::from("wrong"))
        .await;
    assert!(matches!(r, Err(UserError::InvalidCredentials)));
    f.users
        .delete_own_account(&a, &SecretString::from(PW))
        .await
        .unwrap();
    assert!(matches!(
        f.ports.users.get(alice.id).await,
        Err(RepoError::NotFound)
    ));
    assert!(matches!(
        f.login("alice", PW).await,
        Err(AuthError::InvalidCredentials)
    ));
}

#[tokio::test]
async fn the_last_admin_cannot_be_demoted_disabled_or_deleted() {
    let f = Fixture::in_memory();
    let root = f.register_admin("root").await;
    let r = f.actor("root").await;
    let admin = f.users.as_admin(&r).unwrap();
    assert!(matches!(
        admin.set_role(root.id, Role::User).await,
        Err(UserError::LastAdmin)
    ));
    assert!(matches!(
        admin.set_status(root.id, UserStatus::Disabled).await,
        Err(UserError::LastAdmin)
    ));
    assert!(matches!(
        admin.delete(root.id).await,
        Err(UserError::LastAdmin)
    ));
    let r2 = f
        .users
        .delete_own_account(&r, &SecretString::from(PW))
        .await;
    assert!(matches!(r2, Err(UserError::LastAdmin)));
    // Nothing was done: root is still an active admin, and signed in.
    let still = f.ports.users.get(root.id).await.unwrap();
    assert_eq!(
        (still.role, still.status),
        (Role::Admin, UserStatus::Active)
    );
    let again = f.actor("root").await;
    assert_eq!(again.role, Role::Admin, "root still signs in, as an admin");
    // With a second admin, the first may step down.
    let bob = f.register("bob").await;
    admin.set_role(bob.id, Role::Admin).await.unwrap();
    assert_eq!(
        admin.set_role(root.id, Role::User).await.unwrap().role,
        Role::User
    );
}

#[tokio::test]
async fn admin_operations_need_the_admin_role_now() {
    let f = Fixture::in_memory();
    f.register_admin("root").await;
    let bob = f.register("bob").await;
    let b = f.actor("bob").await;
    assert!(matches!(f.users.as_admin(&b), Err(UserError::Forbidden)));
    let r = f.actor("root").await;
    f.users
        .as_admin(&r)
        .unwrap()
        .set_role(bob.id, Role::Admin)
        .await
        .unwrap();
    // The role is read when the token is checked, so bob's next request is an admin's.
    let tokens = f.login("bob", PW).await.unwrap();
    let b = f
        .auth
        .authenticate(tokens.access_token.expose_secret())
        .await
        .unwrap();
    assert!(f.users.as_admin(&b).is_ok());
}

#[tokio::test]
async fn admins_list_disable_and_delete() {
    let f = Fixture::in_memory();
    f.register_admin("root").await;
    let bob = f.register("bob").await;
    f.register("bella").await;
    f.register("carl").await;
    let r = f.actor("root").await;
    let admin = f.users.as_admin(&r).unwrap();
    let page = admin
        .list(&UserQuery::parse(Some("B"), Some(1), None).unwrap())
        .await
        .unwrap();
    assert_eq!(page.users[0].username.as_str(), "bella");
    let token = page.next_page_token().unwrap();
    let page = admin
        .list(&UserQuery::parse(Some("b"), Some(1), Some(&token)).unwrap())
        .await
        .unwrap();
    assert_eq!(page.users[0].username.as_str(), "bob");
    assert_eq!(page.next, None);

    let bob_session = f.login("bob", PW).await.unwrap();
    admin
        .set_status(bob.id, UserStatus::Disabled)
        .await
        .unwrap();
    assert!(matches!(
        f.auth
            .authenticate(bob_session.access_token.expose_secret())
            .await,
        Err(AuthError::Unauthenticated)
    ));
    assert!(matches!(
        f.login("bob", PW).await,
        Err(AuthError::InvalidCredentials)
    ));
    admin.delete(bob.id).await.unwrap();
    assert!(matches!(admin.get(bob.id).await, Err(UserError::NotFound)));
    assert!(matches!(
        admin.delete(bob.id).await,
        Err(UserError::NotFound)
    ));
}

#[tokio::test]
async fn people_see_and_end_their_own_sessions_only() {
    let f = Fixture::in_memory();
    f.register("alice").await;
    f.register("bob").await;
    let a = f.actor("alice").await;
    f.clock.advance(std::time::Duration::from_secs(1));
    let a2 = f.actor("alice").await;
    let b = f.actor("bob").await;
    let mine = f.users.sessions(&a).await.unwrap();
    assert_eq!(
        mine.iter().map(|s| s.id).collect::<Vec<_>>(),
        [a2.session_id, a.session_id]
    );
    assert!(matches!(
        f.users.revoke_session(&a, b.session_id).await,
        Err(UserError::NotFound)
    ));
    assert!(matches!(
        f.users.revoke_session(&a, SessionId::new()).await,
        Err(UserError::NotFound)
    ));
    f.users.revoke_session(&a, a2.session_id).await.unwrap();
    assert_eq!(f.users.sessions(&a).await.unwrap().len(), 1);
    assert_eq!(f.users.sessions(&b).await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_export_holds_the_newest_events_up_to_its_bound_and_is_audited() {
    let f = Fixture::in_memory();
    let alice = f.register("alice").await;
    let stranger = crate::domain::ClientInfo::new(None, Some("203.0.113.9"));
    let start = crate::ports::Clock::now(f.clock.as_ref());
    let flood = PersonalData::MAX_EVENTS + 50;
    for i in 0..flood {
        let at = start + time::Duration::seconds(i64::try_from(i).unwrap() + 1);
        let event = AuditEvent::new(AuditKind::SignIn, at)
            .on(alice.id)
            .failed()
            .from_client(&stranger);
        f.ports.audit.record(&event).await.unwrap();
    }
    f.clock.advance(std::time::Duration::from_secs(86_400));
    let actor = f.actor("alice").await;
    let data = f.users.export_own_data(&actor).await.unwrap();
    assert_eq!(data.events.len(), PersonalData::MAX_EVENTS);
    // Newest first: the sign-in just now, then the flood from its newest down.
    assert_eq!(data.events[0].kind, AuditKind::SignIn);
    assert_eq!(data.events[0].outcome, crate::domain::AuditOutcome::Success);
    assert!(
        data.events
            .windows(2)
            .all(|w| (w[0].at, w[0].id) > (w[1].at, w[1].id))
    );
    let exported = AuditQuery {
        subject: Some(alice.id),
        kind: Some(AuditKind::DataExported),
        ..AuditQuery::default()
    };
    assert_eq!(f.ports.audit.list(&exported).await.unwrap().events.len(), 1);
}

#[tokio::test]
async fn recent_events_are_ones_own_newest_first_up_to_the_limit() {
    let f = Fixture::in_memory();
    let alice = f.register("alice").await;
    f.register("bob").await;
    f.clock.advance(std::time::Duration::from_secs(1));
    let a = f.actor("alice").await;
    f.clock.advance(std::time::Duration::from_secs(1));
    f.actor("bob").await;
    let all = f
        .users
        .recent_events(&a, AuditQuery::MAX_LIMIT)
        .await
        .unwrap();
    let kinds: Vec<_> = all.iter().map(|e| e.kind).collect();
    assert!(kinds.len() >= 2, "a registration and a sign-in: {kinds:?}");
    assert_eq!(kinds[0], AuditKind::SignIn, "newest first: {kinds:?}");
    assert!(
        all.iter().all(|e| e.subject == Some(alice.id)),
        "only alice's: {all:?}"
    );
    let ids = |events: Vec<AuditEvent>| events.into_iter().map(|e| e.id).collect::<Vec<_>>();
    let newest = f.users.recent_events(&a, 1).await.unwrap();
    assert_eq!(ids(newest), ids(all[..1].to_vec()), "limit 1");
    let none_asked = f.users.recent_events(&a, 0).await.unwrap();
    assert_eq!(none_asked.len(), 1, "a limit of 0 still shows one");
}

#[test]
fn the_service_names_itself_in_debug_output() {
    let f = Fixture::in_memory();
    let shown = format!("{:?}", f.users);
    assert!(
        shown.starts_with("UserService {") && shown.contains("password_policy"),
        "{shown}"
    );
}
