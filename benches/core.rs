//! Criterion benchmarks of the hot paths: `cargo bench`.
//!
//! - `password_policy`: checking a new password (common list lookup included): microseconds.
//! - `hash_verify`: one Argon2id verification at OWASP parameters next to the test
//!   parameters, and a legacy bcrypt (cost 12) verification, the cost of each login.
//! - `authenticate`: checking an access token (EdDSA signature, claims, session and user
//!   lookups) against SQLite, the cost every authenticated request pays; and against
//!   PostgreSQL, in a fresh schema dropped afterwards, when `USERS_TEST_POSTGRES_URL` names a
//!   server (e.g. `postgres://postgres@127.0.0.1:5432/postgres`), skipped otherwise.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use secrecy::{ExposeSecret, SecretString};
use user_core::auth::{AuthPolicy, AuthService, Credentials, RegisterUser, SigningKey};
use user_core::domain::{ClientInfo, Email, Password, PasswordHash, PasswordPolicy, Username};
use user_core::password::{Argon2Hasher, Argon2Params, HasherConfig};
use user_core::ports::{PasswordHasher, SystemClock};
use user_core::testing::FastHasher;
use user_core::{Ports, Storage};
use user_postgres::testing::{TestSchema, URL_VAR};
use user_sqlite::{SqliteConfig, SqliteDatabase};

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
            let pw = SecretString::from("correct horse battery staple");
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
    let pw = SecretString::from("correct horse battery staple");
    let new = || {
        Password::parse(pw.clone(), &PasswordPolicy::default(), None, None)
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let mut group = c.benchmark_group("hash_verify");
    group.sample_size(20);
    for (name, hasher) in [("argon2id_owasp", &owasp), ("argon2id_test_params", &cheap)] {
        let stored = rt
            .block_on(hasher.hash(&new()))
            .unwrap_or_else(|e| panic!("{e}"));
        group.bench_function(name, |b| {
            b.iter(|| rt.block_on(hasher.verify(&pw, &stored)).is_ok())
        });
    }
    let bcrypt12 =
        PasswordHash::new(bcrypt::hash(pw.expose_secret(), 12).unwrap_or_else(|e| panic!("{e}")));
    group.bench_function("bcrypt_cost12_legacy", |b| {
        b.iter(|| rt.block_on(owasp.verify(&pw, &bcrypt12)).is_ok())
    });
    group.finish();
}

/// An auth service over `storage` with one registered user, and an access token of theirs.
async fn signed_in(storage: Storage) -> (AuthService, String) {
    let ports = Ports::new(storage, Arc::new(FastHasher::new()), Arc::new(SystemClock));
    let key = SigningKey::generate_ed25519().unwrap_or_else(|e| panic!("{e}"));
    let auth = AuthService::new(ports, AuthPolicy::default(), &key, vec![])
        .unwrap_or_else(|e| panic!("{e}"));
    let password = SecretString::from("correct horse battery staple");
    auth.register(
        RegisterUser {
            username: "alice".into(),
            email: "alice@example.com".into(),
            password: password.clone(),
            display_name: None,
        },
        &ClientInfo::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let tokens = auth
        .login(Credentials::new("alice", password), ClientInfo::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (auth, tokens.access_token.expose_secret().to_owned())
}

fn authenticate(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (db, (auth, token)) = rt.block_on(async {
        let db = SqliteDatabase::open(&SqliteConfig::new(dir.path().join("bench.db")))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let signed_in = signed_in(db.storage()).await;
        (db, signed_in)
    });
    c.bench_function("authenticate/eddsa_token_sqlite", |b| {
        b.iter(|| rt.block_on(auth.authenticate(black_box(&token))).is_ok())
    });
    rt.block_on(db.close());

    // Only when a server is named: `TestSchema::create` insists on one when `CI` is set.
    if std::env::var_os(URL_VAR).is_none() {
        eprintln!("authenticate/eddsa_token_postgres skipped: {URL_VAR} is unset");
        return;
    }
    let Some(schema) = rt.block_on(TestSchema::create()) else {
        return;
    };
    let (db, (auth, token)) = rt.block_on(async {
        let db = schema.open().await;
        let signed_in = signed_in(db.storage()).await;
        (db, signed_in)
    });
    c.bench_function("authenticate/eddsa_token_postgres", |b| {
        b.iter(|| rt.block_on(auth.authenticate(black_box(&token))).is_ok())
    });
    // Close the pool before the schema drops with `schema`.
    rt.block_on(db.close());
}

criterion_group!(benches, password_policy, hash_verify, authenticate);
criterion_main!(benches);
