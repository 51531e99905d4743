//! The conformance suite: one async check per documented `# Errors` contract of the storage
//! ports. A storage adapter is correct when every check passes against its real database:
//!
//! ```text
//! mod conformance {
//!     // `stores` is an async fn returning a fresh `Stores` (a new database per call).
//!     user_core::conformance_tests!(crate::stores);
//! }
//! ```

use std::any::Any;
use std::collections::HashSet;
use std::sync::Arc;

use time::OffsetDateTime;
use time::macros::datetime;

use crate::Storage;
use crate::domain::{
    AuditEvent, AuditKind, AuditOutcome, AuditQuery, ChallengePurpose, ClientInfo, DeviceToken,
    DisplayName, Email, LoginFailures, NewSession, NewUser, OneTimeToken, PasswordHash,
    ProfileChanges, Role, Rotation, Session, SessionId, SessionKind, SignInChallenge, ThrottleKey,
    TokenHash, TokenPurpose, TotpFactor, User, UserId, UserQuery, UserStatus, Username,
};
use crate::error::{HashError, RepoError, UniqueField};
use crate::ports::{
    AuditLog, ClaimedMail, Clock, DeviceTokenStore, Identifier, Inserted, LoginFailureStore, Mail,
    MailOutbox, OneTimeTokenStore, PasswordHasher, SecondFactorStore, SessionStore, UserRepository,
    Verification,
};

/// The stores under test, fresh for each check. `guard` keeps whatever backs them alive (a
/// temporary directory, a database to drop) until the check ends.
pub struct Stores {
    /// The user repository.
    pub users: Arc<dyn UserRepository>,
    /// The session store over the same database.
    pub sessions: Arc<dyn SessionStore>,
    /// The guess budgets over the same database.
    pub login_failures: Arc<dyn LoginFailureStore>,
    /// The device tokens over the same database.
    pub devices: Arc<dyn DeviceTokenStore>,
    /// The one-time tokens over the same database.
    pub tokens: Arc<dyn OneTimeTokenStore>,
    /// The mail outbox over the same database.
    pub outbox: Arc<dyn MailOutbox>,
    /// The audit log over the same database.
    pub audit: Arc<dyn AuditLog>,
    /// The second factors over the same database.
    pub factors: Arc<dyn SecondFactorStore>,
    /// Dropped when the check ends.
    pub guard: Option<Box<dyn Any + Send + Sync>>,
}

impl Stores {
    /// The storage ports of one fresh database, and what keeps it alive until the check ends.
    pub fn new(storage: Storage, guard: impl Any + Send + Sync) -> Self {
        Self {
            users: storage.users,
            sessions: storage.sessions,
            login_failures: storage.login_failures,
            devices: storage.devices,
            tokens: storage.tokens,
            outbox: storage.outbox,
            audit: storage.audit,
            factors: storage.factors,
            guard: Some(Box::new(guard)),
        }
    }
}

/// Generates one `#[tokio::test]` per conformance check, each calling `$factory().await` for
/// fresh [`Stores`] (or an `Option<Stores>`, `None` skipping the check when the database is
/// not available on this machine).
#[macro_export]
macro_rules! conformance_tests {
    ($factory:path) => {
        $crate::conformance_tests!(@each $factory;
            insert_and_get_by_every_key,
            missing_users_are_not_found,
            duplicate_username_conflicts_and_writes_nothing,
            duplicate_email_conflicts_and_writes_nothing,
            insert_many_says_what_became_of_each_row,
            insert_many_reruns_add_nothing,
            export_page_reads_users_with_their_hashes_in_username_order,
            update_profile_changes_fields,
            update_profile_conflicts_name_the_field,
            update_password_hash_replaces_it,
            set_role_and_status,
            last_active_admin_is_protected,
            delete_removes_user_and_sessions,
            list_pages_in_username_order,
            list_next_is_set_only_when_more_users_match,
            list_filters_by_search_role_and_status,
            list_search_finds_substrings_of_every_name,
            list_short_search_matches_the_start_of_the_username,
            list_search_takes_every_character_literally,
            list_search_folds_the_case_of_any_script,
            list_search_follows_changes_and_deletes,
            list_search_pages_with_filters,
            count_active_admins,
            create_and_get_session,
            find_by_cookie_matches_browser_sessions_only,
            get_with_user_reads_the_session_and_its_user,
            find_by_cookie_with_user_matches_browser_sessions_only,
            refresh_rotation_and_reuse,
            concurrent_rotation_rotates_once,
            revoke_one_and_all,
            list_active_sessions_newest_first,
            count_active_sessions,
            purge_removes_ended_sessions,
            revoke_all_revokes_only_active_sessions_of_the_user,
            purge_keeps_what_ends_at_the_cut_off,
            idle_sessions_do_not_rotate,
            touch_moves_last_used_forward,
            login_failures_swap_clear_and_purge,
            concurrent_swaps_of_login_failures_succeed_once,
            devices_are_stored_found_and_purged,
            outbox_keeps_every_field_and_enqueue_is_idempotent,
            outbox_claims_due_mail_oldest_first_for_a_lease,
            outbox_concurrent_claims_never_share_a_mail,
            outbox_expired_claims_are_claimed_again,
            outbox_delivered_deletes_the_mail,
            outbox_retry_later_counts_and_waits,
            outbox_give_up_keeps_a_dead_letter_without_body,
            tokens_are_issued_with_their_mail_and_consumed_once,
            tokens_issue_kills_older_tokens_of_its_purpose_only,
            tokens_consume_checks_purpose_and_expiry,
            tokens_concurrent_consume_succeeds_once,
            tokens_revoke_all_and_purge,
            tokens_go_with_their_user,
            tokens_issue_for_a_missing_user_writes_nothing,
            tokens_find_checks_without_spending,
            mark_email_verified_only_for_the_current_email,
            audit_keeps_every_field,
            audit_pages_newest_first_by_time_then_id,
            audit_filters_combine,
            audit_purge_deletes_only_older_events,
            audit_anonymize_strips_what_names_the_user,
            audit_outlives_its_users,
            factors_without_an_enrolment,
            factors_for_a_missing_user_are_not_found,
            begin_enrolment_stores_a_pending_factor,
            begin_enrolment_replaces_a_pending_factor,
            begin_enrolment_leaves_a_confirmed_factor_alone,
            confirm_enrolment_confirms_and_sets_the_codes,
            confirm_enrolment_needs_a_pending_factor,
            use_step_moves_forward_only,
            use_step_needs_a_confirmed_factor,
            concurrent_use_of_one_step_succeeds_once,
            replace_recovery_codes_replaces_every_code,
            recovery_codes_are_used_once_by_their_user,
            concurrent_use_of_one_recovery_code_succeeds_once,
            remove_deletes_the_factor_codes_and_trusted_devices,
            trusted_devices_are_per_user_until_their_time,
            challenges_keep_every_field_and_are_found_until_expiry,
            challenges_are_consumed_once,
            concurrent_consume_of_one_challenge_succeeds_once,
            factors_purge_deletes_what_expired_and_abandoned_enrolments,
            second_factors_go_with_their_user,
        );
    };
    (@each $factory:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                // A factory returns `Stores`, or `Option<Stores>` where `None` means the
                // database is not configured here and the check is skipped (it says so).
                let stores: ::core::option::Option<$crate::testing::conformance::Stores> =
                    $factory().await.into();
                let ::core::option::Option::Some(stores) = stores else {
                    return;
                };
                $crate::testing::conformance::$check(stores).await;
            }
        )*
    };
}

const T0: OffsetDateTime = datetime!(2026-02-03 04:05:06.123456 UTC);

/// An `idle_since` that no session in these checks is idle before.
const NEVER_IDLE: OffsetDateTime = datetime!(2000-01-01 00:00 UTC);

fn at(secs: i64) -> OffsetDateTime {
    T0 + time::Duration::seconds(secs)
}

/// A valid user named `name` with email `name@example.com`.
pub fn user(name: &str) -> User {
    User {
        id: UserId::new(),
        username: Username::parse(name).unwrap(),
        email: Email::parse(&format!("{name}@example.com")).unwrap(),
        display_name: None,
        role: Role::User,
        status: UserStatus::Active,
        email_verified_at: None,
        created_at: T0,
        updated_at: T0,
    }
}

fn hash(tag: &str) -> PasswordHash {
    PasswordHash::new(format!("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ${tag}"))
}

async fn insert(s: &Stores, user: &User) {
    s.users
        .insert(&NewUser {
            user: user.clone(),
            password_hash: hash("h"),
        })
        .await
        .unwrap();
}

async fn insert_admin(s: &Stores, name: &str) -> User {
    let u = User {
        role: Role::Admin,
        ..user(name)
    };
    insert(s, &u).await;
    u
}

fn session(user: &User, kind: SessionKind, created: i64) -> Session {
    Session {
        id: SessionId::new(),
        user_id: user.id,
        kind,
        client: ClientInfo::new(Some("Mozilla/5.0 test"), Some("127.0.0.1")),
        created_at: at(created),
        last_used_at: at(created),
        expires_at: at(created + 3600),
        revoked_at: None,
    }
}

async fn create(s: &Stores, session: &Session, secret: &str) {
    s.sessions
        .create(&NewSession {
            session: session.clone(),
            secret_hash: TokenHash::of(secret),
        })
        .await
        .unwrap();
}

fn not_found<T: std::fmt::Debug>(r: Result<T, RepoError>, what: &str) {
    assert!(matches!(r, Err(RepoError::NotFound)), "{what}: {r:?}");
}

fn conflict<T: std::fmt::Debug>(r: Result<T, RepoError>, field: UniqueField) {
    assert!(
        matches!(r, Err(RepoError::Conflict { field: f }) if f == field),
        "expected conflict on {field}: {r:?}"
    );
}

fn last_admin<T: std::fmt::Debug>(r: Result<T, RepoError>, what: &str) {
    assert!(
        matches!(r, Err(RepoError::LastActiveAdmin)),
        "{what}: {r:?}"
    );
}

/// `insert`, then every getter finds the same user with every field intact.
pub async fn insert_and_get_by_every_key(s: Stores) {
    let mut u = user("alice");
    u.display_name = DisplayName::parse("Alice <b>Liddell</b> 🐇").unwrap();
    u.email_verified_at = Some(at(10));
    u.updated_at = at(20);
    s.users
        .insert(&NewUser {
            user: u.clone(),
            password_hash: hash("alice"),
        })
        .await
        .unwrap();
    assert_eq!(s.users.get(u.id).await.ok(), Some(u.clone()));
    assert_eq!(
        s.users.get_by_username(&u.username).await.ok(),
        Some(u.clone())
    );
    assert_eq!(s.users.get_by_email(&u.email).await.ok(), Some(u.clone()));
    let by_name = s
        .users
        .credentials(&Identifier::Username(u.username.clone()))
        .await;
    assert_eq!(by_name.ok(), Some((u.clone(), hash("alice"))));
    let by_email = s
        .users
        .credentials(&Identifier::Email(u.email.clone()))
        .await;
    assert_eq!(by_email.ok(), Some((u.clone(), hash("alice"))));
    assert_eq!(s.users.password_hash(u.id).await.ok(), Some(hash("alice")));
}

/// Every operation on a missing user returns `NotFound`.
pub async fn missing_users_are_not_found(s: Stores) {
    insert(&s, &user("present")).await;
    let ghost = user("ghost");
    let id = ghost.id;
    not_found(s.users.get(id).await, "get");
    not_found(
        s.users.get_by_username(&ghost.username).await,
        "get_by_username",
    );
    not_found(s.users.get_by_email(&ghost.email).await, "get_by_email");
    not_found(
        s.users
            .credentials(&Identifier::Username(ghost.username.clone()))
            .await,
        "credentials",
    );
    not_found(
        s.users
            .credentials(&Identifier::Email(ghost.email.clone()))
            .await,
        "credentials",
    );
    not_found(s.users.password_hash(id).await, "password_hash");
    not_found(
        s.users
            .update_profile(id, &ProfileChanges::default(), T0)
            .await,
        "update_profile",
    );
    not_found(
        s.users.update_password_hash(id, &hash("x"), T0).await,
        "update_password_hash",
    );
    not_found(s.users.set_role(id, Role::Admin, T0).await, "set_role");
    not_found(
        s.users.set_status(id, UserStatus::Disabled, T0).await,
        "set_status",
    );
    not_found(s.users.delete(id).await, "delete");
}

async fn total(s: &Stores) -> usize {
    let q = UserQuery {
        limit: UserQuery::MAX_LIMIT,
        ..UserQuery::default()
    };
    s.users.list(&q).await.map(|p| p.users.len()).unwrap()
}

/// A second user with a taken username gets `Conflict { Username }` and is not written.
pub async fn duplicate_username_conflicts_and_writes_nothing(s: Stores) {
    insert(&s, &user("alice")).await;
    let mut twin = user("ALICE");
    twin.email = Email::parse("other@example.com").unwrap();
    conflict(
        s.users
            .insert(&NewUser {
                user: twin.clone(),
                password_hash: hash("t"),
            })
            .await,
        UniqueField::Username,
    );
    not_found(s.users.get(twin.id).await, "the rejected user");
    assert_eq!(total(&s).await, 1);
}

/// A second user with a taken email gets `Conflict { Email }` and is not written.
pub async fn duplicate_email_conflicts_and_writes_nothing(s: Stores) {
    insert(&s, &user("alice")).await;
    let mut twin = user("bob");
    twin.email = Email::parse("ALICE@Example.com").unwrap();
    conflict(
        s.users
            .insert(&NewUser {
                user: twin.clone(),
                password_hash: hash("t"),
            })
            .await,
        UniqueField::Email,
    );
    not_found(s.users.get(twin.id).await, "the rejected user");
    assert_eq!(total(&s).await, 1);
}

fn new_user(u: &User, tag: &str) -> NewUser {
    NewUser {
        user: u.clone(),
        password_hash: hash(tag),
    }
}

/// The batch of [`insert_many_says_what_became_of_each_row`] over a store holding `alice`,
/// with the outcome each row must get.
fn mixed_batch(alice: &User) -> Vec<(NewUser, Inserted)> {
    let mut bob = user("bob");
    bob.display_name = DisplayName::parse("Bób Ünicode").unwrap();
    bob.role = Role::Admin;
    bob.status = UserStatus::Disabled;
    bob.email_verified_at = Some(at(5));
    let mut alice_again = alice.clone();
    alice_again.display_name = DisplayName::parse("Changed").unwrap();
    let mut alice_name = user("ALICE");
    alice_name.email = Email::parse("other@example.com").unwrap();
    let mut alice_email = user("dave");
    alice_email.email = Email::parse("Alice@Example.com").unwrap();
    let mut bob_name = user("bob");
    bob_name.email = Email::parse("bob2@example.com").unwrap();
    let mut bob_email = user("eve");
    bob_email.email = bob.email.clone();
    let mut bob_id = user("frank");
    bob_id.id = bob.id;
    let carol = user("carol");
    vec![
        (new_user(&bob, "bob"), Inserted::Inserted),
        (new_user(&alice_again, "x"), Inserted::AlreadyPresent),
        (
            new_user(&alice_name, "x"),
            Inserted::Conflict(UniqueField::Username),
        ),
        (
            new_user(&alice_email, "x"),
            Inserted::Conflict(UniqueField::Email),
        ),
        (new_user(&bob, "bob"), Inserted::AlreadyPresent),
        (new_user(&bob_id, "x"), Inserted::AlreadyPresent),
        (
            new_user(&bob_name, "x"),
            Inserted::Conflict(UniqueField::Username),
        ),
        (
            new_user(&bob_email, "x"),
            Inserted::Conflict(UniqueField::Email),
        ),
        (new_user(&carol, "carol"), Inserted::Inserted),
    ]
}

/// `insert_many` says what became of each row, in order: inserted, already present by id
/// (stored before or earlier in the batch), or a conflict naming the field taken by another
/// user (stored before or earlier in the batch). The inserted rows are stored whole, with
/// their hashes, and found by the search; the others write nothing.
pub async fn insert_many_says_what_became_of_each_row(s: Stores) {
    let alice = user("alice");
    insert(&s, &alice).await;
    assert_eq!(s.users.insert_many(&[]).await.ok(), Some(vec![]));
    let mut batch = mixed_batch(&alice);
    // Judged by what was there before: a later row that takes the id does not count.
    let mut grace = user("grace");
    grace.email = alice.email.clone();
    let mut heidi = user("heidi");
    heidi.id = grace.id;
    batch.push((
        new_user(&grace, "x"),
        Inserted::Conflict(UniqueField::Email),
    ));
    batch.push((new_user(&heidi, "heidi"), Inserted::Inserted));
    let rows: Vec<NewUser> = batch.iter().map(|(n, _)| n.clone()).collect();
    let expected: Vec<Inserted> = batch.iter().map(|(_, o)| *o).collect();
    assert_eq!(s.users.insert_many(&rows).await.unwrap(), expected);
    let (bob, carol) = (&rows[0], &rows[8]);
    for new in [bob, carol] {
        let u = &new.user;
        assert_eq!(s.users.get(u.id).await.ok().as_ref(), Some(u));
        assert_eq!(
            s.users.password_hash(u.id).await.ok(),
            Some(new.password_hash.clone())
        );
    }
    assert_eq!(s.users.get(alice.id).await.ok(), Some(alice), "left alone");
    assert_eq!(s.users.get(heidi.id).await.ok(), Some(heidi));
    assert_eq!(total(&s).await, 4);
    assert_eq!(
        listed(&s, &searching("ünic")).await,
        ["bob"],
        "display name"
    );
    assert_eq!(listed(&s, &searching("arol@")).await, ["carol"], "email");
}

