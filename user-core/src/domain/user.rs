use std::fmt;
use std::str::FromStr;

use time::OffsetDateTime;
use uuid::Uuid;

use super::{Email, Username};
use crate::error::{INVALID_USER_ID, ValidationError};

/// A user's id: a UUID, v7 for users created here (time-ordered), v4 for imported ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(Uuid);

impl UserId {
    /// A new time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// The underlying UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for UserId {
    fn default() -> Self {
        Self::new()
    }
}

impl From<Uuid> for UserId {
    fn from(id: Uuid) -> Self {
        Self(id)
    }
}

impl FromStr for UserId {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s.trim())
            .map(Self)
            .map_err(|_| ValidationError::new("user_id", "invalid", INVALID_USER_ID))
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// May see and change only their own account.
    User,
    /// May also list, edit, promote, disable and delete other accounts.
    Admin,
}

impl Role {
    /// The stable lowercase name used in storage, tokens and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "user" => Ok(Self::User),
            "admin" => Ok(Self::Admin),
            _ => Err(ValidationError::new(
                "role",
                "invalid",
                "must be \"user\" or \"admin\"",
            )),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an account may sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserStatus {
    /// May sign in.
    Active,
    /// May not sign in; every session was revoked when it was disabled.
    Disabled,
}

impl UserStatus {
    /// The stable lowercase name used in storage and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
        }
    }
}

impl FromStr for UserStatus {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "active" => Ok(Self::Active),
            "disabled" => Ok(Self::Disabled),
            _ => Err(ValidationError::new(
                "status",
                "invalid",
                "must be \"active\" or \"disabled\"",
            )),
        }
    }
}

impl fmt::Display for UserStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name to show instead of the username: 1-64 characters, no control characters, trimmed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DisplayName(String);

impl DisplayName {
    /// Longest accepted display name, in characters.
    pub const MAX_LEN: usize = 64;

    /// Parses a display name; an empty or blank input means "no display name".
    ///
    /// # Errors
    /// A [`ValidationError`] on field `display_name`: `too_long` or `invalid_characters`.
    pub fn parse(input: &str) -> Result<Option<Self>, ValidationError> {
        let s = input.trim();
        if s.is_empty() {
            return Ok(None);
        }
        if s.chars().count() > Self::MAX_LEN {
            return Err(ValidationError::new(
                "display_name",
                "too_long",
                format!("must be at most {} characters", Self::MAX_LEN),
            ));
        }
        if s.chars().any(char::is_control) {
            return Err(ValidationError::new(
                "display_name",
                "invalid_characters",
                "must not contain control characters or line breaks",
            ));
        }
        Ok(Some(Self(s.to_owned())))
    }

    /// The display name as typed (trimmed).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for DisplayName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An account. The password hash is deliberately not part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Stable id.
    pub id: UserId,
    /// Unique, lowercase.
    pub username: Username,
    /// Unique, lowercase.
    pub email: Email,
    /// Optional name to show.
    pub display_name: Option<DisplayName>,
    /// What the user may do.
    pub role: Role,
    /// Whether the user may sign in.
    pub status: UserStatus,
    /// When the email address was last verified; cleared when it changes.
    pub email_verified_at: Option<OffsetDateTime>,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Last change to any field.
    pub updated_at: OffsetDateTime,
}

impl User {
    /// Whether the user is an active admin.
    pub fn is_active_admin(&self) -> bool {
        self.role == Role::Admin && self.status == UserStatus::Active
    }
}

/// A user to insert, with the stored hash of their password.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// The user's fields.
    pub user: User,
    /// The encoded password hash.
    pub password_hash: super::PasswordHash,
}

/// A profile edit. `None` leaves a field as it is; `display_name: Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileChanges {
    /// A new username.
    pub username: Option<Username>,
    /// A new email; its verification is cleared when it differs from the old one.
    pub email: Option<Email>,
    /// A new display name, or `Some(None)` to remove it.
    pub display_name: Option<Option<DisplayName>>,
}

