//! Authentication: policy, token keys and their files, and [`AuthService`].

mod budget;
pub mod key_files;
mod keys;
mod policy;
mod service;

pub(crate) use budget::GuessBudget;
pub use keys::{AccessClaims, SigningKey, TokenError, TokenKeys, VerifyingKey};
pub use policy::{AuthPolicy, LockoutPolicy};
pub use service::{AuthService, BrowserLogin, Credentials, RegisterUser, TokenPair};
