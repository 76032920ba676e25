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
use std::sync::Arc;

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

/// Agents shown a customer are counted up to this; above it they are equal. Two is enough to
/// tell, for any agent, whether *another* agent was shown the customer.
const DEGREE_CAP: u8 = 2;

/// A stratum: a balance band, and whether other agents were shown the customer.
type Stratum = (u8, bool);

/// Every customer of the base with its balance band, sorted by id, the ids in one buffer:
/// about twenty bytes a customer, where a map of strings costs three times that. The census
/// is the costly part of a model (every balance opened in memory) and changes only with the
/// customers, so a model built again shares it.
#[derive(Debug, Default)]
pub struct BandCensus {
    ids: String,
    ends: Vec<usize>,
    bands: Vec<u8>,
}

impl BandCensus {
    /// The census of `customers` (id and band); ids given twice count once, with the last band.
    pub fn new(customers: impl IntoIterator<Item = (String, u8)>) -> BandCensus {
        let mut all: Vec<(String, u8)> = customers.into_iter().collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        let mut census = BandCensus::default();
        for (position, (id, band)) in all.iter().enumerate() {
            if all.get(position + 1).is_some_and(|next| next.0 == *id) {
                continue;
            }
            census.push(id, *band);
        }
        census
    }

    /// The census of customers read in id order (as the store lists them); one out of order
    /// makes it sort the whole.
    pub fn from_ordered(customers: impl IntoIterator<Item = (String, u8)>) -> BandCensus {
        let mut census = BandCensus::default();
        let mut pending = customers.into_iter();
        for (id, band) in pending.by_ref() {
            if census.last().is_some_and(|last| last >= id.as_str()) {
                let mut rest: Vec<(String, u8)> = census.entries().map(|(id, band)| (id.to_string(), band)).collect();
                rest.push((id, band));
                rest.extend(pending);
                return BandCensus::new(rest);
            }
            census.push(&id, band);
        }
        census
    }

    /// Censuses of consecutive parts of the base, in id order, as one (sorted if they were
    /// not in order).
    pub fn join(parts: Vec<BandCensus>) -> BandCensus {
        BandCensus::from_ordered(parts.iter().flat_map(|part| part.entries().map(|(id, band)| (id.to_string(), band))))
    }

    fn push(&mut self, id: &str, band: u8) {
        self.ids.push_str(id);
        self.ends.push(self.ids.len());
        self.bands.push(band);
    }

    fn id(&self, number: usize) -> &str {
        let start = if number == 0 { 0 } else { self.ends.get(number - 1).copied().unwrap_or(0) };
        let end = self.ends.get(number).copied().unwrap_or(0);
        self.ids.get(start..end).unwrap_or("")
    }

    fn last(&self) -> Option<&str> {
        self.ends.len().checked_sub(1).map(|number| self.id(number))
    }

    fn entries(&self) -> impl Iterator<Item = (&str, u8)> {
        (0..self.bands.len()).map(|number| (self.id(number), self.bands.get(number).copied().unwrap_or(BAND_UNKNOWN)))
    }

    /// `customer`'s place in the census.
    fn find(&self, customer: &str) -> Option<u32> {
        let (mut low, mut high) = (0usize, self.ends.len());
        while low < high {
            let middle = low + (high - low) / 2;
            match self.id(middle).cmp(customer) {
                std::cmp::Ordering::Less => low = middle + 1,
                std::cmp::Ordering::Greater => high = middle,
                std::cmp::Ordering::Equal => return Some(middle as u32),
            }
        }
        None
    }

    /// Customers in the census.
    pub fn len(&self) -> usize {
        self.bands.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bands.is_empty()
    }
}

/// One agent's side of the model: how many customers it was shown, and those customers
/// counted by how it was shown them, their band and whether another agent was shown them
/// too. Answering sums these (a few hundred additions), never the agent's customers.
#[derive(Debug, Default, Clone)]
struct Profile {
    volume: u64,
    counts: HashMap<(Seen, u8, bool), u64>,
}

impl Profile {
    fn count(&mut self, key: (Seen, u8, bool), by: i64) {
        let slot = self.counts.entry(key).or_default();
        *slot = slot.saturating_add_signed(by);
        if *slot == 0 {
            self.counts.remove(&key);
        }
        self.volume = self.volume.saturating_add_signed(by);
    }
}

/// Everything the null model knows: each customer's band and how many agents (up to two)
/// were shown it, and per agent its reach counted by how it was shown, band and sharing.
/// It holds no pair of agent and customer: its size grows with the base and the agents, not
/// with the accesses (the pairs stay in the exposure index, and a question reads only its
/// candidates').
#[derive(Debug, Default)]
pub struct NullModel {
    census: Arc<BandCensus>,
    /// Customers some agent was shown that are not in the census (shredded, or never
    /// imported), numbered after it, of unknown band.
    strays: HashMap<String, u32>,
    /// Agents shown each customer (census, then strays), up to `DEGREE_CAP`.
    degree: Vec<u8>,
    /// Customers of the base by band and degree.
    base: HashMap<(u8, u8), u64>,
    profiles: HashMap<String, Profile>,
}