/// Running a batch again adds nothing: every row is already present or still conflicts.
pub async fn insert_many_reruns_add_nothing(s: Stores) {
    let alice = user("alice");
    insert(&s, &alice).await;
    let rows: Vec<NewUser> = mixed_batch(&alice).into_iter().map(|(n, _)| n).collect();
    let first = s.users.insert_many(&rows).await.unwrap();
    let again = s.users.insert_many(&rows).await.unwrap();
    let expected: Vec<Inserted> = first
        .iter()
        .map(|o| match o {
            Inserted::Inserted => Inserted::AlreadyPresent,
            other => *other,
        })
        .collect();
    assert_eq!(again, expected);
    assert_eq!(total(&s).await, 3);
    let many: Vec<NewUser> = (0..250)
        .map(|i| new_user(&user(&format!("user{i:03}")), "h"))
        .collect();
    let first = s.users.insert_many(&many).await.unwrap();
    assert!(first.iter().all(|o| *o == Inserted::Inserted), "{first:?}");
    let again = s.users.insert_many(&many).await.unwrap();
    assert!(
        again.iter().all(|o| *o == Inserted::AlreadyPresent),
        "{again:?}"
    );
    let mut q = UserQuery {
        limit: UserQuery::MAX_LIMIT,
        ..UserQuery::default()
    };
    let mut count = 0;
    let mut pages = 0;
    loop {
        let page = s.users.list(&q).await.unwrap();
        pages += 1;
        count += page.users.len();
        match page.next {
            Some(next) => q.after = Some(next),
            None => break,
        }
        assert!(pages < 20, "pagination must end");
    }
    assert_eq!(count, 253);
}

/// The username that the failing stores given to
/// [`insert_many_writes_nothing_when_the_store_fails`] fail to insert.
pub const SABOTEUR: &str = "saboteur";

/// `insert_many` is one transaction: when the store fails on a row, it returns
/// `Unavailable` and nothing of the batch is written, not even the rows before it. Not in
/// [`conformance_tests!`](crate::conformance_tests): `s` must be a store made to fail on
/// inserting a user named [`SABOTEUR`] (a trigger, say), which only its adapter can make.
pub async fn insert_many_writes_nothing_when_the_store_fails(s: Stores) {
    insert(&s, &user("alice")).await;
    let before = user("before");
    let after = user("after");
    let rows = [
        new_user(&before, "b"),
        new_user(&user(SABOTEUR), "s"),
        new_user(&after, "a"),
    ];
    let failed = s.users.insert_many(&rows).await;
    assert!(
        matches!(failed, Err(RepoError::Unavailable(_))),
        "{failed:?}"
    );
    not_found(s.users.get(before.id).await, "a row before the failure");
    not_found(s.users.get(after.id).await, "a row after the failure");
    assert_eq!(total(&s).await, 1);
    assert_eq!(listed(&s, &searching("before")).await, Vec::<String>::new());
    let rerun = s
        .users
        .insert_many(&[rows[0].clone(), rows[2].clone()])
        .await;
    assert_eq!(
        rerun.ok(),
        Some(vec![Inserted::Inserted; 2]),
        "a rerun completes"
    );
    assert_eq!(total(&s).await, 3);
}

/// `export_page` reads every user with their hash, in username order, a page at a time
/// after the last username of the one before; a short page is the last.
pub async fn export_page_reads_users_with_their_hashes_in_username_order(s: Stores) {
    assert_eq!(s.users.export_page(None, 10).await.ok(), Some(vec![]));
    let mut expected = Vec::new();
    // Inserted out of order; `user10` sorts between `user1` and `user2`.
    for i in [7, 3, 10, 0, 5, 1, 2, 6, 4] {
        let mut u = user(&format!("user{i}"));
        if i == 3 {
            u.display_name = DisplayName::parse("Üser Three").unwrap();
            u.role = Role::Admin;
            u.status = UserStatus::Disabled;
            u.email_verified_at = Some(at(3));
        }
        let new = new_user(&u, &format!("hash{i}"));
        s.users.insert(&new).await.unwrap();
        expected.push((u, new.password_hash));
    }
    expected.sort_by(|(a, _), (b, _)| a.username.cmp(&b.username));
    let mut read = Vec::new();
    let mut after: Option<Username> = None;
    let mut pages = 0;
    loop {
        let page = s.users.export_page(after.clone(), 4).await.unwrap();
        pages += 1;
        assert!(pages < 10, "export paging must end");
        assert!(page.len() <= 4);
        let last = page.len() < 4;
        if let Some((u, _)) = page.last() {
            after = Some(u.username.clone());
        }
        read.extend(page);
        if last {
            break;
        }
    }
    assert_eq!(read, expected);
    assert_eq!(
        s.users.export_page(None, 100).await.ok(),
        Some(expected.clone())
    );
    let middle = &expected[4].0.username;
    assert_eq!(
        s.users.export_page(Some(middle.clone()), 2).await.ok(),
        Some(expected[5..7].to_vec())
    );
    let last = expected.last().map(|(u, _)| u.username.clone());
    assert_eq!(s.users.export_page(last, 100).await.ok(), Some(vec![]));
}

/// `update_profile` changes what it is given, keeps the rest, clears verification only when
/// the email really changes, and sets `updated_at`.
pub async fn update_profile_changes_fields(s: Stores) {
    let mut u = user("alice");
    u.email_verified_at = Some(at(1));
    insert(&s, &u).await;

    let same_email = ProfileChanges {
        email: Some(u.email.clone()),
        display_name: Some(DisplayName::parse("Alice").unwrap()),
        ..ProfileChanges::default()
    };
    let got = s.users.update_profile(u.id, &same_email, at(5)).await;
    let got = got.unwrap();
    assert_eq!(
        got.email_verified_at,
        Some(at(1)),
        "same email keeps verification"
    );
    assert_eq!(
        got.display_name.as_ref().map(DisplayName::as_str),
        Some("Alice")
    );
    assert_eq!(got.updated_at, at(5));

    let changes = ProfileChanges {
        username: Some(Username::parse("alice2").unwrap()),
        email: Some(Email::parse("new@example.com").unwrap()),
        display_name: Some(None),
    };
    let got = s.users.update_profile(u.id, &changes, at(9)).await;
    let got = got.unwrap();
    assert_eq!(got.username.as_str(), "alice2");
    assert_eq!(got.email.as_str(), "new@example.com");
    assert_eq!(got.display_name, None);
    assert_eq!(got.email_verified_at, None, "a new email is unverified");
    assert_eq!(got.updated_at, at(9));
    assert_eq!(
        (got.created_at, got.role, got.status),
        (u.created_at, u.role, u.status)
    );
    assert_eq!(s.users.get(u.id).await.ok(), Some(got));
}

/// Taking another user's username or email is a `Conflict` naming the field; nothing changes.
pub async fn update_profile_conflicts_name_the_field(s: Stores) {
    let (a, b) = (user("alice"), user("bob"));
    insert(&s, &a).await;
    insert(&s, &b).await;
    let take_name = ProfileChanges {
        username: Some(a.username.clone()),
        display_name: Some(DisplayName::parse("Bob").unwrap()),
        ..ProfileChanges::default()
    };
    conflict(
        s.users.update_profile(b.id, &take_name, at(1)).await,
        UniqueField::Username,
    );
    let take_email = ProfileChanges {
        email: Some(a.email.clone()),
        ..ProfileChanges::default()
    };
    conflict(
        s.users.update_profile(b.id, &take_email, at(1)).await,
        UniqueField::Email,
    );
    assert_eq!(
        s.users.get(b.id).await.ok(),
        Some(b.clone()),
        "nothing written"
    );
    // Setting one's own current values is no conflict.
    let own = ProfileChanges {
        username: Some(b.username.clone()),
        email: Some(b.email.clone()),
        ..ProfileChanges::default()
    };
    assert!(s.users.update_profile(b.id, &own, at(2)).await.is_ok());
}

/// `update_password_hash` replaces the hash and touches `updated_at`.
pub async fn update_password_hash_replaces_it(s: Stores) {
    let u = user("alice");
    insert(&s, &u).await;
    let r = s
        .users
        .update_password_hash(u.id, &hash("new"), at(3))
        .await;
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(s.users.password_hash(u.id).await.ok(), Some(hash("new")));
    assert_eq!(
        s.users.get(u.id).await.map(|u| u.updated_at).ok(),
        Some(at(3))
    );
}

/// `set_role` and `set_status` change one field each and return the updated user.
pub async fn set_role_and_status(s: Stores) {
    let u = user("alice");
    insert(&s, &u).await;
    let got = s.users.set_role(u.id, Role::Admin, at(1)).await;
    let got = got.unwrap();
    assert_eq!(
        (got.role, got.status, got.updated_at),
        (Role::Admin, UserStatus::Active, at(1))
    );
    insert_admin(&s, "root").await;
    let got = s.users.set_status(u.id, UserStatus::Disabled, at(2)).await;
    let got = got.unwrap();
    assert_eq!((got.role, got.status), (Role::Admin, UserStatus::Disabled));
    assert_eq!(s.users.get(u.id).await.ok(), Some(got));
}

/// The last active admin can be neither demoted, disabled nor deleted; with a second active
/// admin each is allowed; a disabled admin does not count.
pub async fn last_active_admin_is_protected(s: Stores) {
    // No admin at all: ordinary changes are not affected.
    let plain = user("plain");
    insert(&s, &plain).await;
    assert!(
        s.users
            .set_status(plain.id, UserStatus::Disabled, T0)
            .await
            .is_ok()
    );
    assert!(s.users.set_role(plain.id, Role::User, T0).await.is_ok());

    let a = insert_admin(&s, "admin-a").await;
    last_admin(s.users.set_role(a.id, Role::User, T0).await, "demote");
    last_admin(
        s.users.set_status(a.id, UserStatus::Disabled, T0).await,
        "disable",
    );
    last_admin(s.users.delete(a.id).await, "delete");
    assert!(
        s.users.set_role(a.id, Role::Admin, T0).await.is_ok(),
        "no-op stays allowed"
    );

    let b = insert_admin(&s, "admin-b").await;
    assert!(
        s.users
            .set_status(b.id, UserStatus::Disabled, T0)
            .await
            .is_ok()
    );
    last_admin(
        s.users.set_role(a.id, Role::User, T0).await,
        "a disabled admin does not count",
    );
    assert!(
        s.users
            .set_status(b.id, UserStatus::Active, T0)
            .await
            .is_ok()
    );
    assert!(s.users.set_role(a.id, Role::User, T0).await.is_ok());
    last_admin(s.users.delete(b.id).await, "b is now the last");
    assert_eq!(
        s.users.get(b.id).await.map(|u| u.role).ok(),
        Some(Role::Admin)
    );
    assert!(
        s.users.delete(a.id).await.is_ok(),
        "a is no longer an admin"
    );
}

/// `delete` removes the user and their sessions.
pub async fn delete_removes_user_and_sessions(s: Stores) {
    let (a, b) = (user("alice"), user("bob"));
    insert(&s, &a).await;
    insert(&s, &b).await;
    let sa = session(&a, SessionKind::Token, 0);
    let sb = session(&b, SessionKind::Browser, 0);
    create(&s, &sa, "a-refresh").await;
    create(&s, &sb, "b-cookie").await;
    assert!(s.users.delete(a.id).await.is_ok());
    not_found(s.users.get(a.id).await, "deleted user");
    not_found(s.sessions.get(sa.id).await, "their session");
    not_found(
        s.sessions
            .rotate_refresh_token(
                &TokenHash::of("a-refresh"),
                &TokenHash::of("n"),
                at(1),
                NEVER_IDLE,
            )
            .await,
        "their refresh token",
    );
    assert_eq!(
        s.sessions.get(sb.id).await.ok(),
        Some(sb),
        "others keep theirs"
    );
    not_found(s.users.delete(a.id).await, "deleting twice");
}

/// `list` pages through all users in username order; `next` is set exactly when more follow.
pub async fn list_pages_in_username_order(s: Stores) {
    for name in ["eve", "bob", "dave", "alice", "carol"] {
        insert(&s, &user(name)).await;
    }
    let mut q = UserQuery {
        limit: 2,
        ..UserQuery::default()
    };
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = s.users.list(&q).await.unwrap();
        pages += 1;
        seen.extend(page.users.iter().map(|u| u.username.to_string()));
        match page.next {
            Some(next) => q.after = Some(next),
            None => break,
        }
        assert!(pages < 10, "pagination must end");
    }
    assert_eq!(seen, ["alice", "bob", "carol", "dave", "eve"]);
    assert_eq!(pages, 3);
    q.after = None;
    q.limit = 5;
    assert_eq!(
        s.users.list(&q).await.map(|p| p.next).ok(),
        Some(None),
        "exact fit"
    );
}

/// `next` is the last username of a page exactly when more users match after it: a full
/// page that ends the list, filtered or not, has none; a short page has none.
pub async fn list_next_is_set_only_when_more_users_match(s: Stores) {
    for name in ["alice", "bob", "carol", "dave"] {
        insert(&s, &user(name)).await;
    }
    // Sorts last, and is the only admin: a filter leaves it out.
    insert_admin(&s, "zed").await;
    let page = |limit: u32, after: Option<&str>, role: Option<Role>| {
        let users = Arc::clone(&s.users);
        let q = UserQuery {
            limit,
            after: after.map(|a| Username::parse(a).unwrap()),
            role,
            ..UserQuery::default()
        };
        async move {
            let page = users.list(&q).await.unwrap();
            let names: Vec<String> = page.users.iter().map(|u| u.username.to_string()).collect();
            (names, page.next.map(|n| n.to_string()))
        }
    };
    assert_eq!(
        page(2, None, None).await,
        (vec!["alice".into(), "bob".into()], Some("bob".into())),
        "a full page with more after it"
    );
    assert_eq!(
        page(2, Some("carol"), None).await,
        (vec!["dave".into(), "zed".into()], None),
        "a full page that ends the list"
    );
    assert_eq!(
        page(4, Some("alice"), None).await,
        (
            vec!["bob".into(), "carol".into(), "dave".into(), "zed".into()],
            None
        ),
        "a full page that ends the list"
    );
    assert_eq!(
        page(3, Some("carol"), None).await,
        (vec!["dave".into(), "zed".into()], None),
        "a short page"
    );
    // Filtered: the user after the page does not match, so the full page is the last.
    assert_eq!(
        page(2, Some("alice"), Some(Role::User)).await,
        (vec!["bob".into(), "carol".into()], Some("carol".into())),
        "dave still matches after the page"
    );
    assert_eq!(
        page(2, Some("bob"), Some(Role::User)).await,
        (vec!["carol".into(), "dave".into()], None),
        "only zed follows, and it is no user"
    );
    assert_eq!(
        page(2, None, Some(Role::Admin)).await,
        (vec!["zed".into()], None)
    );
}

/// `list` filters by search (a short one matches the start of the username;
/// wildcards are literal), role and status.
pub async fn list_filters_by_search_role_and_status(s: Stores) {
    let mut carol = user("carol");
    carol.email = Email::parse("al_x@example.com").unwrap();
    insert(&s, &carol).await;
    for name in ["alice", "albert", "bob", "a1ice"] {
        insert(&s, &user(name)).await;
    }
    let admin = insert_admin(&s, "alfred").await;
    insert_admin(&s, "zed").await;
    let zed = Username::parse("zed").unwrap();
    let z = s.users.get_by_username(&zed).await.unwrap();
    assert!(
        s.users
            .set_status(z.id, UserStatus::Disabled, T0)
            .await
            .is_ok()
    );

    let names = |q: UserQuery| {
        let users = Arc::clone(&s.users);
        async move {
            let page = users.list(&q).await.unwrap();
            page.users
                .into_iter()
                .map(|u| u.username.to_string())
                .collect::<Vec<_>>()
        }
    };
    let search = |p: &str| UserQuery {
        search: Some(p.to_owned()),
        ..UserQuery::default()
    };
    assert_eq!(
        names(search("al")).await,
        ["albert", "alfred", "alice"],
        "not carol, whose email starts with al"
    );
    assert_eq!(
        names(search("al_")).await,
        ["carol"],
        "'_' is not a wildcard"
    );
    assert_eq!(
        names(search("%")).await,
        Vec::<String>::new(),
        "'%' is not a wildcard"
    );
    assert_eq!(names(search("bob@")).await, ["bob"]);
    let admins = UserQuery {
        role: Some(Role::Admin),
        ..UserQuery::default()
    };
    assert_eq!(names(admins).await, ["alfred", "zed"]);
    let disabled = UserQuery {
        status: Some(UserStatus::Disabled),
        ..UserQuery::default()
    };
    assert_eq!(names(disabled).await, ["zed"]);
    let both = UserQuery {
        search: Some("al".into()),
        role: Some(Role::Admin),
        status: Some(UserStatus::Active),
        ..UserQuery::default()
    };
    assert_eq!(names(both).await, [admin.username.to_string()]);
}

/// A user named `name` with email `email` and display name `display`.
fn someone(name: &str, email: &str, display: Option<&str>) -> User {
    User {
        email: Email::parse(email).unwrap(),
        display_name: display.map(|d| DisplayName::parse(d).unwrap().unwrap()),
        ..user(name)
    }
}

/// A first page of at most 100 users whose search text is `text`.
fn searching(text: &str) -> UserQuery {
    UserQuery {
        search: Some(text.to_owned()),
        limit: UserQuery::MAX_LIMIT,
        ..UserQuery::default()
    }
}

/// The usernames of the page `list` returns for `q`.
async fn listed(s: &Stores, q: &UserQuery) -> Vec<String> {
    let page = s.users.list(q).await.unwrap();
    page.users
        .into_iter()
        .map(|u| u.username.to_string())
        .collect()
}

