//! cordon's storage: customers (sealed), the blind-index search table, agents, tickets,
//! approvals, alerts and the webhook outbox, and the per-customer index of access events. This is the only crate that
//! speaks SQL; the embedded default is SQLite (bundled, nothing to install).
//!
//! The store holds no plaintext customer value: customers arrive sealed by the vault and
//! leave sealed. Secure delete is on, so a deleted customer's wrapped key is overwritten.

mod helpdesk;
mod incident;
mod schema;
mod session;
mod store;

pub use helpdesk::{HelpdeskChange, HelpdeskTicket, HelpdeskUser};
pub use incident::{CustomerReachChange, Deliveries, Exposure, ProtectiveAction, StoredIncident, TimelineEvent};
pub use session::StoredSession;
pub use store::{
    AccessEvent, CustomerRow, OutboxItem, SearchHit, Store, StoreError, StoreSnapshot, StoredAlert, StoredCustomer,
};
