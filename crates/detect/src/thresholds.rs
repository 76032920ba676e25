//! The detector's settings, from `[detection]` in `cordon.toml`.

use serde::{Deserialize, Serialize};

/// Risk levels, signal weights and floors. The defaults were tuned on the shipped scenarios
/// (`cordon eval scenarios/*.toml`); see docs/DETECTION.md for what each one does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// Risk halves over this many hours without new signals.
    pub half_life_hours: f64,
    /// Risk at which an alert is raised.
    pub alert_risk: f64,
    /// Risk at which each reveal needs an approver.
    pub step_up_risk: f64,
    /// Risk at which the agent is suspended.
    pub suspend_risk: f64,
    /// Distinct customers in a day beyond which the agent is suspended outright.
    pub hard_cap_customers_per_day: u32,
    /// Distinct unexplained customers in a day beyond which the agent is suspended outright.
    pub hard_cap_unexplained_per_day: u32,
    /// Unexplained customers (reveals count 1, masked views `masked_view_weight`) an agent
    /// may reach in a day before each further one scores, whatever its baseline.
    pub unexplained_floor_per_day: f64,
    pub masked_view_weight: f64,
    pub unexplained_points: f64,
    /// Cumulative sum over days of unexplained counts above baseline plus this slack ...
    pub drift_slack_per_day: f64,
    /// ... scores once it passes this.
    pub drift_limit: f64,
    pub drift_points: f64,
    /// Each customer reached through someone else's ticket.
    pub other_requester_points: f64,
    /// Each reveal of fields the ticket's category does not need.
    pub beyond_need_points: f64,
    /// Distinct customers a day: scores beyond max(floor, this many times the larger of the
    /// agent's median and its peers').
    pub volume_floor_per_day: f64,
    pub volume_factor: f64,
    pub volume_points: f64,
    /// Distinct customers within an hour: scores beyond max(floor, factor x own hourly median).
    pub burst_floor_per_hour: f64,
    pub burst_points: f64,
    /// High-balance customers a day: scores beyond max(floor, factor x peers' share x customers).
    pub high_balance_floor_per_day: f64,
    pub high_balance_factor: f64,
    pub high_balance_points: f64,
    pub off_shift_points: f64,
    /// Consecutive customer numbers (within `sequential_gap`) that count as enumeration.
    pub sequential_run: u32,
    pub sequential_gap: u64,
    pub sequential_points: f64,
    /// Searches that find nobody, a day, before each further miss scores.
    pub search_miss_floor_per_day: u32,
    pub search_miss_points: f64,
    /// Searches that find someone, a day, before each further hit scores: an insider with
    /// a list of outside emails and phones confirms who is a customer with hits.
    pub search_hit_floor_per_day: u32,
    pub search_hit_points: f64,
    /// Searches whose hits nothing explains (no ticket of theirs the agent worked lately), a
    /// day, before each further one scores; each such hit's customer also counts as this
    /// much unexplained reach.
    pub unexplained_hit_floor_per_day: u32,
    pub unexplained_hit_points: f64,
    pub unexplained_hit_weight: f64,
    /// Wrong statements checked by verify, a day, before each further one scores.
    pub verify_wrong_floor_per_day: u32,
    pub verify_wrong_points: f64,
    /// Each verify refused for too many wrong statements: a strong signal of guessing.
    pub verify_refused_points: f64,
    /// Customers a day reached through reasons an agent arranged rather than the customer:
    /// a ticket an agent opened (weight 1), one the agent took into its own queue
    /// (`taken_weight`; a high-balance customer's counts up to 1 as the peers' share of
    /// high-balance customers is low), one another agent handed it
    /// (`handed_weight`), a callback (`callback_weight`). Past max(floor, the usual plus
    /// three spreads plus one) each further one scores; over days they drift as unexplained
    /// reach does (`drift_slack_per_day`, `drift_limit`, `drift_points`), with one spread
    /// more of slack: honest agents open, take and call back at rates that vary day to day.
    pub arranged_floor_per_day: f64,
    pub arranged_points: f64,
    pub taken_weight: f64,
    pub handed_weight: f64,
    pub callback_weight: f64,
    /// Customers one agent handed another on tickets it opened itself (no customer contact
    /// behind them) within `ring_window_days`: past this many, and when they are at least
    /// `handoff_pair_share` of all the giver handed, each further one scores
    /// `handoff_points` for both (a ring routing its targets to one another).
    pub handoff_pair_floor: u32,
    pub handoff_pair_share: f64,
    pub handoff_points: f64,
    /// Unexplained customers shared with another agent of the same site within this many
    /// days count towards a ring.
    pub ring_window_days: u32,
    pub ring_overlap_min: u32,
    pub ring_points: f64,
    /// Days of history an agent needs before its own baseline counts; until then its peers'.
    pub baseline_days_min: usize,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            half_life_hours: 48.0,
            alert_risk: 4.0,
            step_up_risk: 8.0,
            suspend_risk: 14.0,
            hard_cap_customers_per_day: 300,
            hard_cap_unexplained_per_day: 40,
            unexplained_floor_per_day: 4.0,
            masked_view_weight: 0.25,
            unexplained_points: 1.5,
            drift_slack_per_day: 0.75,
            drift_limit: 4.0,
            drift_points: 3.0,
            other_requester_points: 2.5,
            beyond_need_points: 1.5,
            volume_floor_per_day: 80.0,
            volume_factor: 3.0,
            volume_points: 0.5,
            burst_floor_per_hour: 25.0,
            burst_points: 0.5,
            high_balance_floor_per_day: 4.0,
            high_balance_factor: 4.0,
            high_balance_points: 1.5,
            off_shift_points: 0.5,
            sequential_run: 4,
            sequential_gap: 3,
            sequential_points: 2.0,
            search_miss_floor_per_day: 6,
            search_miss_points: 1.0,
            search_hit_floor_per_day: 60,
            search_hit_points: 0.25,
            unexplained_hit_floor_per_day: 5,
            unexplained_hit_points: 1.0,
            unexplained_hit_weight: 0.5,
            verify_wrong_floor_per_day: 3,
            verify_wrong_points: 1.0,
            verify_refused_points: 4.0,
            arranged_floor_per_day: 4.0,
            arranged_points: 1.5,
            taken_weight: 0.25,
            handed_weight: 0.25,
            callback_weight: 0.5,
            handoff_pair_floor: 2,
            handoff_pair_share: 0.25,
            handoff_points: 3.0,
            ring_window_days: 14,
            ring_overlap_min: 2,
            ring_points: 3.0,
            baseline_days_min: 3,
        }
    }
}

