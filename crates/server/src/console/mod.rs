//! The console: server-rendered pages for the people who use cordon all day, on the API's
//! port under `/console/`. A person signs in once with a bearer token and then holds a
//! session (its secret in an HttpOnly, SameSite=Strict cookie); every form carries the
//! session's CSRF token; every region that shows customer data is drawn under a watermark
//! naming the agent, the session's code and the time, so a photo of the screen names its
//! source. No customer value goes into a URL (searches are posted), no page with data is
//! cached, no script runs inline, and no other site may frame a page.

mod agent;
mod analyst;
mod customer;
mod incident;
mod pages;
mod sso;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use cordon_gateway::{Claims, ConsoleSession, GatewayError};

use crate::routes::AppState;
use pages::{Login, Page, Problem, render};

/// The session cookie; scoped to the console's paths.
const SESSION_COOKIE: &str = "cordon_session";
/// The sign-in form's nonce cookie: a sign-in is posted only from the console's own form.
const LOGIN_COOKIE: &str = "cordon_login";
const STYLESHEET: &str = include_str!("../../console/console.css");
/// The customer's receipt check (`customer.rs`), an ES module with no build step.
const RECEIPT_SCRIPT: &str = include_str!("../../console/receipt.js");
/// Reads a chosen sample file into the incident page's attribution form.
const SAMPLE_SCRIPT: &str = include_str!("../../console/sample.js");

/// The console's routes, under `/console/`.
pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(agent::home))
        .route("/console/login", get(login_page).post(login))
        .route("/console/logout", post(logout))
        .route("/console/oidc/start", get(sso::start))
        .route("/console/oidc/callback", get(sso::callback))
        .route("/console/demo/{label}", get(demo_sign_in))
        .route("/console/search", post(agent::search))
        .route("/console/customers/{id}", get(agent::card))
        .route("/console/customers/{id}/reveal", post(agent::reveal))
        .route("/console/customers/{id}/verify", post(agent::verify))
        .route("/console/alerts/{id}", get(analyst::alert))
        .route("/console/alerts/{id}/dismiss", post(analyst::dismiss))
        .route("/console/alerts/{id}/confirm", post(analyst::confirm))
        .route("/console/agents/{id}/reinstate", post(analyst::reinstate))
        .route("/console/agents/{id}/suspend", post(analyst::suspend))
        .route("/console/approvals/{id}/approve", post(analyst::approve))
        .route("/console/customers/{id}/approval", post(agent::ask_approval))
        .route("/console/incidents", get(incident::list).post(incident::open))
        .route("/console/incidents/{id}", get(incident::show))
        .route("/console/incidents/{id}/scope", post(incident::scope))
        .route("/console/incidents/{id}/affected.csv", get(incident::affected_csv))
        .route("/console/incidents/{id}/attribute", post(incident::attribute))
        .route("/console/incidents/{id}/protect", post(incident::protect))
        .route("/console/incidents/{id}/notify", post(incident::notify))
        .route("/console/incidents/{id}/report", get(incident::report))
        .route("/console/me", get(customer::home))
        .route("/console/me/receipts/check", post(customer::check))
        .route("/console/me/receipts/{index}", get(customer::receipt))
        .route("/console/ledger/consistency/{old}/{new}", get(customer::consistency))
        .route("/console/static/console.css", get(stylesheet))
        .route("/console/static/receipt.js", get(|| async { script(RECEIPT_SCRIPT) }))
        .route("/console/static/sample.js", get(|| async { script(SAMPLE_SCRIPT) }))
        .layer(middleware::from_fn(headers))
}

/// What every console response carries: a policy that runs no inline script and loads
/// nothing from elsewhere, no framing, no referrer, and no caching of any page.
async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'",
        ),
    );
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=300")], STYLESHEET)
        .into_response()
}

/// One of the console's scripts (static files in the binary; no inline script anywhere).
fn script(text: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=300")], text)
        .into_response()
}

/// The value of cookie `name` in a request's `Cookie` headers.
fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
}

/// The request id the API's middleware gave this request.
fn request_id(parts: &Parts) -> String {
    parts
        .extensions
        .get::<crate::routes::RequestId>()
        .map(|id| id.0.clone())
        .unwrap_or_else(crate::routes::random_request_id)
}

/// A signed-in person: the claims to act with (carrying the session's code) and the session.
pub(crate) struct Signed {
    /// The cookie's secret: only sign-out needs it.
    secret: String,
    pub(crate) claims: Claims,
    pub(crate) session: ConsoleSession,
    pub(crate) request: String,
}

