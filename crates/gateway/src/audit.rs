//! Where audit entries go. Every decision becomes one entry (`cordon_entry::Entry`, the one
//! encoding every writer and reader shares), appended and durable before the caller hears
//! anything.

use std::future::Future;
use std::pin::Pin;

use std::sync::{PoisonError, RwLock, TryLockError};

use cordon_ledger::{Ledger, LedgerConfig, LedgerError, LogReader, SignedCheckpoint};

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
    /// The latest signed checkpoint note; an error if none can be read now.
    fn checkpoint(&self) -> Result<String, AuditError>;
    /// A tlog-proof receipt for entry `index`, publishing a checkpoint first if needed.
    fn receipt(&self, index: u64) -> Result<String, AuditError>;
    /// A signed checkpoint covering `size` entries at least, published now if need be.
    fn checkpoint_covering(&self, size: u64) -> Result<String, AuditError> {
        let note = self.checkpoint()?;
        if self.published_size() >= size {
            Ok(note)
        } else {
            Err(AuditError(format!("no checkpoint covers {size} entries yet")))
        }
    }
    /// Group-commit counters, for metrics.
    fn stats(&self) -> cordon_ledger::LedgerStats {
        cordon_ledger::LedgerStats::default()
    }
    /// Entries appended so far (durable): the index the next append gets.
    fn size(&self) -> u64 {
        0
    }
    /// Entries a published checkpoint covers, readable without publishing.
    fn published_size(&self) -> u64 {
        self.size()
    }
    /// Visits every durable entry in order (for rebuilding detection at start).
    fn for_each_entry(&self, visit: &mut EntryVisitor<'_>) -> Result<(), AuditError> {
        self.for_each_entry_from(0, self.size(), visit)
    }
    /// Visits the entries from index `from` up to (not including) `to`, in order, publishing
    /// a checkpoint first if `to` is past the published one; an error if it cannot.
    fn for_each_entry_from(&self, _from: u64, _to: u64, _visit: &mut EntryVisitor<'_>) -> Result<(), AuditError> {
        Ok(())
    }
    /// Publishes a checkpoint covering every durable entry and proves `indexes` against that
    /// one checkpoint: its note and, per index, the entry's bytes and its receipt.
    fn prove_all(&self, _indexes: &[u64]) -> Result<Proven, AuditError> {
        Err(AuditError("this audit log cannot prove entries".into()))
    }
    /// The consistency proof from the tree of `old` entries to that of `new`, both within
    /// the published checkpoint (RFC 9162 section 2.1.4).
    fn consistency_proof(&self, _old: u64, _new: u64) -> Result<Vec<cordon_ledger::Hash>, AuditError> {
        Err(AuditError("this audit log cannot prove consistency".into()))
    }
    /// The log's verifier key (`name+id+key`).
    fn verifier_key(&self) -> String {
        String::new()
    }
    /// Why the log cannot commit now, if it cannot (readiness asks this).
    fn failure(&self) -> Option<String> {
        None
    }
    /// Recovers a failed log without a restart (reopens it, re-verifying its tail), if it
    /// has failed; whether it recovered. An error if it is still failed.
    fn heal(&self) -> Result<bool, AuditError> {
        Ok(false)
    }
    /// Stops taking entries and publishes a final checkpoint covering every durable one;
    /// its size. An error if that checkpoint cannot cover them all.
    fn close(&self) -> Result<u64, AuditError> {
        Ok(self.size())
    }
    /// A file of the log's public C2SP tree as published: `checkpoint`, or a tile path
    /// (`tile/0/x001/067.p/5`, `tile/entries/000`) within the published checkpoint; `None`
    /// for any other path.
    fn public_file(&self, _path: &str) -> Result<Option<Vec<u8>>, AuditError> {
        Ok(None)
    }
    /// The ledger sequenced through the shared store, whose appends take its turn (several
    /// gateways append to it); `None` for a log only this process writes.
    fn shared(&self) -> Option<&crate::shared_audit::SharedAudit> {
        None
    }
}

/// The audit ledger as an `AuditLog`. It holds the writer behind a lock only so that a
/// failed one can be replaced by a recovered one ([`AuditLog::heal`]) while the gateway
/// serves; appends never wait for that lock.
#[derive(Debug)]
pub struct LedgerAudit {
    ledger: RwLock<Option<Ledger>>,
    reader: LogReader,
    verifier: String,
    dir: std::path::PathBuf,
    config: LedgerConfig,
    /// Set when a failed writer was closed and reopening it failed too: the entries it had
    /// acknowledged, past which its write-ahead records must not be recovered (and the size
    /// [`AuditLog::size`] answers while no writer is open).
    reopen_from: std::sync::Mutex<Option<u64>>,
    /// Closed for good: healing opens nothing any more.
    closed: std::sync::atomic::AtomicBool,
}

