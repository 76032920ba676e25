//! `cordon eval`: how well detection contains insiders, against baselines, on scenarios.
//!
//! Each scenario and seed is simulated twice: once without detection, which gives the event
//! stream an exchange without cordon would see, and once with it, live in the request path.
//! The live run scores cordon (its suspensions really stop the insider, and really stop any
//! honest agent it suspends by mistake). The stream without detection is scored by the
//! baselines: nothing at all (today's situation), and a static threshold learned from the
//! first week. Exposure is counted from the ledger: distinct customers the insider's own
//! moves reached (allowed view, reveal or verify). For cordon, over the whole live run: what
//! a contained insider was still shown (a stepped-up agent still sees cards) counts; the
//! figure before containment is kept beside it. A baseline's containment is hypothetical (the
//! stream without detection goes on), so its exposure stops at it, as if it were perfect.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use cordon_ledger::LogReader;
use serde::Serialize;

use crate::SimError;
use crate::engine::{Truth, read_truth, run};
use crate::entry::LedgerEntry as Entry;
use crate::people::{People, customer_number};
use crate::scenario::Scenario;

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;
/// The static baseline's fixed limit on reveals without a ticket in a day.
pub const STATIC_UNEXPLAINED_REVEALS_MAX: u32 = 10;
/// The static baseline's percentile of daily distinct customers revealed, first week.
pub const STATIC_PERCENTILE: f64 = 0.999;

/// One insider's outcome under one method.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct InsiderScore {
    pub agent: String,
    pub label: String,
    pub behaviour: String,
    /// Contained: suspended, or stepped up so reveals need an approver.
    pub caught: bool,
    /// From the insider's first move to containment.
    pub hours_to_contain: Option<f64>,
    /// Distinct customers its moves reached (card shown or field revealed): for cordon over
    /// the whole live run, containment and all; for a baseline until its containment.
    pub customers_exposed: u64,
    /// Of those, the ones reached before containment.
    pub customers_exposed_before_containment: u64,
    /// Of the exposed, with a field revealed in the clear.
    pub customers_revealed: u64,
    pub high_balance_exposed: u64,
    pub canaries_touched: u64,
}

/// One method on one run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MethodScore {
    pub method: String,
    pub insiders: Vec<InsiderScore>,
    /// Honest agents suspended.
    pub false_suspensions: u64,
    /// Alerts (any level) on honest agents.
    pub false_alerts: u64,
    /// Share of the accesses an alert cited as evidence that were insiders' moves.
    pub flagged_precision: Option<f64>,
}

/// One scenario and seed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunScore {
    pub scenario: String,
    pub seed: u64,
    /// Agent-days with any access, in the run without detection.
    pub agent_days: u64,
    /// Share of honest accesses with a reason the system can check (ticket, approval,
    /// callback on the agent's recent ticket, QA review).
    pub benign_explained_share: f64,
    pub methods: Vec<MethodScore>,
    pub seconds: f64,
}

/// A run read back: its entries and ground truth.
struct Read {
    entries: Vec<Entry>,
    truth: Truth,
}

fn read(data: &Path) -> Result<Read, SimError> {
    let reader = LogReader::new(&data.join("ledger"));
    let size = reader.checkpoint().map_err(|error| SimError::Internal(error.to_string()))?.checkpoint.size;
    let mut entries = Vec::with_capacity(size as usize);
    reader
        .for_each_entry(0, size, |index, bytes| {
            let entry = Entry::decode(bytes).map_err(|error| cordon_ledger::LedgerError::Failed {
                reason: format!("entry {index} is not cordon's: {error}"),
            })?;
            entries.push(entry);
            Ok(())
        })
        .map_err(|error| SimError::Internal(error.to_string()))?;
    Ok(Read { entries, truth: read_truth(data)? })
}

