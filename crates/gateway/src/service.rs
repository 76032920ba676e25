//! The gateway: the only path from a caller to customer data. Every method gathers the facts,
//! asks the policy engine, appends the decision to the audit log and waits until it is
//! durable, and only then, if allowed, opens the vault.

use std::collections::BTreeMap;
use std::sync::Arc;

use cordon_policy::{
    AccessRequest, Action, AgentFacts, ApprovalFacts, CategoryTable, CustomerFacts, Decision, PolicyEngine, TicketFacts,
};
use cordon_store::Store;
use cordon_vault::{Date, Field, Vault};
use serde_json::Value;

use crate::audit::AuditLog;
use crate::clock::Clock;
use crate::config::Limits;
use crate::detection::{AccessFacts, Sequenced, Sequencer};
use crate::error::GatewayError;
use crate::token::{Claims, TokenKey};
use cordon_entry::{AccessEntry, Decision as EntryDecision};

/// A search hit: the customer id and the masked name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchHit {
    pub customer: String,
    pub masked_name: String,
}

/// The masked card of a customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    pub customer: String,
    pub fields: Vec<(Field, String)>,
    pub ledger_index: u64,
}

/// Revealed values, with the ledger index of the entry that recorded the reveal.
#[derive(Debug, Clone, PartialEq)]
pub struct Revealed {
    pub values: BTreeMap<Field, Value>,
    pub ledger_index: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub matched: bool,
    pub ledger_index: u64,
}

/// Attribution's null model, the last reach change it includes, and the census of balance
/// bands with the count of customer writes it was taken at (customers change far less often
/// than reach, so a model built again usually reuses the census; the model shares it).
#[derive(Debug, Default)]
pub(crate) struct CachedNullModel {
    pub(crate) model: Option<(u64, cordon_incident::NullModel)>,
    pub(crate) census: Option<(u64, Arc<cordon_incident::BandCensus>)>,
}

/// Everything the gateway works with.
pub struct Gateway {
    pub(crate) store: Arc<Store>,
    /// The data directory it was opened from.
    pub(crate) root: Option<std::path::PathBuf>,
    /// Held (shared) by every change from before its ledger entry until its store write is
    /// done, and alone by a backup while it copies the store (`backup.rs`).
    pub(crate) changes: tokio::sync::RwLock<()>,
    /// Set while a backup is being taken and written out: one at a time.
    pub(crate) backing_up: Arc<std::sync::atomic::AtomicBool>,
    pub(crate) indexer: crate::indexer::Indexer,
    /// Where detection's snapshot is kept (the data directory's `detection.snapshot`).
    pub(crate) snapshot_path: Option<std::path::PathBuf>,
    /// The size the last snapshot covers.
    pub(crate) last_snapshot: std::sync::atomic::AtomicU64,
    /// When the store's writes were last probed, and why they failed, if they did.
    pub(crate) store_probe: crate::health::Probe,
    pub(crate) kek_probe: crate::health::Probe,
    /// Single sign-on, when `[oidc]` names a provider.
    pub(crate) sso: Option<crate::sso::Sso>,
    /// The Zendesk webhook receiver, when `[helpdesk]` names its secret.
    pub(crate) helpdesk: Option<crate::helpdesk::Zendesk>,
    pub(crate) directory: crate::directory_cache::DirectoryCache,
    pub(crate) vault: Vault,
    pub(crate) policy: PolicyEngine,
    pub(crate) categories: CategoryTable,
    pub(crate) audit: Arc<dyn AuditLog>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) limits: Limits,
    pub(crate) tokens: TokenKey,
    pub(crate) token_lifetime_seconds: i64,
    /// How long a service's token lives (`[tokens] service_lifetime_seconds`).
    pub(crate) service_token_lifetime_seconds: i64,
    /// Orders every append and runs detection in that order.
    pub(crate) sequencer: Sequencer,
    /// Attribution's null model (`incident.rs` keeps it current).
    pub(crate) null_model: std::sync::Mutex<CachedNullModel>,
    /// Held while detection is replayed through the API: one replay at a time.
    pub(crate) replaying: std::sync::Mutex<()>,
    /// Alerts an analyst is deciding right now (one decision per alert).
    pub(crate) deciding_alerts: std::sync::Mutex<std::collections::HashSet<u64>>,
    /// Ids of revoked tokens, loaded at open and added to by `revoke_token`.
    pub(crate) revoked: std::sync::RwLock<std::collections::HashSet<String>>,
    /// False for a handle opened for analysis with detection on: detection's state was not
    /// replayed, so it could not score an access, and every access request is refused. Fixed
    /// at open, so the request path reads it without a lock.
    pub(crate) answers_access: bool,
    /// Where alerts are posted (the server delivers the outbox); none if empty.
    pub(crate) webhook_url: Option<String>,
    /// Incident response's settings: the exchange's name and contact, where protective
    /// actions go, how long they last.
    pub(crate) incident: crate::config::IncidentSettings,
    /// What a customer's own view shows, and how long a customer's token lives.
    pub(crate) customer_view: crate::config::CustomerViewSettings,
    /// The webhooks' signing key (`X-Cordon-Signature`), keyed with the secret at open.
    pub(crate) webhook_mac: hmac::Hmac<sha2::Sha256>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gateway({:?}, {:?})", self.store, self.policy)
    }
}

