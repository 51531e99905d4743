//! Criterion benchmarks of the hot paths: `cargo bench` (about two minutes), or some of them,
//! e.g. `cargo bench --bench core -- token/`.
//!
//! - `password_policy`: checking a new password (common list lookup included): microseconds.
//! - `hash_verify`: one Argon2id verification at OWASP parameters next to the test
//!   parameters, and a legacy bcrypt (cost 12) verification, the cost of each login.
//! - `token/sign/*`, `token/verify/*`: an access token signed and checked, EdDSA and HS256,
//!   with nothing around: the same header (`kid`), claims and validation as the core's token
//!   keys, whose methods are private to the core, called through `jsonwebtoken` directly.
//!   `token/authenticate_in_memory/*`: `AuthService::authenticate` over in-memory storage, the
//!   same check through the core's own code plus two map lookups.
//! - `store/sqlite/*` and `store/postgres/*`: point reads and writes of the storage ports
//!   (`users.get`, `sessions.get`, `sessions.create`), a whole sign-in without the Argon2id
//!   cost (`AuthService::login` with `FastHasher`: the account read, the guess budget, the
//!   device token, the session and the audit event), and `authenticate` with an EdDSA token
//!   (signature, session and user reads), the cost every authenticated request pays.
//!   PostgreSQL runs in a fresh schema dropped afterwards, when `USERS_TEST_POSTGRES_URL`
//!   names a server (e.g. `postgres://postgres@127.0.0.1:5432/postgres`); skipped otherwise.
//!   `store/dataset/*`: the same over a SQLite dataset of many users made by the `dataset`
//!   example, when `USERS_BENCH_DATASET=sqlite:PATH` names one (the bench adds one user
//!   of its own, `bench-` and a random suffix, and its sessions).
//!
//! Each benchmark is short (a few seconds); compare runs on a quiet machine.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;
use user_core::auth::{
    AccessClaims, AuthPolicy, AuthService, Credentials, RegisterUser, SigningKey, TokenPair,
};
use user_core::domain::{
    ClientInfo, Email, NewSession, Password, PasswordHash, PasswordPolicy, Session, SessionId,
    SessionKind, TokenHash, Username,
};
use user_core::error::HashError;
use user_core::password::{Argon2Hasher, Argon2Params, HasherConfig};
use user_core::ports::{PasswordHasher, SystemClock, Verification};
use user_core::testing::{FastHasher, in_memory};
use user_core::{Ports, Storage};
use user_postgres::testing::{TestSchema, URL_VAR};
use user_sqlite::{SqliteConfig, SqliteDatabase};

const PASSWORD: &str = "correct horse battery staple";

/// The value of a call that must succeed: a benchmark never measures an error path.
fn must<T, E: std::fmt::Display>(result: Result<T, E>) -> T {
    result.unwrap_or_else(|e| panic!("{e}"))
}

/// A verification that must match.
fn matched(result: Result<Verification, HashError>) -> Verification {
    let verdict = must(result);
    assert!(matches!(verdict, Verification::Match { .. }), "{verdict:?}");
    verdict
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"))
}

fn password_policy(c: &mut Criterion) {
    let policy = PasswordPolicy::default();
    let user = Username::parse("alice").ok();
    let email = Email::parse("alice@example.com").ok();
    // Load the list once, outside the measurement.
    let _ = PasswordPolicy::is_common("warm-up");
    c.bench_function("password_policy/accepted", |b| {
        b.iter(|| {
            let pw = SecretString::from(PASSWORD);
            black_box(Password::parse(pw, &policy, user.as_ref(), email.as_ref()).is_ok())
        })
    });
    c.bench_function("password_policy/common", |b| {
        b.iter(|| {
            let pw = SecretString::from("1qaz2wsx3edc");
            black_box(Password::parse(pw, &policy, user.as_ref(), email.as_ref()).is_err())
        })
    });
}