/// Scores `scenario` with the given seed; `work` holds the two runs' data directories.
pub fn score_run(scenario: &Scenario, work: &Path, features: Option<&Path>) -> Result<RunScore, SimError> {
    let started = std::time::Instant::now();
    let without_dir = work.join("without-detection");
    let with_dir = work.join("with-detection");
    for dir in [&without_dir, &with_dir] {
        if dir.exists() {
            std::fs::remove_dir_all(dir)
                .map_err(|error| SimError::Internal(format!("`{}`: {error}", dir.display())))?;
        }
    }
    let mut without = scenario.clone();
    without.detection = false;
    run(&without, &without_dir, &mut |_, _, _| {})?;
    let mut with = scenario.clone();
    with.detection = true;
    run(&with, &with_dir, &mut |_, _, _| {})?;
    let stream = read(&without_dir)?;
    let live = read(&with_dir)?;
    let people = People::new(scenario.seed, scenario.customers, scenario.canaries);
    let high_balance = |customer: &str| {
        customer_number(customer)
            .is_some_and(|number| people.summary(number).balance_usd >= stream.truth.high_balance_usd)
    };
    let canary = |customer: &str| customer_number(customer).is_some_and(|number| people.is_canary(number));

    let malicious = stream.truth.malicious_requests();
    let insiders: BTreeSet<&str> = stream.truth.insiders.iter().map(|insider| insider.agent.as_str()).collect();
    let agent_days: BTreeSet<(&str, i64)> = stream
        .entries
        .iter()
        .filter(|entry| entry.kind == "access")
        .map(|entry| (entry.agent.as_str(), entry.time_ms.div_euclid(DAY_MS)))
        .collect();
    let benign: Vec<&Entry> = stream
        .entries
        .iter()
        .filter(|entry| {
            entry.allowed_access() && entry.action != "search" && !malicious.contains_key(entry.request.as_str())
        })
        .collect();
    let explained = benign.iter().filter(|entry| entry.explained()).count();

    let mut methods = Vec::new();
    // cordon, live: containment is the first alert at step-up or above.
    let mut contained: HashMap<String, i64> = HashMap::new();
    let mut suspended: BTreeSet<String> = BTreeSet::new();
    let mut alerted: u64 = 0;
    let mut flagged = BTreeSet::new();
    for entry in live.entries.iter().filter(|entry| entry.kind == "alert") {
        if matches!(entry.level.as_str(), "step-up" | "suspend") {
            contained.entry(entry.agent.clone()).or_insert(entry.time_ms);
        }
        if entry.level == "suspend" {
            suspended.insert(entry.agent.clone());
        }
        if !insiders.contains(entry.agent.as_str()) {
            alerted += 1;
        }
        flagged.extend(entry.evidence.iter().copied());
    }
    let live_malicious = live.truth.malicious_requests();
    let flagged_malicious = flagged
        .iter()
        .filter_map(|&index| live.entries.get(index as usize))
        .filter(|entry| live_malicious.contains_key(entry.request.as_str()))
        .count();
    methods.push(MethodScore {
        method: "cordon".into(),
        insiders: exposures(&live, &live_malicious, &contained, Counted::WholeRun, &high_balance, &canary),
        false_suspensions: suspended.iter().filter(|agent| !insiders.contains(agent.as_str())).count() as u64,
        false_alerts: alerted,
        // Without insiders there is nothing to be precise about.
        flagged_precision: (!flagged.is_empty() && !insiders.is_empty())
            .then(|| flagged_malicious as f64 / flagged.len() as f64),
    });
    // No detection: nobody is contained.
    methods.push(MethodScore {
        method: "none".into(),
        insiders: exposures(&stream, &malicious, &HashMap::new(), Counted::UntilContained, &high_balance, &canary),
        false_suspensions: 0,
        false_alerts: 0,
        flagged_precision: None,
    });
    // A static threshold, learned from the first week of the stream without detection.
    let contained = static_threshold(&stream.entries);
    let false_suspensions = contained.keys().filter(|agent| !insiders.contains(agent.as_str())).count() as u64;
    methods.push(MethodScore {
        method: "static".into(),
        insiders: exposures(&stream, &malicious, &contained, Counted::UntilContained, &high_balance, &canary),
        false_suspensions,
        false_alerts: false_suspensions,
        flagged_precision: None,
    });
    if let Some(path) = features {
        write_features(path, scenario, &stream, &malicious)?;
    }
    Ok(RunScore {
        scenario: scenario.name.clone(),
        seed: scenario.seed,
        agent_days: agent_days.len() as u64,
        benign_explained_share: if benign.is_empty() { 1.0 } else { explained as f64 / benign.len() as f64 },
        methods,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Which of an insider's accesses its exposure counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counted {
    /// Every access the run allowed: a live run, whose containment is real and whose
    /// ledger says what the insider was shown after it too.
    WholeRun,
    /// Those before containment: a baseline's containment is hypothetical, on a stream that
    /// went on without it, and assumed to stop the insider at once.
    UntilContained,
}

/// Each insider's exposure, counted as `counted` says, and before its containment (if any).
fn exposures(
    read: &Read,
    malicious: &HashMap<&str, usize>,
    contained: &HashMap<String, i64>,
    counted: Counted,
    high_balance: &dyn Fn(&str) -> bool,
    canary: &dyn Fn(&str) -> bool,
) -> Vec<InsiderScore> {
    let mut exposed: Vec<BTreeSet<&str>> = vec![BTreeSet::new(); read.truth.insiders.len()];
    let mut before: Vec<BTreeSet<&str>> = vec![BTreeSet::new(); read.truth.insiders.len()];
    let mut revealed: Vec<BTreeSet<&str>> = vec![BTreeSet::new(); read.truth.insiders.len()];
    let mut first_move: Vec<Option<i64>> = vec![None; read.truth.insiders.len()];
    for entry in &read.entries {
        let Some(&position) = malicious.get(entry.request.as_str()) else { continue };
        if let Some(first) = first_move.get_mut(position) {
            first.get_or_insert(entry.time_ms);
        }
        let until = contained.get(&entry.agent).copied().unwrap_or(i64::MAX);
        let before_containment = entry.time_ms < until;
        if !entry.allowed_access() || (counted == Counted::UntilContained && !before_containment) {
            continue;
        }
        // A search's hits count: each told the insider who is a customer.
        let shown: Vec<&str> = match (entry.customer.as_deref(), &entry.matches) {
            (Some(customer), _) => vec![customer],
            (None, Some(matches)) => matches.iter().map(String::as_str).collect(),
            (None, None) => Vec::new(),
        };
        for customer in shown {
            if let Some(set) = exposed.get_mut(position) {
                set.insert(customer);
            }
            if before_containment && let Some(set) = before.get_mut(position) {
                set.insert(customer);
            }
            if matches!(entry.action.as_str(), "reveal" | "verify")
                && let Some(set) = revealed.get_mut(position)
            {
                set.insert(customer);
            }
        }
    }
    read.truth
        .insiders
        .iter()
        .enumerate()
        .map(|(position, insider)| {
            let reached = exposed.get(position).cloned().unwrap_or_default();
            let at = contained.get(&insider.agent).copied();
            let first = first_move.get(position).copied().flatten();
            InsiderScore {
                agent: insider.agent.clone(),
                label: insider.label.clone(),
                behaviour: insider.behaviour.clone(),
                caught: at.is_some(),
                hours_to_contain: match (at, first) {
                    (Some(at), Some(first)) => Some(((at - first) as f64 / HOUR_MS as f64).max(0.0)),
                    _ => None,
                },
                customers_exposed: reached.len() as u64,
                customers_exposed_before_containment: before.get(position).map_or(0, |set| set.len() as u64),
                customers_revealed: revealed.get(position).map_or(0, |set| set.len() as u64),
                high_balance_exposed: reached.iter().filter(|customer| high_balance(customer)).count() as u64,
                canaries_touched: reached.iter().filter(|customer| canary(customer)).count() as u64,
            }
        })
        .collect()
}

/// When the static rule suspends each agent: distinct customers revealed in a day above the
/// first week's 99.9th percentile, or more than a fixed number of reveals without a ticket.
fn static_threshold(entries: &[Entry]) -> HashMap<String, i64> {
    let Some(first_day) =
        entries.iter().find(|entry| entry.kind == "access").map(|entry| entry.time_ms.div_euclid(DAY_MS))
    else {
        return HashMap::new();
    };
    let mut learning: HashMap<(&str, i64), BTreeSet<&str>> = HashMap::new();
    for entry in entries.iter().filter(|entry| entry.allowed_access() && entry.action == "reveal") {
        let day = entry.time_ms.div_euclid(DAY_MS);
        if day < first_day + 7
            && let Some(customer) = entry.customer.as_deref()
        {
            learning.entry((entry.agent.as_str(), day)).or_default().insert(customer);
        }
    }
    let mut daily: Vec<usize> = learning.values().map(BTreeSet::len).collect();
    daily.sort_unstable();
    let position = ((daily.len() as f64 * STATIC_PERCENTILE).ceil() as usize).saturating_sub(1);
    let limit = daily.get(position).copied().unwrap_or(0);
    let mut today: HashMap<(&str, i64), (BTreeSet<&str>, u32)> = HashMap::new();
    let mut contained = HashMap::new();
    for entry in entries.iter().filter(|entry| entry.allowed_access() && entry.action == "reveal") {
        if contained.contains_key(&entry.agent) {
            continue;
        }
        let day = entry.time_ms.div_euclid(DAY_MS);
        let (customers, unticketed) = today.entry((entry.agent.as_str(), day)).or_default();
        if let Some(customer) = entry.customer.as_deref() {
            customers.insert(customer);
        }
        if entry.ticket.is_none() {
            *unticketed += 1;
        }
        if customers.len() > limit || *unticketed > STATIC_UNEXPLAINED_REVEALS_MAX {
            contained.insert(entry.agent.clone(), entry.time_ms);
        }
    }
    contained
}

/// Per agent-hour feature rows of the stream without detection, labelled from the truth,
/// for `bench/isolation_forest.py`.
fn write_features(
    path: &Path,
    scenario: &Scenario,
    read: &Read,
    malicious: &HashMap<&str, usize>,
) -> Result<(), SimError> {
    #[derive(Default)]
    struct Row<'a> {
        accesses: u32,
        customers: BTreeSet<&'a str>,
        reveals: u32,
        unexplained: u32,
        other_requester: u32,
        beyond_need: u32,
        off_shift: u32,
        searches: u32,
        search_misses: u32,
        malicious: u32,
        malicious_customers: BTreeSet<&'a str>,
    }
    let mut rows: BTreeMap<(&str, i64), Row<'_>> = BTreeMap::new();
    for entry in read.entries.iter().filter(|entry| entry.kind == "access") {
        let row = rows.entry((entry.agent.as_str(), entry.time_ms.div_euclid(HOUR_MS))).or_default();
        row.accesses += 1;
        if entry.action == "search" {
            row.searches += 1;
            row.search_misses += u32::from(entry.matches.as_ref().is_some_and(Vec::is_empty));
        } else if let Some(customer) = entry.customer.as_deref() {
            row.customers.insert(customer);
        }
        row.reveals += u32::from(entry.action == "reveal");
        row.unexplained += u32::from(entry.action != "search" && !entry.explained());
        row.other_requester += u32::from(entry.why.as_deref() == Some("other-requester"));
        row.beyond_need += u32::from(!entry.beyond_need.is_empty());
        row.off_shift += u32::from(entry.off_shift);
        if malicious.contains_key(entry.request.as_str()) {
            row.malicious += 1;
            if let Some(customer) = entry.customer.as_deref()
                && entry.decision == "allow"
            {
                row.malicious_customers.insert(customer);
            }
        }
    }
    let new = !path.exists();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|error| SimError::Internal(format!("`{}`: {error}", path.display())))?;
    let mut out = std::io::BufWriter::new(file);
    let write = |out: &mut std::io::BufWriter<std::fs::File>, line: String| {
        out.write_all(line.as_bytes()).map_err(|error| SimError::Internal(format!("`{}`: {error}", path.display())))
    };
    if new {
        write(
            &mut out,
            "scenario,seed,agent,hour,accesses,customers,reveals,unexplained,other_requester,beyond_need,off_shift,\
             searches,search_misses,malicious,malicious_customers\n"
                .into(),
        )?;
    }
    for ((agent, hour), row) in rows {
        write(
            &mut out,
            format!(
                "{},{},{agent},{hour},{},{},{},{},{},{},{},{},{},{},{}\n",
                scenario.name,
                scenario.seed,
                row.accesses,
                row.customers.len(),
                row.reveals,
                row.unexplained,
                row.other_requester,
                row.beyond_need,
                row.off_shift,
                row.searches,
                row.search_misses,
                row.malicious,
                row.malicious_customers.len()
            ),
        )?;
    }
    out.flush().map_err(|error| SimError::Internal(format!("`{}`: {error}", path.display())))
}

