use super::*;
use crate::domain::PasswordPolicy;
use argon2::{PasswordHasher as _, PasswordVerifier as _};

const FAST: Argon2Params = Argon2Params {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};

/// At the ceiling: 64 MiB, 10 passes; a few hundred milliseconds.
const SLOW: Argon2Params = Argon2Params {
    memory_kib: 64 * 1024,
    iterations: 10,
    parallelism: 1,
};

fn hasher(params: Argon2Params, max_concurrent: usize, max_queued: usize) -> Argon2Hasher {
    Argon2Hasher::new(HasherConfig {
        params,
        max_concurrent,
        max_queued,
        ..HasherConfig::default()
    })
    .unwrap()
}

fn password(s: &str) -> Password {
    Password::parse(
        SecretString::from(s),
        &PasswordPolicy::default(),
        None,
        None,
    )
    .unwrap()
}

fn secret(s: &str) -> SecretString {
    SecretString::from(s)
}

#[tokio::test]
async fn hashes_argon2id_phc_and_verifies() {
    let h = hasher(FAST, 2, 4);
    let hash = h.hash(&password("tangerine-sky-42")).await.unwrap();
    assert!(hash.as_str().starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
    assert_eq!(
        h.verify(&secret("tangerine-sky-42"), &hash).await.unwrap(),
        Verification::Match {
            needs_rehash: false
        }
    );
    assert_eq!(
        h.verify(&secret("tangerine-sky-43"), &hash).await.unwrap(),
        Verification::Mismatch
    );
    let again = h.hash(&password("tangerine-sky-42")).await.unwrap();
    assert_ne!(hash, again, "every hash has a fresh salt");
}

#[tokio::test]
async fn keeps_the_promises_of_the_port() {
    crate::testing::conformance::hasher_keeps_its_promises(&hasher(FAST, 2, 4)).await;
}

#[tokio::test]
async fn default_parameters_are_owasp() {
    assert_eq!(HasherConfig::default().params, Argon2Params::OWASP);
    let h = Argon2Hasher::new(HasherConfig::default()).unwrap();
    let hash = h.hash(&password("tangerine-sky-42")).await.unwrap();
    assert!(hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
}

#[tokio::test]
async fn other_parameters_or_variants_need_a_rehash() {
    let old = hasher(FAST, 1, 1)
        .hash(&password("tangerine-sky-42"))
        .await
        .unwrap();
    let current = hasher(
        Argon2Params {
            memory_kib: 128,
            ..FAST
        },
        1,
        1,
    );
    assert_eq!(
        current
            .verify(&secret("tangerine-sky-42"), &old)
            .await
            .unwrap(),
        Verification::Match { needs_rehash: true }
    );

    let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, FAST.build().unwrap())
        .hash_password(b"tangerine-sky-42")
        .unwrap()
        .to_string();
    assert_eq!(
        hasher(FAST, 1, 1)
            .verify(&secret("tangerine-sky-42"), &PasswordHash::new(argon2i))
            .await
            .unwrap(),
        Verification::Match { needs_rehash: true }
    );
}

#[tokio::test]
async fn legacy_bcrypt_verifies_and_always_needs_rehash() {
    let h = hasher(FAST, 1, 1);
    let b = bcrypt::hash("short", 4).unwrap();
    assert!(b.starts_with("$2b$04$"));
    for prefix in ["$2a$", "$2b$", "$2y$"] {
        let stored = PasswordHash::new(format!("{prefix}{}", &b[4..]));
        assert_eq!(
            h.verify(&secret("short"), &stored).await.unwrap(),
            Verification::Match { needs_rehash: true },
            "{prefix}"
        );
        assert_eq!(
            h.verify(&secret("shorter"), &stored).await.unwrap(),
            Verification::Mismatch
        );
    }
}

#[tokio::test]
async fn hostile_or_malformed_hashes_are_refused_unread() {
    let h = hasher(FAST, 1, 1);
    let good = h.hash(&password("tangerine-sky-42")).await.unwrap();
    let huge = good.as_str().replace("m=64", "m=4194304");
    let slow = good.as_str().replace("t=1", "t=100000");
    let bcrypt31 = format!("$2b$31${}", &bcrypt::hash("x", 4).unwrap()[7..]);
    for bad in [
        huge.as_str(),
        slow.as_str(),
        bcrypt31.as_str(),
        "",
        "plaintext",
        "$argon2id$v=19$m=64,t=1,p=1$bm9zYWx0",
        "$scrypt$ln=15,r=8,p=1$c2FsdA$aGFzaA",
        "$2b$xx$abc",
    ] {
        let got = h.verify(&secret("x"), &PasswordHash::new(bad)).await;
        assert!(
            matches!(got, Err(HashError::Refused(_))),
            "{bad:?}: {got:?}"
        );
    }
}

#[tokio::test]
async fn config_is_checked() {
    let over = HasherConfig {
        params: Argon2Params {
            memory_kib: 1 << 20,
            ..Argon2Params::OWASP
        },
        ..HasherConfig::default()
    };
    assert_eq!(Argon2Hasher::new(over).unwrap_err().setting, "argon2");
    let zero = HasherConfig {
        max_concurrent: 0,
        ..HasherConfig::default()
    };
    assert_eq!(
        Argon2Hasher::new(zero).unwrap_err().setting,
        "max_concurrent"
    );
    let invalid = HasherConfig {
        params: Argon2Params {
            memory_kib: 1,
            ..FAST
        },
        ..HasherConfig::default()
    };
    assert_eq!(Argon2Hasher::new(invalid).unwrap_err().setting, "argon2");
}

/// Waits, without sleeping, until `cond` holds; fails the test if it does not within
/// [`PATIENCE`] (a hash of the slow parameters takes well under a second).
async fn until(cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "the condition did not hold within {PATIENCE:?}"
        );
        tokio::task::yield_now().await;
    }
}

