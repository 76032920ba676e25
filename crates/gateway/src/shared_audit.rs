//! The audit log of gateways sharing a PostgreSQL store: the ledger sequenced through the
//! database ([`cordon_store::SharedLedger`]). Appends do not go through [`AuditLog::append`]
//! on the request path: the sequencer takes the ledger's turn (see `detection.rs`), so that
//! detection first reads what other gateways appended and scores in the ledger's order.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

use cordon_store::{SharedLedger, StoreError};

use crate::audit::{AuditError, AuditFuture, AuditLog, EntryVisitor, Proven};
use crate::detection::{Pending, Sequenced};
use crate::error::GatewayError;

/// How long a request for a checkpoint covering new entries waits for the integrator (on
/// this gateway or another).
const CHECKPOINT_WAIT: Duration = Duration::from_secs(10);

/// The longest a turn's leader keeps the turn open for requests arriving to join it: every
/// gateway's appends wait while a turn is held.
const GATHER_FOR_AT_MOST: Duration = Duration::from_millis(2);

/// Requests gathered into one turn of the ledger (group commit across requests).
#[derive(Debug, Default)]
pub(crate) struct Gathering {
    /// Requests that have asked to append and not yet built or led.
    arriving: AtomicUsize,
    state: Mutex<Gathered>,
    /// Signalled when a turn's outcomes are in.
    decided: Condvar,
}

#[derive(Debug, Default)]
struct Gathered {
    /// A leader holds the ledger's turn and takes entries built in it.
    open: bool,
    entries: Vec<Vec<u8>>,
    /// The members of the open turn, in the order they built: ticket and entry count.
    members: Vec<(u64, usize)>,
    next_ticket: u64,
    /// Each member's outcome once its turn ended: its first index, or why it failed.
    outcomes: HashMap<u64, Result<u64, String>>,
}

impl Gathering {
    /// Ends a turn whose leader stopped without settling it: it is closed to new requests,
    /// and each request that built in it is told it failed (its entries were not committed).
    fn abandon(&self, why: &str) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.open = false;
        state.entries.clear();
        for (ticket, _) in std::mem::take(&mut state.members) {
            state.outcomes.insert(ticket, Err(why.to_string()));
        }
        drop(state);
        self.decided.notify_all();
    }
}

/// Held by a turn's leader: should the leader unwind (a panic anywhere in the turn), the turn
/// is abandoned rather than left open, where the requests that built in it, and every request
/// after them, would wait for it for ever. The leader's own caller gets the panic's 500.
struct LeaderUnwinds<'g>(&'g Gathering);

impl Drop for LeaderUnwinds<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.abandon("the turn's leader failed before it committed");
        }
    }
}

#[derive(Debug)]
pub struct SharedAudit {
    gathering: Gathering,
    ledger: SharedLedger,
    verifier: String,
    /// The store on the same database: its connections are opened again with the ledger's
    /// once the database answers after an outage.
    store: std::sync::Arc<cordon_store::Store>,
    /// Why the database could not be reached at the last attempt, until an attempt succeeds.
    failure: Mutex<Option<String>>,
}

impl SharedAudit {
    pub fn new(ledger: SharedLedger, verifier: String, store: std::sync::Arc<cordon_store::Store>) -> SharedAudit {
        SharedAudit { gathering: Gathering::default(), ledger, verifier, store, failure: Mutex::new(None) }
    }

    /// Notes how an attempt went: an unreachable database is this log's failure (readiness
    /// reports it) until an attempt gets through.
    pub(crate) fn noted<T>(&self, result: Result<T, StoreError>) -> Result<T, AuditError> {
        let mut failure = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(value) => {
                if failure.take().is_some() {
                    drop(failure);
                    // Back after an outage: every pooled connection is opened afresh, so none
                    // fails a request on its stale socket first.
                    let reconnected = self.ledger.reconnect().and_then(|()| self.store.reconnect_all());
                    if let Err(error) = reconnected {
                        *self.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(error.to_string());
                        return Err(AuditError(error.to_string()));
                    }
                    tracing::warn!("the shared store answers again; its connections were opened afresh");
                }
                Ok(value)
            }
            Err(error) => {
                if error.is_unavailable() {
                    *failure = Some(error.to_string());
                }
                Err(AuditError(error.to_string()))
            }
        }
    }
}

