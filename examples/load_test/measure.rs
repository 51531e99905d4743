//! Closed-loop driving and what it records; raw Argon2id throughput for comparison.

use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Block, Params, Version};
use user_core::password::Argon2Params;

use crate::client::{Caller, Failure};

/// What a set of clients did in one scenario.
#[derive(Debug, Default)]
pub(crate) struct Measured {
    /// Calls answered (successful, shed or failed).
    pub(crate) requests: u64,
    pub(crate) shed: u64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    /// Latencies of the successful calls, in microseconds, sorted.
    pub(crate) latencies: Vec<u64>,
    /// From the start until the last client stopped.
    pub(crate) elapsed: Duration,
}

impl Measured {
    /// Successful calls per second.
    pub(crate) fn throughput(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// The `q` quantile (0..=1) of the successful calls' latencies, in milliseconds.
    pub(crate) fn quantile_ms(&self, q: f64) -> Option<f64> {
        let n = self.latencies.len();
        if n == 0 {
            return None;
        }
        // Nearest rank: the smallest value with at least q of the samples at or below it.
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        Some(self.latencies[rank - 1] as f64 / 1000.0)
    }

    pub(crate) fn p50(&self) -> Option<f64> {
        self.quantile_ms(0.50)
    }

    pub(crate) fn p99(&self) -> Option<f64> {
        self.quantile_ms(0.99)
    }

    fn add(&mut self, other: Self) {
        self.requests += other.requests;
        self.shed += other.shed;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latencies.extend(other.latencies);
    }
}

/// Runs every caller in a loop of its own (the next call as soon as the last is answered;
/// a shed call is retried at once) until `duration` has passed, and gives the callers back.
pub(crate) async fn drive(callers: Vec<Caller>, duration: Duration) -> (Measured, Vec<Caller>) {
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = callers
        .into_iter()
        .map(|mut caller| {
            tokio::spawn(async move {
                let mut m = Measured::default();
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let outcome = caller.call().await;
                    let took = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                    m.requests += 1;
                    match outcome {
                        Ok(()) => m.latencies.push(took),
                        Err(Failure::Shed) => m.shed += 1,
                        Err(Failure::Other(e)) => {
                            m.errors += 1;
                            m.first_error.get_or_insert(e);
                        }
                    }
                }
                (m, caller)
            })
        })
        .collect();
    let mut total = Measured::default();
    let mut back = Vec::with_capacity(tasks.len());
    for task in tasks {
        match task.await {
            Ok((m, caller)) => {
                total.add(m);
                back.push(caller);
            }
            Err(e) => {
                total.errors += 1;
                total
                    .first_error
                    .get_or_insert(format!("a client task failed: {e}"));
            }
        }
    }
    total.elapsed = start.elapsed();
    total.latencies.sort_unstable();
    (total, back)
}

/// Argon2id with nothing around it: `threads` threads, each computing hashes of one password
/// at `params` back to back into memory of its own (as the server's hashing threads do),
/// for `duration`. Each hash is one call.
pub(crate) fn raw_argon2(params: Argon2Params, threads: usize, duration: Duration) -> Measured {
    let start = Instant::now();
    let deadline = start + duration;
    let per_thread: Vec<Measured> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| scope.spawn(move || hash_until(params, deadline)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| Measured {
                    errors: 1,
                    first_error: Some("a hashing thread panicked".into()),
                    ..Measured::default()
                })
            })
            .collect()
    });
    let mut total = Measured::default();
    for m in per_thread {
        total.add(m);
    }
    total.elapsed = start.elapsed();
    total.latencies.sort_unstable();
    total
}

fn hash_until(params: Argon2Params, deadline: Instant) -> Measured {
    let mut m = Measured::default();
    let params = match Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        None,
    ) {
        Ok(params) => params,
        Err(e) => {
            m.errors = 1;
            m.first_error = Some(format!("argon2 parameters: {e}"));
            return m;
        }
    };
    let mut blocks = vec![Block::default(); params.block_count()];
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut out = [0u8; 32];
    while Instant::now() < deadline {
        let started = Instant::now();
        let hashed = argon2.hash_password_into_with_memory(
            crate::client::PASSWORD.as_bytes(),
            b"a salt of sixteen",
            &mut out,
            &mut blocks[..],
        );
        m.requests += 1;
        match hashed {
            Ok(()) => m
                .latencies
                .push(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)),
            Err(e) => {
                m.errors += 1;
                m.first_error.get_or_insert(format!("argon2: {e}"));
            }
        }
    }
    m
}
