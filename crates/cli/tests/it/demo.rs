//! `cordon demo` at a small size: the printed story agrees with the ledger, read
//! independently here, and with the ground truth.

use std::collections::BTreeSet;
use std::process::Command;

use cordon_ledger::LogReader;
use serde_json::Value;

const SCENARIO: &str = r#"
name = "demo-test"
description = "a harvester and a masked browser on a small exchange"
seed = 3
start = "2026-03-02"
days = 6
customers = 2500
canaries = 5
agents = 40
policy = "permissive"
[[insider]]
behaviour = "harvester"
start_day = 1
customers_per_day = 15
[[insider]]
behaviour = "masked_browser"
start_day = 2
customers_per_day = 10
"#;

fn number_after(text: &str, marker: &str) -> u64 {
    let rest = &text[text.find(marker).unwrap_or_else(|| panic!("`{marker}` in:\n{text}")) + marker.len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap_or_else(|_| panic!("a number after `{marker}` in:\n{text}"))
}

#[test]
fn the_story_matches_the_ledger() {
    let work = tempfile::tempdir().unwrap();
    let scenario = work.path().join("scenario.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let dir = work.path().join("demo");
    let demo = |extra: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_cordon"))
            .arg("demo")
            .arg(&dir)
            .args(["--no-serve", "--scenario"])
            .arg(&scenario)
            .args(extra)
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, story, errors) = demo(&[]);
    assert!(ok, "{errors}");
    assert!(story.contains("/console/demo/agent") && story.contains("/console/demo/analyst"), "{story}");

    // The ledger, read here without the simulator's code.
    let reader = LogReader::new(&dir.join("ledger"));
    let checkpoint = reader.checkpoint().unwrap().checkpoint;
    let mut entries: Vec<Value> = Vec::new();
    reader
        .for_each_entry(0, checkpoint.size, |_, bytes| {
            entries.push(serde_json::from_slice(bytes).unwrap());
            Ok(())
        })
        .unwrap();
    assert_eq!(number_after(&story, "Ledger"), checkpoint.size, "entries:\n{story}");
    assert!(story.contains(&checkpoint.root.to_base64()), "the root is printed:\n{story}");
    let decisions = entries.iter().filter(|entry| entry["kind"] == "access").count() as u64;
    assert_eq!(number_after(&story, "tickets,"), decisions, "access decisions:\n{story}");

    let truth: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("sim/truth.json")).unwrap()).unwrap();
    let insiders = truth["insiders"].as_array().unwrap();
    assert_eq!(insiders.len(), 2);
    let mut exposed_lines = story.lines().filter(|line| line.trim_start().starts_with("exposed "));
    for insider in insiders {
        let requests: BTreeSet<&str> =
            insider["malicious_requests"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        let seen: BTreeSet<&str> = entries
            .iter()
            .filter(|entry| requests.contains(entry["request"].as_str().unwrap_or("")) && entry["decision"] == "allow")
            .filter(|entry| entry["action"] == "view" || entry["action"] == "reveal")
            .filter_map(|entry| entry["customer"].as_str())
            .collect();
        assert!(!seen.is_empty());
        let line = exposed_lines.next().unwrap();
        assert_eq!(number_after(line, "exposed"), seen.len() as u64, "{} in:\n{story}", insider["label"]);
    }
    // Detection contains the harvester; the story says when, and how far it would have got.
    let harvester = &insiders[0];
    let alerts: Vec<&Value> = entries
        .iter()
        .filter(|entry| entry["kind"] == "alert" && entry["agent"] == harvester["agent"])
        .filter(|entry| entry["level"] == "step-up" || entry["level"] == "suspend")
        .collect();
    assert!(!alerts.is_empty(), "the harvester is contained:\n{story}");
    let contained = story.lines().find(|line| line.contains("contained by cordon")).expect("a containment line");
    let reach = number_after(contained, "would have reached");
    assert!(reach > 2 * number_after(&story, "exposed"), "far more without detection:\n{story}");
    let honest = entries
        .iter()
        .filter(|entry| entry["kind"] == "alert")
        .filter(|entry| insiders.iter().all(|insider| insider["agent"] != entry["agent"]))
        .count();
    assert!(story.contains(&format!("honest agents: {honest} alerts")), "{story}");

    // A second run refuses to overwrite the demo unless asked to.
    let (ok, _, errors) = demo(&[]);
    assert!(!ok && errors.contains("holds an earlier demo; pass --replace"), "{errors}");
    let (ok, again, errors) = demo(&["--replace"]);
    assert!(ok, "{errors}");
    assert!(again.contains(&checkpoint.root.to_base64()), "the same seed gives the same root");
}
