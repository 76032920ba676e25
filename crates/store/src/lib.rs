//! cordon's storage: customers (sealed), the blind-index search table, agents, tickets,
//! approvals, alerts and the webhook outbox, and the per-customer index of access events. This is the only crate that
//! speaks SQL. The embedded default is SQLite (bundled, nothing to install); several gateways
//! share one PostgreSQL database instead (`Store::open_postgres`). Both run the same queries
//! through `db.rs`.
//!
//! The store holds no plaintext customer value: customers arrive sealed by the vault and
//! leave sealed. On SQLite secure delete is on, so a deleted customer's wrapped key is
//! overwritten.

mod db;
mod helpdesk;
mod incident;
mod index_file;
mod ledger;
mod postgres;
mod schema;
mod session;
mod store;

pub use helpdesk::{HelpdeskChange, HelpdeskTicket, HelpdeskUser};
pub use incident::{CustomerReachChange, Deliveries, Exposure, ProtectiveAction, StoredIncident, TimelineEvent};
pub use ledger::{EntryVisitor, SharedLedger, SharedLedgerConfig, StoredLedgerKey, Turn};
pub use postgres::{is_postgres_url, url_password, with_password, without_password};
pub use session::{PendingSignIn, StoredSession};
pub use store::{
    AccessEvent, CustomerRow, Exclusive, OthersAtWork, OutboxItem, SearchHit, Store, StoreError, StoreSnapshot,
    StoredAlert, StoredCustomer,
};