impl Signed {
    /// Whether a posted form carries this session's CSRF token.
    pub(crate) fn check_csrf(&self, posted: &str) -> Result<(), Refusal> {
        let expected = self.session.csrf.as_bytes();
        let posted = posted.as_bytes();
        // Compared in constant time: the token is a secret of the session.
        let same = expected.len() == posted.len()
            && expected.iter().zip(posted).fold(0u8, |differ, (a, b)| differ | (a ^ b)) == 0;
        if same {
            Ok(())
        } else {
            Err(Refusal {
                status: StatusCode::FORBIDDEN,
                message: "This form is out of date or was not sent from this console. Go back, reload the page and \
                          try again.",
            })
        }
    }
}

impl FromRequestParts<Arc<AppState>> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Signed, Response> {
        let request = request_id(parts);
        let Some(secret) = cookie(parts, SESSION_COOKIE).filter(|secret| !secret.is_empty()) else {
            return Err(Redirect::to("/console/login").into_response());
        };
        match state.gateway.session_claims(secret, &request).await {
            Ok((claims, session)) => Ok(Signed { secret: secret.to_string(), claims, session, request }),
            Err(GatewayError::Unauthenticated(why)) => Err((
                clear_session(state),
                render(&Login {
                    problem: Some(why),
                    nonce: String::new(),
                    sso: state.gateway.oidc_console_client().is_some(),
                }),
            )
                .into_response()),
            Err(error) => Err(gateway_problem(error)),
        }
    }
}

/// A form posted by a signed-in person, its CSRF token checked. Every console route that
/// changes anything takes one (as its last argument: it reads the body), so no form reaches a
/// gateway call without the check.
pub(crate) struct Posted {
    pub(crate) signed: Signed,
    /// The form's fields in order, repeated names kept (a reveal's fields).
    pub(crate) fields: Vec<(String, String)>,
}

impl axum::extract::FromRequest<Arc<AppState>> for Posted {
    type Rejection = Response;

    async fn from_request(request: Request, state: &Arc<AppState>) -> Result<Posted, Response> {
        let (mut parts, body) = request.into_parts();
        let signed = Signed::from_request_parts(&mut parts, state).await?;
        let request = Request::from_parts(parts, body);
        let axum::Form(fields) =
            axum::Form::<Vec<(String, String)>>::from_request(request, state).await.map_err(|_| {
                Refusal {
                    status: StatusCode::BAD_REQUEST,
                    message: "The form could not be read; reload the page and try again.",
                }
                .into_response()
            })?;
        signed.check_csrf(field(&fields, "csrf")).map_err(IntoResponse::into_response)?;
        Ok(Posted { signed, fields })
    }
}

/// The first value of field `name` of a posted form, or nothing.
pub(crate) fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields.iter().find(|(key, _)| key == name).map_or("", |(_, value)| value.as_str())
}

/// A console cookie: `HttpOnly` and `SameSite=Strict` always, `Secure` when the server speaks
/// HTTPS (a browser then never sends it in the clear).
fn set_cookie(
    state: &AppState,
    name: &str,
    value: &str,
    path: &str,
    max_age: Option<u32>,
) -> [(header::HeaderName, String); 1] {
    let mut cookie = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Strict");
    if let Some(seconds) = max_age {
        cookie.push_str(&format!("; Max-Age={seconds}"));
    }
    if state.tls {
        cookie.push_str("; Secure");
    }
    [(header::SET_COOKIE, cookie)]
}

/// A browser just signed in: its session cookie, and on to `landing`.
fn signed_in(state: &AppState, secret: &str, landing: &str) -> Response {
    (signed_in_cookie(state, secret), Redirect::to(landing)).into_response()
}

/// The session cookie of a browser that just signed in.
fn signed_in_cookie(state: &AppState, secret: &str) -> [(header::HeaderName, String); 1] {
    set_cookie(state, SESSION_COOKIE, secret, "/console", None)
}

/// Forgets the session cookie in the browser.
fn clear_session(state: &AppState) -> [(header::HeaderName, String); 1] {
    set_cookie(state, SESSION_COOKIE, "", "/console", Some(0))
}

/// A request the console turns down, as the page it shows.
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    pub(crate) message: &'static str,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        render_problem(self.status, self.message)
    }
}

/// A page that says what went wrong, in words.
pub(crate) fn render_problem(status: StatusCode, message: &str) -> Response {
    (status, render(&Problem { message: printable(message) })).into_response()
}

/// `text` with its control characters written out (`\u{1b}`): an error can quote what the
/// caller sent, and the page shows it, never acts on it. (The templates escape HTML.)
pub(crate) fn printable(text: &str) -> String {
    text.chars()
        .map(|letter| if letter.is_control() { letter.escape_default().to_string() } else { letter.to_string() })
        .collect()
}

