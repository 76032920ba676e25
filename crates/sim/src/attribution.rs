//! `cordon eval attribution`: attribution scored on simulated exchanges, the way `cordon eval`
//! scores detection. A scenario is played into a data directory; then many leaked samples of
//! each kind are drawn (from one insider, two, random customers, rich customers nobody
//! leaked, a busy honest agent's screens) and each goes through the gateway's attribution,
//! the same code `cordon incident attribute` runs. Per kind it counts how often the source is
//! blamed and how often an agent who is not the source is.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use cordon_gateway::{Claims, DataDir, Gateway, IncidentSpec, SystemClock, TokenRole};
use cordon_incident::read_sample;
use serde::Serialize;

use crate::engine::{Truth, TruthShown, read_truth, run};
use crate::leak::{LeakColumn, LeakSource, leak_sample};
use crate::people::{People, customer_number};
use crate::scenario::Scenario;
use crate::{HIGH_BALANCE_USD, SimError};

/// The three columns of a support screen, exact (copied after a reveal).
const EXACT: [LeakColumn; 3] = [LeakColumn::FullName, LeakColumn::Email, LeakColumn::Phone];
/// The same three, masked (a photo of cards).
const MASKED: [LeakColumn; 3] = [LeakColumn::MaskedName, LeakColumn::MaskedEmail, LeakColumn::MaskedPhone];
/// A screen with a reveal of the email only.
const MIXED: [LeakColumn; 3] = [LeakColumn::MaskedName, LeakColumn::Email, LeakColumn::MaskedPhone];

/// The targets the evaluation is held to.
pub const OTHER_BLAMED_MAX_RATE: f64 = 0.001;
pub const SOURCE_BLAMED_MIN_RATE: f64 = 0.99;

/// Where a kind's samples come from, and who counts as their source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// One insider, taken in turn.
    Insider,
    /// Two insiders' customers together (a kind that needs two).
    TwoInsiders,
    /// An insider's customers with a quarter of the rows random customers.
    NoisyInsider,
    /// Random customers: nobody's leak.
    Random,
    /// Random customers of high balance that no insider was shown: nobody's leak.
    RichUnleaked,
    /// Customers the busiest honest agent was shown but whose values it never revealed,
    /// as exact values: it cannot be the source, and nobody else is.
    BusyNeverRevealed,
    /// Customers the busiest honest agent was shown, as it was shown them: it is the source.
    BusyScreens,
}

/// One kind of sample.
#[derive(Debug, Clone, Copy)]
struct Kind {
    name: &'static str,
    origin: Origin,
    columns: &'static [LeakColumn],
    rows: usize,
    /// Held to the 99% target for blaming the source.
    must_blame: bool,
}

const KINDS: [Kind; 14] = [
    Kind { name: "insider exact", origin: Origin::Insider, columns: &EXACT, rows: 20, must_blame: true },
    Kind { name: "insider masked", origin: Origin::Insider, columns: &MASKED, rows: 20, must_blame: true },
    Kind { name: "insider mixed", origin: Origin::Insider, columns: &MIXED, rows: 20, must_blame: false },
    Kind { name: "insider noisy", origin: Origin::NoisyInsider, columns: &EXACT, rows: 20, must_blame: false },
    Kind { name: "insider 5 rows", origin: Origin::Insider, columns: &EXACT, rows: 5, must_blame: false },
    Kind {
        name: "insider masked email",
        origin: Origin::Insider,
        columns: &[LeakColumn::MaskedEmail],
        rows: 20,
        must_blame: false,
    },
    Kind {
        name: "insider full name",
        origin: Origin::Insider,
        columns: &[LeakColumn::FullName],
        rows: 20,
        must_blame: false,
    },
    Kind { name: "two insiders", origin: Origin::TwoInsiders, columns: &EXACT, rows: 20, must_blame: false },
    Kind { name: "random exact", origin: Origin::Random, columns: &EXACT, rows: 20, must_blame: false },
    Kind { name: "random masked", origin: Origin::Random, columns: &MASKED, rows: 20, must_blame: false },
    Kind { name: "rich exact", origin: Origin::RichUnleaked, columns: &EXACT, rows: 20, must_blame: false },
    Kind { name: "rich masked", origin: Origin::RichUnleaked, columns: &MASKED, rows: 20, must_blame: false },
    Kind { name: "busy agent exact", origin: Origin::BusyNeverRevealed, columns: &EXACT, rows: 20, must_blame: false },
    Kind { name: "busy agent masked", origin: Origin::BusyScreens, columns: &MASKED, rows: 20, must_blame: false },
];

