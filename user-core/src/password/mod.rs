//! [`Argon2Hasher`]: Argon2id for new hashes, legacy bcrypt accepted, bounded concurrency.

use std::sync::Arc;

use argon2::password_hash::phc::PasswordHash as Phc;
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use crate::domain::{Password, PasswordHash};
use crate::error::{ConfigError, HashError};
use crate::ports::{PasswordHasher, Verification};

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Argon2Params {
    /// OWASP's recommendation: m = 19456 KiB (19 MiB), t = 2, p = 1.
    pub const OWASP: Self = Self {
        memory_kib: 19_456,
        iterations: 2,
        parallelism: 1,
    };

    fn build(self) -> Result<Params, ConfigError> {
        Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| ConfigError::new("argon2", e.to_string()))
    }
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self::OWASP
    }
}

/// The most work a stored hash may ask for before it is refused unread, so that a hostile or
/// corrupt row cannot make a login allocate gigabytes or run for minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCeiling {
    /// Largest Argon2 memory cost, KiB.
    pub max_memory_kib: u32,
    /// Largest Argon2 time cost.
    pub max_iterations: u32,
    /// Largest Argon2 parallelism.
    pub max_parallelism: u32,
    /// Largest bcrypt cost (each step doubles the work).
    pub max_bcrypt_cost: u32,
}

impl Default for HashCeiling {
    /// 64 MiB, 10 passes, 4 lanes, bcrypt cost 14.
    fn default() -> Self {
        Self {
            max_memory_kib: 64 * 1024,
            max_iterations: 10,
            max_parallelism: 4,
            max_bcrypt_cost: 14,
        }
    }
}

/// Configuration of [`Argon2Hasher`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HasherConfig {
    /// Parameters for new hashes; stored hashes with other parameters need a rehash.
    pub params: Argon2Params,
    /// Limits on what a stored hash may ask for.
    pub ceiling: HashCeiling,
    /// Hashes that may run at once, each on a blocking thread.
    pub max_concurrent: usize,
    /// Hashes that may wait for a slot; beyond this, calls fail with `Overloaded`.
    pub max_queued: usize,
}

impl Default for HasherConfig {
    /// OWASP parameters, as many concurrent hashes as cores, a queue of 64.
    fn default() -> Self {
        Self {
            params: Argon2Params::OWASP,
            ceiling: HashCeiling::default(),
            max_concurrent: std::thread::available_parallelism().map_or(2, usize::from),
            max_queued: 64,
        }
    }
}

/// How busy the hasher is, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HasherLoad {
    /// Hashes running now.
    pub running: usize,
    /// Hashes waiting for a slot.
    pub queued: usize,
}

/// Argon2id hashing on blocking threads, at most `max_concurrent` at once behind a queue of
/// `max_queued`. Verifies Argon2 PHC strings and legacy bcrypt (`$2a$`, `$2b$`, `$2y$`);
/// bcrypt and outdated Argon2 parameters report `needs_rehash`.
///
/// Memory stays near `max_concurrent` x `memory_kib`: a cancelled caller does not free its slot
/// until its hash has finished, because the permit moves into the blocking task.
#[derive(Debug, Clone)]
pub struct Argon2Hasher {
    params: Params,
    ceiling: HashCeiling,
    /// Permits for running plus queued hashes; `try_acquire` fails fast when exhausted.
    admitted: Arc<Semaphore>,
    /// Permits for running hashes.
    running: Arc<Semaphore>,
    max_concurrent: usize,
    max_admitted: usize,
}

impl Argon2Hasher {
    /// Builds a hasher.
    ///
    /// # Errors
    /// [`ConfigError`] when the Argon2 parameters are invalid, exceed the ceiling, or
    /// `max_concurrent` is zero.
    pub fn new(config: HasherConfig) -> Result<Self, ConfigError> {
        let params = config.params.build()?;
        let c = config.ceiling;
        if config.params.memory_kib > c.max_memory_kib
            || config.params.iterations > c.max_iterations
            || config.params.parallelism > c.max_parallelism
        {
            return Err(ConfigError::new(
                "argon2",
                "parameters for new hashes exceed the configured ceiling",
            ));
        }
        if config.max_concurrent == 0 {
            return Err(ConfigError::new("max_concurrent", "must be at least 1"));
        }
        let max_admitted = config.max_concurrent + config.max_queued;
        Ok(Self {
            params,
            ceiling: c,
            admitted: Arc::new(Semaphore::new(max_admitted)),
            running: Arc::new(Semaphore::new(config.max_concurrent)),
            max_concurrent: config.max_concurrent,
            max_admitted,
        })
    }

    /// How many hashes run and wait right now.
    pub fn load(&self) -> HasherLoad {
        let running = self.max_concurrent - self.running.available_permits();
        let admitted = self.max_admitted - self.admitted.available_permits();
        HasherLoad {
            running,
            queued: admitted.saturating_sub(running),
        }
    }

