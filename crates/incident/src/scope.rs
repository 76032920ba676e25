//! Scope: for chosen agents and a window, exactly which customers were shown what.
//!
//! A search hit shows the customer's masked name; a card shows every field the customer has,
//! masked; a reveal shows the fields it names in the clear (those the customer has); a verify
//! tells match or no match about one field and shows no value. A field counts as revealed if
//! any access revealed it, and as seen only masked if it was shown masked and never revealed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use cordon_vault::{Field, FieldClass};

use crate::time::day_of;

const DAY_MS: i64 = 86_400_000;

/// How an access showed a customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ShownAs {
    SearchHit,
    Card,
    Reveal,
    Verify,
}

impl ShownAs {
    pub fn name(self) -> &'static str {
        match self {
            ShownAs::SearchHit => "search",
            ShownAs::Card => "view",
            ShownAs::Reveal => "reveal",
            ShownAs::Verify => "verify",
        }
    }

    /// The ledger's action name back to a kind; `None` for actions that show no customer.
    pub fn from_action(action: &str) -> Option<ShownAs> {
        match action {
            "search" => Some(ShownAs::SearchHit),
            "view" => Some(ShownAs::Card),
            "reveal" => Some(ShownAs::Reveal),
            "verify" => Some(ShownAs::Verify),
            _ => None,
        }
    }
}

/// One customer shown to one agent by one allowed access (the ledger entry at `ledger_index`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub ledger_index: u64,
    pub time_ms: i64,
    pub agent: String,
    pub customer: String,
    pub how: ShownAs,
    /// For reveals and verifies: the fields named.
    pub fields: Vec<Field>,
}

/// What scope needs to know of a customer, read from the vault by the caller.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CustomerFacts {
    /// The fields the customer's record holds; `None` if the record is gone (crypto-shredded),
    /// when a card is taken to have shown every catalogue field.
    pub fields: Option<BTreeSet<Field>>,
    pub high_balance: bool,
}

/// How much of a customer was shown: what is done for the customer follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ExposureLevel {
    /// Nothing but the initials of a search hit's masked name (or a verify, which shows no
    /// value): too little to impersonate the exchange with.
    Initials,
    /// Masked fields of a card (partial email and phone, a balance band, a city), none in full.
    Masked,
    /// At least one field shown in full.
    Revealed,
}

impl ExposureLevel {
    pub fn name(self) -> &'static str {
        match self {
            ExposureLevel::Initials => "initials",
            ExposureLevel::Masked => "masked",
            ExposureLevel::Revealed => "revealed",
        }
    }
}

/// One affected customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerScope {
    pub customer: String,
    pub revealed: BTreeSet<Field>,
    /// Shown masked and never revealed.
    pub masked_only: BTreeSet<Field>,
    /// Checked by verify-without-reveal (no value shown).
    pub verified: BTreeSet<Field>,
    pub high_balance: bool,
    pub first_ms: i64,
    pub last_ms: i64,
    pub agents: BTreeSet<String>,
    /// The ledger entries that showed this customer, in index order.
    pub evidence: Vec<u64>,
}

impl CustomerScope {
    /// How much of this customer was shown.
    pub fn exposure(&self) -> ExposureLevel {
        if !self.revealed.is_empty() {
            ExposureLevel::Revealed
        } else if self.masked_only.iter().any(|field| *field != Field::FullName) {
            ExposureLevel::Masked
        } else {
            ExposureLevel::Initials
        }
    }
}

impl CustomerScope {
    /// The field classes of everything shown, revealed or masked.
    pub fn classes(&self) -> BTreeSet<FieldClass> {
        self.revealed.iter().chain(&self.masked_only).map(|field| field.class()).collect()
    }
}

/// Per field: how many customers had it revealed, and how many saw it only masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FieldCount {
    pub revealed: u64,
    pub masked_only: u64,
}

/// One agent's part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentScope {
    pub agent: String,
    pub customers: u64,
    /// Customers of whom this agent was shown at least one field in the clear.
    pub customers_revealed: u64,
    pub accesses: u64,
    pub first_ms: i64,
    pub last_ms: i64,
}

/// One UTC day of the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayCount {
    pub day: String,
    pub accesses: u64,
    pub customers: u64,
    /// Customers shown for the first time in the window on this day.
    pub new_customers: u64,
    pub reveals: u64,
}

/// The answer to "whose data, which fields, when, by whom".
#[derive(Debug, Clone, PartialEq)]
pub struct Scope {
    /// Affected customers, by id.
    pub customers: Vec<CustomerScope>,
    pub by_field: BTreeMap<Field, FieldCount>,
    /// Per class: customers with a field of the class revealed, and with one only masked.
    pub by_class: BTreeMap<FieldClass, FieldCount>,
    pub high_balance: u64,
    pub base_customers: u64,
    pub first_ms: Option<i64>,
    pub last_ms: Option<i64>,
    pub agents: Vec<AgentScope>,
    pub days: Vec<DayCount>,
    pub accesses: u64,
}

impl Scope {
    /// The affected customers as a share of the whole base (0 to 1).
    pub fn share(&self) -> f64 {
        if self.base_customers == 0 { 0.0 } else { self.customers.len() as f64 / self.base_customers as f64 }
    }

    pub fn customer(&self, id: &str) -> Option<&CustomerScope> {
        self.customers
            .binary_search_by(|customer| customer.customer.as_str().cmp(id))
            .ok()
            .and_then(|at| self.customers.get(at))
    }
}

