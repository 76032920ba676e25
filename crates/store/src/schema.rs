//! The schemas: SQLite's, applied on open (`user_version` records which version a file has),
//! and PostgreSQL's, as numbered migrations.

pub const SCHEMA_VERSION: i64 = 1;

pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- Counts kept in the same transactions as the rows they count: counting a million customers
-- from cold pages took 30 ms of every incident scope.
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
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
CREATE INDEX IF NOT EXISTS customers_deleted ON customers (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS search_index (
    kind TEXT NOT NULL,
    digest BLOB NOT NULL,
    customer_id TEXT NOT NULL,
    PRIMARY KEY (kind, digest, customer_id)
) WITHOUT ROWID;
-- Customers whose match-only blind-index rows (full name, masked renderings: incident
-- response's) are still to be written from their `search_digests`, one row per write of
-- customers (their ids, each a big-endian u16 length and the bytes): an import writes the
-- agents' search rows only, and idle moments or the first attribution write these (five
-- random B-tree inserts per customer had made a million-customer import 36% slower; a row
-- per customer here still cost 7%).
CREATE TABLE IF NOT EXISTS match_pending (
    seq INTEGER PRIMARY KEY,
    customers BLOB NOT NULL
);
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
    opened_by TEXT,
    assigned_by TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tickets_by_assignee ON tickets (assignee, status);
CREATE INDEX IF NOT EXISTS tickets_by_requester ON tickets (requester, assignee);
-- Revoked tokens by id, kept until they would have expired anyway.
CREATE TABLE IF NOT EXISTS revoked_tokens (
    jti TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER NOT NULL
);
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
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    agent TEXT NOT NULL,
    level TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    ledger_index INTEGER NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    decided_by TEXT,
    decided_at_ms INTEGER
);
CREATE INDEX IF NOT EXISTS alerts_by_status ON alerts (status, id);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    body TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_ms INTEGER NOT NULL,
    last_error TEXT,
    delivered_at_ms INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (delivered_at_ms, next_attempt_ms);
