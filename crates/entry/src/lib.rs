//! The audit entry: the one definition of what cordon writes into its ledger and reads back.
//! Every writer (the gateway's decisions, changes and alerts) and every reader (detection's
//! replay, the exposure index, the exports, the simulator's story and evaluation) goes
//! through [`Entry::encode`] and [`decode`], so a string that one side can write the other
//! can always read: strings are owned, whatever JSON escapes they need, and a test
//! round-trips every kind with hostile strings.
//!
//! Entries are canonical JSON (fields in a fixed order, no spaces), tagged by `kind` and
//! versioned by `v`, and hold identifiers only: never a field value, a search value or a
//! free-text reason, which an agent could fill with customer data. An encoded entry is at
//! most [`ENTRY_BYTES_MAX`] bytes, the ledger's limit; `encode` refuses a larger one before
//! it reaches the ledger.
//!
//! Not here: what the entries mean to detection, incidents or policy. This crate knows no
//! other part of cordon.

use serde::{Deserialize, Serialize};

/// The version [`Entry::encode`] writes.
///
/// - 1: the first encoding. Containment was only visible as a `detector:<level>` policy.
/// - 2: access entries carry `contained` (the detector's level when detection turned an
///   allow into a denial) as a field of its own.
pub const VERSION: u8 = 2;

/// The oldest version [`decode`] reads.
pub const VERSION_MIN: u8 = 1;

/// The ledger's limit on one entry (C2SP tlog-tiles entry bundles use two length bytes).
pub const ENTRY_BYTES_MAX: usize = 65_535;

/// One ledger entry written by cordon (encoded as `{"kind":"<kind>",...}`, see `EntryRef`).
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// An access decision: search, view, reveal, verify, approve, or a refused attempt.
    Access(AccessEntry),
    /// A change to the directory, customers, keys, policy, alerts or incidents.
    Change(ChangeEntry),
    /// An alert or containment raised by detection.
    Alert(AlertEntry),
}

/// Why an entry could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("a {kind} entry of {bytes} bytes is over the ledger's limit of {ENTRY_BYTES_MAX}")]
    TooLarge { kind: &'static str, bytes: usize },
    #[error("entry version {version} is not one this build reads ({VERSION_MIN} to {VERSION})")]
    Version { version: u8 },
    #[error("not a cordon entry: {reason}")]
    Malformed { reason: String },
}

/// What an access decision was about: the actions of the policy schema, as the ledger
/// records them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessAction {
    Search,
    View,
    Reveal,
    Verify,
    Approve,
    Administer,
    /// An export of access events.
    Export,
    /// A request for an analyst's or responder's powers (alerts, incidents, the board).
    Investigate,
    /// Asking for break-glass access or a second approver.
    RequestApproval,
}

impl AccessAction {
    pub const ALL: [AccessAction; 9] = [
        AccessAction::Search,
        AccessAction::View,
        AccessAction::Reveal,
        AccessAction::Verify,
        AccessAction::Approve,
        AccessAction::Administer,
        AccessAction::Export,
        AccessAction::Investigate,
        AccessAction::RequestApproval,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AccessAction::Search => "search",
            AccessAction::View => "view",
            AccessAction::Reveal => "reveal",
            AccessAction::Verify => "verify",
            AccessAction::Approve => "approve",
            AccessAction::Administer => "administer",
            AccessAction::Export => "export",
            AccessAction::Investigate => "investigate",
            AccessAction::RequestApproval => "request_approval",
        }
    }

    pub fn parse(text: &str) -> Option<AccessAction> {
        AccessAction::ALL.into_iter().find(|action| action.name() == text)
    }

    /// Whether the action shows customer data (a search's masked hits, a card, a reveal, a
    /// verify's answer).
    pub fn reaches_customers(self) -> bool {
        matches!(self, AccessAction::Search | AccessAction::View | AccessAction::Reveal | AccessAction::Verify)
    }
}

impl std::fmt::Display for AccessAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for AccessAction {
    type Err = String;

    fn from_str(name: &str) -> Result<AccessAction, String> {
        AccessAction::parse(name).ok_or_else(|| format!("unknown action `{name}`"))
    }
}

/// The outcome of an access decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allow,
    Deny,
}

/// How a verify's check of a stated value went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VerifyOutcome {
    #[serde(rename = "match")]
    Match,
    #[serde(rename = "no-match")]
    NoMatch,
    /// Refused unchecked: too many wrong statements about this field of this customer.
    #[serde(rename = "refused")]
    Refused,
}

/// Detection's containment of an agent, when it turned an allowed access into a denial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Containment {
    /// Each reveal needs a second approver.
    #[serde(rename = "step-up")]
    StepUp,
    #[serde(rename = "suspend")]
    Suspend,
}

