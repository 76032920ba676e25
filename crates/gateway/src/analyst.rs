//! The analyst's side: alerts and decisions on them (one per alert), reinstatement, the risk
//! board, and rebuilding detection and verify's limit from the ledger.

use std::collections::HashMap;
use std::sync::Arc;

use cordon_directory::AgentStatus;
use cordon_store::{StoredAlert, StoredCustomer};
use cordon_vault::{BalanceBand, Field};
use serde_json::Value;

use crate::detection::Replayed;
use crate::error::GatewayError;
use crate::record::*;
use crate::service::*;
use crate::statements::WrongStatements;
use crate::token::Claims;

impl Gateway {
    /// Rebuilds detection from the whole ledger and installs the result; returns what the
    /// replay raised next to the alerts the ledger holds (the check `cordon alert replay`
    /// runs). A start uses [`Gateway::restore_detection`], which starts from a snapshot.
    pub fn replay_detection(&self) -> Result<Replayed, GatewayError> {
        let (observe, fresh) = self.fresh_rebuilt();
        let size = self.readable_size();
        let (rebuilt, replayed) = self.rebuild(fresh, 0, size, observe)?;
        self.install(&mut self.lock_sequencer(), rebuilt, size);
        Ok(replayed)
    }

    /// The check `cordon alert replay` runs for an analyst (in the directory, or through a
    /// server's `POST /v1/detection/replay`): detection rebuilt from the whole ledger into
    /// states of its own, its alerts compared with those the ledger holds. Nothing is
    /// installed: a serving node keeps its live states, which took in every entry the replay
    /// started after. One replay at a time; the check is a ledger entry of its own
    /// (`detection.replay`, with its counts). Answered as [`replay_json`].
    pub async fn replay_detection_as(&self, who: &Claims, request: &str) -> Result<Value, GatewayError> {
        let actor = self.analyst(who, request).await?;
        let (replayed, answer) = {
            let _replaying = match self.replaying.try_lock() {
                Ok(guard) => guard,
                // A replay that panicked left nothing half-done: the lock only keeps two apart.
                Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {
                    return Err(GatewayError::Conflict(
                        "detection is being replayed already; try again when that replay has answered".into(),
                    ));
                }
            };
            let started = std::time::Instant::now();
            let (observe, fresh) = self.fresh_rebuilt();
            let (_, replayed) = self.rebuild(fresh, 0, self.readable_size(), observe)?;
            let answer = replay_json(&replayed, started.elapsed().as_secs_f64());
            (replayed, answer)
        };
        self.change_entry(
            &actor,
            "detection.replay",
            "detection",
            Some(format!(
                "entries {} alerts raised {} recorded {} same {}",
                replayed.entries,
                replayed.alerts.len(),
                replayed.recorded.len(),
                answer.get("same_alerts").and_then(Value::as_bool).unwrap_or(false)
            )),
            request,
        )
        .await?;
        Ok(answer)
    }

    /// Rebuilds detection, verify's counts and the recorded statuses as a start does: from
    /// the detection snapshot if there is a usable one, replaying only the entries after
    /// it, else from the whole ledger (and then takes a snapshot, so the next start is
    /// quick). Then repairs the store from what the ledger records.
    pub fn restore_detection(&self) -> Result<Replayed, GatewayError> {
        let replayed = self.restore_into(None, self.readable_size())?;
        self.snapshot_if_due();
        Ok(replayed)
    }

    /// Restores up to `size` and installs the result, into `locked` if the caller holds the
    /// sequencer (no entry can be appended meanwhile), else under the lock once rebuilt.
    pub(crate) fn restore_into(
        &self,
        locked: Option<&mut crate::detection::Sequenced>,
        size: u64,
    ) -> Result<Replayed, GatewayError> {
        let (observe, fresh) = match &locked {
            Some(sequenced) => (sequenced.enabled, self.fresh_from(sequenced.detector.thresholds().clone())),
            None => self.fresh_rebuilt(),
        };
        let from_snapshot = match &self.snapshot_path {
            Some(path) => crate::snapshot::read(path, self.audit.as_ref(), observe, &fresh).unwrap_or_else(|why| {
                tracing::warn!(%why, path = %path.display(), "the detection snapshot is not used; replaying the whole ledger");
                None
            }),
            None => None,
        };
        let (start, from) = match from_snapshot {
            Some((rebuilt, covered)) if covered <= size => {
                self.last_snapshot.store(covered, std::sync::atomic::Ordering::Relaxed);
                (rebuilt, covered)
            }
            _ => (fresh, 0),
        };
        let (rebuilt, replayed) = self.rebuild(start, from, size, observe)?;
        match locked {
            Some(sequenced) => self.install(sequenced, rebuilt, size),
            None => self.install(&mut self.lock_sequencer(), rebuilt, size),
        }
        Ok(replayed)
    }

