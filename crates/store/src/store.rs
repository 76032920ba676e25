//! The store: one writer connection and a few readers, each behind its own lock, on either
//! backend (see [`crate::db`]). On SQLite, WAL mode lets the readers run while the writer
//! commits; on PostgreSQL every connection is the server's to schedule, and several gateways
//! share one database.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use cordon_directory::{Agent, AgentStatus, Approval, ApprovalKind, ApprovalStatus, Shift, Ticket};
use cordon_vault::{Digest, SealedCustomer, SealedRecord, SearchKey};
use rusqlite::Connection;

use crate::db::{Conn, DbError, Dialect, Row, Sql, values};
use crate::schema::{INDEX_SCHEMA, SCHEMA, SCHEMA_VERSION, SQLITE_ADDED_COLUMNS};

const READERS: usize = 2;
/// Readers of a PostgreSQL store: the reveal path reads customers, tickets and approvals on
/// every request, and each read waits a round trip to the server.
const POSTGRES_READERS: usize = 8;

/// The counter of customers not crypto-shredded.
pub(crate) const LIVE_CUSTOMERS: &str = "live_customers";
/// `index_meta` key: the ledger index the access index has read up to.
const ACCESS_THROUGH: &str = "access_through";
const ADD_TO_COUNTER: &str = "UPDATE counters SET value = value + ?2 WHERE name = ?1";
/// `counters` name: customer records written or deleted, ever (what attribution's cached
/// census of balance bands is checked against).
pub(crate) const CUSTOMER_WRITES: &str = "customer_writes";
/// Adds `?2` to counter `?1`, creating it.
const BUMP_COUNTER: &str =
    "INSERT INTO counters (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET value = counters.value + ?2";

const CUSTOMER_BY_ID: &str = "SELECT kek_id, wrapped_key, sealed, canary FROM customers WHERE id = ?1";

/// A customer row: the key-encryption key's id, the wrapped data key and the sealed record
/// (both gone once crypto-shredded), and whether it is a canary.
type CustomerColumns = (String, Option<Vec<u8>>, Option<Vec<u8>>, bool);

fn customer_columns(row: &Row<'_>) -> Result<CustomerColumns, DbError> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get::<i64>(3)? != 0))
}

/// Queues a message of topic `?1` with body `?2`, due at `?3`, for the webhook; written in
/// the transaction of what it announces, so a restart finds every message still owed.
pub(crate) const QUEUE_OUTBOX: &str =
    "INSERT INTO outbox (topic, body, attempts, next_attempt_ms) VALUES (?1, ?2, 0, ?3)";

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("database `{database}`: {action}: {message}")]
    Sql { database: String, action: &'static str, message: String },
    /// The database could not be reached (PostgreSQL stopped, or cut off from this process):
    /// nothing was read or written; the connection is opened again on the next use.
    #[error("database `{database}` is unreachable: {action}: {message}")]
    Unavailable { database: String, action: &'static str, message: String },
    #[error("database `{database}` holds a damaged row: {reason}")]
    Corrupt { database: String, reason: String },
}

impl StoreError {
    /// Whether the database could not be reached, rather than refusing a statement.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

/// A customer to write: sealed fields and their blind-index entries.
#[derive(Debug, Clone)]
pub struct CustomerRow {
    pub id: String,
    pub sealed: SealedCustomer,
    pub index: Vec<(SearchKey, Digest)>,
    pub canary: bool,
}

/// The database as one read transaction sees it (see [`Store::begin_snapshot`]).
pub struct StoreSnapshot {
    connection: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for StoreSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreSnapshot({})", self.path.display())
    }
}

impl StoreSnapshot {
    /// Copies the state the snapshot fixed to the new file `to` (mode 0600), through
    /// SQLite's online backup API, and syncs it. The access index (`cordon-access.sqlite`)
    /// is not copied: it is a function of the ledger, rebuilt from it.
    pub fn copy_to(self, to: &Path) -> Result<(), StoreError> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let database = to.display().to_string();
        // Created here, owner-only, so the copy is never readable by anyone else, even briefly.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(to)
            .map_err(io_error(to, "create"))?;
        let mut copy = Connection::open(to).map_err(sql_error(&database, "open the copy"))?;
        {
            let backup = rusqlite::backup::Backup::new(&self.connection, &mut copy)
                .map_err(sql_error(&database, "start the copy"))?;
            // All pages in one step, read through the snapshot's open transaction.
            match backup.step(-1).map_err(sql_error(&database, "copy"))? {
                rusqlite::backup::StepResult::Done => {}
                other => {
                    return Err(StoreError::Sql {
                        database,
                        action: "copy",
                        message: format!("the online backup stopped before the end ({other:?})"),
                    });
                }
            }
        }
        copy.execute_batch("PRAGMA journal_mode = DELETE;").map_err(sql_error(&database, "settle the copy"))?;
        drop(copy);
        std::fs::File::open(to).and_then(|file| file.sync_all()).map_err(io_error(to, "sync"))
    }
}

/// A customer as read back. `sealed` is `None` once the customer has been deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCustomer {
    pub id: String,
    pub sealed: Option<SealedCustomer>,
    pub canary: bool,
}

/// One decision about a customer, indexed for that customer's access history. The ledger
/// entry at `ledger_index` is the authoritative record; this is a lookup table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessEvent {
    pub ledger_index: u64,
    pub time: i64,
    pub agent_id: String,
    pub customer_id: Option<String>,
    pub ticket_id: Option<String>,
    pub action: String,
    pub fields: Vec<String>,
    pub allowed: bool,
    pub policies: Vec<String>,
    pub request_id: String,
}

/// A search that showed a customer among its hits (its masked name), from the exposure index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchHit {
    pub ledger_index: u64,
    pub time_ms: i64,
    pub agent_id: String,
    /// The customers the search showed in all, this one included.
    pub customers_shown: u64,
}

/// An alert as analysts work it. The ledger's alert entry (`body`, its JSON) is the record;
/// this row adds the analysts' decision.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAlert {
    pub id: u64,
    pub agent: String,
    pub level: String,
    pub time_ms: i64,
    pub ledger_index: u64,
    pub body: String,
    /// `open`, `dismissed` or `confirmed`.
    pub status: String,
    pub reason: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at_ms: Option<i64>,
}

/// A message waiting for the webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    pub id: u64,
    pub topic: String,
    pub body: String,
    pub attempts: u32,
}

/// A name held exclusively across processes ([`Store::hold_exclusive`]): released when
/// dropped (its session ends).
pub struct Exclusive(Option<Conn>);

impl std::fmt::Debug for Exclusive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Exclusive({})", if self.0.is_some() { "held" } else { "one process" })
    }
}

pub struct Store {
    /// What errors name: the SQLite file, or the PostgreSQL URL without its password.
    pub(crate) database: String,
    backend: Backend,
    writer: Mutex<Conn>,
    readers: Vec<Mutex<Conn>>,
    next_reader: AtomicUsize,
    /// The access index and the exposure index: on SQLite in `<name>-access.sqlite` beside
    /// the main file, on PostgreSQL tables of the same database on a connection of their own.
    pub(crate) index: Mutex<Conn>,
    /// On SQLite, the index file's open marker (index_file.rs), cleared by the last to close.
    index_marker: Option<crate::index_file::OpenMarker>,
}

impl Drop for Store {
    /// The last store to close the index file makes it durable and clears its marker
    /// (index_file.rs); it closes the index's connection to do so. The marker's lock is held
    /// until the field drops, after this.
    fn drop(&mut self) {
        let Some(marker) = &mut self.index_marker else { return };
        let Conn::Sqlite(connection) = self.index.get_mut().unwrap_or_else(PoisonError::into_inner) else { return };
        let Ok(placeholder) = Connection::open_in_memory() else { return };
        marker.close(std::mem::replace(connection, placeholder));
    }
}

