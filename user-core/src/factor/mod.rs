//! Second factors: authenticator apps (TOTP, RFC 6238: SHA-1, 6 digits, 30-second steps, the
//! parameters every app accepts) with single-use recovery codes.
//!
//! - [`FactorKey`]: the key that seals each user's TOTP secret before storage
//!   (XChaCha20-Poly1305, bound to the user's id, so a secret copied to another row does not
//!   open). From the configuration: [`crate::auth::key_files::load_or_create_factor_key`]
//!   keeps one in a file.
//! - [`SecondFactorPolicy`]: who must have a factor, how long a sign-in challenge and a
//!   trusted browser last.
//! - Enrolment, recovery codes and removal are [`crate::users::UserService`] operations (the
//!   owner's, password required; an admin's reset); the two-step sign-in is
//!   [`crate::auth::AuthService::sign_in`] and [`crate::auth::AuthService::complete_sign_in`].

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret as _, SecretBox, SecretString};
use time::OffsetDateTime;

use crate::domain::{RecoveryCode, Role, TokenHash, TotpFactor, UserId};
use crate::error::{Cause, ConfigError};

#[cfg(test)]
mod tests;

/// Who must sign in with a second factor, and how long its pieces live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecondFactorPolicy {
    /// Admins without a factor are sent to enrolment at their next sign-in (default off: a
    /// deployment turns it on once its admins can enrol).
    pub required_for_admins: bool,
    /// Everyone without a factor is sent to enrolment at their next sign-in (default off).
    pub required_for_everyone: bool,
    /// How long the second step of a sign-in may wait after the password step (default 5
    /// minutes).
    pub challenge_ttl: Duration,
    /// How long a browser (or client) the user chose to trust skips the second step (default
    /// 30 days).
    pub trusted_device_ttl: Duration,
    /// The name authenticator apps show beside the account (default `user-management`; no
    /// colon).
    pub issuer: String,
}

impl Default for SecondFactorPolicy {
    fn default() -> Self {
        Self {
            required_for_admins: false,
            required_for_everyone: false,
            challenge_ttl: Duration::from_secs(5 * 60),
            trusted_device_ttl: Duration::from_secs(30 * 24 * 3600),
            issuer: "user-management".to_owned(),
        }
    }
}

impl SecondFactorPolicy {
    /// Whether a user with `role` must have a factor.
    pub fn requires(&self, role: Role) -> bool {
        self.required_for_everyone || (self.required_for_admins && role == Role::Admin)
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.challenge_ttl < Duration::from_secs(30)
            || self.challenge_ttl > Duration::from_secs(3600)
        {
            return Err(ConfigError::new(
                "second_factor.challenge_ttl",
                "must be between 30 seconds and 1 hour",
            ));
        }
        if self.issuer.is_empty() || self.issuer.len() > 64 || self.issuer.contains(':') {
            return Err(ConfigError::new(
                "second_factor.issuer",
                "must be 1 to 64 characters without a colon",
            ));
        }
        Ok(())
    }
}

/// The 256-bit key that seals TOTP secrets at rest. Keep it apart from the database (a file
/// of its own, a secret store): a copy of the database without it reveals no secret. Every
/// instance serving one database needs the same key.
pub struct FactorKey(SecretBox<[u8; 32]>);

impl fmt::Debug for FactorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FactorKey([REDACTED])")
    }
}

/// Why a sealed secret could not be opened, or a secret not sealed. Never holds the secret.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The sealed bytes are not of a known version, or were sealed for another user or under
    /// another key, or were altered.
    #[error("the sealed second-factor secret cannot be opened with this key")]
    Unreadable,
    /// The random source failed.
    #[error("the random source failed")]
    Random(#[source] Cause),
}

impl FactorKey {
    /// The version byte that starts every sealed secret.
    const VERSION: u8 = 1;

