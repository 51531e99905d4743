use std::num::NonZeroU32;
use std::time::Duration;

use time::OffsetDateTime;

use crate::domain::{LoginFailures, PasswordPolicy};
use crate::error::ConfigError;
use crate::factor::SecondFactorPolicy;

/// When failed logins lock an identifier, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Consecutive failures that start the lock (default 5).
    pub threshold: u32,
    /// The first lock's length; each further failure doubles it (default 1 min).
    pub base_delay: Duration,
    /// The longest lock (default 1 h).
    pub max_delay: Duration,
    /// Failures older than this are forgotten (default 24 h).
    pub forget_after: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            threshold: 5,
            base_delay: Duration::from_secs(60),
            max_delay: Duration::from_secs(3600),
            forget_after: Duration::from_secs(24 * 3600),
        }
    }
}

impl LockoutPolicy {
    /// How long `failures` keep the identifier locked at `now`, if at all: nothing below the
    /// threshold, then `base_delay` doubling per further failure, capped at `max_delay`,
    /// counted from the last failure.
    pub fn retry_after(&self, failures: &LoginFailures, now: OffsetDateTime) -> Option<Duration> {
        if failures.count < self.threshold {
            return None;
        }
        let doublings = (failures.count - self.threshold).min(31);
        let delay = self
            .base_delay
            .saturating_mul(1 << doublings)
            .min(self.max_delay);
        let until = failures.last_failed_at + delay;
        (now < until).then(|| (until - now).unsigned_abs())
    }
}

/// Password reset and email verification: link lifetimes and how often they may be asked
/// for. The rate limits are counted in memory, per instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountPolicy {
    /// How long a password-reset link works (default 30 min).
    pub reset_token_ttl: Duration,
    /// How long an email-verification link works (default 24 h).
    pub verify_token_ttl: Duration,
    /// Password-reset requests per email address per hour, whether or not it names an
    /// account (default 5); `None` turns the limit off.
    pub reset_requests_per_address_per_hour: Option<NonZeroU32>,
    /// Password-reset requests per client address per hour (default 20); `None` turns the
    /// limit off.
    pub reset_requests_per_ip_per_hour: Option<NonZeroU32>,
    /// Verification links asked for again per email address per hour, signed in or by
    /// address (default 5); `None` turns the limit off.
    pub verification_resends_per_address_per_hour: Option<NonZeroU32>,
    /// Verification resends per client address per hour (default 20); `None` turns the
    /// limit off.
    pub verification_resends_per_ip_per_hour: Option<NonZeroU32>,
    /// Reset and verification requests by address whose lookup and mail may be in progress
    /// at once (default 256); beyond it, requests are refused as overloaded whatever the
    /// address, until some finish.
    pub max_pending_link_requests: usize,
}

impl Default for AccountPolicy {
    fn default() -> Self {
        Self {
            reset_token_ttl: Duration::from_secs(30 * 60),
            verify_token_ttl: Duration::from_secs(24 * 3600),
            reset_requests_per_address_per_hour: NonZeroU32::new(5),
            reset_requests_per_ip_per_hour: NonZeroU32::new(20),
            verification_resends_per_address_per_hour: NonZeroU32::new(5),
            verification_resends_per_ip_per_hour: NonZeroU32::new(20),
            max_pending_link_requests: 256,
        }
    }
}

