//! The one path to customer data: search, the masked card, reveal, verify and the access
//! history. Each gathers the facts, asks policy, records the decision durably, and only
//! then opens the vault.

use std::collections::BTreeSet;

use cordon_detect::Why;
use cordon_directory::{ApprovalKind, Ticket};
use cordon_policy::{Action, AgentFacts, ApprovalFacts, CustomerFacts, Decision, TicketFacts};
use cordon_store::{AccessEvent, StoredCustomer};
use cordon_vault::{BalanceBand, Field, SealedCustomer, SearchKey, mask, normalize};
use serde_json::Value;

use crate::detection::AccessFacts;
use crate::error::GatewayError;
use crate::service::*;
use crate::token::{Claims, TokenRole};

impl Gateway {
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
        let (agent, seen) = self.data_agent(who, Action::Search, None, None, request).await?;
        let decision = self.policy.decide(&self.request(&agent, Action::Search, None, None, None, "", None, None));
        let digest = self.vault.search_digest(kind, value);
        let ids = match (decision.allowed, digest) {
            (true, Some(digest)) => self.store.search(kind, &digest)?,
            _ => Vec::new(),
        };
        // Each hit's name is opened (and masked) before the entry is written: an entry saying
        // the matches were shown is never written for hits that could not be opened; that
        // search is recorded as refused, with its matches, and answered with the failure.
        let opened = self.search_hits(&ids);
        let (decision, failure) = refuse_if_unopenable(decision, opened.as_ref().err());
        let mut recorded = self.recorded(request, who, &agent.id, Action::Search, &decision);
        recorded.entry.search_by = Some(kind.name().to_string());
        recorded.entry.matches = Some(ids.clone());
        let why = if ids.is_empty() { None } else { Some(self.search_reason(&agent, &ids)?) };
        recorded.facts = AccessFacts { canary: self.only_canaries(&ids)?, why, ..seen };
        let outcome = self.record(recorded).await?;
        if let Some(failure) = failure {
            return Err(failure);
        }
        outcome.allowed_or(|index| denied(decision, index))?;
        let hits = opened?;
        if digest.is_none() {
            return Err(GatewayError::BadRequest(format!("the value is not a valid {}", kind.name())));
        }
        Ok(hits)
    }

    /// Why the agent could be looking for whom a search found: a ticket of one of them it
    /// worked within the callback window (its own open ticket among them), an analyst's
    /// review, or nothing. A hit that explains nothing tells the agent who is a customer:
    /// what an insider checking a list of outside emails and phones is after.
    fn search_reason(&self, agent: &AgentFacts, ids: &[String]) -> Result<Why, GatewayError> {
        // A value shared by many (a phone of a household) is checked on its first few.
        for id in ids.iter().take(SEARCH_REASON_HITS_MAX) {
            if self.ticket_lately(id, Some(&agent.id))? {
                return Ok(Why::Ticket);
            }
        }
        if agent.role == "analyst" {
            for id in ids.iter().take(SEARCH_REASON_HITS_MAX) {
                if self.ticket_lately(id, None)? {
                    return Ok(Why::Review);
                }
            }
        }
        Ok(Why::Unexplained)
    }

    /// Whether a ticket from `customer` (worked by `agent`, if given) moved within the
    /// callback window: what makes a look without a ticket in hand a callback or a review.
    fn ticket_lately(&self, customer: &str, agent: Option<&str>) -> Result<bool, GatewayError> {
        let since = self.clock.now_seconds() - CALLBACK_WINDOW_SECONDS;
        Ok(self.store.ticket_since(customer, agent, since)?)
    }

    /// Each hit's masked name.
    fn search_hits(&self, ids: &[String]) -> Result<Vec<SearchHit>, GatewayError> {
        let today = self.today();
        let mut hits = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(StoredCustomer { sealed: Some(sealed), .. }) = self.directory.customer(&self.store, id)? else {
                continue;
            };
            let name = self.vault.open(id, &sealed, &[Field::FullName])?;
            let masked_name =
                name.get(&Field::FullName).map(|value| mask(Field::FullName, value, today)).unwrap_or_default();
            hits.push(SearchHit { customer: id.clone(), masked_name });
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
        let (agent, sealed, context) = self.customer_access(who, Action::View, customer, ticket, request).await?;
        let decision = self.policy.decide(&self.customer_request(&agent, Action::View, &context, None, ""));
        // Opened and masked before the entry is written (as a reveal is), shown only after; a
        // card that cannot be opened is recorded as refused and answered with the failure.
        let masked = decision.allowed.then(|| {
            let fields: Vec<Field> = sealed.record.fields().collect();
            let today = self.today();
            self.vault
                .open(customer, &sealed, &fields)
                .map(|values| values.iter().map(|(field, value)| (*field, mask(*field, value, today))).collect())
        });
        let failure = masked.as_ref().and_then(|opened| opened.as_ref().err()).cloned().map(GatewayError::from);
        let (decision, failure) = refuse_if_unopenable(decision, context.unopenable.as_ref().or(failure.as_ref()));
        let recorded = self.customer_decision(request, who, &agent, Action::View, &context, &decision);
        let outcome = self.record(recorded).await?;
        if let Some(failure) = failure {
            return Err(failure);
        }
        let index = outcome.allowed_or(|index| denied(decision, index))?;
        let fields = masked.transpose()?.unwrap_or_default();
        Ok(Card { customer: customer.to_string(), fields, ledger_index: index })
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
        let (agent, sealed, context) = self.customer_access(who, Action::Reveal, customer, ticket, request).await?;
        let decisions: Vec<Decision> = fields
            .iter()
            .map(|field| {
                self.policy.decide(&self.customer_request(&agent, Action::Reveal, &context, Some(*field), reason))
            })
            .collect();
        let decision = self.require_sign_in(who, combine(&fields, decisions));
        // Opened before the entry is written, so that an entry saying the fields were revealed
        // is never written for fields that could not be opened (the HSM holding the KEK gone,
        // a damaged record); the values leave only once the entry is durable.
        // A reveal that cannot be opened is recorded as refused and answered with the failure.
        let values = decision.allowed.then(|| self.vault.open(customer, &sealed, &fields));
        let failure = values.as_ref().and_then(|opened| opened.as_ref().err()).cloned().map(GatewayError::from);
        let (decision, failure) = refuse_if_unopenable(decision, context.unopenable.as_ref().or(failure.as_ref()));
        let mut recorded = self.customer_decision(request, who, &agent, Action::Reveal, &context, &decision);
        recorded.entry.fields = fields.iter().map(|field| field.name().to_string()).collect();
        recorded.facts.beyond_need = beyond_need(&fields, context.ticket.as_ref(), context.facts.why);
        let outcome = self.record(recorded).await?;
        if let Some(failure) = failure {
            return Err(failure);
        }
        let index = outcome.allowed_or(|index| denied(decision, index))?;
        let values =
            values.transpose()?.ok_or_else(|| GatewayError::Internal("an allowed reveal was not opened".into()))?;
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
        let (agent, sealed, context) = self.customer_access(who, Action::Verify, customer, ticket, request).await?;
        // Verify answers whether a stated value is right: as telling as a reveal, over enough
        // statements, so it asks the same of the sign-in.
        let decision = self.require_sign_in(
            who,
            self.policy.decide(&self.customer_request(&agent, Action::Verify, &context, Some(field), "")),
        );
        // The check runs before the entry is written (it says how the check went), but its
        // answer leaves only once the entry is durable, and not at all if refused.
        let opened = decision.allowed.then(|| self.vault.open(customer, &sealed, &[field]));
        let failure = opened.as_ref().and_then(|opened| opened.as_ref().err()).cloned().map(GatewayError::from);
        let (decision, failure) = refuse_if_unopenable(decision, context.unopenable.as_ref().or(failure.as_ref()));
        let matched = match (&failure, opened) {
            (None, Some(Ok(values))) => {
                Some(values.get(&field).is_some_and(|value| statement_matches(field, value, stated)))
            }
            _ => None,
        };
        let mut recorded = self.customer_decision(request, who, &agent, Action::Verify, &context, &decision);
        recorded.entry.fields = vec![field.name().to_string()];
        recorded.statement = matched;
        let outcome = self.record(recorded).await?;
        if let Some(failure) = failure {
            return Err(failure);
        }
        let index = outcome.allowed_or(|index| denied(decision, index))?;
        let matched = matched.ok_or_else(|| GatewayError::Internal("an allowed verify was not checked".into()))?;
        Ok(Verified { matched, ledger_index: index })
    }

    /// Every recorded access to a customer (service role: the customer-facing app).
    pub fn access_history(&self, who: &Claims, customer: &str) -> Result<Vec<AccessEvent>, GatewayError> {
        self.require_role(who, &[TokenRole::Service], "service")?;
        self.indexer.catch_up()?;
        Ok(self.store.access_history(customer, self.limits.history_events_max)?)
    }

    /// The steps every access to one customer takes first: its ids bounded, the token's
    /// agent (a token that is no agent's refused and recorded), the customer (an unknown one
    /// refused and recorded), and what policy and detection need to know of both.
    async fn customer_access(
        &self,
        who: &Claims,
        action: Action,
        customer: &str,
        ticket: Option<&str>,
        request: &str,
    ) -> Result<(AgentFacts, SealedCustomer, AccessContext), GatewayError> {
        bounded_ids(customer, ticket)?;
        let (agent, seen) = self.data_agent(who, action, Some(customer), ticket, request).await?;
        let Some(StoredCustomer { sealed: Some(sealed), id, canary }) =
            self.directory.customer(&self.store, customer)?
        else {
            // Asking for a customer that does not exist is itself an access attempt worth keeping.
            let mut recorded = Recorded::refusal(self.clock.now_ms(), request, who, &agent.id, action);
            recorded.entry.customer = Some(customer.to_string());
            recorded.entry.ticket = ticket.map(str::to_string);
            recorded.facts = seen.clone();
            let index = self.record(recorded).await?.index();
            return Err(GatewayError::NotFound {
                what: "customer",
                id: customer.to_string(),
                ledger_index: Some(index),
            });
        };
        let stored = StoredCustomer { sealed: None, id, canary };
        let context = self.access_context(&agent, &seen, &stored, &sealed, ticket)?;
        Ok((agent, sealed, context))
    }

    /// What policy is asked about an access to the customer of `context`.
    fn customer_request(
        &self,
        agent: &AgentFacts,
        action: Action,
        context: &AccessContext,
        field: Option<Field>,
        reason: &str,
    ) -> cordon_policy::AccessRequest {
        self.request(
            agent,
            action,
            Some(context.customer.clone()),
            context.ticket.clone(),
            field.map(|field| field.name().to_string()),
            reason,
            context.approval.clone(),
            None,
        )
    }

    /// A decision about the customer of `context` (under the ticket it names, if any), as
    /// it will be recorded.
    fn customer_decision(
        &self,
        request: &str,
        who: &Claims,
        agent: &AgentFacts,
        action: Action,
        context: &AccessContext,
        decision: &Decision,
    ) -> Recorded {
        let mut recorded = self.recorded(request, who, &agent.id, action, decision);
        recorded.entry.customer = Some(context.customer.id.clone());
        recorded.entry.ticket = context.ticket.as_ref().map(|ticket| ticket.id.clone());
        recorded.entry.approval = context.approval_id.clone();
        recorded.facts = context.facts.clone();
        recorded
    }

    pub(crate) fn access_context(
        &self,
        agent: &AgentFacts,
        seen: &AccessFacts,
        stored: &StoredCustomer,
        sealed: &SealedCustomer,
        ticket: Option<&str>,
    ) -> Result<AccessContext, GatewayError> {
        // A record that cannot be opened (the KEK not answering, a damaged record) has no
        // balance to decide on (none is claimed); the access itself then refuses it on the
        // record, never unrecorded here.
        let (balance_band, unopenable) = match self.vault.open(&stored.id, sealed, &[Field::BalanceUsd]) {
            Ok(balance) => (balance.get(&Field::BalanceUsd).and_then(Value::as_f64).and_then(BalanceBand::of), None),
            Err(error) => (None, Some(GatewayError::from(error))),
        };
        let high_balance = balance_band == Some(BalanceBand::OverOneMillion);
        let mut provenance = (None, None);
        let ticket = match ticket {
            Some(id) => match self.directory.ticket(&self.store, id)? {
                Some(ticket) => {
                    provenance = (ticket.opened_by.clone(), ticket.assigned_by.clone());
                    Some(self.ticket_facts(&ticket))
                }
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
                if self.ticket_lately(&stored.id, Some(&agent.id))? {
                    Why::Callback
                } else if agent.role == "analyst" && self.ticket_lately(&stored.id, None)? {
                    Why::Review
                } else {
                    Why::Unexplained
                }
            }
        };
        // Who arranged the ticket matters only where the ticket is the reason.
        let (opened_by, assigned_by) = if why == Why::Ticket { provenance } else { (None, None) };
        let facts = AccessFacts {
            why: Some(why),
            opened_by,
            assigned_by,
            high_balance: balance_band >= Some(BalanceBand::OneHundredThousandToOneMillion),
            canary: stored.canary,
            ..seen.clone()
        };
        Ok(AccessContext {
            unopenable,
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
    pub(crate) fn only_canaries(&self, ids: &[String]) -> Result<bool, GatewayError> {
        for id in ids {
            if !self.directory.customer(&self.store, id)?.is_some_and(|customer| customer.canary) {
                return Ok(false);
            }
        }
        Ok(!ids.is_empty())
    }

    pub(crate) fn ticket_facts(&self, ticket: &Ticket) -> TicketFacts {
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

    pub(crate) fn parse_fields(&self, names: &[String]) -> Result<Vec<Field>, GatewayError> {
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
}

pub(crate) struct AccessContext {
    customer: CustomerFacts,
    ticket: Option<TicketFacts>,
    approval: Option<ApprovalFacts>,
    approval_id: Option<String>,
    /// For detection.
    facts: AccessFacts,
    /// Why the customer's record could not be opened, if it could not.
    unopenable: Option<GatewayError>,
}

/// Fields a reveal asks for that its reason does not need: its ticket's category's, or for a
/// callback, the ways to reach the customer again (none for no reason at all: an
/// unexplained reveal is scored as such).
pub(crate) fn beyond_need(fields: &[Field], ticket: Option<&TicketFacts>, why: Option<Why>) -> Vec<String> {
    let needed = |field: &Field| match (ticket, why) {
        (Some(ticket), _) => ticket.needed_fields.iter().any(|needed| needed == field.name()),
        (None, Some(Why::Callback)) => CALLBACK_FIELDS.contains(field),
        (None, _) => true,
    };
    fields.iter().filter(|field| !needed(field)).map(|field| field.name().to_string()).collect()
}

/// What a callback needs: whom to ask for, and how to reach them.
const CALLBACK_FIELDS: [Field; 3] = [Field::FullName, Field::Phone, Field::Email];

/// Hits of one search whose tickets are looked up for its reason.
const SEARCH_REASON_HITS_MAX: usize = 4;

/// How long after working a customer's ticket a look without one counts as a callback.
pub(crate) const CALLBACK_WINDOW_SECONDS: i64 = 7 * 86_400;

/// One decision for a multi-field request: allowed only if every field is; the reason is the
/// first denial's, naming its field.
pub(crate) fn combine(fields: &[Field], decisions: Vec<Decision>) -> Decision {
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
use cordon_directory::ID_BYTES_MAX;

pub(crate) fn bounded_ids(customer: &str, ticket: Option<&str>) -> Result<(), GatewayError> {
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

/// Whether a stated value matches the stored one, after normalising both. For a list or an
/// object (wallet addresses, a postal address) it matches when it equals one element.
pub(crate) fn statement_matches(field: Field, stored: &Value, stated: &str) -> bool {
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
pub(crate) fn leaves(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::String(text) => into.push(text.clone()),
        Value::Number(number) => into.push(number.to_string()),
        Value::Bool(flag) => into.push(flag.to_string()),
        Value::Array(items) => items.iter().for_each(|item| leaves(item, into)),
        Value::Object(fields) => fields.values().for_each(|item| leaves(item, into)),
        Value::Null => {}
    }
}

/// The policy id of a refusal because the customer's record could not be opened.
pub(crate) const UNOPENABLE_POLICY: &str = "cordon:record-unopenable";

/// `decision`, or, when an allowed access could not open the record (`failure`), a refusal
/// saying so: the entry then says truly that nothing was shown, and the attempt is still
/// recorded and scored. Returns the failure to answer with after recording.
fn refuse_if_unopenable(decision: Decision, failure: Option<&GatewayError>) -> (Decision, Option<GatewayError>) {
    match failure {
        Some(failure) if decision.allowed => (
            Decision {
                allowed: false,
                policies: vec![UNOPENABLE_POLICY.to_string()],
                reason: "the customer's record could not be opened (the key-encryption key did not answer, or the \
                         record is damaged); nothing was shown"
                    .to_string(),
                errors: Vec::new(),
            },
            Some(failure.clone()),
        ),
        _ => (decision, None),
    }
}