impl AuditLog for SharedAudit {
    fn append(&self, entries: Vec<Vec<u8>>) -> Result<AuditFuture, AuditError> {
        let first = self.noted(self.ledger.append(entries))?;
        Ok(Box::pin(async move { Ok(first) }))
    }

    fn checkpoint(&self) -> Result<String, AuditError> {
        self.noted(self.ledger.checkpoint()).map(|signed| signed.note)
    }

    fn receipt(&self, index: u64) -> Result<String, AuditError> {
        self.noted(self.ledger.checkpoint_covering(index.saturating_add(1), CHECKPOINT_WAIT))?;
        self.noted(self.ledger.receipt(index))
    }

    fn checkpoint_covering(&self, size: u64) -> Result<String, AuditError> {
        self.noted(self.ledger.checkpoint_covering(size, CHECKPOINT_WAIT)).map(|signed| signed.note)
    }

    fn size(&self) -> u64 {
        self.noted(self.ledger.size()).unwrap_or_else(|_| self.published_size())
    }

    fn published_size(&self) -> u64 {
        self.ledger.checkpoint().map_or(0, |signed| signed.checkpoint.size)
    }

    fn for_each_entry_from(&self, from: u64, to: u64, visit: &mut EntryVisitor<'_>) -> Result<(), AuditError> {
        let mut refused = None;
        let scanned = self.ledger.for_each_entry(from, to, &mut |index, bytes| {
            visit(index, bytes).map_err(|reason| {
                refused = Some(reason.clone());
                StoreError::Sql { database: String::new(), action: "read the ledger", message: reason }
            })
        });
        match (refused, scanned) {
            (Some(reason), _) => Err(AuditError(reason)),
            (None, scanned) => self.noted(scanned),
        }
    }

    fn prove_all(&self, indexes: &[u64]) -> Result<Proven, AuditError> {
        let size = self.size();
        let signed = self.noted(self.ledger.checkpoint_covering(size, CHECKPOINT_WAIT))?;
        let size = signed.checkpoint.size;
        let mut proven = Vec::with_capacity(indexes.len());
        for &index in indexes {
            let mut bytes = None;
            self.noted(self.ledger.for_each_entry(index, index.saturating_add(1), &mut |_, entry| {
                bytes = Some(entry.to_vec());
                Ok(())
            }))?;
            let bytes = bytes.ok_or_else(|| AuditError(format!("entry {index} is not in the ledger")))?;
            let proof = self.noted(self.ledger.inclusion_proof(index, size))?;
            proven.push((index, bytes, cordon_ledger::format_receipt(index, &proof, &signed.note)));
        }
        Ok((signed.note, proven))
    }

    fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<cordon_ledger::Hash>, AuditError> {
        crate::audit::check_consistency_range(old, new, self.published_size())?;
        self.noted(self.ledger.consistency_proof(old, new))
    }

    fn verifier_key(&self) -> String {
        self.verifier.clone()
    }