/// Everything the auth services decide by policy rather than by code. Pure data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthPolicy {
    /// Rules for new passwords.
    pub password: PasswordPolicy,
    /// Failed-login lockout.
    pub lockout: LockoutPolicy,
    /// Lifetime of a JWT access token (default 15 min).
    pub access_token_ttl: Duration,
    /// Lifetime of a token session and so of its refresh tokens, counted from login
    /// (default 30 days). Rotation does not extend it.
    pub refresh_token_ttl: Duration,
    /// Lifetime of a browser session, counted from login (default 12 h).
    pub browser_session_ttl: Duration,
    /// A browser session unused for this long ends (default 30 min, as NIST SP 800-63B asks
    /// at AAL2 and Keycloak's default).
    pub browser_idle_timeout: Duration,
    /// A token session whose refresh token is not used for this long ends (default 14 days).
    pub token_idle_timeout: Duration,
    /// How long a device token keeps a client known to an account (default 90 days). See
    /// [`crate::domain::DeviceToken`].
    pub device_token_ttl: Duration,
    /// `iss` of the access tokens.
    pub issuer: String,
    /// `aud` of the access tokens.
    pub audience: String,
    /// Clock skew tolerated on `exp`, at most 5 s (default 5 s).
    pub leeway: Duration,
    /// Sign-in attempts allowed per client IP address per minute, whatever the identifier
    /// (default 30); `None` turns the limit off. Works with the per-identifier lockout: this
    /// one slows a client trying many identifiers.
    pub login_attempts_per_ip_per_minute: Option<std::num::NonZeroU32>,
    /// Registrations allowed per client address per hour (default 20, with bursts of that
    /// size); `None` turns the limit off. Each costs a password hash.
    pub registrations_per_ip_per_hour: Option<std::num::NonZeroU32>,
    /// Refuse sign-in with [`AuthError::EmailNotVerified`](crate::error::AuthError) until the
    /// account's email is verified (default `false`). Checked after the password, so only
    /// someone who knows it learns that the address is unverified.
    pub require_verified_email: bool,
    /// Password reset and email verification.
    pub account: AccountPolicy,
    /// Second factors: who must have one, challenge and trusted-device lifetimes.
    pub second_factor: SecondFactorPolicy,
}

impl Default for AuthPolicy {
    fn default() -> Self {
        Self {
            password: PasswordPolicy::default(),
            lockout: LockoutPolicy::default(),
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            browser_session_ttl: Duration::from_secs(12 * 3600),
            browser_idle_timeout: Duration::from_secs(30 * 60),
            token_idle_timeout: Duration::from_secs(14 * 24 * 3600),
            device_token_ttl: Duration::from_secs(90 * 24 * 3600),
            issuer: "user-management".to_owned(),
            audience: "user-management".to_owned(),
            leeway: Duration::from_secs(5),
            login_attempts_per_ip_per_minute: std::num::NonZeroU32::new(30),
            registrations_per_ip_per_hour: std::num::NonZeroU32::new(20),
            require_verified_email: false,
            account: AccountPolicy::default(),
            second_factor: SecondFactorPolicy::default(),
        }
    }
}

impl AuthPolicy {
    /// The largest accepted `leeway`.
    pub const MAX_LEEWAY: Duration = Duration::from_secs(5);

    /// The longest accepted lifetime, delay or timeout: ten years.
    pub const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

