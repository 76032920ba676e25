//! Fetches the exchange's OpenID provider's keys for the gateway (docs/DEPLOY.md): its
//! discovery document (whose `issuer` must be the one `[oidc]` names) and its key set at
//! start, again every `keys_refresh_seconds`, and at once (at most every 30 s) when a token
//! named a key the set lacked, as after the provider rotated its keys. Until the first fetch
//! succeeds the provider's tokens are refused (cordon's own still work); it is retried every
//! 5 s. The provider is trusted as the webhooks' receivers are: the web's roots and
//! `[webhooks] ca_file`.

use std::sync::Weak;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use serde_json::Value;

use cordon_gateway::OidcSettings;
use cordon_gateway::oidc::KeySet;

use crate::routes::AppState;
use crate::webhook::Outbound;

const RETRY: Duration = Duration::from_secs(5);
const REFETCH_AT_MOST_EVERY: Duration = Duration::from_secs(30);
/// The largest answer the provider may give (a discovery document, a key set, tokens).
pub(crate) const ANSWER_BYTES_MAX: usize = 1 << 20;

pub(crate) async fn run(state: Weak<AppState>) {
    let mut last_success: Option<Instant> = None;
    let mut next_fetch = Instant::now();
    loop {
        let Some(state) = state.upgrade() else { return };
        let Some(settings) = state.gateway.oidc_settings().cloned() else { return };
        let refresh = Duration::from_secs(settings.keys_refresh_seconds.max(30).unsigned_abs());
        let wanted = last_success.is_some_and(|at| at.elapsed() >= REFETCH_AT_MOST_EVERY)
            && state.gateway.provider_keys_wanted();
        if Instant::now() >= next_fetch || wanted {
            match fetch(&settings, &state.outbound).await {
                Ok((keys, endpoints)) => {
                    tracing::info!(keys = keys.len(), issuer = %settings.issuer, "the identity provider's keys are fetched");
                    state.gateway.set_provider_keys(keys);
                    *state.provider.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(endpoints);
                    last_success = Some(Instant::now());
                    next_fetch = Instant::now() + refresh;
                }
                Err(error) => {
                    tracing::error!(%error, issuer = %settings.issuer, "the identity provider's keys could not be fetched");
                    next_fetch = Instant::now() + RETRY;
                }
            }
        }
        drop(state);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Where the console sends a browser to sign in, and where it trades the code for tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProviderEndpoints {
    pub(crate) authorization: String,
    pub(crate) token: String,
}

/// A console sign-in under way (kept in the store: `Gateway::begin_sign_in`): what its
/// callback must match.
#[derive(Debug, Clone)]
pub(crate) struct PendingSignIn {
    pub(crate) nonce: String,
    pub(crate) verifier: String,
}

/// How long a browser has from the console's sign-in link to its callback.
pub(crate) const SIGN_IN_LIFETIME: Duration = Duration::from_secs(600);
/// Sign-ins under way at once, at most: beyond it a new one is refused until some expire.
pub(crate) const SIGN_INS_MAX: usize = 10_000;

/// Whether `url` may carry what the provider's keys or tokens decide: https, or the issuer's
/// own origin when the issuer is plain HTTP on this host.
fn trusted(url: &str, issuer: &str) -> bool {
    let origin = |url: &str| url.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
    url.starts_with("https://") || (issuer.starts_with("http://") && origin(url) == origin(issuer))
}

/// The provider's key set and endpoints, through its discovery document.
async fn fetch(settings: &OidcSettings, outbound: &Outbound) -> Result<(KeySet, ProviderEndpoints), String> {
    let discovery_url = format!("{}/.well-known/openid-configuration", settings.issuer.trim_end_matches('/'));
    let discovery: Value = serde_json::from_slice(&get(&discovery_url, outbound).await?)
        .map_err(|error| format!("`{discovery_url}` is not JSON: {error}"))?;
    if discovery.get("issuer").and_then(Value::as_str) != Some(settings.issuer.as_str()) {
        return Err(format!("`{discovery_url}` names another issuer than `{}`", settings.issuer));
    }
    // The keys decide whose tokens are taken, the endpoints where codes and secrets go:
    // over TLS, or the issuer's own loopback address when it is plain HTTP on this host.
    let endpoint = |name: &str| -> Result<String, String> {
        let url = discovery
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("`{discovery_url}` names no `{name}`"))?;
        if !trusted(url, &settings.issuer) {
            return Err(format!("`{discovery_url}` names `{url}` as its `{name}`, which is not https://"));
        }
        Ok(url.to_string())
    };
    let jwks_uri = endpoint("jwks_uri")?;
    let endpoints =
        ProviderEndpoints { authorization: endpoint("authorization_endpoint")?, token: endpoint("token_endpoint")? };
    let keys = KeySet::parse(&get(&jwks_uri, outbound).await?).map_err(|error| format!("`{jwks_uri}`: {error}"))?;
    Ok((keys, endpoints))
}

pub(crate) async fn get(url: &str, outbound: &Outbound) -> Result<Vec<u8>, String> {
    let endpoint = crate::client::Endpoint::parse(url)?;
    let request = hyper::Request::get(endpoint.path.as_str())
        .header(hyper::header::HOST, endpoint.authority())
        .header("user-agent", "cordon")
        .body(Full::new(Bytes::new()))
        .map_err(|error| error.to_string())?;
    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        crate::client::send_limited(&endpoint, outbound.tls(), request, ANSWER_BYTES_MAX),
    )
    .await
    .map_err(|_| format!("`{url}` did not answer within 10 s"))??;
    if !answer.status.is_success() {
        return Err(format!("`{url}` answered {}", answer.status));
    }
    Ok(answer.body)
}