    fn report_load(&self) {
        let load = self.load();
        metrics::gauge!("user_hash_running").set(load.running as f64);
        metrics::gauge!("user_hash_queue_depth").set(load.queued as f64);
    }

    /// Runs `job` on a blocking thread once admitted and given a slot.
    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Params, &HashCeiling) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let admitted = Arc::clone(&self.admitted)
            .try_acquire_owned()
            .map_err(|_| {
                metrics::counter!("user_hash_rejected_total").increment(1);
                HashError::Overloaded
            })?;
        self.report_load();
        let queued_at = std::time::Instant::now();
        let running = Arc::clone(&self.running)
            .acquire_owned()
            .await
            .map_err(|e| HashError::Internal(Box::new(e)))?;
        metrics::histogram!("user_hash_wait_seconds").record(queued_at.elapsed().as_secs_f64());
        self.report_load();
        let (params, ceiling) = (self.params.clone(), self.ceiling);
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let permits = (admitted, running);
            let out = job(&params, &ceiling);
            drop(permits);
            this.report_load();
            out
        })
        .await
        .map_err(|e| HashError::Internal(Box::new(e)))
    }
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn refused(reason: &'static str) -> HashError {
    HashError::Refused(reason.into())
}

fn is_bcrypt(hash: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p))
}

fn verify_bcrypt(
    candidate: &str,
    hash: &str,
    ceiling: &HashCeiling,
) -> Result<Verification, HashError> {
    let cost: u32 = hash
        .get(4..6)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| refused("malformed bcrypt hash"))?;
    if cost > ceiling.max_bcrypt_cost {
        return Err(refused("bcrypt cost above the ceiling"));
    }
    match bcrypt::verify(candidate, hash) {
        Ok(true) => Ok(Verification::Match { needs_rehash: true }),
        Ok(false) => Ok(Verification::Mismatch),
        // bcrypt's error text quotes the hash; never let it reach a log.
        Err(_) => Err(refused("malformed bcrypt hash")),
    }
}

fn verify_argon2(
    candidate: &str,
    hash: &str,
    current: &Params,
    ceiling: &HashCeiling,
) -> Result<Verification, HashError> {
    let phc = Phc::new(hash).map_err(|_| refused("malformed password hash"))?;
    let algorithm = Algorithm::try_from(phc.algorithm.as_str())
        .map_err(|_| refused("unknown password hash algorithm"))?;
    let stored = Params::try_from(&phc).map_err(|_| refused("malformed argon2 parameters"))?;
    if stored.m_cost() > ceiling.max_memory_kib
        || stored.t_cost() > ceiling.max_iterations
        || stored.p_cost() > ceiling.max_parallelism
    {
        return Err(refused("argon2 parameters above the ceiling"));
    }
    let version = phc.version.unwrap_or(0x10);
    match Argon2::default().verify_password(candidate.as_bytes(), &phc) {
        Ok(()) => Ok(Verification::Match {
            needs_rehash: algorithm != Algorithm::Argon2id
                || version != u32::from(Version::V0x13)
                || stored.m_cost() != current.m_cost()
                || stored.t_cost() != current.t_cost()
                || stored.p_cost() != current.p_cost()
                || stored.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)
                    != current.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN),
        }),
        Err(argon2::password_hash::Error::PasswordInvalid) => Ok(Verification::Mismatch),
        Err(_) => Err(refused("argon2 hash could not be checked")),
    }
}

/// Verifies `candidate` against any supported stored hash. Shared by [`Argon2Hasher`] and the
/// test hasher so both accept the same inputs.
pub(crate) fn verify_any(
    candidate: &str,
    hash: &str,
    current: &Params,
    ceiling: &HashCeiling,
) -> Result<Verification, HashError> {
    if is_bcrypt(hash) {
        verify_bcrypt(candidate, hash, ceiling)
    } else {
        verify_argon2(candidate, hash, current, ceiling)
    }
}

pub(crate) fn hash_with(params: &Params, password: &str) -> Result<PasswordHash, HashError> {
    argon2(params)
        .hash_password(password.as_bytes())
        .map(|h| PasswordHash::new(h.to_string()))
        .map_err(|e| HashError::Internal(Box::new(e)))
}

#[async_trait::async_trait]
impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError> {
        let pw = SecretString::from(password.expose_secret());
        self.run(move |params, _| hash_with(params, pw.expose_secret()))
            .await?
    }

    async fn verify(
        &self,
        candidate: &SecretString,
        hash: &PasswordHash,
    ) -> Result<Verification, HashError> {
        let candidate = candidate.clone();
        let hash = hash.clone();
        self.run(move |params, ceiling| {
            verify_any(candidate.expose_secret(), hash.as_str(), params, ceiling)
        })
        .await?
    }
}

#[cfg(test)]
mod tests;
