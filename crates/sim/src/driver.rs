//! Where a simulation's requests go: the gateway in this process, or a server over HTTP.
//! The engine plans and keeps the ground truth; a driver only carries out a wave of requests
//! and says, for each, whether it went through, was refused, or found its agent suspended.

use cordon_gateway::{Claims, Gateway, GatewayError, TokenRole};

use crate::SimError;
use crate::exec::{Request, SimClock, run_wave};
use crate::plan::Act;
use crate::world::SimAgent;

/// The policy that stops an agent who is no longer active; a denial by it means suspended.
pub const INACTIVE_AGENT_POLICY: &str = "inactive-agent-does-nothing";
/// What a denial says when detection suspended the agent on that very request.
pub const DETECTOR_SUSPEND_POLICY: &str = "detector:suspend";

/// Whether a denial's policies mean the agent is suspended.
pub fn suspended_by(policies: &[impl AsRef<str>]) -> bool {
    policies.iter().any(|policy| matches!(policy.as_ref(), INACTIVE_AGENT_POLICY | DETECTOR_SUSPEND_POLICY))
}

/// One request of a wave.
#[derive(Debug, Clone)]
pub struct Call {
    pub time_ms: i64,
    /// The agent (index into the scenario's staff) who acts, unless `admin`.
    pub agent: usize,
    /// Done by the helpdesk integration (an admin identity), not by the agent.
    pub admin: bool,
    pub act: Act,
}

/// What came of a request, as far as the simulation cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Denied by policy, or not found, or malformed: the agent carries on.
    Refused,
    /// The agent is suspended: it stops.
    Suspended,
}

/// What one request showed its agent about one customer, as the client received it: the
/// ground truth that incident scope is checked against, independent of the ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Received {
    pub customer: String,
    /// Fields shown masked (a search hit's name, a card's fields).
    pub masked: Vec<String>,
    /// Fields shown in the clear.
    pub revealed: Vec<String>,
}

/// A request's outcome, the request id its audit entry carries, and what it showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub outcome: Outcome,
    pub request_id: String,
    pub received: Vec<Received>,
}

/// Carries out waves of requests, at most one per agent, each wave after the last.
pub trait Driver {
    /// Each request's answer, in order.
    fn wave(&mut self, calls: Vec<Call>) -> Result<Vec<Answer>, SimError>;
}

/// The gateway in this process, on the simulation's clock, in a fixed ledger order.
pub struct InProcess<'a> {
    gateway: &'a Gateway,
    clock: &'a SimClock,
    agents: &'a [SimAgent],
    requests: u64,
}

impl std::fmt::Debug for InProcess<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcess").field("requests", &self.requests).finish_non_exhaustive()
    }
}

impl<'a> InProcess<'a> {
    pub fn new(gateway: &'a Gateway, clock: &'a SimClock, agents: &'a [SimAgent]) -> InProcess<'a> {
        InProcess { gateway, clock, agents, requests: 0 }
    }

    fn claims(&self, call: &Call) -> Claims {
        match self.agents.get(call.agent).filter(|_| !call.admin) {
            Some(agent) => Claims::in_process(agent.agent.id.clone(), TokenRole::from(agent.agent.role), "sim"),
            None => Claims::in_process(TokenRole::Admin.identity(), TokenRole::Admin, "sim"),
        }
    }
}

impl Driver for InProcess<'_> {
    fn wave(&mut self, calls: Vec<Call>) -> Result<Vec<Answer>, SimError> {
        let mut ids = Vec::with_capacity(calls.len());
        let mut requests: Vec<(i64, Request<'_, Shows>)> = Vec::with_capacity(calls.len());
        for call in calls {
            self.requests += 1;
            let request_id = format!("sim-{:09}", self.requests);
            let who = self.claims(&call);
            requests.push((call.time_ms, start(self.gateway, who, call.act, request_id.clone())));
            ids.push(request_id);
        }
        let results = run_wave(self.clock, requests);
        results
            .into_iter()
            .zip(ids)
            .map(|(result, request_id)| {
                let (outcome, received) = match result {
                    Ok(received) => (Outcome::Done, received),
                    Err(GatewayError::Denied { policies, .. }) if suspended_by(&policies) => {
                        (Outcome::Suspended, Vec::new())
                    }
                    Err(GatewayError::Denied { .. } | GatewayError::NotFound { .. } | GatewayError::BadRequest(_)) => {
                        (Outcome::Refused, Vec::new())
                    }
                    Err(other) => return Err(SimError::Gateway(other)),
                };
                Ok(Answer { outcome, request_id, received })
            })
            .collect()
    }
}

/// What one request gives back: what it showed, or why it failed.
type Shows = Result<Vec<Received>, GatewayError>;

/// Starts one request; the future appends its audit entry on its first poll.
fn start<'a>(gateway: &'a Gateway, who: Claims, act: Act, request: String) -> Request<'a, Shows> {
    Box::pin(async move {
        match act {
            Act::PutAgent(agent) => gateway.put_agent(&who, agent, &request).await.map(|_| Vec::new()),
            Act::PutTicket(ticket) => gateway.put_ticket(&who, ticket, &request).await.map(|_| Vec::new()),
            Act::Search { by, value } => gateway.search(&who, by, &value, &request).await.map(|hits| {
                hits.into_iter()
                    .map(|hit| Received {
                        customer: hit.customer,
                        masked: vec!["full_name".into()],
                        revealed: Vec::new(),
                    })
                    .collect()
            }),
            Act::View { customer, ticket } => {
                gateway.view(&who, &customer, ticket.as_deref(), &request).await.map(|card| {
                    let masked = card.fields.iter().map(|(field, _)| field.name().to_string()).collect();
                    vec![Received { customer: card.customer, masked, revealed: Vec::new() }]
                })
            }
            Act::Reveal { customer, ticket, fields, reason } => {
                gateway.reveal(&who, &customer, ticket.as_deref(), &fields, reason, &request).await.map(|revealed| {
                    let revealed = revealed.values.keys().map(|field| field.name().to_string()).collect();
                    vec![Received { customer, masked: Vec::new(), revealed }]
                })
            }
            // A verify shows no value: it says match or no match.
            Act::Verify { customer, ticket, field, value } => {
                gateway.verify(&who, &customer, ticket.as_deref(), &field, &value, &request).await.map(|_| Vec::new())
            }
        }
    })
}
