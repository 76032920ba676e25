//! `cordon eval` at a small size: every shipped behaviour and the benign surge, scored live
//! and against the baselines, with the targets asserted at this size.

use std::path::Path;

use cordon_sim::{RunScore, Scenario, Summary, evaluate, false_rates, summarize};

/// A shipped scenario shrunk to test size (fewer customers and days; same insiders).
fn shrunk(file: &str, customers: u64, agents: u32, days: u32) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios").join(file);
    let mut scenario = Scenario::load(&path).unwrap();
    scenario.customers = customers;
    scenario.agents = agents;
    scenario.days = days;
    for insider in &mut scenario.insiders {
        insider.stop_day = insider.stop_day.min(days);
    }
    scenario
}

fn summary<'a>(summaries: &'a [Summary], behaviour: &str, method: &str) -> &'a Summary {
    summaries
        .iter()
        .find(|summary| summary.behaviour == behaviour && summary.method == method)
        .unwrap_or_else(|| panic!("no summary for {behaviour} / {method}: {summaries:#?}"))
}

#[test]
fn detection_meets_its_targets_at_test_size() {
    let work = tempfile::tempdir().unwrap();
    let behaviours = ["harvester", "enumerator", "canary_toucher", "low_and_slow", "targeted", "piggyback", "ring"];
    let mut scenarios: Vec<Scenario> =
        behaviours.iter().map(|behaviour| shrunk(&format!("behaviour-{behaviour}.toml"), 4_000, 40, 10)).collect();
    scenarios.push(shrunk("benign-surge.toml", 4_000, 60, 10));
    let scores: Vec<RunScore> = evaluate(&scenarios, 1, work.path(), None, &mut |_| {}).unwrap();
    let summaries = summarize(&scores);
    let table = format!("{summaries:#?}");
    // cordon's exposure is the whole live run's, its figure before containment beside it; a
    // baseline's containment is hypothetical, so its exposure ends there.
    for method in scores.iter().flat_map(|score| &score.methods) {
        for insider in &method.insiders {
            let (whole, before) = (insider.customers_exposed, insider.customers_exposed_before_containment);
            match method.method.as_str() {
                "cordon" => assert!(whole >= before, "{}: {whole} < {before}", insider.agent),
                _ => assert_eq!(whole, before, "{} under {}", insider.agent, method.method),
            }
        }
    }

    for behaviour in behaviours {
        let cordon = summary(&summaries, behaviour, "cordon");
        let none = summary(&summaries, behaviour, "none");
        assert_eq!(cordon.caught, cordon.insiders, "{behaviour}: every insider contained\n{table}");
        assert_eq!(none.caught, 0, "{behaviour}: without detection nobody is\n{table}");
        assert!(cordon.exposed_median < none.exposed_median, "{behaviour}: detection cuts exposure\n{table}");
    }
    // The slow, targeted, piggyback and ring insiders together: at least half the exposure
    // and 30 points more recall than the better baseline.
    let hard = ["low_and_slow", "targeted", "piggyback", "ring"];
    let pooled = |method: &str| -> (f64, f64) {
        let insiders: Vec<&cordon_sim::InsiderScore> = scores
            .iter()
            .flat_map(|score| score.methods.iter().filter(|scored| scored.method == method))
            .flat_map(|scored| scored.insiders.iter())
            .filter(|insider| hard.contains(&insider.behaviour.as_str()))
            .collect();
        let exposed: Vec<f64> = insiders.iter().map(|insider| insider.customers_exposed as f64).collect();
        let recall = insiders.iter().filter(|insider| insider.caught).count() as f64 / insiders.len().max(1) as f64;
        (cordon_sim::percentile(&exposed, 0.5), recall)
    };
    let (cordon_exposed, cordon_recall) = pooled("cordon");
    let (static_exposed, static_recall) = pooled("static");
    let (none_exposed, _) = pooled("none");
    let better_exposed = static_exposed.min(none_exposed);
    assert!(cordon_exposed * 2.0 <= better_exposed, "pooled median {cordon_exposed} against {better_exposed}\n{table}");
    assert!(cordon_recall >= static_recall + 0.3, "pooled recall {cordon_recall} against {static_recall}\n{table}");
    let limits = [
        ("harvester", 25.0, 100.0),
        ("enumerator", 25.0, 100.0),
        ("low_and_slow", 60.0, 300.0),
        ("piggyback", 300.0, 300.0),
    ];
    for (behaviour, median, p95) in limits {
        let cordon = summary(&summaries, behaviour, "cordon");
        assert!(cordon.exposed_median <= median, "{behaviour}: median exposure {}\n{table}", cordon.exposed_median);
        assert!(cordon.exposed_p95 <= p95, "{behaviour}: p95 exposure {}\n{table}", cordon.exposed_p95);
    }
    assert!(summary(&summaries, "canary_toucher", "cordon").canaries_max <= 1, "{table}");
    assert!(summary(&summaries, "targeted", "cordon").high_balance_median <= 10.0, "{table}");

    let rates = false_rates(&scores);
    let (suspensions, alerts) = rates["cordon"];
    assert!(suspensions <= 0.1, "false suspensions {suspensions:.2} per 1,000 agent-days\n{scores:#?}");
    assert!(alerts <= 5.0, "alerts {alerts:.2} per 1,000 agent-days on honest agents\n{scores:#?}");
    for score in &scores {
        assert!(score.benign_explained_share >= 0.9, "{}: {}", score.scenario, score.benign_explained_share);
    }
}

/// Insiders who make their accesses look explained (tickets they opened or took, callbacks,
/// verify, list checks, handoffs within a ring) are each contained with a median exposure of
/// at most 25 customers over the whole live run, while honest agents stay unsuspended.
#[test]
fn insiders_who_arrange_their_reasons_meet_the_targets_at_test_size() {
    let work = tempfile::tempdir().unwrap();
    let behaviours =
        ["ticket_forger", "queue_grabber", "callback_abuser", "verify_prober", "list_checker", "handoff_ring"];
    let scenarios: Vec<Scenario> =
        behaviours.iter().map(|behaviour| shrunk(&format!("behaviour-{behaviour}.toml"), 4_000, 60, 10)).collect();
    let scores: Vec<RunScore> = evaluate(&scenarios, 1, work.path(), None, &mut |_| {}).unwrap();
    let summaries = summarize(&scores);
    let table = format!("{summaries:#?}");
    for behaviour in behaviours {
        let cordon = summary(&summaries, behaviour, "cordon");
        let none = summary(&summaries, behaviour, "none");
        assert_eq!(cordon.caught, cordon.insiders, "{behaviour}: every insider contained\n{table}");
        assert_eq!(none.caught, 0, "{behaviour}: without detection nobody is\n{table}");
        assert!(cordon.exposed_median <= 25.0, "{behaviour}: median exposure {}\n{table}", cordon.exposed_median);
        assert!(cordon.exposed_median < none.exposed_median, "{behaviour}: detection cuts exposure\n{table}");
    }
    let (suspensions, alerts) = false_rates(&scores)["cordon"];
    assert!(suspensions <= 0.1, "false suspensions {suspensions:.2} per 1,000 agent-days\n{table}");
    assert!(alerts <= 5.0, "alerts {alerts:.2} per 1,000 agent-days on honest agents\n{table}");
}
