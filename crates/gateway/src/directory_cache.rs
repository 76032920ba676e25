//! Agents, tickets, sealed customer records and who holds approvals, kept in memory in
//! front of the store. Every data access needs the agent and the ticket; reading them from
//! SQLite was most of a reveal's database time. A gateway's own writes go through here, each
//! replacing the cached copy, so a suspension holds from the agent's very next request. On
//! the embedded store it is the only writer (the ledger's lock keeps any other process out);
//! on a store several gateways share, another gateway's change reaches this one as a ledger
//! entry, which drops the cache, and rows are not kept until the change has settled.

use std::collections::{HashMap, HashSet};
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use cordon_directory::{Agent, AgentStatus, Approval, ApprovalStatus, Ticket};
use cordon_store::{CustomerRow, Store, StoreError, StoredCustomer};

/// Past this many cached tickets the cache starts over, bounding memory.
const TICKETS_CACHED_MAX: usize = 1_000_000;
/// Sealed customer records (ciphertext only) kept for the customers worked on now; past
/// this many the cache starts over.
const CUSTOMERS_CACHED_MAX: usize = 100_000;

/// After another gateway's change, how long this one keeps no row it loads: the change's
/// ledger entry reaches this gateway before the other's store write has landed (it lands
/// milliseconds later), and a row loaded in between is the old one, which a cache would keep
/// until the next change (a closed ticket still open here, for hours).
pub(crate) const SETTLING_AFTER_ANOTHER_GATEWAYS_CHANGE: Duration = Duration::from_secs(5);

#[derive(Default)]
pub(crate) struct DirectoryCache {
    agents: Cache<Agent>,
    tickets: Cache<Ticket>,
    /// Customers as stored: sealed fields and wrapped key, never a plaintext value. An agent
    /// searches, views and reveals the same customer within seconds.
    customers: Cache<StoredCustomer>,
    /// Agents who have ever been granted an approval; others need no approval lookup.
    approved_agents: RwLock<HashSet<String>>,
    /// Agent statuses the ledger records (with the index of the entry that records each)
    /// that the store has not taken yet: they hold over the stored status until a write
    /// succeeds (a retry, or a restart's repair from the ledger).
    held_statuses: RwLock<HashMap<String, (AgentStatus, u64)>>,
    /// Per agent, the index of the status change last written to the store; status writes
    /// take this lock in turn, so one that arrives late never overwrites a newer one.
    status_writes: std::sync::Mutex<HashMap<String, u64>>,
    /// Until when another gateway's change may not have reached the store yet: rows loaded
    /// meanwhile are used but not kept, and approvals are looked up for every agent.
    settling_until: RwLock<Option<Instant>>,
}

impl DirectoryCache {
    pub(crate) fn load(store: &Store) -> Result<DirectoryCache, StoreError> {
        let cache = DirectoryCache::default();
        *cache.approved_agents.write().unwrap_or_else(PoisonError::into_inner) =
            store.agents_with_granted_approvals()?;
        Ok(cache)
    }

    pub(crate) fn agent(&self, store: &Store, id: &str) -> Result<Option<Agent>, StoreError> {
        let mut agent = cached(&self.agents, id, usize::MAX, || self.settled(), || store.agent(id))?;
        let held = self.held_statuses.read().unwrap_or_else(PoisonError::into_inner);
        if !held.is_empty()
            && let (Some(agent), Some((status, _))) = (agent.as_mut(), held.get(id))
        {
            agent.status = *status;
        }
        Ok(agent)
    }

    pub(crate) fn ticket(&self, store: &Store, id: &str) -> Result<Option<Ticket>, StoreError> {
        cached(&self.tickets, id, TICKETS_CACHED_MAX, || self.settled(), || store.ticket(id))
    }

    pub(crate) fn customer(&self, store: &Store, id: &str) -> Result<Option<StoredCustomer>, StoreError> {
        cached(&self.customers, id, CUSTOMERS_CACHED_MAX, || self.settled(), || store.customer(id))
    }

    // Writes go through here, each replacing the cached copies it makes stale, so no
    // caller can write the store and forget the cache.

    pub(crate) fn put_agents(&self, store: &Store, agents: &[Agent]) -> Result<(), StoreError> {
        store.upsert_agents(agents)?;
        forget(&self.agents, agents.iter().map(|agent| agent.id.as_str()));
        Ok(())
    }

