//! The user-management service: gRPC on 127.0.0.1:50051, pages and JSON API on
//! 127.0.0.1:8080, over SQLite in `./data/users.db`. Nothing else to install or configure.
//! With `--database-url postgres://...` (or `USERS_DATABASE_URL`) it runs on PostgreSQL, where
//! several instances can serve one database.
//!
//! ```sh
//! cargo run --release --example server
//! cargo run --release --example server -- --help
//! cargo run --release --example server -- create-admin --username admin --email admin@example.com
//! cargo run --release --example server -- import-legacy --from ../legacy/users.db
//! cargo run --release --example server -- export --to users.jsonl
//! cargo run --release --example server -- import --from users.jsonl
//! ```

pub(crate) mod cli;
pub(crate) mod commands;
pub(crate) mod database;
pub(crate) mod observe;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use self::cli::{Cli, Command, Config};
use self::database::Database;
use anyhow::Context as _;
use clap::Parser as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use user_core::Services;
use user_core::mail::DeliveryPolicy;
use user_core::maintenance::{self, PurgePolicy};
use user_core::password::Argon2Hasher;
use user_core::ports::{Mailer, SystemClock};
use user_grpc::{GrpcConfig, GrpcState};
use user_http::{AppState, HttpConfig};

/// The opened database and the services over it.
pub(crate) struct App {
    pub(crate) db: Database,
    pub(crate) services: Services,
}

/// Opens the database (creating the data folder) and builds the services.
pub(crate) async fn open(config: &Config) -> anyhow::Result<App> {
    let policy = config.policy()?;
    user_core::auth::key_files::create_private_dir(&config.data_dir)?;
    let db = Database::open(&config.database()?).await?;
    let hasher = Argon2Hasher::new(config.hasher()?)?;
    let (key, previous) = config.signing_keys()?;
    let services = Services::builder(db.storage())
        .policy(policy)
        .hasher(hasher)
        .signing_key(key, previous)
        .second_factor_key(config.second_factor_key()?)
        .mail_composer(Arc::new(config.mail_templates()?))
        .build()
        .map_err(|e| anyhow::anyhow!("{}: {}", cli::flag(e.setting), e.reason))?;
    Ok(App { db, services })
}

/// The service, bound and ready to run.
pub(crate) struct Server {
    app: App,
    mailer: Arc<dyn Mailer>,
    grpc: TcpListener,
    http: TcpListener,
    config: Config,
}

impl Server {
    /// Opens everything and binds both listeners.
    pub(crate) async fn bind(config: Config) -> anyhow::Result<Self> {
        let app = open(&config).await?;
        let mailer = config.mailer()?;
        let grpc = TcpListener::bind(config.grpc_addr)
            .await
            .with_context(|| format!("--grpc-addr: cannot listen on {}", config.grpc_addr))?;
        let http = TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("--http-addr: cannot listen on {}", config.http_addr))?;
        Ok(Self {
            app,
            mailer,
            grpc,
            http,
            config,
        })
    }

    /// Where gRPC and HTTP listen.
    pub(crate) fn addrs(&self) -> anyhow::Result<(SocketAddr, SocketAddr)> {
        Ok((self.grpc.local_addr()?, self.http.local_addr()?))
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish and closes the
    /// database.
    pub(crate) async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            app,
            mailer,
            grpc,
            http,
            config,
        } = self;
        let (stop, stopped) = watch::channel(false);
        let signal = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };

        let grpc_config = GrpcConfig {
            trusted_proxies: config.proxies(),
            ..GrpcConfig::default()
        };
        let grpc_state = GrpcState::from(&app.services).with_readiness(app.db.readiness());
        let grpc_routes = user_grpc::routes(grpc_state, &grpc_config).await?;
        let grpc_layers = (user_grpc::trace::layer(), user_grpc::metrics::MetricsLayer);
        let grpc_server = user_grpc::serve(grpc, grpc_routes, grpc_layers, signal(stopped.clone()));
        let http_layers = (user_http::trace::layer(), user_http::metrics::MetricsLayer);
        let http_server =
            user_http::serve(http, http_app(&app, &config), http_layers, signal(stopped));

        let grpc_task = tokio::spawn(grpc_server);
        let http_task = tokio::spawn(http_server);
        let mail_task = tokio::spawn(user_core::mail::deliver_periodically(
            app.db.storage().outbox,
            mailer,
            Arc::new(SystemClock),
            DeliveryPolicy::default(),
            signal(stop.subscribe()),
        ));
        let purge_task = tokio::spawn(maintenance::purge_periodically(
            app.db.storage(),
            Arc::new(SystemClock),
            PurgePolicy {
                keep_audit_events: config.audit_retention,
                ..PurgePolicy::new(app.services.auth.policy())
            },
            signal(stop.subscribe()),
        ));
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = stop.send(true);
        grpc_task.await?.context("gRPC server failed")?;
        http_task.await?.context("HTTP server failed")?;
        purge_task.await?;
        // Reset requests answered before the stop finish making their links and mail.
        app.services.account.settled().await;
        mail_task.await?;
        app.db.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The pages, the JSON API and `/metrics`.
fn http_app(app: &App, config: &Config) -> axum::Router {
    let state = AppState::from(&app.services)
        .with_config(HttpConfig {
            secure_cookies: config.cookie_secure,
            trusted_proxies: config.proxies(),
            ..HttpConfig::default()
        })
        .with_readiness(app.db.readiness());
    user_http::router(state).merge(observe::metrics_route(app.db.storage()))
}

/// A future that completes on Ctrl-C or SIGTERM. The handlers are installed here, before the
/// listeners are bound, so a signal that comes as soon as the addresses are printed stops the
/// server gracefully rather than killing it.
pub(crate) fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

pub(crate) async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let shutdown = shutdown_signal()?;
            let server = Server::bind(cli.config).await?;
            let (grpc, http) = server.addrs()?;
            println!("user-management is running");
            println!("  web pages  http://{http}/  (sign in at http://{http}/login)");
            println!("  JSON API   http://{http}/api/v1  (docs: http://{http}/api/v1/docs)");
            println!("  gRPC       {grpc}  (user.UserService, user.AdminService)");
            println!("  metrics    http://{http}/metrics");
            println!("Press Ctrl-C to stop.");
            server.run(shutdown).await
        }
        Command::CreateAdmin { username, email } => {
            let password = commands::admin_password()?;
            commands::create_admin(&cli.config, username, email, password).await
        }
        Command::ImportLegacy { from } => {
            commands::import_legacy(&cli.config, &from).await.map(drop)
        }
        Command::Export { to } => commands::export(&cli.config, &to).await.map(drop),
        Command::Import { from } => commands::import(&cli.config, &from).await.map(drop),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    // A .env file is for development; real settings come from the environment or flags.
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    observe::init_logging(cli.config.log_format);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
