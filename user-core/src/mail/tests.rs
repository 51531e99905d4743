use std::collections::HashSet;
use std::time::Duration;

use super::*;
use crate::domain::Email;
use crate::ports::{DeadLetter, Mail};
use crate::testing::{InMemoryMailOutbox, RecordingMailer, TokioClock};

const SECOND: Duration = Duration::from_secs(1);
const HOUR: Duration = Duration::from_secs(3600);

fn mail(n: usize) -> Mail {
    Mail::new(
        Email::parse(&format!("user{n}@example.com")).unwrap(),
        format!("Subject {n}"),
        format!("Body {n}"),
        None,
    )
}

fn transient() -> Result<(), MailError> {
    Err(MailError::Transient("421 busy".to_owned()))
}

/// A worker over `outbox` and `mailer`, stopped by the returned sender.
fn spawn_worker(
    outbox: &Arc<InMemoryMailOutbox>,
    mailer: &Arc<RecordingMailer>,
    clock: &Arc<TokioClock>,
    policy: DeliveryPolicy,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(deliver_periodically(
        Arc::clone(outbox) as Arc<dyn MailOutbox>,
        Arc::clone(mailer) as Arc<dyn Mailer>,
        Arc::clone(clock) as Arc<dyn Clock>,
        policy,
        async {
            let _ = stopped.await;
        },
    ));
    (stop, task)
}

/// Waits until `mailer` has answered `calls` calls, or panics after an hour of (paused, so
/// quickly passing) time: a worker that never sends fails the test instead of hanging it.
async fn called(mailer: &RecordingMailer, calls: usize) {
    if tokio::time::timeout(HOUR, mailer.wait_for_calls(calls))
        .await
        .is_err()
    {
        panic!(
            "the mailer was called {} times within an hour, not {calls}",
            mailer.attempts().len()
        );
    }
}

async fn dead_letters(outbox: &InMemoryMailOutbox) -> Vec<DeadLetter> {
    outbox.dead_letters(100).await.unwrap()
}