/// A search of 3 characters or more matches anywhere in the username, the email or the
/// display name (in lowercase, however it is typed), within one of them.
pub async fn list_search_finds_substrings_of_every_name(s: Stores) {
    for u in [
        someone("alice", "alice@example.com", Some("Alice Liddell")),
        someone("bob", "bob.builder@works.org", Some("Robert the Builder")),
        someone("carol", "c.singer@example.com", None),
        someone("dave", "dave@example.com", Some("Dave Lister")),
    ] {
        insert(&s, &u).await;
    }
    for (text, want, why) in [
        ("lic", &["alice"][..], "inside a username"),
        ("works", &["bob"], "inside an email"),
        ("singer", &["carol"], "inside an email"),
        ("ddel", &["alice"], "inside a display name only"),
        ("LIDDELL", &["alice"], "whatever the case typed"),
        ("the b", &["bob"], "across a space"),
        ("ice lid", &["alice"], "across words"),
        (
            "example.com",
            &["alice", "carol", "dave"],
            "in username order",
        ),
        ("alice@example.com", &["alice"], "a whole email"),
        ("lister dave", &[], "words in another order"),
        ("alice alice", &[], "never across two names"),
        ("zzz", &[], "nothing"),
    ] {
        assert_eq!(listed(&s, &searching(text)).await, want, "{text:?}: {why}");
    }
}

/// A search of 1 or 2 characters matches the start of the username, not the middle, not
/// the email and not the display name.
pub async fn list_short_search_matches_the_start_of_the_username(s: Stores) {
    for u in [
        someone("alice", "alice@example.com", None),
        someone("malik", "malik@example.com", None),
        someone("bob", "al.bob@example.com", None),
        someone("carol", "carol@example.com", Some("Alan Carol")),
    ] {
        insert(&s, &u).await;
    }
    for (text, want) in [
        ("al", &["alice"][..]),
        ("AL", &["alice"]),
        ("a", &["alice"]),
        ("m", &["malik"]),
        ("b", &["bob"]),
        ("ca", &["carol"]),
        ("x", &[]),
        ("li", &[]),
        // Three characters match anywhere again.
        ("ali", &["alice", "malik"]),
        ("ala", &["carol"]),
        ("al.", &["bob"]),
    ] {
        assert_eq!(listed(&s, &searching(text)).await, want, "{text:?}");
    }
}

/// Every character of a search is literal: no wildcard (`%`, `_`, `*`), quoting or operator
/// (`OR`, `NEAR`, `^`, `-`, column filters) of SQL or of a full-text query language; a
/// search with a control character finds nobody, and is no error.
pub async fn list_search_takes_every_character_literally(s: Stores) {
    let displays = [
        "100% Pure",
        "snake_case Fan",
        "Rock \"n\" Roll",
        "O'Brien",
        "a*b Star",
        "NEAR(x y)",
        "Cats OR Dogs",
        "back\\slash",
        "user: name",
        "^start",
        "x -y +z",
        "{username} hi",
    ];
    for (i, display) in displays.iter().enumerate() {
        let name = format!("p{i:02}");
        let u = someone(&name, &format!("{name}@example.com"), Some(display));
        insert(&s, &u).await;
    }
    for (text, want) in [
        ("% p", &["p00"][..]),
        ("%%%", &[]),
        ("%", &[]),
        ("e_c", &["p01"]),
        ("a_e", &[]),
        ("___", &[]),
        ("_", &[]),
        ("\"n\"", &["p02"]),
        ("k \"n", &["p02"]),
        ("\" or \"a", &[]),
        ("\"\"\"", &[]),
        ("o'b", &["p03"]),
        ("'; drop table users; --", &[]),
        ("a*b", &["p04"]),
        ("st*", &[]),
        ("*", &[]),
        ("near(", &["p05"]),
        ("near(x z)", &[]),
        ("cats or dogs", &["p06"]),
        ("dogs or cats", &[]),
        ("k\\s", &["p07"]),
        ("\\\\", &[]),
        ("r: n", &["p08"]),
        ("username: p", &[]),
        ("{username}", &["p11"]),
        ("^st", &["p09"]),
        ("-y +z", &["p10"]),
        ("-y", &[]),
        ("a\u{0}b", &[]),
        ("pu\u{7}", &[]),
        ("\t", &[]),
    ] {
        assert_eq!(listed(&s, &searching(text)).await, want, "{text:?}");
    }
    assert_eq!(
        listed(&s, &searching("p0")).await.len(),
        10,
        "the table is still there"
    );
}

/// A search finds display names in other scripts and with non-ASCII capitals, compared in
/// lowercase; accents count.
pub async fn list_search_folds_the_case_of_any_script(s: Stores) {
    for u in [
        someone("u01", "u01@example.com", Some("Émile Zola")),
        someone("u02", "u02@example.com", Some("ДМИТРИЙ Петров")),
        someone("u03", "u03@example.com", Some("Łukasz Öztürk")),
        someone("u04", "u04@example.com", Some("Zoë")),
    ] {
        insert(&s, &u).await;
    }
    for (text, want) in [
        ("émile", &["u01"][..]),
        ("ÉMILE", &["u01"]),
        ("emile", &[]),
        ("дмитрий", &["u02"]),
        ("ДМИТ", &["u02"]),
        ("петров", &["u02"]),
        ("łukasz", &["u03"]),
        ("ÖZTÜRK", &["u03"]),
        ("zoë", &["u04"]),
        ("zoe", &[]),
        ("oë", &[]),
    ] {
        assert_eq!(listed(&s, &searching(text)).await, want, "{text:?}");
    }
}

/// The search follows every change of a user's names, and forgets a deleted user.
pub async fn list_search_follows_changes_and_deletes(s: Stores) {
    let alice = someone("alice", "alice@example.com", Some("Wonder Woman"));
    insert(&s, &alice).await;
    insert(&s, &user("bob")).await;
    assert_eq!(listed(&s, &searching("wonder")).await, ["alice"]);

    let rename = |username: Option<&str>, email: Option<&str>, display: Option<Option<&str>>| {
        ProfileChanges {
            username: username.map(|u| Username::parse(u).unwrap()),
            email: email.map(|e| Email::parse(e).unwrap()),
            display_name: display.map(|d| d.map(|d| DisplayName::parse(d).unwrap().unwrap())),
        }
    };
    let changes = rename(None, None, Some(Some("Queen of Hearts")));
    s.users
        .update_profile(alice.id, &changes, T0)
        .await
        .unwrap();
    assert_eq!(listed(&s, &searching("wonder")).await, Vec::<String>::new());
    assert_eq!(listed(&s, &searching("hearts")).await, ["alice"]);

    let changes = rename(Some("alicia"), Some("queen@cards.org"), None);
    s.users
        .update_profile(alice.id, &changes, T0)
        .await
        .unwrap();
    assert_eq!(listed(&s, &searching("alice")).await, Vec::<String>::new());
    assert_eq!(listed(&s, &searching("cards")).await, ["alicia"]);
    assert_eq!(listed(&s, &searching("al")).await, ["alicia"]);
    assert_eq!(listed(&s, &searching("hearts")).await, ["alicia"]);

    s.users
        .set_status(alice.id, UserStatus::Disabled, T0)
        .await
        .unwrap();
    s.users.set_role(alice.id, Role::Admin, T0).await.unwrap();
    let changes = rename(None, None, Some(None));
    s.users
        .update_profile(alice.id, &changes, T0)
        .await
        .unwrap();
    assert_eq!(listed(&s, &searching("hearts")).await, Vec::<String>::new());
    assert_eq!(listed(&s, &searching("licia")).await, ["alicia"]);

    s.users.delete(alice.id).await.unwrap();
    for text in ["licia", "cards", "al"] {
        assert_eq!(listed(&s, &searching(text)).await, Vec::<String>::new());
    }
    assert_eq!(listed(&s, &searching("bob")).await, ["bob"]);
}

/// Pages of a search, alone and with the role and status filters, follow username order
/// with keyset paging, as pages without a search do.
pub async fn list_search_pages_with_filters(s: Stores) {
    // Seven Smiths (two admins, two disabled) and others.
    let smiths = [
        ("asmith", Role::User, UserStatus::Active),
        ("bsmith", Role::Admin, UserStatus::Active),
        ("csmith", Role::User, UserStatus::Disabled),
        ("dsmith", Role::User, UserStatus::Active),
        ("esmith", Role::Admin, UserStatus::Active),
        ("fsmith", Role::User, UserStatus::Disabled),
        ("gsmith", Role::User, UserStatus::Active),
    ];
    for (name, role, status) in smiths {
        insert(
            &s,
            &User {
                role,
                status,
                ..user(name)
            },
        )
        .await;
    }
    for name in ["adams", "jones", "smithers"] {
        insert(&s, &user(name)).await;
    }
    insert(&s, &someone("zed", "zed@example.com", Some("Agent Smith"))).await;

    let all_pages = |q: UserQuery| {
        let users = Arc::clone(&s.users);
        async move {
            let mut q = UserQuery { limit: 2, ..q };
            let mut seen = Vec::new();
            for _ in 0..20 {
                let page = users.list(&q).await.unwrap();
                assert!(page.users.len() <= 2);
                seen.extend(page.users.iter().map(|u| u.username.to_string()));
                match page.next {
                    Some(next) => q.after = Some(next),
                    None => return seen,
                }
            }
            panic!("pagination must end");
        }
    };
    let smith = searching("smith");
    assert_eq!(
        all_pages(smith.clone()).await,
        [
            "asmith", "bsmith", "csmith", "dsmith", "esmith", "fsmith", "gsmith", "smithers", "zed"
        ]
    );
    let admins = UserQuery {
        role: Some(Role::Admin),
        ..smith.clone()
    };
    assert_eq!(all_pages(admins).await, ["bsmith", "esmith"]);
    let disabled = UserQuery {
        status: Some(UserStatus::Disabled),
        ..smith.clone()
    };
    assert_eq!(all_pages(disabled).await, ["csmith", "fsmith"]);
    let active_users = UserQuery {
        role: Some(Role::User),
        status: Some(UserStatus::Active),
        ..smith.clone()
    };
    assert_eq!(
        all_pages(active_users).await,
        ["asmith", "dsmith", "gsmith", "smithers", "zed"]
    );
    let after = UserQuery {
        after: Some(Username::parse("dsmith").unwrap()),
        ..smith
    };
    assert_eq!(
        all_pages(after).await,
        ["esmith", "fsmith", "gsmith", "smithers", "zed"]
    );
    let short = UserQuery {
        status: Some(UserStatus::Active),
        ..searching("s")
    };
    assert_eq!(all_pages(short).await, ["smithers"]);
    let short = searching("a");
    assert_eq!(all_pages(short).await, ["adams", "asmith"]);
}

/// Users whose names reach every plan a store may take for a search, when the store's
/// thresholds are small (a probe of a few users, a sample of a few dozen matches), in this
/// order of insertion (the order a search index yields them): 100 users `zz-000`...
/// clustered at the end of the username order, whose emails hold `clustered`; 40 users
/// `a-000`... before them, with display names in several scripts; 80 users `zzz-00`...
/// after them, every tenth with the display name `Clustered Tail`. Every 7th is an admin,
/// every 5th disabled.
pub fn search_dataset() -> Vec<User> {
    let clustered = (0..100).map(|i| User {
        email: Email::parse(&format!("zz{i}@clustered.test")).unwrap(),
        display_name: (i % 3 != 0)
            .then(|| DisplayName::parse(&format!("Cluster Member {i}")).unwrap())
            .flatten(),
        ..user(&format!("zz-{i:03}"))
    });
    let before = (0..40).map(|i| {
        let first = ["Émile", "ÉLODIE", "Zoë", "Дмитрий", "Bob"][i % 5];
        User {
            email: Email::parse(&format!("person{i}@example.com")).unwrap(),
            display_name: DisplayName::parse(&format!("{first} {i}")).unwrap(),
            ..user(&format!("a-{i:03}"))
        }
    });
    let after = (0..80).map(|i| {
        let display = if i % 10 == 0 {
            "Clustered Tail".to_owned()
        } else {
            format!("Tail {i}")
        };
        User {
            email: Email::parse(&format!("tail{i}@example.org")).unwrap(),
            display_name: DisplayName::parse(&display).unwrap(),
            ..user(&format!("zzz-{i:02}"))
        }
    });
    clustered
        .chain(before)
        .chain(after)
        .enumerate()
        .map(|(i, u)| User {
            role: if i % 7 == 0 { Role::Admin } else { Role::User },
            status: if i % 5 == 0 {
                UserStatus::Disabled
            } else {
                UserStatus::Active
            },
            ..u
        })
        .collect()
}

/// First pages of searches over [`search_dataset`], 4 users a page: dense and sparse
/// searches, substrings and prefixes, with every filter and cursors before, inside and at
/// the end of the cluster. A store's tests page through each (following `next`) with small
/// thresholds and compare every page with the in-memory reference's.
pub fn search_queries() -> Vec<UserQuery> {
    let searches = [
        "clustered",
        "zz",
        "z",
        "example",
        "émile",
        "member 1",
        "tail",
        "nothing",
        "1",
    ];
    let filters = [
        (None, None),
        (Some(Role::Admin), None),
        (None, Some(UserStatus::Disabled)),
        (Some(Role::Admin), Some(UserStatus::Active)),
        (Some(Role::User), Some(UserStatus::Active)),
    ];
    let cursors = [None, Some("a-020"), Some("zz-050"), Some("zz-099")];
    let mut out = Vec::new();
    for text in searches {
        for (role, status) in filters {
            for after in cursors {
                out.push(UserQuery {
                    search: Some(text.to_owned()),
                    role,
                    status,
                    after: after.map(|a| Username::parse(a).unwrap()),
                    limit: 4,
                });
            }
        }
    }
    out
}

/// `count_active_admins` counts admins that are active, nobody else.
pub async fn count_active_admins(s: Stores) {
    assert_eq!(s.users.count_active_admins().await.ok(), Some(0));
    insert(&s, &user("plain")).await;
    insert_admin(&s, "admin-1").await;
    let a2 = insert_admin(&s, "admin-2").await;
    assert_eq!(s.users.count_active_admins().await.ok(), Some(2));
    assert!(
        s.users
            .set_status(a2.id, UserStatus::Disabled, T0)
            .await
            .is_ok()
    );
    assert_eq!(s.users.count_active_admins().await.ok(), Some(1));
}

/// `create` stores a session that `get` returns intact; a session for a missing user is
/// `NotFound`; an unknown session is `NotFound`.
pub async fn create_and_get_session(s: Stores) {
    let u = user("alice");
    insert(&s, &u).await;
    let mut sess = session(&u, SessionKind::Token, 0);
    sess.client = ClientInfo::default();
    create(&s, &sess, "r1").await;
    assert_eq!(s.sessions.get(sess.id).await.ok(), Some(sess.clone()));
    let browser = session(&u, SessionKind::Browser, 5);
    create(&s, &browser, "c1").await;
    assert_eq!(s.sessions.get(browser.id).await.ok(), Some(browser));

    let orphan = session(&user("ghost"), SessionKind::Browser, 0);
    let r = s
        .sessions
        .create(&NewSession {
            session: orphan.clone(),
            secret_hash: TokenHash::of("x"),
        })
        .await;
    not_found(r, "session of a missing user");
    not_found(s.sessions.get(orphan.id).await, "it was not written");
    not_found(s.sessions.get(SessionId::new()).await, "unknown session");
}

/// `find_by_cookie` finds browser sessions by their secret, never a token session.
pub async fn find_by_cookie_matches_browser_sessions_only(s: Stores) {
    let u = user("alice");
    insert(&s, &u).await;
    let browser = session(&u, SessionKind::Browser, 0);
    let token = session(&u, SessionKind::Token, 0);
    create(&s, &browser, "cookie").await;
    create(&s, &token, "refresh").await;
    assert_eq!(
        s.sessions
            .find_by_cookie(&TokenHash::of("cookie"))
            .await
            .ok(),
        Some(browser.clone())
    );
    not_found(
        s.sessions.find_by_cookie(&TokenHash::of("refresh")).await,
        "refresh token",
    );
    not_found(
        s.sessions.find_by_cookie(&TokenHash::of("nope")).await,
        "unknown",
    );
    // A revoked session is still found, and reported revoked.
    assert!(s.sessions.revoke(browser.id, at(1)).await.is_ok());
    let found = s.sessions.find_by_cookie(&TokenHash::of("cookie")).await;
    assert_eq!(found.ok().and_then(|x| x.revoked_at), Some(at(1)));
}

/// A user with every optional field set, so that a join that drops or mixes up a column
/// shows.
fn full_user(name: &str) -> User {
    User {
        display_name: DisplayName::parse("Alice <b>Liddell</b> 🐇").unwrap(),
        email_verified_at: Some(at(10)),
        updated_at: at(20),
        ..user(name)
    }
}

