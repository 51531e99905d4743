//! [`Argon2Hasher`]: Argon2id for new hashes, legacy bcrypt accepted, bounded concurrency.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash as Phc, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::oneshot;

use crate::domain::{Password, PasswordHash};
use crate::error::{ConfigError, HashError};
use crate::metrics as names;
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
    /// Hashes that may run at once: the number of worker threads.
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

/// A unit of hashing work for a worker thread.
type Job = Box<dyn FnOnce(&Params, &HashCeiling, &mut Scratch) + Send>;

/// Counters shared by the handles and the worker threads.
#[derive(Debug, Default)]
struct Load {
    /// Hashes admitted and not finished (queued or running).
    admitted: AtomicUsize,
    /// Hashes running on a worker now.
    running: AtomicUsize,
}

impl Load {
    fn report(&self) {
        let running = self.running.load(Ordering::Relaxed);
        let queued = self
            .admitted
            .load(Ordering::Relaxed)
            .saturating_sub(running);
        metrics::gauge!(names::HASH_RUNNING).set(running as f64);
        metrics::gauge!(names::HASH_QUEUE_DEPTH).set(queued as f64);
    }
}

/// Argon2id hashing on a fixed pool of `max_concurrent` worker threads, behind a queue of
/// `max_queued`; beyond that, calls fail at once with [`HashError::Overloaded`]. Verifies
/// Argon2 PHC strings and legacy bcrypt (`$2a$`, `$2b$`, `$2y$`); bcrypt and outdated Argon2
/// parameters report `needs_rehash`.
///
/// Memory stays near `max_concurrent` x `memory_kib`: only the pool's threads hash, so no more
/// than that many Argon2 blocks exist at once (a per-call blocking thread would let the
/// allocator keep one cached block per thread it ever used). A caller that goes away while
/// its hash runs does not free the slot until the hash ends; one that goes away while queued
/// costs nothing, its job is skipped.
#[derive(Debug, Clone)]
pub struct Argon2Hasher {
    jobs: mpsc::Sender<Job>,
    load: Arc<Load>,
    max_admitted: usize,
}

impl Argon2Hasher {
    /// Builds a hasher and starts its worker threads (they stop when the last handle drops).
    ///
    /// # Errors
    /// [`ConfigError`] when the Argon2 parameters are invalid, exceed the ceiling,
    /// `max_concurrent` is zero, or the threads cannot be started.
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
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..config.max_concurrent {
            let (queue, params) = (Arc::clone(&queue), params.clone());
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || worker(&queue, &params, &c))
                .map_err(|e| ConfigError::new("max_concurrent", e.to_string()))?;
        }
        Ok(Self {
            jobs,
            load: Arc::new(Load::default()),
            max_admitted: config.max_concurrent + config.max_queued,
        })
    }

    /// How many hashes run and wait right now.
    pub fn load(&self) -> HasherLoad {
        let running = self.load.running.load(Ordering::Relaxed);
        let admitted = self.load.admitted.load(Ordering::Relaxed);
        HasherLoad {
            running,
            queued: admitted.saturating_sub(running),
        }
    }

    /// Takes a place in the queue, or refuses at once when it is full.
    fn admit(&self) -> Result<Admission, HashError> {
        let admitted = self
            .load
            .admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_admitted).then_some(n + 1)
            });
        if admitted.is_err() {
            metrics::counter!(names::HASH_REJECTED_TOTAL).increment(1);
            return Err(HashError::Overloaded);
        }
        self.load.report();
        Ok(Admission(Arc::clone(&self.load)))
    }

    /// Runs `job` on a worker thread once admitted.
    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Params, &HashCeiling, &mut Scratch) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let admission = self.admit()?;
        let (done, result) = oneshot::channel();
        let queued_at = std::time::Instant::now();
        let job: Job = Box::new(move |params, ceiling, scratch| {
            if done.is_closed() {
                return; // the caller left while this waited: skip the work
            }
            metrics::histogram!(names::HASH_WAIT_SECONDS).record(queued_at.elapsed().as_secs_f64());
            let running = Running::start(&admission.0);
            let out = job(params, ceiling, scratch);
            // The place is given back only now that the hash is over, whatever the caller
            // did meanwhile, and before the caller hears back.
            drop(running);
            drop(admission);
            let _ = done.send(out);
        });
        self.jobs
            .send(job)
            .map_err(|_| HashError::Internal("the hashing threads have stopped".into()))?;
        result
            .await
            .map_err(|_| HashError::Internal("a hashing thread failed".into()))
    }
}

/// A place in the queue; given back when dropped.
struct Admission(Arc<Load>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.admitted.fetch_sub(1, Ordering::AcqRel);
        self.0.report();
    }
}

/// A hash running on a worker; counted while alive.
struct Running<'a>(&'a Load);

