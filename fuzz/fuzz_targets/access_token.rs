//! Access-token verification through the public API, `AuthService::authenticate` (the key
//! type's `verify` is crate-private), with an HS256 key fixed in this file and in-memory
//! fakes. The fuzzer can sign tokens with that key, so it reaches the claim checks.
//!
//! Checks: no panic; every refusal is `Unauthenticated` (never `Internal`); arbitrary text
//! and every mutation of a real token are refused unless equal to it; a token signed by the
//! fuzzer is accepted exactly when a reference model says so: at most 4096 bytes, HS256 with
//! our key and `kid`,
//! all claims present and well typed, our issuer and audience, `exp` plus 5 s leeway after
//! now, and `sub`/`sid` naming the live user and session; then the actor is that user.
#![no_main]

use std::sync::{Arc, LazyLock};

use arbitrary::Arbitrary;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use libfuzzer_sys::fuzz_target;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};
use user_core::auth::{AuthPolicy, AuthService, Credentials, RegisterUser, SigningKey};
use user_core::domain::{Actor, ClientInfo, Role, SessionId, UserId};
use user_core::error::AuthError;
use user_core::testing::{FixedClock, memory_ports};
use user_management_fuzz::block_on;

const KID: &str = "fuzz-kid";
const SECRET: &[u8; 32] = b"fuzzing-secret-0123456789abcdefg";
const OTHER_SECRET: &[u8; 32] = b"another-secret-0123456789abcdefg";
const LEEWAY: i64 = 5;
/// Longer tokens are refused unread (`MAX_TOKEN_LEN` in `auth/keys.rs`).
const MAX_TOKEN_LEN: usize = 4096;

struct Env {
    auth: AuthService,
    actor: Actor,
    token: String,
    now: i64,
    issuer: String,
    audience: String,
}

static ENV: LazyLock<Env> = LazyLock::new(|| {
    block_on(async {
        let clock = Arc::new(FixedClock::default());
        let now = clock.now_unix();
        let policy = AuthPolicy::default();
        let (issuer, audience) = (policy.issuer.clone(), policy.audience.clone());
        assert_eq!(policy.leeway.as_secs(), LEEWAY as u64);
        let key = SigningKey::hs256(KID, SECRET).unwrap();
        let auth = AuthService::new(memory_ports(clock), policy, &key, vec![]).unwrap();
        let password = "correct horse battery staple";
        auth.register(
            RegisterUser {
                username: "alice".into(),
                email: "alice@example.com".into(),
                password: SecretString::from(password),
                display_name: None,
            },
            &ClientInfo::default(),
        )
        .await
        .unwrap();
        let pair = auth
            .login(
                Credentials::new("alice", SecretString::from(password)),
                ClientInfo::default(),
            )
            .await
            .unwrap();
        let token = pair.access_token.expose_secret().to_owned();
        let actor = auth.authenticate(&token).await.unwrap();
        assert_eq!(actor.user_id, pair.user.id);
        assert_eq!(actor.session_id, pair.session_id);
        Env {
            auth,
            actor,
            token,
            now,
            issuer,
            audience,
        }
    })
});

trait NowUnix {
    fn now_unix(&self) -> i64;
}

impl NowUnix for FixedClock {
    fn now_unix(&self) -> i64 {
        user_core::ports::Clock::now(self).unix_timestamp()
    }
}

#[derive(Debug, Arbitrary)]
enum Text {
    Missing,
    Ours,
    Other(String),
    Number(i64),
}

#[derive(Debug, Arbitrary)]
enum Id {
    Missing,
    Ours,
    /// Our id written in upper case, braced or as a URN: the same UUID.
    OursAs(u8),
    Other(String),
    Random,
}

#[derive(Debug, Arbitrary)]
enum Time {
    Missing,
    FromNow(i32),
    At(i64),
    Text(String),
}

#[derive(Debug, Arbitrary)]
enum Alg {
    Hs256,
    Hs384,
    Hs512,
}

#[derive(Debug, Arbitrary)]
struct Forged {
    alg: Alg,
    kid: Text,
    our_secret: bool,
    sub: Id,
    sid: Id,
    iss: Text,
    aud: Text,
    exp: Time,
    iat: Time,
    role: Text,
    jti: Text,
    extra: Vec<(String, String)>,
}

#[derive(Debug, Arbitrary)]
enum Input {
    /// Any text as a bearer token.
    Raw(String),
    /// The real token with bytes replaced, inserted or removed.
    Mutated(Vec<(u16, Option<u8>, bool)>),
    /// A token the fuzzer signs.
    Forged(Box<Forged>),
}

fn id_text(id: &Id, ours: String) -> Option<Value> {
    Some(Value::String(match id {
        Id::Missing => return None,
        Id::Ours => ours,
        Id::OursAs(n) => match n % 3 {
            0 => ours.to_uppercase(),
            1 => format!("{{{ours}}}"),
            _ => format!("urn:uuid:{ours}"),
        },
        Id::Other(s) => s.clone(),
        Id::Random => SessionId::new().to_string(),
    }))
}

