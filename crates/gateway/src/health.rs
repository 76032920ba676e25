//! Whether this node can do its job, and the way back when it cannot. Liveness is the
//! process answering; readiness is whether the audit ledger and the store can commit now,
//! since a node that cannot record refuses every data request, and whether the
//! key-encryption key answers (an HSM can go away), since without it nothing opens. A failed ledger is reopened
//! (its tail re-verified) and statuses the store could not take are written again, by
//! [`Gateway::heal`], which the server calls every second: once writes succeed again the
//! node serves again, without a restart. Healing also takes a detection snapshot every
//! 100,000 entries, so a start replays only the entries after it.

use crate::error::GatewayError;
use crate::service::Gateway;

/// What readiness reports. Reasons are for the log: they name files, so the API says only
/// which part is down.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// Why the audit ledger cannot commit, if it cannot.
    pub ledger: Option<String>,
    /// Why the store cannot commit, if it cannot.
    pub store: Option<String>,
    /// Why the key-encryption key cannot wrap and unwrap, if it cannot.
    pub kek: Option<String>,
    /// Durable ledger entries the access index has not read yet.
    pub access_index_lag: u64,
    /// Agent statuses the ledger records that the store has not taken yet (they hold in
    /// memory meanwhile).
    pub held_statuses: usize,
}

impl Health {
    /// Ready to take traffic: the ledger and the store both commit, and the KEK answers.
    pub fn ready(&self) -> bool {
        self.ledger.is_none() && self.store.is_none() && self.kek.is_none()
    }
}

/// A probe's last failure, probed again by `probe` unless it ran within the second.
pub(crate) type Probe = std::sync::Mutex<(Option<std::time::Instant>, Option<String>)>;

fn probed(slot: &Probe, probe: impl FnOnce() -> Option<String>) -> Option<String> {
    let mut slot = slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let (probed_at, failure) = &mut *slot;
    if probed_at.is_none_or(|at| at.elapsed() >= std::time::Duration::from_secs(1)) {
        *failure = probe();
        *probed_at = Some(std::time::Instant::now());
    }
    failure.clone()
}

/// What one round of healing did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Healed {
    /// The ledger had failed and was reopened, and takes entries again.
    pub ledger_reopened: bool,
}

impl Gateway {
    /// Each part that must commit: the ledger's state, and the store's as a small write to
    /// each database finds it (at most one probe a second, however often readiness and
    /// metrics ask). Blocking (the write): call it off the async workers.
    pub fn health(&self) -> Health {
        let durable = self.audit.size();
        let access_index_lag = self.store.access_through().map_or(durable, |through| durable.saturating_sub(through));
        Health {
            ledger: self.audit.failure(),
            store: self.probe_store(),
            kek: probed(&self.kek_probe, || self.vault.probe_kek().err().map(|error| error.to_string())),
            access_index_lag,
            held_statuses: self.directory.held_statuses(),
        }
    }

    /// Why the store cannot commit, if it cannot: probed now unless probed within the second.
    fn probe_store(&self) -> Option<String> {
        probed(&self.store_probe, || self.store.probe_writes(self.clock.now_ms()).err().map(|error| error.to_string()))
    }

    /// Recovers what can be recovered now: a failed ledger is reopened (recovery re-verifies
    /// its tail against the checkpoint and drops groups that were never acknowledged), and
    /// held statuses are written to the store. An error says what is still down.
    pub fn heal(&self) -> Result<Healed, GatewayError> {
        self.directory.write_held(&self.store);
        self.probe_store();
        let ledger_reopened = match self.audit.failure() {
            None => false,
            Some(_) => {
                // Under the sequencer's lock: no append predicts an index while the writer
                // is replaced, and states that took in failed appends are rebuilt from the
                // ledger before the next one.
                let mut sequenced = self.lock_sequencer();
                let reopened = self.audit.heal().map_err(GatewayError::AuditUnavailable)?;
                if reopened {
                    sequenced.resync = true;
                    if sequenced.tainted {
                        let size = self.audit.size();
                        self.restore_into(Some(&mut sequenced), size)?;
                    }
                    tracing::warn!("the audit ledger was reopened after a failure and takes entries again");
                }
                reopened
            }
        };
        self.snapshot_if_due();
        Ok(Healed { ledger_reopened })
    }

    /// Closes the ledger: it takes no more entries and publishes a final checkpoint. Its size;
    /// an error if the checkpoint cannot cover every acknowledged entry (they are safe in the
    /// write-ahead log, and the next start publishes them).
    pub fn close(&self) -> Result<u64, GatewayError> {
        // The next start replays only what comes after this.
        self.snapshot_detection();
        self.audit.close().map_err(GatewayError::AuditUnavailable)
    }
}
