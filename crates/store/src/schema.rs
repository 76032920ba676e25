//! The SQLite schema, applied on open. `user_version` records which version a file has.

pub const SCHEMA_VERSION: i64 = 1;

pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS customers (
    id TEXT PRIMARY KEY,
    kek_id TEXT NOT NULL,
    -- NULL once the customer is deleted: without its data key the sealed fields are noise.
    wrapped_key BLOB,
    sealed BLOB,
    canary INTEGER NOT NULL DEFAULT 0,
    -- The customer's blind-index rows (kind code and digest, repeated), so that replacing or
    -- deleting a customer removes exactly those rows without a second index to keep.
    search_digests BLOB,
    deleted_at INTEGER,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS search_index (
    kind TEXT NOT NULL,
    digest BLOB NOT NULL,
    customer_id TEXT NOT NULL,
    PRIMARY KEY (kind, digest, customer_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    team TEXT NOT NULL,
    site TEXT NOT NULL,
    employer TEXT NOT NULL,
    shift_start INTEGER NOT NULL,
    shift_end INTEGER NOT NULL,
    role TEXT NOT NULL,
    status TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tickets (
    id TEXT PRIMARY KEY,
    requester TEXT NOT NULL,
    category TEXT NOT NULL,
    status TEXT NOT NULL,
    assignee TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tickets_by_assignee ON tickets (assignee, status);
CREATE INDEX IF NOT EXISTS tickets_by_requester ON tickets (requester, assignee);
CREATE TABLE IF NOT EXISTS approvals (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    requester TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    status TEXT NOT NULL,
    approver TEXT,
    created_at INTEGER NOT NULL,
    decided_at INTEGER,
    expires_at INTEGER
);
CREATE INDEX IF NOT EXISTS approvals_in_force ON approvals (requester, customer_id, kind, status);
"#;

/// The access index lives in its own file: its steady stream of inserts would otherwise
/// invalidate the page caches of the connections that read customers and the directory.
pub const INDEX_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS access_events (
    ledger_index INTEGER PRIMARY KEY,
    time INTEGER NOT NULL,
    agent_id TEXT NOT NULL,
    customer_id TEXT,
    ticket_id TEXT,
    action TEXT NOT NULL,
    fields TEXT NOT NULL,
    allowed INTEGER NOT NULL,
    policies TEXT NOT NULL,
    request_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS access_events_by_customer ON access_events (customer_id, ledger_index);
"#;
