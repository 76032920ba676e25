//! The OpenID provider's tokens as cordon checks them: signed by keys ring makes (P-256,
//! Ed25519) and by an RSA key openssl makes, each a key of a JWKS; every way a token can be
//! wrong for cordon is refused, and the right ones are read.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use cordon_gateway::oidc::{Expect, KeySet, OidcError, verify};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use serde_json::{Value, json};

const ISSUER: &str = "https://id.exchange.example";
const CLIENT: &str = "cordon-console";
const API: &str = "https://cordon.exchange.example/api";
const NOW: i64 = 1_800_000_000;

enum Signer {
    Rsa(RsaKeyPair),
    P256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl Signer {
    fn alg(&self) -> &'static str {
        match self {
            Signer::Rsa(_) => "RS256",
            Signer::P256(_) => "ES256",
            Signer::Ed25519(_) => "EdDSA",
        }
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let random = SystemRandom::new();
        match self {
            Signer::Rsa(key) => {
                let mut signature = vec![0u8; key.public().modulus_len()];
                key.sign(&ring::signature::RSA_PKCS1_SHA256, &random, message, &mut signature).unwrap();
                signature
            }
            Signer::P256(key) => key.sign(&random, message).unwrap().as_ref().to_vec(),
            Signer::Ed25519(key) => key.sign(message).as_ref().to_vec(),
        }
    }

    fn jwk(&self, kid: &str) -> Value {
        match self {
            Signer::Rsa(key) => {
                let public = key.public();
                let components: ring::rsa::PublicKeyComponents<Vec<u8>> = public.into();
                json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                       "n": BASE64URL.encode(&components.n), "e": BASE64URL.encode(&components.e)})
            }
            Signer::P256(key) => {
                let point = key.public_key().as_ref();
                json!({"kty": "EC", "kid": kid, "crv": "P-256",
                       "x": BASE64URL.encode(&point[1..33]), "y": BASE64URL.encode(&point[33..65])})
            }
            Signer::Ed25519(key) => {
                json!({"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": BASE64URL.encode(key.public_key().as_ref())})
            }
        }
    }
}

fn rsa_from_openssl() -> RsaKeyPair {
    // PKCS#1 (RSAPrivateKey), DER: what `openssl genrsa -traditional` writes.
    let output = std::process::Command::new("sh")
        .args([
            "-c",
            "openssl genrsa -traditional 2048 2>/dev/null | openssl rsa -traditional -outform DER 2>/dev/null",
        ])
        .output()
        .unwrap();
    assert!(output.status.success() && !output.stdout.is_empty(), "{}", String::from_utf8_lossy(&output.stderr));
    RsaKeyPair::from_der(&output.stdout).unwrap()
}

fn signers() -> Vec<(&'static str, Signer)> {
    let random = SystemRandom::new();
    let p256 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &random).unwrap();
    let ed25519 = Ed25519KeyPair::generate_pkcs8(&random).unwrap();
    vec![
        ("rsa-1", Signer::Rsa(rsa_from_openssl())),
        (
            "p256-1",
            Signer::P256(EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, p256.as_ref(), &random).unwrap()),
        ),
        ("ed-1", Signer::Ed25519(Ed25519KeyPair::from_pkcs8(ed25519.as_ref()).unwrap())),
    ]
}

fn token(signer: &Signer, header: &Value, claims: &Value) -> String {
    let signed = format!("{}.{}", BASE64URL.encode(header.to_string()), BASE64URL.encode(claims.to_string()));
    format!("{signed}.{}", BASE64URL.encode(signer.sign(signed.as_bytes())))
}

fn id_claims() -> Value {
    json!({"iss": ISSUER, "aud": CLIENT, "sub": "248289761001", "email": "sam@exchange.example",
           "nonce": "n-0S6_WzA2Mj", "iat": NOW - 10, "exp": NOW + 300, "amr": ["pwd", "otp"]})
}

fn access_claims() -> Value {
    json!({"iss": ISSUER, "aud": API, "sub": "248289761001", "client_id": CLIENT, "email": "sam@exchange.example",
           "iat": NOW - 10, "exp": NOW + 300, "scope": "openid email"})
}

fn with(mut value: Value, key: &str, replacement: Value) -> Value {
    if replacement.is_null() {
        value.as_object_mut().unwrap().remove(key);
    } else {
        value[key] = replacement;
    }
    value
}

