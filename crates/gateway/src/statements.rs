//! Wrong statements checked by verify, per agent, customer and field. Verify answers only
//! a handful of wrong ones within a window before it refuses to check more, so it cannot
//! be used as an oracle to guess a value one try at a time (a date of birth, the digits of
//! a tax id). Like detection, the counts live under the sequencer's lock, change in ledger
//! order, and are rebuilt from the ledger at open: each verify entry says how its check
//! went.

use std::collections::{HashMap, VecDeque};

/// The wrong statements of the last window, by (agent, customer, field).
#[derive(Debug)]
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

    /// Whether a statement about `field` of `customer` by `agent` at `time_ms` is refused
    /// unchecked: the agent already made the most wrong ones the window allows.
    pub(crate) fn refuses(&mut self, agent: &str, customer: &str, field: &str, time_ms: i64) -> bool {
        let key = (agent.to_string(), customer.to_string(), field.to_string());
        let Some(times) = self.by_key.get_mut(&key) else { return false };
        while times.front().is_some_and(|&time| time <= time_ms - self.window_ms) {
            times.pop_front();
        }
        times.len() >= self.max
    }

    /// Counts a wrong statement.
    pub(crate) fn add_wrong(&mut self, agent: &str, customer: &str, field: &str, time_ms: i64) {
        let key = (agent.to_string(), customer.to_string(), field.to_string());
        self.by_key.entry(key).or_default().push_back(time_ms);
        self.since_sweep += 1;
        if self.since_sweep >= SWEEP_EVERY {
            self.since_sweep = 0;
            let oldest = time_ms - self.window_ms;
            self.by_key.retain(|_, times| times.back().is_some_and(|&time| time > oldest));
        }
    }
}