fn hash_verify(c: &mut Criterion) {
    let rt = runtime();
    let owasp = Argon2Hasher::new(HasherConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    let cheap = Argon2Hasher::new(HasherConfig {
        params: Argon2Params {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        ..HasherConfig::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let pw = SecretString::from(PASSWORD);
    let new = || {
        Password::parse(pw.clone(), &PasswordPolicy::default(), None, None)
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let mut group = c.benchmark_group("hash_verify");
    // Tens of milliseconds each: a fixed number of calls per sample.
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    for (name, hasher) in [("argon2id_owasp", &owasp), ("argon2id_test_params", &cheap)] {
        let stored = rt
            .block_on(hasher.hash(&new()))
            .unwrap_or_else(|e| panic!("{e}"));
        group.bench_function(name, |b| {
            b.iter(|| matched(rt.block_on(hasher.verify(&pw, &stored))))
        });
    }
    let bcrypt12 = PasswordHash::new(bcrypt::hash(PASSWORD, 12).unwrap_or_else(|e| panic!("{e}")));
    group.bench_function("bcrypt_cost12_legacy", |b| {
        b.iter(|| matched(rt.block_on(owasp.verify(&pw, &bcrypt12))))
    });
    group.finish();
}

/// The policy of the benches: no per-address sign-in limit (every sign-in comes from nowhere).
fn policy() -> AuthPolicy {
    AuthPolicy {
        login_attempts_per_ip_per_minute: None,
        ..AuthPolicy::default()
    }
}

/// An auth service over `storage` signing with `key`, with one registered user (`alice`,
/// through `FastHasher`), and a sign-in of theirs.
async fn signed_in(storage: Storage, key: &SigningKey) -> (AuthService, TokenPair) {
    signed_in_as(storage, key, "alice").await
}

/// [`signed_in`], registering `name`.
async fn signed_in_as(storage: Storage, key: &SigningKey, name: &str) -> (AuthService, TokenPair) {
    let ports = Ports::new(storage, Arc::new(FastHasher::new()), Arc::new(SystemClock));
    let auth = AuthService::new(ports, policy(), key, vec![]).unwrap_or_else(|e| panic!("{e}"));
    auth.register(
        RegisterUser {
            username: name.into(),
            email: format!("{name}@example.com"),
            password: SecretString::from(PASSWORD),
            display_name: None,
        },
        &ClientInfo::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let tokens = auth
        .login(credentials(name), ClientInfo::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (auth, tokens)
}

fn credentials(name: &str) -> Credentials {
    Credentials::new(name, SecretString::from(PASSWORD))
}

fn ed25519() -> SigningKey {
    SigningKey::generate_ed25519().unwrap_or_else(|e| panic!("{e}"))
}

/// What `jsonwebtoken` needs to sign and check tokens as the core's keys do.
struct Jwt {
    name: &'static str,
    header: Header,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Who signs with the same key, for `authenticate_in_memory`.
    auth: AuthService,
    token: String,
}

impl Jwt {
    async fn new(name: &'static str, key: &SigningKey) -> Self {
        let (auth, tokens) = signed_in(in_memory(), key).await;
        let (algorithm, encoding, decoding) = match key.to_pem() {
            // Ed25519: the private key as PKCS#8 PEM, the public one from the JWKS.
            Some(pem) => {
                let x = &auth.jwks().keys[0].x;
                (
                    Algorithm::EdDSA,
                    EncodingKey::from_ed_pem(pem.expose_secret().as_bytes())
                        .unwrap_or_else(|e| panic!("{e}")),
                    DecodingKey::from_ed_components(x).unwrap_or_else(|e| panic!("{e}")),
                )
            }
            None => (
                Algorithm::HS256,
                EncodingKey::from_secret(HS256_SECRET),
                DecodingKey::from_secret(HS256_SECRET),
            ),
        };
        let mut header = Header::new(algorithm);
        header.kid = Some(key.kid().to_owned());
        // As `TokenKeys::new` sets it up.
        let policy = policy();
        let mut validation = Validation::new(algorithm);
        validation.leeway = policy.leeway.as_secs();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.set_issuer(&[&policy.issuer]);
        validation.set_audience(&[&policy.audience]);
        Self {
            name,
            header,
            encoding,
            decoding,
            validation,
            auth,
            token: tokens.access_token.expose_secret().to_owned(),
        }
    }

    /// Claims as `TokenKeys::issue` makes them.
    fn claims() -> AccessClaims {
        let policy = policy();
        let now = OffsetDateTime::now_utc().unix_timestamp();
        AccessClaims {
            sub: uuid::Uuid::now_v7().to_string(),
            sid: uuid::Uuid::now_v7().to_string(),
            role: "user".to_owned(),
            iat: now,
            exp: now + 900,
            iss: policy.issuer,
            aud: policy.audience,
            jti: uuid::Uuid::new_v4().to_string(),
        }
    }
}

const HS256_SECRET: &[u8] = b"a shared secret of at least 32 bytes, for the benches";

fn token(c: &mut Criterion) {
    let rt = runtime();
    let hs256 = SigningKey::hs256("bench", HS256_SECRET).unwrap_or_else(|e| panic!("{e}"));
    let jwts = rt.block_on(async {
        [
            Jwt::new("eddsa", &ed25519()).await,
            Jwt::new("hs256", &hs256).await,
        ]
    });
    let mut group = c.benchmark_group("token");
    for jwt in &jwts {
        group.bench_function(format!("sign/{}", jwt.name), |b| {
            b.iter(|| {
                must(jsonwebtoken::encode(
                    &jwt.header,
                    &Jwt::claims(),
                    &jwt.encoding,
                ))
            })
        });
        let token = jsonwebtoken::encode(&jwt.header, &Jwt::claims(), &jwt.encoding)
            .unwrap_or_else(|e| panic!("{e}"));
        group.bench_function(format!("verify/{}", jwt.name), |b| {
            b.iter(|| {
                // The kid picks the key, as in the core.
                let header = must(jsonwebtoken::decode_header(black_box(&token)));
                assert_eq!(header.kid.as_deref(), jwt.header.kid.as_deref());
                must(jsonwebtoken::decode::<AccessClaims>(
                    &token,
                    &jwt.decoding,
                    &jwt.validation,
                ))
            })
        });
        group.bench_function(format!("authenticate_in_memory/{}", jwt.name), |b| {
            b.iter(|| must(rt.block_on(jwt.auth.authenticate(black_box(&jwt.token)))))
        });
    }
    group.finish();
}

/// The storage benches on one database: `store/NAME/*`.
fn store_on(c: &mut Criterion, rt: &tokio::runtime::Runtime, name: &str, storage: &Storage) {
    // A dataset keeps what the bench adds: a name of its own each run.
    let user_name = format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let (auth, tokens) = rt.block_on(signed_in_as(storage.clone(), &ed25519(), &user_name));
    let (user, session) = (tokens.user.id, tokens.session_id);
    let token = tokens.access_token.expose_secret().to_owned();
    let mut group = c.benchmark_group(format!("store/{name}"));
    group.bench_function("users_get", |b| {
        b.iter(|| must(rt.block_on(storage.users.get(black_box(user)))))
    });
    group.bench_function("sessions_get", |b| {
        b.iter(|| must(rt.block_on(storage.sessions.get(black_box(session)))))
    });
    group.bench_function("sessions_create", |b| {
        b.iter(|| {
            let now = OffsetDateTime::now_utc();
            let new = NewSession {
                session: Session {
                    id: SessionId::new(),
                    user_id: user,
                    kind: SessionKind::Token,
                    client: ClientInfo::default(),
                    created_at: now,
                    last_used_at: now,
                    expires_at: now + time::Duration::days(1),
                    revoked_at: None,
                },
                secret_hash: TokenHash::of(&uuid::Uuid::new_v4().to_string()),
            };
            must(rt.block_on(storage.sessions.create(&new)))
        })
    });
    group.bench_function("sign_in_without_argon2", |b| {
        b.iter(|| {
            let login = auth.login(credentials(&user_name), ClientInfo::default());
            must(rt.block_on(login))
        })
    });
    group.bench_function("authenticate_eddsa", |b| {
        b.iter(|| must(rt.block_on(auth.authenticate(black_box(&token)))))
    });
    group.finish();
}

fn store(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let db = rt
        .block_on(SqliteDatabase::open(&SqliteConfig::new(
            dir.path().join("bench.db"),
        )))
        .unwrap_or_else(|e| panic!("{e}"));
    store_on(c, &rt, "sqlite", &db.storage());
    rt.block_on(db.close());

    if let Ok(url) = std::env::var("USERS_BENCH_DATASET") {
        let db = rt
            .block_on(async {
                SqliteDatabase::open(&SqliteConfig::from_url(&url).map_err(|e| e.to_string())?)
                    .await
                    .map_err(|e| e.to_string())
            })
            // The error names the file, never the URL (which might hold a password).
            .unwrap_or_else(|e| panic!("USERS_BENCH_DATASET: {e}"));
        store_on(c, &rt, "dataset", &db.storage());
        rt.block_on(db.close());
    }

    // Only when a server is named: `TestSchema::create` insists on one when `CI` is set.
    if std::env::var_os(URL_VAR).is_none() {
        eprintln!("store/postgres skipped: {URL_VAR} is unset");
        return;
    }
    let Some(schema) = rt.block_on(TestSchema::create()) else {
        return;
    };
    let db = rt.block_on(schema.open());
    store_on(c, &rt, "postgres", &db.storage());
    // Close the pool before the schema drops with `schema`.
    rt.block_on(db.close());
}

criterion_group! {
    name = benches;
    // Short runs: the whole suite stays around two minutes.
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = password_policy, hash_verify, token, store
}
criterion_main!(benches);
