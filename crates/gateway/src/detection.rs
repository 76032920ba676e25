//! Detection in the request path. Every ledger append goes through one lock that also holds
//! the detector, so the detector sees access decisions in exactly the ledger's order and
//! knows the index each will get: that is what lets a replay of the ledger at start rebuild
//! the same state and the same alerts. An access entry carries the facts detection used that
//! are not customer data (why the agent could look, fields beyond the ticket's need, off
//! shift); the two customer flags (canary, high balance) are looked up again on replay.

use std::collections::HashMap;
use std::sync::Mutex;

use cordon_detect::{Action as Seen, Alert, Checked, Detector, Level, Observation, Verdict, Why};
use cordon_entry::{AccessAction, AccessEntry, AlertEntry, Entry, SignalEntry, VERSION, VerifyOutcome};

use cordon_directory::AgentStatus;

use crate::audit::{AuditFuture, AuditLog, EntryVisitor};
use crate::error::GatewayError;
use crate::statements::WrongStatements;

/// The ledger's next index and the detector, behind one lock.
#[derive(Debug)]
pub(crate) struct Sequenced {
    /// The index the next accepted append gets. Only an append the log accepted moves it.
    pub next_index: u64,
    /// Set when the log answered with an index other than the one predicted, or failed an
    /// append it had accepted: the next append first reads the log's size again.
    pub resync: bool,
    pub detector: Detector,
    pub enabled: bool,
    /// Verify's wrong statements, which it limits whether detection is on or not.
    pub statements: WrongStatements,
    /// Agents' statuses and revoked tokens as the ledger records them.
    pub recorded: RecordedState,
    /// Set when an append whose entries these states already took in failed: they are
    /// ahead of the ledger, so no snapshot is taken of them until the next start.
    pub tainted: bool,
}

/// What the ledger says of agents' statuses and revoked tokens, kept in ledger order (live,
/// under the sequencer's lock, and by replay): the store must agree with it, and is
/// repaired from it at open.
#[derive(Debug, Clone, Default)]
pub(crate) struct RecordedState {
    /// Each agent's status as the ledger's status changes leave it (suspensions, by people
    /// and by detection, offboarding, reinstatement, a new agent's first status), with the
    /// index of the entry that set it.
    pub statuses: HashMap<String, (AgentStatus, u64)>,
    /// Revoked token ids, with when they were revoked (ms).
    pub revocations: HashMap<String, i64>,
}

impl RecordedState {
    /// Takes in the change entry at `index`.
    pub(crate) fn note_change(&mut self, change: &cordon_entry::ChangeEntry, index: u64) {
        match status_change(change) {
            StatusChange::To(status) => self.set(&change.target, status, index),
            // An entry of an older build that may have changed a status without saying
            // which: the ledger no longer knows (the store's word stands).
            StatusChange::Unknown(agent) => {
                self.statuses.remove(agent);
            }
            StatusChange::UnknownForAll => self.statuses.clear(),
            StatusChange::None if change.change == "token.revoke" => {
                self.revocations.insert(change.target.clone(), change.time_ms);
            }
            StatusChange::None => {}
        }
    }

    /// Takes in the alert entry at `index`.
    pub(crate) fn note_alert(&mut self, alert: &AlertEntry, index: u64) {
        if alert.level == Level::Suspend.name() {
            self.set(&alert.agent, AgentStatus::Suspended, index);
        }
    }

    /// Offboarding is final: nothing after it changes the status back.
    fn set(&mut self, agent: &str, status: AgentStatus, index: u64) {
        if self.statuses.get(agent).is_some_and(|(current, _)| *current == AgentStatus::Offboarded) {
            return;
        }
        self.statuses.insert(agent.to_string(), (status, index));
    }

    /// Forgets revocations recorded before `oldest_ms`: their tokens have expired.
    pub(crate) fn forget_revocations_before(&mut self, oldest_ms: i64) {
        self.revocations.retain(|_, time_ms| *time_ms >= oldest_ms);
    }
}

pub(crate) type Sequencer = Mutex<Sequenced>;

/// What detection needs of an access beyond what the entry already says.
#[derive(Debug, Clone, Default)]
pub(crate) struct AccessFacts {
    pub why: Option<Why>,
    /// Under the agent's own open ticket: who opened it and who assigned it (see
    /// [`cordon_entry::AccessEntry::opened_by`]).
    pub opened_by: Option<String>,
    pub assigned_by: Option<String>,
    pub beyond_need: Vec<String>,
    pub off_shift: bool,
    pub high_balance: bool,
    pub canary: bool,
    pub peer_group: String,
    pub site: String,
}

