//! What the console's card page costs beyond the API call it wraps (target: at most 2 ms).
//!
//! One data directory, one agent with a ticket for one customer, one console session. The
//! same card is asked for alternately through the API (`GET /v1/customers/{id}?ticket=`, a
//! bearer token, JSON) and through the console (`GET /console/customers/{id}?ticket=`, the
//! session cookie, HTML under the watermark), each through the whole router and the gateway,
//! its ledger entry durable before the answer. Every response is checked (status, and the
//! masked email in it). The difference of the medians is the session lookup and the page.
//!
//! Then the customer's own page (`/console/me`: the 100 newest of the customer's accesses, each
//! with its ticket's category and the agent's team) is timed beside the service role's
//! access-history call over the same index (`/v1/customers/{id}/access-history`, every access
//! as JSON), with the thousands of accesses the card rounds left; every response checked.
//!
//! Run: `cargo bench -p cordon-server --bench console` (`CORDON_BENCH_REQUESTS`, default 2,000
//! of each).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use cordon_gateway::{DataDir, SystemClock};
use cordon_server::{AppState, app};
use http_body_util::BodyExt as _;
use serde_json::json;
use tower::ServiceExt as _;

async fn send(
    state: &Arc<AppState>,
    method: Method,
    path: &str,
    auth: (&str, String),
    body: Option<String>,
) -> (StatusCode, String) {
    let mut request = Request::builder().method(method).uri(path).header(auth.0, auth.1);
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let request = request.body(body.map(Body::from).unwrap_or_else(Body::empty)).unwrap();
    let response = app(Arc::clone(state)).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn percentile(times: &[f64], share: f64) -> f64 {
    times[((times.len() as f64 * share) as usize).min(times.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let requests: usize =
        std::env::var("CORDON_BENCH_REQUESTS").ok().map_or(2_000, |text| text.replace('_', "").parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::new(&dir.path().join("data"));
    let made = data.init(None, Arc::new(SystemClock)).unwrap();
    let state = Arc::new(AppState::new(data.open(Arc::new(SystemClock)).unwrap()));
    let admin = ("authorization", format!("Bearer {}", made.admin_token));
    for (path, body) in [
        (
            "/v1/customers/cus-1",
            json!({"fields": {"full_name": "Nina Simone", "email": "nina@example.org", "phone": "+353 86 555 0199", "balance_usd": 10.0}}),
        ),
        ("/v1/agents/agt-1", json!({"name": "A", "team": "l1-chat", "site": "us-sf", "employer": "staff"})),
        ("/v1/tickets/t-1", json!({"requester": "cus-1", "category": "two_factor_reset", "assignee": "agt-1"})),
    ] {
        let (status, answer) = send(&state, Method::PUT, path, admin.clone(), Some(body.to_string())).await;
        assert!(status.is_success(), "{path}: {status} {answer}");
    }
    let token = state.gateway.issue_agent_token("agt-1").unwrap();
    let session = state.gateway.start_session(&token, "bench").await.unwrap();
    let bearer = ("authorization", format!("Bearer {token}"));
    let cookie = ("cookie", format!("cordon_session={}", session.secret));
    let api_path = "/v1/customers/cus-1?ticket=t-1";
    let console_path = "/console/customers/cus-1?ticket=t-1";

    let (mut api, mut console) = (Vec::with_capacity(requests), Vec::with_capacity(requests));
    // A few of each first, so both start warm.
    for round in 0..requests + 20 {
        let started = Instant::now();
        let (status, body) = send(&state, Method::GET, api_path, bearer.clone(), None).await;
        let api_ms = started.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains("\"email\"") && body.contains('*'), "{body}");
        let started = Instant::now();
        let (status, body) = send(&state, Method::GET, console_path, cookie.clone(), None).await;
        let console_ms = started.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains("data-watermark=\"agt-1 ") && body.contains("data-field=\"email\""), "{body}");
        if round >= 20 {
            api.push(api_ms);
            console.push(console_ms);
        }
    }
    let (api_median, console_median) = (median(&mut api), median(&mut console));
    println!(
        "machine: {} cores; {requests} card requests each way, alternating",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("API card (bearer token, JSON):        median {api_median:.3} ms, p99 {:.3} ms", percentile(&api, 0.99));
    println!(
        "console card (session cookie, HTML):  median {console_median:.3} ms, p99 {:.3} ms",
        percentile(&console, 0.99)
    );
    let beyond = console_median - api_median;
    println!("the console's page costs {beyond:.3} ms beyond the API call it wraps (target: at most 2 ms)");

    // The customer's page beside the service's history call, over the accesses made above.
    let service = state.gateway.issue_role_token(cordon_gateway::TokenRole::Service).unwrap();
    let service = ("authorization", format!("Bearer {service}"));
    let customer = state.gateway.issue_customer_token("cus-1").unwrap();
    let customer = state.gateway.start_session(&customer, "bench").await.unwrap();
    let customer = ("cookie", format!("cordon_session={}", customer.secret));
    let rounds = (requests / 10).max(20);
    let (mut history, mut page) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    let mut accesses = 0;
    for round in 0..rounds + 5 {
        let started = Instant::now();
        let (status, body) =
            send(&state, Method::GET, "/v1/customers/cus-1/access-history", service.clone(), None).await;
        let history_ms = started.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(status, StatusCode::OK, "{body}");
        accesses = body.matches("\"ledger_index\"").count();
        assert!(accesses >= 2 * requests, "the history holds every card: {accesses}");
        let started = Instant::now();
        let (status, body) = send(&state, Method::GET, "/console/me", customer.clone(), None).await;
        let page_ms = started.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body.matches("<tr data-entry=").count(), 100, "a full page of accesses");
        assert!(body.contains("Your support request about two factor reset") && body.contains("l1-chat team"));
        if round >= 5 {
            history.push(history_ms);
            page.push(page_ms);
        }
    }
    println!(
        "service's access history ({accesses} accesses, JSON): median {:.3} ms, p99 {:.3} ms",
        median(&mut history),
        percentile(&history, 0.99)
    );
    println!(
        "customer's page (the 100 newest, HTML):        median {:.3} ms, p99 {:.3} ms ({rounds} each, alternating)",
        median(&mut page),
        percentile(&page, 0.99)
    );
    if beyond > 2.0 {
        eprintln!("the card page is over the target");
        std::process::exit(1);
    }
}
