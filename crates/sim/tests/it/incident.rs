//! Incident response on simulated exchanges: scope against the ground truth of what each
//! insider was shown, and attribution of leaked samples of every kind of column.

use std::collections::BTreeSet;
use std::sync::Arc;

use cordon_gateway::{Claims, DataDir, Gateway, IncidentSpec, SystemClock, TokenRole, futures_block_on};
use cordon_incident::read_sample;
use cordon_sim::{LeakColumn, LeakSource, leak_sample};

use crate::support::{Run, scenario, simulate};

/// A Kraken-like exchange at test size: two harvesters at different sites, no detection
/// (today's tooling), so each plays its whole part.
const KRAKEN: &str = r#"
name = "kraken-test"
seed = 2026
start = "2026-03-02"
days = 8
customers = 20000
canaries = 5
agents = 40
policy = "permissive"
detection = false
[traffic]
tickets_per_agent_day = 6
[[insider]]
label = "insider-sf"
behaviour = "harvester"
site = "us-sf"
start_day = 1
customers_per_day = 40
[[insider]]
label = "insider-bpo"
behaviour = "harvester"
team = "l1-chat"
site = "vendor-bpo-1"
start_day = 2
customers_per_day = 40
fields = ["full_name", "email", "phone", "postal_address", "balance_usd", "government_id_number"]
"#;

/// A Coinbase-like ring at test size: four vendor agents, a few customers each a day.
const COINBASE: &str = r#"
name = "coinbase-test"
seed = 2025
start = "2025-01-06"
days = 8
customers = 20000
canaries = 5
agents = 40
policy = "permissive"
detection = false
[traffic]
tickets_per_agent_day = 6
[[insider]]
label = "bpo-ring"
behaviour = "ring"
agents = 4
site = "vendor-bpo-1"
start_day = 1
customers_per_day = 8
fields = ["full_name", "email", "phone", "postal_address", "balance_usd"]
"#;

fn analyst() -> Claims {
    Claims { sub: "role:analyst".into(), role: TokenRole::Analyst, iat: 0, exp: i64::MAX, jti: "test".into() }
}

fn open(run: &Run) -> Gateway {
    DataDir::new(&run.data).open(Arc::new(SystemClock)).unwrap()
}

fn open_incident(gateway: &Gateway, agents: Vec<String>) -> String {
    let spec = IncidentSpec { title: "extortion email".into(), agents, ..IncidentSpec::default() };
    futures_block_on(gateway.open_incident(&analyst(), spec, "test")).unwrap().id
}

/// Scope over every insider equals what the simulator's client was shown, customer by
/// customer and field by field.
fn check_scope(run: &Run, gateway: &Gateway) {
    for insider in &run.truth.insiders {
        let id = open_incident(gateway, vec![insider.agent.clone()]);
        let scope = futures_block_on(gateway.incident_scope(&analyst(), &id, "test")).unwrap();
        assert!(!insider.shown.is_empty(), "{} was shown nothing", insider.label);
        let found: Vec<(String, BTreeSet<String>, BTreeSet<String>)> = scope
            .customers
            .iter()
            .map(|customer| {
                let names = |fields: &BTreeSet<cordon_incident::Field>| {
                    fields.iter().map(|field| field.name().to_string()).collect::<BTreeSet<_>>()
                };
                (customer.customer.clone(), names(&customer.revealed), names(&customer.masked_only))
            })
            .collect();
        let truth: Vec<(String, BTreeSet<String>, BTreeSet<String>)> = insider
            .shown
            .iter()
            .map(|shown| (shown.customer.clone(), shown.revealed.clone(), shown.masked_only.clone()))
            .collect();
        assert_eq!(found, truth, "scope of {} ({})", insider.label, insider.agent);
        assert_eq!(scope.agents.len(), 1);
        assert_eq!(scope.base_customers, run.truth.customers);
    }
}

/// Attributes a sample with `columns` drawn from `source`; returns the ranking's top agent and
/// the blamed agents.
fn attribute(
    run: &Run,
    gateway: &Gateway,
    incident: &str,
    source: &LeakSource,
    columns: &[LeakColumn],
    seed: u64,
) -> (Option<String>, Vec<String>) {
    let csv = leak_sample(&run.truth, source, columns, 20, seed);
    assert_eq!(csv.lines().count(), 21, "a 20-row sample with {columns:?}");
    let sample = read_sample("sample.csv", &csv).unwrap();
    let found = futures_block_on(gateway.incident_attribute(&analyst(), incident, &sample, "test")).unwrap();
    assert_eq!(found.rows, 20);
    (found.agents.first().map(|agent| agent.agent.clone()), found.cover)
}