/// Builds a `NullModel` from reach items as they are read: each pair of agent and customer
/// once (as the exposure index holds them), in any order.
#[derive(Debug)]
pub struct NullModelBuilder {
    model: NullModel,
    /// The first agent shown each customer and how: a customer no other agent was shown is
    /// counted as unshared for that agent when the pass is over.
    first: Vec<(u32, Seen)>,
    agents: Vec<String>,
    agent_numbers: HashMap<String, u32>,
}

impl NullModelBuilder {
    /// `agent` was shown `customer` in the ways `seen` says.
    pub fn add(&mut self, agent: &str, customer: &str, seen: Seen) {
        let number = self.model.number_or_stray(customer) as usize;
        let agent_number = match self.agent_numbers.get(agent) {
            Some(number) => *number,
            None => {
                let number = self.agents.len() as u32;
                self.agents.push(agent.to_string());
                self.agent_numbers.insert(agent.to_string(), number);
                number
            }
        };
        if self.first.len() <= number {
            self.first.resize(number + 1, (u32::MAX, Seen::default()));
        }
        let (Some(degree), Some(first)) = (self.model.degree.get_mut(number), self.first.get_mut(number)) else {
            return;
        };
        if *degree == 0 {
            *first = (agent_number, seen);
        }
        *degree = (*degree + 1).min(DEGREE_CAP);
        let band = self.model.band(number as u32);
        // Counted as shared for now; `finish` moves the customers nobody else was shown.
        self.model.profiles.entry(agent.to_string()).or_default().count((seen, band, true), 1);
    }

