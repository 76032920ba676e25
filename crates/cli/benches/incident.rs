//! Incident response at scale: scope and attribution over a ledger of ten million access
//! events (target: at most 100 ms each), next to DuckDB answering the same questions over
//! the Parquet export of the same events, in the same run, with the answers compared.
//!
//! The data directory is real: a customer base imported through the gateway (sealed, with
//! its blind indexes), then access entries in the gateway's own format appended to its
//! ledger in batches: support agents searching, viewing and revealing customers at random
//! for 180 days, and one insider harvesting a Kraken-sized set of customers (search, card,
//! reveal of contact fields) over two weeks. The incident names the insider and the two
//! weeks; the leaked sample is 20 of the harvested customers.
//!
//! Run: `cargo bench -p cordon-cli --bench incident`. Sizes: `CORDON_BENCH_EVENTS`
//! (default 10,000,000), `CORDON_BENCH_CUSTOMERS` (1,000,000), `CORDON_BENCH_AGENTS` (500),
//! `CORDON_BENCH_HARVESTED` (2,000). `CORDON_BENCH_DIR` chooses where the data goes (default:
//! the system temporary folder); a complete data directory of the same sizes found there is
//! reused, so a second run only measures. DuckDB comes from PyPI (bench/duckdb/).
//! `CORDON_BENCH_CORDON_ONLY=1` stops after cordon's figures (for profiling).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use cordon_entry::{AccessAction, AccessEntry, Decision};
use cordon_gateway::{Claims, DataDir, Gateway, ImportKind, IncidentSpec, SystemClock, TokenRole};
use cordon_ledger::{Ledger, LedgerConfig};
use cordon_sim::{LeakColumn, People, Rng, customer_id, leak_rows, thousands};
use serde_json::{Value, json};

// The allocator the `cordon` binary uses, so the figures are the command's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs one gateway call to its end on this thread (the gateway's calls wait only on the
/// ledger's threads).
fn wait<F: std::future::Future>(call: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(call)
}

const RUNS: usize = 7;
const DAYS: u64 = 180;
const DAY_MS: i64 = 86_400_000;
/// 2026-01-05T00:00:00Z.
const START_MS: i64 = 1_767_571_200_000;
const INSIDER_FIRST_DAY: u64 = 120;
const INSIDER_DAYS: u64 = 14;
const SAMPLE_ROWS: usize = 20;
const APPEND_BATCH: usize = 10_000;
const SEED: u64 = 20_261_201;
/// Bumped when what `build` writes changes, so an older data directory is rebuilt.
const BUILD_VERSION: u32 = 1;

struct Sizes {
    events: u64,
    customers: u64,
    agents: u64,
    harvested: u64,
}

fn size(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().map_or(default, |text| text.replace('_', "").parse().expect(name))
}

fn agent_id(number: u64) -> String {
    format!("agt-{number:04}")
}

fn analyst() -> Claims {
    Claims::in_process(TokenRole::Analyst.identity(), TokenRole::Analyst, "bench")
}

/// The process's resident memory: the most it held so far, and what it holds now, its own
/// (anonymous: the null model, caches and answers) apart from the data files' pages it has
/// mapped (SQLite reads through mmap: the kernel's page cache, shared and reclaimable).
struct Memory {
    peak_kb: u64,
    own_kb: u64,
    mapped_kb: u64,
}

impl Memory {
    fn now() -> Memory {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let kilobytes = |name: &str| {
            status
                .lines()
                .find(|line| line.starts_with(name))
                .and_then(|line| line.split_whitespace().nth(1).and_then(|kilobytes| kilobytes.parse::<u64>().ok()))
                .unwrap_or(0)
        };
        Memory { peak_kb: kilobytes("VmHWM:"), own_kb: kilobytes("RssAnon:"), mapped_kb: kilobytes("RssFile:") }
    }
}

impl std::fmt::Display for Memory {
    fn fmt(&self, out: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            out,
            "peak {} MB; now {} MB the process's own, {} MB pages of mapped data files",
            self.peak_kb / 1024,
            self.own_kb / 1024,
            self.mapped_kb / 1024
        )
    }
}

fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// The insider's harvested customers (numbers), drawn once from the seed.
fn harvested(sizes: &Sizes) -> Vec<u64> {
    let mut rng = Rng::stream(SEED, "harvest");
    let mut chosen = BTreeSet::new();
    while (chosen.len() as u64) < sizes.harvested {
        chosen.insert(1 + rng.below(sizes.customers));
    }
    let mut chosen: Vec<u64> = chosen.into_iter().collect();
    rng.shuffle(&mut chosen);
    chosen
}

