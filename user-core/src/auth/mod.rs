//! Authentication: policy, token keys and their files, and [`AuthService`].

mod bearer;
mod budget;
pub mod key_files;
mod keys;
mod limit;
mod policy;
mod service;
mod verified;

pub use bearer::bearer_token;
pub(crate) use budget::{GuessBudget, Reserved, std_to_time};
pub use keys::{
    AccessClaims, Jwk, Jwks, KeyAlgorithm, SigningKey, TokenError, TokenKeys, VerifyingKey,
};
pub(crate) use limit::{AddressLimit, KeyLimit};
pub use policy::{AccountPolicy, AuthPolicy, LockoutPolicy};
pub(crate) use service::new_secret;
pub use service::{
    AuthService, BrowserLogin, Challenge, Credentials, RegisterUser, SecondStep, SignIn, TokenPair,
};
