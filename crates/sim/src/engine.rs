//! Runs a scenario against a fresh data directory: creates it, imports the population,
//! then plays each day's plan through the gateway in waves, and writes the ground truth.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use cordon_directory::{Agent, Role};
use cordon_gateway::{DataDir, Gateway, ImportKind};
use cordon_policy::CategoryTable;
use serde::Serialize;

use crate::SimError;
use crate::driver::{Call, Driver, InProcess, Outcome, Received};
use crate::exec::SimClock;
use crate::people::People;
use crate::plan::{InsiderAgent, Planned, Planner};
use crate::rng::Rng;
use crate::scenario::{Behaviour, PolicyChoice, Scenario};
use crate::world::{SimAgent, agents};

/// Where the ground truth goes, inside the data directory. The gateway never reads it.
pub const TRUTH_FILE: &str = "sim/truth.json";
/// Today's support tooling, for scenarios that model an exchange without cordon's rules.
pub const PERMISSIVE_POLICIES: &str = include_str!("../../../policies/permissive.cedar");
/// Requests planned within this much simulated time start together and share group
/// commits; an agent's own requests stay in order, one per wave. Five minutes ran a
/// 92,000-request scenario 1.4x faster than one minute (15.3 s against 22.0 s). Entries of
/// different agents may therefore sit up to this far out of time order in the ledger.
const WAVE_MS: i64 = 300_000;

/// Progress of a run, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Customers,
    Traffic,
}

/// Which agents were insiders and which requests were theirs.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Truth {
    pub scenario: String,
    pub seed: u64,
    pub policy: String,
    pub customers: u64,
    pub canaries: Vec<String>,
    pub high_balance_usd: f64,
    pub insiders: Vec<TruthInsider>,
}

impl Truth {
    /// Each malicious request id and the position of the insider whose move it was.
    pub fn malicious_requests(&self) -> std::collections::HashMap<&str, usize> {
        self.insiders
            .iter()
            .enumerate()
            .flat_map(|(position, insider)| insider.malicious_requests.iter().map(move |id| (id.as_str(), position)))
            .collect()
    }
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct TruthInsider {
    pub agent: String,
    pub label: String,
    pub behaviour: String,
    pub team: String,
    pub site: String,
    pub start_day: u32,
    pub stop_day: u32,
    /// The day the gateway stopped the agent (suspended), if it did.
    pub stopped_day: Option<u32>,
    /// Request ids of the insider's own moves (not its cover work); each names one entry.
    pub malicious_requests: Vec<String>,
    /// Everything the gateway showed this agent over the run, cover work included, as the
    /// client received it: per customer, the fields shown masked and never revealed, and
    /// the fields revealed. Incident scope over this agent must give exactly this.
    #[serde(default)]
    pub shown: Vec<TruthShown>,
}

/// What one customer's data showed one insider, by customer id.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct TruthShown {
    pub customer: String,
    pub masked_only: BTreeSet<String>,
    pub revealed: BTreeSet<String>,
}

/// Counts and timings of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReport {
    pub customers_seconds: f64,
    pub traffic_seconds: f64,
    pub requests: u64,
    pub waves: u64,
}

/// Simulates `scenario` into `data` (absent or empty).
pub fn run(scenario: &Scenario, data: &Path, progress: &mut dyn FnMut(Phase, u64, u64)) -> Result<RunReport, SimError> {
    run_on(scenario, data, None, progress)
}

/// [`run`], with the store and the ledger in the PostgreSQL database `store` if given (a new
/// one); its ledger is then exported into `data/ledger` when the run ends, with its verifier
/// key, so the story and every `cordon log` command read it as they read a file ledger.
pub fn run_on(
    scenario: &Scenario,
    data: &Path,
    store: Option<&str>,
    progress: &mut dyn FnMut(Phase, u64, u64),
) -> Result<RunReport, SimError> {
    let report = simulate(scenario, data, store, progress)?;
    if let Some(url) = store {
        export_ledger(url, data)?;
    }
    Ok(report)
}

/// The shared ledger at `url` written into `data/ledger` as files.
fn export_ledger(url: &str, data: &Path) -> Result<(), SimError> {
    let failed = |error: String| {
        SimError::Internal(format!("exporting the ledger of {}: {error}", cordon_store::without_password(url)))
    };
    let ledger = cordon_store::SharedLedger::open_reader(url).map_err(|error| failed(error.to_string()))?;
    let folder = data.join(cordon_gateway::LEDGER_DIR);
    ledger.export(&folder).map_err(|error| failed(error.to_string()))?;
    let key = cordon_store::SharedLedger::key(url)
        .map_err(|error| failed(error.to_string()))?
        .ok_or_else(|| failed("it holds no ledger key".into()))?;
    let private = folder.join("private");
    std::fs::create_dir_all(&private).map_err(|error| failed(error.to_string()))?;
    std::fs::write(folder.join(cordon_ledger::VERIFIER_KEY_FILE), format!("{}\n", key.verifier))
        .map_err(|error| failed(error.to_string()))
}