    pub fn finish(self) -> NullModel {
        let NullModelBuilder { mut model, first, agents, .. } = self;
        for (number, (agent, seen)) in first.iter().enumerate() {
            if model.degree.get(number) != Some(&1) {
                continue;
            }
            let band = model.band(number as u32);
            if let Some(profile) = agents.get(*agent as usize).and_then(|agent| model.profiles.get_mut(agent)) {
                profile.count((*seen, band, true), -1);
                profile.count((*seen, band, false), 1);
            }
        }
        for number in 0..model.degree.len() {
            let key = (model.band(number as u32), model.degree.get(number).copied().unwrap_or(0));
            *model.base.entry(key).or_default() += 1;
        }
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
    /// there but in `reach` count as of unknown band), from `reach`: items of an agent, a
    /// customer it was shown and how (a pair given twice counts once, with both ways).
    pub fn new(bands: &HashMap<String, u8>, reach: impl IntoIterator<Item = (String, String, Seen)>) -> NullModel {
        let census = BandCensus::new(bands.iter().map(|(customer, band)| (customer.clone(), *band)));
        let mut pairs: std::collections::BTreeMap<(String, String), Seen> = std::collections::BTreeMap::new();
        for (agent, customer, seen) in reach {
            let ways = pairs.entry((agent, customer)).or_default();
            *ways = ways.with(seen);
        }
        let mut builder = NullModel::builder(Arc::new(census));
        for ((agent, customer), seen) in &pairs {
            builder.add(agent, customer, *seen);
        }
        builder.finish()
    }

    /// A model of the base in `census`, built one reach pair at a time as they are read.
    pub fn builder(census: Arc<BandCensus>) -> NullModelBuilder {
        let customers = census.len();
        let model = NullModel { degree: vec![0; customers], census, ..NullModel::default() };
        let first = vec![(u32::MAX, Seen::default()); customers];
        NullModelBuilder { model, first, agents: Vec::new(), agent_numbers: HashMap::new() }
    }

    /// The census this model was built over.
    pub fn census(&self) -> &Arc<BandCensus> {
        &self.census
    }

    fn number(&self, customer: &str) -> Option<u32> {
        self.census.find(customer).or_else(|| self.strays.get(customer).copied())
    }

    fn number_or_stray(&mut self, customer: &str) -> u32 {
        if let Some(number) = self.number(customer) {
            return number;
        }
        let number = self.degree.len() as u32;
        self.strays.insert(customer.to_string(), number);
        self.degree.push(0);
        number
    }

    fn band(&self, number: u32) -> u8 {
        self.census.bands.get(number as usize).copied().unwrap_or(BAND_UNKNOWN)
    }

    /// Customers in the base.
    pub fn customers(&self) -> u64 {
        self.degree.len() as u64
    }

    /// The heap the model holds, counted from its collections' capacities (hash tables at a
    /// byte of control per slot): what a process pays to keep it, apart from the allocator's
    /// own overhead. The census is counted once, whoever shares it.
    pub fn heap_bytes(&self) -> u64 {
        fn table<K, V>(map: &HashMap<K, V>) -> usize {
            map.capacity() * (std::mem::size_of::<(K, V)>() + 1)
        }
        let census = self.census.ids.capacity()
            + self.census.ends.capacity() * std::mem::size_of::<usize>()
            + self.census.bands.capacity();
        let strays = table(&self.strays) + self.strays.keys().map(String::capacity).sum::<usize>();
        let profiles = table(&self.profiles)
            + self.profiles.iter().map(|(agent, profile)| agent.capacity() + table(&profile.counts)).sum::<usize>();
        (census + strays + self.degree.capacity() + table(&self.base) + profiles) as u64
    }

    /// Agents shown at least one customer: the number attribution could blame.
    pub fn agents(&self) -> u64 {
        self.profiles.values().filter(|profile| profile.volume > 0).count() as u64
    }

    /// Distinct customers `agent` was shown, any way.
    pub fn volume(&self, agent: &str) -> u64 {
        self.profiles.get(agent).map_or(0, |profile| profile.volume)
    }

    /// The stratum of `customer` as an agent sees it: its band, and whether agents other
    /// than this one (which was shown it, or not) were shown it.
    fn stratum(&self, customer: &str, shown_to_agent: bool) -> Stratum {
        match self.number(customer) {
            Some(number) => {
                let degree = self.degree.get(number as usize).copied().unwrap_or(0);
                (self.band(number), degree.saturating_sub(u8::from(shown_to_agent)) > 0)
            }
            None => (BAND_UNKNOWN, false),
        }
    }

    /// `agent`'s reach of customers shown as `needed` says, by stratum, and the pool each
    /// stratum's reach is judged against.
    pub(crate) fn reach(&self, agent: &str, needed: &[Needed]) -> Reach {
        let mut found = Reach::default();
        for ((band, degree), count) in &self.base {
            *found.pool.entry((*band, *degree > 0)).or_default() += count;
        }
        for ((seen, band, shared), count) in
            self.profiles.get(agent).map(|profile| &profile.counts).into_iter().flatten()
        {
            // This agent's own customers are judged by the agents other than it: for them
            // the customer was shown to someone (this agent); for it, only if shared.
            if let Some(pool) = found.pool.get_mut(&(*band, true)) {
                *pool = pool.saturating_sub(*count);
            }
            *found.pool.entry((*band, *shared)).or_default() += count;
            if seen.shows(needed) {
                *found.shown.entry((*band, *shared)).or_default() += count;
            }
        }
        found
    }

    /// Brings the model up to a customer's reach as it is now: `before` is every agent shown
    /// `customer` and how, as the model has it, `now` the same as the exposure index has it.
    /// A serving node's follower adds pairs between questions; applying a changed customer
    /// costs a few map updates, where building again costs a pass over every pair.
    pub fn replace_customer(&mut self, customer: &str, before: &[(String, Seen)], now: &[(String, Seen)]) {
        let number = self.number_or_stray(customer);
        let band = self.band(number);
        let degree = |pairs: &[(String, Seen)]| (pairs.len().min(usize::from(DEGREE_CAP))) as u8;
        let had = self.degree.get(number as usize).copied().unwrap_or(0);
        let new = degree(now);
        // A customer this model numbered only now (a stray) was not in its base yet.
        let counted = had > 0 || (number as usize) < self.census.len();
        if counted && let Some(count) = self.base.get_mut(&(band, had)) {
            *count = count.saturating_sub(1);
        }
        *self.base.entry((band, new)).or_default() += 1;
        if let Some(slot) = self.degree.get_mut(number as usize) {
            *slot = new;
        }
        for (agent, seen) in before {
            self.profiles.entry(agent.clone()).or_default().count((*seen, band, had > 1), -1);
        }
        for (agent, seen) in now {
            self.profiles.entry(agent.clone()).or_default().count((*seen, band, new > 1), 1);
        }
    }

    /// `agent`'s reach of customers shown as `needed` says, and the pool of each stratum, in
    /// order: what the chances are computed from (for tests and tools that compare models).
    pub fn reach_by_stratum(&self, agent: &str, needed: &[Needed]) -> Vec<(Stratum, u64, u64)> {
        let reach = self.reach(agent, needed);
        let mut strata: Vec<Stratum> = reach.pool.keys().chain(reach.shown.keys()).copied().collect();
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
    /// `candidates` as the row has it; `shown_to_agent` says which candidates it was shown.
    pub(crate) fn hit(&self, reach: &Reach, candidates: &[String], shown_to_agent: impl Fn(&str) -> bool) -> f64 {
        let mut per_stratum: HashMap<Stratum, u64> = HashMap::new();
        for candidate in candidates {
            *per_stratum.entry(self.stratum(candidate, shown_to_agent(candidate))).or_default() += 1;
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