#[test]
fn provider_tokens_are_read_when_right_and_refused_in_words_otherwise() {
    let signers = signers();
    let jwks = json!({"keys": signers.iter().map(|(kid, signer)| signer.jwk(kid)).collect::<Vec<_>>()});
    let keys = KeySet::parse(jwks.to_string().as_bytes()).unwrap();
    assert_eq!(keys.len(), 3);
    let id = Expect::IdToken { client_id: CLIENT, nonce: "n-0S6_WzA2Mj" };
    let access = Expect::AccessToken { audience: API };
    for (kid, signer) in &signers {
        let header = json!({"alg": signer.alg(), "kid": kid, "typ": "JWT"});
        let at_header = json!({"alg": signer.alg(), "kid": kid, "typ": "at+jwt"});
        let good_id = token(signer, &header, &id_claims());
        let verified = verify(&good_id, &keys, ISSUER, &id, NOW).unwrap();
        assert_eq!(verified.text("email"), Some("sam@exchange.example"));
        assert_eq!(verified.amr(), ["pwd", "otp"]);
        let good_access = token(signer, &at_header, &access_claims());
        assert!(verify(&good_access, &keys, ISSUER, &access, NOW).is_ok(), "{kid}");

        let other_kid = signers.iter().find(|(other, _)| other != kid).unwrap().0;
        let mut tampered = good_id.clone().into_bytes();
        let middle = good_id.find('.').unwrap() + 5;
        tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
        let cases: Vec<(&str, String, &Expect<'_>, &str)> = vec![
            ("altered claims", String::from_utf8(tampered).unwrap(), &id, "signature"),
            (
                "alg none",
                format!(
                    "{}.{}.",
                    BASE64URL.encode(json!({"alg": "none", "kid": kid}).to_string()),
                    BASE64URL.encode(id_claims().to_string())
                ),
                &id,
                "algorithm `none`",
            ),
            (
                "HMAC with the public key",
                token(signer, &json!({"alg": "HS256", "kid": kid}), &id_claims()),
                &id,
                "algorithm `HS256`",
            ),
            ("another key's id", token(signer, &json!({"alg": signer.alg(), "kid": other_kid}), &id_claims()), &id, ""),
            (
                "an unknown key",
                token(signer, &json!({"alg": signer.alg(), "kid": "rotated-away"}), &id_claims()),
                &id,
                "no key `rotated-away`",
            ),
            (
                "another issuer",
                token(signer, &header, &with(id_claims(), "iss", json!("https://evil.example"))),
                &id,
                "`iss`",
            ),
            ("another client", token(signer, &header, &with(id_claims(), "aud", json!("someone-else"))), &id, "`aud`"),
            (
                "several audiences, no azp",
                token(signer, &header, &with(id_claims(), "aud", json!([CLIENT, "other"]))),
                &id,
                "`azp`",
            ),
            (
                "another sign-in's nonce",
                token(signer, &header, &with(id_claims(), "nonce", json!("replayed"))),
                &id,
                "`nonce`",
            ),
            ("no nonce", token(signer, &header, &with(id_claims(), "nonce", Value::Null)), &id, "`nonce`"),
            ("expired", token(signer, &header, &with(id_claims(), "exp", json!(NOW - 61))), &id, "expired"),
            ("no expiry", token(signer, &header, &with(id_claims(), "exp", Value::Null)), &id, "`exp`"),
            (
                "issued in the future",
                token(signer, &header, &with(id_claims(), "iat", json!(NOW + 3600))),
                &id,
                "`iat`",
            ),
            ("not valid yet", token(signer, &header, &with(id_claims(), "nbf", json!(NOW + 3600))), &id, "`nbf`"),
            ("no subject", token(signer, &header, &with(id_claims(), "sub", Value::Null)), &id, "`sub`"),
            ("an ID token as an access token", good_id.clone(), &access, "at+jwt"),
            (
                "an access token for another API",
                token(signer, &at_header, &with(access_claims(), "aud", json!("https://other.example"))),
                &access,
                "`aud`",
            ),
            ("an access token as an ID token", good_access.clone(), &id, "not an ID token"),
            ("four parts", format!("{good_id}.x"), &id, "three parts"),
            ("huge", "a".repeat(20_000), &id, "over 16384 bytes"),
            (
                "a header with crit",
                token(signer, &json!({"alg": signer.alg(), "kid": kid, "crit": ["exp"]}), &id_claims()),
                &id,
                "critical",
            ),
        ];
        for (case, candidate, expect, words) in cases {
            match verify(&candidate, &keys, ISSUER, expect, NOW) {
                Ok(_) => panic!("{kid}: {case}: accepted"),
                Err(error) => {
                    assert!(error.to_string().contains(words), "{kid}: {case}: `{error}` should say `{words}`")
                }
            }
        }
    }
    // Within a minute of leeway an expired token still reads; beyond it, not.
    let (kid, signer) = &signers[1];
    let header = json!({"alg": signer.alg(), "kid": kid});
    let late = token(signer, &header, &with(id_claims(), "exp", json!(NOW - 30)));
    assert!(verify(&late, &keys, ISSUER, &Expect::IdToken { client_id: CLIENT, nonce: "n-0S6_WzA2Mj" }, NOW).is_ok());
}

