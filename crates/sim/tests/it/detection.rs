//! Detection in the simulated exchange: insiders are contained in-line, honest agents are
//! left alone, and replaying the ledger gives exactly the alerts the live run wrote.

use std::sync::Arc;

use cordon_gateway::{DataDir, SystemClock};

use crate::support::{simulate, small_with};

#[test]
fn insiders_are_contained_and_replay_gives_the_same_alerts() {
    let insiders = "[[insider]]\nbehaviour = \"harvester\"\nstart_day = 3\ncustomers_per_day = 40\n\
                    [[insider]]\nbehaviour = \"canary_toucher\"\nstart_day = 4\n";
    let scenario = small_with("permissive", true, 21, insiders);
    let run = simulate(&scenario);
    let alerts: Vec<&serde_json::Value> = run.entries.iter().filter(|entry| entry["kind"] == "alert").collect();
    let suspended: Vec<&str> =
        alerts.iter().filter(|alert| alert["level"] == "suspend").filter_map(|alert| alert["agent"].as_str()).collect();
    for insider in &run.truth.insiders {
        assert!(suspended.contains(&insider.agent.as_str()), "{} ({}) is suspended", insider.agent, insider.behaviour);
        assert!(insider.stopped_day.is_some(), "the simulator saw {} stop", insider.agent);
    }
    assert_eq!(suspended.len(), run.truth.insiders.len(), "no honest agent is suspended: {alerts:#?}");

    // Every alert explains itself with signals and evidence entries that exist.
    for alert in &alerts {
        assert!(!alert["signals"].as_array().unwrap().is_empty(), "{alert}");
        for index in alert["evidence"].as_array().unwrap() {
            let evidence = &run.entries[index.as_u64().unwrap() as usize];
            assert_eq!(evidence["kind"], "access", "{alert} points at {evidence}");
            assert_eq!(evidence["agent"], alert["agent"], "{alert} points at {evidence}");
        }
    }

    // Opening the data directory replays the ledger; the replay raises the same alerts.
    let data = DataDir::new(&run.data);
    let gateway = data.open(Arc::new(SystemClock)).unwrap();
    let replayed = gateway.replay_detection().unwrap();
    assert!(replayed.observations > 1_000);
    assert_eq!(replayed.recorded.len(), alerts.len());
    let recorded: Vec<cordon_entry::AlertEntry> = replayed.recorded.iter().map(|(_, alert)| alert.clone()).collect();
    assert_eq!(replayed.alerts, recorded);
}