/// Where the store lives, and how to open a connection to it again.
enum Backend {
    Sqlite(PathBuf),
    Postgres(Box<crate::postgres::Server>),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.database)
    }
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and applies the schema.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let database = path.display().to_string();
        let writer = connect(path)?;
        // Bulk writes checkpoint the WAL into the database less often (the default is every
        // 1,000 pages); readers are unaffected.
        // The writer also gets a larger page cache: a million customers' search index is
        // about 300 MB of randomly placed digests, and inserts into it missed the default cache.
        writer
            .execute_batch("PRAGMA wal_autocheckpoint = 10000; PRAGMA cache_size = -262144;")
            .map_err(sql_error(&database, "configure"))?;
        let version: i64 = writer
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(sql_error(&database, "read the schema version"))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Corrupt {
                database,
                reason: format!("schema version {version} is newer than this cordon understands ({SCHEMA_VERSION})"),
            });
        }
        writer.execute_batch(SCHEMA).map_err(sql_error(&database, "apply the schema"))?;
        // Columns added since a table was first made (CREATE TABLE IF NOT EXISTS leaves an
        // existing table as it was).
        for (table, column, definition) in SQLITE_ADDED_COLUMNS {
            let present = writer
                .prepare(&format!("SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?1"))
                .and_then(|mut statement| statement.exists([column]))
                .map_err(sql_error(&database, "read the schema"))?;
            if !present {
                writer
                    .execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {definition}"))
                    .map_err(sql_error(&database, "add a column"))?;
            }
        }
        let mut writer = Conn::Sqlite(writer);
        count_live_customers(&mut writer).map_err(db_error(&database, "count customers"))?;
        writer
            .batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
            .map_err(db_error(&database, "record the schema version"))?;
        let readers = (0..READERS)
            .map(|_| connect(path).map(|reader| Mutex::new(Conn::Sqlite(reader))))
            .collect::<Result<_, _>>()?;
        let index_path = index_path(path);
        let index_name = index_path.display().to_string();
        // Written without waiting for the disk, and rebuilt after a machine stop (index_file.rs).
        let prepared = crate::index_file::prepare(&index_path, crate::index_file::boot_id().as_deref())?;
        if prepared.removed {
            tracing::warn!(
                index = %index_name,
                "the machine stopped while the access index was open; it is written again from the ledger"
            );
        }
        let index = connect(&index_path)?;
        if prepared.marker.is_some() {
            index.execute_batch("PRAGMA synchronous = OFF;").map_err(sql_error(&index_name, "configure"))?;
        }
        // The exposure index of ten million ledger entries is a few GB of B-trees written in
        // customer order as well as agent order; with the default cache, building it spent
        // most of its time re-reading pages it had just evicted.
        index
            .execute_batch("PRAGMA wal_autocheckpoint = 10000; PRAGMA cache_size = -262144;")
            .map_err(sql_error(&index_name, "configure"))?;
        forget_reach_without_ways(&index).map_err(sql_error(&index_name, "upgrade the exposure index"))?;
        forget_reach_log_without_before(&index).map_err(sql_error(&index_name, "upgrade the exposure index"))?;
        index.execute_batch(INDEX_SCHEMA).map_err(sql_error(&index_name, "apply the index schema"))?;
        Ok(Store {
            database,
            backend: Backend::Sqlite(path.to_path_buf()),
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
            index: Mutex::new(Conn::Sqlite(index)),
            index_marker: prepared.marker,
        })
    }

    /// Opens the PostgreSQL store at `url` (`postgres://...`), applying any migration it
    /// lacks first (see [`Store::migrate_postgres`]).
    pub fn open_postgres(url: &str) -> Result<Store, StoreError> {
        let (config, database) = crate::postgres::config(url)?;
        crate::postgres::migrate(&config, &database)?;
        let connect = || Conn::postgres(&config).map(Mutex::new).map_err(db_error(&database, "connect"));
        let writer = connect()?;
        let readers = (0..POSTGRES_READERS).map(|_| connect()).collect::<Result<_, _>>()?;
        let index = connect()?;
        Ok(Store {
            database,
            backend: Backend::Postgres(Box::new(config)),
            writer,
            readers,
            next_reader: AtomicUsize::new(0),
            index,
            index_marker: None,
        })
    }

    /// Applies to the PostgreSQL store at `url` the migrations it lacks, in order, in one
    /// transaction, under a lock that makes gateways started together wait for one another;
    /// the versions applied now (none when it was up to date).
    pub fn migrate_postgres(url: &str) -> Result<Vec<i64>, StoreError> {
        let (config, database) = crate::postgres::config(url)?;
        crate::postgres::migrate(&config, &database)
    }

    /// The SQLite file, or `None` for a PostgreSQL store.
    pub fn path(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Sqlite(path) => Some(path),
            Backend::Postgres(_) => None,
        }
    }

    /// What the store's errors name it by: its file, or its URL without the password.
    pub fn name(&self) -> &str {
        &self.database
    }

    /// A connection, opened again first if it was lost (PostgreSQL restarted or was cut off);
    /// an error if it cannot be.
    fn take<'s>(&self, slot: &'s Mutex<Conn>) -> Result<MutexGuard<'s, Conn>, StoreError> {
        let mut connection = slot.lock().unwrap_or_else(PoisonError::into_inner);
        if connection.is_lost()
            && let Backend::Postgres(config) = &self.backend
        {
            *connection = Conn::postgres(config).map_err(self.error("connect again"))?;
        }
        Ok(connection)
    }

    /// Holds `name` exclusively across every process on this store until the guard is
    /// dropped (a PostgreSQL advisory lock on a connection of its own; waits for another
    /// holder). On SQLite one process owns the store, so there is nothing to hold: the
    /// caller's own lock suffices.
    pub fn hold_exclusive(&self, name: &str) -> Result<Exclusive, StoreError> {
        let Backend::Postgres(config) = &self.backend else { return Ok(Exclusive(None)) };
        let mut connection = Conn::postgres(config).map_err(self.error("connect"))?;
        connection
            .query_row("SELECT pg_advisory_lock(hashtextextended(?1, 0))::text", values![name], |_| Ok(()))
            .map_err(self.error("take an exclusive lock"))?;
        Ok(Exclusive(Some(connection)))
    }

    /// Opens every connection of a PostgreSQL store again: after the server was unreachable,
    /// each pooled connection would otherwise fail its next statement once before it is
    /// replaced. Nothing on SQLite.
    pub fn reconnect_all(&self) -> Result<(), StoreError> {
        let Backend::Postgres(config) = &self.backend else { return Ok(()) };
        // A connection in use now is left to its user (this may be its own thread: waiting for
        // it would never end); a lost one is replaced when it is next taken.
        for slot in std::iter::once(&self.writer).chain(&self.readers).chain(std::iter::once(&self.index)) {
            if let Ok(mut connection) = slot.try_lock() {
                *connection = Conn::postgres(config).map_err(self.error("connect again"))?;
            }
        }
        Ok(())
    }

    pub(crate) fn write(&self) -> Result<MutexGuard<'_, Conn>, StoreError> {
        self.take(&self.writer)
    }

    pub(crate) fn read(&self) -> Result<MutexGuard<'_, Conn>, StoreError> {
        let slot = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len().max(1);
        match self.readers.get(slot) {
            Some(reader) => self.take(reader),
            None => self.write(),
        }
    }

    pub(crate) fn index(&self) -> Result<MutexGuard<'_, Conn>, StoreError> {
        self.take(&self.index)
    }

    /// Fixes the database's state now, for a copy taken afterwards: a connection of its own
    /// with a read transaction open, which writers do not disturb (WAL). Cheap: the copy
    /// itself ([`StoreSnapshot::copy_to`]) is what takes time, and writers go on meanwhile.
    /// SQLite only: a PostgreSQL store is backed up with PostgreSQL's own tools.
    pub fn begin_snapshot(&self) -> Result<StoreSnapshot, StoreError> {
        let Backend::Sqlite(path) = &self.backend else {
            return Err(StoreError::Sql {
                database: self.database.clone(),
                action: "begin a snapshot",
                message: "a PostgreSQL store is backed up with pg_dump or a base backup (docs/DEPLOY.md), not by cordon backup".into(),
            });
        };
        let connection = connect(path)?;
        connection
            .execute_batch("BEGIN; SELECT count(*) FROM sqlite_master;")
            .map_err(sql_error(&self.database, "begin a snapshot"))?;
        Ok(StoreSnapshot { connection, path: path.clone() })
    }

    /// Runs a single-row query on a reader connection; `None` when no row matches.
    pub(crate) fn query_one<T>(
        &self,
        sql: &str,
        values: &[&dyn crate::db::Value],
        action: &'static str,
        row: impl FnOnce(&Row<'_>) -> Result<T, DbError>,
    ) -> Result<Option<T>, StoreError> {
        self.read()?.query_row(sql, values, row).map_err(self.error(action))
    }

    pub(crate) fn error(&self, action: &'static str) -> impl Fn(DbError) -> StoreError + '_ {
        db_error(&self.database, action)
    }

    pub(crate) fn dialect(&self) -> Dialect {
        match self.backend {
            Backend::Sqlite(_) => Dialect::Sqlite,
            Backend::Postgres(_) => Dialect::Postgres,
        }
    }

    // ---- meta ----

    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.query_one("SELECT value FROM meta WHERE key = ?1", values![key], "read a setting", |row| row.get(0))
    }

    /// The setting `key`, set to `value` first if it has none: of several processes doing
    /// this at once, the first one's value is every one's answer.
    pub fn meta_or_set(&self, key: &str, value: &str) -> Result<String, StoreError> {
        self.write()?
            .execute("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING", values![key, value])
            .map_err(self.error("write a setting"))?;
        Ok(self.meta(key)?.unwrap_or_else(|| value.to_string()))
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.write()?
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                values![key, value],
            )
            .map(drop)
            .map_err(self.error("write a setting"))
    }

    // ---- customers ----

    /// Writes customers in one transaction, replacing any with the same id (re-imports are
    /// safe) together with their agents' search entries; their match-only entries are listed
    /// in `search_digests` and written by [`Store::index_pending_matches`].
    pub fn upsert_customers(&self, rows: &[CustomerRow], now: i64) -> Result<(), StoreError> {
        let mut connection = self.write()?;
        let dialect = connection.dialect();
        let mut transaction = connection.transaction().map_err(self.error("begin a transaction"))?;
        {
            const OLD_DIGESTS: usize = 0;
            const REMOVE_INDEX: usize = 1;
            const UPSERT: usize = 2;
            const ADD_INDEX: usize = 3;
            let mut statements = transaction
                .prepare(&[
                    // Locked on PostgreSQL, where another gateway may write the same customer at
                    // once: its old search entries are the ones removed.
                    dialect.pick(
                        "SELECT search_digests FROM customers WHERE id = ?1",
                        "SELECT search_digests FROM customers WHERE id = ?1 FOR UPDATE",
                    ),
                    "DELETE FROM search_index WHERE kind = ?1 AND digest = ?2 AND customer_id = ?3",
                    "INSERT INTO customers (id, kek_id, wrapped_key, sealed, canary, search_digests, deleted_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7)
                     ON CONFLICT (id) DO UPDATE SET kek_id = ?2, wrapped_key = ?3, sealed = ?4, canary = ?5,
                        search_digests = ?6, deleted_at = NULL, updated_at = ?7",
                    "INSERT INTO search_index (kind, digest, customer_id) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                ])
                .map_err(self.error("prepare the customer upsert"))?;
            // New search rows go in after the customers, in key order: randomly placed
            // digests inserted in order touch each index page once, not once per row.
            let mut new_index: Vec<(&'static str, &Digest, &str)> = Vec::with_capacity(rows.len() * 4);
            let mut match_pending: Vec<&str> = Vec::new();
            let mut newly_live = 0i64;
            for row in rows {
                let old: Option<Option<Vec<u8>>> = statements
                    .query_row(OLD_DIGESTS, values![row.id], |found| found.get(0))
                    .map_err(self.error("read a customer"))?;
                // New, or crypto-shredded before (its digests are gone): live from now on.
                if !matches!(old, Some(Some(_))) {
                    newly_live += 1;
                }
                for (kind, digest) in decode_digests(old.flatten().as_deref().unwrap_or(&[])) {
                    statements
                        .execute(REMOVE_INDEX, values![kind.name(), digest.as_slice(), row.id])
                        .map_err(self.error("update the search index"))?;
                }
                statements
                    .execute(
                        UPSERT,
                        values![
                            row.id,
                            row.sealed.kek_id,
                            row.sealed.wrapped_key,
                            row.sealed.record.encode(),
                            i64::from(row.canary),
                            encode_digests(&row.index),
                            now
                        ],
                    )
                    .map_err(self.error("write a customer"))?;
                for (kind, digest) in &row.index {
                    if SearchKey::AGENT.contains(kind) {
                        new_index.push((kind.name(), digest, row.id.as_str()));
                    } else if match_pending.last() != Some(&row.id.as_str()) {
                        match_pending.push(row.id.as_str());
                    }
                }
            }
            new_index.sort_unstable();
            for (kind, digest, id) in new_index {
                statements
                    .execute(ADD_INDEX, values![kind, digest.as_slice(), id])
                    .map_err(self.error("update the search index"))?;
            }
            drop(statements);
            if !match_pending.is_empty() {
                transaction
                    .execute("INSERT INTO match_pending (customers) VALUES (?1)", values![encode_ids(&match_pending)])
                    .map_err(self.error("update the search index"))?;
            }
            transaction
                .execute(ADD_TO_COUNTER, values![LIVE_CUSTOMERS, newly_live])
                .map_err(self.error("count customers"))?;
            transaction
                .execute(BUMP_COUNTER, values![CUSTOMER_WRITES, rows.len() as i64])
                .map_err(self.error("count customers"))?;
        }
        transaction.commit().map_err(self.error("commit customers"))
    }

    pub fn customer(&self, id: &str) -> Result<Option<StoredCustomer>, StoreError> {
        let row = self.query_one(CUSTOMER_BY_ID, values![id], "read a customer", customer_columns)?;
        row.map(|row| self.stored_customer(id, row)).transpose()
    }

    /// The customers of `ids` that exist, in that order, read in one transaction on one
    /// connection: one lock and one snapshot for all of them, where a loop over `customer`
    /// pays both per id (incident scope reads thousands).
    pub fn customers(&self, ids: &[&str]) -> Result<Vec<StoredCustomer>, StoreError> {
        let mut connection = self.read()?;
        let mut transaction = connection.transaction().map_err(self.error("read customers"))?;
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(row) = transaction
                .query_row(CUSTOMER_BY_ID, values![id], customer_columns)
                .map_err(self.error("read customers"))?
            {
                found.push(self.stored_customer(id, row)?);
            }
        }
        transaction.commit().map_err(self.error("read customers"))?;
        Ok(found)
    }

    /// Live customers after `after` (by id), at most `limit`, in id order: a walk over the
    /// whole base in pages (attribution's census of balance bands).
    pub fn customers_after(&self, after: &str, limit: usize) -> Result<Vec<StoredCustomer>, StoreError> {
        let rows = self
            .read()?
            .query_map(
                "SELECT id, kek_id, wrapped_key, sealed, canary FROM customers
                 WHERE id > ?1 AND deleted_at IS NULL ORDER BY id LIMIT ?2",
                values![after, limit as i64],
                |row| Ok((row.get::<String>(0)?, (row.get(1)?, row.get(2)?, row.get(3)?, row.get::<i64>(4)? != 0))),
            )
            .map_err(self.error("list customers"))?;
        rows.into_iter().map(|(id, columns)| self.stored_customer(&id, columns)).collect()
    }

    fn stored_customer(&self, id: &str, row: CustomerColumns) -> Result<StoredCustomer, StoreError> {
        let (kek_id, wrapped_key, sealed, canary) = row;
        let sealed = match (wrapped_key, sealed) {
            (Some(wrapped_key), Some(sealed)) => {
                let record = SealedRecord::decode(&sealed).map_err(|error| StoreError::Corrupt {
                    database: self.database.clone(),
                    reason: format!("customer `{id}`: {error}"),
                })?;
                Some(SealedCustomer { kek_id, wrapped_key, record })
            }
            _ => None,
        };
        Ok(StoredCustomer { id: id.to_string(), sealed, canary })
    }

    /// Crypto-shreds a customer: the wrapped data key and sealed fields are erased (on SQLite
    /// secure delete overwrites them), the search entries removed; the id stays for the audit
    /// trail.
    pub fn delete_customer(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let mut connection = self.write()?;
        let mut transaction = connection.transaction().map_err(self.error("begin a transaction"))?;
        let digests: Option<Option<Vec<u8>>> = transaction
            .query_row(
                self.dialect().pick(
                    "SELECT search_digests FROM customers WHERE id = ?1",
                    "SELECT search_digests FROM customers WHERE id = ?1 FOR UPDATE",
                ),
                values![id],
                |row| row.get(0),
            )
            .map_err(self.error("read a customer"))?;
        for (kind, digest) in decode_digests(digests.flatten().as_deref().unwrap_or(&[])) {
            transaction
                .execute(
                    "DELETE FROM search_index WHERE kind = ?1 AND digest = ?2 AND customer_id = ?3",
                    values![kind.name(), digest.as_slice(), id],
                )
                .map_err(self.error("delete a customer's search entries"))?;
        }
        let changed = transaction
            .execute(
                "UPDATE customers SET wrapped_key = NULL, sealed = NULL, search_digests = NULL, deleted_at = ?2, updated_at = ?2
                 WHERE id = ?1 AND deleted_at IS NULL",
                values![id, now],
            )
            .map_err(self.error("delete a customer"))?;
        if changed > 0 {
            transaction
                .execute(ADD_TO_COUNTER, values![LIVE_CUSTOMERS, -1i64])
                .map_err(self.error("count customers"))?;
            transaction.execute(BUMP_COUNTER, values![CUSTOMER_WRITES, 1i64]).map_err(self.error("count customers"))?;
        }
        transaction.commit().map_err(self.error("commit a deletion"))?;
        Ok(changed > 0)
    }

    /// Customer ids matching a blind-index digest (exact match only), at most 100: what an
    /// agent's search finds.
    pub fn search(&self, kind: SearchKey, digest: &Digest) -> Result<Vec<String>, StoreError> {
        self.search_up_to(kind, digest, 100)
    }

    /// Customer ids matching a blind-index digest, at most `limit` (incident response reads
    /// every customer consistent with a masked rendering, which can be thousands).
    pub fn search_up_to(&self, kind: SearchKey, digest: &Digest, limit: usize) -> Result<Vec<String>, StoreError> {
        self.read()?
            .query_map(
                "SELECT customer_id FROM search_index WHERE kind = ?1 AND digest = ?2 ORDER BY customer_id LIMIT ?3",
                values![kind.name(), digest.as_slice(), limit as i64],
                |row| row.get(0),
            )
            .map_err(self.error("search"))
    }

    /// Writes the match-only search entries (full names, masked renderings: what incident
    /// response matches a leaked sample on) of customers written since they were last
    /// written, from the digests kept beside each: of the writes pending when it starts (so a
    /// continuing import elsewhere does not keep it going), at most about `customers_max`
    /// customers, in transactions of at most `customers_per_batch`; returns how many it took.
    /// Imports leave this to the server's idle moments and the first attribution: five more
    /// randomly placed rows per customer made a million-customer import 36% slower.
    pub fn index_pending_matches(
        &self,
        customers_max: u64,
        customers_per_batch: usize,
        others: OthersAtWork,
    ) -> Result<u64, StoreError> {
        let through = self
            .query_one("SELECT max(seq) FROM match_pending", values![], "read the match index", |row| {
                row.get::<Option<i64>>(0)
            })?
            .flatten();
        let Some(through) = through else { return Ok(0) };
        let mut taken = 0u64;
        while taken < customers_max {
            let batch = customers_per_batch.min(usize::try_from(customers_max - taken).unwrap_or(usize::MAX)).max(1);
            match self.index_pending_matches_batch(batch, through, others)? {
                Some(took) => taken += took,
                None => break,
            }
        }
        Ok(taken)
    }

    /// One transaction of [`Store::index_pending_matches`]: up to `customers` of the oldest
    /// pending write's (at most `through`); how many it took, or `None` when none is left.
    fn index_pending_matches_batch(
        &self,
        customers: usize,
        through: i64,
        others: OthersAtWork,
    ) -> Result<Option<u64>, StoreError> {
        const DIGESTS: usize = 0;
        const ADD_INDEX: usize = 1;
        let mut connection = self.write()?;
        let dialect = connection.dialect();
        let mut transaction = connection.transaction().map_err(self.error("write the match index"))?;
        // On PostgreSQL another gateway may be writing the same pending row: attribution
        // waits for it (its answer needs those rows), a follower's idle round takes another.
        let lock = match others {
            OthersAtWork::WaitForThem => dialect.pick("", " FOR UPDATE"),
            OthersAtWork::LeaveTheirsToThem => dialect.pick("", " FOR UPDATE SKIP LOCKED"),
        };
        let head = format!("SELECT seq, customers FROM match_pending WHERE seq <= ?1 ORDER BY seq LIMIT 1{lock}");
        let found = transaction
            .query_row(&head, values![through], |row| Ok((row.get::<i64>(0)?, row.get::<Vec<u8>>(1)?)))
            .map_err(self.error("write the match index"))?;
        let Some((seq, ids)) = found else {
            // Waiting for a row another gateway then deleted finds nothing, though later
            // rows may be left.
            let left = others == OthersAtWork::WaitForThem
                && dialect == crate::db::Dialect::Postgres
                && transaction
                    .query_row("SELECT seq FROM match_pending WHERE seq <= ?1 LIMIT 1", values![through], |row| {
                        row.get::<i64>(0)
                    })
                    .map_err(self.error("write the match index"))?
                    .is_some();
            transaction.commit().map_err(self.error("write the match index"))?;
            return Ok(left.then_some(0));
        };
        let ids = decode_ids(&ids);
        let (now, later) = ids.split_at(customers.min(ids.len()));
        let mut skipped: Vec<&str> = Vec::new();
        {
            let mut statements = transaction
                .prepare(&[
                    // A customer row another transaction holds (an import, a rewrap) is
                    // skipped rather than waited for, since waiting could deadlock with an
                    // import that locks its batch in file order; it is listed again, below.
                    dialect.pick(
                        "SELECT search_digests FROM customers WHERE id = ?1",
                        "SELECT search_digests FROM customers WHERE id = ?1 FOR UPDATE SKIP LOCKED",
                    ),
                    "INSERT INTO search_index (kind, digest, customer_id) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                ])
                .map_err(self.error("write the match index"))?;
            let mut rows: Vec<(&'static str, Digest, &str)> = Vec::with_capacity(now.len() * 5);
            for id in now {
                let digests: Option<Option<Vec<u8>>> = statements
                    .query_row(DIGESTS, values![id], |row| row.get(0))
                    .map_err(self.error("write the match index"))?;
                // A customer row is never removed (shredding keeps its id), so on PostgreSQL
                // no row means locked.
                if digests.is_none() && dialect == crate::db::Dialect::Postgres {
                    skipped.push(id);
                    continue;
                }
                // The digests as they are now: a customer replaced since is written as it is
                // (its old rows went with the replacement), a shredded one has none.
                rows.extend(
                    decode_digests(digests.flatten().as_deref().unwrap_or(&[]))
                        .into_iter()
                        .filter(|(kind, _)| !SearchKey::AGENT.contains(kind))
                        .map(|(kind, digest)| (kind.name(), digest, id.as_str())),
                );
            }
            // In key order, as an import writes the agents' rows: each page touched once.
            rows.sort_unstable();
            for (kind, digest, id) in &rows {
                statements
                    .execute(ADD_INDEX, values![kind, digest.as_slice(), id])
                    .map_err(self.error("write the match index"))?;
            }
        }
        if later.is_empty() {
            transaction.execute("DELETE FROM match_pending WHERE seq = ?1", values![seq])
        } else {
            let later: Vec<&str> = later.iter().map(String::as_str).collect();
            transaction
                .execute("UPDATE match_pending SET customers = ?2 WHERE seq = ?1", values![seq, encode_ids(&later)])
        }
        .map_err(self.error("write the match index"))?;
        if !skipped.is_empty() {
            // A pending row of their own, after this pass's last: written by the next pass.
            transaction
                .execute("INSERT INTO match_pending (customers) VALUES (?1)", values![encode_ids(&skipped)])
                .map_err(self.error("write the match index"))?;
        }
        transaction.commit().map_err(self.error("write the match index"))?;
        Ok(Some(now.len() as u64))
    }

    /// Live customers, from the counter every upsert and deletion keeps in its own
    /// transaction: counting the id index each time cost 3 ms warm and 30 ms from cold pages
    /// at a million customers (and filtering on `deleted_at` walked every sealed record).
    pub fn customer_count(&self) -> Result<u64, StoreError> {
        Ok(self
            .query_one(
                "SELECT value FROM counters WHERE name = ?1",
                values![LIVE_CUSTOMERS],
                "count customers",
                |row| row.get::<i64>(0),
            )?
            .unwrap_or(0)
            .max(0) as u64)
    }

    /// Stages customers' search entries under a new blind-index key, beside the live index
    /// (which searches keep using until [`Store::swap_search_index`]). Staging again for a
    /// customer replaces what was staged for it, so a rebuild cut short can run again.
    pub fn stage_search_entries(&self, customers: &[(String, Vec<(SearchKey, Digest)>)]) -> Result<(), StoreError> {
        let mut connection = self.write()?;
        let dialect = connection.dialect();
        let mut transaction = connection.transaction().map_err(self.error("stage search entries"))?;
        transaction.batch(crate::schema::staged_search_tables(dialect)).map_err(self.error("stage search entries"))?;
        for (customer, entries) in customers {
            transaction
                .execute("DELETE FROM search_index_next WHERE customer_id = ?1", values![customer])
                .map_err(self.error("stage search entries"))?;
            for (kind, digest) in entries {
                transaction
                    .execute(
                        "INSERT INTO search_index_next (kind, digest, customer_id) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                        values![kind.name(), digest.as_slice(), customer],
                    )
                    .map_err(self.error("stage search entries"))?;
            }
            transaction
                .execute(
                    "INSERT INTO search_digests_next (customer_id, digests) VALUES (?1, ?2)
                     ON CONFLICT (customer_id) DO UPDATE SET digests = excluded.digests",
                    values![customer, encode_digests(entries)],
                )
                .map_err(self.error("stage search entries"))?;
        }
        transaction.commit().map_err(self.error("stage search entries"))
    }

    /// Makes the staged search entries the live index in one transaction, and records
    /// `meta_key` = `meta_value` (the blind-index key they were made with) in it, so the index
    /// and the name of its key never disagree. Customers deleted meanwhile keep no entries.
    pub fn swap_search_index(&self, meta_key: &str, meta_value: &str) -> Result<u64, StoreError> {
        let mut connection = self.write()?;
        let dialect = connection.dialect();
        let mut transaction = connection.transaction().map_err(self.error("swap the search index"))?;
        transaction.batch(crate::schema::staged_search_tables(dialect)).map_err(self.error("swap the search index"))?;
        transaction
            .batch(
                "DELETE FROM search_index;
                 INSERT INTO search_index (kind, digest, customer_id)
                     SELECT n.kind, n.digest, n.customer_id FROM search_index_next n
                     JOIN customers c ON c.id = n.customer_id AND c.deleted_at IS NULL;
                 UPDATE customers SET search_digests =
                     (SELECT digests FROM search_digests_next WHERE customer_id = customers.id)
                     WHERE deleted_at IS NULL AND id IN (SELECT customer_id FROM search_digests_next);
                 DROP TABLE search_index_next;
                 DROP TABLE search_digests_next;",
            )
            .map_err(self.error("swap the search index"))?;
        let rows = transaction
            .query_row("SELECT count(*) FROM search_index", values![], |row| row.get::<i64>(0))
            .map_err(self.error("swap the search index"))?
            .unwrap_or(0);
        transaction
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                values![meta_key, meta_value],
            )
            .map_err(self.error("swap the search index"))?;
        transaction.commit().map_err(self.error("swap the search index"))?;
        Ok(rows.max(0) as u64)
    }

    /// Live customers after `after` (by id) whose data key is wrapped by a KEK other than
    /// `kek_id`, for rotation in batches.
    pub fn customers_to_rewrap(
        &self,
        kek_id: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<StoredCustomer>, StoreError> {
        let ids: Vec<String> = self
            .read()?
            .query_map(
                "SELECT id FROM customers WHERE id > ?1 AND kek_id != ?2 AND deleted_at IS NULL ORDER BY id LIMIT ?3",
                values![after, kek_id, limit as i64],
                |row| row.get(0),
            )
            .map_err(self.error("list customers to rewrap"))?;
        let mut customers = Vec::with_capacity(ids.len());
        for id in ids {
            customers.extend(self.customer(&id)?);
        }
        Ok(customers)
    }

    pub fn set_wrapped_keys(&self, updates: &[(String, String, Vec<u8>)]) -> Result<(), StoreError> {
        let mut connection = self.write()?;
        let mut transaction = connection.transaction().map_err(self.error("begin a transaction"))?;
        for (id, kek_id, wrapped) in updates {
            transaction
                .execute(
                    "UPDATE customers SET kek_id = ?2, wrapped_key = ?3 WHERE id = ?1 AND deleted_at IS NULL",
                    values![id, kek_id, wrapped],
                )
                .map_err(self.error("update a wrapped key"))?;
        }
        transaction.commit().map_err(self.error("commit key updates"))
    }

    // ---- agents ----

    /// Adds agents, or updates existing ones except their status, which changes only
    /// through [`Store::set_agent_status`] (each change a ledger entry of its own).
    pub fn upsert_agents(&self, agents: &[Agent]) -> Result<(), StoreError> {
        let mut connection = self.write()?;
        let mut transaction = connection.transaction().map_err(self.error("begin a transaction"))?;
        for agent in agents {
            transaction
                .execute(
                    "INSERT INTO agents (id, name, team, site, employer, shift_start, shift_end, role, status)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT (id) DO UPDATE SET name = ?2, team = ?3, site = ?4, employer = ?5,
                        shift_start = ?6, shift_end = ?7, role = ?8",
                    values![
                        agent.id,
                        agent.name,
                        agent.team,
                        agent.site,
                        agent.employer,
                        i64::from(agent.shift.start_hour),
                        i64::from(agent.shift.end_hour),
                        agent.role.name(),
                        agent.status.name()
                    ],
                )
                .map_err(self.error("write an agent"))?;
        }
        transaction.commit().map_err(self.error("commit agents"))
    }

    /// The ids of the agents of one team at one site (a peer group), at most `limit`.
    pub fn peer_group(&self, team: &str, site: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        self.read()?
            .query_map(
                "SELECT id FROM agents WHERE team = ?1 AND site = ?2 ORDER BY id LIMIT ?3",
                values![team, site, limit as i64],
                |row| row.get(0),
            )
            .map_err(self.error("list a peer group"))
    }

    /// How many agents the directory holds, whatever their status.
    pub fn agent_count(&self) -> Result<u64, StoreError> {
        Ok(self
            .query_one("SELECT count(*) FROM agents", values![], "count agents", |row| row.get::<i64>(0))?
            .unwrap_or(0)
            .max(0) as u64)
    }

    pub fn agent(&self, id: &str) -> Result<Option<Agent>, StoreError> {
        let row = self.query_one(
            "SELECT name, team, site, employer, shift_start, shift_end, role, status FROM agents WHERE id = ?1",
            values![id],
            "read an agent",
            |row| {
                Ok((
                    row.get::<String>(0)?,
                    row.get::<String>(1)?,
                    row.get::<String>(2)?,
                    row.get::<String>(3)?,
                    row.get::<i64>(4)?,
                    row.get::<i64>(5)?,
                    row.get::<String>(6)?,
                    row.get::<String>(7)?,
                ))
            },
        )?;
        let Some((name, team, site, employer, start, end, role, status)) = row else { return Ok(None) };
        let corrupt = |reason: String| StoreError::Corrupt {
            database: self.database.clone(),
            reason: format!("agent `{id}`: {reason}"),
        };
        let hour = |hour: i64| u8::try_from(hour).map_err(|_| corrupt(format!("shift hour {hour} is out of range")));
        Ok(Some(Agent {
            id: id.to_string(),
            name,
            team,
            site,
            employer,
            shift: Shift::new(hour(start)?, hour(end)?).map_err(|error| corrupt(error.to_string()))?,
            role: role.parse().map_err(|error: cordon_directory::DirectoryError| corrupt(error.to_string()))?,
            status: status.parse().map_err(|error: cordon_directory::DirectoryError| corrupt(error.to_string()))?,
        }))
    }

    /// Sets an agent's status; false if there is no such agent.
    pub fn set_agent_status(&self, id: &str, status: AgentStatus) -> Result<bool, StoreError> {
        self.write()?
            .execute("UPDATE agents SET status = ?2 WHERE id = ?1", values![id, status.name()])
            .map(|changed| changed > 0)
            .map_err(self.error("update an agent"))
    }

    // ---- tickets ----

    pub fn upsert_tickets(&self, tickets: &[Ticket]) -> Result<(), StoreError> {
        let mut connection = self.write()?;
        let mut transaction = connection.transaction().map_err(self.error("begin a transaction"))?;
        for ticket in tickets {
            write_ticket(&mut transaction, ticket).map_err(self.error("write a ticket"))?;
        }
        transaction.commit().map_err(self.error("commit tickets"))
    }

    pub fn ticket(&self, id: &str) -> Result<Option<Ticket>, StoreError> {
        let row = self.query_one(
            "SELECT requester, category, status, assignee, opened_by, assigned_by, created_at, updated_at
             FROM tickets WHERE id = ?1",
            values![id],
            "read a ticket",
            |row| {
                Ok((
                    (row.get::<String>(0)?, row.get::<String>(1)?, row.get::<String>(2)?),
                    (row.get::<Option<String>>(3)?, row.get::<Option<String>>(4)?, row.get::<Option<String>>(5)?),
                    (row.get::<i64>(6)?, row.get::<i64>(7)?),
                ))
            },
        )?;
        let Some(((requester, category, status), (assignee, opened_by, assigned_by), (created_at, updated_at))) = row
        else {
            return Ok(None);
        };
        let status = status.parse().map_err(|error: cordon_directory::DirectoryError| StoreError::Corrupt {
            database: self.database.clone(),
            reason: format!("ticket `{id}`: {error}"),
        })?;
        Ok(Some(Ticket {
            id: id.to_string(),
            requester,
            category,
            status,
            assignee,
            opened_by,
            assigned_by,
            created_at,
            updated_at,
        }))
    }

    /// The open tickets assigned to `assignee`, most recently updated first, at most `limit`.
    pub fn open_tickets_of(&self, assignee: &str, limit: usize) -> Result<Vec<Ticket>, StoreError> {
        let ids: Vec<String> = self
            .read()?
            .query_map(
                "SELECT id FROM tickets WHERE assignee = ?1 AND status = 'open' ORDER BY updated_at DESC, id LIMIT ?2",
                values![assignee, limit as i64],
                |row| row.get(0),
            )
            .map_err(self.error("list tickets"))?;
        let mut tickets = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(ticket) = self.ticket(&id)? {
                tickets.push(ticket);
            }
        }
        Ok(tickets)
    }

    /// Whether a ticket from `requester` (assigned to `assignee`, if given) was updated at or
    /// after `since` (unix seconds): what makes a look without a ticket in hand a callback
    /// or a QA review rather than a look with no reason.
    pub fn ticket_since(&self, requester: &str, assignee: Option<&str>, since: i64) -> Result<bool, StoreError> {
        let found = |_: &Row<'_>| Ok(());
        let row = match assignee {
            Some(assignee) => self.query_one(
                "SELECT 1 FROM tickets WHERE requester = ?1 AND assignee = ?2 AND updated_at >= ?3 LIMIT 1",
                values![requester, assignee, since],
                "look up recent tickets",
                found,
            )?,
            None => self.query_one(
                "SELECT 1 FROM tickets WHERE requester = ?1 AND updated_at >= ?2 LIMIT 1",
                values![requester, since],
                "look up recent tickets",
                found,
            )?,
        };
        Ok(row.is_some())
    }

    // ---- alerts and the webhook outbox ----

    /// Stores alerts not stored yet and, when `webhook` is set, queues each new one for it,
    /// in one transaction (a crash between ledger and store is mended by the next replay).
    pub fn record_alerts(&self, alerts: &[StoredAlert], webhook: bool, now_ms: i64) -> Result<usize, StoreError> {
        let mut connection = self.write()?;
        let mut transaction = connection.transaction().map_err(self.error("begin storing alerts"))?;
        let mut added = 0;
        for alert in alerts {
            let inserted = transaction
                .execute(
                    "INSERT INTO alerts (id, agent, level, time_ms, ledger_index, body, status)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'open') ON CONFLICT DO NOTHING",
                    values![
                        alert.id as i64,
                        alert.agent,
                        alert.level,
                        alert.time_ms,
                        alert.ledger_index as i64,
                        alert.body
                    ],
                )
                .map_err(self.error("store an alert"))?;
            if inserted > 0 {
                added += 1;
                if webhook {
                    transaction
                        .execute(QUEUE_OUTBOX, values!["alert", alert.body, now_ms])
                        .map_err(self.error("queue an alert"))?;
                }
            }
        }
        transaction.commit().map_err(self.error("commit alerts"))?;
        Ok(added)
    }

    /// Alerts, newest first; only those with `status` if given.
    pub fn alerts(&self, status: Option<&str>, limit: usize) -> Result<Vec<StoredAlert>, StoreError> {
        let mut connection = self.read()?;
        match status {
            Some(status) => connection.query_map(
                "SELECT id, agent, level, time_ms, ledger_index, body, status, reason, decided_by, decided_at_ms
                 FROM alerts WHERE status = ?1 ORDER BY id DESC LIMIT ?2",
                values![status, limit as i64],
                alert_columns,
            ),
            None => connection.query_map(
                "SELECT id, agent, level, time_ms, ledger_index, body, status, reason, decided_by, decided_at_ms
                 FROM alerts ORDER BY id DESC LIMIT ?1",
                values![limit as i64],
                alert_columns,
            ),
        }
        .map_err(self.error("list alerts"))
    }

    pub fn alert(&self, id: u64) -> Result<Option<StoredAlert>, StoreError> {
        self.query_one(
            "SELECT id, agent, level, time_ms, ledger_index, body, status, reason, decided_by, decided_at_ms
             FROM alerts WHERE id = ?1",
            values![id as i64],
            "read an alert",
            alert_columns,
        )
    }

    /// Records an analyst's decision on an open alert; false if it was not open.
    pub fn decide_alert(&self, id: u64, status: &str, reason: &str, by: &str, at_ms: i64) -> Result<bool, StoreError> {
        let changed = self
            .write()?
            .execute(
                "UPDATE alerts SET status = ?2, reason = ?3, decided_by = ?4, decided_at_ms = ?5
                 WHERE id = ?1 AND status = 'open'",
                values![id as i64, status, reason, by, at_ms],
            )
            .map_err(self.error("decide an alert"))?;
        Ok(changed > 0)
    }

    /// Undelivered messages of `topic` due at `now_ms`, oldest first. Each topic is its own
    /// queue, so a receiver that is down holds up only its own messages.
    pub fn outbox_due(&self, topic: &str, now_ms: i64, limit: usize) -> Result<Vec<OutboxItem>, StoreError> {
        self.read()?
            .query_map(
                "SELECT id, topic, body, attempts FROM outbox
                 WHERE delivered_at_ms IS NULL AND topic = ?3 AND next_attempt_ms <= ?1 ORDER BY id LIMIT ?2",
                values![now_ms, limit as i64, topic],
                |row| {
                    Ok(OutboxItem {
                        id: row.get::<i64>(0)? as u64,
                        topic: row.get(1)?,
                        body: row.get(2)?,
                        attempts: row.get::<i64>(3)? as u32,
                    })
                },
            )
            .map_err(self.error("read the outbox"))
    }

    /// Claims up to `limit` undelivered messages of `topic` due at `now_ms`, oldest first, for
    /// `lease_ms`: none is due again meanwhile, so gateways sharing a store deliver each once
    /// (a gateway that dies holding a claim leaves its messages to another once it runs out).
    pub fn outbox_claim(
        &self,
        topic: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let mut connection = self.write()?;
        let sql = connection.dialect().pick(
            "UPDATE outbox SET next_attempt_ms = ?2 + ?3 WHERE id IN (
                 SELECT id FROM outbox WHERE delivered_at_ms IS NULL AND topic = ?1 AND next_attempt_ms <= ?2
                 ORDER BY id LIMIT ?4)
             RETURNING id, topic, body, attempts",
            "UPDATE outbox SET next_attempt_ms = ?2 + ?3 WHERE id IN (
                 SELECT id FROM outbox WHERE delivered_at_ms IS NULL AND topic = ?1 AND next_attempt_ms <= ?2
                 ORDER BY id LIMIT ?4 FOR UPDATE SKIP LOCKED)
             RETURNING id, topic, body, attempts",
        );
        let mut claimed = connection
            .query_map(sql, values![topic, now_ms, lease_ms, limit as i64], |row| {
                Ok(OutboxItem {
                    id: row.get::<i64>(0)? as u64,
                    topic: row.get(1)?,
                    body: row.get(2)?,
                    attempts: row.get::<i64>(3)? as u32,
                })
            })
            .map_err(self.error("claim outbox messages"))?;
        claimed.sort_by_key(|item| item.id);
        Ok(claimed)
    }

    /// Makes claimed messages due at `next_attempt_ms` (those a failed delivery held back,
    /// due with it so they keep their order).
    pub fn outbox_defer(&self, ids: &[u64], next_attempt_ms: i64) -> Result<(), StoreError> {
        let mut connection = self.write()?;
        for id in ids {
            connection
                .execute(
                    "UPDATE outbox SET next_attempt_ms = ?2 WHERE id = ?1 AND delivered_at_ms IS NULL",
                    values![*id as i64, next_attempt_ms],
                )
                .map_err(self.error("defer a message"))?;
        }
        Ok(())
    }

    pub fn outbox_delivered(&self, id: u64, now_ms: i64) -> Result<(), StoreError> {
        self.write()?
            .execute(
                "UPDATE outbox SET delivered_at_ms = ?2, attempts = attempts + 1 WHERE id = ?1",
                values![id as i64, now_ms],
            )
            .map_err(self.error("mark a message delivered"))?;
        Ok(())
    }

    pub fn outbox_retry(&self, id: u64, next_attempt_ms: i64, error: &str) -> Result<(), StoreError> {
        self.write()?
            .execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_ms = ?2, last_error = ?3 WHERE id = ?1",
                values![id as i64, next_attempt_ms, error],
            )
            .map_err(self.error("reschedule a message"))?;
        Ok(())
    }

    /// Messages not delivered yet.
    pub fn outbox_pending(&self) -> Result<u64, StoreError> {
        Ok(self
            .query_one(
                "SELECT count(*) FROM outbox WHERE delivered_at_ms IS NULL",
                values![],
                "count the outbox",
                |row| row.get::<i64>(0),
            )?
            .unwrap_or(0)
            .max(0) as u64)
    }

    // ---- revoked tokens ----

    /// Records that the token `jti` is revoked (until `expires_at`, when it would have
    /// expired anyway), and forgets revocations that have run out.
    pub fn revoke_token(&self, jti: &str, expires_at: i64, now: i64) -> Result<(), StoreError> {
        let mut connection = self.write()?;
        connection
            .execute(
                "INSERT INTO revoked_tokens (jti, expires_at, revoked_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (jti) DO UPDATE SET expires_at =
                    CASE WHEN revoked_tokens.expires_at > excluded.expires_at THEN revoked_tokens.expires_at
                         ELSE excluded.expires_at END",
                values![jti, expires_at, now],
            )
            .map_err(self.error("revoke a token"))?;
        connection
            .execute("DELETE FROM revoked_tokens WHERE expires_at <= ?1", values![now])
            .map(drop)
            .map_err(self.error("forget expired revocations"))
    }

    /// The ids of revoked tokens that have not expired by `now`.
    pub fn revoked_tokens(&self, now: i64) -> Result<Vec<String>, StoreError> {
        self.read()?
            .query_map("SELECT jti FROM revoked_tokens WHERE expires_at > ?1", values![now], |row| row.get(0))
            .map_err(self.error("read revoked tokens"))
    }

    // ---- approvals ----

    pub fn put_approval(&self, approval: &Approval) -> Result<(), StoreError> {
        self.write()?
            .execute(
                "INSERT INTO approvals (id, kind, requester, customer_id, status, approver, created_at, decided_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (id) DO UPDATE SET status = ?5, approver = ?6, decided_at = ?8, expires_at = ?9",
                values![
                    approval.id,
                    approval.kind.name(),
                    approval.requester,
                    approval.customer,
                    approval.status.name(),
                    approval.approver,
                    approval.created_at,
                    approval.decided_at,
                    approval.expires_at
                ],
            )
            .map(drop)
            .map_err(self.error("write an approval"))
    }

    pub fn approval(&self, id: &str) -> Result<Option<Approval>, StoreError> {
        let raw = self.query_one(
            "SELECT id, kind, requester, customer_id, status, approver, created_at, decided_at, expires_at
             FROM approvals WHERE id = ?1",
            values![id],
            "read an approval",
            approval_columns,
        )?;
        raw.map(|raw| self.approval_from(raw)).transpose()
    }

    /// Approvals waiting for a decision, oldest first, at most `limit`.
    pub fn requested_approvals(&self, limit: usize) -> Result<Vec<Approval>, StoreError> {
        let raws = self
            .read()?
            .query_map(
                "SELECT id, kind, requester, customer_id, status, approver, created_at, decided_at, expires_at
                 FROM approvals WHERE status = 'requested' ORDER BY created_at, id LIMIT ?1",
                values![limit as i64],
                approval_columns,
            )
            .map_err(self.error("list approvals"))?;
        raws.into_iter().map(|raw| self.approval_from(raw)).collect()
    }

    /// The granted, unexpired approval of `kind` for `requester` on `customer`, if any. The
    /// query is plain equality, with expiry checked here: a range on a bound expiry made
    /// SQLite re-plan the statement on every call, and this runs on every data access.
    pub fn approval_in_force(
        &self,
        requester: &str,
        customer: &str,
        kind: ApprovalKind,
        now: i64,
    ) -> Result<Option<Approval>, StoreError> {
        let raws = self
            .read()?
            .query_map(
                "SELECT id, kind, requester, customer_id, status, approver, created_at, decided_at, expires_at
                 FROM approvals WHERE requester = ?1 AND customer_id = ?2 AND kind = ?3 AND status = 'approved'",
                values![requester, customer, kind.name()],
                approval_columns,
            )
            .map_err(self.error("look up approvals"))?;
        let mut best: Option<Approval> = None;
        for raw in raws {
            let approval = self.approval_from(raw)?;
            if approval.expires_at.is_some_and(|expires_at| expires_at > now)
                && best.as_ref().is_none_or(|current| approval.expires_at > current.expires_at)
            {
                best = Some(approval);
            }
        }
        Ok(best)
    }

    /// Agents who have been granted any approval.
    pub fn agents_with_granted_approvals(&self) -> Result<std::collections::HashSet<String>, StoreError> {
        let agents: Vec<String> = self
            .read()?
            .query_map("SELECT DISTINCT requester FROM approvals WHERE status = 'approved'", values![], |row| {
                row.get(0)
            })
            .map_err(self.error("list approvals"))?;
        Ok(agents.into_iter().collect())
    }

    fn approval_from(&self, raw: RawApproval) -> Result<Approval, StoreError> {
        let corrupt = |error: cordon_directory::DirectoryError| StoreError::Corrupt {
            database: self.database.clone(),
            reason: format!("approval `{}`: {error}", raw.0),
        };
        Ok(Approval {
            kind: raw.1.parse().map_err(corrupt)?,
            status: raw.4.parse::<ApprovalStatus>().map_err(corrupt)?,
            id: raw.0.clone(),
            requester: raw.2,
            customer: raw.3,
            approver: raw.5,
            created_at: raw.6,
            decided_at: raw.7,
            expires_at: raw.8,
        })
    }

    // ---- access events ----

    /// How far into the ledger the access index has read: every access entry below this
    /// index is in it.
    pub fn access_through(&self) -> Result<u64, StoreError> {
        self.index_position(ACCESS_THROUGH)
    }

    /// The ledger position a follower index stored under `key` in `index_meta` (0 if none).
    pub(crate) fn index_position(&self, key: &str) -> Result<u64, StoreError> {
        let value = self
            .index()?
            .query_row("SELECT value FROM index_meta WHERE key = ?1", values![key], |row| row.get::<i64>(0))
            .map_err(self.error("read an index's position in the ledger"))?;
        Ok(value.unwrap_or(0).max(0) as u64)
    }

    /// Records a follower index's `position` under `key`, in the caller's transaction, so
    /// the position moves with the rows it covers.
    pub(crate) fn set_index_position(
        &self,
        transaction: &mut impl Sql,
        key: &str,
        position: u64,
    ) -> Result<(), StoreError> {
        transaction
            .execute(
                "INSERT INTO index_meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                values![key, position as i64],
            )
            .map(drop)
            .map_err(self.error("record an index's position in the ledger"))
    }

    /// Writes access events read from ledger entries below `through`, and records that
    /// position, in one transaction: a crash leaves the index at its last whole batch, and
    /// reading the same entries again writes the same rows.
    pub fn add_access_events(&self, events: &[AccessEvent], through: u64) -> Result<(), StoreError> {
        let mut connection = self.index()?;
        let mut transaction = connection.transaction().map_err(self.error("begin a transaction"))?;
        {
            let mut statements = transaction
                .prepare(&["INSERT INTO access_events
                     (ledger_index, time, agent_id, customer_id, ticket_id, action, fields, allowed, policies, request_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                     ON CONFLICT (ledger_index) DO UPDATE SET time = excluded.time, agent_id = excluded.agent_id,
                        customer_id = excluded.customer_id, ticket_id = excluded.ticket_id, action = excluded.action,
                        fields = excluded.fields, allowed = excluded.allowed, policies = excluded.policies,
                        request_id = excluded.request_id"])
                .map_err(self.error("prepare an access event"))?;
            for event in events {
                statements
                    .execute(
                        0,
                        values![
                            event.ledger_index as i64,
                            event.time,
                            event.agent_id,
                            event.customer_id,
                            event.ticket_id,
                            event.action,
                            event.fields.join(","),
                            i64::from(event.allowed),
                            event.policies.join(","),
                            event.request_id
                        ],
                    )
                    .map_err(self.error("write an access event"))?;
            }
        }
        self.set_index_position(&mut transaction, ACCESS_THROUGH, through)?;
        transaction.commit().map_err(self.error("commit access events"))
    }

    /// Commits a small write to each database: whether the store can take writes now
    /// (readiness asks; a full or failed volume, or a database out of reach, answers with
    /// the error).
    pub fn probe_writes(&self, now_ms: i64) -> Result<(), StoreError> {
        let now = now_ms.to_string();
        self.write()?
            .execute(
                "INSERT INTO meta (key, value) VALUES ('write_probe', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                values![now],
            )
            .map_err(self.error("write a probe"))?;
        self.index()?
            .execute(
                "INSERT INTO index_meta (key, value) VALUES ('write_probe', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                values![now_ms],
            )
            .map_err(self.error("write a probe"))?;
        Ok(())
    }

    /// Every recorded access to `customer`, oldest first, at most `limit`.
    pub fn access_history(&self, customer: &str, limit: usize) -> Result<Vec<AccessEvent>, StoreError> {
        self.history_rows(
            "SELECT ledger_index, time, agent_id, customer_id, ticket_id, action, fields, allowed, policies, request_id
             FROM access_events WHERE customer_id = ?1 AND ledger_index < ?2 ORDER BY ledger_index LIMIT ?3",
            customer,
            u64::MAX,
            limit,
        )
    }

    /// The accesses to `customer` recorded below ledger index `before`, newest first, at most
    /// `limit`: a page of the customer's own view, which starts from the latest.
    pub fn access_history_before(
        &self,
        customer: &str,
        before: u64,
        limit: usize,
    ) -> Result<Vec<AccessEvent>, StoreError> {
        self.history_rows(
            "SELECT ledger_index, time, agent_id, customer_id, ticket_id, action, fields, allowed, policies, request_id
             FROM access_events WHERE customer_id = ?1 AND ledger_index < ?2 ORDER BY ledger_index DESC LIMIT ?3",
            customer,
            before,
            limit,
        )
    }

    fn history_rows(
        &self,
        sql: &str,
        customer: &str,
        before: u64,
        limit: usize,
    ) -> Result<Vec<AccessEvent>, StoreError> {
        let before = i64::try_from(before).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.index()?
            .query_map(sql, values![customer, before, limit], |row| {
                Ok(AccessEvent {
                    ledger_index: row.get::<i64>(0)? as u64,
                    time: row.get(1)?,
                    agent_id: row.get(2)?,
                    customer_id: row.get(3)?,
                    ticket_id: row.get(4)?,
                    action: row.get(5)?,
                    fields: split(&row.get::<String>(6)?),
                    allowed: row.get::<i64>(7)? != 0,
                    policies: split(&row.get::<String>(8)?),
                    request_id: row.get(9)?,
                })
            })
            .map_err(self.error("read access history"))
    }

    /// The searches that showed `customer` among their hits below ledger index `before`,
    /// newest first, at most `limit`, each with how many customers it showed in all (from
    /// the exposure index).
    pub fn search_hits_before(&self, customer: &str, before: u64, limit: usize) -> Result<Vec<SearchHit>, StoreError> {
        let before = i64::try_from(before).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.index()?
            .query_map(
                "SELECT e.ledger_index, e.time, e.agent_id,
                        (SELECT count(*) FROM exposures o
                         WHERE o.agent_id = e.agent_id AND o.time = e.time AND o.ledger_index = e.ledger_index)
                 FROM exposures e
                 WHERE e.customer_id = ?1 AND e.action = 'search' AND e.ledger_index < ?2
                 ORDER BY e.ledger_index DESC LIMIT ?3",
                values![customer, before, limit],
                |row| {
                    Ok(SearchHit {
                        ledger_index: row.get::<i64>(0)? as u64,
                        time_ms: row.get(1)?,
                        agent_id: row.get(2)?,
                        customers_shown: row.get::<i64>(3)? as u64,
                    })
                },
            )
            .map_err(self.error("read search hits"))
    }
}

/// Writes a ticket, replacing one with its id.
pub(crate) fn write_ticket(transaction: &mut impl Sql, ticket: &Ticket) -> Result<u64, DbError> {
    transaction.execute(
        "INSERT INTO tickets (id, requester, category, status, assignee, created_at, updated_at, opened_by, assigned_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (id) DO UPDATE SET requester = ?2, category = ?3, status = ?4, assignee = ?5,
            updated_at = ?7, opened_by = ?8, assigned_by = ?9",
        values![
            ticket.id,
            ticket.requester,
            ticket.category,
            ticket.status.name(),
            ticket.assignee,
            ticket.created_at,
            ticket.updated_at,
            ticket.opened_by,
            ticket.assigned_by
        ],
    )
}

/// Counts the live customers once, for a database made before the counter existed; after
/// that the counter is read, not recounted, at every open.
pub(crate) fn count_live_customers(db: &mut impl Sql) -> Result<(), DbError> {
    let counted =
        db.query_row("SELECT 1 FROM counters WHERE name = ?1", values![LIVE_CUSTOMERS], |_| Ok(()))?.is_some();
    if !counted {
        db.execute(
            "INSERT INTO counters (name, value)
             SELECT CAST(?1 AS TEXT), (SELECT count(*) FROM customers) - (SELECT count(*) FROM customers WHERE deleted_at IS NOT NULL)",
            values![LIVE_CUSTOMERS],
        )?;
    }
    Ok(())
}

/// A comma-joined list as stored, back into its items.
pub(crate) fn split(text: &str) -> Vec<String> {
    if text.is_empty() { Vec::new() } else { text.split(',').map(str::to_string).collect() }
}

type RawApproval = (String, String, String, String, String, Option<String>, i64, Option<i64>, Option<i64>);

fn approval_columns(row: &Row<'_>) -> Result<RawApproval, DbError> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
    ))
}

fn alert_columns(row: &Row<'_>) -> Result<StoredAlert, DbError> {
    Ok(StoredAlert {
        id: row.get::<i64>(0)? as u64,
        agent: row.get(1)?,
        level: row.get(2)?,
        time_ms: row.get(3)?,
        ledger_index: row.get::<i64>(4)? as u64,
        body: row.get(5)?,
        status: row.get(6)?,
        reason: row.get(7)?,
        decided_by: row.get(8)?,
        decided_at_ms: row.get(9)?,
    })
}

/// A customer's blind-index rows as stored beside it: a kind code and a digest, repeated.
fn encode_digests(entries: &[(SearchKey, Digest)]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(entries.len() * 33);
    for (kind, digest) in entries {
        let code = SearchKey::ALL.iter().position(|known| known == kind).unwrap_or(0) as u8;
        bytes.push(code);
        bytes.extend_from_slice(digest);
    }
    bytes
}

/// What writing the pending match index does about pending rows another gateway is
/// writing at the same moment (PostgreSQL; on SQLite one writer does everything in turn).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OthersAtWork {
    /// Wait for them: attribution's answer needs those rows.
    WaitForThem,
    /// Take other rows: an idle round must not hold up this gateway's writes.
    LeaveTheirsToThem,
}

