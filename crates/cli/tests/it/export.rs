//! `cordon export ocsf` over a simulated exchange's ledger: one event per ledger entry (access
//! decisions, detection's alerts, changes, protective actions), every one valid against the
//! OCSF schema as an independent validator from PyPI reads it (scripts/ocsf/validate), and the
//! validator itself refuses broken events; a cursor resumes an export, and `--follow` feeds
//! a SIEM from the published log while the server runs.

use std::path::Path;
use std::process::Command;

use cordon_ledger::LogReader;
use serde_json::Value;

const SCENARIO: &str = r#"
name = "ocsf-test"
description = "a harvester on a small exchange, for the OCSF export"
seed = 11
start = "2026-03-02"
days = 3
customers = 800
canaries = 3
agents = 12
policy = "permissive"
[[insider]]
behaviour = "harvester"
start_day = 1
customers_per_day = 10
"#;

fn cordon(arguments: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_cordon")).args(arguments).output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The repository's OCSF validator, installing it on first use.
fn validate(file: &Path) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/ocsf/validate");
    let output = Command::new(script).arg(file).output().unwrap();
    (
        output.status.success(),
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)),
    )
}

/// Every entry the ledger's checkpoint covers, read without cordon's export code: from the
/// log's files, or from the PostgreSQL database at `store`.
fn ledger(data: &Path, store: Option<&str>) -> Vec<(u64, Value)> {
    let mut found = Vec::new();
    let mut keep = |index: u64, bytes: &[u8]| found.push((index, serde_json::from_slice::<Value>(bytes).unwrap()));
    match store {
        None => {
            let reader = LogReader::new(&data.join("ledger"));
            let size = reader.checkpoint().unwrap().checkpoint.size;
            reader
                .for_each_entry(0, size, |index, bytes| {
                    keep(index, bytes);
                    Ok(())
                })
                .unwrap();
        }
        Some(url) => {
            let reader = cordon_store::SharedLedger::open_reader(url).unwrap();
            let size = reader.checkpoint().unwrap().checkpoint.size;
            reader
                .for_each_entry(0, size, &mut |index, bytes| {
                    keep(index, bytes);
                    Ok(())
                })
                .unwrap();
        }
    }
    found
}

/// The ledger's access decisions: (index, time).
fn access_decisions(data: &Path, store: Option<&str>) -> Vec<(u64, i64)> {
    ledger(data, store)
        .into_iter()
        .filter(|(_, entry)| entry["kind"] == "access")
        .map(|(index, entry)| (index, entry["time_ms"].as_i64().unwrap()))
        .collect()
}