    fn failure(&self) -> Option<String> {
        self.failure.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Tries the database again: recovered once it answers.
    fn heal(&self) -> Result<bool, AuditError> {
        if self.failure().is_none() {
            return Ok(false);
        }
        self.noted(self.ledger.size()).map(|_| true)
    }

    /// Stops integrating here, leaving a checkpoint over every entry committed so far if this
    /// gateway held the integrator's lock; the size committed.
    fn close(&self) -> Result<u64, AuditError> {
        self.ledger.stop_integrating();
        Ok(self.size())
    }

    fn public_file(&self, path: &str) -> Result<Option<Vec<u8>>, AuditError> {
        if path == cordon_ledger::CHECKPOINT_FILE {
            return self.checkpoint().map(|note| Some(note.into_bytes()));
        }
        let Some(id) = cordon_ledger::TileId::parse(path) else { return Ok(None) };
        self.noted(self.ledger.tile_bytes(id))
    }

    fn shared(&self) -> Option<&SharedAudit> {
        Some(self)
    }
}

/// What the ledger's signing key is sealed under (with the KEK's wrapping of its data key).
const LEDGER_KEY_CONTEXT: &str = "cordon ledger signing key";

/// Makes the ledger's signing key named `origin` and stores it in the database at `url`,
/// sealed under a data key the KEK wraps (a gateway without the KEK cannot sign); returns the
/// verifier key. Refused if the database holds another key already.
pub(crate) fn create_key(
    url: &str,
    origin: &str,
    kek: &dyn cordon_vault::KeyEncryptionKey,
) -> Result<String, GatewayError> {
    let signer = cordon_ledger::Signer::generate(origin).map_err(|error| GatewayError::Internal(error.to_string()))?;
    let data_key = cordon_vault::DataKey::generate()?;
    let sealed = data_key.seal_bytes(LEDGER_KEY_CONTEXT, signer.to_private_string().as_bytes())?;
    let verifier = signer.verifier().to_string();
    let key = cordon_store::StoredLedgerKey {
        origin: origin.to_string(),
        verifier: verifier.clone(),
        kek_id: kek.id().to_string(),
        wrapped_signing_key: key_blob(&kek.wrap(LEDGER_KEY_CONTEXT, &data_key)?, &sealed)?,
    };
    let stored = cordon_store::SharedLedger::store_key(url, &key)?;
    if stored.verifier != verifier {
        return Err(GatewayError::Conflict(
            "the database's ledger already has a signing key: another deployment was made in it at the same time"
                .into(),
        ));
    }
    Ok(verifier)
}

/// The stored form of the signing key: the wrapped data key's length (4 bytes, big-endian),
/// the wrapped data key, and the signing key sealed under it.
fn key_blob(wrapped: &[u8], sealed: &[u8]) -> Result<Vec<u8>, GatewayError> {
    let length = u32::try_from(wrapped.len()).map_err(|_| GatewayError::Internal("a wrapped key too long".into()))?;
    let mut blob = length.to_be_bytes().to_vec();
    blob.extend_from_slice(wrapped);
    blob.extend_from_slice(sealed);
    Ok(blob)
}

/// The stored signing key's wrapped data key and sealed signing key.
fn key_parts(blob: &[u8]) -> Result<(&[u8], &[u8]), GatewayError> {
    let unreadable = || GatewayError::Internal("the ledger's signing key in the database is damaged".into());
    let (length, rest) = blob.split_first_chunk::<4>().ok_or_else(unreadable)?;
    rest.split_at_checked(u32::from_be_bytes(*length) as usize).ok_or_else(unreadable)
}

fn stored_key(url: &str) -> Result<cordon_store::StoredLedgerKey, GatewayError> {
    cordon_store::SharedLedger::key(url)?.ok_or_else(|| {
        GatewayError::Internal(format!(
            "the database `{}` holds no ledger key: make the deployment with `cordon init --store`",
            cordon_store::without_password(url)
        ))
    })
}

/// Wraps the ledger's signing key under the KEK `to` (it was under `from`): a KEK rotation
/// does this before the old key is destroyed. Nothing to do if it is under `to` already (a
/// rotation resumed).
pub(crate) fn rewrap_key(
    url: &str,
    from: &dyn cordon_vault::KeyEncryptionKey,
    to: &dyn cordon_vault::KeyEncryptionKey,
) -> Result<(), GatewayError> {
    let stored = stored_key(url)?;
    if stored.kek_id == to.id() {
        return Ok(());
    }
    let (wrapped, sealed) = key_parts(&stored.wrapped_signing_key)?;
    let data_key = from.unwrap(LEDGER_KEY_CONTEXT, wrapped)?;
    let rewrapped = to.wrap(LEDGER_KEY_CONTEXT, &data_key)?;
    // Checked before it replaces the one that works.
    to.unwrap(LEDGER_KEY_CONTEXT, &rewrapped)?;
    Ok(cordon_store::SharedLedger::rewrap_key(url, &stored.kek_id, to.id(), &key_blob(&rewrapped, sealed)?)?)
}

/// Gives a key-encryption key by its id.
pub(crate) type KekById<'a> =
    dyn Fn(&str) -> Result<std::sync::Arc<dyn cordon_vault::KeyEncryptionKey>, GatewayError> + 'a;

/// Opens the ledger in the database at `url`, its signing key opened with the KEK it is
/// stored under (`load` gives a KEK by id: the current one, or mid-rotation the next).
pub(crate) fn open(
    url: &str,
    load: &KekById<'_>,
    store: std::sync::Arc<cordon_store::Store>,
) -> Result<SharedAudit, GatewayError> {
    let stored = stored_key(url)?;
    let unreadable = || {
        GatewayError::Internal(format!(
            "the ledger's signing key in the database cannot be opened with the KEK `{}`",
            stored.kek_id
        ))
    };
    let kek = load(&stored.kek_id)?;
    let (wrapped, sealed) = key_parts(&stored.wrapped_signing_key)?;
    let data_key = kek.unwrap(LEDGER_KEY_CONTEXT, wrapped).map_err(|_| unreadable())?;
    let private = data_key.open_bytes(LEDGER_KEY_CONTEXT, sealed).map_err(|_| unreadable())?;
    let private = std::str::from_utf8(&private).map_err(|_| unreadable())?;
    let signer = cordon_ledger::Signer::parse(private).map_err(|_| unreadable())?;
    if signer.verifier().to_string() != stored.verifier {
        return Err(unreadable());
    }
    let ledger = SharedLedger::open(url, signer, cordon_store::SharedLedgerConfig::default())?;
    Ok(SharedAudit::new(ledger, stored.verifier, store))
}

impl crate::service::Gateway {
    /// Appends in the ledger's order, under the sequencer's lock: `build` gets the index the
    /// first entry takes and the detector, and returns the entries. On the shared ledger this
    /// happens in the ledger's turn, after detection has taken in what other gateways
    /// appended: every gateway's detector sees every decision in one order, wherever it was
    /// made, so a suspension by one holds on all of them.
    pub(crate) fn append_in_order<T>(
        &self,
        build: impl FnOnce(u64, &mut Sequenced) -> Result<(Vec<Vec<u8>>, T), GatewayError>,
    ) -> Result<(Pending, T), GatewayError> {
        let Some(shared) = self.audit.shared() else {
            return crate::detection::append_sequenced(&self.sequencer, self.audit.as_ref(), build);
        };
        let gathering = &shared.gathering;
        gathering.arriving.fetch_add(1, Ordering::AcqRel);
        let mut sequenced = self.lock_sequencer();
        let joined = gathering.state.lock().unwrap_or_else(PoisonError::into_inner);
        if joined.open {
            // Another request leads a turn of the ledger now: this one builds in that turn,
            // in the ledger's order, and waits for the turn's commit.
            drop(joined);
            gathering.arriving.fetch_sub(1, Ordering::AcqRel);
            let first = sequenced.next_index;
            let (entries, extra) = build(first, &mut sequenced).inspect_err(|_| sequenced.tainted = true)?;
            sequenced.next_index += entries.len() as u64;
            let mut state = gathering.state.lock().unwrap_or_else(PoisonError::into_inner);
            let ticket = state.next_ticket;
            state.next_ticket += 1;
            state.members.push((ticket, entries.len()));
            state.entries.extend(entries);
            drop(sequenced);
            loop {
                if let Some(outcome) = state.outcomes.remove(&ticket) {
                    return match outcome {
                        Ok(index) if index == first => Ok((Pending::done(first), extra)),
                        Ok(index) => Err(GatewayError::Internal(format!(
                            "the ledger gave index {index} where {first} was built in its place"
                        ))),
                        Err(reason) => Err(GatewayError::AuditUnavailable(AuditError(reason))),
                    };
                }
                state = gathering.decided.wait(state).unwrap_or_else(PoisonError::into_inner);
            }
        }
        drop(joined);
        gathering.arriving.fetch_sub(1, Ordering::AcqRel);
        self.lead_turn(shared, sequenced, build)
    }

