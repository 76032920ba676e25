//! The gateway: the only path from a caller to customer data. Every method gathers the facts,
//! asks the policy engine, appends the decision to the audit log and waits until it is
//! durable, and only then, if allowed, opens the vault.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use cordon_detect::Why;
use cordon_directory::{APPROVAL_SECONDS_MAX, Agent, AgentStatus, Approval, ApprovalKind, ApprovalStatus, Ticket};
use cordon_policy::{
    AccessRequest, Action, AgentFacts, ApprovalFacts, CategoryTable, CustomerFacts, Decision, PolicyEngine, TicketFacts,
};
use cordon_store::{AccessEvent, CustomerRow, Store, StoredAlert, StoredCustomer};
use cordon_vault::{BalanceBand, Date, Field, SealedCustomer, SearchKey, Vault, mask, normalize};
use serde_json::Value;

use crate::audit::AuditLog;
use crate::clock::Clock;
use crate::config::Limits;
use crate::detection::{
    AccessFacts, Replayed, Sequenced, Sequencer, alert_entry, append_sequenced, containment, durable, observation, seen,
};
use crate::error::GatewayError;
use crate::statements::WrongStatements;
use crate::token::{Claims, TokenKey, TokenRole};
use cordon_entry::{
    AccessAction, AccessEntry, AlertEntry, ChangeEntry, Containment, Decision as EntryDecision, VerifyOutcome,
};

/// A search hit: the customer id and the masked name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchHit {
    pub customer: String,
    pub masked_name: String,
}

/// The masked card of a customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    pub customer: String,
    pub fields: Vec<(Field, String)>,
    pub ledger_index: u64,
}

/// Revealed values, with the ledger index of the entry that recorded the reveal.
#[derive(Debug, Clone, PartialEq)]
pub struct Revealed {
    pub values: BTreeMap<Field, Value>,
    pub ledger_index: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub matched: bool,
    pub ledger_index: u64,
}

/// Everything the gateway works with.
pub struct Gateway {
    pub(crate) store: Arc<Store>,
    pub(crate) indexer: crate::indexer::Indexer,
    pub(crate) directory: crate::directory_cache::DirectoryCache,
    pub(crate) vault: Vault,
    pub(crate) policy: PolicyEngine,
    pub(crate) categories: CategoryTable,
    pub(crate) audit: Arc<dyn AuditLog>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) limits: Limits,
    pub(crate) tokens: TokenKey,
    pub(crate) token_lifetime_seconds: i64,
    /// Orders every append and runs detection in that order.
    pub(crate) sequencer: Sequencer,
    /// Alerts an analyst is deciding right now (one decision per alert).
    pub(crate) deciding_alerts: std::sync::Mutex<std::collections::HashSet<u64>>,
    /// Ids of revoked tokens, loaded at open and added to by `revoke_token`.
    pub(crate) revoked: std::sync::RwLock<std::collections::HashSet<String>>,
    /// False for a handle opened for analysis with detection on: detection's state was not
    /// replayed, so it could not score an access, and every access request is refused. Fixed
    /// at open, so the request path reads it without a lock.
    pub(crate) answers_access: bool,
    /// Where alerts are posted (the server delivers the outbox); none if empty.
    pub(crate) webhook_url: Option<String>,
    /// Incident response's settings: the exchange's name and contact, where protective
    /// actions go, how long they last.
    pub(crate) incident: crate::config::IncidentSettings,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gateway({:?}, {:?})", self.store, self.policy)
    }
}

/// One access decision on its way to the ledger: the entry, and what detection needs of
/// it beyond the entry.
struct Recorded {
    entry: AccessEntry,
    facts: AccessFacts,
    /// Whether detection scores it: every decision about a directory agent is; a refused
    /// attempt by a role identity or an unknown subject is recorded but not scored (there
    /// is no agent to contain).
    observed: bool,
    /// For a verify policy allowed: whether the stated value matched. Checked before the
    /// entry is written, but answered only once it is durable, and not at all if verify's
    /// limit or detection refuses.
    statement: Option<bool>,
}

impl Recorded {
    /// A decision with nothing but who, what and the outcome; callers add the rest.
    fn new(time_ms: i64, request: &str, agent: &str, action: AccessAction, decision: &Decision) -> Recorded {
        let outcome = if decision.allowed { EntryDecision::Allow } else { EntryDecision::Deny };
        let mut entry = AccessEntry::new(time_ms, request, agent, action, outcome);
        entry.policies = decision.policies.clone();
        Recorded { entry, facts: AccessFacts::default(), observed: true, statement: None }
    }
}

impl Gateway {
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    pub fn policy(&self) -> &PolicyEngine {
        &self.policy
    }

