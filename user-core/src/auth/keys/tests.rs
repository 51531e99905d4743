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

/// A token built part by part, accepted by `keys(&signing, ..)` at `NOW` as built: every
/// header field and claim right. A hostile token is a forge with exactly one part spoiled,
/// and each test shows the unspoiled forge verifying, so only the check under test can be
/// what refuses the hostile one.
#[derive(Clone)]
struct Forge {
    header: serde_json::Value,
    claims: serde_json::Value,
}

impl Forge {
    fn new(signing: &SigningKey) -> Self {
        Self {
            header: serde_json::json!({
                "typ": "JWT", "alg": signing.algorithm().as_str(), "kid": signing.kid(),
            }),
            claims: serde_json::json!({
                "sub": UserId::new().to_string(), "sid": SessionId::new().to_string(),
                "role": "user", "iat": NOW.unix_timestamp(), "jti": Uuid::now_v7().to_string(),
                "exp": NOW.unix_timestamp() + 60, "iss": "iss-a", "aud": "aud-a",
            }),
        }
    }

    /// Sets (`Some`) or removes (`None`) a header field.
    fn header(mut self, name: &str, value: Option<serde_json::Value>) -> Self {
        set(&mut self.header, name, value);
        self
    }

    /// Sets (`Some`) or removes (`None`) a claim.
    fn claim(mut self, name: &str, value: Option<serde_json::Value>) -> Self {
        set(&mut self.claims, name, value);
        self
    }

    /// `header.claims`, unsigned.
    fn message(&self) -> String {
        let part = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
        format!("{}.{}", part(&self.header), part(&self.claims))
    }

    /// Signed by `key`, with its own algorithm whatever the header says.
    fn signed_by(&self, key: &SigningKey) -> String {
        let message = self.message();
        let encoding = key.encoding_key().unwrap();
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &encoding, key.algorithm().jwt())
                .unwrap();
        format!("{message}.{signature}")
    }
}

fn set(object: &mut serde_json::Value, name: &str, value: Option<serde_json::Value>) {
    let object = object.as_object_mut().unwrap();
    match value {
        Some(v) => object.insert(name.to_owned(), v),
        None => object.remove(name),
    };
}

fn refused(k: &TokenKeys, token: &str) -> bool {
    matches!(k.verify(token, NOW), Err(TokenError::Invalid))
}

#[test]
fn the_forge_as_built_verifies_with_every_claim() {
    let signing = SigningKey::generate_ed25519().unwrap();
    let k = keys(&signing, vec![]);
    let forge = Forge::new(&signing);
    let claims = k.verify(&forge.signed_by(&signing), NOW).unwrap();
    assert_eq!(serde_json::to_value(&claims).unwrap(), forge.claims);
    // And an HS256 forge verifies with HS256 keys.
    let hs = SigningKey::hs256("h1", &[7u8; 32]).unwrap();
    assert!(
        keys(&hs, vec![])
            .verify(&Forge::new(&hs).signed_by(&hs), NOW)
            .is_ok()
    );
}

#[test]
fn tampering_and_foreign_tokens_are_invalid() {
    let signing = SigningKey::generate_ed25519().unwrap();
    let k = keys(&signing, vec![]);
    let forge = Forge::new(&signing);
    let token = forge.signed_by(&signing);
    assert!(k.verify(&token, NOW).is_ok(), "the forge as built verifies");

    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    // Another key's signature under our kid: only the signature is wrong.
    let foreign = forge.signed_by(&SigningKey::generate_ed25519().unwrap());
    for (what, bad) in [
        ("a changed signature", tampered),
        ("another key's signature", foreign),
        (
            "another audience",
            forge
                .clone()
                .claim("aud", Some("aud-b".into()))
                .signed_by(&signing),
        ),
        (
            "another issuer",
            forge
                .clone()
                .claim("iss", Some("iss-b".into()))
                .signed_by(&signing),
        ),
        (
            "an unknown kid",
            forge
                .clone()
                .header("kid", Some("who".into()))
                .signed_by(&signing),
        ),
        ("empty", String::new()),
        ("not a JWT", "not.a.jwt".to_owned()),
        ("too long", "x".repeat(5000)),
    ] {
        assert!(refused(&k, &bad), "{what}: {bad:.40}");
    }
}

#[test]
fn missing_required_claims_are_invalid() {
    let signing = SigningKey::generate_ed25519().unwrap();
    let k = keys(&signing, vec![]);
    let forge = Forge::new(&signing);
    assert!(k.verify(&forge.signed_by(&signing), NOW).is_ok());
    for claim in ["exp", "iss", "aud", "sub", "sid", "role", "iat", "jti"] {
        let token = forge.clone().claim(claim, None).signed_by(&signing);
        assert!(refused(&k, &token), "without {claim}");
    }
}