impl<'a> Running<'a> {
    fn start(load: &'a Load) -> Self {
        load.running.fetch_add(1, Ordering::AcqRel);
        load.report();
        Self(load)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How much nicer than the rest of the process the hash workers run (Linux nice value).
/// When the cores are saturated by a sign-in flood, the scheduler serves the async workers
/// first, so authenticated reads and health checks keep their latency while hashes queue;
/// on an idle machine it changes nothing.
pub const WORKER_NICENESS: i32 = 10;

/// Lowers the calling thread's priority by [`WORKER_NICENESS`]: on Linux the nice value is
/// per thread. Elsewhere `setpriority` would change the whole process, so it is left alone.
fn lower_own_priority() {
    #[cfg(target_os = "linux")]
    {
        let me = rustix::thread::gettid();
        let now = rustix::process::getpriority_process(Some(me)).unwrap_or(0);
        if let Err(e) = rustix::process::setpriority_process(Some(me), now + WORKER_NICENESS) {
            tracing::debug!(error = %e, "hash worker priority left as it is");
        }
    }
}

/// A worker thread: takes jobs until every handle is gone.
fn worker(queue: &Mutex<mpsc::Receiver<Job>>, params: &Params, ceiling: &HashCeiling) {
    lower_own_priority();
    let mut scratch = Scratch::default();
    loop {
        let next = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        match next {
            Ok(job) => job(params, ceiling, &mut scratch),
            Err(mpsc::RecvError) => return,
        }
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

/// The cost of a well-formed bcrypt hash within the ceiling: `$2a$`, `$2b$` or `$2y$`, a
/// two-digit cost from 4 to the ceiling, `$`, then 53 characters of bcrypt's base64 (a
/// 16-byte salt and a 23-byte digest). The same rules as `bcrypt::verify`, checked without
/// hashing.
fn parse_bcrypt(hash: &str, ceiling: &HashCeiling) -> Result<u32, HashError> {
    use base64::Engine as _;
    const MIN_COST: u32 = 4;
    let malformed = || refused("malformed bcrypt hash");
    if !is_bcrypt(hash) || hash.len() != 60 || hash.get(6..7) != Some("$") {
        return Err(malformed());
    }
    let cost: u32 = hash
        .get(4..6)
        .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|c| c.parse().ok())
        .ok_or_else(malformed)?;
    if cost < MIN_COST {
        return Err(malformed());
    }
    if cost > ceiling.max_bcrypt_cost {
        return Err(refused("bcrypt cost above the ceiling"));
    }
    let (salt, digest) = (hash.get(7..29), hash.get(29..));
    let salt = salt.and_then(|s| bcrypt::BASE_64.decode(s).ok());
    let digest = digest.and_then(|d| bcrypt::BASE_64.decode(d).ok());
    match (salt, digest) {
        (Some(salt), Some(digest)) if salt.len() == 16 && digest.len() == 23 => Ok(cost),
        _ => Err(malformed()),
    }
}

fn verify_bcrypt(
    candidate: &str,
    hash: &str,
    ceiling: &HashCeiling,
) -> Result<Verification, HashError> {
    parse_bcrypt(hash, ceiling)?;
    match bcrypt::verify(candidate, hash) {
        Ok(true) => Ok(Verification::Match { needs_rehash: true }),
        Ok(false) => Ok(Verification::Mismatch),
        // bcrypt's error text quotes the hash; never let it reach a log.
        Err(_) => Err(refused("malformed bcrypt hash")),
    }
}

/// A stored Argon2 hash, parsed and within the ceiling: everything needed to check it.
struct StoredArgon2 {
    algorithm: Algorithm,
    version: Version,
    params: Params,
    salt: Vec<u8>,
    expected: Output,
}

/// Parses a PHC Argon2 string and checks it against the ceiling, without hashing.
fn parse_argon2(hash: &str, ceiling: &HashCeiling) -> Result<StoredArgon2, HashError> {
    let phc = Phc::new(hash).map_err(|_| refused("malformed password hash"))?;
    let algorithm = Algorithm::try_from(phc.algorithm.as_str())
        .map_err(|_| refused("unknown password hash algorithm"))?;
    let params = Params::try_from(&phc).map_err(|_| refused("malformed argon2 parameters"))?;
    if params.m_cost() > ceiling.max_memory_kib
        || params.t_cost() > ceiling.max_iterations
        || params.p_cost() > ceiling.max_parallelism
    {
        return Err(refused("argon2 parameters above the ceiling"));
    }
    let version = match phc.version {
        Some(v) => Version::try_from(v).map_err(|_| refused("unknown argon2 version"))?,
        None => Version::default(),
    };
    let (Some(salt), Some(expected)) = (&phc.salt, &phc.hash) else {
        return Err(refused("argon2 hash without salt or output"));
    };
    let salt: &[u8] = salt.as_ref();
    if !(argon2::MIN_SALT_LEN..=argon2::MAX_SALT_LEN).contains(&salt.len()) {
        return Err(refused("argon2 salt of a wrong length"));
    }
    Ok(StoredArgon2 {
        algorithm,
        version,
        params,
        salt: salt.to_vec(),
        expected: *expected,
    })
}

fn verify_argon2(
    candidate: &str,
    hash: &str,
    current: &Params,
    ceiling: &HashCeiling,
    scratch: &mut Scratch,
) -> Result<Verification, HashError> {
    let StoredArgon2 {
        algorithm,
        version,
        params: stored,
        salt,
        expected,
    } = parse_argon2(hash, ceiling)?;
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, stored.clone())
        .hash_password_into_with_memory(
            candidate.as_bytes(),
            &salt,
            &mut out,
            scratch.blocks(stored.block_count()),
        )
        .map_err(|_| refused("argon2 hash could not be checked"))?;
    let computed = Output::new(&out).map_err(|_| refused("argon2 hash could not be checked"))?;
    // `Output`'s equality is constant-time.
    if computed != expected {
        return Ok(Verification::Mismatch);
    }
    Ok(Verification::Match {
        needs_rehash: algorithm != Algorithm::Argon2id
            || version != Version::V0x13
            || stored.m_cost() != current.m_cost()
            || stored.t_cost() != current.t_cost()
            || stored.p_cost() != current.p_cost()
            || stored.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)
                != current.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN),
    })
}