fn events(text: &str) -> Vec<Value> {
    text.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

/// On the store the suite runs on: the embedded default, or PostgreSQL (the ledger sequenced
/// through it; the incident commands and the export read it there).
#[test]
fn ocsf_export_is_valid_ocsf_and_covers_every_decision() {
    let work = tempfile::tempdir().unwrap();
    let scenario = work.path().join("scenario.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let data = work.path().join("data");
    let database = cordon_testpg::StoreUnderTest::from_environment().unwrap().database().unwrap();
    let url = database.as_ref().map(cordon_testpg::TestDatabase::url);
    let store = url.as_deref();
    let mut sim = vec!["sim", "--scenario", scenario.to_str().unwrap(), "--data", data.to_str().unwrap()];
    sim.extend(store.map(|url| ["--store", url]).into_iter().flatten());
    let (ok, _, errors) = cordon(&sim);
    assert!(ok, "{errors}");
    let decisions = access_decisions(&data, store);
    assert!(decisions.len() > 100, "the scenario made {} decisions", decisions.len());

    // Protective actions, so that Remediation Activity is exported and validated too.
    let (ok, incident, errors) = cordon(&["incident", "open", "--data", data.to_str().unwrap(), "--title", "leak"]);
    assert!(ok, "{errors}");
    let (ok, _, errors) =
        cordon(&["incident", "protect", incident.trim(), "--data", data.to_str().unwrap(), "--apply"]);
    assert!(ok, "{errors}");
    let out = work.path().join("access.ocsf.jsonl");
    let (ok, _, errors) = cordon(&["export", "ocsf", "--data", data.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(ok, "{errors}");
    // Every entry, the export's own record among them (it is written first).
    let all = entries(&data, store);
    assert!(errors.contains(&format!("{} events written", all.len())), "{errors}");
    assert_eq!(all.last().map(|(.., change)| change.as_str()), Some("export.ocsf"), "the export is recorded last");
    let text = std::fs::read_to_string(&out).unwrap();
    let exported = events(&text);
    let sequences: Vec<u64> = exported.iter().map(|event| event["metadata"]["sequence"].as_u64().unwrap()).collect();
    let indexes: Vec<u64> = all.iter().map(|(index, ..)| *index).collect();
    assert_eq!(sequences, indexes, "one event per ledger entry, in ledger order");
    for (event, (_, time, kind, change)) in exported.iter().zip(&all) {
        assert_eq!(event["class_uid"].as_u64(), Some(class_of(kind, change)), "{event}");
        assert_eq!(event["time"].as_i64(), Some(*time), "{event}");
        if kind == "access" {
            assert!(event["actor"]["user"]["uid"].as_str().unwrap().starts_with("agt-"), "{event}");
        }
    }
    for class in [6003, 2004, 3004, 7001] {
        assert!(exported.iter().any(|event| event["class_uid"] == class), "no event of class {class}");
    }
    assert!(exported.iter().any(|event| event["class_uid"] == 2004 && event["finding_info"]["uid"].is_string()));
    let denied = exported.iter().filter(|event| event["status_id"] == 2).count();
    assert!(denied > 0, "the scenario's policy refuses some accesses, and they are exported as failures");

    let (valid, report) = validate(&out);
    assert!(valid, "{report}");
    assert!(report.contains(&format!("{} valid events; 0 problems", all.len())), "{report}");

    // The validator is not a rubber stamp: events broken in different ways are each refused.
    let accesses: Vec<&Value> = exported.iter().filter(|event| event["class_uid"] == 6003).collect();
    let mut broken = accesses[0].clone();
    broken.as_object_mut().unwrap().remove("actor");
    let mut unknown = accesses[1].clone();
    unknown["colour"] = "teal".into();
    let mut wrong_type = accesses[2].clone();
    wrong_type["type_uid"] = 600_303.into();
    let bad = work.path().join("bad.jsonl");
    std::fs::write(&bad, format!("{broken}\n{unknown}\n{wrong_type}\n{}\n", accesses[3])).unwrap();
    let (valid, report) = validate(&bad);
    assert!(!valid, "{report}");
    for fragment in [
        "bad.jsonl:1: (event): 'actor' is a required property",
        "bad.jsonl:2: (event): Additional properties are not allowed ('colour' was unexpected)",
        "bad.jsonl:3: type_uid is not class_uid * 100 + activity_id",
        "1 valid events; 3 problems",
    ] {
        assert!(report.contains(fragment), "`{fragment}` in:\n{report}");
    }

    // A window on standard output: the whole of 2026-03-03 (a date alone as --until is the
    // end of that day).
    let (ok, stdout, errors) =
        cordon(&["export", "ocsf", "--data", data.to_str().unwrap(), "--since", "2026-03-03", "--until", "2026-03-03"]);
    assert!(ok, "{errors}");
    let day = march_third();
    let expected: Vec<u64> =
        entries(&data, store).iter().filter(|(_, time, ..)| day.contains(time)).map(|(index, ..)| *index).collect();
    let windowed: Vec<u64> =
        events(&stdout).iter().map(|event| event["metadata"]["sequence"].as_u64().unwrap()).collect();
    assert!(!expected.is_empty());
    assert_eq!(windowed, expected);

    // Bad input is named and writes nothing.
    let refused = work.path().join("refused.jsonl");
    for (arguments, message) in [
        (vec!["--since", "yesterday"], "yesterday"),
        (vec!["--since", "2026-03-04", "--until", "2026-03-03"], "--since is after --until"),
    ] {
        let mut all = vec!["export", "ocsf", "--data", data.to_str().unwrap(), "--out", refused.to_str().unwrap()];
        all.extend(arguments);
        let (ok, _, errors) = cordon(&all);
        assert!(!ok && errors.contains(message), "`{message}` in {errors}");
        assert!(!refused.exists(), "a refused export writes no file");
    }
}

/// 2026-03-03 in Unix milliseconds, UTC, computed here without cordon's time code.
/// Every ledger entry, read without cordon's export code: (index, time, kind, change).
fn entries(data: &Path, store: Option<&str>) -> Vec<(u64, i64, String, String)> {
    ledger(data, store)
        .into_iter()
        .map(|(index, entry)| {
            (
                index,
                entry["time_ms"].as_i64().unwrap(),
                entry["kind"].as_str().unwrap().to_string(),
                entry["change"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The OCSF class an entry of `kind` (and `change`) is exported as.
fn class_of(kind: &str, change: &str) -> u64 {
    match (kind, change.split('.').next().unwrap_or_default()) {
        ("access", _) => 6003,
        ("alert", _) => 2004,
        (_, "agent") => 3001,
        (_, "protect") => 7001,
        _ => 3004,
    }
}

fn march_third() -> std::ops::RangeInclusive<i64> {
    let start = 1_772_496_000_000; // 2026-03-03T00:00:00Z
    start..=start + 86_400_000 - 1
}

/// A cursor resumes an export where it stopped, and `--follow` exports entries as the ledger
/// publishes them while `cordon serve` holds the directory: no entry is missed, none written
/// twice across a restart of the follower.
#[test]
fn ocsf_follow_resumes_from_its_cursor_while_the_server_runs() {
    let work = tempfile::tempdir().unwrap();
    let scenario = work.path().join("scenario.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let data = work.path().join("data");
    let data_text = data.to_str().unwrap();
    let (ok, _, errors) = cordon(&["sim", "--scenario", scenario.to_str().unwrap(), "--data", data_text]);
    assert!(ok, "{errors}");
    let out = work.path().join("feed.jsonl");
    let cursor = work.path().join("feed.cursor");
    let (out_text, cursor_text) = (out.to_str().unwrap(), cursor.to_str().unwrap());
    let sequences = || -> Vec<u64> {
        events(&std::fs::read_to_string(&out).unwrap())
            .iter()
            .map(|event| event["metadata"]["sequence"].as_u64().unwrap())
            .collect()
    };
    // Hostile cursors are refused, naming the file, and write nothing.
    let bad = work.path().join("bad.cursor");
    let bad_text = bad.to_str().unwrap();
    for (content, message) in [
        ("\u{1}garbage\u{7f}", "not a ledger index"),
        ("18446744073709551615", "past the ledger's"),
        ("99999999999999999999999", "not a ledger index"),
    ] {
        std::fs::write(&bad, content).unwrap();
        let (ok, _, errors) = cordon(&["export", "ocsf", "--data", data_text, "--out", out_text, "--cursor", bad_text]);
        assert!(!ok && errors.contains(message) && errors.contains("bad.cursor"), "{content:?}: {errors}");
        assert!(!errors.contains('\u{1}'), "a control character echoed: {errors:?}");
    }
    let (ok, _, errors) =
        cordon(&["export", "ocsf", "--data", data_text, "--out", cursor_text, "--cursor", cursor_text]);
    assert!(!ok && errors.contains("the cursor's own file"), "{errors}");
    assert!(!out.exists(), "refusals write no feed");
    // Twice with the server stopped: the second run adds only what came after the first.
    for _ in 0..2 {
        let (ok, _, errors) =
            cordon(&["export", "ocsf", "--data", data_text, "--out", out_text, "--cursor", cursor_text]);
        assert!(ok, "{errors}");
    }
    let size = entries(&data, None).len() as u64;
    assert_eq!(sequences(), (0..size).collect::<Vec<_>>(), "every entry once, in order");
    assert_eq!(std::fs::read_to_string(&cursor).unwrap().trim(), size.to_string());

    // Following beside a running server: a suspension made through the API reaches the feed.
    let (server, address, _log) = crate::support::start_server(data_text);
    let mut follower = Command::new(env!("CARGO_BIN_EXE_cordon"))
        .args(["export", "ocsf", "--data", data_text, "--out", out_text, "--cursor", cursor_text, "--follow"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (ok, admin, errors) = cordon(&["token", "issue", "--data", data_text, "--role", "admin"]);
    assert!(ok, "{errors}");
    let (status, answer) = crate::support::http(
        &address,
        "POST",
        "/v1/agents/agt-0003/suspend",
        Some(admin.trim()),
        Some(&serde_json::json!({})),
    );
    assert_eq!(status, 200, "{answer}");
    let suspension = answer["ledger_index"].as_u64().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !sequences().contains(&suspension) {
        assert!(std::time::Instant::now() < deadline, "the suspension (entry {suspension}) never reached the feed");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    follower.kill().unwrap();
    let _ = follower.wait();
    crate::support::stop_server(server);
    let feed = events(&std::fs::read_to_string(&out).unwrap());
    let suspended = feed.iter().find(|event| event["metadata"]["sequence"] == suspension).unwrap();
    assert_eq!(
        (suspended["class_uid"].as_u64(), suspended["activity_id"].as_u64()),
        (Some(3001), Some(5)),
        "{suspended}"
    );
    assert_eq!(suspended["user"]["uid"], "agt-0003");
    // The follower recorded itself through the server; every entry is in the feed exactly
    // once up to where its cursor stands (a kill after a write and before the cursor's save
    // may repeat a batch, never skip one).
    let through: u64 = std::fs::read_to_string(&cursor).unwrap().trim().parse().unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for sequence in sequences() {
        seen.insert(sequence);
    }
    assert!((0..through).all(|index| seen.contains(&index)), "a gap before the cursor");
    let (valid, report) = validate(&out);
    assert!(valid, "{report}");
}