/// One access decision on its way to the ledger: the entry, and what detection needs of
/// it beyond the entry.
pub(crate) struct Recorded {
    pub(crate) entry: AccessEntry,
    pub(crate) facts: AccessFacts,
    /// Whether detection scores it: every decision about a directory agent is; a refused
    /// attempt by a role identity or an unknown subject is recorded but not scored (there
    /// is no agent to contain).
    pub(crate) observed: bool,
    /// For a verify policy allowed: whether the stated value matched. Checked before the
    /// entry is written, but answered only once it is durable, and not at all if verify's
    /// limit or detection refuses.
    pub(crate) statement: Option<bool>,
    /// The id (`jti`) of the token the request came with: a revocation the ledger records
    /// before the decision's place refuses it there (not written in the entry).
    pub(crate) token: String,
}

impl Recorded {
    /// A decision with nothing but who, what and the outcome; callers add the rest.
    pub(crate) fn new(
        time_ms: i64,
        request: &str,
        who: &Claims,
        agent: &str,
        action: Action,
        decision: &Decision,
    ) -> Recorded {
        let mut recorded = Recorded::refusal(time_ms, request, who, agent, action);
        recorded.entry.decision = if decision.allowed { EntryDecision::Allow } else { EntryDecision::Deny };
        recorded.entry.policies = decision.policies.clone();
        recorded
    }

    /// A refusal its caller records before policy is asked (an unknown customer, a token
    /// that is no agent's); callers add the rest.
    /// `who` says which console session the request came through, if any.
    pub(crate) fn refusal(time_ms: i64, request: &str, who: &Claims, agent: &str, action: Action) -> Recorded {
        let mut entry = AccessEntry::new(time_ms, request, agent, action, EntryDecision::Deny);
        entry.session = who.session.clone();
        Recorded { entry, facts: AccessFacts::default(), observed: true, statement: None, token: who.jti.clone() }
    }
}

impl Gateway {
    /// The store, for this crate only: every write goes through the gateway (and its cache
    /// and ledger), never around it.
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// A directory agent as stored, for in-process callers (tests, tools); no HTTP route
    /// reaches it.
    pub fn agent(&self, id: &str) -> Result<Option<cordon_directory::Agent>, GatewayError> {
        Ok(self.directory.agent(&self.store, id)?)
    }

