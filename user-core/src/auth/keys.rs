use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use super::verified::{self, VerifiedTokens};
use crate::domain::{Role, SessionId, UserId};
use crate::error::ConfigError;

/// Longest access token we try to decode.
const MAX_TOKEN_LEN: usize = 4096;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user id.
    pub sub: String,
    /// The session id; checked against the session store on every use.
    pub sid: String,
    /// The role when the token was issued (informative: authorization reads the stored role).
    pub role: String,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Unique token id.
    pub jti: String,
}

/// The public keys that verify access tokens, as a JSON Web Key Set (RFC 7517), served at
/// `/.well-known/jwks.json`. Only Ed25519 keys appear: HS256 secrets are never published.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Jwks {
    /// The keys, the signing key's first.
    pub keys: Vec<Jwk>,
}

impl Jwks {
    /// The key with this `kid`, if published.
    pub fn find(&self, kid: &str) -> Option<&Jwk> {
        self.keys.iter().find(|k| k.kid == kid)
    }
}

/// One Ed25519 public key as a JSON Web Key (RFC 8037: `"kty": "OKP"`, `"crv": "Ed25519"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Jwk {
    /// Always `sig`.
    #[serde(rename = "use")]
    pub key_use: &'static str,
    /// Always `EdDSA`.
    pub alg: &'static str,
    /// The key id that tokens signed by this key carry in their header.
    pub kid: String,
    /// Always `OKP`.
    pub kty: &'static str,
    /// Always `Ed25519`.
    pub crv: &'static str,
    /// The 32-byte public key, base64url without padding.
    pub x: String,
}

impl Jwk {
    fn ed25519(kid: &str, public_key: &[u8; 32]) -> Self {
        Self {
            key_use: "sig",
            alg: "EdDSA",
            kid: kid.to_owned(),
            kty: "OKP",
            crv: "Ed25519",
            x: URL_SAFE_NO_PAD.encode(public_key),
        }
    }
}

/// The signature algorithm of a token key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// Ed25519 signatures (`EdDSA`), the default: the public key can be published.
    EdDsa,
    /// HMAC-SHA256 with a shared secret (`HS256`).
    Hs256,
}

impl KeyAlgorithm {
    /// The JWT `alg` name: `EdDSA` or `HS256`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EdDsa => "EdDSA",
            Self::Hs256 => "HS256",
        }
    }

    fn jwt(self) -> Algorithm {
        match self {
            Self::EdDsa => Algorithm::EdDSA,
            Self::Hs256 => Algorithm::HS256,
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

enum Material {
    Ed25519(Box<ed25519_dalek::SigningKey>),
    Hs256(SecretBox<[u8]>),
}

/// A key that signs access tokens: Ed25519 (`EdDSA`, the default) or HS256.
pub struct SigningKey {
    kid: String,
    material: Material,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Shortest accepted HS256 secret, in bytes.
    pub const MIN_HS256_SECRET: usize = 32;

    /// A fresh Ed25519 key from the operating system's random source. Its `kid` is derived
    /// from the public key.
    ///
    /// # Errors
    /// [`ConfigError`] when the random source fails.
    pub fn generate_ed25519() -> Result<Self, ConfigError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| ConfigError::new("signing_key", e.to_string()))?;
        Ok(Self::from_ed25519(ed25519_dalek::SigningKey::from_bytes(
            &seed,
        )))
    }

    fn from_ed25519(key: ed25519_dalek::SigningKey) -> Self {
        Self {
            kid: ed25519_kid(key.verifying_key().as_bytes()),
            material: Material::Ed25519(Box::new(key)),
        }
    }

    /// Reads an Ed25519 private key in PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    ///
    /// # Errors
    /// [`ConfigError`] when the text is not such a key.
    pub fn ed25519_from_pem(pem: &SecretString) -> Result<Self, ConfigError> {
        ed25519_dalek::SigningKey::from_pkcs8_pem(pem.expose_secret())
            .map(Self::from_ed25519)
            .map_err(|_| {
                ConfigError::new("signing_key", "not an Ed25519 private key in PKCS#8 PEM")
            })
    }

    /// This Ed25519 key in PKCS#8 PEM, to store it; `None` for an HS256 key.
    pub fn to_pem(&self) -> Option<SecretString> {
        match &self.material {
            Material::Ed25519(key) => key
                .to_pkcs8_pem(Default::default())
                .ok()
                .map(|pem| SecretString::from(pem.as_str())),
            Material::Hs256(_) => None,
        }
    }

    /// An HS256 key. Refuses secrets shorter than 32 bytes.
    ///
    /// # Errors
    /// [`ConfigError`] when the secret is too short or `kid` is empty.
    pub fn hs256(kid: &str, secret: &[u8]) -> Result<Self, ConfigError> {
        if secret.len() < Self::MIN_HS256_SECRET {
            return Err(ConfigError::new(
                "jwt_secret",
                format!(
                    "must be at least {} bytes, got {}",
                    Self::MIN_HS256_SECRET,
                    secret.len()
                ),
            ));
        }
        if kid.is_empty() {
            return Err(ConfigError::new("kid", "must not be empty"));
        }
        Ok(Self {
            kid: kid.to_owned(),
            material: Material::Hs256(SecretBox::from(Box::<[u8]>::from(secret))),
        })
    }

    /// The key id, sent as `kid` in each token header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The signature algorithm of this key.
    pub fn algorithm(&self) -> KeyAlgorithm {
        match self.material {
            Material::Ed25519(_) => KeyAlgorithm::EdDsa,
            Material::Hs256(_) => KeyAlgorithm::Hs256,
        }
    }

    fn encoding_key(&self) -> Result<EncodingKey, ConfigError> {
        match &self.material {
            Material::Ed25519(key) => key
                .to_pkcs8_der()
                .map(|der| EncodingKey::from_ed_der(der.as_bytes()))
                .map_err(|e| ConfigError::new("signing_key", e.to_string())),
            Material::Hs256(secret) => Ok(EncodingKey::from_secret(secret.expose_secret())),
        }
    }

    /// The key that verifies this key's tokens, for rotation: keep it after the signing key
    /// has been replaced, until its tokens have expired.
    pub fn verifying_key(&self) -> VerifyingKey {
        match &self.material {
            Material::Ed25519(key) => {
                VerifyingKey::ed25519(&self.kid, key.verifying_key().as_bytes())
            }
            Material::Hs256(secret) => VerifyingKey {
                kid: self.kid.clone(),
                algorithm: KeyAlgorithm::Hs256,
                key: DecodingKey::from_secret(secret.expose_secret()),
                jwk: None,
            },
        }
    }
}

