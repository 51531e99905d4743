//! The mail outbox on a real file: queued mail survives a restart. The outbox shared by two
//! instances is in the core's service suite (`services.rs`).

use std::sync::Arc;
use std::time::Duration;

use user_core::domain::{OneTimeToken, TokenHash, TokenPurpose};
use user_core::mail::{DeliveryPolicy, deliver_periodically};
use user_core::ports::{Clock, MailOutbox, Mailer, OneTimeTokenStore, SystemClock};
use user_core::testing::RecordingMailer;
use user_core::testing::conformance::{mail, user};
use user_sqlite::{SqliteConfig, SqliteDatabase};

use crate::TestDb;

/// Long enough for a loaded 2-core machine; the test ends as soon as the mail is sent.
const PATIENCE: Duration = Duration::from_secs(30);

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
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(deliver_periodically(
        Arc::new(reopened.outbox()),
        Arc::clone(&mailer) as Arc<dyn Mailer>,
        Arc::new(SystemClock),
        DeliveryPolicy::default(),
        async {
            let _ = stopped.await;
        },
    ));
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
