//! Each insider behaviour does what docs/SCENARIOS.md says it does, checked on the ground
//! truth and on the ledger.

use std::collections::{BTreeMap, BTreeSet};

use cordon_sim::People;
use serde_json::Value;

use crate::support::{Run, number, simulate, small};

/// Distinct customers the entries touched (allowed view or reveal), per simulated day.
fn per_day(entries: &[&Value]) -> BTreeMap<i64, BTreeSet<String>> {
    let mut days: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    for entry in entries {
        if entry["decision"] == "allow" && (entry["action"] == "view" || entry["action"] == "reveal") {
            let day = entry["time_ms"].as_i64().unwrap() / 86_400_000;
            days.entry(day).or_default().insert(entry["customer"].as_str().unwrap().to_string());
        }
    }
    days
}

#[test]
fn each_behaviour_does_what_its_documentation_says() {
    type Check = fn(&Run);
    let cases: &[(&str, &str, Check)] = &[
        ("harvester", "customers_per_day = 30", |run| {
            let moves = run.malicious(0);
            let revealed = Run::customers(&moves, "reveal");
            assert!(revealed.len() >= 100, "a harvester reads many customers: {}", revealed.len());
            let fields: BTreeSet<&str> = moves
                .iter()
                .flat_map(|entry| entry["fields"].as_array().into_iter().flatten())
                .filter_map(Value::as_str)
                .collect();
            assert_eq!(fields, BTreeSet::from(["balance_usd", "email", "full_name", "phone", "postal_address"]));
            for (day, customers) in per_day(&moves) {
                assert!(customers.len() <= 36, "day {day}: {} customers, at most 30 + 20%", customers.len());
            }
        }),
        ("low_and_slow", "customers_per_day = 4", |run| {
            let days = per_day(&run.malicious(0));
            assert!(days.len() >= 5, "active on many days: {}", days.len());
            assert!(days.values().all(|customers| customers.len() <= 4), "a few a day: {days:?}");
        }),
        ("targeted", "customers_per_day = 5\nbalance_min_usd = 100000", |run| {
            let people = People::new(21, 3000, 5);
            let touched = Run::customers(&run.malicious(0), "view");
            assert!(!touched.is_empty());
            for customer in touched {
                let balance = people.summary(number(&customer)).balance_usd;
                assert!(balance >= 100_000.0, "{customer} has {balance}");
            }
        }),
        ("piggyback", "share = 0.8", |run| {
            let moves = run.malicious(0);
            assert!(!moves.is_empty());
            let requesters: BTreeMap<String, String> = run
                .entries
                .iter()
                .filter(|entry| entry["change"] == "ticket.put")
                .map(|entry| (entry["target"].as_str().unwrap().to_string(), String::new()))
                .collect();
            for entry in &moves {
                let ticket = entry["ticket"].as_str().expect("piggyback lookups cite a real ticket");
                assert!(requesters.contains_key(ticket), "{ticket} is a real ticket");
            }
            // The cited ticket's own customer is looked at by the same agent in the same session,
            // the piggybacked one is another customer.
            let agent = &run.truth.insiders[0].agent;
            let own: BTreeSet<(String, String)> = run
                .entries
                .iter()
                .filter(|entry| entry["agent"] == agent.as_str() && entry["action"] == "view")
                .filter(|entry| !moves.iter().any(|other| other["request"] == entry["request"]))
                .filter_map(|entry| {
                    Some((entry["ticket"].as_str()?.to_string(), entry["customer"].as_str()?.to_string()))
                })
                .collect();
            for entry in moves.iter().filter(|entry| entry["action"] == "view") {
                let pair =
                    (entry["ticket"].as_str().unwrap().to_string(), entry["customer"].as_str().unwrap().to_string());
                assert!(!own.contains(&pair), "the piggybacked customer is not the ticket's requester: {pair:?}");
            }
        }),
        ("ring", "agents = 3\ncustomers_per_day = 6", |run| {
            assert_eq!(run.truth.insiders.len(), 3, "a ring of 3 is three insiders");
            let sites: BTreeSet<&str> = run.truth.insiders.iter().map(|insider| insider.site.as_str()).collect();
            assert_eq!(sites.len(), 1, "members share a site");
            let mut sets = Vec::new();
            for member in 0..3 {
                let moves = run.malicious(member);
                for (day, customers) in per_day(&moves) {
                    assert!(
                        customers.len() <= 7,
                        "member {member}, day {day}: {} customers, limit 6 + 20%",
                        customers.len()
                    );
                }
                sets.push(Run::customers(&moves, "view"));
            }
            let overlap = sets[0].intersection(&sets[1]).count() + sets[1].intersection(&sets[2]).count();
            assert!(overlap > 0, "members' customers overlap");
        }),
        ("enumerator", "customers_per_day = 20\nmode = \"sequential\"", |run| {
            let numbers: Vec<u64> = run
                .malicious(0)
                .iter()
                .filter(|entry| entry["action"] == "view")
                .map(|entry| number(entry["customer"].as_str().unwrap()))
                .collect();
            assert!(numbers.len() >= 40);
            let consecutive = numbers.windows(2).filter(|pair| pair[1] == pair[0] + 1).count();
            assert!(consecutive * 10 >= numbers.len() * 9, "ids walked one after another: {numbers:?}");
        }),
        ("masked_browser", "customers_per_day = 20", |run| {
            let moves = run.malicious(0);
            assert!(Run::customers(&moves, "view").len() >= 40);
            assert!(moves.iter().all(|entry| entry["action"] == "view"), "only masked views");
        }),
        ("canary_toucher", "customers_per_day = 5\ncanaries = 1", |run| {
            let canaries: BTreeSet<&String> = run.truth.canaries.iter().collect();
            let touched = Run::customers(&run.malicious(0), "view");
            assert_eq!(touched.iter().filter(|customer| canaries.contains(customer)).count(), 1, "one canary");
            assert!(touched.len() > 5, "among ordinary lookups");
        }),
        ("ticket_forger", "customers_per_day = 5", |run| {
            let agent = run.truth.insiders[0].agent.as_str();
            let moves = run.malicious(0);
            let looked: Vec<&&Value> = moves.iter().filter(|entry| entry["action"] != "search").collect();
            assert!(looked.len() >= 20, "works many forged tickets: {}", looked.len());
            for entry in looked {
                assert_eq!(entry["why"], "ticket", "under its own open ticket: {entry}");
                assert_eq!(entry["opened_by"], agent, "a ticket it opened itself: {entry}");
                assert!(entry.get("beyond_need").is_none(), "reveals within the category's need: {entry}");
            }
        }),
        ("queue_grabber", "customers_per_day = 5", |run| {
            let agent = run.truth.insiders[0].agent.as_str();
            let people = People::new(21, 3000, 5);
            let moves = run.malicious(0);
            let viewed = Run::customers(&moves, "view");
            assert!(viewed.len() >= 20, "takes many tickets: {}", viewed.len());
            for entry in moves.iter().filter(|entry| entry["action"] == "view") {
                assert_eq!(entry["why"], "ticket", "{entry}");
                assert_eq!(entry["assigned_by"], agent, "a ticket it took into its own queue: {entry}");
                assert!(entry.get("opened_by").is_none(), "raised by the customer: {entry}");
            }
            for customer in viewed {
                assert!(people.summary(number(&customer)).balance_usd >= 100_000.0, "{customer} is rich");
            }
        }),
        ("callback_abuser", "customers_per_day = 6", |run| {
            let moves = run.malicious(0);
            let whys: BTreeSet<&str> = moves.iter().filter_map(|entry| entry["why"].as_str()).collect();
            assert_eq!(whys, BTreeSet::from(["callback", "unexplained"]), "its own and its teammates' customers");
            assert!(moves.iter().all(|entry| entry.get("ticket").is_none()), "no ticket in hand");
            let beyond = moves
                .iter()
                .filter(|entry| entry["why"] == "callback" && entry["action"] == "reveal")
                .all(|entry| entry["beyond_need"] == serde_json::json!(["postal_address"]));
            assert!(beyond, "a callback needs no address");
        }),
        ("verify_prober", "customers_per_day = 5", |run| {
            let moves = run.malicious(0);
            assert!(moves.len() >= 40 && moves.iter().all(|entry| entry["action"] == "verify"), "only verifies");
            let mut wrong: BTreeMap<(String, String), usize> = BTreeMap::new();
            for entry in &moves {
                if entry["verify"] == "no-match" {
                    let key = (entry["customer"].as_str().unwrap().to_string(), entry["fields"][0].to_string());
                    *wrong.entry(key).or_default() += 1;
                }
            }
            assert!(!wrong.is_empty(), "guesses that miss");
            assert!(wrong.values().all(|&count| count <= 2), "never past verify's limit: {wrong:?}");
            assert!(moves.iter().any(|entry| entry["verify"] == "match"), "confirmations from its list");
        }),
        ("list_checker", "customers_per_day = 30", |run| {
            let moves = run.malicious(0);
            assert!(moves.len() >= 100 && moves.iter().all(|entry| entry["action"] == "search"), "only searches");
            let hits = moves.iter().filter(|entry| entry["matches"].as_array().is_some_and(|found| !found.is_empty()));
            let hits = hits.count();
            assert!(hits * 10 >= moves.len() * 6, "most of its list are customers: {hits} of {}", moves.len());
        }),
        ("handoff_ring", "agents = 3\ncustomers_per_day = 3", |run| {
            let members: BTreeSet<&str> = run.truth.insiders.iter().map(|insider| insider.agent.as_str()).collect();
            assert_eq!(members.len(), 3);
            let teams: BTreeSet<(&str, &str)> =
                run.truth.insiders.iter().map(|insider| (insider.team.as_str(), insider.site.as_str())).collect();
            assert_eq!(teams.len(), 1, "one team at one site: {teams:?}");
            for (position, insider) in run.truth.insiders.iter().enumerate() {
                for entry in run.malicious(position).iter().filter(|entry| entry["action"] == "view") {
                    let giver = entry["opened_by"].as_str().unwrap();
                    assert_eq!(entry["assigned_by"], giver, "{entry}");
                    assert!(giver != insider.agent && members.contains(giver), "handed by another member: {entry}");
                }
            }
        }),
    ];
    for (behaviour, parameters, check) in cases {
        let insider = format!("[[insider]]\nbehaviour = \"{behaviour}\"\nstart_day = 1\n{parameters}\n");
        let run = simulate(&small("permissive", 21, &insider));
        assert!(!run.truth.insiders.is_empty(), "{behaviour}: insiders in the truth");
        check(&run);
    }
}