/// The `kid` of an Ed25519 key: derived from its public half, so a key keeps its id across
/// restarts and after it has been retired to a verifying key.
fn ed25519_kid(public_key: &[u8; 32]) -> String {
    let digest = Sha256::digest(public_key);
    URL_SAFE_NO_PAD.encode(&digest[..12])
}

/// A key that only verifies access tokens.
#[derive(Clone)]
pub struct VerifyingKey {
    kid: String,
    algorithm: KeyAlgorithm,
    key: DecodingKey,
    /// Public keys only; HS256 secrets are never published.
    jwk: Option<Jwk>,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// An Ed25519 public key (32 raw bytes).
    pub fn ed25519(kid: &str, public_key: &[u8; 32]) -> Self {
        Self {
            kid: kid.to_owned(),
            algorithm: KeyAlgorithm::EdDsa,
            key: DecodingKey::from_ed_der(public_key),
            jwk: Some(Jwk::ed25519(kid, public_key)),
        }
    }

    /// Reads an Ed25519 public key in SPKI PEM (`-----BEGIN PUBLIC KEY-----`), for example a
    /// retired signing key's public half (`openssl pkey -in old.pem -pubout`). Its `kid` is
    /// derived from the key as [`SigningKey`]'s is, so it matches the tokens that key signed.
    ///
    /// # Errors
    /// [`ConfigError`] when the text is not such a key.
    pub fn ed25519_from_public_pem(pem: &str) -> Result<Self, ConfigError> {
        use ed25519_dalek::pkcs8::DecodePublicKey as _;
        let key = ed25519_dalek::VerifyingKey::from_public_key_pem(pem).map_err(|_| {
            ConfigError::new("verification_keys", "not an Ed25519 public key in PEM")
        })?;
        Ok(Self::ed25519(&ed25519_kid(key.as_bytes()), key.as_bytes()))
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }
}

/// Why an access token was not accepted. Adapters show none of this: every case is
/// `Unauthenticated` to the caller.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT we could read, or it fails signature, algorithm, issuer or audience checks.
    #[error("invalid access token")]
    Invalid,
    /// Past `exp` plus leeway.
    #[error("access token expired")]
    Expired,
}

