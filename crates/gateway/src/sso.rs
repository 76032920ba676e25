//! Single sign-on: the exchange's OpenID provider's access tokens as the API's bearer tokens.
//! The server fetches the provider's key set (and again when a token names a key the set
//! lacks); a token checked against it (`oidc.rs`) names a directory agent by a claim, and the
//! agent's role and status are the directory's, as for cordon's own tokens. How the person
//! signed in (`amr`, `acr`) comes along, and a reveal can require it.

use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use cordon_policy::Decision;
use zeroize::Zeroizing;

use crate::config::OidcSettings;
use crate::error::GatewayError;
use crate::oidc::{Expect, KeySet, OidcError};
use crate::service::Gateway;
use crate::token::{Claims, SignIn, TokenRole};

/// The policy id a reveal refused for its sign-in is recorded under.
pub const SIGN_IN_POLICY: &str = "cordon:sign-in-strength";

/// The provider as the gateway knows it: its settings and its keys as last fetched.
pub(crate) struct Sso {
    pub(crate) settings: OidcSettings,
    /// The console client's secret, for the token endpoint.
    client_secret: Option<Zeroizing<String>>,
    keys: RwLock<Option<KeySet>>,
    /// Set when a token named a key the set lacks: the server fetches the set again.
    stale: AtomicBool,
}

impl std::fmt::Debug for Sso {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sso({})", self.settings.issuer)
    }
}

impl Sso {
    /// `token` checked against the keys as last fetched; a token naming a key the set lacks
    /// has the server fetch the set again.
    fn verify(&self, token: &str, expect: &Expect<'_>, now: i64) -> Result<crate::oidc::Verified, GatewayError> {
        let keys = self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(keys) = keys.as_ref() else {
            return Err(unauthenticated("the provider's keys have not been fetched yet; try again shortly"));
        };
        crate::oidc::verify(token, keys, &self.settings.issuer, expect, now).map_err(|error| {
            if let OidcError::UnknownKey(kid) = &error {
                self.stale.store(true, Ordering::Release);
                return unauthenticated(format!(
                    "it names a key (`{kid}`) the provider's key set does not hold; the set is being fetched again"
                ));
            }
            unauthenticated(error)
        })
    }

    pub(crate) fn new(settings: OidcSettings, client_secret: Option<Zeroizing<String>>) -> Sso {
        Sso { settings, client_secret, keys: RwLock::new(None), stale: AtomicBool::new(false) }
    }
}

/// The console's client at the provider, for its sign-in.
#[derive(Clone)]
pub struct ConsoleClient {
    pub client_id: String,
    pub client_secret: Zeroizing<String>,
    pub redirect_url: String,
    /// The API, as the `resource` the console's access token is asked for.
    pub audience: String,
    /// `[oidc] require_acr`, asked of the provider as `acr_values`.
    pub acr_values: String,
}

impl std::fmt::Debug for ConsoleClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConsoleClient({})", self.client_id)
    }
}

fn unauthenticated(why: impl std::fmt::Display) -> GatewayError {
    GatewayError::Unauthenticated(format!("the identity provider's token: {why}"))
}

impl Gateway {
    /// The single sign-on settings, for the server that fetches the provider's keys; none
    /// without `[oidc]`.
    pub fn oidc_settings(&self) -> Option<&OidcSettings> {
        self.sso.as_ref().map(|sso| &sso.settings)
    }

    /// The console's client at the provider, when `[oidc]` configures the console's sign-in.
    pub fn oidc_console_client(&self) -> Option<ConsoleClient> {
        let sso = self.sso.as_ref()?;
        Some(ConsoleClient {
            client_id: sso.settings.client_id.clone(),
            client_secret: sso.client_secret.clone()?,
            redirect_url: sso.settings.redirect_url.clone(),
            audience: sso.settings.audience.clone(),
            acr_values: sso.settings.require_acr.split_whitespace().collect::<Vec<_>>().join(" "),
        })
    }

    /// Checks the ID token of a console sign-in: the provider's, for the console's client,
    /// with that sign-in's `nonce`. Returns its subject.
    pub fn check_id_token(&self, token: &str, nonce: &str) -> Result<String, GatewayError> {
        let Some(sso) = &self.sso else { return Err(unauthenticated("single sign-on is not configured")) };
        let expect = Expect::IdToken { client_id: &sso.settings.client_id, nonce };
        let verified = sso.verify(token, &expect, self.clock.now_seconds())?;
        Ok(verified.text("sub").unwrap_or_default().to_string())
    }

    /// Puts the provider's key set, as the server fetched it, in force.
    pub fn set_provider_keys(&self, keys: KeySet) {
        if let Some(sso) = &self.sso {
            *sso.keys.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(keys);
        }
    }

    /// Whether a token has named a key the set lacks since this was last asked.
    pub fn provider_keys_wanted(&self) -> bool {
        self.sso.as_ref().is_some_and(|sso| sso.stale.swap(false, Ordering::AcqRel))
    }

    /// Whether `token` is one for the provider to vouch for (signed with a public key), rather
    /// than one of cordon's own (HS256).
    pub(crate) fn is_provider_token(&self, token: &str) -> bool {
        self.sso.is_some() && crate::oidc::header(token).is_ok_and(|header| header.alg != "HS256")
    }

