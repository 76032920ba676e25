//! Wrong statements checked by verify, per agent, customer and field. Verify answers only
//! a handful of wrong ones within a window before it refuses to check more, so it cannot
//! be used as an oracle to guess a value one try at a time (a date of birth, the digits of
//! a tax id). Like detection, the counts live under the sequencer's lock, change in ledger
//! order, and are rebuilt from the ledger at open: each verify entry says how its check
//! went.

use std::collections::{HashMap, VecDeque};

use cordon_entry::VerifyOutcome;

/// The wrong statements of the last window, by (agent, customer, field).
#[derive(Debug, Clone)]
pub(crate) struct WrongStatements {
    max: usize,
    window_ms: i64,
    by_key: HashMap<(String, String, String), VecDeque<i64>>,
    /// Entries added since the last sweep of expired keys.
    since_sweep: usize,
}

/// How many additions between sweeps of keys whose statements have all expired.
const SWEEP_EVERY: usize = 4096;

impl WrongStatements {
    pub(crate) fn new(max: u32, window_days: u32) -> WrongStatements {
        WrongStatements {
            max: max as usize,
            window_ms: i64::from(window_days) * 86_400_000,
            by_key: HashMap::new(),
            since_sweep: 0,
        }
    }

    /// The limit: (wrong statements answered, window in ms).
    pub(crate) fn limits(&self) -> (usize, i64) {
        (self.max, self.window_ms)
    }

    /// The counts as plain rows (agent, customer, field, times), for a snapshot.
    pub(crate) fn rows(&self) -> Vec<(String, String, String, Vec<i64>)> {
        self.by_key
            .iter()
            .map(|((agent, customer, field), times)| {
                (agent.clone(), customer.clone(), field.clone(), times.iter().copied().collect())
            })
            .collect()
    }

    /// Counts read back from [`WrongStatements::rows`].
    pub(crate) fn with_rows(mut self, rows: Vec<(String, String, String, Vec<i64>)>) -> WrongStatements {
        self.by_key =
            rows.into_iter().map(|(agent, customer, field, times)| ((agent, customer, field), times.into())).collect();
        self
    }

    /// Checks a statement about `field` of `customer` by `agent` at `time_ms` that
    /// `matched` or not: refused unchecked if the agent already made the most wrong ones
    /// the window allows, otherwise answered, a wrong one counted.
    pub(crate) fn check(
        &mut self,
        agent: &str,
        customer: &str,
        field: &str,
        time_ms: i64,
        matched: bool,
    ) -> VerifyOutcome {
        let key = (agent.to_string(), customer.to_string(), field.to_string());
        if let Some(times) = self.by_key.get_mut(&key) {
            while times.front().is_some_and(|&time| time <= time_ms - self.window_ms) {
                times.pop_front();
            }
            if times.len() >= self.max {
                return VerifyOutcome::Refused;
            }
        }
        if matched {
            return VerifyOutcome::Match;
        }
        // Only wrong statements make a key, so right ones cost no memory.
        self.by_key.entry(key).or_default().push_back(time_ms);
        self.since_sweep += 1;
        if self.since_sweep >= SWEEP_EVERY {
            self.since_sweep = 0;
            let oldest = time_ms - self.window_ms;
            self.by_key.retain(|_, times| times.back().is_some_and(|&time| time > oldest));
        }
        VerifyOutcome::NoMatch
    }
}
