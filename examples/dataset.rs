//! Builds a benchmark dataset: N users with realistic names and email addresses, some
//! admins, some disabled, and browser sessions for a share of them, into SQLite or
//! PostgreSQL, quickly.
//!
//! ```sh
//! cargo run --release --example dataset -- --users 1000000 --database-url sqlite:bench/users.db
//! cargo run --release --example dataset -- --users 10000 \
//!     --database-url postgres://postgres@127.0.0.1:5432/postgres
//! # Then, for instance, time the transfer commands over it:
//! cargo run --release --example server -- --database-url sqlite:bench/users.db export --to users.jsonl
//! cargo run --release --example server -- --database-url sqlite:bench/fresh.db import --from users.jsonl
//! ```
//!
//! - Every user has the same Argon2id hash of [`PASSWORD`], made once at start with the
//!   default (OWASP) parameters: no hashing cost per user, and any user can sign in with it,
//!   at the cost a real sign-in has.
//! - Usernames are `first.last` and a number (`maria.garcia42`), emails `first.last42@`
//!   one of a few domains, display names `First Last` for 3 users in 5; about 1 in 1000 is
//!   an admin (user 0 always: `--users 1` still has one), 1 in 25 disabled, 4 in 5 have a
//!   verified email. Creation times spread over three years, and ids are UUIDv7 of those
//!   times, as the service makes them.
//! - 1 user in `--sessions-every` (default 100) gets a browser session that ends in 30 days.
//! - The users come from a seeded generator (`--seed`): the same seed gives the same
//!   users, ids included, so a rerun into the same database adds nothing (already present).
//! - Users are written through `UserRepository::insert_many`, a transaction per
//!   `user_core::transfer::IMPORT_BATCH` users; SQLite runs with `synchronous = NORMAL`
//!   here (a dataset can be built again; a power loss never corrupts the file).

use std::time::Instant;

use anyhow::Context as _;
use clap::Parser;
use secrecy::SecretString;
use time::OffsetDateTime;
use time::macros::datetime;
use user_core::Storage;
use user_core::domain::{
    ClientInfo, DisplayName, Email, NewSession, NewUser, Password, PasswordHash, PasswordPolicy,
    Role, Session, SessionId, SessionKind, TokenHash, User, UserId, UserStatus, Username,
};
use user_core::password::{Argon2Hasher, HasherConfig};
use user_core::ports::{Inserted, PasswordHasher as _};
use user_core::transfer::IMPORT_BATCH;
use user_postgres::{PostgresConfig, PostgresDatabase};
use user_sqlite::{Durability, SqliteConfig, SqliteDatabase};

/// Every generated user's password.
pub const PASSWORD: &str = "benchmark password 1";

#[derive(Debug, Parser)]
#[command(about = "Builds a benchmark dataset of N users in SQLite or PostgreSQL.")]
struct Args {
    /// How many users.
    #[arg(long)]
    users: u64,
    /// `sqlite:PATH` (the file is created if missing) or `postgres://...`.
    #[arg(long, env = "USERS_DATABASE_URL")]
    database_url: String,
    /// PostgreSQL: the schema of the tables (default: the server's search_path).
    #[arg(long)]
    postgres_schema: Option<String>,
    /// One user in this many gets a browser session (0: none).
    #[arg(long, default_value_t = 100)]
    sessions_every: u64,
    /// The generator's seed: the same seed gives the same users.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

const FIRST: &[&str] = &[
    "maria", "james", "sofia", "liam", "emma", "noah", "olivia", "lucas", "ava", "mateo", "mia",
    "elijah", "amelia", "hugo", "chloe", "leon", "zoe", "arjun", "aisha", "wei", "yuki", "fatima",
    "omar", "ingrid", "lars", "anna", "pavel", "olga", "kofi", "amara", "diego", "lucia", "tomas",
    "nina", "ravi", "priya", "jonas", "lea", "felix", "clara",
];

const LAST: &[&str] = &[
    "garcia",
    "smith",
    "muller",
    "rossi",
    "martin",
    "silva",
    "kowalski",
    "nguyen",
    "kim",
    "tanaka",
    "johansson",
    "novak",
    "dubois",
    "jensen",
    "fernandez",
    "ivanova",
    "okafor",
    "mensah",
    "patel",
    "sharma",
    "chen",
    "wang",
    "lopez",
    "schmidt",
    "bianchi",
    "costa",
    "nielsen",
    "horvat",
    "papadopoulos",
    "oconnor",
    "walsh",
    "moreau",
    "haddad",
    "yilmaz",
];

const DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "example.net",
    "mail.example.com",
    "corp.example",
];

/// SplitMix64: small, fast, and the same sequence for the same seed everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// One of `items`.
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[usize::try_from(self.next() % items.len() as u64).unwrap_or(0)]
    }

    /// True one time in `n`.
    fn one_in(&mut self, n: u64) -> bool {
        self.next().is_multiple_of(n)
    }
}

/// When the first user was created; the others follow over three years.
const START: OffsetDateTime = datetime!(2023-01-01 00:00 UTC);
const SPAN_SECS: u64 = 3 * 365 * 24 * 3600;