    /// The entries a replay can read now: every durable one, or while the ledger has failed
    /// (a start on a full disk), those its checkpoint covers; the states are then marked as
    /// behind, and healing rebuilds them once the ledger is back.
    fn readable_size(&self) -> u64 {
        match self.audit.failure() {
            None => self.audit.size(),
            Some(_) => self.audit.published_size(),
        }
    }

    /// Empty states with this deployment's thresholds and limits, and whether detection
    /// observes.
    fn fresh_rebuilt(&self) -> (bool, crate::detection::Rebuilt) {
        let (observe, thresholds) = {
            let sequenced = self.lock_sequencer();
            (sequenced.enabled, sequenced.detector.thresholds().clone())
        };
        (observe, self.fresh_from(thresholds))
    }

    fn fresh_from(&self, thresholds: cordon_detect::Thresholds) -> crate::detection::Rebuilt {
        crate::detection::Rebuilt {
            detector: cordon_detect::Detector::new(thresholds),
            statements: self.new_statements(),
            recorded: crate::detection::RecordedState::default(),
        }
    }

    /// Replays the entries from `from` up to `to` into `rebuilt`; mends alerts and repairs
    /// the store from what the ledger records. Takes no lock of the sequencer's.
    fn rebuild(
        &self,
        mut rebuilt: crate::detection::Rebuilt,
        from: u64,
        to: u64,
        observe: bool,
    ) -> Result<(crate::detection::Rebuilt, Replayed), GatewayError> {
        let mut facts = StoredFacts { gateway: self, customers: HashMap::new() };
        let audit = Arc::clone(&self.audit);
        let mut replayed =
            crate::detection::replay(&mut rebuilt, observe, &mut facts, to.saturating_sub(from), &mut |visit| {
                audit.for_each_entry_from(from, to, visit).map_err(|error| error.0)
            })?;
        replayed.from = from;
        for (index, reason) in &replayed.unreadable {
            tracing::warn!(index, %reason, "a ledger entry this build does not read was skipped by detection's replay");
        }
        // Alerts whose store write a crash cut short are stored (and queued) now; a store
        // that cannot take them now gets them from the ledger follower later.
        let stored: Vec<StoredAlert> =
            replayed.recorded.iter().map(|(index, alert)| alert_row(alert, *index)).collect::<Result<_, _>>()?;
        if let Err(error) = self.store.record_alerts(&stored, self.webhook_url.is_some(), self.clock.now_ms()) {
            tracing::error!(%error, "alerts the replay found could not be stored now; the ledger follower stores them later");
        }
        self.repair_from_ledger(&rebuilt.recorded)?;
        Ok((rebuilt, replayed))
    }

    /// Installs rebuilt states covering the ledger up to `size`.
    fn install(&self, sequenced: &mut crate::detection::Sequenced, rebuilt: crate::detection::Rebuilt, size: u64) {
        sequenced.detector = rebuilt.detector;
        sequenced.statements = rebuilt.statements;
        sequenced.recorded = rebuilt.recorded;
        // Other gateways append meanwhile: the states cover exactly `size` entries, and the
        // next turn takes in those after it. What the rebuild took in of theirs was not seen
        // change by change: the revocations it holds hold at authentication too, and the
        // directory is read afresh.
        if self.audit.shared().is_some() {
            sequenced.next_index = size;
            self.revoked
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend(sequenced.recorded.revocations.keys().cloned());
            self.directory.forget_all(crate::directory_cache::SETTLING_AFTER_ANOTHER_GATEWAYS_CHANGE);
        }
        // Behind the ledger if it could not show every durable entry.
        sequenced.tainted = size < self.audit.size();
    }

