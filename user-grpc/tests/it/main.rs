//! End-to-end tests of the gRPC adapter: a real tonic server on 127.0.0.1:0 over a real
//! SQLite file, driven by real tonic clients generated from the same proto.

// Test helpers panic on failure, by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod account;
mod admin;
mod audit;
mod failures;
mod guard;
mod health;
mod legacy;
mod limits;
mod observe;
mod second_factor;
mod security;
mod tokens;
mod users;

use std::net::SocketAddr;
use std::sync::Arc;

use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use user_core::Services;
use user_core::auth::AuthPolicy;
use user_core::factor::FactorKey;
use user_core::ports::{MailComposer, PasswordHasher};
use user_core::testing::{FastHasher, FixedClock, Fixture};
use user_grpc::pb::admin_service_client::AdminServiceClient;
use user_grpc::pb::user_service_client::UserServiceClient;
use user_grpc::{GrpcConfig, GrpcState, pb};
use user_sqlite::{SqliteConfig, SqliteDatabase};

/// The password every helper uses.
pub const PW: &str = Fixture::PASSWORD;

/// A running server and clients for it.
pub struct TestApp {
    /// Where the server listens.
    pub addr: SocketAddr,
    /// The clock the services read.
    pub clock: Arc<FixedClock>,
    /// The services, for set-up that has no RPC (creating an admin).
    pub state: GrpcState,
    /// A client of `user.UserService`.
    pub users: UserServiceClient<Channel>,
    /// A client of `user.AdminService`.
    pub admin: AdminServiceClient<Channel>,
    /// A channel for other clients.
    pub channel: Channel,
    /// The database.
    pub db: SqliteDatabase,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    _dir: TempDir,
}

/// Services over a fresh SQLite file with a fixed clock and cheap hashing.
pub async fn services() -> (GrpcState, Arc<FixedClock>, SqliteDatabase, TempDir) {
    services_with(AuthPolicy::default()).await
}

/// As [`services`], under `policy`.
pub async fn services_with(
    policy: AuthPolicy,
) -> (GrpcState, Arc<FixedClock>, SqliteDatabase, TempDir) {
    services_mailing(policy, None).await
}

/// As [`services_with`], mailing through `composer` when there is one. Second factors are
/// on (a fresh key), as in a deployment.
pub async fn services_mailing(
    policy: AuthPolicy,
    composer: Option<Arc<dyn MailComposer>>,
) -> (GrpcState, Arc<FixedClock>, SqliteDatabase, TempDir) {
    services_built(policy, composer, true, FastHasher::new()).await
}

/// As [`services_mailing`], with second factors on (a fresh key) or off (no key: the
/// factor RPCs answer FAILED_PRECONDITION), hashing with `hasher`.
async fn services_built(
    policy: AuthPolicy,
    composer: Option<Arc<dyn MailComposer>>,
    second_factors: bool,
    hasher: impl PasswordHasher,
) -> (GrpcState, Arc<FixedClock>, SqliteDatabase, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let db = SqliteDatabase::open(&SqliteConfig::new(dir.path().join("users.db")))
        .await
        .unwrap();
    let clock = Arc::new(FixedClock::default());
    let mut builder = Services::builder(db.storage())
        .hasher(hasher)
        .clock(clock.clone())
        .policy(policy);
    if second_factors {
        builder = builder.second_factor_key(FactorKey::generate().unwrap());
    }
    if let Some(composer) = composer {
        builder = builder.mail_composer(composer);
    }
    let services = builder.build().unwrap();
    (GrpcState::from(&services), clock, db, dir)
}

impl TestApp {
    /// Starts a server with the default limits.
    pub async fn spawn() -> Self {
        Self::spawn_with(GrpcConfig::default()).await
    }

    /// Starts a server with the given limits.
    pub async fn spawn_with(config: GrpcConfig) -> Self {
        Self::spawn_configured(AuthPolicy::default(), config).await
    }

    /// Starts a server with the given auth policy and limits.
    pub async fn spawn_configured(policy: AuthPolicy, config: GrpcConfig) -> Self {
        Self::spawn_full(policy, config, None).await
    }