/// The keys that sign and verify access tokens, and the checks applied on decode: one pinned
/// algorithm, required `exp`/`iss`/`aud`/`sub`, a leeway of at most 5 s, `exp` checked against
/// the injected clock. Tokens that passed these checks are remembered, a bounded number of
/// them, so that the same token presented again is not verified again (see the `verified`
/// module for why that is safe).
pub struct TokenKeys {
    kid: String,
    algorithm: KeyAlgorithm,
    encoding: EncodingKey,
    verifying: HashMap<String, DecodingKey>,
    jwks: Jwks,
    validation: Validation,
    issuer: String,
    audience: String,
    leeway: Duration,
    verified: VerifiedTokens,
}

impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKeys")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("verifying", &self.verifying.keys().collect::<Vec<_>>())
            .field("remembered", &self.verified.len())
            .finish_non_exhaustive()
    }
}

impl TokenKeys {
    /// Keys that sign with `signing` and accept its tokens and those of `also_verify`
    /// (previous keys, during a rotation).
    ///
    /// # Errors
    /// [`ConfigError`] when a verification key uses another algorithm than the signing key,
    /// two keys share a `kid`, or the leeway exceeds 5 s.
    pub(crate) fn new(
        signing: &SigningKey,
        also_verify: Vec<VerifyingKey>,
        issuer: &str,
        audience: &str,
        leeway: Duration,
    ) -> Result<Self, ConfigError> {
        let algorithm = signing.algorithm();
        let mut verifying = HashMap::new();
        let mut jwks = Jwks::default();
        for key in std::iter::once(signing.verifying_key()).chain(also_verify) {
            if key.algorithm != algorithm {
                return Err(ConfigError::new(
                    "verification_keys",
                    "every key must use the signing key's algorithm",
                ));
            }
            if verifying.insert(key.kid.clone(), key.key).is_some() {
                return Err(ConfigError::new(
                    "verification_keys",
                    format!("duplicate kid {:?}", key.kid),
                ));
            }
            jwks.keys.extend(key.jwk);
        }
        let mut validation = Validation::new(algorithm.jwt());
        validation.leeway = leeway.as_secs();
        validation.validate_exp = false; // checked against the injected clock
        validation.validate_nbf = false;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        Ok(Self {
            kid: signing.kid.clone(),
            algorithm,
            encoding: signing.encoding_key()?,
            verifying,
            jwks,
            validation,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            leeway,
            verified: VerifiedTokens::new(),
        })
    }

    /// The public keys as a JWKS document (`/.well-known/jwks.json`). Empty for HS256.
    pub fn jwks(&self) -> &Jwks {
        &self.jwks
    }

    /// Signs an access token.
    pub(crate) fn issue(
        &self,
        user: UserId,
        session: SessionId,
        role: Role,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Result<(String, AccessClaims), jsonwebtoken::errors::Error> {
        let claims = AccessClaims {
            sub: user.to_string(),
            sid: session.to_string(),
            role: role.as_str().to_owned(),
            iat: now.unix_timestamp(),
            exp: (now + ttl).unix_timestamp(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            jti: Uuid::new_v4().to_string(),
        };
        let mut header = Header::new(self.algorithm.jwt());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding).map(|t| (t, claims))
    }

    /// Verifies an access token's signature and claims at `now`.
    pub(crate) fn verify(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<AccessClaims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Invalid);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.verifying.get(kid))
            .ok_or(TokenError::Invalid)?;
        let data = jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation)
            .map_err(|_| TokenError::Invalid)?;
        if self.expired(data.claims.exp, now) {
            return Err(TokenError::Expired);
        }
        Ok(data.claims)
    }

    fn expired(&self, exp: i64, now: OffsetDateTime) -> bool {
        let leeway = i64::try_from(self.leeway.as_secs()).unwrap_or(0);
        verified::expired(exp, leeway, now)
    }

    /// [`verify`](Self::verify), remembering the tokens that pass: a token byte-identical to
    /// one verified before is accepted without checking its signature again, until it
    /// expires (by `verify`'s rule). Anything else is verified in full. Revocation is not
    /// this method's business: the caller still checks the session in the store.
    pub(crate) fn verify_cached(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<Arc<AccessClaims>, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Invalid);
        }
        let digest: verified::Digest = Sha256::digest(token.as_bytes()).into();
        if let Some(claims) = self.verified.get(&digest) {
            if self.expired(claims.exp, now) {
                self.verified.remove(&digest);
                return Err(TokenError::Expired);
            }
            return Ok(claims);
        }
        let claims = Arc::new(self.verify(token, now)?);
        self.verified.insert(digest, Arc::clone(&claims));
        Ok(claims)
    }

    /// How many verified tokens are remembered.
    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.verified.len()
    }
}

#[cfg(test)]
mod tests;