fn insider() -> String {
    agent_id(7)
}

fn entry(request: u64, time_ms: i64, agent: String, action: AccessAction) -> AccessEntry {
    AccessEntry {
        ticket: Some(format!("tkt-{}", request / 3)),
        why: Some("ticket".into()),
        policies: vec!["bench-allow".into()],
        ..AccessEntry::new(time_ms, &format!("bench-{request:09}"), &agent, action, Decision::Allow)
    }
}

/// During working hours (08:00 to 20:00 UTC) of `day`.
fn working_time(rng: &mut Rng, day: u64) -> i64 {
    START_MS + day as i64 * DAY_MS + 8 * 3_600_000 + rng.below(12 * 3_600_000) as i64
}

/// One day of traffic, in time order: ordinary support work, plus the insider's harvest on
/// the insider's days.
fn day_of_traffic(sizes: &Sizes, day: u64, harvest: &[u64], next_request: &mut u64) -> Vec<AccessEntry> {
    let mut rng = Rng::stream(SEED ^ day, "traffic");
    let harvest_events = sizes.harvested * 3;
    let ordinary = (sizes.events - harvest_events) / DAYS + u64::from(day < (sizes.events - harvest_events) % DAYS);
    let mut day_entries: Vec<AccessEntry> = Vec::with_capacity(ordinary as usize + 1000);
    let customer = |rng: &mut Rng| customer_id(1 + rng.below(sizes.customers));
    for _ in 0..ordinary {
        let time = working_time(&mut rng, day);
        let agent = agent_id(rng.below(sizes.agents));
        let roll = rng.unit();
        let mut access = if roll < 0.35 {
            let mut access = entry(0, time, agent, AccessAction::Search);
            access.search_by = Some("email".into());
            let hits = if rng.chance(0.07) {
                0
            } else if rng.chance(0.03) {
                2 + rng.below(2)
            } else {
                1
            };
            access.matches = Some((0..hits).map(|_| customer(&mut rng)).collect());
            access
        } else if roll < 0.75 {
            let mut access = entry(0, time, agent, AccessAction::View);
            access.customer = Some(customer(&mut rng));
            access
        } else if roll < 0.90 {
            let mut access = entry(0, time, agent, AccessAction::Reveal);
            access.customer = Some(customer(&mut rng));
            let fields = ["email", "phone", "postal_address", "date_of_birth"];
            let first = rng.index(fields.len());
            access.fields.push(fields[first].into());
            if rng.chance(0.3) {
                access.fields.push(fields[(first + 1) % fields.len()].into());
            }
            access
        } else if roll < 0.95 {
            let mut access = entry(0, time, agent, AccessAction::Verify);
            access.customer = Some(customer(&mut rng));
            access.fields.push("date_of_birth".into());
            access
        } else {
            let mut access = entry(0, time, agent, AccessAction::Reveal);
            access.customer = Some(customer(&mut rng));
            access.fields.push("government_id_number".into());
            access.decision = Decision::Deny;
            access.policies = Vec::new();
            access.why = Some("unexplained".into());
            access
        };
        access.ticket = Some(format!("tkt-{}", rng.below(5_000_000)));
        day_entries.push(access);
    }
    if (INSIDER_FIRST_DAY..INSIDER_FIRST_DAY + INSIDER_DAYS).contains(&day) {
        let per_day = harvest.len().div_ceil(INSIDER_DAYS as usize);
        let today = (day - INSIDER_FIRST_DAY) as usize;
        for number in harvest.iter().skip(today * per_day).take(per_day) {
            let id = customer_id(*number);
            let time = working_time(&mut rng, day);
            let mut search = entry(0, time, insider(), AccessAction::Search);
            search.search_by = Some("email".into());
            search.matches = Some(vec![id.clone()]);
            let mut view = entry(0, time + 20_000, insider(), AccessAction::View);
            view.customer = Some(id.clone());
            let mut reveal = entry(0, time + 45_000, insider(), AccessAction::Reveal);
            reveal.customer = Some(id);
            reveal.fields = vec!["email".into(), "phone".into(), "full_name".into(), "postal_address".into()];
            day_entries.extend([search, view, reveal]);
        }
    }
    day_entries.sort_by_key(|access| access.time_ms);
    for access in &mut day_entries {
        access.request = format!("bench-{:09}", *next_request);
        *next_request += 1;
    }
    day_entries
}

