//! In-line insider detection. Every access decision the gateway makes becomes an
//! `Observation`; the `Detector` scores it against the agent's own baseline, its peers
//! (team x site) and hard rules, keeps a decaying risk score per agent, and answers with a
//! `Verdict`: nothing, an alert, step-up (each reveal then needs an approver) or suspension.
//! Each escalation comes with an `Alert` that explains itself: the signals, the observed
//! values against their baselines, and the ledger indexes of the evidence.
//!
//! This crate is pure: no clock, no disk, no network. Time comes in with each observation,
//! so replaying the same observations in the same order gives the same alerts, which is how
//! the gateway rebuilds the detector's state from the ledger at start. It knows nothing of
//! customers beyond an identifier and two flags (canary, high balance).

mod detector;
mod observation;
mod stats;
mod thresholds;

pub use detector::{AgentRisk, Alert, Detector, Level, SIGNAL_NAMES, Signal, Verdict};
pub use observation::{Action, Checked, Observation, Why};
pub use stats::{mad, median};
pub use thresholds::Thresholds;
