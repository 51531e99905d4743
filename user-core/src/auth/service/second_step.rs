//! The second step of a sign-in: a code from the authenticator app or a recovery code, or,
//! when the policy requires a factor the account lacks, enrolment.

use std::sync::Arc;

use secrecy::{ExposeSecret as _, SecretString};
use time::OffsetDateTime;

use super::{AuthService, BrowserLogin, TokenPair, new_secret};
use crate::account::greeting;
use crate::auth::budget::std_to_time;
use crate::domain::{
    AuditEvent, AuditKind, ChallengePurpose, ClientInfo, SignInChallenge, ThrottleKey, TokenHash,
    User, UserStatus,
};
use crate::error::{AuthError, RepoError};
use crate::factor::{TotpAuthenticator, TotpSetup, TypedCode, new_recovery_codes};
use crate::metrics as names;
use crate::ports::Notice;

/// What the password step of a sign-in gave.
#[derive(Debug)]
pub enum SignIn<T> {
    /// Signed in: the account needs nothing more (no factor, or a trusted device).
    Complete(T),
    /// The password was right; the account needs a second step before a session exists.
    SecondStep(Challenge),
}

/// A short-lived, single-use handle on a sign-in whose password step passed. It is not a
/// session and grants nothing but the second step.
#[derive(Debug)]
pub struct Challenge {
    /// The opaque value to send back with the code (only its hash is stored).
    pub token: SecretString,
    /// What the second step must bring: a code, or an enrolment.
    pub purpose: ChallengePurpose,
    /// When it stops working.
    pub expires_at: OffsetDateTime,
}

/// The second step as the client sends it.
#[derive(Debug, Clone)]
pub struct SecondStep {
    /// [`Challenge::token`].
    pub challenge: SecretString,
    /// The six-digit code from the app, or a recovery code (`xxxx-xxxx-xxxx-xxxx-xxxx-xxxx`; at the
    /// enrolment of a new app, a code from it).
    pub code: SecretString,
    /// The client's device token, as at the password step: renewed when it vouched then.
    pub device_token: Option<SecretString>,
    /// Trust this device: skip the second step at its sign-ins for
    /// [`SecondFactorPolicy::trusted_device_ttl`](crate::factor::SecondFactorPolicy).
    pub trust_device: bool,
}

impl SecondStep {
    /// A second step without device token or trust.
    pub fn new(challenge: SecretString, code: SecretString) -> Self {
        Self {
            challenge,
            code,
            device_token: None,
            trust_device: false,
        }
    }
}

/// What [`AuthService`]'s credential check decided.
pub(super) enum Passed {
    /// Signed in, with the device token to give the client.
    Complete(User, SecretString),
    /// A second step is needed.
    Challenge(Challenge),
}

/// A second step that passed.
struct Proven {
    user: User,
    device_token: SecretString,
    /// The recovery codes of a new enrolment, to show once.
    recovery_codes: Vec<SecretString>,
}

