//! Detection in the request path. Every ledger append goes through one lock that also holds
//! the detector, so the detector sees access decisions in exactly the ledger's order and
//! knows the index each will get: that is what lets a replay of the ledger at start rebuild
//! the same state and the same alerts. An access entry carries the facts detection used that
//! are not customer data (why the agent could look, fields beyond the ticket's need, off
//! shift); the two customer flags (canary, high balance) are looked up again on replay.

use std::collections::HashMap;
use std::sync::Mutex;

use cordon_detect::{Action as Seen, Alert, Detector, Level, Observation, Verdict, Why};
use serde::{Deserialize, Serialize};

use crate::audit::{AuditFuture, AuditLog, ENTRY_VERSION, EntryVisitor};
use crate::error::GatewayError;

/// The ledger's next index and the detector, behind one lock.
#[derive(Debug)]
pub(crate) struct Sequenced {
    pub next_index: u64,
    pub detector: Detector,
    pub enabled: bool,
}

pub(crate) type Sequencer = Mutex<Sequenced>;

/// What detection needs of an access beyond what the entry already says.
#[derive(Debug, Clone, Default)]
pub(crate) struct AccessFacts {
    pub why: Option<Why>,
    pub beyond_need: Vec<String>,
    pub off_shift: bool,
    pub high_balance: bool,
    pub canary: bool,
    pub peer_group: String,
    pub site: String,
}

/// An alert or containment, as a ledger entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AlertEntry {
    pub v: u8,
    pub kind: String,
    pub time_ms: i64,
    /// The request whose access raised it.
    pub request: String,
    pub alert: u64,
    pub agent: String,
    pub level: String,
    pub risk: f64,
    pub signals: Vec<SignalEntry>,
    pub evidence: Vec<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SignalEntry {
    pub name: String,
    pub observed: f64,
    pub baseline: f64,
    pub points: f64,
}

impl AlertEntry {
    pub(crate) fn new(alert: &Alert, request: &str) -> AlertEntry {
        AlertEntry {
            v: ENTRY_VERSION,
            kind: "alert".into(),
            time_ms: alert.time_ms,
            request: request.to_string(),
            alert: alert.id,
            agent: alert.agent.clone(),
            level: alert.level.name().to_string(),
            risk: round(alert.risk),
            signals: alert
                .signals
                .iter()
                .map(|signal| SignalEntry {
                    name: signal.name.to_string(),
                    observed: round(signal.observed),
                    baseline: round(signal.baseline),
                    points: round(signal.points),
                })
                .collect(),
            evidence: alert.evidence.clone(),
        }
    }
}

/// Three decimals: enough to explain, and stable text in the ledger.
fn round(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// The policy name an access denied by detection carries.
pub fn containment_policy(level: Level) -> String {
    format!("detector:{}", level.name())
}

/// What the detector calls an action (`matched`: whether a search found anyone).
pub(crate) fn seen(action: &str, matched: bool) -> Option<Seen> {
    match action {
        "search" => Some(Seen::Search { matched }),
        "view" => Some(Seen::View),
        "reveal" => Some(Seen::Reveal),
        "verify" => Some(Seen::Verify),
        _ => None,
    }
}

/// An access decision as the detector sees it.
pub(crate) fn observation<'a>(
    index: u64,
    time_ms: i64,
    agent: &'a str,
    action: Seen,
    customer: Option<&'a str>,
    allowed: bool,
    facts: &'a AccessFacts,
) -> Observation<'a> {
    Observation {
        index,
        time_ms,
        agent,
        peer_group: &facts.peer_group,
        site: &facts.site,
        action,
        customer,
        why: facts.why.unwrap_or(Why::Unexplained),
        fields_beyond_need: facts.beyond_need.len() as u32,
        high_balance: facts.high_balance,
        canary: facts.canary,
        off_shift: facts.off_shift,
        allowed,
    }
}

/// Appends entries in order under the sequence lock: `build` gets the index the first will
/// take and the detector, and returns the entries. The futures resolve once each is durable.
pub(crate) fn append_sequenced<T>(
    sequencer: &Sequencer,
    audit: &dyn AuditLog,
    build: impl FnOnce(u64, &mut Sequenced) -> (Vec<Vec<u8>>, T),
) -> (u64, Vec<AuditFuture>, T) {
    let mut sequenced = sequencer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let first = sequenced.next_index;
    let (entries, extra) = build(first, &mut sequenced);
    let futures: Vec<AuditFuture> = entries.into_iter().map(|entry| audit.append(entry)).collect();
    sequenced.next_index += futures.len() as u64;
    (first, futures, extra)
}

