//! Drives a running cordon server over its HTTP API instead of the gateway in this process:
//! the same plan, through the routes a real support tool would call, with the server's own
//! clock, policies and ledger. An admin token seeds the staff and the customers, then mints
//! each agent's session token (`POST /v1/agents/{id}/token`, itself audited).
//!
//! Requests of a wave go out over a fixed set of keep-alive connections, so the server sees
//! concurrent traffic; unlike the in-process run, the order of entries within a wave is then
//! the network's, so the ledger root is not reproducible (the plan and the truth still are).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use crate::SimError;
use crate::driver::{Answer, Call, Driver, Outcome, Received, suspended_by};
use crate::engine::{Phase, RunReport, Truth, play, truth, write_truth};
use crate::people::People;
use crate::plan::Act;
use crate::scenario::Scenario;
use crate::world::{SimAgent, agents};

/// Keep-alive connections to the server; a wave's requests are spread over them.
const CONNECTIONS: usize = 32;
/// Customers sent between two progress updates.
const CUSTOMER_CHUNK: u64 = 2_000;

/// A server to drive: its address and an admin token for it.
#[derive(Clone)]
pub struct HttpTarget {
    /// `host:port`, from an `http://host:port` address.
    authority: String,
    admin_token: Arc<str>,
}

impl std::fmt::Debug for HttpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTarget").field("authority", &self.authority).finish_non_exhaustive()
    }
}

impl HttpTarget {
    /// `url` is `http://HOST:PORT` (a trailing `/` is fine); the token is an admin's.
    pub fn new(url: &str, admin_token: &str) -> Result<HttpTarget, SimError> {
        let authority = url
            .strip_prefix("http://")
            .map(|rest| rest.trim_end_matches('/'))
            .filter(|rest| !rest.is_empty() && !rest.contains('/') && rest.contains(':'))
            .ok_or_else(|| {
                SimError::Scenario(format!(
                    "`{url}` is not a server address; give http://HOST:PORT (TLS belongs to a proxy in front)"
                ))
            })?;
        let admin_token = admin_token.trim();
        if admin_token.is_empty() || admin_token.contains(char::is_whitespace) {
            return Err(SimError::Scenario("the token file must hold one bearer token (an admin's)".into()));
        }
        Ok(HttpTarget { authority: authority.to_string(), admin_token: admin_token.into() })
    }
}

/// Simulates `scenario` against the server at `target`; the ground truth goes to `truth_path`.
pub fn run_over_http(
    scenario: &Scenario,
    target: &HttpTarget,
    truth_path: &Path,
    progress: &mut dyn FnMut(Phase, u64, u64),
) -> Result<(RunReport, Truth), SimError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| SimError::Internal(format!("cannot start the HTTP client: {error}")))?;
    let mut client = Client::connect(runtime, target.clone())?;
    let people = People::new(scenario.seed, scenario.customers, scenario.canaries);
    let all_agents = agents(scenario);
    let mut report = RunReport::default();

    let started = Instant::now();
    let staff: Vec<HttpCall> = all_agents
        .iter()
        .filter(|agent| agent.joins_day == 0)
        .map(|agent| client.as_admin(put_agent(&agent.agent)))
        .collect();
    client.expect_success(staff, "putting the scenario's staff")?;
    let mut sent = 0;
    while sent < people.count() {
        let chunk: Vec<HttpCall> = (sent + 1..=people.count().min(sent + CUSTOMER_CHUNK))
            .map(|number| client.as_admin(put_customer(&people.customer(number).record)))
            .collect();
        sent += chunk.len() as u64;
        client.expect_success(chunk, "putting the scenario's customers")?;
        progress(Phase::Customers, sent, people.count());
    }
    report.customers_seconds = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let categories = cordon_policy::CategoryTable::default();
    let mut driver = HttpDriver { client, agents: &all_agents, tokens: HashMap::new() };
    let played = play(scenario, &people, &all_agents, &categories, &mut driver, progress)?;
    report.traffic_seconds = started.elapsed().as_secs_f64();
    report.requests = played.requests;
    report.waves = played.waves;
    let mut truth = truth(scenario, &people, played.insiders);
    truth.policy = "server".into();
    write_truth(truth_path, &truth)?;
    Ok((report, truth))
}

/// One HTTP request, ready to send.
#[derive(Debug, Clone)]
struct HttpCall {
    method: Method,
    path: String,
    token: Arc<str>,
    body: Option<Vec<u8>>,
}

/// A server's answer: status, body and the request id its audit entry carries.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    body: Vec<u8>,
    request_id: String,
}

