//! Routes, request and response bodies, authentication and the serving loop.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use cordon_directory::{Agent, AgentStatus, ApprovalKind, Role, Shift, Ticket, TicketStatus};
use cordon_gateway::{Claims, Gateway, GatewayError, TokenRole};
use cordon_vault::Field;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::metrics::Metrics;
use crate::problem::Problem;

const OPENAPI: &str = include_str!("openapi.json");

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    pub gateway: Gateway,
    pub metrics: Metrics,
    /// Permits for heavy work (see `heavy`).
    heavy: Arc<tokio::sync::Semaphore>,
    /// One-click console sign-in for `cordon demo` (a label and who it signs in as); empty on
    /// every other server.
    pub(crate) demo_sign_in: BTreeMap<String, DemoSignIn>,
    /// Whether the server speaks HTTPS: the console's cookies are then `Secure`.
    pub(crate) tls: bool,
    /// How the webhooks reach their receivers (and the server the identity provider).
    pub(crate) outbound: crate::webhook::Outbound,
    /// The identity provider's endpoints, as its discovery document gave them (`sso.rs`).
    pub(crate) provider: std::sync::RwLock<Option<crate::sso::ProviderEndpoints>>,
}

/// Who a demo's one-click link signs in as, and the page it lands on. The token is issued at
/// the click, so a demo left running keeps its links working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoSignIn {
    pub identity: DemoIdentity,
    /// A console path, e.g. `/console/incidents` for the incident responder.
    pub landing: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DemoIdentity {
    Agent(String),
    Role(TokenRole),
    Customer(String),
}

impl AppState {
    pub fn new(gateway: Gateway) -> AppState {
        AppState::with_heavy_at_once(gateway, HEAVY_AT_ONCE_MAX)
    }

    /// With another bound on heavy requests served at once (tests use 0 to see every heavy
    /// route go through the bound).
    pub fn with_heavy_at_once(gateway: Gateway, heavy_at_once_max: usize) -> AppState {
        AppState {
            gateway,
            metrics: Metrics::default(),
            heavy: Arc::new(tokio::sync::Semaphore::new(heavy_at_once_max)),
            demo_sign_in: BTreeMap::new(),
            tls: false,
            outbound: crate::webhook::Outbound::web(),
            provider: std::sync::RwLock::new(None),
        }
    }

    /// A demo's server: `/console/demo/{label}` signs a browser in as `label` names in one
    /// click (simulated data only; `cordon demo` alone sets this).
    pub fn with_demo_sign_in(mut self, links: BTreeMap<String, DemoSignIn>) -> AppState {
        self.demo_sign_in = links;
        self
    }

    /// Webhooks reach https receivers trusting `outbound` (the web's roots by default).
    pub fn with_outbound(mut self, outbound: crate::webhook::Outbound) -> AppState {
        self.outbound = outbound;
        self
    }

    /// A server that speaks HTTPS: the console marks its cookies `Secure`.
    pub fn with_tls(mut self, tls: bool) -> AppState {
        self.tls = tls;
        self
    }
}

/// Heavy requests (incident scope, attribution, protection, notices, reports, evidence, an
/// access history) served at once; one per core of the machine this is measured on.
const HEAVY_AT_ONCE_MAX: usize = 2;

/// The server's one boundary for the gateway's heavy, blocking work: it runs on tokio's
/// blocking threads, never on the async workers that answer every other request (and
/// `/healthz`), and at most `HEAVY_AT_ONCE_MAX` at a time; one more is refused at once with
/// 503 `busy` and `Retry-After`, not queued, so a flood of them holds neither the workers
/// nor memory. Fast requests (search, card, reveal, verify, administration) stay on the
/// workers: their blocking is a few point reads and the ledger's wait, which is async.
pub(crate) async fn heavy<T, F, Fut>(state: &Arc<AppState>, work: F) -> Result<T, Problem>
where
    F: FnOnce(Arc<AppState>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, GatewayError>>,
    T: Send + 'static,
{
    let permit = Arc::clone(&state.heavy).try_acquire_owned().map_err(|_| Problem {
        retry_after_seconds: Some(5),
        ..Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "as many heavy requests as the server takes at once are being served; try again shortly",
        )
    })?;
    let state = Arc::clone(state);
    let runtime = tokio::runtime::Handle::current();
    let outcome = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        runtime.block_on(work(state))
    })
    .await
    .map_err(|error| GatewayError::Internal(format!("heavy work failed: {error}")))?;
    Ok(outcome?)
}

