//! Incident response on simulated exchanges: scope against the ground truth of what each
//! insider was shown, and attribution of leaked samples of every kind of column.

use std::collections::BTreeSet;
use std::sync::Arc;

use cordon_gateway::{Claims, DataDir, Gateway, IncidentSpec, SystemClock, TokenRole};
use cordon_incident::read_sample;
use cordon_sim::{LeakColumn, LeakSource, leak_sample};

use crate::support::{Run, scenario, simulate};

/// Runs one gateway call to its end on this thread (the gateway's calls wait only on the
/// ledger's threads).
fn wait<F: std::future::Future>(call: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(call)
}

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
    Claims::in_process(TokenRole::Analyst.identity(), TokenRole::Analyst, "test")
}

fn open(run: &Run) -> Gateway {
    DataDir::new(&run.data).open(Arc::new(SystemClock)).unwrap()
}

fn open_incident(gateway: &Gateway, agents: Vec<String>) -> String {
    let spec = IncidentSpec { title: "extortion email".into(), agents, ..IncidentSpec::default() };
    wait(gateway.open_incident(&analyst(), spec, "test")).unwrap().id
}

/// Scope over every insider equals what the simulator's client was shown, customer by
/// customer and field by field.
fn check_scope(run: &Run, gateway: &Gateway) {
    for insider in &run.truth.insiders {
        let id = open_incident(gateway, vec![insider.agent.clone()]);
        let scope = wait(gateway.incident_scope(&analyst(), &id, "test")).unwrap();
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
    attribute_if_leakable(run, gateway, incident, source, columns, seed)
        .unwrap_or_else(|| panic!("{source:?} was not shown 20 customers' {columns:?}"))
}

/// As `attribute`, or `None` if the source was not shown 20 customers the way `columns`
/// have them (an insider who never revealed a wallet cannot leak exact wallets).
fn attribute_if_leakable(
    run: &Run,
    gateway: &Gateway,
    incident: &str,
    source: &LeakSource,
    columns: &[LeakColumn],
    seed: u64,
) -> Option<(Option<String>, Vec<String>)> {
    let csv = leak_sample(&run.truth, source, columns, 20, seed);
    if csv.lines().count() < 21 {
        return None;
    }
    let sample = read_sample("sample.csv", &csv).unwrap();
    let found = wait(gateway.incident_attribute(&analyst(), incident, &sample, "test")).unwrap();
    assert_eq!(found.rows, 20);
    eprintln!("{columns:?} from {source:?}: {}", found.reason);
    for agent in found.agents.iter().take(4) {
        eprintln!(
            "  {} explains {} as shown {} expected {:.2} reach {} chance {:.2e}",
            agent.agent,
            agent.explained.len(),
            agent.consistent,
            agent.expected,
            agent.volume,
            agent.chance
        );
    }
    Some((
        found.agents.first().map(|agent| agent.agent.clone()),
        found.blamed().map(|agent| agent.agent.clone()).collect(),
    ))
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
            let Some((top, blamed)) =
                attribute_if_leakable(&run, &gateway, &incident, &source, &[column], position as u64)
            else {
                // Only exact values of a field the insider seldom or never revealed can be
                // short of 20 rows: every customer it was shown had a masked card.
                let exact = column != LeakColumn::AccountId && !column.name().starts_with("masked");
                assert!(exact, "{insider} was not shown 20 customers' {}", column.name());
                continue;
            };
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
        // (The ring revealed no wallets: exact ones cannot come from it.)
        vec![LeakColumn::MaskedWallet],
        vec![LeakColumn::MaskedName, LeakColumn::MaskedEmail, LeakColumn::MaskedPhone],
    ];
    for columns in names_one {
        let (top, blamed) = attribute(&run, &gateway, &incident, &everyone, &columns, 3);
        assert!(top.as_ref().is_some_and(|top| ring.contains(top)), "top {top:?} for a {columns:?} sample");
        assert!(blamed.len() >= 2, "only {blamed:?} blamed for a {columns:?} sample of the ring");
        assert!(blamed.iter().all(|agent| ring.contains(agent)), "{columns:?} blamed {blamed:?}");
    }
    // A full name is shared by several customers drawn from the same local name lists, so a
    // row of names narrows less than an id: over eight samples of this ring 0 to 2 members
    // were blamed, always ring members, and a ring member always ranked first.
    for column in [LeakColumn::FullName, LeakColumn::MaskedEmail, LeakColumn::MaskedPhone, LeakColumn::MaskedName] {
        let (top, blamed) = attribute(&run, &gateway, &incident, &everyone, &[column], 3);
        // Initials fit so many customers that an honest agent may rank first; it is not blamed.
        if column != LeakColumn::MaskedName {
            assert!(top.as_ref().is_some_and(|top| ring.contains(top)), "top {top:?} for a {} sample", column.name());
        }
        assert!(blamed.iter().all(|agent| ring.contains(agent)), "{} blamed {blamed:?}", column.name());
    }
    for column in LeakColumn::ALL {
        let (_, blamed) = attribute(&run, &gateway, &incident, &LeakSource::Anyone, &[column], 200);
        assert!(blamed.is_empty(), "a random {} sample blamed {blamed:?}", column.name());
    }
}

