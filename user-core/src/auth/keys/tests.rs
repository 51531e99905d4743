use super::*;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-03-01 10:00 UTC);
const TTL: Duration = Duration::from_secs(900);

fn keys(signing: &SigningKey, extra: Vec<VerifyingKey>) -> TokenKeys {
    TokenKeys::new(signing, extra, "iss-a", "aud-a", Duration::from_secs(5)).unwrap()
}

fn issue(k: &TokenKeys) -> String {
    k.issue(UserId::new(), SessionId::new(), Role::User, NOW, TTL)
        .unwrap()
        .0
}

fn sign_raw(k: &TokenKeys, claims: serde_json::Value, alg: Algorithm, kid: &str) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, &claims, &k.encoding).unwrap()
}

#[test]
fn eddsa_round_trip_carries_every_claim() {
    let signing = SigningKey::generate_ed25519().unwrap();
    let k = keys(&signing, vec![]);
    let (user, session) = (UserId::new(), SessionId::new());
    let (token, issued) = k.issue(user, session, Role::Admin, NOW, TTL).unwrap();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(header.kid.as_deref(), Some(signing.kid()));
    let claims = k.verify(&token, NOW).unwrap();
    assert_eq!(claims, issued);
    assert_eq!(claims.sub, user.to_string());
    assert_eq!(claims.sid, session.to_string());
    assert_eq!(claims.role, "admin");
    assert_eq!(
        (claims.iss.as_str(), claims.aud.as_str()),
        ("iss-a", "aud-a")
    );
    assert_eq!(claims.exp - claims.iat, 900);
    assert!(Uuid::parse_str(&claims.jti).is_ok());
}

#[test]
fn expiry_uses_the_given_clock_with_bounded_leeway() {
    let k = keys(&SigningKey::generate_ed25519().unwrap(), vec![]);
    let token = issue(&k);
    let at = |secs: i64| NOW + time::Duration::seconds(secs);
    assert!(k.verify(&token, at(899)).is_ok());
    assert!(k.verify(&token, at(904)).is_ok(), "within 5 s of leeway");
    assert!(matches!(
        k.verify(&token, at(905)),
        Err(TokenError::Expired)
    ));
    assert!(matches!(
        k.verify(&token, at(100_000)),
        Err(TokenError::Expired)
    ));
}

#[test]
fn tampering_and_foreign_tokens_are_invalid() {
    let signing = SigningKey::generate_ed25519().unwrap();
    let k = keys(&signing, vec![]);
    let token = issue(&k);
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    let other = keys(&SigningKey::generate_ed25519().unwrap(), vec![]);
    let wrong_aud = TokenKeys::new(&signing, vec![], "iss-a", "aud-b", Duration::ZERO).unwrap();
    let wrong_iss = TokenKeys::new(&signing, vec![], "iss-b", "aud-a", Duration::ZERO).unwrap();
    for bad in [
        tampered,
        issue(&other),
        issue(&wrong_aud),
        issue(&wrong_iss),
        String::new(),
        "not.a.jwt".to_owned(),
        "x".repeat(5000),
    ] {
        assert!(
            matches!(k.verify(&bad, NOW), Err(TokenError::Invalid)),
            "{bad:.40}"
        );
    }
}

#[test]
fn missing_required_claims_are_invalid() {
    let signing = SigningKey::generate_ed25519().unwrap();
    let k = keys(&signing, vec![]);
    let full = serde_json::json!({
        "sub": "u", "sid": "s", "role": "user", "iat": 0, "jti": "j",
        "exp": NOW.unix_timestamp() + 60, "iss": "iss-a", "aud": "aud-a",
    });
    assert!(
        k.verify(
            &sign_raw(&k, full.clone(), Algorithm::EdDSA, signing.kid()),
            NOW
        )
        .is_ok()
    );
    for claim in ["exp", "iss", "aud", "sub"] {
        let mut c = full.clone();
        c.as_object_mut().unwrap().remove(claim);
        let token = sign_raw(&k, c, Algorithm::EdDSA, signing.kid());
        assert!(
            matches!(k.verify(&token, NOW), Err(TokenError::Invalid)),
            "without {claim}"
        );
    }
}

