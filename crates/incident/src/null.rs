//! The null model behind attribution: how many rows of a leaked sample an agent who is *not*
//! its source would explain anyway.
//!
//! A leaker does not pick customers uniformly from the base. An extortionist's sample is rich
//! (and a vip desk serves only the rich), and every customer copied off a support screen was
//! shown to some agent (and customers who write often are shown to many). So an agent's
//! coverage of a sample is judged against customers *like the sample's*: the base is split
//! into strata by balance band and by whether any *other* agent was shown each customer, and
//! within each stratum an innocent agent's reach is taken to be a random subset of the
//! stratum's customers, of the size it really has there. An agent's reach counts only the
//! customers it was shown the way the sample has them ([`Seen::shows`]): an exact email needs a
//! reveal of the email, a masked one a card, so an agent shown only masked cards explains no
//! row of exact values, and its thousands of cards do not count against it either.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use cordon_vault::Field;

use crate::attribute::Needed;
use crate::chance::hit_probability;
use crate::sample::Column;
use crate::scope::ShownAs;

/// How an agent was shown one customer, over all of its accesses: a set of ways.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Seen(u8);

impl Seen {
    const SEARCH_HIT: u8 = 1;
    const CARD: u8 = 1 << 1;
    const EMAIL: u8 = 1 << 2;
    const PHONE: u8 = 1 << 3;
    const NAME: u8 = 1 << 4;
    const WALLET: u8 = 1 << 5;
    const VERIFY: u8 = 1 << 6;
    /// A reveal of fields a sample cannot hold (an address, a document number).
    const OTHER_REVEAL: u8 = 1 << 7;

    /// One access's ways.
    pub fn of(how: ShownAs, fields: &[Field]) -> Seen {
        Seen(match how {
            ShownAs::SearchHit => Seen::SEARCH_HIT,
            ShownAs::Card => Seen::CARD,
            ShownAs::Verify => Seen::VERIFY,
            ShownAs::Reveal => fields.iter().fold(0, |bits, field| {
                bits | match field {
                    Field::Email => Seen::EMAIL,
                    Field::Phone => Seen::PHONE,
                    Field::FullName => Seen::NAME,
                    Field::WalletAddresses => Seen::WALLET,
                    _ => Seen::OTHER_REVEAL,
                }
            }),
        })
    }

    pub fn with(self, other: Seen) -> Seen {
        Seen(self.0 | other.0)
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    pub fn from_bits(bits: u8) -> Seen {
        Seen(bits)
    }

    /// Whether a customer shown these ways was shown each of a row's values as the row has
    /// it: exact values need a reveal of their field; masked ones a card, a reveal, or for
    /// a name a search hit; an account id any access at all. A verify shows no value.
    pub fn shows(self, needed: &[Needed]) -> bool {
        needed.iter().all(|needed| self.shows_one(*needed))
    }

    fn shows_one(self, needed: Needed) -> bool {
        let has = |bit: u8| self.0 & bit != 0;
        let revealed = match needed.column {
            Column::AccountId => return self.0 != 0,
            Column::Email => Seen::EMAIL,
            Column::Phone => Seen::PHONE,
            Column::FullName => Seen::NAME,
            Column::Wallet => Seen::WALLET,
        };
        has(revealed)
            || (needed.masked && (has(Seen::CARD) || (needed.column == Column::FullName && has(Seen::SEARCH_HIT))))
    }
}

/// A customer's balance band as a small number (`BalanceBand` in order), or this when the
/// balance is unknown (no record, or shredded).
pub const BAND_UNKNOWN: u8 = u8::MAX;

/// Degrees (agents shown a customer) are kept exactly up to this; above it they are equal.
const DEGREE_CAP: u32 = 2;

/// A stratum: a balance band, and whether other agents were shown the customer.
type Stratum = (u8, u8);

/// Whether a customer was shown to any other agent. Finer buckets (shown to three others,
/// to four) were tried and lost the power to blame colluders: customers a ring shares are
/// seen by few agents besides the ring, so each member's share of them looked ordinary.
fn bucket(others: u32) -> u8 {
    u8::from(others > 0)
}

/// Everything the null model knows: each customer's band and how many agents were shown it,
/// and each agent's reach with how it was shown each customer.
#[derive(Debug, Default)]
pub struct NullModel {
    number: HashMap<String, u32>,
    band: Vec<u8>,
    degree: Vec<u32>,
    reach: HashMap<String, HashMap<u32, Seen>>,
    /// Customers of the base by band and degree (capped), degree counting every agent.
    base: HashMap<(u8, u32), u64>,
    /// Per agent, its customers counted by how it was shown them, the stratum each is in for
    /// every other agent, and the stratum it is in as this agent sees it: what `reach` sums,
    /// so answering costs a few hundred additions, not a walk over the agent's customers.
    profiles: HashMap<String, HashMap<(Seen, Stratum, Stratum), u64>>,
}

/// Builds a `NullModel` from reach items as they are read.
#[derive(Debug)]
pub struct NullModelBuilder {
    model: NullModel,
}

impl NullModelBuilder {
    /// `agent` was shown `customer` in the ways `seen` says.
    pub fn add(&mut self, agent: &str, customer: &str, seen: Seen) {
        let model = &mut self.model;
        let number = match model.number.get(customer) {
            Some(number) => *number,
            None => model.customer(customer.to_string(), BAND_UNKNOWN),
        };
        let reach = match model.reach.get_mut(agent) {
            Some(reach) => reach,
            None => model.reach.entry(agent.to_string()).or_default(),
        };
        match reach.entry(number) {
            Entry::Occupied(mut known) => {
                let both = known.get().with(seen);
                known.insert(both);
            }
            Entry::Vacant(new) => {
                new.insert(seen);
                if let Some(degree) = model.degree.get_mut(number as usize) {
                    *degree += 1;
                }
            }
        }
    }