/// The router, without a socket, so tests can drive it directly.
pub fn app(state: Arc<AppState>) -> Router {
    let body_limit = state.gateway.limits().request_body_bytes_max;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .route("/v1/search", post(search))
        .route("/v1/customers/{id}", get(view).put(put_customer).delete(delete_customer))
        .route("/v1/customers/{id}/reveal", post(reveal))
        .route("/v1/customers/{id}/verify", post(verify))
        .route("/v1/customers/{id}/access-history", get(access_history))
        .route("/v1/customers/{id}/token", post(customer_token))
        .route("/v1/helpdesk/zendesk", post(zendesk_webhook))
        .route("/v1/agents/{id}", put(put_agent))
        .route("/v1/agents/{id}/suspend", post(suspend_agent))
        .route("/v1/agents/{id}/offboard", post(offboard_agent))
        .route("/v1/agents/{id}/reinstate", post(reinstate_agent))
        .route("/v1/agents/{id}/token", post(agent_token))
        .route("/v1/tokens/revoke", post(revoke_token))
        .route("/v1/exports", post(record_export))
        .route("/v1/backup", post(backup))
        .route("/v1/alerts", get(crate::analyst::list_alerts))
        .route("/v1/alerts/{id}", get(crate::analyst::show_alert))
        .route("/v1/alerts/{id}/dismiss", post(crate::analyst::dismiss_alert))
        .route("/v1/alerts/{id}/confirm", post(crate::analyst::confirm_alert))
        .route("/v1/risk", get(crate::analyst::risk_board))
        .route("/v1/detection/replay", post(crate::analyst::replay_detection))
        .route("/v1/sessions/{code}", get(crate::analyst::session_report))
        .route("/v1/incidents", get(crate::incident::list).post(crate::incident::open))
        .route("/v1/incidents/{id}", get(crate::incident::show))
        .route("/v1/incidents/{id}/status", post(crate::incident::set_status))
        .route("/v1/incidents/{id}/scope", get(crate::incident::scope))
        .route("/v1/incidents/{id}/attribute", post(crate::incident::attribute))
        .route("/v1/incidents/{id}/protect", post(crate::incident::protect))
        .route("/v1/incidents/{id}/notify", post(crate::incident::notify))
        .route("/v1/incidents/{id}/report", get(crate::incident::report))
        .route("/v1/incidents/{id}/evidence", get(crate::incident::evidence))
        .route("/v1/tickets/{id}", put(put_ticket))
        .route("/v1/approvals", post(request_approval))
        .route("/v1/approvals/{id}/approve", post(approve))
        .route("/v1/ledger/checkpoint", get(checkpoint))
        .route("/log/checkpoint", get(log_checkpoint))
        .route("/log/tile/{*path}", get(log_tile))
        .route("/log/tile/entries/{*path}", get(log_entries))
        .route("/v1/ledger/proof/{index}", get(proof))
        .merge(crate::console::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(run_to_completion))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(bounded_heads))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), observe))
        .with_state(state)
}

/// Serves plain HTTP until SIGINT or SIGTERM; in-flight requests finish, then the state (and
/// with it the ledger, which publishes a final checkpoint) is dropped.
pub async fn serve(state: Arc<AppState>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    start_background(&state);
    let router = app(Arc::clone(&state));
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown_signal())
        .await
}

/// Serves HTTPS with `tls` until SIGINT or SIGTERM, as [`serve`] does plain HTTP: each
/// connection's handshake gets ten seconds, then HTTP/1.1 over it; at the signal no new
/// connection is taken and the open ones finish their requests (thirty seconds at most).
pub async fn serve_tls(
    state: Arc<AppState>,
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
) -> std::io::Result<()> {
    start_background(&state);
    let router = app(Arc::clone(&state));
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let connections = Arc::new(tokio::sync::Semaphore::new(TLS_CONNECTIONS_MAX));
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors or the like: back off a little instead of spinning.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // A bounded number of connections: beyond it a new one is closed at once, so slow or
        // idle clients cannot use up the process's file descriptors (the ledger needs some).
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            tracing::warn!(%peer, "connection refused: {TLS_CONNECTIONS_MAX} open already");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let service = hyper_util::service::TowerToHyperService::new(
            router.clone().layer(axum::Extension(axum::extract::ConnectInfo(peer))),
        );
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => stream,
                // A client that cannot or will not speak TLS (plain HTTP on this port, a scan).
                Ok(Err(error)) => {
                    tracing::info!(%peer, %error, "TLS handshake refused");
                    return;
                }
                Err(_) => return,
            };
            // A request's head must arrive within the bound (hyper's timer must be set for it to
            // apply, an idle kept-alive connection included).
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(TLS_HANDSHAKE_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(%peer, %error, "connection ended");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {},
        () = tokio::time::sleep(Duration::from_secs(30)) => tracing::warn!("connections still open after 30 s; closing"),
    }
    Ok(())
}

/// How long a client has to complete the TLS handshake, and then each request's head.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Open HTTPS connections at most (the unit allows 65,536 file descriptors).
const TLS_CONNECTIONS_MAX: usize = 4096;