impl Reply {
    fn detail(&self) -> String {
        serde_json::from_slice::<Value>(&self.body)
            .ok()
            .and_then(|body| body.get("detail").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&self.body).chars().take(200).collect())
    }
}

/// Keep-alive connections and the runtime that drives them.
struct Client {
    runtime: tokio::runtime::Runtime,
    target: HttpTarget,
    lanes: Vec<Option<SendRequest<Full<Bytes>>>>,
}

impl Client {
    fn connect(runtime: tokio::runtime::Runtime, target: HttpTarget) -> Result<Client, SimError> {
        let mut client = Client { runtime, target, lanes: (0..CONNECTIONS).map(|_| None).collect() };
        let health = HttpCall { method: Method::GET, path: "/healthz".into(), token: "".into(), body: None };
        let reply = client.send_all(vec![health])?.pop();
        match reply {
            Some(reply) if reply.status.is_success() => Ok(client),
            Some(reply) => Err(SimError::Internal(format!(
                "http://{}/healthz answered {}: is it a cordon server?",
                client.target.authority, reply.status
            ))),
            None => Err(SimError::Internal("no answer from /healthz".into())),
        }
    }

    fn as_admin(&self, (method, path, body): (Method, String, Option<Value>)) -> HttpCall {
        HttpCall {
            method,
            path,
            token: self.target.admin_token.clone(),
            body: body.map(|body| body.to_string().into_bytes()),
        }
    }

    /// Sends every call, spread over the connections, and waits for all; replies in order.
    fn send_all(&mut self, calls: Vec<HttpCall>) -> Result<Vec<Reply>, SimError> {
        let count = calls.len();
        let lanes = self.lanes.len().max(1);
        let mut work: Vec<Vec<(usize, HttpCall)>> = (0..lanes).map(|_| Vec::new()).collect();
        for (position, call) in calls.into_iter().enumerate() {
            if let Some(lane) = work.get_mut(position % lanes) {
                lane.push((position, call));
            }
        }
        let authority = self.target.authority.clone();
        let connections: Vec<Option<SendRequest<Full<Bytes>>>> = self.lanes.iter_mut().map(Option::take).collect();
        let finished = self.runtime.block_on(async move {
            let mut tasks = tokio::task::JoinSet::new();
            for (connection, calls) in connections.into_iter().zip(work) {
                if calls.is_empty() {
                    tasks.spawn(async move { (connection, Vec::new()) });
                    continue;
                }
                let authority = authority.clone();
                tasks.spawn(async move {
                    let mut connection = connection;
                    let mut replies = Vec::with_capacity(calls.len());
                    for (position, call) in calls {
                        let reply = send(&mut connection, &authority, call).await;
                        let failed = reply.is_err();
                        replies.push((position, reply));
                        if failed {
                            break;
                        }
                    }
                    (connection, replies)
                });
            }
            tasks.join_all().await
        });
        let mut replies: Vec<Option<Reply>> = (0..count).map(|_| None).collect();
        self.lanes.clear();
        for (connection, lane_replies) in finished {
            self.lanes.push(connection);
            for (position, reply) in lane_replies {
                if let Some(slot) = replies.get_mut(position) {
                    *slot = Some(reply?);
                }
            }
        }
        replies
            .into_iter()
            .map(|reply| reply.ok_or_else(|| SimError::Internal("a request got no answer".into())))
            .collect()
    }

    /// Sends every call and fails, naming the first refusal, unless all succeed.
    fn expect_success(&mut self, calls: Vec<HttpCall>, what: &str) -> Result<(), SimError> {
        let paths: Vec<String> = calls.iter().map(|call| format!("{} {}", call.method, call.path)).collect();
        for (reply, path) in self.send_all(calls)?.into_iter().zip(paths) {
            if !reply.status.is_success() {
                return Err(SimError::Internal(format!(
                    "{what}: {path} answered {}: {}",
                    reply.status,
                    reply.detail()
                )));
            }
        }
        Ok(())
    }
}

