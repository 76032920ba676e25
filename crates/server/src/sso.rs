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
const ANSWER_BYTES_MAX: usize = 1 << 20;

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
                Ok(keys) => {
                    tracing::info!(keys = keys.len(), issuer = %settings.issuer, "the identity provider's keys are fetched");
                    state.gateway.set_provider_keys(keys);
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

/// The provider's key set, through its discovery document.
async fn fetch(settings: &OidcSettings, outbound: &Outbound) -> Result<KeySet, String> {
    let discovery_url = format!("{}/.well-known/openid-configuration", settings.issuer.trim_end_matches('/'));
    let discovery: Value = serde_json::from_slice(&get(&discovery_url, outbound).await?)
        .map_err(|error| format!("`{discovery_url}` is not JSON: {error}"))?;
    if discovery.get("issuer").and_then(Value::as_str) != Some(settings.issuer.as_str()) {
        return Err(format!("`{discovery_url}` names another issuer than `{}`", settings.issuer));
    }
    let jwks_uri = discovery
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("`{discovery_url}` names no `jwks_uri`"))?;
    // The keys decide whose tokens are taken: fetched over TLS, or from the issuer's own
    // loopback address when the issuer itself is plain HTTP on this host (for trying it out).
    let origin = |url: &str| url.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
    if !(jwks_uri.starts_with("https://")
        || (settings.issuer.starts_with("http://") && origin(jwks_uri) == origin(&settings.issuer)))
    {
        return Err(format!("`{discovery_url}` names `{jwks_uri}` for its keys, which is not https://"));
    }
    KeySet::parse(&get(jwks_uri, outbound).await?).map_err(|error| format!("`{jwks_uri}`: {error}"))
}

async fn get(url: &str, outbound: &Outbound) -> Result<Vec<u8>, String> {
    let endpoint = crate::client::Endpoint::parse(url)?;
    let request = hyper::Request::get(endpoint.path.as_str())
        .header(hyper::header::HOST, endpoint.authority())
        .header("user-agent", "cordon")
        .body(Full::new(Bytes::new()))
        .map_err(|error| error.to_string())?;
    let answer = tokio::time::timeout(Duration::from_secs(10), crate::client::send(&endpoint, outbound.tls(), request))
        .await
        .map_err(|_| format!("`{url}` did not answer within 10 s"))??;
    if !answer.status.is_success() {
        return Err(format!("`{url}` answered {}", answer.status));
    }
    if answer.body.len() > ANSWER_BYTES_MAX {
        return Err(format!(
            "`{url}` answered {} bytes; a discovery document or key set is under {ANSWER_BYTES_MAX}",
            answer.body.len()
        ));
    }
    Ok(answer.body)
}
