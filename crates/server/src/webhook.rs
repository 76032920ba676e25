//! Delivers the outbox to the configured webhooks (alerts to detection's, protective actions
//! to the exchange's account-protection one): JSON bodies POSTed in the order they were
//! queued, each retried with exponential backoff until the receiver answers 2xx. The queue
//! is the store's outbox, written in the same transaction as the alert, so a restart picks
//! up where delivery stopped; a receiver may see a message twice, never zero times.

use std::sync::{Arc, Weak};
use std::time::Duration;

use cordon_gateway::Gateway;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

use crate::routes::AppState;

/// Messages tried per pass.
const BATCH_MAX: usize = 100;
/// How long one delivery may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
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

/// Tries every message due at `now_ms` once, topic by topic.
pub async fn deliver_due(gateway: &Gateway, now_ms: i64) -> Result<Delivery, String> {
    let mut delivery = Delivery::default();
    for topic in TOPICS {
        let Some(url) = gateway.webhook_url_for(topic) else { continue };
        let done = deliver_topic(gateway, topic, url, now_ms).await?;
        delivery.delivered += done.delivered;
        delivery.failed += done.failed;
    }
    Ok(delivery)
}

async fn deliver_topic(gateway: &Gateway, topic: &str, url: &str, now_ms: i64) -> Result<Delivery, String> {
    let due = gateway.outbox_due(topic, now_ms, BATCH_MAX).map_err(|error| error.to_string())?;
    let mut delivery = Delivery::default();
    for item in due {
        match tokio::time::timeout(ATTEMPT_TIMEOUT, post_json(url, &item.body)).await {
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
                // The receiver is down or refusing: later messages wait, keeping the order.
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
        if let Err(error) = deliver_due(&state.gateway, now_ms).await {
            tracing::error!(%error, "webhook outbox");
        }
        drop::<Arc<AppState>>(state);
    }
}

/// POSTs `body` to `url` (`http://host:port/path`); Ok on a 2xx answer.
async fn post_json(url: &str, body: &str) -> Result<(), String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| format!("`{url}` is not an http:// address"))?;
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, "/"),
    };
    let stream =
        tokio::net::TcpStream::connect(authority).await.map_err(|error| format!("connect {authority}: {error}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|error| error.to_string())?;
    tokio::spawn(connection);
    let request = hyper::Request::post(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header("user-agent", "cordon-webhook")
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|error| error.to_string())?;
    let response = sender.send_request(request).await.map_err(|error| error.to_string())?;
    let status = response.status();
    let _ = response.into_body().collect().await;
    if status.is_success() { Ok(()) } else { Err(format!("the receiver answered {status}")) }
}
