use std::collections::BTreeSet;
use std::path::Path;

use cordon_ledger::LogReader;
use cordon_sim::{Scenario, Truth, read_truth, run};
use serde_json::Value;

pub fn scenario(text: &str) -> Scenario {
    Scenario::parse(text).unwrap()
}

/// A small exchange with the given insider block appended; detection off, so insiders play
/// their whole part.
pub fn small(policy: &str, seed: u64, insider: &str) -> Scenario {
    small_with(policy, false, seed, insider)
}

pub fn small_with(policy: &str, detection: bool, seed: u64, insider: &str) -> Scenario {
    scenario(&format!(
        "name = \"test\"\nseed = {seed}\nstart = \"2026-04-06\"\ndays = 10\ncustomers = 3000\ncanaries = 5\nagents = 40\npolicy = \"{policy}\"\ndetection = {detection}\n\
         [traffic]\ntickets_per_agent_day = 4\n{insider}"
    ))
}

pub struct Run {
    pub _dir: tempfile::TempDir,
    pub data: std::path::PathBuf,
    pub truth: Truth,
    pub entries: Vec<Value>,
    pub root: String,
}

pub fn simulate(scenario: &Scenario) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    run(scenario, &data, &mut |_, _, _| {}).unwrap();
    let truth = read_truth(&data).unwrap();
    let (entries, root) = ledger_entries(&data);
    Run { _dir: dir, data, truth, entries, root }
}

pub fn ledger_entries(data: &Path) -> (Vec<Value>, String) {
    let reader = LogReader::new(&data.join("ledger"));
    let checkpoint = reader.checkpoint().unwrap().checkpoint;
    let mut entries = Vec::new();
    reader
        .for_each_entry(0, checkpoint.size, |_, bytes| {
            entries.push(serde_json::from_slice(bytes).unwrap());
            Ok(())
        })
        .unwrap();
    (entries, checkpoint.root.to_base64())
}

impl Run {
    /// The insider's own access entries (not its cover work), by the truth's request ids.
    pub fn malicious(&self, insider: usize) -> Vec<&Value> {
        let requests: BTreeSet<&str> =
            self.truth.insiders[insider].malicious_requests.iter().map(String::as_str).collect();
        self.entries.iter().filter(|entry| requests.contains(entry["request"].as_str().unwrap_or(""))).collect()
    }

    pub fn customers(entries: &[&Value], action: &str) -> BTreeSet<String> {
        entries
            .iter()
            .filter(|entry| entry["action"] == action && entry["decision"] == "allow")
            .filter_map(|entry| entry["customer"].as_str().map(str::to_string))
            .collect()
    }
}

pub fn number(customer: &str) -> u64 {
    customer.trim_start_matches("cus-").parse().unwrap()
}