    /// A provider's access token as the claims of the directory agent it names.
    pub(crate) fn authenticate_provider_token(&self, token: &str) -> Result<Claims, GatewayError> {
        let Some(sso) = &self.sso else { return Err(unauthenticated("single sign-on is not configured")) };
        let settings = &sso.settings;
        let now = self.clock.now_seconds();
        let verified = sso.verify(token, &Expect::AccessToken { audience: &settings.audience }, now)?;
        let issued = verified.claims.get("iat").and_then(serde_json::Value::as_i64).unwrap_or(now);
        if verified.expires_at().saturating_sub(issued) > crate::token::TOKEN_LIFETIME_SECONDS_MAX {
            return Err(unauthenticated(format!(
                "it lives longer than a person's token may ({} s)",
                crate::token::TOKEN_LIFETIME_SECONDS_MAX
            )));
        }
        // Revocation names a token by its id (RFC 9068 requires one).
        let jti = verified
            .text("jti")
            .filter(|jti| cordon_directory::check_id("token", jti).is_ok())
            .ok_or_else(|| unauthenticated("it has no usable `jti`, by which it could be revoked"))?
            .to_string();
        // A person's token: not a machine's own (client credentials name the client as subject),
        // and from a client the API takes tokens of.
        let client = verified.text("client_id").or_else(|| verified.text("azp")).unwrap_or_default();
        if !client.is_empty() && verified.text("sub") == Some(client) {
            return Err(unauthenticated("it is a client's own token, with no person behind it"));
        }
        let clients: Vec<&str> = settings.clients.split_whitespace().collect();
        if !clients.is_empty() && !clients.contains(&client) {
            return Err(unauthenticated("it was issued to a client `[oidc] clients` does not name"));
        }
        let claim = settings.agent_claim.as_str();
        let named = verified
            .text(claim)
            .filter(|value| !value.is_empty())
            .ok_or_else(|| unauthenticated(format!("it has no `{claim}`, which names the agent")))?;
        let agent_id = if claim == "sub" {
            named.to_string()
        } else {
            // An address a person can edit at the provider names nobody until it vouches for
            // it; and only plain ASCII is compared (no case folding that maps another script's
            // letters onto an agent's address).
            if verified.claims.get("email_verified").and_then(serde_json::Value::as_bool) != Some(true) {
                return Err(unauthenticated("its `email` is not marked verified (`email_verified`)"));
            }
            if !named.bytes().all(|byte| byte.is_ascii_graphic()) {
                return Err(unauthenticated("its `email` is not plain ASCII"));
            }
            self.store
                .agent_by_email(&named.to_ascii_lowercase())?
                .ok_or_else(|| unauthenticated("no directory agent has the email it names"))?
        };
        cordon_directory::check_agent_id(&agent_id).map_err(|error| unauthenticated(error.to_string()))?;
        let agent =
            self.agent(&agent_id)?.ok_or_else(|| unauthenticated("the agent it names is not in the directory"))?;
        Ok(Claims {
            sub: agent.id,
            role: TokenRole::from(agent.role),
            iat: issued,
            nbf: verified.claims.get("nbf").and_then(serde_json::Value::as_i64),
            exp: verified.expires_at(),
            jti,
            session: None,
            sign_in: SignIn {
                amr: verified.amr(),
                acr: verified.text("acr").map(str::to_string),
                auth_time: verified.claims.get("auth_time").and_then(serde_json::Value::as_i64),
            },
        })
    }

    /// A reveal the policy allowed, refused if `[oidc]` requires a stronger sign-in than the
    /// caller's (`require_amr`, `require_acr`): MFA is the identity provider's, and a token
    /// that does not show it (cordon's own tokens show none) reveals nothing.
    pub(crate) fn require_sign_in(&self, who: &Claims, decision: Decision) -> Decision {
        let Some(sso) = &self.sso else { return decision };
        if !decision.allowed {
            return decision;
        }
        let settings = &sso.settings;
        let missing: Vec<&str> = settings
            .require_amr
            .split_whitespace()
            .filter(|method| !who.sign_in.amr.iter().any(|used| used == method))
            .collect();
        let levels: Vec<&str> = settings.require_acr.split_whitespace().collect();
        let level_ok = levels.is_empty() || who.sign_in.acr.as_deref().is_some_and(|acr| levels.contains(&acr));
        let max_age = settings.max_auth_age_seconds;
        let now = self.clock.now_seconds();
        let recent = max_age == 0
            || who
                .sign_in
                .auth_time
                .is_some_and(|at| at <= now + crate::oidc::LEEWAY_SECONDS && now.saturating_sub(at) <= max_age);
        if missing.is_empty() && level_ok && recent {
            return decision;
        }
        let mut needs = Vec::new();
        if !settings.require_amr.trim().is_empty() {
            needs.push(format!(
                "the methods {}",
                settings.require_amr.split_whitespace().collect::<Vec<_>>().join(" and ")
            ));
        }
        if !levels.is_empty() {
            needs.push(format!("a level of {}", levels.join(" or ")));
        }
        if max_age > 0 {
            needs.push(format!("a sign-in within the last {max_age} s"));
        }
        Decision {
            allowed: false,
            policies: vec![SIGN_IN_POLICY.to_string()],
            reason: format!(
                "a reveal needs a sign-in at the exchange's identity provider with {}; this token shows methods [{}], \
                 level {} and a sign-in {}",
                needs.join(" and "),
                who.sign_in.amr.join(" "),
                who.sign_in.acr.as_deref().unwrap_or("none"),
                who.sign_in
                    .auth_time
                    .map_or("at an unknown time".to_string(), |at| format!("{} s ago", now.saturating_sub(at)))
            ),
            errors: Vec::new(),
        }
    }
}
