//! `--http`: the simulator drives a real server over a socket, and the server's ledger
//! records what the ground truth says happened.

use std::collections::BTreeMap;
use std::sync::Arc;

use cordon_gateway::{DataDir, SystemClock};
use cordon_server::AppState;
use cordon_sim::{HttpTarget, run, run_over_http};

use crate::support::{ledger_entries, scenario};

const SCENARIO: &str = "name = \"http\"\nseed = 11\nstart = \"2026-04-06\"\ndays = 3\ncustomers = 600\ncanaries = 3\n\
    agents = 20\npolicy = \"default\"\ndetection = false\n[traffic]\ntickets_per_agent_day = 3\n\
    [[insider]]\nbehaviour = \"harvester\"\nstart_day = 1\ncustomers_per_day = 25\n";

/// A server on an ephemeral port over a fresh data directory; dropping the runtime closes it.
struct Server {
    runtime: tokio::runtime::Runtime,
    url: String,
    admin_token: String,
    data: std::path::PathBuf,
}

fn serve(dir: &std::path::Path) -> Server {
    let data = dir.join("server");
    let made = DataDir::new(&data).init(None, Arc::new(SystemClock)).unwrap();
    // The server's clock is real time, so a simulated week lands in minutes; detection,
    // which counts per day, would judge it differently from the in-process run compared here.
    let mut config = DataDir::new(&data).config().unwrap();
    config.detection.enabled = false;
    std::fs::write(data.join("cordon.toml"), config.to_toml().unwrap()).unwrap();
    let gateway = DataDir::new(&data).open(Arc::new(SystemClock)).unwrap();
    let state = Arc::new(AppState::new(gateway));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    runtime.spawn(cordon_server::serve(state, listener));
    Server { runtime, url, admin_token: made.admin_token, data }
}

#[test]
fn a_run_over_http_lands_in_the_servers_ledger_as_the_truth_says() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path());
    let scenario = scenario(SCENARIO);
    let target = HttpTarget::new(&server.url, &server.admin_token).unwrap();
    let truth_path = dir.path().join("truth.json");
    let (report, truth) = run_over_http(&scenario, &target, &truth_path, &mut |_, _, _| {}).unwrap();
    let Server { runtime, data, .. } = server;
    // Dropping the server's tasks closes the gateway, which publishes the final checkpoint.
    runtime.shutdown_timeout(std::time::Duration::from_secs(10));
    let (entries, _) = ledger_entries(&data);

    let changes = |change: &str| entries.iter().filter(|entry| entry["change"] == change).count();
    assert_eq!(changes("customer.put"), 600, "every customer was put over HTTP");
    let minted: std::collections::BTreeSet<&str> = entries
        .iter()
        .filter(|entry| entry["change"] == "token.issue")
        .filter_map(|entry| entry["target"].as_str())
        .collect();
    let acting: std::collections::BTreeSet<&str> =
        entries.iter().filter(|entry| entry["kind"] == "access").filter_map(|entry| entry["agent"].as_str()).collect();
    assert!(!acting.is_empty() && acting.is_subset(&minted), "each acting agent's token was minted through the API");
    // Each planned request is one entry: an access, a ticket put, or a new hire's agent put.
    let accesses = entries.iter().filter(|entry| entry["kind"] == "access").count();
    let founding_staff = cordon_sim::agents(&scenario).iter().filter(|agent| agent.joins_day == 0).count();
    let planned = accesses + changes("ticket.put") + changes("agent.put") - founding_staff;
    assert_eq!(planned as u64, report.requests);

    // Every malicious request the truth names is one entry of the insider's in the server's ledger.
    let insider = &truth.insiders[0];
    assert!(!insider.malicious_requests.is_empty());
    let by_request: BTreeMap<&str, &serde_json::Value> =
        entries.iter().filter_map(|entry| Some((entry["request"].as_str()?, entry))).collect();
    for request in &insider.malicious_requests {
        let entry =
            by_request.get(request.as_str()).unwrap_or_else(|| panic!("request {request} is not in the ledger"));
        assert_eq!(entry["agent"], insider.agent.as_str(), "{entry}");
    }
    assert_eq!(std::fs::read_to_string(&truth_path).unwrap(), serde_json::to_string_pretty(&truth).unwrap());

    // The same plan as in process: the insider makes the same number of moves.
    let local = dir.path().join("local");
    run(&scenario, &local, &mut |_, _, _| {}).unwrap();
    let in_process = cordon_sim::read_truth(&local).unwrap();
    assert_eq!(in_process.insiders[0].agent, insider.agent);
    assert_eq!(in_process.insiders[0].malicious_requests.len(), insider.malicious_requests.len());
}

#[test]
fn bad_targets_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path());
    let scenario = scenario(SCENARIO);
    let truth = dir.path().join("truth.json");
    let agent_token =
        DataDir::new(&server.data).issue_token(None, Some(cordon_gateway::TokenRole::Service), &SystemClock).unwrap();
    let cases: [(&str, &str, &str, &str); 4] = [
        ("https is for a proxy", "https://127.0.0.1:1", "token", "http://HOST:PORT"),
        ("no port", "http://localhost", "token", "http://HOST:PORT"),
        ("two tokens", &server.url, "a b", "one bearer token"),
        ("not an admin", &server.url, &agent_token, "putting the scenario's staff"),
    ];
    for (what, url, token, fragment) in cases {
        let message = match HttpTarget::new(url, token) {
            Err(error) => error.to_string(),
            Ok(target) => run_over_http(&scenario, &target, &truth, &mut |_, _, _| {}).unwrap_err().to_string(),
        };
        assert!(message.contains(fragment), "{what}: `{message}` should contain `{fragment}`");
    }
    assert!(!truth.exists(), "a failed run writes no truth");
}
