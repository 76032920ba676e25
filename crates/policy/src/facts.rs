//! What a decision is made from: the facts of one request, gathered by the caller.

/// The actions of the schema: the same type the ledger records them by, so a decision and
/// its entry can never name different actions.
pub use cordon_entry::AccessAction as Action;

/// The agent asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentFacts {
    pub id: String,
    pub team: String,
    pub site: String,
    /// `staff`, or the vendor that employs the agent.
    pub employer: String,
    /// `agent`, `analyst` or `admin`.
    pub role: String,
    /// `active`, `suspended` or `offboarded`.
    pub status: String,
}

impl AgentFacts {
    pub fn is_vendor(&self) -> bool {
        self.employer != "staff"
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerFacts {
    pub id: String,
    pub high_balance: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketFacts {
    pub id: String,
    pub requester: String,
    pub assignee: Option<String>,
    pub status: String,
    pub category: String,
    /// Field names the category needs (from the category table).
    pub needed_fields: Vec<String>,
}

/// An approval that has been granted (break-glass or second approver).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalFacts {
    /// `break_glass` or `second_approver`.
    pub kind: String,
    pub requester: String,
    pub approver: String,
    pub customer: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// One request to decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRequest {
    pub agent: AgentFacts,
    pub action: Action,
    /// The customer acted on (view, reveal, verify).
    pub customer: Option<CustomerFacts>,
    pub ticket: Option<TicketFacts>,
    /// The field revealed or verified.
    pub field: Option<String>,
    pub reason: String,
    pub approval: Option<ApprovalFacts>,
    /// For `approve`: who asked for the approval.
    pub approval_requester: Option<String>,
    /// Unix seconds, for approval expiry.
    pub now: i64,
}

/// The outcome: allowed or not, the policies that decided it, and a reason for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The @id of each policy that determined the outcome; empty for a default deny.
    pub policies: Vec<String>,
    pub reason: String,
    /// Evaluation errors; any error means deny.
    pub errors: Vec<String>,
}