/// The server's own loops: webhook delivery (if any webhook is set) and healing.
fn start_background(state: &Arc<AppState>) {
    if crate::webhook::has_receivers(&state.gateway) {
        tokio::spawn(crate::webhook::run(Arc::downgrade(state)));
    }
    if state.gateway.oidc_settings().is_some() {
        tokio::spawn(crate::sso::run(Arc::downgrade(state)));
    }
    tokio::spawn(heal_loop(Arc::downgrade(state)));
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// Logs and counts every request by its route template (never its body), and tags the
/// response with a request id.
async fn observe(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let request_id = random_request_id();
    request.extensions_mut().insert(RequestId(request_id.clone()));
    let method = request.method().clone();
    let mut response = next.run(request).await;
    let status = response.status().as_u16();
    let seconds = started.elapsed().as_secs_f64();
    state.metrics.observe_request(&route, status, seconds);
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    tracing::info!(%method, %route, status, micros = (seconds * 1e6) as u64, request = %request_id, "request");
    response
}

#[derive(Debug, Clone)]
pub(crate) struct RequestId(pub(crate) String);

pub(crate) fn random_request_id() -> String {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The verified bearer token and the request id of a request.
pub(crate) struct Caller {
    pub(crate) claims: Claims,
    pub(crate) request: String,
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Caller, Problem> {
        let request = parts.extensions.get::<RequestId>().map(|id| id.0.clone()).unwrap_or_else(random_request_id);
        let header = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
            Problem::new(StatusCode::UNAUTHORIZED, "unauthenticated", "an `Authorization: Bearer` token is needed")
        })?;
        let token = header.to_str().ok().and_then(bearer_token).ok_or_else(|| {
            Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "the Authorization header is not `Bearer <token>`",
            )
        })?;
        let claims = state.gateway.authenticate(token)?;
        Ok(Caller { claims, request })
    }
}

/// The token of an `Authorization` header value: the scheme is case-insensitive (RFC 9110
/// §11.1), whitespace around the token is ignored.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(char::is_whitespace)?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A path parameter, with a problem+json error that names the parameter and what is wrong.
pub(crate) struct Segment<T>(pub(crate) T);

impl<T, S> FromRequestParts<S> for Segment<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Segment<T>, Problem> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Segment(value)),
            Err(rejection) => Err(Problem::bad_request(format!("the path is not valid: {}", rejection.body_text()))),
        }
    }
}

/// A JSON body, with a problem+json error that says what is wrong with it.
pub(crate) struct Body<T>(pub(crate) T);

impl<T, S> axum::extract::FromRequest<S> for Body<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Body<T>, Problem> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(json_problem(rejection)),
        }
    }
}

fn json_problem(rejection: JsonRejection) -> Problem {
    let status = rejection.status();
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "body-too-large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable-body",
        _ => "bad-request",
    };
    Problem::new(status, code, rejection.body_text())
}

pub(crate) fn query_problem(rejection: QueryRejection) -> Problem {
    Problem::bad_request(rejection.body_text())
}

fn observe_decision(state: &AppState, action: &str, outcome: &Result<impl Sized, GatewayError>) {
    let label = match outcome {
        Ok(_) => "allow",
        Err(GatewayError::Denied { .. }) | Err(GatewayError::NotFound { ledger_index: Some(_), .. }) => "deny",
        Err(GatewayError::AuditUnavailable(_)) => "audit-unavailable",
        Err(_) => "error",
    };
    state.metrics.observe_decision(action, label);
}

// ---- public ----

/// Liveness: the process answers. Whether it can serve is `/readyz`.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: 200 while the audit ledger and the store both commit, 503 `not-ready` (naming
/// which part is down, never a path; the log has the cause) while either cannot, so a load
/// balancer sends no traffic to a node that would refuse it. Probing writes to the store,
/// so it runs off the workers.
async fn readyz(State(state): State<Arc<AppState>>) -> Result<Json<Value>, Problem> {
    let gateway = Arc::clone(&state);
    let health = tokio::task::spawn_blocking(move || gateway.gateway.health())
        .await
        .map_err(|error| Problem::from(GatewayError::Internal(error.to_string())))?;
    if health.ready() {
        return Ok(Json(json!({
            "status": "ready",
            "ledger": "ok",
            "store": "ok",
            "kek": "ok",
            "access_index_lag": health.access_index_lag,
            "held_agent_statuses": health.held_statuses,
        })));
    }
    let mut down = Vec::new();
    if let Some(reason) = &health.ledger {
        tracing::warn!(%reason, "not ready: the audit ledger cannot commit");
        down.push("the audit ledger cannot commit entries");
    }
    if let Some(reason) = &health.store {
        tracing::warn!(%reason, "not ready: the store cannot commit");
        down.push("the store cannot commit writes");
    }
    if let Some(reason) = &health.kek {
        tracing::warn!(%reason, "not ready: the key-encryption key does not answer");
        down.push("the key-encryption key does not answer");
    }
    let mut problem =
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not-ready", format!("not ready: {}", down.join("; ")));
    problem.retry_after_seconds = Some(HEAL_INTERVAL.as_secs().max(1) as u32);
    Err(problem)
}