    /// Starts a server that mails through `user_mail`'s templates (links below
    /// `https://users.example.com`), queued in the outbox, where the account tests read them.
    pub async fn spawn_mailing() -> Self {
        Self::spawn_mailing_with(AuthPolicy::default(), GrpcConfig::default()).await
    }

    /// As [`TestApp::spawn_mailing`], with the given auth policy and limits.
    pub async fn spawn_mailing_with(policy: AuthPolicy, config: GrpcConfig) -> Self {
        let settings =
            user_mail::MailSettings::new("Example", "https://users.example.com").unwrap();
        let composer: Arc<dyn MailComposer> = Arc::new(user_mail::MailTemplates::new(settings));
        Self::spawn_full(policy, config, Some(composer)).await
    }

    /// Starts a server whose services have no second-factor key.
    pub async fn spawn_without_second_factors() -> Self {
        let services = services_built(AuthPolicy::default(), None, false, FastHasher::new()).await;
        Self::serve(services, GrpcConfig::default()).await
    }

    /// Starts a server hashing with `hasher` (second factors on, no mail).
    pub async fn spawn_hashing(hasher: impl PasswordHasher) -> Self {
        let services = services_built(AuthPolicy::default(), None, true, hasher).await;
        Self::serve(services, GrpcConfig::default()).await
    }

    async fn spawn_full(
        policy: AuthPolicy,
        config: GrpcConfig,
        composer: Option<Arc<dyn MailComposer>>,
    ) -> Self {
        Self::serve(services_mailing(policy, composer).await, config).await
    }

    async fn serve(
        (state, clock, db, dir): (GrpcState, Arc<FixedClock>, SqliteDatabase, TempDir),
        config: GrpcConfig,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn({
            let state = state.clone();
            async move {
                let shutdown = async {
                    rx.await.ok();
                };
                let routes = user_grpc::routes(state, &config).await.unwrap();
                let layers = (user_grpc::trace::layer(), user_grpc::metrics::MetricsLayer);
                user_grpc::serve(listener, routes, layers, shutdown)
                    .await
                    .unwrap();
            }
        });
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        Self {
            addr,
            clock,
            state,
            users: UserServiceClient::new(channel.clone()),
            admin: AdminServiceClient::new(channel.clone()),
            channel,
            db,
            shutdown: Some(tx),
            server: Some(server),
            _dir: dir,
        }
    }

    /// Registers `name` (email `name@example.com`) over gRPC.
    pub async fn register(&mut self, name: &str) -> pb::User {
        self.users
            .register_user(pb::RegisterUserRequest {
                username: name.into(),
                email: format!("{name}@example.com"),
                password: PW.into(),
                display_name: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .user
            .unwrap()
    }

    /// Creates an admin directly through the core (no RPC creates admins).
    pub async fn create_admin(&self, name: &str) {
        self.state
            .auth
            .create_user(
                user_core::auth::RegisterUser {
                    username: name.into(),
                    email: format!("{name}@example.com"),
                    password: secrecy::SecretString::from(PW),
                    display_name: None,
                },
                user_core::domain::Role::Admin,
            )
            .await
            .unwrap();
    }

    /// Signs in by username.
    pub async fn login(&mut self, name: &str) -> pb::LoginUserResponse {
        self.users
            .login_user(pb::LoginUserRequest {
                username: name.into(),
                password: PW.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
    }

    /// Stops the server and waits until it has finished.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
    }
}

/// A request carrying `authorization: Bearer <token>`.
pub fn authed<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    let value = MetadataValue::try_from(format!("Bearer {token}")).unwrap();
    request.metadata_mut().insert("authorization", value);
    request
}

/// Asserts the code of a failed call and returns the status.
pub fn expect_code<T: std::fmt::Debug>(result: Result<T, Status>, code: Code) -> Status {
    match result {
        Err(status) if status.code() == code => status,
        other => panic!("expected {code:?}, got {other:?}"),
    }
}
