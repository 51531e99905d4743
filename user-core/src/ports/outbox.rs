use time::OffsetDateTime;
use uuid::Uuid;

use super::Mail;
use crate::domain::Email;
use crate::error::RepoError;

/// A queued mail handed to one worker by [`MailOutbox::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedMail {
    /// The message, as enqueued.
    pub mail: Mail,
    /// How many attempts to send it failed before this claim.
    pub attempts: u32,
    /// This claim's id: only its holder may settle the mail, and only until another worker
    /// claims it after the lease ran out.
    pub claim: Uuid,
}

/// What is left of a mail the outbox gave up on: enough for an operator to see what failed
/// and for whom, never the subject or the body (which may hold a single-use link).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The mail's id.
    pub id: Uuid,
    /// Its recipient.
    pub to: Email,
    /// How many attempts failed, the last one included.
    pub attempts: u32,
    /// Why the last attempt failed.
    pub error: String,
    /// When the outbox gave up.
    pub failed_at: OffsetDateTime,
}

/// The durable queue of outgoing mail, in the same database as the rest of the storage, so
/// that a change and the mail it causes commit together (see
/// [`OneTimeTokenStore::issue`](super::OneTimeTokenStore::issue)). Workers
/// ([`crate::mail::deliver_periodically`]) claim due mails for a lease, send them, then settle
/// each one: [`delivered`](Self::delivered), [`retry_later`](Self::retry_later) or
/// [`give_up`](Self::give_up). A worker that dies mid-lease loses nothing: once the lease runs
/// out the mail is claimed again.
#[cfg_attr(any(test, feature = "testing"), mockall::automock)]
#[async_trait::async_trait]
pub trait MailOutbox: Send + Sync + 'static {
    /// Queues `mail`, due at once (`now`). Enqueuing an id that is already queued changes
    /// nothing.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails.
    async fn enqueue(&self, mail: &Mail, now: OffsetDateTime) -> Result<(), RepoError>;

    /// Claims up to `limit` mails that are due at `now` (their next attempt is at or before
    /// `now`, and no claim holds them or their claim's lease ended at or before `now`), oldest
    /// first. Each gets a fresh claim id and no other claim takes it before `lease_until`:
    /// concurrent claims, from any number of workers and instances, never return the same
    /// mail twice.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails.
    async fn claim(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<ClaimedMail>, RepoError>;

    /// The mail was sent: it is deleted, body and all.
    ///
    /// # Errors
    /// - [`RepoError::NotFound`] when `claim` no longer holds mail `id` (another worker
    ///   claimed it after the lease ended, or it was settled already).
    /// - [`RepoError::Unavailable`] when the store fails.
    async fn delivered(&self, id: Uuid, claim: Uuid) -> Result<(), RepoError>;

    /// The attempt failed and may succeed later: one more failed attempt is counted, the
    /// claim is released, the mail is due again at `retry_at`, and `error` (short, without
    /// the body) is kept as the last error.
    ///
    /// # Errors
    /// - [`RepoError::NotFound`] when `claim` no longer holds mail `id`.
    /// - [`RepoError::Unavailable`] when the store fails.
    async fn retry_later(
        &self,
        id: Uuid,
        claim: Uuid,
        retry_at: OffsetDateTime,
        error: &str,
    ) -> Result<(), RepoError>;

    /// The mail will never be sent: it leaves the queue and a [`DeadLetter`] (without subject
    /// or body) records it, this attempt counted, failed at `now` with `error`.
    ///
    /// # Errors
    /// - [`RepoError::NotFound`] when `claim` no longer holds mail `id`.
    /// - [`RepoError::Unavailable`] when the store fails.
    async fn give_up(
        &self,
        id: Uuid,
        claim: Uuid,
        now: OffsetDateTime,
        error: &str,
    ) -> Result<(), RepoError>;

    /// How many mails a claim at `now` could take: due and not held by a live claim. For
    /// metrics (a backlog that grows means delivery falls behind).
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails.
    async fn pending(&self, now: OffsetDateTime) -> Result<u64, RepoError>;

    /// The most recent dead letters, newest first, at most `limit`.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails.
    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, RepoError>;

    /// Deletes dead letters that failed before `before`, returning how many.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails.
    async fn purge(&self, before: OffsetDateTime) -> Result<u64, RepoError>;
}