    /// A fresh random key.
    ///
    /// # Errors
    /// When the system's random source fails.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = Box::new([0u8; 32]);
        getrandom::fill(bytes.as_mut())?;
        Ok(Self(SecretBox::new(bytes)))
    }

    /// The key in `text`: 32 bytes in standard base64 (surrounding whitespace ignored).
    ///
    /// # Errors
    /// [`ConfigError`] when `text` is not 32 bytes of base64.
    pub fn from_base64(text: &str) -> Result<Self, ConfigError> {
        let bytes = STANDARD
            .decode(text.trim())
            .ok()
            .map(Zeroizing::new)
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
            .ok_or_else(|| ConfigError::new("second_factor_key", "must be 32 bytes in base64"))?;
        Ok(Self(SecretBox::new(Box::new(bytes))))
    }

    /// The key as standard base64, for a key file.
    pub fn to_base64(&self) -> SecretString {
        SecretString::from(STANDARD.encode(self.0.expose_secret()))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(Key::from_slice(self.0.expose_secret()))
    }

    fn aad(user: UserId) -> Vec<u8> {
        let mut aad = b"user-management totp secret v1 ".to_vec();
        aad.extend_from_slice(user.as_uuid().as_bytes());
        aad
    }

    /// Seals `secret` for `user`: version byte, 24-byte random nonce, ciphertext and tag.
    pub(crate) fn seal(&self, user: UserId, secret: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce).map_err(|e| SealError::Random(Box::new(e)))?;
        let aad = Self::aad(user);
        let sealed = self
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: secret,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Unreadable)?;
        let mut out = Vec::with_capacity(1 + nonce.len() + sealed.len());
        out.push(Self::VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens what [`FactorKey::seal`] sealed for `user`.
    pub(crate) fn open(&self, user: UserId, sealed: &[u8]) -> Result<SecretBox<[u8]>, SealError> {
        let (version, rest) = sealed.split_first().ok_or(SealError::Unreadable)?;
        if *version != Self::VERSION || rest.len() < 24 {
            return Err(SealError::Unreadable);
        }
        let (nonce, ciphertext) = rest.split_at(24);
        let aad = Self::aad(user);
        let plain = self
            .cipher()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Unreadable)?;
        Ok(SecretBox::from(plain.into_boxed_slice()))
    }
}

/// What an authenticator app needs to be set up: the secret as base32 text (to type in) and
/// as an `otpauth://` URI (for a QR code). Shown once, at enrolment.
pub struct TotpSetup {
    /// The shared secret, base32 without padding.
    pub secret: SecretString,
    /// `otpauth://totp/Issuer:account?secret=...&issuer=...`, what a QR code carries.
    pub uri: SecretString,
    /// The issuer the app shows.
    pub issuer: String,
    /// The account name the app shows (the username).
    pub account: String,
}

impl fmt::Debug for TotpSetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpSetup")
            .field("issuer", &self.issuer)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

/// A user's second factor as they may see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FactorStatus {
    /// When the authenticator app was enrolled; `None` when the user has no factor.
    pub enabled_at: Option<OffsetDateTime>,
    /// Whether an enrolment was started and not confirmed yet.
    pub pending: bool,
    /// Unused recovery codes.
    pub recovery_codes_left: u32,
    /// Whether the policy requires this user to have a factor.
    pub required: bool,
}

/// What a person typed at the second step: a six-digit code from the app, or a recovery
/// code (`xxxx-xxxx-xxxx-xxxx-xxxx-xxxx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TypedCode {
    Totp(u32),
    Recovery(TokenHash),
}

impl TypedCode {
    /// `None` when it is neither.
    pub(crate) fn parse(typed: &str) -> Option<Self> {
        let digits: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
        if digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit()) {
            return digits.parse().ok().map(Self::Totp);
        }
        RecoveryCode::hash(typed).map(Self::Recovery)
    }
}

/// TOTP with the configured key and issuer: new secrets, setup data, code checks. Give one
/// (in an `Arc`) to [`crate::auth::AuthService::with_second_factors`] and
/// [`crate::users::UserService::with_second_factors`]; [`crate::Services::builder`] does it.
pub struct TotpAuthenticator {
    key: FactorKey,
    issuer: String,
}

