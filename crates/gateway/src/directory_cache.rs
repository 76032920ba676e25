//! Agents, tickets, sealed customer records and who holds approvals, kept in memory in
//! front of the store. Every
//! data access needs the agent and the ticket; reading them from SQLite was most of a
//! reveal's database time. While a gateway serves, it is the only writer of the directory
//! (the ledger's lock keeps any other process out), and each write here also replaces the
//! cached copy, so a suspension holds from the agent's very next request.

use std::collections::{HashMap, HashSet};
use std::sync::{PoisonError, RwLock};

use cordon_directory::{Agent, Ticket};
use cordon_store::{Store, StoreError, StoredCustomer};

/// Past this many cached tickets the cache starts over, bounding memory.
const TICKETS_CACHED_MAX: usize = 1_000_000;
/// Sealed customer records (ciphertext only) kept for the customers worked on now; past
/// this many the cache starts over.
const CUSTOMERS_CACHED_MAX: usize = 100_000;

#[derive(Default)]
pub(crate) struct DirectoryCache {
    agents: Cache<Agent>,
    tickets: Cache<Ticket>,
    /// Customers as stored: sealed fields and wrapped key, never a plaintext value. An agent
    /// searches, views and reveals the same customer within seconds.
    customers: Cache<StoredCustomer>,
    /// Agents who have ever been granted an approval; others need no approval lookup.
    approved_agents: RwLock<HashSet<String>>,
}

impl DirectoryCache {
    pub(crate) fn load(store: &Store) -> Result<DirectoryCache, StoreError> {
        let cache = DirectoryCache::default();
        *cache.approved_agents.write().unwrap_or_else(PoisonError::into_inner) =
            store.agents_with_granted_approvals()?;
        Ok(cache)
    }

    pub(crate) fn agent(&self, store: &Store, id: &str) -> Result<Option<Agent>, StoreError> {
        cached(&self.agents, id, usize::MAX, || store.agent(id))
    }

    pub(crate) fn ticket(&self, store: &Store, id: &str) -> Result<Option<Ticket>, StoreError> {
        cached(&self.tickets, id, TICKETS_CACHED_MAX, || store.ticket(id))
    }

    pub(crate) fn customer(&self, store: &Store, id: &str) -> Result<Option<StoredCustomer>, StoreError> {
        cached(&self.customers, id, CUSTOMERS_CACHED_MAX, || store.customer(id))
    }

    /// Forgets cached agents (after any agent write).
    pub(crate) fn agents_changed(&self, ids: &[&str]) {
        forget(&self.agents, ids);
    }

    /// Forgets cached tickets (after any ticket write).
    pub(crate) fn tickets_changed(&self, ids: &[&str]) {
        forget(&self.tickets, ids);
    }

    /// Forgets cached customers (after any customer write or deletion).
    pub(crate) fn customers_changed(&self, ids: &[&str]) {
        forget(&self.customers, ids);
    }

    pub(crate) fn may_hold_approval(&self, agent: &str) -> bool {
        self.approved_agents.read().unwrap_or_else(PoisonError::into_inner).contains(agent)
    }

    pub(crate) fn approval_granted(&self, agent: &str) {
        self.approved_agents.write().unwrap_or_else(PoisonError::into_inner).insert(agent.to_string());
    }
}

type Cache<T> = RwLock<HashMap<String, Option<T>>>;

/// The cached value for `id`, or `load` it and keep it; past `entries_max` the cache starts
/// over. Absence is cached too, until a write for that id says otherwise.
fn cached<T: Clone>(
    cache: &Cache<T>,
    id: &str,
    entries_max: usize,
    load: impl FnOnce() -> Result<Option<T>, StoreError>,
) -> Result<Option<T>, StoreError> {
    if let Some(value) = cache.read().unwrap_or_else(PoisonError::into_inner).get(id) {
        return Ok(value.clone());
    }
    let value = load()?;
    let mut entries = cache.write().unwrap_or_else(PoisonError::into_inner);
    if entries.len() >= entries_max {
        entries.clear();
    }
    entries.insert(id.to_string(), value.clone());
    Ok(value)
}

fn forget<T>(cache: &Cache<T>, ids: &[&str]) {
    let mut entries = cache.write().unwrap_or_else(PoisonError::into_inner);
    for id in ids {
        entries.remove(*id);
    }
}
