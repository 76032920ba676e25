//! Tokens from the exchange's OpenID provider: JSON Web Tokens signed with the provider's
//! keys (a JWKS, RFC 7517), checked as OpenID Connect Core §3.1.3.7 checks an ID token and as
//! RFC 9068 checks a JWT access token. Pure functions of the token, the key set and the
//! time: fetching the provider's discovery document and key set is the server's.
//!
//! What is refused, whatever the provider sends: `alg: none`, HMAC algorithms (a public key
//! must never be used as an HMAC secret), an algorithm the key does not declare, a key id the
//! set does not hold, a signature that does not verify, another issuer, another audience, a
//! token expired or not yet valid (a minute's leeway for clocks), an ID token with another
//! nonce, an access token whose `typ` is not `at+jwt`, a token over 16 KiB.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use serde::Deserialize;
use serde_json::Value;

/// The largest token read.
const TOKEN_BYTES_MAX: usize = 16 * 1024;
/// How far clocks may disagree.
pub const LEEWAY_SECONDS: i64 = 60;

/// Why a provider's token was refused. Never carries the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    #[error("the token is not a signed JWT: {0}")]
    Malformed(String),
    #[error("the token's algorithm `{0}` is not accepted (RS256, ES256 or EdDSA with a key of the provider's set)")]
    Algorithm(String),
    #[error("the provider's key set has no key `{0}` for this token")]
    UnknownKey(String),
    #[error("the token's signature does not verify with the provider's key `{0}`")]
    Signature(String),
    #[error("the token's claim `{claim}` is wrong: {why}")]
    Claim { claim: &'static str, why: String },
    #[error("the provider's key set is not usable: {0}")]
    KeySet(String),
}

/// One verification key of the provider's set.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    P256 { point: Vec<u8> },
    Ed25519 { public: [u8; 32] },
}

impl Key {
    fn algorithm(&self) -> &'static str {
        match self {
            Key::Rsa { .. } => "RS256",
            Key::P256 { .. } => "ES256",
            Key::Ed25519 { .. } => "EdDSA",
        }
    }
}

/// The provider's signing keys by key id (`kid`), as its `jwks_uri` serves them. Keys of
/// other types, for encryption, or for algorithms other than RS256, ES256 and EdDSA are
/// left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySet {
    keys: BTreeMap<String, Key>,
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    usage: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

fn decode_part(what: &str, text: Option<&str>) -> Result<Vec<u8>, OidcError> {
    let text = text.ok_or_else(|| OidcError::KeySet(format!("a key has no `{what}`")))?;
    BASE64URL.decode(text).map_err(|error| OidcError::KeySet(format!("a key's `{what}` is not base64url: {error}")))
}

/// The key a JWK describes, if it is one cordon checks signatures with.
fn key_of(jwk: &Jwk) -> Result<Option<Key>, OidcError> {
    Ok(Some(match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("RSA", _) => {
            let n = decode_part("n", jwk.n.as_deref())?;
            let significant = n.iter().skip_while(|byte| **byte == 0).count();
            if significant < 256 {
                return Err(OidcError::KeySet(format!("an RSA key of {} bits is too short", significant * 8)));
            }
            Key::Rsa { n, e: decode_part("e", jwk.e.as_deref())? }
        }
        ("EC", Some("P-256")) => {
            let (x, y) = (decode_part("x", jwk.x.as_deref())?, decode_part("y", jwk.y.as_deref())?);
            if x.len() != 32 || y.len() != 32 {
                return Err(OidcError::KeySet("a P-256 key's coordinates are not 32 bytes".into()));
            }
            let mut point = vec![0x04];
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            Key::P256 { point }
        }
        ("OKP", Some("Ed25519")) => {
            let x = decode_part("x", jwk.x.as_deref())?;
            let public = <[u8; 32]>::try_from(x.as_slice())
                .map_err(|_| OidcError::KeySet("an Ed25519 key is not 32 bytes".into()))?;
            Key::Ed25519 { public }
        }
        _ => return Ok(None),
    }))
}

/// An id or algorithm name from a token, as an error may quote it: short and printable.
fn printable(text: &str) -> String {
    text.chars().filter(|character| character.is_ascii_graphic()).take(64).collect()
}