    pub fn finish(self) -> NullModel {
        let mut model = self.model;
        for (band, degree) in model.band.iter().zip(&model.degree) {
            *model.base.entry((*band, (*degree).min(DEGREE_CAP))).or_default() += 1;
        }
        let mut profiles = HashMap::with_capacity(model.reach.len());
        for (agent, reach) in &model.reach {
            let mut profile: HashMap<(Seen, Stratum, Stratum), u64> = HashMap::new();
            for (number, seen) in reach {
                let key = (*seen, model.stratum(*number, false), model.stratum(*number, true));
                *profile.entry(key).or_default() += 1;
            }
            profiles.insert(agent.clone(), profile);
        }
        model.profiles = profiles;
        model
    }
}

/// One agent's side of the model, for one way of being shown: its reach and the customers
/// of each stratum an innocent agent's reach would be drawn from.
#[derive(Debug, Default)]
pub(crate) struct Reach {
    shown: HashMap<Stratum, u64>,
    pool: HashMap<Stratum, u64>,
}

impl NullModel {
    /// The model over a base whose every customer has a band in `bands` (customers absent
    /// there but in `reach` count as of unknown band), from `reach`: one item per agent and
    /// customer it was shown, with how.
    pub fn new(bands: &HashMap<String, u8>, reach: impl IntoIterator<Item = (String, String, Seen)>) -> NullModel {
        let mut builder = NullModel::builder(bands);
        for (agent, customer, seen) in reach {
            builder.add(&agent, &customer, seen);
        }
        builder.finish()
    }

    /// A model built one reach item at a time, as they are read (millions of them, at the
    /// size of an exchange, are never all held twice).
    pub fn builder(bands: &HashMap<String, u8>) -> NullModelBuilder {
        let mut model = NullModel::default();
        for (customer, band) in bands {
            model.customer(customer.clone(), *band);
        }
        NullModelBuilder { model }
    }

    fn customer(&mut self, customer: String, band: u8) -> u32 {
        let number = self.band.len() as u32;
        self.number.insert(customer, number);
        self.band.push(band);
        self.degree.push(0);
        number
    }

    /// Customers in the base.
    pub fn customers(&self) -> u64 {
        self.band.len() as u64
    }

    /// Agents shown at least one customer: the number attribution could blame.
    pub fn agents(&self) -> u64 {
        self.reach.values().filter(|reach| !reach.is_empty()).count() as u64
    }

    /// Distinct customers `agent` was shown, any way.
    pub fn volume(&self, agent: &str) -> u64 {
        self.reach.get(agent).map_or(0, |reach| reach.len() as u64)
    }

    /// How `agent` was shown `customer`, if it was.
    pub fn seen(&self, agent: &str, customer: &str) -> Option<Seen> {
        let number = *self.number.get(customer)?;
        self.reach.get(agent)?.get(&number).copied()
    }

    /// The stratum of `customer` as `agent` sees it: its band, and how many agents other
    /// than this one were shown it.
    fn stratum(&self, number: u32, shown_to_agent: bool) -> Stratum {
        let band = self.band.get(number as usize).copied().unwrap_or(BAND_UNKNOWN);
        let degree = self.degree.get(number as usize).copied().unwrap_or(0);
        (band, bucket(degree.saturating_sub(u32::from(shown_to_agent))))
    }

    /// `agent`'s reach of customers shown as `needed` says, by stratum, and the pool each
    /// stratum's reach is judged against.
    pub(crate) fn reach(&self, agent: &str, needed: &[Needed]) -> Reach {
        let mut found = Reach::default();
        for ((band, degree), count) in &self.base {
            *found.pool.entry((*band, bucket(*degree))).or_default() += count;
        }
        for ((seen, for_others, own), count) in self.profiles.get(agent).into_iter().flatten() {
            // This agent's own customers are judged by the agents other than it.
            if let Some(pool) = found.pool.get_mut(for_others) {
                *pool = pool.saturating_sub(*count);
            }
            *found.pool.entry(*own).or_default() += count;
            if seen.shows(needed) {
                *found.shown.entry(*own).or_default() += count;
            }
        }
        found
    }