/// Sends one request on `connection`, opening it (again) if it is absent or closed.
async fn send(
    connection: &mut Option<SendRequest<Full<Bytes>>>,
    authority: &str,
    call: HttpCall,
) -> Result<Reply, SimError> {
    let failed = |error: &dyn std::fmt::Display| {
        SimError::Internal(format!("{} http://{authority}{}: {error}", call.method, call.path))
    };
    let mut sender = match connection.take() {
        Some(sender) if !sender.is_closed() => sender,
        _ => {
            let stream = tokio::net::TcpStream::connect(authority).await.map_err(|error| failed(&error))?;
            let _ = stream.set_nodelay(true);
            let (sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|error| failed(&error))?;
            tokio::spawn(connection);
            sender
        }
    };
    sender.ready().await.map_err(|error| failed(&error))?;
    let mut request =
        Request::builder().method(call.method.clone()).uri(call.path.as_str()).header(hyper::header::HOST, authority);
    if !call.token.is_empty() {
        request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {}", call.token));
    }
    if call.body.is_some() {
        request = request.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    let request =
        request.body(Full::new(Bytes::from(call.body.clone().unwrap_or_default()))).map_err(|error| failed(&error))?;
    let response = sender.send_request(request).await.map_err(|error| failed(&error))?;
    let status = response.status();
    let request_id =
        response.headers().get("x-request-id").and_then(|value| value.to_str().ok()).unwrap_or_default().to_string();
    let body = response.into_body().collect().await.map_err(|error| failed(&error))?.to_bytes().to_vec();
    *connection = Some(sender);
    Ok(Reply { status, body, request_id })
}

/// Carries out waves over HTTP, minting each agent's token when it first acts.
struct HttpDriver<'a> {
    client: Client,
    agents: &'a [SimAgent],
    /// Agent index to its session token, or `None` when the server would issue none.
    tokens: HashMap<usize, Option<Arc<str>>>,
}

impl HttpDriver<'_> {
    /// Mints tokens for the agents about to act that have none yet.
    fn mint_tokens(&mut self, calls: &[Call]) -> Result<(), SimError> {
        let mut wanted: Vec<usize> = calls
            .iter()
            .filter(|call| !call.admin && !self.tokens.contains_key(&call.agent))
            .map(|call| call.agent)
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        let requests: Vec<HttpCall> = wanted
            .iter()
            .filter_map(|index| self.agents.get(*index))
            .map(|agent| {
                self.client.as_admin((Method::POST, format!("/v1/agents/{}/token", segment(&agent.agent.id)), None))
            })
            .collect();
        for (index, reply) in wanted.into_iter().zip(self.client.send_all(requests)?) {
            let token = match reply.status {
                StatusCode::OK => serde_json::from_slice::<Value>(&reply.body)
                    .ok()
                    .and_then(|body| body.get("token").and_then(Value::as_str).map(Arc::<str>::from)),
                // Suspended (409) or never created (404): its requests cannot go through.
                StatusCode::CONFLICT | StatusCode::NOT_FOUND => None,
                other => {
                    return Err(SimError::Internal(format!(
                        "minting an agent token answered {other}: {} (is the token file an admin's?)",
                        reply.detail()
                    )));
                }
            };
            self.tokens.insert(index, token);
        }
        Ok(())
    }
}

impl Driver for HttpDriver<'_> {
    fn wave(&mut self, calls: Vec<Call>) -> Result<Vec<Answer>, SimError> {
        self.mint_tokens(&calls)?;
        let mut sendable = Vec::with_capacity(calls.len());
        let mut outcomes: Vec<Option<Answer>> = Vec::with_capacity(calls.len());
        let mut shown_customers: Vec<Option<String>> = Vec::with_capacity(calls.len());
        for call in calls {
            let token = if call.admin {
                Some(self.client.target.admin_token.clone())
            } else {
                self.tokens.get(&call.agent).cloned().flatten()
            };
            match token {
                Some(token) => {
                    let customer = match &call.act {
                        Act::View { customer, .. } | Act::Reveal { customer, .. } => Some(customer.clone()),
                        _ => None,
                    };
                    shown_customers.push(customer);
                    let (method, path, body) = request_for(call.act);
                    sendable.push(HttpCall {
                        method,
                        path,
                        token,
                        body: body.map(|body| body.to_string().into_bytes()),
                    });
                    outcomes.push(None);
                }
                None => outcomes.push(Some(Answer {
                    outcome: Outcome::Suspended,
                    request_id: String::new(),
                    received: Vec::new(),
                })),
            }
        }
        let mut replies = self.client.send_all(sendable)?.into_iter().zip(shown_customers);
        outcomes
            .into_iter()
            .map(|outcome| match outcome {
                Some(known) => Ok(known),
                None => {
                    let (reply, customer) =
                        replies.next().ok_or_else(|| SimError::Internal("a request got no answer".into()))?;
                    let outcome = outcome_of(&reply)?;
                    let received = if outcome == Outcome::Done { received_of(&reply, customer) } else { Vec::new() };
                    Ok(Answer { outcome, request_id: reply.request_id, received })
                }
            })
            .collect()
    }
}