/// The attribution evaluation at test size: 40 samples of every kind on the Kraken-like
/// exchange; no kind may blame anyone but its source, and the insider is blamed for every
/// sample of three exact or three masked columns (`cordon eval attribution` at full size is
/// in docs/INCIDENT.md).
#[test]
fn attribution_evaluation_meets_its_targets_at_test_size() {
    let dir = tempfile::tempdir().unwrap();
    let scores = cordon_sim::evaluate_attribution(&scenario(KRAKEN), dir.path(), 40, &mut |_| {}).unwrap();
    assert_eq!(scores.len(), 14, "every kind is drawn");
    for score in &scores {
        assert!(score.samples >= 30, "{}: only {} samples could be drawn", score.kind, score.samples);
        assert!(score.meets_targets(), "{score:?}");
        assert_eq!(score.other_blamed, 0, "{score:?}");
    }
    let kind = |name: &str| scores.iter().find(|score| score.kind == name).unwrap();
    for name in ["insider exact", "insider masked"] {
        assert_eq!(kind(name).source_blamed, kind(name).samples, "{name}");
    }
    // Samples nobody leaked blame nobody, and those the busy agent could not have copied
    // do not blame it.
    for name in ["random exact", "random masked", "rich exact", "rich masked", "busy agent exact"] {
        assert_eq!(kind(name).verdicts.get("blamed"), None, "{name}: {:?}", kind(name).verdicts);
    }
}

