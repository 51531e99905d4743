//! Two instances of the service on one PostgreSQL database, in process: each with its own
//! pool, its own services and its own HTTP and gRPC listeners, sharing only the database and
//! the signing key file, as several instances behind a load balancer do. What one instance
//! changes, the other sees at once: accounts, sign-outs, disabled users, guess budgets and
//! spent refresh tokens; a second factor enrolled on one is asked for on the other, and the
//! two steps of a sign-in may land on different instances and faces.
//!
//! Needs `USERS_TEST_POSTGRES_URL` (see `user_postgres::testing`); skipped without it.

// Test helpers panic on failure, by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::{Value, json};
use support::{client, request_as};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::Code;
use tonic::metadata::MetadataValue;
use user_core::Services;
use user_core::auth::{AuthPolicy, LockoutPolicy, key_files};
use user_core::testing::FastHasher;
use user_grpc::pb;
use user_grpc::pb::user_service_client::UserServiceClient;
use user_grpc::{GrpcConfig, GrpcState};
use user_http::AppState;
use user_postgres::PostgresDatabase;
use user_postgres::testing::TestSchema;

const PW: &str = "correct horse battery staple";
const THRESHOLD: u32 = 5;

/// One running instance.
struct Instance {
    http: SocketAddr,
    grpc: SocketAddr,
    db: PostgresDatabase,
    stop: watch::Sender<bool>,
}

impl Instance {
    /// Opens its own pool on the shared schema, loads the shared key and serves both
    /// protocols on port 0.
    async fn start(schema: &TestSchema, key_file: &std::path::Path) -> Self {
        let db = schema.open().await;
        let policy = AuthPolicy {
            lockout: LockoutPolicy {
                threshold: THRESHOLD,
                ..LockoutPolicy::default()
            },
            // Every request here comes from 127.0.0.1; the per-address limit is per instance
            // and not what this test is about.
            login_attempts_per_ip_per_minute: None,
            ..AuthPolicy::default()
        };
        let key = key_files::load_or_create_signing_key(key_file).unwrap();
        let folder = key_file.parent().unwrap();
        let factor_key =
            key_files::load_or_create_factor_key(&folder.join("second-factor.key")).unwrap();
        let services = Services::builder(db.storage())
            .policy(policy)
            .hasher(FastHasher::new())
            .signing_key(key, Vec::new())
            .second_factor_key(factor_key)
            .build()
            .unwrap();
        let (stop, stopped) = watch::channel(false);
        let signal = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };

        let http_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (http, grpc) = (
            http_listener.local_addr().unwrap(),
            grpc_listener.local_addr().unwrap(),
        );
        let app =
            user_http::router(AppState::from(&services).with_readiness(Arc::new(db.readiness())));
        tokio::spawn(user_http::serve(
            http_listener,
            app,
            (),
            signal(stopped.clone()),
        ));
        let routes = user_grpc::routes(GrpcState::from(&services), &GrpcConfig::default())
            .await
            .unwrap();
        tokio::spawn(user_grpc::serve(grpc_listener, routes, (), signal(stopped)));
        Self {
            http,
            grpc,
            db,
            stop,
        }
    }

    async fn http(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let (status, text) = request_as(&client(), self.http, token, method, path, body)
            .await
            .unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn grpc(&self) -> UserServiceClient<tonic::transport::Channel> {
        UserServiceClient::connect(format!("http://{}", self.grpc))
            .await
            .unwrap()
    }

    /// Signs in over JSON; the access and refresh tokens.
    async fn sign_in(&self, identifier: &str, password: &str) -> Result<(String, String), u16> {
        sign_in_at(self.http, identifier, password).await
    }

    /// `POST /auth/refresh` with `refresh_token`: the status and the new tokens.
    async fn refresh(&self, refresh_token: &str) -> (u16, Value) {
        let body = json!({ "refresh_token": refresh_token });
        self.http(None, "POST", "/api/v1/auth/refresh", Some(body))
            .await
    }

    /// `GetUser` over gRPC with `token`.
    async fn grpc_me(&self, token: &str) -> Result<pb::User, Code> {
        let mut request = tonic::Request::new(pb::GetUserRequest::default());
        let value = MetadataValue::try_from(format!("Bearer {token}")).unwrap();
        request.metadata_mut().insert("authorization", value);
        self.grpc()
            .await
            .get_user(request)
            .await
            .map(|r| r.into_inner().user.unwrap())
            .map_err(|s| s.code())
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        self.db.close().await;
    }
}

/// Signs in over JSON at `addr`; the access and refresh tokens, or the refusal's status.
async fn sign_in_at(
    addr: SocketAddr,
    identifier: &str,
    password: &str,
) -> Result<(String, String), u16> {
    let body = json!({ "identifier": identifier, "password": password });
    let (status, text) = request_as(
        &client(),
        addr,
        None,
        "POST",
        "/api/v1/auth/login",
        Some(body),
    )
    .await
    .unwrap();
    if status != 200 {
        return Err(status);
    }
    let tokens: Value = serde_json::from_str(&text).unwrap();
    Ok((
        tokens["access_token"].as_str().unwrap().to_owned(),
        tokens["refresh_token"].as_str().unwrap().to_owned(),
    ))
}