impl LedgerAudit {
    pub fn new(ledger: Ledger) -> LedgerAudit {
        let reader = ledger.reader();
        let verifier = ledger.verifier().to_string();
        let dir = ledger.dir().to_path_buf();
        let config = ledger.config().clone();
        LedgerAudit {
            ledger: RwLock::new(Some(ledger)),
            reader,
            verifier,
            dir,
            config,
            reopen_from: std::sync::Mutex::new(None),
            closed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// `use` with the open writer; an error while it is closed or being replaced.
    fn with<T>(&self, use_ledger: impl FnOnce(&Ledger) -> Result<T, LedgerError>) -> Result<T, AuditError> {
        let guard = self.ledger.read().unwrap_or_else(PoisonError::into_inner);
        let ledger = guard.as_ref().ok_or_else(closed)?;
        use_ledger(ledger).map_err(failed)
    }

    /// The latest published checkpoint: the writer's, or while there is none, the file's.
    fn published(&self) -> Option<SignedCheckpoint> {
        self.with(|ledger| Ok(ledger.checkpoint())).ok().or_else(|| self.reader.checkpoint().ok())
    }

    /// A checkpoint covering `size` entries at least, published now if need be.
    fn covering(&self, size: u64) -> Result<SignedCheckpoint, AuditError> {
        self.with(|ledger| {
            let published = ledger.checkpoint();
            if published.checkpoint.size >= size { Ok(published) } else { ledger.publish() }
        })
    }
}

/// A consistency proof from `old` entries to `new` is asked of trees within the published
/// checkpoint (`published`), the first at least 1 and not past the second.
pub(crate) fn check_consistency_range(old: u64, new: u64, published: u64) -> Result<(), AuditError> {
    if old == 0 || old > new || new > published {
        return Err(AuditError(format!(
            "no consistency proof from {old} to {new} entries: both must be within the published {published}, \
             the first at least 1 and not past the second"
        )));
    }
    Ok(())
}

fn closed() -> AuditError {
    AuditError("the audit ledger is closed, or being reopened after a failure".into())
}

fn failed(error: LedgerError) -> AuditError {
    AuditError(error.to_string())
}

impl AuditLog for LedgerAudit {
    fn append(&self, entries: Vec<Vec<u8>>) -> Result<AuditFuture, AuditError> {
        // Never waits: while the writer is being replaced, appends are refused at once.
        let guard = match self.ledger.try_read() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return Err(closed()),
        };
        let appending = guard.as_ref().ok_or_else(closed)?.try_append_batch(entries).map_err(failed)?;
        Ok(Box::pin(async move { appending.await.map_err(failed) }))
    }

    fn checkpoint(&self) -> Result<String, AuditError> {
        self.published().map(|signed| signed.note).ok_or_else(|| AuditError("no checkpoint can be read now".into()))
    }

    /// A receipt against the published checkpoint if it covers `index`; otherwise one is
    /// published first. A durable entry the failed log cannot publish is an error, never a
    /// missing entry.
    fn receipt(&self, index: u64) -> Result<String, AuditError> {
        self.covering(index.saturating_add(1))?;
        self.reader.receipt(index).map_err(failed)
    }

    fn checkpoint_covering(&self, size: u64) -> Result<String, AuditError> {
        self.covering(size).map(|signed| signed.note)
    }

    fn stats(&self) -> cordon_ledger::LedgerStats {
        self.with(|ledger| Ok(ledger.stats())).unwrap_or_default()
    }

    fn size(&self) -> u64 {
        self.with(|ledger| Ok(ledger.durable_size())).unwrap_or_else(|_| {
            let acknowledged = *self.reopen_from.lock().unwrap_or_else(PoisonError::into_inner);
            acknowledged.unwrap_or(0).max(self.published_size())
        })
    }

    fn published_size(&self) -> u64 {
        self.published().map_or(0, |signed| signed.checkpoint.size)
    }

    fn prove_all(&self, indexes: &[u64]) -> Result<Proven, AuditError> {
        let signed = self.with(Ledger::publish)?;
        let size = signed.checkpoint.size;
        let mut proven = Vec::with_capacity(indexes.len());
        for &index in indexes {
            let bytes = self.reader.entry(index, size).map_err(failed)?;
            let proof = self.reader.inclusion_proof(index, size).map_err(failed)?;
            proven.push((index, bytes, cordon_ledger::format_receipt(index, &proof, &signed.note)));
        }
        Ok((signed.note, proven))
    }

    fn verifier_key(&self) -> String {
        self.verifier.clone()
    }

    fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<cordon_ledger::Hash>, AuditError> {
        check_consistency_range(old, new, self.published_size())?;
        self.reader.consistency_proof(old, new).map_err(failed)
    }

    fn for_each_entry_from(&self, from: u64, to: u64, visit: &mut EntryVisitor<'_>) -> Result<(), AuditError> {
        let size = self.covering(to)?.checkpoint.size;
        if size < to {
            return Err(AuditError(format!("entries up to {to} were asked for and the ledger can show {size}")));
        }
        let mut refused = None;
        // The tiles are those of the published tree: a range ending before it cannot name its
        // own (its last partial tile may have been replaced by a wider one).
        let scanned = self.reader.for_each_entry_of(size, from.min(size), to.min(size), |index, bytes| {
            visit(index, bytes).map_err(|reason| {
                refused = Some(reason.clone());
                LedgerError::Failed { reason }
            })
        });
        match (refused, scanned) {
            (Some(reason), _) => Err(AuditError(reason)),
            (None, scanned) => scanned.map_err(failed),
        }
    }

    fn public_file(&self, path: &str) -> Result<Option<Vec<u8>>, AuditError> {
        if path == cordon_ledger::CHECKPOINT_FILE {
            return self.checkpoint().map(|note| Some(note.into_bytes()));
        }
        let Some(id) = cordon_ledger::TileId::parse(path) else { return Ok(None) };
        if !id.within(self.published_size()) {
            return Ok(None);
        }
        // A partial tile the log has replaced by a wider one (or completed) may be gone: the
        // checkpoint's own partial tiles and every full tile are what a client asks for.
        let Ok((bytes, fallback)) = cordon_ledger::read_tile_file(self.reader.layout(), id) else { return Ok(None) };
        if !fallback {
            return Ok(Some(bytes));
        }
        Ok(match id.kind {
            cordon_ledger::TileKind::Hashes { .. } => {
                bytes.get(..id.width * cordon_ledger::HASH_SIZE).map(<[u8]>::to_vec)
            }
            cordon_ledger::TileKind::Entries => {
                cordon_ledger::decode_bundle(&bytes, id.width, true).ok().map(|entries| {
                    let mut bundle = Vec::new();
                    for entry in entries {
                        cordon_ledger::push_bundle_entry(&mut bundle, entry);
                    }
                    bundle
                })
            }
        })
    }

    fn failure(&self) -> Option<String> {
        let guard = self.ledger.read().unwrap_or_else(PoisonError::into_inner);
        match guard.as_ref() {
            Some(ledger) => ledger.failure(),
            None => Some(closed().0),
        }
    }

    fn heal(&self) -> Result<bool, AuditError> {
        if self.failure().is_none() {
            return Ok(false);
        }
        let mut guard = self.ledger.write().unwrap_or_else(PoisonError::into_inner);
        if self.closed.load(std::sync::atomic::Ordering::Acquire) {
            return Err(closed());
        }
        let mut reopen_from = self.reopen_from.lock().unwrap_or_else(PoisonError::into_inner);
        let acknowledged = match (guard.take(), *reopen_from) {
            (Some(ledger), _) if ledger.failure().is_none() => {
                *guard = Some(ledger);
                return Ok(false);
            }
            // Read once the old writer has stopped: a group it had begun may still have been
            // acknowledged, and nothing acknowledged may be dropped.
            (Some(ledger), _) => ledger.close_after_failure(),
            (None, Some(acknowledged)) => acknowledged,
            (None, None) => return Err(closed()),
        };
        *reopen_from = Some(acknowledged);
        let reopened = Ledger::recover(&self.dir, self.config.clone(), acknowledged);
        let reopened = reopened.map_err(failed)?;
        *reopen_from = None;
        let failure = reopened.failure();
        *guard = Some(reopened);
        match failure {
            None => Ok(true),
            Some(reason) => Err(AuditError(reason)),
        }
    }

    fn close(&self) -> Result<u64, AuditError> {
        self.closed.store(true, std::sync::atomic::Ordering::Release);
        let ledger = self.ledger.write().unwrap_or_else(PoisonError::into_inner).take().ok_or_else(closed)?;
        ledger.close().map(|signed| signed.checkpoint.size).map_err(failed)
    }
}
