//! A ledger entry as the simulator reads it back (the story, the evaluation): every field
//! either of them counts, each optional, so any of cordon's entry kinds parses.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct LedgerEntry {
    pub kind: String,
    #[serde(default)]
    pub time_ms: i64,
    #[serde(default)]
    pub request: String,
    #[serde(default)]
    pub agent: String,
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub customer: Option<String>,
    #[serde(default)]
    pub ticket: Option<String>,
    #[serde(default)]
    pub fields: Vec<String>,
    #[serde(default)]
    pub matches: Option<Vec<String>>,
    #[serde(default)]
    pub why: Option<String>,
    #[serde(default)]
    pub beyond_need: Vec<String>,
    #[serde(default)]
    pub off_shift: bool,
    #[serde(default)]
    pub decision: String,
    #[serde(default)]
    pub change: String,
    #[serde(default)]
    pub target: String,
    #[serde(default)]
    pub level: String,
    #[serde(default)]
    pub evidence: Vec<u64>,
}

impl LedgerEntry {
    pub fn allowed_access(&self) -> bool {
        self.kind == "access" && self.decision == "allow"
    }

    /// Whether the access had a reason the system can check.
    pub fn explained(&self) -> bool {
        matches!(self.why.as_deref(), Some("ticket" | "approval" | "callback" | "review"))
    }
}
