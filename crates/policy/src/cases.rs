//! Policy test cases: a request described with defaults for everything not under test, and
//! the decision expected. `cordon policy test FILE` runs a TOML file of them; the test suite
//! runs the shipped table against the engine and through the HTTP API.

use serde::Deserialize;

use crate::categories::CategoryTable;
use crate::engine::PolicyEngine;
use crate::facts::{AccessRequest, Action, AgentFacts, ApprovalFacts, CustomerFacts, Decision, TicketFacts};

/// The time every case is decided at, so expiry is relative and results are reproducible.
pub const CASE_NOW: i64 = 1_800_000_000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    #[serde(rename = "case")]
    pub cases: Vec<PolicyCase>,
}

impl CaseFile {
    pub fn parse(text: &str) -> Result<CaseFile, String> {
        toml::from_str(text).map_err(|error| error.to_string())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyCase {
    pub name: String,
    pub action: String,
    /// `allow` or `deny`.
    pub expect: String,
    /// If given, this policy id must be among the deciding ones.
    pub expect_policy: Option<String>,
    #[serde(default)]
    pub agent: CaseAgent,
    #[serde(default)]
    pub customer: CaseCustomer,
    pub ticket: Option<CaseTicket>,
    pub field: Option<String>,
    #[serde(default)]
    pub reason: String,
    pub approval: Option<CaseApproval>,
    pub approval_requester: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaseAgent {
    pub id: String,
    pub team: String,
    pub site: String,
    pub employer: String,
    pub role: String,
    pub status: String,
}

impl Default for CaseAgent {
    fn default() -> CaseAgent {
        CaseAgent {
            id: "agent-1".into(),
            team: "l1-chat".into(),
            site: "us-sf".into(),
            employer: "staff".into(),
            role: "agent".into(),
            status: "active".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaseCustomer {
    pub id: String,
    pub high_balance: bool,
}

impl Default for CaseCustomer {
    fn default() -> CaseCustomer {
        CaseCustomer { id: "customer-1".into(), high_balance: false }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseTicket {
    #[serde(default = "default_ticket_id")]
    pub id: String,
    /// Defaults to the case's customer.
    pub requester: Option<String>,
    /// Defaults to the case's agent; `""` means unassigned.
    pub assignee: Option<String>,
    #[serde(default = "default_status")]
    pub status: String,
    pub category: String,
}

fn default_ticket_id() -> String {
    "ticket-1".into()
}

fn default_status() -> String {
    "open".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseApproval {
    pub kind: String,
    /// Defaults to the case's agent.
    pub requester: Option<String>,
    pub approver: String,
    /// Defaults to the case's customer.
    pub customer: Option<String>,
    /// Seconds from now until expiry; negative for an expired approval.
    pub expires_in_seconds: i64,
}

impl PolicyCase {
    /// The request this case describes, with needed fields from `categories`.
    pub fn to_request(&self, categories: &CategoryTable) -> Result<AccessRequest, String> {
        let action: Action = self.action.parse()?;
        if !["allow", "deny"].contains(&self.expect.as_str()) {
            return Err(format!("case `{}`: expect must be `allow` or `deny`, not `{}`", self.name, self.expect));
        }
        let agent = AgentFacts {
            id: self.agent.id.clone(),
            team: self.agent.team.clone(),
            site: self.agent.site.clone(),
            employer: self.agent.employer.clone(),
            role: self.agent.role.clone(),
            status: self.agent.status.clone(),
        };
        let ticket = self.ticket.as_ref().map(|ticket| TicketFacts {
            id: ticket.id.clone(),
            requester: ticket.requester.clone().unwrap_or_else(|| self.customer.id.clone()),
            assignee: match &ticket.assignee {
                Some(assignee) if assignee.is_empty() => None,
                Some(assignee) => Some(assignee.clone()),
                None => Some(self.agent.id.clone()),
            },
            status: ticket.status.clone(),
            category: ticket.category.clone(),
            needed_fields: categories.needs(&ticket.category).iter().map(|field| field.name().to_string()).collect(),
        });
        let approval = self.approval.as_ref().map(|approval| ApprovalFacts {
            kind: approval.kind.clone(),
            requester: approval.requester.clone().unwrap_or_else(|| self.agent.id.clone()),
            approver: approval.approver.clone(),
            customer: approval.customer.clone().unwrap_or_else(|| self.customer.id.clone()),
            expires_at: CASE_NOW + approval.expires_in_seconds,
        });
        Ok(AccessRequest {
            agent,
            action,
            customer: Some(CustomerFacts { id: self.customer.id.clone(), high_balance: self.customer.high_balance }),
            ticket,
            field: self.field.clone(),
            reason: self.reason.clone(),
            approval,
            approval_requester: self.approval_requester.clone(),
            now: CASE_NOW,
        })
    }
}

/// One case's result.
#[derive(Debug, Clone)]
pub struct CaseOutcome {
    pub name: String,
    pub expected: String,
    pub decision: Option<Decision>,
    /// Why the case could not run or did not pass; `None` when it passed.
    pub failure: Option<String>,
}

pub fn run_cases(engine: &PolicyEngine, categories: &CategoryTable, cases: &[PolicyCase]) -> Vec<CaseOutcome> {
    cases
        .iter()
        .map(|case| {
            let request = match case.to_request(categories) {
                Ok(request) => request,
                Err(error) => {
                    return CaseOutcome {
                        name: case.name.clone(),
                        expected: case.expect.clone(),
                        decision: None,
                        failure: Some(error),
                    };
                }
            };
            let decision = engine.decide(&request);
            let got = if decision.allowed { "allow" } else { "deny" };
            let mut failure = None;
            if got != case.expect {
                failure = Some(format!("expected {}, got {got} ({})", case.expect, decision.reason));
            } else if let Some(policy) = &case.expect_policy
                && !decision.policies.contains(policy)
            {
                failure = Some(format!("expected policy `{policy}` among {:?}", decision.policies));
            }
            CaseOutcome { name: case.name.clone(), expected: case.expect.clone(), decision: Some(decision), failure }
        })
        .collect()
}