fn simulate(
    scenario: &Scenario,
    data: &Path,
    store: Option<&str>,
    progress: &mut dyn FnMut(Phase, u64, u64),
) -> Result<RunReport, SimError> {
    let clock = Arc::new(SimClock::default());
    let people = People::new(scenario.seed, scenario.customers, scenario.canaries);
    let day0_ms = scenario.start.unix_days() * 86_400_000;
    clock.set(day0_ms - 3_600_000);
    let dir = DataDir::new(data);
    dir.init_with_store(None, store, clock.clone())?;
    name_the_exchange(&dir)?;
    if scenario.policy == PolicyChoice::Permissive {
        use_permissive_policies(&dir, data)?;
    }
    if !scenario.detection {
        let mut config = dir.config()?;
        config.detection.enabled = false;
        write_config(&dir, &config)?;
    }
    let gateway = dir.open(clock.clone())?;
    let all_agents = agents(scenario);
    let mut report = RunReport::default();

    // Staff first (new hires join on their day), then the customer base.
    let started = Instant::now();
    let staff: Vec<Agent> =
        all_agents.iter().filter(|agent| agent.joins_day == 0).map(|agent| agent.agent.clone()).collect();
    cordon_gateway::import_agents(&gateway, &staff)?;
    import_customers(&gateway, &people, progress)?;
    report.customers_seconds = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut driver = InProcess::new(&gateway, &clock, &all_agents);
    let played = play(scenario, &people, &all_agents, gateway.categories(), &mut driver, progress)?;
    report.traffic_seconds = started.elapsed().as_secs_f64();
    report.requests = played.requests;
    report.waves = played.waves;
    write_truth(&data.join(TRUTH_FILE), &truth(scenario, &people, played.insiders))?;
    // Closing the gateway publishes the final checkpoint.
    drop(gateway);
    Ok(report)
}

/// What playing the days gave: the insiders' truth and the request counts.
pub(crate) struct Played {
    pub insiders: Vec<TruthInsider>,
    pub requests: u64,
    pub waves: u64,
}

/// The field names a customer was shown masked, and in the clear.
type MaskedAndRevealed = (BTreeSet<String>, BTreeSet<String>);

/// Plays every day's plan through `driver`, in waves, and keeps the insiders' truth.
pub(crate) fn play(
    scenario: &Scenario,
    people: &People,
    all_agents: &[SimAgent],
    categories: &CategoryTable,
    driver: &mut dyn Driver,
    progress: &mut dyn FnMut(Phase, u64, u64),
) -> Result<Played, SimError> {
    let insiders = choose_insiders(scenario, all_agents)?;
    let mut planner = Planner::new(scenario, people, all_agents, categories, insiders);
    let mut truth_insiders: Vec<TruthInsider> = planner
        .insiders
        .iter()
        .filter_map(|insider| {
            let spec = scenario.insiders.get(insider.spec)?;
            let agent = &all_agents.get(insider.agent)?.agent;
            Some(TruthInsider {
                agent: agent.id.clone(),
                label: spec.label.clone(),
                behaviour: spec.behaviour.name().to_string(),
                team: agent.team.clone(),
                site: agent.site.clone(),
                start_day: spec.start_day,
                stop_day: spec.stop_day,
                stopped_day: None,
                malicious_requests: Vec::new(),
                shown: Vec::new(),
            })
        })
        .collect();
    // Per insider: customer -> (masked, revealed), from what the driver received.
    let mut received: Vec<BTreeMap<String, MaskedAndRevealed>> = vec![BTreeMap::new(); truth_insiders.len()];
    let mut played = Played { insiders: Vec::new(), requests: 0, waves: 0 };
    let mut stopped: BTreeSet<usize> = BTreeSet::new();
    for day in 0..scenario.days {
        let plan = planner.day(day, &stopped);
        let mut queue: VecDeque<Planned> = plan.into();
        while let Some(first) = queue.front() {
            // A wave: what starts within the window, one request per agent, in plan order.
            let window_end = first.time_ms + WAVE_MS;
            let mut taken = BTreeSet::new();
            let mut wave = Vec::new();
            let mut deferred = VecDeque::new();
            while let Some(planned) = queue.pop_front() {
                if planned.time_ms >= window_end {
                    queue.push_front(planned);
                    break;
                }
                if stopped.contains(&planned.agent) {
                    continue;
                }
                if taken.insert(planned.agent) {
                    wave.push(planned);
                } else {
                    deferred.push_back(planned);
                }
            }
            while let Some(planned) = deferred.pop_back() {
                queue.push_front(planned);
            }
            let calls = wave
                .iter()
                .map(|planned| Call {
                    time_ms: planned.time_ms,
                    agent: planned.agent,
                    admin: planned.admin,
                    act: planned.act.clone(),
                })
                .collect();
            played.waves += 1;
            played.requests += wave.len() as u64;
            let results = driver.wave(calls)?;
            for (planned, answer) in wave.iter().zip(results) {
                let outcome = answer.outcome;
                let request_id = answer.request_id;
                if !planned.admin
                    && let Some(position) = planner.insiders.iter().position(|insider| insider.agent == planned.agent)
                    && let Some(shown) = received.get_mut(position)
                {
                    for Received { customer, masked, revealed } in answer.received {
                        let entry = shown.entry(customer).or_default();
                        entry.0.extend(masked);
                        entry.1.extend(revealed);
                    }
                }
                // Suspended: the agent's requests fail from here on, so it stops.
                if outcome == Outcome::Suspended
                    && stopped.insert(planned.agent)
                    && let Some(position) = planner.insiders.iter().position(|insider| insider.agent == planned.agent)
                    && let Some(truth) = truth_insiders.get_mut(position)
                {
                    truth.stopped_day = Some(day);
                }
                if let Some(position) = planned.insider
                    && let Some(truth) = truth_insiders.get_mut(position)
                {
                    truth.malicious_requests.push(request_id);
                }
            }
        }
        progress(Phase::Traffic, u64::from(day) + 1, u64::from(scenario.days));
    }
    for (insider, shown) in truth_insiders.iter_mut().zip(received) {
        insider.shown = shown
            .into_iter()
            .map(|(customer, (masked, revealed))| TruthShown {
                customer,
                masked_only: masked.difference(&revealed).cloned().collect(),
                revealed,
            })
            .collect();
    }
    played.insiders = truth_insiders;
    Ok(played)
}

