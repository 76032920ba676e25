//! Delivers the outbox to the configured webhooks (alerts to detection's, protective actions
//! to the exchange's account-protection one): JSON bodies POSTed in the order they were
//! queued, each retried with exponential backoff until the receiver answers 2xx. The queue
//! is the store's outbox, written in the same transaction as the alert, so a restart picks
//! up where delivery stopped; a receiver may see a message twice, never zero times.
//!
//! Each delivery carries its outbox id (`X-Cordon-Delivery`) and is signed under its topic's
//! own secret (`X-Cordon-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<id>.<body>">`,
//! see `Gateway::webhook_signature`), so a receiver can refuse a forged, altered or replayed
//! message, drop a repeat, and no receiver can sign for the other topic. An https receiver is reached over TLS, trusting the web's roots and the
//! operator's `[webhooks] ca_file`.

use std::sync::{Arc, Weak};
use std::time::Duration;

use cordon_gateway::Gateway;
use http_body_util::Full;
use hyper::body::Bytes;
use rustls::ClientConfig;

use crate::routes::AppState;

/// Messages tried per pass.
const BATCH_MAX: usize = 100;
/// How long one delivery may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a claimed batch is this gateway's to deliver: longer than a batch of attempts
/// takes, so no other gateway sharing the store delivers it too.
const CLAIM_LEASE: Duration = Duration::from_secs(BATCH_MAX as u64 * 10 + 60);
const BACKOFF_FIRST_MS: i64 = 1_000;
const BACKOFF_MAX_MS: i64 = 300_000;
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    pub delivered: u64,
    pub failed: u64,
}

/// The wait before attempt `attempts + 1`.
pub fn backoff_ms(attempts: u32) -> i64 {
    BACKOFF_FIRST_MS.saturating_mul(1i64 << attempts.min(20)).min(BACKOFF_MAX_MS)
}

/// What the outbox carries: detection's alerts and incident response's protective actions,
/// each to its own webhook.
const TOPICS: [&str; 2] = ["alert", "protect"];

/// Whether any topic has a webhook to deliver to (else no delivery loop runs).
pub(crate) fn has_receivers(gateway: &Gateway) -> bool {
    TOPICS.iter().any(|topic| gateway.webhook_url_for(topic).is_some())
}

/// How the webhooks reach their receivers: the TLS trust for https ones.
#[derive(Debug, Clone)]
pub struct Outbound {
    tls: Option<Arc<ClientConfig>>,
    /// Why there is no TLS trust, if building it failed (an https delivery then fails with it).
    problem: Option<String>,
}

impl Outbound {
    /// The TLS trust for https destinations, if it could be built.
    pub(crate) fn tls(&self) -> Option<&Arc<ClientConfig>> {
        self.tls.as_ref()
    }

    /// Trusting the web's roots and, if given, the authorities in `extra_ca` (PEM).
    pub fn new(extra_ca: Option<&std::path::Path>) -> Result<Outbound, String> {
        Ok(Outbound { tls: Some(crate::tls::client_config(extra_ca)?), problem: None })
    }

    /// The web's roots only; should even that fail, https deliveries fail with the reason.
    pub fn web() -> Outbound {
        Outbound::new(None).unwrap_or_else(|problem| Outbound { tls: None, problem: Some(problem) })
    }
}

/// Tries every message due at `now_ms` once, topic by topic.
pub async fn deliver_due(gateway: &Gateway, outbound: &Outbound, now_ms: i64) -> Result<Delivery, String> {
    let mut delivery = Delivery::default();
    for topic in TOPICS {
        let Some(url) = gateway.webhook_url_for(topic) else { continue };
        let done = deliver_topic(gateway, outbound, topic, url, now_ms).await?;
        delivery.delivered += done.delivered;
        delivery.failed += done.failed;
    }
    Ok(delivery)
}

async fn deliver_topic(
    gateway: &Gateway,
    outbound: &Outbound,
    topic: &str,
    url: &str,
    now_ms: i64,
) -> Result<Delivery, String> {
    let lease_ms = i64::try_from(CLAIM_LEASE.as_millis()).unwrap_or(i64::MAX);
    let due = gateway.outbox_claim(topic, now_ms, lease_ms, BATCH_MAX).map_err(|error| error.to_string())?;
    let mut delivery = Delivery::default();
    for (position, item) in due.iter().enumerate() {
        let signature = gateway.webhook_signature(topic, item.id, now_ms.div_euclid(1000), &item.body);
        let sent = post_json(url, outbound, &item.body, &signature, item.id);
        match tokio::time::timeout(ATTEMPT_TIMEOUT, sent).await {
            Ok(Ok(())) => {
                gateway.outbox_delivered(item.id, now_ms).map_err(|error| error.to_string())?;
                delivery.delivered += 1;
            }
            outcome => {
                let error = match outcome {
                    Ok(Err(error)) => error,
                    _ => format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs()),
                };
                tracing::warn!(message = item.id, attempts = item.attempts + 1, %error, "webhook delivery failed");
                let next = now_ms + backoff_ms(item.attempts);
                gateway.outbox_retry(item.id, next, &error).map_err(|error| error.to_string())?;
                delivery.failed += 1;
                // The receiver is down or refusing: later messages wait with it, keeping the
                // order (their claim is given back for the same time).
                let later: Vec<u64> = due.iter().skip(position + 1).map(|item| item.id).collect();
                gateway.outbox_defer(&later, next).map_err(|error| error.to_string())?;
                break;
            }
        }
    }
    Ok(delivery)
}

/// Runs delivery passes until the server's state is gone.
pub async fn run(state: Weak<AppState>) {
    loop {
        tokio::time::sleep(POLL_INTERVAL).await;
        let Some(state) = state.upgrade() else { return };
        let now_ms = state.gateway.now_ms();
        if let Err(error) = deliver_due(&state.gateway, &state.outbound, now_ms).await {
            tracing::error!(%error, "webhook outbox");
        }
        drop::<Arc<AppState>>(state);
    }
}

/// POSTs `body` to `url` (`http://` or `https://`), signed; Ok on a 2xx answer.
async fn post_json(url: &str, outbound: &Outbound, body: &str, signature: &str, id: u64) -> Result<(), String> {
    let endpoint = crate::client::Endpoint::parse(url)?;
    if endpoint.tls && outbound.tls.is_none() {
        return Err(outbound.problem.clone().unwrap_or_else(|| "no TLS settings for https receivers".into()));
    }
    let request = hyper::Request::post(endpoint.path.as_str())
        .header(hyper::header::HOST, endpoint.authority())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header("user-agent", "cordon-webhook")
        .header("x-cordon-signature", signature)
        .header("x-cordon-delivery", id.to_string())
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|error| error.to_string())?;
    let answer = crate::client::send(&endpoint, outbound.tls.as_ref(), request).await?;
    if answer.status.is_success() { Ok(()) } else { Err(format!("the receiver answered {}", answer.status)) }
}
