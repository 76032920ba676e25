//! The Cedar engine: loads and validates a policy set against the schema, and decides
//! requests from their facts.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use cedar_policy::{
    ActionConstraint, Authorizer, Context, Decision as CedarDecision, Entities, Entity, EntityId, EntityTypeName,
    EntityUid, Policy, PolicyId, PolicySet, Request, RestrictedExpression, Schema, ValidationMode, Validator,
};
use sha2::{Digest as _, Sha256};

use crate::facts::{AccessRequest, Action, Decision};

/// The default policies and schema, from the repository's `policies/` folder.
pub const DEFAULT_POLICIES: &str = include_str!("../../../policies/default.cedar");
pub const DEFAULT_SCHEMA: &str = include_str!("../../../policies/cordon.cedarschema");

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the schema does not parse: {0}")]
    Schema(String),
    #[error("the policies do not parse: {0}")]
    Parse(String),
    #[error("policy `{policy}` has no @id annotation; every policy needs one so decisions can name it")]
    MissingId { policy: String },
    #[error("two policies have the @id `{0}`")]
    DuplicateId(String),
    #[error("the policies do not validate against the schema:\n{0}")]
    Invalid(String),
}

/// A validated policy set, ready to decide.
pub struct PolicyEngine {
    policies: PolicySet,
    /// For each action, only the policies whose scope can apply to it. Cedar evaluates every
    /// policy in a set; a policy whose action scope excludes the request's action can never
    /// be satisfied, so leaving it out changes no decision and halves the work.
    by_action: HashMap<&'static str, PolicySet>,
    authorizer: Authorizer,
    reasons: HashMap<String, String>,
    types: EntityTypes,
    /// Whether any policy names a Team. Only then is each agent's team membership built:
    /// the edge costs a transitive closure per request, and without such a policy it can
    /// decide nothing.
    uses_teams: bool,
    hash: String,
}

/// The schema's entity type names, parsed once: parsing one per reference per request was
/// a third of the decision time.
struct EntityTypes {
    agent: EntityTypeName,
    team: EntityTypeName,
    customer: EntityTypeName,
    ticket: EntityTypeName,
    field: EntityTypeName,
    system: EntityTypeName,
    approval: EntityTypeName,
    action: EntityTypeName,
}

impl EntityTypes {
    fn parse() -> Result<EntityTypes, PolicyError> {
        let name = |text: &str| {
            EntityTypeName::from_str(text).map_err(|error| PolicyError::Schema(format!("type `{text}`: {error}")))
        };
        Ok(EntityTypes {
            agent: name("Agent")?,
            team: name("Team")?,
            customer: name("Customer")?,
            ticket: name("Ticket")?,
            field: name("Field")?,
            system: name("System")?,
            approval: name("Approval")?,
            action: name("Action")?,
        })
    }
}

fn uid(kind: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(kind.clone(), EntityId::new(id))
}

impl std::fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PolicyEngine({} policies, sha256 {})", self.reasons.len(), self.hash)
    }
}

impl PolicyEngine {
    pub fn default_set() -> Result<PolicyEngine, PolicyError> {
        PolicyEngine::load(DEFAULT_POLICIES, DEFAULT_SCHEMA)
    }

    /// Parses the policies, names each by its `@id`, and validates them strictly against the
    /// schema. Every problem is reported, not just the first.
    pub fn load(policies_text: &str, schema_text: &str) -> Result<PolicyEngine, PolicyError> {
        let (schema, _warnings) =
            Schema::from_cedarschema_str(schema_text).map_err(|error| PolicyError::Schema(format!("{error:?}")))?;
        let parsed = PolicySet::from_str(policies_text).map_err(|error| PolicyError::Parse(format!("{error}")))?;
        let mut policies = PolicySet::new();
        let mut reasons = HashMap::new();
        for policy in parsed.policies() {
            let id = policy.annotation("id").ok_or_else(|| PolicyError::MissingId { policy: first_line(policy) })?;
            if reasons.contains_key(id) {
                return Err(PolicyError::DuplicateId(id.to_string()));
            }
            let reason = policy.annotation("reason").unwrap_or(id).to_string();
            reasons.insert(id.to_string(), reason);
            policies.add(policy.new_id(PolicyId::new(id))).map_err(|error| PolicyError::Parse(format!("{error}")))?;
        }
        let validation = Validator::new(schema).validate(&policies, ValidationMode::Strict);
        if !validation.validation_passed() {
            let problems: Vec<String> = validation.validation_errors().map(|error| format!("- {error}")).collect();
            return Err(PolicyError::Invalid(problems.join("\n")));
        }
        let hash = {
            let mut hasher = Sha256::new();
            hasher.update(schema_text.as_bytes());
            hasher.update([0]);
            hasher.update(policies_text.as_bytes());
            hasher.finalize().iter().map(|byte| format!("{byte:02x}")).collect()
        };
        let types = EntityTypes::parse()?;
        let mut by_action = HashMap::new();
        for action in Action::ALL {
            let action_uid = uid(&types.action, action.name());
            let mut subset = PolicySet::new();
            for policy in policies.policies() {
                let applies = match policy.action_constraint() {
                    ActionConstraint::Any => true,
                    ActionConstraint::Eq(only) => only == action_uid,
                    // The schema has no action groups, so `in [..]` is plain membership.
                    ActionConstraint::In(list) => list.contains(&action_uid),
                };
                if applies {
                    subset.add(policy.clone()).map_err(|error| PolicyError::Parse(error.to_string()))?;
                }
            }
            by_action.insert(action.name(), subset);
        }
        let uses_teams = policies_text.contains("Team::");
        Ok(PolicyEngine { policies, by_action, authorizer: Authorizer::new(), reasons, types, uses_teams, hash })
    }

