//! The mail outbox on a real file: workers of two "instances" (two pools on one file) share
//! it without sending a mail twice, and queued mail survives a restart.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use user_core::domain::{OneTimeToken, TokenHash, TokenPurpose};
use user_core::mail::{DeliveryPolicy, deliver_periodically};
use user_core::ports::{Clock, Mail, MailOutbox, Mailer, OneTimeTokenStore, SystemClock};
use user_core::testing::RecordingMailer;
use user_core::testing::conformance::{mail, user};
use user_sqlite::{SqliteConfig, SqliteDatabase};

use crate::TestDb;

/// Long enough for a loaded 2-core machine; the tests end as soon as the mail is sent.
const PATIENCE: Duration = Duration::from_secs(30);

/// A delivery worker on `db`'s outbox, stopped by the returned sender.
fn spawn_worker(
    db: &SqliteDatabase,
    mailer: &Arc<RecordingMailer>,
    policy: DeliveryPolicy,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(deliver_periodically(
        Arc::new(db.outbox()),
        Arc::clone(mailer) as Arc<dyn Mailer>,
        Arc::new(SystemClock),
        policy,
        async {
            let _ = stopped.await;
        },
    ));
    (stop, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_deliver_each_of_50_mails_exactly_once() {
    let t = TestDb::new().await;
    let other = SqliteDatabase::open(&SqliteConfig::new(t.path()))
        .await
        .unwrap();
    let mails: Vec<Mail> = (0..50)
        .map(|n| mail(&format!("user{n}@example.com"), &n.to_string()))
        .collect();
    let now = SystemClock.now();
    for m in &mails {
        t.db.outbox().enqueue(m, now).await.unwrap();
    }
    let mailer = Arc::new(RecordingMailer::accepting());
    let policy = DeliveryPolicy {
        every: Duration::from_millis(100),
        batch: 7,
        ..DeliveryPolicy::default()
    };
    let (stop_a, a) = spawn_worker(&t.db, &mailer, policy);
    let (stop_b, b) = spawn_worker(&other, &mailer, policy);
    tokio::time::timeout(PATIENCE, mailer.wait_for_calls(50))
        .await
        .expect("all 50 mails sent");
    stop_a.send(()).unwrap();
    stop_b.send(()).unwrap();
    a.await.unwrap();
    b.await.unwrap();
    let accepted = mailer.accepted();
    assert_eq!(accepted.len(), 50, "no mail sent twice");
    let unique: HashSet<_> = accepted.into_iter().collect();
    assert_eq!(unique, mails.iter().map(|m| m.id).collect::<HashSet<_>>());
    let later = SystemClock.now() + Duration::from_secs(3600);
    assert_eq!(
        t.db.outbox().pending(later).await.unwrap(),
        0,
        "all deleted"
    );
    other.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_queued_by_issue_survives_a_restart_and_is_then_sent() {
    let t = TestDb::new().await;
    let alice = user("alice");
    crate::insert_user(&t.db, &alice).await;
    let now = SystemClock.now();
    let token = OneTimeToken {
        user_id: alice.id,
        purpose: TokenPurpose::VerifyEmail,
        email: alice.email.clone(),
        created_at: now,
        expires_at: now + Duration::from_secs(3600),
    };
    let m = mail(alice.email.as_ref(), "verify");
    t.db.tokens()
        .issue(&TokenHash::of("secret"), &token, &m)
        .await
        .unwrap();
    // The process stops before any worker ran.
    t.db.close().await;

    let reopened = SqliteDatabase::open(&SqliteConfig::new(t.path()))
        .await
        .unwrap();
    let mailer = Arc::new(RecordingMailer::accepting());
    let (stop, worker) = spawn_worker(&reopened, &mailer, DeliveryPolicy::default());
    tokio::time::timeout(PATIENCE, mailer.wait_for_calls(1))
        .await
        .expect("the queued mail is sent after the restart");
    stop.send(()).unwrap();
    worker.await.unwrap();
    let attempts = mailer.attempts();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].mail, m, "sent as queued, body and all");
    let later = SystemClock.now() + Duration::from_secs(3600);
    assert_eq!(reopened.outbox().pending(later).await.unwrap(), 0);
    assert_eq!(
        reopened
            .tokens()
            .consume(
                &TokenHash::of("secret"),
                TokenPurpose::VerifyEmail,
                SystemClock.now()
            )
            .await
            .unwrap(),
        token,
        "the token survived too"
    );
    reopened.close().await;
}
