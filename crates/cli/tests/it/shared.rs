//! Two `cordon serve` on one PostgreSQL server of the test's own, through failures: one
//! gateway killed under load (the other serves on, no acknowledged entry is lost, and the
//! integrator's work passes to the survivor), then the database stopped (requests answer 503
//! `audit-unavailable`, readiness goes down) and started again (both recover by themselves).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cordon_testpg::TestCluster;
use serde_json::{Value, json};

use crate::support::{http, run, start_server, try_http};

/// A server stopped (killed) when the test ends, pass or fail: a failed assertion must not
/// leave it running, holding the test database.
struct Running(Option<std::process::Child>);

impl Running {
    fn kill(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_for(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < deadline, "{what} did not happen within {deadline:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn exported(url: &str, into: &std::path::Path) -> Vec<Value> {
    let (ok, out, err) = run(&["log", "export", "--store", url, "--out", &into.display().to_string()]);
    assert!(ok, "{out}{err}");
    let (ok, entries, err) = run(&["log", "entries", &into.display().to_string()]);
    assert!(ok, "{err}");
    entries.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

#[test]
fn gateways_ride_out_a_killed_gateway_and_a_stopped_database() {
    let cluster = TestCluster::start().unwrap();
    let url = cluster.url();
    let scratch = tempfile::tempdir().unwrap();
    let first_data = scratch.path().join("first").display().to_string();
    let second_data = scratch.path().join("second").display().to_string();
    let (ok, admin, err) = run(&["init", &first_data, "--store", &url]);
    assert!(ok, "{err}");
    let admin = admin.trim().to_string();
    let verifier = err.lines().find_map(|line| line.strip_prefix("audit ledger verifier key: ")).unwrap().to_string();
    assert!(std::process::Command::new("cp").args(["-a", &first_data, &second_data]).status().unwrap().success());
    let (first, first_address, first_log) = start_server(&first_data);
    let mut first = Running(Some(first));
    let (second, second_address, second_log) = start_server(&second_data);
    let second = Running(Some(second));

    let put = |address: &str, path: &str, body: Value| {
        let (status, answer) = http(address, "PUT", path, Some(&admin), Some(&body));
        assert_eq!(status, 200, "{path}: {answer}\n{}", first_log.lock().unwrap());
    };
    put(
        &first_address,
        "/v1/agents/agt-1",
        json!({"name": "A", "team": "l1-chat", "site": "us-sf", "employer": "staff"}),
    );
    put(
        &second_address,
        "/v1/customers/cus-1",
        json!({"fields": {"full_name": "Nina Simone", "email": "nina@example.org"}}),
    );
    put(
        &first_address,
        "/v1/tickets/t-1",
        json!({"requester": "cus-1", "category": "general_inquiry", "assignee": "agt-1"}),
    );
    let (ok, agent, err) = run(&["token", "issue", "--data", &first_data, "--agent", "agt-1"]);
    assert!(ok, "{err}");
    let agent = agent.trim().to_string();

    // Load on both gateways, each acknowledged card remembered with its ledger index.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged: Arc<Mutex<Vec<u64>>> = Arc::default();
    let served_by_second_after_kill = Arc::new(Mutex::new(0u64));
    let killed = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|worker| {
            let (stop, acknowledged, killed, after) = (
                Arc::clone(&stop),
                Arc::clone(&acknowledged),
                Arc::clone(&killed),
                Arc::clone(&served_by_second_after_kill),
            );
            let (addresses, agent) = ([first_address.clone(), second_address.clone()], agent.clone());
            std::thread::spawn(move || {
                let mut turn = worker;
                while !stop.load(Ordering::Acquire) {
                    turn += 1;
                    let address = &addresses[turn % 2];
                    let was_killed = killed.load(Ordering::Acquire);
                    if let Some((200, card)) =
                        try_http(address, "GET", "/v1/customers/cus-1?ticket=t-1", Some(&agent), None)
                    {
                        acknowledged.lock().unwrap().push(card["ledger_index"].as_u64().unwrap());
                        if was_killed && turn % 2 == 1 {
                            *after.lock().unwrap() += 1;
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let before_kill = acknowledged.lock().unwrap().len();
    assert!(before_kill > 20, "the load ran: {before_kill}");
    first.kill();
    killed.store(true, Ordering::Release);
    std::thread::sleep(Duration::from_millis(2000));
    stop.store(true, Ordering::Release);
    for worker in workers {
        worker.join().unwrap();
    }
    let served_after = *served_by_second_after_kill.lock().unwrap();
    assert!(served_after > 20, "the second gateway served on alone: {served_after}");

    // Every acknowledged card is in the ledger, at its index, once; the survivor integrates
    // (the killed one held the integrator's lock) and its checkpoint covers them all.
    let acknowledged = acknowledged.lock().unwrap().clone();
    let last = *acknowledged.iter().max().unwrap();
    wait_for("a checkpoint covering every acknowledged entry", Duration::from_secs(30), || {
        let (_, checkpoint) = http(&second_address, "GET", "/log/checkpoint", None, None);
        let size = checkpoint.as_str().and_then(|note| note.lines().nth(1)?.parse::<u64>().ok()).unwrap_or(0);
        size > last
    });
    let entries = exported(&url, &scratch.path().join("export-1"));
    let mut indexes = acknowledged.clone();
    indexes.sort_unstable();
    indexes.dedup();
    assert_eq!(indexes.len(), acknowledged.len(), "no index was acknowledged twice");
    for index in &acknowledged {
        let entry = &entries[*index as usize];
        assert_eq!(
            (entry["agent"].as_str(), entry["action"].as_str(), entry["customer"].as_str()),
            (Some("agt-1"), Some("view"), Some("cus-1")),
            "entry {index}: {entry}"
        );
    }
    let export = scratch.path().join("export-1").display().to_string();
    let (ok, verified, err) = run(&["log", "verify", &export, "--vkey", &verifier]);
    assert!(ok, "{verified}{err}");

    // The database stops: the survivor refuses in words and is not ready; started again,
    // it recovers by itself.
    cluster.stop().unwrap();
    let (status, problem) = http(&second_address, "GET", "/v1/customers/cus-1?ticket=t-1", Some(&agent), None);
    assert_eq!(status, 503, "{problem}");
    assert!(problem["type"].as_str().unwrap_or_default().ends_with("audit-unavailable"), "{problem}");
    wait_for("readiness down", Duration::from_secs(15), || {
        http(&second_address, "GET", "/readyz", None, None).0 == 503
    });
    cluster.start_again().unwrap();
    wait_for("readiness back", Duration::from_secs(30), || {
        http(&second_address, "GET", "/readyz", None, None).0 == 200
    });
    let (status, card) = http(&second_address, "GET", "/v1/customers/cus-1?ticket=t-1", Some(&agent), None);
    assert_eq!(status, 200, "{card}");
    let index = card["ledger_index"].as_u64().unwrap();
    assert!(index > last, "after everything acknowledged before: {index}");
    let mut second = second;
    if let Some(child) = second.0.take() {
        crate::support::stop_server(child);
    }
    let log = second_log.lock().unwrap().clone();
    assert!(!log.contains("panicked"), "{log}");
}

/// Drops every packet to and from one loopback port while it lives (iptables), as a network
/// cut between a gateway and its database does: nothing is refused or reset, packets simply
/// go unanswered. The rules go with it, pass or fail.
struct Partition(u16);

impl Partition {
    fn cut(port: u16) -> Partition {
        for rule in Partition::rules(port) {
            let status = std::process::Command::new("iptables").arg("-I").args(&rule).status().unwrap();
            assert!(status.success(), "iptables -I {rule:?} (the test command installs iptables)");
        }
        Partition(port)
    }

    fn rules(port: u16) -> [Vec<String>; 2] {
        let port = port.to_string();
        let rule = |direction: &str| {
            ["INPUT", "-i", "lo", "-p", "tcp", direction, &port, "-j", "DROP"].map(str::to_string).to_vec()
        };
        [rule("--dport"), rule("--sport")]
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        for rule in Partition::rules(self.0) {
            let _ = std::process::Command::new("iptables").arg("-D").args(&rule).status();
        }
    }
}

/// A network cut between a gateway and PostgreSQL behaves as the database stopping does: the
/// gateway answers 503 `audit-unavailable` within seconds (its connections time out rather than
/// wait on the kernel), readiness goes down, and once the network is back it serves again by
/// itself.
#[test]
fn a_gateway_cut_off_from_its_database_refuses_and_comes_back() {
    let cluster = TestCluster::start().unwrap();
    let url = cluster.url();
    let scratch = tempfile::tempdir().unwrap();
    let data = scratch.path().join("gateway").display().to_string();
    let (ok, admin, err) = run(&["init", &data, "--store", &url]);
    assert!(ok, "{err}");
    let admin = admin.trim().to_string();
    let (server, address, log) = start_server(&data);
    let _server = Running(Some(server));
    for (path, body) in [
        ("/v1/agents/agt-1", json!({"name": "A", "team": "l1-chat", "site": "us-sf", "employer": "staff"})),
        ("/v1/customers/cus-1", json!({"fields": {"full_name": "Nina Simone", "email": "nina@example.org"}})),
        ("/v1/tickets/t-1", json!({"requester": "cus-1", "category": "general_inquiry", "assignee": "agt-1"})),
    ] {
        let (status, answer) = http(&address, "PUT", path, Some(&admin), Some(&body));
        assert_eq!(status, 200, "{path}: {answer}");
    }
    let (ok, agent, err) = run(&["token", "issue", "--data", &data, "--agent", "agt-1"]);
    assert!(ok, "{err}");
    let agent = agent.trim().to_string();
    let card = "/v1/customers/cus-1?ticket=t-1";
    assert_eq!(http(&address, "GET", card, Some(&agent), None).0, 200);

    let partition = Partition::cut(cluster.port());
    let started = Instant::now();
    let (status, problem) = http(&address, "GET", card, Some(&agent), None);
    let waited = started.elapsed();
    assert_eq!(status, 503, "{problem}");
    assert!(problem["type"].as_str().unwrap_or_default().ends_with("audit-unavailable"), "{problem}");
    assert!(waited < Duration::from_secs(20), "refused after {waited:?}: a cut network must not hold a request");
    wait_for("readiness down", Duration::from_secs(60), || http(&address, "GET", "/readyz", None, None).0 == 503);
    drop(partition);
    wait_for("readiness back", Duration::from_secs(60), || http(&address, "GET", "/readyz", None, None).0 == 200);
    let (status, answer) = http(&address, "GET", card, Some(&agent), None);
    assert_eq!(status, 200, "{answer}\n{}", log.lock().unwrap());
}

/// The same scenario simulated on PostgreSQL and on the embedded default writes the same
/// ledger, entry for entry (the same root): every decision, the harvester's alerts and its
/// suspension, in the same order; the exported one verifies. `cordon sim --store`.
#[test]
fn a_simulation_on_postgres_writes_the_embedded_ledger() {
    let database = cordon_testpg::TestDatabase::new().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let scenario = scratch.path().join("harvester.toml");
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/behaviour-harvester.toml"))
            .unwrap()
            .replace("days = 14", "days = 6")
            .replace("customers = 20000", "customers = 2000")
            .replace("agents = 60", "agents = 20")
            .replace("start_day = 2", "start_day = 1");
    std::fs::write(&scenario, text).unwrap();
    let ledger_line = |output: &str| output.lines().find(|line| line.starts_with("Ledger")).unwrap().to_string();
    let contained = |output: &str| output.lines().any(|line| line.contains("suspended on day"));
    let scenario = scenario.display().to_string();
    let on_postgres = scratch.path().join("postgres").display().to_string();
    let (ok, shared, err) = run(&["sim", "--scenario", &scenario, "--data", &on_postgres, "--store", &database.url()]);
    assert!(ok, "{err}");
    let embedded = scratch.path().join("embedded").display().to_string();
    let (ok, alone, err) = run(&["sim", "--scenario", &scenario, "--data", &embedded]);
    assert!(ok, "{err}");
    assert_eq!(ledger_line(&shared), ledger_line(&alone), "{shared}\n{alone}");
    assert!(contained(&shared) && contained(&alone), "the harvester is suspended on both: {shared}");
    let ledger = format!("{on_postgres}/ledger");
    let (ok, verified, err) = run(&["log", "verify", &ledger, "--vkey", &format!("{ledger}/private/verifier-key")]);
    assert!(ok, "{verified}{err}");
}
