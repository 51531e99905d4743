//! Command line and environment: every setting is a flag with a `USERS_*` variable, read from
//! a `.env` file too. Secrets come from the environment only (`NAME` or `NAME_FILE`), never
//! from flags, which other users of the machine can see.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand, ValueEnum};
use secrecy::{ExposeSecret, SecretString};
use user_core::auth::{AuthPolicy, LockoutPolicy, SigningKey, VerifyingKey, key_files};
use user_core::domain::{PasswordPolicy, TrustedProxies};
use user_core::factor::{FactorKey, SecondFactorPolicy};
use user_core::password::{Argon2Params, HasherConfig};
use user_core::ports::Mailer;
use user_mail::{FileMailer, MailSettings, MailTemplates, SmtpConfig, SmtpMailer};
use user_postgres::PostgresConfig;
use user_sqlite::SqliteConfig;

use super::database::DatabaseConfig;

#[derive(Debug, Parser)]
#[command(
    name = "server",
    version,
    about = "The user-management service: gRPC and HTTP over SQLite or PostgreSQL."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    #[command(flatten)]
    pub(crate) config: Config,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Serve gRPC and HTTP (the default).
    Serve,
    /// Create an admin. The password comes from USERS_ADMIN_PASSWORD (or _FILE) or a prompt.
    CreateAdmin {
        /// The admin's username.
        #[arg(long)]
        username: String,
        /// The admin's email address.
        #[arg(long)]
        email: String,
    },
    /// Import the legacy deployment's users.db: ids, usernames, emails and bcrypt hashes.
    ImportLegacy {
        /// The legacy SQLite file.
        #[arg(long, value_name = "PATH/users.db")]
        from: PathBuf,
    },
    /// Export every user with their hash, role and status as JSON lines.
    Export {
        /// The file to write (created with owner-only permissions).
        #[arg(long, value_name = "FILE.jsonl")]
        to: PathBuf,
    },
    /// Import users written by `export`.
    Import {
        /// The JSON lines file.
        #[arg(long, value_name = "FILE.jsonl")]
        from: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Forwarding {
    /// `X-Forwarded-For` (nginx, HAProxy, Traefik, cloud load balancers).
    XForwardedFor,
    /// `Forwarded` (RFC 7239).
    Forwarded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RequireSecondFactor {
    /// Nobody must: users may enrol an authenticator app from their profile.
    None,
    /// Admins without a factor enrol one at their next sign-in.
    Admins,
    /// Everyone without a factor enrols one at their next sign-in.
    Everyone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SmtpSecurity {
    /// STARTTLS on the submission port (587).
    Starttls,
    /// Implicit TLS (465).
    Tls,
    /// No TLS: a relay on this machine only.
    Plain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Durability {
    /// Every commit survives power loss.
    Full,
    /// Faster; a power loss may undo the last commits.
    Normal,
}

/// Every setting of the service.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Config {
    /// Folder for the database and the signing key; created if missing.
    #[arg(long, env = "USERS_DATA_DIR", default_value = "data", global = true)]
    pub(crate) data_dir: PathBuf,
    /// Database URL: `sqlite:PATH` (default: sqlite:<data-dir>/users.db) or
    /// `postgres://USER@HOST:PORT/DATABASE`. Give a password in USERS_DATABASE_URL or
    /// USERS_DATABASE_PASSWORD (or _FILE), not on the command line.
    #[arg(
        long,
        env = "USERS_DATABASE_URL",
        global = true,
        hide_env_values = true,
        value_parser = secret_value
    )]
    pub(crate) database_url: Option<SecretString>,
    /// Connections in the database pool (default: 8 for SQLite, 10 for PostgreSQL).
    #[arg(long, env = "USERS_DATABASE_MAX_CONNECTIONS", global = true)]
    pub(crate) database_max_connections: Option<u32>,
    /// PostgreSQL: the schema of our tables, created if missing (default: the server's
    /// search_path, normally `public`).
    #[arg(long, env = "USERS_POSTGRES_SCHEMA", global = true)]
    pub(crate) postgres_schema: Option<String>,
    /// PostgreSQL: longest wait for a connection from the pool (and to connect).
    #[arg(long, env = "USERS_POSTGRES_ACQUIRE_TIMEOUT", default_value = "5s", value_parser = duration, global = true)]
    pub(crate) postgres_acquire_timeout: Duration,
    /// PostgreSQL: longest run of one statement; 0s for no limit.
    #[arg(long, env = "USERS_POSTGRES_STATEMENT_TIMEOUT", default_value = "10s", value_parser = duration, global = true)]
    pub(crate) postgres_statement_timeout: Duration,
    /// gRPC listen address.
    #[arg(long, env = "USERS_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub(crate) grpc_addr: SocketAddr,
    /// HTTP listen address (pages, JSON API, /metrics).
    #[arg(long, env = "USERS_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub(crate) http_addr: SocketAddr,
    /// Lifetime of access tokens.
    #[arg(long, env = "USERS_ACCESS_TOKEN_TTL", default_value = "15m", value_parser = duration)]
    pub(crate) access_token_ttl: Duration,
    /// Lifetime of token sessions (refresh tokens), from login.
    #[arg(long, env = "USERS_REFRESH_TOKEN_TTL", default_value = "30d", value_parser = duration)]
    pub(crate) refresh_token_ttl: Duration,
    /// Lifetime of browser sessions, from login.
    #[arg(long, env = "USERS_SESSION_TTL", default_value = "12h", value_parser = duration)]
    pub(crate) session_ttl: Duration,
    /// A browser session unused for this long ends.
    #[arg(long, env = "USERS_SESSION_IDLE_TIMEOUT", default_value = "30m", value_parser = duration)]
    pub(crate) session_idle_timeout: Duration,
    /// A token session whose refresh token is unused for this long ends.
    #[arg(long, env = "USERS_REFRESH_IDLE_TIMEOUT", default_value = "14d", value_parser = duration)]
    pub(crate) refresh_idle_timeout: Duration,
    /// How long a device token keeps a client known to an account (its sign-ins are then
    /// not held by locks that strangers cause).
    #[arg(long, env = "USERS_DEVICE_TOKEN_TTL", default_value = "90d", value_parser = duration)]
    pub(crate) device_token_ttl: Duration,
    /// Who must sign in with a second factor (an authenticator app); those without one are
    /// sent to enrolment at their next sign-in.
    #[arg(long, env = "USERS_REQUIRE_SECOND_FACTOR", value_enum, default_value_t = RequireSecondFactor::None)]
    pub(crate) require_second_factor: RequireSecondFactor,
    /// How long a browser (or client) a user chose to trust skips the second step.
    #[arg(long, env = "USERS_TRUSTED_DEVICE_TTL", default_value = "30d", value_parser = duration)]
    pub(crate) trusted_device_ttl: Duration,
    /// The key that seals authenticator secrets (32 bytes, base64); default
    /// <data-dir>/second-factor.key, made on first start. Every instance on one database
    /// needs the same file; keep it out of database backups.
    #[arg(long, env = "USERS_SECOND_FACTOR_KEY_FILE", global = true)]
    pub(crate) second_factor_key_file: Option<PathBuf>,
    /// Minimum password length (8 to 128).
    #[arg(long, env = "USERS_PASSWORD_MIN_LENGTH", default_value_t = 12)]
    pub(crate) password_min_length: usize,
    /// Consecutive failed logins that lock an identifier.
    #[arg(long, env = "USERS_LOCKOUT_THRESHOLD", default_value_t = 5)]
    pub(crate) lockout_threshold: u32,
    /// First lock; doubles per further failure.
    #[arg(long, env = "USERS_LOCKOUT_BASE_DELAY", default_value = "1m", value_parser = duration)]
    pub(crate) lockout_base_delay: Duration,
    /// Longest lock.
    #[arg(long, env = "USERS_LOCKOUT_MAX_DELAY", default_value = "1h", value_parser = duration)]
    pub(crate) lockout_max_delay: Duration,
    /// Sign-in attempts per client IP address per minute; 0 turns the limit off.
    #[arg(long, env = "USERS_LOGIN_RATE_LIMIT", default_value_t = 30)]
    pub(crate) login_rate_limit: u32,
    /// Registrations per client IP address (IPv6: per /64) per hour; 0 turns the limit off.
    #[arg(long, env = "USERS_REGISTRATION_RATE_LIMIT", default_value_t = 20)]
    pub(crate) registration_rate_limit: u32,
    /// Reverse proxies (comma-separated addresses or CIDR networks) whose forwarding header
    /// gives the client address; empty: the TCP peer is the client.
    #[arg(long, env = "USERS_TRUSTED_PROXIES", default_value = "", value_parser = proxies)]
    pub(crate) trusted_proxies: TrustedProxies,
    /// The one header the trusted proxies write the client address into.
    #[arg(long, env = "USERS_FORWARDED_HEADER", value_enum, default_value_t = Forwarding::XForwardedFor)]
    pub(crate) forwarded_header: Forwarding,
    /// Password hashes running at once (default: the number of cores).
    #[arg(long, env = "USERS_HASH_CONCURRENCY")]
    pub(crate) hash_concurrency: Option<usize>,
    /// Password hashes that may wait; beyond, requests get 503/RESOURCE_EXHAUSTED.
    #[arg(long, env = "USERS_HASH_QUEUE", default_value_t = 64)]
    pub(crate) hash_queue: usize,
    /// Mark cookies `Secure` with the `__Host-` prefix (serve behind HTTPS).
    #[arg(long, env = "USERS_COOKIE_SECURE", default_value_t = false, action = clap::ArgAction::Set)]
    pub(crate) cookie_secure: bool,
    /// How long audit events are kept before they are purged (the audit log's retention).
    #[arg(long, env = "USERS_AUDIT_RETENTION", default_value = "365d", value_parser = retention)]
    pub(crate) audit_retention: Duration,
    /// SQLite commit durability.
    #[arg(long, env = "USERS_SQLITE_SYNC", value_enum, default_value_t = Durability::Full)]
    pub(crate) sqlite_sync: Durability,
    /// The address people use to reach the pages, for the links in mail (default:
    /// http://<http-addr>).
    #[arg(long, env = "USERS_PUBLIC_BASE_URL", global = true)]
    pub(crate) public_base_url: Option<String>,
    /// The name in the subject and greeting of every mail.
    #[arg(
        long,
        env = "USERS_SITE_NAME",
        default_value = "user-management",
        global = true
    )]
    pub(crate) site_name: String,
    /// A folder of mail templates replacing the defaults by name
    /// (`<kind>.subject.txt`, `<kind>.txt`, `<kind>.html`).
    #[arg(long, env = "USERS_MAIL_TEMPLATES_DIR", global = true)]
    pub(crate) mail_templates_dir: Option<PathBuf>,
    /// The sender of every mail, e.g. "Acme <no-reply@acme.example>"; required with
    /// --smtp-host (the outbox folder uses a placeholder without it).
    #[arg(long, env = "USERS_MAIL_FROM", global = true)]
    pub(crate) mail_from: Option<String>,
    /// SMTP relay; without it, mail is written as .eml files to --outbox-dir.
    #[arg(long, env = "USERS_SMTP_HOST", global = true)]
    pub(crate) smtp_host: Option<String>,
    /// SMTP port (default: 587 for starttls, 465 for tls, 25 for plain).
    #[arg(long, env = "USERS_SMTP_PORT", global = true)]
    pub(crate) smtp_port: Option<u16>,
    /// SMTP transport security.
    #[arg(long, env = "USERS_SMTP_SECURITY", value_enum, default_value_t = SmtpSecurity::Starttls, global = true)]
    pub(crate) smtp_security: SmtpSecurity,
    /// SMTP user name; the password comes from USERS_SMTP_PASSWORD (or _FILE).
    #[arg(long, env = "USERS_SMTP_USERNAME", global = true)]
    pub(crate) smtp_username: Option<String>,
    /// Longest SMTP delivery attempt.
    #[arg(long, env = "USERS_SMTP_TIMEOUT", default_value = "10s", value_parser = duration, global = true)]
    pub(crate) smtp_timeout: Duration,
    /// The development outbox: each mail as an .eml file (default <data-dir>/outbox).
    #[arg(long, env = "USERS_OUTBOX_DIR", global = true)]
    pub(crate) outbox_dir: Option<PathBuf>,
    /// Ed25519 signing key (PKCS#8 PEM); default <data-dir>/signing-key.pem, made on first start.
    #[arg(long, env = "USERS_SIGNING_KEY_FILE", global = true)]
    pub(crate) signing_key_file: Option<PathBuf>,
    /// A previous signing key (its private PEM or its public half) whose tokens still verify
    /// and whose public key stays in the JWKS, during a rotation; repeat for several.
    #[arg(
        long,
        env = "USERS_PREVIOUS_SIGNING_KEY_FILES",
        value_delimiter = ',',
        global = true
    )]
    pub(crate) previous_signing_key_file: Vec<PathBuf>,
    /// Log format.
    #[arg(long, env = "USERS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty, global = true)]
    pub(crate) log_format: LogFormat,
}

