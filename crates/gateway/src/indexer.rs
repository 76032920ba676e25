//! The per-customer access index and incident scope's exposure index, kept as followers of
//! the ledger (which also store any alert a crash kept out of the store). The ledger entry,
//! durable before any response, is the record; this index only answers "who looked at this
//! customer" quickly. It is a function of the ledger: it records how far into the ledger it
//! has read, in the same transaction as the rows it wrote, and reads on from there, at open
//! (so a crash, or an index written by an older build, loses nothing), continuously while
//! the gateway runs, and to the last durable entry before a history is answered. While no
//! customer is being written, the same thread also writes the match-index rows imports leave
//! for later (see `Store::index_pending_matches`).

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::thread::JoinHandle;
use std::time::Duration;

use cordon_entry::{AccessAction, Entry};
use cordon_store::{AccessEvent, Exposure, Store};

use crate::audit::AuditLog;
use crate::error::GatewayError;

/// How often the follower reads what the ledger has published since.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(250);
/// Entries read per transaction.
const BATCH_ENTRIES_MAX: usize = 4096;
/// Idle rounds (no customer written) before the follower writes what imports left of the
/// match index: five seconds, so it never competes with an import's own writes.
const QUIET_ROUNDS_BEFORE_MATCH_INDEX: u32 = 20;
/// Customers whose match-index rows one idle round writes: one transaction of a fraction of
/// a second (about 60 ms into a fresh index, 200 ms into a million customers'), so a ticket
/// or approval write waits little behind it.
const MATCH_INDEX_CUSTOMERS_PER_ROUND: usize = 5_000;

/// Whether an access entry belongs in its customer's history: the accesses that name one
/// customer (a card, a reveal, a verify), allowed or refused.
fn in_history(action: AccessAction) -> bool {
    matches!(action, AccessAction::View | AccessAction::Reveal | AccessAction::Verify)
}

/// What the follower writes, batch by batch: history rows, alerts to mend, exposures.
#[derive(Default)]
struct Found {
    rows: Vec<AccessEvent>,
    alerts: Vec<cordon_store::StoredAlert>,
    /// Each exposure with the bits of how it showed its customer (one value per entry).
    exposures: Vec<(Exposure, u8)>,
}

/// Where each index stood when this round began: an entry below an index's position is in
/// that index already.
#[derive(Clone, Copy)]
struct Positions {
    access: u64,
    exposures: u64,
}

impl Found {
    /// Takes in the entry at `index`.
    fn entry(&mut self, index: u64, bytes: &[u8], positions: Positions) {
        match cordon_entry::decode(bytes) {
            Ok(Entry::Access(entry)) => {
                if index >= positions.exposures {
                    self.exposures.extend(exposures_of(index, &entry));
                }
                if index >= positions.access {
                    self.rows.extend(history_row(index, entry));
                }
            }
            Ok(Entry::Alert(alert)) if index >= positions.access => {
                self.alerts.extend(crate::record::alert_row(&alert, index).ok());
            }
            _ => {}
        }
    }

    /// Writes what was found in the entries below `through`, and each index's new position
    /// with its rows (never moving a position back).
    fn write(
        &mut self,
        store: &Store,
        through: u64,
        positions: Positions,
        webhook: bool,
        now_ms: i64,
    ) -> Result<(), cordon_store::StoreError> {
        if !self.alerts.is_empty() {
            store.record_alerts(&self.alerts, webhook, now_ms)?;
            self.alerts.clear();
        }
        if through > positions.access {
            store.add_access_events(&self.rows, through)?;
        }
        self.rows.clear();
        if through > positions.exposures {
            store.add_exposures(&self.exposures, through)?;
        }
        self.exposures.clear();
        Ok(())
    }
}

/// What an allowed access showed, one exposure per customer it showed (incident scope's
/// index: who was shown whom, how, when).
fn exposures_of(index: u64, entry: &cordon_entry::AccessEntry) -> Vec<(Exposure, u8)> {
    let seen = seen_bits(entry);
    entry
        .customers_shown()
        .into_iter()
        .map(|customer_id| {
            (
                Exposure {
                    ledger_index: index,
                    time_ms: entry.time_ms,
                    agent_id: entry.agent.clone(),
                    customer_id,
                    action: entry.action.name().to_string(),
                    fields: entry.fields.clone(),
                },
                seen,
            )
        })
        .collect()
}

/// How an access showed each customer it showed, as attribution's reach records it.
fn seen_bits(entry: &cordon_entry::AccessEntry) -> u8 {
    let Some(how) = cordon_incident::ShownAs::from_action(entry.action.name()) else { return 0 };
    let fields: Vec<cordon_incident::Field> = entry.fields.iter().filter_map(|name| name.parse().ok()).collect();
    cordon_incident::Seen::of(how, &fields).bits()
}

/// The history row of an access entry, if it has one.
fn history_row(index: u64, entry: cordon_entry::AccessEntry) -> Option<AccessEvent> {
    if !in_history(entry.action) {
        return None;
    }
    let allowed = entry.allowed();
    Some(AccessEvent {
        ledger_index: index,
        time: entry.time_ms,
        agent_id: entry.agent,
        customer_id: Some(entry.customer?),
        ticket_id: entry.ticket,
        action: entry.action.name().to_string(),
        fields: entry.fields,
        allowed,
        policies: entry.policies,
        request_id: entry.request,
    })
}