/// User `i` of `n`.
fn user(i: u64, n: u64, rng: &mut Rng) -> anyhow::Result<User> {
    let (first, last) = (rng.pick(FIRST), rng.pick(LAST));
    let name = format!("{first}.{last}{i}");
    let created_at =
        START + time::Duration::milliseconds(i64::try_from(i * SPAN_SECS * 1000 / n.max(1))?);
    let millis = u64::try_from(created_at.unix_timestamp_nanos() / 1_000_000)?;
    let random: [u8; 10] = {
        let (a, b) = (rng.next().to_le_bytes(), rng.next().to_le_bytes());
        [a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], b[0], b[1]]
    };
    let id = uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid();
    let display = {
        let title = |s: &str| {
            let mut c = s.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        };
        format!("{} {}", title(first), title(last))
    };
    let has_display = !rng.one_in(3);
    let verified = !rng.one_in(5);
    Ok(User {
        id: UserId::from(id),
        username: Username::parse(&name)?,
        email: Email::parse(&format!("{name}@{}", rng.pick(DOMAINS)))?,
        display_name: if has_display {
            DisplayName::parse(&display)?
        } else {
            None
        },
        role: if i == 0 || rng.one_in(1000) {
            Role::Admin
        } else {
            Role::User
        },
        status: if i != 0 && rng.one_in(25) {
            UserStatus::Disabled
        } else {
            UserStatus::Active
        },
        email_verified_at: verified.then_some(created_at + time::Duration::minutes(5)),
        created_at,
        updated_at: created_at,
    })
}

/// The one hash every user gets: [`PASSWORD`] at the default parameters.
async fn one_hash() -> anyhow::Result<PasswordHash> {
    let hasher = Argon2Hasher::new(HasherConfig {
        max_concurrent: 1,
        ..HasherConfig::default()
    })?;
    let password = Password::parse(
        SecretString::from(PASSWORD),
        &PasswordPolicy::default(),
        None,
        None,
    )?;
    Ok(hasher.hash(&password).await?)
}

/// The database the URL names.
enum Database {
    Sqlite(SqliteDatabase),
    Postgres(PostgresDatabase),
}

impl Database {
    async fn open(args: &Args) -> anyhow::Result<Self> {
        if args.database_url.starts_with("sqlite:") {
            let mut config =
                SqliteConfig::from_url(&args.database_url).context("--database-url")?;
            config.durability = Durability::Normal;
            if let Some(dir) = config.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            Ok(Self::Sqlite(SqliteDatabase::open(&config).await?))
        } else {
            let mut config =
                PostgresConfig::from_url(&args.database_url).context("--database-url")?;
            config.schema.clone_from(&args.postgres_schema);
            Ok(Self::Postgres(PostgresDatabase::open(&config).await?))
        }
    }

    fn storage(&self) -> Storage {
        match self {
            Self::Sqlite(db) => db.storage(),
            Self::Postgres(db) => db.storage(),
        }
    }

    async fn close(&self) {
        match self {
            Self::Sqlite(db) => db.close().await,
            Self::Postgres(db) => db.close().await,
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let hash = one_hash().await?;
    let db = Database::open(&args).await?;
    let storage = db.storage();
    let started = Instant::now();
    let mut rng = Rng(args.seed);
    // The session secrets draw from a generator of their own, so that the users stay the
    // same for a seed whether or not a rerun creates sessions.
    let mut secrets = Rng(args.seed ^ 0x5E55_10A5);
    let n = args.users;
    let (mut inserted, mut present, mut conflicts, mut sessions) = (0u64, 0u64, 0u64, 0u64);
    let mut batch = Vec::with_capacity(IMPORT_BATCH);
    let mut with_session = Vec::new();
    let expires = OffsetDateTime::now_utc() + time::Duration::days(30);
    let mut i = 0;
    while i < n || !batch.is_empty() {
        if i < n && batch.len() < IMPORT_BATCH {
            let u = user(i, n, &mut rng)?;
            if args.sessions_every > 0 && i.is_multiple_of(args.sessions_every) {
                with_session.push(u.id);
            }
            batch.push(NewUser {
                user: u,
                password_hash: hash.clone(),
            });
            i += 1;
            continue;
        }
        for outcome in storage.users.insert_many(&batch).await? {
            match outcome {
                Inserted::Inserted => inserted += 1,
                Inserted::AlreadyPresent => present += 1,
                Inserted::Conflict(_) => conflicts += 1,
            }
        }
        batch.clear();
        sessions += create_sessions(&storage, &with_session, expires, &mut secrets).await?;
        with_session.clear();
        if i.is_multiple_of(100_000) || i == n {
            eprintln!("  {i}/{n} users ({:.1} s)", started.elapsed().as_secs_f64());
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{inserted} users inserted, {present} already present, {conflicts} conflicts, \
         {sessions} sessions, in {secs:.1} s ({:.0} users/s); every password is {PASSWORD:?}",
        n as f64 / secs.max(1e-9)
    );
    db.close().await;
    Ok(())
}

/// A browser session for each of `users` (skipped when the user already has one: a
/// rerun), created now, ending at `expires`.
async fn create_sessions(
    storage: &Storage,
    users: &[UserId],
    expires: OffsetDateTime,
    rng: &mut Rng,
) -> anyhow::Result<u64> {
    let now = OffsetDateTime::now_utc();
    let mut created = 0;
    for user in users {
        if !storage.sessions.list_active(*user, now).await?.is_empty() {
            continue;
        }
        let session = Session {
            id: SessionId::new(),
            user_id: *user,
            kind: SessionKind::Browser,
            client: ClientInfo::new(
                Some("Mozilla/5.0 (X11; Linux x86_64) benchmark"),
                Some("192.0.2.10"),
            ),
            created_at: now,
            last_used_at: now,
            expires_at: expires,
            revoked_at: None,
        };
        let secret = format!("benchmark session {:016x}{:016x}", rng.next(), rng.next());
        storage
            .sessions
            .create(&NewSession {
                session,
                secret_hash: TokenHash::of(&secret),
            })
            .await?;
        created += 1;
    }
    Ok(created)
}
