//! The incident responder works during the incident: with `cordon serve` holding the data
//! directory, every incident and alert command reaches the server through its API (the
//! exports read the published log beside it) and gives the same answers as when it opens the
//! directory itself.

use std::path::Path;

use crate::support::{run, start_server, stop_server};

const SCENARIO: &str = r#"
name = "incident-served"
seed = 11
start = "2026-03-02"
days = 5
customers = 3000
canaries = 5
agents = 30
policy = "permissive"
detection = false
[[insider]]
behaviour = "harvester"
start_day = 1
customers_per_day = 20
"#;

fn succeed(arguments: &[&str]) -> (String, String) {
    let (ok, stdout, stderr) = run(arguments);
    assert!(ok, "cordon {arguments:?} failed:\n{stdout}\n{stderr}");
    (stdout, stderr)
}

#[test]
fn incident_commands_answer_while_the_server_runs_and_agree_with_the_stopped_directory() {
    let work = tempfile::tempdir().unwrap();
    let scenario = work.path().join("scenario.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let dir = work.path().join("demo");
    let data = dir.to_str().unwrap();
    succeed(&["demo", data, "--no-serve", "--scenario", scenario.to_str().unwrap()]);
    let sample = dir.join("leaked-sample.csv");
    let sample = sample.to_str().unwrap();
    let file = |name: &str| work.path().join(name).display().to_string();

    let (server, _address, _log) = start_server(data);
    assert!(Path::new(data).join("served-at").exists(), "the server records where it answers");
    let (id, stderr) = succeed(&["incident", "open", "--data", data, "--title", "extortion email"]);
    assert!(stderr.contains("is served by http://127.0.0.1:"), "{stderr}");
    let id = id.trim().to_string();
    let (listed, _) = succeed(&["incident", "list", "--data", data]);
    assert!(listed.contains(&id) && listed.contains("extortion email"), "{listed}");
    succeed(&["incident", "status", &id, "--data", data, "--set", "extortion_demand=received, not paid"]);
    // An honest agent reveals a customer in the sample while the server runs: the
    // server's null model takes the change in without a rebuild, and must answer as a model
    // built afresh from the stopped directory does (compared below).
    let first: serde_json::Value = {
        succeed(&["incident", "attribute", &id, "--data", data, "--sample", sample, "--json", &file("before.json")]);
        serde_json::from_str(&std::fs::read_to_string(file("before.json")).unwrap()).unwrap()
    };
    let customer = first["agents"][0]["evidence"][0]["customer"].as_str().unwrap().to_string();
    let honest = "agt-0001";
    assert!(first["agents"][0]["agent"] != honest);
    let (token, _) = succeed(&["token", "issue", "--data", data, "--agent", honest]);
    // Every column the sample shows (name, email, phone), so the row is as this agent saw it.
    let body = serde_json::json!({"fields": ["full_name", "email", "phone"], "reason": "callback"});
    let (status, answer) = crate::support::http(
        &_address,
        "POST",
        &format!("/v1/customers/{customer}/reveal"),
        Some(token.trim()),
        Some(&body),
    );
    assert_eq!(status, 200, "{answer}");
    succeed(&[
        "incident",
        "attribute",
        &id,
        "--data",
        data,
        "--sample",
        sample,
        "--json",
        &file("served-attribution.json"),
    ]);
    let (served_scope, _) = succeed(&[
        "incident",
        "scope",
        &id,
        "--data",
        data,
        "--csv",
        &file("served.csv"),
        "--json",
        &file("served.json"),
    ]);
    let (attribution, _) = succeed(&["incident", "attribute", &id, "--data", data, "--sample", sample]);
    assert!(attribution.contains("blamed: agt-"), "{attribution}");
    let (protect, _) = succeed(&["incident", "protect", &id, "--data", data, "--apply"]);
    assert!(protect.contains("actions recorded now"), "{protect}");
    let (folder, _) = succeed(&["incident", "notify", &id, "--data", data]);
    assert!(Path::new(folder.trim()).is_dir(), "{folder}");
    let (report, _) = succeed(&["incident", "report", &id, "--data", data, "--out", &file("report")]);
    let markdown = std::fs::read_to_string(report.trim()).unwrap();
    assert!(markdown.contains("| Extortion demand | received, not paid |"), "{markdown}");
    succeed(&["incident", "evidence", &id, "--data", data, "--out", &file("evidence.tar")]);
    succeed(&["log", "verify-bundle", &file("evidence.tar")]);
    // The analyst's alert commands reach the server too.
    let (served_alerts, stderr) = succeed(&["alert", "list", "--data", data]);
    assert!(stderr.contains("is served by"), "{stderr}");
    // (Detection is off in this scenario: the board is empty, and must still answer.)
    succeed(&["alert", "board", "--data", data, "--limit", "5"]);
    let (replay, stderr) = succeed(&["alert", "replay", "--data", data]);
    assert!(stderr.contains("is served by"), "{stderr}");
    assert!(replay.contains("the replay raises exactly the ledger's alerts"), "{replay}");
    // The Parquet export reads the published log beside the server, through its own record.
    let (_, served_export) = succeed(&["export", "parquet", "--data", data, "--out", &file("served.parquet")]);
    assert!(served_export.contains("of the ledger's first"), "{served_export}");
    let (shown, _) = succeed(&["incident", "show", &id, "--data", data]);
    for step in ["regulator report prepared", "evidence bundle", "protective actions recorded"] {
        assert!(shown.contains(step), "{step}: {shown}");
    }
    // A `served-at` naming a listener that is not this directory's server (a stale file, a
    // port taken since) gets no token: the command checks the signed checkpoint first.
    let impostor = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let impostor_address = impostor.local_addr().unwrap();
    let heard = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let ears = std::sync::Arc::clone(&heard);
    std::thread::spawn(move || {
        for stream in impostor.incoming().flatten() {
            let mut stream = stream;
            let mut buffer = [0u8; 4096];
            let read = std::io::Read::read(&mut stream, &mut buffer).unwrap_or(0);
            ears.lock().unwrap().push_str(&String::from_utf8_lossy(&buffer[..read]));
            let _ = std::io::Write::write_all(&mut stream, b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        }
    });
    let served_at = Path::new(data).join("served-at");
    let genuine = std::fs::read_to_string(&served_at).unwrap();
    std::fs::write(&served_at, format!("http://{impostor_address}\n")).unwrap();
    let (ok, _, stderr) = run(&["incident", "list", "--data", data]);
    assert!(!ok && stderr.contains("not sending it a token"), "{stderr}");
    let heard = heard.lock().unwrap().clone();
    assert!(heard.contains("GET /v1/ledger/checkpoint"), "{heard}");
    assert!(!heard.to_lowercase().contains("authorization"), "the impostor got a token: {heard}");
    std::fs::write(&served_at, genuine).unwrap();

    stop_server(server);
    assert!(!Path::new(data).join("served-at").exists(), "a stopped server leaves no address behind");

    // Stopped, the directory is opened directly, and the scope is the same document.
    let (stopped_scope, stderr) = succeed(&[
        "incident",
        "scope",
        &id,
        "--data",
        data,
        "--csv",
        &file("stopped.csv"),
        "--json",
        &file("stopped.json"),
    ]);
    assert!(!stderr.contains("is served by"), "{stderr}");
    assert_eq!(stopped_scope, served_scope);
    assert_eq!(succeed(&["alert", "list", "--data", data]).0, served_alerts);
    // No access came after the served export: the same access events, counted the same.
    let (_, stopped_export) = succeed(&["export", "parquet", "--data", data, "--out", &file("stopped.parquet")]);
    let events = |said: &str| {
        said.lines()
            .find(|line| line.contains("access events written"))
            .and_then(|line| line.split_whitespace().next()?.parse::<u64>().ok())
    };
    assert!(events(&served_export).is_some_and(|count| count > 0), "{served_export}");
    assert_eq!(events(&served_export), events(&stopped_export), "{served_export} against {stopped_export}");
    assert_eq!(std::fs::read(file("stopped.csv")).unwrap(), std::fs::read(file("served.csv")).unwrap());
    assert_eq!(std::fs::read(file("stopped.json")).unwrap(), std::fs::read(file("served.json")).unwrap());
    succeed(&[
        "incident",
        "attribute",
        &id,
        "--data",
        data,
        "--sample",
        sample,
        "--json",
        &file("fresh-attribution.json"),
    ]);
    let read = |name: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(file(name)).unwrap()).unwrap()
    };
    let (served, fresh) = (read("served-attribution.json"), read("fresh-attribution.json"));
    for key in ["verdict", "blamed", "cover", "rows_explained_by_blamed", "agents_considered"] {
        assert_eq!(served[key], fresh[key], "{key}");
    }
    let agents = |answer: &serde_json::Value| -> Vec<(String, u64, u64, u64, f64)> {
        answer["agents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|agent| {
                (
                    agent["agent"].as_str().unwrap().to_string(),
                    agent["rows_explained"].as_u64().unwrap(),
                    agent["rows_as_shown"].as_u64().unwrap(),
                    agent["customers_ever_shown"].as_u64().unwrap(),
                    agent["chance"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    let (served_agents, fresh_agents) = (agents(&served), agents(&fresh));
    assert_eq!(served_agents.len(), fresh_agents.len());
    for (kept, afresh) in served_agents.iter().zip(&fresh_agents) {
        assert_eq!((&kept.0, kept.1, kept.2, kept.3), (&afresh.0, afresh.1, afresh.2, afresh.3));
        // The same model: the same chance but for the order of a product of floats.
        assert!((kept.4 - afresh.4).abs() <= 1e-9 * afresh.4.max(1e-300), "{kept:?} against {afresh:?}");
    }
    // The reveal is in both: the honest agent explains its row as shown.
    let row = served_agents.iter().find(|agent| agent.0 == honest).unwrap();
    assert!(row.2 >= 1, "{row:?}");
}