    /// SHA-256 of the schema and policy text: what the ledger records when a set is applied.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The ids of the loaded policies.
    pub fn policy_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.reasons.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Decides one request. Any error building or evaluating it is a deny that says so.
    pub fn decide(&self, request: &AccessRequest) -> Decision {
        let (cedar_request, entities) = match self.build(request) {
            Ok(built) => built,
            Err(error) => {
                return Decision {
                    allowed: false,
                    policies: Vec::new(),
                    reason: "the request could not be evaluated".into(),
                    errors: vec![error],
                };
            }
        };
        let policies = self.by_action.get(request.action.name()).unwrap_or(&self.policies);
        let response = self.authorizer.is_authorized(&cedar_request, policies, &entities);
        let mut policies: Vec<String> = response.diagnostics().reason().map(|id| id.to_string()).collect();
        policies.sort();
        let errors: Vec<String> = response.diagnostics().errors().map(|error| error.to_string()).collect();
        let allowed = response.decision() == CedarDecision::Allow;
        let reason = if policies.is_empty() {
            explain_default_deny(request)
        } else {
            policies.iter().filter_map(|id| self.reasons.get(id)).cloned().collect::<Vec<_>>().join("; ")
        };
        Decision { allowed, policies, reason, errors }
    }

    fn build(&self, request: &AccessRequest) -> Result<(Request, Entities), String> {
        let types = &self.types;
        let agent = &request.agent;
        let agent_uid = uid(&types.agent, &agent.id);
        // Field entities are left out: the policies compare field ids and never read a field's
        // attributes, and building 14 entities per request tripled the decision time.
        let mut entities = Vec::with_capacity(4);
        let mut parents = HashSet::new();
        if self.uses_teams {
            let team_uid = uid(&types.team, &agent.team);
            entities.push(Entity::new_no_attrs(team_uid.clone(), HashSet::new()));
            parents.insert(team_uid);
        }
        entities.push(entity(
            agent_uid.clone(),
            [
                ("team", string(&agent.team)),
                ("site", string(&agent.site)),
                ("employer", string(&agent.employer)),
                ("vendor", RestrictedExpression::new_bool(agent.is_vendor())),
                ("role", string(&agent.role)),
                ("status", string(&agent.status)),
            ],
            parents,
        )?);

        let resource = match request.action {
            Action::View | Action::Reveal | Action::Verify | Action::RequestApproval => {
                let customer = request.customer.as_ref().ok_or("a data access needs a customer")?;
                let customer_uid = uid(&types.customer, &customer.id);
                entities.push(entity(
                    customer_uid.clone(),
                    [("high_balance", RestrictedExpression::new_bool(customer.high_balance))],
                    HashSet::new(),
                )?);
                customer_uid
            }
            Action::Approve => {
                let requester = request.approval_requester.as_deref().ok_or("an approval needs its requester")?;
                let approval_uid = uid(&types.approval, "requested");
                entities.push(entity(
                    approval_uid.clone(),
                    [("requester", RestrictedExpression::new_entity_uid(uid(&types.agent, requester)))],
                    HashSet::new(),
                )?);
                approval_uid
            }
            Action::Search | Action::Export | Action::Administer | Action::Investigate => uid(&types.system, "cordon"),
        };

        let mut context = vec![
            ("now".to_string(), RestrictedExpression::new_long(request.now)),
            ("reason".to_string(), string(request.reason.trim())),
        ];
        if let Some(ticket) = &request.ticket {
            let ticket_uid = uid(&types.ticket, &ticket.id);
            let mut attributes = vec![
                ("requester", RestrictedExpression::new_entity_uid(uid(&types.customer, &ticket.requester))),
                ("status", string(&ticket.status)),
                ("category", string(&ticket.category)),
                (
                    "needed_fields",
                    RestrictedExpression::new_set(
                        ticket
                            .needed_fields
                            .iter()
                            .map(|field| RestrictedExpression::new_entity_uid(uid(&types.field, field)))
                            .collect::<Vec<_>>(),
                    ),
                ),
            ];
            if let Some(assignee) = &ticket.assignee {
                attributes.push(("assignee", RestrictedExpression::new_entity_uid(uid(&types.agent, assignee))));
            }
            entities.push(entity(ticket_uid.clone(), attributes, HashSet::new())?);
            context.push(("ticket".to_string(), RestrictedExpression::new_entity_uid(ticket_uid)));
        }
        if let Some(field) = &request.field {
            context.push(("field".to_string(), RestrictedExpression::new_entity_uid(uid(&types.field, field))));
        }
        if let Some(approval) = &request.approval {
            let record = RestrictedExpression::new_record([
                ("kind".to_string(), string(&approval.kind)),
                ("requester".to_string(), RestrictedExpression::new_entity_uid(uid(&types.agent, &approval.requester))),
                ("approver".to_string(), RestrictedExpression::new_entity_uid(uid(&types.agent, &approval.approver))),
                (
                    "customer".to_string(),
                    RestrictedExpression::new_entity_uid(uid(&types.customer, &approval.customer)),
                ),
                ("expires_at".to_string(), RestrictedExpression::new_long(approval.expires_at)),
            ])
            .map_err(|error| error.to_string())?;
            context.push(("approval".to_string(), record));
        }
        let context = Context::from_pairs(context).map_err(|error| error.to_string())?;
        let action = uid(&types.action, request.action.name());
        let cedar_request =
            Request::new(agent_uid, action, resource, context, None).map_err(|error| error.to_string())?;
        let entities = Entities::from_entities(entities, None).map_err(|error| error.to_string())?;
        Ok((cedar_request, entities))
    }
}

