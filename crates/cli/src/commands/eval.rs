//! `cordon eval`: detection scored on scenarios, next to the baselines, as tables or JSON;
//! `cordon eval attribution`: attribution scored on leaked samples of every kind.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use cordon_sim::{
    AttributionScore, OTHER_BLAMED_MAX_RATE, RunScore, SOURCE_BLAMED_MIN_RATE, Scenario, Summary, evaluate,
    evaluate_attribution, false_rates, summarize,
};

pub fn eval(paths: &[PathBuf], seeds: u32, held_out: bool, json: bool, features: Option<&Path>) -> anyhow::Result<()> {
    let scenarios = paths
        .iter()
        .map(|path| Scenario::load(path).with_context(|| format!("scenario `{}`", path.display())))
        .map(|scenario| scenario.map(|scenario| if held_out { cordon_sim::held_out(&scenario) } else { scenario }))
        .collect::<anyhow::Result<Vec<Scenario>>>()?;
    let work = std::env::temp_dir().join(format!("cordon-eval-{}", std::process::id()));
    let scores = evaluate(&scenarios, seeds, &work, features, &mut |score| {
        if !json {
            eprintln!("  {} seed {}: {:.1} s", score.scenario, score.seed, score.seconds);
        }
    });
    let _ = std::fs::remove_dir_all(&work);
    let scores = scores?;
    if json {
        let document = serde_json::json!({
            "runs": scores,
            "summary": summarize(&scores),
            "per_1000_agent_days": false_rates(&scores)
                .into_iter()
                .map(|(method, (suspensions, alerts))| (method, serde_json::json!({"false_suspensions": suspensions, "alerts": alerts})))
                .collect::<serde_json::Map<String, serde_json::Value>>(),
        });
        println!("{}", serde_json::to_string_pretty(&document)?);
        return Ok(());
    }
    for scenario in &scenarios {
        let runs: Vec<RunScore> = scores.iter().filter(|score| score.scenario == scenario.name).cloned().collect();
        print!("{}", render(&scenario.name, &runs));
    }
    if scenarios.len() > 1 {
        let all = if held_out { "all scenarios, held-out seeds" } else { "all scenarios" };
        print!("{}", render(all, &scores));
    }
    if let Some(path) = features {
        println!(
            "Feature rows in {} (score them: python3 bench/isolation_forest.py {})",
            path.display(),
            path.display()
        );
    }
    Ok(())
}

/// `cordon eval attribution`: a table per scenario (or JSON), and an error if any kind
/// misses its targets, so a script can run it as a check.
pub fn attribution(paths: &[PathBuf], samples: u64, json: bool) -> anyhow::Result<()> {
    let work = std::env::temp_dir().join(format!("cordon-eval-attribution-{}", std::process::id()));
    let mut scores: Vec<AttributionScore> = Vec::new();
    for path in paths {
        let scenario = Scenario::load(path).with_context(|| format!("scenario `{}`", path.display()))?;
        if !json {
            eprintln!("{}: playing the scenario, then {samples} samples of each kind", scenario.name);
        }
        let found = evaluate_attribution(&scenario, &work, samples, &mut |score| {
            if !json {
                eprintln!("  {}: {} samples, {:.1} s", score.kind, score.samples, score.seconds);
            }
        });
        let _ = std::fs::remove_dir_all(&work);
        scores.extend(found?);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "kinds": scores }))?);
    } else {
        print!("{}", render_attribution(&scores));
    }
    let missed: Vec<String> = scores
        .iter()
        .filter(|score| !score.meets_targets())
        .map(|score| format!("{} on {}", score.kind, score.scenario))
        .collect();
    if !missed.is_empty() {
        anyhow::bail!(
            "attribution missed its targets (another agent blamed in at most {OTHER_BLAMED_MAX_RATE} of samples; the source in at least {SOURCE_BLAMED_MIN_RATE} where held to it) for: {}",
            missed.join(", ")
        );
    }
    Ok(())
}

