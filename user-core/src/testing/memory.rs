//! In-memory fakes of the storage ports. They pass the same conformance suite as the real
//! adapters, so tests of the services can trust them.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use time::OffsetDateTime;
use uuid::Uuid;

use crate::Storage;
use crate::domain::{
    AuditEvent, AuditPage, AuditQuery, DeviceToken, Email, LoginFailures, NewSession, NewUser,
    OneTimeToken, PasswordHash, ProfileChanges, Role, Rotation, Session, SessionId, SessionKind,
    SignInChallenge, ThrottleKey, TokenHash, TokenPurpose, TotpFactor, User, UserId, UserPage,
    UserQuery, UserStatus, Username,
};
use crate::error::{RepoError, UniqueField};
use crate::ports::{
    AuditLog, ClaimedMail, DeadLetter, DeviceTokenStore, Identifier, Inserted, LoginFailureStore,
    Mail, MailOutbox, OneTimeTokenStore, SecondFactorStore, SessionStore, UserRepository,
};

struct Secret {
    session: SessionId,
    spent: bool,
}

#[derive(Default)]
struct State {
    users: HashMap<UserId, (User, PasswordHash)>,
    sessions: HashMap<SessionId, Session>,
    secrets: HashMap<[u8; 32], Secret>,
    failures: HashMap<ThrottleKey, LoginFailures>,
    devices: HashMap<[u8; 32], DeviceToken>,
    tokens: HashMap<[u8; 32], OneTimeToken>,
    outbox: HashMap<Uuid, Queued>,
    dead_letters: Vec<DeadLetter>,
    audit: Vec<AuditEvent>,
    factors: HashMap<UserId, TotpFactor>,
    recovery_codes: HashMap<UserId, Vec<TokenHash>>,
    trusted: HashMap<([u8; 32], UserId), OffsetDateTime>,
    challenges: HashMap<[u8; 32], SignInChallenge>,
    /// A username whose insert by `insert_many` fails as the store would.
    fail_inserts_of: Option<Username>,
}

/// A mail in the outbox.
struct Queued {
    mail: Mail,
    attempts: u32,
    enqueued_at: OffsetDateTime,
    next_attempt_at: OffsetDateTime,
    /// The claim holding it and when its lease ends.
    claim: Option<(Uuid, OffsetDateTime)>,
    last_error: Option<String>,
}

impl Queued {
    fn due(&self, now: OffsetDateTime) -> bool {
        self.next_attempt_at <= now && self.claim.is_none_or(|(_, until)| until <= now)
    }

    fn held_by(&self, claim: Uuid) -> bool {
        self.claim.is_some_and(|(c, _)| c == claim)
    }
}

type Shared = Arc<Mutex<State>>;

fn lock(state: &Shared) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// In-memory [`UserRepository`].
#[derive(Clone, Default)]
pub struct InMemoryUserRepository(Shared);

/// In-memory [`SessionStore`], sharing state with its [`InMemoryUserRepository`].
#[derive(Clone, Default)]
pub struct InMemorySessionStore(Shared);

/// In-memory [`LoginFailureStore`].
#[derive(Clone, Default)]
pub struct InMemoryLoginFailureStore(Shared);

/// In-memory [`DeviceTokenStore`], sharing state with its [`InMemoryUserRepository`].
#[derive(Clone, Default)]
pub struct InMemoryDeviceTokenStore(Shared);

/// In-memory [`OneTimeTokenStore`], sharing state with its [`InMemoryUserRepository`] and
/// [`InMemoryMailOutbox`] (issuing a token queues its mail there).
#[derive(Clone, Default)]
pub struct InMemoryOneTimeTokenStore(Shared);

/// In-memory [`MailOutbox`]. `InMemoryMailOutbox::default()` is an outbox of its own; the one
/// from [`in_memory`] receives the mail of its token store.
#[derive(Clone, Default)]
pub struct InMemoryMailOutbox(Shared);

/// In-memory [`AuditLog`]. `InMemoryAuditLog::default()` is a log of its own.
#[derive(Clone, Default)]
pub struct InMemoryAuditLog(Shared);

/// In-memory [`SecondFactorStore`], sharing state with its [`InMemoryUserRepository`].
#[derive(Clone, Default)]
pub struct InMemorySecondFactorStore(Shared);

/// The eight storage ports over one shared state, as one database would be.
pub fn in_memory() -> Storage {
    over(Shared::default())
}