    pub fn categories(&self) -> &CategoryTable {
        &self.categories
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn audit(&self) -> &Arc<dyn AuditLog> {
        &self.audit
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    // ---- tokens ----

    /// Verifies a bearer token.
    pub fn authenticate(&self, token: &str) -> Result<Claims, GatewayError> {
        let claims = self
            .tokens
            .verify(token, self.clock.now_seconds())
            .map_err(|error| GatewayError::Unauthenticated(error.to_string()))?;
        if self.revoked.read().unwrap_or_else(std::sync::PoisonError::into_inner).contains(&claims.jti) {
            return Err(GatewayError::Unauthenticated(crate::token::TokenError::Revoked.to_string()));
        }
        Ok(claims)
    }

    /// Revokes a token, named by the token itself or by its id (`jti`): an administrator's
    /// call, recorded in the ledger. From the next request on it authenticates nobody, on
    /// every route. Role identities' tokens (admin, analyst, service) need this; an agent's
    /// token also ends with the agent's suspension.
    pub async fn revoke_token(
        &self,
        who: &Claims,
        token: Option<&str>,
        jti: Option<&str>,
        request: &str,
    ) -> Result<u64, GatewayError> {
        let now = self.clock.now_seconds();
        let (jti, expires_at) = match (token, jti) {
            (Some(token), None) => {
                let claims = self.tokens.verify(token, now).map_err(|error| {
                    GatewayError::BadRequest(format!("the token to revoke is not one of this deployment's: {error}"))
                })?;
                (claims.jti, claims.exp)
            }
            // A bare id is kept as long as any token may live.
            (None, Some(jti)) => (jti.to_string(), now + crate::token::TOKEN_LIFETIME_SECONDS_MAX),
            _ => return Err(GatewayError::BadRequest("give either `token` or `jti`".into())),
        };
        cordon_directory::check_id("token", &jti).map_err(|error| GatewayError::BadRequest(error.to_string()))?;
        let index = self.administer(who, "token.revoke", &jti, None, request).await?;
        self.store.revoke_token(&jti, expires_at, now)?;
        self.revoked.write().unwrap_or_else(std::sync::PoisonError::into_inner).insert(jti);
        Ok(index)
    }

    /// Issues a token for a role that is not a directory agent (`admin`, `analyst`, `service`).
    pub fn issue_role_token(&self, role: TokenRole) -> Result<String, GatewayError> {
        crate::token::issue(
            &self.tokens,
            &format!("role:{}", role.name()),
            role,
            self.clock.now_seconds(),
            self.token_lifetime_seconds,
        )
    }

    /// Issues a token for a directory agent; its role comes from the directory. Inactive
    /// agents get none.
    pub fn issue_agent_token(&self, agent_id: &str) -> Result<String, GatewayError> {
        let agent = self.existing_agent(agent_id)?;
        if agent.status != AgentStatus::Active {
            return Err(GatewayError::Conflict(format!("agent `{agent_id}` is {}; it gets no token", agent.status)));
        }
        crate::token::issue(
            &self.tokens,
            agent_id,
            TokenRole::from(agent.role),
            self.clock.now_seconds(),
            self.token_lifetime_seconds,
        )
    }

    /// Issues a session token for a directory agent on behalf of an administrator (an
    /// identity-provider bridge, or the simulator driving a server): policy decides, the
    /// issue is a ledger entry, and the role comes from the directory, never the caller.
    /// Inactive agents get none.
    pub async fn grant_agent_token(
        &self,
        who: &Claims,
        agent_id: &str,
        request: &str,
    ) -> Result<(u64, String), GatewayError> {
        let agent = self.existing_agent(agent_id)?;
        if agent.status != AgentStatus::Active {
            return Err(GatewayError::Conflict(format!("agent `{agent_id}` is {}; it gets no token", agent.status)));
        }
        let index = self.administer(who, "token.issue", agent_id, Some(agent.role.to_string()), request).await?;
        Ok((index, self.issue_agent_token(agent_id)?))
    }

    // ---- detection ----

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
            replayed.recorded.iter().map(|(index, alert)| stored_alert(alert, *index)).collect::<Result<_, _>>()?;
        self.store.record_alerts(&stored, self.webhook_url.is_some(), self.clock.now_ms())?;
        Ok(replayed)
    }

    /// An empty count of verify's wrong statements, with this deployment's limits.
    pub(crate) fn new_statements(&self) -> WrongStatements {
        WrongStatements::new(self.limits.verify_wrong_statements_max, self.limits.verify_window_days)
    }

    /// The webhook alerts are posted to, if any.
    pub fn webhook_url(&self) -> Option<&str> {
        self.webhook_url.as_deref()
    }

    /// Where outbox messages of `topic` are posted, if anywhere: alerts to detection's
    /// webhook, protective actions to the exchange's account-protection webhook.
    pub fn webhook_url_for(&self, topic: &str) -> Option<&str> {
        match topic {
            "alert" => self.webhook_url.as_deref(),
            "protect" => Some(self.incident.protect_webhook_url.as_str()).filter(|url| !url.is_empty()),
            _ => None,
        }
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
    fn claim_alert(&self, id: u64) -> Result<AlertClaim<'_>, GatewayError> {
        let mut deciding = self.deciding_alerts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !deciding.insert(id) {
            return Err(GatewayError::Conflict(format!("alert {id} is being decided by someone else")));
        }
        Ok(AlertClaim { gateway: self, id })
    }

    fn stored_alert(&self, id: u64) -> Result<StoredAlert, GatewayError> {
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
        self.store.decide_alert(id, if confirm { "confirmed" } else { "dismissed" }, reason, &actor, now_ms)?;
        if confirm {
            self.directory.set_agent_status(&self.store, &agent, AgentStatus::Suspended)?;
        }
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
        self.directory.set_agent_status(&self.store, agent, AgentStatus::Active)?;
        Ok(index)
    }

    /// The directory agent `id`, or a not-found error naming it.
    fn existing_agent(&self, id: &str) -> Result<Agent, GatewayError> {
        self.store.agent(id)?.ok_or_else(|| GatewayError::NotFound {
            what: "agent",
            id: id.to_string(),
            ledger_index: None,
        })
    }

    /// The caller, if policy lets it investigate (alerts, the risk board, incidents): an
    /// active analyst or administrator as the directory says now. A refusal is recorded.
    pub(crate) async fn analyst(&self, who: &Claims, request: &str) -> Result<String, GatewayError> {
        Ok(self.authorize_system(who, Action::Investigate, request).await?.id)
    }

    /// The principal behind `who`, if policy lets it take `action`, one that names no
    /// customer (investigate, export, administer). A refusal is a ledger entry.
    pub(crate) async fn authorize_system(
        &self,
        who: &Claims,
        action: Action,
        request: &str,
    ) -> Result<AgentFacts, GatewayError> {
        let principal = self.principal(who)?;
        let decision = self.policy.decide(&self.request(&principal, action, None, None, None, "", None, None));
        if !decision.allowed {
            let recorded = self.recorded(request, &principal.id, recorded_action(action), &decision);
            let index = self.record(recorded, None).await?;
            return Err(denied(decision, index));
        }
        Ok(principal)
    }

    /// Agents by risk now, highest first (analysts and administrators).
    pub async fn risk_board(&self, who: &Claims, request: &str) -> Result<Vec<cordon_detect::AgentRisk>, GatewayError> {
        self.analyst(who, request).await?;
        Ok(self.lock_sequencer().detector.board(self.clock.now_ms()))
    }

    fn lock_sequencer(&self) -> std::sync::MutexGuard<'_, Sequenced> {
        self.sequencer.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    // ---- data access ----

    /// Exact-match search on a blind index; every hit is shown as its masked name.
    pub async fn search(
        &self,
        who: &Claims,
        by: &str,
        value: &str,
        request: &str,
    ) -> Result<Vec<SearchHit>, GatewayError> {
        let kind: SearchKey = by.parse().map_err(|_| {
            GatewayError::BadRequest(format!("`by` must be email, phone, account_id or wallet, not `{by}`"))
        })?;
        self.check_value_length(value)?;
        let (agent, seen) = self.data_agent(who, AccessAction::Search, None, None, request).await?;
        let decision = self.policy.decide(&self.request(&agent, Action::Search, None, None, None, "", None, None));
        let digest = self.vault.search_digest(kind, value);
        let ids = match (decision.allowed, digest) {
            (true, Some(digest)) => self.store.search(kind, &digest)?,
            _ => Vec::new(),
        };
        let mut recorded = self.recorded(request, &agent.id, AccessAction::Search, &decision);
        recorded.entry.search_by = Some(kind.name().to_string());
        recorded.entry.matches = Some(ids.clone());
        recorded.facts = AccessFacts { canary: self.only_canaries(&ids)?, ..seen };
        let index = self.record(recorded, None).await?;
        if !decision.allowed {
            return Err(denied(decision, index));
        }
        if digest.is_none() {
            return Err(GatewayError::BadRequest(format!("the value is not a valid {}", kind.name())));
        }
        let today = self.today();
        let mut hits = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(StoredCustomer { sealed: Some(sealed), .. }) = self.directory.customer(&self.store, &id)? else {
                continue;
            };
            let name = self.vault.open(&id, &sealed, &[Field::FullName])?;
            let masked_name =
                name.get(&Field::FullName).map(|value| mask(Field::FullName, value, today)).unwrap_or_default();
            hits.push(SearchHit { customer: id, masked_name });
        }
        Ok(hits)
    }