/// A gateway error as a page: refusals say why; internal faults say only that they happened
/// (the API's problem logs them).
pub(crate) fn gateway_problem(error: GatewayError) -> Response {
    let message = match &error {
        GatewayError::Store(_) | GatewayError::Internal(_) | GatewayError::AuditUnavailable(_) => {
            "cordon could not do this now, and nothing was shown. Try again; tell the operators if it persists."
                .to_string()
        }
        other => other.to_string(),
    };
    let problem = crate::problem::Problem::from(error);
    render_problem(problem.status, &message)
}

async fn login_page(State(state): State<Arc<AppState>>) -> Response {
    let nonce = match nonce() {
        Ok(nonce) => nonce,
        Err(refused) => return refused.into_response(),
    };
    (
        set_cookie(&state, LOGIN_COOKIE, &nonce, "/console/login", Some(600)),
        render(&Login { problem: None, nonce, sso: state.gateway.oidc_console_client().is_some() }),
    )
        .into_response()
}

fn nonce() -> Result<String, Refusal> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|_| Refusal {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message: "The server has no random source now; try again shortly.",
    })?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

#[derive(serde::Deserialize)]
pub(crate) struct LoginForm {
    token: String,
    nonce: String,
}

async fn login(
    State(state): State<Arc<AppState>>,
    parts: Parts,
    form: Result<axum::Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(axum::Form(form)) = form else {
        return render_problem(
            StatusCode::BAD_REQUEST,
            "The sign-in form was not filled in: paste a token and sign in.",
        );
    };
    // Only the console's own form signs in (its nonce is in a SameSite cookie), so another
    // site cannot sign a browser in under someone else's token.
    if cookie(&parts, LOGIN_COOKIE).is_none_or(|nonce| nonce != form.nonce || nonce.is_empty()) {
        return render_problem(StatusCode::FORBIDDEN, "Sign in from the console's own sign-in page.");
    }
    let request = request_id(&parts);
    match state.gateway.start_session(form.token.trim(), &request).await {
        Ok(started) => signed_in(&state, &started.secret, "/console/"),
        // Refusals of the person (a bad or expired token, a service's, a suspended agent's)
        // come back to the form, in words.
        Err(
            error @ (GatewayError::Unauthenticated(_)
            | GatewayError::WrongRole { .. }
            | GatewayError::Denied { .. }
            | GatewayError::Conflict(_)),
        ) => {
            let nonce = nonce().unwrap_or_default();
            (
                StatusCode::UNAUTHORIZED,
                set_cookie(&state, LOGIN_COOKIE, &nonce, "/console/login", Some(600)),
                render(&Login {
                    problem: Some(error.to_string()),
                    nonce,
                    sso: state.gateway.oidc_console_client().is_some(),
                }),
            )
                .into_response()
        }
        Err(error) => gateway_problem(error),
    }
}

/// One-click sign-in on a demo's server (simulated data); elsewhere there is no such page.
async fn demo_sign_in(
    State(state): State<Arc<AppState>>,
    parts: Parts,
    axum::extract::Path(label): axum::extract::Path<String>,
) -> Response {
    let Some(link) = state.demo_sign_in.get(&label) else {
        return render_problem(StatusCode::NOT_FOUND, "One-click sign-in is only on a server `cordon demo` started.");
    };
    let token = match &link.identity {
        crate::routes::DemoIdentity::Agent(agent) => state.gateway.issue_agent_token(agent),
        crate::routes::DemoIdentity::Role(role) => state.gateway.issue_role_token(*role),
        crate::routes::DemoIdentity::Customer(customer) => state.gateway.issue_customer_token(customer),
    };
    let started = match token {
        Ok(token) => state.gateway.start_session(&token, &request_id(&parts)).await,
        Err(error) => Err(error),
    };
    match started {
        Ok(started) => signed_in(&state, &started.secret, &link.landing),
        Err(error) => gateway_problem(error),
    }
}

async fn logout(State(state): State<Arc<AppState>>, Posted { signed, .. }: Posted) -> Response {
    match state.gateway.end_session(&signed.secret, &signed.request).await {
        Ok(()) => (clear_session(&state), Redirect::to("/console/login")).into_response(),
        Err(error) => gateway_problem(error),
    }
}

/// The API's bound on heavy work (`routes::heavy`: blocking threads, two at a time), its
/// refusals as pages.
pub(crate) async fn heavy_page<T, F, Fut>(state: &Arc<AppState>, work: F) -> Result<T, Response>
where
    F: FnOnce(Arc<AppState>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, GatewayError>>,
    T: Send + 'static,
{
    crate::routes::heavy(state, work).await.map_err(|problem| render_problem(problem.status, &problem.detail))
}

/// The page layout's facts: who is signed in and the watermark they see.
pub(crate) fn page(signed: &Signed, title: &str) -> Page {
    Page::new(title, &signed.claims.sub, signed.claims.role.name(), &signed.session.code, &signed.session.csrf)
}
