//! cordon's gateway: the service behind every route of the API, and the one path from a
//! caller to customer data. For each request it gathers the facts (store), asks the policy
//! engine, appends the decision to the audit ledger and waits until it is durable, and only
//! then opens the vault. It speaks neither HTTP nor SQL: the server crate wraps it for HTTP,
//! the simulator calls it in-process.

mod access;
mod admin;
mod analyst;
mod approvals;
mod audit;
mod backup;
mod clock;
mod config;
mod customer_view;
mod datadir;
mod detection;
mod directory_cache;
mod error;
mod health;
mod helpdesk;
mod import;
mod incident;
mod indexer;
mod kek;
pub mod oidc;
mod principal;
mod record;
mod service;
mod session;
mod shared_audit;
mod snapshot;
mod sso;
mod statements;
mod token;

pub use analyst::{VolumeAgainstPeers, replay_json};
pub use audit::{AuditError, AuditFuture, AuditLog, LedgerAudit};
pub use backup::{
    BACKUP_FORMAT, Backup, BackupSummary, Manifest as BackupManifest, ManifestFile, RestoreKeys, Restored,
    check_backup, restore,
};
pub use clock::{Clock, SystemClock};
pub use config::{Config, CustomerViewSettings, IncidentSettings, Limits, OidcSettings, apply_environment};
pub use cordon_ledger::LedgerStats;
pub use customer_view::{
    AccessReason, AccessedBy, CUSTOMER_ACCESSES_PAGE, CustomerAccess, CustomerAccesses, CustomerReceipt, ReceiptCheck,
};
pub use datadir::{CONFIG_FILE, DATABASE_FILE, DataDir, Initialized, LEDGER_DIR, Rotated};
pub use detection::{Replayed, containment};
pub use error::GatewayError;
pub use health::{Healed, Health};
pub use helpdesk::{Delivery, HELPDESK_ACTOR, HelpdeskOutcome, TICKET_PREFIX, parse_utc};
pub use import::{ImportKind, ImportReport, Rejected, import, import_agents};
pub use incident::{
    EvidenceBundle, HIGH_BALANCE_BAND, IncidentSpec, IncidentStatus, PROTECTIVE_ACTIONS, ProtectReport,
    ProtectionStatus, alert_json, incident_json, protect_json, protective_actions_for, risk_board_json,
};
pub use kek::KekHome;
pub use record::REVOKED_TOKEN_POLICY;
pub use service::{Card, Gateway, Revealed, SearchHit, Verified};
pub use session::{
    ConsoleSession, SESSION_CODE_ALPHABET, SESSION_CODE_LENGTH, SESSION_IDLE_MS, SESSION_LIFETIME_MS, SessionReport,
    StartedSession, is_session_code, session_json,
};
pub use shared_audit::SharedAudit;
pub use snapshot::SNAPSHOT_FILE;
pub use sso::{ConsoleClient, SIGN_IN_POLICY};
pub use token::{Claims, SignIn, TokenError, TokenKey, TokenRole};