/// Waits for appended entries; the first's index must be the one predicted.
pub(crate) async fn durable(expected: u64, futures: Vec<AuditFuture>) -> Result<u64, GatewayError> {
    let mut first = None;
    for future in futures {
        let index = future.await.map_err(|error| GatewayError::AuditUnavailable(error.0))?;
        first.get_or_insert(index);
    }
    let first = first.unwrap_or(expected);
    if first != expected {
        return Err(GatewayError::Internal(format!(
            "the ledger gave index {first} where {expected} was expected; another writer is appending"
        )));
    }
    Ok(first)
}

/// An entry read back for replay: only what detection needs.
#[derive(Debug, Deserialize)]
struct ReplayEntry<'a> {
    kind: &'a str,
    #[serde(default)]
    request: &'a str,
    #[serde(default)]
    time_ms: i64,
    #[serde(default)]
    agent: Option<&'a str>,
    #[serde(default)]
    action: Option<&'a str>,
    #[serde(default)]
    customer: Option<&'a str>,
    #[serde(default, borrow)]
    matches: Option<Vec<&'a str>>,
    #[serde(default)]
    why: Option<&'a str>,
    #[serde(default, borrow)]
    beyond_need: Vec<&'a str>,
    #[serde(default)]
    off_shift: bool,
    #[serde(default)]
    decision: Option<&'a str>,
    #[serde(default, borrow)]
    policies: Vec<&'a str>,
    #[serde(default)]
    change: Option<&'a str>,
    #[serde(default)]
    target: Option<&'a str>,
}

/// Customer and agent facts for replay, which the ledger does not hold.
pub(crate) trait ReplayFacts {
    /// (canary, high balance)
    fn customer(&mut self, id: &str) -> (bool, bool);
    /// (peer group, site)
    fn agent(&mut self, id: &str) -> (String, String);
}

/// What a replay found.
#[derive(Debug, Default)]
pub struct Replayed {
    pub entries: u64,
    pub observations: u64,
    /// The alert entries the replay would have written, encoded as the live run writes them.
    pub alerts: Vec<AlertEntry>,
    /// The alert entries the ledger holds, with their indexes.
    pub recorded: Vec<(u64, AlertEntry)>,
}

/// Feeds every entry to `detector` in order, as the live run did.
pub(crate) fn replay(
    detector: &mut Detector,
    facts: &mut dyn ReplayFacts,
    visit: &mut dyn FnMut(&mut EntryVisitor<'_>) -> Result<(), String>,
) -> Result<Replayed, GatewayError> {
    let mut replayed = Replayed::default();
    let mut agents: HashMap<String, AccessFacts> = HashMap::new();
    visit(&mut |index, bytes| {
        replayed.entries += 1;
        let entry: ReplayEntry<'_> =
            serde_json::from_slice(bytes).map_err(|error| format!("ledger entry {index}: {error}"))?;
        match entry.kind {
            "access" => {
                let Some(agent) = entry.agent else { return Ok(()) };
                let denied_by_detector = entry.policies.iter().any(|policy| policy.starts_with("detector:"));
                let allowed = entry.decision == Some("allow") || denied_by_detector;
                let matches = entry.matches.as_deref().unwrap_or_default();
                let (canary, high_balance) = match (entry.customer, entry.action) {
                    (Some(customer), _) => facts.customer(customer),
                    (None, Some("search")) => {
                        (!matches.is_empty() && matches.iter().all(|customer| facts.customer(customer).0), false)
                    }
                    _ => (false, false),
                };
                // One set of facts per agent, refilled for each of its entries (no copies).
                if !agents.contains_key(agent) {
                    let (peer_group, site) = facts.agent(agent);
                    agents.insert(agent.to_string(), AccessFacts { peer_group, site, ..AccessFacts::default() });
                }
                let Some(access) = agents.get_mut(agent) else { return Ok(()) };
                access.why = entry.why.and_then(Why::parse);
                access.beyond_need = entry.beyond_need.iter().map(|field| field.to_string()).collect();
                access.off_shift = entry.off_shift;
                access.high_balance = high_balance;
                access.canary = canary;
                let access = &*access;
                if let Some(action) = seen(entry.action.unwrap_or_default(), !matches.is_empty()) {
                    replayed.observations += 1;
                    let observation = observation(index, entry.time_ms, agent, action, entry.customer, allowed, access);
                    let verdict: Verdict = detector.observe(&observation);
                    for alert in verdict.alerts {
                        replayed.alerts.push(AlertEntry::new(&alert, entry.request));
                    }
                }
            }
            "alert" => {
                let recorded: AlertEntry =
                    serde_json::from_slice(bytes).map_err(|error| format!("ledger entry {index}: {error}"))?;
                replayed.recorded.push((index, recorded));
            }
            "change" => {
                // An analyst's reinstatement or dismissal (target: the agent) clears its risk.
                if let (Some("agent.reinstate" | "alert.dismiss"), Some(agent)) = (entry.change, entry.target) {
                    detector.clear(agent, entry.time_ms);
                }
            }
            _ => {}
        }
        Ok(())
    })
    .map_err(GatewayError::Internal)?;
    Ok(replayed)
}
