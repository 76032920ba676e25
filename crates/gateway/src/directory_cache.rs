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
    agents: RwLock<HashMap<String, Option<Agent>>>,
    tickets: RwLock<HashMap<String, Option<Ticket>>>,
    /// Customers as stored: sealed fields and wrapped key, never a plaintext value. An agent
    /// searches, views and reveals the same customer within seconds.
    customers: RwLock<HashMap<String, Option<StoredCustomer>>>,
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
        if let Some(agent) = self.agents.read().unwrap_or_else(PoisonError::into_inner).get(id) {
            return Ok(agent.clone());
        }
        let agent = store.agent(id)?;
        self.agents.write().unwrap_or_else(PoisonError::into_inner).insert(id.to_string(), agent.clone());
        Ok(agent)
    }

    pub(crate) fn ticket(&self, store: &Store, id: &str) -> Result<Option<Ticket>, StoreError> {
        if let Some(ticket) = self.tickets.read().unwrap_or_else(PoisonError::into_inner).get(id) {
            return Ok(ticket.clone());
        }
        let ticket = store.ticket(id)?;
        let mut tickets = self.tickets.write().unwrap_or_else(PoisonError::into_inner);
        if tickets.len() >= TICKETS_CACHED_MAX {
            tickets.clear();
        }
        tickets.insert(id.to_string(), ticket.clone());
        Ok(ticket)
    }

    pub(crate) fn customer(&self, store: &Store, id: &str) -> Result<Option<StoredCustomer>, StoreError> {
        if let Some(customer) = self.customers.read().unwrap_or_else(PoisonError::into_inner).get(id) {
            return Ok(customer.clone());
        }
        let customer = store.customer(id)?;
        let mut customers = self.customers.write().unwrap_or_else(PoisonError::into_inner);
        if customers.len() >= CUSTOMERS_CACHED_MAX {
            customers.clear();
        }
        customers.insert(id.to_string(), customer.clone());
        Ok(customer)
    }

    /// Forgets cached customers (after any customer write or deletion).
    pub(crate) fn customers_changed(&self, ids: &[&str]) {
        let mut customers = self.customers.write().unwrap_or_else(PoisonError::into_inner);
        for id in ids {
            customers.remove(*id);
        }
    }

    /// Forgets cached agents (after any agent write).
    pub(crate) fn agents_changed(&self, ids: &[&str]) {
        let mut agents = self.agents.write().unwrap_or_else(PoisonError::into_inner);
        for id in ids {
            agents.remove(*id);
        }
    }

    /// Forgets cached tickets (after any ticket write).
    pub(crate) fn tickets_changed(&self, ids: &[&str]) {
        let mut tickets = self.tickets.write().unwrap_or_else(PoisonError::into_inner);
        for id in ids {
            tickets.remove(*id);
        }
    }

    pub(crate) fn may_hold_approval(&self, agent: &str) -> bool {
        self.approved_agents.read().unwrap_or_else(PoisonError::into_inner).contains(agent)
    }

    pub(crate) fn approval_granted(&self, agent: &str) {
        self.approved_agents.write().unwrap_or_else(PoisonError::into_inner).insert(agent.to_string());
    }
}
