use std::collections::{HashMap, HashSet};

use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{
    Email, NewUser, PasswordHash, ProfileChanges, Role, User, UserId, UserPage, UserQuery,
    UserStatus, Username,
};
use crate::error::{RepoError, UniqueField};

/// What a person types to name their account at sign-in: a username or an email address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identifier {
    /// By username.
    Username(Username),
    /// By email address.
    Email(Email),
}

impl Identifier {
    /// Reads an identifier: an email when it contains `@`, a username otherwise.
    /// `None` when it is neither, which can match no account.
    pub fn parse(identifier: &str) -> Option<Self> {
        if identifier.contains('@') {
            Email::parse(identifier).ok().map(Self::Email)
        } else {
            Username::parse(identifier).ok().map(Self::Username)
        }
    }
}

/// What [`UserRepository::insert_many`] did with one row of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The user was written.
    Inserted,
    /// A user with this id was already there (stored before, or an earlier row of the same
    /// batch): nothing was written. An import counts it as done (a rerun).
    AlreadyPresent,
    /// Another user (another id), stored before or an earlier row of the same batch, has
    /// this username or email: nothing was written.
    Conflict(UniqueField),
}

impl Inserted {
    /// For store adapters: which rows of `batch` an `INSERT ... ON CONFLICT DO NOTHING
    /// RETURNING id, username, email` wrote, from the rows it returned (in any order). Of
    /// several rows with one id, username and email, the first is the one written.
    pub fn written(
        batch: &[NewUser],
        returned: impl IntoIterator<Item = (Uuid, String, String)>,
    ) -> Vec<bool> {
        let mut returned: HashSet<(Uuid, String, String)> = returned.into_iter().collect();
        batch
            .iter()
            .map(|new| {
                let u = &new.user;
                // Owned keys: a batch is small next to its statement, and this runs once a row.
                returned.remove(&(
                    u.id.as_uuid(),
                    u.username.as_str().to_owned(),
                    u.email.as_str().to_owned(),
                ))
            })
            .collect()
    }

    /// For store adapters: the outcome of each row of `batch`, from which rows the insert
    /// wrote ([`Inserted::written`]) and the users (id, username, email) that, after the
    /// insert and in the same transaction, hold the id, username or email of a row it did
    /// not write. A row is judged by what was there before it: a user written by a later
    /// row of the batch does not count against it.
    pub fn of_batch(
        batch: &[NewUser],
        written: &[bool],
        holders: &[(Uuid, String, String)],
    ) -> Vec<Self> {
        // Where in the batch each user written by it is.
        let written_at: HashMap<Uuid, usize> = batch
            .iter()
            .zip(written)
            .enumerate()
            .filter(|(_, (_, w))| **w)
            .map(|(i, (new, _))| (new.user.id.as_uuid(), i))
            .collect();
        batch
            .iter()
            .zip(written)
            .enumerate()
            .map(|(i, (new, written))| {
                if *written {
                    return Self::Inserted;
                }
                let u = &new.user;
                let before = |holder: &&(Uuid, String, String)| {
                    written_at.get(&holder.0).is_none_or(|at| *at < i)
                };
                let mut holders = holders.iter().filter(before);
                let (mut username, mut email) = (false, false);
                for (id, name, mail) in &mut holders {
                    if *id == u.id.as_uuid() {
                        return Self::AlreadyPresent;
                    }
                    username |= name == u.username.as_str();
                    email |= mail == u.email.as_str();
                }
                if username || !email {
                    Self::Conflict(UniqueField::Username)
                } else {
                    Self::Conflict(UniqueField::Email)
                }
            })
            .collect()
    }
}