/// Builds the data directory, or reuses a complete one of the same sizes.
fn build(dir: &Path, sizes: &Sizes, harvest: &[u64]) {
    let marker = dir.join("bench-complete");
    let label = format!("v{BUILD_VERSION} {} {} {} {}", sizes.events, sizes.customers, sizes.agents, sizes.harvested);
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(label.as_str()) {
        println!("reusing the data directory at {} ({label})", dir.display());
        return;
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).unwrap();
    }
    let data = DataDir::new(dir);
    data.init(None, Arc::new(SystemClock)).unwrap();
    let started = Instant::now();
    {
        let gateway = data.open(Arc::new(SystemClock)).unwrap();
        let staff: String = (0..sizes.agents)
            .map(|number| {
                json!({"id": agent_id(number), "name": format!("Agent {number}"), "team": "l1-chat", "site": "us-sf",
                       "employer": "staff", "shift": [8, 20]})
                .to_string()
                    + "\n"
            })
            .collect();
        let report = cordon_gateway::import(&gateway, ImportKind::Agents, staff.as_bytes(), |_| {}).unwrap();
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        let people = People::new(SEED, sizes.customers, 0);
        cordon_sim::import_customers(&gateway, &people, &mut |_, _, _| {}).unwrap();
    }
    println!(
        "built: {} customers imported through the gateway in {:.1} s",
        thousands(sizes.customers),
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let ledger = Ledger::open(&dir.join(cordon_gateway::LEDGER_DIR), LedgerConfig::default()).unwrap();
    let mut next_request = 0;
    let mut batch = Vec::with_capacity(APPEND_BATCH);
    for day in 0..DAYS {
        for access in day_of_traffic(sizes, day, harvest, &mut next_request) {
            batch.push(access.encode().unwrap());
            if batch.len() == APPEND_BATCH {
                ledger.append_batch(std::mem::take(&mut batch)).wait().unwrap();
            }
        }
    }
    if !batch.is_empty() {
        ledger.append_batch(batch).wait().unwrap();
    }
    ledger.close().unwrap();
    println!(
        "built: {} access events appended to the ledger in {:.1} s",
        thousands(next_request),
        started.elapsed().as_secs_f64()
    );
    std::fs::write(&marker, label).unwrap();
}