    /// Takes a snapshot once [`crate::snapshot::SNAPSHOT_EVERY_ENTRIES`] entries have been
    /// appended since the last.
    pub(crate) fn snapshot_if_due(&self) {
        let since = self.audit.size().saturating_sub(self.last_snapshot.load(std::sync::atomic::Ordering::Relaxed));
        if since >= crate::snapshot::SNAPSHOT_EVERY_ENTRIES {
            self.snapshot_detection();
        }
    }

    /// Writes a snapshot of detection's state as of the entries appended so far, once they
    /// are durable; its size. None if there is nothing new enough to snapshot, or the
    /// states are ahead of the ledger (an append they took in failed), or the ledger or the
    /// disk cannot take it now (logged).
    pub fn snapshot_detection(&self) -> Option<u64> {
        let path = self.snapshot_path.as_ref()?;
        let (rebuilt, size, observe) = {
            let sequenced = self.lock_sequencer();
            if sequenced.tainted || sequenced.resync || !self.answers_access {
                return None;
            }
            let rebuilt = crate::detection::Rebuilt {
                detector: sequenced.detector.clone(),
                statements: sequenced.statements.clone(),
                recorded: sequenced.recorded.clone(),
            };
            (rebuilt, sequenced.next_index, sequenced.enabled)
        };
        if size == 0 || size <= self.last_snapshot.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        // Every entry the states took in must be durable before the snapshot claims them.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while self.audit.size() < size {
            if std::time::Instant::now() > deadline || self.audit.failure().is_some() {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let mut rebuilt = rebuilt;
        let oldest = self.clock.now_ms() - crate::token::ANY_TOKEN_LIFETIME_SECONDS_MAX * 1000;
        rebuilt.recorded.forget_revocations_before(oldest);
        match crate::snapshot::write(path, self.audit.as_ref(), size, observe, rebuilt) {
            Ok(()) => {
                self.last_snapshot.store(size, std::sync::atomic::Ordering::Relaxed);
                Some(size)
            }
            Err(error) => {
                tracing::warn!(%error, "no detection snapshot this time; a start replays from the last one");
                None
            }
        }
    }

    /// Detection's state, verify's counts and the recorded statuses, as a snapshot holds
    /// them: what checks compare to show a start from a snapshot rebuilt what a full replay
    /// does.
    pub fn detection_state(&self) -> serde_json::Value {
        let sequenced = self.lock_sequencer();
        let mut rows = sequenced.statements.rows();
        rows.sort();
        let statuses: std::collections::BTreeMap<&String, String> =
            sequenced.recorded.statuses.iter().map(|(agent, (status, _))| (agent, status.to_string())).collect();
        let revocations: std::collections::BTreeMap<&String, &i64> = sequenced.recorded.revocations.iter().collect();
        serde_json::json!({
            "detector": serde_json::to_value(&sequenced.detector).unwrap_or_default(),
            "statements": rows,
            "statuses": statuses,
            "revocations": revocations,
        })
    }

    /// The store's agent statuses and revocations are brought to what the ledger records: a
    /// change the ledger holds is in force even if a crash or a failed write kept it out of
    /// the store. Each repair is logged.
    fn repair_from_ledger(&self, recorded: &crate::detection::RecordedState) -> Result<(), GatewayError> {
        for (agent, (status, index)) in &recorded.statuses {
            let Some(stored) = self.store.agent(agent)? else { continue };
            if stored.status != *status {
                tracing::warn!(agent, stored = %stored.status, recorded = %status, index, "the store's agent status disagreed with the ledger; repaired");
                self.hold_agent_status(agent, *status, *index);
            }
        }
        let now = self.clock.now_seconds();
        let mut revoked = self.revoked.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (jti, time_ms) in &recorded.revocations {
            // A token lives at most this long after its revocation was recorded.
            let expires_at = time_ms.div_euclid(1000) + crate::token::ANY_TOKEN_LIFETIME_SECONDS_MAX;
            // The store may hold it with the token's own (earlier) expiry, or have dropped it
            // once that passed; writing it again is harmless either way.
            if expires_at > now
                && revoked.insert(jti.clone())
                && let Err(error) = self.store.revoke_token(jti, expires_at, now)
            {
                tracing::error!(%error, "the store did not take a recorded revocation; it holds in memory");
            }
        }
        Ok(())
    }

    /// An empty count of verify's wrong statements, with this deployment's limits.
    pub(crate) fn new_statements(&self) -> WrongStatements {
        WrongStatements::new(self.limits.verify_wrong_statements_max, self.limits.verify_window_days)
    }

    /// Alerts, newest first (analysts and administrators).
    pub async fn alerts(
        &self,
        who: &Claims,
        status: Option<&str>,
        limit: usize,
        request: &str,
    ) -> Result<Vec<StoredAlert>, GatewayError> {
        self.analyst(who, request).await?;
        if let Some(status) = status
            && !matches!(status, "open" | "dismissed" | "confirmed")
        {
            return Err(GatewayError::BadRequest(format!(
                "`status` must be open, dismissed or confirmed, not `{status}`"
            )));
        }
        Ok(self.store.alerts(status, limit.min(self.limits.history_events_max))?)
    }

    pub async fn alert(&self, who: &Claims, id: u64, request: &str) -> Result<StoredAlert, GatewayError> {
        self.analyst(who, request).await?;
        self.stored_alert(id)
    }

    /// Marks alert `id` as being decided until the guard drops; a second claim meanwhile is
    /// a conflict.
    pub(crate) fn claim_alert(&self, id: u64) -> Result<AlertClaim<'_>, GatewayError> {
        let mut deciding = self.deciding_alerts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !deciding.insert(id) {
            return Err(GatewayError::Conflict(format!("alert {id} is being decided by someone else")));
        }
        Ok(AlertClaim { gateway: self, id })
    }