/// Customer ids as `match_pending` keeps them: each a big-endian u16 length and its bytes
/// (ids are checked to at most 128 bytes on the way in; a longer one would be cut, and then
/// match no customer).
fn encode_ids(ids: &[&str]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(ids.iter().map(|id| id.len() + 2).sum());
    for id in ids {
        let id = id.as_bytes().get(..id.len().min(usize::from(u16::MAX))).unwrap_or_default();
        bytes.extend_from_slice(&(id.len() as u16).to_be_bytes());
        bytes.extend_from_slice(id);
    }
    bytes
}

fn decode_ids(mut bytes: &[u8]) -> Vec<String> {
    let mut ids = Vec::new();
    while let [high, low, rest @ ..] = bytes {
        let length = usize::from(u16::from_be_bytes([*high, *low])).min(rest.len());
        let (id, after) = rest.split_at(length);
        ids.push(String::from_utf8_lossy(id).into_owned());
        bytes = after;
    }
    ids
}

fn decode_digests(bytes: &[u8]) -> Vec<(SearchKey, Digest)> {
    bytes
        .chunks_exact(33)
        .filter_map(|chunk| {
            let (code, digest) = chunk.split_first()?;
            let kind = SearchKey::ALL.get(usize::from(*code))?;
            Some((*kind, <[u8; 32]>::try_from(digest).ok()?))
        })
        .collect()
}

