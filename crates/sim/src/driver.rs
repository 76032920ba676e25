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

/// Carries out waves of requests, at most one per agent, each wave after the last.
pub trait Driver {
    /// Each request's outcome and the request id its audit entry carries, in order.
    fn wave(&mut self, calls: Vec<Call>) -> Result<Vec<(Outcome, String)>, SimError>;
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
            Some(agent) => Claims {
                sub: agent.agent.id.clone(),
                role: TokenRole::from(agent.agent.role),
                iat: 0,
                exp: i64::MAX,
                jti: "sim".into(),
            },
            None => {
                Claims { sub: "role:admin".into(), role: TokenRole::Admin, iat: 0, exp: i64::MAX, jti: "sim".into() }
            }
        }
    }
}

impl Driver for InProcess<'_> {
    fn wave(&mut self, calls: Vec<Call>) -> Result<Vec<(Outcome, String)>, SimError> {
        let mut ids = Vec::with_capacity(calls.len());
        let mut requests: Vec<(i64, Request<'_, Result<(), GatewayError>>)> = Vec::with_capacity(calls.len());
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
            .map(|(result, id)| {
                let outcome = match result {
                    Ok(()) => Outcome::Done,
                    Err(GatewayError::Denied { policies, .. }) if suspended_by(&policies) => Outcome::Suspended,
                    Err(GatewayError::Denied { .. } | GatewayError::NotFound { .. } | GatewayError::BadRequest(_)) => {
                        Outcome::Refused
                    }
                    Err(other) => return Err(SimError::Gateway(other)),
                };
                Ok((outcome, id))
            })
            .collect()
    }
}

/// Starts one request; the future appends its audit entry on its first poll.
fn start<'a>(gateway: &'a Gateway, who: Claims, act: Act, request: String) -> Request<'a, Result<(), GatewayError>> {
    Box::pin(async move {
        match act {
            Act::PutAgent(agent) => gateway.put_agent(&who, agent, &request).await.map(|_| ()),
            Act::PutTicket(ticket) => gateway.put_ticket(&who, ticket, &request).await.map(|_| ()),
            Act::Search { by, value } => gateway.search(&who, by, &value, &request).await.map(|_| ()),
            Act::View { customer, ticket } => {
                gateway.view(&who, &customer, ticket.as_deref(), &request).await.map(|_| ())
            }
            Act::Reveal { customer, ticket, fields, reason } => {
                gateway.reveal(&who, &customer, ticket.as_deref(), &fields, reason, &request).await.map(|_| ())
            }
            Act::Verify { customer, ticket, field, value } => {
                gateway.verify(&who, &customer, ticket.as_deref(), &field, &value, &request).await.map(|_| ())
            }
        }
    })
}