    pub(crate) fn stored_alert(&self, id: u64) -> Result<StoredAlert, GatewayError> {
        self.store.alert(id)?.ok_or_else(|| GatewayError::NotFound {
            what: "alert",
            id: id.to_string(),
            ledger_index: None,
        })
    }

    /// An analyst's verdict on an open alert. Dismissing clears the agent's risk and any
    /// step-up; confirming suspends the agent. The decision is a ledger entry; the reason,
    /// free text, stays in the store.
    pub async fn decide_alert(
        &self,
        who: &Claims,
        id: u64,
        confirm: bool,
        reason: &str,
        request: &str,
    ) -> Result<u64, GatewayError> {
        let actor = self.analyst(who, request).await?;
        if reason.trim().is_empty() {
            return Err(GatewayError::BadRequest("a reason is needed to decide an alert".into()));
        }
        self.check_value_length(reason)?;
        // One decision per alert: a second analyst deciding at the same moment is refused
        // here, before either reaches the ledger; after the first, the alert is not open.
        let _deciding = self.claim_alert(id)?;
        // And across the gateways sharing a store, until the decision is stored.
        let _across_gateways = self.store.hold_exclusive(&format!("cordon alert {id}"))?;
        let alert = self.stored_alert(id)?;
        if alert.status != "open" {
            return Err(GatewayError::Conflict(format!("alert {id} is already {}", alert.status)));
        }
        if alert.agent == actor {
            return Err(GatewayError::Conflict(format!("alert {id} is about you; another analyst must decide it")));
        }
        let change = if confirm { "alert.confirm" } else { "alert.dismiss" };
        let now_ms = self.clock.now_ms();
        let agent = alert.agent.clone();
        let _changing = self.changing().await;
        let index = self
            .change_entry_then(&actor, change, &agent, Some(format!("alert {id}")), request, |sequenced| {
                if !confirm {
                    sequenced.detector.clear(&agent, now_ms);
                }
            })
            .await?;
        if confirm {
            self.hold_agent_status(&agent, AgentStatus::Suspended, index);
        }
        let decided =
            self.store.decide_alert(id, if confirm { "confirmed" } else { "dismissed" }, reason, &actor, now_ms);
        self.applied(index, decided, request).await?;
        Ok(index)
    }