impl Thresholds {
    /// Refuses settings detection cannot mean: a number that is not finite or is negative
    /// (negative points would lower an agent's risk for what should raise it), or a weight or
    /// share above 1. The error names the key and its value.
    pub fn check(&self) -> Result<(), String> {
        let numbers = [
            ("half_life_hours", self.half_life_hours),
            ("alert_risk", self.alert_risk),
            ("step_up_risk", self.step_up_risk),
            ("suspend_risk", self.suspend_risk),
            ("unexplained_floor_per_day", self.unexplained_floor_per_day),
            ("unexplained_points", self.unexplained_points),
            ("drift_slack_per_day", self.drift_slack_per_day),
            ("drift_limit", self.drift_limit),
            ("drift_points", self.drift_points),
            ("other_requester_points", self.other_requester_points),
            ("beyond_need_points", self.beyond_need_points),
            ("arranged_floor_per_day", self.arranged_floor_per_day),
            ("arranged_points", self.arranged_points),
            ("handoff_points", self.handoff_points),
            ("volume_floor_per_day", self.volume_floor_per_day),
            ("volume_factor", self.volume_factor),
            ("volume_points", self.volume_points),
            ("burst_floor_per_hour", self.burst_floor_per_hour),
            ("burst_points", self.burst_points),
            ("high_balance_floor_per_day", self.high_balance_floor_per_day),
            ("high_balance_factor", self.high_balance_factor),
            ("high_balance_points", self.high_balance_points),
            ("off_shift_points", self.off_shift_points),
            ("sequential_points", self.sequential_points),
            ("search_miss_points", self.search_miss_points),
            ("search_hit_points", self.search_hit_points),
            ("unexplained_hit_points", self.unexplained_hit_points),
            ("verify_wrong_points", self.verify_wrong_points),
            ("verify_refused_points", self.verify_refused_points),
            ("ring_points", self.ring_points),
        ];
        let shares = [
            ("masked_view_weight", self.masked_view_weight),
            ("unexplained_hit_weight", self.unexplained_hit_weight),
            ("taken_weight", self.taken_weight),
            ("handed_weight", self.handed_weight),
            ("callback_weight", self.callback_weight),
            ("handoff_pair_share", self.handoff_pair_share),
        ];
        for (name, value) in numbers {
            if !(value.is_finite() && value >= 0.0) {
                return Err(format!("[detection.thresholds] {name} = {value} must be a number of 0 or more"));
            }
        }
        for (name, value) in shares {
            if !(value.is_finite() && (0.0..=1.0).contains(&value)) {
                return Err(format!("[detection.thresholds] {name} = {value} must be between 0 and 1"));
            }
        }
        Ok(())
    }
}