impl KeySet {
    /// Reads a JWKS document. A key cordon cannot use (a short RSA key, a malformed point) is
    /// left out, as are keys for encryption or other algorithms; the set must keep at least
    /// one, and no two keys may share an id.
    pub fn parse(json: &[u8]) -> Result<KeySet, OidcError> {
        let set: JwkSet = serde_json::from_slice(json).map_err(|error| OidcError::KeySet(error.to_string()))?;
        let mut keys = BTreeMap::new();
        let mut left_out = Vec::new();
        for jwk in set.keys {
            if jwk.usage.as_deref().is_some_and(|usage| usage != "sig") {
                continue;
            }
            let key = match key_of(&jwk) {
                Ok(Some(key)) => key,
                Ok(None) => continue,
                Err(OidcError::KeySet(why)) => {
                    left_out.push(why);
                    continue;
                }
                Err(error) => return Err(error),
            };
            if let Some(alg) = jwk.alg.as_deref()
                && alg != key.algorithm()
            {
                continue;
            }
            let kid = jwk.kid.unwrap_or_default();
            if keys.insert(kid.clone(), key).is_some() {
                return Err(OidcError::KeySet(format!("two keys share the id `{}`", printable(&kid))));
            }
        }
        if keys.is_empty() {
            let why = if left_out.is_empty() { String::new() } else { format!(" ({})", left_out.join("; ")) };
            return Err(OidcError::KeySet(format!("it holds no RS256, ES256 or EdDSA signing key{why}")));
        }
        Ok(KeySet { keys })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether the set holds the key `kid` (a token naming another is a reason to fetch the
    /// set again: the provider rotated its keys).
    pub fn has(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }
}

/// Which kind of token is expected, and what it must say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect<'a> {
    /// An ID token for this client, from the sign-in that sent this nonce.
    IdToken { client_id: &'a str, nonce: &'a str },
    /// A JWT access token for this resource (RFC 9068).
    AccessToken { audience: &'a str },
}

/// The header of a JWT, read before its signature is checked (to pick the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub alg: String,
    pub kid: String,
    pub typ: Option<String>,
}

/// Reads a token's header without checking anything else.
pub fn header(token: &str) -> Result<Header, OidcError> {
    if token.len() > TOKEN_BYTES_MAX {
        return Err(OidcError::Malformed(format!("it is over {TOKEN_BYTES_MAX} bytes")));
    }
    let encoded = token.split('.').next().unwrap_or_default();
    let bytes = BASE64URL.decode(encoded).map_err(|_| OidcError::Malformed("the header is not base64url".into()))?;
    let value: Value =
        serde_json::from_slice(&bytes).map_err(|_| OidcError::Malformed("the header is not JSON".into()))?;
    let text = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_string);
    if value.get("crit").is_some() {
        return Err(OidcError::Malformed("it names critical header extensions cordon does not know".into()));
    }
    Ok(Header {
        alg: text("alg").ok_or_else(|| OidcError::Malformed("the header has no `alg`".into()))?,
        kid: text("kid").unwrap_or_default(),
        typ: text("typ"),
    })
}

/// A provider's token, verified: its claims as the provider signed them.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub claims: serde_json::Map<String, Value>,
}

impl Verified {
    /// A claim as text (`email`, `sub`, ...), if it is text.
    pub fn text(&self, claim: &str) -> Option<&str> {
        self.claims.get(claim).and_then(Value::as_str)
    }