/// Times `run` RUNS times; returns the median in milliseconds and the last answer.
fn measure<T>(mut run: impl FnMut() -> T) -> (f64, Vec<f64>, T) {
    let mut times = Vec::with_capacity(RUNS);
    let mut answer = None;
    for _ in 0..RUNS {
        let started = Instant::now();
        answer = Some(run());
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let all = times.clone();
    (median(&mut times), all, answer.unwrap())
}

fn duckdb(job: &Value, work: &Path) -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let job_file = work.join("duckdb-job.json");
    std::fs::write(&job_file, job.to_string()).unwrap();
    let output = Command::new(root.join("scripts/python-tool"))
        .arg(root.join("bench/duckdb/requirements.txt"))
        .arg(root.join("bench/duckdb/incident.py"))
        .arg(&job_file)
        .output()
        .unwrap();
    assert!(output.status.success(), "DuckDB failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn numbers(value: &Value) -> Vec<f64> {
    value.as_array().unwrap().iter().map(|time| time.as_f64().unwrap()).collect()
}

fn main() {
    let sizes = Sizes {
        events: size("CORDON_BENCH_EVENTS", 10_000_000),
        customers: size("CORDON_BENCH_CUSTOMERS", 1_000_000),
        agents: size("CORDON_BENCH_AGENTS", 500),
        harvested: size("CORDON_BENCH_HARVESTED", 2_000),
    };
    let work: PathBuf = std::env::var_os("CORDON_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = work.join("cordon-incident-bench");
    println!(
        "machine: {} cores; {} access events, {} customers, {} agents, one insider harvesting {}; medians of {RUNS} runs\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        thousands(sizes.events),
        thousands(sizes.customers),
        sizes.agents,
        thousands(sizes.harvested),
    );
    let harvest = harvested(&sizes);
    build(&dir, &sizes, &harvest);

    let started = Instant::now();
    // As the incident commands open it: without replaying detection's state.
    let gateway: Gateway = DataDir::new(&dir).open_for_analysis(Arc::new(SystemClock)).unwrap();
    println!(
        "opened the data directory for analysis ({} ledger entries) in {:.1} s",
        thousands(gateway.audit().size()),
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let read = gateway.refresh_exposures().unwrap();
    println!("exposure index: {} new ledger entries read in {:.1} s", thousands(read), started.elapsed().as_secs_f64());
    // What the import left of the match index, written first so that the first attribution
    // below measures what it did before imports left it.
    let started = Instant::now();
    let written = gateway.write_match_index().unwrap();
    println!(
        "match index: {} customers' rows, left by the import, written in {:.1} s",
        thousands(written),
        started.elapsed().as_secs_f64()
    );

    let who = analyst();
    let since_ms = START_MS + INSIDER_FIRST_DAY as i64 * DAY_MS;
    let until_ms = since_ms + INSIDER_DAYS as i64 * DAY_MS - 1;
    let incident = wait(gateway.open_incident(
        &who,
        IncidentSpec {
            title: "bench: harvested customers".into(),
            agents: vec![insider()],
            since_ms: Some(since_ms),
            until_ms: Some(until_ms),
            ..IncidentSpec::default()
        },
        "bench-open",
    ))
    .unwrap();

    let mut request = 0;
    let mut next_request = || {
        request += 1;
        format!("bench-query-{request}")
    };
    let (scope_ms, scope_all, scope) =
        measure(|| wait(gateway.incident_scope(&who, &incident.id, &next_request())).unwrap());

    println!("resident memory after scope: {}", Memory::now());
    let people = People::new(SEED, sizes.customers, 0);
    let sample_numbers: Vec<u64> = harvest.iter().copied().take(SAMPLE_ROWS).collect();
    let mut attributions = Vec::new();
    // The ids as a database dump would have them, and the masked card as a screenshot of the
    // console shows it (name, email and phone, each masked).
    let samples: [&[LeakColumn]; 2] =
        [&[LeakColumn::AccountId], &[LeakColumn::MaskedName, LeakColumn::MaskedEmail, LeakColumn::MaskedPhone]];
    for (name, columns) in ["account-ids", "masked-cards"].into_iter().zip(samples) {
        let csv = leak_rows(&people, sample_numbers.iter().copied(), columns, SAMPLE_ROWS);
        // Kept beside the data, for trying `cordon incident attribute` on the same sample.
        std::fs::write(work.join(format!("cordon-incident-bench-{name}.csv")), &csv).unwrap();
        let sample = cordon_incident::read_sample("sample.csv", &csv).unwrap();
        let (median_ms, all, found) =
            measure(|| wait(gateway.incident_attribute(&who, &incident.id, &sample, &next_request())).unwrap());
        attributions.push((median_ms, all, found));
    }

    println!("resident memory after scope and attribution: {}", Memory::now());
    println!(
        "the null model holds {:.1} MB ({} customers, counted from its collections' capacities)",
        gateway.null_model_heap_bytes().unwrap_or(0) as f64 / 1e6,
        thousands(sizes.customers)
    );
    if std::env::var_os("CORDON_BENCH_CORDON_ONLY").is_some() {
        // For profiling cordon's side alone: no export, no peer.
        let (by_id_ms, _, _) = &attributions[0];
        let (masked_ms, _, _) = &attributions[1];
        let first = attributions[0].1.first().copied().unwrap_or(0.0);
        println!(
            "cordon only: scope {scope_ms:.1} ms, attribution by id {by_id_ms:.1} ms (the first, building the null model, {first:.1} ms), by masked card {masked_ms:.1} ms"
        );
        return;
    }
    let parquet = work.join("cordon-incident-bench.parquet");
    let started = Instant::now();
    let mut export = cordon_export::ParquetExport::new(std::fs::File::create(&parquet).unwrap()).unwrap();
    gateway
        .audit()
        .for_each_entry(&mut |index, bytes| {
            if let Some(event) = cordon_export::access_event(index, bytes) {
                export.push(event).unwrap();
            }
            Ok(())
        })
        .unwrap();
    let rows = export.finish().unwrap();
    println!(
        "parquet export: {} rows, {:.0} MB, in {:.1} s\n",
        thousands(rows),
        std::fs::metadata(&parquet).unwrap().len() as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );

    let sample_ids: Vec<String> = sample_numbers.iter().map(|number| customer_id(*number)).collect();
    let peer = duckdb(
        &json!({
            "parquet": parquet, "agents": [insider()], "since_ms": since_ms, "until_ms": until_ms,
            "sample": sample_ids, "runs": RUNS,
        }),
        &work,
    );
    assert_eq!(peer["rows"].as_u64(), Some(rows), "DuckDB read the whole export");

    // The same answers: scope customer by customer, the suspects' parts, attribution agent by agent.
    let cordon_customers: Vec<Value> = scope
        .customers
        .iter()
        .map(|customer| {
            let mut revealed: Vec<&str> = customer.revealed.iter().map(|field| field.name()).collect();
            revealed.sort_unstable();
            json!([customer.customer, customer.first_ms, customer.last_ms, revealed])
        })
        .collect();
    let cordon_agents: Vec<Value> = scope
        .agents
        .iter()
        .map(|agent| json!([agent.agent, agent.customers, agent.customers_revealed, agent.first_ms, agent.last_ms]))
        .collect();
    let scope_same = peer["scope"]["customers"].as_array().unwrap() == &cordon_customers
        && peer["scope"]["agents"].as_array().unwrap() == &cordon_agents;
    let (by_id_ms, by_id_all, by_id) = &attributions[0];
    let mut cordon_attribution: Vec<Value> =
        by_id.agents.iter().map(|agent| json!([agent.agent, agent.explained.len(), agent.volume])).collect();
    cordon_attribution.sort_by_key(|row| row[0].as_str().unwrap().to_string());
    let attribution_same = peer["attribution"].as_array().unwrap() == &cordon_attribution;

    let duck_scope = median(&mut numbers(&peer["scope_ms"]));
    let duck_attribution = median(&mut numbers(&peer["attribution_ms"]));
    println!(
        "DuckDB {} ({} threads) over the Parquet export; cordon over its exposure index (up to {} threads)\n",
        peer["duckdb"].as_str().unwrap(),
        peer["threads"],
        std::thread::available_parallelism().map_or(1, |n| n.get()).min(4),
    );
    println!("| question | answer | cordon | DuckDB | DuckDB / cordon | same answer |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| scope: the insider, {INSIDER_DAYS} days | {} customers, {} accesses | {scope_ms:.1} ms | {duck_scope:.1} ms | {:.1}x | {} |",
        thousands(scope.customers.len() as u64),
        thousands(scope.accesses),
        duck_scope / scope_ms,
        if scope_same { "yes" } else { "NO" }
    );
    let blamed = |found: &cordon_incident::Attribution| {
        found
            .blamed()
            .map(|agent| format!("{} ({}/{})", agent.agent, agent.explained.len(), found.rows))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "| attribution: {SAMPLE_ROWS} account ids | blames {}; {} agents explain a row | {by_id_ms:.1} ms | {duck_attribution:.1} ms | {:.1}x | {} |",
        blamed(by_id),
        by_id.agents.len(),
        duck_attribution / by_id_ms,
        if attribution_same { "yes" } else { "NO" }
    );
    let (masked_ms, masked_all, masked) = &attributions[1];
    println!(
        "| attribution: {SAMPLE_ROWS} masked cards (name, email, phone) | blames {}; {} agents explain a row | {masked_ms:.1} ms | (cannot match masked values) | | |",
        blamed(masked),
        masked.agents.len(),
    );
    println!(
        "\nthe first attribution also built the null model (every customer's balance band, every agent's reach): {:.1} ms; the rest reuse it, kept current from the store's reach log",
        by_id_all.first().copied().unwrap_or(0.0)
    );
    let runs = |all: &[f64]| all.iter().map(|time| format!("{time:.1}")).collect::<Vec<_>>().join(" ");
    println!("\nevery run (ms): cordon scope {}; DuckDB scope {}", runs(&scope_all), runs(&numbers(&peer["scope_ms"])));
    println!(
        "cordon attribution by id {}; by masked card {}; DuckDB attribution {}",
        runs(by_id_all),
        runs(masked_all),
        runs(&numbers(&peer["attribution_ms"]))
    );
    if !scope_same || !attribution_same {
        eprintln!(
            "the answers differ:\ncordon scope agents {cordon_agents:?}\nDuckDB {}\ncordon attribution {cordon_attribution:?}\nDuckDB {}",
            peer["scope"]["agents"], peer["attribution"]
        );
        std::process::exit(1);
    }
}