/// The ledger entry of an alert raised while deciding request `request`.
pub(crate) fn alert_entry(alert: &Alert, request: &str) -> AlertEntry {
    AlertEntry {
        v: VERSION,
        time_ms: alert.time_ms,
        request: request.to_string(),
        alert: alert.id,
        agent: alert.agent.clone(),
        level: alert.level.name().to_string(),
        risk: round(alert.risk),
        signals: alert
            .signals
            .iter()
            .map(|signal| SignalEntry {
                name: signal.name.to_string(),
                observed: round(signal.observed),
                baseline: round(signal.baseline),
                points: round(signal.points),
            })
            .collect(),
        evidence: alert.evidence.clone(),
    }
}

/// Three decimals: enough to explain, and stable text in the ledger.
fn round(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// The containment the ledger records for a detector level that refuses requests.
pub fn containment(level: Level) -> Option<cordon_entry::Containment> {
    match level {
        Level::StepUp => Some(cordon_entry::Containment::StepUp),
        Level::Suspend => Some(cordon_entry::Containment::Suspend),
        Level::Normal | Level::Alert => None,
    }
}

/// What the detector calls an action (`matched`: whether a search found anyone; `verify`:
/// how a verify's check went).
pub(crate) fn seen(action: AccessAction, matched: bool, verify: Option<VerifyOutcome>) -> Option<Seen> {
    match action {
        AccessAction::Search => Some(Seen::Search { matched }),
        AccessAction::View => Some(Seen::View),
        AccessAction::Reveal => Some(Seen::Reveal),
        AccessAction::Verify => Some(Seen::Verify(match verify {
            None => Checked::NotChecked,
            Some(VerifyOutcome::Match) => Checked::Matched,
            Some(VerifyOutcome::NoMatch) => Checked::Wrong,
            Some(VerifyOutcome::Refused) => Checked::Refused,
        })),
        AccessAction::Approve
        | AccessAction::Administer
        | AccessAction::Export
        | AccessAction::Investigate
        | AccessAction::RequestApproval => None,
    }
}

/// The customer an entry shows detection: the one it was about, or a search's first hit.
pub(crate) fn observed_customer(entry: &AccessEntry) -> Option<&str> {
    entry.customer.as_deref().or_else(|| entry.matches.as_ref().and_then(|matches| matches.first()).map(String::as_str))
}

/// An access decision as the detector sees it.
pub(crate) fn observation<'a>(
    index: u64,
    time_ms: i64,
    agent: &'a str,
    action: Seen,
    customer: Option<&'a str>,
    allowed: bool,
    facts: &'a AccessFacts,
) -> Observation<'a> {
    Observation {
        index,
        time_ms,
        agent,
        peer_group: &facts.peer_group,
        site: &facts.site,
        action,
        customer,
        why: facts.why.unwrap_or(Why::Unexplained),
        opened_by: facts.opened_by.as_deref(),
        assigned_by: facts.assigned_by.as_deref(),
        fields_beyond_need: facts.beyond_need.len() as u32,
        high_balance: facts.high_balance,
        canary: facts.canary,
        off_shift: facts.off_shift,
        allowed,
    }
}

/// Appends entries in order under the sequence lock: `build` gets the index the first will
/// take and the detector, and returns the entries, already encoded (so already checked
/// against the ledger's size limit). They go to the log as one batch, all or none; the
/// future resolves once they are durable. A batch the log refuses at once uses no index.
pub(crate) fn append_sequenced<T>(
    sequencer: &Sequencer,
    audit: &dyn AuditLog,
    build: impl FnOnce(u64, &mut Sequenced) -> Result<(Vec<Vec<u8>>, T), GatewayError>,
) -> Result<(Pending, T), GatewayError> {
    let mut sequenced = sequencer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if sequenced.resync {
        sequenced.next_index = audit.size();
        sequenced.resync = false;
    }
    let first = sequenced.next_index;
    let built = build(first, &mut sequenced);
    // A build that failed part-way may have taken something in already.
    let (entries, extra) = built.inspect_err(|_| sequenced.tainted = true)?;
    let count = entries.len() as u64;
    let future = audit.append(entries).map_err(|error| {
        // `build` already took the entries into the states.
        sequenced.tainted = true;
        GatewayError::AuditUnavailable(error)
    })?;
    sequenced.next_index += count;
    Ok((Pending { expected: first, future }, extra))
}

