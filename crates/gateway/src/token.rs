//! Bearer tokens: JSON Web Tokens signed with HMAC-SHA256 (RFC 7519, `alg: HS256`), with
//! the subject, role, issue and expiry times in their claims.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use hmac::{Hmac, KeyInit as _, Mac as _};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// What a token may do in general; policies decide each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenRole {
    Agent,
    Analyst,
    Admin,
    Service,
    /// A customer's own token (subject `customer:<id>`): it reads that customer's access
    /// history and receipts and nothing else; every staff door refuses it.
    Customer,
}

impl TokenRole {
    /// The subject of this role's shared identity (`role:analyst`).
    pub fn identity(self) -> String {
        format!("{}{}", cordon_directory::ROLE_ID_PREFIX, self.name())
    }

    pub fn name(self) -> &'static str {
        match self {
            TokenRole::Agent => "agent",
            TokenRole::Analyst => "analyst",
            TokenRole::Admin => "admin",
            TokenRole::Service => "service",
            TokenRole::Customer => "customer",
        }
    }

    /// The role named `name` as sessions store it (every role, the customer's included).
    pub fn from_name(name: &str) -> Option<TokenRole> {
        [TokenRole::Agent, TokenRole::Analyst, TokenRole::Admin, TokenRole::Service, TokenRole::Customer]
            .into_iter()
            .find(|role| role.name() == name)
    }
}

impl From<cordon_directory::Role> for TokenRole {
    fn from(role: cordon_directory::Role) -> TokenRole {
        match role {
            cordon_directory::Role::Agent => TokenRole::Agent,
            cordon_directory::Role::Analyst => TokenRole::Analyst,
            cordon_directory::Role::Admin => TokenRole::Admin,
        }
    }
}

impl std::str::FromStr for TokenRole {
    type Err = String;

    fn from_str(text: &str) -> Result<TokenRole, String> {
        match text {
            "agent" => Ok(TokenRole::Agent),
            "analyst" => Ok(TokenRole::Analyst),
            "admin" => Ok(TokenRole::Admin),
            "service" => Ok(TokenRole::Service),
            // A customer's token names its customer: `cordon token issue --customer ID`.
            other => Err(format!("`{other}` is not a role: use admin, analyst or service")),
        }
    }
}

/// The longest a person's token (an agent's, an analyst's, an administrator's, a
/// customer's) may live, whatever the configuration says.
pub const TOKEN_LIFETIME_SECONDS_MAX: i64 = 30 * 86_400;
/// The longest a service's token (metrics scraping, the customer-facing app) may live: a
/// machine should not need a new token every few hours; it is revocable like any other.
pub const SERVICE_TOKEN_LIFETIME_SECONDS_MAX: i64 = 366 * 86_400;
/// The longest any token may live: how long a revocation must be remembered.
pub const ANY_TOKEN_LIFETIME_SECONDS_MAX: i64 = SERVICE_TOKEN_LIFETIME_SECONDS_MAX;

/// The longest a token of `role` may live.
pub fn lifetime_max(role: TokenRole) -> i64 {
    if role == TokenRole::Service { SERVICE_TOKEN_LIFETIME_SECONDS_MAX } else { TOKEN_LIFETIME_SECONDS_MAX }
}

/// How far a token's issue time may be ahead of this clock (clocks drift between hosts).
const CLOCK_SKEW_SECONDS: i64 = 60;

/// Signs a token for `subject` with `role`, valid from `now` for `lifetime_seconds`.
pub fn issue(
    key: &TokenKey,
    subject: &str,
    role: TokenRole,
    now: i64,
    lifetime_seconds: i64,
) -> Result<String, crate::error::GatewayError> {
    let max = lifetime_max(role);
    if !(1..=max).contains(&lifetime_seconds) {
        return Err(crate::error::GatewayError::BadRequest(format!(
            "a {} token lifetime of {lifetime_seconds} s is outside 1 to {max} s",
            role.name()
        )));
    }
    key.issue(&Claims {
        sub: subject.to_string(),
        role,
        iat: now,
        nbf: Some(now),
        exp: now + lifetime_seconds,
        jti: crate::service::random_id()?,
        session: None,
        sign_in: SignIn::default(),
    })
    .map_err(|error| crate::error::GatewayError::Internal(error.to_string()))
}

/// Who is calling, from a verified token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: TokenRole,
    pub iat: i64,
    /// Not before (Unix seconds); tokens issued before it was written have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub exp: i64,
    /// The token's id: what revocation names.
    pub jti: String,
    /// The console session these claims came through (its code), set by the gateway when a
    /// session cookie is presented; never part of a token.
    #[serde(skip)]
    pub session: Option<String>,
    /// How the person signed in at the exchange's identity provider (`amr`, `acr`), when
    /// these claims came from its token; empty for cordon's own tokens.
    #[serde(skip)]
    pub sign_in: SignIn,
}

/// How a person signed in at the identity provider, as its token says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignIn {
    pub amr: Vec<String>,
    pub acr: Option<String>,
    /// When the person signed in (Unix seconds), as the provider says (`auth_time`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
}

