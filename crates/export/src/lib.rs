//! Exports of the audit record for other tools. `access_event` reads one ledger entry into an
//! `AccessEvent` (access decisions only: searches, views, reveals, verifies, approvals);
//! `ParquetExport` writes them as a Parquet file for analysts' tools (DuckDB, pandas, Spark);
//! `write_ocsf_line` writes one as an OCSF API Activity event, for SIEMs; `ocsf_record` turns
//! any ledger entry (alerts, changes, protective actions too) into its OCSF event.
//! Entries hold identifiers only, so exports do too: never a field value.
//!
//! No knowledge of the gateway, the store or SQL: the caller streams the ledger's entries in.

mod ocsf;
mod parquet_export;
mod records;

pub use ocsf::{OCSF_VERSION, ocsf_event, write_ocsf_line};
pub use parquet_export::{ExportError, ParquetExport, ROWS_PER_GROUP, schema};
pub use records::ocsf_record;

/// One access decision, as the ledger recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccessEvent {
    pub ledger_index: u64,
    pub time_ms: i64,
    pub request: String,
    pub agent: String,
    pub action: String,
    /// The customer a view, reveal or verify was about.
    pub customer: Option<String>,
    /// The customers the access showed: the one it was about, or a search's hits; none if
    /// it was denied.
    pub shown: Vec<String>,
    pub ticket: Option<String>,
    pub fields: Vec<String>,
    pub why: Option<String>,
    pub allowed: bool,
    pub policies: Vec<String>,
}

/// The access event entry `bytes` at `ledger_index` records, if it is one.
pub fn access_event(ledger_index: u64, bytes: &[u8]) -> Option<AccessEvent> {
    let Ok(cordon_entry::Entry::Access(entry)) = cordon_entry::decode(bytes) else { return None };
    let shown = entry.customers_shown();
    let allowed = entry.allowed();
    Some(AccessEvent {
        ledger_index,
        time_ms: entry.time_ms,
        request: entry.request,
        agent: entry.agent,
        action: entry.action.name().to_string(),
        customer: entry.customer,
        shown,
        ticket: entry.ticket,
        fields: entry.fields,
        why: entry.why,
        allowed,
        policies: entry.policies,
    })
}