/// How often a serving node tries to heal (reopen a failed ledger, write held statuses).
const HEAL_INTERVAL: Duration = Duration::from_secs(1);

/// Heals the node every [`HEAL_INTERVAL`] while the state lives; says so when a part
/// comes back, and once when healing starts failing.
async fn heal_loop(state: std::sync::Weak<AppState>) {
    let mut failing = false;
    loop {
        tokio::time::sleep(HEAL_INTERVAL).await;
        let Some(state) = state.upgrade() else { return };
        let healed = tokio::task::spawn_blocking(move || state.gateway.heal()).await;
        match healed {
            Ok(Ok(_)) => failing = false,
            Ok(Err(error)) => {
                if !failing {
                    tracing::error!(%error, "the node cannot heal yet; it keeps trying every second");
                }
                failing = true;
            }
            Err(error) => tracing::error!(%error, "healing stopped unexpectedly"),
        }
    }
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "not-found", "no such route; see /openapi.json")
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "this route does not take that method; see /openapi.json",
    )
}

/// The longest request target and header block answered; longer ones get 414 and 431 as
/// problems, before any handler runs. (Beyond hyper's own buffer, 400 KiB, hyper answers
/// 431 itself, without a body.)
const URI_BYTES_MAX: usize = 8 * 1024;
const HEADER_BYTES_MAX: usize = 16 * 1024;

/// Every request runs to its end on a task of its own, even if its client goes away: a
/// change is a ledger entry and then a store write, and a handler dropped between the two
/// (hyper drops it when the connection closes) would leave the ledger ahead of the store.
/// Liveness, readiness and metrics change nothing and are answered in place. The task costs
/// audited reveals 5 to 9% of their throughput (docs/BENCHMARKS.md); a reveal needs it too:
/// cut while its entry is made durable, it would not put the containment detection decided on
/// it in force until a restart.
async fn run_to_completion(request: Request, next: Next) -> Response {
    if matches!(request.uri().path(), "/healthz" | "/readyz" | "/metrics") {
        return next.run(request).await;
    }
    match tokio::spawn(next.run(request)).await {
        Ok(response) => response,
        Err(error) => {
            tracing::error!(%error, "a request's handler failed");
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the request's handler failed").into_response()
        }
    }
}

async fn bounded_heads(request: Request, next: Next) -> Response {
    let uri = request.uri().path_and_query().map_or(0, |target| target.as_str().len());
    if uri > URI_BYTES_MAX {
        let detail = format!("the request target is {uri} bytes; at most {URI_BYTES_MAX}");
        return Problem::new(StatusCode::URI_TOO_LONG, "uri-too-long", detail).into_response();
    }
    let headers: usize = request.headers().iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum();
    if headers > HEADER_BYTES_MAX {
        let detail = format!("the headers are {headers} bytes; at most {HEADER_BYTES_MAX}");
        return Problem::new(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "headers-too-large", detail).into_response();
    }
    next.run(request).await
}

async fn checkpoint(State(state): State<Arc<AppState>>) -> Result<Response, Problem> {
    let note = state.gateway.audit().checkpoint().map_err(GatewayError::AuditUnavailable)?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response())
}

/// The log's C2SP tlog-tiles tree, as every gateway of a deployment serves it (the same
/// bytes from each: on PostgreSQL they are the shared rows), for auditors' own tools.
async fn log_checkpoint(State(state): State<Arc<AppState>>) -> Result<Response, Problem> {
    let note = state.gateway.audit().checkpoint().map_err(GatewayError::AuditUnavailable)?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], note)
        .into_response())
}

async fn log_tile(State(state): State<Arc<AppState>>, Path(path): Path<String>) -> Result<Response, Problem> {
    public_file(state, format!("tile/{path}")).await
}

/// Entry bundles hold the entries themselves (which agent was shown which customer, alerts):
/// an investigator's to read, not the public's. Hash tiles and the checkpoint stay public.
async fn log_entries(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(path): Path<String>,
) -> Result<Response, Problem> {
    state.gateway.may_read_entries(&caller.claims, &caller.request).await?;
    public_file(state, format!("tile/entries/{path}")).await
}