/// An exposure index written before reach recorded how each customer was shown cannot answer
/// attribution's question; it is dropped and read again from the ledger (the follower starts
/// from `exposures_through`, which goes with it). The access index is left alone.
fn forget_reach_without_ways(index: &Connection) -> rusqlite::Result<()> {
    let old = index.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'agent_reach'
             AND NOT EXISTS (SELECT 1 FROM pragma_table_info('agent_reach') WHERE name = 'seen')",
        [],
        |row| row.get::<_, i64>(0),
    )? > 0;
    if old {
        index.execute_batch(
            "BEGIN;
             DROP TABLE IF EXISTS exposures;
             DROP TABLE IF EXISTS agent_reach;
             DROP TABLE IF EXISTS agent_volume;
             DELETE FROM index_meta WHERE key = 'exposures_through';
             COMMIT;",
        )?;
    }
    Ok(())
}

/// A reach log written before it recorded each pair's ways before the change (or that marked
/// a new pair with 0, which is also a pair's ways) cannot tell a model how a customer's reach
/// was: it is dropped (a model then reads the reach whole once).
fn forget_reach_log_without_before(index: &Connection) -> rusqlite::Result<()> {
    let old = index.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'reach_log'
             AND NOT EXISTS (SELECT 1 FROM pragma_table_info('reach_log') WHERE name = 'before' AND \"notnull\" = 0)",
        [],
        |row| row.get::<_, i64>(0),
    )? > 0;
    if old {
        index.execute_batch("DROP TABLE reach_log;")?;
    }
    Ok(())
}

