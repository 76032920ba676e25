//! Attribution: which agents' accesses explain a leaked sample, and how unlikely that is by
//! chance.
//!
//! Each sample row has been matched to its candidate customers (exactly one for an exact
//! value, every customer consistent with a masked rendering). An agent explains a row if it
//! was shown one of the row's candidates; it explains it *as shown* if it was shown each of
//! the row's values the way the sample has it (an exact email needs a reveal of the email, a
//! masked one a card or a reveal). Only rows explained as shown count: an agent who saw a
//! customer's masked card cannot have copied out the exact email. Agents are ranked by the
//! probability that an agent with the same reach, who is not the source, would explain as
//! many rows as shown ([`NullModel`]: reach judged within the sample's balance bands and
//! among customers as often seen by others); an agent is blamed only if that probability,
//! times the number of agents that could have been blamed, is at most
//! `BLAME_FAMILY_ERROR_MAX`. When no agent is blamed the answer says why: nothing matched,
//! nobody was shown the rows as the sample has them, the sample cannot single anyone out
//! (too few rows, or values that fit too many customers), or nobody stands out.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::chance::at_least;
use crate::null::{NullModel, Seen};
use crate::sample::Column;
use crate::scope::Shown;

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
    /// Every row it explains, as shown or not.
    pub explained: Vec<Explained>,
    /// Rows it explains as shown: the count that is judged.
    pub consistent: u64,
    /// Rows an agent of this reach who is not the source would explain as shown, on average.
    pub expected: f64,
    /// The probability of explaining at least `consistent` rows as shown by chance.
    pub chance: f64,
    pub blamed: bool,
}

/// What attribution concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// At least one agent explains the sample beyond chance.
    Blamed,
    /// No row matched a customer.
    NoMatch,
    /// No agent was shown any matched row the way the sample has it.
    NotShown,
    /// Even an agent shown every row as the sample has it would not stand out.
    Inconclusive,
    /// Agents explain rows, none beyond chance.
    NobodyStandsOut,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Blamed => "blamed",
            Verdict::NoMatch => "no-match",
            Verdict::NotShown => "not-shown",
            Verdict::Inconclusive => "inconclusive",
            Verdict::NobodyStandsOut => "nobody-stands-out",
        }
    }
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
    pub verdict: Verdict,
    /// The verdict in a sentence, with the figures behind it.
    pub reason: String,
}

impl Attribution {
    pub fn blamed(&self) -> impl Iterator<Item = &AgentAttribution> {
        self.agents.iter().filter(|agent| agent.blamed)
    }
}

/// Ranks agents over `rows`, given everything shown of the rows' candidates and the null
/// model of the whole base.
pub fn attribute(rows: &[MatchedRow], shown: &[Shown], model: &NullModel) -> Attribution {
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
                let seen = accesses
                    .iter()
                    .fold(Seen::default(), |seen, access| seen.with(Seen::of(access.how, &access.fields)));
                let consistent = seen.shows(&row.needed);
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
    let agents_considered = model.agents().max(1);
    // Per agent: its ranking, and the chance it would have had explaining every row as shown.
    let mut power: HashMap<String, f64> = HashMap::new();
    let mut agents: Vec<AgentAttribution> = explained
        .into_iter()
        .map(|(agent, explained)| {
            let probabilities = row_probabilities(model, agent, &matched, &by_customer);
            let consistent = explained.iter().filter(|row| row.consistent).count();
            let chance = at_least(consistent, &probabilities);
            power.insert(agent.to_string(), probabilities.iter().product());
            AgentAttribution {
                agent: agent.to_string(),
                volume: model.volume(agent),
                consistent: consistent as u64,
                expected: probabilities.iter().sum(),
                blamed: consistent > 0 && chance * agents_considered as f64 <= BLAME_FAMILY_ERROR_MAX,
                chance,
                explained,
            }
        })
        .collect();
    agents.sort_by(|a, b| {
        a.chance
            .total_cmp(&b.chance)
            .then(b.consistent.cmp(&a.consistent))
            .then(b.explained.len().cmp(&a.explained.len()))
            .then(a.agent.cmp(&b.agent))
    });
    let mut covered: BTreeSet<usize> = BTreeSet::new();
    let mut cover = Vec::new();
    for agent in agents.iter().filter(|agent| agent.blamed) {
        let rows = agent.explained.iter().filter(|row| row.consistent).map(|row| row.line);
        let adds = rows.clone().filter(|line| !covered.contains(line)).count();
        if adds > 0 {
            covered.extend(rows);
            cover.push(agent.agent.clone());
        }
    }
    let (verdict, reason) = verdict(&matched, &agents, &power, agents_considered);
    Attribution {
        rows: rows.len() as u64,
        matched_rows: matched.len() as u64,
        unmatched_lines: rows.iter().filter(|row| row.candidates.is_empty()).map(|row| row.line).collect(),
        base_customers: model.customers(),
        agents,
        cover,
        covered_rows: covered.len() as u64,
        agents_considered,
        verdict,
        reason,
    }
}