/// `get_with_user` returns the session, active or not, with its user as `get` returns
/// them, whatever the user's status, and the user's current role and status; an unknown
/// session, or one whose user was deleted, is `NotFound`.
pub async fn get_with_user_reads_the_session_and_its_user(s: Stores) {
    let (a, b) = (full_user("alice"), user("bob"));
    insert(&s, &a).await;
    insert(&s, &b).await;
    let token = session(&a, SessionKind::Token, 0);
    let browser = session(&a, SessionKind::Browser, 5);
    let bobs = session(&b, SessionKind::Token, 0);
    create(&s, &token, "r1").await;
    create(&s, &browser, "c1").await;
    create(&s, &bobs, "r2").await;
    assert_eq!(
        s.sessions.get_with_user(token.id).await.ok(),
        Some((token.clone(), a.clone()))
    );
    assert_eq!(
        s.sessions.get_with_user(browser.id).await.ok(),
        Some((browser.clone(), a.clone()))
    );
    assert_eq!(
        s.sessions.get_with_user(bobs.id).await.ok(),
        Some((bobs.clone(), b.clone())),
        "each session with its own user"
    );

    // Revoked: still found, and reported revoked.
    assert!(s.sessions.revoke(token.id, at(30)).await.is_ok());
    let (got, _) = s.sessions.get_with_user(token.id).await.unwrap();
    assert_eq!(got.revoked_at, Some(at(30)));
    assert_eq!(s.sessions.get(token.id).await.ok(), Some(got));

    // The user as stored now: a disabled user is returned, disabled; a new role shows.
    assert!(
        s.users
            .set_status(a.id, UserStatus::Disabled, at(40))
            .await
            .is_ok()
    );
    assert!(s.users.set_role(a.id, Role::Admin, at(41)).await.is_ok());
    let (_, got) = s.sessions.get_with_user(browser.id).await.unwrap();
    assert_eq!(Some(got.clone()), s.users.get(a.id).await.ok());
    assert_eq!((got.status, got.role), (UserStatus::Disabled, Role::Admin));

    not_found(
        s.sessions.get_with_user(SessionId::new()).await,
        "unknown session",
    );
    assert!(s.users.delete(a.id).await.is_ok());
    not_found(
        s.sessions.get_with_user(browser.id).await,
        "the session of a deleted user",
    );
    assert_eq!(
        s.sessions.get_with_user(bobs.id).await.ok(),
        Some((bobs, b)),
        "others keep theirs"
    );
}

/// `find_by_cookie_with_user` finds browser sessions by their secret with their user, as
/// `find_by_cookie` and `get` return them, never a token session; a revoked session is found
/// and reported revoked; the user's current status shows; a deleted user's cookie is
/// `NotFound`.
pub async fn find_by_cookie_with_user_matches_browser_sessions_only(s: Stores) {
    let (a, b) = (full_user("alice"), user("bob"));
    insert(&s, &a).await;
    insert(&s, &b).await;
    let browser = session(&a, SessionKind::Browser, 0);
    let token = session(&a, SessionKind::Token, 0);
    let bobs = session(&b, SessionKind::Browser, 1);
    create(&s, &browser, "cookie").await;
    create(&s, &token, "refresh").await;
    create(&s, &bobs, "bob-cookie").await;
    let by_cookie = |secret: &'static str| {
        let sessions = Arc::clone(&s.sessions);
        async move {
            sessions
                .find_by_cookie_with_user(&TokenHash::of(secret))
                .await
        }
    };
    assert_eq!(
        by_cookie("cookie").await.ok(),
        Some((browser.clone(), a.clone()))
    );
    assert_eq!(
        by_cookie("bob-cookie").await.ok(),
        Some((bobs.clone(), b.clone()))
    );
    not_found(by_cookie("refresh").await, "refresh token");
    not_found(by_cookie("nope").await, "unknown");

    assert!(s.sessions.revoke(browser.id, at(1)).await.is_ok());
    assert!(
        s.users
            .set_status(a.id, UserStatus::Disabled, at(2))
            .await
            .is_ok()
    );
    let (got, user) = by_cookie("cookie").await.unwrap();
    assert_eq!(got.revoked_at, Some(at(1)), "revoked, still found");
    assert_eq!(
        s.sessions
            .find_by_cookie(&TokenHash::of("cookie"))
            .await
            .ok(),
        Some(got)
    );
    assert_eq!(user.status, UserStatus::Disabled);
    assert_eq!(Some(user), s.users.get(a.id).await.ok());

    assert!(s.users.delete(a.id).await.is_ok());
    not_found(by_cookie("cookie").await, "the cookie of a deleted user");
    assert_eq!(by_cookie("bob-cookie").await.ok(), Some((bobs, b)));
}

/// Rotation spends the token; a spent token revokes the session; an inactive session does
/// not rotate; an unknown token is `NotFound`.
pub async fn refresh_rotation_and_reuse(s: Stores) {
    let u = user("alice");
    insert(&s, &u).await;
    let sess = session(&u, SessionKind::Token, 0);
    create(&s, &sess, "r1").await;
    let rotate = |old: &str, new: &str, t: i64| {
        let sessions = Arc::clone(&s.sessions);
        let (old, new) = (TokenHash::of(old), TokenHash::of(new));
        async move {
            sessions
                .rotate_refresh_token(&old, &new, at(t), NEVER_IDLE)
                .await
        }
    };

    match rotate("r1", "r2", 10).await {
        Ok(Rotation::Rotated(got)) => {
            assert_eq!(got.id, sess.id);
            assert_eq!(got.last_used_at, at(10));
        }
        other => panic!("expected Rotated: {other:?}"),
    }
    assert!(matches!(
        rotate("r2", "r3", 20).await,
        Ok(Rotation::Rotated(_))
    ));
    not_found(rotate("never-issued", "x", 21).await, "unknown token");
    // The cookie lookup never accepts a refresh token, and vice versa.
    let browser = session(&u, SessionKind::Browser, 0);
    create(&s, &browser, "cookie").await;
    not_found(
        rotate("cookie", "x", 21).await,
        "a cookie is not a refresh token",
    );

    // r1 was spent: presenting it again revokes the session.
    assert_eq!(
        rotate("r1", "r9", 30).await.ok(),
        Some(Rotation::Reused(sess.id))
    );
    let revoked = s.sessions.get(sess.id).await.unwrap();
    assert_eq!(revoked.revoked_at, Some(at(30)));
    // The current token r3 no longer works either.
    assert_eq!(
        rotate("r3", "r4", 31).await.ok(),
        Some(Rotation::Inactive(sess.id))
    );

    // An expired session does not rotate.
    let old = session(&u, SessionKind::Token, 0);
    create(&s, &old, "o1").await;
    assert_eq!(
        rotate("o1", "o2", 3600).await.ok(),
        Some(Rotation::Inactive(old.id))
    );
    assert_eq!(
        rotate("o1", "o2", 3599)
            .await
            .ok()
            .map(|r| matches!(r, Rotation::Rotated(_))),
        Some(true)
    );
}

/// Of two concurrent rotations of one token, exactly one rotates.
pub async fn concurrent_rotation_rotates_once(s: Stores) {
    let u = user("alice");
    insert(&s, &u).await;
    let sess = session(&u, SessionKind::Token, 0);
    create(&s, &sess, "r1").await;
    let spawn = |next: &'static str| {
        let sessions = Arc::clone(&s.sessions);
        tokio::spawn(async move {
            sessions
                .rotate_refresh_token(
                    &TokenHash::of("r1"),
                    &TokenHash::of(next),
                    at(1),
                    NEVER_IDLE,
                )
                .await
        })
    };
    let (a, b) = (spawn("a"), spawn("b"));
    let results = [a.await, b.await].map(|r| r.unwrap());
    let rotated = results
        .iter()
        .filter(|r| matches!(r, Ok(Rotation::Rotated(_))))
        .count();
    assert_eq!(rotated, 1, "{results:?}");
    assert!(
        results.iter().any(|r| matches!(r, Ok(Rotation::Reused(_)))),
        "the loser saw a spent token: {results:?}"
    );
}

/// `revoke` is idempotent and `NotFound` for an unknown id; `revoke_all` ends every active
/// session but the kept one and counts them.
pub async fn revoke_one_and_all(s: Stores) {
    let (a, b) = (user("alice"), user("bob"));
    insert(&s, &a).await;
    insert(&s, &b).await;
    let s1 = session(&a, SessionKind::Browser, 0);
    let s2 = session(&a, SessionKind::Token, 1);
    let s3 = session(&a, SessionKind::Token, 2);
    let other = session(&b, SessionKind::Token, 0);
    for (x, secret) in [(&s1, "1"), (&s2, "2"), (&s3, "3"), (&other, "4")] {
        create(&s, x, secret).await;
    }
    assert!(s.sessions.revoke(s1.id, at(10)).await.is_ok());
    assert!(s.sessions.revoke(s1.id, at(20)).await.is_ok(), "idempotent");
    let got = s.sessions.get(s1.id).await.unwrap();
    assert_eq!(
        got.revoked_at,
        Some(at(10)),
        "the first revocation time is kept"
    );
    not_found(
        s.sessions.revoke(SessionId::new(), at(10)).await,
        "unknown session",
    );

    assert_eq!(
        s.sessions.revoke_all(a.id, Some(s3.id), at(30)).await.ok(),
        Some(1)
    );
    let active = s.sessions.list_active(a.id, at(31)).await.unwrap();
    assert_eq!(active.iter().map(|x| x.id).collect::<Vec<_>>(), [s3.id]);
    assert_eq!(
        s.sessions.revoke_all(a.id, None, at(40)).await.ok(),
        Some(1)
    );
    assert_eq!(
        s.sessions
            .list_active(a.id, at(41))
            .await
            .map(|v| v.len())
            .ok(),
        Some(0)
    );
    assert_eq!(
        s.sessions
            .list_active(b.id, at(41))
            .await
            .map(|v| v.len())
            .ok(),
        Some(1)
    );
}

/// `revoke_all` revokes only the user's active sessions: one already revoked keeps its time,
/// an expired one is neither revoked nor counted, `keep` spares the user's own session and a
/// `keep` of another user's session spares nothing of theirs and touches the other's; a
/// user with nothing active (or no user at all) gets 0. A revoked refresh token no longer
/// rotates.
pub async fn revoke_all_revokes_only_active_sessions_of_the_user(s: Stores) {
    let (a, b) = (user("alice"), user("bob"));
    insert(&s, &a).await;
    insert(&s, &b).await;
    let live = session(&a, SessionKind::Token, 0);
    let kept = session(&a, SessionKind::Browser, 1);
    let revoked = session(&a, SessionKind::Browser, 2);
    let expired = session(&a, SessionKind::Token, -3600); // expires at 0
    let bobs = session(&b, SessionKind::Token, 0);
    for (x, secret) in [
        (&live, "live"),
        (&kept, "kept"),
        (&revoked, "revoked"),
        (&expired, "expired"),
        (&bobs, "bobs"),
    ] {
        create(&s, x, secret).await;
    }
    assert!(s.sessions.revoke(revoked.id, at(5)).await.is_ok());
    let revoked_at = |id: SessionId| {
        let sessions = Arc::clone(&s.sessions);
        async move { sessions.get(id).await.unwrap().revoked_at }
    };

    assert_eq!(
        s.sessions
            .revoke_all(a.id, Some(kept.id), at(10))
            .await
            .ok(),
        Some(1),
        "only `live`: `kept` is kept, `revoked` and `expired` had ended"
    );
    assert_eq!(revoked_at(live.id).await, Some(at(10)));
    assert_eq!(revoked_at(kept.id).await, None);
    assert_eq!(
        revoked_at(revoked.id).await,
        Some(at(5)),
        "its time is kept"
    );
    assert_eq!(revoked_at(expired.id).await, None, "expired, not revoked");
    assert_eq!(revoked_at(bobs.id).await, None, "another user's");
    assert_eq!(
        s.sessions
            .rotate_refresh_token(
                &TokenHash::of("live"),
                &TokenHash::of("next"),
                at(11),
                NEVER_IDLE
            )
            .await
            .ok(),
        Some(Rotation::Inactive(live.id)),
        "a revoked refresh token does not rotate"
    );

    // `keep` naming another user's session keeps nothing of this user's.
    assert_eq!(
        s.sessions
            .revoke_all(a.id, Some(bobs.id), at(20))
            .await
            .ok(),
        Some(1)
    );
    assert_eq!(revoked_at(kept.id).await, Some(at(20)));
    assert_eq!(revoked_at(bobs.id).await, None);

    // Nothing active left, a user without sessions, no such user: 0, and no change.
    assert_eq!(
        s.sessions.revoke_all(a.id, None, at(30)).await.ok(),
        Some(0)
    );
    assert_eq!(revoked_at(live.id).await, Some(at(10)));
    let c = user("carol");
    insert(&s, &c).await;
    assert_eq!(
        s.sessions.revoke_all(c.id, None, at(30)).await.ok(),
        Some(0)
    );
    assert_eq!(
        s.sessions
            .revoke_all(UserId::new(), None, at(30))
            .await
            .ok(),
        Some(0)
    );
    assert_eq!(
        s.sessions
            .list_active(b.id, at(31))
            .await
            .ok()
            .map(|v| v.len()),
        Some(1),
        "bob's session is still active"
    );
}

/// `purge` deletes only what ended strictly before the cut-off: a session expiring or
/// revoked at the cut-off stays; a revoked session goes by its revocation time though it
/// would expire later; an expired refresh token is gone with its session; users stay; a
/// second purge finds nothing.
pub async fn purge_keeps_what_ends_at_the_cut_off(s: Stores) {
    let u = user("alice");
    insert(&s, &u).await;
    assert_eq!(s.sessions.purge(at(100_000)).await.ok(), Some(0), "empty");
    let expiring = session(&u, SessionKind::Token, 0); // expires at 3600
    let revoked = session(&u, SessionKind::Browser, 100); // expires at 3700
    for (x, secret) in [(&expiring, "expiring"), (&revoked, "revoked")] {
        create(&s, x, secret).await;
    }
    assert!(s.sessions.revoke(revoked.id, at(200)).await.is_ok());

    assert_eq!(
        s.sessions.purge(at(200)).await.ok(),
        Some(0),
        "revoked at 200"
    );
    assert_eq!(s.sessions.purge(at(201)).await.ok(), Some(1));
    not_found(
        s.sessions.get(revoked.id).await,
        "revoked before the cut-off",
    );
    assert_eq!(
        s.sessions.purge(at(3600)).await.ok(),
        Some(0),
        "expires at 3600"
    );
    assert_eq!(
        s.sessions.get(expiring.id).await.ok(),
        Some(expiring.clone())
    );
    assert_eq!(s.sessions.purge(at(3601)).await.ok(), Some(1));
    not_found(
        s.sessions.get(expiring.id).await,
        "expired before the cut-off",
    );
    not_found(
        s.sessions
            .rotate_refresh_token(
                &TokenHash::of("expiring"),
                &TokenHash::of("next"),
                at(3602),
                NEVER_IDLE,
            )
            .await,
        "the purged session's refresh token",
    );
    assert_eq!(s.sessions.purge(at(3601)).await.ok(), Some(0), "again");
    assert_eq!(s.users.get(u.id).await.ok(), Some(u));
}

/// `list_active` returns only active sessions of that user, newest first.
pub async fn list_active_sessions_newest_first(s: Stores) {
    let u = user("alice");
    insert(&s, &u).await;
    let old = session(&u, SessionKind::Browser, 0);
    let mid = session(&u, SessionKind::Token, 100);
    let new = session(&u, SessionKind::Browser, 200);
    let revoked = session(&u, SessionKind::Token, 300);
    for (x, secret) in [(&old, "1"), (&mid, "2"), (&new, "3"), (&revoked, "4")] {
        create(&s, x, secret).await;
    }
    assert!(s.sessions.revoke(revoked.id, at(301)).await.is_ok());
    let ids = |v: Vec<Session>| v.into_iter().map(|x| x.id).collect::<Vec<_>>();
    let at_302 = s.sessions.list_active(u.id, at(302)).await.map(ids).ok();
    assert_eq!(at_302, Some(vec![new.id, mid.id, old.id]));
    // `old` expires at 3600.
    let later = s.sessions.list_active(u.id, at(3600)).await.map(ids).ok();
    assert_eq!(later, Some(vec![new.id, mid.id]));
}

/// `count_active` counts the active sessions of every user.
pub async fn count_active_sessions(s: Stores) {
    let (a, b) = (user("alice"), user("bob"));
    insert(&s, &a).await;
    insert(&s, &b).await;
    assert_eq!(s.sessions.count_active(at(0)).await.ok(), Some(0));
    let s1 = session(&a, SessionKind::Browser, 0);
    let s2 = session(&a, SessionKind::Token, 10);
    let s3 = session(&b, SessionKind::Token, 20);
    for (x, secret) in [(&s1, "1"), (&s2, "2"), (&s3, "3")] {
        create(&s, x, secret).await;
    }
    assert_eq!(s.sessions.count_active(at(30)).await.ok(), Some(3));
    assert!(s.sessions.revoke(s2.id, at(31)).await.is_ok());
    assert_eq!(s.sessions.count_active(at(32)).await.ok(), Some(2));
    // s1 expires at 3600, s3 at 3620.
    assert_eq!(s.sessions.count_active(at(3600)).await.ok(), Some(1));
}

/// `purge` deletes sessions that ended before the cut-off, with their secrets.
pub async fn purge_removes_ended_sessions(s: Stores) {
    let u = user("alice");
    insert(&s, &u).await;
    let expired = session(&u, SessionKind::Token, 0); // expires at 3600
    let revoked = session(&u, SessionKind::Browser, 4000);
    let live = session(&u, SessionKind::Browser, 4000);
    for (x, secret) in [(&expired, "1"), (&revoked, "2"), (&live, "3")] {
        create(&s, x, secret).await;
    }
    assert!(s.sessions.revoke(revoked.id, at(4001)).await.is_ok());
    assert_eq!(s.sessions.purge(at(4002)).await.ok(), Some(2));
    not_found(s.sessions.get(expired.id).await, "expired");
    not_found(s.sessions.get(revoked.id).await, "revoked");
    not_found(
        s.sessions.find_by_cookie(&TokenHash::of("2")).await,
        "its secret",
    );
    assert!(s.sessions.get(live.id).await.is_ok());
}

