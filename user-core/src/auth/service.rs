use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;
use tokio::sync::OnceCell;

use super::budget::{GuessBudget, std_to_time};
use super::keys::{Jwks, SigningKey, TokenKeys, VerifyingKey};
use super::limit::AddressLimit;
use super::policy::AuthPolicy;
use crate::Ports;
use crate::account::{Notices, greeting};
use crate::domain::{
    Actor, AuditEvent, AuditKind, ClientInfo, DeviceToken, DisplayName, Email, LoginFailures,
    NewSession, NewUser, Password, PasswordHash, PasswordPolicy, Role, Rotation, Session,
    SessionId, SessionKind, ThrottleKey, TokenHash, User, UserId, UserStatus, Username,
};
use crate::error::{AuthError, ConfigError, HashError, RepoError, ValidationErrors};
use crate::factor::TotpAuthenticator;
use crate::metrics as names;
use crate::ports::{Identifier, MailComposer, Notice, Verification};

/// A registration form.
#[derive(Debug, Clone)]
pub struct RegisterUser {
    /// Wanted username.
    pub username: String,
    /// Email address.
    pub email: String,
    /// New password, checked against the policy.
    pub password: SecretString,
    /// Optional display name.
    pub display_name: Option<String>,
}

/// What a person types to sign in, and the device token their client holds, if any.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// Username or email.
    pub identifier: String,
    /// Password.
    pub password: SecretString,
    /// The device token a previous sign-in gave this client (see [`DeviceToken`]). With a
    /// valid one for the account, guesses count on the device's own budget, so a lock caused
    /// by strangers does not shut the owner out.
    pub device_token: Option<SecretString>,
}

impl Credentials {
    /// Credentials without a device token.
    pub fn new(identifier: impl Into<String>, password: SecretString) -> Self {
        Self {
            identifier: identifier.into(),
            password,
            device_token: None,
        }
    }

    /// Adds the device token the client presented.
    #[must_use]
    pub fn with_device_token(mut self, token: Option<SecretString>) -> Self {
        self.device_token = token;
        self
    }
}

/// Tokens for an API or gRPC client.
#[derive(Debug)]
pub struct TokenPair {
    /// The signed-in user.
    pub user: User,
    /// The session these tokens belong to.
    pub session_id: SessionId,
    /// Short-lived JWT for `Authorization: Bearer`.
    pub access_token: SecretString,
    /// Seconds until the access token expires.
    pub expires_in: Duration,
    /// Opaque single-use token that obtains the next pair.
    pub refresh_token: SecretString,
    /// After a sign-in, the client's device token for this account, to present at the next
    /// sign-in: the one presented if it was valid, else a new one. `None` after a refresh.
    pub device_token: Option<SecretString>,
}

/// A browser sign-in: the opaque cookie value and when it expires.
#[derive(Debug)]
pub struct BrowserLogin {
    /// The signed-in user.
    pub user: User,
    /// The session.
    pub session_id: SessionId,
    /// Opaque 256-bit cookie value; only its hash is stored.
    pub session_token: SecretString,
    /// When the session ends.
    pub expires_at: OffsetDateTime,
    /// The browser's device token for this account (a long-lived cookie).
    pub device_token: SecretString,
}

/// Registration, login, token refresh, logout, and authentication of tokens and cookies.
pub struct AuthService {
    ports: Ports,
    policy: AuthPolicy,
    keys: TokenKeys,
    dummy_hash: OnceCell<PasswordHash>,
    budget: GuessBudget,
    /// Sign-in attempts per client address, in memory (per process).
    login_limit: Option<AddressLimit>,
    /// Registrations per client address, in memory (per process).
    register_limit: Option<AddressLimit>,
    /// Verification links and lockout notices.
    notices: Notices,
    /// TOTP with the configured key; `None` when second factors are not configured.
    totp: Option<Arc<TotpAuthenticator>>,
}

impl std::fmt::Debug for AuthService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService")
            .field("policy", &self.policy)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// 256 random bits, base64url: a session cookie or a refresh token.
pub(crate) fn new_secret() -> Result<SecretString, AuthError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| AuthError::Internal(e.to_string().into()))?;
    Ok(SecretString::from(URL_SAFE_NO_PAD.encode(bytes)))
}

/// A password longer than any policy allows cannot be right; it is refused without hashing.
fn too_long(password: &SecretString) -> bool {
    password.expose_secret().chars().count() > PasswordPolicy::MAX_LENGTH
}