    /// The masked card of a customer.
    pub async fn view(
        &self,
        who: &Claims,
        customer: &str,
        ticket: Option<&str>,
        request: &str,
    ) -> Result<Card, GatewayError> {
        bounded_ids(customer, ticket)?;
        let (agent, seen) = self.data_agent(who, AccessAction::View, Some(customer), ticket, request).await?;
        let (stored, sealed) =
            self.existing_customer(&agent, &seen, AccessAction::View, customer, ticket, request).await?;
        let context = self.access_context(&agent, &seen, &stored, &sealed, ticket)?;
        let decision = self.policy.decide(&self.request(
            &agent,
            Action::View,
            Some(context.customer.clone()),
            context.ticket.clone(),
            None,
            "",
            context.approval.clone(),
            None,
        ));
        let mut recorded = self.recorded(request, &agent.id, AccessAction::View, &decision);
        recorded.entry.customer = Some(customer.to_string());
        recorded.entry.ticket = ticket.map(str::to_string);
        recorded.entry.approval = context.approval_id.clone();
        recorded.facts = context.facts.clone();
        let index = self.record(recorded, Some(customer)).await?;
        if !decision.allowed {
            return Err(denied(decision, index));
        }
        let fields: Vec<Field> = sealed.record.fields().collect();
        let values = self.vault.open(customer, &sealed, &fields)?;
        let today = self.today();
        let masked = values.iter().map(|(field, value)| (*field, mask(*field, value, today))).collect();
        Ok(Card { customer: customer.to_string(), fields: masked, ledger_index: index })
    }

    /// Reveals fields in the clear. Every field must be allowed, or none is revealed.
    pub async fn reveal(
        &self,
        who: &Claims,
        customer: &str,
        ticket: Option<&str>,
        field_names: &[String],
        reason: &str,
        request: &str,
    ) -> Result<Revealed, GatewayError> {
        let fields = self.parse_fields(field_names)?;
        self.check_value_length(reason)?;
        bounded_ids(customer, ticket)?;
        let (agent, seen) = self.data_agent(who, AccessAction::Reveal, Some(customer), ticket, request).await?;
        let (stored, sealed) =
            self.existing_customer(&agent, &seen, AccessAction::Reveal, customer, ticket, request).await?;
        let context = self.access_context(&agent, &seen, &stored, &sealed, ticket)?;
        let decisions: Vec<Decision> = fields
            .iter()
            .map(|field| {
                self.policy.decide(&self.request(
                    &agent,
                    Action::Reveal,
                    Some(context.customer.clone()),
                    context.ticket.clone(),
                    Some(field.name().to_string()),
                    reason,
                    context.approval.clone(),
                    None,
                ))
            })
            .collect();
        let decision = combine(&fields, decisions);
        let mut recorded = self.recorded(request, &agent.id, AccessAction::Reveal, &decision);
        recorded.entry.customer = Some(customer.to_string());
        recorded.entry.ticket = ticket.map(str::to_string);
        recorded.entry.fields = fields.iter().map(|field| field.name().to_string()).collect();
        recorded.entry.approval = context.approval_id.clone();
        recorded.facts = AccessFacts { beyond_need: beyond_need(&fields, context.ticket.as_ref()), ..context.facts };
        let index = self.record(recorded, Some(customer)).await?;
        if !decision.allowed {
            return Err(denied(decision, index));
        }
        let values = self.vault.open(customer, &sealed, &fields)?;
        Ok(Revealed { values, ledger_index: index })
    }

    /// Checks a value the caller states against the stored one, revealing only whether it
    /// matches. A four-character statement is checked against the last four characters of
    /// identifier fields (the "last 4 of the SSN" a caller is asked for).
    pub async fn verify(
        &self,
        who: &Claims,
        customer: &str,
        ticket: Option<&str>,
        field_name: &str,
        stated: &str,
        request: &str,
    ) -> Result<Verified, GatewayError> {
        let field = self
            .parse_fields(&[field_name.to_string()])?
            .into_iter()
            .next()
            .ok_or_else(|| GatewayError::BadRequest("a field to verify is needed".into()))?;
        self.check_value_length(stated)?;
        bounded_ids(customer, ticket)?;
        let (agent, seen) = self.data_agent(who, AccessAction::Verify, Some(customer), ticket, request).await?;
        let (stored, sealed) =
            self.existing_customer(&agent, &seen, AccessAction::Verify, customer, ticket, request).await?;
        let context = self.access_context(&agent, &seen, &stored, &sealed, ticket)?;
        let decision = self.policy.decide(&self.request(
            &agent,
            Action::Verify,
            Some(context.customer.clone()),
            context.ticket.clone(),
            Some(field.name().to_string()),
            "",
            context.approval.clone(),
            None,
        ));
        // The check runs before the entry is written (it says how the check went), but its
        // answer leaves only once the entry is durable, and not at all if refused.
        let matched = if decision.allowed {
            let values = self.vault.open(customer, &sealed, &[field])?;
            Some(values.get(&field).is_some_and(|value| statement_matches(field, value, stated)))
        } else {
            None
        };
        let mut recorded = self.recorded(request, &agent.id, AccessAction::Verify, &decision);
        recorded.entry.customer = Some(customer.to_string());
        recorded.entry.ticket = ticket.map(str::to_string);
        recorded.entry.fields = vec![field.name().to_string()];
        recorded.entry.approval = context.approval_id.clone();
        recorded.facts = context.facts.clone();
        recorded.statement = matched;
        let index = self.record(recorded, Some(customer)).await?;
        let Some(matched) = matched else { return Err(denied(decision, index)) };
        Ok(Verified { matched, ledger_index: index })
    }