impl HashCeiling {
    /// Checks a stored hash the way verification does, without hashing: a bcrypt hash
    /// (`$2a$`, `$2b$`, `$2y$`, cost from 4 to `max_bcrypt_cost`, 53 characters of bcrypt
    /// base64) or a PHC Argon2 string whose parameters are within this ceiling. Imports use
    /// it so that no account is stored with a hash that the hasher would refuse at sign-in.
    ///
    /// # Errors
    /// [`HashError::Refused`] with a reason safe to show (it never quotes the hash).
    pub fn check(&self, hash: &str) -> Result<(), HashError> {
        if hash.starts_with("$2") {
            parse_bcrypt(hash, self).map(drop)
        } else {
            parse_argon2(hash, self).map(drop)
        }
    }
}

/// Verifies `candidate` against any supported stored hash. Shared by [`Argon2Hasher`] and the
/// test hasher so both accept the same inputs.
pub(crate) fn verify_any(
    candidate: &str,
    hash: &str,
    current: &Params,
    ceiling: &HashCeiling,
    scratch: &mut Scratch,
) -> Result<Verification, HashError> {
    let verdict = if is_bcrypt(hash) {
        verify_bcrypt(candidate, hash, ceiling)
    } else {
        verify_argon2(candidate, hash, current, ceiling, scratch)
    };
    // A stored hash with more memory than today's parameters grew the buffer; give it back.
    scratch.shrink_to(current.block_count());
    verdict
}

/// Hashes a new password with `params` and a fresh 16-byte salt into a PHC string, in the
/// reused `scratch` memory.
pub(crate) fn hash_with(
    params: &Params,
    password: &str,
    scratch: &mut Scratch,
) -> Result<PasswordHash, HashError> {
    let internal = |e: &dyn std::fmt::Display| HashError::Internal(e.to_string().into());
    let salt = argon2::password_hash::try_generate_salt().map_err(|e| internal(&e))?;
    let mut out = vec![0u8; params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)];
    argon2(params)
        .hash_password_into_with_memory(
            password.as_bytes(),
            &salt,
            &mut out,
            scratch.blocks(params.block_count()),
        )
        .map_err(|e| internal(&e))?;
    let phc = Phc {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| internal(&e))?,
        salt: Some(Salt::new(&salt).map_err(|e| internal(&e))?),
        hash: Some(Output::new(&out).map_err(|e| internal(&e))?),
    };
    Ok(PasswordHash::new(phc.to_string()))
}

/// Argon2 working memory, kept by each worker thread and reused for every hash, so that
/// hashing never asks the allocator for a fresh 19 MiB block.
#[derive(Default)]
pub(crate) struct Scratch(Vec<Block>);

impl Scratch {
    fn blocks(&mut self, count: usize) -> &mut [Block] {
        if self.0.len() < count {
            self.0.resize(count, Block::default());
        }
        &mut self.0[..count]
    }

    fn shrink_to(&mut self, count: usize) {
        if self.0.len() > count {
            self.0.truncate(count);
            self.0.shrink_to_fit();
        }
    }
}

#[async_trait::async_trait]
impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError> {
        let pw = SecretString::from(password.expose_secret());
        self.run(move |params, _, scratch| hash_with(params, pw.expose_secret(), scratch))
            .await?
    }

    async fn verify(
        &self,
        candidate: &SecretString,
        hash: &PasswordHash,
    ) -> Result<Verification, HashError> {
        let candidate = candidate.clone();
        let hash = hash.clone();
        self.run(move |params, ceiling, scratch| {
            verify_any(
                candidate.expose_secret(),
                hash.as_str(),
                params,
                ceiling,
                scratch,
            )
        })
        .await?
    }
}

#[cfg(test)]
mod tests;