/// The eight storage ports over `state`.
fn over(state: Shared) -> Storage {
    Storage {
        users: Arc::new(InMemoryUserRepository(Arc::clone(&state))),
        sessions: Arc::new(InMemorySessionStore(Arc::clone(&state))),
        login_failures: Arc::new(InMemoryLoginFailureStore(Arc::clone(&state))),
        devices: Arc::new(InMemoryDeviceTokenStore(Arc::clone(&state))),
        tokens: Arc::new(InMemoryOneTimeTokenStore(Arc::clone(&state))),
        outbox: Arc::new(InMemoryMailOutbox(Arc::clone(&state))),
        audit: Arc::new(InMemoryAuditLog(Arc::clone(&state))),
        factors: Arc::new(InMemorySecondFactorStore(state)),
    }
}

/// The eight storage ports over one shared state, like [`in_memory`], except that
/// `insert_many` fails (`RepoError::Unavailable`, writing nothing of its batch) when it
/// reaches a user named `username`: the failing store that
/// [`insert_many_writes_nothing_when_the_store_fails`](crate::testing::conformance::insert_many_writes_nothing_when_the_store_fails)
/// needs.
pub fn in_memory_failing_inserts_of(username: Username) -> Storage {
    let state = Shared::default();
    lock(&state).fail_inserts_of = Some(username);
    over(state)
}

impl State {
    /// `session` and its user, as a join finds them: a session whose user is gone (which a
    /// database's cascade never leaves behind) is not found.
    fn with_user(&self, session: &Session) -> Result<(Session, User), RepoError> {
        let (user, _) = self
            .users
            .get(&session.user_id)
            .ok_or(RepoError::NotFound)?;
        Ok((session.clone(), user.clone()))
    }

    fn user(&mut self, id: UserId) -> Result<&mut User, RepoError> {
        self.users
            .get_mut(&id)
            .map(|(u, _)| u)
            .ok_or(RepoError::NotFound)
    }

    fn find(&self, pred: impl Fn(&User) -> bool) -> Option<&(User, PasswordHash)> {
        self.users.values().find(|(u, _)| pred(u))
    }

    fn taken(
        &self,
        except: Option<UserId>,
        username: Option<&Username>,
        email: Option<&Email>,
    ) -> Result<(), RepoError> {
        let others = || self.users.values().filter(|(u, _)| Some(u.id) != except);
        if username.is_some_and(|n| others().any(|(u, _)| &u.username == n)) {
            return Err(RepoError::Conflict {
                field: UniqueField::Username,
            });
        }
        if email.is_some_and(|e| others().any(|(u, _)| &u.email == e)) {
            return Err(RepoError::Conflict {
                field: UniqueField::Email,
            });
        }
        Ok(())
    }

    /// Refuses a change that leaves `id` no longer an active admin when it is the last one.
    fn guard_last_admin(&self, id: UserId, stays_active_admin: bool) -> Result<(), RepoError> {
        let Some((user, _)) = self.users.get(&id) else {
            return Err(RepoError::NotFound);
        };
        let active_admins = self
            .users
            .values()
            .filter(|(u, _)| u.is_active_admin())
            .count();
        if user.is_active_admin() && !stays_active_admin && active_admins <= 1 {
            return Err(RepoError::LastActiveAdmin);
        }
        Ok(())
    }
}

/// Whether `user` matches the lowercase search text `s` (see [`UserQuery::search`]).
fn matches_search(user: &User, s: &str) -> bool {
    if s.chars().count() < UserQuery::SUBSTRING_MIN_CHARS {
        user.username.as_str().starts_with(s)
    } else {
        user.username.as_str().contains(s)
            || user.email.as_str().contains(s)
            || user
                .display_name
                .as_ref()
                .is_some_and(|d| d.as_str().to_lowercase().contains(s))
    }
}

#[async_trait::async_trait]
impl UserRepository for InMemoryUserRepository {
    async fn insert(&self, new: &NewUser) -> Result<(), RepoError> {
        let mut s = lock(&self.0);
        s.taken(None, Some(&new.user.username), Some(&new.user.email))?;
        if s.users.contains_key(&new.user.id) {
            return Err(RepoError::unavailable("duplicate user id"));
        }
        s.users
            .insert(new.user.id, (new.user.clone(), new.password_hash.clone()));
        Ok(())
    }

