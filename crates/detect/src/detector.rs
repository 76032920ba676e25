//! The detector: per-agent days, baselines, risk and escalation.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::observation::{Action, Checked, Observation, Why};
use crate::stats::{mad, median};
use crate::thresholds::Thresholds;

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;
/// Days of an agent's own history kept for its baseline.
const HISTORY_DAYS: usize = 28;
/// Customer numbers remembered per agent to spot walks through consecutive ids.
const RECENT_NUMBERS: usize = 8;
/// Other members with history a group needs to be an agent's baseline; with fewer, its team
/// at every site stands in, then everyone.
const PEERS_MIN: usize = 3;
/// Past this many members, a group's figures are computed once for all of them: one member
/// moves the median of so many little.
const LEAVE_ONE_OUT_MAX: usize = 64;
/// Ledger indexes kept per agent as evidence for its next alert.
const EVIDENCE_MAX: usize = 24;

/// How far the response to an agent has gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Level {
    Normal,
    Alert,
    /// Each reveal needs an approver.
    StepUp,
    Suspend,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Normal => "normal",
            Level::Alert => "alert",
            Level::StepUp => "step-up",
            Level::Suspend => "suspend",
        }
    }

    pub fn parse(text: &str) -> Option<Level> {
        [Level::Normal, Level::Alert, Level::StepUp, Level::Suspend].into_iter().find(|level| level.name() == text)
    }
}

/// Every signal's name, as [`Signal::name`] carries it.
pub const SIGNAL_NAMES: [&str; 22] = [
    "arranged-drift",
    "arranged-reasons",
    "beyond-need",
    "canary",
    "daily-volume",
    "hard-cap-customers",
    "hard-cap-unexplained",
    "handoff-pair",
    "high-balance-share",
    "hourly-burst",
    "off-shift",
    "other-requester",
    "ring-overlap",
    "search-hits",
    "search-misses",
    "sequential-ids",
    "slow-drift",
    "taken-drift",
    "unexplained-access",
    "unexplained-hits",
    "verify-refused",
    "verify-wrong",
];

/// One reason an agent's risk rose: what was observed against what was expected.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub name: &'static str,
    pub observed: f64,
    pub baseline: f64,
    pub points: f64,
}

/// An escalation, with its explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Numbered from 1 in the order raised; replay gives the same numbers.
    pub id: u64,
    pub agent: String,
    pub time_ms: i64,
    pub level: Level,
    pub risk: f64,
    /// Signals since the agent's previous alert, one per kind, points summed.
    pub signals: Vec<Signal>,
    /// Ledger indexes of the accesses that scored, oldest first.
    pub evidence: Vec<u64>,
}

/// What to do about the current request, and any escalations it caused.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Verdict {
    /// Refuse the current request: the agent is suspended, or stepped up and revealing
    /// without an approver.
    pub deny: Option<Level>,
    pub alerts: Vec<Alert>,
}

/// An agent on the risk board.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentRisk {
    pub agent: String,
    pub peer_group: String,
    pub risk: f64,
    pub level: Level,
}

/// A closed day of an agent's work.
/// Signals in a snapshot of the detector, as (name, observed, baseline, points); a name is
/// read back as one of [`SIGNAL_NAMES`].
mod signals_as_tuples {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{SIGNAL_NAMES, Signal};