fn string(value: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(value.to_string())
}

fn entity<'a>(
    uid: EntityUid,
    attributes: impl IntoIterator<Item = (&'a str, RestrictedExpression)>,
    parents: HashSet<EntityUid>,
) -> Result<Entity, String> {
    let attributes = attributes.into_iter().map(|(name, value)| (name.to_string(), value)).collect();
    Entity::new(uid, attributes, parents).map_err(|error| error.to_string())
}

fn first_line(policy: &Policy) -> String {
    policy.to_string().lines().find(|line| !line.trim().starts_with('@')).unwrap_or_default().trim().to_string()
}

/// Why nothing permitted the request, in the caller's terms. Cedar reports only that no
/// permit matched; this names the first missing condition of the default policies.
fn explain_default_deny(request: &AccessRequest) -> String {
    let agent = &request.agent;
    match request.action {
        Action::Search => format!("role `{}` may not search customers", agent.role),
        Action::Export => "only analysts and administrators export access events".into(),
        Action::Administer => "only administrators manage the directory".into(),
        Action::Investigate => "only analysts and administrators work alerts, the risk board and incidents".into(),
        Action::RequestApproval => format!("role `{}` may not ask for approvals", agent.role),
        Action::Approve => match request.approval_requester.as_deref() {
            Some(requester) if requester == agent.id => "nobody may approve their own request".into(),
            _ => "only an analyst may approve".into(),
        },
        Action::View | Action::Reveal | Action::Verify => {
            let customer = request.customer.as_ref().map(|customer| customer.id.as_str()).unwrap_or("?");
            if let Some(approval) = &request.approval {
                if approval.kind == "break_glass" && request.now >= approval.expires_at {
                    return "the break-glass approval has expired".into();
                }
                if approval.kind == "break_glass" && approval.approver == agent.id {
                    return "a break-glass approval must come from someone else".into();
                }
            }
            let reveal_without_reason = request.action == Action::Reveal && request.reason.trim().is_empty();
            if reveal_without_reason && request.approval.as_ref().is_some_and(|approval| approval.kind == "break_glass")
            {
                return "a reveal needs a reason, even under break-glass".into();
            }
            let Some(ticket) = &request.ticket else {
                return format!(
                    "no ticket given: access to customer `{customer}` needs an open ticket assigned to you, or a break-glass approval"
                );
            };
            if ticket.status == "unknown" {
                return format!("ticket `{}` does not exist", ticket.id);
            }
            if ticket.requester != customer {
                return format!("ticket `{}` was raised by another customer", ticket.id);
            }
            if ticket.assignee.as_deref() != Some(agent.id.as_str()) {
                return format!("ticket `{}` is not assigned to you", ticket.id);
            }
            if !["open", "pending"].contains(&ticket.status.as_str()) {
                return format!("ticket `{}` is {}", ticket.id, ticket.status);
            }
            if let Some(field) = &request.field
                && !ticket.needed_fields.contains(field)
            {
                return format!("tickets of category `{}` do not need field `{field}`", ticket.category);
            }
            if request.action == Action::Reveal && request.reason.trim().is_empty() {
                return "a reveal needs a reason".into();
            }
            "no policy permits this request".into()
        }
    }
}
