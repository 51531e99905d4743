//! Helpers shared by the fuzz targets: a Tokio runtime and a fresh in-memory world (core
//! services on the `testing` fakes, with one admin and one user signed in both ways).
//!
//! Every iteration that changes state builds its own world, so a crash reproduces from its
//! input file alone.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::future::Future;
use std::sync::{Arc, LazyLock};

use secrecy::{ExposeSecret, SecretString};
use user_core::account::AccountService;
use user_core::auth::{AuthPolicy, AuthService, Credentials};
use user_core::domain::{ClientInfo, User};
use user_core::testing::Fixture;
use user_core::users::UserService;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime")
});

/// Runs a future to completion on the shared current-thread runtime.
pub fn block_on<F: Future>(future: F) -> F::Output {
    RUNTIME.block_on(future)
}

/// Someone signed in: their account, a bearer token and a browser session cookie value.
#[derive(Debug, Clone)]
pub struct Account {
    /// The account.
    pub user: User,
    /// An access token (JWT) for `authorization: Bearer`.
    pub token: String,
    /// A browser session token (the `session` cookie).
    pub cookie: String,
}

/// Fresh services on in-memory fakes with an admin `root` and a user `alice`.
pub struct World {
    /// The auth service.
    pub auth: Arc<AuthService>,
    /// The user service.
    pub users: Arc<UserService>,
    /// The account flows (reset, verification), without mail.
    pub account: Arc<AccountService>,
    /// `root`, an admin.
    pub admin: Account,
    /// `alice`, a plain user.
    pub user: Account,
}

async fn sign_in(fx: &Fixture, user: User) -> Account {
    let name = user.username.to_string();
    let tokens = fx.login(&name, Fixture::PASSWORD).await.expect("login");
    let browser = fx
        .auth
        .login_browser(
            Credentials::new(name, SecretString::from(Fixture::PASSWORD)),
            ClientInfo::default(),
        )
        .await
        .expect("browser login");
    Account {
        user,
        token: tokens.access_token.expose_secret().to_owned(),
        cookie: browser.session_token.expose_secret().to_owned(),
    }
}

impl World {
    /// Builds a world (inside [`block_on`]).
    pub async fn new() -> Self {
        let fx = Fixture::in_memory();
        let admin = fx.register_admin("root").await;
        let user = fx.register("alice").await;
        let admin = sign_in(&fx, admin).await;
        let user = sign_in(&fx, user).await;
        let account = AccountService::new(fx.ports.clone(), &AuthPolicy::default());
        Self {
            auth: Arc::new(fx.auth),
            users: Arc::new(fx.users),
            account: Arc::new(account),
            admin,
            user,
        }
    }
}

/// A text field: either a value known to be valid for it (so the fuzzer gets past
/// validation and reaches the success paths) or fuzzed text.
#[derive(Debug, Clone, arbitrary::Arbitrary)]
pub enum Str {
    /// The field's known good value.
    Good,
    /// Fuzzed text.
    Fuzzed(String),
}

impl Str {
    /// The text, with `good` standing for [`Str::Good`].
    pub fn or(&self, good: &str) -> String {
        match self {
            Self::Good => good.to_owned(),
            Self::Fuzzed(s) => s.clone(),
        }
    }
}

/// A new password that passes the default policy for any of the world's names.
pub const NEW_PASSWORD: &str = "another long passphrase 42";