/// Entries the log accepted, not yet durable.
pub(crate) struct Pending {
    expected: u64,
    future: AuditFuture,
}

impl Pending {
    /// Entries already durable at `first` (the shared ledger commits in its turn).
    pub(crate) fn done(first: u64) -> Pending {
        Pending { expected: first, future: Box::pin(async move { Ok(first) }) }
    }
}

/// Waits until appended entries are durable and returns the first one's index. Should the
/// log answer with another index than the one predicted, the entries are still the record
/// (they are durable), so their real index is returned and the sequencer resyncs before
/// the next append; a failed append resyncs it too.
pub(crate) async fn durable(sequencer: &Sequencer, pending: Pending) -> Result<u64, GatewayError> {
    let resync = || sequencer.lock().unwrap_or_else(std::sync::PoisonError::into_inner).resync = true;
    match pending.future.await {
        Ok(index) if index == pending.expected => Ok(index),
        Ok(index) => {
            tracing::error!(
                index,
                expected = pending.expected,
                "the ledger gave another index than predicted; resyncing"
            );
            resync();
            Ok(index)
        }
        Err(error) => {
            let mut sequenced = sequencer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            sequenced.resync = true;
            sequenced.tainted = true;
            Err(GatewayError::AuditUnavailable(error))
        }
    }
}

/// Customer and agent facts for replay, which the ledger does not hold.
pub(crate) trait ReplayFacts: Send {
    /// (canary, high balance)
    fn customer(&mut self, id: &str) -> (bool, bool);
    /// Reads these customers' flags ahead of the calls of [`ReplayFacts::customer`] that
    /// will ask for them.
    fn read_ahead(&mut self, ids: &[&str]);
    /// (peer group, site)
    fn agent(&mut self, id: &str) -> (String, String);
}

/// What a replay found.
#[derive(Debug, Default)]
pub struct Replayed {
    pub entries: u64,
    pub observations: u64,
    /// The alert entries the replay would have written, encoded as the live run writes them.
    pub alerts: Vec<AlertEntry>,
    /// The alert entries the ledger holds, with their indexes.
    pub recorded: Vec<(u64, AlertEntry)>,
    /// The index the replay started from: 0, or the size of the snapshot it started from.
    pub from: u64,
    /// Entries that are not cordon entries this build reads (appended by hand with `cordon
    /// log append`, or written by a newer version), with why. They are reported, not fatal:
    /// no entry, whoever wrote it, may keep the gateway from starting.
    pub unreadable: Vec<(u64, String)>,
}

/// What a change entry says of agents' statuses.
enum StatusChange<'a> {
    None,
    To(AgentStatus),
    /// It may have changed this agent's status without saying how.
    Unknown(&'a str),
    /// It may have changed any agent's status without saying how.
    UnknownForAll,
}

/// The agent status a change entry leaves its target in. Since version 2 a PUT keeps an
/// existing agent's status (its entry says `kept`) and names a new agent's, and imports
/// keep existing agents' statuses; version 1's PUTs and imports could change any, unsaid.
fn status_change(change: &cordon_entry::ChangeEntry) -> StatusChange<'_> {
    match change.change.as_str() {
        "agent.suspend" | "alert.confirm" => StatusChange::To(AgentStatus::Suspended),
        "agent.offboard" => StatusChange::To(AgentStatus::Offboarded),
        "agent.reinstate" => StatusChange::To(AgentStatus::Active),
        "agent.put" => {
            let words: Vec<&str> = change.detail.as_deref().unwrap_or_default().split(' ').collect();
            match words.as_slice() {
                [_, _, _, "kept"] => StatusChange::None,
                [_, _, _, status] => status.parse().map_or(StatusChange::Unknown(&change.target), StatusChange::To),
                _ => StatusChange::Unknown(&change.target),
            }
        }
        "import.agents" if change.v < 2 => StatusChange::UnknownForAll,
        _ => StatusChange::None,
    }
}

/// The states a replay rebuilds, in ledger order: detection's, verify's counts of wrong
/// statements, and what the ledger says of statuses and revocations.
#[derive(Debug, Clone)]
pub(crate) struct Rebuilt {
    pub detector: Detector,
    pub statements: WrongStatements,
    pub recorded: RecordedState,
}

