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
    /// Rebuilds detection from the ledger, as at start, and installs the result; returns
    /// what the replay raised next to the alerts the ledger holds.
    pub fn replay_detection(&self) -> Result<Replayed, GatewayError> {
        let (thresholds, observe) = {
            let sequenced = self.lock_sequencer();
            (sequenced.detector.thresholds().clone(), sequenced.enabled)
        };
        let mut detector = cordon_detect::Detector::new(thresholds);
        let mut statements = self.new_statements();
        let mut facts = StoredFacts { gateway: self, customers: HashMap::new() };
        let audit = Arc::clone(&self.audit);
        let replayed = crate::detection::replay(&mut detector, observe, &mut statements, &mut facts, &mut |visit| {
            audit.for_each_entry(visit).map_err(|error| error.0)
        })?;
        {
            let mut sequenced = self.lock_sequencer();
            sequenced.detector = detector;
            sequenced.statements = statements;
        }
        for (index, reason) in &replayed.unreadable {
            tracing::warn!(index, %reason, "a ledger entry this build does not read was skipped by detection's replay");
        }
        // Alerts whose store write a crash cut short are stored (and queued) now.
        let stored: Vec<StoredAlert> =
            replayed.recorded.iter().map(|(index, alert)| alert_row(alert, *index)).collect::<Result<_, _>>()?;
        self.store.record_alerts(&stored, self.webhook_url.is_some(), self.clock.now_ms())?;
        self.repair_from_ledger(&replayed)?;
        Ok(replayed)
    }

    /// The store's agent statuses and revocations are brought to what the ledger records: a
    /// change the ledger holds is in force even if a crash or a failed write kept it out of
    /// the store. Each repair is logged.
    fn repair_from_ledger(&self, replayed: &Replayed) -> Result<(), GatewayError> {
        for (agent, status) in &replayed.statuses {
            let Some(stored) = self.store.agent(agent)? else { continue };
            if stored.status != *status {
                tracing::warn!(agent, stored = %stored.status, recorded = %status, "the store's agent status disagreed with the ledger; repaired");
                self.hold_agent_status(agent, *status);
            }
        }
        let now = self.clock.now_seconds();
        let mut revoked = self.revoked.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (jti, time_ms) in &replayed.revocations {
            // A token lives at most this long after its revocation was recorded.
            let expires_at = time_ms.div_euclid(1000) + crate::token::TOKEN_LIFETIME_SECONDS_MAX;
            if expires_at > now && revoked.insert(jti.clone()) {
                tracing::warn!(jti, "a recorded revocation was missing from the store; repaired");
                if let Err(error) = self.store.revoke_token(jti, expires_at, now) {
                    tracing::error!(%error, "the store did not take a recorded revocation; it holds in memory");
                }
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
        let index = self
            .change_entry_then(&actor, change, &agent, Some(format!("alert {id}")), request, |sequenced| {
                if !confirm {
                    sequenced.detector.clear(&agent, now_ms);
                }
            })
            .await?;
        if confirm {
            self.hold_agent_status(&agent, AgentStatus::Suspended);
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
        let index = self
            .change_entry_then(&actor, "agent.reinstate", agent, None, request, |sequenced| {
                sequenced.detector.clear(agent, now_ms)
            })
            .await?;
        self.hold_agent_status(agent, AgentStatus::Active);
        Ok(index)
    }

    /// Agents by risk now, highest first (analysts and administrators).
    pub async fn risk_board(&self, who: &Claims, request: &str) -> Result<Vec<cordon_detect::AgentRisk>, GatewayError> {
        self.analyst(who, request).await?;
        Ok(self.lock_sequencer().detector.board(self.clock.now_ms()))
    }
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

impl crate::detection::ReplayFacts for StoredFacts<'_> {
    fn customer(&mut self, id: &str) -> (bool, bool) {
        if let Some(&flags) = self.customers.get(id) {
            return flags;
        }
        let gateway = self.gateway;
        let flags = match gateway.directory.customer(&gateway.store, id) {
            Ok(Some(StoredCustomer { sealed: Some(sealed), canary, .. })) => {
                let balance = gateway.vault.open(id, &sealed, &[Field::BalanceUsd]).ok();
                let band = balance
                    .as_ref()
                    .and_then(|values| values.get(&Field::BalanceUsd))
                    .and_then(Value::as_f64)
                    .and_then(BalanceBand::of);
                (canary, band >= Some(BalanceBand::OneHundredThousandToOneMillion))
            }
            Ok(Some(customer)) => (customer.canary, false),
            _ => (false, false),
        };
        self.customers.insert(id.to_string(), flags);
        flags
    }

    fn agent(&mut self, id: &str) -> (String, String) {
        match self.gateway.directory.agent(&self.gateway.store, id) {
            Ok(Some(agent)) => (format!("{}@{}", agent.team, agent.site), agent.site),
            _ => (String::new(), String::new()),
        }
    }
}