    /// Brings the model up to one more reach item, as if it had been built with it: `agent`
    /// was shown `customer` in the ways `seen` says (a new pair, new ways for a known pair,
    /// or nothing new). A serving node's follower adds pairs between questions; applying them
    /// costs a few map updates each, where building again costs a census of the base.
    pub fn apply(&mut self, agent: &str, customer: &str, seen: Seen) {
        let number = match self.number.get(customer) {
            Some(number) => *number,
            None => {
                let number = self.customer(customer.to_string(), BAND_UNKNOWN);
                *self.base.entry((BAND_UNKNOWN, 0)).or_default() += 1;
                number
            }
        };
        let known = self.reach.get(agent).and_then(|reach| reach.get(&number)).copied();
        match known {
            Some(old) => {
                let new = old.with(seen);
                if new == old {
                    return;
                }
                let (for_others, own) = (self.stratum(number, false), self.stratum(number, true));
                self.count(agent, (old, for_others, own), -1);
                self.count(agent, (new, for_others, own), 1);
                if let Some(reach) = self.reach.get_mut(agent) {
                    reach.insert(number, new);
                }
            }
            None => {
                let band = self.band.get(number as usize).copied().unwrap_or(BAND_UNKNOWN);
                let degree = self.degree.get(number as usize).copied().unwrap_or(0);
                // The one agent shown it so far now shares it: its own stratum for it moves
                // from "nobody else" to "others too".
                let sole = (degree == 1)
                    .then(|| {
                        self.reach
                            .iter()
                            .find(|(_, reach)| reach.contains_key(&number))
                            .and_then(|(other, reach)| Some((other.clone(), *reach.get(&number)?)))
                    })
                    .flatten();
                let before = (self.stratum(number, false), self.stratum(number, true));
                if let Some(count) = self.base.get_mut(&(band, degree.min(DEGREE_CAP))) {
                    *count = count.saturating_sub(1);
                }
                *self.base.entry((band, (degree + 1).min(DEGREE_CAP))).or_default() += 1;
                if let Some(slot) = self.degree.get_mut(number as usize) {
                    *slot += 1;
                }
                let after = (self.stratum(number, false), self.stratum(number, true));
                if let Some((other, other_seen)) = sole {
                    self.count(&other, (other_seen, before.0, before.1), -1);
                    self.count(&other, (other_seen, after.0, after.1), 1);
                }
                self.reach.entry(agent.to_string()).or_default().insert(number, seen);
                self.count(agent, (seen, after.0, after.1), 1);
            }
        }
    }

    fn count(&mut self, agent: &str, key: (Seen, Stratum, Stratum), by: i64) {
        let profile = self.profiles.entry(agent.to_string()).or_default();
        let slot = profile.entry(key).or_default();
        *slot = slot.saturating_add_signed(by);
        if *slot == 0 {
            profile.remove(&key);
        }
    }

    /// `agent`'s reach of customers shown as `needed` says, and the pool of each stratum, in
    /// order: what the chances are computed from (for tests and tools that compare models).
    pub fn reach_by_stratum(&self, agent: &str, needed: &[Needed]) -> Vec<((u8, u8), u64, u64)> {
        let reach = self.reach(agent, needed);
        let mut strata: Vec<(u8, u8)> = reach.pool.keys().chain(reach.shown.keys()).copied().collect();
        strata.sort_unstable();
        strata.dedup();
        strata
            .into_iter()
            .map(|stratum| {
                (
                    stratum,
                    reach.shown.get(&stratum).copied().unwrap_or(0),
                    reach.pool.get(&stratum).copied().unwrap_or(0),
                )
            })
            .filter(|(_, shown, pool)| *shown > 0 || *pool > 0)
            .collect()
    }

    /// The probability that an agent with `reach`, not the sample's source, was shown one of
    /// `candidates` as the row has it.
    pub(crate) fn hit(&self, agent: &str, reach: &Reach, candidates: &[String]) -> f64 {
        let agent_reach = self.reach.get(agent);
        let mut per_stratum: HashMap<Stratum, u64> = HashMap::new();
        for candidate in candidates {
            let stratum = match self.number.get(candidate) {
                Some(number) => self.stratum(*number, agent_reach.is_some_and(|reach| reach.contains_key(number))),
                None => (BAND_UNKNOWN, 0),
            };
            *per_stratum.entry(stratum).or_default() += 1;
        }
        let miss: f64 = per_stratum
            .iter()
            .map(|(stratum, count)| {
                let shown = reach.shown.get(stratum).copied().unwrap_or(0);
                let pool = reach.pool.get(stratum).copied().unwrap_or(0).max(shown + count);
                1.0 - hit_probability(shown, *count, pool)
            })
            .product();
        (1.0 - miss).clamp(0.0, 1.0)
    }
}