/// For each matched row, the probability that `agent`, not the source, was shown one of its
/// candidates as the row has them. Rows of the same columns share one reach.
fn row_probabilities(
    model: &NullModel,
    agent: &str,
    matched: &[&MatchedRow],
    by_customer: &HashMap<&str, BTreeMap<&str, Vec<&Shown>>>,
) -> Vec<f64> {
    let shown_to_agent = |candidate: &str| by_customer.get(candidate).is_some_and(|agents| agents.contains_key(agent));
    let mut reaches: Vec<(&[Needed], crate::null::Reach)> = Vec::new();
    matched
        .iter()
        .map(|row| {
            let position = match reaches.iter().position(|(needed, _)| *needed == row.needed.as_slice()) {
                Some(position) => position,
                None => {
                    reaches.push((&row.needed, model.reach(agent, &row.needed)));
                    reaches.len() - 1
                }
            };
            reaches.get(position).map_or(0.0, |(_, reach)| model.hit(reach, &row.candidates, shown_to_agent))
        })
        .collect()
}

/// The verdict, and the sentence that explains it.
fn verdict(
    matched: &[&MatchedRow],
    agents: &[AgentAttribution],
    power: &HashMap<String, f64>,
    considered: u64,
) -> (Verdict, String) {
    let blamed: Vec<&str> = agents.iter().filter(|agent| agent.blamed).map(|agent| agent.agent.as_str()).collect();
    if !blamed.is_empty() {
        return (
            Verdict::Blamed,
            format!(
                "{} explain{} the sample as shown beyond chance (family-wise error at most {BLAME_FAMILY_ERROR_MAX} over {considered} agents)",
                blamed.join(", "),
                if blamed.len() == 1 { "s" } else { "" }
            ),
        );
    }
    if matched.is_empty() {
        return (Verdict::NoMatch, "no row matched a customer: the values are not in the vault".into());
    }
    let Some(top) = agents.iter().find(|agent| agent.consistent > 0) else {
        return (
            Verdict::NotShown,
            "no agent was shown any matched row the way the sample has it: its values did not come from a screen cordon recorded".into(),
        );
    };
    let mut fits: Vec<usize> = matched.iter().map(|row| row.candidates.len()).collect();
    fits.sort_unstable();
    let median_fit = fits.get(fits.len() / 2).copied().unwrap_or(0);
    let best = power.get(&top.agent).copied().unwrap_or(1.0);
    if best * considered as f64 > BLAME_FAMILY_ERROR_MAX {
        return (
            Verdict::Inconclusive,
            format!(
                "inconclusive: even if {} had been shown all {} matched rows as the sample has them, that would happen by chance with probability {best:.1e}, above the bound of {BLAME_FAMILY_ERROR_MAX} over {considered} agents (each row's values fit a median of {median_fit} customers, and {} was shown {} customers); more rows, or columns that fit fewer customers (an exact email, phone or wallet), can decide",
                top.agent,
                matched.len(),
                top.agent,
                top.volume
            ),
        );
    }
    (
        Verdict::NobodyStandsOut,
        format!(
            "no agent explains the sample beyond chance: the most telling, {}, explains {} of {} rows as shown where {:.1} are expected (chance {:.1e})",
            top.agent,
            top.consistent,
            matched.len(),
            top.expected,
            top.chance
        ),
    )
}