#[test]
fn under_cordons_policies_a_harvester_gets_denials_not_data() {
    let insider = "[[insider]]\nbehaviour = \"harvester\"\nstart_day = 1\ncustomers_per_day = 20\n";
    let run = simulate(&small("default", 21, insider));
    let moves = run.malicious(0);
    assert!(moves.len() > 100);
    assert!(moves.iter().all(|entry| entry["decision"] == "deny"), "no ticket, no data");
    // Benign ticket work still goes through.
    let allowed =
        run.entries.iter().filter(|entry| entry["action"] == "reveal" && entry["decision"] == "allow").count();
    assert!(allowed > 100, "benign reveals allowed: {allowed}");
}

#[test]
fn scenario_errors_name_the_problem() {
    let cases = [
        ("days = 0", "`days` must be between 1 and 366"),
        ("policy = \"open\"", "unknown variant `open`"),
        ("wat = 1", "unknown field `wat`"),
        ("[traffic]\nself_assign_share = 2", "`traffic.self_assign_share` must be between 0 and 1, not 2"),
        ("[traffic]\nagent_opened_share = -0.5", "`traffic.agent_opened_share` must be between 0 and 1, not -0.5"),
    ];
    for (line, expected) in cases {
        let text = format!(
            "name = \"t\"\nseed = 1\nstart = \"2026-04-06\"\ndays = 10\ncustomers = 3000\nagents = 40\n{line}\n"
        )
        .replace("days = 10\ncustomers = 3000\nagents = 40\ndays = 0", "days = 0\ncustomers = 3000\nagents = 40");
        let error = cordon_sim::Scenario::parse(&text).unwrap_err().to_string();
        assert!(error.contains(expected), "{line}: {error}");
    }
    let ring = "name = \"t\"\nseed = 1\nstart = \"2026-04-06\"\ndays = 10\ncustomers = 3000\nagents = 40\n[[insider]]\nbehaviour = \"ring\"\nagents = 1\n";
    assert!(
        cordon_sim::Scenario::parse(ring).unwrap_err().to_string().contains("a ring needs `agents` between 2 and 20")
    );
    let handing = ring.replace("\"ring\"", "\"handoff_ring\"");
    assert!(
        cordon_sim::Scenario::parse(&handing)
            .unwrap_err()
            .to_string()
            .contains("a ring needs `agents` between 2 and 20")
    );
    let site = "name = \"t\"\nseed = 1\nstart = \"2026-04-06\"\ndays = 10\ncustomers = 3000\nagents = 40\n[[insider]]\nbehaviour = \"harvester\"\nsite = \"mars\"\n";
    assert!(cordon_sim::Scenario::parse(site).unwrap_err().to_string().contains("unknown site `mars`"));
}
