//! `cordon sim` and `cordon demo`: run a scenario, tell its story from the ledger, serve it.

use anyhow::{Context as _, bail};
use cordon_gateway::{DataDir, SystemClock, TokenRole};
use cordon_sim::{HttpTarget, Phase, PolicyChoice, Scenario, Story};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};

/// The scenario `cordon demo` runs when given none.
const DEMO_SCENARIO: &str = include_str!("../../../../scenarios/kraken-2026.toml");

pub fn sim(scenario_path: &Path, data: &Path, seed: Option<u64>, store: Option<&str>) -> anyhow::Result<()> {
    let mut scenario = Scenario::load(scenario_path)?;
    if let Some(seed) = seed {
        scenario.seed = seed;
    }
    let (story, report) = simulate(&scenario, data, store)?;
    print!("{}", story.render(&scenario, &report));
    println!("Data         {} (ground truth in {})", data.display(), data.join(cordon_sim::TRUTH_FILE).display());
    Ok(())
}

pub fn sim_over_http(
    scenario_path: &Path,
    url: &str,
    token_file: &Path,
    truth: &Path,
    seed: Option<u64>,
) -> anyhow::Result<()> {
    let mut scenario = Scenario::load(scenario_path)?;
    if let Some(seed) = seed {
        scenario.seed = seed;
    }
    let token = std::fs::read_to_string(token_file)
        .with_context(|| format!("cannot read the token file `{}`", token_file.display()))?;
    let target = HttpTarget::new(url, &token).with_context(|| format!("token file `{}`", token_file.display()))?;
    if scenario.policy == PolicyChoice::Permissive {
        println!("note: the scenario asks for today's permissive tooling; over HTTP the server's own policies decide");
    }
    let bars = Bars::new(&scenario);
    let (report, truth_read) =
        cordon_sim::run_over_http(&scenario, &target, truth, &mut |phase, done, total| bars.show(phase, done, total))
            .with_context(|| format!("simulating `{}` against {url}", scenario.name))?;
    println!(
        "Simulated `{}` against {url}: {} customers and staff in {:.1} s; {} requests in {:.1} s ({:.0}/s)",
        scenario.name,
        scenario.customers,
        report.customers_seconds,
        report.requests,
        report.traffic_seconds,
        report.requests as f64 / report.traffic_seconds.max(1e-9)
    );
    for insider in &truth_read.insiders {
        let stopped = insider.stopped_day.map(|day| format!(", stopped on day {day}")).unwrap_or_default();
        println!(
            "  insider {} ({}, {} at {}): {} requests{stopped}",
            insider.agent,
            insider.behaviour,
            insider.team,
            insider.site,
            insider.malicious_requests.len()
        );
    }
    println!("Ground truth {} (request ids match the server's ledger entries)", truth.display());
    Ok(())
}

pub fn demo(
    dir: Option<&Path>,
    scenario_path: Option<&Path>,
    replace: bool,
    no_serve: bool,
    listen: &str,
    store: Option<&str>,
) -> anyhow::Result<()> {
    let dir: PathBuf = dir.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("cordon-demo"));
    let scenario = match scenario_path {
        Some(path) => Scenario::load(path)?,
        None => Scenario::parse(DEMO_SCENARIO).context("the built-in demo scenario")?,
    };
    if dir.exists() && std::fs::read_dir(&dir).map(|mut entries| entries.next().is_some()).unwrap_or(true) {
        if !dir.join(cordon_sim::TRUTH_FILE).exists() {
            bail!("`{}` exists and is not an earlier demo; give another folder", dir.display());
        }
        if !replace {
            bail!(
                "`{}` holds an earlier demo; pass --replace to run it again there, or give another folder",
                dir.display()
            );
        }
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot remove the earlier demo in `{}`", dir.display()))?;
    }
    println!("cordon demo: simulating `{}` into `{}`", scenario.name, dir.display());
    let (story, report) = simulate(&scenario, &dir, store)?;
    println!();
    print!("{}", story.render(&scenario, &report));
    println!();
    let data = DataDir::new(&dir);
    let touched = story
        .insiders
        .iter()
        .find_map(|insider| insider.example_customer.clone())
        .unwrap_or_else(|| cordon_sim::customer_id(1));
    let service = data.issue_token(None, Some(TokenRole::Service), &SystemClock)?;
    let analyst = data.issue_token(None, Some(TokenRole::Analyst), &SystemClock)?;
    let base = format!("http://{listen}");
    println!("Try it       (service role: access histories and metrics; analyst role: alerts and the risk board)");
    println!("  export SERVICE_TOKEN={service}");
    println!("  export ANALYST_TOKEN={analyst}");
    println!("  curl -s {base}/v1/ledger/checkpoint");
    println!("  curl -s -H \"authorization: Bearer $SERVICE_TOKEN\" {base}/v1/customers/{touched}/access-history");
    println!("  curl -s -H \"authorization: Bearer $ANALYST_TOKEN\" {base}/v1/alerts?status=open");
    println!("  curl -s -H \"authorization: Bearer $SERVICE_TOKEN\" {base}/metrics | grep cordon_decisions");
    println!("  cordon log verify {}/ledger --vkey {}/ledger/private/verifier-key", dir.display(), dir.display());
    print_incident_tour(&dir)?;
    let sign_in = demo_sign_in(&data, &touched)?;
    println!();
    println!("Console      {base}/console/ (sign in with a token, or in one click on this demo:)");
    for label in sign_in.keys() {
        println!("  {base}/console/demo/{label}");
    }
    if no_serve {
        return Ok(());
    }
    println!();
    crate::commands::data::serve_quietly(&dir, Some(listen.to_string()), sign_in, false)
}