    /// Reinstates a suspended agent: an analyst's or administrator's call, never the agent's
    /// own. Clears detection's risk for it, in the entry's place in the ledger.
    pub async fn reinstate_agent(&self, who: &Claims, agent: &str, request: &str) -> Result<u64, GatewayError> {
        let actor = self.analyst(who, request).await?;
        if actor == agent {
            return Err(GatewayError::Conflict("an agent cannot reinstate itself".into()));
        }
        let found = self.existing_agent(agent)?;
        if found.status != AgentStatus::Suspended {
            return Err(GatewayError::Conflict(format!("agent `{agent}` is {}, not suspended", found.status)));
        }
        let now_ms = self.clock.now_ms();
        let _changing = self.changing().await;
        let index = self
            .change_entry_then(&actor, "agent.reinstate", agent, None, request, |sequenced| {
                sequenced.detector.clear(agent, now_ms)
            })
            .await?;
        self.hold_agent_status(agent, AgentStatus::Active, index);
        Ok(index)
    }

    /// Agents by risk now, highest first (analysts and administrators).
    pub async fn risk_board(&self, who: &Claims, request: &str) -> Result<Vec<cordon_detect::AgentRisk>, GatewayError> {
        self.analyst(who, request).await?;
        Ok(self.lock_sequencer().detector.board(self.clock.now_ms()))
    }
}

/// Unreadable entries a replay's answer lists; the rest are counted.
const REPLAY_UNREADABLE_LISTED: usize = 10;

/// A replay of detection as the API and the command line show it: what it read, the alerts
/// it raised against those the ledger holds, whether they are the same, and the entries it
/// could not read.
pub fn replay_json(replayed: &Replayed, seconds: f64) -> Value {
    let recorded: Vec<_> = replayed.recorded.iter().map(|(_, alert)| alert.clone()).collect();
    serde_json::json!({
        "entries": replayed.entries,
        "observations": replayed.observations,
        "seconds": seconds,
        "alerts_raised": replayed.alerts.len(),
        "alerts_recorded": recorded.len(),
        "same_alerts": replayed.alerts == recorded,
        "unreadable": replayed.unreadable.iter().take(REPLAY_UNREADABLE_LISTED)
            .map(|(index, reason)| serde_json::json!({ "index": index, "reason": reason }))
            .collect::<Vec<_>>(),
        "unreadable_count": replayed.unreadable.len(),
    })
}

/// An alert being decided; dropping it lets the next decision in.
pub(crate) struct AlertClaim<'a> {
    gateway: &'a Gateway,
    id: u64,
}

impl Drop for AlertClaim<'_> {
    fn drop(&mut self) {
        self.gateway.deciding_alerts.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&self.id);
    }
}

/// Customer and agent facts for a replay, from the store (balances through the vault).
pub(crate) struct StoredFacts<'a> {
    gateway: &'a Gateway,
    customers: HashMap<String, (bool, bool)>,
}

impl<'a> StoredFacts<'a> {
    pub(crate) fn new(gateway: &'a Gateway) -> StoredFacts<'a> {
        StoredFacts { gateway, customers: HashMap::new() }
    }
}

impl StoredFacts<'_> {
    /// (canary, high balance) of a stored customer: its balance opened through the vault.
    fn flags(&self, customer: &StoredCustomer) -> (bool, bool) {
        let Some(sealed) = &customer.sealed else { return (customer.canary, false) };
        let balance = self.gateway.vault.open(&customer.id, sealed, &[Field::BalanceUsd]).ok();
        let band = balance
            .as_ref()
            .and_then(|values| values.get(&Field::BalanceUsd))
            .and_then(Value::as_f64)
            .and_then(BalanceBand::of);
        (customer.canary, band >= Some(BalanceBand::OneHundredThousandToOneMillion))
    }
}