fn render_attribution(scores: &[AttributionScore]) -> String {
    let mut out = String::new();
    let mut scenario = "";
    for score in scores {
        if score.scenario != scenario {
            scenario = &score.scenario;
            let _ = writeln!(out, "\n{scenario}");
            let _ = writeln!(
                out,
                "  {:<22} {:<36} {:>4} {:<10} {:>7} {:>14} {:>14}  verdicts",
                "kind", "columns", "rows", "source", "samples", "source blamed", "other blamed"
            );
        }
        let samples = score.samples.max(1) as f64;
        let verdicts: Vec<String> =
            score.verdicts.iter().map(|(verdict, count)| format!("{verdict} {count}")).collect();
        let target = if score.meets_targets() { "" } else { "  MISSES TARGET" };
        let _ = writeln!(
            out,
            "  {:<22} {:<36} {:>4} {:<10} {:>7} {:>13.1}% {:>7} ({:.1}‰)  {}{target}",
            score.kind,
            score.columns.join(","),
            score.rows,
            score.source,
            score.samples,
            100.0 * score.source_blamed as f64 / samples,
            score.other_blamed,
            1000.0 * score.other_blamed as f64 / samples,
            verdicts.join(", ")
        );
        if !score.others.is_empty() {
            let others: Vec<String> = score.others.iter().map(|(agent, count)| format!("{agent} {count}")).collect();
            let _ = writeln!(out, "  {:<22} wrongly blamed: {}", "", others.join(", "));
        }
    }
    out
}

/// One table: per behaviour and method, then false rates, explained share and precision.
fn render(title: &str, runs: &[RunScore]) -> String {
    let mut out = String::new();
    let agent_days: u64 = runs.iter().map(|run| run.agent_days).sum();
    let seconds: f64 = runs.iter().map(|run| run.seconds).sum();
    let _ = writeln!(out, "\n{title}: {} runs, {agent_days} agent-days, {seconds:.0} s", runs.len());
    let _ = writeln!(
        out,
        "  {:<15} {:<7} {:>8} {:>16} {:>12} {:>15} {:>20} {:>9} {:>13}",
        "behaviour",
        "method",
        "caught",
        "exposed median",
        "exposed p95",
        "before contain.",
        "high-balance median",
        "canaries",
        "hours median"
    );
    for Summary {
        behaviour,
        method,
        insiders,
        caught,
        exposed_median,
        exposed_p95,
        exposed_before_median,
        high_balance_median,
        canaries_max,
        hours_median,
    } in summarize(runs)
    {
        let hours = hours_median.map_or("-".to_string(), |hours| format!("{hours:.1}"));
        let _ = writeln!(
            out,
            "  {behaviour:<15} {method:<7} {:>8} {exposed_median:>16.0} {exposed_p95:>12.0} {exposed_before_median:>15.0} {high_balance_median:>20.0} {canaries_max:>9} {hours:>13}",
            format!("{caught}/{insiders}")
        );
    }
    for (method, (suspensions, alerts)) in false_rates(runs) {
        let _ = writeln!(
            out,
            "  {method:<7} false suspensions {suspensions:.2} and alerts {alerts:.2} per 1,000 agent-days"
        );
    }
    let explained: Vec<f64> = runs.iter().map(|run| run.benign_explained_share).collect();
    let precision: Vec<f64> = runs
        .iter()
        .flat_map(|run| run.methods.iter().filter(|method| method.method == "cordon"))
        .filter_map(|method| method.flagged_precision)
        .collect();
    let _ = writeln!(
        out,
        "  benign accesses explained by a checkable reason: {:.1}% (median over runs)",
        100.0 * cordon_sim::percentile(&explained, 0.5)
    );
    if !precision.is_empty() {
        let _ = writeln!(
            out,
            "  cordon: share of alert evidence that was an insider's move: {:.1}% (median over runs)",
            100.0 * cordon_sim::percentile(&precision, 0.5)
        );
    }
    out
}
