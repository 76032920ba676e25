//! The ledger side of every decision: an access decision becomes an entry (checked against
//! the ledger's limit before it takes its place in the ledger's order), detection and
//! verify's limit have their say under the sequencer's lock, and nothing is answered until
//! the entry is durable. Changes are entries too.

use cordon_directory::AgentStatus;
use cordon_policy::Decision;
use cordon_store::StoredAlert;

use crate::access::*;
use crate::detection::{Sequenced, alert_entry, containment, durable, observation, observed_customer, seen};
use crate::error::GatewayError;
use crate::service::*;
use crate::token::Claims;
use cordon_entry::{AlertEntry, ChangeEntry, Containment, Decision as EntryDecision, VerifyOutcome};
use cordon_policy::Action;

impl Gateway {
    pub(crate) async fn change_entry(
        &self,
        actor: &str,
        change: &'static str,
        target: &str,
        detail: Option<String>,
        request: &str,
    ) -> Result<u64, GatewayError> {
        self.change_entries_then(actor, vec![(change, target.to_string(), detail)], request, |_| {}).await
    }

    /// Several change entries with consecutive indexes, made durable together (the ledger
    /// group-commits them); returns the first index.
    pub(crate) async fn change_entries(
        &self,
        actor: &str,
        changes: Vec<(&'static str, String, Option<String>)>,
        request: &str,
    ) -> Result<u64, GatewayError> {
        self.change_entries_then(actor, changes, request, |_| {}).await
    }

    /// A change entry; `then` runs on the detector in the entry's place in ledger order.
    pub(crate) async fn change_entry_then(
        &self,
        actor: &str,
        change: &'static str,
        target: &str,
        detail: Option<String>,
        request: &str,
        then: impl FnOnce(&mut Sequenced),
    ) -> Result<u64, GatewayError> {
        self.change_entries_then(actor, vec![(change, target.to_string(), detail)], request, then).await
    }

    /// The one way changes reach the ledger: encoded (and so checked against the ledger's
    /// limit) before they take their place in its order, then `then` on the detector in
    /// that place, then appended together and waited on; returns the first index.
    async fn change_entries_then(
        &self,
        actor: &str,
        changes: Vec<(&'static str, String, Option<String>)>,
        request: &str,
        then: impl FnOnce(&mut Sequenced),
    ) -> Result<u64, GatewayError> {
        let time_ms = self.clock.now_ms();
        let changes: Vec<ChangeEntry> = changes
            .into_iter()
            .map(|(change, target, detail)| ChangeEntry::new(time_ms, request, actor, change, &target, detail))
            .collect();
        let entries =
            changes.iter().map(|change| change.encode().map_err(too_large)).collect::<Result<Vec<Vec<u8>>, _>>()?;
        let (pending, ()) = self.append_in_order(|first, sequenced| {
            then(sequenced);
            for (change, index) in changes.iter().zip(first..) {
                sequenced.recorded.note_change(change, index);
            }
            Ok((entries, ()))
        })?;
        durable(&self.sequencer, pending).await
    }

    /// An access decision about to be recorded, stamped now.
    pub(crate) fn recorded(
        &self,
        request: &str,
        who: &Claims,
        agent: &str,
        action: Action,
        decision: &Decision,
    ) -> Recorded {
        Recorded::new(self.clock.now_ms(), request, who, agent, action, decision)
    }

    /// Appends the decision, with any alerts detection raised on it, and waits until they are
    /// durable; then puts containment in force and stores the alerts (the customer's access
    /// history follows the ledger on its own).
    /// Any failure means the caller gets nothing. Detection can turn an allow into a denial.
    pub(crate) async fn record(&self, recorded: Recorded) -> Result<Outcome, GatewayError> {
        if !self.answers_access {
            return Err(GatewayError::Conflict(
                "this data directory was opened for analysis, without detection's state, so it answers no \
                 access requests; serve them with `cordon serve`"
                    .into(),
            ));
        }
        let Recorded { mut entry, facts, observed, statement, token } = recorded;
        entry.why = facts.why.map(|why| why.name().to_string());
        entry.opened_by.clone_from(&facts.opened_by);
        entry.assigned_by.clone_from(&facts.assigned_by);
        entry.beyond_need = facts.beyond_need.clone();
        entry.off_shift = facts.off_shift;
        // A request whose entry could not be recorded is refused before it takes a place in
        // the ledger's order or reaches the detector.
        let unchanged = entry.encode_leaving_room().map_err(|error| GatewayError::BadRequest(error.to_string()))?;
        let search_found = entry.matches.as_ref().is_some_and(|matches| !matches.is_empty());
        let (pending, (entry, verdict, alerts, refused_in_place)) = self.append_in_order(|index, sequenced| {
            // The agent's status as the ledger records it now, in this entry's place:
            // decided on a status read before a suspension or offboarding that took its
            // place first (on this gateway or another sharing the ledger), the request
            // is refused as policy refuses an inactive agent.
            // Likewise a token the ledger records revoked before this place: the check at
            // authentication read the revocations as they were then, and another gateway may
            // have recorded one since.
            let refused_in_place = match sequenced.recorded.statuses.get(&entry.agent) {
                _ if !entry.allowed() => None,
                Some((status, _)) if *status != AgentStatus::Active => {
                    Some((INACTIVE_AGENT_POLICY, format!("the ledger records agent `{}` {status}", entry.agent)))
                }
                _ if sequenced.recorded.revocations.contains_key(&token) => {
                    Some((REVOKED_TOKEN_POLICY, "the ledger records this token revoked".to_string()))
                }
                _ => None,
            };
            if let Some((policy, _)) = &refused_in_place {
                entry.decision = EntryDecision::Deny;
                entry.policies = vec![policy.to_string()];
            }
            let policy_allowed = entry.allowed();
            if let (Some(matched), Some(customer), Some(field)) = (statement, &entry.customer, entry.fields.first())
                && policy_allowed
            {
                let outcome = sequenced.statements.check(&entry.agent, customer, field, entry.time_ms, matched);
                if outcome == VerifyOutcome::Refused {
                    entry.decision = EntryDecision::Deny;
                    entry.policies = vec![VERIFY_LIMIT_POLICY.to_string()];
                }
                entry.verify = Some(outcome);
            }
            let verdict = match seen(entry.action, search_found, entry.verify) {
                Some(action) if sequenced.enabled && observed => sequenced.detector.observe(&observation(
                    index,
                    entry.time_ms,
                    &entry.agent,
                    action,
                    observed_customer(&entry),
                    policy_allowed,
                    &facts,
                )),
                _ => Default::default(),
            };
            if let Some(contained) = verdict.deny.and_then(containment)
                && entry.allowed()
            {
                entry.decision = EntryDecision::Deny;
                entry.contained = Some(contained);
                entry.policies = vec![contained.policy()];
            }
            let alerts: Vec<AlertEntry> =
                verdict.alerts.iter().map(|alert| alert_entry(alert, &entry.request)).collect();
            for (alert, alert_index) in alerts.iter().zip(index + 1..) {
                sequenced.recorded.note_alert(alert, alert_index);
            }
            // Encoded again only if the recorded status, verify's limit or detection changed it.
            let bytes = if refused_in_place.is_some() || entry.verify.is_some() || entry.contained.is_some() {
                entry.encode().map_err(|error| GatewayError::Internal(error.to_string()))?
            } else {
                unchanged
            };
            let mut entries = vec![bytes];
            for alert in &alerts {
                entries.push(alert.encode().map_err(|error| GatewayError::Internal(error.to_string()))?);
            }
            Ok((entries, (entry, verdict, alerts, refused_in_place)))
        })?;
        let index = durable(&self.sequencer, pending).await?;
        // Containment first: it holds whatever the store says next.
        for (alert, alert_index) in verdict.alerts.iter().zip(index + 1..) {
            if alert.level == cordon_detect::Level::Suspend {
                self.hold_agent_status(&alert.agent, AgentStatus::Suspended, alert_index);
            }
        }
        if !alerts.is_empty() {
            let stored: Vec<StoredAlert> = alerts
                .iter()
                .zip(1u64..)
                .map(|(alert, offset)| alert_row(alert, index + offset))
                .collect::<Result<_, _>>()?;
            // The alerts are in the ledger; a store that cannot take them now gets them from
            // the access follower, which stores every alert it reads that is missing.
            if let Err(error) = self.store.record_alerts(&stored, self.webhook_url.is_some(), entry.time_ms) {
                tracing::error!(%error, index, "alerts could not be stored now; the ledger follower stores them later");
            }
        }
        if let Some((_, reason)) = refused_in_place {
            return Ok(Outcome::RefusedInPlace { reason, policies: entry.policies, index });
        }
        Ok(match (entry.contained, entry.verify, entry.decision) {
            (Some(level), _, _) => Outcome::Contained { level, agent: entry.agent, policies: entry.policies, index },
            (None, Some(VerifyOutcome::Refused), _) => Outcome::VerifyRefused {
                field: entry.fields.first().cloned().unwrap_or_default(),
                customer: entry.customer.unwrap_or_default(),
                index,
            },
            (None, _, EntryDecision::Deny) => Outcome::Denied(index),
            (None, _, EntryDecision::Allow) => Outcome::Allowed(index),
        })
    }
}

/// The default policies' refusal of an agent that is not active.
const INACTIVE_AGENT_POLICY: &str = "inactive-agent-does-nothing";

/// The refusal of a request whose token the ledger records revoked before the decision's place.
pub const REVOKED_TOKEN_POLICY: &str = "revoked-token-does-nothing";

/// What became of a recorded access decision, once its entry is durable.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Allowed: the caller may answer.
    Allowed(u64),
    /// Refused by policy, or recorded by the caller as a refusal (an unknown customer, a
    /// token that is no agent's): the caller says why.
    Denied(u64),
    /// Policy allowed it; detection contained the agent.
    Contained { level: Containment, agent: String, policies: Vec<String>, index: u64 },
    /// Policy allowed a verify; its limit on wrong statements refused to check.
    VerifyRefused { field: String, customer: String, index: u64 },
    /// Policy allowed it on what the caller's checks read, but the ledger records, before the
    /// decision's place, the agent inactive or the token revoked (by another request, or
    /// another gateway sharing the ledger): refused there.
    RefusedInPlace { reason: String, policies: Vec<String>, index: u64 },
}

impl Outcome {
    /// The ledger index of the decision's entry.
    pub(crate) fn index(&self) -> u64 {
        match self {
            Outcome::Allowed(index) | Outcome::Denied(index) => *index,
            Outcome::Contained { index, .. }
            | Outcome::VerifyRefused { index, .. }
            | Outcome::RefusedInPlace { index, .. } => *index,
        }
    }