#[test]
fn backoff_doubles_up_to_the_maximum() {
    let policy = DeliveryPolicy::default();
    let waits: Vec<u64> = (1..=9).map(|n| policy.backoff(n).as_secs()).collect();
    assert_eq!(waits, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
    assert_eq!(policy.backoff(u32::MAX), HOUR, "no overflow");
    assert_eq!(policy.send_timeout(), Duration::from_secs(6));
    let zero_batch = DeliveryPolicy { batch: 0, ..policy };
    assert_eq!(zero_batch.send_timeout(), policy.lease);
}

#[tokio::test(start_paused = true)]
async fn a_transient_failure_is_retried_after_a_doubling_backoff() {
    let outbox = Arc::new(InMemoryMailOutbox::default());
    let clock = Arc::new(TokioClock::default());
    let mailer = Arc::new(RecordingMailer::scripted(
        [transient(), transient()],
        Ok(()),
    ));
    let m = mail(1);
    outbox.enqueue(&m, clock.now()).await.unwrap();
    let (stop, task) = spawn_worker(&outbox, &mailer, &clock, DeliveryPolicy::default());
    called(&mailer, 3).await;
    let attempts = mailer.attempts();
    assert!(attempts.iter().all(|a| a.mail == m));
    assert_eq!(attempts[1].at - attempts[0].at, Duration::from_secs(30));
    assert_eq!(attempts[2].at - attempts[1].at, Duration::from_secs(60));
    assert_eq!(mailer.accepted(), vec![m.id]);
    tokio::time::sleep(HOUR).await;
    assert_eq!(mailer.attempts().len(), 3, "delivered once, then gone");
    assert_eq!(outbox.pending(clock.now() + HOUR).await.unwrap(), 0);
    assert!(dead_letters(&outbox).await.is_empty());
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_mail_is_given_up_after_the_last_attempt() {
    let outbox = Arc::new(InMemoryMailOutbox::default());
    let clock = Arc::new(TokioClock::default());
    let mailer = Arc::new(RecordingMailer::scripted([], transient()));
    let m = mail(1);
    let t0 = clock.now();
    outbox.enqueue(&m, t0).await.unwrap();
    let policy = DeliveryPolicy {
        max_attempts: 3,
        ..DeliveryPolicy::default()
    };
    let (stop, task) = spawn_worker(&outbox, &mailer, &clock, policy);
    called(&mailer, 3).await;
    tokio::time::sleep(24 * HOUR).await;
    assert_eq!(mailer.attempts().len(), 3, "no fourth attempt");
    let dead = dead_letters(&outbox).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!((dead[0].id, dead[0].attempts), (m.id, 3));
    assert_eq!(dead[0].to, m.to);
    assert_eq!(dead[0].error, "421 busy");
    assert_eq!(dead[0].failed_at - t0, Duration::from_secs(90));
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_rejected_mail_is_not_retried() {
    let outbox = Arc::new(InMemoryMailOutbox::default());
    let clock = Arc::new(TokioClock::default());
    let refusal = "550 5.1.1 no such user ".repeat(50);
    let mailer = Arc::new(RecordingMailer::scripted(
        [Err(MailError::Rejected(refusal.clone()))],
        Ok(()),
    ));
    let (rejected, fine) = (mail(1), mail(2));
    outbox.enqueue(&rejected, clock.now()).await.unwrap();
    outbox.enqueue(&fine, clock.now() + SECOND).await.unwrap();
    let (stop, task) = spawn_worker(&outbox, &mailer, &clock, DeliveryPolicy::default());
    called(&mailer, 2).await;
    tokio::time::sleep(24 * HOUR).await;
    let sent: Vec<_> = mailer.attempts().iter().map(|a| a.mail.id).collect();
    assert_eq!(sent, vec![rejected.id, fine.id], "one attempt each");
    let dead = dead_letters(&outbox).await;
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].id, dead[0].attempts), (rejected.id, 1));
    assert_eq!(
        dead[0].error,
        refusal
            .chars()
            .take(DeliveryPolicy::MAX_ERROR_CHARS)
            .collect::<String>(),
        "the error is kept short"
    );
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_the_worker() {
    let outbox = Arc::new(InMemoryMailOutbox::default());
    let clock = Arc::new(TokioClock::default());
    let mailer = Arc::new(RecordingMailer::accepting());
    outbox.enqueue(&mail(1), clock.now()).await.unwrap();
    let (stop, task) = spawn_worker(&outbox, &mailer, &clock, DeliveryPolicy::default());
    called(&mailer, 1).await;
    stop.send(()).unwrap();
    tokio::time::timeout(SECOND, task)
        .await
        .expect("the worker stops at once")
        .unwrap();
    outbox.enqueue(&mail(2), clock.now()).await.unwrap();
    tokio::time::sleep(HOUR).await;
    assert_eq!(mailer.attempts().len(), 1, "nothing sent after shutdown");
    assert_eq!(outbox.pending(clock.now()).await.unwrap(), 1);
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_the_rest_of_a_batch_go_back_to_the_queue() {
    let outbox = Arc::new(InMemoryMailOutbox::default());
    let clock = Arc::new(TokioClock::default());
    let mailer = Arc::new(RecordingMailer::accepting());
    for n in 0..5 {
        outbox.enqueue(&mail(n), clock.now()).await.unwrap();
    }
    // Shut down as soon as the first mail is sent.
    let first_sent = {
        let mailer = Arc::clone(&mailer);
        async move { called(&mailer, 1).await }
    };
    deliver_periodically(
        Arc::clone(&outbox) as Arc<dyn MailOutbox>,
        Arc::clone(&mailer) as Arc<dyn Mailer>,
        Arc::clone(&clock) as Arc<dyn Clock>,
        DeliveryPolicy::default(),
        first_sent,
    )
    .await;
    assert_eq!(
        mailer.attempts().len(),
        1,
        "the mail in flight was finished"
    );
    let lease = DeliveryPolicy::default().lease;
    assert_eq!(
        outbox.pending(clock.now()).await.unwrap(),
        0,
        "still leased"
    );
    assert_eq!(outbox.pending(clock.now() + lease).await.unwrap(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_send_that_hangs_is_cut_off_and_retried() {
    struct Hanging;
    #[async_trait::async_trait]
    impl Mailer for Hanging {
        async fn send(&self, _: &Mail) -> Result<(), MailError> {
            std::future::pending().await
        }
    }
    let outbox = InMemoryMailOutbox::default();
    let clock = TokioClock::default();
    let m = mail(1);
    outbox.enqueue(&m, clock.now()).await.unwrap();
    let policy = DeliveryPolicy::default();
    let start = tokio::time::Instant::now();
    let done = deliver_once(&outbox, &Hanging, &clock, &policy)
        .await
        .unwrap();
    assert_eq!(
        done,
        Delivery {
            retried: 1,
            ..Delivery::default()
        }
    );
    assert_eq!(start.elapsed(), policy.send_timeout());
    let later = clock.now() + policy.backoff(1);
    let again = outbox.claim(later, later + HOUR, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1);
}

#[tokio::test(start_paused = true)]
async fn two_workers_deliver_each_of_50_mails_exactly_once() {
    let outbox = Arc::new(InMemoryMailOutbox::default());
    let clock = Arc::new(TokioClock::default());
    let mailer = Arc::new(RecordingMailer::accepting());
    let mails: Vec<Mail> = (0..50).map(mail).collect();
    for m in &mails {
        outbox.enqueue(m, clock.now()).await.unwrap();
    }
    let policy = DeliveryPolicy {
        batch: 7,
        ..DeliveryPolicy::default()
    };
    let (stop_a, a) = spawn_worker(&outbox, &mailer, &clock, policy);
    let (stop_b, b) = spawn_worker(&outbox, &mailer, &clock, policy);
    called(&mailer, 50).await;
    tokio::time::sleep(HOUR).await;
    stop_a.send(()).unwrap();
    stop_b.send(()).unwrap();
    a.await.unwrap();
    b.await.unwrap();
    let accepted = mailer.accepted();
    assert_eq!(accepted.len(), 50, "no mail sent twice");
    let unique: HashSet<_> = accepted.into_iter().collect();
    assert_eq!(unique, mails.iter().map(|m| m.id).collect::<HashSet<_>>());
    assert_eq!(outbox.pending(clock.now() + HOUR).await.unwrap(), 0);
}

#[test]
fn each_outcome_is_counted() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let outbox = InMemoryMailOutbox::default();
    let clock = TokioClock::default();
    let mailer = RecordingMailer::scripted(
        [
            Ok(()),
            transient(),
            Err(MailError::Rejected("550".to_owned())),
        ],
        Ok(()),
    );
    let done = metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            for n in 0..3 {
                outbox.enqueue(&mail(n), clock.now()).await.unwrap();
            }
            let done = deliver_once(&outbox, &mailer, &clock, &DeliveryPolicy::default()).await;
            record_pending_mail(&outbox, &clock).await.unwrap();
            done
        })
    });
    assert_eq!(
        done.unwrap(),
        Delivery {
            sent: 1,
            retried: 1,
            gave_up: 1,
            lost: 0
        }
    );
    let page = handle.render();
    for outcome in ["sent", "retry", "gave_up"] {
        let line = format!("{MAIL_SENT_TOTAL}{{outcome=\"{outcome}\"}} 1");
        assert!(page.lines().any(|l| l == line), "{line} in {page}");
    }
    assert!(
        page.lines().any(|l| l == format!("{MAIL_PENDING} 0")),
        "{page}"
    );
}
