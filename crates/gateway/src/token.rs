//! Bearer tokens: JSON Web Tokens signed with HMAC-SHA256 (RFC 7519, `alg: HS256`), with
//! the subject, role, issue and expiry times in their claims.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use hmac::{Hmac, KeyInit as _, Mac as _};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// What a token may do in general; policies decide each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenRole {
    Agent,
    Analyst,
    Admin,
    Service,
}

impl TokenRole {
    pub fn name(self) -> &'static str {
        match self {
            TokenRole::Agent => "agent",
            TokenRole::Analyst => "analyst",
            TokenRole::Admin => "admin",
            TokenRole::Service => "service",
        }
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
            other => Err(format!("`{other}` is not a role: use admin, analyst or service")),
        }
    }
}

/// Signs a token for `subject` with `role`, valid from `now` for `lifetime_seconds`.
pub fn issue(
    key: &TokenKey,
    subject: &str,
    role: TokenRole,
    now: i64,
    lifetime_seconds: i64,
) -> Result<String, crate::error::GatewayError> {
    Ok(key.issue(&Claims {
        sub: subject.to_string(),
        role,
        iat: now,
        exp: now + lifetime_seconds,
        jti: crate::service::random_id()?,
    }))
}

/// Who is calling, from a verified token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: TokenRole,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token expired")]
    Expired,
}

pub struct TokenKey {
    key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    pub fn new(key: &[u8]) -> TokenKey {
        TokenKey { key: Zeroizing::new(key.to_vec()) }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length, so this cannot fail.
        Hmac::<Sha256>::new_from_slice(&self.key).unwrap_or_else(|_| Hmac::<Sha256>::new(&Default::default()))
    }

    pub fn issue(&self, claims: &Claims) -> String {
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let signing_input = format!("{}.{}", BASE64URL.encode(HEADER), BASE64URL.encode(payload));
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        format!("{signing_input}.{}", BASE64URL.encode(mac.finalize().into_bytes()))
    }

    /// Checks the signature (in constant time) and expiry at `now` (Unix seconds).
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
        let mut mac = self.mac();
        mac.update(format!("{header}.{payload}").as_bytes());
        mac.verify_slice(&signature).map_err(|_| TokenError::BadSignature)?;
        let payload = BASE64URL.decode(payload).map_err(|_| TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}
