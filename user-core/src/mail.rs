//! Delivery of the mail queued in the [`MailOutbox`]: [`deliver_periodically`] is the
//! background worker every instance runs. Requests never send mail themselves: they queue it
//! with their own change (see [`OneTimeTokenStore::issue`](crate::ports::OneTimeTokenStore::issue)),
//! so sending never slows or fails a request, and a crash between the commit and the send
//! loses nothing.
//!
//! Each round claims a batch of due mails for a lease ([`DeliveryPolicy::lease`]), so workers
//! on several instances never hold one mail at once, then sends them one by one through the
//! [`Mailer`]:
//!
//! - accepted: the mail is deleted ([`MailOutbox::delivered`]);
//! - [`MailError::Transient`]: it is due again after a backoff that doubles from
//!   [`DeliveryPolicy::backoff_base`] up to [`DeliveryPolicy::backoff_max`]
//!   ([`MailOutbox::retry_later`]), until [`DeliveryPolicy::max_attempts`] attempts failed;
//! - [`MailError::Rejected`], or the last allowed attempt failed: it becomes a dead letter
//!   ([`MailOutbox::give_up`]), without subject or body.
//!
//! Each send is cut off after `lease / batch`, so a whole batch fits in its lease. A mail
//! whose settlement fails (the database is down, or the lease ran out) is claimed again when
//! its lease ends and may be sent twice; its `Message-ID` stays the same, so a receiver can
//! drop the copy. Logs name the mail's id, the recipient's domain and the outcome, never the
//! subject, the body or the whole address.
//!
//! ```no_run
//! # async fn run(storage: user_core::Storage, mailer: std::sync::Arc<dyn user_core::ports::Mailer>) {
//! use std::sync::Arc;
//! use user_core::mail::{DeliveryPolicy, deliver_periodically};
//! use user_core::ports::SystemClock;
//!
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let worker = tokio::spawn(deliver_periodically(
//!     storage.outbox.clone(),
//!     mailer,
//!     Arc::new(SystemClock),
//!     DeliveryPolicy::default(),
//!     async {
//!         let _ = stopped.await;
//!     },
//! ));
//! // ... serve; then:
//! let _ = stop.send(());
//! let _ = worker.await;
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::std_to_time;
use crate::error::{RepoError, report};
use crate::metrics::{MAIL_PENDING, MAIL_SENT_TOTAL};
use crate::ports::{ClaimedMail, Clock, MailError, MailOutbox, Mailer};

/// How [`deliver_periodically`] works through the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// Time between two rounds (a round that claimed a full batch claims again at once).
    /// Less than [`DeliveryPolicy::MIN_EVERY`] counts as that minimum.
    pub every: Duration,
    /// How many mails one claim takes (at least 1).
    pub batch: u32,
    /// How long a claim keeps a mail from other workers. Each send is cut off after
    /// `lease / batch`, so a batch is settled within its lease.
    pub lease: Duration,
    /// Failed attempts after which a mail is given up.
    pub max_attempts: u32,
    /// The wait after the first failed attempt; it doubles with each failure.
    pub backoff_base: Duration,
    /// The longest wait between two attempts.
    pub backoff_max: Duration,
}

impl DeliveryPolicy {
    /// The shortest time between two rounds.
    pub const MIN_EVERY: Duration = Duration::from_millis(100);

    /// The longest error text kept with a mail or dead letter, in characters.
    pub const MAX_ERROR_CHARS: usize = 200;

    /// The wait before the next attempt of a mail that failed `failed` times (1 for the
    /// first failure): `backoff_base × 2^(failed − 1)`, at most `backoff_max`.
    pub fn backoff(&self, failed: u32) -> Duration {
        let doublings = failed.saturating_sub(1).min(31);
        self.backoff_base
            .checked_mul(1 << doublings)
            .unwrap_or(Duration::MAX)
            .min(self.backoff_max)
    }

    /// How long one send may take: the lease shared by the batch.
    pub fn send_timeout(&self) -> Duration {
        self.lease / self.batch.max(1)
    }
}

impl Default for DeliveryPolicy {
    /// Every second, 20 mails a claim, a 2-minute lease (6 s a send), 10 attempts, backoff
    /// from 30 s doubling up to an hour (about 4.6 h from the first to the last attempt).
    fn default() -> Self {
        Self {
            every: Duration::from_secs(1),
            batch: 20,
            lease: Duration::from_secs(120),
            max_attempts: 10,
            backoff_base: Duration::from_secs(30),
            backoff_max: Duration::from_secs(3600),
        }
    }
}

/// What one round did with the mails it claimed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Accepted by the mailer and deleted.
    pub sent: u32,
    /// Failed for now; due again later.
    pub retried: u32,
    /// Turned into dead letters.
    pub gave_up: u32,
    /// Not settled: the claim ran out, or the store failed (they will be claimed again).
    pub lost: u32,
}