impl crate::detection::ReplayFacts for StoredFacts<'_> {
    fn customer(&mut self, id: &str) -> (bool, bool) {
        if let Some(&flags) = self.customers.get(id) {
            return flags;
        }
        // Straight from the store, not through the directory cache: a replay reads every
        // customer once (its own map keeps the flags), and cached copies of each sealed
        // record would cost a clone apiece and fill the cache with the whole base.
        let flags = match self.gateway.store.customer(id) {
            Ok(Some(customer)) => self.flags(&customer),
            _ => (false, false),
        };
        self.customers.insert(id.to_string(), flags);
        flags
    }

    fn read_ahead(&mut self, ids: &[&str]) {
        let mut unknown: Vec<&str> = ids.iter().copied().filter(|id| !self.customers.contains_key(*id)).collect();
        // In id order, the B-tree pages one lookup reads are those the next one needs.
        unknown.sort_unstable();
        unknown.dedup();
        // A store that cannot answer now leaves each id to its own lookup.
        let Ok(found) = self.gateway.store.customers(&unknown) else { return };
        for customer in &found {
            let flags = self.flags(customer);
            self.customers.insert(customer.id.clone(), flags);
        }
        // Those the store does not hold are customers of nothing.
        for id in unknown {
            if !self.customers.contains_key(id) {
                self.customers.insert(id.to_string(), (false, false));
            }
        }
    }

    fn agent(&mut self, id: &str) -> (String, String) {
        match self.gateway.directory.agent(&self.gateway.store, id) {
            Ok(Some(agent)) => (format!("{}@{}", agent.team, agent.site), agent.site),
            _ => (String::new(), String::new()),
        }
    }
}

/// Agents of a peer group whose daily volume is read, at most.
const PEER_GROUP_READ_MAX: usize = 500;

/// An agent's distinct customers per day against its peers', for an analyst's chart.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeAgainstPeers {
    /// Team × site.
    pub peer_group: String,
    /// Other agents in the group.
    pub peers: usize,
    /// Per UTC day, oldest first: the day, this agent's distinct customers, and the median
    /// of its peers' (each peer counted, zero on a day it was shown nobody).
    pub days: Vec<(String, u64, f64)>,
}

impl Gateway {
    /// `agent`'s distinct customers shown per day over the `days` days up to `until_ms`,
    /// against the median of the other agents of its team and site: the chart beside an
    /// alert. Read from the exposure index.
    pub async fn volume_against_peers(
        &self,
        who: &Claims,
        agent: &str,
        until_ms: i64,
        days: u32,
        request: &str,
    ) -> Result<VolumeAgainstPeers, GatewayError> {
        self.analyst(who, request).await?;
        let found = self.store.agent(agent)?.ok_or_else(|| GatewayError::NotFound {
            what: "agent",
            id: agent.to_string(),
            ledger_index: None,
        })?;
        let mut group = self.store.peer_group(&found.team, &found.site, PEER_GROUP_READ_MAX)?;
        if !group.iter().any(|member| member == agent) {
            group.push(agent.to_string());
        }
        self.refresh_exposures()?;
        let day_ms = 86_400_000i64;
        let last_day = until_ms.div_euclid(day_ms);
        let since_ms = (last_day - i64::from(days.max(1)) + 1) * day_ms;
        let exposures = self.store.exposures_by_agents(&group, since_ms, until_ms)?;
        // agent -> day -> customers
        let mut seen: HashMap<&str, HashMap<i64, std::collections::HashSet<&str>>> = HashMap::new();
        for exposure in &exposures {
            seen.entry(exposure.agent_id.as_str())
                .or_default()
                .entry(exposure.time_ms.div_euclid(day_ms))
                .or_default()
                .insert(exposure.customer_id.as_str());
        }
        let peers: Vec<&str> = group.iter().map(String::as_str).filter(|member| *member != agent).collect();
        let count =
            |member: &str, day: i64| seen.get(member).and_then(|days| days.get(&day)).map_or(0, |set| set.len() as u64);
        let rows = (last_day - i64::from(days.max(1)) + 1..=last_day)
            .map(|day| {
                let mut volumes: Vec<u64> = peers.iter().map(|peer| count(peer, day)).collect();
                volumes.sort_unstable();
                let median = match volumes.len() {
                    0 => 0.0,
                    n if n % 2 == 1 => volumes.get(n / 2).copied().unwrap_or(0) as f64,
                    n => {
                        let (low, high) =
                            (volumes.get(n / 2 - 1).copied().unwrap_or(0), volumes.get(n / 2).copied().unwrap_or(0));
                        (low + high) as f64 / 2.0
                    }
                };
                (cordon_incident::day_of(day * day_ms), count(agent, day), median)
            })
            .collect();
        Ok(VolumeAgainstPeers {
            peer_group: format!("{} at {}", found.team, found.site),
            peers: peers.len(),
            days: rows,
        })
    }
}
