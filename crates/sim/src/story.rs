//! The story of a run, read back from the ledger: the population, the traffic, what each
//! insider touched, and whether the ledger verifies. Traffic and exposure are counted from
//! the ledger's entries; the ground truth only says which requests were insiders' moves, and
//! the staff is the scenario's.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use cordon_ledger::{LogReader, VERIFIER_KEY_FILE, Verifier, verify_log};
use serde::Serialize;

use crate::SimError;
use crate::engine::{RunReport, Truth, read_truth};
use crate::entry::LedgerEntry as Entry;
use crate::people::{People, customer_number};
use crate::scenario::Scenario;

/// What one insider's own moves reached, as the ledger is read.
#[derive(Default, Clone)]
struct Tally {
    exposed: BTreeSet<String>,
    revealed: BTreeSet<String>,
    fields: BTreeMap<String, BTreeSet<String>>,
    denied: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct InsiderStory {
    pub label: String,
    pub behaviour: String,
    pub agent: String,
    pub team: String,
    pub site: String,
    pub start_day: u32,
    /// Distinct customers whose card was shown or a field revealed by the insider's own moves
    /// (its cover work on real tickets is not counted).
    pub customers_exposed: u64,
    /// Of those, customers with at least one field revealed in the clear.
    pub customers_revealed: u64,
    /// Distinct customers per revealed field.
    pub fields: BTreeMap<String, u64>,
    pub high_balance_exposed: u64,
    pub canaries_touched: u64,
    pub denied: u64,
    pub stopped_day: Option<u32>,
    /// One customer the insider saw, for examples (the access history of a victim).
    pub example_customer: Option<String>,
    /// When detection stepped it up or suspended it: day of the scenario and hours after its
    /// first move.
    pub contained: Option<(String, u32, f64)>,
    /// Customers its moves would have reached with nothing to stop it (its plan, played in full).
    pub reach_without_detection: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Story {
    pub scenario: String,
    pub seed: u64,
    pub policy: String,
    pub customers: u64,
    pub canaries: u64,
    pub agents: u64,
    pub teams: u64,
    pub sites: u64,
    pub days: u32,
    pub tickets: u64,
    pub entries: u64,
    /// Access decisions by action, allowed and denied.
    pub decisions: BTreeMap<String, [u64; 2]>,
    pub insiders: Vec<InsiderStory>,
    /// Distinct customers any insider exposed.
    pub exposed_total: u64,
    pub ledger_root: String,
    pub ledger_origin: String,
    pub detection: bool,
    /// Alerts on honest agents, and how many of those were suspensions.
    pub honest_alerts: u64,
    pub honest_suspensions: u64,
}

/// Reads the ledger and ground truth of a simulated data directory.
pub fn tell(scenario: &Scenario, data: &Path) -> Result<Story, SimError> {
    let truth: Truth = read_truth(data)?;
    let ledger = data.join(cordon_gateway::LEDGER_DIR);
    let key_path = ledger.join(VERIFIER_KEY_FILE);
    let key = std::fs::read_to_string(&key_path)
        .map_err(|error| SimError::Internal(format!("`{}`: {error}", key_path.display())))?;
    let verifier = Verifier::parse(key.trim())
        .map_err(|error| SimError::Internal(format!("`{}`: {error}", key_path.display())))?;
    let verified = verify_log(&ledger, &verifier, None)
        .map_err(|error| SimError::Internal(format!("the ledger does not verify: {error}")))?;

    let people = People::new(scenario.seed, scenario.customers, scenario.canaries);
    // The insiders' own moves, by request id; their cover work (real tickets) is not counted.
    let insider_position = truth.malicious_requests();
    let mut tallies = vec![Tally::default(); truth.insiders.len()];
    let mut story = Story {
        scenario: truth.scenario.clone(),
        seed: truth.seed,
        policy: truth.policy.clone(),
        customers: truth.customers,
        canaries: truth.canaries.len() as u64,
        days: scenario.days,
        entries: verified.size,
        ledger_root: verified.root.to_base64(),
        ledger_origin: verified.origin.clone(),
        detection: scenario.detection,
        ..Story::default()
    };
    let insider_agents: BTreeMap<&str, usize> =
        truth.insiders.iter().enumerate().map(|(position, insider)| (insider.agent.as_str(), position)).collect();
    let mut first_move: Vec<Option<i64>> = vec![None; truth.insiders.len()];
    let mut contained: Vec<Option<(String, i64)>> = vec![None; truth.insiders.len()];
    let mut tickets = BTreeSet::new();
    let mut unreadable = None;
    LogReader::new(&ledger)
        .for_each_entry(0, verified.size, |index, bytes| {
            let Ok(entry) = Entry::decode(bytes) else {
                unreadable.get_or_insert(index);
                return Ok(());
            };
            match entry.kind.as_str() {
                "change" if entry.change == "ticket.put" => {
                    tickets.insert(entry.target);
                }
                "alert" => match insider_agents.get(entry.agent.as_str()) {
                    Some(&position) => {
                        if matches!(entry.level.as_str(), "step-up" | "suspend")
                            && let Some(slot) = contained.get_mut(position)
                            && slot.is_none()
                        {
                            *slot = Some((entry.level.clone(), entry.time_ms));
                        }
                    }
                    None => {
                        story.honest_alerts += 1;
                        story.honest_suspensions += u64::from(entry.level == "suspend");
                    }
                },
                "access" => {
                    if let Some(&position) = insider_position.get(entry.request.as_str())
                        && let Some(first) = first_move.get_mut(position)
                    {
                        first.get_or_insert(entry.time_ms);
                    }
                    let allowed = entry.decision == "allow";
                    let counts = story.decisions.entry(entry.action.clone()).or_insert([0, 0]);
                    if let Some(count) = counts.get_mut(usize::from(!allowed)) {
                        *count += 1;
                    }
                    let Some(tally) =
                        insider_position.get(entry.request.as_str()).and_then(|&position| tallies.get_mut(position))
                    else {
                        return Ok(());
                    };
                    if !allowed {
                        tally.denied += 1;
                        return Ok(());
                    }
                    let Some(customer) = entry.customer else { return Ok(()) };
                    if matches!(entry.action.as_str(), "view" | "reveal") {
                        tally.exposed.insert(customer.clone());
                    }
                    if entry.action == "reveal" {
                        for field in entry.fields {
                            tally.fields.entry(field).or_default().insert(customer.clone());
                        }
                        tally.revealed.insert(customer);
                    }
                }
                _ => {}
            }
            Ok(())
        })
        .map_err(|error| SimError::Internal(error.to_string()))?;
    if let Some(index) = unreadable {
        return Err(SimError::Internal(format!("ledger entry {index} is not a cordon audit entry")));
    }
    // The staff is the scenario's: most of it came in one import entry, which names no teams.
    let directory = crate::world::agents(scenario);
    story.agents = directory.len() as u64;
    story.teams = directory.iter().map(|agent| agent.agent.team.as_str()).collect::<BTreeSet<_>>().len() as u64;
    story.sites = directory.iter().map(|agent| agent.agent.site.as_str()).collect::<BTreeSet<_>>().len() as u64;
    story.tickets = tickets.len() as u64;
    let canaries: BTreeSet<&str> = truth.canaries.iter().map(String::as_str).collect();
    let mut union = BTreeSet::new();
    let reach = crate::engine::planned_reach(scenario)?;
    let day0_ms = scenario.start.unix_days() * 86_400_000;
    for (position, (insider, tally)) in truth.insiders.iter().zip(tallies).enumerate() {
        let contained = match (contained.get(position).cloned().flatten(), first_move.get(position).copied().flatten())
        {
            (Some((level, at)), Some(first)) => {
                Some((level, ((at - day0_ms).max(0) / 86_400_000) as u32, (at - first).max(0) as f64 / 3_600_000.0))
            }
            _ => None,
        };
        let seen = tally.exposed;
        let high = seen
            .iter()
            .filter_map(|customer| customer_number(customer))
            .filter(|&number| people.summary(number).balance_usd >= truth.high_balance_usd)
            .count() as u64;
        story.insiders.push(InsiderStory {
            label: insider.label.clone(),
            behaviour: insider.behaviour.clone(),
            agent: insider.agent.clone(),
            team: insider.team.clone(),
            site: insider.site.clone(),
            start_day: insider.start_day,
            customers_exposed: seen.len() as u64,
            customers_revealed: tally.revealed.len() as u64,
            fields: tally.fields.iter().map(|(field, customers)| (field.clone(), customers.len() as u64)).collect(),
            high_balance_exposed: high,
            canaries_touched: seen.iter().filter(|customer| canaries.contains(customer.as_str())).count() as u64,
            denied: tally.denied,
            stopped_day: insider.stopped_day,
            example_customer: seen.iter().next().cloned(),
            contained,
            reach_without_detection: reach.get(position).copied().unwrap_or(0),
        });
        union.extend(seen);
    }
    story.exposed_total = union.len() as u64;
    Ok(story)
}

/// `1,234,567`: a count as the story prints it.
pub fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (position, digit) in digits.chars().enumerate() {
        if position > 0 && (digits.len() - position).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

impl Story {
    /// The story as a person reads it on a terminal.
    pub fn render(&self, scenario: &Scenario, report: &RunReport) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Scenario     {} (seed {}): {}", self.scenario, self.seed, scenario.description.trim());
        let _ = writeln!(
            out,
            "Population   {} customers ({} canaries), {} agents in {} teams at {} sites",
            thousands(self.customers),
            self.canaries,
            thousands(self.agents),
            self.teams,
            self.sites
        );
        let total: u64 = self.decisions.values().map(|[allowed, denied]| allowed + denied).sum();
        let denied: u64 = self.decisions.values().map(|[_, denied]| denied).sum();
        let by_action: Vec<String> = self
            .decisions
            .iter()
            .map(|(action, [allowed, denied])| format!("{action} {}", thousands(allowed + denied)))
            .collect();
        let _ = writeln!(
            out,
            "Traffic      {} days from {}: {} tickets, {} access decisions ({}), {} denied",
            self.days,
            scenario.start,
            thousands(self.tickets),
            thousands(total),
            by_action.join(", "),
            thousands(denied)
        );
        let policy = match self.policy.as_str() {
            "permissive" => "permissive: today's tooling, any agent may open any customer (policies/permissive.cedar)",
            _ => "cordon's default: a view or reveal needs an assigned open ticket from that customer",
        };
        let _ = writeln!(out, "Policy       {policy}");
        let _ = writeln!(out);
        if self.insiders.is_empty() {
            let _ = writeln!(out, "Insiders     none in this scenario");
        }
        for insider in &self.insiders {
            let fields: Vec<String> =
                insider.fields.iter().map(|(field, count)| format!("{field} {}", thousands(*count))).collect();
            let _ = writeln!(
                out,
                "Insider      {} ({}), {} {} at {}, from day {}:",
                insider.label, insider.behaviour, insider.agent, insider.team, insider.site, insider.start_day
            );
            let _ = writeln!(
                out,
                "               exposed {} customers ({} with fields revealed, {} high-balance, {} canaries); {} requests denied{}",
                thousands(insider.customers_exposed),
                thousands(insider.customers_revealed),
                thousands(insider.high_balance_exposed),
                insider.canaries_touched,
                thousands(insider.denied),
                match insider.stopped_day {
                    Some(day) => format!("; suspended on day {day}"),
                    None => String::new(),
                }
            );
            if !fields.is_empty() {
                let _ = writeln!(out, "               revealed: {}", fields.join(", "));
            }
            if self.detection {
                let without = thousands(insider.reach_without_detection);
                let _ = match &insider.contained {
                    Some((level, day, hours)) => writeln!(
                        out,
                        "               contained by cordon ({level}) on day {day}, {hours:.1} h after its first move; \
                         without detection it would have reached {without}"
                    ),
                    None => writeln!(out, "               not contained; its plan reached {without}"),
                };
            }
        }
        if self.detection {
            let _ = writeln!(
                out,
                "Detection    in-line; honest agents: {} alerts, {} suspended",
                self.honest_alerts, self.honest_suspensions
            );
        }
        if !self.insiders.is_empty() {
            let share = self.exposed_total as f64 * 100.0 / self.customers.max(1) as f64;
            let _ = writeln!(
                out,
                "Exposed      {} distinct customers ({share:.2}% of the base) were seen by insiders",
                thousands(self.exposed_total)
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Ledger       {} entries verify from the tiles up: root {} ({})",
            thousands(self.entries),
            self.ledger_root,
            self.ledger_origin
        );
        let rate = report.requests as f64 / report.traffic_seconds.max(1e-9);
        let _ = writeln!(
            out,
            "Timing       customers {:.1} s, traffic {:.1} s ({} requests, {rate:.0}/s, in {} waves)",
            report.customers_seconds,
            report.traffic_seconds,
            thousands(report.requests),
            thousands(report.waves)
        );
        out
    }
}