#[test]
fn the_algorithm_is_pinned() {
    // An HS256 token signed with a secret must not pass EdDSA keys, even with a known kid.
    let ed = SigningKey::generate_ed25519().unwrap();
    let k = keys(&ed, vec![]);
    let hs = SigningKey::hs256(ed.kid(), &[7u8; 32]).unwrap();
    let hk = keys(&hs, vec![]);
    assert!(matches!(
        k.verify(&issue(&hk), NOW),
        Err(TokenError::Invalid)
    ));
    // An unsigned token ("alg": "none") is refused.
    let claims = URL_SAFE_NO_PAD.encode(
        serde_json::json!({"sub":"u","exp":NOW.unix_timestamp()+60,"iss":"iss-a","aud":"aud-a"})
            .to_string(),
    );
    let head = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","kid":"{}"}}"#, ed.kid()));
    assert!(matches!(
        k.verify(&format!("{head}.{claims}."), NOW),
        Err(TokenError::Invalid)
    ));
    // A token without kid is refused.
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = None;
    let no_kid =
        jsonwebtoken::encode(&header, &serde_json::json!({"sub": "u"}), &k.encoding).unwrap();
    assert!(matches!(k.verify(&no_kid, NOW), Err(TokenError::Invalid)));
}

#[test]
fn rotation_keeps_old_tokens_valid_and_mixing_algorithms_is_refused() {
    let old = SigningKey::generate_ed25519().unwrap();
    let old_token = issue(&keys(&old, vec![]));
    let new = SigningKey::generate_ed25519().unwrap();
    let rotated = keys(&new, vec![old.verifying_key()]);
    assert!(rotated.verify(&old_token, NOW).is_ok());
    let fresh = issue(&rotated);
    assert_eq!(
        jsonwebtoken::decode_header(&fresh).unwrap().kid.as_deref(),
        Some(new.kid())
    );
    assert_eq!(rotated.jwks().keys.len(), 2);

    let hs = SigningKey::hs256("h1", &[1u8; 32]).unwrap();
    let err = TokenKeys::new(&new, vec![hs.verifying_key()], "i", "a", Duration::ZERO).unwrap_err();
    assert_eq!(err.setting, "verification_keys");
    let err =
        TokenKeys::new(&new, vec![new.verifying_key()], "i", "a", Duration::ZERO).unwrap_err();
    assert!(err.reason.contains("duplicate"));
}

#[test]
fn jwks_publishes_ed25519_public_keys_only() {
    let ed = SigningKey::generate_ed25519().unwrap();
    let k = keys(&ed, vec![]);
    let doc = serde_json::to_value(k.jwks()).unwrap();
    let key = &doc["keys"][0];
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["alg"], "EdDSA");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["kid"], ed.kid());
    assert_eq!(key.as_object().unwrap().len(), 6, "nothing else: {key}");
    assert_eq!(doc.as_object().unwrap().len(), 1, "only `keys`: {doc}");
    assert_eq!(
        URL_SAFE_NO_PAD
            .decode(key["x"].as_str().unwrap())
            .unwrap()
            .len(),
        32
    );
    // A third party can verify our token from the JWKS alone (here: jsonwebtoken's reading
    // of the published JSON).
    let published = serde_json::to_value(k.jwks().find(ed.kid()).unwrap()).unwrap();
    let jwk = serde_json::from_value::<jsonwebtoken::jwk::Jwk>(published).unwrap();
    let mut v = Validation::new(Algorithm::EdDSA);
    v.set_audience(&["aud-a"]);
    v.validate_exp = false;
    let data =
        jsonwebtoken::decode::<AccessClaims>(&issue(&k), &DecodingKey::from_jwk(&jwk).unwrap(), &v);
    assert!(data.is_ok(), "{data:?}");

    let hs = keys(&SigningKey::hs256("h1", &[1u8; 32]).unwrap(), vec![]);
    assert!(
        hs.jwks().keys.is_empty(),
        "an HMAC secret is never published"
    );
}

#[test]
fn hs256_needs_32_bytes_and_pem_round_trips() {
    assert_eq!(
        SigningKey::hs256("k", &[0u8; 31]).unwrap_err().setting,
        "jwt_secret"
    );
    let hs = SigningKey::hs256("k", &[0u8; 32]).unwrap();
    assert!(hs.to_pem().is_none());
    assert!(issue(&keys(&hs, vec![])).contains('.'));

    let ed = SigningKey::generate_ed25519().unwrap();
    let pem = ed.to_pem().unwrap();
    assert!(
        pem.expose_secret()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    let back = SigningKey::ed25519_from_pem(&pem).unwrap();
    assert_eq!(back.kid(), ed.kid());
    let token = issue(&keys(&back, vec![]));
    assert!(keys(&ed, vec![]).verify(&token, NOW).is_ok());
    assert!(SigningKey::ed25519_from_pem(&SecretString::from("nope")).is_err());
    assert!(!format!("{ed:?}").contains("PRIVATE"));
}

#[test]
fn each_key_names_its_algorithm_as_jwt_headers_do() {
    let ed = SigningKey::generate_ed25519().unwrap();
    let hs = SigningKey::hs256("h1", &[1u8; 32]).unwrap();
    assert_eq!(ed.algorithm(), KeyAlgorithm::EdDsa);
    assert_eq!(hs.algorithm(), KeyAlgorithm::Hs256);
    for (key, alg) in [(&ed, Algorithm::EdDSA), (&hs, Algorithm::HS256)] {
        let token = issue(&keys(key, vec![]));
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, alg);
        assert_eq!(
            serde_json::to_value(header.alg).unwrap(),
            key.algorithm().as_str()
        );
        assert_eq!(key.algorithm().to_string(), key.algorithm().as_str());
    }
}