/// One kind's figures on one scenario.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AttributionScore {
    pub scenario: String,
    pub kind: String,
    pub columns: Vec<String>,
    pub rows: usize,
    /// Who the source is: `insider`, `insiders`, `busy agent` or `none`.
    pub source: String,
    pub samples: u64,
    /// Samples that blamed (one of) the source.
    pub source_blamed: u64,
    /// Samples that blamed an agent who is not the source.
    pub other_blamed: u64,
    /// Who was wrongly blamed, with how often.
    pub others: BTreeMap<String, u64>,
    /// Samples per verdict (`blamed`, `inconclusive`, ...).
    pub verdicts: BTreeMap<String, u64>,
    /// Held to the target of blaming the source in 99% of samples.
    pub must_blame: bool,
    pub seconds: f64,
}

impl AttributionScore {
    /// Whether the kind meets its targets.
    pub fn meets_targets(&self) -> bool {
        let samples = self.samples.max(1) as f64;
        let others_ok = self.other_blamed as f64 / samples <= OTHER_BLAMED_MAX_RATE;
        let source_ok = !self.must_blame || self.source_blamed as f64 / samples >= SOURCE_BLAMED_MIN_RATE;
        others_ok && source_ok
    }
}

/// Runs one gateway call to its end on this thread (the gateway's calls wait only on the
/// ledger's threads).
fn wait<T>(call: impl std::future::Future<Output = Result<T, cordon_gateway::GatewayError>>) -> Result<T, SimError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|error| SimError::Internal(format!("a current-thread runtime: {error}")))?;
    Ok(runtime.block_on(call)?)
}

/// Plays `scenario` into `work` (which it leaves for the caller to remove), then draws
/// `samples` samples of every kind and attributes each.
pub fn evaluate_attribution(
    scenario: &Scenario,
    work: &Path,
    samples: u64,
    progress: &mut dyn FnMut(&AttributionScore),
) -> Result<Vec<AttributionScore>, SimError> {
    let data = work.join(format!("{}-{}", scenario.name, scenario.seed));
    run(scenario, &data, &mut |_, _, _| {})?;
    let truth = read_truth(&data)?;
    let gateway = DataDir::new(&data).open(Arc::new(SystemClock))?;
    let busy = busiest_honest_agent(&gateway, &truth)?;
    let people = People::new(truth.seed, truth.customers, truth.canaries.len() as u64);
    let leaked: BTreeSet<u64> = truth
        .insiders
        .iter()
        .flat_map(|insider| insider.shown.iter().filter_map(|shown| customer_number(&shown.customer)))
        .collect();
    let rich: Vec<u64> = (1..=people.ordinary_count())
        .filter(|number| !leaked.contains(number) && people.summary(*number).balance_usd >= HIGH_BALANCE_USD)
        .collect();
    let mut scores = Vec::new();
    for kind in KINDS {
        if kind.origin == Origin::TwoInsiders && truth.insiders.len() < 2 {
            continue;
        }
        if matches!(kind.origin, Origin::Insider | Origin::NoisyInsider) && truth.insiders.is_empty() {
            continue;
        }
        let started = Instant::now();
        let mut score = AttributionScore {
            scenario: scenario.name.clone(),
            kind: kind.name.into(),
            columns: kind.columns.iter().map(|column| column.name().to_string()).collect(),
            rows: kind.rows,
            source: match kind.origin {
                Origin::Insider | Origin::NoisyInsider => "insider",
                Origin::TwoInsiders => "insiders",
                Origin::BusyScreens => "busy agent",
                Origin::Random | Origin::RichUnleaked | Origin::BusyNeverRevealed => "none",
            }
            .into(),
            samples: 0,
            source_blamed: 0,
            other_blamed: 0,
            others: BTreeMap::new(),
            verdicts: BTreeMap::new(),
            must_blame: kind.must_blame,
            seconds: 0.0,
        };
        for draw in 0..samples {
            let seed = scenario.seed.wrapping_mul(1_000_003).wrapping_add(draw);
            let Some((csv, sources)) = draw_sample(kind, &truth, &busy, &rich, draw, seed) else { continue };
            let sample = read_sample("sample.csv", &csv).map_err(|error| SimError::Internal(error.to_string()))?;
            if sample.rows.len() < kind.rows {
                // The source was not shown enough customers this way: no such leak exists.
                continue;
            }
            let found = gateway.attribution_of(&sample)?;
            score.samples += 1;
            *score.verdicts.entry(found.verdict.name().to_string()).or_default() += 1;
            let blamed: Vec<&str> = found.blamed().map(|agent| agent.agent.as_str()).collect();
            if blamed.iter().any(|agent| sources.contains(*agent)) {
                score.source_blamed += 1;
            }
            let others: Vec<&&str> = blamed.iter().filter(|agent| !sources.contains(**agent)).collect();
            if !others.is_empty() {
                score.other_blamed += 1;
                for agent in others {
                    *score.others.entry((*agent).to_string()).or_default() += 1;
                }
            }
        }
        score.seconds = started.elapsed().as_secs_f64();
        progress(&score);
        scores.push(score);
    }
    Ok(scores)
}