/// What a successful answer showed: a search's matches (masked names), a card's fields
/// (masked), a reveal's values (in the clear).
fn received_of(reply: &Reply, customer: Option<String>) -> Vec<Received> {
    let Ok(body) = serde_json::from_slice::<Value>(&reply.body) else { return Vec::new() };
    let keys = |name: &str| -> Vec<String> {
        body.get(name).and_then(Value::as_object).map(|object| object.keys().cloned().collect()).unwrap_or_default()
    };
    if let Some(matches) = body.get("matches").and_then(Value::as_array) {
        return matches
            .iter()
            .filter_map(|hit| hit.get("customer").and_then(Value::as_str))
            .map(|customer| Received {
                customer: customer.into(),
                masked: vec!["full_name".into()],
                revealed: Vec::new(),
            })
            .collect();
    }
    match customer {
        Some(customer) if body.get("values").is_some() => {
            vec![Received { customer, masked: Vec::new(), revealed: keys("values") }]
        }
        Some(customer) if body.get("fields").is_some() => {
            vec![Received { customer, masked: keys("fields"), revealed: Vec::new() }]
        }
        _ => Vec::new(),
    }
}

/// How the simulation reads a server's answer.
fn outcome_of(reply: &Reply) -> Result<Outcome, SimError> {
    match reply.status {
        status if status.is_success() => Ok(Outcome::Done),
        StatusCode::FORBIDDEN => {
            let suspended = serde_json::from_slice::<Value>(&reply.body)
                .ok()
                .and_then(|body| body.get("policies").and_then(Value::as_array).cloned())
                .is_some_and(|policies| {
                    suspended_by(&policies.iter().filter_map(Value::as_str).collect::<Vec<&str>>())
                });
            Ok(if suspended { Outcome::Suspended } else { Outcome::Refused })
        }
        StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST | StatusCode::CONFLICT => Ok(Outcome::Refused),
        other => Err(SimError::Internal(format!("the server answered {other}: {}", reply.detail()))),
    }
}

/// The route, and JSON body, that carries out `act`.
fn request_for(act: Act) -> (Method, String, Option<Value>) {
    match act {
        Act::PutAgent(agent) => put_agent(&agent),
        Act::PutTicket(ticket) => (
            Method::PUT,
            format!("/v1/tickets/{}", segment(&ticket.id)),
            Some(json!({
                "requester": ticket.requester,
                "category": ticket.category,
                "status": ticket.status.name(),
                "assignee": ticket.assignee,
                "opened_by": ticket.opened_by,
                "assigned_by": ticket.assigned_by,
            })),
        ),
        Act::Search { by, value } => (Method::POST, "/v1/search".into(), Some(json!({"by": by, "value": value}))),
        Act::View { customer, ticket } => {
            let query = ticket.map(|ticket| format!("?ticket={}", segment(&ticket))).unwrap_or_default();
            (Method::GET, format!("/v1/customers/{}{query}", segment(&customer)), None)
        }
        Act::Reveal { customer, ticket, fields, reason } => (
            Method::POST,
            format!("/v1/customers/{}/reveal", segment(&customer)),
            Some(json!({"ticket": ticket, "fields": fields, "reason": reason})),
        ),
        Act::Verify { customer, ticket, field, value } => (
            Method::POST,
            format!("/v1/customers/{}/verify", segment(&customer)),
            Some(json!({"ticket": ticket, "field": field, "value": value})),
        ),
    }
}

fn put_agent(agent: &cordon_directory::Agent) -> (Method, String, Option<Value>) {
    (
        Method::PUT,
        format!("/v1/agents/{}", segment(&agent.id)),
        Some(json!({
            "name": agent.name,
            "team": agent.team,
            "site": agent.site,
            "employer": agent.employer,
            "shift": [agent.shift.start_hour, agent.shift.end_hour],
            "role": agent.role.name(),
            "status": agent.status.name(),
        })),
    )
}

/// An import record (`id`, the fields, `canary`) as the body of `PUT /v1/customers/{id}`.
fn put_customer(record: &Value) -> (Method, String, Option<Value>) {
    let mut fields = record.as_object().cloned().unwrap_or_default();
    let id = fields.remove("id").and_then(|id| id.as_str().map(str::to_string)).unwrap_or_default();
    let canary = fields.remove("canary").and_then(|canary| canary.as_bool()).unwrap_or(false);
    (Method::PUT, format!("/v1/customers/{}", segment(&id)), Some(json!({"fields": fields, "canary": canary})))
}

/// Percent-encodes a path segment or query value (identifiers are plain, but need not be).
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
