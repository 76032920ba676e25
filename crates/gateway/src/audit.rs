//! Where audit entries go. Every decision becomes one entry (`cordon_entry::Entry`, the one
//! encoding every writer and reader shares), appended and durable before the caller hears
//! anything.

use std::future::Future;
use std::pin::Pin;

use cordon_ledger::Ledger;

pub type AuditFuture = Pin<Box<dyn Future<Output = Result<u64, AuditError>> + Send>>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the audit log cannot record this request: {0}")]
pub struct AuditError(pub String);

/// A checkpoint note and, per entry proven against it, its index, bytes and receipt.
pub type Proven = (String, Vec<(u64, Vec<u8>, String)>);

/// Visits one stored entry (index, bytes); an error stops the scan.
pub type EntryVisitor<'a> = dyn FnMut(u64, &[u8]) -> Result<(), String> + 'a;

/// Where entries go. The ledger in production; tests put a failing log here to show that a
/// request that cannot be audited reveals nothing.
pub trait AuditLog: Send + Sync {
    /// Appends entries with consecutive indexes, all or none; the future resolves to the
    /// first one's index once they are durable. Entries the log refuses at once (too
    /// large, or the log has failed or closed) are an error here, so the caller knows no
    /// index was used.
    fn append(&self, entries: Vec<Vec<u8>>) -> Result<AuditFuture, AuditError>;
    /// The latest signed checkpoint note.
    fn checkpoint(&self) -> String;
    /// A tlog-proof receipt for entry `index`, publishing a checkpoint first if needed.
    fn receipt(&self, index: u64) -> Result<String, AuditError>;
    /// Group-commit counters, for metrics.
    fn stats(&self) -> cordon_ledger::LedgerStats {
        cordon_ledger::LedgerStats::default()
    }
    /// Entries appended so far: the index the next append gets.
    fn size(&self) -> u64 {
        0
    }
    /// Visits every durable entry in order (for rebuilding detection at start).
    fn for_each_entry(&self, visit: &mut EntryVisitor<'_>) -> Result<(), AuditError> {
        self.for_each_entry_from(0, self.size(), visit)
    }
    /// Visits the entries from index `from` up to (not including) `to`, in order.
    fn for_each_entry_from(&self, _from: u64, _to: u64, _visit: &mut EntryVisitor<'_>) -> Result<(), AuditError> {
        Ok(())
    }
    /// Publishes a checkpoint covering every durable entry and proves `indexes` against that
    /// one checkpoint: its note and, per index, the entry's bytes and its receipt.
    fn prove_all(&self, _indexes: &[u64]) -> Result<Proven, AuditError> {
        Err(AuditError("this audit log cannot prove entries".into()))
    }
    /// The log's verifier key (`name+id+key`).
    fn verifier_key(&self) -> String {
        String::new()
    }
}

/// The audit ledger as an `AuditLog`.
#[derive(Debug)]
pub struct LedgerAudit {
    ledger: Ledger,
}

impl LedgerAudit {
    pub fn new(ledger: Ledger) -> LedgerAudit {
        LedgerAudit { ledger }
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }
}

impl AuditLog for LedgerAudit {
    fn append(&self, entries: Vec<Vec<u8>>) -> Result<AuditFuture, AuditError> {
        let appending = self.ledger.try_append_batch(entries).map_err(|error| AuditError(error.to_string()))?;
        Ok(Box::pin(async move { appending.await.map_err(|error| AuditError(error.to_string())) }))
    }

    fn checkpoint(&self) -> String {
        self.ledger.checkpoint().note
    }

    fn receipt(&self, index: u64) -> Result<String, AuditError> {
        if index >= self.ledger.checkpoint().checkpoint.size {
            self.ledger.publish().map_err(|error| AuditError(error.to_string()))?;
        }
        self.ledger.reader().receipt(index).map_err(|error| AuditError(error.to_string()))
    }

    fn stats(&self) -> cordon_ledger::LedgerStats {
        self.ledger.stats()
    }

    fn size(&self) -> u64 {
        // Publishing covers every durable entry, so the size counts them all.
        self.ledger
            .publish()
            .map_or_else(|_| self.ledger.checkpoint().checkpoint.size, |published| published.checkpoint.size)
    }

    fn prove_all(&self, indexes: &[u64]) -> Result<Proven, AuditError> {
        let failed = |error: cordon_ledger::LedgerError| AuditError(error.to_string());
        let signed = self.ledger.publish().map_err(failed)?;
        let size = signed.checkpoint.size;
        let reader = self.ledger.reader();
        let mut proven = Vec::with_capacity(indexes.len());
        for &index in indexes {
            let bytes = reader.entry(index, size).map_err(failed)?;
            let proof = reader.inclusion_proof(index, size).map_err(failed)?;
            proven.push((index, bytes, cordon_ledger::format_receipt(index, &proof, &signed.note)));
        }
        Ok((signed.note, proven))
    }

    fn verifier_key(&self) -> String {
        self.ledger.verifier().to_string()
    }

    fn for_each_entry_from(&self, from: u64, to: u64, visit: &mut EntryVisitor<'_>) -> Result<(), AuditError> {
        let size = self.ledger.publish().map_err(|error| AuditError(error.to_string()))?.checkpoint.size;
        let mut refused = None;
        let scanned = self.ledger.reader().for_each_entry(from.min(size), to.min(size), |index, bytes| {
            visit(index, bytes).map_err(|reason| {
                refused = Some(reason.clone());
                cordon_ledger::LedgerError::Failed { reason }
            })
        });
        match (refused, scanned) {
            (Some(reason), _) => Err(AuditError(reason)),
            (None, scanned) => scanned.map_err(|error| AuditError(error.to_string())),
        }
    }
}