    pub(super) fn serialize<S: Serializer>(signals: &[Signal], serializer: S) -> Result<S::Ok, S::Error> {
        let tuples: Vec<(&str, f64, f64, f64)> =
            signals.iter().map(|signal| (signal.name, signal.observed, signal.baseline, signal.points)).collect();
        tuples.serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Signal>, D::Error> {
        let tuples = Vec::<(String, f64, f64, f64)>::deserialize(deserializer)?;
        tuples
            .into_iter()
            .map(|(name, observed, baseline, points)| {
                let name = SIGNAL_NAMES
                    .iter()
                    .find(|known| **known == name)
                    .copied()
                    .ok_or_else(|| serde::de::Error::custom(format!("unknown signal `{name}`")))?;
                Ok(Signal { name, observed, baseline, points })
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct DayRecord {
    customers: f64,
    unexplained: f64,
    #[serde(default)]
    arranged: f64,
    high_balance: f64,
    busiest_hour: f64,
    /// Customers reached through tickets the agent took from the queue itself.
    #[serde(default)]
    taken: f64,
}

impl DayRecord {
    fn arranged_share(&self) -> f64 {
        if self.customers > 0.0 { self.arranged / self.customers } else { 0.0 }
    }
}

// Per customer and day, what has been counted already.
const SEEN: u16 = 1;
const UNEXPLAINED_VIEW: u16 = 2;
const UNEXPLAINED_REVEAL: u16 = 4;
const HIGH_BALANCE: u16 = 8;
const OTHER_REQUESTER: u16 = 16;
const OFF_SHIFT: u16 = 32;
const BEYOND_NEED: u16 = 64;
const ARRANGED: u16 = 128;
const UNEXPLAINED_HIT: u16 = 256;
const TAKEN: u16 = 512;
const UNEXPLAINED_LOOKS: u16 = UNEXPLAINED_VIEW | UNEXPLAINED_REVEAL | UNEXPLAINED_HIT;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Today {
    day: i64,
    customers: HashMap<u64, u16>,
    distinct: u32,
    unexplained: f64,
    unexplained_distinct: u32,
    /// Customers reached through reasons an agent arranged, weighted.
    #[serde(default)]
    arranged: f64,
    high_balance: u32,
    hour: i64,
    hour_distinct: u32,
    busiest_hour: u32,
    misses: u32,
    hits: u32,
    #[serde(default)]
    unexplained_hits: u32,
    wrong_statements: u32,
    // Amounts above each threshold already scored today.
    unexplained_scored: f64,
    volume_scored: f64,
    burst_scored: f64,
    high_balance_scored: f64,
    drift_scored: f64,
    #[serde(default)]
    arranged_scored: f64,
    #[serde(default)]
    arranged_drift_scored: f64,
    /// Customers reached through tickets the agent took from the queue itself.
    #[serde(default)]
    taken: u32,
    #[serde(default)]
    taken_drift_scored: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct AgentState {
    id: String,
    peer_group: String,
    today: Today,
    history: VecDeque<DayRecord>,
    /// Cumulative sum of unexplained counts above baseline, over closed days.
    drift: f64,
    /// The same for arranged reasons.
    #[serde(default)]
    arranged_drift: f64,
    /// The same for tickets taken from the queue, against the agent's peers alone.
    #[serde(default)]
    taken_drift: f64,
    risk: f64,
    risk_time_ms: i64,
    level: Level,
    /// The agent's own medians, once its history is long enough.
    own: Option<Usual>,
    /// Customer numbers first reached most recently, for enumeration.
    recent_numbers: VecDeque<u64>,
    sequential: u32,
    evidence: VecDeque<u64>,
    #[serde(with = "signals_as_tuples")]
    pending: Vec<Signal>,
    /// Whom the agent is compared with, as of the last closed day.
    #[serde(default)]
    peers: PeerFigures,
}

impl AgentState {
    fn new(observation: &Observation<'_>) -> AgentState {
        AgentState {
            id: observation.agent.to_string(),
            peer_group: observation.peer_group.to_string(),
            today: Today { day: observation.time_ms.div_euclid(DAY_MS), ..Today::default() },
            history: VecDeque::new(),
            drift: 0.0,
            arranged_drift: 0.0,
            taken_drift: 0.0,
            risk: 0.0,
            risk_time_ms: observation.time_ms,
            level: Level::Normal,
            own: None,
            recent_numbers: VecDeque::new(),
            sequential: 0,
            evidence: VecDeque::new(),
            pending: Vec::new(),
            peers: PeerFigures::default(),
        }
    }

    fn decayed_risk(&self, now_ms: i64, half_life_hours: f64) -> f64 {
        let hours = (now_ms - self.risk_time_ms).max(0) as f64 / HOUR_MS as f64;
        self.risk * 0.5f64.powf(hours / half_life_hours.max(1e-9))
    }

    /// What is usual for the agent: its own medians once it has history, else its peers'.
    /// Day volumes take the larger of the two, so a quiet agent is not held to a near-zero bar.
    fn usual(&self, peers: &PeerFigures) -> Usual {
        match self.own {
            // An insider's own history fills with its own excess; its peers' keep the bar
            // where honest work puts it.
            Some(own) if peers.customers > 0.0 => Usual {
                customers: own.customers.max(peers.customers),
                unexplained: own.unexplained.min(peers.unexplained),
                unexplained_spread: own.unexplained_spread.min(peers.unexplained_spread),
                arranged_share: own.arranged_share.min(peers.arranged_share),
                busiest_hour: own.busiest_hour,
            },
            Some(own) => own,
            None => Usual {
                customers: peers.customers,
                unexplained: peers.unexplained,
                unexplained_spread: peers.unexplained_spread,
                arranged_share: peers.arranged_share,
                busiest_hour: 0.0,
            },
        }
    }
}

/// Usual daily figures for an agent.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Usual {
    customers: f64,
    unexplained: f64,
    unexplained_spread: f64,
    /// Of the customers of a day, how many (weighted) were reached through arranged reasons.
    #[serde(default)]
    arranged_share: f64,
    busiest_hour: f64,
}

/// Peer-group figures, recomputed as each day closes.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct PeerFigures {
    customers: f64,
    unexplained: f64,
    unexplained_spread: f64,
    /// Of the customers of a day, how many (weighted) were reached through arranged reasons.
    #[serde(default)]
    arranged_share: f64,
    high_balance_share: f64,
    /// Of the customers of a day, how many were reached through tickets taken from the queue.
    #[serde(default)]
    taken_share: f64,
}

/// Insider detection over a stream of observations, in ledger order. Its state serializes
/// (a snapshot at a ledger index lets a start replay only the entries after it) and
/// clones (a snapshot is taken without holding up the stream).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Detector {
    thresholds: Thresholds,
    agents: Vec<AgentState>,
    by_id: HashMap<String, usize>,
    /// Per site: unexplained customers and who reached them on which day, for rings.
    rings: HashMap<String, HashMap<u64, Vec<(usize, i64)>>>,
    /// Per agent who handed tickets over: to whom (agent index), which customer, which day.
    #[serde(default)]
    handoffs: HashMap<String, Vec<(usize, u64, i64)>>,
    day: i64,
    alerts: u64,
    observed: u64,
}

impl Detector {
    pub fn new(thresholds: Thresholds) -> Detector {
        Detector {
            thresholds,
            agents: Vec::new(),
            by_id: HashMap::new(),
            rings: HashMap::new(),
            handoffs: HashMap::new(),
            day: i64::MIN,
            alerts: 0,
            observed: 0,
        }
    }

    pub fn thresholds(&self) -> &Thresholds {
        &self.thresholds
    }

    /// Observations seen so far.
    pub fn observed(&self) -> u64 {
        self.observed
    }

    /// Alerts raised so far.
    pub fn alerts_raised(&self) -> u64 {
        self.alerts
    }

    /// The agent's level now (normal for an agent never seen).
    pub fn level(&self, agent: &str) -> Level {
        self.by_id.get(agent).and_then(|&index| self.agents.get(index)).map_or(Level::Normal, |state| state.level)
    }

    /// Agents by risk at `now_ms`, highest first.
    pub fn board(&self, now_ms: i64) -> Vec<AgentRisk> {
        let mut board: Vec<AgentRisk> = self
            .agents
            .iter()
            .map(|state| AgentRisk {
                agent: state.id.clone(),
                peer_group: state.peer_group.clone(),
                risk: state.decayed_risk(now_ms, self.thresholds.half_life_hours),
                level: state.level,
            })
            .collect();
        board.sort_by(|a, b| b.level.cmp(&a.level).then(b.risk.total_cmp(&a.risk)).then(a.agent.cmp(&b.agent)));
        board
    }

    /// An analyst reinstated the agent, or dismissed its alert: back to normal, risk cleared.
    pub fn clear(&mut self, agent: &str, now_ms: i64) {
        if let Some(state) = self.by_id.get(agent).and_then(|&index| self.agents.get_mut(index)) {
            state.level = Level::Normal;
            state.risk = 0.0;
            state.risk_time_ms = now_ms;
            state.drift = 0.0;
            state.today.drift_scored = 0.0;
            state.arranged_drift = 0.0;
            state.today.arranged_drift_scored = 0.0;
            state.taken_drift = 0.0;
            state.today.taken_drift_scored = 0.0;
            state.pending.clear();
            state.evidence.clear();
        }
    }

    /// Scores one access decision; call in ledger order.
    pub fn observe(&mut self, observation: &Observation<'_>) -> Verdict {
        self.observed += 1;
        let day = observation.time_ms.div_euclid(DAY_MS);
        if day > self.day {
            self.close_days(day);
        }
        let index = match self.by_id.get(observation.agent) {
            Some(&index) => index,
            None => {
                self.agents.push(AgentState::new(observation));
                let index = self.agents.len() - 1;
                self.by_id.insert(observation.agent.to_string(), index);
                index
            }
        };
        let mut verdict = Verdict::default();
        let Some(state) = self.agents.get(index) else { return verdict };
        if state.level == Level::Suspend {
            verdict.deny = Some(Level::Suspend);
            return verdict;
        }
        let peers = state.peers;
        let mut signals: Vec<Signal> = Vec::new();
        let mut scored = Scored::default();
        let mut ring_partners: Vec<usize> = Vec::new();
        if let Some(state) = self.agents.get_mut(index) {
            if state.today.day < day {
                close_day(state, day, &self.thresholds, &peers);
            }
            scored = score(state, observation, &self.thresholds, &peers, &mut signals);
        }
        let forced = scored.forced;
        // Rings: unexplained customers this agent shares with others at its site.
        if scored.ring_check
            && let Some(customer) = observation.customer
        {
            ring_partners = self.ring_overlap(index, observation.site, hash(customer), day);
        }
        if ring_partners.len() as u32 >= self.thresholds.ring_overlap_min.max(1) {
            let points = self.thresholds.ring_points;
            signals.push(Signal {
                name: "ring-overlap",
                observed: ring_partners.len() as f64 + 1.0,
                baseline: 1.0,
                points,
            });
            for &partner in &ring_partners {
                let partner_signal =
                    Signal { name: "ring-overlap", observed: ring_partners.len() as f64 + 1.0, baseline: 1.0, points };
                if let Some(alert) = self.add(partner, observation, vec![partner_signal], false) {
                    verdict.alerts.push(alert);
                }
            }
        }
        // Handoffs: customers another agent routed to this one, pair by pair.
        if scored.arranged
            && let (Some(customer), Some(giver)) = (observation.customer, handed_by(observation))
            && let Some(signal) = self.handoff(giver, index, hash(customer), day)
        {
            if let Some(&partner) = self.by_id.get(giver)
                && let Some(alert) = self.add(partner, observation, vec![signal.clone()], false)
            {
                verdict.alerts.push(alert);
            }
            signals.push(signal);
        }
        if let Some(alert) = self.add(index, observation, signals, forced) {
            verdict.alerts.insert(0, alert);
        }
        if let Some(state) = self.agents.get(index) {
            // Step-up holds for verify as for reveal: a verify answers about a value too.
            let needs_approver = state.level == Level::StepUp
                && matches!(observation.action, Action::Reveal | Action::Verify(_))
                && observation.why != Why::Approval;
            if state.level == Level::Suspend {
                verdict.deny = Some(Level::Suspend);
            } else if needs_approver {
                verdict.deny = Some(Level::StepUp);
            }
        }
        verdict
    }

    /// Adds signals to an agent's risk and escalates if it crossed a level.
    fn add(
        &mut self,
        index: usize,
        observation: &Observation<'_>,
        signals: Vec<Signal>,
        forced: bool,
    ) -> Option<Alert> {
        let thresholds = &self.thresholds;
        let state = self.agents.get_mut(index)?;
        if signals.is_empty() && !forced {
            if state.level == Level::Alert
                && state.decayed_risk(observation.time_ms, thresholds.half_life_hours) < thresholds.alert_risk / 2.0
            {
                state.level = Level::Normal;
            }
            return None;
        }
        let points: f64 = signals.iter().map(|signal| signal.points).sum();
        state.risk = state.decayed_risk(observation.time_ms, thresholds.half_life_hours) + points;
        state.risk_time_ms = observation.time_ms;
        if state.evidence.back() != Some(&observation.index) {
            state.evidence.push_back(observation.index);
            if state.evidence.len() > EVIDENCE_MAX {
                state.evidence.pop_front();
            }
        }
        for signal in signals {
            match state.pending.iter_mut().find(|pending| pending.name == signal.name) {
                Some(pending) => {
                    pending.points += signal.points;
                    pending.observed = signal.observed;
                    pending.baseline = signal.baseline;
                }
                None => state.pending.push(signal),
            }
        }
        let level = if forced || state.risk >= thresholds.suspend_risk {
            Level::Suspend
        } else if state.risk >= thresholds.step_up_risk {
            Level::StepUp
        } else if state.risk >= thresholds.alert_risk {
            Level::Alert
        } else {
            Level::Normal
        };
        if level <= state.level {
            return None;
        }
        state.level = level;
        self.alerts += 1;
        Some(Alert {
            id: self.alerts,
            agent: state.id.clone(),
            time_ms: observation.time_ms,
            level,
            risk: state.risk,
            signals: std::mem::take(&mut state.pending),
            evidence: state.evidence.iter().copied().collect(),
        })
    }

    /// Other agents of the same site who reached this unexplained customer recently.
    fn ring_overlap(&mut self, index: usize, site: &str, customer: u64, day: i64) -> Vec<usize> {
        let window = i64::from(self.thresholds.ring_window_days);
        let site_map = self.rings.entry(site.to_string()).or_default();
        let reached = site_map.entry(customer).or_default();
        let mut partners: Vec<usize> = reached
            .iter()
            .filter(|(agent, when)| *agent != index && day - *when <= window)
            .map(|(agent, _)| *agent)
            .collect();
        partners.sort_unstable();
        partners.dedup();
        if !reached.iter().any(|(agent, when)| *agent == index && *when == day) {
            reached.push((index, day));
        }
        partners
    }

    /// Notes that `giver` handed customer `customer` to agent `receiver`; past the pair's
    /// floor, while the pair is most of what the giver handed, a signal for both.
    fn handoff(&mut self, giver: &str, receiver: usize, customer: u64, day: i64) -> Option<Signal> {
        let window = i64::from(self.thresholds.ring_window_days);
        let handed = self.handoffs.entry(giver.to_string()).or_default();
        handed.retain(|(_, _, when)| day - *when <= window);
        if handed.iter().any(|&(to, handed_customer, _)| to == receiver && handed_customer == customer) {
            return None;
        }
        handed.push((receiver, customer, day));
        let pair = handed.iter().filter(|(to, _, _)| *to == receiver).count();
        let share = pair as f64 / handed.len() as f64;
        (pair > self.thresholds.handoff_pair_floor as usize && share >= self.thresholds.handoff_pair_share).then(|| {
            Signal {
                name: "handoff-pair",
                observed: pair as f64,
                baseline: f64::from(self.thresholds.handoff_pair_floor),
                points: self.thresholds.handoff_points,
            }
        })
    }

    /// A new day began: close every agent's previous day, then refresh whom each agent is
    /// compared with: the other members of its group (itself left out, so an insider in a
    /// small team does not set its own bar); when the group has too few others, its team at
    /// every site; when that has too few, everyone.
    fn close_days(&mut self, day: i64) {
        for state in &mut self.agents {
            if state.today.day < day {
                let peers = state.peers;
                close_day(state, day, &self.thresholds, &peers);
            }
        }
        let medians: Vec<Option<[f64; 3]>> = self
            .agents
            .iter()
            .map(|state| {
                (!state.history.is_empty()).then(|| {
                    let of =
                        |pick: fn(&DayRecord) -> f64| median(&state.history.iter().map(pick).collect::<Vec<f64>>());
                    [of(|record| record.customers), of(|record| record.unexplained), of(DayRecord::arranged_share)]
                })
            })
            .collect();
        let mut groups: HashMap<&str, Vec<usize>> = HashMap::new();
        for (index, state) in self.agents.iter().enumerate() {
            if medians.get(index).is_some_and(Option::is_some) {
                groups.entry(state.peer_group.as_str()).or_default().push(index);
            }
        }
        let figures_of = |members: &mut dyn Iterator<Item = usize>| -> PeerFigures {
            let rows: Vec<[f64; 3]> = members.filter_map(|index| medians.get(index).copied().flatten()).collect();
            let column = |at: usize| rows.iter().filter_map(|row| row.get(at).copied()).collect::<Vec<f64>>();
            let (unexplained, arranged) = (column(1), column(2));
            PeerFigures {
                customers: median(&column(0)),
                unexplained: median(&unexplained),
                unexplained_spread: mad(&unexplained),
                arranged_share: median(&arranged),
                high_balance_share: 0.0,
                taken_share: 0.0,
            }
        };
        let everyone = figures_of(&mut groups.values().flatten().copied());
        // The same team at every site: the next best comparison for a small group.
        let mut teams: HashMap<&str, Vec<usize>> = HashMap::new();
        for (group, members) in &groups {
            teams.entry(team_of(group)).or_default().extend(members.iter().copied());
        }
        // Tickets taken from the queue, pooled: each agent's (taken, customers) over its
        // history, summed over a pool, and the agent's own taken out again. A pooled share,
        // not a median of medians: taking is rare enough that most agents' median day has
        // none, which would leave an honest agent's one or two a day above a bar of zero.
        let sums: Vec<(f64, f64)> = self
            .agents
            .iter()
            .map(|state| {
                state.history.iter().fold((0.0, 0.0), |(taken, all), day| (taken + day.taken, all + day.customers))
            })
            .collect();
        let pooled = |pool: &mut dyn Iterator<Item = usize>| {
            pool.filter_map(|index| sums.get(index)).fold((0.0, 0.0), |(taken, all), (t, c)| (taken + t, all + c))
        };
        let everyone_taken = pooled(&mut groups.values().flatten().copied());
        let mut assigned: Vec<PeerFigures> = vec![PeerFigures::default(); self.agents.len()];
        for (group, members) in &groups {
            // A desk that serves whales has a high share: kept per group, as a share of all
            // its members' customers.
            let (high_balance, touched) = members.iter().filter_map(|&index| self.agents.get(index)).fold(
                (0.0, 0.0),
                |(high, touched), state| {
                    let high_here: f64 = state.history.iter().map(|record| record.high_balance).sum();
                    let touched_here: f64 = state.history.iter().map(|record| record.customers).sum();
                    (high + high_here, touched + touched_here)
                },
            );
            let share = if touched > 0.0 { high_balance / touched } else { 0.0 };
            let team = teams.get(team_of(group)).map_or(&[][..], Vec::as_slice);
            let without = |pool: &[usize], index: usize| -> PeerFigures {
                if pool.len() > LEAVE_ONE_OUT_MAX {
                    figures_of(&mut pool.iter().copied())
                } else {
                    figures_of(&mut pool.iter().copied().filter(|&other| other != index))
                }
            };
            let (members_taken, team_taken) = (pooled(&mut members.iter().copied()), pooled(&mut team.iter().copied()));
            for &index in members {
                let (mut figures, pool_taken) = if members.len() > PEERS_MIN {
                    (without(members, index), members_taken)
                } else if team.len() > PEERS_MIN {
                    (without(team, index), team_taken)
                } else {
                    (everyone, everyone_taken)
                };
                figures.high_balance_share = share;
                let (own_taken, own_customers) = sums.get(index).copied().unwrap_or_default();
                let (taken, customers) = (pool_taken.0 - own_taken, pool_taken.1 - own_customers);
                figures.taken_share = if customers > 0.0 { (taken / customers).clamp(0.0, 1.0) } else { 0.0 };
                if let Some(slot) = assigned.get_mut(index) {
                    *slot = figures;
                }
            }
        }
        for (state, figures) in self.agents.iter_mut().zip(assigned) {
            state.peers = figures;
        }
        let window = i64::from(self.thresholds.ring_window_days);
        self.handoffs.retain(|_, handed| {
            handed.retain(|(_, _, when)| day - *when <= window);
            !handed.is_empty()
        });
        for site in self.rings.values_mut() {
            site.retain(|_, reached| {
                reached.retain(|(_, when)| day - *when <= window);
                !reached.is_empty()
            });
        }
        self.day = day;
    }
}

/// The team of a peer group (`team@site`).
fn team_of(group: &str) -> &str {
    group.split_once('@').map_or(group, |(team, _)| team)
}

/// Closes an agent's day into its history and carries its drift.
fn close_day(state: &mut AgentState, day: i64, thresholds: &Thresholds, peers: &PeerFigures) {
    let today = std::mem::take(&mut state.today);
    state.today.day = day;
    if today.distinct == 0 && today.misses == 0 {
        return;
    }
    let usual = state.usual(peers);
    let slack = usual.unexplained + thresholds.drift_slack_per_day;
    carry_drift(&mut state.drift, &mut state.today.drift_scored, today.unexplained, slack, thresholds);
    let slack = arranged_slack(&usual, f64::from(today.distinct), thresholds);
    carry_drift(&mut state.arranged_drift, &mut state.today.arranged_drift_scored, today.arranged, slack, thresholds);
    let slack = taken_slack(peers, f64::from(today.distinct), thresholds);
    carry_drift(&mut state.taken_drift, &mut state.today.taken_drift_scored, f64::from(today.taken), slack, thresholds);
    state.history.push_back(DayRecord {
        customers: f64::from(today.distinct),
        unexplained: today.unexplained,
        arranged: today.arranged,
        high_balance: f64::from(today.high_balance),
        busiest_hour: f64::from(today.busiest_hour),
        taken: f64::from(today.taken),
    });
    if state.history.len() > HISTORY_DAYS {
        state.history.pop_front();
    }
    state.own = (state.history.len() >= thresholds.baseline_days_min.max(1)).then(|| {
        let pick = |field: fn(&DayRecord) -> f64| state.history.iter().map(field).collect::<Vec<f64>>();
        let unexplained = pick(|record| record.unexplained);
        Usual {
            customers: median(&pick(|record| record.customers)),
            unexplained: median(&unexplained),
            unexplained_spread: mad(&unexplained),
            arranged_share: median(&pick(DayRecord::arranged_share)),
            busiest_hour: median(&pick(|record| record.busiest_hour)),
        }
    });
}

/// What one observation scored.
#[derive(Debug, Default)]
struct Scored {
    /// Suspend at once (a canary, a hard cap).
    forced: bool,
    /// A customer newly reached without a reason: check it against the site's other agents.
    ring_check: bool,
    /// A customer newly reached through a reason an agent arranged.
    arranged: bool,
}

/// Scores one observation into `signals`.
fn score(
    state: &mut AgentState,
    observation: &Observation<'_>,
    thresholds: &Thresholds,
    peers: &PeerFigures,
    signals: &mut Vec<Signal>,
) -> Scored {
    let mut scored = Scored::default();
    let usual = state.usual(peers);
    let drift = state.drift;
    let arranged_drift = state.arranged_drift;
    let taken_drift = state.taken_drift;
    let today = &mut state.today;
    let hour = observation.time_ms.div_euclid(HOUR_MS);
    if hour != today.hour {
        today.hour = hour;
        today.hour_distinct = 0;
    }
    if observation.canary {
        signals.push(Signal { name: "canary", observed: 1.0, baseline: 0.0, points: thresholds.suspend_risk });
        scored.forced = true;
        return scored;
    }
    if let Action::Search { matched } = observation.action {
        let signal = if matched {
            one_more("search-hits", &mut today.hits, thresholds.search_hit_floor_per_day, thresholds.search_hit_points)
        } else {
            one_more(
                "search-misses",
                &mut today.misses,
                thresholds.search_miss_floor_per_day,
                thresholds.search_miss_points,
            )
        };
        signals.extend(signal);
        // A hit that nothing explains told the agent who is a customer: what a list checker
        // is after. Past a few a day each scores, and it counts below as a look at the first
        // one found.
        if !(matched && observation.why == Why::Unexplained && observation.allowed) {
            return scored;
        }
        signals.extend(one_more(
            "unexplained-hits",
            &mut today.unexplained_hits,
            thresholds.unexplained_hit_floor_per_day,
            thresholds.unexplained_hit_points,
        ));
    }
    let Some(customer) = observation.customer else { return scored };
    if !observation.allowed {
        return scored;
    }
    match observation.action {
        Action::Verify(Checked::Wrong) => signals.extend(one_more(
            "verify-wrong",
            &mut today.wrong_statements,
            thresholds.verify_wrong_floor_per_day,
            thresholds.verify_wrong_points,
        )),
        Action::Verify(Checked::Refused) => {
            signals.push(Signal {
                name: "verify-refused",
                observed: 1.0,
                baseline: 0.0,
                points: thresholds.verify_refused_points,
            });
        }
        _ => {}
    }
    let reveals = matches!(observation.action, Action::Reveal | Action::Verify(_));
    let flags = today.customers.entry(hash(customer)).or_insert(0);
    let first = *flags & SEEN == 0;
    *flags |= SEEN;
    if first {
        today.distinct += 1;
        today.hour_distinct += 1;
        today.busiest_hour = today.busiest_hour.max(today.hour_distinct);
        // Enumeration: customer numbers walked in small steps. Other work in between
        // (cover tickets) only slows the count down, it does not reset it.
        if let Some(number) = trailing_number(customer) {
            let near = state
                .recent_numbers
                .iter()
                .any(|&recent| recent != number && recent.abs_diff(number) <= thresholds.sequential_gap);
            if near {
                state.sequential += 1;
                if state.sequential >= thresholds.sequential_run {
                    signals.push(Signal {
                        name: "sequential-ids",
                        observed: f64::from(state.sequential),
                        baseline: f64::from(thresholds.sequential_run),
                        points: thresholds.sequential_points,
                    });
                }
            } else {
                state.sequential = state.sequential.saturating_sub(1);
            }
            state.recent_numbers.push_back(number);
            if state.recent_numbers.len() > RECENT_NUMBERS {
                state.recent_numbers.pop_front();
            }
        }
    }
    // Unexplained reach: a customer counts as much as the most it was shown, reveals in
    // full, search hits and masked views in part.
    if !observation.why.explained() && observation.why != Why::OtherRequester {
        let before = *flags & UNEXPLAINED_LOOKS;
        *flags |= match observation.action {
            _ if reveals => UNEXPLAINED_REVEAL,
            Action::Search { .. } => UNEXPLAINED_HIT,
            _ => UNEXPLAINED_VIEW,
        };
        let weight = (looked(*flags, thresholds) - looked(before, thresholds)).max(0.0);
        if before == 0 && weight > 0.0 {
            today.unexplained_distinct += 1;
            scored.ring_check = true;
        }
        if weight > 0.0 {
            today.unexplained += weight;
            let limit =
                thresholds.unexplained_floor_per_day.max(usual.unexplained + 3.0 * usual.unexplained_spread + 1.0);
            signals.extend(excess(
                "unexplained-access",
                today.unexplained,
                limit,
                thresholds.unexplained_points,
                &mut today.unexplained_scored,
            ));
            let slack = usual.unexplained + thresholds.drift_slack_per_day;
            signals.extend(drift_signal(
                "slow-drift",
                drift,
                today.unexplained,
                slack,
                thresholds,
                &mut today.drift_scored,
            ));
            if today.unexplained_distinct > thresholds.hard_cap_unexplained_per_day {
                signals.push(Signal {
                    name: "hard-cap-unexplained",
                    observed: f64::from(today.unexplained_distinct),
                    baseline: f64::from(thresholds.hard_cap_unexplained_per_day),
                    points: 0.0,
                });
                scored.forced = true;
            }
        }
    }
    // Reasons an agent arranged rather than the customer: counted once a customer a day,
    // at the weight of the strongest arrangement.
    let weight = arranged_weight(observation, peers, thresholds);
    if weight > 0.0 && *flags & ARRANGED == 0 {
        *flags |= ARRANGED;
        scored.arranged = true;
        today.arranged += weight;
        // Expected from the day's customers so far: a surge brings more of everything.
        let expected = usual.arranged_share * f64::from(today.distinct);
        let limit = thresholds.arranged_floor_per_day.max(expected + 3.0 * expected.sqrt() + 1.0);
        signals.extend(excess(
            "arranged-reasons",
            today.arranged,
            limit,
            thresholds.arranged_points,
            &mut today.arranged_scored,
        ));
        let slack = arranged_slack(&usual, f64::from(today.distinct), thresholds);
        let scored_today = &mut today.arranged_drift_scored;
        signals.extend(drift_signal("arranged-drift", arranged_drift, today.arranged, slack, thresholds, scored_today));
    }
    // Taking tickets from the queue, against how often the agent's peers take them: at a
    // desk where every customer is rich, a grabber's taken tickets weigh little among its
    // arranged reasons, but it takes far more of them than its colleagues.
    if observation.why == Why::Ticket && observation.assigned_by == Some(observation.agent) && *flags & TAKEN == 0 {
        *flags |= TAKEN;
        today.taken += 1;
        let slack = taken_slack(peers, f64::from(today.distinct), thresholds);
        let scored_today = &mut today.taken_drift_scored;
        signals.extend(drift_signal(
            "taken-drift",
            taken_drift,
            f64::from(today.taken),
            slack,
            thresholds,
            scored_today,
        ));
    }
    if observation.why == Why::OtherRequester && *flags & OTHER_REQUESTER == 0 {
        *flags |= OTHER_REQUESTER;
        signals.push(Signal {
            name: "other-requester",
            observed: 1.0,
            baseline: 0.0,
            points: thresholds.other_requester_points,
        });
    }
    if observation.fields_beyond_need > 0 && *flags & BEYOND_NEED == 0 {
        *flags |= BEYOND_NEED;
        signals.push(Signal {
            name: "beyond-need",
            observed: f64::from(observation.fields_beyond_need),
            baseline: 0.0,
            points: thresholds.beyond_need_points,
        });
    }
    // Overtime on real tickets is common; off shift and without a reason is not.
    if observation.off_shift && !observation.why.explained() && *flags & OFF_SHIFT == 0 {
        *flags |= OFF_SHIFT;
        signals.push(Signal { name: "off-shift", observed: 1.0, baseline: 0.0, points: thresholds.off_shift_points });
    }
    // Only against peers with history: a desk that serves whales has a high share.
    if observation.high_balance && *flags & HIGH_BALANCE == 0 {
        *flags |= HIGH_BALANCE;
        today.high_balance += 1;
    }
    if observation.high_balance && peers.customers > 0.0 {
        let expected = peers.high_balance_share * f64::from(today.distinct);
        let limit = thresholds.high_balance_floor_per_day.max(thresholds.high_balance_factor * expected);
        signals.extend(excess(
            "high-balance-share",
            f64::from(today.high_balance),
            limit,
            thresholds.high_balance_points,
            &mut today.high_balance_scored,
        ));
    }
    if first {
        let limit = thresholds.volume_floor_per_day.max(thresholds.volume_factor * usual.customers);
        signals.extend(excess(
            "daily-volume",
            f64::from(today.distinct),
            limit,
            thresholds.volume_points,
            &mut today.volume_scored,
        ));
        let hour_limit = thresholds.burst_floor_per_hour.max(4.0 * usual.busiest_hour);
        signals.extend(excess(
            "hourly-burst",
            f64::from(today.hour_distinct),
            hour_limit,
            thresholds.burst_points,
            &mut today.burst_scored,
        ));
        if today.distinct > thresholds.hard_cap_customers_per_day {
            signals.push(Signal {
                name: "hard-cap-customers",
                observed: f64::from(today.distinct),
                baseline: f64::from(thresholds.hard_cap_customers_per_day),
                points: 0.0,
            });
            scored.forced = true;
        }
    }
    scored
}

/// How much of an unexplained customer the agent was shown, by what it did (`flags`).
fn looked(flags: u16, thresholds: &Thresholds) -> f64 {
    if flags & UNEXPLAINED_REVEAL != 0 {
        return 1.0;
    }
    let view = if flags & UNEXPLAINED_VIEW != 0 { thresholds.masked_view_weight } else { 0.0 };
    let hit = if flags & UNEXPLAINED_HIT != 0 { thresholds.unexplained_hit_weight } else { 0.0 };
    view.max(hit)
}

/// How much of an access's reason an agent arranged (0: the customer's own ticket, routed
/// to the agent, or no reason at all, which counts as unexplained instead).
fn arranged_weight(observation: &Observation<'_>, peers: &PeerFigures, thresholds: &Thresholds) -> f64 {
    match observation.why {
        Why::Callback => thresholds.callback_weight,
        Why::Ticket if observation.opened_by.is_some() => 1.0,
        // Taking a rich customer's ticket counts in full where rich customers are rare (not
        // at a desk that serves them).
        Why::Ticket if observation.assigned_by == Some(observation.agent) && observation.high_balance => {
            thresholds.taken_weight + (1.0 - thresholds.taken_weight) * (1.0 - peers.high_balance_share).clamp(0.0, 1.0)
        }
        Why::Ticket if observation.assigned_by == Some(observation.agent) => thresholds.taken_weight,
        Why::Ticket if observation.assigned_by.is_some() => thresholds.handed_weight,
        _ => 0.0,
    }
}

/// What an agent may arrange in a day of `customers` without drifting: its usual share of
/// them, half a standard deviation of a count of that size, and the slack.
fn arranged_slack(usual: &Usual, customers: f64, thresholds: &Thresholds) -> f64 {
    let expected = usual.arranged_share * customers;
    expected + 0.5 * expected.sqrt() + thresholds.drift_slack_per_day
}

/// How many customers of a day of `customers` an agent may reach through tickets it took
/// itself without drifting: its peers' share of them, half a standard deviation of a count
/// of that size, and the slack. Its own history is left out: an insider from its first day
/// would set its own bar.
fn taken_slack(peers: &PeerFigures, customers: f64, thresholds: &Thresholds) -> f64 {
    let expected = peers.taken_share * customers;
    expected + 0.5 * expected.sqrt() + thresholds.drift_slack_per_day
}

/// The other agent who opened this access's ticket and let the agent work it. Handing over
/// a customer's ticket is everyday backlog work (in a small team, to the same few people);
/// opening a ticket with no customer contact behind it for someone else is not.
fn handed_by<'a>(observation: &Observation<'a>) -> Option<&'a str> {
    if observation.why != Why::Ticket {
        return None;
    }
    observation.opened_by.filter(|other| *other != observation.agent)
}

/// Closes a day into a cumulative sum of daily amounts above `slack` (never below zero); what
/// is above the limit already is not scored again the next day.
fn carry_drift(sum: &mut f64, scored_tomorrow: &mut f64, amount: f64, slack: f64, thresholds: &Thresholds) {
    *sum = (*sum + amount - slack).max(0.0);
    *scored_tomorrow = (*sum - thresholds.drift_limit).max(0.0);
}

/// A drift signal: the cumulative sum over closed days plus today's amount above `slack`,
/// scored past the drift limit.
fn drift_signal(
    name: &'static str,
    sum: f64,
    amount: f64,
    slack: f64,
    thresholds: &Thresholds,
    scored: &mut f64,
) -> Option<Signal> {
    let running = sum + (amount - slack).max(0.0);
    excess(name, running, thresholds.drift_limit, thresholds.drift_points, scored)
}

/// Points for how far `observed` has grown above `limit` since it last scored: repeating
/// what already scored adds nothing.
fn excess(name: &'static str, observed: f64, limit: f64, points_per_unit: f64, scored: &mut f64) -> Option<Signal> {
    let over = (observed - limit).max(0.0);
    if over <= *scored {
        return None;
    }
    let signal = Signal { name, observed, baseline: limit, points: points_per_unit * (over - *scored) };
    *scored = over;
    Some(signal)
}

/// Counts one more of something counted per day; past `floor`, each one scores `points`.
fn one_more(name: &'static str, count: &mut u32, floor: u32, points: f64) -> Option<Signal> {
    *count += 1;
    (*count > floor).then(|| Signal { name, observed: f64::from(*count), baseline: f64::from(floor), points })
}

/// The trailing decimal number of an identifier (`cus-0001234` is 1234).
fn trailing_number(id: &str) -> Option<u64> {
    let digits = id.len() - id.bytes().rev().take_while(u8::is_ascii_digit).count();
    id.get(digits..).filter(|tail| !tail.is_empty() && tail.len() <= 18).and_then(|tail| tail.parse().ok())
}

/// FNV-1a: a fixed, platform-independent hash, so replay keys customers identically.
fn hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}