/// How far held-out seeds start from a scenario's own: detection's thresholds are tuned on
/// each scenario's own seed and the next few (`cordon eval --seeds 5`, and the test suite's
/// evaluation), never on seeds this far off, so `cordon eval --held-out` scores what tuning
/// never saw.
pub const HELD_OUT_SEED_OFFSET: u64 = 1_000_003;

/// `scenario` moved to its held-out seeds (see [`HELD_OUT_SEED_OFFSET`]).
pub fn held_out(scenario: &Scenario) -> Scenario {
    let mut held_out = scenario.clone();
    held_out.seed = scenario.seed.wrapping_add(HELD_OUT_SEED_OFFSET);
    held_out
}

/// Scores each scenario with `seeds` seeds (its own, then the next ones), in `work`.
pub fn evaluate(
    scenarios: &[Scenario],
    seeds: u32,
    work: &Path,
    features: Option<&Path>,
    progress: &mut dyn FnMut(&RunScore),
) -> Result<Vec<RunScore>, SimError> {
    if let Some(path) = features
        && path.exists()
    {
        std::fs::remove_file(path).map_err(|error| SimError::Internal(format!("`{}`: {error}", path.display())))?;
    }
    let mut scores = Vec::new();
    for scenario in scenarios {
        for offset in 0..u64::from(seeds.max(1)) {
            let mut seeded = scenario.clone();
            seeded.seed = scenario.seed.wrapping_add(offset);
            let dir: PathBuf = work.join(format!("{}-{}", scenario.name, seeded.seed));
            let score = score_run(&seeded, &dir, features)?;
            std::fs::remove_dir_all(&dir)
                .map_err(|error| SimError::Internal(format!("`{}`: {error}", dir.display())))?;
            progress(&score);
            scores.push(score);
        }
    }
    Ok(scores)
}