/// The ground truth of a run.
pub(crate) fn truth(scenario: &Scenario, people: &People, insiders: Vec<TruthInsider>) -> Truth {
    Truth {
        scenario: scenario.name.clone(),
        seed: scenario.seed,
        policy: scenario.policy.name().to_string(),
        customers: scenario.customers,
        canaries: (people.ordinary_count() + 1..=people.count()).map(crate::people::customer_id).collect(),
        high_balance_usd: crate::plan::HIGH_BALANCE_USD,
        insiders,
    }
}

/// Streams the generated customers through the same JSONL import an exchange would use
/// (sealed, with their blind indexes), so the base never sits in memory. Benchmarks use it
/// to build a realistic customer base.
pub fn import_customers(
    gateway: &Gateway,
    people: &People,
    progress: &mut dyn FnMut(Phase, u64, u64),
) -> Result<(), SimError> {
    let (reader, writer) =
        std::io::pipe().map_err(|error| SimError::Internal(format!("cannot open a pipe: {error}")))?;
    let generated = AtomicU64::new(0);
    let total = people.count();
    std::thread::scope(|scope| {
        let generator = scope.spawn(|| -> std::io::Result<()> {
            let mut out = std::io::BufWriter::with_capacity(1 << 20, writer);
            for number in 1..=total {
                serde_json::to_writer(&mut out, &people.customer(number).record)?;
                out.write_all(b"\n")?;
                generated.store(number, Ordering::Relaxed);
            }
            out.flush()
        });
        let imported = cordon_gateway::import(gateway, ImportKind::Customers, std::io::BufReader::new(reader), |_| {
            progress(Phase::Customers, generated.load(Ordering::Relaxed), total)
        });
        let written = generator.join().map_err(|_| SimError::Internal("the customer generator failed".into()))?;
        let imported = imported?;
        written.map_err(|error| SimError::Internal(format!("generating customers: {error}")))?;
        if let Some(rejected) = imported.rejected.first() {
            return Err(SimError::Internal(format!(
                "simulated customers: line {} was refused: {}",
                rejected.line, rejected.reason
            )));
        }
        progress(Phase::Customers, total, total);
        Ok(())
    })
}

/// Points the data directory at the permissive policy set (today's tooling).
fn use_permissive_policies(dir: &DataDir, data: &Path) -> Result<(), SimError> {
    let root = data.canonicalize().map_err(|error| SimError::Internal(format!("`{}`: {error}", data.display())))?;
    let policies = root.join("policies");
    std::fs::create_dir_all(&policies)
        .map_err(|error| SimError::Internal(format!("`{}`: {error}", policies.display())))?;
    let path = policies.join("permissive.cedar");
    std::fs::write(&path, PERMISSIVE_POLICIES)
        .map_err(|error| SimError::Internal(format!("`{}`: {error}", path.display())))?;
    let mut config = dir.config()?;
    config.policy.policies = Some(path.display().to_string());
    write_config(dir, &config)
}