fn proxies(s: &str) -> Result<TrustedProxies, String> {
    TrustedProxies::parse(s).map_err(|e| e.message.into_owned())
}

/// A value that may hold a password (a database URL): kept as a secret, so `Debug` of the
/// settings never shows it.
fn secret_value(s: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(s))
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (write e.g. 90s, 15m, 12h, 30d)"))
}

/// The audit log's retention: a duration of at least a day, so that a typo (`0s`, `30m`)
/// cannot empty the log at every purge.
fn retention(s: &str) -> Result<Duration, String> {
    let d = duration(s)?;
    if d < Duration::from_secs(24 * 3600) {
        return Err("must be at least 1d: audit events older than this are deleted".to_owned());
    }
    Ok(d)
}

/// A secret from `NAME`, or from the file named by `NAME_FILE` (trailing newline removed).
pub(crate) fn secret(name: &str) -> anyhow::Result<Option<SecretString>> {
    if let Ok(value) = std::env::var(name) {
        return Ok(Some(SecretString::from(value)));
    }
    let file_var = format!("{name}_FILE");
    match std::env::var(&file_var) {
        Ok(path) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("{file_var}: cannot read {path}"))?;
            Ok(Some(SecretString::from(
                text.trim_end_matches(['\r', '\n']).to_owned(),
            )))
        }
        Err(_) => Ok(None),
    }
}