    async fn insert_many(&self, batch: &[NewUser]) -> Result<Vec<Inserted>, RepoError> {
        let mut s = lock(&self.0);
        // The taken names and addresses, once per batch rather than a scan per row.
        let mut names: HashSet<Username> =
            s.users.values().map(|(u, _)| u.username.clone()).collect();
        let mut emails: HashSet<Email> = s.users.values().map(|(u, _)| u.email.clone()).collect();
        let mut written = Vec::new();
        let mut outcomes = Vec::with_capacity(batch.len());
        for new in batch {
            let u = &new.user;
            if s.fail_inserts_of.as_ref() == Some(&u.username) {
                // As a database rolls its transaction back.
                for id in written {
                    s.users.remove(&id);
                }
                return Err(RepoError::unavailable("the store failed"));
            }
            let outcome = match s.users.entry(u.id) {
                Entry::Occupied(_) => Inserted::AlreadyPresent,
                Entry::Vacant(_) if names.contains(&u.username) => {
                    Inserted::Conflict(UniqueField::Username)
                }
                Entry::Vacant(_) if emails.contains(&u.email) => {
                    Inserted::Conflict(UniqueField::Email)
                }
                Entry::Vacant(slot) => {
                    names.insert(u.username.clone());
                    emails.insert(u.email.clone());
                    slot.insert((u.clone(), new.password_hash.clone()));
                    written.push(u.id);
                    Inserted::Inserted
                }
            };
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    async fn export_page(
        &self,
        after: Option<Username>,
        limit: u32,
    ) -> Result<Vec<(User, PasswordHash)>, RepoError> {
        let s = lock(&self.0);
        let mut page: Vec<(User, PasswordHash)> = s
            .users
            .values()
            .filter(|(u, _)| after.as_ref().is_none_or(|after| &u.username > after))
            .cloned()
            .collect();
        page.sort_by(|(a, _), (b, _)| a.username.cmp(&b.username));
        page.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(page)
    }

    async fn get(&self, id: UserId) -> Result<User, RepoError> {
        lock(&self.0).user(id).cloned()
    }

    async fn get_by_username(&self, username: &Username) -> Result<User, RepoError> {
        let s = lock(&self.0);
        s.find(|u| &u.username == username)
            .map(|(u, _)| u.clone())
            .ok_or(RepoError::NotFound)
    }

    async fn get_by_email(&self, email: &Email) -> Result<User, RepoError> {
        let s = lock(&self.0);
        s.find(|u| &u.email == email)
            .map(|(u, _)| u.clone())
            .ok_or(RepoError::NotFound)
    }

    async fn credentials(
        &self,
        identifier: &Identifier,
    ) -> Result<(User, PasswordHash), RepoError> {
        let s = lock(&self.0);
        let found = match identifier {
            Identifier::Username(name) => s.find(|u| &u.username == name),
            Identifier::Email(email) => s.find(|u| &u.email == email),
        };
        found.cloned().ok_or(RepoError::NotFound)
    }

    async fn password_hash(&self, id: UserId) -> Result<PasswordHash, RepoError> {
        let s = lock(&self.0);
        s.users
            .get(&id)
            .map(|(_, h)| h.clone())
            .ok_or(RepoError::NotFound)
    }

    async fn update_profile(
        &self,
        id: UserId,
        changes: &ProfileChanges,
        now: OffsetDateTime,
    ) -> Result<User, RepoError> {
        let mut s = lock(&self.0);
        s.user(id)?;
        s.taken(Some(id), changes.username.as_ref(), changes.email.as_ref())?;
        let user = s.user(id)?;
        if let Some(username) = &changes.username {
            user.username = username.clone();
        }
        if let Some(email) = &changes.email
            && email != &user.email
        {
            user.email = email.clone();
            user.email_verified_at = None;
        }
        if let Some(display_name) = &changes.display_name {
            user.display_name = display_name.clone();
        }
        user.updated_at = now;
        Ok(user.clone())
    }

    async fn mark_email_verified(
        &self,
        id: UserId,
        email: &Email,
        now: OffsetDateTime,
    ) -> Result<User, RepoError> {
        let mut s = lock(&self.0);
        let user = s.user(id)?;
        if &user.email != email {
            return Err(RepoError::NotFound);
        }
        user.email_verified_at = Some(now);
        user.updated_at = now;
        Ok(user.clone())
    }

    async fn update_password_hash(
        &self,
        id: UserId,
        hash: &PasswordHash,
        now: OffsetDateTime,
    ) -> Result<(), RepoError> {
        let mut s = lock(&self.0);
        let (user, stored) = s.users.get_mut(&id).ok_or(RepoError::NotFound)?;
        *stored = hash.clone();
        user.updated_at = now;
        Ok(())
    }

    async fn set_role(
        &self,
        id: UserId,
        role: Role,
        now: OffsetDateTime,
    ) -> Result<User, RepoError> {
        let mut s = lock(&self.0);
        s.guard_last_admin(id, role == Role::Admin)?;
        let user = s.user(id)?;
        user.role = role;
        user.updated_at = now;
        Ok(user.clone())
    }

    async fn set_status(
        &self,
        id: UserId,
        status: UserStatus,
        now: OffsetDateTime,
    ) -> Result<User, RepoError> {
        let mut s = lock(&self.0);
        s.guard_last_admin(id, status == UserStatus::Active)?;
        let user = s.user(id)?;
        user.status = status;
        user.updated_at = now;
        Ok(user.clone())
    }

    async fn delete(&self, id: UserId) -> Result<(), RepoError> {
        let mut s = lock(&self.0);
        s.guard_last_admin(id, false)?;
        s.users.remove(&id);
        let gone: Vec<SessionId> = s
            .sessions
            .values()
            .filter(|x| x.user_id == id)
            .map(|x| x.id)
            .collect();
        s.sessions.retain(|_, x| x.user_id != id);
        s.secrets
            .retain(|_, secret| !gone.contains(&secret.session));
        s.devices.retain(|_, d| d.user_id != id);
        s.tokens.retain(|_, t| t.user_id != id);
        s.factors.remove(&id);
        s.recovery_codes.remove(&id);
        s.trusted.retain(|(_, user), _| *user != id);
        s.challenges.retain(|_, c| c.user_id != id);
        Ok(())
    }

    async fn list(&self, query: &UserQuery) -> Result<UserPage, RepoError> {
        let s = lock(&self.0);
        let mut users: Vec<User> = s
            .users
            .values()
            .map(|(u, _)| u)
            .filter(|u| query.after.as_ref().is_none_or(|a| &u.username > a))
            .filter(|u| {
                query
                    .search
                    .as_deref()
                    .is_none_or(|s| matches_search(u, &s.to_lowercase()))
            })
            .filter(|u| query.role.is_none_or(|r| u.role == r))
            .filter(|u| query.status.is_none_or(|st| u.status == st))
            .cloned()
            .collect();
        users.sort_by(|a, b| a.username.cmp(&b.username));
        let limit = query.limit as usize;
        let more = users.len() > limit;
        users.truncate(limit);
        let next = more
            .then(|| users.last().map(|u| u.username.clone()))
            .flatten();
        Ok(UserPage { users, next })
    }

    async fn count_active_admins(&self) -> Result<u64, RepoError> {
        let s = lock(&self.0);
        Ok(s.users
            .values()
            .filter(|(u, _)| u.is_active_admin())
            .count() as u64)
    }
}

#[async_trait::async_trait]
impl SessionStore for InMemorySessionStore {
    async fn create(&self, new: &NewSession) -> Result<(), RepoError> {
        let mut s = lock(&self.0);
        if !s.users.contains_key(&new.session.user_id) {
            return Err(RepoError::NotFound);
        }
        s.sessions.insert(new.session.id, new.session.clone());
        s.secrets.insert(
            *new.secret_hash.as_bytes(),
            Secret {
                session: new.session.id,
                spent: false,
            },
        );
        Ok(())
    }

    async fn get(&self, id: SessionId) -> Result<Session, RepoError> {
        lock(&self.0)
            .sessions
            .get(&id)
            .cloned()
            .ok_or(RepoError::NotFound)
    }

    async fn find_by_cookie(&self, hash: &TokenHash) -> Result<Session, RepoError> {
        let s = lock(&self.0);
        s.secrets
            .get(hash.as_bytes())
            .and_then(|secret| s.sessions.get(&secret.session))
            .filter(|session| session.kind == SessionKind::Browser)
            .cloned()
            .ok_or(RepoError::NotFound)
    }

    async fn get_with_user(&self, id: SessionId) -> Result<(Session, User), RepoError> {
        let s = lock(&self.0);
        let session = s.sessions.get(&id).ok_or(RepoError::NotFound)?;
        s.with_user(session)
    }

    async fn find_by_cookie_with_user(
        &self,
        hash: &TokenHash,
    ) -> Result<(Session, User), RepoError> {
        let s = lock(&self.0);
        let session = s
            .secrets
            .get(hash.as_bytes())
            .and_then(|secret| s.sessions.get(&secret.session))
            .filter(|session| session.kind == SessionKind::Browser)
            .ok_or(RepoError::NotFound)?;
        s.with_user(session)
    }

    async fn rotate_refresh_token(
        &self,
        presented: &TokenHash,
        replacement: &TokenHash,
        now: OffsetDateTime,
        idle_since: OffsetDateTime,
    ) -> Result<Rotation, RepoError> {
        let mut s = lock(&self.0);
        let secret = s
            .secrets
            .get(presented.as_bytes())
            .ok_or(RepoError::NotFound)?;
        let (id, spent) = (secret.session, secret.spent);
        let session = s.sessions.get_mut(&id).ok_or(RepoError::NotFound)?;
        if session.kind != SessionKind::Token {
            return Err(RepoError::NotFound);
        }
        if spent {
            session.revoked_at.get_or_insert(now);
            return Ok(Rotation::Reused(id));
        }
        if !session.is_active(now) || session.last_used_at <= idle_since {
            return Ok(Rotation::Inactive(id));
        }
        session.last_used_at = now;
        let session = session.clone();
        if let Some(secret) = s.secrets.get_mut(presented.as_bytes()) {
            secret.spent = true;
        }
        s.secrets.insert(
            *replacement.as_bytes(),
            Secret {
                session: id,
                spent: false,
            },
        );
        Ok(Rotation::Rotated(session))
    }

    async fn touch(&self, id: SessionId, now: OffsetDateTime) -> Result<(), RepoError> {
        let mut s = lock(&self.0);
        let session = s.sessions.get_mut(&id).ok_or(RepoError::NotFound)?;
        session.last_used_at = session.last_used_at.max(now);
        Ok(())
    }

    async fn revoke(&self, id: SessionId, now: OffsetDateTime) -> Result<(), RepoError> {
        let mut s = lock(&self.0);
        let session = s.sessions.get_mut(&id).ok_or(RepoError::NotFound)?;
        session.revoked_at.get_or_insert(now);
        Ok(())
    }

    async fn revoke_all(
        &self,
        user: UserId,
        keep: Option<SessionId>,
        now: OffsetDateTime,
    ) -> Result<u64, RepoError> {
        let mut s = lock(&self.0);
        let mut n = 0;
        for session in s.sessions.values_mut() {
            if session.user_id == user && Some(session.id) != keep && session.is_active(now) {
                session.revoked_at = Some(now);
                n += 1;
            }
        }
        Ok(n)
    }

    async fn list_active(
        &self,
        user: UserId,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, RepoError> {
        let s = lock(&self.0);
        let mut list: Vec<Session> = s
            .sessions
            .values()
            .filter(|x| x.user_id == user && x.is_active(now))
            .cloned()
            .collect();
        list.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        Ok(list)
    }

    async fn count_active(&self, now: OffsetDateTime) -> Result<u64, RepoError> {
        let s = lock(&self.0);
        Ok(s.sessions.values().filter(|x| x.is_active(now)).count() as u64)
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, RepoError> {
        let mut s = lock(&self.0);
        let gone: Vec<SessionId> = s
            .sessions
            .values()
            .filter(|x| x.expires_at < before || x.revoked_at.is_some_and(|r| r < before))
            .map(|x| x.id)
            .collect();
        s.sessions.retain(|id, _| !gone.contains(id));
        s.secrets
            .retain(|_, secret| !gone.contains(&secret.session));
        Ok(gone.len() as u64)
    }
}

#[async_trait::async_trait]
impl LoginFailureStore for InMemoryLoginFailureStore {
    async fn get(&self, key: &ThrottleKey) -> Result<Option<LoginFailures>, RepoError> {
        Ok(lock(&self.0).failures.get(key).copied())
    }

    async fn swap(
        &self,
        key: &ThrottleKey,
        expected: Option<LoginFailures>,
        next: &LoginFailures,
    ) -> Result<bool, RepoError> {
        let mut s = lock(&self.0);
        if s.failures.get(key).copied() != expected {
            return Ok(false);
        }
        s.failures.insert(*key, *next);
        Ok(true)
    }

    async fn clear(&self, key: &ThrottleKey) -> Result<(), RepoError> {
        lock(&self.0).failures.remove(key);
        Ok(())
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, RepoError> {
        let mut s = lock(&self.0);
        let n = s.failures.len();
        s.failures.retain(|_, f| f.last_failed_at >= before);
        Ok((n - s.failures.len()) as u64)
    }
}

#[async_trait::async_trait]
impl DeviceTokenStore for InMemoryDeviceTokenStore {
    async fn save(&self, hash: &TokenHash, device: &DeviceToken) -> Result<(), RepoError> {
        let mut s = lock(&self.0);
        if !s.users.contains_key(&device.user_id) {
            return Err(RepoError::NotFound);
        }
        match s.devices.get_mut(hash.as_bytes()) {
            Some(stored) if stored.user_id == device.user_id => {
                stored.expires_at = device.expires_at;
            }
            Some(_) => {}
            None => {
                s.devices.insert(*hash.as_bytes(), *device);
            }
        }
        Ok(())
    }

    async fn delete_for_user(&self, user: UserId) -> Result<u64, RepoError> {
        let mut s = lock(&self.0);
        let n = s.devices.len();
        s.devices.retain(|_, d| d.user_id != user);
        Ok((n - s.devices.len()) as u64)
    }

    async fn find(&self, hash: &TokenHash) -> Result<DeviceToken, RepoError> {
        lock(&self.0)
            .devices
            .get(hash.as_bytes())
            .copied()
            .ok_or(RepoError::NotFound)
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, RepoError> {
        let mut s = lock(&self.0);
        let n = s.devices.len();
        s.devices.retain(|_, d| d.expires_at >= before);
        Ok((n - s.devices.len()) as u64)
    }
}

impl State {
    fn enqueue(&mut self, mail: &Mail, now: OffsetDateTime) {
        self.outbox.entry(mail.id).or_insert_with(|| Queued {
            mail: mail.clone(),
            attempts: 0,
            enqueued_at: now,
            next_attempt_at: now,
            claim: None,
            last_error: None,
        });
    }

    fn held(&mut self, id: Uuid, claim: Uuid) -> Result<&mut Queued, RepoError> {
        self.outbox
            .get_mut(&id)
            .filter(|q| q.held_by(claim))
            .ok_or(RepoError::NotFound)
    }
}

#[async_trait::async_trait]
impl MailOutbox for InMemoryMailOutbox {
    async fn enqueue(&self, mail: &Mail, now: OffsetDateTime) -> Result<(), RepoError> {
        lock(&self.0).enqueue(mail, now);
        Ok(())
    }

    async fn claim(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<ClaimedMail>, RepoError> {
        let mut s = lock(&self.0);
        let mut due: Vec<&mut Queued> = s.outbox.values_mut().filter(|q| q.due(now)).collect();
        due.sort_by_key(|q| (q.enqueued_at, q.mail.id));
        Ok(due
            .into_iter()
            .take(limit as usize)
            .map(|q| {
                let claim = Uuid::new_v4();
                q.claim = Some((claim, lease_until));
                ClaimedMail {
                    mail: q.mail.clone(),
                    attempts: q.attempts,
                    claim,
                }
            })
            .collect())
    }

    async fn delivered(&self, id: Uuid, claim: Uuid) -> Result<(), RepoError> {
        let mut s = lock(&self.0);
        s.held(id, claim)?;
        s.outbox.remove(&id);
        Ok(())
    }

    async fn retry_later(
        &self,
        id: Uuid,
        claim: Uuid,
        retry_at: OffsetDateTime,
        error: &str,
    ) -> Result<(), RepoError> {
        let mut s = lock(&self.0);
        let q = s.held(id, claim)?;
        q.attempts = q.attempts.saturating_add(1);
        q.claim = None;
        q.next_attempt_at = retry_at;
        q.last_error = Some(error.to_owned());
        Ok(())
    }

    async fn give_up(
        &self,
        id: Uuid,
        claim: Uuid,
        now: OffsetDateTime,
        error: &str,
    ) -> Result<(), RepoError> {
        let mut s = lock(&self.0);
        s.held(id, claim)?;
        if let Some(q) = s.outbox.remove(&id) {
            s.dead_letters.push(DeadLetter {
                id,
                to: q.mail.to,
                attempts: q.attempts.saturating_add(1),
                error: error.to_owned(),
                failed_at: now,
            });
        }
        Ok(())
    }

    async fn pending(&self, now: OffsetDateTime) -> Result<u64, RepoError> {
        Ok(lock(&self.0).outbox.values().filter(|q| q.due(now)).count() as u64)
    }

    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, RepoError> {
        let s = lock(&self.0);
        let mut list = s.dead_letters.clone();
        list.sort_by_key(|d| std::cmp::Reverse((d.failed_at, d.id)));
        list.truncate(limit as usize);
        Ok(list)
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, RepoError> {
        let mut s = lock(&self.0);
        let n = s.dead_letters.len();
        s.dead_letters.retain(|d| d.failed_at >= before);
        Ok((n - s.dead_letters.len()) as u64)
    }
}

#[async_trait::async_trait]
impl OneTimeTokenStore for InMemoryOneTimeTokenStore {
    async fn issue(
        &self,
        hash: &TokenHash,
        token: &OneTimeToken,
        mail: &Mail,
    ) -> Result<(), RepoError> {
        let mut s = lock(&self.0);
        if !s.users.contains_key(&token.user_id) {
            return Err(RepoError::NotFound);
        }
        s.tokens
            .retain(|_, t| !(t.user_id == token.user_id && t.purpose == token.purpose));
        s.tokens.insert(*hash.as_bytes(), token.clone());
        s.enqueue(mail, token.created_at);
        Ok(())
    }

    async fn find(
        &self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        now: OffsetDateTime,
    ) -> Result<OneTimeToken, RepoError> {
        lock(&self.0)
            .tokens
            .get(hash.as_bytes())
            .filter(|t| t.purpose == purpose && t.expires_at > now)
            .cloned()
            .ok_or(RepoError::NotFound)
    }

    async fn consume(
        &self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        now: OffsetDateTime,
    ) -> Result<OneTimeToken, RepoError> {
        let mut s = lock(&self.0);
        match s.tokens.get(hash.as_bytes()) {
            Some(t) if t.purpose == purpose && t.expires_at > now => {
                s.tokens.remove(hash.as_bytes()).ok_or(RepoError::NotFound)
            }
            _ => Err(RepoError::NotFound),
        }
    }

    async fn revoke_all(&self, user: UserId, purpose: TokenPurpose) -> Result<u64, RepoError> {
        let mut s = lock(&self.0);
        let n = s.tokens.len();
        s.tokens
            .retain(|_, t| !(t.user_id == user && t.purpose == purpose));
        Ok((n - s.tokens.len()) as u64)
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, RepoError> {
        let mut s = lock(&self.0);
        let n = s.tokens.len();
        s.tokens.retain(|_, t| t.expires_at >= before);
        Ok((n - s.tokens.len()) as u64)
    }
}

#[async_trait::async_trait]
impl AuditLog for InMemoryAuditLog {
    async fn record(&self, event: &AuditEvent) -> Result<(), RepoError> {
        lock(&self.0).audit.push(event.clone());
        Ok(())
    }

    async fn list(&self, query: &AuditQuery) -> Result<AuditPage, RepoError> {
        let mut events: Vec<AuditEvent> = lock(&self.0)
            .audit
            .iter()
            .filter(|e| query.matches(e))
            .cloned()
            .collect();
        events.sort_by_key(|e| std::cmp::Reverse((e.at, e.id)));
        let size = query.page_size();
        events.truncate(
            usize::try_from(size)
                .unwrap_or(usize::MAX)
                .saturating_add(1),
        );
        Ok(AuditPage::from_overfetch(events, size))
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, RepoError> {
        let mut state = lock(&self.0);
        let len = state.audit.len();
        state.audit.retain(|e| e.at >= before);
        Ok((len - state.audit.len()) as u64)
    }

    async fn anonymize(&self, user: UserId) -> Result<u64, RepoError> {
        let mut changed = 0;
        for event in &mut lock(&self.0).audit {
            let before = event.clone();
            if event.subject == Some(user) {
                event.identifier = None;
            }
            if event.actor == Some(user) || (event.subject == Some(user) && event.actor.is_none()) {
                event.client = crate::domain::ClientInfo::default();
            }
            if *event != before {
                changed += 1;
            }
        }
        Ok(changed)
    }
}

/// Recovery codes as a set, in their first order.
fn distinct(codes: &[TokenHash]) -> Vec<TokenHash> {
    let mut out: Vec<TokenHash> = Vec::with_capacity(codes.len());
    for code in codes {
        if !out.contains(code) {
            out.push(*code);
        }
    }
    out
}

#[async_trait::async_trait]
impl SecondFactorStore for InMemorySecondFactorStore {
    async fn factor(&self, user: UserId) -> Result<TotpFactor, RepoError> {
        lock(&self.0)
            .factors
            .get(&user)
            .cloned()
            .ok_or(RepoError::NotFound)
    }

    async fn begin_enrolment(&self, factor: &TotpFactor) -> Result<bool, RepoError> {
        let mut s = lock(&self.0);
        if !s.users.contains_key(&factor.user_id) {
            return Err(RepoError::NotFound);
        }
        if s.factors
            .get(&factor.user_id)
            .is_some_and(TotpFactor::is_confirmed)
        {
            return Ok(false);
        }
        let pending = TotpFactor {
            confirmed_at: None,
            last_used_step: None,
            ..factor.clone()
        };
        s.factors.insert(factor.user_id, pending);
        Ok(true)
    }

    async fn confirm_enrolment(
        &self,
        user: UserId,
        step: i64,
        recovery_codes: &[TokenHash],
        now: OffsetDateTime,
    ) -> Result<(), RepoError> {
        let mut s = lock(&self.0);
        let factor = s
            .factors
            .get_mut(&user)
            .filter(|f| !f.is_confirmed())
            .ok_or(RepoError::NotFound)?;
        factor.confirmed_at = Some(now);
        factor.last_used_step = Some(step);
        s.recovery_codes.insert(user, distinct(recovery_codes));
        Ok(())
    }

    async fn use_step(&self, user: UserId, step: i64) -> Result<bool, RepoError> {
        let mut s = lock(&self.0);
        let factor = s
            .factors
            .get_mut(&user)
            .filter(|f| f.is_confirmed())
            .ok_or(RepoError::NotFound)?;
        if factor.last_used_step.is_some_and(|last| last >= step) {
            return Ok(false);
        }
        factor.last_used_step = Some(step);
        Ok(true)
    }

    async fn replace_recovery_codes(
        &self,
        user: UserId,
        recovery_codes: &[TokenHash],
    ) -> Result<(), RepoError> {
        let mut s = lock(&self.0);
        if !s.factors.get(&user).is_some_and(TotpFactor::is_confirmed) {
            return Err(RepoError::NotFound);
        }
        s.recovery_codes.insert(user, distinct(recovery_codes));
        Ok(())
    }

    async fn use_recovery_code(&self, user: UserId, code: &TokenHash) -> Result<bool, RepoError> {
        let mut s = lock(&self.0);
        let Some(codes) = s.recovery_codes.get_mut(&user) else {
            return Ok(false);
        };
        let before = codes.len();
        codes.retain(|c| c != code);
        Ok(codes.len() < before)
    }

    async fn recovery_codes_left(&self, user: UserId) -> Result<u32, RepoError> {
        let s = lock(&self.0);
        let left = s.recovery_codes.get(&user).map_or(0, Vec::len);
        Ok(u32::try_from(left).unwrap_or(u32::MAX))
    }

    async fn remove(&self, user: UserId) -> Result<bool, RepoError> {
        let mut s = lock(&self.0);
        s.recovery_codes.remove(&user);
        s.trusted.retain(|(_, u), _| *u != user);
        Ok(s.factors.remove(&user).is_some())
    }

    async fn trust_device(
        &self,
        device: &TokenHash,
        user: UserId,
        until: OffsetDateTime,
    ) -> Result<(), RepoError> {
        let mut s = lock(&self.0);
        if !s.users.contains_key(&user) {
            return Err(RepoError::NotFound);
        }
        s.trusted.insert((*device.as_bytes(), user), until);
        Ok(())
    }

    async fn is_trusted(
        &self,
        device: &TokenHash,
        user: UserId,
        now: OffsetDateTime,
    ) -> Result<bool, RepoError> {
        let s = lock(&self.0);
        Ok(s.trusted
            .get(&(*device.as_bytes(), user))
            .is_some_and(|until| *until > now))
    }

    async fn create_challenge(
        &self,
        hash: &TokenHash,
        challenge: &SignInChallenge,
    ) -> Result<(), RepoError> {
        let mut s = lock(&self.0);
        if !s.users.contains_key(&challenge.user_id) {
            return Err(RepoError::NotFound);
        }
        s.challenges.insert(*hash.as_bytes(), challenge.clone());
        Ok(())
    }

    async fn find_challenge(
        &self,
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> Result<SignInChallenge, RepoError> {
        lock(&self.0)
            .challenges
            .get(hash.as_bytes())
            .filter(|c| c.expires_at > now)
            .cloned()
            .ok_or(RepoError::NotFound)
    }

    async fn consume_challenge(
        &self,
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> Result<SignInChallenge, RepoError> {
        let mut s = lock(&self.0);
        match s.challenges.remove(hash.as_bytes()) {
            Some(c) if c.expires_at > now => Ok(c),
            Some(c) => {
                s.challenges.insert(*hash.as_bytes(), c);
                Err(RepoError::NotFound)
            }
            None => Err(RepoError::NotFound),
        }
    }

    async fn purge(
        &self,
        expired_before: OffsetDateTime,
        pending_before: OffsetDateTime,
    ) -> Result<u64, RepoError> {
        let mut s = lock(&self.0);
        let before = s.challenges.len() + s.trusted.len() + s.factors.len();
        s.challenges.retain(|_, c| c.expires_at >= expired_before);
        s.trusted.retain(|_, until| *until >= expired_before);
        s.factors
            .retain(|_, f| f.is_confirmed() || f.created_at >= pending_before);
        let after = s.challenges.len() + s.trusted.len() + s.factors.len();
        Ok((before - after) as u64)
    }
}