/// Figures across runs for one behaviour and method.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    pub behaviour: String,
    pub method: String,
    pub insiders: u64,
    pub caught: u64,
    pub exposed_median: f64,
    pub exposed_p95: f64,
    /// The median exposure before containment (for cordon, what a containment that stopped
    /// everything at once would have left).
    pub exposed_before_median: f64,
    pub high_balance_median: f64,
    pub canaries_max: u64,
    pub hours_median: Option<f64>,
}

/// One insider's (or one ring's) outcome, for summaries.
#[derive(Debug, Clone, Copy, Default)]
struct Outcome {
    caught: bool,
    exposed: u64,
    exposed_before: u64,
    high_balance: u64,
    canaries: u64,
    hours: Option<f64>,
}

impl Outcome {
    fn of(insider: &InsiderScore) -> Outcome {
        Outcome {
            caught: insider.caught,
            exposed: insider.customers_exposed,
            exposed_before: insider.customers_exposed_before_containment,
            high_balance: insider.high_balance_exposed,
            canaries: insider.canaries_touched,
            hours: insider.hours_to_contain,
        }
    }

    /// A ring is caught when any member is, soonest; its exposure is its members'.
    fn join(self, member: Outcome) -> Outcome {
        Outcome {
            caught: self.caught || member.caught,
            exposed: self.exposed + member.exposed,
            exposed_before: self.exposed_before + member.exposed_before,
            high_balance: self.high_balance + member.high_balance,
            canaries: self.canaries + member.canaries,
            hours: match (self.hours, member.hours) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        }
    }
}