/// The agent, not an insider, shown the most customers; and how it was shown each one.
struct Busy {
    agent: String,
    shown: Vec<TruthShown>,
}

fn busiest_honest_agent(gateway: &Gateway, truth: &Truth) -> Result<Busy, SimError> {
    let analyst = Claims::in_process(TokenRole::Analyst.identity(), TokenRole::Analyst, "eval");
    let insiders: BTreeSet<&str> = truth.insiders.iter().map(|insider| insider.agent.as_str()).collect();
    let everyone = wait(gateway.open_incident(
        &analyst,
        IncidentSpec { title: "eval".into(), ..IncidentSpec::default() },
        "eval",
    ))?;
    let scope = wait(gateway.incident_scope(&analyst, &everyone.id, "eval"))?;
    let agent = scope
        .agents
        .iter()
        .filter(|agent| !insiders.contains(agent.agent.as_str()))
        .max_by_key(|agent| (agent.customers, std::cmp::Reverse(agent.agent.clone())))
        .map(|agent| agent.agent.clone())
        .ok_or_else(|| SimError::Internal("no honest agent was shown a customer".into()))?;
    let spec = IncidentSpec { title: "eval".into(), agents: vec![agent.clone()], ..IncidentSpec::default() };
    let one = wait(gateway.open_incident(&analyst, spec, "eval"))?;
    let scope = wait(gateway.incident_scope(&analyst, &one.id, "eval"))?;
    let names =
        |fields: &BTreeSet<cordon_incident::Field>| fields.iter().map(|field| field.name().to_string()).collect();
    let shown = scope
        .customers
        .iter()
        .map(|customer| TruthShown {
            customer: customer.customer.clone(),
            masked_only: names(&customer.masked_only),
            revealed: names(&customer.revealed),
        })
        .collect();
    Ok(Busy { agent, shown })
}

/// The CSV of one sample of `kind` and the agents that count as its source.
fn draw_sample(
    kind: Kind,
    truth: &Truth,
    busy: &Busy,
    rich: &[u64],
    draw: u64,
    seed: u64,
) -> Option<(String, BTreeSet<String>)> {
    let insiders = truth.insiders.len().max(1);
    let one = (draw as usize) % insiders;
    let agent = |position: usize| truth.insiders.get(position).map(|insider| insider.agent.clone());
    let sample = |source: &LeakSource, rows: usize| leak_sample(truth, source, kind.columns, rows, seed);
    Some(match kind.origin {
        Origin::Insider => (sample(&LeakSource::Insiders(vec![one]), kind.rows), agent(one).into_iter().collect()),
        Origin::TwoInsiders => {
            let other = (one + 1) % insiders;
            (sample(&LeakSource::Insiders(vec![one, other]), kind.rows), [agent(one)?, agent(other)?].into())
        }
        Origin::NoisyInsider => {
            let noise = kind.rows / 4;
            let leaked = sample(&LeakSource::Insiders(vec![one]), kind.rows - noise);
            let random = sample(&LeakSource::Anyone, noise);
            let mut csv = leaked;
            csv.extend(random.lines().skip(1).map(|line| format!("{line}\n")));
            (csv, agent(one).into_iter().collect())
        }
        Origin::Random => (sample(&LeakSource::Anyone, kind.rows), BTreeSet::new()),
        Origin::RichUnleaked => (sample(&LeakSource::Customers(rich.to_vec()), kind.rows), BTreeSet::new()),
        Origin::BusyNeverRevealed => {
            let masked_only: Vec<TruthShown> = busy
                .shown
                .iter()
                .filter(|shown| !["full_name", "email", "phone"].iter().any(|field| shown.revealed.contains(*field)))
                .cloned()
                .collect();
            let numbers = masked_only.iter().filter_map(|shown| customer_number(&shown.customer)).collect();
            (sample(&LeakSource::Customers(numbers), kind.rows), BTreeSet::new())
        }
        Origin::BusyScreens => (sample(&LeakSource::Shown(busy.shown.clone()), kind.rows), [busy.agent.clone()].into()),
    })
}