/// The simulated exchange's name and data protection officer, as an operator sets them in
/// `[incident]`: notices and the regulator report need a real contact point.
fn name_the_exchange(dir: &DataDir) -> Result<(), SimError> {
    let mut config = dir.config()?;
    config.incident.exchange = "Simulated Exchange".into();
    config.incident.contact = "privacy@simulated-exchange.example (data protection officer)".into();
    write_config(dir, &config)
}

fn write_config(dir: &DataDir, config: &cordon_gateway::Config) -> Result<(), SimError> {
    dir.write_config(config).map_err(|error| SimError::Internal(error.to_string()))
}

/// Picks the agents who turn, one spec at a time, from ordinary agents present from day 0.
fn choose_insiders(scenario: &Scenario, agents: &[SimAgent]) -> Result<Vec<InsiderAgent>, SimError> {
    let mut rng = Rng::stream(scenario.seed, "insiders");
    let mut chosen: Vec<InsiderAgent> = Vec::new();
    for (position, spec) in scenario.insiders.iter().enumerate() {
        // A ring's members share a site: a vendor site unless the scenario names one. Members
        // who hand tickets to one another share a team too.
        let site = match (&spec.site, spec.behaviour.is_group()) {
            (Some(site), _) => Some(site.clone()),
            (None, true) => Some("vendor-bpo-1".to_string()),
            (None, false) => None,
        };
        let team = match (&spec.team, spec.behaviour) {
            (Some(team), _) => Some(team.clone()),
            (None, Behaviour::HandoffRing) => Some("l1-chat".to_string()),
            (None, _) => None,
        };
        let mut candidates: Vec<usize> = agents
            .iter()
            .enumerate()
            .filter(|(index, agent)| {
                agent.agent.role == Role::Agent
                    && agent.joins_day == 0
                    && team.as_ref().is_none_or(|team| &agent.agent.team == team)
                    && site.as_ref().is_none_or(|site| &agent.agent.site == site)
                    && !chosen.iter().any(|insider| insider.agent == *index)
            })
            .map(|(index, _)| index)
            .collect();
        rng.shuffle(&mut candidates);
        if candidates.len() < spec.agents as usize {
            return Err(SimError::Scenario(format!(
                "insider {} ({}): only {} agents match team {} and site {}, {} needed",
                position + 1,
                spec.behaviour.name(),
                candidates.len(),
                team.as_deref().unwrap_or("any"),
                site.as_deref().unwrap_or("any"),
                spec.agents
            )));
        }
        for &agent in candidates.iter().take(spec.agents as usize) {
            chosen.push(InsiderAgent {
                spec: position,
                agent,
                taken: BTreeSet::new(),
                next_number: 0,
                canaries_touched: false,
            });
        }
    }
    Ok(chosen)
}

pub(crate) fn write_truth(path: &Path, truth: &Truth) -> Result<(), SimError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|error| SimError::Internal(format!("`{}`: {error}", parent.display())))?;
    }
    let text = serde_json::to_string_pretty(truth).map_err(|error| SimError::Internal(error.to_string()))?;
    std::fs::write(path, text).map_err(|error| SimError::Internal(format!("`{}`: {error}", path.display())))
}

/// Reads the ground truth a run wrote.
pub fn read_truth(data: &Path) -> Result<Truth, SimError> {
    let path = data.join(TRUTH_FILE);
    let text =
        std::fs::read_to_string(&path).map_err(|error| SimError::Internal(format!("`{}`: {error}", path.display())))?;
    serde_json::from_str(&text).map_err(|error| SimError::Internal(format!("`{}`: {error}", path.display())))
}

/// Distinct customers each insider's moves reach when nothing stops it: its plan played in
/// full, without the gateway (the comparison `cordon demo` draws).
pub(crate) fn planned_reach(scenario: &Scenario) -> Result<Vec<u64>, SimError> {
    let people = People::new(scenario.seed, scenario.customers, scenario.canaries);
    let all_agents = agents(scenario);
    let categories = CategoryTable::default();
    let insiders = choose_insiders(scenario, &all_agents)?;
    let count = insiders.len();
    let mut planner = Planner::new(scenario, &people, &all_agents, &categories, insiders);
    let mut reached: Vec<BTreeSet<String>> = vec![BTreeSet::new(); count];
    let stopped = BTreeSet::new();
    for day in 0..scenario.days {
        for planned in planner.day(day, &stopped) {
            let customer = match &planned.act {
                // What the story counts as exposed: cards shown and fields revealed.
                crate::plan::Act::View { customer, .. } | crate::plan::Act::Reveal { customer, .. } => customer,
                _ => continue,
            };
            if let Some(set) = planned.insider.and_then(|position| reached.get_mut(position)) {
                set.insert(customer.clone());
            }
        }
    }
    Ok(reached.into_iter().map(|set| set.len() as u64).collect())
}