/// A session last used before `idle_since` does not rotate, and nothing changes.
pub async fn idle_sessions_do_not_rotate(s: Stores) {
    let u = user("alice");
    insert(&s, &u).await;
    let sess = session(&u, SessionKind::Token, 0); // last used at 0
    create(&s, &sess, "r1").await;
    let rotation = s
        .sessions
        .rotate_refresh_token(&TokenHash::of("r1"), &TokenHash::of("r2"), at(100), at(1))
        .await;
    assert_eq!(rotation.ok(), Some(Rotation::Inactive(sess.id)));
    assert_eq!(
        s.sessions.get(sess.id).await.ok(),
        Some(sess.clone()),
        "unchanged"
    );
    // Used at 0, idle since 0: idle (the boundary belongs to idle, as in `Session::is_idle`).
    let rotation = s
        .sessions
        .rotate_refresh_token(&TokenHash::of("r1"), &TokenHash::of("r2"), at(100), at(0))
        .await;
    assert_eq!(rotation.ok(), Some(Rotation::Inactive(sess.id)));
    // Idle since just before: in time, and the token was not spent by the refusals.
    let rotation = s
        .sessions
        .rotate_refresh_token(&TokenHash::of("r1"), &TokenHash::of("r2"), at(100), at(-1))
        .await;
    assert!(matches!(rotation, Ok(Rotation::Rotated(_))), "{rotation:?}");
}

/// `touch` moves `last_used_at` forward, never back; `NotFound` for an unknown session.
pub async fn touch_moves_last_used_forward(s: Stores) {
    let u = user("alice");
    insert(&s, &u).await;
    let sess = session(&u, SessionKind::Browser, 0);
    create(&s, &sess, "c").await;
    assert!(s.sessions.touch(sess.id, at(50)).await.is_ok());
    let got = s.sessions.get(sess.id).await.unwrap();
    assert_eq!(got.last_used_at, at(50));
    assert!(s.sessions.touch(sess.id, at(40)).await.is_ok());
    let got = s.sessions.get(sess.id).await.unwrap();
    assert_eq!(got.last_used_at, at(50), "never back");
    assert_eq!(
        (got.created_at, got.expires_at),
        (sess.created_at, sess.expires_at),
        "only last_used_at moves"
    );
    not_found(s.sessions.touch(SessionId::new(), at(60)).await, "unknown");
}

fn failures(count: u32, t: i64) -> LoginFailures {
    LoginFailures {
        count,
        last_failed_at: at(t),
    }
}

/// `LoginFailureStore::swap` stores only over the expected value; `clear` forgets; `purge`
/// deletes counts whose last failure is older than the cut-off.
pub async fn login_failures_swap_clear_and_purge(s: Stores) {
    let key = ThrottleKey::of("alice");
    let other = ThrottleKey::of("bob");
    assert_eq!(s.login_failures.get(&key).await.ok(), Some(None));
    let swap = |expected: Option<LoginFailures>, next: LoginFailures| {
        let store = Arc::clone(&s.login_failures);
        async move { store.swap(&key, expected, &next).await.unwrap() }
    };
    assert!(swap(None, failures(1, 10)).await, "first from nothing");
    assert!(!swap(None, failures(1, 11)).await, "a row exists now");
    assert!(
        !swap(Some(failures(2, 10)), failures(3, 12)).await,
        "wrong count"
    );
    assert!(
        !swap(Some(failures(1, 9)), failures(2, 12)).await,
        "wrong time"
    );
    assert!(swap(Some(failures(1, 10)), failures(2, 20)).await);
    assert_eq!(
        s.login_failures.get(&key).await.ok(),
        Some(Some(failures(2, 20)))
    );
    assert_eq!(
        s.login_failures.get(&other).await.ok(),
        Some(None),
        "per key"
    );
    assert!(s.login_failures.clear(&key).await.is_ok());
    assert_eq!(s.login_failures.get(&key).await.ok(), Some(None));
    assert!(
        s.login_failures.clear(&key).await.is_ok(),
        "clearing twice is fine"
    );

    assert!(swap(None, failures(4, 100)).await);
    let store = Arc::clone(&s.login_failures);
    assert!(store.swap(&other, None, &failures(1, 200)).await.unwrap());
    assert_eq!(s.login_failures.purge(at(100)).await.ok(), Some(0));
    assert_eq!(s.login_failures.purge(at(101)).await.ok(), Some(1));
    assert_eq!(s.login_failures.get(&key).await.ok(), Some(None));
    assert_eq!(
        s.login_failures.get(&other).await.ok(),
        Some(Some(failures(1, 200))),
        "newer counts stay"
    );
}

/// Of concurrent swaps from the same expected value, exactly one succeeds: the store is
/// what keeps concurrent guesses from passing a lock.
pub async fn concurrent_swaps_of_login_failures_succeed_once(s: Stores) {
    let key = ThrottleKey::of("target");
    for expected in [None, Some(failures(1, 1))] {
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let store = Arc::clone(&s.login_failures);
                let next = failures(expected.map_or(1, |f| f.count + 1), i + 1);
                tokio::spawn(async move { store.swap(&key, expected, &next).await })
            })
            .collect();
        let mut won = 0;
        for t in tasks {
            if t.await.unwrap().unwrap() {
                won += 1;
            }
        }
        assert_eq!(won, 1, "from {expected:?}");
        // Set a known value for the next round.
        let now = s.login_failures.get(&key).await.unwrap();
        assert!(
            s.login_failures
                .swap(&key, now, &failures(1, 1))
                .await
                .unwrap()
        );
    }
}

/// Device tokens are stored by hash, found, deleted with their user and purged when
/// expired; an unknown hash or user is `NotFound`.
pub async fn devices_are_stored_found_and_purged(s: Stores) {
    let (a, b) = (user("alice"), user("bob"));
    insert(&s, &a).await;
    insert(&s, &b).await;
    let device = |u: &User, expires: i64| DeviceToken {
        user_id: u.id,
        created_at: at(0),
        expires_at: at(expires),
    };
    let (da, db) = (device(&a, 100), device(&b, 200));
    assert!(s.devices.save(&TokenHash::of("da"), &da).await.is_ok());
    assert!(s.devices.save(&TokenHash::of("db"), &db).await.is_ok());
    assert_eq!(s.devices.find(&TokenHash::of("da")).await.ok(), Some(da));
    assert_eq!(s.devices.find(&TokenHash::of("db")).await.ok(), Some(db));
    not_found(s.devices.find(&TokenHash::of("x")).await, "unknown");
    not_found(
        s.devices
            .save(&TokenHash::of("dx"), &device(&user("ghost"), 100))
            .await,
        "unknown user",
    );
    // Storing a known hash again renews its expiry, for its own user only.
    let renewed = device(&a, 150);
    let da_hash = TokenHash::of("da");
    assert!(s.devices.save(&da_hash, &renewed).await.is_ok());
    assert_eq!(s.devices.find(&da_hash).await.ok(), Some(renewed));
    assert!(s.devices.save(&da_hash, &device(&b, 999)).await.is_ok());
    assert_eq!(
        s.devices.find(&da_hash).await.ok(),
        Some(renewed),
        "another user cannot take it over"
    );
    assert_eq!(s.devices.purge(at(150)).await.ok(), Some(0));
    assert_eq!(s.devices.purge(at(151)).await.ok(), Some(1));
    not_found(s.devices.find(&da_hash).await, "purged");
    // Deleting a user's devices leaves others' alone.
    assert!(s.devices.save(&TokenHash::of("db2"), &db).await.is_ok());
    let other = device(&a, 300);
    assert!(s.devices.save(&TokenHash::of("da2"), &other).await.is_ok());
    assert_eq!(s.devices.delete_for_user(b.id).await.ok(), Some(2));
    not_found(s.devices.find(&TokenHash::of("db")).await, "deleted");
    assert_eq!(
        s.devices.find(&TokenHash::of("da2")).await.ok(),
        Some(other)
    );
    assert!(s.devices.save(&TokenHash::of("db"), &db).await.is_ok());
    assert!(s.users.delete(b.id).await.is_ok());
    not_found(
        s.devices.find(&TokenHash::of("db")).await,
        "deleted with the user",
    );
}

/// A mail to `to` with a recognizable subject and body.
pub fn mail(to: &str, tag: &str) -> Mail {
    Mail::new(
        Email::parse(to).unwrap(),
        format!("Subject {tag}"),
        format!("Text {tag}"),
        Some(format!("<p>HTML {tag}</p>")),
    )
}

async fn enqueue(s: &Stores, m: &Mail, t: i64) {
    s.outbox.enqueue(m, at(t)).await.unwrap();
}

async fn claim(s: &Stores, now: i64, lease: i64, limit: u32) -> Vec<ClaimedMail> {
    s.outbox.claim(at(now), at(lease), limit).await.unwrap()
}

fn ids(claimed: &[ClaimedMail]) -> Vec<uuid::Uuid> {
    claimed.iter().map(|c| c.mail.id).collect()
}

/// A mail comes back from a claim exactly as enqueued (with or without HTML); enqueuing the
/// same id again changes nothing, even after a retry was recorded.
pub async fn outbox_keeps_every_field_and_enqueue_is_idempotent(s: Stores) {
    let with_html = Mail::new(
        Email::parse("zoë@example.com").unwrap(),
        "Bienvenue, Zoë 🐇",
        "Ligne 1\nLigne 2 & <b>",
        Some("<p>Zoë &amp; 🐇</p>".to_owned()),
    );
    let text_only = Mail {
        html: None,
        ..mail("bob@example.org", "plain")
    };
    enqueue(&s, &with_html, 0).await;
    enqueue(&s, &text_only, 1).await;
    let claimed = claim(&s, 1, 10, 10).await;
    assert_eq!(claimed.len(), 2, "{claimed:?}");
    assert_eq!(claimed[0].mail, with_html);
    assert_eq!(claimed[1].mail, text_only);
    assert!(claimed.iter().all(|c| c.attempts == 0));
    assert_ne!(claimed[0].claim, claimed[1].claim, "each claim is fresh");
    let c = &claimed[0];
    s.outbox
        .retry_later(c.mail.id, c.claim, at(100), "busy")
        .await
        .unwrap();
    s.outbox
        .delivered(text_only.id, claimed[1].claim)
        .await
        .unwrap();
    // Again, with other content and an earlier time: nothing changes.
    let changed = Mail {
        subject: "changed".to_owned(),
        ..with_html.clone()
    };
    s.outbox.enqueue(&changed, at(2)).await.unwrap();
    assert!(claim(&s, 99, 200, 10).await.is_empty(), "still waiting");
    let again = claim(&s, 100, 200, 10).await;
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0].mail, with_html, "the first enqueue's content");
    assert_eq!(again[0].attempts, 1, "the failed attempt is kept");
}

/// `claim` takes due mail oldest first, at most `limit`; what it took stays hidden from other
/// claims until the lease ends; mail due later waits.
pub async fn outbox_claims_due_mail_oldest_first_for_a_lease(s: Stores) {
    let mails: Vec<Mail> = (0..5)
        .map(|i| mail("a@example.com", &i.to_string()))
        .collect();
    // Enqueued newest first, so the order comes from the times, not the ids.
    for (i, m) in mails.iter().enumerate().rev() {
        enqueue(&s, m, i as i64).await;
    }
    assert_eq!(s.outbox.pending(at(2)).await.ok(), Some(3), "due at 2");
    assert!(claim(&s, -1, 60, 10).await.is_empty(), "nothing due yet");
    let first = claim(&s, 4, 60, 2).await;
    assert_eq!(ids(&first), vec![mails[0].id, mails[1].id]);
    assert_eq!(s.outbox.pending(at(4)).await.ok(), Some(3));
    let second = claim(&s, 4, 60, 10).await;
    assert_eq!(ids(&second), vec![mails[2].id, mails[3].id, mails[4].id]);
    assert!(
        claim(&s, 59, 120, 10).await.is_empty(),
        "all leased until 60"
    );
    assert_eq!(s.outbox.pending(at(59)).await.ok(), Some(0));
    assert_eq!(s.outbox.pending(at(60)).await.ok(), Some(5), "leases ended");
    assert_eq!(claim(&s, 60, 120, 0).await.len(), 0, "limit 0 claims none");
}

/// Two tasks claiming 20 mails in small batches never get the same mail; together they get
/// them all.
pub async fn outbox_concurrent_claims_never_share_a_mail(s: Stores) {
    let mails: Vec<Mail> = (0..20)
        .map(|i| mail("a@example.com", &i.to_string()))
        .collect();
    for m in &mails {
        enqueue(&s, m, 0).await;
    }
    let worker = || {
        let outbox = Arc::clone(&s.outbox);
        tokio::spawn(async move {
            let mut got = Vec::new();
            let mut rounds = 0;
            loop {
                let batch = outbox.claim(at(1), at(600), 3).await.unwrap();
                if batch.is_empty() {
                    return got;
                }
                rounds += 1;
                assert!(
                    rounds <= 20,
                    "claiming must end: mails leased are handed out again"
                );
                got.extend(batch.into_iter().map(|c| c.mail.id));
                tokio::task::yield_now().await;
            }
        })
    };
    let (a, b) = (worker(), worker());
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let all: Vec<_> = a.iter().chain(&b).copied().collect();
    let unique: HashSet<_> = all.iter().copied().collect();
    assert_eq!(all.len(), 20, "a: {}, b: {}", a.len(), b.len());
    assert_eq!(unique, mails.iter().map(|m| m.id).collect::<HashSet<_>>());
}

/// Once a lease ends the mail is claimed again with a new claim; the old claim can no longer
/// settle it (`NotFound`), the new one can.
pub async fn outbox_expired_claims_are_claimed_again(s: Stores) {
    let m = mail("a@example.com", "x");
    enqueue(&s, &m, 0).await;
    let old = claim(&s, 0, 60, 1).await.remove(0);
    let new = claim(&s, 60, 120, 1).await;
    assert_eq!(ids(&new), vec![m.id], "claimable when the lease ends");
    let new = &new[0];
    assert_ne!(new.claim, old.claim);
    not_found(s.outbox.delivered(m.id, old.claim).await, "delivered, old");
    not_found(
        s.outbox.retry_later(m.id, old.claim, at(70), "x").await,
        "retry_later, old",
    );
    not_found(
        s.outbox.give_up(m.id, old.claim, at(70), "x").await,
        "give_up, old",
    );
    assert!(s.outbox.delivered(m.id, new.claim).await.is_ok());
    assert!(s.outbox.dead_letters(10).await.unwrap().is_empty());
}

/// `delivered` deletes the mail: it is never claimed again, and settling it again is
/// `NotFound`, as is settling an unknown mail.
pub async fn outbox_delivered_deletes_the_mail(s: Stores) {
    let (m1, m2) = (mail("a@example.com", "1"), mail("b@example.com", "2"));
    enqueue(&s, &m1, 0).await;
    enqueue(&s, &m2, 0).await;
    let claimed = claim(&s, 0, 60, 10).await;
    assert_eq!(claimed.len(), 2);
    let c1 = claimed.iter().find(|c| c.mail.id == m1.id).unwrap();
    assert!(s.outbox.delivered(m1.id, c1.claim).await.is_ok());
    not_found(s.outbox.delivered(m1.id, c1.claim).await, "twice");
    not_found(
        s.outbox.delivered(uuid::Uuid::new_v4(), c1.claim).await,
        "unknown mail",
    );
    let c2 = claimed.iter().find(|c| c.mail.id == m2.id).unwrap();
    not_found(
        s.outbox.delivered(m2.id, c1.claim).await,
        "another mail's claim",
    );
    assert_eq!(ids(&claim(&s, 3600, 7200, 10).await), vec![m2.id]);
    not_found(
        s.outbox.delivered(m2.id, c2.claim).await,
        "a claim taken over",
    );
    assert_eq!(s.outbox.pending(at(9999)).await.ok(), Some(1));
}

/// `retry_later` counts the attempt, releases the claim and makes the mail due at `retry_at`,
/// not before.
pub async fn outbox_retry_later_counts_and_waits(s: Stores) {
    let m = mail("a@example.com", "x");
    enqueue(&s, &m, 0).await;
    for attempt in 1..=3u32 {
        let now = i64::from(attempt) * 100;
        let c = claim(&s, now, now + 60, 1).await.remove(0);
        assert_eq!(c.attempts, attempt - 1);
        s.outbox
            .retry_later(m.id, c.claim, at(now + 50), "451 try later")
            .await
            .unwrap();
        not_found(
            s.outbox.delivered(m.id, c.claim).await,
            "the claim was released",
        );
        assert!(claim(&s, now + 49, now + 60, 1).await.is_empty(), "not yet");
        assert_eq!(s.outbox.pending(at(now + 49)).await.ok(), Some(0));
        assert_eq!(s.outbox.pending(at(now + 50)).await.ok(), Some(1));
    }
    let c = claim(&s, 400, 460, 1).await.remove(0);
    assert_eq!(c.attempts, 3);
}

/// `give_up` drops the mail and keeps a dead letter without subject or body; dead letters
/// are listed newest first and purged by age.
pub async fn outbox_give_up_keeps_a_dead_letter_without_body(s: Stores) {
    let (m1, m2) = (mail("a@example.com", "1"), mail("b@example.org", "2"));
    enqueue(&s, &m1, 0).await;
    enqueue(&s, &m2, 1).await;
    let c = claim(&s, 1, 60, 2).await;
    s.outbox
        .retry_later(m1.id, c[0].claim, at(2), "busy")
        .await
        .unwrap();
    let c1 = claim(&s, 2, 60, 1).await.remove(0);
    s.outbox
        .give_up(m1.id, c1.claim, at(10), "550 no such user")
        .await
        .unwrap();
    s.outbox
        .give_up(m2.id, c[1].claim, at(20), "554 rejected")
        .await
        .unwrap();
    assert!(
        claim(&s, 9999, 99999, 10).await.is_empty(),
        "left the queue"
    );
    assert_eq!(s.outbox.pending(at(9999)).await.ok(), Some(0));
    not_found(s.outbox.delivered(m1.id, c1.claim).await, "settled");
    let dead = s.outbox.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert_eq!(
        (dead[0].id, dead[0].to.as_ref(), dead[0].attempts),
        (m2.id, "b@example.org", 1)
    );
    assert_eq!(
        (dead[0].error.as_str(), dead[0].failed_at),
        ("554 rejected", at(20))
    );
    assert_eq!(
        (dead[1].id, dead[1].attempts, dead[1].error.as_str()),
        (m1.id, 2, "550 no such user")
    );
    assert_eq!(s.outbox.dead_letters(1).await.unwrap().len(), 1);
    assert_eq!(s.outbox.purge(at(20)).await.ok(), Some(1));
    let left = s.outbox.dead_letters(10).await.unwrap();
    assert_eq!(left.iter().map(|d| d.id).collect::<Vec<_>>(), vec![m2.id]);
}