/// `data/cordon.sqlite` → `data/cordon-access.sqlite`.
fn index_path(path: &Path) -> PathBuf {
    let stem = path.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_else(|| "cordon".into());
    path.with_file_name(format!("{stem}-access.sqlite"))
}

fn connect(path: &Path) -> Result<Connection, StoreError> {
    let database = path.display().to_string();
    let connection = Connection::open(path).map_err(sql_error(&database, "open"))?;
    // Sealed records are useless without the keys, but the database is still nobody else's.
    if let Ok(metadata) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt as _;
        if metadata.permissions().mode() & 0o077 != 0 {
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
    }
    // WAL lets readers run beside the writer; NORMAL sync keeps commits cheap and the file
    // consistent. The ledger, not this database, is the durable record of every access.
    // Reads go through mmap: incident scope's thousands of random record reads spent their
    // time in pread copies of B-tree pages.
    connection
        .execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA secure_delete = ON;
             PRAGMA busy_timeout = 5000;
             PRAGMA cache_size = -16384;
             PRAGMA mmap_size = 17179869184;",
        )
        .map_err(sql_error(&database, "configure"))?;
    connection.set_prepared_statement_cache_capacity(64);
    Ok(connection)
}

/// A file error, with what was being done and the file's name.
pub(crate) fn io_error(path: &Path, action: &'static str) -> impl Fn(std::io::Error) -> StoreError {
    let database = path.display().to_string();
    move |error| StoreError::Sql { database: database.clone(), action, message: error.to_string() }
}

/// A rusqlite error, with what was being done and the database's name.
pub(crate) fn sql_error(database: &str, action: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    let database = database.to_string();
    move |error| StoreError::Sql { database: database.clone(), action, message: error.to_string() }
}

/// A failed statement of either backend, with what was being done and the database's name;
/// a database out of reach is [`StoreError::Unavailable`].
pub(crate) fn db_error(database: &str, action: &'static str) -> impl Fn(DbError) -> StoreError {
    let database = database.to_string();
    move |error| {
        if error.unreachable {
            StoreError::Unavailable { database: database.clone(), action, message: error.message }
        } else {
            StoreError::Sql { database: database.clone(), action, message: error.message }
        }
    }
}