impl AuthService {
    /// The second step `user` needs after a right password, if any.
    pub(super) async fn second_step(
        &self,
        user: &User,
        device: Option<&TokenHash>,
        now: OffsetDateTime,
    ) -> Result<Option<ChallengePurpose>, AuthError> {
        match self.ports.factors.factor(user.id).await {
            Ok(factor) if factor.is_confirmed() => {
                if let Some(device) = device
                    && self.ports.factors.is_trusted(device, user.id, now).await?
                {
                    return Ok(None);
                }
                Ok(Some(ChallengePurpose::SecondFactor))
            }
            Ok(_) | Err(RepoError::NotFound) => Ok(self
                .policy
                .second_factor
                .requires(user.role)
                .then_some(ChallengePurpose::Enrolment)),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores a new challenge for `user`.
    pub(super) async fn challenge(
        &self,
        user: &User,
        purpose: ChallengePurpose,
        device: Option<TokenHash>,
        now: OffsetDateTime,
    ) -> Result<Challenge, AuthError> {
        let token = new_secret()?;
        let expires_at = now + std_to_time(self.policy.second_factor.challenge_ttl);
        let challenge = SignInChallenge {
            user_id: user.id,
            purpose,
            device,
            created_at: now,
            expires_at,
        };
        self.ports
            .factors
            .create_challenge(&TokenHash::of(token.expose_secret()), &challenge)
            .await?;
        Ok(Challenge {
            token,
            purpose,
            expires_at,
        })
    }

    /// The second step of an API or gRPC client's sign-in: a token session once the code is
    /// right. The challenge survives a wrong code (until it expires); each wrong code counts
    /// on the same guess budget as a wrong password (the device's when the client's device
    /// token vouched at the password step, else the account's), and the budget is cleared
    /// only here, on success.
    ///
    /// # Errors
    /// [`AuthError::ChallengeExpired`] for an unknown, used or expired challenge (or one whose
    /// account was disabled or lost its factor since); [`AuthError::InvalidCode`] for a
    /// wrong, replayed or malformed code; [`AuthError::Throttled`] while the budget is
    /// locked.
    pub async fn complete_sign_in(
        &self,
        step: SecondStep,
        client: ClientInfo,
    ) -> Result<TokenPair, AuthError> {
        let proven = self
            .prove(&step, &client, ChallengePurpose::SecondFactor)
            .await?;
        self.token_session(proven.user, client, Some(proven.device_token))
            .await
    }

    /// The second step of a browser's sign-in; see
    /// [`complete_sign_in`](Self::complete_sign_in).
    ///
    /// # Errors
    /// As [`AuthService::complete_sign_in`].
    pub async fn complete_sign_in_browser(
        &self,
        step: SecondStep,
        client: ClientInfo,
    ) -> Result<BrowserLogin, AuthError> {
        let proven = self
            .prove(&step, &client, ChallengePurpose::SecondFactor)
            .await?;
        self.browser_session(proven.user, client, proven.device_token)
            .await
    }

    /// Starts the enrolment a challenge of purpose [`ChallengePurpose::Enrolment`] asks for:
    /// a new secret for the app. Asking again replaces the secret.
    ///
    /// # Errors
    /// [`AuthError::ChallengeExpired`] for a challenge that does not work (or is not for
    /// enrolment, or whose account has a factor by now).
    pub async fn start_enrolment(&self, challenge: &SecretString) -> Result<TotpSetup, AuthError> {
        let now = self.ports.clock.now();
        let (_, user) = self
            .live_challenge(challenge, ChallengePurpose::Enrolment, now)
            .await?;
        let totp = self.totp()?;
        let (factor, setup) = totp
            .new_factor(user.id, user.username.as_str(), now)
            .map_err(AuthError::Internal)?;
        if !self.ports.factors.begin_enrolment(&factor).await? {
            return Err(AuthError::ChallengeExpired);
        }
        tracing::info!(user_id = %user.id, "enrolment started at sign-in");
        Ok(setup)
    }

    /// Completes an enrolment at sign-in with a code from the new app: the factor is on, the
    /// client is signed in with a token session, and the ten recovery codes come back, to be
    /// shown once.
    ///
    /// # Errors
    /// As [`AuthService::complete_sign_in`]; [`AuthError::ChallengeExpired`] also when
    /// [`start_enrolment`](Self::start_enrolment) was not called.
    pub async fn complete_enrolment(
        &self,
        step: SecondStep,
        client: ClientInfo,
    ) -> Result<(TokenPair, Vec<SecretString>), AuthError> {
        let proven = self
            .prove(&step, &client, ChallengePurpose::Enrolment)
            .await?;
        let pair = self
            .token_session(proven.user, client, Some(proven.device_token))
            .await?;
        Ok((pair, proven.recovery_codes))
    }

    /// [`complete_enrolment`](Self::complete_enrolment) for a browser.
    ///
    /// # Errors
    /// As [`AuthService::complete_enrolment`].
    pub async fn complete_enrolment_browser(
        &self,
        step: SecondStep,
        client: ClientInfo,
    ) -> Result<(BrowserLogin, Vec<SecretString>), AuthError> {
        let proven = self
            .prove(&step, &client, ChallengePurpose::Enrolment)
            .await?;
        let login = self
            .browser_session(proven.user, client, proven.device_token)
            .await?;
        Ok((login, proven.recovery_codes))
    }

    fn totp(&self) -> Result<&Arc<TotpAuthenticator>, AuthError> {
        self.totp
            .as_ref()
            .ok_or_else(|| AuthError::Internal("second factors are not configured".into()))
    }

    /// The challenge stored for `token` when it works now and serves `purpose`, and its
    /// account when still active.
    async fn live_challenge(
        &self,
        token: &SecretString,
        purpose: ChallengePurpose,
        now: OffsetDateTime,
    ) -> Result<(SignInChallenge, User), AuthError> {
        let hash = TokenHash::of(token.expose_secret());
        let challenge = match self.ports.factors.find_challenge(&hash, now).await {
            Ok(c) if c.purpose == purpose => c,
            Ok(_) | Err(RepoError::NotFound) => return Err(AuthError::ChallengeExpired),
            Err(e) => return Err(e.into()),
        };
        match self.ports.users.get(challenge.user_id).await {
            // An account changed since the password step (a password reset or change, say)
            // ends its pending challenges.
            Ok(user)
                if user.status == UserStatus::Active && user.updated_at <= challenge.created_at =>
            {
                Ok((challenge, user))
            }
            Ok(_) | Err(RepoError::NotFound) => Err(AuthError::ChallengeExpired),
            Err(e) => Err(e.into()),
        }
    }

    /// Checks the second step against its challenge and the guess budget, and on success
    /// spends the challenge, clears the budget and renews (or issues) the device token.
    async fn prove(
        &self,
        step: &SecondStep,
        client: &ClientInfo,
        purpose: ChallengePurpose,
    ) -> Result<Proven, AuthError> {
        let now = self.ports.clock.now();
        let (challenge, user) = self.live_challenge(&step.challenge, purpose, now).await?;
        let totp = self.totp()?;
        let (key, budget) = match &challenge.device {
            Some(device) => (ThrottleKey::device(device), "device"),
            None => (ThrottleKey::account(user.id), "account"),
        };
        let reserved = match self.budget.reserve(&key, now).await {
            Ok(reserved) => reserved,
            Err(e) => {
                if matches!(e, AuthError::Throttled { .. }) {
                    self.second_step_failed(&user, client, "locked", now).await;
                }
                return Err(e);
            }
        };
        let verdict = match purpose {
            ChallengePurpose::SecondFactor => self.check_code(totp, &user, &step.code, now).await,
            ChallengePurpose::Enrolment => self.check_enrolment(totp, &user, &step.code, now).await,
        };
        let (method, recovery_codes) = match verdict {
            Ok(Some(found)) => found,
            Ok(None) => {
                if self.budget.locks(&reserved.failures) {
                    metrics::counter!(names::LOCKOUTS_TOTAL).increment(1);
                }
                tracing::warn!(
                    client_ip = client.ip.as_deref().unwrap_or("-"),
                    user_id = %user.id,
                    budget,
                    failures = reserved.failures.count,
                    outcome = "wrong_code",
                    "second step failed"
                );
                metrics::counter!(names::LOGINS_TOTAL, "outcome" => "invalid_code").increment(1);
                self.second_step_failed(&user, client, "wrong_code", now)
                    .await;
                return Err(AuthError::InvalidCode);
            }
            Err(e) => {
                self.budget.release(&key, reserved).await;
                return Err(e);
            }
        };
        let hash = TokenHash::of(step.challenge.expose_secret());
        match self.ports.factors.consume_challenge(&hash, now).await {
            Ok(_) => {}
            Err(RepoError::NotFound) => return Err(AuthError::ChallengeExpired),
            Err(e) => return Err(e.into()),
        }
        self.budget.clear(&key).await?;
        let device_token = self
            .device_token(challenge.device, step.device_token.as_ref(), user.id, now)
            .await?;
        let mut detail = format!("{budget}, {method}");
        if step.trust_device {
            let until = now + std_to_time(self.policy.second_factor.trusted_device_ttl);
            let device = TokenHash::of(device_token.expose_secret());
            self.ports
                .factors
                .trust_device(&device, user.id, until)
                .await?;
            detail.push_str(", device trusted");
        }
        metrics::counter!(names::LOGINS_TOTAL, "outcome" => "success").increment(1);
        if purpose == ChallengePurpose::Enrolment {
            // Sessions from before the factor was on end, as at an enrolment from the profile.
            self.ports.sessions.revoke_all(user.id, None, now).await?;
            let event = AuditEvent::new(AuditKind::SecondFactorEnabled, now)
                .on(user.id)
                .by_user(user.id)
                .from_client(client)
                .detail("at sign-in");
            self.ports.audit(event).await;
            // Whoever knew the password enrolled this app: the owner hears of it.
            let notice = Notice::SecondFactorChanged {
                name: greeting(&user),
                enabled: true,
                by_admin: false,
            };
            self.notices.send(&user, notice, &user.email).await;
        }
        let event = AuditEvent::new(AuditKind::SignIn, now)
            .on(user.id)
            .by_user(user.id)
            .from_client(client)
            .detail(detail);
        self.ports.audit(event).await;
        tracing::info!(user_id = %user.id, method, "second step passed");
        Ok(Proven {
            user,
            device_token,
            recovery_codes,
        })
    }

    /// `Some(method)` when `code` is a right, unused code of the user's confirmed factor or
    /// one of their recovery codes (spent here), `None` when it is not.
    async fn check_code(
        &self,
        totp: &TotpAuthenticator,
        user: &User,
        code: &SecretString,
        now: OffsetDateTime,
    ) -> Result<Option<(&'static str, Vec<SecretString>)>, AuthError> {
        let Some(typed) = TypedCode::parse(code.expose_secret()) else {
            return Ok(None);
        };
        let found = match typed {
            TypedCode::Totp(code) => {
                let factor = match self.ports.factors.factor(user.id).await {
                    Ok(factor) if factor.is_confirmed() => factor,
                    Ok(_) | Err(RepoError::NotFound) => return Err(AuthError::ChallengeExpired),
                    Err(e) => return Err(e.into()),
                };
                match totp
                    .check(&factor, code, now)
                    .map_err(AuthError::Internal)?
                {
                    Some(step) => self.ports.factors.use_step(user.id, step).await?,
                    None => false,
                }
                .then_some("authenticator app")
            }
            TypedCode::Recovery(hash) => {
                let used = self.ports.factors.use_recovery_code(user.id, &hash).await?;
                used.then_some("recovery code")
            }
        };
        Ok(found.map(|method| (method, Vec::new())))
    }

    /// `Some` with the new recovery codes when `code` is right for the user's pending
    /// enrolment, which is then confirmed.
    async fn check_enrolment(
        &self,
        totp: &TotpAuthenticator,
        user: &User,
        code: &SecretString,
        now: OffsetDateTime,
    ) -> Result<Option<(&'static str, Vec<SecretString>)>, AuthError> {
        let factor = match self.ports.factors.factor(user.id).await {
            Ok(factor) if !factor.is_confirmed() => factor,
            Ok(_) | Err(RepoError::NotFound) => return Err(AuthError::ChallengeExpired),
            Err(e) => return Err(e.into()),
        };
        let Some(TypedCode::Totp(code)) = TypedCode::parse(code.expose_secret()) else {
            return Ok(None);
        };
        let Some(step) = totp
            .check(&factor, code, now)
            .map_err(AuthError::Internal)?
        else {
            return Ok(None);
        };
        let (plain, hashes) = new_recovery_codes().map_err(AuthError::Internal)?;
        match self
            .ports
            .factors
            .confirm_enrolment(user.id, step, &hashes, now)
            .await
        {
            Ok(()) => Ok(Some(("new authenticator app", plain))),
            Err(RepoError::NotFound) => Err(AuthError::ChallengeExpired),
            Err(e) => Err(e.into()),
        }
    }

    async fn second_step_failed(
        &self,
        user: &User,
        client: &ClientInfo,
        why: &str,
        now: OffsetDateTime,
    ) {
        let event = AuditEvent::new(AuditKind::SignIn, now)
            .failed()
            .on(user.id)
            .from_client(client)
            .detail(format!("second step: {why}"));
        self.ports.audit(event).await;
    }
}