/// Per behaviour and method, across `scores`; rings count once per ring.
pub fn summarize(scores: &[RunScore]) -> Vec<Summary> {
    let mut groups: BTreeMap<(String, String), Vec<Outcome>> = BTreeMap::new();
    for score in scores {
        for method in &score.methods {
            let mut rings: BTreeMap<(&str, &str), Outcome> = BTreeMap::new();
            for insider in &method.insiders {
                if insider.behaviour == "ring" || insider.behaviour == "handoff_ring" {
                    let ring = rings.entry((insider.behaviour.as_str(), insider.label.as_str())).or_default();
                    *ring = ring.join(Outcome::of(insider));
                } else {
                    groups
                        .entry((insider.behaviour.clone(), method.method.clone()))
                        .or_default()
                        .push(Outcome::of(insider));
                }
            }
            for ((behaviour, _), ring) in rings {
                groups.entry((behaviour.to_string(), method.method.clone())).or_default().push(ring);
            }
        }
    }
    groups
        .into_iter()
        .map(|((behaviour, method), items)| {
            let exposed: Vec<f64> = items.iter().map(|item| item.exposed as f64).collect();
            let before: Vec<f64> = items.iter().map(|item| item.exposed_before as f64).collect();
            let high: Vec<f64> = items.iter().map(|item| item.high_balance as f64).collect();
            let hours: Vec<f64> = items.iter().filter_map(|item| item.hours).collect();
            Summary {
                behaviour,
                method,
                insiders: items.len() as u64,
                caught: items.iter().filter(|item| item.caught).count() as u64,
                exposed_median: percentile(&exposed, 0.5),
                exposed_p95: percentile(&exposed, 0.95),
                exposed_before_median: percentile(&before, 0.5),
                high_balance_median: percentile(&high, 0.5),
                canaries_max: items.iter().map(|item| item.canaries).max().unwrap_or(0),
                hours_median: (!hours.is_empty()).then(|| percentile(&hours, 0.5)),
            }
        })
        .collect()
}

