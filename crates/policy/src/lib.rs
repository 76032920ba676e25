//! cordon's access policy: Cedar policies over a schema of agents, customers, tickets and
//! fields, and decisions that carry the deciding policy ids and a plain reason.
//!
//! Evaluation is a pure function of the policy set and the request's facts: the caller (the
//! gateway) gathers the facts from its store; this crate does no IO and knows nothing of
//! SQL or HTTP. The default policies and schema live in the repository's `policies/` folder
//! and are built in.

mod cases;
mod categories;
mod engine;
mod facts;

pub use cases::{CaseFile, CaseOutcome, PolicyCase, run_cases};
pub use categories::CategoryTable;
pub use engine::{DEFAULT_POLICIES, DEFAULT_SCHEMA, PolicyEngine, PolicyError};
pub use facts::{AccessRequest, Action, AgentFacts, ApprovalFacts, CustomerFacts, Decision, TicketFacts};