/// Writes the leaked sample an extortion email would carry (masked renderings of the
/// insiders' customers, as photographed off their screens) and prints the incident commands.
fn print_incident_tour(dir: &Path) -> anyhow::Result<()> {
    let truth = cordon_sim::read_truth(dir)?;
    if truth.insiders.is_empty() {
        return Ok(());
    }
    let insiders: Vec<usize> = (0..truth.insiders.len()).collect();
    let columns =
        [cordon_sim::LeakColumn::MaskedName, cordon_sim::LeakColumn::MaskedEmail, cordon_sim::LeakColumn::MaskedPhone];
    let sample = cordon_sim::leak_sample(&truth, &cordon_sim::LeakSource::Insiders(insiders), &columns, 20, truth.seed);
    let path = dir.join(LEAKED_SAMPLE_FILE);
    std::fs::write(&path, sample).with_context(|| format!("cannot write `{}`", path.display()))?;
    let agents: Vec<&str> = truth.insiders.iter().map(|insider| insider.agent.as_str()).collect();
    println!();
    println!(
        "Incident     the extortion email's proof, masked renderings off the insiders' screens: {}",
        path.display()
    );
    println!("  (they work with the server running: they reach it through its API)");
    println!("  export CORDON_DATA={}", dir.display());
    println!("  cordon incident open --title \"extortion email\" --agents {}", agents.join(","));
    println!("  cordon incident scope inc-1 --csv affected.csv --json scope.json");
    println!("  cordon incident open --title \"who leaked this sample\"");
    println!("  cordon incident attribute inc-2 --sample {}", path.display());
    println!("  cordon incident protect inc-1 --apply && cordon incident notify inc-1 && cordon incident report inc-1");
    println!("  cordon incident evidence inc-1 --out inc-1.tar");
    println!("  cordon log verify-bundle inc-1.tar --vkey {}/ledger/private/verifier-key", dir.display());
    println!("  (docs/INCIDENT.md explains each answer)");
    Ok(())
}

/// The demo console's one-click identities: an honest agent still active (not an insider), an
/// analyst, the incident responder (an analyst too, landing on the incidents), and `customer`,
/// a customer the insiders reached, who sees who viewed their data.
fn demo_sign_in(
    data: &DataDir,
    customer: &str,
) -> anyhow::Result<std::collections::BTreeMap<String, cordon_server::DemoSignIn>> {
    use cordon_server::{DemoIdentity, DemoSignIn};
    let truth = cordon_sim::read_truth(&data.path(""))?;
    let insiders: Vec<&str> = truth.insiders.iter().map(|insider| insider.agent.as_str()).collect();
    let link = |identity, landing: &str| DemoSignIn { identity, landing: landing.to_string() };
    let mut links = std::collections::BTreeMap::new();
    for number in 1..200u32 {
        let agent = format!("agt-{number:04}");
        if insiders.contains(&agent.as_str()) {
            continue;
        }
        // An agent the directory holds and lets sign in (active).
        if data.issue_token(Some(&agent), None, &SystemClock).is_ok() {
            links.insert("agent".to_string(), link(DemoIdentity::Agent(agent), "/console/"));
            break;
        }
    }
    links.insert("analyst".to_string(), link(DemoIdentity::Role(TokenRole::Analyst), "/console/"));
    links.insert("responder".to_string(), link(DemoIdentity::Role(TokenRole::Analyst), "/console/incidents"));
    links.insert("customer".to_string(), link(DemoIdentity::Customer(customer.to_string()), "/console/me"));
    Ok(links)
}

/// Where `cordon demo` writes the leaked sample, inside its folder.
const LEAKED_SAMPLE_FILE: &str = "leaked-sample.csv";

/// Runs the simulation with a progress bar per phase, then reads the story back.
fn simulate(scenario: &Scenario, data: &Path, store: Option<&str>) -> anyhow::Result<(Story, cordon_sim::RunReport)> {
    let bars = Bars::new(scenario);
    let report = cordon_sim::run_on(scenario, data, store, &mut |phase, done, total| bars.show(phase, done, total))
        .with_context(|| format!("simulating `{}` into `{}`", scenario.name, data.display()))?;
    let story = cordon_sim::tell(scenario, data)?;
    Ok((story, report))
}

/// A progress bar per phase, hidden when stderr is not a terminal.
struct Bars {
    customers: ProgressBar,
    days: ProgressBar,
}

impl Bars {
    fn new(scenario: &Scenario) -> Bars {
        let style = ProgressStyle::with_template("{prefix:>10} [{bar:40}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let customers = ProgressBar::new(scenario.customers).with_style(style.clone()).with_prefix("customers");
        let days = ProgressBar::new(u64::from(scenario.days)).with_style(style).with_prefix("days");
        if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            customers.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            days.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        Bars { customers, days }
    }

    fn show(&self, phase: Phase, done: u64, total: u64) {
        let bar = match phase {
            Phase::Customers => &self.customers,
            Phase::Traffic => &self.days,
        };
        bar.set_length(total);
        bar.set_position(done);
        if done >= total {
            bar.finish();
        }
    }
}
