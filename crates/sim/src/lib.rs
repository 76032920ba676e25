//! A seeded simulation of an exchange's support operation, driven through cordon's gateway.
//!
//! A scenario file describes the population, the traffic and the insiders; `run` creates a
//! data directory, imports the customers and agents, and plays every day's tickets, lookups
//! and insider moves through the same gateway calls the HTTP API makes, so each is authorized
//! and audited like a real one. The same scenario and seed give the same ledger root on any
//! machine. `story` reads the ledger back and tells what happened.

mod attribution;
mod driver;
mod engine;
mod entry;
mod eval;
mod exec;
mod http;
mod leak;
mod people;
mod plan;
mod rng;
mod scenario;
mod story;
mod world;

pub use attribution::{AttributionScore, OTHER_BLAMED_MAX_RATE, SOURCE_BLAMED_MIN_RATE, evaluate_attribution};
pub use engine::{
    PERMISSIVE_POLICIES, Phase, RunReport, TRUTH_FILE, Truth, TruthInsider, TruthShown, import_customers, read_truth,
    run, run_on,
};
pub use eval::{
    HELD_OUT_SEED_OFFSET, InsiderScore, MethodScore, RunScore, Summary, evaluate, false_rates, held_out, percentile,
    summarize,
};
pub use exec::SimClock;
pub use http::{HttpTarget, run_over_http};
pub use leak::{LeakColumn, LeakSource, leak_rows, leak_sample};
pub use people::{CustomerSummary, FakeCustomer, People, customer_id};
pub use plan::HIGH_BALANCE_USD;
pub use rng::Rng;
pub use scenario::{Behaviour, EnumerationMode, InsiderSpec, PolicyChoice, Scenario, Traffic};
pub use story::{InsiderStory, Story, tell, thousands};
pub use world::{SITES, SimAgent, Site, agents};

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("scenario: {0}")]
    Scenario(String),
    #[error(transparent)]
    Gateway(#[from] cordon_gateway::GatewayError),
    #[error("{0}")]
    Internal(String),
}