async fn public_file(state: Arc<AppState>, path: String) -> Result<Response, Problem> {
    let gateway = Arc::clone(&state);
    let found = tokio::task::spawn_blocking(move || gateway.gateway.audit().public_file(&path))
        .await
        .map_err(|error| GatewayError::Internal(format!("reading a tile failed: {error}")))?
        .map_err(GatewayError::AuditUnavailable)?;
    match found {
        // A tile's bytes never change once published: a full tile's, or a partial one's at
        // its width.
        Some(bytes) => Ok((
            [
                (header::CONTENT_TYPE, "application/octet-stream"),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            bytes,
        )
            .into_response()),
        None => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "no such tile in the published tree (C2SP tlog-tiles paths: tile/L/N[.p/W], tile/entries/N[.p/W])",
        )),
    }
}

// ---- data access ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchBody {
    by: String,
    value: String,
}

#[derive(Serialize)]
struct SearchResponse {
    matches: Vec<SearchMatch>,
}

#[derive(Serialize)]
struct SearchMatch {
    customer: String,
    masked_name: String,
}

async fn search(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Body(body): Body<SearchBody>,
) -> Result<Json<SearchResponse>, Problem> {
    let outcome = state.gateway.search(&caller.claims, &body.by, &body.value, &caller.request).await;
    observe_decision(&state, "search", &outcome);
    let hits = outcome?;
    Ok(Json(SearchResponse {
        matches: hits
            .into_iter()
            .map(|hit| SearchMatch { customer: hit.customer, masked_name: hit.masked_name })
            .collect(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TicketQuery {
    ticket: Option<String>,
}

#[derive(Serialize)]
struct CardResponse {
    customer: String,
    fields: BTreeMap<&'static str, String>,
    ledger_index: u64,
}

async fn view(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segment(id): Segment<String>,
    query: Result<Query<TicketQuery>, QueryRejection>,
) -> Result<Json<CardResponse>, Problem> {
    let Query(query) = query.map_err(query_problem)?;
    let outcome = state.gateway.view(&caller.claims, &id, query.ticket.as_deref(), &caller.request).await;
    observe_decision(&state, "view", &outcome);
    let card = outcome?;
    Ok(Json(CardResponse {
        customer: card.customer,
        fields: card.fields.into_iter().map(|(field, masked)| (field.name(), masked)).collect(),
        ledger_index: card.ledger_index,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevealBody {
    ticket: Option<String>,
    fields: Vec<String>,
    #[serde(default)]
    reason: String,
}

#[derive(Serialize)]
struct RevealResponse {
    customer: String,
    values: BTreeMap<&'static str, Value>,
    ledger_index: u64,
}

async fn reveal(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segment(id): Segment<String>,
    Body(body): Body<RevealBody>,
) -> Result<Json<RevealResponse>, Problem> {
    let outcome = state
        .gateway
        .reveal(&caller.claims, &id, body.ticket.as_deref(), &body.fields, &body.reason, &caller.request)
        .await;
    observe_decision(&state, "reveal", &outcome);
    let revealed = outcome?;
    Ok(Json(RevealResponse {
        customer: id,
        values: revealed.values.into_iter().map(|(field, value)| (field.name(), value)).collect(),
        ledger_index: revealed.ledger_index,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyBody {
    ticket: Option<String>,
    field: String,
    value: String,
}

#[derive(Serialize)]
struct VerifyResponse {
    #[serde(rename = "match")]
    matched: bool,
    ledger_index: u64,
}

async fn verify(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segment(id): Segment<String>,
    Body(body): Body<VerifyBody>,
) -> Result<Json<VerifyResponse>, Problem> {
    let outcome = state
        .gateway
        .verify(&caller.claims, &id, body.ticket.as_deref(), &body.field, &body.value, &caller.request)
        .await;
    observe_decision(&state, "verify", &outcome);
    let verified = outcome?;
    Ok(Json(VerifyResponse { matched: verified.matched, ledger_index: verified.ledger_index }))
}

#[derive(Serialize)]
struct HistoryResponse {
    customer: String,
    events: Vec<HistoryEvent>,
}

#[derive(Serialize)]
struct HistoryEvent {
    ledger_index: u64,
    time_ms: i64,
    agent: String,
    ticket: Option<String>,
    action: String,
    fields: Vec<String>,
    decision: &'static str,
    policies: Vec<String>,
}

async fn access_history(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segment(id): Segment<String>,
) -> Result<Json<HistoryResponse>, Problem> {
    let (claims, customer) = (caller.claims, id.clone());
    let events = heavy(&state, move |state| async move { state.gateway.access_history(&claims, &customer) }).await?;
    Ok(Json(HistoryResponse {
        customer: id,
        events: events
            .into_iter()
            .map(|event| HistoryEvent {
                ledger_index: event.ledger_index,
                time_ms: event.time,
                agent: event.agent_id,
                ticket: event.ticket_id,
                action: event.action,
                fields: event.fields,
                decision: if event.allowed { "allow" } else { "deny" },
                policies: event.policies,
            })
            .collect(),
    }))
}

// ---- administration ----

#[derive(Serialize)]
struct Recorded {
    ledger_index: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentBody {
    name: String,
    team: String,
    site: String,
    /// `staff`, or the vendor that employs the agent. Required: a missing employer must
    /// not make a vendor's agent staff.
    employer: String,
    #[serde(default)]
    shift: Option<[u8; 2]>,
    #[serde(default = "agent_role")]
    role: String,
    #[serde(default = "active")]
    status: String,
}

fn agent_role() -> String {
    "agent".into()
}

fn active() -> String {
    "active".into()
}

async fn put_agent(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segment(id): Segment<String>,
    Body(body): Body<AgentBody>,
) -> Result<Json<Recorded>, Problem> {
    let [start, end] = body.shift.unwrap_or([0, 0]);
    let agent = Agent {
        id,
        name: body.name,
        team: body.team,
        site: body.site,
        employer: body.employer,
        shift: Shift::new(start, end).map_err(|error| Problem::bad_request(error.to_string()))?,
        role: body.role.parse::<Role>().map_err(|error| Problem::bad_request(error.to_string()))?,
        status: body.status.parse::<AgentStatus>().map_err(|error| Problem::bad_request(error.to_string()))?,
    };
    let index = state.gateway.put_agent(&caller.claims, agent, &caller.request).await?;
    Ok(Json(Recorded { ledger_index: index }))
}

async fn suspend_agent(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segment(id): Segment<String>,
) -> Result<Json<Recorded>, Problem> {
    let index = state.gateway.set_agent_status(&caller.claims, &id, AgentStatus::Suspended, &caller.request).await?;
    Ok(Json(Recorded { ledger_index: index }))
}

async fn offboard_agent(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segment(id): Segment<String>,
) -> Result<Json<Recorded>, Problem> {
    let index = state.gateway.set_agent_status(&caller.claims, &id, AgentStatus::Offboarded, &caller.request).await?;
    Ok(Json(Recorded { ledger_index: index }))
}

async fn reinstate_agent(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segment(id): Segment<String>,
) -> Result<Json<Recorded>, Problem> {
    let index = state.gateway.reinstate_agent(&caller.claims, &id, &caller.request).await?;
    Ok(Json(Recorded { ledger_index: index }))
}

#[derive(Serialize)]
struct AgentToken {
    agent: String,
    role: TokenRole,
    token: String,
    ledger_index: u64,
}

async fn agent_token(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segment(id): Segment<String>,
) -> Result<Json<AgentToken>, Problem> {
    let (ledger_index, token) = state.gateway.grant_agent_token(&caller.claims, &id, &caller.request).await?;
    let claims = state.gateway.authenticate(&token)?;
    Ok(Json(AgentToken { agent: id, role: claims.role, token, ledger_index }))
}

#[derive(Serialize)]
struct CustomerToken {
    customer: String,
    token: String,
    expires_at: String,
    ledger_index: u64,
}

/// A customer's own token, for the exchange's customer-facing app (service role) to hand the
/// customer it has signed in: it opens their "who viewed my data" page and nothing else.
async fn customer_token(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segment(id): Segment<String>,
) -> Result<Json<CustomerToken>, Problem> {
    let (ledger_index, token) = state.gateway.grant_customer_token(&caller.claims, &id, &caller.request).await?;
    let claims = state.gateway.authenticate(&token)?;
    Ok(Json(CustomerToken {
        customer: id,
        token,
        expires_at: cordon_incident::iso_time(claims.exp.saturating_mul(1000)),
        ledger_index,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    token: Option<String>,
    jti: Option<String>,
}

async fn revoke_token(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Body(body): Body<RevokeBody>,
) -> Result<Json<Recorded>, Problem> {
    let index =
        state.gateway.revoke_token(&caller.claims, body.token.as_deref(), body.jti.as_deref(), &caller.request).await?;
    Ok(Json(Recorded { ledger_index: index }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportBody {
    format: String,
    since: Option<String>,
    until: Option<String>,
    from_entry: Option<u64>,
    #[serde(default)]
    follow: bool,
}

/// A backup of the data directory, streamed as it is written (`cordon backup` asks for it
/// while the server runs). Taking it is heavy work (the store is copied); the archive then
/// goes out from a blocking thread, chunk by chunk, and a failure part-way ends the body with
/// an error, so the receiver never holds a cut archive that looks whole (its manifest is last).
async fn backup(State(state): State<Arc<AppState>>, caller: Caller) -> Result<Response, Problem> {
    let Caller { claims, request } = caller;
    let backup = heavy(&state, move |state| async move { state.gateway.backup(&claims, &request).await }).await?;
    let (sender, receiver) = tokio::sync::mpsc::channel(8);
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter { sender, buffer: Vec::with_capacity(CHANNEL_CHUNK) };
        match backup.write_to(&mut out) {
            Ok(summary) => tracing::info!(bytes = summary.bytes, ledger_size = summary.ledger_size, "backup sent"),
            Err(error) => {
                tracing::error!(%error, "the backup could not be sent whole");
                let _ = out.sender.try_send(Err(std::io::Error::other(error.to_string())));
            }
        }
    });
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/x-tar".to_string()),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"cordon-backup.tar\"".to_string()),
        ],
        axum::body::Body::new(Received(receiver)),
    )
        .into_response())
}

const CHANNEL_CHUNK: usize = 256 * 1024;
/// How long a backup's receiver may read nothing before the backup is abandoned.
const STALLED_RECEIVER: std::time::Duration = std::time::Duration::from_secs(60);

/// Writes into a channel a response body reads from, in chunks.
struct ChannelWriter {
    sender: tokio::sync::mpsc::Sender<std::io::Result<axum::body::Bytes>>,
    buffer: Vec<u8>,
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= CHANNEL_CHUNK {
            self.flush()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let mut chunk =
            Ok(axum::body::Bytes::from(std::mem::replace(&mut self.buffer, Vec::with_capacity(CHANNEL_CHUNK))));
        // A receiver that stops reading does not hold the backup (its staged copy of the
        // store, this thread) for ever.
        let waiting_since = std::time::Instant::now();
        loop {
            match self.sender.try_send(chunk) {
                Ok(()) => return Ok(()),
                Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {
                    return Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the receiver went away"));
                }
                Err(tokio::sync::mpsc::error::TrySendError::Full(back)) => {
                    if waiting_since.elapsed() > STALLED_RECEIVER {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "the receiver read nothing for a minute",
                        ));
                    }
                    chunk = back;
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            }
        }
    }
}

/// A response body read from a channel.
struct Received(tokio::sync::mpsc::Receiver<std::io::Result<axum::body::Bytes>>);

impl http_body::Body for Received {
    type Data = axum::body::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.0.poll_recv(context).map(|chunk| chunk.map(|chunk| chunk.map(http_body::Frame::data)))
    }
}

/// Records an export of the audit record that a command line makes beside the running
/// server (it reads the published log itself). The entry's detail is composed here from
/// checked values, never taken as free text.
async fn record_export(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Body(body): Body<ExportBody>,
) -> Result<Json<Recorded>, Problem> {
    let change = match body.format.as_str() {
        "ocsf" => "export.ocsf",
        "parquet" => "export.parquet",
        other => return Err(Problem::bad_request(format!("`format` must be ocsf or parquet, not `{other}`"))),
    };
    let since = cordon_incident::parse_optional_time("`since`", body.since.as_deref()).map_err(Problem::bad_request)?;
    let until = cordon_incident::parse_optional_end("`until`", body.until.as_deref()).map_err(Problem::bad_request)?;
    let detail = format!(
        "{} {} .. {} from entry {}{}",
        body.format,
        since.map_or_else(|| "start".to_string(), cordon_incident::iso_time),
        until.map_or_else(|| "now".to_string(), cordon_incident::iso_time),
        body.from_entry.unwrap_or(0),
        if body.follow { ", following" } else { "" }
    );
    let index = state.gateway.record_export(&caller.claims, change, detail, &caller.request).await?;
    Ok(Json(Recorded { ledger_index: index }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TicketBody {
    requester: String,
    category: String,
    #[serde(default = "open")]
    status: String,
    assignee: Option<String>,
    /// The agent who opened it for the customer (absent: the customer raised it).
    opened_by: Option<String>,
    /// Who put it in the assignee's queue (absent: the helpdesk's routing).
    assigned_by: Option<String>,
}

fn open() -> String {
    "open".into()
}

/// Zendesk's webhook: ticket and user events, trusted by their signature (no bearer token:
/// the helpdesk signs with the webhook's secret), which is checked here first. Applying is
/// blocking (each applied event waits for its ledger entry under the receiver's lock), so it
/// runs as heavy work; an unsigned delivery never gets that far.
async fn zendesk_webhook(
    State(state): State<Arc<AppState>>,
    request_id: Option<axum::Extension<RequestId>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<cordon_gateway::HelpdeskOutcome>, Problem> {
    let request = request_id.map(|axum::Extension(id)| id.0).unwrap_or_else(random_request_id);
    let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).map(str::to_string);
    let signature = text("x-zendesk-webhook-signature");
    let timestamp = text("x-zendesk-webhook-signature-timestamp");
    state.gateway.check_zendesk_delivery(cordon_gateway::Delivery {
        signature: signature.as_deref(),
        timestamp: timestamp.as_deref(),
        body: &body,
    })?;
    let outcome = heavy(&state, move |state| async move {
        let delivery =
            cordon_gateway::Delivery { signature: signature.as_deref(), timestamp: timestamp.as_deref(), body: &body };
        state.gateway.zendesk_event(delivery, &request)
    })
    .await?;
    Ok(Json(outcome))
}

async fn put_ticket(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segment(id): Segment<String>,
    Body(body): Body<TicketBody>,
) -> Result<Json<Recorded>, Problem> {
    let now = state.gateway.now_ms().div_euclid(1000);
    let ticket = Ticket {
        created_at: now,
        id,
        requester: body.requester,
        category: body.category,
        status: body.status.parse::<TicketStatus>().map_err(|error| Problem::bad_request(error.to_string()))?,
        assignee: body.assignee.filter(|assignee| !assignee.is_empty()),
        opened_by: body.opened_by.filter(|agent| !agent.is_empty()),
        assigned_by: body.assigned_by.filter(|agent| !agent.is_empty()),
        updated_at: now,
    };
    let index = state.gateway.put_ticket(&caller.claims, ticket, &caller.request).await?;
    Ok(Json(Recorded { ledger_index: index }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomerBody {
    fields: BTreeMap<String, Value>,
    #[serde(default)]
    canary: bool,
}

async fn put_customer(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segment(id): Segment<String>,
    Body(body): Body<CustomerBody>,
) -> Result<Json<Recorded>, Problem> {
    let mut fields = BTreeMap::new();
    for (name, value) in body.fields {
        let field: Field =
            name.parse().map_err(|error: cordon_vault::UnknownField| Problem::bad_request(error.to_string()))?;
        fields.insert(field, value);
    }
    let index = state.gateway.put_customer(&caller.claims, &id, &fields, body.canary, &caller.request).await?;
    Ok(Json(Recorded { ledger_index: index }))
}

async fn delete_customer(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segment(id): Segment<String>,
) -> Result<Json<Recorded>, Problem> {
    let index = state.gateway.delete_customer(&caller.claims, &id, &caller.request).await?;
    Ok(Json(Recorded { ledger_index: index }))
}

// ---- approvals ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalRequestBody {
    kind: String,
    customer: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveBody {
    #[serde(default = "one_hour")]
    seconds: i64,
}

fn one_hour() -> i64 {
    3600
}

#[derive(Serialize)]
struct ApprovalResponse {
    id: String,
    kind: &'static str,
    requester: String,
    customer: String,
    status: &'static str,
    approver: Option<String>,
    expires_at: Option<i64>,
}

impl From<cordon_directory::Approval> for ApprovalResponse {
    fn from(approval: cordon_directory::Approval) -> ApprovalResponse {
        ApprovalResponse {
            id: approval.id,
            kind: approval.kind.name(),
            requester: approval.requester,
            customer: approval.customer,
            status: approval.status.name(),
            approver: approval.approver,
            expires_at: approval.expires_at,
        }
    }
}

async fn request_approval(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Body(body): Body<ApprovalRequestBody>,
) -> Result<Json<ApprovalResponse>, Problem> {
    let kind: ApprovalKind =
        body.kind.parse().map_err(|error: cordon_directory::DirectoryError| Problem::bad_request(error.to_string()))?;
    let approval = state.gateway.request_approval(&caller.claims, kind, &body.customer, &caller.request).await?;
    Ok(Json(approval.into()))
}

async fn approve(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segment(id): Segment<String>,
    Body(body): Body<ApproveBody>,
) -> Result<Json<ApprovalResponse>, Problem> {
    let outcome = state.gateway.approve(&caller.claims, &id, body.seconds, &caller.request).await;
    observe_decision(&state, "approve", &outcome);
    Ok(Json(outcome?.into()))
}

// ---- ledger and operations ----

async fn proof(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
    Segment(index): Segment<String>,
) -> Result<Response, Problem> {
    let index: u64 = index.parse().map_err(|_| Problem::bad_request(format!("`{index}` is not a ledger index")))?;
    let audit = Arc::clone(state.gateway.audit());
    if index >= audit.size() {
        return Err(Problem::new(StatusCode::NOT_FOUND, "not-found", format!("the ledger has no entry {index}")));
    }
    // A durable entry always has a receipt; a ledger that cannot publish one now is
    // unavailable (503, its cause logged), never a missing entry.
    let receipt = tokio::task::spawn_blocking(move || audit.receipt(index))
        .await
        .map_err(|error| Problem::from(GatewayError::Internal(error.to_string())))?
        .map_err(|error| Problem::from(GatewayError::AuditUnavailable(error)))?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], receipt).into_response())
}

async fn metrics(State(state): State<Arc<AppState>>, caller: Caller) -> Result<Response, Problem> {
    state.gateway.may_read_metrics(&caller.claims)?;
    let gateway = Arc::clone(&state);
    let health = tokio::task::spawn_blocking(move || gateway.gateway.health())
        .await
        .map_err(|error| Problem::from(GatewayError::Internal(error.to_string())))?;
    let text = state.metrics.render(state.gateway.audit().stats(), &health);
    Ok(([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response())
}