    /// Puts a status the ledger records at `index` in force: from the agent's next
    /// request, whether or not the store takes it now. A store that fails keeps it held in
    /// memory (and the error is returned, for the caller to log); [`DirectoryCache::write_held`]
    /// retries. Changes apply in ledger order (one recorded before another that is already
    /// in force is dropped), and offboarding is final.
    pub(crate) fn set_agent_status(
        &self,
        store: &Store,
        id: &str,
        status: AgentStatus,
        index: u64,
    ) -> Result<(), StoreError> {
        let mut written = self.status_writes.lock().unwrap_or_else(PoisonError::into_inner);
        if written.get(id).is_some_and(|newest| *newest > index) {
            return Ok(());
        }
        {
            let held = self.held_statuses.read().unwrap_or_else(PoisonError::into_inner);
            if held.get(id).is_some_and(|(_, newest)| *newest > index) {
                return Ok(());
            }
        }
        if status != AgentStatus::Offboarded
            && self.agent(store, id)?.is_some_and(|agent| agent.status == AgentStatus::Offboarded)
        {
            return Ok(());
        }
        self.held_statuses.write().unwrap_or_else(PoisonError::into_inner).insert(id.to_string(), (status, index));
        forget(&self.agents, [id]);
        let stored = store.set_agent_status(id, status);
        // Again after the write: a load that read the old row meanwhile is not kept.
        forget(&self.agents, [id]);
        stored?;
        written.insert(id.to_string(), index);
        let mut held = self.held_statuses.write().unwrap_or_else(PoisonError::into_inner);
        if held.get(id).is_some_and(|(_, held_index)| *held_index == index) {
            held.remove(id);
        }
        Ok(())
    }