impl AuthService {
    /// Builds the service. `previous_keys` still verify tokens during a key rotation.
    ///
    /// # Errors
    /// [`ConfigError`] when the policy or the keys are invalid.
    pub fn new(
        ports: Ports,
        policy: AuthPolicy,
        signing_key: &SigningKey,
        previous_keys: Vec<VerifyingKey>,
    ) -> Result<Self, ConfigError> {
        policy.validate()?;
        let keys = TokenKeys::new(
            signing_key,
            previous_keys,
            &policy.issuer,
            &policy.audience,
            policy.leeway,
        )?;
        let login_limit = policy
            .login_attempts_per_ip_per_minute
            .map(|n| AddressLimit::per_minute("sign-in", n, ports.clock.clone()));
        let register_limit = policy
            .registrations_per_ip_per_hour
            .map(|n| AddressLimit::per_hour("registration", n, ports.clock.clone()));
        let budget = GuessBudget::new(ports.login_failures.clone(), policy.lockout);
        let notices = Notices::new(ports.clone(), policy.account);
        Ok(Self {
            notices,
            ports,
            policy,
            keys,
            dummy_hash: OnceCell::new(),
            budget,
            login_limit,
            register_limit,
            totp: None,
        })
    }

    /// Checks second factors with `totp` (which holds the key that opens TOTP secrets).
    /// Without it, an account with a factor cannot complete a sign-in (the second step
    /// answers [`AuthError::Internal`]); [`crate::Services::builder`] refuses a policy that
    /// requires factors without a key.
    #[must_use]
    pub fn with_second_factors(mut self, totp: Arc<TotpAuthenticator>) -> Self {
        self.totp = Some(totp);
        self
    }

    /// Mails through `composer`: a verification link at registration, a notice when a
    /// lockout starts on an account.
    #[must_use]
    pub fn with_mail_composer(mut self, composer: Arc<dyn MailComposer>) -> Self {
        self.notices.set_composer(composer);
        self
    }

    /// The policy in force.
    pub fn policy(&self) -> &AuthPolicy {
        &self.policy
    }

    /// The public verification keys, for `/.well-known/jwks.json`.
    pub fn jwks(&self) -> &Jwks {
        self.keys.jwks()
    }

    /// Registers a user with the `User` role, for a client at `client` (registrations are
    /// rate limited per client address: each costs a password hash).
    ///
    /// # Errors
    /// [`AuthError::Invalid`] listing every field problem, [`AuthError::Conflict`] when the
    /// username or email is taken, [`AuthError::Throttled`] when the client registered too
    /// often, [`AuthError::Overloaded`] when hashing is saturated.
    pub async fn register(
        &self,
        form: RegisterUser,
        client: &ClientInfo,
    ) -> Result<User, AuthError> {
        if let Some(limit) = &self.register_limit {
            limit.check(client)?;
        }
        let user = self.create(form, Role::User).await?;
        let event = self.ports.event(AuditKind::Registered).on(user.id);
        self.ports
            .audit(event.from_client(client).by_user(user.id))
            .await;
        Ok(user)
    }

    /// Creates a user with any role. A trusted operation for the composition root (an admin
    /// CLI, for example): it takes no actor. With mail configured, the new address is sent a
    /// verification link (a failure to queue it is logged: the user can ask again).
    ///
    /// # Errors
    /// As [`AuthService::register`].
    pub async fn create_user(&self, form: RegisterUser, role: Role) -> Result<User, AuthError> {
        let user = self.create(form, role).await?;
        let event = self.ports.event(AuditKind::Registered).on(user.id);
        self.ports.audit(event.detail(format!("role {role}"))).await;
        Ok(user)
    }