#[test]
fn a_remembered_token_gives_the_same_claims_without_a_second_check() {
    let k = keys(&SigningKey::generate_ed25519().unwrap(), vec![]);
    let token = issue(&k);
    let first = k.verify_cached(&token, NOW).unwrap();
    assert_eq!(*first, k.verify(&token, NOW).unwrap());
    let again = k
        .verify_cached(&token, NOW + time::Duration::seconds(60))
        .unwrap();
    assert!(Arc::ptr_eq(&first, &again), "served from memory");
    assert_eq!(k.remembered(), 1);
}

#[test]
fn a_remembered_token_expires_by_the_same_rule() {
    let k = keys(&SigningKey::generate_ed25519().unwrap(), vec![]);
    let token = issue(&k);
    let at = |secs: i64| NOW + time::Duration::seconds(secs);
    let first = k.verify_cached(&token, NOW).unwrap();
    let hit = k.verify_cached(&token, at(904)).unwrap();
    assert!(Arc::ptr_eq(&first, &hit), "within 5 s of leeway");
    assert!(matches!(
        k.verify_cached(&token, at(905)),
        Err(TokenError::Expired)
    ));
    assert_eq!(k.remembered(), 0, "an expired token is forgotten");
    assert!(matches!(
        k.verify_cached(&token, at(100_000)),
        Err(TokenError::Expired)
    ));
    assert_eq!(k.remembered(), 0, "nor remembered again");
}

#[test]
fn only_a_byte_identical_token_is_served_from_memory() {
    let signing = SigningKey::generate_ed25519().unwrap();
    let k = keys(&signing, vec![]);
    let token = issue(&k);
    k.verify_cached(&token, NOW).unwrap();
    let (head, rest) = token.split_once('.').unwrap();
    let (claims, signature) = rest.split_once('.').unwrap();
    let flip = |s: &str, i: usize| {
        let mut b = s.as_bytes().to_vec();
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).unwrap()
    };
    let forged_claims = serde_json::json!({
        "sub": UserId::new().to_string(), "sid": SessionId::new().to_string(),
        "role": "admin", "iat": 0, "jti": "j", "exp": NOW.unix_timestamp() + 60,
        "iss": "iss-a", "aud": "aud-a",
    });
    let other = keys(&SigningKey::generate_ed25519().unwrap(), vec![]);
    for bad in [
        flip(&token, token.len() - 1),
        format!("{head}.{}.{signature}", flip(claims, 5)),
        format!(
            "{head}.{}.{signature}",
            URL_SAFE_NO_PAD.encode(forged_claims.to_string())
        ),
        format!("{token}A"),
        format!(" {token}"),
        format!("{head}.{claims}."),
        sign_raw(
            &other,
            forged_claims.clone(),
            Algorithm::EdDSA,
            signing.kid(),
        ),
    ] {
        assert!(
            matches!(k.verify_cached(&bad, NOW), Err(TokenError::Invalid)),
            "{bad:.60}"
        );
    }
    assert_eq!(k.remembered(), 1, "refused tokens are not remembered");
    assert!(k.verify_cached(&token, NOW).is_ok());
}

#[test]
fn memory_belongs_to_one_key_set() {
    let (old, new) = (
        SigningKey::generate_ed25519().unwrap(),
        SigningKey::generate_ed25519().unwrap(),
    );
    let token = issue(&keys(&old, vec![]));
    let rotating = keys(&new, vec![old.verifying_key()]);
    assert!(rotating.verify_cached(&token, NOW).is_ok());
    let rotated = keys(&new, vec![]);
    assert!(matches!(
        rotated.verify_cached(&token, NOW),
        Err(TokenError::Invalid)
    ));
}

#[test]
fn memory_is_bounded() {
    // HS256: cheap to check, so many tokens fit in a unit test.
    let k = keys(&SigningKey::hs256("h1", &[7u8; 32]).unwrap(), vec![]);
    for _ in 0..VerifiedTokens::CAPACITY + 1000 {
        k.verify_cached(&issue(&k), NOW).unwrap();
        assert!(k.remembered() <= VerifiedTokens::CAPACITY);
    }
    assert!(k.remembered() >= VerifiedTokens::CAPACITY / 2);
}