/// Per method across runs: false suspensions and alerts per 1,000 agent-days.
pub fn false_rates(scores: &[RunScore]) -> BTreeMap<String, (f64, f64)> {
    let agent_days: u64 = scores.iter().map(|score| score.agent_days).sum();
    let mut rates: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for score in scores {
        for method in &score.methods {
            let rate = rates.entry(method.method.clone()).or_default();
            rate.0 += method.false_suspensions as f64;
            rate.1 += method.false_alerts as f64;
        }
    }
    for rate in rates.values_mut() {
        let per = 1000.0 / (agent_days.max(1) as f64);
        *rate = (rate.0 * per, rate.1 * per);
    }
    rates
}

/// The nearest-rank percentile (0 for none).
pub fn percentile(values: &[f64], quantile: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((sorted.len() as f64 * quantile).ceil() as usize).saturating_sub(1);
    sorted.get(rank).copied().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use crate::engine::TruthInsider;

    fn access(time_ms: i64, request: &str, customer: &str, decision: &str) -> Entry {
        Entry {
            kind: "access".into(),
            time_ms,
            request: request.into(),
            agent: "agt-9".into(),
            action: "reveal".into(),
            customer: Some(customer.into()),
            decision: decision.into(),
            ..Entry::default()
        }
    }

    /// Regression: a live run's exposure was counted only until the insider's first
    /// containment, though a stepped-up insider is still shown cards and the ledger says so
    /// (1 to 3 more customers each, recounted for eleven insiders). The live count covers the
    /// whole run with the figure before containment beside it; a baseline's stops at its
    /// (hypothetical) containment; a refusal is never exposure.
    #[test]
    fn a_live_run_counts_what_the_insider_was_shown_after_containment_too() {
        let insider = TruthInsider {
            agent: "agt-9".into(),
            label: "insider-1".into(),
            behaviour: "harvester".into(),
            team: "l1-chat".into(),
            site: "us-sf".into(),
            start_day: 0,
            stop_day: 1,
            stopped_day: None,
            malicious_requests: vec!["r-1".into(), "r-2".into(), "r-3".into(), "r-4".into()],
            shown: Vec::new(),
        };
        let read = Read {
            entries: vec![
                access(50, "r-1", "cus-1", "allow"),
                access(150, "r-2", "cus-2", "allow"),
                access(160, "r-3", "cus-3", "deny"),
                access(170, "r-4", "cus-1", "allow"),
                access(180, "r-honest", "cus-4", "allow"),
            ],
            truth: Truth {
                scenario: "test".into(),
                seed: 1,
                policy: "default".into(),
                customers: 4,
                canaries: Vec::new(),
                high_balance_usd: 100_000.0,
                insiders: vec![insider],
            },
        };
        let malicious = read.truth.malicious_requests();
        let contained = HashMap::from([("agt-9".to_string(), 100)]);
        let cases = [
            (Counted::WholeRun, 2, 1, "the live run: cus-1 and cus-2 (after containment)"),
            (Counted::UntilContained, 1, 1, "a baseline: cus-1 only"),
        ];
        for (counted, exposed, before, what) in cases {
            let scores = exposures(&read, &malicious, &contained, counted, &|_| false, &|_| false);
            let score = &scores[0];
            assert_eq!(
                (score.customers_exposed, score.customers_exposed_before_containment),
                (exposed, before),
                "{what}"
            );
            assert!(score.caught && score.hours_to_contain.is_some(), "{what}");
        }
    }
}