    /// Whether the caller may read the metrics: the service identity or an administrator,
    /// as the directory says now.
    pub fn may_read_metrics(&self, who: &Claims) -> Result<(), GatewayError> {
        let role = self.principal(who)?.role;
        if role != TokenRole::Service.name() && role != TokenRole::Admin.name() {
            return Err(GatewayError::WrongRole { needed: "service or admin", ledger_index: None });
        }
        Ok(())
    }

    /// Every recorded access to a customer (service role: the customer-facing app).
    pub fn access_history(&self, who: &Claims, customer: &str) -> Result<Vec<AccessEvent>, GatewayError> {
        if self.principal(who)?.role != TokenRole::Service.name() {
            return Err(GatewayError::WrongRole { needed: "service", ledger_index: None });
        }
        self.indexer.flush();
        Ok(self.store.access_history(customer, self.limits.history_events_max)?)
    }

    // ---- administration ----

    pub async fn put_agent(&self, who: &Claims, agent: Agent, request: &str) -> Result<u64, GatewayError> {
        cordon_directory::check_agent_id(&agent.id).map_err(|error| GatewayError::BadRequest(error.to_string()))?;
        cordon_directory::check_employer(&agent.employer)
            .map_err(|error| GatewayError::BadRequest(error.to_string()))?;
        let index = self
            .administer(
                who,
                "agent.put",
                &agent.id,
                Some(format!("{} {} {}", agent.team, agent.site, agent.role)),
                request,
            )
            .await?;
        self.directory.put_agents(&self.store, &[agent])?;
        Ok(index)
    }

    /// Suspends or reinstates an agent; the change holds from the agent's next request.
    pub async fn set_agent_status(
        &self,
        who: &Claims,
        agent: &str,
        status: AgentStatus,
        request: &str,
    ) -> Result<u64, GatewayError> {
        let change = match status {
            // One way back in: an analyst's reinstatement, which also clears detection's risk.
            AgentStatus::Active => return self.reinstate_agent(who, agent, request).await,
            AgentStatus::Suspended => "agent.suspend",
            AgentStatus::Offboarded => "agent.offboard",
        };
        self.existing_agent(agent)?;
        let index = self.administer(who, change, agent, None, request).await?;
        self.directory.set_agent_status(&self.store, agent, status)?;
        Ok(index)
    }

    pub async fn put_ticket(&self, who: &Claims, ticket: Ticket, request: &str) -> Result<u64, GatewayError> {
        cordon_directory::check_id("ticket", &ticket.id)
            .map_err(|error| GatewayError::BadRequest(error.to_string()))?;
        if !self.categories.knows(&ticket.category) {
            return Err(GatewayError::BadRequest(format!("unknown ticket category `{}`", ticket.category)));
        }
        self.check_ticket_people(&ticket)?;
        let detail = format!("{} {} {}", ticket.status, ticket.category, ticket.assignee.as_deref().unwrap_or("-"));
        let index = self.administer(who, "ticket.put", &ticket.id, Some(detail), request).await?;
        self.directory.put_tickets(&self.store, &[ticket])?;
        Ok(index)
    }

    /// A ticket names people who exist: its requester a customer, its assignee an agent.
    pub(crate) fn check_ticket_people(&self, ticket: &Ticket) -> Result<(), GatewayError> {
        if self.directory.customer(&self.store, &ticket.requester)?.is_none() {
            return Err(GatewayError::BadRequest(format!(
                "ticket `{}`: requester `{}` is not a customer",
                ticket.id, ticket.requester
            )));
        }
        if let Some(assignee) = &ticket.assignee
            && self.directory.agent(&self.store, assignee)?.is_none()
        {
            return Err(GatewayError::BadRequest(format!(
                "ticket `{}`: assignee `{assignee}` is not an agent",
                ticket.id
            )));
        }
        Ok(())
    }

    pub async fn put_customer(
        &self,
        who: &Claims,
        id: &str,
        fields: &BTreeMap<Field, Value>,
        canary: bool,
        request: &str,
    ) -> Result<u64, GatewayError> {
        let row = self.seal_customer(id, fields, canary)?;
        let index = self.administer(who, "customer.put", id, None, request).await?;
        self.directory.put_customers(&self.store, &[row], self.clock.now_seconds())?;
        Ok(index)
    }

    /// Deletes a customer by destroying its data key; the audit trail keeps its id.
    pub async fn delete_customer(&self, who: &Claims, id: &str, request: &str) -> Result<u64, GatewayError> {
        let index = self.administer(who, "customer.delete", id, None, request).await?;
        let deleted = self.directory.delete_customer(&self.store, id, self.clock.now_seconds())?;
        if !deleted {
            return Err(GatewayError::NotFound { what: "customer", id: id.to_string(), ledger_index: Some(index) });
        }
        Ok(index)
    }

    /// Seals a customer for storage (used by the API and by bulk import).
    pub fn seal_customer(
        &self,
        id: &str,
        fields: &BTreeMap<Field, Value>,
        canary: bool,
    ) -> Result<CustomerRow, GatewayError> {
        cordon_directory::check_id("customer", id).map_err(|error| GatewayError::BadRequest(error.to_string()))?;
        let sealed = self.vault.seal(id, fields)?;
        let index = self.vault.index_entries(id, fields);
        Ok(CustomerRow { id: id.to_string(), sealed, index, canary })
    }

    // ---- approvals ----

    /// An agent asks for break-glass access to a customer, or a second approver.
    pub async fn request_approval(
        &self,
        who: &Claims,
        kind: ApprovalKind,
        customer: &str,
        request: &str,
    ) -> Result<Approval, GatewayError> {
        bounded_ids(customer, None)?;
        let (agent, _) = self.data_agent(who, AccessAction::RequestApproval, Some(customer), None, request).await?;
        if self.store.customer(customer)?.is_none() {
            return Err(GatewayError::NotFound { what: "customer", id: customer.to_string(), ledger_index: None });
        }
        // Policy decides who may ask (a suspended agent may not); a refusal is recorded.
        let facts = CustomerFacts { id: customer.to_string(), high_balance: false };
        let decision =
            self.policy.decide(&self.request(&agent, Action::RequestApproval, Some(facts), None, None, "", None, None));
        if !decision.allowed {
            let mut recorded = self.recorded(request, &agent.id, AccessAction::RequestApproval, &decision);
            recorded.entry.customer = Some(customer.to_string());
            let index = self.record(recorded, None).await?;
            return Err(denied(decision, index));
        }
        let approval = Approval {
            id: format!("ap-{}", random_id()?),
            kind,
            requester: agent.id.clone(),
            customer: customer.to_string(),
            status: ApprovalStatus::Requested,
            approver: None,
            created_at: self.clock.now_seconds(),
            decided_at: None,
            expires_at: None,
        };
        self.change_entry(&agent.id, "approval.request", &approval.id, Some(format!("{kind} {customer}")), request)
            .await?;
        self.directory.put_approval(&self.store, &approval)?;
        Ok(approval)
    }