/// Entries a replay decodes ahead, so that the customers they name are read from the store
/// together, in id order, in one transaction (one at a time, each in its own, the lookups
/// were most of a replay's time).
const REPLAY_CHUNK_ENTRIES: usize = 4096;

/// From how many entries a replay reads the store on a thread of its own (about half of a
/// replay's work) while the caller's thread decodes the next entries and feeds detection the
/// last; fewer, as when a gateway takes in other gateways' few entries before an append, are
/// replayed on the caller's thread alone.
const REPLAY_PIPELINE_FROM_ENTRIES: u64 = 4 * REPLAY_CHUNK_ENTRIES as u64;

/// Chunks queued for the store's thread.
const REPLAY_CHUNKS_QUEUED: usize = 4;

/// Decoded entries with what the store says of them: per entry, the customer flags
/// (canary, high balance) detection is shown, and the agents first named in this chunk.
#[derive(Default)]
struct Resolved {
    entries: Vec<(u64, Entry)>,
    flags: Vec<(bool, bool)>,
    agents: Vec<(String, (String, String))>,
}

/// Feeds every entry to `detector` (if `observe`) and to `statements` in order, as the live
/// run did. `expected` is about how many entries `visit` will give (it chooses between one
/// thread and a pipeline; the result is the same).
pub(crate) fn replay(
    rebuilt: &mut Rebuilt,
    observe: bool,
    facts: &mut dyn ReplayFacts,
    expected: u64,
    visit: &mut dyn FnMut(&mut EntryVisitor<'_>) -> Result<(), String>,
) -> Result<Replayed, GatewayError> {
    let mut replayed = Replayed::default();
    let mut chunk: Vec<(u64, Entry)> = Vec::with_capacity(REPLAY_CHUNK_ENTRIES);
    let decode = |index: u64, bytes: &[u8], replayed: &mut Replayed, chunk: &mut Vec<(u64, Entry)>| {
        replayed.entries += 1;
        match cordon_entry::decode(bytes) {
            Ok(entry) => chunk.push((index, entry)),
            Err(error) => replayed.unreadable.push((index, error.to_string())),
        }
    };
    let mut known = std::collections::HashSet::new();
    let mut agents: HashMap<String, AccessFacts> = HashMap::new();
    if expected < REPLAY_PIPELINE_FROM_ENTRIES {
        visit(&mut |index, bytes| {
            decode(index, bytes, &mut replayed, &mut chunk);
            if chunk.len() == REPLAY_CHUNK_ENTRIES {
                let resolved = resolve(std::mem::take(&mut chunk), observe, facts, &mut known);
                apply(resolved, rebuilt, observe, &mut agents, &mut replayed);
            }
            Ok(())
        })
        .map_err(GatewayError::Internal)?;
        let resolved = resolve(chunk, observe, facts, &mut known);
        apply(resolved, rebuilt, observe, &mut agents, &mut replayed);
        return Ok(replayed);
    }
    // Entries are decoded and dropped on this thread (their strings are freed where they
    // were allocated, which keeps the allocator reusing its pages); the store's thread reads
    // each chunk's customers and hands the chunk back in order.
    let (decoded_to, decoded) = std::sync::mpsc::sync_channel::<Vec<(u64, Entry)>>(REPLAY_CHUNKS_QUEUED);
    let (resolved_to, resolved) = std::sync::mpsc::channel::<Resolved>();
    std::thread::scope(|scope| {
        let resolving = std::thread::Builder::new()
            .name("replay-customers".into())
            .spawn_scoped(scope, move || {
                for chunk in decoded {
                    if resolved_to.send(resolve(chunk, observe, facts, &mut known)).is_err() {
                        return;
                    }
                }
            })
            .map_err(|error| GatewayError::Internal(format!("could not start a replay thread: {error}")))?;
        let visited = visit(&mut |index, bytes| {
            decode(index, bytes, &mut replayed, &mut chunk);
            if chunk.len() == REPLAY_CHUNK_ENTRIES {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(REPLAY_CHUNK_ENTRIES));
                // A store's thread that stopped has panicked; joining it below says so.
                let _ = decoded_to.send(full);
                for ready in resolved.try_iter() {
                    apply(ready, rebuilt, observe, &mut agents, &mut replayed);
                }
            }
            Ok(())
        });
        let _ = decoded_to.send(std::mem::take(&mut chunk));
        drop(decoded_to);
        for ready in resolved.iter() {
            apply(ready, rebuilt, observe, &mut agents, &mut replayed);
        }
        resolving.join().map_err(|_| GatewayError::Internal("the replay's store thread panicked".into()))?;
        visited.map_err(GatewayError::Internal)
    })?;
    Ok(replayed)
}