/// Reads the ledger from where the indexes stand up to `to`, in one pass, and writes what
/// it found: the access index, the exposure index, and alerts that are not stored (the
/// request that raised one stores it at once; a crash between its entry and its row
/// leaves it to this), each before its position passes them.
fn catch_up(store: &Store, audit: &dyn AuditLog, to: u64, webhook: bool, now_ms: i64) -> Result<(), GatewayError> {
    let positions = Positions { access: store.access_through()?, exposures: store.exposures_through()? };
    let from = positions.access.min(positions.exposures);
    if from >= to {
        return Ok(());
    }
    let mut found = Found::default();
    let mut entries = 0usize;
    let mut failed: Option<GatewayError> = None;
    audit
        .for_each_entry_from(from, to, &mut |index, bytes| {
            found.entry(index, bytes, positions);
            entries += 1;
            if entries >= BATCH_ENTRIES_MAX {
                if let Err(error) = found.write(store, index + 1, positions, webhook, now_ms) {
                    failed = Some(error.into());
                    return Err("the indexes could not be written".into());
                }
                entries = 0;
            }
            Ok(())
        })
        .map_err(|error| failed.take().unwrap_or(GatewayError::AuditUnavailable(error)))?;
    found.write(store, to, positions, webhook, now_ms)?;
    Ok(())
}

enum Request {
    /// Catch up to every durable entry, and answer.
    CatchUp(SyncSender<Result<(), GatewayError>>),
}

pub(crate) struct Indexer {
    sender: Option<SyncSender<Request>>,
    thread: Option<JoinHandle<()>>,
}

impl Indexer {
    /// Starts the follower; it begins by reading whatever the index lacks. Failing to start
    /// it is an error, not an access history that silently stays behind.
    pub(crate) fn start(
        store: Arc<Store>,
        audit: Arc<dyn AuditLog>,
        clock: Arc<dyn crate::clock::Clock>,
        webhook: bool,
    ) -> Result<Indexer, GatewayError> {
        let (sender, receiver) = mpsc::sync_channel(64);
        let follower = Follower { store, audit, clock, webhook };
        let thread = std::thread::Builder::new()
            .name("access-indexer".into())
            .spawn(move || follow(&follower, &receiver))
            .map_err(|error| GatewayError::Internal(format!("cannot start the access indexer: {error}")))?;
        Ok(Indexer { sender: Some(sender), thread: Some(thread) })
    }

    /// Brings the index up to every entry durable now; an error if it cannot (the ledger
    /// cannot publish them, the index cannot be written), since a history without them
    /// would not be the whole history.
    pub(crate) fn catch_up(&self) -> Result<(), GatewayError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let stopped = || GatewayError::Internal("the access indexer has stopped".into());
        self.sender.as_ref().ok_or_else(stopped)?.send(Request::CatchUp(reply)).map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }
}

impl Drop for Indexer {
    fn drop(&mut self) {
        self.sender = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Follower {
    store: Arc<Store>,
    audit: Arc<dyn AuditLog>,
    clock: Arc<dyn crate::clock::Clock>,
    /// Whether mended alerts are queued for the webhook.
    webhook: bool,
}

impl Follower {
    fn catch_up(&self, to: u64) -> Result<(), GatewayError> {
        catch_up(&self.store, self.audit.as_ref(), to, self.webhook, self.clock.now_ms())
    }

    /// Writes some of what imports left of the match index, once no customer has been
    /// written for a while; attribution writes whatever is left when it needs it.
    fn write_match_index_when_idle(&self, idle: &mut Idle) -> Result<(), GatewayError> {
        let writes = self.store.customer_writes()?;
        if idle.customer_writes != Some(writes) {
            *idle = Idle { customer_writes: Some(writes), quiet_rounds: 0 };
            return Ok(());
        }
        idle.quiet_rounds = idle.quiet_rounds.saturating_add(1);
        if idle.quiet_rounds >= QUIET_ROUNDS_BEFORE_MATCH_INDEX {
            self.store.index_pending_matches(
                MATCH_INDEX_CUSTOMERS_PER_ROUND as u64,
                MATCH_INDEX_CUSTOMERS_PER_ROUND,
                cordon_store::OthersAtWork::LeaveTheirsToThem,
            )?;
        }
        Ok(())
    }
}

/// How long the customers have gone unwritten, counted in the follower's rounds.
#[derive(Default)]
struct Idle {
    customer_writes: Option<u64>,
    quiet_rounds: u32,
}

fn follow(follower: &Follower, requests: &Receiver<Request>) {
    let audit = &follower.audit;
    let mut behind = false;
    let mut idle = Idle::default();
    let mut match_index_failing = false;
    let mut note = |result: &Result<(), GatewayError>| {
        let was_behind = std::mem::replace(&mut behind, result.is_err());
        match result {
            // Said once when it starts failing and once when it recovers, not four times a second.
            Err(error) if !was_behind => tracing::error!(%error, "the access index cannot follow the ledger"),
            Ok(()) if was_behind => tracing::info!("the access index follows the ledger again"),
            _ => {}
        }
    };
    loop {
        match requests.recv_timeout(FOLLOW_INTERVAL) {
            Ok(Request::CatchUp(reply)) => {
                let result = follower.catch_up(audit.size());
                note(&result);
                let _ = reply.send(result);
            }
            Err(RecvTimeoutError::Timeout) => {
                // Only what is published: following never forces a checkpoint.
                let result = follower.catch_up(audit.published_size());
                note(&result);
                if result.is_ok() {
                    let written = follower.write_match_index_when_idle(&mut idle);
                    if let Err(error) = &written
                        && !match_index_failing
                    {
                        tracing::warn!(%error, "the match index cannot be written now; attribution will write it");
                    }
                    match_index_failing = written.is_err();
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
}