fn token(u: &User, purpose: TokenPurpose, created: i64, expires: i64) -> OneTimeToken {
    OneTimeToken {
        user_id: u.id,
        purpose,
        email: u.email.clone(),
        created_at: at(created),
        expires_at: at(expires),
    }
}

async fn issue(s: &Stores, secret: &str, t: &OneTimeToken) -> Mail {
    let m = mail(t.email.as_ref(), secret);
    s.tokens.issue(&TokenHash::of(secret), t, &m).await.unwrap();
    m
}

async fn consume(
    s: &Stores,
    secret: &str,
    purpose: TokenPurpose,
    now: i64,
) -> Result<OneTimeToken, RepoError> {
    s.tokens
        .consume(&TokenHash::of(secret), purpose, at(now))
        .await
}

/// `issue` stores the token and queues its mail, due at the token's creation; `consume`
/// returns the token once, then `NotFound`.
pub async fn tokens_are_issued_with_their_mail_and_consumed_once(s: Stores) {
    let mut u = user("alice");
    insert(&s, &u).await;
    // The address it was sent to is kept, whatever the account's is now.
    u.email = Email::parse("new-alice@example.org").unwrap();
    let t = token(&u, TokenPurpose::VerifyEmail, 10, 100);
    let m = issue(&s, "secret", &t).await;
    assert!(claim(&s, 9, 60, 10).await.is_empty(), "due at issue time");
    let queued = claim(&s, 10, 60, 10).await;
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].mail, m);
    not_found(
        consume(&s, "other", TokenPurpose::VerifyEmail, 20).await,
        "unknown",
    );
    assert_eq!(
        consume(&s, "secret", TokenPurpose::VerifyEmail, 20)
            .await
            .ok(),
        Some(t)
    );
    not_found(
        consume(&s, "secret", TokenPurpose::VerifyEmail, 20).await,
        "used",
    );
}

/// A newer token kills the older ones of the same user and purpose; other purposes and
/// other users keep theirs.
pub async fn tokens_issue_kills_older_tokens_of_its_purpose_only(s: Stores) {
    let (a, b) = (user("alice"), user("bob"));
    insert(&s, &a).await;
    insert(&s, &b).await;
    issue(
        &s,
        "a-verify-1",
        &token(&a, TokenPurpose::VerifyEmail, 0, 100),
    )
    .await;
    issue(
        &s,
        "a-verify-2",
        &token(&a, TokenPurpose::VerifyEmail, 1, 100),
    )
    .await;
    issue(
        &s,
        "a-reset",
        &token(&a, TokenPurpose::ResetPassword, 2, 100),
    )
    .await;
    issue(
        &s,
        "b-verify",
        &token(&b, TokenPurpose::VerifyEmail, 3, 100),
    )
    .await;
    let newest = token(&a, TokenPurpose::VerifyEmail, 4, 100);
    issue(&s, "a-verify-3", &newest).await;
    for old in ["a-verify-1", "a-verify-2"] {
        not_found(consume(&s, old, TokenPurpose::VerifyEmail, 5).await, old);
    }
    assert_eq!(
        consume(&s, "a-verify-3", TokenPurpose::VerifyEmail, 5)
            .await
            .ok(),
        Some(newest)
    );
    assert!(
        consume(&s, "a-reset", TokenPurpose::ResetPassword, 5)
            .await
            .is_ok()
    );
    assert!(
        consume(&s, "b-verify", TokenPurpose::VerifyEmail, 5)
            .await
            .is_ok()
    );
    assert_eq!(
        claim(&s, 10, 60, 10).await.len(),
        5,
        "every mail stays queued"
    );
}

/// `consume` refuses a token of another purpose (leaving it intact) and an expired one:
/// it works while `now < expires_at`, not at `expires_at`.
pub async fn tokens_consume_checks_purpose_and_expiry(s: Stores) {
    let u = user("alice");
    insert(&s, &u).await;
    issue(&s, "reset", &token(&u, TokenPurpose::ResetPassword, 0, 100)).await;
    not_found(
        consume(&s, "reset", TokenPurpose::VerifyEmail, 1).await,
        "other purpose",
    );
    not_found(
        consume(&s, "reset", TokenPurpose::ResetPassword, 100).await,
        "at expiry",
    );
    let just_before = s
        .tokens
        .consume(
            &TokenHash::of("reset"),
            TokenPurpose::ResetPassword,
            at(100) - time::Duration::microseconds(1),
        )
        .await;
    assert!(just_before.is_ok(), "just before expiry: {just_before:?}");
    issue(&s, "late", &token(&u, TokenPurpose::ResetPassword, 0, 100)).await;
    not_found(
        consume(&s, "late", TokenPurpose::ResetPassword, 1000).await,
        "long expired",
    );
}

/// Of concurrent consumes of one token, exactly one gets it.
pub async fn tokens_concurrent_consume_succeeds_once(s: Stores) {
    let u = user("alice");
    insert(&s, &u).await;
    issue(&s, "once", &token(&u, TokenPurpose::ResetPassword, 0, 100)).await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let tokens = Arc::clone(&s.tokens);
            tokio::spawn(async move {
                tokens
                    .consume(&TokenHash::of("once"), TokenPurpose::ResetPassword, at(1))
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => won += 1,
            Err(RepoError::NotFound) => {}
            Err(e) => panic!("unexpected: {e:?}"),
        }
    }
    assert_eq!(won, 1);
}

/// `revoke_all` deletes one user's tokens of one purpose and counts them, leaving their
/// other purpose and other users' tokens alone (0 for a user with none, or no user);
/// `purge` deletes tokens that expired before the cut-off.
pub async fn tokens_revoke_all_and_purge(s: Stores) {
    let (a, b) = (user("alice"), user("bob"));
    insert(&s, &a).await;
    insert(&s, &b).await;
    issue(
        &s,
        "a-reset",
        &token(&a, TokenPurpose::ResetPassword, 0, 100),
    )
    .await;
    issue(
        &s,
        "a-verify",
        &token(&a, TokenPurpose::VerifyEmail, 0, 200),
    )
    .await;
    issue(
        &s,
        "b-reset",
        &token(&b, TokenPurpose::ResetPassword, 0, 300),
    )
    .await;
    assert_eq!(
        s.tokens
            .revoke_all(a.id, TokenPurpose::ResetPassword)
            .await
            .ok(),
        Some(1)
    );
    assert_eq!(
        s.tokens
            .revoke_all(a.id, TokenPurpose::ResetPassword)
            .await
            .ok(),
        Some(0)
    );
    not_found(
        consume(&s, "a-reset", TokenPurpose::ResetPassword, 1).await,
        "revoked",
    );
    let find = |secret: &'static str, purpose: TokenPurpose| {
        let tokens = Arc::clone(&s.tokens);
        async move {
            tokens
                .find(&TokenHash::of(secret), purpose, at(1))
                .await
                .ok()
                .map(|t| t.user_id)
        }
    };
    assert_eq!(
        find("a-verify", TokenPurpose::VerifyEmail).await,
        Some(a.id),
        "the other purpose is left"
    );
    assert_eq!(
        find("b-reset", TokenPurpose::ResetPassword).await,
        Some(b.id),
        "another user's is left"
    );
    let carol = user("carol");
    insert(&s, &carol).await;
    for nobody in [carol.id, UserId::new()] {
        assert_eq!(
            s.tokens
                .revoke_all(nobody, TokenPurpose::VerifyEmail)
                .await
                .ok(),
            Some(0)
        );
    }
    assert_eq!(
        find("a-verify", TokenPurpose::VerifyEmail).await,
        Some(a.id)
    );
    assert_eq!(
        s.tokens.purge(at(200)).await.ok(),
        Some(0),
        "expires at 200"
    );
    assert_eq!(s.tokens.purge(at(201)).await.ok(), Some(1));
    not_found(
        consume(&s, "a-verify", TokenPurpose::VerifyEmail, 1).await,
        "purged",
    );
    assert!(
        consume(&s, "b-reset", TokenPurpose::ResetPassword, 1)
            .await
            .is_ok()
    );
}

/// Deleting a user deletes their tokens.
pub async fn tokens_go_with_their_user(s: Stores) {
    let (a, b) = (user("alice"), user("bob"));
    insert(&s, &a).await;
    insert(&s, &b).await;
    issue(&s, "a", &token(&a, TokenPurpose::ResetPassword, 0, 100)).await;
    issue(&s, "b", &token(&b, TokenPurpose::ResetPassword, 0, 100)).await;
    s.users.delete(a.id).await.unwrap();
    not_found(
        consume(&s, "a", TokenPurpose::ResetPassword, 1).await,
        "deleted user",
    );
    assert!(
        consume(&s, "b", TokenPurpose::ResetPassword, 1)
            .await
            .is_ok()
    );
    assert_eq!(
        s.tokens
            .revoke_all(a.id, TokenPurpose::ResetPassword)
            .await
            .ok(),
        Some(0)
    );
}

/// Issuing for a missing user is `NotFound` and writes nothing: no token, no mail, and the
/// user's earlier tokens are untouched.
pub async fn tokens_issue_for_a_missing_user_writes_nothing(s: Stores) {
    let ghost = user("ghost");
    let m = mail("ghost@example.com", "ghost");
    let t = token(&ghost, TokenPurpose::VerifyEmail, 0, 100);
    not_found(
        s.tokens.issue(&TokenHash::of("ghost"), &t, &m).await,
        "missing user",
    );
    assert_eq!(
        s.outbox.pending(at(9999)).await.ok(),
        Some(0),
        "no mail queued"
    );
    assert!(claim(&s, 9999, 99999, 10).await.is_empty());
    not_found(
        consume(&s, "ghost", TokenPurpose::VerifyEmail, 1).await,
        "no token",
    );
}

/// `find` returns a working token without spending it, and refuses as `consume` does: an
/// unknown hash, another purpose, at or after expiry, once consumed.
pub async fn tokens_find_checks_without_spending(s: Stores) {
    let u = user("alice");
    insert(&s, &u).await;
    let t = token(&u, TokenPurpose::ResetPassword, 0, 100);
    issue(&s, "reset", &t).await;
    let find = |secret: &'static str, purpose, now| {
        let tokens = Arc::clone(&s.tokens);
        async move { tokens.find(&TokenHash::of(secret), purpose, at(now)).await }
    };
    for _ in 0..2 {
        assert_eq!(
            find("reset", TokenPurpose::ResetPassword, 99).await.ok(),
            Some(t.clone()),
            "found, and found again"
        );
    }
    not_found(
        find("other", TokenPurpose::ResetPassword, 1).await,
        "unknown",
    );
    not_found(
        find("reset", TokenPurpose::VerifyEmail, 1).await,
        "other purpose",
    );
    not_found(
        find("reset", TokenPurpose::ResetPassword, 100).await,
        "at expiry",
    );
    assert_eq!(
        consume(&s, "reset", TokenPurpose::ResetPassword, 1)
            .await
            .ok(),
        Some(t),
        "finding spent nothing"
    );
    not_found(
        find("reset", TokenPurpose::ResetPassword, 1).await,
        "consumed",
    );
}

/// `mark_email_verified` sets `email_verified_at` while the email is still the given one,
/// and is `NotFound` (writing nothing) once it changed or for a missing user.
pub async fn mark_email_verified_only_for_the_current_email(s: Stores) {
    let u = user("alice");
    insert(&s, &u).await;
    let old = u.email.clone();
    let verified = s
        .users
        .mark_email_verified(u.id, &old, at(10))
        .await
        .unwrap();
    assert_eq!(verified.email_verified_at, Some(at(10)));
    assert_eq!(verified.updated_at, at(10));
    assert_eq!(s.users.get(u.id).await.unwrap(), verified);

    let new = Email::parse("alice@example.org").unwrap();
    let changes = ProfileChanges {
        email: Some(new.clone()),
        ..ProfileChanges::default()
    };
    s.users
        .update_profile(u.id, &changes, at(20))
        .await
        .unwrap();
    not_found(
        s.users.mark_email_verified(u.id, &old, at(30)).await,
        "the old address",
    );
    let after = s.users.get(u.id).await.unwrap();
    assert_eq!(
        (after.email_verified_at, after.updated_at),
        (None, at(20)),
        "nothing written"
    );
    not_found(
        s.users
            .mark_email_verified(UserId::new(), &new, at(30))
            .await,
        "a missing user",
    );
    let verified = s
        .users
        .mark_email_verified(u.id, &new, at(40))
        .await
        .unwrap();
    assert_eq!(
        (verified.email, verified.email_verified_at),
        (new.clone(), Some(at(40)))
    );
    // Already verified: the time moves to the new one.
    let again = s.users.mark_email_verified(u.id, &new, at(50)).await;
    assert_eq!(again.ok().map(|u| u.email_verified_at), Some(Some(at(50))));
    assert_eq!(
        s.users.get(u.id).await.ok().map(|u| u.email_verified_at),
        Some(Some(at(50)))
    );
}

fn audit_event(kind: AuditKind, secs: i64) -> AuditEvent {
    AuditEvent::new(kind, at(secs))
}

async fn record(s: &Stores, event: &AuditEvent) {
    s.audit.record(event).await.unwrap();
}

async fn audit_page(s: &Stores, query: &AuditQuery) -> crate::domain::AuditPage {
    s.audit.list(query).await.unwrap()
}

/// `record` keeps every field as given, `list` returns it whole.
pub async fn audit_keeps_every_field(s: Stores) {
    let (a, b) = (user("alice"), user("bob"));
    insert(&s, &a).await;
    let full = audit_event(AuditKind::SignIn, 0)
        .on(a.id)
        .by_user(b.id)
        .failed()
        .identifier("Alice@Example.com")
        .from_client(&ClientInfo::new(
            Some("Mozilla/5.0 ünïcode"),
            Some("2001:db8::1"),
        ))
        .detail("wrong_password");
    let bare = audit_event(AuditKind::Registered, 1);
    record(&s, &full).await;
    record(&s, &bare).await;
    let page = audit_page(&s, &AuditQuery::default()).await;
    assert_eq!(page.events, [bare, full]);
    assert_eq!(page.next, None);
}

/// Newest first by time, ties by id; `before` continues strictly after the cursor; `next` is
/// set exactly when more events match.
pub async fn audit_pages_newest_first_by_time_then_id(s: Stores) {
    let mut events: Vec<AuditEvent> = (0..5)
        .map(|i| audit_event(AuditKind::Logout, i / 2))
        .collect();
    for e in &events {
        record(&s, e).await;
    }
    events.sort_by_key(|e| std::cmp::Reverse((e.at, e.id)));
    let mut query = AuditQuery {
        limit: 2,
        ..AuditQuery::default()
    };
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = audit_page(&s, &query).await;
        pages += 1;
        assert!(page.events.len() <= 2);
        seen.extend(page.events.clone());
        match page.next {
            Some(next) => {
                assert_eq!(Some(next), page.events.last().map(AuditEvent::cursor));
                query.before = Some(next);
            }
            None => break,
        }
        assert!(pages < 10, "audit paging must end");
    }
    assert_eq!(seen, events);
    assert_eq!(
        pages, 3,
        "5 events in pages of 2, the last one without next"
    );
    let exact = audit_page(
        &s,
        &AuditQuery {
            limit: 5,
            ..AuditQuery::default()
        },
    )
    .await;
    assert_eq!(exact.events.len(), 5);
    assert_eq!(exact.next, None, "no next page when nothing more matches");
}

/// Each filter narrows the list; together they all hold.
pub async fn audit_filters_combine(s: Stores) {
    let (a, b) = (UserId::new(), UserId::new());
    let events = [
        audit_event(AuditKind::SignIn, 0).on(a).by_user(a),
        audit_event(AuditKind::SignIn, 1).on(a).failed(),
        audit_event(AuditKind::RoleChanged, 2).on(a).by_user(b),
        audit_event(AuditKind::SignIn, 3).on(b).by_user(b),
    ];
    for e in &events {
        record(&s, e).await;
    }
    let ids =
        |page: crate::domain::AuditPage| -> Vec<_> { page.events.iter().map(|e| e.id).collect() };
    let by_subject = AuditQuery {
        subject: Some(a),
        ..AuditQuery::default()
    };
    assert_eq!(
        ids(audit_page(&s, &by_subject).await),
        [events[2].id, events[1].id, events[0].id]
    );
    let by_actor = AuditQuery {
        actor: Some(b),
        ..AuditQuery::default()
    };
    assert_eq!(
        ids(audit_page(&s, &by_actor).await),
        [events[3].id, events[2].id]
    );
    let by_kind = AuditQuery {
        kind: Some(AuditKind::SignIn),
        ..AuditQuery::default()
    };
    assert_eq!(
        ids(audit_page(&s, &by_kind).await),
        [events[3].id, events[1].id, events[0].id]
    );
    let failures = AuditQuery {
        outcome: Some(AuditOutcome::Failure),
        ..AuditQuery::default()
    };
    assert_eq!(ids(audit_page(&s, &failures).await), [events[1].id]);
    let all = AuditQuery {
        subject: Some(a),
        kind: Some(AuditKind::SignIn),
        outcome: Some(AuditOutcome::Success),
        ..AuditQuery::default()
    };
    assert_eq!(ids(audit_page(&s, &all).await), [events[0].id]);
    let nobody = AuditQuery {
        actor: Some(UserId::new()),
        ..AuditQuery::default()
    };
    assert!(audit_page(&s, &nobody).await.events.is_empty());
}