/// How long [`until`] waits at most, generous for a loaded 2-core machine.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_fails_fast_with_overloaded() {
    let h = hasher(Argon2Params::OWASP, 1, 1);
    let pw = || secret("tangerine-sky-42");
    let stored = hasher(FAST, 1, 1)
        .hash(&password("tangerine-sky-42"))
        .await
        .unwrap();
    let slow = SLOW;
    let slow_hasher = hasher(slow, 1, 1);
    let slow_hash = slow_hasher
        .hash(&password("tangerine-sky-42"))
        .await
        .unwrap();

    let h1 = h.clone();
    let s1 = slow_hash.clone();
    let first = tokio::spawn(async move { h1.verify(&pw(), &s1).await });
    until(|| h.load().running == 1).await;
    let h2 = h.clone();
    let s2 = slow_hash.clone();
    let second = tokio::spawn(async move { h2.verify(&secret("tangerine-sky-42"), &s2).await });
    until(|| h.load().queued == 1).await;
    // One running, one queued: the third is turned away at once.
    let third = h.verify(&pw(), &stored).await;
    assert!(matches!(third, Err(HashError::Overloaded)), "{third:?}");
    assert!(first.await.unwrap().is_ok());
    assert!(second.await.unwrap().is_ok());
    assert_eq!(
        h.load(),
        HasherLoad {
            running: 0,
            queued: 0
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_caller_keeps_its_slot_until_the_hash_ends() {
    let slow = SLOW;
    let h = hasher(slow, 1, 0);
    let stored = h.hash(&password("tangerine-sky-42")).await.unwrap();
    let h1 = h.clone();
    let task = tokio::spawn(async move { h1.verify(&secret("tangerine-sky-42"), &stored).await });
    until(|| h.load().running == 1).await;
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    // The hash still runs on its worker thread, so its slot is still taken.
    assert_eq!(h.load().running, 1);
    let refused = h.hash(&password("tangerine-sky-42")).await;
    assert!(matches!(refused, Err(HashError::Overloaded)));
    until(|| h.load().running == 0).await;
    assert!(h.hash(&password("tangerine-sky-42")).await.is_ok());
}

#[tokio::test]
async fn refusals_never_quote_the_stored_hash() {
    let h = hasher(FAST, 1, 1);
    let secret_looking = "$2b$04$THIS-IS-THE-STORED-HASH-AND-MUST-NOT-BE-LOGGED";
    let err = h
        .verify(&secret("x"), &PasswordHash::new(secret_looking))
        .await
        .unwrap_err();
    let mut chain = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        chain.push_str(&s.to_string());
        source = s.source();
    }
    assert!(matches!(err, HashError::Refused(_)));
    assert!(!chain.contains("STORED-HASH"), "{chain}");
}

#[tokio::test]
async fn our_phc_strings_agree_with_the_argon2_crate_both_ways() {
    let h = hasher(FAST, 1, 1);
    // Ours, checked by the crate's own verifier.
    let ours = h.hash(&password("tangerine-sky-42")).await.unwrap();
    let parsed = Phc::new(ours.as_str()).unwrap();
    assert!(
        Argon2::default()
            .verify_password(b"tangerine-sky-42", &parsed)
            .is_ok()
    );
    assert!(
        Argon2::default()
            .verify_password(b"tangerine-sky-43", &parsed)
            .is_err()
    );
    // The crate's, checked by ours.
    let theirs = argon2(&FAST.build().unwrap())
        .hash_password(b"tangerine-sky-42")
        .unwrap()
        .to_string();
    assert_eq!(
        h.verify(
            &secret("tangerine-sky-42"),
            &PasswordHash::new(theirs.clone())
        )
        .await
        .unwrap(),
        Verification::Match {
            needs_rehash: false
        }
    );
    assert_eq!(
        h.verify(&secret("tangerine-sky-4"), &PasswordHash::new(theirs))
            .await
            .unwrap(),
        Verification::Mismatch
    );
}

/// Each parameter alone, the rest as today's: every one of them asks for a rehash, and the
/// same parameters do not.
#[test]
fn any_one_parameter_unlike_todays_needs_a_rehash() {
    let current = FAST.build().unwrap();
    let stored_with = |algorithm, version, m, t, p, len| {
        let params = Params::new(m, t, p, Some(len)).unwrap();
        Argon2::new(algorithm, version, params)
            .hash_password(b"tangerine-sky-42")
            .unwrap()
            .to_string()
    };
    let verdict = |hash: String| {
        verify_any(
            "tangerine-sky-42",
            &hash,
            &current,
            &HashCeiling::default(),
            &mut Scratch::default(),
        )
        .unwrap()
    };
    let (id, v13) = (Algorithm::Argon2id, Version::V0x13);
    let len = Params::DEFAULT_OUTPUT_LEN;
    assert_eq!(
        verdict(stored_with(id, v13, 64, 1, 1, len)),
        Verification::Match {
            needs_rehash: false
        }
    );
    for (what, hash) in [
        (
            "algorithm",
            stored_with(Algorithm::Argon2d, v13, 64, 1, 1, len),
        ),
        ("version", stored_with(id, Version::V0x10, 64, 1, 1, len)),
        ("memory", stored_with(id, v13, 72, 1, 1, len)),
        ("passes", stored_with(id, v13, 64, 2, 1, len)),
        ("lanes", stored_with(id, v13, 64, 1, 2, len)),
        ("output length", stored_with(id, v13, 64, 1, 1, 16)),
    ] {
        assert_eq!(
            verdict(hash),
            Verification::Match { needs_rehash: true },
            "another {what}"
        );
    }
}

#[test]
fn the_scratch_memory_is_reused_and_shrinks_back() {
    let params = FAST.build().unwrap();
    let mut scratch = Scratch::default();
    hash_with(&params, "tangerine-sky-42", &mut scratch).unwrap();
    assert_eq!(scratch.0.len(), params.block_count());
    let bigger = Argon2Params {
        memory_kib: 256,
        ..FAST
    }
    .build()
    .unwrap();
    let stored = hash_with(&bigger, "tangerine-sky-42", &mut Scratch::default()).unwrap();
    let verdict = verify_any(
        "tangerine-sky-42",
        stored.as_str(),
        &params,
        &HashCeiling::default(),
        &mut scratch,
    );
    assert_eq!(verdict.unwrap(), Verification::Match { needs_rehash: true });
    assert_eq!(
        scratch.0.len(),
        params.block_count(),
        "back to today's size"
    );
}

#[tokio::test]
async fn the_import_check_refuses_exactly_what_verification_refuses() {
    let h = hasher(FAST, 1, 1);
    let ceiling = HashCeiling::default();
    let argon = h.hash(&password("tangerine-sky-42")).await.unwrap();
    let argon = argon.as_str();
    let bcrypt4 = bcrypt::hash("x", 4).unwrap();
    let body = &bcrypt4[7..];
    let (salt, digest) = body.split_at(22);
    let mut cases: Vec<(String, bool)> = vec![
        (argon.to_owned(), true),
        (bcrypt4.clone(), true),
        (bcrypt4.replacen("$2b$", "$2a$", 1), true),
        (bcrypt4.replacen("$2b$", "$2y$", 1), true),
        (format!("$2b$14${body}"), true),
        (format!("$2b$15${body}"), false),
        (format!("$2b$03${body}"), false),
        (format!("$2b$+4${body}"), false),
        (format!("$2x$04${body}"), false),
        (format!("$2b$04$$${body}"), false),
        // 60 characters, but no `$` after the cost.
        (format!("$2b$04x{body}"), false),
        (bcrypt4[..59].to_owned(), false),
        (format!("{bcrypt4}A"), false),
        (format!("$2b$04${}!{}", &salt[..21], digest), false),
        // The last character of the salt carries 4 unused bits, which must be zero.
        (format!("$2b$04${}{}{}", &salt[..21], "Z", digest), false),
        ("$2b$04$short".to_owned(), false),
        (argon.replace("m=64", "m=4194304"), false),
        (argon.replace("p=1", "p=9"), false),
        // Exactly at the default ceiling (64 MiB, 10 passes, 4 lanes) is allowed, one more
        // is not.
        (argon.replace("m=64", "m=65536"), true),
        (argon.replace("m=64", "m=65537"), false),
        (argon.replace("t=1", "t=10"), true),
        (argon.replace("t=1", "t=11"), false),
        (argon.replace("p=1", "p=4"), true),
        (argon.replace("p=1", "p=5"), false),
        (argon.replacen("$v=19", "$v=7", 1), false),
        (
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA".to_owned(),
            false,
        ),
        ("$argon2id$v=19$m=64,t=1,p=1$bm9zYWx0".to_owned(), false),
        ("$scrypt$ln=15,r=8,p=1$c2FsdA$aGFzaA".to_owned(), false),
        ("plaintext".to_owned(), false),
        (String::new(), false),
    ];
    cases.dedup();
    for (hash, ok) in cases {
        let checked = ceiling.check(&hash);
        assert_eq!(checked.is_ok(), ok, "{hash:?}: {checked:?}");
        let verified = h.verify(&secret("x"), &PasswordHash::new(&*hash)).await;
        assert_eq!(
            !matches!(verified, Err(HashError::Refused(_))),
            ok,
            "{hash:?}: {verified:?}"
        );
        if let Err(HashError::Refused(reason)) = checked {
            assert!(hash.is_empty() || !reason.to_string().contains(&*hash));
        }
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_hash_worker_lowers_only_its_own_priority() {
    let mine = rustix::process::getpriority_process(None).unwrap();
    let (before, worker) = std::thread::spawn(|| {
        let me = Some(rustix::thread::gettid());
        // From nice 0 where allowed (as root, say): tests run at nice 19 (`nice -n 19
        // cargo test`) would otherwise start at the cap, where lowering changes nothing.
        let _ = rustix::process::setpriority_process(me, 0);
        let before = rustix::process::getpriority_process(me).unwrap();
        lower_own_priority();
        (before, rustix::process::getpriority_process(me).unwrap())
    })
    .join()
    .unwrap();
    assert_eq!(worker, (before + WORKER_NICENESS).min(19), "from {before}");
    let after = rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
    assert_eq!(after, mine, "the calling thread keeps its own");
}

/// A hash admitted reports the load gauges at once: on admission, from the caller's thread,
/// nothing runs yet and one hash waits. (Seen through a recorder local to this thread, so
/// hashers in other tests, which set the same gauges, do not interfere.)
#[tokio::test]
async fn admitting_a_hash_sets_the_load_gauges() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let h = hasher(FAST, 1, 1);
    {
        let _local = metrics::set_default_local_recorder(&recorder);
        h.hash(&password("tangerine-sky-42")).await.unwrap();
    }
    let page = handle.render();
    let gauges = crate::testing::observe::series(&page, "user_hash_");
    assert!(gauges.contains(&names::HASH_RUNNING), "{page}");
    assert!(gauges.contains(&names::HASH_QUEUE_DEPTH), "{page}");
    let value = |name| crate::testing::observe::sample(&page, name);
    assert_eq!(value(names::HASH_RUNNING), 0.0, "{page}");
    assert_eq!(value(names::HASH_QUEUE_DEPTH), 1.0, "{page}");
}
