//! Detection's state at a ledger index, on disk, so a start replays only the entries after
//! it: at ten million entries a full replay takes seconds warm and over a minute from a
//! cold page cache. A snapshot holds what a replay rebuilds (the detector, verify's wrong
//! statements, the recorded statuses and revocations) after entry `size - 1`, with that
//! entry's leaf hash, which binds it to this ledger: a snapshot of another ledger, of a
//! ledger since rolled back, of other thresholds or limits, or one that does not read, is
//! not used, and the start replays everything (the ledger is the record; the snapshot only
//! saves time). Identifiers only, like the ledger; mode 0600 beside the databases.

use std::collections::HashMap;
use std::path::Path;

use cordon_detect::Detector;
use serde::{Deserialize, Serialize};

use crate::audit::AuditLog;
use crate::detection::{Rebuilt, RecordedState};
use crate::statements::WrongStatements;

/// The snapshot's file in the data directory.
pub const SNAPSHOT_FILE: &str = "detection.snapshot";
/// A new snapshot once this many entries were appended since the last.
pub(crate) const SNAPSHOT_EVERY_ENTRIES: u64 = 100_000;
const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Stored {
    format: u32,
    /// Entries covered: the state after entry `size - 1`.
    size: u64,
    /// The leaf hash of entry `size - 1`, hex.
    last_leaf: String,
    observe: bool,
    verify_limit: (usize, i64),
    detector: Detector,
    statements: Vec<(String, String, String, Vec<i64>)>,
    statuses: HashMap<String, (String, u64)>,
    revocations: HashMap<String, i64>,
}

/// The leaf hash of entry `index`, if the log can read it.
fn leaf_of(audit: &dyn AuditLog, index: u64) -> Result<String, String> {
    let mut leaf = None;
    audit
        .for_each_entry_from(index, index + 1, &mut |_, bytes| {
            leaf = Some(cordon_ledger::leaf_hash(bytes).to_hex());
            Ok(())
        })
        .map_err(|error| error.0)?;
    leaf.ok_or_else(|| format!("the ledger has no entry {index}"))
}

/// Writes the state after entry `size - 1` (the caller waited until it is durable),
/// atomically, as the data directory's private files are written.
pub(crate) fn write(
    path: &Path,
    audit: &dyn AuditLog,
    size: u64,
    observe: bool,
    rebuilt: Rebuilt,
) -> Result<(), String> {
    let stored = Stored {
        format: FORMAT,
        size,
        last_leaf: leaf_of(audit, size.checked_sub(1).ok_or("an empty ledger needs no snapshot")?)?,
        observe,
        verify_limit: rebuilt.statements.limits(),
        detector: rebuilt.detector,
        statements: rebuilt.statements.rows(),
        statuses: rebuilt
            .recorded
            .statuses
            .iter()
            .map(|(agent, (status, index))| (agent.clone(), (status.to_string(), *index)))
            .collect(),
        revocations: rebuilt.recorded.revocations,
    };
    let bytes = serde_json::to_vec(&stored).map_err(|error| format!("cannot encode the snapshot: {error}"))?;
    crate::datadir::write_private_file(path, &bytes).map_err(|error| format!("cannot write the snapshot: {error}"))
}

/// The snapshot at `path`, if there is one this ledger and these settings can start from:
/// the rebuilt states and the size they cover. Why not, otherwise (no file is not a
/// reason worth logging: `Ok(None)`).
pub(crate) fn read(
    path: &Path,
    audit: &dyn AuditLog,
    observe: bool,
    fresh: &Rebuilt,
) -> Result<Option<(Rebuilt, u64)>, String> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(format!("cannot read it: {error}")),
    };
    let stored: Stored = serde_json::from_slice(&bytes).map_err(|error| format!("it does not read: {error}"))?;
    if stored.format != FORMAT {
        return Err(format!("it is format {}, this build reads {FORMAT}", stored.format));
    }
    let durable = audit.size();
    if stored.size == 0 || stored.size > durable {
        return Err(format!("it covers {} entries and the ledger has {durable}", stored.size));
    }
    if leaf_of(audit, stored.size - 1)? != stored.last_leaf {
        return Err(format!("entry {} of this ledger is not the one it was taken after", stored.size - 1));
    }
    if stored.observe != observe || stored.detector.thresholds() != fresh.detector.thresholds() {
        return Err("detection's settings changed since it was taken".into());
    }
    if stored.verify_limit != fresh.statements.limits() {
        return Err("verify's limit on wrong statements changed since it was taken".into());
    }
    let mut statuses = HashMap::new();
    for (agent, (status, index)) in stored.statuses {
        let status = status.parse().map_err(|error| format!("a status does not read: {error}"))?;
        statuses.insert(agent, (status, index));
    }
    let rebuilt = Rebuilt {
        detector: stored.detector,
        statements: WrongStatements::with_rows(fresh.statements.clone(), stored.statements),
        recorded: RecordedState { statuses, revocations: stored.revocations },
    };
    Ok(Some((rebuilt, stored.size)))
}