impl ProfileChanges {
    /// Whether the edit changes nothing.
    pub fn is_empty(&self) -> bool {
        self.username.is_none() && self.email.is_none() && self.display_name.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn profile_changes_are_empty_only_without_any_field() {
        assert!(ProfileChanges::default().is_empty());
        let username = ProfileChanges {
            username: Some(Username::parse("alice").unwrap()),
            ..ProfileChanges::default()
        };
        let email = ProfileChanges {
            email: Some(Email::parse("alice@example.com").unwrap()),
            ..ProfileChanges::default()
        };
        let display_name = ProfileChanges {
            display_name: Some(DisplayName::parse("Alice").unwrap()),
            ..ProfileChanges::default()
        };
        let no_display_name = ProfileChanges {
            display_name: Some(None),
            ..ProfileChanges::default()
        };
        for changes in [username, email, display_name, no_display_name] {
            assert!(!changes.is_empty(), "{changes:?}");
        }
    }

    #[test]
    fn display_name_rules() {
        assert_eq!(DisplayName::parse("  ").unwrap(), None);
        assert_eq!(
            DisplayName::parse(" Alice <script> ")
                .unwrap()
                .unwrap()
                .as_str(),
            "Alice <script>"
        );
        assert_eq!(
            DisplayName::parse(&"é".repeat(65)).unwrap_err().code,
            "too_long"
        );
        let at_limit = "é".repeat(DisplayName::MAX_LEN);
        assert_eq!(
            DisplayName::parse(&at_limit).unwrap().unwrap().as_str(),
            at_limit,
            "the limit is inclusive"
        );
        assert_eq!(
            DisplayName::parse("a\nb").unwrap_err().code,
            "invalid_characters"
        );
    }

    #[test]
    fn roles_and_statuses_round_trip() {
        for role in [Role::User, Role::Admin] {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        for status in [UserStatus::Active, UserStatus::Disabled] {
            assert_eq!(status.as_str().parse::<UserStatus>().unwrap(), status);
        }
        assert_eq!("root".parse::<Role>().unwrap_err().field, "role");
        assert_eq!("".parse::<UserStatus>().unwrap_err().field, "status");
    }

    /// The conversions the stores and the faces use: ids to and from UUIDs, roles, statuses
    /// and display names shown as they are stored.
    #[test]
    fn ids_names_and_display_names_show_as_stored() {
        let uuid = uuid::Uuid::parse_str("0190a8b4-1c2d-7e3f-8a9b-0c1d2e3f4a5b").unwrap();
        let id = UserId::from(uuid);
        assert_eq!(id.as_uuid(), uuid);
        assert_eq!(id.to_string(), uuid.to_string());
        for (role, name) in [(Role::User, "user"), (Role::Admin, "admin")] {
            assert_eq!(role.as_str(), name);
            assert_eq!(role.to_string(), name);
        }
        for (status, name) in [
            (UserStatus::Active, "active"),
            (UserStatus::Disabled, "disabled"),
        ] {
            assert_eq!(status.as_str(), name);
            assert_eq!(status.to_string(), name);
        }
        let shown = DisplayName::parse("Ada Lovelace").unwrap().unwrap();
        assert_eq!(shown.as_ref(), "Ada Lovelace");
        assert_eq!(shown.to_string(), "Ada Lovelace");
    }

    #[test]
    fn user_ids_parse() {
        let id = UserId::new();
        assert_eq!(id.to_string().parse::<UserId>().unwrap(), id);
        assert_eq!("nope".parse::<UserId>().unwrap_err().field, "user_id");
    }

    proptest! {
        #[test]
        fn display_names_never_panic(s in "\\PC{0,100}") {
            if let Ok(Some(d)) = DisplayName::parse(&s) {
                prop_assert!(d.as_str().chars().count() <= 64);
                prop_assert_eq!(d.as_str(), d.as_str().trim());
            }
        }
    }
}