/// Protection, notices, the report and the evidence bundle on one Kraken-like run.
#[test]
fn protect_is_idempotent_across_restarts_notices_name_only_what_was_seen_and_evidence_verifies() {
    let run = simulate(&scenario(KRAKEN));
    let insiders: Vec<String> = run.truth.insiders.iter().map(|insider| insider.agent.clone()).collect();
    let (incident, customers, actions) = {
        let gateway = open(&run);
        let incident = open_incident(&gateway, insiders.clone());
        // Before anything is done, the report proposes measures and states no public line
        // nobody entered.
        let (before, _) = wait(gateway.incident_report(&analyst(), &incident, "test")).unwrap();
        assert!(before.contains("Proposed and not yet applied: `hold_new_address_withdrawals` for"), "{before}");
        for unsaid in ["ransom", "unaffected", "Extortion demand", "Investigation:"] {
            assert!(!before.contains(unsaid), "the report says {unsaid:?} though nobody did:\n{before}");
        }
        let scope = wait(gateway.incident_scope(&analyst(), &incident, "test")).unwrap();
        let actions: u64 = scope
            .customers
            .iter()
            .map(|customer| cordon_gateway::protective_actions_for(customer.exposure()).len() as u64)
            .sum();
        let dry = wait(gateway.incident_protect(&analyst(), &incident, false, "test")).unwrap();
        let customers = dry.customers;
        assert!(customers > 100, "{customers} affected customers");
        assert_eq!(dry.actions.len() as u64, actions);
        assert_eq!((dry.recorded_now, dry.recorded_before), (0, 0), "a dry run records nothing");
        let applied = wait(gateway.incident_protect(&analyst(), &incident, true, "test")).unwrap();
        assert_eq!((applied.recorded_now, applied.recorded_before), (actions, 0));
        let again = wait(gateway.incident_protect(&analyst(), &incident, true, "test")).unwrap();
        assert_eq!((again.recorded_now, again.recorded_before), (0, actions), "applying twice adds nothing");
        (incident, customers, actions)
    };
    // After a restart, applying again still adds nothing, and each action is one ledger entry
    // and one queued message.
    let gateway = open(&run);
    let again = wait(gateway.incident_protect(&analyst(), &incident, true, "test")).unwrap();
    assert_eq!(again.recorded_now, 0);
    let (entries, _) = crate::support::ledger_entries(&run.data);
    let protect_entries = entries
        .iter()
        .filter(|entry| entry["change"].as_str().is_some_and(|change| change.starts_with("protect.")))
        .count() as u64;
    assert_eq!(protect_entries, actions);
    assert_eq!(gateway.outbox_due("protect", i64::MAX, 1_000_000).unwrap().len() as u64, actions);

    // Notices name exactly the fields each customer had shown, and nothing else; the
    // customers shown only initials get none; what a notice says of the staff is so.
    let scope = wait(gateway.incident_scope(&analyst(), &incident, "test")).unwrap();
    let (notices, folder) = wait(gateway.incident_notify(&analyst(), &incident, "test")).unwrap();
    let noticed: Vec<&cordon_incident::CustomerScope> = scope
        .customers
        .iter()
        .filter(|customer| customer.exposure() != cordon_incident::ExposureLevel::Initials)
        .collect();
    assert_eq!(notices.len() as u64, customers);
    assert_eq!(notices.len(), noticed.len());
    for (notice, customer) in notices.iter().zip(&noticed) {
        let shown: BTreeSet<cordon_incident::Field> =
            customer.revealed.iter().chain(&customer.masked_only).copied().collect();
        assert_eq!(notice.customer, customer.customer);
        assert_eq!(cordon_incident::fields_named(&notice.text), shown, "notice of {}", customer.customer);
        let held = notice.text.contains("Withdrawals to addresses you have not used before are held");
        assert_eq!(held, customer.exposure() == cordon_incident::ExposureLevel::Revealed, "{}", customer.customer);
        // Both insiders still have access: no notice may say it was stopped.
        assert!(notice.text.contains("Their access is under review."), "{}", notice.text);
        assert!(!notice.text.contains("stopped their access"), "{}", notice.text);
        let written = std::fs::read_to_string(folder.join(format!("{}.txt", customer.customer))).unwrap();
        assert_eq!(written, notice.text);
        assert!(folder.join(format!("{}.html", customer.customer)).exists());
    }
    // Once both are suspended, the notices say so.
    let admin = Claims::in_process(TokenRole::Admin.identity(), TokenRole::Admin, "test");
    for insider in &insiders {
        wait(gateway.set_agent_status(&admin, insider, cordon_directory::AgentStatus::Suspended, "test")).unwrap();
    }
    let (notices, _) = wait(gateway.incident_notify(&analyst(), &incident, "test")).unwrap();
    assert!(notices.iter().all(|notice| notice.text.contains("We have stopped their access.")));
    // A customer the harvesters viewed or revealed on their own account is told it was
    // without a request of theirs; one told its request called for it had a ticket behind
    // every view and reveal (cover work on assigned tickets).
    let harvested: BTreeSet<String> = (0..run.truth.insiders.len())
        .flat_map(|insider| {
            let moves = run.malicious(insider);
            let mut customers = crate::support::Run::customers(&moves, "view");
            customers.extend(crate::support::Run::customers(&moves, "reveal"));
            customers
        })
        .collect();
    let mut requested = 0;
    for notice in &notices {
        let without = notice.text.contains("without a support request of yours that called for it");
        let while_handling = notice.text.contains("while handling a support request of yours");
        assert!(without != while_handling, "{}", notice.text);
        if harvested.contains(&notice.customer) {
            assert!(without, "{} was harvested", notice.customer);
        }
        if while_handling {
            let untracked = run.entries.iter().any(|entry| {
                entry["customer"] == notice.customer.as_str()
                    && insiders.iter().any(|insider| entry["agent"] == insider.as_str())
                    && (entry["action"] == "view" || entry["action"] == "reveal")
                    && entry["ticket"].is_null()
            });
            assert!(!untracked, "{} had an access without a ticket", notice.customer);
            requested += 1;
        }
    }
    assert!(requested > 0 && requested < notices.len(), "{requested} of {} notices", notices.len());

    // The report carries Article 33(3)'s content and the clock, says the actions are not
    // delivered (no webhook is set), and states the public lines an analyst set, only those.
    let changes = vec![("extortion_demand".to_string(), "received by email, not answered".to_string())];
    wait(gateway.set_incident_status(&analyst(), &incident, &changes, "test")).unwrap();
    let (markdown, html) = wait(gateway.incident_report(&analyst(), &incident, "test")).unwrap();
    let banner = noticed.len();
    for needed in [
        "Nature of the breach (Article 33(3)(a))",
        "Contact point (Article 33(3)(b))",
        "privacy@simulated-exchange.example",
        "Likely consequences (Article 33(3)(c))",
        "Measures taken and proposed (Article 33(3)(d))",
        "the 72-hour deadline is",
        "Public disclosure summary",
        "| Extortion demand | received by email, not answered |",
        "no webhook for protective actions is configured",
        &format!("Data subjects concerned: {} customers", scope.customers.len()),
        &format!("Notices prepared for {customers} affected customers"),
        &format!("Protective action `scam_warning_banner` recorded for {banner} customers."),
        &format!("of the suspects ({}), 2 no longer have access", insiders.join(", ")),
    ] {
        assert!(markdown.contains(needed), "the report lacks {needed:?}:\n{markdown}");
    }
    for unsaid in ["ransom", "Trading operations", "sent to the exchange's systems", "DRAFT"] {
        assert!(!markdown.contains(unsaid), "the report says {unsaid:?}:\n{markdown}");
    }
    assert!(html.contains("<h2>Likely consequences (Article 33(3)(c))</h2>"));

    // The evidence bundle verifies under the ledger's key; a changed byte does not.
    let bundle: Vec<u8> =
        wait(gateway.incident_evidence(&analyst(), &incident, "test")).unwrap().into_chunks().flatten().collect();
    let key = std::fs::read_to_string(run.data.join("ledger/private/verifier-key")).unwrap();
    let verifier = cordon_ledger::Verifier::parse(key.trim()).unwrap();
    let summary = cordon_ledger::verify_bundle(&bundle, Some(&verifier)).unwrap();
    let evidence: BTreeSet<u64> =
        scope.customers.iter().flat_map(|customer| customer.evidence.iter().copied()).collect();
    assert_eq!(summary.entries, evidence.len() + 2, "the scope's entries, the opening and the seal");
    for position in [100, 700, bundle.len() / 2, bundle.len() - 1100] {
        let mut changed = bundle.clone();
        changed[position] ^= 0x20;
        assert!(cordon_ledger::verify_bundle(&changed, Some(&verifier)).is_err(), "byte {position} changed");
    }
}