#[test]
fn the_algorithm_is_pinned() {
    let ed = SigningKey::generate_ed25519().unwrap();
    let k = keys(&ed, vec![]);
    let forge = Forge::new(&ed);
    assert!(
        k.verify(&forge.signed_by(&ed), NOW).is_ok(),
        "the forge as built verifies"
    );

    // HS256 under the Ed25519 key's kid, signed with a secret (what an attacker would try
    // with a published public key): refused by EdDSA keys.
    let hs = SigningKey::hs256(ed.kid(), &[7u8; 32]).unwrap();
    let hs_token = forge
        .clone()
        .header("alg", Some("HS256".into()))
        .signed_by(&hs);
    assert!(
        keys(&hs, vec![]).verify(&hs_token, NOW).is_ok(),
        "the same token passes keys that do use HS256"
    );
    assert!(refused(&k, &hs_token), "HS256 against EdDSA keys");

    // Unsigned ("alg": "none"), with and without the real signature after it.
    let none = forge.clone().header("alg", Some("none".into()));
    let signature = forge.signed_by(&ed).rsplit_once('.').unwrap().1.to_owned();
    for bad in [
        format!("{}.", none.message()),
        format!("{}.{signature}", none.message()),
    ] {
        assert!(refused(&k, &bad), "alg none: {bad:.40}");
    }

    // No kid: refused, though signed by the one key there is.
    let no_kid = forge.header("kid", None).signed_by(&ed);
    assert!(refused(&k, &no_kid), "no kid");
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
    let err = SigningKey::ed25519_from_pem(&SecretString::from("nope")).unwrap_err();
    assert_eq!(err.setting, "signing_key");
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

#[test]
fn debug_output_names_the_key_never_its_material() {
    let key = SigningKey::generate_ed25519().unwrap();
    assert_eq!(
        format!("{key:?}"),
        format!(
            "SigningKey {{ kid: {:?}, algorithm: {:?}, .. }}",
            key.kid(),
            key.algorithm()
        )
    );
    let pem = key.to_pem().unwrap();
    let body = pem.expose_secret().lines().nth(1).unwrap().to_owned();
    assert!(!format!("{key:?}").contains(&body));

    let public = key.verifying_key();
    let shown = format!("{public:?}");
    assert!(
        shown.starts_with(&format!(
            "VerifyingKey {{ kid: {:?}, algorithm: ",
            key.kid()
        )),
        "{shown}"
    );
    assert!(shown.ends_with(", .. }"), "{shown}");

    let shared = SigningKey::hs256("k1", &[7u8; 32]).unwrap();
    let shown = format!("{shared:?}");
    assert!(
        shown.contains("\"k1\"") && !shown.contains("7, 7"),
        "{shown}"
    );

    let k = keys(&key, vec![]);
    let shown = format!("{k:?}");
    assert!(
        shown.starts_with(&format!("TokenKeys {{ kid: {:?}, ", key.kid())),
        "{shown}"
    );
    assert!(shown.contains("remembered: 0"), "{shown}");
    assert!(!shown.contains(&body), "{shown}");
}

/// A valid token of exactly `len` bytes: its `jti` claim padded and, to reach lengths the
/// claims' base64 skips, its `cty` header too.
fn token_of_len(signing: &SigningKey, len: usize) -> String {
    let probe = Forge::new(signing);
    let signature_len = probe.signed_by(signing).len() - probe.message().len() - 1;
    for cty in 1..4 {
        for jti in 1..len {
            let forge = Forge::new(signing)
                .header("cty", Some(serde_json::json!("c".repeat(cty))))
                .claim("jti", Some(serde_json::json!("j".repeat(jti))));
            let at = forge.message().len() + 1 + signature_len;
            if at == len {
                let token = forge.signed_by(signing);
                assert_eq!(token.len(), len);
                return token;
            }
            if at > len {
                break;
            }
        }
    }
    panic!("no token of {len} bytes")
}

#[test]
fn the_longest_token_is_checked_and_a_longer_one_refused() {
    let signing = SigningKey::generate_ed25519().unwrap();
    let k = keys(&signing, vec![]);
    let longest = token_of_len(&signing, MAX_TOKEN_LEN);
    assert!(k.verify(&longest, NOW).is_ok());
    assert!(k.verify_cached(&longest, NOW).is_ok());
    assert!(k.verify_cached(&longest, NOW).is_ok(), "and from memory");
    let longer = token_of_len(&signing, MAX_TOKEN_LEN + 1);
    assert!(refused(&k, &longer));
    assert!(matches!(
        k.verify_cached(&longer, NOW),
        Err(TokenError::Invalid)
    ));
}