/// `purge` deletes the events older than the cut-off, none at or after it.
pub async fn audit_purge_deletes_only_older_events(s: Stores) {
    for secs in [0, 10, 20] {
        record(&s, &audit_event(AuditKind::Logout, secs)).await;
    }
    assert_eq!(s.audit.purge(at(10)).await.ok(), Some(1));
    assert_eq!(s.audit.purge(at(10)).await.ok(), Some(0));
    let left: Vec<_> = audit_page(&s, &AuditQuery::default())
        .await
        .events
        .iter()
        .map(|e| e.at)
        .collect();
    assert_eq!(left, [at(20), at(10)]);
}

/// `anonymize` clears the identifier on the user's events, the client on events they did and
/// on anonymous events about them, and leaves everyone else's events alone.
pub async fn audit_anonymize_strips_what_names_the_user(s: Stores) {
    let (gone, admin) = (UserId::new(), UserId::new());
    let client = ClientInfo::new(Some("Browser"), Some("192.0.2.7"));
    let own = audit_event(AuditKind::SignIn, 0)
        .on(gone)
        .by_user(gone)
        .identifier("gone")
        .from_client(&client);
    let stranger = audit_event(AuditKind::SignIn, 1)
        .on(gone)
        .failed()
        .identifier("gone@example.com")
        .from_client(&client);
    let by_admin = audit_event(AuditKind::RoleChanged, 2)
        .on(gone)
        .by_user(admin)
        .from_client(&client)
        .detail("admin");
    let done_elsewhere = audit_event(AuditKind::RoleChanged, 3)
        .on(admin)
        .by_user(gone)
        .from_client(&client);
    let unrelated = audit_event(AuditKind::SignIn, 4)
        .on(admin)
        .by_user(admin)
        .identifier("admin")
        .from_client(&client);
    for e in [&own, &stranger, &by_admin, &done_elsewhere, &unrelated] {
        record(&s, e).await;
    }
    assert_eq!(s.audit.anonymize(gone).await.ok(), Some(3));
    let events = audit_page(&s, &AuditQuery::default()).await.events;
    let find = |id| events.iter().find(|e| e.id == id).unwrap().clone();
    let stripped = |e: &AuditEvent, keep_client: bool| AuditEvent {
        identifier: None,
        client: if keep_client {
            e.client.clone()
        } else {
            ClientInfo::default()
        },
        ..e.clone()
    };
    assert_eq!(find(own.id), stripped(&own, false));
    assert_eq!(find(stranger.id), stripped(&stranger, false));
    assert_eq!(find(by_admin.id), by_admin, "the admin's own address stays");
    assert_eq!(find(done_elsewhere.id), stripped(&done_elsewhere, false));
    assert_eq!(find(unrelated.id), unrelated);
    assert_eq!(
        s.audit.anonymize(gone).await.ok(),
        Some(0),
        "nothing left to strip"
    );
}

/// Events stay when their users are deleted, and may name users that never existed here.
pub async fn audit_outlives_its_users(s: Stores) {
    let a = user("alice");
    insert(&s, &a).await;
    let event = audit_event(AuditKind::Deleted, 0).on(a.id).by_user(a.id);
    record(&s, &event).await;
    s.users.delete(a.id).await.unwrap();
    assert_eq!(audit_page(&s, &AuditQuery::default()).await.events, [event]);
}

/// A pending authenticator-app factor of `u`, started at `created`, whose sealed secret
/// (bytes no text encoding would keep) is told apart by `tag`.
fn totp(u: &User, tag: u8, created: i64) -> TotpFactor {
    TotpFactor {
        user_id: u.id,
        sealed_secret: vec![0x00, 0xFF, tag, 0x80, 0x00, tag],
        created_at: at(created),
        confirmed_at: None,
        last_used_step: None,
    }
}

/// `n` recovery codes, told apart by `tag`.
fn codes(tag: &str, n: usize) -> Vec<TokenHash> {
    (0..n)
        .map(|i| TokenHash::of(&format!("{tag}-{i}")))
        .collect()
}

/// The step every [`enrol`] confirms with.
const STEP: i64 = 1_000;

/// Enrols `u` (started at 0, confirmed at 1 with step [`STEP`]) with three codes named after
/// the user; returns the confirmed factor and the codes.
async fn enrol(s: &Stores, u: &User, tag: u8) -> (TotpFactor, Vec<TokenHash>) {
    let pending = totp(u, tag, 0);
    assert_eq!(s.factors.begin_enrolment(&pending).await.ok(), Some(true));
    let codes = codes(u.username.as_str(), 3);
    s.factors
        .confirm_enrolment(u.id, STEP, &codes, at(1))
        .await
        .unwrap();
    let confirmed = TotpFactor {
        confirmed_at: Some(at(1)),
        last_used_step: Some(STEP),
        ..pending
    };
    (confirmed, codes)
}

async fn use_code(s: &Stores, u: &User, code: &TokenHash) -> bool {
    s.factors.use_recovery_code(u.id, code).await.unwrap()
}

async fn codes_left(s: &Stores, u: &User) -> u32 {
    s.factors.recovery_codes_left(u.id).await.unwrap()
}

async fn trusted(s: &Stores, device: &str, u: &User, now: i64) -> bool {
    s.factors
        .is_trusted(&TokenHash::of(device), u.id, at(now))
        .await
        .unwrap()
}

async fn trust(s: &Stores, device: &str, u: &User, until: i64) {
    s.factors
        .trust_device(&TokenHash::of(device), u.id, at(until))
        .await
        .unwrap();
}

fn challenge(
    u: &User,
    purpose: ChallengePurpose,
    device: Option<&str>,
    expires: i64,
) -> SignInChallenge {
    SignInChallenge {
        user_id: u.id,
        purpose,
        device: device.map(TokenHash::of),
        created_at: at(0),
        expires_at: at(expires),
    }
}

async fn create_challenge(s: &Stores, secret: &str, c: &SignInChallenge) {
    s.factors
        .create_challenge(&TokenHash::of(secret), c)
        .await
        .unwrap();
}

async fn find_challenge(
    s: &Stores,
    secret: &str,
    now: OffsetDateTime,
) -> Result<SignInChallenge, RepoError> {
    s.factors.find_challenge(&TokenHash::of(secret), now).await
}

async fn consume_challenge(
    s: &Stores,
    secret: &str,
    now: OffsetDateTime,
) -> Result<SignInChallenge, RepoError> {
    s.factors
        .consume_challenge(&TokenHash::of(secret), now)
        .await
}

/// Purges everything that can go: far in the future for both cut-offs.
async fn purge_all(s: &Stores) -> u64 {
    s.factors.purge(at(1_000_000), at(1_000_000)).await.unwrap()
}

/// A user without a factor: `factor`, `confirm_enrolment`, `use_step` and
/// `replace_recovery_codes` are `NotFound` and write nothing; there is no recovery code to
/// use or count, and nothing to remove.
pub async fn factors_without_an_enrolment(s: Stores) {
    let u = user("alice");
    insert(&s, &u).await;
    let c = codes("c", 3);
    not_found(s.factors.factor(u.id).await, "factor");
    not_found(
        s.factors.confirm_enrolment(u.id, 5, &c, at(1)).await,
        "confirm_enrolment",
    );
    not_found(s.factors.use_step(u.id, 5).await, "use_step");
    not_found(
        s.factors.replace_recovery_codes(u.id, &c).await,
        "replace_recovery_codes",
    );
    not_found(s.factors.factor(u.id).await, "nothing was written");
    assert_eq!(codes_left(&s, &u).await, 0, "no code was written");
    assert!(!use_code(&s, &u, &c[0]).await, "no code to use");
    assert_eq!(s.factors.remove(u.id).await.ok(), Some(false));
    not_found(s.factors.factor(UserId::new()).await, "an unknown user");
    assert_eq!(
        s.factors.recovery_codes_left(UserId::new()).await.ok(),
        Some(0),
        "an unknown user has no codes"
    );
}

/// `begin_enrolment`, `trust_device` and `create_challenge` for a user who does not exist
/// are `NotFound`, and write nothing.
pub async fn factors_for_a_missing_user_are_not_found(s: Stores) {
    insert(&s, &user("present")).await;
    let ghost = user("ghost");
    not_found(
        s.factors.begin_enrolment(&totp(&ghost, 1, 0)).await,
        "begin_enrolment",
    );
    not_found(s.factors.factor(ghost.id).await, "no factor was written");
    not_found(
        s.factors
            .trust_device(&TokenHash::of("device"), ghost.id, at(100))
            .await,
        "trust_device",
    );
    assert!(
        !trusted(&s, "device", &ghost, 0).await,
        "no mark was written"
    );
    let c = challenge(&ghost, ChallengePurpose::SecondFactor, None, 100);
    not_found(
        s.factors
            .create_challenge(&TokenHash::of("challenge"), &c)
            .await,
        "create_challenge",
    );
    not_found(
        find_challenge(&s, "challenge", at(1)).await,
        "no challenge was written",
    );
    assert_eq!(purge_all(&s).await, 0, "no row at all");
}

/// `begin_enrolment` stores the factor as pending, whatever `confirmed_at` and
/// `last_used_step` it is given, and `factor` returns it with every field intact.
pub async fn begin_enrolment_stores_a_pending_factor(s: Stores) {
    let (a, b) = (user("alice"), user("bob"));
    insert(&s, &a).await;
    insert(&s, &b).await;
    let given = TotpFactor {
        confirmed_at: Some(at(5)),
        last_used_step: Some(77),
        ..totp(&a, 1, 3)
    };
    assert_eq!(s.factors.begin_enrolment(&given).await.ok(), Some(true));
    let stored = s.factors.factor(a.id).await.unwrap();
    assert_eq!(
        stored,
        TotpFactor {
            confirmed_at: None,
            last_used_step: None,
            ..given
        }
    );
    assert!(!stored.is_confirmed());
    not_found(s.factors.factor(b.id).await, "per user");
    assert_eq!(codes_left(&s, &a).await, 0, "no code before confirmation");
}

/// `begin_enrolment` over a pending factor replaces it.
pub async fn begin_enrolment_replaces_a_pending_factor(s: Stores) {
    let u = user("alice");
    insert(&s, &u).await;
    assert_eq!(
        s.factors.begin_enrolment(&totp(&u, 1, 0)).await.ok(),
        Some(true)
    );
    let second = totp(&u, 2, 60);
    assert_eq!(s.factors.begin_enrolment(&second).await.ok(), Some(true));
    assert_eq!(s.factors.factor(u.id).await.ok(), Some(second));
}

/// `begin_enrolment` over a confirmed factor returns `false` and changes nothing: the
/// factor and its recovery codes stay.
pub async fn begin_enrolment_leaves_a_confirmed_factor_alone(s: Stores) {
    let u = user("alice");
    insert(&s, &u).await;
    let (confirmed, c) = enrol(&s, &u, 1).await;
    let again = TotpFactor {
        confirmed_at: None,
        last_used_step: None,
        ..totp(&u, 2, 50)
    };
    assert_eq!(s.factors.begin_enrolment(&again).await.ok(), Some(false));
    assert_eq!(s.factors.factor(u.id).await.ok(), Some(confirmed));
    assert_eq!(codes_left(&s, &u).await, 3);
    assert!(use_code(&s, &u, &c[0]).await, "the codes still work");
}

/// `confirm_enrolment` confirms the pending factor at `now` with `step` as its last used
/// step, keeps its other fields, and gives the user exactly the codes it is given.
pub async fn confirm_enrolment_confirms_and_sets_the_codes(s: Stores) {
    let (a, b) = (user("alice"), user("bob"));
    insert(&s, &a).await;
    insert(&s, &b).await;
    let (_, b_codes) = enrol(&s, &b, 9).await;
    let pending = totp(&a, 1, 0);
    assert_eq!(s.factors.begin_enrolment(&pending).await.ok(), Some(true));
    let c = codes("a", 4);
    let r = s.factors.confirm_enrolment(a.id, 55_555, &c, at(7)).await;
    assert!(r.is_ok(), "{r:?}");
    let got = s.factors.factor(a.id).await.unwrap();
    assert_eq!(
        got,
        TotpFactor {
            confirmed_at: Some(at(7)),
            last_used_step: Some(55_555),
            ..pending
        }
    );
    assert!(got.is_confirmed());
    assert_eq!(codes_left(&s, &a).await, 4);
    for code in &c {
        assert!(use_code(&s, &a, code).await, "each given code works");
    }
    assert!(
        !use_code(&s, &a, &TokenHash::of("a-9")).await,
        "no other code"
    );
    assert_eq!(codes_left(&s, &b).await, 3, "another user's codes stay");
    assert!(!use_code(&s, &a, &b_codes[0]).await);
}

/// `confirm_enrolment` without a pending factor (none, or confirmed already) is `NotFound`
/// and writes nothing: neither the factor nor the codes change.
pub async fn confirm_enrolment_needs_a_pending_factor(s: Stores) {
    let (a, b) = (user("alice"), user("bob"));
    insert(&s, &a).await;
    insert(&s, &b).await;
    not_found(
        s.factors
            .confirm_enrolment(a.id, 5, &codes("new", 3), at(9))
            .await,
        "no factor",
    );
    assert_eq!(codes_left(&s, &a).await, 0, "no code was written");
    let (confirmed, old) = enrol(&s, &b, 1).await;
    let new = codes("new", 5);
    not_found(
        s.factors
            .confirm_enrolment(b.id, STEP + 5, &new, at(9))
            .await,
        "confirmed already",
    );
    assert_eq!(s.factors.factor(b.id).await.ok(), Some(confirmed));
    assert_eq!(codes_left(&s, &b).await, 3, "the old codes stay");
    assert!(
        !use_code(&s, &b, &new[0]).await,
        "the new codes were not written"
    );
    assert!(use_code(&s, &b, &old[0]).await);
    not_found(
        s.factors
            .confirm_enrolment(UserId::new(), 5, &new, at(9))
            .await,
        "an unknown user",
    );
}

/// `use_step` records a step later than the last used one and says so; the same step or an
/// earlier one is refused (a replay) and changes nothing. Each user has their own steps.
pub async fn use_step_moves_forward_only(s: Stores) {
    let (a, b) = (user("alice"), user("bob"));
    insert(&s, &a).await;
    insert(&s, &b).await;
    enrol(&s, &a, 1).await;
    let (b_factor, _) = enrol(&s, &b, 2).await;
    let use_step = |step: i64| {
        let factors = Arc::clone(&s.factors);
        async move { factors.use_step(a.id, step).await.unwrap() }
    };
    assert!(!use_step(STEP).await, "the step of the confirmation");
    assert!(!use_step(STEP - 1).await, "an earlier step");
    assert!(use_step(STEP + 1).await, "the next step");
    assert!(!use_step(STEP + 1).await, "the same step again");
    assert!(use_step(STEP + 50).await, "a later step");
    assert!(!use_step(STEP + 20).await, "between the two");
    let got = s.factors.factor(a.id).await.unwrap();
    assert_eq!(got.last_used_step, Some(STEP + 50));
    assert_eq!(got.confirmed_at, Some(at(1)), "only the step moves");
    assert_eq!(
        s.factors.factor(b.id).await.ok(),
        Some(b_factor),
        "per user"
    );
    assert_eq!(s.factors.use_step(b.id, STEP + 1).await.ok(), Some(true));
}

/// `use_step` needs a confirmed factor: without one, or with a pending one, it is
/// `NotFound` and the pending factor is left as it is.
pub async fn use_step_needs_a_confirmed_factor(s: Stores) {
    let u = user("alice");
    insert(&s, &u).await;
    not_found(s.factors.use_step(u.id, 5).await, "no factor");
    let pending = totp(&u, 1, 0);
    assert_eq!(s.factors.begin_enrolment(&pending).await.ok(), Some(true));
    not_found(s.factors.use_step(u.id, 5).await, "a pending factor");
    assert_eq!(s.factors.factor(u.id).await.ok(), Some(pending));
    not_found(
        s.factors.use_step(UserId::new(), 5).await,
        "an unknown user",
    );
}

/// Of concurrent `use_step` calls with one step, exactly one gets `true`, round after round:
/// a code is good once.
pub async fn concurrent_use_of_one_step_succeeds_once(s: Stores) {
    let u = user("alice");
    insert(&s, &u).await;
    enrol(&s, &u, 1).await;
    for step in STEP + 1..=STEP + 3 {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let factors = Arc::clone(&s.factors);
                tokio::spawn(async move { factors.use_step(u.id, step).await })
            })
            .collect();
        let mut won = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(true) => won += 1,
                Ok(false) => {}
                Err(e) => panic!("unexpected: {e:?}"),
            }
        }
        assert_eq!(won, 1, "step {step}");
        assert_eq!(
            s.factors
                .factor(u.id)
                .await
                .ok()
                .and_then(|f| f.last_used_step),
            Some(step)
        );
    }
}