    async fn create(&self, form: RegisterUser, role: Role) -> Result<User, AuthError> {
        let mut errors = ValidationErrors::new();
        let username = errors.collect(Username::parse(&form.username));
        let email = errors.collect(Email::parse(&form.email));
        let display_name = form
            .display_name
            .as_deref()
            .and_then(|d| errors.collect(DisplayName::parse(d)))
            .flatten();
        let password = errors.collect(Password::parse(
            form.password,
            &self.policy.password,
            username.as_ref(),
            email.as_ref(),
        ));
        let (Some(username), Some(email), Some(password)) = (username, email, password) else {
            return Err(AuthError::Invalid(errors));
        };
        errors.into_result()?;
        let password_hash = self.ports.hasher.hash(&password).await?;
        let now = self.ports.clock.now();
        let user = User {
            id: UserId::new(),
            username,
            email,
            display_name,
            role,
            status: UserStatus::Active,
            email_verified_at: None,
            created_at: now,
            updated_at: now,
        };
        self.ports
            .users
            .insert(&NewUser {
                user: user.clone(),
                password_hash,
            })
            .await?;
        tracing::info!(user_id = %user.id, role = %role, "user registered");
        self.notices.send_verification(&user).await;
        Ok(user)
    }

    /// Signs in an API or gRPC client that knows one step only: a token session with an access
    /// and a refresh token. An account with a second factor is refused with
    /// [`AuthError::SecondFactorRequired`] after a right password: such clients use
    /// [`sign_in`](Self::sign_in).
    ///
    /// # Errors
    /// [`AuthError::InvalidCredentials`] for an unknown identifier, a wrong password or a
    /// disabled account alike; [`AuthError::Throttled`] while the identifier is locked;
    /// [`AuthError::Overloaded`] when hashing is saturated;
    /// [`AuthError::SecondFactorRequired`] as above.
    pub async fn login(
        &self,
        credentials: Credentials,
        client: ClientInfo,
    ) -> Result<TokenPair, AuthError> {
        match self.token_sign_in(credentials, client, Steps::One).await? {
            SignIn::Complete(pair) => Ok(pair),
            SignIn::SecondStep(_) => Err(AuthError::SecondFactorRequired),
        }
    }

    /// Signs in a browser that knows one step only; see [`login`](Self::login) and
    /// [`sign_in_browser`](Self::sign_in_browser).
    ///
    /// # Errors
    /// As [`AuthService::login`].
    pub async fn login_browser(
        &self,
        credentials: Credentials,
        client: ClientInfo,
    ) -> Result<BrowserLogin, AuthError> {
        match self
            .browser_sign_in(credentials, client, Steps::One)
            .await?
        {
            SignIn::Complete(login) => Ok(login),
            SignIn::SecondStep(_) => Err(AuthError::SecondFactorRequired),
        }
    }

    /// The password step of an API or gRPC client's sign-in: a token session when the account
    /// needs nothing more, else a [`Challenge`] for the second step
    /// ([`complete_sign_in`](Self::complete_sign_in), or enrolment when the policy requires
    /// a factor the account lacks).
    ///
    /// # Errors
    /// As [`AuthService::login`], without `SecondFactorRequired`.
    pub async fn sign_in(
        &self,
        credentials: Credentials,
        client: ClientInfo,
    ) -> Result<SignIn<TokenPair>, AuthError> {
        self.token_sign_in(credentials, client, Steps::Two).await
    }

    async fn token_sign_in(
        &self,
        credentials: Credentials,
        client: ClientInfo,
        steps: Steps,
    ) -> Result<SignIn<TokenPair>, AuthError> {
        if let Some(limit) = &self.login_limit {
            limit.check(&client)?;
        }
        match self.check_credentials(&credentials, &client, steps).await? {
            Passed::Complete(user, device_token) => {
                let pair = self.token_session(user, client, Some(device_token)).await?;
                Ok(SignIn::Complete(pair))
            }
            Passed::Challenge(challenge) => Ok(SignIn::SecondStep(challenge)),
        }
    }

    /// The password step of a browser's sign-in: a session with an opaque cookie value, or a
    /// [`Challenge`] (see [`sign_in`](Self::sign_in)). Call it at every sign-in to rotate
    /// the cookie. A browser whose device token the user chose to trust skips the second
    /// step until the trust expires.
    ///
    /// # Errors
    /// As [`AuthService::sign_in`].
    pub async fn sign_in_browser(
        &self,
        credentials: Credentials,
        client: ClientInfo,
    ) -> Result<SignIn<BrowserLogin>, AuthError> {
        self.browser_sign_in(credentials, client, Steps::Two).await
    }

    async fn browser_sign_in(
        &self,
        credentials: Credentials,
        client: ClientInfo,
        steps: Steps,
    ) -> Result<SignIn<BrowserLogin>, AuthError> {
        if let Some(limit) = &self.login_limit {
            limit.check(&client)?;
        }
        match self.check_credentials(&credentials, &client, steps).await? {
            Passed::Complete(user, device_token) => {
                let login = self.browser_session(user, client, device_token).await?;
                Ok(SignIn::Complete(login))
            }
            Passed::Challenge(challenge) => Ok(SignIn::SecondStep(challenge)),
        }
    }