impl SignIn {
    /// As a console session's row keeps it: JSON, or empty for none.
    pub fn to_stored(&self) -> String {
        if *self == SignIn::default() { String::new() } else { serde_json::to_string(self).unwrap_or_default() }
    }

    /// What [`SignIn::to_stored`] kept; anything else reads as no sign-in at the provider.
    pub fn from_stored(stored: &str) -> SignIn {
        serde_json::from_str(stored).unwrap_or_default()
    }

    /// For a `session.start` entry: ` amr pwd,otp acr <level>`, or nothing.
    pub fn describe(&self) -> String {
        if *self == SignIn::default() {
            return String::new();
        }
        let clean =
            |text: &str| text.chars().filter(|character| character.is_ascii_graphic()).take(64).collect::<String>();
        let amr: Vec<String> = self.amr.iter().take(8).map(|method| clean(method)).collect();
        format!(
            " amr {} acr {}",
            if amr.is_empty() { "-".into() } else { amr.join(",") },
            self.acr.as_deref().map_or("-".into(), clean)
        )
    }
}

impl Claims {
    /// The claims of an in-process caller that needs no token (the command line, the
    /// simulator, tests): `sub` acting as `role`, labelled `label` in place of a token id.
    pub fn in_process(sub: String, role: TokenRole, label: &str) -> Claims {
        Claims {
            sub,
            role,
            iat: 0,
            nbf: None,
            exp: i64::MAX,
            jti: label.to_string(),
            session: None,
            sign_in: SignIn::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token expired")]
    Expired,
    #[error("the token is not valid yet (issued or valid from a time ahead of this clock)")]
    NotYetValid,
    #[error("the token claims to live {seconds} s, longer than a token of its role may ({max} s)")]
    TooLong { seconds: i64, max: i64 },
    #[error("the token was revoked")]
    Revoked,
    #[error("a token key must be at least 32 bytes, not {0}")]
    ShortKey(usize),
    #[error("the token's claims cannot be encoded: {0}")]
    Encoding(String),
}

pub struct TokenKey {
    /// HMAC-SHA256 keyed once; each use clones it.
    mac: Hmac<Sha256>,
    /// The key before the last rotation, still accepted (never used to sign) so tokens issued
    /// under it live out their time; none after a rotation that revoked them.
    previous: Option<Hmac<Sha256>>,
}

/// An HMAC-SHA256 key of at least 32 bytes.
fn keyed(key: &[u8]) -> Result<Hmac<Sha256>, TokenError> {
    if key.len() < 32 {
        return Err(TokenError::ShortKey(key.len()));
    }
    Hmac::<Sha256>::new_from_slice(key).map_err(|_| TokenError::ShortKey(key.len()))
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    /// A key of at least 32 bytes; a shorter one is refused, never padded or replaced.
    pub fn new(key: &[u8]) -> Result<TokenKey, TokenError> {
        Ok(TokenKey { mac: keyed(key)?, previous: None })
    }

    /// This key, also accepting tokens signed with `previous` (the key before a rotation).
    pub fn with_previous(mut self, previous: &[u8]) -> Result<TokenKey, TokenError> {
        self.previous = Some(keyed(previous)?);
        Ok(self)
    }

    fn mac(&self) -> Hmac<Sha256> {
        self.mac.clone()
    }

    pub fn issue(&self, claims: &Claims) -> Result<String, TokenError> {
        let payload = serde_json::to_vec(claims).map_err(|error| TokenError::Encoding(error.to_string()))?;
        let signing_input = format!("{}.{}", BASE64URL.encode(HEADER), BASE64URL.encode(payload));
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        Ok(format!("{signing_input}.{}", BASE64URL.encode(mac.finalize().into_bytes())))
    }

    /// Checks the signature (in constant time), then the times at `now` (Unix seconds):
    /// expired, issued or valid only in the future (beyond a minute of clock skew), or
    /// living longer than any token may. Revocation is the gateway's check, not the key's.
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let mut parts = token.trim().split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header_bytes = BASE64URL.decode(header).map_err(|_| TokenError::Malformed)?;
        let header_json: serde_json::Value =
            serde_json::from_slice(&header_bytes).map_err(|_| TokenError::Malformed)?;
        if header_json.get("alg").and_then(serde_json::Value::as_str) != Some("HS256") {
            return Err(TokenError::Malformed);
        }
        let signature = BASE64URL.decode(signature).map_err(|_| TokenError::Malformed)?;
        let signed_by = |key: &Hmac<Sha256>| {
            let mut mac = key.clone();
            mac.update(format!("{header}.{payload}").as_bytes());
            mac.verify_slice(&signature).is_ok()
        };
        if !signed_by(&self.mac) && !self.previous.as_ref().is_some_and(signed_by) {
            return Err(TokenError::BadSignature);
        }
        let payload = BASE64URL.decode(payload).map_err(|_| TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        if claims.iat > now + CLOCK_SKEW_SECONDS || claims.nbf.is_some_and(|nbf| nbf > now + CLOCK_SKEW_SECONDS) {
            return Err(TokenError::NotYetValid);
        }
        let max = lifetime_max(claims.role);
        if claims.exp - claims.iat > max {
            return Err(TokenError::TooLong { seconds: claims.exp - claims.iat, max });
        }
        Ok(claims)
    }
}