/// The store's part of a replay: the flags of the customers each entry shows detection,
/// read together ahead of them, and the peer group and site of agents not `known` yet.
fn resolve(
    entries: Vec<(u64, Entry)>,
    observe: bool,
    facts: &mut dyn ReplayFacts,
    known: &mut std::collections::HashSet<String>,
) -> Resolved {
    if !observe {
        return Resolved { entries, ..Resolved::default() };
    }
    let customers: Vec<&str> = entries
        .iter()
        .filter_map(|(_, entry)| match entry {
            Entry::Access(access) => observed_customer(access),
            _ => None,
        })
        .collect();
    facts.read_ahead(&customers);
    let mut flags = Vec::with_capacity(entries.len());
    let mut agents = Vec::new();
    for (_, entry) in &entries {
        let Entry::Access(entry) = entry else {
            flags.push((false, false));
            continue;
        };
        let matches = entry.matches.as_deref().unwrap_or_default();
        flags.push(match (&entry.customer, entry.action) {
            (Some(customer), _) => facts.customer(customer),
            (None, AccessAction::Search) => {
                (!matches.is_empty() && matches.iter().all(|customer| facts.customer(customer).0), false)
            }
            _ => (false, false),
        });
        if !known.contains(&entry.agent) {
            known.insert(entry.agent.clone());
            agents.push((entry.agent.clone(), facts.agent(&entry.agent)));
        }
    }
    Resolved { entries, flags, agents }
}

/// Detection's part of a replay: the entries in order, with what [`resolve`] read.
fn apply(
    resolved: Resolved,
    rebuilt: &mut Rebuilt,
    observe: bool,
    agents: &mut HashMap<String, AccessFacts>,
    replayed: &mut Replayed,
) {
    for (agent, (peer_group, site)) in resolved.agents {
        agents.insert(agent, AccessFacts { peer_group, site, ..AccessFacts::default() });
    }
    let mut flags = resolved.flags.into_iter();
    for (index, entry) in resolved.entries {
        let flags = flags.next().unwrap_or_default();
        replay_entry(index, entry, flags, rebuilt, observe, agents, replayed);
    }
}