    /// Statuses held in memory because the store has not taken them.
    pub(crate) fn held_statuses(&self) -> usize {
        self.held_statuses.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Writes the statuses held in memory to the store; how many are still held.
    pub(crate) fn write_held(&self, store: &Store) -> usize {
        let held: Vec<(String, AgentStatus, u64)> = self
            .held_statuses
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(id, (status, index))| (id.clone(), *status, *index))
            .collect();
        for (id, status, index) in held {
            let _ = self.set_agent_status(store, &id, status, index);
        }
        self.held_statuses.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    pub(crate) fn put_tickets(&self, store: &Store, tickets: &[Ticket]) -> Result<(), StoreError> {
        store.upsert_tickets(tickets)?;
        forget(&self.tickets, tickets.iter().map(|ticket| ticket.id.as_str()));
        Ok(())
    }

    /// Applies one helpdesk event's change (its ticket, if any, with the rest in the same
    /// transaction), and forgets the cached ticket.
    pub(crate) fn apply_helpdesk(
        &self,
        store: &Store,
        change: &cordon_store::HelpdeskChange<'_>,
    ) -> Result<(), StoreError> {
        store.apply_helpdesk(change)?;
        forget(&self.tickets, change.ticket.map(|(ticket, _)| ticket.id.as_str()));
        Ok(())
    }

    pub(crate) fn put_customers(&self, store: &Store, rows: &[CustomerRow], now: i64) -> Result<(), StoreError> {
        store.upsert_customers(rows, now)?;
        forget(&self.customers, rows.iter().map(|row| row.id.as_str()));
        Ok(())
    }

    /// Destroys a customer's data key; whether the customer existed.
    pub(crate) fn delete_customer(&self, store: &Store, id: &str, now: i64) -> Result<bool, StoreError> {
        let deleted = store.delete_customer(id, now)?;
        forget(&self.customers, [id]);
        Ok(deleted)
    }

    /// Stores an approval; once one is granted, its requester's requests look approvals up.
    pub(crate) fn put_approval(&self, store: &Store, approval: &Approval) -> Result<(), StoreError> {
        store.put_approval(approval)?;
        if approval.status == ApprovalStatus::Approved {
            self.approved_agents.write().unwrap_or_else(PoisonError::into_inner).insert(approval.requester.clone());
        }
        Ok(())
    }

    /// Drops every cached agent, ticket and customer: another gateway sharing the store
    /// changed something (its ledger entry says what, this cache does not need to). For
    /// `settling` after, rows are loaded afresh for each request and not kept, and who holds
    /// approvals is read again once it is over ([`DirectoryCache::settle`]).
    pub(crate) fn forget_all(&self, settling: Duration) {
        let until = Instant::now() + settling;
        {
            let mut settling_until = self.settling_until.write().unwrap_or_else(PoisonError::into_inner);
            *settling_until = Some(settling_until.map_or(until, |earlier| earlier.max(until)));
        }
        for cache in [&self.agents as &dyn Forget, &self.tickets, &self.customers] {
            cache.forget_everything();
        }
    }

    /// Ends a settling time that is over: who holds approvals is read again, and rows loaded
    /// from now on are kept. Cheap when there is nothing to end (every request calls it).
    pub(crate) fn settle(&self, store: &Store) -> Result<(), StoreError> {
        let Some(until) = *self.settling_until.read().unwrap_or_else(PoisonError::into_inner) else { return Ok(()) };
        if Instant::now() < until {
            return Ok(());
        }
        let approved = store.agents_with_granted_approvals()?;
        *self.approved_agents.write().unwrap_or_else(PoisonError::into_inner) = approved;
        let mut settling_until = self.settling_until.write().unwrap_or_else(PoisonError::into_inner);
        // Unless another change began a settling time meanwhile.
        if *settling_until == Some(until) {
            *settling_until = None;
        }
        Ok(())
    }

    fn settled(&self) -> bool {
        self.settling_until.read().unwrap_or_else(PoisonError::into_inner).is_none_or(|until| Instant::now() >= until)
    }

    /// Whether `agent` may hold an approval, so that approvals are looked up: every agent
    /// may while another gateway's change settles (a grant there may be in the store, and
    /// not yet in the set read here).
    pub(crate) fn may_hold_approval(&self, agent: &str) -> bool {
        !self.settled() || self.approved_agents.read().unwrap_or_else(PoisonError::into_inner).contains(agent)
    }
}

type Cache<T> = RwLock<Entries<T>>;

struct Entries<T> {
    values: HashMap<String, Option<T>>,
    /// Bumped by every write. A load that started before a write may have read the old
    /// row; it must not be kept, or it would undo the write (a suspension) in the cache.
    generation: u64,
}

impl<T> Default for Entries<T> {
    fn default() -> Entries<T> {
        Entries { values: HashMap::new(), generation: 0 }
    }
}

/// The cached value for `id`, or `load` it and keep it (if `keep` says so, asked only on a
/// miss, off the hit path), unless a write came in between; past `entries_max` the cache
/// starts over. Absence is cached too, until a write for that id says otherwise.
fn cached<T: Clone>(
    cache: &Cache<T>,
    id: &str,
    entries_max: usize,
    keep: impl FnOnce() -> bool,
    load: impl FnOnce() -> Result<Option<T>, StoreError>,
) -> Result<Option<T>, StoreError> {
    let generation = {
        let entries = cache.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(value) = entries.values.get(id) {
            return Ok(value.clone());
        }
        entries.generation
    };
    let value = load()?;
    if !keep() {
        return Ok(value);
    }
    let mut entries = cache.write().unwrap_or_else(PoisonError::into_inner);
    if entries.generation == generation {
        if entries.values.len() >= entries_max {
            entries.values.clear();
        }
        entries.values.insert(id.to_string(), value.clone());
    }
    Ok(value)
}

/// A cache emptied whole, whatever it holds.
trait Forget {
    fn forget_everything(&self);
}

impl<T> Forget for Cache<T> {
    fn forget_everything(&self) {
        let mut entries = self.write().unwrap_or_else(PoisonError::into_inner);
        entries.generation += 1;
        entries.values.clear();
    }
}

fn forget<'a, T>(cache: &Cache<T>, ids: impl IntoIterator<Item = &'a str>) {
    let mut entries = cache.write().unwrap_or_else(PoisonError::into_inner);
    entries.generation += 1;
    for id in ids {
        entries.values.remove(id);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Regression: a reader that missed the cache loaded the row, a suspension was written
    /// and forgotten meanwhile, and the reader then cached the row it had loaded, undoing
    /// the suspension in the cache until the next write.
    #[test]
    fn a_load_racing_a_write_is_not_kept() {
        let cache: Cache<&'static str> = Cache::default();
        let answered = cached(
            &cache,
            "agt-1",
            usize::MAX,
            || true,
            || {
                // The write lands while the load is under way.
                forget(&cache, ["agt-1"]);
                Ok(Some("active"))
            },
        )
        .unwrap();
        assert_eq!(answered, Some("active"), "the racing request sees what it read");
        let next = cached(&cache, "agt-1", usize::MAX, || true, || Ok(Some("suspended"))).unwrap();
        assert_eq!(next, Some("suspended"), "the next request reads the store again");
        let cached_now = cached(&cache, "agt-1", usize::MAX, || true, || Ok(Some("never read"))).unwrap();
        assert_eq!(cached_now, Some("suspended"), "an undisturbed load is kept");
    }

    /// Regression: a status write forgot the cached agent before writing the store and not
    /// after, so a request that missed the cache in between cached the old row for good,
    /// undoing a suspension for as long as the process ran. Here a reader hammers the
    /// cache while statuses change; after each change, the cache must say what was written.
    #[test]
    fn a_load_during_a_status_write_does_not_undo_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("cordon.sqlite")).unwrap();
        let agent = Agent {
            id: "agt-1".into(),
            name: "A".into(),
            team: "l1-chat".into(),
            site: "us-sf".into(),
            employer: "staff".into(),
            shift: cordon_directory::Shift::new(0, 0).unwrap(),
            role: cordon_directory::Role::Agent,
            status: AgentStatus::Active,
        };
        store.upsert_agents(&[agent]).unwrap();
        let cache = DirectoryCache::load(&store).unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = cache.agent(&store, "agt-1");
                }
            });
            // The reader stops however this ends, a failed assertion included.
            struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);
            impl Drop for StopOnDrop<'_> {
                fn drop(&mut self) {
                    self.0.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            let _stop = StopOnDrop(&stop);
            for index in 1..=300u64 {
                let status = if index % 2 == 1 { AgentStatus::Suspended } else { AgentStatus::Active };
                cache.set_agent_status(&store, "agt-1", status, index).unwrap();
                assert_eq!(cache.agent(&store, "agt-1").unwrap().unwrap().status, status, "after change {index}");
            }
        });
        // Ledger order: a change recorded before the one in force is dropped.
        cache.set_agent_status(&store, "agt-1", AgentStatus::Suspended, 7).unwrap();
        assert_eq!(cache.agent(&store, "agt-1").unwrap().unwrap().status, AgentStatus::Active);
        // Offboarding is final.
        cache.set_agent_status(&store, "agt-1", AgentStatus::Offboarded, 301).unwrap();
        cache.set_agent_status(&store, "agt-1", AgentStatus::Suspended, 302).unwrap();
        assert_eq!(store.agent("agt-1").unwrap().unwrap().status, AgentStatus::Offboarded);
    }

    /// Regression: on a store several gateways share, a gateway that took in another's
    /// change (a ticket closed) dropped its cache, then loaded the ticket before the other's
    /// store write had landed, and kept the old row until the next change: the closed ticket
    /// stayed open here. While a change settles, rows are used but not kept; after, they are
    /// kept again; and approvals are looked up for every agent until who holds them is read
    /// again.
    #[test]
    fn rows_loaded_while_another_gateways_change_settles_are_not_kept() {
        use cordon_directory::{Approval, ApprovalKind, TicketStatus};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("cordon.sqlite")).unwrap();
        let open = Ticket {
            id: "t-1".into(),
            requester: "c-1".into(),
            category: "general_inquiry".into(),
            status: TicketStatus::Open,
            assignee: Some("a-1".into()),
            opened_by: None,
            assigned_by: None,
            created_at: 10,
            updated_at: 10,
        };
        store.upsert_tickets(std::slice::from_ref(&open)).unwrap();
        let cache = DirectoryCache::load(&store).unwrap();
        assert_eq!(cache.ticket(&store, "t-1").unwrap().unwrap().status, TicketStatus::Open);

        // The other gateway's entry arrives; its store write has not landed yet.
        let settling = Duration::from_millis(300);
        cache.forget_all(settling);
        assert_eq!(cache.ticket(&store, "t-1").unwrap().unwrap().status, TicketStatus::Open, "the old row, used");
        // Now it lands (and the other gateway grants an approval).
        let closed = Ticket { status: TicketStatus::Closed, updated_at: 20, ..open.clone() };
        store.upsert_tickets(std::slice::from_ref(&closed)).unwrap();
        let approval = Approval {
            id: "ap-1".into(),
            kind: ApprovalKind::BreakGlass,
            requester: "a-2".into(),
            customer: "c-1".into(),
            status: ApprovalStatus::Approved,
            approver: Some("a-9".into()),
            created_at: 100,
            decided_at: Some(110),
            expires_at: Some(4000),
        };
        store.put_approval(&approval).unwrap();
        assert_eq!(cache.ticket(&store, "t-1").unwrap().unwrap().status, TicketStatus::Closed, "not kept: read again");
        assert!(cache.may_hold_approval("a-2") && cache.may_hold_approval("a-3"), "looked up for anyone meanwhile");
        cache.settle(&store).unwrap();
        assert!(cache.may_hold_approval("a-3"), "not settled before its time");

        std::thread::sleep(settling);
        cache.settle(&store).unwrap();
        assert!(cache.may_hold_approval("a-2"), "the grant is read once settled");
        assert!(!cache.may_hold_approval("a-3"));
        assert_eq!(cache.ticket(&store, "t-1").unwrap().unwrap().status, TicketStatus::Closed);
        // Kept again: a row changed behind the cache's back (as no write here does) is not read.
        let reopened = Ticket { status: TicketStatus::Open, updated_at: 30, ..open };
        store.upsert_tickets(std::slice::from_ref(&reopened)).unwrap();
        assert_eq!(cache.ticket(&store, "t-1").unwrap().unwrap().status, TicketStatus::Closed, "kept once settled");
    }
}