    /// Leads a turn of the shared ledger: takes it (waiting for any other gateway's), takes in
    /// what others appended, builds this request's entries, then keeps the turn open while
    /// requests that arrived meanwhile build theirs in it (group commit: one commit for all),
    /// commits them together, and tells each its outcome.
    fn lead_turn<T>(
        &self,
        shared: &SharedAudit,
        sequenced: std::sync::MutexGuard<'_, Sequenced>,
        build: impl FnOnce(u64, &mut Sequenced) -> Result<(Vec<Vec<u8>>, T), GatewayError>,
    ) -> Result<(Pending, T), GatewayError> {
        let gathering = &shared.gathering;
        // Declared before the sequencer's guard, so dropped after it when unwinding.
        let _unwinds = LeaderUnwinds(gathering);
        let mut sequenced = Some(sequenced);
        let mut outcome: Option<Result<(u64, T), GatewayError>> = None;
        let mut members: Vec<(u64, usize)> = Vec::new();
        let mut leader_end = 0u64;
        let turned = shared.ledger.turn(|turn| {
            let Some(mut held) = sequenced.take() else {
                return Err(StoreError::Sql {
                    database: String::new(),
                    action: "append",
                    message: "no sequencer".into(),
                });
            };
            // States ahead of the ledger (a turn that did not commit took its entries in, or a
            // build failed part-way) are rebuilt from what the ledger holds below this turn.
            if held.tainted || held.next_index > turn.first() {
                self.restore_into(Some(&mut held), turn.first()).map_err(|error| StoreError::Sql {
                    database: String::new(),
                    action: "rebuild detection",
                    message: error.to_string(),
                })?;
                held.tainted = false;
                held.next_index = turn.first();
            }
            self.catch_up(&mut held, &mut |from, visit| turn.for_each_entry_before(from, visit))?;
            held.next_index = turn.first();
            match build(turn.first(), &mut held) {
                Ok((entries, extra)) => {
                    held.next_index += entries.len() as u64;
                    leader_end = held.next_index;
                    turn.push(entries)?;
                    outcome = Some(Ok((turn.first(), extra)));
                }
                Err(error) => {
                    held.tainted = true;
                    outcome = Some(Err(error));
                    return Err(StoreError::Sql {
                        database: String::new(),
                        action: "append",
                        message: "not built".into(),
                    });
                }
            }
            // Open to the requests waiting now; closed once none is left arriving (or after
            // the longest a request waits to join), under the sequencer's lock so that no
            // build is half done.
            gathering.state.lock().unwrap_or_else(PoisonError::into_inner).open = true;
            drop(held);
            let opened = std::time::Instant::now();
            while gathering.arriving.load(Ordering::Acquire) > 0 && opened.elapsed() < GATHER_FOR_AT_MOST {
                std::thread::yield_now();
            }
            let held = self.lock_sequencer();
            let mut state = gathering.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.open = false;
            members = std::mem::take(&mut state.members);
            let entries = std::mem::take(&mut state.entries);
            drop(state);
            drop(held);
            turn.push(entries)?;
            Ok(())
        });
        // A turn that failed before its work ran (the database out of reach at `BEGIN`) left
        // the sequencer's lock in `sequenced`: let it go before taking it again below.
        drop(sequenced);
        // Each member's index follows the leader's entries, in the order they were built.
        let led = matches!(outcome, Some(Ok(_)));
        let mut state = gathering.state.lock().unwrap_or_else(PoisonError::into_inner);
        match (&turned, led) {
            (Ok(((), _)), true) => {
                let mut next = leader_end;
                for (ticket, count) in &members {
                    state.outcomes.insert(*ticket, Ok(next));
                    next += *count as u64;
                }
            }
            _ => {
                let reason = match &turned {
                    Err(error) => error.to_string(),
                    Ok(_) => "the turn's first request was refused".into(),
                };
                for (ticket, _) in &members {
                    state.outcomes.insert(*ticket, Err(reason.clone()));
                }
                // What the members built is in the states but not in the ledger.
                if !members.is_empty() || turned.is_err() {
                    drop(state);
                    self.lock_sequencer().tainted = true;
                    state = gathering.state.lock().unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
        gathering.decided.notify_all();
        drop(state);
        match (turned, outcome) {
            (Ok(_), Some(Ok((first, extra)))) => Ok((Pending::done(first), extra)),
            (_, Some(Err(error))) => Err(error),
            (Err(error), _) => Err(GatewayError::AuditUnavailable(
                shared.noted::<()>(Err(error)).err().unwrap_or_else(|| AuditError("the ledger's turn failed".into())),
            )),
            (Ok(_), None) => Err(GatewayError::Internal("the ledger's turn ended without its entries".into())),
        }
    }

    /// Takes in what other gateways appended since this one last looked, before a request is
    /// decided: an agent suspended, a token revoked or a ticket closed on another gateway
    /// holds here from the next request. A database out of reach refuses the request.
    pub(crate) fn keep_up(&self) -> Result<(), GatewayError> {
        let Some(shared) = self.audit.shared() else { return Ok(()) };
        self.directory.settle(&self.store)?;
        let size = shared.noted(shared.ledger.size())?;
        let mut sequenced = self.lock_sequencer();
        if sequenced.tainted {
            // A turn that did not commit took its entries in: rebuilt from the ledger.
            self.restore_into(Some(&mut sequenced), size)?;
            sequenced.tainted = false;
            sequenced.next_index = size;
            return Ok(());
        }
        if sequenced.next_index >= size {
            return Ok(());
        }
        self.catch_up(&mut sequenced, &mut |from, visit| shared.ledger.for_each_entry(from, size, visit))
            .map_err(|error| GatewayError::AuditUnavailable(AuditError(error.to_string())))
    }

    /// Replays the entries from `sequenced.next_index` that `read` gives into detection, verify's
    /// counts and the recorded statuses, as a start's replay does, and drops what this
    /// gateway holds in memory that they may have changed.
    fn catch_up(
        &self,
        sequenced: &mut Sequenced,
        read: &mut dyn FnMut(u64, cordon_store::EntryVisitor<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let from = sequenced.next_index;
        let mut foreign: Vec<(u64, Vec<u8>)> = Vec::new();
        read(from, &mut |index, bytes| {
            foreign.push((index, bytes.to_vec()));
            Ok(())
        })?;
        let Some(&(last, _)) = foreign.last() else { return Ok(()) };
        let thresholds = sequenced.detector.thresholds().clone();
        let mut rebuilt = crate::detection::Rebuilt {
            detector: std::mem::replace(&mut sequenced.detector, cordon_detect::Detector::new(thresholds)),
            statements: std::mem::replace(&mut sequenced.statements, self.new_statements()),
            recorded: std::mem::take(&mut sequenced.recorded),
        };
        let mut facts = crate::analyst::StoredFacts::new(self);
        let replayed =
            crate::detection::replay(&mut rebuilt, sequenced.enabled, &mut facts, foreign.len() as u64, &mut |visit| {
                foreign.iter().try_for_each(|(index, bytes)| visit(*index, bytes))
            });
        sequenced.detector = rebuilt.detector;
        sequenced.statements = rebuilt.statements;
        sequenced.recorded = rebuilt.recorded;
        sequenced.next_index = last + 1;
        if let Err(error) = replayed {
            sequenced.tainted = true;
            return Err(StoreError::Sql {
                database: String::new(),
                action: "take in other gateways' entries",
                message: error.to_string(),
            });
        }
        self.forget_what_changed(&foreign);
        Ok(())
    }

    /// What this gateway keeps in memory in front of the store, dropped where another
    /// gateway's entries changed it: the directory cache on any change or suspension (agents,
    /// tickets, customers, approvals), and revoked tokens added.
    fn forget_what_changed(&self, foreign: &[(u64, Vec<u8>)]) {
        let mut directory_changed = false;
        for (_, bytes) in foreign {
            match cordon_entry::decode(bytes) {
                Ok(cordon_entry::Entry::Change(change)) => {
                    if change.change == "token.revoke" {
                        self.revoked
                            .write()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .insert(change.target.clone());
                    } else {
                        directory_changed = true;
                    }
                }
                Ok(cordon_entry::Entry::Alert(alert)) if alert.level == cordon_detect::Level::Suspend.name() => {
                    directory_changed = true;
                }
                _ => {}
            }
        }
        if directory_changed {
            self.directory.forget_all(crate::directory_cache::SETTLING_AFTER_ANOTHER_GATEWAYS_CHANGE);
        }
    }
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use super::*;

    /// Regression: a turn's leader that panicked after opening its turn left it open, so the
    /// requests that had built in it, and every one after them, waited for ever. Two members
    /// built in a turn whose leader then panics: both are told it failed, and the turn is
    /// closed to the next request.
    #[test]
    fn a_leader_that_panics_abandons_its_turn() {
        let gathering = Gathering::default();
        {
            let mut state = gathering.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.open = true;
            state.members = vec![(7, 1), (8, 2)];
            state.entries = vec![vec![1], vec![2], vec![3]];
        }
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _unwinds = LeaderUnwinds(&gathering);
            std::panic::panic_any("the leader fails");
        }));
        assert!(unwound.is_err());
        let state = gathering.state.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(!state.open, "closed to the next request");
        assert!(state.entries.is_empty() && state.members.is_empty());
        for ticket in [7, 8] {
            assert!(
                matches!(state.outcomes.get(&ticket), Some(Err(_))),
                "member {ticket} is told: {:?}",
                state.outcomes
            );
        }
    }

    /// A leader that settles its turn as it should leaves the outcomes it wrote alone.
    #[test]
    fn a_leader_that_returns_leaves_its_outcomes() {
        let gathering = Gathering::default();
        gathering.state.lock().unwrap_or_else(PoisonError::into_inner).outcomes.insert(3, Ok(40));
        drop(LeaderUnwinds(&gathering));
        let state = gathering.state.lock().unwrap_or_else(PoisonError::into_inner);
        assert_eq!(state.outcomes.get(&3), Some(&Ok(40)));
    }
}
