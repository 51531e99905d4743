//! The mail outbox on a real server: workers of two "instances" (two pools on one schema)
//! share it without sending a mail twice.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use user_core::mail::{DeliveryPolicy, deliver_periodically};
use user_core::ports::{Clock, Mail, MailOutbox, Mailer, SystemClock};
use user_core::testing::RecordingMailer;
use user_core::testing::conformance::mail;
use user_postgres::PostgresDatabase;

use crate::TestDb;

/// Long enough for a loaded 2-core machine; the test ends as soon as the mail is sent.
const PATIENCE: Duration = Duration::from_secs(30);

/// A delivery worker on `db`'s outbox, stopped by the returned sender.
fn spawn_worker(
    db: &PostgresDatabase,
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
    let Some(t) = TestDb::new().await else {
        return;
    };
    let other = PostgresDatabase::open(&t.schema.config()).await.unwrap();
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
