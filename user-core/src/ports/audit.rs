use time::OffsetDateTime;

use crate::domain::{AuditEvent, AuditPage, AuditQuery, UserId};
use crate::error::RepoError;

/// The audit log: security events kept for admins and for the users they concern. Events
/// outlive their users (no foreign key), anonymized by [`AuditLog::anonymize`].
#[cfg_attr(any(test, feature = "testing"), mockall::automock)]
#[async_trait::async_trait]
pub trait AuditLog: Send + Sync + 'static {
    /// Appends `event`, every field as given (times to the microsecond at least: the
    /// services' clock gives whole microseconds).
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails; nothing is written.
    async fn record(&self, event: &AuditEvent) -> Result<(), RepoError>;

    /// One page of at most [`AuditQuery::page_size`] events that pass `query`'s filters,
    /// newest first (by time, then id), strictly older than `query.before`; `next` is set
    /// exactly when more events match.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails.
    async fn list(&self, query: &AuditQuery) -> Result<AuditPage, RepoError>;

    /// Deletes the events older than `before`, returning how many.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails; what was deleted stays deleted.
    async fn purge(&self, before: OffsetDateTime) -> Result<u64, RepoError>;

    /// Strips what would identify a deleted `user` from the events about them, returning
    /// how many events changed: the identifier typed on events whose subject they are; the
    /// client address and user agent on events they did (actor) and on anonymous events
    /// concerning their account (sign-in attempts). Ids, kinds, times, outcomes and the
    /// details stay, so the record of what happened survives without naming anyone.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails.
    async fn anonymize(&self, user: UserId) -> Result<u64, RepoError>;
}