#[test]
fn key_sets_keep_only_signing_keys_cordon_can_check() {
    let cases: Vec<(&str, Value, Result<usize, &str>)> = vec![
        ("no keys", json!({"keys": []}), Err("no RS256, ES256 or EdDSA signing key")),
        (
            "an encryption key only",
            json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "use": "enc", "kid": "e", "x": BASE64URL.encode([7u8; 32])}]}),
            Err("no RS256"),
        ),
        ("a symmetric key only", json!({"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]}), Err("no RS256")),
        (
            "a short RSA key",
            json!({"keys": [{"kty": "RSA", "kid": "r", "n": BASE64URL.encode([1u8; 128]), "e": "AQAB"}]}),
            Err("1024 bits is too short"),
        ),
        (
            "a key declared for another algorithm",
            json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "x", "alg": "RS256", "x": BASE64URL.encode([7u8; 32])}]}),
            Err("no RS256"),
        ),
        (
            "a bad coordinate",
            json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "c", "x": "AAAA", "y": "AAAA"}]}),
            Err("not 32 bytes"),
        ),
        (
            "not base64url",
            json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "b", "x": "+/+/"}]}),
            Err("not base64url"),
        ),
        ("not JSON", json!("keys"), Err("invalid type")),
        (
            "two keys with one id",
            json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "kid": "same", "x": BASE64URL.encode([7u8; 32])},
            {"kty": "OKP", "crv": "Ed25519", "kid": "same", "x": BASE64URL.encode([8u8; 32])}]}),
            Err("share the id `same`"),
        ),
        (
            "a short RSA key beside a good one",
            json!({"keys": [
            {"kty": "RSA", "kid": "r", "n": BASE64URL.encode([1u8; 128]), "e": "AQAB"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "good", "x": BASE64URL.encode([7u8; 32])}]}),
            Ok(1),
        ),
        (
            "one good key among others",
            json!({"keys": [
            {"kty": "oct", "kid": "s", "k": "c2VjcmV0"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "good", "x": BASE64URL.encode([7u8; 32])}]}),
            Ok(1),
        ),
    ];
    for (case, document, wanted) in cases {
        match (KeySet::parse(document.to_string().as_bytes()), wanted) {
            (Ok(keys), Ok(count)) => assert_eq!(keys.len(), count, "{case}"),
            (Err(error), Err(words)) => {
                assert!(matches!(error, OidcError::KeySet(_)), "{case}: {error:?}");
                assert!(error.to_string().contains(words), "{case}: `{error}` should say `{words}`");
            }
            (found, wanted) => panic!("{case}: {found:?}, wanted {wanted:?}"),
        }
    }
}

/// A running oidc-provider (scripts/oidc-provider), stopped when dropped.
struct RealProvider {
    child: std::process::Child,
    issuer: String,
}

const SECRET: &str = "a-client-secret-for-tests";
const REDIRECT: &str = "http://127.0.0.1:9/console/oidc/callback";

impl RealProvider {
    fn start() -> RealProvider {
        use std::io::BufRead as _;
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/oidc-provider/run");
        let mut child = std::process::Command::new(script)
            .args(["provider", &port.to_string(), SECRET, REDIRECT, API])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        let listening = lines.find_map(|line| line.ok().filter(|line| line.contains("listening on")));
        assert!(listening.is_some(), "oidc-provider did not start");
        std::thread::spawn(move || lines.for_each(drop));
        RealProvider { child, issuer: format!("http://127.0.0.1:{port}") }
    }

    /// A path of the provider, fetched over plain HTTP/1.1.
    fn get(&self, path: &str) -> Vec<u8> {
        use std::io::{Read as _, Write as _};
        let authority = self.issuer.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(authority).unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nhost: {authority}\r\nconnection: close\r\n\r\n").unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        let split = answer.windows(4).position(|window| window == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&answer[..split]).to_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        let body = answer[split + 4..].to_vec();
        if head.contains("transfer-encoding: chunked") { dechunk(&body) } else { body }
    }

