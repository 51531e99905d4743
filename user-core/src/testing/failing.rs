//! A user repository that fails once, on purpose: for the tests of what a caller does when
//! its store fails mid-way.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use time::OffsetDateTime;

use crate::domain::{
    Email, NewUser, PasswordHash, ProfileChanges, Role, User, UserId, UserPage, UserQuery,
    UserStatus, Username,
};
use crate::error::RepoError;
use crate::ports::{Identifier, Inserted, UserRepository};

/// Wraps a [`UserRepository`] and makes its `fail_on`-th call of
/// [`insert_many`](UserRepository::insert_many) (counting from 1) fail with
/// [`RepoError::Unavailable`], writing nothing; every other call goes through.
pub struct FailingUserRepository {
    inner: Arc<dyn UserRepository>,
    fail_on: u64,
    calls: AtomicU64,
}

impl FailingUserRepository {
    /// `inner`, failing the `fail_on`-th call of `insert_many`.
    pub fn new(inner: Arc<dyn UserRepository>, fail_on: u64) -> Self {
        Self {
            inner,
            fail_on,
            calls: AtomicU64::new(0),
        }
    }

    /// Calls of `insert_many` so far, the failed one included.
    pub fn insert_many_calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl UserRepository for FailingUserRepository {
    async fn insert(&self, new: &NewUser) -> Result<(), RepoError> {
        self.inner.insert(new).await
    }

    async fn insert_many(&self, batch: &[NewUser]) -> Result<Vec<Inserted>, RepoError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_on {
            return Err(RepoError::unavailable("the store failed, on purpose"));
        }
        self.inner.insert_many(batch).await
    }

    async fn export_page(
        &self,
        after: Option<Username>,
        limit: u32,
    ) -> Result<Vec<(User, PasswordHash)>, RepoError> {
        self.inner.export_page(after, limit).await
    }

    async fn get(&self, id: UserId) -> Result<User, RepoError> {
        self.inner.get(id).await
    }

    async fn get_by_username(&self, username: &Username) -> Result<User, RepoError> {
        self.inner.get_by_username(username).await
    }

    async fn get_by_email(&self, email: &Email) -> Result<User, RepoError> {
        self.inner.get_by_email(email).await
    }

    async fn credentials(
        &self,
        identifier: &Identifier,
    ) -> Result<(User, PasswordHash), RepoError> {
        self.inner.credentials(identifier).await
    }

    async fn password_hash(&self, id: UserId) -> Result<PasswordHash, RepoError> {
        self.inner.password_hash(id).await
    }

    async fn update_profile(
        &self,
        id: UserId,
        changes: &ProfileChanges,
        now: OffsetDateTime,
    ) -> Result<User, RepoError> {
        self.inner.update_profile(id, changes, now).await
    }

    async fn mark_email_verified(
        &self,
        id: UserId,
        email: &Email,
        now: OffsetDateTime,
    ) -> Result<User, RepoError> {
        self.inner.mark_email_verified(id, email, now).await
    }

    async fn update_password_hash(
        &self,
        id: UserId,
        hash: &PasswordHash,
        now: OffsetDateTime,
    ) -> Result<(), RepoError> {
        self.inner.update_password_hash(id, hash, now).await
    }

    async fn set_role(
        &self,
        id: UserId,
        role: Role,
        now: OffsetDateTime,
    ) -> Result<User, RepoError> {
        self.inner.set_role(id, role, now).await
    }

    async fn set_status(
        &self,
        id: UserId,
        status: UserStatus,
        now: OffsetDateTime,
    ) -> Result<User, RepoError> {
        self.inner.set_status(id, status, now).await
    }

    async fn delete(&self, id: UserId) -> Result<(), RepoError> {
        self.inner.delete(id).await
    }

    async fn list(&self, query: &UserQuery) -> Result<UserPage, RepoError> {
        self.inner.list(query).await
    }

    async fn count_active_admins(&self) -> Result<u64, RepoError> {
        self.inner.count_active_admins().await
    }
}