CREATE INDEX IF NOT EXISTS outbox_by_topic ON outbox (topic, delivered_at_ms, id);
-- Incidents: the responder's record (title, suspects, window, the public-disclosure status as
-- JSON) beside the ledger entry that opened it. Titles and status notes are free text and so
-- stay here, never in the ledger.
CREATE TABLE IF NOT EXISTS incidents (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    opened_at_ms INTEGER NOT NULL,
    aware_at_ms INTEGER NOT NULL,
    opened_by TEXT NOT NULL,
    agents TEXT NOT NULL,
    since_ms INTEGER,
    until_ms INTEGER,
    status TEXT NOT NULL,
    ledger_index INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS incident_timeline (
    incident_id TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    what TEXT NOT NULL,
    count INTEGER,
    ledger_index INTEGER
);
CREATE INDEX IF NOT EXISTS incident_timeline_by_incident ON incident_timeline (incident_id, time_ms);
-- One row per protective action per customer per incident: the key makes applying twice a
-- no-op, and the outbox row for the exchange goes in the same transaction.
CREATE TABLE IF NOT EXISTS protective_actions (
    incident_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    action TEXT NOT NULL,
    recorded_at_ms INTEGER NOT NULL,
    until_ms INTEGER,
    ledger_index INTEGER NOT NULL,
    PRIMARY KEY (incident_id, customer_id, action)
) WITHOUT ROWID;
-- Console sessions. The cookie holds a secret; only its SHA-256 is kept here. The session's
-- code is what its screens' watermark shows; its start and end are ledger entries
-- (`session.start`, `session.end`, at start_index and end_index), which this row points to.
CREATE TABLE IF NOT EXISTS console_sessions (
    secret_sha256 TEXT PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    subject TEXT NOT NULL,
    role TEXT NOT NULL,
    token_id TEXT NOT NULL,
    csrf TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    start_index INTEGER NOT NULL,
    ended_ms INTEGER,
    end_reason TEXT,
    end_index INTEGER,
    -- How the person signed in at the identity provider (the gateway's JSON), empty for a
    -- session started with cordon's own token.
    sign_in TEXT NOT NULL DEFAULT ''
);
-- Console sign-ins through the identity provider under way, by a hash of their `state`:
-- what the callback must match (the nonce, the PKCE verifier), on whichever gateway the
-- browser comes back to; taken once, and gone after their lifetime.
CREATE TABLE IF NOT EXISTS pending_sign_ins (
    state_sha256 TEXT PRIMARY KEY,
    nonce TEXT NOT NULL,
    verifier TEXT NOT NULL,
    started_ms INTEGER NOT NULL
);
-- The helpdesk's webhook events (Zendesk): each event id seen, kept for twice the replay
-- window, so a redelivered event is applied once.
CREATE TABLE IF NOT EXISTS helpdesk_events (
    id TEXT PRIMARY KEY,
    received_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS helpdesk_events_by_time ON helpdesk_events (received_at);
-- The helpdesk's users as cordon knows them: a customer, an agent, or neither (no plaintext:
-- an email was matched through the blind index or the agent directory when the user event came).
CREATE TABLE IF NOT EXISTS helpdesk_users (
    user_id TEXT PRIMARY KEY,
    customer TEXT,
    agent TEXT
);
-- Each helpdesk ticket's newest applied state (its `updated_at`, Unix seconds), so an older
-- event arriving late does not undo a newer one, who opened it, and the helpdesk user who was
-- its requester (a ticket never moves to another customer).
CREATE TABLE IF NOT EXISTS helpdesk_tickets (
    ticket_id TEXT PRIMARY KEY,
    updated_at INTEGER NOT NULL,
    opened_by_agent INTEGER NOT NULL,
    requester_user TEXT NOT NULL
);
-- Staff email addresses (lower case) from the agent directory's imports, for matching the
-- helpdesk's agents; staff addresses, not customer data.
CREATE TABLE IF NOT EXISTS agent_emails (
    email TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL
);
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
CREATE TABLE IF NOT EXISTS index_meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
-- The exposure index, derived from the ledger (which it has read up to `exposures_through`
-- in index_meta): one row per customer per allowed access that showed that customer
-- something, a search hit's masked name, a masked card, revealed or verified fields.
-- Clustered by agent and time, because scope asks "what did these agents see then".
CREATE TABLE IF NOT EXISTS exposures (
    agent_id TEXT NOT NULL,
    time INTEGER NOT NULL,
    ledger_index INTEGER NOT NULL,
    customer_id TEXT NOT NULL,
    action TEXT NOT NULL,
    fields TEXT NOT NULL,
    PRIMARY KEY (agent_id, time, ledger_index, customer_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS exposures_by_customer ON exposures (customer_id);
-- Which customers each agent has been shown, how (`seen`: the bits of every way, search hit,
-- card, which fields revealed, as attribution's null model reads them), and how many:
-- attribution's reach.
CREATE TABLE IF NOT EXISTS agent_reach (
    agent_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    seen INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (agent_id, customer_id)
) WITHOUT ROWID;
-- Every change to agent_reach, in order: the pair, and its ways before the change (NULL: the
-- pair is new; 0 is a pair shown in no way attribution reads). Kept for the last two million changes: a cached null model reads the customers
-- changed since it was built, as they were then and as they are now, instead of reading all
-- of agent_reach again.
CREATE TABLE IF NOT EXISTS reach_log (
    seq INTEGER PRIMARY KEY,
    agent_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    before INTEGER
);
CREATE TABLE IF NOT EXISTS agent_volume (
    agent_id TEXT PRIMARY KEY,
    customers INTEGER NOT NULL
);
"#;

/// The staging tables of a blind-index rebuild ([`crate::Store::stage_search_entries`]).
pub(crate) fn staged_search_tables(dialect: crate::db::Dialect) -> &'static str {
    dialect.pick(
        "CREATE TABLE IF NOT EXISTS search_index_next (
             kind TEXT NOT NULL, digest BLOB NOT NULL, customer_id TEXT NOT NULL,
             PRIMARY KEY (kind, digest, customer_id)) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS search_digests_next (customer_id TEXT PRIMARY KEY, digests BLOB NOT NULL);",
        "CREATE TABLE IF NOT EXISTS search_index_next (
             kind TEXT NOT NULL, digest BYTEA NOT NULL, customer_id TEXT NOT NULL,
             PRIMARY KEY (kind, digest, customer_id));
         CREATE TABLE IF NOT EXISTS search_digests_next (customer_id TEXT PRIMARY KEY, digests BYTEA NOT NULL);",
    )
}

/// PostgreSQL's migrations, in order: each version is applied once, in a transaction of its
/// own, and recorded in `schema_migrations`. A released migration is never edited; a change
/// is a new one. The tables are SQLite's (above, one database for both of its files), with
/// PostgreSQL's types: BIGINT for every integer, BYTEA for bytes, sequences for row order.
pub(crate) const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "the store: customers, directory, tickets, approvals, alerts, outbox, incidents, sessions, helpdesk, access and exposure indexes",
        r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
CREATE TABLE customers (
    id TEXT PRIMARY KEY,
    kek_id TEXT NOT NULL,
    wrapped_key BYTEA,
    sealed BYTEA,
    canary BIGINT NOT NULL DEFAULT 0,
    search_digests BYTEA,
    deleted_at BIGINT,
    updated_at BIGINT NOT NULL
);
CREATE INDEX customers_deleted ON customers (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE TABLE search_index (
    kind TEXT NOT NULL,
    digest BYTEA NOT NULL,
    customer_id TEXT NOT NULL,
    PRIMARY KEY (kind, digest, customer_id)
);
CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    team TEXT NOT NULL,
    site TEXT NOT NULL,
    employer TEXT NOT NULL,
    shift_start BIGINT NOT NULL,
    shift_end BIGINT NOT NULL,
    role TEXT NOT NULL,
    status TEXT NOT NULL
);
CREATE TABLE tickets (
    id TEXT PRIMARY KEY,
    requester TEXT NOT NULL,
    category TEXT NOT NULL,
    status TEXT NOT NULL,
    assignee TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX tickets_by_assignee ON tickets (assignee, status);
CREATE INDEX tickets_by_requester ON tickets (requester, assignee);
CREATE TABLE revoked_tokens (jti TEXT PRIMARY KEY, expires_at BIGINT NOT NULL, revoked_at BIGINT NOT NULL);
CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    requester TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    status TEXT NOT NULL,
    approver TEXT,
    created_at BIGINT NOT NULL,
    decided_at BIGINT,
    expires_at BIGINT
);
CREATE INDEX approvals_in_force ON approvals (requester, customer_id, kind, status);
CREATE TABLE alerts (
    id BIGINT PRIMARY KEY,
    agent TEXT NOT NULL,
    level TEXT NOT NULL,
    time_ms BIGINT NOT NULL,
    ledger_index BIGINT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    decided_by TEXT,
    decided_at_ms BIGINT
);
CREATE INDEX alerts_by_status ON alerts (status, id);
CREATE TABLE outbox (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic TEXT NOT NULL,
    body TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_ms BIGINT NOT NULL,
    last_error TEXT,
    delivered_at_ms BIGINT
);
CREATE INDEX outbox_due ON outbox (delivered_at_ms, next_attempt_ms);
CREATE INDEX outbox_by_topic ON outbox (topic, delivered_at_ms, id);
CREATE TABLE incidents (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    opened_at_ms BIGINT NOT NULL,
    aware_at_ms BIGINT NOT NULL,
    opened_by TEXT NOT NULL,
    agents TEXT NOT NULL,
    since_ms BIGINT,
    until_ms BIGINT,
    status TEXT NOT NULL,
    ledger_index BIGINT NOT NULL
);
CREATE TABLE incident_timeline (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id TEXT NOT NULL,
    time_ms BIGINT NOT NULL,
    kind TEXT NOT NULL,
    what TEXT NOT NULL,
    count BIGINT,
    ledger_index BIGINT
);
CREATE INDEX incident_timeline_by_incident ON incident_timeline (incident_id, time_ms);
CREATE TABLE protective_actions (
    incident_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    action TEXT NOT NULL,
    recorded_at_ms BIGINT NOT NULL,
    until_ms BIGINT,
    ledger_index BIGINT NOT NULL,
    PRIMARY KEY (incident_id, customer_id, action)
);
CREATE TABLE console_sessions (
    secret_sha256 TEXT PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    subject TEXT NOT NULL,
    role TEXT NOT NULL,
    token_id TEXT NOT NULL,
    csrf TEXT NOT NULL,
    started_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    start_index BIGINT NOT NULL,
    ended_ms BIGINT,
    end_reason TEXT,
    end_index BIGINT,
    sign_in TEXT NOT NULL DEFAULT ''
);
CREATE TABLE helpdesk_events (id TEXT PRIMARY KEY, received_at BIGINT NOT NULL);
CREATE INDEX helpdesk_events_by_time ON helpdesk_events (received_at);
CREATE TABLE helpdesk_users (user_id TEXT PRIMARY KEY, customer TEXT, agent TEXT);
CREATE TABLE helpdesk_tickets (
    ticket_id TEXT PRIMARY KEY,
    updated_at BIGINT NOT NULL,
    opened_by_agent BIGINT NOT NULL,
    requester_user TEXT NOT NULL
);
CREATE TABLE agent_emails (email TEXT PRIMARY KEY, agent_id TEXT NOT NULL);

CREATE TABLE access_events (
    ledger_index BIGINT PRIMARY KEY,
    time BIGINT NOT NULL,
    agent_id TEXT NOT NULL,
    customer_id TEXT,
    ticket_id TEXT,
    action TEXT NOT NULL,
    fields TEXT NOT NULL,
    allowed BIGINT NOT NULL,
    policies TEXT NOT NULL,
    request_id TEXT NOT NULL
);
CREATE INDEX access_events_by_customer ON access_events (customer_id, ledger_index);
CREATE TABLE index_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
CREATE TABLE exposures (
    agent_id TEXT NOT NULL,
    time BIGINT NOT NULL,
    ledger_index BIGINT NOT NULL,
    customer_id TEXT NOT NULL,
    action TEXT NOT NULL,
    fields TEXT NOT NULL,
    PRIMARY KEY (agent_id, time, ledger_index, customer_id)
);
CREATE INDEX exposures_by_customer ON exposures (customer_id);
CREATE TABLE agent_reach (
    agent_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    seen BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (agent_id, customer_id)
);
CREATE TABLE reach_log (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    before BIGINT
);
CREATE TABLE agent_volume (agent_id TEXT PRIMARY KEY, customers BIGINT NOT NULL);
"#,
    ),
    (
        2,
        "the audit ledger sequenced here: entries, the sequence, tiles, the checkpoint, the signing key wrapped by the KEK",
        r#"
CREATE TABLE ledger_sequence (id BIGINT PRIMARY KEY CHECK (id = 0), next BIGINT NOT NULL);
INSERT INTO ledger_sequence (id, next) VALUES (0, 0);
CREATE TABLE ledger_entries (idx BIGINT PRIMARY KEY, data BYTEA NOT NULL);
-- Hash tiles of the C2SP tlog-tiles layout: a partial tile grows in place (its width with
-- it) until it is full; a tile's first hashes never change.
CREATE TABLE ledger_tiles (
    level BIGINT NOT NULL,
    idx BIGINT NOT NULL,
    width BIGINT NOT NULL,
    hashes BYTEA NOT NULL,
    PRIMARY KEY (level, idx)
);
CREATE TABLE ledger_checkpoint (id BIGINT PRIMARY KEY CHECK (id = 0), size BIGINT NOT NULL, note TEXT NOT NULL);
CREATE TABLE ledger_key (
    id BIGINT PRIMARY KEY CHECK (id = 0),
    origin TEXT NOT NULL,
    verifier TEXT NOT NULL,
    kek_id TEXT NOT NULL,
    wrapped_signing_key BYTEA NOT NULL
);
"#,
    ),
    (
        3,
        "console sign-ins through the identity provider under way, shared by every gateway",
        r#"
CREATE TABLE pending_sign_ins (
    state_sha256 TEXT PRIMARY KEY,
    nonce TEXT NOT NULL,
    verifier TEXT NOT NULL,
    started_ms BIGINT NOT NULL
);
"#,
    ),
    (
        4,
        "tickets say who opened them for the customer and who put them in the assignee's queue",
        r#"
ALTER TABLE tickets ADD COLUMN opened_by TEXT;
ALTER TABLE tickets ADD COLUMN assigned_by TEXT;
"#,
    ),
    (
        5,
        "customers whose match-only search rows are still to be written after an import (by a gateway's idle rounds or the first attribution)",
        r#"
CREATE TABLE match_pending (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, customers BYTEA NOT NULL);
"#,
    ),
];

/// Columns SQLite's tables gained after they were first made (`CREATE TABLE IF NOT EXISTS`
/// leaves an existing table as it was): added on open where missing.
pub const SQLITE_ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("console_sessions", "sign_in", "TEXT NOT NULL DEFAULT ''"),
    ("tickets", "opened_by", "TEXT"),
    ("tickets", "assigned_by", "TEXT"),
];