    /// Signs in as `login` with `password` (`pw` or `pw+otp`); the token endpoint's answer.
    fn sign_in(&self, login: &str, password: &str) -> Value {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/oidc-provider/run");
        let output = std::process::Command::new(script)
            .args(["sign-in", &self.issuer, SECRET, REDIRECT, login, password])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice(&output.stdout).unwrap()
    }
}

impl Drop for RealProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|window| window == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&body[..line_end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[line_end + 2..line_end + 2 + size]);
        body = &body[line_end + 2 + size + 2..];
    }
}

#[test]
fn a_real_providers_tokens_verify_against_its_key_set_and_are_refused_once_its_keys_rotate() {
    let provider = RealProvider::start();
    let discovery: Value = serde_json::from_slice(&provider.get("/.well-known/openid-configuration")).unwrap();
    assert_eq!(discovery["issuer"].as_str(), Some(provider.issuer.as_str()));
    let jwks_path = discovery["jwks_uri"].as_str().unwrap().trim_start_matches(&provider.issuer).to_string();
    let keys = KeySet::parse(&provider.get(&jwks_path)).unwrap();
    assert_eq!(keys.len(), 2, "the provider's RS256 and ES256 keys");

    let answer = provider.sign_in("sam", "pw+otp");
    let (id_token, access_token, nonce) = (
        answer["id_token"].as_str().unwrap(),
        answer["access_token"].as_str().unwrap(),
        answer["nonce"].as_str().unwrap(),
    );
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let id = verify(id_token, &keys, &provider.issuer, &Expect::IdToken { client_id: "cordon-console", nonce }, now)
        .unwrap();
    assert_eq!((id.text("sub"), id.text("email")), (Some("sam"), Some("sam@exchange.example")));
    let access = verify(access_token, &keys, &provider.issuer, &Expect::AccessToken { audience: API }, now).unwrap();
    assert_eq!(access.amr(), ["pwd", "otp"], "the methods the person signed in with");
    assert_eq!(access.text("acr"), Some("urn:exchange:loa:2"));
    let password_only = provider.sign_in("lee", "pw");
    let lee = verify(
        password_only["access_token"].as_str().unwrap(),
        &keys,
        &provider.issuer,
        &Expect::AccessToken { audience: API },
        now,
    )
    .unwrap();
    assert_eq!((lee.text("email"), lee.amr()), (Some("lee@exchange.example"), vec!["pwd".to_string()]));

    // The same tokens, expected otherwise: refused in words.
    let cases: Vec<(&str, &str, &str, Expect<'_>, &str)> = vec![
        (
            "another sign-in's nonce",
            id_token,
            &provider.issuer,
            Expect::IdToken { client_id: "cordon-console", nonce: "other" },
            "`nonce`",
        ),
        ("another client", id_token, &provider.issuer, Expect::IdToken { client_id: "someone-else", nonce }, "`aud`"),
        ("an ID token for the API", id_token, &provider.issuer, Expect::AccessToken { audience: API }, "at+jwt"),
        (
            "another API",
            access_token,
            &provider.issuer,
            Expect::AccessToken { audience: "https://other.example/api" },
            "`aud`",
        ),
        ("another issuer", access_token, "https://id.other.example", Expect::AccessToken { audience: API }, "`iss`"),
    ];
    for (case, token, issuer, expect, words) in cases {
        let error = verify(token, &keys, issuer, &expect, now).unwrap_err();
        assert!(error.to_string().contains(words), "{case}: `{error}` should say `{words}`");
    }
    // An hour later the tokens have expired.
    assert!(matches!(
        verify(access_token, &keys, &provider.issuer, &Expect::AccessToken { audience: API }, now + 3600),
        Err(OidcError::Claim { claim: "exp", .. })
    ));

    // A provider started again has new keys: the old tokens name a key the new set lacks.
    drop(provider);
    let restarted = RealProvider::start();
    let rotated = KeySet::parse(&restarted.get("/jwks")).unwrap();
    let error = verify(access_token, &rotated, &restarted.issuer, &Expect::AccessToken { audience: API }, now);
    assert!(matches!(error, Err(OidcError::UnknownKey(_)) | Err(OidcError::Claim { claim: "iss", .. })), "{error:?}");
    let kid = cordon_gateway::oidc::header(access_token).unwrap().kid;
    assert!(!rotated.has(&kid), "the old key `{kid}` is gone from the new set");
}