    /// An analyst other than the requester grants an approval for at most an hour.
    pub async fn approve(
        &self,
        who: &Claims,
        approval_id: &str,
        seconds: i64,
        request: &str,
    ) -> Result<Approval, GatewayError> {
        if !(1..=APPROVAL_SECONDS_MAX).contains(&seconds) {
            return Err(GatewayError::BadRequest(format!(
                "an approval lasts 1 to {APPROVAL_SECONDS_MAX} seconds, not {seconds}"
            )));
        }
        let mut approval = self.store.approval(approval_id)?.ok_or_else(|| GatewayError::NotFound {
            what: "approval",
            id: approval_id.to_string(),
            ledger_index: None,
        })?;
        if approval.status != ApprovalStatus::Requested {
            return Err(GatewayError::Conflict(format!("approval `{approval_id}` is already {}", approval.status)));
        }
        // A person approves: a directory analyst, never a shared role identity.
        let approver = self.data_agent(who, AccessAction::Approve, Some(&approval.customer), None, request).await?.0;
        let decision = self.policy.decide(&self.request(
            &approver,
            Action::Approve,
            None,
            None,
            None,
            "",
            None,
            Some(approval.requester.clone()),
        ));
        let mut recorded = self.recorded(request, &approver.id, AccessAction::Approve, &decision);
        recorded.entry.customer = Some(approval.customer.clone());
        recorded.entry.approval = Some(approval.id.clone());
        let index = self.record(recorded, None).await?;
        if !decision.allowed {
            return Err(denied(decision, index));
        }
        let now = self.clock.now_seconds();
        approval.status = ApprovalStatus::Approved;
        approval.approver = Some(approver.id);
        approval.decided_at = Some(now);
        approval.expires_at = Some(now + seconds);
        self.directory.put_approval(&self.store, &approval)?;
        Ok(approval)
    }

    // ---- internals ----

    async fn administer(
        &self,
        who: &Claims,
        change: &'static str,
        target: &str,
        detail: Option<String>,
        request: &str,
    ) -> Result<u64, GatewayError> {
        let actor = self.authorize_system(who, Action::Administer, request).await?;
        self.change_entry(&actor.id, change, target, detail, request).await
    }

    pub(crate) async fn change_entry(
        &self,
        actor: &str,
        change: &'static str,
        target: &str,
        detail: Option<String>,
        request: &str,
    ) -> Result<u64, GatewayError> {
        self.change_entry_then(actor, change, target, detail, request, |_| {}).await
    }

