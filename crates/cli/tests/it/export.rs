//! `cordon export ocsf` over a simulated exchange's ledger: one event per access decision,
//! every one valid against the OCSF schema as an independent validator from PyPI reads it
//! (scripts/ocsf/validate), and the validator itself refuses broken events.

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

/// The ledger's access decisions, read without cordon's export code: (index, time).
fn access_decisions(data: &Path) -> Vec<(u64, i64)> {
    let reader = LogReader::new(&data.join("ledger"));
    let size = reader.checkpoint().unwrap().checkpoint.size;
    let mut decisions = Vec::new();
    reader
        .for_each_entry(0, size, |index, bytes| {
            let entry: Value = serde_json::from_slice(bytes).unwrap();
            if entry["kind"] == "access" {
                decisions.push((index, entry["time_ms"].as_i64().unwrap()));
            }
            Ok(())
        })
        .unwrap();
    decisions
}

fn events(text: &str) -> Vec<Value> {
    text.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

#[test]
fn ocsf_export_is_valid_ocsf_and_covers_every_decision() {
    let work = tempfile::tempdir().unwrap();
    let scenario = work.path().join("scenario.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let data = work.path().join("data");
    let (ok, _, errors) = cordon(&["sim", "--scenario", scenario.to_str().unwrap(), "--data", data.to_str().unwrap()]);
    assert!(ok, "{errors}");
    let decisions = access_decisions(&data);
    assert!(decisions.len() > 100, "the scenario made {} decisions", decisions.len());

    let out = work.path().join("access.ocsf.jsonl");
    let (ok, _, errors) = cordon(&["export", "ocsf", "--data", data.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(ok, "{errors}");
    assert!(errors.contains(&format!("{} access events written", decisions.len())), "{errors}");
    let text = std::fs::read_to_string(&out).unwrap();
    let exported = events(&text);
    let sequences: Vec<u64> = exported.iter().map(|event| event["metadata"]["sequence"].as_u64().unwrap()).collect();
    let indexes: Vec<u64> = decisions.iter().map(|(index, _)| *index).collect();
    assert_eq!(sequences, indexes, "one event per access decision, in ledger order");
    for event in &exported {
        assert_eq!(event["class_uid"], 6003, "{event}");
        assert!(event["actor"]["user"]["uid"].as_str().unwrap().starts_with("agt-"), "{event}");
    }
    let denied = exported.iter().filter(|event| event["status_id"] == 2).count();
    assert!(denied > 0, "the scenario's policy refuses some accesses, and they are exported as failures");

    let (valid, report) = validate(&out);
    assert!(valid, "{report}");
    assert!(report.contains(&format!("{} valid events; 0 problems", decisions.len())), "{report}");

    // The validator is not a rubber stamp: events broken in different ways are each refused.
    let mut broken = exported[0].clone();
    broken.as_object_mut().unwrap().remove("actor");
    let mut unknown = exported[1].clone();
    unknown["colour"] = "teal".into();
    let mut wrong_type = exported[2].clone();
    wrong_type["type_uid"] = 600_303.into();
    let bad = work.path().join("bad.jsonl");
    std::fs::write(&bad, format!("{broken}\n{unknown}\n{wrong_type}\n{}\n", exported[3])).unwrap();
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
    let expected: Vec<u64> = decisions.iter().filter(|(_, time)| day.contains(time)).map(|(index, _)| *index).collect();
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
fn march_third() -> std::ops::RangeInclusive<i64> {
    let start = 1_772_496_000_000; // 2026-03-03T00:00:00Z
    start..=start + 86_400_000 - 1
}