/// Two instances on one fresh schema, or `None` when PostgreSQL is not configured.
async fn two_instances() -> Option<(TestSchema, tempfile::TempDir, Instance, Instance)> {
    let schema = TestSchema::create().await?;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("signing-key.pem");
    let a = Instance::start(&schema, &key).await;
    let b = Instance::start(&schema, &key).await;
    Some((schema, dir, a, b))
}

async fn register(on: &Instance, name: &str) -> String {
    let body = json!({ "username": name, "email": format!("{name}@example.com"), "password": PW });
    let (status, user) = on
        .http(None, "POST", "/api/v1/auth/register", Some(body))
        .await;
    assert_eq!(status, 201, "register {name}: {user}");
    user["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_one_instance_does_the_other_sees_at_once() {
    let Some((_schema, _dir, a, b)) = two_instances().await else {
        return;
    };

    // Register on A, sign in on B (JSON and the legacy gRPC call), read the profile on A.
    register(&a, "ada").await;
    let (access, _) = b.sign_in("ada", PW).await.unwrap();
    let login = b
        .grpc()
        .await
        .login_user(pb::LoginUserRequest {
            email: "ada@example.com".into(),
            password: PW.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.grpc_me(&login.token).await.unwrap().username, "ada");
    assert_eq!(
        a.http(Some(&access), "GET", "/api/v1/me", None).await.0,
        200
    );

    // Sign out on A: the access token is refused on B at once, over both protocols.
    assert_eq!(
        a.http(Some(&access), "POST", "/api/v1/auth/logout", None)
            .await
            .0,
        204
    );
    assert_eq!(
        b.http(Some(&access), "GET", "/api/v1/me", None).await.0,
        401
    );
    assert_eq!(b.grpc_me(&access).await.unwrap_err(), Code::Unauthenticated);
    // The gRPC session is another session: it lives on.
    assert_eq!(b.grpc_me(&login.token).await.unwrap().username, "ada");

    // A refresh token rotated on A is spent on B.
    let (_, refresh) = a.sign_in("ada", PW).await.unwrap();
    let (status, rotated) = a.refresh(&refresh).await;
    assert_eq!(status, 200, "{rotated}");
    let (status, _) = b.refresh(&refresh).await;
    assert_eq!(
        status, 401,
        "a spent refresh token must be refused on the other instance"
    );
    // Presenting the spent token was reuse: the session it belonged to ended, on A too.
    let newer = rotated["refresh_token"].as_str().unwrap();
    let (status, _) = a.refresh(newer).await;
    assert_eq!(status, 401, "reuse ends the whole session");

    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_on_one_instance_ends_a_session_on_the_other() {
    let Some((schema, _dir, a, b)) = two_instances().await else {
        return;
    };
    let admin_id = register(&a, "root").await;
    // The first admin is made the way an operator makes one: in the store.
    {
        let db = schema.open().await;
        let id: user_core::domain::UserId = admin_id.parse().unwrap();
        user_core::ports::UserRepository::set_role(
            &*db.storage().users,
            id,
            user_core::domain::Role::Admin,
            time::OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
        db.close().await;
    }
    let user_id = register(&b, "bob").await;
    let (bob, _) = a.sign_in("bob", PW).await.unwrap();
    assert_eq!(a.grpc_me(&bob).await.unwrap().username, "bob");

    let (admin, _) = b.sign_in("root", PW).await.unwrap();
    let (status, body) = b
        .http(
            Some(&admin),
            "PUT",
            &format!("/api/v1/admin/users/{user_id}/status"),
            Some(json!({ "status": "disabled" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    assert_eq!(a.grpc_me(&bob).await.unwrap_err(), Code::Unauthenticated);
    assert_eq!(a.http(Some(&bob), "GET", "/api/v1/me", None).await.0, 401);
    assert!(
        a.sign_in("bob", PW).await.is_err(),
        "a disabled user cannot sign in on A"
    );

    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_guesses_on_both_instances_share_one_budget() {
    let Some((_schema, _dir, a, b)) = two_instances().await else {
        return;
    };
    register(&a, "carol").await;
    register(&a, "dave").await;
    let on = |i: u32| if i.is_multiple_of(2) { &a } else { &b };

    // One guess short of the threshold, spread over both: the right password still works.
    for i in 0..THRESHOLD - 1 {
        assert_eq!(
            on(i).sign_in("carol", "wrong guess").await.unwrap_err(),
            401
        );
    }
    assert!(
        b.sign_in("carol", PW).await.is_ok(),
        "not locked before the threshold"
    );

    // The threshold reached over both (3 on A, 2 on B, neither enough alone): locked on both.
    for i in 0..THRESHOLD {
        let status = on(i).sign_in("dave", "wrong guess").await.unwrap_err();
        assert!(status == 401 || status == 429, "guess {i}: {status}");
    }
    for instance in [&a, &b] {
        assert_eq!(
            instance.sign_in("dave", PW).await.unwrap_err(),
            429,
            "the lock holds on every instance"
        );
    }

    a.stop().await;
    b.stop().await;
}

/// One refresh token presented to both instances at the same moment: exactly one rotation
/// succeeds, and presenting it twice is reuse, so the session ends on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_refresh_token_raced_on_both_instances_rotates_once() {
    let Some((_schema, _dir, a, b)) = two_instances().await else {
        return;
    };
    register(&a, "erin").await;
    for round in 0..10 {
        let (_, refresh) = a.sign_in("erin", PW).await.unwrap();
        let (ra, rb) = tokio::join!(a.refresh(&refresh), b.refresh(&refresh));
        let mut statuses = [ra.0, rb.0];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 401], "round {round}: {ra:?} {rb:?}");
        // The winner's new refresh token died with the session when the loser reused the old.
        let (_, won) = if ra.0 == 200 { ra } else { rb };
        let newer = won["refresh_token"].as_str().unwrap();
        let (status, _) = b.refresh(newer).await;
        assert_eq!(status, 401, "round {round}: reuse ends the session");
    }
    a.stop().await;
    b.stop().await;
}

/// Wrong guesses fired at both instances at once are all counted on one budget: of 20
/// concurrent guesses, those beyond the threshold are refused as locked without a password
/// check, and the account is locked on both afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_wrong_guesses_on_both_instances_never_pass_the_threshold() {
    let Some((_schema, _dir, a, b)) = two_instances().await else {
        return;
    };
    register(&a, "frank").await;
    let mut guesses = tokio::task::JoinSet::new();
    for i in 0..20u32 {
        let addr = if i.is_multiple_of(2) { a.http } else { b.http };
        guesses.spawn(sign_in_at(addr, "frank", "wrong guess"));
    }
    let statuses: Vec<u16> = guesses
        .join_all()
        .await
        .into_iter()
        .map(|r| r.expect_err("a wrong guess must be refused"))
        .collect();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let locked = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(checked + locked, 20, "{statuses:?}");
    assert!(
        checked <= THRESHOLD as usize,
        "at most {THRESHOLD} guesses are checked, over both instances: {statuses:?}"
    );
    for instance in [&a, &b] {
        assert_eq!(instance.sign_in("frank", PW).await.unwrap_err(), 429);
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_factor_spans_instances_and_faces() {
    let Some((_schema, _dir, a, b)) = two_instances().await else {
        return;
    };
    register(&a, "ada").await;
    let (access, _) = a.sign_in("ada", PW).await.unwrap();

    // Enrol over JSON on A (both instances read the same key file).
    let (status, setup) = a
        .http(
            Some(&access),
            "POST",
            "/api/v1/me/second-factor/totp",
            Some(json!({ "password": PW })),
        )
        .await;
    assert_eq!(status, 200, "{setup}");
    let secret = setup["secret"].as_str().unwrap().to_owned();
    let code = || user_core::factor::totp_code(&secret, time::OffsetDateTime::now_utc());
    let (status, codes) = a
        .http(
            Some(&access),
            "POST",
            "/api/v1/me/second-factor/totp/confirm",
            Some(json!({ "code": code() })),
        )
        .await;
    assert_eq!(status, 200, "{codes}");

    // B asks for the second step on both faces; the legacy call is refused plainly.
    assert_eq!(b.sign_in("ada", PW).await.unwrap_err(), 202);
    let legacy = b
        .grpc()
        .await
        .login_user(pb::LoginUserRequest {
            username: "ada".into(),
            password: PW.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(legacy.code(), Code::FailedPrecondition, "{legacy:?}");
    let answer = b
        .grpc()
        .await
        .sign_in(pb::LoginUserRequest {
            username: "ada".into(),
            password: PW.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let Some(pb::sign_in_response::Result::SecondStep(challenge)) = answer.result else {
        panic!("no second step: {answer:?}");
    };

    // The password step on B (gRPC), the code on A (JSON): one sign-in.
    let recovery = codes["recovery_codes"][0].as_str().unwrap().to_owned();
    let body = json!({ "challenge": challenge.challenge, "code": recovery });
    let (status, tokens) = a
        .http(
            None,
            "POST",
            "/api/v1/auth/login/second-factor",
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, 200, "{tokens}");
    let token = tokens["access_token"].as_str().unwrap();
    assert_eq!(b.grpc_me(token).await.unwrap().username, "ada");
    // The challenge and the recovery code are spent on both instances.
    let (status, _) = b
        .http(None, "POST", "/api/v1/auth/login/second-factor", Some(body))
        .await;
    assert_eq!(status, 401);
    let login = json!({ "identifier": "ada", "password": PW });
    let (status, again) = b
        .http(None, "POST", "/api/v1/auth/login", Some(login))
        .await;
    assert_eq!(status, 202, "{again}");
    let body = json!({ "challenge": again["challenge"], "code": recovery });
    let (status, _) = b
        .http(None, "POST", "/api/v1/auth/login/second-factor", Some(body))
        .await;
    assert_eq!(status, 401, "a recovery code spent on A is spent on B");

    a.stop().await;
    b.stop().await;
}