/// The flag that sets a policy value, for error messages.
pub(crate) fn flag(setting: &str) -> &str {
    match setting {
        "password_min_length" => "--password-min-length",
        "access_token_ttl" => "--access-token-ttl",
        "refresh_token_ttl" => "--refresh-token-ttl",
        "browser_session_ttl" => "--session-ttl",
        "browser_idle_timeout" => "--session-idle-timeout",
        "token_idle_timeout" => "--refresh-idle-timeout",
        "device_token_ttl" => "--device-token-ttl",
        "second_factor.trusted_device_ttl" => "--trusted-device-ttl",
        "second_factor.issuer" => "--site-name",
        "second_factor" => "--require-second-factor",
        "lockout.threshold" => "--lockout-threshold",
        "lockout.base_delay" => "--lockout-base-delay",
        "lockout.max_delay" => "--lockout-max-delay",
        "max_concurrent" => "--hash-concurrency",
        "verification_keys" => "--previous-signing-key-file",
        other => other,
    }
}

impl Config {
    /// The token signing key: HS256 from `USERS_JWT_SECRET` if set, else the Ed25519 key file
    /// (made on first start); and the previous keys that still verify during a rotation.
    pub(crate) fn signing_keys(&self) -> anyhow::Result<(SigningKey, Vec<VerifyingKey>)> {
        let previous = self
            .previous_signing_key_file
            .iter()
            .map(|path| key_files::read_verifying_key(path))
            .collect::<Result<Vec<_>, _>>()
            .context("--previous-signing-key-file")?;
        if let Some(secret) = secret("USERS_JWT_SECRET")? {
            let key = SigningKey::hs256("hs256", secret.expose_secret().as_bytes())
                .map_err(|e| anyhow::anyhow!("USERS_JWT_SECRET: {}", e.reason))?;
            return Ok((key, previous));
        }
        let path = self
            .signing_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("signing-key.pem"));
        Ok((key_files::load_or_create_signing_key(&path)?, previous))
    }

    /// The key that seals authenticator secrets: `--second-factor-key-file`, or
    /// <data-dir>/second-factor.key (made on first start).
    pub(crate) fn second_factor_key(&self) -> anyhow::Result<FactorKey> {
        let path = self
            .second_factor_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("second-factor.key"));
        key_files::load_or_create_factor_key(&path).context("--second-factor-key-file")
    }

    /// The store: SQLite (the file from `--database-url` or the data folder, with
    /// `--sqlite-sync`) or PostgreSQL (`--database-url postgres://...` and the `--postgres-*`
    /// settings).
    pub(crate) fn database(&self) -> anyhow::Result<DatabaseConfig> {
        let url = self.database_url.as_ref().map(ExposeSecret::expose_secret);
        let postgres = |url: &&str| {
            let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
            scheme.eq_ignore_ascii_case("postgres") || scheme.eq_ignore_ascii_case("postgresql")
        };
        if let Some(url) = url.filter(postgres) {
            let mut config = PostgresConfig::from_url(url).context("--database-url")?;
            if let Some(password) = secret("USERS_DATABASE_PASSWORD")? {
                config.password = Some(password);
            }
            config.schema.clone_from(&self.postgres_schema);
            config.acquire_timeout = self.postgres_acquire_timeout;
            config.statement_timeout = self.postgres_statement_timeout;
            if let Some(max) = self.database_max_connections {
                config.max_connections = max;
            }
            return Ok(DatabaseConfig::Postgres(config));
        }
        let mut config = match url {
            None => SqliteConfig::new(self.data_dir.join("users.db")),
            Some(url) => SqliteConfig::from_url(url)
                .context("--database-url (sqlite:PATH or postgres://USER@HOST/DATABASE)")?,
        };
        config.durability = match self.sqlite_sync {
            Durability::Full => user_sqlite::Durability::Full,
            Durability::Normal => user_sqlite::Durability::Normal,
        };
        if let Some(max) = self.database_max_connections {
            config.max_connections = max;
        }
        Ok(DatabaseConfig::Sqlite(config))
    }

    /// The mail transport: SMTP when `--smtp-host` is set, else the `.eml` outbox folder.
    pub(crate) fn mailer(&self) -> anyhow::Result<Arc<dyn Mailer>> {
        let Some(host) = &self.smtp_host else {
            let dir = self
                .outbox_dir
                .clone()
                .unwrap_or_else(|| self.data_dir.join("outbox"));
            let from = self
                .mail_from
                .as_deref()
                .unwrap_or("user-management <no-reply@example.invalid>");
            let outbox = FileMailer::new(dir, from).context("--mail-from or --outbox-dir")?;
            return Ok(Arc::new(outbox));
        };
        let from = self.mail_from.as_deref().context(
            "--smtp-host needs --mail-from (the sender, e.g. \"Acme <no-reply@acme.example>\")",
        )?;
        let security = match self.smtp_security {
            SmtpSecurity::Starttls => user_mail::SmtpSecurity::StartTls,
            SmtpSecurity::Tls => user_mail::SmtpSecurity::Tls,
            SmtpSecurity::Plain => user_mail::SmtpSecurity::Plain,
        };
        let mut config = SmtpConfig::new(host, from).with_security(security);
        if let Some(port) = self.smtp_port {
            config.port = port;
        }
        config.timeout = self.smtp_timeout;
        if let Some(user) = &self.smtp_username {
            let password = secret("USERS_SMTP_PASSWORD")?.context(
                "--smtp-username needs USERS_SMTP_PASSWORD (or USERS_SMTP_PASSWORD_FILE)",
            )?;
            config.credentials = Some((user.clone(), password));
        }
        Ok(Arc::new(
            SmtpMailer::new(config).context("--smtp-host or --mail-from")?,
        ))
    }

    /// The messages: the default templates (or `--mail-templates-dir`), with links to
    /// `--public-base-url` and `--site-name` in the subject.
    pub(crate) fn mail_templates(&self) -> anyhow::Result<MailTemplates> {
        let base = match (&self.public_base_url, &self.smtp_host) {
            (Some(base), _) => base.clone(),
            // Real mail must link to where people reach the pages, not to a listen address.
            (None, Some(_)) => bail!(
                "--smtp-host needs --public-base-url (where people open the pages, e.g. https://accounts.example.com)"
            ),
            (None, None) => format!("http://{}", self.http_addr),
        };
        let settings = MailSettings::new(&self.site_name, &base)
            .context("--public-base-url or --site-name")?;
        let templates = MailTemplates::new(settings);
        match &self.mail_templates_dir {
            Some(dir) => templates.with_dir(dir).context("--mail-templates-dir"),
            None => Ok(templates),
        }
    }

    /// The trusted proxies with the header they write.
    pub(crate) fn proxies(&self) -> TrustedProxies {
        let header = match self.forwarded_header {
            Forwarding::XForwardedFor => user_core::domain::ForwardedHeader::XForwardedFor,
            Forwarding::Forwarded => user_core::domain::ForwardedHeader::Forwarded,
        };
        self.trusted_proxies.clone().with_header(header)
    }

    /// The auth policy, checked.
    pub(crate) fn policy(&self) -> anyhow::Result<AuthPolicy> {
        let named =
            |e: user_core::error::ConfigError| anyhow::anyhow!("{}: {}", flag(e.setting), e.reason);
        let policy = AuthPolicy {
            password: PasswordPolicy::new(self.password_min_length).map_err(named)?,
            lockout: LockoutPolicy {
                threshold: self.lockout_threshold,
                base_delay: self.lockout_base_delay,
                max_delay: self.lockout_max_delay,
                ..LockoutPolicy::default()
            },
            access_token_ttl: self.access_token_ttl,
            refresh_token_ttl: self.refresh_token_ttl,
            browser_session_ttl: self.session_ttl,
            browser_idle_timeout: self.session_idle_timeout,
            token_idle_timeout: self.refresh_idle_timeout,
            device_token_ttl: self.device_token_ttl,
            login_attempts_per_ip_per_minute: std::num::NonZeroU32::new(self.login_rate_limit),
            registrations_per_ip_per_hour: std::num::NonZeroU32::new(self.registration_rate_limit),
            second_factor: SecondFactorPolicy {
                required_for_admins: self.require_second_factor != RequireSecondFactor::None,
                required_for_everyone: self.require_second_factor == RequireSecondFactor::Everyone,
                trusted_device_ttl: self.trusted_device_ttl,
                // Authenticator apps split "issuer:account" labels at the colon.
                issuer: self.site_name.replace(':', ""),
                ..SecondFactorPolicy::default()
            },
            ..AuthPolicy::default()
        };
        policy.validate().map_err(named)?;
        Ok(policy)
    }

    /// The password hasher's settings.
    pub(crate) fn hasher(&self) -> anyhow::Result<HasherConfig> {
        let defaults = HasherConfig::default();
        let config = HasherConfig {
            params: Argon2Params::OWASP,
            max_concurrent: self.hash_concurrency.unwrap_or(defaults.max_concurrent),
            max_queued: self.hash_queue,
            ..defaults
        };
        if config.max_concurrent == 0 {
            bail!("--hash-concurrency: must be at least 1");
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_factor_settings_reach_the_policy() {
        let cli = Cli::try_parse_from(["server"]).unwrap();
        let policy = cli.config.policy().unwrap().second_factor;
        assert!(!policy.required_for_admins && !policy.required_for_everyone);
        assert_eq!(policy.issuer, "user-management");
        let cli = Cli::try_parse_from([
            "server",
            "--require-second-factor",
            "admins",
            "--trusted-device-ttl",
            "7d",
            "--site-name",
            "Acme",
        ])
        .unwrap();
        let policy = cli.config.policy().unwrap().second_factor;
        assert!(policy.required_for_admins && !policy.required_for_everyone);
        assert_eq!(
            policy.trusted_device_ttl,
            Duration::from_secs(7 * 24 * 3600)
        );
        assert_eq!(policy.issuer, "Acme");
        let cli = Cli::try_parse_from(["server", "--require-second-factor", "everyone"]).unwrap();
        assert!(
            cli.config
                .policy()
                .unwrap()
                .second_factor
                .required_for_everyone
        );
        let cli = Cli::try_parse_from(["server", "--site-name", "Acme: accounts"]).unwrap();
        let policy = cli.config.policy().unwrap().second_factor;
        assert_eq!(policy.issuer, "Acme accounts");
        let long = "x".repeat(65);
        let cli = Cli::try_parse_from(["server", "--site-name", long.as_str()]).unwrap();
        let err = cli.config.policy().unwrap_err();
        assert!(err.to_string().contains("--site-name"), "{err}");
        let err = Cli::try_parse_from(["server", "--require-second-factor", "some"]).unwrap_err();
        assert!(err.to_string().contains("--require-second-factor"), "{err}");
    }

    #[test]
    fn bad_values_name_their_setting() {
        let err = Cli::try_parse_from(["server", "--grpc-addr", "nope"]).unwrap_err();
        assert!(err.to_string().contains("--grpc-addr"), "{err}");
        let err = Cli::try_parse_from(["server", "--access-token-ttl", "soon"]).unwrap_err();
        assert!(err.to_string().contains("--access-token-ttl"), "{err}");
        let err = Cli::try_parse_from(["server", "--audit-retention", "0s"]).unwrap_err();
        assert!(err.to_string().contains("at least 1d"), "{err}");
        let cli = Cli::try_parse_from(["server", "--audit-retention", "90d"]).unwrap();
        assert_eq!(
            cli.config.audit_retention,
            Duration::from_secs(90 * 24 * 3600)
        );
        let cli = Cli::try_parse_from(["server", "--password-min-length", "4"]).unwrap();
        let err = cli.config.policy().unwrap_err();
        assert!(
            err.to_string().starts_with("--password-min-length"),
            "{err}"
        );
        let cli = Cli::try_parse_from(["server", "--database-url", "mysql://x"]).unwrap();
        assert!(
            cli.config
                .database()
                .unwrap_err()
                .to_string()
                .contains("--database-url")
        );
    }

    #[test]
    fn smtp_needs_a_sender_and_a_password_for_its_user() {
        let config = |args: &[&str]| {
            let mut argv = vec!["server"];
            argv.extend_from_slice(args);
            Cli::try_parse_from(argv).unwrap().config
        };
        let err = config(&["--smtp-host", "smtp.example.com"])
            .mailer()
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("--mail-from"), "{err:#}");
        let err = config(&["--mail-from", "nobody"]).mailer().err().unwrap();
        assert!(format!("{err:#}").contains("not a mailbox"), "{err:#}");
        if std::env::var_os("USERS_SMTP_PASSWORD").is_none()
            && std::env::var_os("USERS_SMTP_PASSWORD_FILE").is_none()
        {
            let err = config(&[
                "--smtp-host",
                "smtp.example.com",
                "--mail-from",
                "Acme <no-reply@acme.example>",
                "--smtp-username",
                "acme",
            ])
            .mailer()
            .err()
            .unwrap();
            assert!(
                format!("{err:#}").contains("USERS_SMTP_PASSWORD"),
                "{err:#}"
            );
        }
        let smtp = config(&[
            "--smtp-host",
            "smtp.example.com",
            "--mail-from",
            "Acme <no-reply@acme.example>",
        ]);
        assert!(smtp.mailer().is_ok());
        let err = smtp.mail_templates().err().unwrap();
        assert!(format!("{err:#}").contains("--public-base-url"), "{err:#}");
    }

    #[test]
    fn the_database_url_picks_the_store() {
        let parse = |args: &[&str]| {
            let mut argv = vec!["server"];
            argv.extend_from_slice(args);
            Cli::try_parse_from(argv)
                .unwrap()
                .config
                .database()
                .unwrap()
        };
        match parse(&[]) {
            DatabaseConfig::Sqlite(config) => {
                assert_eq!(config.path, PathBuf::from("data/users.db"));
            }
            other => panic!("expected SQLite, got {other:?}"),
        }
        assert!(matches!(
            parse(&["--database-url", "PostgreSQL://users@db/users"]),
            DatabaseConfig::Postgres(_)
        ));
        match parse(&[
            "--database-url",
            "postgres://users@db.internal:5433/users",
            "--postgres-schema",
            "accounts",
            "--database-max-connections",
            "20",
            "--postgres-statement-timeout",
            "3s",
        ]) {
            DatabaseConfig::Postgres(config) => {
                assert_eq!(config.schema.as_deref(), Some("accounts"));
                assert_eq!(config.max_connections, 20);
                assert_eq!(config.statement_timeout, Duration::from_secs(3));
            }
            other => panic!("expected PostgreSQL, got {other:?}"),
        }
        let cli = Cli::try_parse_from(["server", "--database-url", "postgres://u:s3cret@db/users"])
            .unwrap();
        assert!(!format!("{cli:?}").contains("s3cret"), "{cli:?}");
        let DatabaseConfig::Postgres(config) = cli.config.database().unwrap() else {
            panic!("expected PostgreSQL");
        };
        assert!(!format!("{config:?}").contains("s3cret"), "{config:?}");
        let err = Cli::try_parse_from(["server", "--database-url", "postgres://x:y@[bad"])
            .unwrap()
            .config
            .database()
            .unwrap_err();
        assert!(!format!("{err:#}").contains(":y@"), "{err:#}");
    }
}