/// `replace_recovery_codes` replaces every code of the user, used or not, with the given
/// ones; it needs a confirmed factor (`NotFound` otherwise, writing nothing); other users'
/// codes stay.
pub async fn replace_recovery_codes_replaces_every_code(s: Stores) {
    let (a, b, p) = (user("alice"), user("bob"), user("pending"));
    for u in [&a, &b, &p] {
        insert(&s, u).await;
    }
    let (_, old) = enrol(&s, &a, 1).await;
    let (_, b_codes) = enrol(&s, &b, 2).await;
    assert!(use_code(&s, &a, &old[0]).await);
    let new = codes("fresh", 5);
    let r = s.factors.replace_recovery_codes(a.id, &new).await;
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(codes_left(&s, &a).await, 5);
    for code in &old {
        assert!(!use_code(&s, &a, code).await, "the old codes are gone");
    }
    assert!(use_code(&s, &a, &new[4]).await, "the new codes work");
    assert_eq!(codes_left(&s, &a).await, 4);
    assert_eq!(codes_left(&s, &b).await, 3, "another user's codes stay");
    assert!(use_code(&s, &b, &b_codes[0]).await);
    assert!(
        s.factors.replace_recovery_codes(a.id, &[]).await.is_ok(),
        "no codes at all"
    );
    assert_eq!(codes_left(&s, &a).await, 0);
    let twice = [new[0], new[0], new[1]];
    let r = s.factors.replace_recovery_codes(a.id, &twice).await;
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(codes_left(&s, &a).await, 2, "the codes are a set");
    assert!(use_code(&s, &a, &new[0]).await);
    assert!(
        !use_code(&s, &a, &new[0]).await,
        "a code given twice works once"
    );

    assert_eq!(
        s.factors.begin_enrolment(&totp(&p, 3, 0)).await.ok(),
        Some(true)
    );
    not_found(
        s.factors.replace_recovery_codes(p.id, &new).await,
        "a pending factor",
    );
    assert_eq!(codes_left(&s, &p).await, 0, "nothing was written");
    not_found(
        s.factors.replace_recovery_codes(UserId::new(), &new).await,
        "an unknown user",
    );
}

/// A recovery code works once, for its own user only; an unknown code does not work.
pub async fn recovery_codes_are_used_once_by_their_user(s: Stores) {
    let (a, b) = (user("alice"), user("bob"));
    insert(&s, &a).await;
    insert(&s, &b).await;
    let (_, a_codes) = enrol(&s, &a, 1).await;
    let (_, b_codes) = enrol(&s, &b, 2).await;
    assert_eq!(codes_left(&s, &a).await, 3);
    assert!(use_code(&s, &a, &a_codes[1]).await, "first use");
    assert!(!use_code(&s, &a, &a_codes[1]).await, "second use");
    assert_eq!(codes_left(&s, &a).await, 2);
    assert!(!use_code(&s, &a, &b_codes[0]).await, "another user's code");
    assert!(!use_code(&s, &b, &a_codes[0]).await, "another user's code");
    assert!(!use_code(&s, &a, &TokenHash::of("guess")).await, "unknown");
    assert_eq!(codes_left(&s, &b).await, 3, "untouched");
    assert_eq!(codes_left(&s, &a).await, 2, "untouched");
    assert!(use_code(&s, &b, &b_codes[0]).await);
    assert!(use_code(&s, &a, &a_codes[0]).await);
    assert!(use_code(&s, &a, &a_codes[2]).await);
    assert_eq!(codes_left(&s, &a).await, 0);
    assert_eq!(codes_left(&s, &b).await, 2);
}

/// Of concurrent uses of one recovery code, exactly one gets `true`.
pub async fn concurrent_use_of_one_recovery_code_succeeds_once(s: Stores) {
    let u = user("alice");
    insert(&s, &u).await;
    let (_, c) = enrol(&s, &u, 1).await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let factors = Arc::clone(&s.factors);
            let code = c[0];
            tokio::spawn(async move { factors.use_recovery_code(u.id, &code).await })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(true) => won += 1,
            Ok(false) => {}
            Err(e) => panic!("unexpected: {e:?}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(codes_left(&s, &u).await, 2);
}

/// `remove` deletes the factor (confirmed or pending), the recovery codes and the trusted
/// devices of its user, says whether there was a factor, and leaves other users' alone; a
/// new enrolment starts from nothing.
pub async fn remove_deletes_the_factor_codes_and_trusted_devices(s: Stores) {
    let (a, b, p) = (user("alice"), user("bob"), user("pending"));
    for u in [&a, &b, &p] {
        insert(&s, u).await;
    }
    let (_, a_codes) = enrol(&s, &a, 1).await;
    let (b_factor, b_codes) = enrol(&s, &b, 2).await;
    // One browser both use, and one each.
    for (device, u) in [
        ("shared", &a),
        ("shared", &b),
        ("a-only", &a),
        ("b-only", &b),
    ] {
        trust(&s, device, u, 100).await;
    }
    assert_eq!(s.factors.remove(a.id).await.ok(), Some(true));
    not_found(s.factors.factor(a.id).await, "the factor");
    assert_eq!(codes_left(&s, &a).await, 0, "the codes");
    assert!(!use_code(&s, &a, &a_codes[0]).await);
    assert!(!trusted(&s, "shared", &a, 1).await, "the trusted devices");
    assert!(!trusted(&s, "a-only", &a, 1).await);
    assert_eq!(s.factors.remove(a.id).await.ok(), Some(false), "twice");

    assert_eq!(s.factors.factor(b.id).await.ok(), Some(b_factor), "others");
    assert_eq!(codes_left(&s, &b).await, 3);
    assert!(trusted(&s, "shared", &b, 1).await);
    assert!(trusted(&s, "b-only", &b, 1).await);
    assert!(use_code(&s, &b, &b_codes[0]).await);

    let pending = totp(&p, 3, 0);
    assert_eq!(s.factors.begin_enrolment(&pending).await.ok(), Some(true));
    assert_eq!(s.factors.remove(p.id).await.ok(), Some(true), "pending");
    not_found(s.factors.factor(p.id).await, "the pending factor");

    // Enrolling again: the old codes do not come back.
    enrol(&s, &a, 4).await;
    assert_eq!(codes_left(&s, &a).await, 3);
}

/// A device is trusted for one user until its mark's time, strictly (`until > now`);
/// trusting it again replaces the mark, sooner or later; marks need no factor.
pub async fn trusted_devices_are_per_user_until_their_time(s: Stores) {
    let (a, b) = (user("alice"), user("bob"));
    insert(&s, &a).await;
    insert(&s, &b).await;
    assert!(!trusted(&s, "d", &a, 0).await, "no mark");
    trust(&s, "d", &a, 100).await;
    assert!(trusted(&s, "d", &a, 99).await);
    let just_before = s
        .factors
        .is_trusted(
            &TokenHash::of("d"),
            a.id,
            at(100) - time::Duration::microseconds(1),
        )
        .await;
    assert_eq!(just_before.ok(), Some(true), "just before its time");
    assert!(!trusted(&s, "d", &a, 100).await, "at its time");
    assert!(!trusted(&s, "d", &a, 101).await, "after");
    assert!(!trusted(&s, "d", &b, 50).await, "for another user");
    assert!(!trusted(&s, "e", &a, 50).await, "another device");

    trust(&s, "d", &b, 300).await;
    assert!(trusted(&s, "d", &b, 200).await, "each user their own mark");
    assert!(!trusted(&s, "d", &a, 200).await);

    trust(&s, "d", &a, 250).await;
    assert!(trusted(&s, "d", &a, 200).await, "renewed");
    trust(&s, "d", &a, 50).await;
    assert!(!trusted(&s, "d", &a, 60).await, "replaced by a sooner mark");
    assert!(trusted(&s, "d", &a, 49).await);
    assert!(
        trusted(&s, "d", &b, 200).await,
        "the other user's mark stays"
    );
}

/// Challenges keep every field (with a device or without, either purpose); `find_challenge`
/// returns one again and again while `now < expires_at`, and `NotFound` at or after its
/// expiry or for an unknown hash.
pub async fn challenges_keep_every_field_and_are_found_until_expiry(s: Stores) {
    let (a, b) = (user("alice"), user("bob"));
    insert(&s, &a).await;
    insert(&s, &b).await;
    let with_device = SignInChallenge {
        created_at: at(3),
        ..challenge(&a, ChallengePurpose::SecondFactor, Some("device"), 300)
    };
    let enrolment = challenge(&b, ChallengePurpose::Enrolment, None, 600);
    create_challenge(&s, "c1", &with_device).await;
    create_challenge(&s, "c2", &enrolment).await;
    for _ in 0..2 {
        assert_eq!(
            find_challenge(&s, "c1", at(10)).await.ok(),
            Some(with_device.clone()),
            "found, and found again"
        );
    }
    assert_eq!(
        find_challenge(&s, "c2", at(10)).await.ok(),
        Some(enrolment.clone())
    );
    assert_eq!(
        find_challenge(&s, "c1", at(300) - time::Duration::microseconds(1))
            .await
            .ok(),
        Some(with_device),
        "just before expiry"
    );
    not_found(find_challenge(&s, "c1", at(300)).await, "at expiry");
    not_found(find_challenge(&s, "c1", at(301)).await, "after expiry");
    not_found(find_challenge(&s, "c3", at(10)).await, "unknown");
    assert_eq!(
        consume_challenge(&s, "c2", at(10)).await.ok(),
        Some(enrolment),
        "finding spent nothing"
    );
}

/// `consume_challenge` returns a working challenge once, then `NotFound` (and
/// `find_challenge` too); an expired one is `NotFound` and left for the purge.
pub async fn challenges_are_consumed_once(s: Stores) {
    let u = user("alice");
    insert(&s, &u).await;
    let c = challenge(&u, ChallengePurpose::SecondFactor, Some("device"), 300);
    create_challenge(&s, "c", &c).await;
    create_challenge(&s, "late", &c).await;
    not_found(consume_challenge(&s, "other", at(1)).await, "unknown");
    assert_eq!(consume_challenge(&s, "c", at(1)).await.ok(), Some(c));
    not_found(consume_challenge(&s, "c", at(2)).await, "used");
    not_found(find_challenge(&s, "c", at(2)).await, "used, for find");
    not_found(consume_challenge(&s, "late", at(300)).await, "at expiry");
    not_found(consume_challenge(&s, "late", at(301)).await, "after expiry");
    assert_eq!(
        s.factors.purge(at(301), at(0)).await.ok(),
        Some(1),
        "the expired one was left for the purge; the used one was deleted"
    );
}

/// Of concurrent consumes of one challenge, exactly one gets it.
pub async fn concurrent_consume_of_one_challenge_succeeds_once(s: Stores) {
    let u = user("alice");
    insert(&s, &u).await;
    let c = challenge(&u, ChallengePurpose::SecondFactor, None, 300);
    create_challenge(&s, "once", &c).await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let factors = Arc::clone(&s.factors);
            tokio::spawn(async move {
                factors
                    .consume_challenge(&TokenHash::of("once"), at(1))
                    .await
            })
        })
        .collect();
    let mut won = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(got) => won.push(got),
            Err(RepoError::NotFound) => {}
            Err(e) => panic!("unexpected: {e:?}"),
        }
    }
    assert_eq!(won, [c]);
}

/// `purge` deletes challenges and trusted-device marks that expired before `expired_before`
/// (strictly) and pending enrolments started before `pending_before` (strictly), never a
/// confirmed factor, and counts the rows.
pub async fn factors_purge_deletes_what_expired_and_abandoned_enrolments(s: Stores) {
    let (a, b, old, new) = (user("alice"), user("bob"), user("old"), user("new"));
    for u in [&a, &b, &old, &new] {
        insert(&s, u).await;
    }
    let (confirmed, _) = enrol(&s, &a, 1).await; // started at 0
    let c100 = challenge(&a, ChallengePurpose::SecondFactor, None, 100);
    let c200 = challenge(&b, ChallengePurpose::Enrolment, Some("device"), 200);
    create_challenge(&s, "c100", &c100).await;
    create_challenge(&s, "c200", &c200).await;
    trust(&s, "d", &a, 100).await;
    trust(&s, "d", &b, 200).await;
    let old_pending = totp(&old, 2, 0);
    let new_pending = totp(&new, 3, 50);
    for f in [&old_pending, &new_pending] {
        assert_eq!(s.factors.begin_enrolment(f).await.ok(), Some(true));
    }

    let purge = |expired: i64, pending: i64| {
        let factors = Arc::clone(&s.factors);
        async move { factors.purge(at(expired), at(pending)).await.unwrap() }
    };
    assert_eq!(purge(100, 0).await, 0, "nothing before the cut-offs");
    assert_eq!(purge(101, 1).await, 3, "c100, a's mark, old's enrolment");
    assert_eq!(purge(101, 1).await, 0, "gone");
    not_found(s.factors.factor(old.id).await, "the abandoned enrolment");
    assert_eq!(
        s.factors.factor(new.id).await.ok(),
        Some(new_pending.clone()),
        "a newer enrolment"
    );
    assert_eq!(
        find_challenge(&s, "c200", at(150)).await.ok(),
        Some(c200),
        "a later challenge"
    );
    assert!(trusted(&s, "d", &b, 150).await, "a later mark");
    assert_eq!(
        s.factors.factor(a.id).await.ok(),
        Some(confirmed.clone()),
        "a confirmed factor started before the cut-off"
    );

    assert_eq!(purge(201, 51).await, 3, "c200, b's mark, new's enrolment");
    assert_eq!(purge_all(&s).await, 0, "nothing else can go");
    assert_eq!(
        s.factors.factor(a.id).await.ok(),
        Some(confirmed),
        "confirmed factors are never purged"
    );
    assert_eq!(codes_left(&s, &a).await, 3, "nor their codes");
}

/// Deleting a user deletes their factor, recovery codes, trusted-device marks and sign-in
/// challenges; other users keep theirs.
pub async fn second_factors_go_with_their_user(s: Stores) {
    let (a, b, p) = (user("alice"), user("bob"), user("pending"));
    for u in [&a, &b, &p] {
        insert(&s, u).await;
    }
    let (_, a_codes) = enrol(&s, &a, 1).await;
    let (b_factor, _) = enrol(&s, &b, 2).await;
    assert_eq!(
        s.factors.begin_enrolment(&totp(&p, 3, 0)).await.ok(),
        Some(true)
    );
    trust(&s, "shared", &a, 100).await;
    trust(&s, "shared", &b, 100).await;
    let ca = challenge(&a, ChallengePurpose::SecondFactor, Some("shared"), 100);
    let cb = challenge(&b, ChallengePurpose::SecondFactor, Some("shared"), 100);
    create_challenge(&s, "a", &ca).await;
    create_challenge(&s, "b", &cb).await;
    create_challenge(
        &s,
        "p",
        &challenge(&p, ChallengePurpose::Enrolment, None, 100),
    )
    .await;

    s.users.delete(a.id).await.unwrap();
    s.users.delete(p.id).await.unwrap();
    not_found(s.factors.factor(a.id).await, "the factor");
    not_found(s.factors.factor(p.id).await, "the pending factor");
    assert_eq!(codes_left(&s, &a).await, 0, "the codes");
    assert!(!use_code(&s, &a, &a_codes[0]).await);
    assert!(!trusted(&s, "shared", &a, 1).await, "the trusted devices");
    not_found(find_challenge(&s, "a", at(1)).await, "the challenges");
    not_found(find_challenge(&s, "p", at(1)).await, "the challenges");

    assert_eq!(s.factors.factor(b.id).await.ok(), Some(b_factor), "others");
    assert_eq!(codes_left(&s, &b).await, 3);
    assert!(trusted(&s, "shared", &b, 1).await);
    assert_eq!(find_challenge(&s, "b", at(1)).await.ok(), Some(cb));
    assert_eq!(
        purge_all(&s).await,
        2,
        "only bob's challenge and mark were left to purge"
    );
}

/// The documented promises of a [`PasswordHasher`], for any hasher (not in
/// [`conformance_tests!`](crate::conformance_tests): a hasher is no store; its tests call
/// this). A new password's hash verifies as a match that needs no rehash; any other
/// password is a mismatch; every hash has a fresh salt; a stored hash that is malformed, of
/// an unknown scheme, or asks for more work than the ceiling is `Refused`. (`Overloaded`
/// needs a hasher with a bounded queue: `Argon2Hasher`'s own tests show it.)
pub async fn hasher_keeps_its_promises(h: &dyn PasswordHasher) {
    use secrecy::SecretString;
    let pw = "tangerine-sky-42";
    let password = crate::domain::Password::parse(
        SecretString::from(pw),
        &crate::domain::PasswordPolicy::default(),
        None,
        None,
    )
    .unwrap();
    let stored = h.hash(&password).await.unwrap();
    assert_eq!(
        h.verify(&SecretString::from(pw), &stored).await.ok(),
        Some(Verification::Match {
            needs_rehash: false
        }),
        "a fresh hash is current"
    );
    for wrong in [
        "tangerine-sky-43",
        "",
        "TANGERINE-SKY-42",
        "tangerine-sky-42 ",
    ] {
        assert_eq!(
            h.verify(&SecretString::from(wrong), &stored).await.ok(),
            Some(Verification::Mismatch),
            "another password"
        );
    }
    let again = h.hash(&password).await.unwrap();
    assert_ne!(stored, again, "every hash has a fresh salt");
    assert!(matches!(
        h.verify(&SecretString::from(pw), &again).await,
        Ok(Verification::Match { .. })
    ));

    // The same hash asking for 4 GiB: above any ceiling.
    let mut parts: Vec<&str> = stored.as_str().split('$').collect();
    assert!(
        parts.len() == 6 && parts[3].starts_with("m="),
        "a PHC string"
    );
    parts[3] = "m=4194304,t=1,p=1";
    let greedy = parts.join("$");
    for bad in [
        greedy.as_str(),
        "",
        "plaintext",
        "$argon2id$v=19$m=8,t=1,p=1$bm9zYWx0",
        "$scrypt$ln=15,r=8,p=1$c2FsdA$aGFzaA",
        "$2b$xx$abc",
    ] {
        let got = h
            .verify(&SecretString::from(pw), &PasswordHash::new(bad))
            .await;
        assert!(
            matches!(got, Err(HashError::Refused(_))),
            "a stored hash like {:.20}: {got:?}",
            bad
        );
    }
}

/// The documented promise of a [`Clock`], for any clock (its tests call this): the time is
/// in UTC.
pub fn clock_tells_utc(c: &dyn Clock) {
    for _ in 0..3 {
        let now = c.now();
        assert!(now.offset().is_utc(), "{now}");
    }
}