/// Scope over `shown` (already limited to the suspects and the window), with each customer's
/// facts from `facts` and the size of the whole customer base.
pub fn scope(shown: &[Shown], facts: &HashMap<String, CustomerFacts>, base_customers: u64) -> Scope {
    let all_fields: BTreeSet<Field> = Field::ALL.into_iter().collect();
    let mut customers: BTreeMap<&str, CustomerScope> = BTreeMap::new();
    let mut masked: HashMap<&str, BTreeSet<Field>> = HashMap::new();
    // Per agent: customers shown, customers revealed, accesses, first and last time.
    type AgentTally<'a> = (BTreeSet<&'a str>, BTreeSet<&'a str>, u64, i64, i64);
    let mut agents: BTreeMap<&str, AgentTally<'_>> = BTreeMap::new();
    // Keyed by the day's number since 1970 and named at the end: formatting a date per
    // access was a fifth of a large scope's time.
    let mut days: BTreeMap<i64, (u64, BTreeSet<&str>, u64)> = BTreeMap::new();
    for access in shown {
        let customer_facts = facts.get(&access.customer);
        let present = customer_facts.and_then(|facts| facts.fields.as_ref()).unwrap_or(&all_fields);
        let entry = customers.entry(access.customer.as_str()).or_insert_with(|| CustomerScope {
            customer: access.customer.clone(),
            revealed: BTreeSet::new(),
            masked_only: BTreeSet::new(),
            verified: BTreeSet::new(),
            high_balance: customer_facts.is_some_and(|facts| facts.high_balance),
            first_ms: access.time_ms,
            last_ms: access.time_ms,
            agents: BTreeSet::new(),
            evidence: Vec::new(),
        });
        entry.first_ms = entry.first_ms.min(access.time_ms);
        entry.last_ms = entry.last_ms.max(access.time_ms);
        entry.agents.insert(access.agent.clone());
        entry.evidence.push(access.ledger_index);
        let shown_masked = masked.entry(access.customer.as_str()).or_default();
        let mut revealed_here = false;
        match access.how {
            ShownAs::SearchHit => {
                shown_masked.insert(Field::FullName);
            }
            ShownAs::Card => shown_masked.extend(present.iter().copied()),
            ShownAs::Reveal => {
                for field in access.fields.iter().filter(|field| present.contains(field)) {
                    entry.revealed.insert(*field);
                    revealed_here = true;
                }
            }
            ShownAs::Verify => entry.verified.extend(access.fields.iter().filter(|field| present.contains(field))),
        }
        let agent = agents.entry(access.agent.as_str()).or_insert((
            BTreeSet::new(),
            BTreeSet::new(),
            0,
            access.time_ms,
            access.time_ms,
        ));
        agent.0.insert(access.customer.as_str());
        if revealed_here {
            agent.1.insert(access.customer.as_str());
        }
        agent.2 += 1;
        agent.3 = agent.3.min(access.time_ms);
        agent.4 = agent.4.max(access.time_ms);
        let day = days.entry(access.time_ms.div_euclid(DAY_MS)).or_default();
        day.0 += 1;
        day.1.insert(access.customer.as_str());
        if access.how == ShownAs::Reveal {
            day.2 += 1;
        }
    }
    let mut by_field: BTreeMap<Field, FieldCount> = BTreeMap::new();
    let mut by_class: BTreeMap<FieldClass, FieldCount> = BTreeMap::new();
    for (id, customer) in customers.iter_mut() {
        let shown_masked = masked.remove(id).unwrap_or_default();
        customer.masked_only = shown_masked.difference(&customer.revealed).copied().collect();
        for field in &customer.revealed {
            by_field.entry(*field).or_default().revealed += 1;
        }
        for field in &customer.masked_only {
            by_field.entry(*field).or_default().masked_only += 1;
        }
        let revealed_classes: BTreeSet<FieldClass> = customer.revealed.iter().map(|field| field.class()).collect();
        let masked_classes: BTreeSet<FieldClass> = customer.masked_only.iter().map(|field| field.class()).collect();
        for class in &revealed_classes {
            by_class.entry(*class).or_default().revealed += 1;
        }
        for class in masked_classes.difference(&revealed_classes) {
            by_class.entry(*class).or_default().masked_only += 1;
        }
        customer.evidence.sort_unstable();
        customer.evidence.dedup();
    }
    // The first day each customer appears, for the timeline's new customers.
    let mut first_days: HashMap<i64, u64> = HashMap::new();
    for customer in customers.values() {
        *first_days.entry(customer.first_ms.div_euclid(DAY_MS)).or_default() += 1;
    }
    let customers: Vec<CustomerScope> = customers.into_values().collect();
    Scope {
        high_balance: customers.iter().filter(|customer| customer.high_balance).count() as u64,
        first_ms: customers.iter().map(|customer| customer.first_ms).min(),
        last_ms: customers.iter().map(|customer| customer.last_ms).max(),
        base_customers,
        by_field,
        by_class,
        agents: agents
            .into_iter()
            .map(|(agent, (seen, revealed, accesses, first_ms, last_ms))| AgentScope {
                agent: agent.to_string(),
                customers: seen.len() as u64,
                customers_revealed: revealed.len() as u64,
                accesses,
                first_ms,
                last_ms,
            })
            .collect(),
        days: days
            .into_iter()
            .map(|(day, (accesses, seen, reveals))| DayCount {
                new_customers: first_days.get(&day).copied().unwrap_or(0),
                day: day_of(day * DAY_MS),
                accesses,
                customers: seen.len() as u64,
                reveals,
            })
            .collect(),
        accesses: shown.len() as u64,
        customers,
    }
}