    /// Outbox messages of `topic` due for delivery (the server's webhook loop).
    pub fn outbox_due(
        &self,
        topic: &str,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<cordon_store::OutboxItem>, GatewayError> {
        Ok(self.store.outbox_due(topic, now_ms, limit)?)
    }

    /// Claims messages of `topic` due now for `lease_ms` (the server's webhook loop; gateways
    /// sharing a store deliver each once).
    pub fn outbox_claim(
        &self,
        topic: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<cordon_store::OutboxItem>, GatewayError> {
        Ok(self.store.outbox_claim(topic, now_ms, lease_ms, limit)?)
    }

    pub fn outbox_defer(&self, ids: &[u64], next_attempt_ms: i64) -> Result<(), GatewayError> {
        Ok(self.store.outbox_defer(ids, next_attempt_ms)?)
    }

    pub fn outbox_delivered(&self, id: u64, now_ms: i64) -> Result<(), GatewayError> {
        Ok(self.store.outbox_delivered(id, now_ms)?)
    }

    pub fn outbox_retry(&self, id: u64, next_attempt_ms: i64, error: &str) -> Result<(), GatewayError> {
        Ok(self.store.outbox_retry(id, next_attempt_ms, error)?)
    }

    /// Messages not yet delivered.
    pub fn outbox_pending(&self) -> Result<u64, GatewayError> {
        Ok(self.store.outbox_pending()?)
    }

    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    pub fn policy(&self) -> &PolicyEngine {
        &self.policy
    }

    pub fn categories(&self) -> &CategoryTable {
        &self.categories
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn audit(&self) -> &Arc<dyn AuditLog> {
        &self.audit
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The webhook alerts are posted to, if any.
    pub fn webhook_url(&self) -> Option<&str> {
        self.webhook_url.as_deref()
    }

    /// The `X-Cordon-Signature` of delivery `id` of a `topic` message sent at `timestamp`
    /// (Unix seconds): `t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<id>.<body>">`
    /// under the topic's own secret ([`topic_secret`]), so the alert receiver, which holds the
    /// alerts' secret, cannot sign a protective action, and a delivery replayed under another
    /// id does not verify. A receiver recomputes it, compares in constant time and refuses a
    /// timestamp outside its window (docs/DEPLOY.md has the recipe).
    pub fn webhook_signature(&self, topic: &str, id: u64, timestamp: i64, body: &str) -> String {
        use hmac::{KeyInit as _, Mac as _};
        let secret = topic_secret(&self.webhook_mac, topic);
        let digest: String = match <hmac::Hmac<sha2::Sha256>>::new_from_slice(secret.as_bytes()) {
            Ok(mut mac) => {
                mac.update(format!("{timestamp}.{id}.").as_bytes());
                mac.update(body.as_bytes());
                mac.finalize().into_bytes().iter().map(|byte| format!("{byte:02x}")).collect()
            }
            // HMAC takes a key of any length; no such failure exists, and none is signed.
            Err(_) => String::new(),
        };
        format!("t={timestamp},v1={digest}")
    }

    /// Where outbox messages of `topic` are posted, if anywhere: alerts to detection's
    /// webhook, protective actions to the exchange's account-protection webhook.
    pub fn webhook_url_for(&self, topic: &str) -> Option<&str> {
        match topic {
            "alert" => self.webhook_url.as_deref(),
            "protect" => Some(self.incident.protect_webhook_url.as_str()).filter(|url| !url.is_empty()),
            _ => None,
        }
    }

    /// The sequencer. Should a panic have left it poisoned (detection's state maybe half
    /// changed by a build), the state is marked to be rebuilt from the ledger before the
    /// next turn of a shared ledger (and at the next heal of the file ledger).
    pub(crate) fn lock_sequencer(&self) -> std::sync::MutexGuard<'_, Sequenced> {
        match self.sequencer.lock() {
            Ok(sequenced) => sequenced,
            Err(poisoned) => {
                let mut sequenced = poisoned.into_inner();
                sequenced.tainted = true;
                self.sequencer.clear_poison();
                sequenced
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn request(
        &self,
        agent: &AgentFacts,
        action: Action,
        customer: Option<CustomerFacts>,
        ticket: Option<TicketFacts>,
        field: Option<String>,
        reason: &str,
        approval: Option<ApprovalFacts>,
        approval_requester: Option<String>,
    ) -> AccessRequest {
        AccessRequest {
            agent: agent.clone(),
            action,
            customer,
            ticket,
            field,
            reason: reason.to_string(),
            approval,
            approval_requester,
            now: self.clock.now_seconds(),
        }
    }

    pub(crate) fn check_value_length(&self, value: &str) -> Result<(), GatewayError> {
        if value.len() > self.limits.value_bytes_max {
            return Err(GatewayError::BadRequest(format!(
                "a value of {} bytes is over the limit of {}",
                value.len(),
                self.limits.value_bytes_max
            )));
        }
        Ok(())
    }

    pub(crate) fn today(&self) -> Date {
        Date::from_unix_seconds(self.clock.now_seconds())
    }
}

pub(crate) fn random_id() -> Result<String, GatewayError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|error| GatewayError::Internal(format!("random source failed: {error}")))?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// A caller's input too large to record: refused before it reaches the ledger.
pub(crate) fn too_large(error: cordon_entry::EntryError) -> GatewayError {
    GatewayError::BadRequest(error.to_string())
}

pub(crate) fn denied(decision: Decision, ledger_index: u64) -> GatewayError {
    GatewayError::Denied { reason: decision.reason, policies: decision.policies, ledger_index }
}

/// The webhook secret of `topic` (`alert`, `protect`), as its receiver is given it (64 hex
/// characters; the HMAC key is this text): HMAC-SHA256 of `cordon-webhook:<topic>` under the
/// directory's webhook key, so each receiver holds a secret of its own.
pub(crate) fn topic_secret(master: &hmac::Hmac<sha2::Sha256>, topic: &str) -> zeroize::Zeroizing<String> {
    use hmac::Mac as _;
    let mut mac = master.clone();
    mac.update(format!("cordon-webhook:{topic}").as_bytes());
    zeroize::Zeroizing::new(mac.finalize().into_bytes().iter().map(|byte| format!("{byte:02x}")).collect())
}