impl Delivery {
    /// How many mails the round claimed and handled.
    pub fn handled(&self) -> u32 {
        self.sent + self.retried + self.gave_up + self.lost
    }
}

/// Claims one batch at `clock.now()` and sends each mail, settling it as the
/// [module](self) docs say.
///
/// # Errors
/// [`RepoError::Unavailable`] when the claim fails (nothing was sent). A failed settlement
/// is not an error: it counts as [`Delivery::lost`].
pub async fn deliver_once(
    outbox: &dyn MailOutbox,
    mailer: &dyn Mailer,
    clock: &dyn Clock,
    policy: &DeliveryPolicy,
) -> Result<Delivery, RepoError> {
    let mut never = std::pin::pin!(std::future::pending::<()>());
    Ok(deliver_batch(outbox, mailer, clock, policy, &mut never)
        .await?
        .0)
}

/// Runs delivery rounds every `policy.every` (the first at once) until `shutdown`
/// completes. A round that claimed a full batch is followed at once by another. On
/// shutdown the mail being sent is finished and settled; the rest of its batch is claimed
/// again, by any worker, when the lease ends. A failed claim is logged at WARN and tried
/// again at the next interval.
pub async fn deliver_periodically(
    outbox: Arc<dyn MailOutbox>,
    mailer: Arc<dyn Mailer>,
    clock: Arc<dyn Clock>,
    policy: DeliveryPolicy,
    shutdown: impl Future<Output = ()>,
) {
    let mut interval = tokio::time::interval(policy.every.max(DeliveryPolicy::MIN_EVERY));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = interval.tick() => {}
        }
        loop {
            match deliver_batch(&*outbox, &*mailer, &*clock, &policy, &mut shutdown).await {
                Ok((_, Stop::Yes)) => return,
                Ok((done, Stop::No)) if done.handled() >= policy.batch.max(1) => {}
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %report(&e), "cannot claim mail to send");
                    break;
                }
            }
        }
    }
}

/// Reads the backlog of the outbox at `clock.now()` ([`MailOutbox::pending`]) and sets the
/// [`MAIL_PENDING`] gauge, for example on each scrape of a `/metrics` page. Returns it.
///
/// # Errors
/// [`RepoError::Unavailable`] when the store fails; the gauge then keeps its last value.
pub async fn record_pending_mail(
    outbox: &dyn MailOutbox,
    clock: &dyn Clock,
) -> Result<u64, RepoError> {
    let pending = outbox.pending(clock.now()).await?;
    metrics::gauge!(MAIL_PENDING).set(pending as f64);
    Ok(pending)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Yes,
    No,
}

/// Whether `shutdown` has completed, without waiting. Never called again once it answers
/// [`Stop::Yes`].
async fn stopping<F: Future<Output = ()>>(shutdown: &mut Pin<&mut F>) -> Stop {
    tokio::select! {
        biased;
        () = shutdown.as_mut() => Stop::Yes,
        () = std::future::ready(()) => Stop::No,
    }
}