/// Where users live.
///
/// Usernames and emails are unique case-insensitively (both are stored lowercase). The store
/// also keeps one invariant of its own: there is always at least one active admin once there
/// has been one, because the check and the change must be one atomic step.
#[cfg_attr(any(test, feature = "testing"), mockall::automock)]
#[async_trait::async_trait]
pub trait UserRepository: Send + Sync + 'static {
    /// Inserts a user with their password hash.
    ///
    /// # Errors
    /// - [`RepoError::Conflict`] naming `username` or `email` when either is taken; nothing is
    ///   written.
    /// - [`RepoError::Unavailable`] when the store fails.
    async fn insert(&self, new: &NewUser) -> Result<(), RepoError>;

    /// Inserts a batch of users with their password hashes, all in one transaction, and
    /// says what became of each row, in the batch's order: [`Inserted::Inserted`],
    /// [`Inserted::AlreadyPresent`] when a user with its id exists (the id decides, whatever
    /// the other fields), else [`Inserted::Conflict`] naming `username` (checked first) or
    /// `email` taken by another user. Rows are taken in order, so a row sees the rows before
    /// it: of two rows with one id the first is inserted, the second already present. A row
    /// that is not inserted writes nothing and does not stop the others. An empty batch does
    /// nothing.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails; nothing of the batch is written.
    async fn insert_many(&self, batch: &[NewUser]) -> Result<Vec<Inserted>, RepoError>;

    /// Reads up to `limit` users with their password hashes, in username order, after the
    /// username `after` (from the first without one): one read per page, a range of the
    /// username index, for an export. The last user of a page is the `after` of the next; a
    /// page shorter than `limit` is the last. Users inserted or deleted meanwhile may or may
    /// not appear; one renamed meanwhile past the cursor may appear twice (an import counts
    /// the second as already present), one renamed back before it not at all.
    ///
    /// Username order, not id order, because an import writes users in the order it reads
    /// them: in username order, the username, role and status indexes of the importing
    /// store grow at their ends instead of taking each row at a random place, and SQLite
    /// imports about twice as fast.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails.
    async fn export_page(
        &self,
        after: Option<Username>,
        limit: u32,
    ) -> Result<Vec<(User, PasswordHash)>, RepoError>;

    /// Fetches a user by id.
    ///
    /// # Errors
    /// [`RepoError::NotFound`] when there is no such user.
    async fn get(&self, id: UserId) -> Result<User, RepoError>;

    /// Fetches a user by username.
    ///
    /// # Errors
    /// [`RepoError::NotFound`] when there is no such user.
    async fn get_by_username(&self, username: &Username) -> Result<User, RepoError>;

    /// Fetches a user by email.
    ///
    /// # Errors
    /// [`RepoError::NotFound`] when there is no such user.
    async fn get_by_email(&self, email: &Email) -> Result<User, RepoError>;

    /// Fetches a user and their password hash, for login, in one read.
    ///
    /// # Errors
    /// [`RepoError::NotFound`] when no user has that username or email.
    async fn credentials(&self, identifier: &Identifier)
    -> Result<(User, PasswordHash), RepoError>;

    /// Fetches a user's password hash.
    ///
    /// # Errors
    /// [`RepoError::NotFound`] when there is no such user.
    async fn password_hash(&self, id: UserId) -> Result<PasswordHash, RepoError>;

    /// Applies a profile edit and returns the updated user. A new email that differs from the
    /// old one clears `email_verified_at`; `updated_at` becomes `now`.
    ///
    /// # Errors
    /// - [`RepoError::NotFound`] when there is no such user.
    /// - [`RepoError::Conflict`] naming the field when the new username or email is taken by
    ///   another user; nothing is written.
    async fn update_profile(
        &self,
        id: UserId,
        changes: &ProfileChanges,
        now: OffsetDateTime,
    ) -> Result<User, RepoError>;

    /// Marks the user's email verified at `now`, only while it is still `email` (the address
    /// a verification token was mailed to), and returns the updated user. One atomic step, so
    /// a concurrent email change either comes before (and the address no longer matches) or
    /// after (and clears the verification again). Already verified: `email_verified_at`
    /// becomes `now`.
    ///
    /// # Errors
    /// - [`RepoError::NotFound`] when there is no such user, or their email is no longer
    ///   `email`; nothing is written.
    /// - [`RepoError::Unavailable`] when the store fails.
    async fn mark_email_verified(
        &self,
        id: UserId,
        email: &Email,
        now: OffsetDateTime,
    ) -> Result<User, RepoError>;

    /// Replaces a user's password hash.
    ///
    /// # Errors
    /// [`RepoError::NotFound`] when there is no such user.
    async fn update_password_hash(
        &self,
        id: UserId,
        hash: &PasswordHash,
        now: OffsetDateTime,
    ) -> Result<(), RepoError>;

    /// Changes a user's role and returns the updated user.
    ///
    /// # Errors
    /// - [`RepoError::NotFound`] when there is no such user.
    /// - [`RepoError::LastActiveAdmin`] when this would demote the last active admin.
    async fn set_role(
        &self,
        id: UserId,
        role: Role,
        now: OffsetDateTime,
    ) -> Result<User, RepoError>;

    /// Enables or disables a user and returns the updated user.
    ///
    /// # Errors
    /// - [`RepoError::NotFound`] when there is no such user.
    /// - [`RepoError::LastActiveAdmin`] when this would disable the last active admin.
    async fn set_status(
        &self,
        id: UserId,
        status: UserStatus,
        now: OffsetDateTime,
    ) -> Result<User, RepoError>;

    /// Deletes a user and, with them, all their sessions.
    ///
    /// # Errors
    /// - [`RepoError::NotFound`] when there is no such user.
    /// - [`RepoError::LastActiveAdmin`] when this would delete the last active admin.
    async fn delete(&self, id: UserId) -> Result<(), RepoError>;

    /// Lists users in username order after `query.after`, filtered by role, status and
    /// search text: 3 characters or more match anywhere in the username, the email or the
    /// display name (in lowercase), 1 or 2 the start of the username, every
    /// character literally (see [`UserQuery::search`]). At most `query.limit` users; `next`
    /// is set, to the page's last username, when more users match after the page (a full
    /// page that ends the list has no `next`, so a store reads one row ahead to know).
    ///
    /// Stores serve every page from indexes, whatever the number of users: the filters and
    /// the order from indexes on `(role, username)`, `(status, username)` and `(role,
    /// status, username)`, a search of 3 characters or more from a trigram index.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails.
    async fn list(&self, query: &UserQuery) -> Result<UserPage, RepoError>;

    /// Counts the users who are both admin and active.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store fails.
    async fn count_active_admins(&self) -> Result<u64, RepoError>;
}