    /// Checks that every value is in its allowed range.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first setting out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = |setting, d: Duration| {
            if d.is_zero() {
                Err(ConfigError::new(setting, "must be longer than zero"))
            } else if d > Self::MAX_DURATION {
                Err(ConfigError::new(setting, "must be at most ten years"))
            } else {
                Ok(())
            }
        };
        positive("access_token_ttl", self.access_token_ttl)?;
        positive("refresh_token_ttl", self.refresh_token_ttl)?;
        positive("browser_session_ttl", self.browser_session_ttl)?;
        positive("browser_idle_timeout", self.browser_idle_timeout)?;
        positive("token_idle_timeout", self.token_idle_timeout)?;
        positive("device_token_ttl", self.device_token_ttl)?;
        positive(
            "second_factor.trusted_device_ttl",
            self.second_factor.trusted_device_ttl,
        )?;
        self.second_factor.validate()?;
        positive("lockout.base_delay", self.lockout.base_delay)?;
        positive("lockout.max_delay", self.lockout.max_delay)?;
        positive("lockout.forget_after", self.lockout.forget_after)?;
        positive("account.reset_token_ttl", self.account.reset_token_ttl)?;
        positive("account.verify_token_ttl", self.account.verify_token_ttl)?;
        if self.browser_idle_timeout < Duration::from_secs(60) {
            // Uses are recorded at most once a minute.
            return Err(ConfigError::new(
                "browser_idle_timeout",
                "must be at least one minute",
            ));
        }
        if self.lockout.threshold == 0 {
            return Err(ConfigError::new("lockout.threshold", "must be at least 1"));
        }
        if self.lockout.max_delay < self.lockout.base_delay {
            return Err(ConfigError::new(
                "lockout.max_delay",
                "must not be shorter than lockout.base_delay",
            ));
        }
        if self.leeway > Self::MAX_LEEWAY {
            return Err(ConfigError::new("leeway", "must be at most 5 seconds"));
        }
        if self.issuer.is_empty() || self.audience.is_empty() {
            return Err(ConfigError::new(
                "issuer",
                "issuer and audience must not be empty",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn failures(count: u32) -> LoginFailures {
        LoginFailures {
            count,
            last_failed_at: datetime!(2026-01-01 12:00 UTC),
        }
    }

    #[test]
    fn lock_starts_at_threshold_and_doubles_to_the_cap() {
        let p = LockoutPolicy::default();
        let t0 = datetime!(2026-01-01 12:00 UTC);
        assert_eq!(p.retry_after(&failures(4), t0), None);
        assert_eq!(
            p.retry_after(&failures(5), t0),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            p.retry_after(&failures(6), t0),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            p.retry_after(&failures(7), t0),
            Some(Duration::from_secs(240))
        );
        assert_eq!(
            p.retry_after(&failures(11), t0),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            p.retry_after(&failures(500), t0),
            Some(Duration::from_secs(3600))
        );
    }

    #[test]
    fn lock_counts_down_from_the_last_failure() {
        let p = LockoutPolicy::default();
        let t = datetime!(2026-01-01 12:00:45 UTC);
        assert_eq!(
            p.retry_after(&failures(5), t),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            p.retry_after(&failures(5), datetime!(2026-01-01 12:01 UTC)),
            None
        );
    }

    #[test]
    fn an_empty_issuer_or_audience_is_refused() {
        for (issuer, audience) in [("", "users"), ("accounts", ""), ("", "")] {
            let policy = AuthPolicy {
                issuer: issuer.to_owned(),
                audience: audience.to_owned(),
                ..AuthPolicy::default()
            };
            let err = policy.validate().unwrap_err();
            assert!(err.to_string().contains("issuer"), "{err}");
        }
        let named = AuthPolicy {
            issuer: "accounts".to_owned(),
            audience: "users".to_owned(),
            ..AuthPolicy::default()
        };
        assert_eq!(named.validate().map_err(|e| e.to_string()), Ok(()));
    }

    #[test]
    fn every_limit_is_inclusive() {
        let ten_years = Duration::from_secs(10 * 365 * 24 * 3600);
        let at_limits = AuthPolicy {
            device_token_ttl: ten_years,
            browser_idle_timeout: Duration::from_secs(60),
            leeway: Duration::from_secs(5),
            lockout: LockoutPolicy {
                max_delay: LockoutPolicy::default().base_delay,
                ..LockoutPolicy::default()
            },
            ..AuthPolicy::default()
        };
        assert_eq!(at_limits.validate().map_err(|e| e.setting), Ok(()));
        let over = |policy: AuthPolicy| policy.validate().map_err(|e| e.setting);
        assert_eq!(
            over(AuthPolicy {
                device_token_ttl: ten_years + Duration::from_secs(1),
                ..at_limits.clone()
            }),
            Err("device_token_ttl")
        );
        assert_eq!(
            over(AuthPolicy {
                browser_idle_timeout: Duration::from_secs(59),
                ..at_limits.clone()
            }),
            Err("browser_idle_timeout")
        );
    }

    #[test]
    fn defaults_are_valid_and_limits_enforced() {
        assert!(AuthPolicy::default().validate().is_ok());
        let bad = AuthPolicy {
            leeway: Duration::from_secs(6),
            ..AuthPolicy::default()
        };
        assert_eq!(bad.validate().unwrap_err().setting, "leeway");
        let bad = AuthPolicy {
            access_token_ttl: Duration::ZERO,
            ..AuthPolicy::default()
        };
        assert_eq!(bad.validate().unwrap_err().setting, "access_token_ttl");
        // Overflowing time arithmetic is refused at start, not met at the first sign-in.
        let bad = AuthPolicy {
            device_token_ttl: Duration::from_secs(u64::MAX / 4),
            ..AuthPolicy::default()
        };
        assert_eq!(bad.validate().unwrap_err().setting, "device_token_ttl");
        let bad = AuthPolicy {
            lockout: LockoutPolicy {
                max_delay: Duration::from_secs(u64::MAX / 4),
                ..LockoutPolicy::default()
            },
            ..AuthPolicy::default()
        };
        assert_eq!(bad.validate().unwrap_err().setting, "lockout.max_delay");
        let bad = AuthPolicy {
            browser_idle_timeout: Duration::from_secs(59),
            ..AuthPolicy::default()
        };
        assert_eq!(bad.validate().unwrap_err().setting, "browser_idle_timeout");
    }
}