    /// Several change entries with consecutive indexes, made durable together (the ledger
    /// group-commits them); returns the first index.
    pub(crate) async fn change_entries(
        &self,
        actor: &str,
        changes: Vec<(&'static str, String, Option<String>)>,
        request: &str,
    ) -> Result<u64, GatewayError> {
        let time_ms = self.clock.now_ms();
        let entries = changes
            .into_iter()
            .map(|(change, target, detail)| {
                ChangeEntry::new(time_ms, request, actor, change, &target, detail).encode().map_err(too_large)
            })
            .collect::<Result<Vec<Vec<u8>>, GatewayError>>()?;
        let (pending, ()) = append_sequenced(&self.sequencer, self.audit.as_ref(), |_, _| Ok((entries, ())))?;
        durable(&self.sequencer, pending).await
    }

    /// A change entry; `then` runs on the detector in the entry's place in ledger order.
    /// The entry is encoded (and so checked against the ledger's limit) before it takes
    /// that place.
    pub(crate) async fn change_entry_then(
        &self,
        actor: &str,
        change: &'static str,
        target: &str,
        detail: Option<String>,
        request: &str,
        then: impl FnOnce(&mut Sequenced),
    ) -> Result<u64, GatewayError> {
        let entry = ChangeEntry::new(self.clock.now_ms(), request, actor, change, target, detail)
            .encode()
            .map_err(too_large)?;
        let (pending, ()) = append_sequenced(&self.sequencer, self.audit.as_ref(), |_, sequenced| {
            then(sequenced);
            Ok((vec![entry], ()))
        })?;
        durable(&self.sequencer, pending).await
    }

    /// An access decision about to be recorded, stamped now.
    fn recorded(&self, request: &str, agent: &str, action: AccessAction, decision: &Decision) -> Recorded {
        Recorded::new(self.clock.now_ms(), request, agent, action, decision)
    }

    /// Appends the decision, with any alerts detection raised on it, and waits until they are
    /// durable; then applies containment and indexes the access for the customer's history.
    /// Any failure means the caller gets nothing. Detection can turn an allow into a denial.
    async fn record(&self, recorded: Recorded, history_for: Option<&str>) -> Result<u64, GatewayError> {
        if !self.answers_access {
            return Err(GatewayError::Conflict(
                "this data directory was opened for analysis, without detection's state, so it answers no \
                 access requests; serve them with `cordon serve`"
                    .into(),
            ));
        }
        let Recorded { mut entry, facts, observed, statement } = recorded;
        entry.why = facts.why.map(|why| why.name().to_string());
        entry.beyond_need = facts.beyond_need.clone();
        entry.off_shift = facts.off_shift;
        // A request whose entry could not be recorded is refused before it takes a place in
        // the ledger's order or reaches the detector.
        entry.check_fits().map_err(|error| GatewayError::BadRequest(error.to_string()))?;
        let matched = entry.matches.as_ref().is_some_and(|matches| !matches.is_empty());
        let (pending, (entry, verdict, alerts)) =
            append_sequenced(&self.sequencer, self.audit.as_ref(), |index, sequenced| {
                let policy_allowed = entry.allowed();
                if let (Some(matched), Some(customer), Some(field)) = (statement, &entry.customer, entry.fields.first())
                    && policy_allowed
                {
                    let statements = &mut sequenced.statements;
                    let outcome = if statements.refuses(&entry.agent, customer, field, entry.time_ms) {
                        entry.decision = EntryDecision::Deny;
                        entry.policies = vec![VERIFY_LIMIT_POLICY.to_string()];
                        VerifyOutcome::Refused
                    } else if matched {
                        VerifyOutcome::Match
                    } else {
                        statements.add_wrong(&entry.agent, customer, field, entry.time_ms);
                        VerifyOutcome::NoMatch
                    };
                    entry.verify = Some(outcome);
                }
                let verdict = match seen(entry.action, matched, entry.verify) {
                    Some(action) if sequenced.enabled && observed => sequenced.detector.observe(&observation(
                        index,
                        entry.time_ms,
                        &entry.agent,
                        action,
                        entry.customer.as_deref(),
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
                let mut entries = vec![entry.encode().map_err(|error| GatewayError::Internal(error.to_string()))?];
                for alert in &alerts {
                    entries.push(alert.encode().map_err(|error| GatewayError::Internal(error.to_string()))?);
                }
                Ok((entries, (entry, verdict, alerts)))
            })?;
        let index = durable(&self.sequencer, pending).await?;
        if !alerts.is_empty() {
            let stored: Vec<StoredAlert> = alerts
                .iter()
                .zip(1u64..)
                .map(|(alert, offset)| stored_alert(alert, index + offset))
                .collect::<Result<_, _>>()?;
            self.store.record_alerts(&stored, self.webhook_url.is_some(), entry.time_ms)?;
        }
        for alert in verdict.alerts.iter().filter(|alert| alert.level == cordon_detect::Level::Suspend) {
            self.directory.set_agent_status(&self.store, &alert.agent, AgentStatus::Suspended)?;
        }
        if let Some(customer) = history_for {
            self.indexer.add(AccessEvent {
                ledger_index: index,
                time: entry.time_ms,
                agent_id: entry.agent.clone(),
                customer_id: Some(customer.to_string()),
                ticket_id: entry.ticket.clone(),
                action: entry.action.name().to_string(),
                fields: entry.fields.clone(),
                allowed: entry.allowed(),
                policies: entry.policies.clone(),
                request_id: entry.request.clone(),
            });
        }
        if let Some(contained) = entry.contained {
            let reason = match contained {
                Containment::StepUp => {
                    "detection stepped this agent up: each reveal needs a second approver".to_string()
                }
                Containment::Suspend => format!("detection suspended agent `{}`", entry.agent),
            };
            return Err(GatewayError::Denied { reason, policies: entry.policies, ledger_index: index });
        }
        if entry.verify == Some(VerifyOutcome::Refused) {
            return Err(GatewayError::VerifyLimit {
                field: entry.fields.first().cloned().unwrap_or_default(),
                customer: entry.customer.clone().unwrap_or_default(),
                ledger_index: index,
            });
        }
        Ok(index)
    }

    /// The customer, or a recorded denial: asking for a customer that does not exist is
    /// itself an access attempt worth keeping.
    async fn existing_customer(
        &self,
        agent: &AgentFacts,
        seen: &AccessFacts,
        action: AccessAction,
        customer: &str,
        ticket: Option<&str>,
        request: &str,
    ) -> Result<(StoredCustomer, SealedCustomer), GatewayError> {
        if let Some(StoredCustomer { sealed: Some(sealed), id, canary }) =
            self.directory.customer(&self.store, customer)?
        {
            return Ok((StoredCustomer { sealed: None, id, canary }, sealed));
        }
        let mut recorded = Recorded {
            entry: AccessEntry::new(self.clock.now_ms(), request, &agent.id, action, EntryDecision::Deny),
            facts: AccessFacts::default(),
            observed: true,
            statement: None,
        };
        recorded.entry.customer = Some(customer.to_string());
        recorded.entry.ticket = ticket.map(str::to_string);
        recorded.facts = seen.clone();
        let index = self.record(recorded, None).await?;
        Err(GatewayError::NotFound { what: "customer", id: customer.to_string(), ledger_index: Some(index) })
    }

    fn access_context(
        &self,
        agent: &AgentFacts,
        seen: &AccessFacts,
        stored: &StoredCustomer,
        sealed: &SealedCustomer,
        ticket: Option<&str>,
    ) -> Result<AccessContext, GatewayError> {
        let balance = self.vault.open(&stored.id, sealed, &[Field::BalanceUsd])?;
        let balance_band = balance.get(&Field::BalanceUsd).and_then(Value::as_f64).and_then(BalanceBand::of);
        let high_balance = balance_band == Some(BalanceBand::OverOneMillion);
        let ticket = match ticket {
            Some(id) => match self.directory.ticket(&self.store, id)? {
                Some(ticket) => Some(self.ticket_facts(&ticket)),
                // An unknown ticket id is kept in the request so the denial names it.
                None => Some(TicketFacts {
                    id: id.to_string(),
                    requester: String::new(),
                    assignee: None,
                    status: "unknown".into(),
                    category: String::new(),
                    needed_fields: Vec::new(),
                }),
            },
            None => None,
        };
        // With a ticket, a second approver is what can be in force; without, break-glass.
        let kind = if ticket.is_some() { ApprovalKind::SecondApprover } else { ApprovalKind::BreakGlass };
        let approval = if self.directory.may_hold_approval(&agent.id) {
            self.store.approval_in_force(&agent.id, &stored.id, kind, self.clock.now_seconds())?
        } else {
            None
        };
        let why = match (&approval, &ticket) {
            (Some(_), _) => Why::Approval,
            (None, Some(ticket)) => {
                let mine = ticket.assignee.as_deref() == Some(agent.id.as_str()) && ticket.status == "open";
                match (mine, ticket.requester == stored.id) {
                    (true, true) => Why::Ticket,
                    (true, false) => Why::OtherRequester,
                    (false, _) => Why::NotAssigned,
                }
            }
            (None, None) => {
                let since = self.clock.now_seconds() - CALLBACK_WINDOW_SECONDS;
                if self.store.ticket_since(&stored.id, Some(&agent.id), since)? {
                    Why::Callback
                } else if agent.role == "analyst" && self.store.ticket_since(&stored.id, None, since)? {
                    Why::Review
                } else {
                    Why::Unexplained
                }
            }
        };
        let facts = AccessFacts {
            why: Some(why),
            high_balance: balance_band >= Some(BalanceBand::OneHundredThousandToOneMillion),
            canary: stored.canary,
            ..seen.clone()
        };
        Ok(AccessContext {
            customer: CustomerFacts { id: stored.id.clone(), high_balance },
            facts,
            ticket,
            approval_id: approval.as_ref().map(|approval| approval.id.clone()),
            approval: approval.map(|approval| ApprovalFacts {
                kind: approval.kind.name().to_string(),
                requester: approval.requester,
                approver: approval.approver.unwrap_or_default(),
                customer: approval.customer,
                expires_at: approval.expires_at.unwrap_or_default(),
            }),
        })
    }

    /// Whether a search found only canaries: knowing a canary's email or phone is itself a
    /// touch. A canary among other hits (phone numbers are shared) is not: the value
    /// searched belongs to someone real.
    fn only_canaries(&self, ids: &[String]) -> Result<bool, GatewayError> {
        for id in ids {
            if !self.directory.customer(&self.store, id)?.is_some_and(|customer| customer.canary) {
                return Ok(false);
            }
        }
        Ok(!ids.is_empty())
    }

    fn ticket_facts(&self, ticket: &Ticket) -> TicketFacts {
        TicketFacts {
            id: ticket.id.clone(),
            requester: ticket.requester.clone(),
            assignee: ticket.assignee.clone(),
            status: ticket.status.name().to_string(),
            category: ticket.category.clone(),
            needed_fields: self
                .categories
                .needs(&ticket.category)
                .iter()
                .map(|field| field.name().to_string())
                .collect(),
        }
    }

    /// The directory agent behind a token for a request that reaches customer data. A token
    /// that is not a directory agent's (a role identity, or an agent no longer in the
    /// directory) is refused, and the refused attempt recorded.
    async fn data_agent(
        &self,
        who: &Claims,
        action: AccessAction,
        customer: Option<&str>,
        ticket: Option<&str>,
        request: &str,
    ) -> Result<(AgentFacts, AccessFacts), GatewayError> {
        let error = match self.acting_agent(who) {
            Ok(found) => return Ok(found),
            Err(error @ (GatewayError::WrongRole { .. } | GatewayError::Unauthenticated(_))) => error,
            Err(other) => return Err(other),
        };
        let mut entry = AccessEntry::new(self.clock.now_ms(), request, &who.sub, action, EntryDecision::Deny);
        entry.customer = customer.map(str::to_string);
        entry.ticket = ticket.map(str::to_string);
        entry.policies = vec![format!("refused:{}", error.code())];
        let unobserved = Recorded { entry, facts: AccessFacts::default(), observed: false, statement: None };
        let index = self.record(unobserved, None).await?;
        Err(match error {
            GatewayError::WrongRole { needed, .. } => GatewayError::WrongRole { needed, ledger_index: Some(index) },
            other => other,
        })
    }

    /// The directory agent behind a token, as policy sees it and as detection sees it (its
    /// peers, and whether it is on shift now), from one directory read.
    fn acting_agent(&self, who: &Claims) -> Result<(AgentFacts, AccessFacts), GatewayError> {
        if who.sub.starts_with(ROLE_PREFIX) {
            return Err(GatewayError::WrongRole {
                needed: "agent (a token issued for a directory agent)",
                ledger_index: None,
            });
        }
        let agent = self
            .directory
            .agent(&self.store, &who.sub)?
            .ok_or_else(|| GatewayError::Unauthenticated(format!("agent `{}` is not in the directory", who.sub)))?;
        let hour = (self.clock.now_seconds().rem_euclid(86_400) / 3600) as u8;
        let seen = AccessFacts {
            peer_group: format!("{}@{}", agent.team, agent.site),
            site: agent.site.clone(),
            off_shift: !agent.shift.contains(hour),
            ..AccessFacts::default()
        };
        Ok((agent_facts(&agent), seen))
    }

    /// Whoever holds the token, resolved on every request: a directory agent with its role,
    /// status, team, site and employer as the directory says now (never as the token says,
    /// so a suspension or a demotion holds from the next request), or one of the role
    /// identities (`role:admin`, `role:analyst`, `role:service`), whose token must name
    /// exactly that role.
    pub(crate) fn principal(&self, who: &Claims) -> Result<AgentFacts, GatewayError> {
        if let Some(role) = who.sub.strip_prefix(ROLE_PREFIX) {
            if who.role == TokenRole::Agent || role != who.role.name() {
                return Err(GatewayError::Unauthenticated(format!(
                    "token subject `{}` does not match its role `{}`",
                    who.sub,
                    who.role.name()
                )));
            }
            return Ok(AgentFacts {
                id: who.sub.clone(),
                team: String::new(),
                site: String::new(),
                employer: "staff".into(),
                role: role.to_string(),
                status: "active".into(),
            });
        }
        let agent = self
            .directory
            .agent(&self.store, &who.sub)?
            .ok_or_else(|| GatewayError::Unauthenticated(format!("agent `{}` is not in the directory", who.sub)))?;
        Ok(agent_facts(&agent))
    }

    #[allow(clippy::too_many_arguments)]
    fn request(
        &self,
        agent: &AgentFacts,
        action: Action,
        customer: Option<CustomerFacts>,
        ticket: Option<TicketFacts>,
        field: Option<String>,
        reason: &str,
        approval: Option<ApprovalFacts>,
        approval_requester: Option<String>,
    ) -> AccessRequest {
        AccessRequest {
            agent: agent.clone(),
            action,
            customer,
            ticket,
            field,
            reason: reason.to_string(),
            approval,
            approval_requester,
            now: self.clock.now_seconds(),
        }
    }

    fn parse_fields(&self, names: &[String]) -> Result<Vec<Field>, GatewayError> {
        if names.is_empty() {
            return Err(GatewayError::BadRequest("`fields` must name at least one field".into()));
        }
        if names.len() > self.limits.fields_per_request_max {
            return Err(GatewayError::BadRequest(format!(
                "`fields` names {} fields; at most {} per request",
                names.len(),
                self.limits.fields_per_request_max
            )));
        }
        let mut seen = BTreeSet::new();
        names
            .iter()
            .filter(|name| seen.insert(name.as_str()))
            .map(|name| name.parse::<Field>().map_err(|error| GatewayError::BadRequest(error.to_string())))
            .collect()
    }

    pub(crate) fn check_value_length(&self, value: &str) -> Result<(), GatewayError> {
        if value.len() > self.limits.value_bytes_max {
            return Err(GatewayError::BadRequest(format!(
                "a value of {} bytes is over the limit of {}",
                value.len(),
                self.limits.value_bytes_max
            )));
        }
        Ok(())
    }

    fn today(&self) -> Date {
        Date::from_unix_seconds(self.clock.now_seconds())
    }
}

/// An alert being decided; dropping it lets the next decision in.
struct AlertClaim<'a> {
    gateway: &'a Gateway,
    id: u64,
}

impl Drop for AlertClaim<'_> {
    fn drop(&mut self) {
        self.gateway.deciding_alerts.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&self.id);
    }
}

struct AccessContext {
    customer: CustomerFacts,
    ticket: Option<TicketFacts>,
    approval: Option<ApprovalFacts>,
    approval_id: Option<String>,
    /// For detection.
    facts: AccessFacts,
}

pub(crate) fn agent_facts(agent: &Agent) -> AgentFacts {
    AgentFacts {
        id: agent.id.clone(),
        team: agent.team.clone(),
        site: agent.site.clone(),
        employer: agent.employer.clone(),
        role: agent.role.name().to_string(),
        status: agent.status.name().to_string(),
    }
}

/// The store's row for an alert entry at `ledger_index`.
fn stored_alert(alert: &AlertEntry, ledger_index: u64) -> Result<StoredAlert, GatewayError> {
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

/// Customer and agent facts for a replay, from the store (balances through the vault).
struct StoredFacts<'a> {
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

/// Fields a reveal asks for that its ticket's category does not need (none without a
/// ticket: an unexplained reveal is scored as such).
fn beyond_need(fields: &[Field], ticket: Option<&TicketFacts>) -> Vec<String> {
    let Some(ticket) = ticket else { return Vec::new() };
    fields
        .iter()
        .map(|field| field.name())
        .filter(|name| !ticket.needed_fields.iter().any(|needed| needed == name))
        .map(str::to_string)
        .collect()
}

/// How long after working a customer's ticket a look without one counts as a callback.
const CALLBACK_WINDOW_SECONDS: i64 = 7 * 86_400;

/// One decision for a multi-field request: allowed only if every field is; the reason is the
/// first denial's, naming its field.
fn combine(fields: &[Field], decisions: Vec<Decision>) -> Decision {
    let mut policies = BTreeSet::new();
    let mut errors = Vec::new();
    let mut first_denial = None;
    let mut first_reason = None;
    for (field, decision) in fields.iter().zip(decisions) {
        policies.extend(decision.policies.iter().cloned());
        errors.extend(decision.errors.iter().cloned());
        if !decision.allowed && first_denial.is_none() {
            first_denial = Some(format!("{field}: {}", decision.reason));
        }
        first_reason.get_or_insert(decision.reason);
    }
    Decision {
        allowed: first_denial.is_none(),
        policies: policies.into_iter().collect(),
        reason: first_denial.or(first_reason).unwrap_or_default(),
        errors,
    }
}

/// The longest customer or ticket id a request may name (the directory's limit on ids).
/// Any id within it is recorded as asked for, whatever its characters; a longer one could
/// not be recorded and names nobody, so it is refused before the ledger.
const ID_BYTES_MAX: usize = 128;

fn bounded_ids(customer: &str, ticket: Option<&str>) -> Result<(), GatewayError> {
    for (what, id) in [("customer", Some(customer)), ("ticket", ticket)] {
        if let Some(id) = id
            && id.len() > ID_BYTES_MAX
        {
            return Err(GatewayError::BadRequest(format!(
                "a {what} id of {} bytes is over the limit of {ID_BYTES_MAX}",
                id.len()
            )));
        }
    }
    Ok(())
}

/// The policy id a verify refused by its limit on wrong statements names.
pub const VERIFY_LIMIT_POLICY: &str = "verify-wrong-statements-limit";

/// Token subjects of the role identities start with this; no directory agent's id may.
pub(crate) const ROLE_PREFIX: &str = "role:";

/// How the ledger names a policy action.
fn recorded_action(action: Action) -> AccessAction {
    match action {
        Action::Search => AccessAction::Search,
        Action::View => AccessAction::View,
        Action::Reveal => AccessAction::Reveal,
        Action::Verify => AccessAction::Verify,
        Action::Approve => AccessAction::Approve,
        Action::Administer => AccessAction::Administer,
        Action::Export => AccessAction::Export,
        Action::Investigate => AccessAction::Investigate,
        Action::RequestApproval => AccessAction::RequestApproval,
    }
}

/// A caller's input too large to record: refused before it reaches the ledger.
fn too_large(error: cordon_entry::EntryError) -> GatewayError {
    GatewayError::BadRequest(error.to_string())
}

fn denied(decision: Decision, ledger_index: u64) -> GatewayError {
    GatewayError::Denied { reason: decision.reason, policies: decision.policies, ledger_index }
}

/// Whether a stated value matches the stored one, after normalising both. For a list or an
/// object (wallet addresses, a postal address) it matches when it equals one element.
fn statement_matches(field: Field, stored: &Value, stated: &str) -> bool {
    let canonical = |text: &str| -> String {
        match field {
            Field::Email => normalize(SearchKey::Email, text).unwrap_or_default(),
            Field::Phone => normalize(SearchKey::Phone, text).unwrap_or_default(),
            _ => text.chars().filter(|character| character.is_alphanumeric()).flat_map(char::to_lowercase).collect(),
        }
    };
    let stated_canonical = canonical(stated);
    if stated_canonical.is_empty() {
        return false;
    }
    let last_four_fields = [Field::GovernmentIdNumber, Field::TaxId, Field::BankAccount, Field::Phone];
    let last_four = last_four_fields.contains(&field) && stated_canonical.chars().count() == 4;
    let mut elements = Vec::new();
    match (field, stored) {
        // The method's type only: the rest of a two-factor record is a secret.
        (Field::TwoFactorMethod, Value::Object(fields)) => {
            elements.extend(fields.get("type").and_then(Value::as_str).map(str::to_string))
        }
        (_, value) => leaves(value, &mut elements),
    }
    elements
        .iter()
        .map(|element| canonical(element))
        .any(|element| element == stated_canonical || (last_four && element.ends_with(&stated_canonical)))
}

/// The scalar values inside a stored value, as text.
fn leaves(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::String(text) => into.push(text.clone()),
        Value::Number(number) => into.push(number.to_string()),
        Value::Bool(flag) => into.push(flag.to_string()),
        Value::Array(items) => items.iter().for_each(|item| leaves(item, into)),
        Value::Object(fields) => fields.values().for_each(|item| leaves(item, into)),
        Value::Null => {}
    }
}

pub(crate) fn random_id() -> Result<String, GatewayError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|error| GatewayError::Internal(format!("random source failed: {error}")))?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}