    /// The index of an allowed decision; otherwise the error to answer with: `denied`'s
    /// for a refusal the caller decided, the containment's or verify limit's for theirs.
    pub(crate) fn allowed_or(self, denied: impl FnOnce(u64) -> GatewayError) -> Result<u64, GatewayError> {
        match self {
            Outcome::Allowed(index) => Ok(index),
            Outcome::Denied(index) => Err(denied(index)),
            Outcome::Contained { level, agent, policies, index } => {
                let reason = match level {
                    Containment::StepUp => {
                        "detection stepped this agent up: each reveal and verify needs a second approver".to_string()
                    }
                    Containment::Suspend => format!("detection suspended agent `{agent}`"),
                };
                Err(GatewayError::Denied { reason, policies, ledger_index: index })
            }
            Outcome::VerifyRefused { field, customer, index } => {
                Err(GatewayError::VerifyLimit { field, customer, ledger_index: index })
            }
            Outcome::RefusedInPlace { reason, policies, index } => {
                Err(GatewayError::Denied { reason, policies, ledger_index: index })
            }
        }
    }
}

/// The store's row for an alert entry at `ledger_index`.
pub(crate) fn alert_row(alert: &AlertEntry, ledger_index: u64) -> Result<StoredAlert, GatewayError> {
    let body = alert.encode().map_err(|error| GatewayError::Internal(error.to_string()))?;
    let body = String::from_utf8(body).map_err(|error| GatewayError::Internal(error.to_string()))?;
    Ok(StoredAlert {
        id: alert.alert,
        agent: alert.agent.clone(),
        level: alert.level.clone(),
        time_ms: alert.time_ms,
        ledger_index,
        body,
        status: "open".into(),
        reason: None,
        decided_by: None,
        decided_at_ms: None,
    })
}