    /// The authentication methods (`amr`, a list of text).
    pub fn amr(&self) -> Vec<String> {
        self.claims
            .get("amr")
            .and_then(Value::as_array)
            .map(|methods| methods.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// When the token stops being valid (Unix seconds).
    pub fn expires_at(&self) -> i64 {
        self.claims.get("exp").and_then(Value::as_i64).unwrap_or(0)
    }
}

/// Verifies `token` against the provider's `keys`, from `issuer`, as `expect` says, at
/// `now` (Unix seconds).
pub fn verify(token: &str, keys: &KeySet, issuer: &str, expect: &Expect<'_>, now: i64) -> Result<Verified, OidcError> {
    let header = header(token)?;
    let mut parts = token.split('.');
    let (Some(encoded_header), Some(encoded_claims), Some(encoded_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(OidcError::Malformed("it does not have exactly three parts".into()));
    };
    if !matches!(header.alg.as_str(), "RS256" | "ES256" | "EdDSA") {
        return Err(OidcError::Algorithm(printable(&header.alg)));
    }
    let key = keys.keys.get(&header.kid).ok_or_else(|| OidcError::UnknownKey(printable(&header.kid)))?;
    if key.algorithm() != header.alg {
        return Err(OidcError::Algorithm(printable(&header.alg)));
    }
    let signature = BASE64URL
        .decode(encoded_signature)
        .map_err(|_| OidcError::Malformed("the signature is not base64url".into()))?;
    let signed = token.get(..encoded_header.len() + 1 + encoded_claims.len()).unwrap_or_default().as_bytes();
    let verified = match key {
        Key::Rsa { n, e } => ring::signature::RsaPublicKeyComponents { n: n.as_slice(), e: e.as_slice() }
            .verify(&ring::signature::RSA_PKCS1_2048_8192_SHA256, signed, &signature)
            .is_ok(),
        Key::P256 { point } => {
            ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(signed, &signature)
                .is_ok()
        }
        Key::Ed25519 { public } => ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public)
            .verify(signed, &signature)
            .is_ok(),
    };
    if !verified {
        return Err(OidcError::Signature(printable(&header.kid)));
    }
    let bytes =
        BASE64URL.decode(encoded_claims).map_err(|_| OidcError::Malformed("the claims are not base64url".into()))?;
    let claims: serde_json::Map<String, Value> =
        serde_json::from_slice(&bytes).map_err(|_| OidcError::Malformed("the claims are not a JSON object".into()))?;
    let token = Verified { claims };
    check_claims(&token, &header, issuer, expect, now)?;
    Ok(token)
}

fn check_claims(
    token: &Verified,
    header: &Header,
    issuer: &str,
    expect: &Expect<'_>,
    now: i64,
) -> Result<(), OidcError> {
    let wrong = |claim: &'static str, why: String| OidcError::Claim { claim, why };
    if token.text("iss") != Some(issuer) {
        return Err(wrong("iss", format!("it must be `{issuer}`")));
    }
    let audiences: Vec<&str> = match token.claims.get("aud") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let number = |claim: &'static str| token.claims.get(claim).and_then(Value::as_i64);
    let expires = number("exp").ok_or_else(|| wrong("exp", "it is missing".into()))?;
    if expires.saturating_add(LEEWAY_SECONDS) <= now {
        return Err(wrong("exp", "the token has expired".into()));
    }
    if let Some(not_before) = number("nbf")
        && not_before.saturating_sub(LEEWAY_SECONDS) > now
    {
        return Err(wrong("nbf", "the token is not valid yet".into()));
    }
    let issued = number("iat").ok_or_else(|| wrong("iat", "it is missing".into()))?;
    if issued.saturating_sub(LEEWAY_SECONDS) > now {
        return Err(wrong("iat", "the token was issued in the future".into()));
    }
    if token.text("sub").is_none_or(str::is_empty) {
        return Err(wrong("sub", "it is missing".into()));
    }
    match expect {
        Expect::IdToken { client_id, nonce } => {
            if header.typ.as_deref().is_some_and(|typ| typ.to_ascii_lowercase().ends_with("at+jwt")) {
                return Err(OidcError::Malformed("an access token is not an ID token".into()));
            }
            if !audiences.contains(client_id) {
                return Err(wrong("aud", format!("it must name this client, `{client_id}`")));
            }
            if audiences.len() > 1 && token.text("azp") != Some(client_id) {
                return Err(wrong(
                    "azp",
                    format!("a token for several audiences must be authorized for `{client_id}`"),
                ));
            }
            if token.text("nonce") != Some(nonce) {
                return Err(wrong("nonce", "it is not this sign-in's".into()));
            }
        }
        Expect::AccessToken { audience } => {
            let typ = header.typ.as_deref().unwrap_or_default().to_ascii_lowercase();
            if typ != "at+jwt" && typ != "application/at+jwt" {
                return Err(OidcError::Malformed("an access token's `typ` must be `at+jwt` (RFC 9068)".into()));
            }
            if !audiences.contains(audience) {
                return Err(wrong("aud", format!("it must name this API, `{audience}`")));
            }
        }
    }
    Ok(())
}
