//! Second factors: an authenticator app (TOTP, RFC 6238) with single-use recovery codes, and
//! the short-lived challenge that sits between the password step and the code step of a
//! sign-in.

use std::fmt;

use time::OffsetDateTime;

use super::{TokenHash, UserId};

/// A user's authenticator-app factor as stored. The secret is sealed by the core (an AEAD
/// under a key from the configuration, bound to the user's id) before any adapter sees it.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpFactor {
    /// Whose factor it is.
    pub user_id: UserId,
    /// The sealed shared secret: opaque bytes to storage.
    pub sealed_secret: Vec<u8>,
    /// When enrolment started.
    pub created_at: OffsetDateTime,
    /// When the user proved the app works by entering a valid code; `None` while enrolment is
    /// pending (such a factor does not count at sign-in).
    pub confirmed_at: Option<OffsetDateTime>,
    /// The last time step (Unix seconds / 30) whose code was accepted: a code of this step or
    /// an earlier one is refused (replay).
    pub last_used_step: Option<i64>,
}

impl TotpFactor {
    /// Whether enrolment is complete.
    pub fn is_confirmed(&self) -> bool {
        self.confirmed_at.is_some()
    }
}

impl fmt::Debug for TotpFactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpFactor")
            .field("user_id", &self.user_id)
            .field("sealed_secret", &"[REDACTED]")
            .field("created_at", &self.created_at)
            .field("confirmed_at", &self.confirmed_at)
            .field("last_used_step", &self.last_used_step)
            .finish()
    }
}

/// What the second step of a sign-in asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChallengePurpose {
    /// A code from the user's authenticator app, or a recovery code.
    SecondFactor,
    /// The policy requires a factor and the user has none: enrol one, then sign in.
    Enrolment,
}

impl ChallengePurpose {
    /// Every purpose.
    pub const ALL: [Self; 2] = [Self::SecondFactor, Self::Enrolment];

    /// The stable name storage adapters keep: `second_factor` or `enrolment`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SecondFactor => "second_factor",
            Self::Enrolment => "enrolment",
        }
    }

    /// The purpose named by [`ChallengePurpose::as_str`], if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl fmt::Display for ChallengePurpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state between a right password and the second step: not a session, not a token.
/// Stored by the SHA-256 of its secret; it dies when used or when it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInChallenge {
    /// Who passed the password step.
    pub user_id: UserId,
    /// What the second step must bring.
    pub purpose: ChallengePurpose,
    /// The device token the client presented at the password step, when it vouched for the
    /// user: wrong codes then count on the device's guess budget, and a successful second
    /// step renews that device token instead of issuing a new one.
    pub device: Option<TokenHash>,
    /// When the password step passed.
    pub created_at: OffsetDateTime,
    /// The first instant it no longer works.
    pub expires_at: OffsetDateTime,
}

/// Recovery codes: ten per enrolment, shown once, stored as SHA-256 hashes, each good once.
/// Each is `xxxx-xxxx-xxxx-xxxx-xxxx-xxxx`.
pub struct RecoveryCode;

impl RecoveryCode {
    /// How many are issued at a time.
    pub const COUNT: usize = 10;

    /// Crockford's base-32 symbols, lowercase (no `i l o u`; 5 bits each). As typed, `o` is
    /// read as `0` and `i`, `l` as `1`.
    const ALPHABET: &'static [u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

    /// Twenty-four symbols (120 random bits, above the 112 that lets a plain SHA-256 stand
    /// in for a salted password hash, per OWASP ASVS 5.0 6.5.2), shown as six groups of four.
    const LENGTH: usize = 24;

    /// Draws a fresh code from the system's random source.
    ///
    /// # Errors
    /// When the random source fails.
    pub fn generate() -> Result<String, getrandom::Error> {
        let mut bytes = [0u8; Self::LENGTH];
        getrandom::fill(&mut bytes)?;
        let mut code = String::with_capacity(Self::LENGTH + 2);
        for (i, b) in bytes.iter().enumerate() {
            if i > 0 && i % 4 == 0 {
                code.push('-');
            }
            code.push(char::from(Self::ALPHABET[usize::from(b & 31)]));
        }
        Ok(code)
    }

    /// The stored form of a code as typed: case, spaces and dashes do not matter.
    /// `None` when it cannot be a recovery code (wrong length or symbols).
    pub fn hash(typed: &str) -> Option<TokenHash> {
        let normal: String = typed
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .map(|c| match c.to_ascii_lowercase() {
                'o' => '0',
                'i' | 'l' => '1',
                c => c,
            })
            .collect();
        let valid =
            normal.len() == Self::LENGTH && normal.bytes().all(|b| Self::ALPHABET.contains(&b));
        valid.then(|| TokenHash::of(&normal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_round_trip_through_their_names() {
        for p in ChallengePurpose::ALL {
            assert_eq!(ChallengePurpose::from_name(p.as_str()), Some(p));
            assert_eq!(p.to_string(), p.as_str());
        }
        assert_eq!(ChallengePurpose::SecondFactor.to_string(), "second_factor");
        assert_eq!(ChallengePurpose::from_name("SecondFactor"), None);
    }

    #[test]
    fn recovery_codes_are_distinct_well_formed_and_hash_as_typed() {
        let a = RecoveryCode::generate().unwrap();
        let b = RecoveryCode::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 29, "{a}");
        assert_eq!(a.matches('-').count(), 5, "{a}");
        let hash = RecoveryCode::hash(&a).unwrap();
        assert_eq!(RecoveryCode::hash(&a.to_uppercase()), Some(hash));
        assert_eq!(RecoveryCode::hash(&a.replace('-', " ")), Some(hash));
        assert_ne!(RecoveryCode::hash(&b), Some(hash));
    }

    #[test]
    fn what_cannot_be_a_recovery_code_has_no_hash() {
        for typed in [
            "",
            "123456",
            "abcd-efgh-jkm",
            "abcd-efgh-jkmn-p",
            "abcd-efgh-jkmu",
            "abcd-efgh-jkm!",
        ] {
            assert_eq!(RecoveryCode::hash(typed), None, "{typed}");
        }
        assert_eq!(
            RecoveryCode::hash("ab0d-e1gh-jk1n"),
            RecoveryCode::hash("ABOD EIGH JKLN")
        );
    }

    #[test]
    fn the_secret_stays_out_of_debug_output() {
        let factor = TotpFactor {
            user_id: UserId::new(),
            sealed_secret: vec![0xAB; 8],
            created_at: OffsetDateTime::UNIX_EPOCH,
            confirmed_at: None,
            last_used_step: None,
        };
        let shown = format!("{factor:?}");
        assert!(
            // 0xAB is 171; the bytes as a list, not a 171 somewhere in the random id.
            shown.contains("REDACTED") && !shown.contains("171, 171") && !shown.contains("ab, ab"),
            "{shown}"
        );
    }
}