impl Containment {
    pub fn name(self) -> &'static str {
        match self {
            Containment::StepUp => "step-up",
            Containment::Suspend => "suspend",
        }
    }

    pub fn parse(text: &str) -> Option<Containment> {
        [Containment::StepUp, Containment::Suspend].into_iter().find(|level| level.name() == text)
    }

    /// The policy id a contained access names as its deciding policy.
    pub fn policy(self) -> String {
        format!("{CONTAINMENT_POLICY_PREFIX}{}", self.name())
    }
}

/// Version 1 entries said containment only through this policy-id prefix.
const CONTAINMENT_POLICY_PREFIX: &str = "detector:";

/// An access decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEntry {
    pub v: u8,
    pub time_ms: i64,
    pub request: String,
    pub agent: String,
    pub action: AccessAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// For searches: what kind of value was searched (never the value) and the matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
    /// Why the agent could look (a ticket, an approval, a recent ticket, none): behaviour,
    /// not customer data, kept so detection can be replayed from the ledger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// For an access under the agent's own open ticket: the agent who opened that ticket
    /// for the customer (none: the customer raised it) and who put it in this agent's queue
    /// (none: the helpdesk's routing). Who arranged the reason, kept so detection can be
    /// replayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_by: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub beyond_need: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub off_shift: bool,
    /// For verifies policy allowed: how the check of the stated value went. A wrong
    /// statement is what a guesser produces, so detection scores it, and verify refuses
    /// after a handful.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyOutcome>,
    pub decision: Decision,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contained: Option<Containment>,
    #[serde(default)]
    pub policies: Vec<String>,
    /// The console session the request came through (its code, the one its screens'
    /// watermark shows); none for the API and in-process callers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

impl AccessEntry {
    /// An entry with who, what and the outcome; callers fill in the rest.
    pub fn new(time_ms: i64, request: &str, agent: &str, action: AccessAction, decision: Decision) -> AccessEntry {
        AccessEntry {
            v: VERSION,
            time_ms,
            request: request.to_string(),
            agent: agent.to_string(),
            action,
            customer: None,
            ticket: None,
            fields: Vec::new(),
            search_by: None,
            matches: None,
            approval: None,
            why: None,
            opened_by: None,
            assigned_by: None,
            beyond_need: Vec::new(),
            off_shift: false,
            verify: None,
            decision,
            contained: None,
            policies: Vec::new(),
            session: None,
        }
    }

    pub fn allowed(&self) -> bool {
        self.decision == Decision::Allow
    }

    /// What policy decided, before detection's containment or verify's limit refused it:
    /// what detection was shown, live and on replay.
    pub fn policy_allowed(&self) -> bool {
        self.allowed() || self.contained.is_some() || self.verify == Some(VerifyOutcome::Refused)
    }

    /// The customers this access showed its agent: a search's hits, or the one customer a
    /// view, reveal or verify was about; none if it was denied. The one rule for the
    /// exposure index, the exports and the simulator's story.
    pub fn customers_shown(&self) -> Vec<String> {
        if !self.allowed() {
            return Vec::new();
        }
        match (self.action, &self.customer, &self.matches) {
            (AccessAction::Search, _, Some(matches)) => matches.clone(),
            (AccessAction::View | AccessAction::Reveal | AccessAction::Verify, Some(customer), _) => {
                vec![customer.clone()]
            }
            _ => Vec::new(),
        }
    }
}

/// A change to the directory, customers, keys, policy, alerts or incidents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeEntry {
    pub v: u8,
    pub time_ms: i64,
    pub request: String,
    pub actor: String,
    /// What changed, as `<thing>.<verb>` (`agent.suspend`, `ticket.put`, `incident.open`).
    pub change: String,
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl ChangeEntry {
    pub fn new(time_ms: i64, request: &str, actor: &str, change: &str, target: &str, detail: Option<String>) -> Self {
        ChangeEntry {
            v: VERSION,
            time_ms,
            request: request.to_string(),
            actor: actor.to_string(),
            change: change.to_string(),
            target: target.to_string(),
            detail,
        }
    }
}

/// An alert or containment raised by detection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEntry {
    pub v: u8,
    pub time_ms: i64,
    /// The request whose access raised it.
    pub request: String,
    pub alert: u64,
    pub agent: String,
    /// `alert`, `step-up` or `suspend`.
    pub level: String,
    pub risk: f64,
    pub signals: Vec<SignalEntry>,
    /// Ledger indexes of the accesses that raised it.
    pub evidence: Vec<u64>,
}

impl AlertEntry {
    /// The containment this alert put in force, if any.
    pub fn containment(&self) -> Option<Containment> {
        Containment::parse(&self.level)
    }
}

/// One signal of an alert: what was observed against what was expected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalEntry {
    pub name: String,
    pub observed: f64,
    pub baseline: f64,
    pub points: f64,
}

