//! One-line messages shown once after a redirect, carried in a cookie as a code.

/// A message for the page after a redirect (post/redirect/get).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flash {
    Welcome,
    SignedOut,
    ProfileSaved,
    PasswordChanged,
    SessionEnded,
    RoleChanged,
    StatusChanged,
    UserSaved,
    UserDeleted,
    Unlocked,
    PasswordReset,
    EmailVerified,
    VerificationSent,
    VerificationRequested,
    ResetLinkSent,
    AccountDeleted,
    SignInExpired,
    SecondFactorOff,
    SecondFactorReset,
}

impl Flash {
    const ALL: [Self; 19] = [
        Self::Welcome,
        Self::SignedOut,
        Self::ProfileSaved,
        Self::PasswordChanged,
        Self::SessionEnded,
        Self::RoleChanged,
        Self::StatusChanged,
        Self::UserSaved,
        Self::UserDeleted,
        Self::Unlocked,
        Self::PasswordReset,
        Self::EmailVerified,
        Self::VerificationSent,
        Self::VerificationRequested,
        Self::ResetLinkSent,
        Self::AccountDeleted,
        Self::SignInExpired,
        Self::SecondFactorOff,
        Self::SecondFactorReset,
    ];

    /// The name of the cookie that carries the code.
    pub(crate) const COOKIE: &'static str = "flash";

    /// The code the cookie carries.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::Welcome => "welcome",
            Self::SignedOut => "signed-out",
            Self::ProfileSaved => "profile-saved",
            Self::PasswordChanged => "password-changed",
            Self::SessionEnded => "session-ended",
            Self::RoleChanged => "role-changed",
            Self::StatusChanged => "status-changed",
            Self::UserSaved => "user-saved",
            Self::UserDeleted => "user-deleted",
            Self::Unlocked => "unlocked",
            Self::PasswordReset => "password-reset",
            Self::EmailVerified => "email-verified",
            Self::VerificationSent => "verification-sent",
            Self::VerificationRequested => "verification-requested",
            Self::ResetLinkSent => "reset-link-sent",
            Self::AccountDeleted => "account-deleted",
            Self::SignInExpired => "sign-in-expired",
            Self::SecondFactorOff => "second-factor-off",
            Self::SecondFactorReset => "second-factor-reset",
        }
    }

    /// The flash a cookie's code names; an unknown code shows nothing.
    pub(crate) fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.code() == code)
    }

    /// The sentence shown.
    pub(crate) fn message(self) -> &'static str {
        match self {
            Self::Welcome => "Welcome! Your account is ready.",
            Self::SignedOut => "You are signed out.",
            Self::ProfileSaved => "Your profile was saved.",
            Self::PasswordChanged => {
                "Your password was changed. Your other sessions were signed out."
            }
            Self::SessionEnded => "That session was signed out.",
            Self::RoleChanged => "The role was changed.",
            Self::StatusChanged => "The status was changed.",
            Self::UserSaved => "The profile was saved.",
            Self::UserDeleted => "The user was deleted.",
            Self::Unlocked => "Sign-in was unlocked.",
            Self::PasswordReset => "Your password was changed. Sign in with your new password.",
            Self::EmailVerified => "Your email address is verified.",
            Self::VerificationSent => {
                "We sent a new confirmation link to your email address. It replaces older links."
            }
            Self::VerificationRequested => {
                "If an unconfirmed account has this address, a new link is on its way. \
                 It replaces older links."
            }
            Self::ResetLinkSent => "A password reset link was sent to the user's email address.",
            Self::AccountDeleted => "Your account was deleted.",
            Self::SignInExpired => {
                "This sign-in has expired or was already completed. Sign in again."
            }
            Self::SecondFactorOff => "Two-step sign-in is off.",
            Self::SecondFactorReset => {
                "The second factor was reset: the user signs in with their password alone, or \
                 sets up a new app if the policy requires one."
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Flash;

    #[test]
    fn every_code_reads_back_and_unknown_codes_show_nothing() {
        for flash in Flash::ALL {
            assert_eq!(Flash::from_code(flash.code()), Some(flash));
        }
        assert_eq!(Flash::from_code("<script>"), None);
    }
}
