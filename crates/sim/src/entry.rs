//! A ledger entry as the simulator reads it back (the story, the evaluation): one flat
//! record of every field either of them counts, projected from the one decoder
//! (`cordon_entry::decode`), so the simulator reads exactly what the gateway wrote.

use cordon_entry::Entry;

#[derive(Debug, Clone, Default)]
pub(crate) struct LedgerEntry {
    pub kind: String,
    pub time_ms: i64,
    pub request: String,
    pub agent: String,
    pub action: String,
    pub customer: Option<String>,
    pub ticket: Option<String>,
    pub fields: Vec<String>,
    pub matches: Option<Vec<String>>,
    pub why: Option<String>,
    pub beyond_need: Vec<String>,
    pub off_shift: bool,
    pub decision: String,
    pub change: String,
    pub target: String,
    pub level: String,
    pub evidence: Vec<u64>,
}

impl LedgerEntry {
    /// Reads the entry `bytes`; the error says why it is not one of cordon's.
    pub fn decode(bytes: &[u8]) -> Result<LedgerEntry, cordon_entry::EntryError> {
        Ok(LedgerEntry::from(cordon_entry::decode(bytes)?))
    }

    pub fn allowed_access(&self) -> bool {
        self.kind == "access" && self.decision == "allow"
    }

    /// Whether the access had a reason the system can check.
    pub fn explained(&self) -> bool {
        matches!(self.why.as_deref(), Some("ticket" | "approval" | "callback" | "review"))
    }
}

impl From<Entry> for LedgerEntry {
    fn from(entry: Entry) -> LedgerEntry {
        let kind = entry.kind().to_string();
        match entry {
            Entry::Access(access) => LedgerEntry {
                kind,
                time_ms: access.time_ms,
                decision: if access.allowed() { "allow" } else { "deny" }.to_string(),
                action: access.action.name().to_string(),
                request: access.request,
                agent: access.agent,
                customer: access.customer,
                ticket: access.ticket,
                fields: access.fields,
                matches: access.matches,
                why: access.why,
                beyond_need: access.beyond_need,
                off_shift: access.off_shift,
                ..LedgerEntry::default()
            },
            Entry::Change(change) => LedgerEntry {
                kind,
                time_ms: change.time_ms,
                request: change.request,
                change: change.change,
                target: change.target,
                ..LedgerEntry::default()
            },
            Entry::Alert(alert) => LedgerEntry {
                kind,
                time_ms: alert.time_ms,
                request: alert.request,
                agent: alert.agent,
                level: alert.level,
                evidence: alert.evidence,
                ..LedgerEntry::default()
            },
        }
    }
}