async fn deliver_batch<F: Future<Output = ()>>(
    outbox: &dyn MailOutbox,
    mailer: &dyn Mailer,
    clock: &dyn Clock,
    policy: &DeliveryPolicy,
    shutdown: &mut Pin<&mut F>,
) -> Result<(Delivery, Stop), RepoError> {
    let now = clock.now();
    let lease_until = now.checked_add(std_to_time(policy.lease)).unwrap_or(now);
    let claimed = outbox.claim(now, lease_until, policy.batch.max(1)).await?;
    let mut done = Delivery::default();
    for mail in claimed {
        let outcome = deliver(outbox, mailer, clock, policy, &mail).await;
        match outcome {
            Outcome::Sent => done.sent += 1,
            Outcome::Retry => done.retried += 1,
            Outcome::GaveUp => done.gave_up += 1,
            Outcome::Lost => done.lost += 1,
        }
        if stopping(shutdown).await == Stop::Yes {
            return Ok((done, Stop::Yes));
        }
    }
    Ok((done, Stop::No))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Sent,
    Retry,
    GaveUp,
    Lost,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Retry => "retry",
            Self::GaveUp => "gave_up",
            Self::Lost => "lost",
        }
    }
}

/// Sends one claimed mail and settles it; logs and counts the outcome.
async fn deliver(
    outbox: &dyn MailOutbox,
    mailer: &dyn Mailer,
    clock: &dyn Clock,
    policy: &DeliveryPolicy,
    claimed: &ClaimedMail,
) -> Outcome {
    let ClaimedMail {
        mail,
        attempts,
        claim,
    } = claimed;
    let domain = mail
        .to
        .as_ref()
        .rsplit_once('@')
        .map_or("", |(_, domain)| domain);
    let sent = match tokio::time::timeout(policy.send_timeout(), mailer.send(mail)).await {
        Ok(result) => result,
        Err(_) => Err(MailError::Transient("send timed out".to_owned())),
    };
    let failed = attempts.saturating_add(1);
    let (settled, outcome) = match &sent {
        Ok(()) => (outbox.delivered(mail.id, *claim).await, Outcome::Sent),
        Err(MailError::Transient(_)) if failed < policy.max_attempts => {
            let wait = std_to_time(policy.backoff(failed));
            let now = clock.now();
            let retry_at = now.checked_add(wait).unwrap_or(now);
            let error = short(&sent);
            let settled = outbox.retry_later(mail.id, *claim, retry_at, &error).await;
            (settled, Outcome::Retry)
        }
        Err(_) => {
            let error = short(&sent);
            let settled = outbox.give_up(mail.id, *claim, clock.now(), &error).await;
            (settled, Outcome::GaveUp)
        }
    };
    let outcome = match settled {
        Ok(()) => outcome,
        Err(e) => {
            tracing::warn!(
                mail = %mail.id,
                domain,
                error = %report(&e),
                "mail not settled; it will be claimed again"
            );
            Outcome::Lost
        }
    };
    metrics::counter!(MAIL_SENT_TOTAL, "outcome" => outcome.label()).increment(1);
    match (&sent, outcome) {
        (_, Outcome::Lost) => {}
        (Ok(()), _) => tracing::info!(mail = %mail.id, domain, "mail sent"),
        (Err(e), Outcome::Retry) => {
            tracing::warn!(mail = %mail.id, domain, attempts = failed, error = %e, "mail not sent, will retry");
        }
        (Err(e), _) => {
            tracing::warn!(mail = %mail.id, domain, attempts = failed, error = %e, "mail given up");
        }
    }
    outcome
}

/// The transport's reason for a failed send, cut to [`DeliveryPolicy::MAX_ERROR_CHARS`].
fn short(sent: &Result<(), MailError>) -> String {
    match sent {
        Ok(()) => String::new(),
        Err(MailError::Transient(reason) | MailError::Rejected(reason)) => reason
            .chars()
            .take(DeliveryPolicy::MAX_ERROR_CHARS)
            .collect(),
    }
}

#[cfg(test)]
mod tests;