    async fn token_session(
        &self,
        user: User,
        client: ClientInfo,
        device_token: Option<SecretString>,
    ) -> Result<TokenPair, AuthError> {
        let refresh_token = new_secret()?;
        let now = self.ports.clock.now();
        let session = self
            .start_session(
                &user,
                SessionKind::Token,
                client,
                &refresh_token,
                self.policy.refresh_token_ttl,
                now,
            )
            .await?;
        let (access_token, expires_in) = self.access_token(&user, session.id, now)?;
        Ok(TokenPair {
            user,
            session_id: session.id,
            access_token,
            expires_in,
            refresh_token,
            device_token,
        })
    }

    async fn browser_session(
        &self,
        user: User,
        client: ClientInfo,
        device_token: SecretString,
    ) -> Result<BrowserLogin, AuthError> {
        let session_token = new_secret()?;
        let now = self.ports.clock.now();
        let session = self
            .start_session(
                &user,
                SessionKind::Browser,
                client,
                &session_token,
                self.policy.browser_session_ttl,
                now,
            )
            .await?;
        Ok(BrowserLogin {
            user,
            session_id: session.id,
            session_token,
            expires_at: session.expires_at,
            device_token,
        })
    }

    async fn start_session(
        &self,
        user: &User,
        kind: SessionKind,
        client: ClientInfo,
        secret: &SecretString,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<Session, AuthError> {
        let session = Session {
            id: SessionId::new(),
            user_id: user.id,
            kind,
            client,
            created_at: now,
            last_used_at: now,
            expires_at: now + std_to_time(ttl),
            revoked_at: None,
        };
        self.ports
            .sessions
            .create(&NewSession {
                session: session.clone(),
                secret_hash: TokenHash::of(secret.expose_secret()),
            })
            .await?;
        tracing::info!(user_id = %user.id, session_id = %session.id, kind = kind.as_str(), "signed in");
        Ok(session)
    }

    fn access_token(
        &self,
        user: &User,
        session: SessionId,
        now: OffsetDateTime,
    ) -> Result<(SecretString, Duration), AuthError> {
        let ttl = self.policy.access_token_ttl;
        let (token, _) = self
            .keys
            .issue(user.id, session, user.role, now, ttl)
            .map_err(|e| AuthError::Internal(Box::new(e)))?;
        Ok((SecretString::from(token), ttl))
    }

    /// Checks credentials against the guess budget and with the equal-cost rule: whatever
    /// is wrong, it costs one hash verification and ends in the same error. Returns the user
    /// and the client's device token for the account. With
    /// [`AuthPolicy::require_verified_email`], a right password for an unverified address is
    /// refused with [`AuthError::EmailNotVerified`], after the check.
    ///
    /// The guess is counted before the hash is checked, on one budget: the device's, when the
    /// client presents a valid device token for the account; else the account's, when the
    /// identifier names one (username and email share it); else the typed identifier's.
    async fn check_credentials(
        &self,
        credentials: &Credentials,
        client: &ClientInfo,
        steps: Steps,
    ) -> Result<Passed, AuthError> {
        let now = self.ports.clock.now();
        let account = self.find_account(credentials).await?;
        let user_id = account.as_ref().map(|(user, _)| user.id);
        // Looked up whenever one is presented, so a known account costs what an unknown does.
        let device = match &credentials.device_token {
            Some(token) => self.known_device(token, user_id, now).await?,
            None => None,
        };
        let (key, budget) = match (&device, user_id) {
            (Some(hash), _) => (ThrottleKey::device(hash), "device"),
            (None, Some(id)) => (ThrottleKey::account(id), "account"),
            (None, None) => (ThrottleKey::of(&credentials.identifier), "identifier"),
        };
        let ip = client.ip.as_deref().unwrap_or("-");
        let known = user_id.map_or_else(|| "-".to_owned(), |id| id.to_string());
        let reserved = match self.budget.reserve(&key, now).await {
            Ok(reserved) => reserved,
            Err(e) => {
                if matches!(e, AuthError::Throttled { .. }) {
                    metrics::counter!(names::LOGINS_TOTAL, "outcome" => "throttled").increment(1);
                    tracing::warn!(client_ip = ip, user_id = %known, budget, outcome = "locked", "sign-in refused");
                    self.sign_in_failed(credentials, client, user_id, "locked", now)
                        .await;
                }
                return Err(e);
            }
        };

        let stored = account.as_ref().map(|(_, hash)| hash);
        let verdict = match self.verify(&credentials.password, stored).await {
            Ok(verdict) => verdict,
            Err(e) => {
                self.budget.release(&key, reserved).await;
                return Err(e);
            }
        };
        match (account, verdict) {
            (Some((user, _)), Verification::Match { needs_rehash })
                if user.status == UserStatus::Active =>
            {
                if self.policy.require_verified_email && user.email_verified_at.is_none() {
                    self.budget.clear(&key).await?;
                    tracing::info!(client_ip = ip, user_id = %user.id, outcome = "email_not_verified", "sign-in refused");
                    metrics::counter!(names::LOGINS_TOTAL, "outcome" => "email_not_verified")
                        .increment(1);
                    self.sign_in_failed(credentials, client, user_id, "email_not_verified", now)
                        .await;
                    return Err(AuthError::EmailNotVerified);
                }
                if needs_rehash {
                    self.rehash(&user, &credentials.password, now).await;
                }
                if let Some(purpose) = self.second_step(&user, device.as_ref(), now).await? {
                    // The guess is not spent, and the budget is not cleared either: only the
                    // second step's success clears it, so that someone who knows the
                    // password cannot reset the count between wrong codes.
                    self.budget.release(&key, reserved).await;
                    if steps == Steps::One {
                        tracing::info!(client_ip = ip, user_id = %user.id, outcome = "second_factor_required", "one-step sign-in refused");
                        self.sign_in_failed(
                            credentials,
                            client,
                            user_id,
                            "second_factor_required",
                            now,
                        )
                        .await;
                        return Err(AuthError::SecondFactorRequired);
                    }
                    let challenge = self.challenge(&user, purpose, device, now).await?;
                    tracing::info!(client_ip = ip, user_id = %user.id, budget, step = purpose.as_str(), "password accepted; second step required");
                    return Ok(Passed::Challenge(challenge));
                }
                self.budget.clear(&key).await?;
                let device_token = self
                    .device_token(device, credentials.device_token.as_ref(), user.id, now)
                    .await?;
                metrics::counter!(names::LOGINS_TOTAL, "outcome" => "success").increment(1);
                let event = AuditEvent::new(AuditKind::SignIn, now)
                    .on(user.id)
                    .by_user(user.id)
                    .from_client(client)
                    .identifier(&credentials.identifier)
                    .detail(budget);
                self.ports.audit(event).await;
                Ok(Passed::Complete(user, device_token))
            }
            (account, verdict) => {
                let outcome = match (&account, verdict) {
                    (None, _) => "unknown_identifier",
                    (Some(_), Verification::Match { .. }) => "account_disabled",
                    (Some(_), Verification::Mismatch) => "wrong_password",
                };
                if self.budget.locks(&reserved.failures) {
                    metrics::counter!(names::LOCKOUTS_TOTAL).increment(1);
                }
                if budget == "account"
                    && reserved.failures.count == self.policy.lockout.threshold
                    && let Some((user, _)) = &account
                {
                    self.lockout_started(user, &reserved.failures, now).await;
                    let event = AuditEvent::new(AuditKind::LockoutStarted, now)
                        .on(user.id)
                        .from_client(client)
                        .detail(format!("after {} failures", reserved.failures.count));
                    self.ports.audit(event).await;
                }
                tracing::warn!(
                    client_ip = ip,
                    user_id = %known,
                    budget,
                    failures = reserved.failures.count,
                    outcome,
                    "sign-in failed"
                );
                metrics::counter!(names::LOGINS_TOTAL, "outcome" => "invalid_credentials")
                    .increment(1);
                self.sign_in_failed(credentials, client, user_id, outcome, now)
                    .await;
                Err(AuthError::InvalidCredentials)
            }
        }
    }

    /// Audits a refused sign-in: the identifier as typed only when it names an account
    /// (`user`), since a stranger's typo may be their password.
    async fn sign_in_failed(
        &self,
        credentials: &Credentials,
        client: &ClientInfo,
        user: Option<UserId>,
        why: &str,
        now: OffsetDateTime,
    ) {
        let mut event = AuditEvent::new(AuditKind::SignIn, now)
            .failed()
            .from_client(client)
            .detail(why);
        if let Some(user) = user {
            event = event.on(user).identifier(&credentials.identifier);
        }
        self.ports.audit(event).await;
    }

    /// Tells the owner that failed guesses locked their account's sign-in. Once per streak
    /// of failures (when the count reaches the threshold), not at every doubling of the
    /// lock, so that a stranger cannot flood the owner's inbox.
    async fn lockout_started(&self, user: &User, failures: &LoginFailures, now: OffsetDateTime) {
        if let Some(wait) = self.policy.lockout.retry_after(failures, now) {
            let notice = Notice::LockoutStarted {
                name: greeting(user),
                until: now + std_to_time(wait),
            };
            self.notices.send(user, notice, &user.email).await;
        }
    }

    /// The hash of `token` if it is a device token that vouches for `user` now.
    async fn known_device(
        &self,
        token: &SecretString,
        user: Option<UserId>,
        now: OffsetDateTime,
    ) -> Result<Option<TokenHash>, AuthError> {
        let hash = TokenHash::of(token.expose_secret());
        match self.ports.devices.find(&hash).await {
            Ok(device) if user.is_some_and(|user| device.vouches_for(user, now)) => Ok(Some(hash)),
            Ok(_) | Err(RepoError::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores a new device token for `user`, or renews a known one: a device in use stays
    /// known for `device_token_ttl` after its last sign-in.
    async fn store_device(
        &self,
        hash: &TokenHash,
        user: UserId,
        now: OffsetDateTime,
    ) -> Result<(), AuthError> {
        let device = DeviceToken {
            user_id: user,
            created_at: now,
            expires_at: now + std_to_time(self.policy.device_token_ttl),
        };
        Ok(self.ports.devices.save(hash, &device).await?)
    }

    /// The device token to give the client after a successful sign-in: the one it presented
    /// (renewed) when that one vouched for the account (`known`), else a new one.
    pub(super) async fn device_token(
        &self,
        known: Option<TokenHash>,
        presented: Option<&SecretString>,
        user: UserId,
        now: OffsetDateTime,
    ) -> Result<SecretString, AuthError> {
        match (known, presented) {
            (Some(hash), Some(presented)) if TokenHash::of(presented.expose_secret()) == hash => {
                self.store_device(&hash, user, now).await?;
                Ok(presented.clone())
            }
            _ => {
                let token = new_secret()?;
                let hash = TokenHash::of(token.expose_secret());
                self.store_device(&hash, user, now).await?;
                Ok(token)
            }
        }
    }

    /// The account an identifier names, with its hash.
    async fn find_account(
        &self,
        credentials: &Credentials,
    ) -> Result<Option<(User, PasswordHash)>, AuthError> {
        let Some(identifier) = Identifier::parse(&credentials.identifier) else {
            return Ok(None);
        };
        match self.ports.users.credentials(&identifier).await {
            Ok(found) => Ok(Some(found)),
            Err(RepoError::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Verifies against the stored hash, or against the dummy hash when there is no account,
    /// so both cost one verification. A stored hash the hasher refuses (corrupt, or above the
    /// ceiling) denies the login and is logged; the dummy hash is verified instead, so that
    /// such an account answers no faster than any other.
    async fn verify(
        &self,
        password: &SecretString,
        stored: Option<&PasswordHash>,
    ) -> Result<Verification, AuthError> {
        if too_long(password) {
            return Ok(Verification::Mismatch);
        }
        let result = match stored {
            Some(hash) => self.ports.hasher.verify(password, hash).await,
            None => {
                let dummy = self.dummy_hash().await?;
                let spent = self.ports.hasher.verify(password, dummy).await;
                spent.map(|_| Verification::Mismatch)
            }
        };
        match result {
            Ok(verdict) => Ok(verdict),
            Err(HashError::Refused(cause)) => {
                tracing::error!(error = %cause, "stored password hash refused; login denied");
                let dummy = self.dummy_hash().await?;
                match self.ports.hasher.verify(password, dummy).await {
                    Ok(_) | Err(HashError::Refused(_)) => Ok(Verification::Mismatch),
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces an outdated hash after a successful login. Failure is logged, not fatal: the
    /// old hash still works and the next login tries again.
    async fn rehash(&self, user: &User, password: &SecretString, now: OffsetDateTime) {
        let password = Password::trusted(password.clone());
        let result = match self.ports.hasher.hash(&password).await {
            Ok(hash) => self
                .ports
                .users
                .update_password_hash(user.id, &hash, now)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(()) => tracing::info!(user_id = %user.id, "password hash upgraded"),
            Err(error) => tracing::warn!(user_id = %user.id, %error, "password rehash failed"),
        }
    }

    async fn dummy_hash(&self) -> Result<&PasswordHash, AuthError> {
        self.dummy_hash
            .get_or_try_init(|| async {
                let secret = new_secret()?;
                Ok::<_, AuthError>(self.ports.hasher.hash(&Password::trusted(secret)).await?)
            })
            .await
    }

    /// Exchanges a refresh token for a new pair. The presented token is spent; presenting a
    /// spent token again revokes its whole session.
    ///
    /// # Errors
    /// [`AuthError::Unauthenticated`] for an unknown, spent or expired token, a revoked
    /// session or a disabled user.
    pub async fn refresh(
        &self,
        refresh_token: &SecretString,
        client: &ClientInfo,
    ) -> Result<TokenPair, AuthError> {
        let presented = TokenHash::of(refresh_token.expose_secret());
        let next = new_secret()?;
        let now = self.ports.clock.now();
        let idle_since = now - std_to_time(self.policy.token_idle_timeout);
        let rotation = self
            .ports
            .sessions
            .rotate_refresh_token(
                &presented,
                &TokenHash::of(next.expose_secret()),
                now,
                idle_since,
            )
            .await;
        let session = match rotation {
            Ok(Rotation::Rotated(session)) => session,
            Ok(Rotation::Reused(id)) => {
                tracing::warn!(session_id = %id, "spent refresh token reused; session revoked");
                let mut event = AuditEvent::new(AuditKind::RefreshReuse, now)
                    .failed()
                    .from_client(client)
                    .detail(format!("session {id} ended"));
                if let Ok(session) = self.ports.sessions.get(id).await {
                    event = event.on(session.user_id);
                }
                self.ports.audit(event).await;
                return Err(AuthError::Unauthenticated);
            }
            Ok(Rotation::Inactive(_)) | Err(RepoError::NotFound) => {
                return Err(AuthError::Unauthenticated);
            }
            Err(e) => return Err(e.into()),
        };
        let user = self.active_user(session.user_id).await?;
        let (access_token, expires_in) = self.access_token(&user, session.id, now)?;
        Ok(TokenPair {
            user,
            session_id: session.id,
            access_token,
            expires_in,
            refresh_token: next,
            device_token: None,
        })
    }

    /// Checks an access token: signature and claims, then that its session is still active
    /// and its user still active. The returned actor carries the user's current role.
    ///
    /// The signature of a token already verified is not checked again (a bounded memory of
    /// verified tokens, keyed by the token's SHA-256: only the very same bytes hit, and expiry
    /// is checked on every call). The session and the user are read from the store on every
    /// call, in one read, so a revocation or a disabled account takes effect at once, on
    /// every instance.
    ///
    /// # Errors
    /// [`AuthError::Unauthenticated`] whatever the reason.
    pub async fn authenticate(&self, access_token: &str) -> Result<Actor, AuthError> {
        self.authenticate_with_user(access_token)
            .await
            .map(|(actor, _)| actor)
    }

    /// [`authenticate`](Self::authenticate), also returning the user as read with the
    /// session, so that a request about the caller's own account (`GET /me`) needs no second
    /// read.
    ///
    /// # Errors
    /// [`AuthError::Unauthenticated`] whatever the reason.
    pub async fn authenticate_with_user(
        &self,
        access_token: &str,
    ) -> Result<(Actor, User), AuthError> {
        let now = self.ports.clock.now();
        let claims = self.keys.verify_cached(access_token, now).map_err(|e| {
            tracing::debug!(reason = %e, "access token refused");
            AuthError::Unauthenticated
        })?;
        let (Ok(user_id), Ok(session_id)) = (
            claims.sub.parse::<UserId>(),
            claims.sid.parse::<SessionId>(),
        ) else {
            return Err(AuthError::Unauthenticated);
        };
        let (session, user) = match self.ports.sessions.get_with_user(session_id).await {
            Ok(found) => found,
            Err(RepoError::NotFound) => return Err(AuthError::Unauthenticated),
            Err(e) => return Err(e.into()),
        };
        if session.user_id != user_id
            || user.id != user_id
            || user.status != UserStatus::Active
            || !session.is_usable(now, self.policy.token_idle_timeout)
        {
            return Err(AuthError::Unauthenticated);
        }
        Ok((actor(&session, &user), user))
    }

    /// Checks a browser session cookie: the session and its user in one read, and a use
    /// recorded at most once a minute.
    ///
    /// # Errors
    /// [`AuthError::Unauthenticated`] whatever the reason.
    pub async fn authenticate_browser(&self, session_token: &str) -> Result<Actor, AuthError> {
        self.authenticate_browser_with_user(session_token)
            .await
            .map(|(actor, _)| actor)
    }

    /// [`authenticate_browser`](Self::authenticate_browser), also returning the user as read
    /// with the session (see [`authenticate_with_user`](Self::authenticate_with_user)).
    ///
    /// # Errors
    /// [`AuthError::Unauthenticated`] whatever the reason.
    pub async fn authenticate_browser_with_user(
        &self,
        session_token: &str,
    ) -> Result<(Actor, User), AuthError> {
        let now = self.ports.clock.now();
        let found = self
            .ports
            .sessions
            .find_by_cookie_with_user(&TokenHash::of(session_token))
            .await;
        let (session, user) = match found {
            Ok((s, u))
                if s.is_usable(now, self.policy.browser_idle_timeout)
                    && u.id == s.user_id
                    && u.status == UserStatus::Active =>
            {
                (s, u)
            }
            Ok(_) | Err(RepoError::NotFound) => return Err(AuthError::Unauthenticated),
            Err(e) => return Err(e.into()),
        };
        // Record the use for the idle timeout, at most once a minute per session so that
        // reads stay reads.
        if now - session.last_used_at >= time::Duration::MINUTE
            && let Err(e) = self.ports.sessions.touch(session.id, now).await
        {
            tracing::warn!(error = %crate::error::report(&e), "session use not recorded");
        }
        Ok((actor(&session, &user), user))
    }

    async fn active_user(&self, id: UserId) -> Result<User, AuthError> {
        match self.ports.users.get(id).await {
            Ok(user) if user.status == UserStatus::Active => Ok(user),
            Ok(_) | Err(RepoError::NotFound) => Err(AuthError::Unauthenticated),
            Err(e) => Err(e.into()),
        }
    }

    /// Ends the actor's current session.
    ///
    /// # Errors
    /// [`AuthError::Unavailable`] when the store fails.
    pub async fn logout(&self, actor: &Actor) -> Result<(), AuthError> {
        match self
            .ports
            .sessions
            .revoke(actor.session_id, self.ports.clock.now())
            .await
        {
            Ok(()) => {
                let event = self.ports.event(AuditKind::Logout).by_self(actor);
                self.ports.audit(event).await;
                Ok(())
            }
            Err(RepoError::NotFound) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Ends every session of the actor, on every device.
    ///
    /// # Errors
    /// [`AuthError::Unavailable`] when the store fails.
    pub async fn logout_everywhere(&self, actor: &Actor) -> Result<u64, AuthError> {
        let n = self
            .ports
            .sessions
            .revoke_all(actor.user_id, None, self.ports.clock.now())
            .await?;
        // Whoever signed in must prove the password again to be a known device.
        self.ports.devices.delete_for_user(actor.user_id).await?;
        tracing::info!(user_id = %actor.user_id, sessions = n, "signed out everywhere");
        let event = self.ports.event(AuditKind::LogoutEverywhere).by_self(actor);
        self.ports
            .audit(event.detail(format!("{n} sessions ended")))
            .await;
        Ok(n)
    }
}

/// The actor of a checked session: the user's current role.
fn actor(session: &Session, user: &User) -> Actor {
    Actor {
        user_id: user.id,
        role: user.role,
        session_id: session.id,
        client: ClientInfo::default(),
    }
}

mod second_step;
#[cfg(test)]
mod tests;

use second_step::Passed;
pub use second_step::{Challenge, SecondStep, SignIn};

/// Whether the caller can take a second step: a one-step client (legacy `LoginUser`) gets
/// [`AuthError::SecondFactorRequired`] instead of a challenge it would throw away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Steps {
    One,
    Two,
}