/// Initials alone (`J*** D***`) fit so many customers that no coverage of them is beyond
/// chance: they rank, but they do not blame.
fn conclusive(column: LeakColumn) -> bool {
    column != LeakColumn::MaskedName
}

#[test]
fn kraken_scope_is_the_ground_truth_and_each_kind_of_sample_finds_its_insider() {
    let run = simulate(&scenario(KRAKEN));
    let gateway = open(&run);
    check_scope(&run, &gateway);
    let incident = open_incident(&gateway, Vec::new());
    let insiders: Vec<String> = run.truth.insiders.iter().map(|insider| insider.agent.clone()).collect();
    for (position, insider) in insiders.iter().enumerate() {
        for column in LeakColumn::ALL {
            let source = LeakSource::Insiders(vec![position]);
            let (top, blamed) = attribute(&run, &gateway, &incident, &source, &[column], position as u64);
            assert_eq!(top.as_ref(), Some(insider), "top agent for a {} sample of {insider}", column.name());
            if conclusive(column) {
                assert_eq!(&blamed, &vec![insider.clone()], "blamed for a {} sample of {insider}", column.name());
            } else {
                assert!(blamed.iter().all(|agent| agent == insider), "{} blamed {blamed:?}", column.name());
            }
        }
    }
    for column in LeakColumn::ALL {
        for seed in 0..3 {
            let (_, blamed) = attribute(&run, &gateway, &incident, &LeakSource::Anyone, &[column], 100 + seed);
            assert!(blamed.is_empty(), "a random {} sample (seed {seed}) blamed {blamed:?}", column.name());
        }
    }
    // A screen photo: masked name, email and phone together narrow each row to a customer.
    let photo = [LeakColumn::MaskedName, LeakColumn::MaskedEmail, LeakColumn::MaskedPhone];
    let (top, blamed) = attribute(&run, &gateway, &incident, &LeakSource::Insiders(vec![1]), &photo, 7);
    assert_eq!((top.as_ref(), blamed), (insiders.get(1), vec![insiders[1].clone()]));
}

#[test]
fn coinbase_ring_scope_is_the_ground_truth_and_a_sample_blames_only_ring_members() {
    let run = simulate(&scenario(COINBASE));
    let gateway = open(&run);
    check_scope(&run, &gateway);
    let incident = open_incident(&gateway, Vec::new());
    let ring: BTreeSet<String> = run.truth.insiders.iter().map(|insider| insider.agent.clone()).collect();
    let everyone = LeakSource::Insiders((0..run.truth.insiders.len()).collect());
    // Split four ways, each member explains about five rows: enough to blame when a row
    // names one customer, not when it fits a hundred (a masked email or phone).
    let names_one = [
        vec![LeakColumn::AccountId],
        vec![LeakColumn::Email],
        vec![LeakColumn::Phone],
        vec![LeakColumn::FullName],
        vec![LeakColumn::Wallet],
        vec![LeakColumn::MaskedWallet],
        vec![LeakColumn::MaskedName, LeakColumn::MaskedEmail, LeakColumn::MaskedPhone],
    ];
    for columns in names_one {
        let (top, blamed) = attribute(&run, &gateway, &incident, &everyone, &columns, 3);
        assert!(top.as_ref().is_some_and(|top| ring.contains(top)), "top {top:?} for a {columns:?} sample");
        assert!(blamed.len() >= 2, "only {blamed:?} blamed for a {columns:?} sample of the ring");
        assert!(blamed.iter().all(|agent| ring.contains(agent)), "{columns:?} blamed {blamed:?}");
    }
    for column in [LeakColumn::MaskedEmail, LeakColumn::MaskedPhone, LeakColumn::MaskedName] {
        let (top, blamed) = attribute(&run, &gateway, &incident, &everyone, &[column], 3);
        assert!(top.as_ref().is_some_and(|top| ring.contains(top)), "top {top:?} for a {} sample", column.name());
        assert!(blamed.iter().all(|agent| ring.contains(agent)), "{} blamed {blamed:?}", column.name());
    }
    for column in LeakColumn::ALL {
        let (_, blamed) = attribute(&run, &gateway, &incident, &LeakSource::Anyone, &[column], 200);
        assert!(blamed.is_empty(), "a random {} sample blamed {blamed:?}", column.name());
    }
}
