//! A bounded memory of the access tokens that passed full verification, so that a client
//! presenting the same token on every request pays the Ed25519 check (about 50 µs) once.
//!
//! # Why it is safe
//!
//! - An entry is keyed by the SHA-256 of the whole token, and only a token that
//!   [`TokenKeys::verify`](super::TokenKeys) accepted (signature, pinned algorithm, known
//!   `kid`, issuer, audience, required claims) is ever inserted. A hit therefore needs a
//!   byte-identical token: a forged, modified or re-encoded token hashes elsewhere, misses,
//!   and is verified in full (finding another token with the same SHA-256 is infeasible).
//! - What verification depends on cannot change under an entry: one cache belongs to one
//!   `TokenKeys`, whose keys, issuer, audience and leeway are fixed when it is built. A key
//!   rotation builds a new `TokenKeys`, and so an empty cache.
//! - Time can: a hit is refused once the token has expired, by the very rule `verify`
//!   applies ([`expired`]), and the entry is dropped.
//! - Nothing else is remembered. Whether the session is revoked, and the user's status and
//!   role, are still read from the store on every request, so revocation stays immediate on
//!   every instance.
//! - Memory is bounded: at most [`VerifiedTokens::CAPACITY`] entries, each a digest and the
//!   claims (a few hundred bytes).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use time::OffsetDateTime;

use super::keys::AccessClaims;

/// The SHA-256 of a token.
pub(crate) type Digest = [u8; 32];

/// Whether a token whose `exp` claim is `exp` has expired at `now`, with `leeway` seconds of
/// tolerance: the one rule for a token verified now and for one verified before.
pub(crate) fn expired(exp: i64, leeway: i64, now: OffsetDateTime) -> bool {
    exp.saturating_add(leeway) <= now.unix_timestamp()
}

/// Verified tokens, by digest. Sharded by the digest's first byte, so that concurrent
/// requests rarely wait on the same lock; each shard evicts by generations (below).
pub(crate) struct VerifiedTokens {
    shards: Box<[Mutex<Shard>]>,
}

/// One shard: two generations of at most [`HALF`] entries each. New entries go into
/// `young`; when it is full it becomes `old` and the previous `old` is dropped, all at once.
/// A hit in `old` moves the entry back into `young`, so that tokens in use survive and those
/// no longer presented age out: a cheap approximation of least-recently-used, O(1) per call.
#[derive(Default)]
struct Shard {
    young: HashMap<Digest, Arc<AccessClaims>>,
    old: HashMap<Digest, Arc<AccessClaims>>,
}

const SHARDS: usize = 16;
/// Entries per generation of one shard.
const HALF: usize = VerifiedTokens::CAPACITY / SHARDS / 2;

impl Shard {
    fn get(&mut self, digest: &Digest) -> Option<Arc<AccessClaims>> {
        if let Some(claims) = self.young.get(digest) {
            return Some(Arc::clone(claims));
        }
        let claims = self.old.remove(digest)?;
        self.insert(*digest, Arc::clone(&claims));
        Some(claims)
    }

    fn insert(&mut self, digest: Digest, claims: Arc<AccessClaims>) {
        if self.young.len() >= HALF && !self.young.contains_key(&digest) {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(digest, claims);
    }

    fn remove(&mut self, digest: &Digest) {
        self.young.remove(digest);
        self.old.remove(digest);
    }

    fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

impl VerifiedTokens {
    /// The most entries kept: 4096 tokens, under 2 MB.
    pub(crate) const CAPACITY: usize = 4096;

    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    fn shard(&self, digest: &Digest) -> std::sync::MutexGuard<'_, Shard> {
        self.shards[usize::from(digest[0]) % SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The claims of the verified token with this digest, if remembered. The caller checks
    /// expiry.
    pub(crate) fn get(&self, digest: &Digest) -> Option<Arc<AccessClaims>> {
        self.shard(digest).get(digest)
    }

    /// Remembers a token that passed full verification.
    pub(crate) fn insert(&self, digest: Digest, claims: Arc<AccessClaims>) {
        self.shard(&digest).insert(digest, claims);
    }

    /// Forgets a token (an expired one).
    pub(crate) fn remove(&self, digest: &Digest) {
        self.shard(digest).remove(digest);
    }

    /// How many tokens are remembered.
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(n: u32) -> Arc<AccessClaims> {
        Arc::new(AccessClaims {
            sub: format!("user-{n}"),
            sid: format!("session-{n}"),
            role: "user".into(),
            iat: 0,
            exp: 900,
            iss: "i".into(),
            aud: "a".into(),
            jti: n.to_string(),
        })
    }

    fn digest(n: u32) -> Digest {
        use sha2::Digest as _;
        sha2::Sha256::digest(n.to_be_bytes()).into()
    }

    #[test]
    fn memory_stays_bounded_and_tokens_in_use_survive() {
        let cache = VerifiedTokens::new();
        let hot = 1_000_000;
        cache.insert(digest(hot), claims(hot));
        for n in 0..20 * u32::try_from(VerifiedTokens::CAPACITY).unwrap() {
            cache.insert(digest(n), claims(n));
            assert!(cache.len() <= VerifiedTokens::CAPACITY, "after {n}");
            // The hot token is presented all along.
            if n % 64 == 0 {
                assert!(cache.get(&digest(hot)).is_some(), "hot token lost at {n}");
            }
        }
        assert!(
            cache.len() >= VerifiedTokens::CAPACITY / 2,
            "{}",
            cache.len()
        );
        assert!(cache.get(&digest(0)).is_none(), "an idle token ages out");
        let recent = 20 * u32::try_from(VerifiedTokens::CAPACITY).unwrap() - 1;
        assert_eq!(cache.get(&digest(recent)), Some(claims(recent)));
    }

    #[test]
    fn a_promoted_entry_is_found_once_and_removed_everywhere() {
        let mut shard = Shard::default();
        for n in 0..u32::try_from(HALF).unwrap() {
            shard.insert(digest(n), claims(n));
        }
        shard.insert(digest(9999), claims(9999)); // the first generation ages
        assert_eq!(shard.old.len(), HALF);
        assert!(
            shard.get(&digest(3)).is_some(),
            "promoted from the old generation"
        );
        assert!(shard.young.contains_key(&digest(3)) && !shard.old.contains_key(&digest(3)));
        assert_eq!(shard.len(), HALF + 1);
        shard.remove(&digest(3));
        assert!(shard.get(&digest(3)).is_none());
    }

    #[test]
    fn expiry_has_one_rule() {
        let t = |s| OffsetDateTime::from_unix_timestamp(s).unwrap();
        assert!(!expired(900, 5, t(904)));
        assert!(expired(900, 5, t(905)));
        assert!(expired(900, 0, t(900)));
        assert!(!expired(i64::MAX, 5, t(0)), "saturates");
    }
}