impl fmt::Debug for TotpAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpAuthenticator")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// Bytes of a new TOTP secret: 160 bits, as RFC 4226 recommends.
const SECRET_BYTES: usize = 20;

impl TotpAuthenticator {
    /// TOTP sealed under `key`, shown in apps as `issuer`.
    pub fn new(key: FactorKey, issuer: impl Into<String>) -> Self {
        let issuer = issuer.into();
        Self { key, issuer }
    }

    fn totp(&self, secret: &[u8], account: &str) -> Result<totp_rs::Totp, Cause> {
        totp_rs::Builder::new()
            .with_secret(secret.to_vec())
            .with_account_name(account)
            .with_issuer(Some(self.issuer.as_str()))
            .build()
            .map_err(|e| Cause::from(e.to_string()))
    }

    /// A new secret for `user`, sealed for storage, with what the app needs to know.
    pub(crate) fn new_factor(
        &self,
        user: UserId,
        account: &str,
        now: OffsetDateTime,
    ) -> Result<(TotpFactor, TotpSetup), Cause> {
        let mut secret = vec![0u8; SECRET_BYTES];
        getrandom::fill(&mut secret).map_err(|e| Cause::from(e.to_string()))?;
        let secret = SecretBox::from(secret.into_boxed_slice());
        let totp = self.totp(secret.expose_secret(), account)?;
        let uri = totp.to_url().map_err(|e| Cause::from(e.to_string()))?;
        let setup = TotpSetup {
            secret: SecretString::from(totp.secret().to_base32()),
            uri: SecretString::from(uri),
            issuer: self.issuer.clone(),
            account: account.to_owned(),
        };
        let factor = TotpFactor {
            user_id: user,
            sealed_secret: self.key.seal(user, secret.expose_secret())?,
            created_at: now,
            confirmed_at: None,
            last_used_step: None,
        };
        Ok((factor, setup))
    }

    /// The step whose code `code` is for `factor`, within one step of `now` either way (clock
    /// drift), if any. Whether the step was used before is the caller's to check.
    pub(crate) fn check(
        &self,
        factor: &TotpFactor,
        code: u32,
        now: OffsetDateTime,
    ) -> Result<Option<i64>, Cause> {
        let secret = self.key.open(factor.user_id, &factor.sealed_secret)?;
        let totp = self.totp(secret.expose_secret(), "")?;
        let Ok(time) = u64::try_from(now.unix_timestamp()) else {
            return Ok(None);
        };
        let typed = format!("{code:06}");
        Ok(totp
            .check(&typed, time)
            .and_then(|step| i64::try_from(step).ok()))
    }
}

/// The six-digit code an authenticator app shows at `time` for the base32 `secret` (as
/// [`TotpSetup::secret`] gives it): what tests type in place of a person.
#[cfg(any(test, feature = "testing"))]
pub fn totp_code(secret_base32: &str, time: OffsetDateTime) -> String {
    let secret = totp_rs::Secret::try_from_base32(secret_base32)
        .unwrap_or_else(|_| totp_rs::Secret::from(Vec::new()));
    let totp = totp_rs::Builder::new()
        .with_secret(secret)
        .build_noncompliant();
    let time = u64::try_from(time.unix_timestamp()).unwrap_or_default();
    totp.generate(time).to_string()
}

/// Ten fresh recovery codes: the plain codes to show once, and their hashes to store.
pub(crate) fn new_recovery_codes() -> Result<(Vec<SecretString>, Vec<TokenHash>), Cause> {
    let mut plain = Vec::with_capacity(RecoveryCode::COUNT);
    let mut hashes = Vec::with_capacity(RecoveryCode::COUNT);
    while plain.len() < RecoveryCode::COUNT {
        let code = RecoveryCode::generate().map_err(|e| Cause::from(e.to_string()))?;
        let hash =
            RecoveryCode::hash(&code).ok_or_else(|| Cause::from("a code that does not parse"))?;
        if !hashes.contains(&hash) {
            hashes.push(hash);
            plain.push(SecretString::from(code));
        }
    }
    Ok((plain, hashes))
}
