//! Attribution: which agents' accesses explain a leaked sample, and how unlikely that is by
//! chance.
//!
//! Each sample row has been matched to its candidate customers (exactly one for an exact
//! value, every customer consistent with a masked rendering). An agent explains a row if it
//! was shown one of the row's candidates; it explains it *consistently* if it was shown each
//! of the row's values the way the sample has it (an exact email needs a reveal of the email,
//! a masked one a card or a reveal). Agents are ranked by the probability that an agent shown
//! as many customers as this one, picked with no regard to the sample, would explain as many
//! rows (`chance`); an agent is blamed only if that probability, times the number of agents
//! that could have been blamed, is at most `BLAME_FAMILY_ERROR_MAX`, so a sample drawn at
//! random from the whole base blames nobody but once in a thousand samples.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use cordon_vault::Field;

use crate::chance::{at_least, hit_probability};
use crate::sample::Column;
use crate::scope::{Shown, ShownAs};

/// The family-wise error rate of blaming: over all agents, the chance that attribution blames
/// someone for a sample with no source among them.
pub const BLAME_FAMILY_ERROR_MAX: f64 = 0.001;

/// How a row's value must have been shown for an agent to have seen it as the sample has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needed {
    pub column: Column,
    pub masked: bool,
}

/// A sample row and the customers it can be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchedRow {
    pub line: usize,
    /// Candidate customer ids, sorted and distinct; empty if the row matched nobody.
    pub candidates: Vec<String>,
    pub needed: Vec<Needed>,
}

/// One row an agent explains, with the entries that show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explained {
    pub line: usize,
    pub customer: String,
    pub consistent: bool,
    pub evidence: Vec<u64>,
}

/// One agent's share of the sample.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentAttribution {
    pub agent: String,
    /// Distinct customers this agent has ever been shown.
    pub volume: u64,
    pub explained: Vec<Explained>,
    pub consistent: u64,
    /// Rows an agent of this volume would explain by chance, on average.
    pub expected: f64,
    /// The probability of explaining at least as many rows by chance.
    pub chance: f64,
    pub blamed: bool,
}

/// The whole answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribution {
    pub rows: u64,
    pub matched_rows: u64,
    pub unmatched_lines: Vec<usize>,
    pub base_customers: u64,
    /// Agents that explain at least one row, most telling first.
    pub agents: Vec<AgentAttribution>,
    /// Blamed agents in rank order, each adding rows the ones before did not explain, and the
    /// rows they explain together.
    pub cover: Vec<String>,
    pub covered_rows: u64,
    /// How many agents could have been blamed: the correction's multiplier.
    pub agents_considered: u64,
}

impl Attribution {
    pub fn blamed(&self) -> impl Iterator<Item = &AgentAttribution> {
        self.agents.iter().filter(|agent| agent.blamed)
    }
}

/// Ranks agents over `rows`, given everything shown of the rows' candidates, each agent's
/// volume (distinct customers ever shown) and the size of the customer base.
pub fn attribute(
    rows: &[MatchedRow],
    shown: &[Shown],
    volumes: &HashMap<String, u64>,
    base_customers: u64,
) -> Attribution {
    let matched: Vec<&MatchedRow> = rows.iter().filter(|row| !row.candidates.is_empty()).collect();
    // customer -> agent -> accesses
    let mut by_customer: HashMap<&str, BTreeMap<&str, Vec<&Shown>>> = HashMap::new();
    for access in shown {
        by_customer.entry(access.customer.as_str()).or_default().entry(access.agent.as_str()).or_default().push(access);
    }
    let mut explained: BTreeMap<&str, Vec<Explained>> = BTreeMap::new();
    for row in &matched {
        let mut per_agent: BTreeMap<&str, Explained> = BTreeMap::new();
        for candidate in &row.candidates {
            for (agent, accesses) in by_customer.get(candidate.as_str()).into_iter().flatten() {
                let consistent = row.needed.iter().all(|needed| shown_as_needed(accesses, *needed));
                let evidence: Vec<u64> = accesses.iter().map(|access| access.ledger_index).collect();
                let better = per_agent.get(agent).is_none_or(|known| consistent && !known.consistent);
                if better {
                    per_agent
                        .insert(agent, Explained { line: row.line, customer: candidate.clone(), consistent, evidence });
                }
            }
        }
        for (agent, found) in per_agent {
            explained.entry(agent).or_default().push(found);
        }
    }
    let agents_considered = volumes.values().filter(|volume| **volume > 0).count().max(1) as u64;
    let mut agents: Vec<AgentAttribution> = explained
        .into_iter()
        .map(|(agent, explained)| {
            let volume = volumes.get(agent).copied().unwrap_or(0);
            let probabilities: Vec<f64> = matched
                .iter()
                .map(|row| hit_probability(volume, row.candidates.len() as u64, base_customers))
                .collect();
            let chance = at_least(explained.len(), &probabilities);
            AgentAttribution {
                agent: agent.to_string(),
                volume,
                consistent: explained.iter().filter(|row| row.consistent).count() as u64,
                expected: probabilities.iter().sum(),
                blamed: chance * agents_considered as f64 <= BLAME_FAMILY_ERROR_MAX,
                chance,
                explained,
            }
        })
        .collect();
    agents.sort_by(|a, b| {
        a.chance
            .total_cmp(&b.chance)
            .then(b.explained.len().cmp(&a.explained.len()))
            .then(b.consistent.cmp(&a.consistent))
            .then(a.agent.cmp(&b.agent))
    });
    let mut covered: BTreeSet<usize> = BTreeSet::new();
    let mut cover = Vec::new();
    for agent in agents.iter().filter(|agent| agent.blamed) {
        let adds = agent.explained.iter().filter(|row| !covered.contains(&row.line)).count();
        if adds > 0 {
            covered.extend(agent.explained.iter().map(|row| row.line));
            cover.push(agent.agent.clone());
        }
    }
    Attribution {
        rows: rows.len() as u64,
        matched_rows: matched.len() as u64,
        unmatched_lines: rows.iter().filter(|row| row.candidates.is_empty()).map(|row| row.line).collect(),
        base_customers,
        agents,
        cover,
        covered_rows: covered.len() as u64,
        agents_considered,
    }
}

/// Whether one of `accesses` showed the value the way `needed` says.
fn shown_as_needed(accesses: &[&Shown], needed: Needed) -> bool {
    let field = match needed.column {
        // Every access that shows a customer shows its account id.
        Column::AccountId => return !accesses.is_empty(),
        Column::Email => Field::Email,
        Column::Phone => Field::Phone,
        Column::FullName => Field::FullName,
        Column::Wallet => Field::WalletAddresses,
    };
    accesses.iter().any(|access| match access.how {
        ShownAs::Reveal => access.fields.contains(&field),
        ShownAs::Card => needed.masked,
        ShownAs::SearchHit => needed.masked && field == Field::FullName,
        ShownAs::Verify => false,
    })
}
