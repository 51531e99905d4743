//! Authentication: policy, token keys and their files, and [`AuthService`].

mod bearer;
mod budget;
pub mod key_files;
mod keys;
mod limit;
mod policy;
mod service;

pub use bearer::bearer_token;
pub(crate) use budget::GuessBudget;
pub use keys::{
    AccessClaims, Jwk, Jwks, KeyAlgorithm, SigningKey, TokenError, TokenKeys, VerifyingKey,
};
pub use policy::{AuthPolicy, LockoutPolicy};
pub use service::{AuthService, BrowserLogin, Credentials, RegisterUser, TokenPair};