fn text(t: &Text, ours: &str) -> Option<Value> {
    match t {
        Text::Missing => None,
        Text::Ours => Some(json!(ours)),
        Text::Other(s) => Some(json!(s)),
        Text::Number(n) => Some(json!(n)),
    }
}

fn time(t: &Time, now: i64) -> Option<Value> {
    match t {
        Time::Missing => None,
        Time::FromNow(d) => Some(json!(now + i64::from(*d))),
        Time::At(n) => Some(json!(n)),
        Time::Text(s) => Some(json!(s)),
    }
}

fn forge(env: &Env, f: &Forged) -> (String, bool) {
    let mut claims = Map::new();
    let fields = [
        ("sub", id_text(&f.sub, env.actor.user_id.to_string())),
        ("sid", id_text(&f.sid, env.actor.session_id.to_string())),
        ("iss", text(&f.iss, &env.issuer)),
        ("aud", text(&f.aud, &env.audience)),
        ("exp", time(&f.exp, env.now)),
        ("iat", time(&f.iat, env.now)),
        ("role", text(&f.role, "user")),
        ("jti", text(&f.jti, "0196f1a0-0000-7000-8000-000000000000")),
    ];
    for (name, value) in &fields {
        if let Some(v) = value {
            claims.insert((*name).to_owned(), v.clone());
        }
    }
    for (k, v) in &f.extra {
        claims.entry(k.clone()).or_insert_with(|| json!(v));
    }
    let mut header = Header::new(match f.alg {
        Alg::Hs256 => Algorithm::HS256,
        Alg::Hs384 => Algorithm::HS384,
        Alg::Hs512 => Algorithm::HS512,
    });
    header.kid = match &f.kid {
        Text::Missing => None,
        Text::Ours => Some(KID.to_owned()),
        Text::Other(s) => Some(s.clone()),
        Text::Number(n) => Some(n.to_string()),
    };
    let secret = if f.our_secret { SECRET } else { OTHER_SECRET };
    let token =
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret)).expect("encode");

    // The reference model.
    let claim = |name: &str| claims.get(name);
    let is_str = |name: &str| claim(name).is_some_and(Value::is_string);
    let is_int = |name: &str| claim(name).is_some_and(|v| v.is_i64());
    let exp = claim("exp").and_then(Value::as_i64);
    let names_us = |name: &str, ours: &str| {
        claim(name)
            .and_then(Value::as_str)
            .and_then(uuid_of)
            .is_some_and(|u| u == ours)
    };
    let accept = token.len() <= MAX_TOKEN_LEN
        && matches!(f.alg, Alg::Hs256)
        && f.our_secret
        && header.kid.as_deref() == Some(KID)
        && ["role", "jti"].iter().all(|n| is_str(n))
        && is_int("iat")
        && claim("iss") == Some(&json!(env.issuer))
        && claim("aud") == Some(&json!(env.audience))
        && exp.is_some_and(|e| e.saturating_add(LEEWAY) > env.now)
        && names_us("sub", &env.actor.user_id.to_string())
        && names_us("sid", &env.actor.session_id.to_string());
    (token, accept)
}

/// The canonical text of a UUID as `UserId`/`SessionId` parse it, if it is one.
fn uuid_of(s: &str) -> Option<String> {
    s.parse::<UserId>().ok().map(|id| id.to_string())
}

fn check(env: &Env, token: &str, expect_ok: bool) {
    match block_on(env.auth.authenticate(token)) {
        Ok(actor) => {
            assert!(expect_ok, "accepted a token it should refuse: {token:?}");
            assert_eq!(actor.user_id, env.actor.user_id);
            assert_eq!(actor.session_id, env.actor.session_id);
            assert_eq!(actor.role, Role::User);
        }
        Err(AuthError::Unauthenticated) => {
            assert!(!expect_ok, "refused a valid token: {token:?}")
        }
        Err(e) => panic!("refusal is not Unauthenticated: {e:?}"),
    }
}

fuzz_target!(|input: Input| {
    let env = &*ENV;
    match input {
        Input::Raw(text) => {
            let same = text == env.token;
            check(env, &text, same);
        }
        Input::Mutated(edits) => {
            let mut bytes = env.token.clone().into_bytes();
            for (at, byte, insert) in edits {
                let at = usize::from(at) % (bytes.len() + 1);
                match (byte, insert) {
                    (Some(b), true) => bytes.insert(at, b),
                    (Some(b), false) if at < bytes.len() => bytes[at] = b,
                    (None, _) if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => {}
                }
            }
            if let Ok(text) = String::from_utf8(bytes) {
                let same = text == env.token;
                check(env, &text, same);
            }
        }
        Input::Forged(forged) => {
            let (token, accept) = forge(env, &forged);
            check(env, &token, accept);
        }
    }
});
