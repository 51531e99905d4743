use std::fmt;

use time::OffsetDateTime;

use super::{Email, UserId};

/// What a one-time token lets its holder do. A token serves one purpose only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenPurpose {
    /// Confirms that the user reads mail at [`OneTimeToken::email`].
    VerifyEmail,
    /// Sets a new password without the old one.
    ResetPassword,
}

impl TokenPurpose {
    /// Every purpose.
    pub const ALL: [Self; 2] = [Self::VerifyEmail, Self::ResetPassword];

    /// The stable name storage adapters keep: `verify_email` or `reset_password`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
        }
    }

    /// The purpose named by [`TokenPurpose::as_str`], if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl fmt::Display for TokenPurpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A single-use token mailed to a user (email verification, password reset). Only the
/// SHA-256 of its secret is stored ([`TokenHash`](super::TokenHash)); it dies when used, when
/// it expires, or when a newer token of the same user and purpose is issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneTimeToken {
    /// Whose token it is.
    pub user_id: UserId,
    /// What it may be used for.
    pub purpose: TokenPurpose,
    /// The address it was mailed to: a verification token verifies this address only.
    pub email: Email,
    /// When it was issued.
    pub created_at: OffsetDateTime,
    /// The first instant it no longer works.
    pub expires_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::TokenPurpose;

    #[test]
    fn purposes_round_trip_through_their_names() {
        for p in TokenPurpose::ALL {
            assert_eq!(TokenPurpose::from_name(p.as_str()), Some(p));
            assert_eq!(p.to_string(), p.as_str());
        }
        assert_eq!(TokenPurpose::from_name("VerifyEmail"), None);
        assert_eq!(TokenPurpose::from_name(""), None);
    }
}