impl Entry {
    pub fn kind(&self) -> &'static str {
        match self {
            Entry::Access(_) => "access",
            Entry::Change(_) => "change",
            Entry::Alert(_) => "alert",
        }
    }

    /// The canonical bytes of this entry, refused if over the ledger's limit.
    pub fn encode(&self) -> Result<Vec<u8>, EntryError> {
        match self {
            Entry::Access(entry) => entry.encode(),
            Entry::Change(entry) => entry.encode(),
            Entry::Alert(entry) => entry.encode(),
        }
    }

    fn version(&self) -> u8 {
        match self {
            Entry::Access(entry) => entry.v,
            Entry::Change(entry) => entry.v,
            Entry::Alert(entry) => entry.v,
        }
    }
}

/// An entry borrowed for encoding, so writers need not move theirs into an [`Entry`].
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum EntryRef<'a> {
    Access(&'a AccessEntry),
    Change(&'a ChangeEntry),
    Alert(&'a AlertEntry),
}

impl EntryRef<'_> {
    fn kind(&self) -> &'static str {
        match self {
            EntryRef::Access(_) => "access",
            EntryRef::Change(_) => "change",
            EntryRef::Alert(_) => "alert",
        }
    }

    fn encode(&self, room_bytes: usize) -> Result<Vec<u8>, EntryError> {
        let bytes = serde_json::to_vec(self).map_err(|error| EntryError::Malformed { reason: error.to_string() })?;
        if bytes.len() + room_bytes > ENTRY_BYTES_MAX {
            return Err(EntryError::TooLarge { kind: self.kind(), bytes: bytes.len() + room_bytes });
        }
        Ok(bytes)
    }
}

/// What detection may add to an access entry after it is built: `"contained":"step-up"` and
/// its policy in place of the others, well under this.
const CONTAINMENT_BYTES_MAX: usize = 64;

impl AccessEntry {
    pub fn encode(&self) -> Result<Vec<u8>, EntryError> {
        EntryRef::Access(self).encode(0)
    }

    /// The entry's bytes, refused unless they would still fit the ledger once detection
    /// adds a containment: done before a decision takes its place in the ledger's order, so
    /// a request too large to record is refused before anything depends on it. If nothing
    /// is added, these are the bytes to append.
    pub fn encode_leaving_room(&self) -> Result<Vec<u8>, EntryError> {
        EntryRef::Access(self).encode(CONTAINMENT_BYTES_MAX)
    }
}

impl ChangeEntry {
    pub fn encode(&self) -> Result<Vec<u8>, EntryError> {
        EntryRef::Change(self).encode(0)
    }
}

impl AlertEntry {
    pub fn encode(&self) -> Result<Vec<u8>, EntryError> {
        EntryRef::Alert(self).encode(0)
    }
}

/// The kind of an entry as cordon writes it, `{"kind":"<kind>"` first (version 1 put
/// `{"v":1,` before it); anything else is read the slow way.
fn kind_up_front(bytes: &[u8]) -> Option<&str> {
    let rest = match bytes.strip_prefix(b"{\"v\":1,") {
        Some(rest) => rest,
        None => bytes.strip_prefix(b"{")?,
    };
    let rest = rest.strip_prefix(b"\"kind\":\"")?;
    let end = rest.iter().position(|&byte| byte == b'"')?;
    let kind = std::str::from_utf8(rest.get(..end)?).ok()?;
    ["access", "change", "alert"].into_iter().find(|known| *known == kind)
}

/// The kind of an entry, read without reading the rest.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    kind: std::borrow::Cow<'a, str>,
}

/// Reads one entry written by any version of cordon this build knows, checking its version.
/// A version 1 access entry gets its `contained` field from its `detector:<level>` policy.
pub fn decode(bytes: &[u8]) -> Result<Entry, EntryError> {
    let malformed = |error: serde_json::Error| EntryError::Malformed { reason: error.to_string() };
    // The kind first, then the kind's own struct straight from the bytes: serde's tagged
    // enums buffer every entry in a tree first, which made detection's replay a third
    // slower (docs/BENCHMARKS.md).
    let kind = match kind_up_front(bytes) {
        Some(kind) => std::borrow::Cow::Borrowed(kind),
        None => serde_json::from_slice::<Head<'_>>(bytes).map_err(malformed)?.kind,
    };
    let mut entry = match kind.as_ref() {
        "access" => Entry::Access(serde_json::from_slice(bytes).map_err(malformed)?),
        "change" => Entry::Change(serde_json::from_slice(bytes).map_err(malformed)?),
        "alert" => Entry::Alert(serde_json::from_slice(bytes).map_err(malformed)?),
        other => return Err(EntryError::Malformed { reason: format!("unknown kind `{other}`") }),
    };
    let version = entry.version();
    if !(VERSION_MIN..=VERSION).contains(&version) {
        return Err(EntryError::Version { version });
    }
    if let Entry::Access(access) = &mut entry
        && version == 1
        && access.contained.is_none()
    {
        access.contained = access
            .policies
            .iter()
            .find_map(|policy| policy.strip_prefix(CONTAINMENT_POLICY_PREFIX).and_then(Containment::parse));
    }
    Ok(entry)
}