fn replay_entry(
    index: u64,
    entry: Entry,
    (canary, high_balance): (bool, bool),
    rebuilt: &mut Rebuilt,
    observe: bool,
    agents: &mut HashMap<String, AccessFacts>,
    replayed: &mut Replayed,
) {
    match entry {
        Entry::Access(mut entry) => {
            let allowed = entry.policy_allowed();
            if entry.verify == Some(VerifyOutcome::NoMatch)
                && let (Some(customer), Some(field)) = (&entry.customer, entry.fields.first())
            {
                rebuilt.statements.check(&entry.agent, customer, field, entry.time_ms, false);
            }
            if !observe {
                return;
            }
            let matches = entry.matches.as_deref().unwrap_or_default();
            let Some(action) = seen(entry.action, !matches.is_empty(), entry.verify) else { return };
            // One set of facts per agent, refilled for each of its entries (no copies).
            let Some(access) = agents.get_mut(&entry.agent) else { return };
            access.why = entry.why.as_deref().and_then(Why::parse);
            access.opened_by.clone_from(&entry.opened_by);
            access.assigned_by.clone_from(&entry.assigned_by);
            access.beyond_need = std::mem::take(&mut entry.beyond_need);
            access.off_shift = entry.off_shift;
            access.high_balance = high_balance;
            access.canary = canary;
            let access = &*access;
            replayed.observations += 1;
            let observation =
                observation(index, entry.time_ms, &entry.agent, action, observed_customer(&entry), allowed, access);
            let verdict: Verdict = rebuilt.detector.observe(&observation);
            for alert in verdict.alerts {
                replayed.alerts.push(alert_entry(&alert, &entry.request));
            }
        }
        Entry::Alert(alert) => {
            rebuilt.recorded.note_alert(&alert, index);
            replayed.recorded.push((index, alert));
        }
        Entry::Change(change) => {
            // An analyst's reinstatement or dismissal (target: the agent) clears its risk.
            if matches!(change.change.as_str(), "agent.reinstate" | "alert.dismiss") {
                rebuilt.detector.clear(&change.target, change.time_ms);
            }
            rebuilt.recorded.note_change(&change, index);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use cordon_entry::{AccessEntry, ChangeEntry, Decision};

    use super::*;

    /// Customers from 90,000 are canaries and those below 300 rich; agents in two teams.
    struct NumberedFacts;

    impl ReplayFacts for NumberedFacts {
        fn customer(&mut self, id: &str) -> (bool, bool) {
            let number: u32 = id.trim_start_matches("cus-").parse().unwrap_or(u32::MAX);
            (number >= 90_000, number < 300)
        }
        fn read_ahead(&mut self, _ids: &[&str]) {}
        fn agent(&mut self, id: &str) -> (String, String) {
            let number: u32 = id.trim_start_matches("agt-").parse().unwrap_or(0);
            (format!("team-{}@hq", number % 2), "hq".into())
        }
    }

    /// Sixty agents over fourteen days working tickets, one of them sweeping customers
    /// nothing explains from day eight, a wrong verify now and then, a ticket change between
    /// accesses, and one entry no build reads.
    fn ledger() -> Vec<Vec<u8>> {
        let day_ms = 86_400_000;
        let mut entries = Vec::new();
        let mut request = 0;
        for day in 0..14 {
            for slot in 0..45 {
                for agent in 0..60 {
                    request += 1;
                    let time_ms = day * day_ms + slot * 600_000 + agent * 1_000;
                    let sweeping = agent == 0 && day >= 8;
                    let customer =
                        if sweeping { 1_000 + request % 50_000 } else { 100 + (agent * 97 + slot * 13 + day) % 3_000 };
                    let action = match slot % 5 {
                        0 => AccessAction::Search,
                        1 => AccessAction::Verify,
                        _ => AccessAction::View,
                    };
                    let mut entry = AccessEntry::new(
                        time_ms,
                        &format!("r{request}"),
                        &format!("agt-{agent}"),
                        action,
                        Decision::Allow,
                    );
                    if action == AccessAction::Search {
                        entry.matches = Some(vec![format!("cus-{customer}"), format!("cus-{}", customer + 1)]);
                    } else {
                        entry.customer = Some(format!("cus-{customer}"));
                        entry.fields = vec!["date_of_birth".into()];
                    }
                    if action == AccessAction::Verify {
                        entry.verify = Some(if slot % 3 == 0 { VerifyOutcome::NoMatch } else { VerifyOutcome::Match });
                    }
                    entry.why = Some(if sweeping { "unexplained" } else { "ticket" }.into());
                    entries.push(Entry::Access(entry).encode().unwrap());
                }
                let change = ChangeEntry {
                    v: VERSION,
                    time_ms: day * day_ms + slot * 600_000,
                    request: format!("c{day}-{slot}"),
                    actor: "role:admin".into(),
                    change: "ticket.put".into(),
                    target: format!("tkt-{day}-{slot}"),
                    detail: Some("open account_recovery agt-1".into()),
                };
                entries.push(Entry::Change(change).encode().unwrap());
            }
            if day == 3 {
                entries.push(br#"{"kind":"note","v":2}"#.to_vec());
            }
        }
        entries
    }

    fn replay_all(entries: &[Vec<u8>], expected: u64) -> Replayed {
        let mut rebuilt = Rebuilt {
            detector: Detector::new(cordon_detect::Thresholds::default()),
            statements: WrongStatements::new(3, 30),
            recorded: RecordedState::default(),
        };
        replay(&mut rebuilt, true, &mut NumberedFacts, expected, &mut |visit| {
            entries.iter().enumerate().try_for_each(|(index, bytes)| visit(index as u64, bytes))
        })
        .unwrap()
    }

    #[test]
    fn a_replay_through_the_store_thread_gives_what_one_thread_gives() {
        let entries = ledger();
        assert!(entries.len() as u64 > 2 * REPLAY_PIPELINE_FROM_ENTRIES, "{} entries", entries.len());
        let alone = replay_all(&entries, 0);
        let pipelined = replay_all(&entries, entries.len() as u64);
        assert!(
            alone.alerts.iter().any(|alert| alert.agent == "agt-0" && alert.level == "suspend"),
            "the sweeper is suspended: {:?}",
            alone.alerts
        );
        assert_eq!(alone.entries, entries.len() as u64);
        assert_eq!(alone.unreadable.len(), 1);
        assert_eq!(
            (alone.entries, alone.observations, &alone.alerts, &alone.unreadable),
            (pipelined.entries, pipelined.observations, &pipelined.alerts, &pipelined.unreadable)
        );
    }
}
