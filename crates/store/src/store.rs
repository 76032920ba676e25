//! The SQLite store. One writer connection and a few readers, each behind its own lock;
//! WAL mode lets the readers run while the writer commits.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use cordon_directory::{Agent, AgentStatus, Approval, ApprovalKind, ApprovalStatus, Shift, Ticket};
use cordon_vault::{Digest, SealedCustomer, SealedRecord, SearchKey};
use rusqlite::{Connection, OptionalExtension as _, params};

use crate::schema::{INDEX_SCHEMA, SCHEMA, SCHEMA_VERSION};

const READERS: usize = 2;

/// The counter of customers not crypto-shredded.
const LIVE_CUSTOMERS: &str = "live_customers";
/// `index_meta` key: the ledger index the access index has read up to.
const ACCESS_THROUGH: &str = "access_through";
const ADD_TO_COUNTER: &str = "UPDATE counters SET value = value + ?2 WHERE name = ?1";
/// `counters` name: customer records written or deleted, ever (what attribution's cached
/// census of balance bands is checked against).
pub(crate) const CUSTOMER_WRITES: &str = "customer_writes";
/// Adds `?2` to counter `?1`, creating it.
const BUMP_COUNTER: &str =
    "INSERT INTO counters (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET value = value + ?2";

const CUSTOMER_BY_ID: &str = "SELECT kek_id, wrapped_key, sealed, canary FROM customers WHERE id = ?1";

/// A customer row: the key-encryption key's id, the wrapped data key and the sealed record
/// (both gone once crypto-shredded), and whether it is a canary.
type CustomerColumns = (String, Option<Vec<u8>>, Option<Vec<u8>>, bool);

fn customer_columns(row: &rusqlite::Row<'_>) -> rusqlite::Result<CustomerColumns> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
}

/// Queues a message of topic `?1` with body `?2`, due at `?3`, for the webhook; written in
/// the transaction of what it announces, so a restart finds every message still owed.
pub(crate) const QUEUE_OUTBOX: &str =
    "INSERT INTO outbox (topic, body, attempts, next_attempt_ms) VALUES (?1, ?2, 0, ?3)";

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("database `{path}`: {action}: {message}")]
    Sql { path: PathBuf, action: &'static str, message: String },
    #[error("database `{path}` holds a damaged row: {reason}")]
    Corrupt { path: PathBuf, reason: String },
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
        let failed = |action: &'static str| {
            move |error: std::io::Error| StoreError::Sql { path: to.to_path_buf(), action, message: error.to_string() }
        };
        // Created here, owner-only, so the copy is never readable by anyone else, even briefly.
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(to).map_err(failed("create"))?;
        let mut copy = Connection::open(to).map_err(sql_error(to, "open the copy"))?;
        {
            let backup =
                rusqlite::backup::Backup::new(&self.connection, &mut copy).map_err(sql_error(to, "start the copy"))?;
            // All pages in one step, read through the snapshot's open transaction.
            match backup.step(-1).map_err(sql_error(to, "copy"))? {
                rusqlite::backup::StepResult::Done => {}
                other => {
                    return Err(StoreError::Sql {
                        path: to.to_path_buf(),
                        action: "copy",
                        message: format!("the online backup stopped before the end ({other:?})"),
                    });
                }
            }
        }
        copy.execute_batch("PRAGMA journal_mode = DELETE;").map_err(sql_error(to, "settle the copy"))?;
        drop(copy);
        std::fs::File::open(to).and_then(|file| file.sync_all()).map_err(failed("sync"))
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

pub struct Store {
    pub(crate) path: PathBuf,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// The access index and the exposure index, in `<name>-access.sqlite` beside the main file.
    pub(crate) index: Mutex<Connection>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.path.display())
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path` and applies the schema.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let writer = connect(path)?;
        // Bulk writes checkpoint the WAL into the database less often (the default is every
        // 1,000 pages); readers are unaffected.
        // The writer also gets a larger page cache: a million customers' search index is
        // about 300 MB of randomly placed digests, and inserts into it missed the default cache.
        writer
            .execute_batch("PRAGMA wal_autocheckpoint = 10000; PRAGMA cache_size = -262144;")
            .map_err(sql_error(path, "configure"))?;
        let version: i64 = writer
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(sql_error(path, "read the schema version"))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Corrupt {
                path: path.to_path_buf(),
                reason: format!("schema version {version} is newer than this cordon understands ({SCHEMA_VERSION})"),
            });
        }
        writer.execute_batch(SCHEMA).map_err(sql_error(path, "apply the schema"))?;
        // Columns added since a table was first made (CREATE TABLE IF NOT EXISTS leaves an
        // existing table as it was).
        let (table, column, definition) = ("console_sessions", "sign_in", "TEXT NOT NULL DEFAULT ''");
        let present = writer
            .prepare(&format!("SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?1"))
            .and_then(|mut statement| statement.exists([column]))
            .map_err(sql_error(path, "read the schema"))?;
        if !present {
            writer
                .execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {definition}"))
                .map_err(sql_error(path, "add a column"))?;
        }
        // A directory made before the counter existed counts its customers once; after that
        // the counter is read, not recounted, at every open.
        let counted = writer
            .query_row("SELECT 1 FROM counters WHERE name = ?1", [LIVE_CUSTOMERS], |_| Ok(()))
            .optional()
            .map_err(sql_error(path, "read the customer count"))?
            .is_some();
        if !counted {
            writer
                .execute(
                    "INSERT INTO counters (name, value)
                     SELECT ?1, (SELECT count(*) FROM customers) - (SELECT count(*) FROM customers WHERE deleted_at IS NOT NULL)",
                    [LIVE_CUSTOMERS],
                )
                .map_err(sql_error(path, "count customers"))?;
        }
        writer
            .execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
            .map_err(sql_error(path, "record the schema version"))?;
        let readers = (0..READERS).map(|_| connect(path).map(Mutex::new)).collect::<Result<Vec<_>, _>>()?;
        let index_path = index_path(path);
        let index = connect(&index_path)?;
        // The exposure index of ten million ledger entries is a few GB of B-trees written in
        // customer order as well as agent order; with the default cache, building it spent
        // most of its time re-reading pages it had just evicted.
        index
            .execute_batch("PRAGMA wal_autocheckpoint = 10000; PRAGMA cache_size = -262144;")
            .map_err(sql_error(&index_path, "configure"))?;
        forget_reach_without_ways(&index).map_err(sql_error(&index_path, "upgrade the exposure index"))?;
        forget_reach_log_without_before(&index).map_err(sql_error(&index_path, "upgrade the exposure index"))?;
        index.execute_batch(INDEX_SCHEMA).map_err(sql_error(&index_path, "apply the index schema"))?;
        Ok(Store {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
            index: Mutex::new(index),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn write(&self) -> MutexGuard<'_, Connection> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn read(&self) -> MutexGuard<'_, Connection> {
        let slot = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len().max(1);
        match self.readers.get(slot) {
            Some(reader) => reader.lock().unwrap_or_else(PoisonError::into_inner),
            None => self.write(),
        }
    }

    /// Fixes the database's state now, for a copy taken afterwards: a connection of its own
    /// with a read transaction open, which writers do not disturb (WAL). Cheap: the copy
    /// itself ([`StoreSnapshot::copy_to`]) is what takes time, and writers go on meanwhile.
    pub fn begin_snapshot(&self) -> Result<StoreSnapshot, StoreError> {
        let connection = connect(&self.path)?;
        connection
            .execute_batch("BEGIN; SELECT count(*) FROM sqlite_master;")
            .map_err(self.error("begin a snapshot"))?;
        Ok(StoreSnapshot { connection, path: self.path.clone() })
    }

    /// Runs a single-row query on a reader connection; `None` when no row matches.
    pub(crate) fn query_one<T>(
        &self,
        sql: &str,
        parameters: impl rusqlite::Params,
        action: &'static str,
        row: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, StoreError> {
        let connection = self.read();
        let mut statement = connection.prepare_cached(sql).map_err(self.error(action))?;
        statement.query_row(parameters, row).optional().map_err(self.error(action))
    }

    pub(crate) fn error(&self, action: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        sql_error(&self.path, action)
    }

    // ---- meta ----

    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.query_one("SELECT value FROM meta WHERE key = ?1", [key], "read a setting", |row| row.get(0))
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.write()
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = ?2",
                [key, value],
            )
            .map(drop)
            .map_err(self.error("write a setting"))
    }

    // ---- customers ----

    /// Writes customers in one transaction, replacing any with the same id (re-imports are
    /// safe) together with their search entries.
    pub fn upsert_customers(&self, rows: &[CustomerRow], now: i64) -> Result<(), StoreError> {
        let mut connection = self.write();
        let transaction = connection.transaction().map_err(self.error("begin a transaction"))?;
        {
            let mut old_digests = transaction
                .prepare_cached("SELECT search_digests FROM customers WHERE id = ?1")
                .map_err(self.error("prepare the customer upsert"))?;
            let mut upsert = transaction
                .prepare_cached(
                    "INSERT INTO customers (id, kek_id, wrapped_key, sealed, canary, search_digests, deleted_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7)
                     ON CONFLICT (id) DO UPDATE SET kek_id = ?2, wrapped_key = ?3, sealed = ?4, canary = ?5,
                        search_digests = ?6, deleted_at = NULL, updated_at = ?7",
                )
                .map_err(self.error("prepare the customer upsert"))?;
            let mut remove_index = transaction
                .prepare_cached("DELETE FROM search_index WHERE kind = ?1 AND digest = ?2 AND customer_id = ?3")
                .map_err(self.error("prepare the search index update"))?;
            let mut add_index = transaction
                .prepare_cached("INSERT OR IGNORE INTO search_index (kind, digest, customer_id) VALUES (?1, ?2, ?3)")
                .map_err(self.error("prepare the search index update"))?;
            // New search rows go in after the customers, in key order: randomly placed
            // digests inserted in order touch each index page once, not once per row.
            let mut new_index: Vec<(&'static str, &Digest, &str)> = Vec::with_capacity(rows.len() * 4);
            let mut newly_live = 0i64;
            for row in rows {
                let old: Option<Option<Vec<u8>>> = old_digests
                    .query_row([&row.id], |found| found.get(0))
                    .optional()
                    .map_err(self.error("read a customer"))?;
                // New, or crypto-shredded before (its digests are gone): live from now on.
                if !matches!(old, Some(Some(_))) {
                    newly_live += 1;
                }
                for (kind, digest) in decode_digests(old.flatten().as_deref().unwrap_or(&[])) {
                    remove_index
                        .execute(params![kind.name(), digest.as_slice(), row.id])
                        .map_err(self.error("update the search index"))?;
                }
                upsert
                    .execute(params![
                        row.id,
                        row.sealed.kek_id,
                        row.sealed.wrapped_key,
                        row.sealed.record.encode(),
                        row.canary,
                        encode_digests(&row.index),
                        now
                    ])
                    .map_err(self.error("write a customer"))?;
                new_index.extend(row.index.iter().map(|(kind, digest)| (kind.name(), digest, row.id.as_str())));
            }
            new_index.sort_unstable();
            for (kind, digest, id) in new_index {
                add_index
                    .execute(params![kind, digest.as_slice(), id])
                    .map_err(self.error("update the search index"))?;
            }
            transaction
                .execute(ADD_TO_COUNTER, params![LIVE_CUSTOMERS, newly_live])
                .map_err(self.error("count customers"))?;
            transaction
                .execute(BUMP_COUNTER, params![CUSTOMER_WRITES, rows.len() as i64])
                .map_err(self.error("count customers"))?;
        }
        transaction.commit().map_err(self.error("commit customers"))
    }

    pub fn customer(&self, id: &str) -> Result<Option<StoredCustomer>, StoreError> {
        let row = self.query_one(CUSTOMER_BY_ID, [id], "read a customer", customer_columns)?;
        row.map(|row| self.stored_customer(id, row)).transpose()
    }

    /// The customers of `ids` that exist, in that order, read in one transaction on one
    /// connection: one lock and one snapshot for all of them, where a loop over `customer`
    /// pays both per id (incident scope reads thousands).
    pub fn customers(&self, ids: &[&str]) -> Result<Vec<StoredCustomer>, StoreError> {
        let mut connection = self.read();
        let transaction = connection.transaction().map_err(self.error("read customers"))?;
        let mut found = Vec::with_capacity(ids.len());
        {
            let mut statement = transaction.prepare_cached(CUSTOMER_BY_ID).map_err(self.error("read customers"))?;
            for id in ids {
                if let Some(row) =
                    statement.query_row([id], customer_columns).optional().map_err(self.error("read customers"))?
                {
                    found.push(self.stored_customer(id, row)?);
                }
            }
        }
        transaction.commit().map_err(self.error("read customers"))?;
        Ok(found)
    }

    /// Live customers after `after` (by id), at most `limit`, in id order: a walk over the
    /// whole base in pages (attribution's census of balance bands).
    pub fn customers_after(&self, after: &str, limit: usize) -> Result<Vec<StoredCustomer>, StoreError> {
        let connection = self.read();
        let mut statement = connection
            .prepare_cached(
                "SELECT id, kek_id, wrapped_key, sealed, canary FROM customers
                 WHERE id > ?1 AND deleted_at IS NULL ORDER BY id LIMIT ?2",
            )
            .map_err(self.error("list customers"))?;
        let rows = statement
            .query_map(params![after, limit as i64], |row| {
                Ok((row.get::<_, String>(0)?, (row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)))
            })
            .map_err(self.error("list customers"))?;
        let mut found = Vec::with_capacity(limit.min(16_384));
        for row in rows {
            let (id, columns) = row.map_err(self.error("list customers"))?;
            found.push(self.stored_customer(&id, columns)?);
        }
        Ok(found)
    }

    fn stored_customer(&self, id: &str, row: CustomerColumns) -> Result<StoredCustomer, StoreError> {
        let (kek_id, wrapped_key, sealed, canary) = row;
        let sealed = match (wrapped_key, sealed) {
            (Some(wrapped_key), Some(sealed)) => {
                let record = SealedRecord::decode(&sealed).map_err(|error| StoreError::Corrupt {
                    path: self.path.clone(),
                    reason: format!("customer `{id}`: {error}"),
                })?;
                Some(SealedCustomer { kek_id, wrapped_key, record })
            }
            _ => None,
        };
        Ok(StoredCustomer { id: id.to_string(), sealed, canary })
    }

    /// Crypto-shreds a customer: the wrapped data key and sealed fields are erased (secure
    /// delete overwrites them), the search entries removed; the id stays for the audit trail.
    pub fn delete_customer(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let mut connection = self.write();
        let transaction = connection.transaction().map_err(self.error("begin a transaction"))?;
        let digests: Option<Option<Vec<u8>>> = transaction
            .query_row("SELECT search_digests FROM customers WHERE id = ?1", [id], |row| row.get(0))
            .optional()
            .map_err(self.error("read a customer"))?;
        for (kind, digest) in decode_digests(digests.flatten().as_deref().unwrap_or(&[])) {
            transaction
                .execute(
                    "DELETE FROM search_index WHERE kind = ?1 AND digest = ?2 AND customer_id = ?3",
                    params![kind.name(), digest.as_slice(), id],
                )
                .map_err(self.error("delete a customer's search entries"))?;
        }
        let changed = transaction
            .execute(
                "UPDATE customers SET wrapped_key = NULL, sealed = NULL, search_digests = NULL, deleted_at = ?2, updated_at = ?2
                 WHERE id = ?1 AND deleted_at IS NULL",
                params![id, now],
            )
            .map_err(self.error("delete a customer"))?;
        if changed > 0 {
            transaction.execute(ADD_TO_COUNTER, params![LIVE_CUSTOMERS, -1]).map_err(self.error("count customers"))?;
            transaction.execute(BUMP_COUNTER, params![CUSTOMER_WRITES, 1]).map_err(self.error("count customers"))?;
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
        let connection = self.read();
        let mut statement = connection
            .prepare_cached(
                "SELECT customer_id FROM search_index WHERE kind = ?1 AND digest = ?2 ORDER BY customer_id LIMIT ?3",
            )
            .map_err(self.error("prepare a search"))?;
        let ids = statement
            .query_map(params![kind.name(), digest.as_slice(), limit as i64], |row| row.get(0))
            .map_err(self.error("search"))?
            .collect::<Result<Vec<String>, _>>()
            .map_err(self.error("search"))?;
        Ok(ids)
    }

    /// Live customers, from the counter every upsert and deletion keeps in its own
    /// transaction: counting the id index each time cost 3 ms warm and 30 ms from cold pages
    /// at a million customers (and filtering on `deleted_at` walked every sealed record).
    pub fn customer_count(&self) -> Result<u64, StoreError> {
        self.read()
            .query_row("SELECT value FROM counters WHERE name = ?1", [LIVE_CUSTOMERS], |row| row.get::<_, i64>(0))
            .map(|count| count.max(0) as u64)
            .map_err(self.error("count customers"))
    }

    /// Live customers after `after` (by id) whose data key is wrapped by a KEK other than
    /// `kek_id`, for rotation in batches.
    /// Stages customers' search entries under a new blind-index key, beside the live index
    /// (which searches keep using until [`Store::swap_search_index`]). Staging again for a
    /// customer replaces what was staged for it, so a rebuild cut short can run again.
    pub fn stage_search_entries(&self, customers: &[(String, Vec<(SearchKey, Digest)>)]) -> Result<(), StoreError> {
        let mut connection = self.write();
        let transaction = connection.transaction().map_err(self.error("stage search entries"))?;
        transaction
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS search_index_next (
                     kind TEXT NOT NULL, digest BLOB NOT NULL, customer_id TEXT NOT NULL,
                     PRIMARY KEY (kind, digest, customer_id)) WITHOUT ROWID;
                 CREATE TABLE IF NOT EXISTS search_digests_next (customer_id TEXT PRIMARY KEY, digests BLOB NOT NULL);",
            )
            .map_err(self.error("stage search entries"))?;
        {
            let mut forget = transaction
                .prepare_cached("DELETE FROM search_index_next WHERE customer_id = ?1")
                .map_err(self.error("stage search entries"))?;
            let mut add = transaction
                .prepare_cached(
                    "INSERT OR IGNORE INTO search_index_next (kind, digest, customer_id) VALUES (?1, ?2, ?3)",
                )
                .map_err(self.error("stage search entries"))?;
            let mut digests = transaction
                .prepare_cached("INSERT OR REPLACE INTO search_digests_next (customer_id, digests) VALUES (?1, ?2)")
                .map_err(self.error("stage search entries"))?;
            for (customer, entries) in customers {
                forget.execute([customer]).map_err(self.error("stage search entries"))?;
                for (kind, digest) in entries {
                    add.execute(params![kind.name(), digest.as_slice(), customer])
                        .map_err(self.error("stage search entries"))?;
                }
                digests
                    .execute(params![customer, encode_digests(entries)])
                    .map_err(self.error("stage search entries"))?;
            }
        }
        transaction.commit().map_err(self.error("stage search entries"))
    }

    /// Makes the staged search entries the live index in one transaction, and records
    /// `meta_key` = `meta_value` (the blind-index key they were made with) in it, so the index
    /// and the name of its key never disagree. Customers deleted meanwhile keep no entries.
    pub fn swap_search_index(&self, meta_key: &str, meta_value: &str) -> Result<u64, StoreError> {
        let mut connection = self.write();
        let transaction = connection.transaction().map_err(self.error("swap the search index"))?;
        let rows = transaction
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS search_index_next (
                     kind TEXT NOT NULL, digest BLOB NOT NULL, customer_id TEXT NOT NULL,
                     PRIMARY KEY (kind, digest, customer_id)) WITHOUT ROWID;
                 CREATE TABLE IF NOT EXISTS search_digests_next (customer_id TEXT PRIMARY KEY, digests BLOB NOT NULL);
                 DELETE FROM search_index;
                 INSERT INTO search_index (kind, digest, customer_id)
                     SELECT n.kind, n.digest, n.customer_id FROM search_index_next n
                     JOIN customers c ON c.id = n.customer_id AND c.deleted_at IS NULL;
                 UPDATE customers SET search_digests =
                     (SELECT digests FROM search_digests_next WHERE customer_id = customers.id)
                     WHERE deleted_at IS NULL AND id IN (SELECT customer_id FROM search_digests_next);
                 DROP TABLE search_index_next;
                 DROP TABLE search_digests_next;",
            )
            .and_then(|()| transaction.query_row("SELECT count(*) FROM search_index", [], |row| row.get::<_, i64>(0)))
            .map_err(self.error("swap the search index"))?;
        transaction
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![meta_key, meta_value],
            )
            .map_err(self.error("swap the search index"))?;
        transaction.commit().map_err(self.error("swap the search index"))?;
        Ok(rows.max(0) as u64)
    }

    pub fn customers_to_rewrap(
        &self,
        kek_id: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<StoredCustomer>, StoreError> {
        let ids: Vec<String> = {
            let connection = self.read();
            let mut statement = connection
                .prepare_cached(
                    "SELECT id FROM customers WHERE id > ?1 AND kek_id != ?2 AND deleted_at IS NULL ORDER BY id LIMIT ?3",
                )
                .map_err(self.error("list customers to rewrap"))?;
            statement
                .query_map(params![after, kek_id, limit as i64], |row| row.get(0))
                .map_err(self.error("list customers to rewrap"))?
                .collect::<Result<_, _>>()
                .map_err(self.error("list customers to rewrap"))?
        };
        let mut customers = Vec::with_capacity(ids.len());
        for id in ids {
            customers.extend(self.customer(&id)?);
        }
        Ok(customers)
    }

    pub fn set_wrapped_keys(&self, updates: &[(String, String, Vec<u8>)]) -> Result<(), StoreError> {
        let mut connection = self.write();
        let transaction = connection.transaction().map_err(self.error("begin a transaction"))?;
        {
            let mut update = transaction
                .prepare_cached(
                    "UPDATE customers SET kek_id = ?2, wrapped_key = ?3 WHERE id = ?1 AND deleted_at IS NULL",
                )
                .map_err(self.error("prepare a key update"))?;
            for (id, kek_id, wrapped) in updates {
                update.execute(params![id, kek_id, wrapped]).map_err(self.error("update a wrapped key"))?;
            }
        }
        transaction.commit().map_err(self.error("commit key updates"))
    }

    // ---- agents ----

    /// Adds agents, or updates existing ones except their status, which changes only
    /// through [`Store::set_agent_status`] (each change a ledger entry of its own).
    pub fn upsert_agents(&self, agents: &[Agent]) -> Result<(), StoreError> {
        let mut connection = self.write();
        let transaction = connection.transaction().map_err(self.error("begin a transaction"))?;
        {
            let mut upsert = transaction
                .prepare_cached(
                    "INSERT INTO agents (id, name, team, site, employer, shift_start, shift_end, role, status)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT (id) DO UPDATE SET name = ?2, team = ?3, site = ?4, employer = ?5,
                        shift_start = ?6, shift_end = ?7, role = ?8",
                )
                .map_err(self.error("prepare the agent upsert"))?;
            for agent in agents {
                upsert
                    .execute(params![
                        agent.id,
                        agent.name,
                        agent.team,
                        agent.site,
                        agent.employer,
                        agent.shift.start_hour,
                        agent.shift.end_hour,
                        agent.role.name(),
                        agent.status.name()
                    ])
                    .map_err(self.error("write an agent"))?;
            }
        }
        transaction.commit().map_err(self.error("commit agents"))
    }

    /// The ids of the agents of one team at one site (a peer group), at most `limit`.
    pub fn peer_group(&self, team: &str, site: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        let connection = self.read();
        let mut statement = connection
            .prepare_cached("SELECT id FROM agents WHERE team = ?1 AND site = ?2 ORDER BY id LIMIT ?3")
            .map_err(self.error("list a peer group"))?;
        let rows = statement
            .query_map(params![team, site, limit as i64], |row| row.get(0))
            .map_err(self.error("list a peer group"))?;
        rows.collect::<Result<_, _>>().map_err(self.error("list a peer group"))
    }

    /// How many agents the directory holds, whatever their status.
    pub fn agent_count(&self) -> Result<u64, StoreError> {
        Ok(self
            .query_one("SELECT count(*) FROM agents", [], "count agents", |row| row.get::<_, i64>(0))?
            .unwrap_or(0)
            .max(0) as u64)
    }

    pub fn agent(&self, id: &str) -> Result<Option<Agent>, StoreError> {
        let row = self.query_one(
            "SELECT name, team, site, employer, shift_start, shift_end, role, status FROM agents WHERE id = ?1",
            [id],
            "read an agent",
            |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, u8>(4)?,
                    row.get::<_, u8>(5)?,
                    row.get::<_, String>(6)?,
                    row.get::<_, String>(7)?,
                ))
            },
        )?;
        let Some((name, team, site, employer, start, end, role, status)) = row else { return Ok(None) };
        let corrupt =
            |reason: String| StoreError::Corrupt { path: self.path.clone(), reason: format!("agent `{id}`: {reason}") };
        Ok(Some(Agent {
            id: id.to_string(),
            name,
            team,
            site,
            employer,
            shift: Shift::new(start, end).map_err(|error| corrupt(error.to_string()))?,
            role: role.parse().map_err(|error: cordon_directory::DirectoryError| corrupt(error.to_string()))?,
            status: status.parse().map_err(|error: cordon_directory::DirectoryError| corrupt(error.to_string()))?,
        }))
    }

    /// Sets an agent's status; false if there is no such agent.
    pub fn set_agent_status(&self, id: &str, status: AgentStatus) -> Result<bool, StoreError> {
        self.write()
            .execute("UPDATE agents SET status = ?2 WHERE id = ?1", params![id, status.name()])
            .map(|changed| changed > 0)
            .map_err(self.error("update an agent"))
    }

    // ---- tickets ----

    pub fn upsert_tickets(&self, tickets: &[Ticket]) -> Result<(), StoreError> {
        let mut connection = self.write();
        let transaction = connection.transaction().map_err(self.error("begin a transaction"))?;
        {
            let mut upsert = transaction
                .prepare_cached(
                    "INSERT INTO tickets (id, requester, category, status, assignee, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (id) DO UPDATE SET requester = ?2, category = ?3, status = ?4, assignee = ?5,
                        updated_at = ?7",
                )
                .map_err(self.error("prepare the ticket upsert"))?;
            for ticket in tickets {
                upsert
                    .execute(params![
                        ticket.id,
                        ticket.requester,
                        ticket.category,
                        ticket.status.name(),
                        ticket.assignee,
                        ticket.created_at,
                        ticket.updated_at
                    ])
                    .map_err(self.error("write a ticket"))?;
            }
        }
        transaction.commit().map_err(self.error("commit tickets"))
    }

    pub fn ticket(&self, id: &str) -> Result<Option<Ticket>, StoreError> {
        let row = self.query_one(
            "SELECT requester, category, status, assignee, created_at, updated_at FROM tickets WHERE id = ?1",
            [id],
            "read a ticket",
            |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, Option<String>>(3)?,
                    row.get::<_, i64>(4)?,
                    row.get::<_, i64>(5)?,
                ))
            },
        )?;
        let Some((requester, category, status, assignee, created_at, updated_at)) = row else { return Ok(None) };
        let status = status.parse().map_err(|error: cordon_directory::DirectoryError| StoreError::Corrupt {
            path: self.path.clone(),
            reason: format!("ticket `{id}`: {error}"),
        })?;
        Ok(Some(Ticket { id: id.to_string(), requester, category, status, assignee, created_at, updated_at }))
    }

    /// The open tickets assigned to `assignee`, most recently updated first, at most `limit`.
    pub fn open_tickets_of(&self, assignee: &str, limit: usize) -> Result<Vec<Ticket>, StoreError> {
        let connection = self.read();
        let mut statement = connection
            .prepare_cached(
                "SELECT id FROM tickets WHERE assignee = ?1 AND status = 'open' ORDER BY updated_at DESC, id LIMIT ?2",
            )
            .map_err(self.error("list tickets"))?;
        let ids: Vec<String> = statement
            .query_map(params![assignee, limit as i64], |row| row.get(0))
            .map_err(self.error("list tickets"))?
            .collect::<Result<_, _>>()
            .map_err(self.error("list tickets"))?;
        drop(statement);
        drop(connection);
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
        let row = match assignee {
            Some(assignee) => self.query_one(
                "SELECT 1 FROM tickets WHERE requester = ?1 AND assignee = ?2 AND updated_at >= ?3 LIMIT 1",
                params![requester, assignee, since],
                "look up recent tickets",
                |row| row.get::<_, i64>(0),
            )?,
            None => self.query_one(
                "SELECT 1 FROM tickets WHERE requester = ?1 AND updated_at >= ?2 LIMIT 1",
                params![requester, since],
                "look up recent tickets",
                |row| row.get::<_, i64>(0),
            )?,
        };
        Ok(row.is_some())
    }

    // ---- alerts and the webhook outbox ----

    /// Stores alerts not stored yet and, when `webhook` is set, queues each new one for it,
    /// in one transaction (a crash between ledger and store is mended by the next replay).
    pub fn record_alerts(&self, alerts: &[StoredAlert], webhook: bool, now_ms: i64) -> Result<usize, StoreError> {
        let mut connection = self.write();
        let transaction = connection.transaction().map_err(self.error("begin storing alerts"))?;
        let mut added = 0;
        {
            let mut insert = transaction
                .prepare_cached(
                    "INSERT OR IGNORE INTO alerts (id, agent, level, time_ms, ledger_index, body, status)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'open')",
                )
                .map_err(self.error("store an alert"))?;
            let mut queue = transaction.prepare_cached(QUEUE_OUTBOX).map_err(self.error("queue an alert"))?;
            for alert in alerts {
                let inserted = insert
                    .execute(params![
                        alert.id as i64,
                        alert.agent,
                        alert.level,
                        alert.time_ms,
                        alert.ledger_index as i64,
                        alert.body
                    ])
                    .map_err(self.error("store an alert"))?;
                if inserted > 0 {
                    added += 1;
                    if webhook {
                        queue.execute(params!["alert", alert.body, now_ms]).map_err(self.error("queue an alert"))?;
                    }
                }
            }
        }
        transaction.commit().map_err(self.error("commit alerts"))?;
        Ok(added)
    }

    /// Alerts, newest first; only those with `status` if given.
    pub fn alerts(&self, status: Option<&str>, limit: usize) -> Result<Vec<StoredAlert>, StoreError> {
        let connection = self.read();
        let mut statement = connection
            .prepare_cached(
                "SELECT id, agent, level, time_ms, ledger_index, body, status, reason, decided_by, decided_at_ms
                 FROM alerts WHERE (?1 IS NULL OR status = ?1) ORDER BY id DESC LIMIT ?2",
            )
            .map_err(self.error("list alerts"))?;
        statement
            .query_map(params![status, limit as i64], alert_columns)
            .map_err(self.error("list alerts"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.error("list alerts"))
    }

    pub fn alert(&self, id: u64) -> Result<Option<StoredAlert>, StoreError> {
        self.query_one(
            "SELECT id, agent, level, time_ms, ledger_index, body, status, reason, decided_by, decided_at_ms
             FROM alerts WHERE id = ?1",
            [id as i64],
            "read an alert",
            alert_columns,
        )
    }

    /// Records an analyst's decision on an open alert; false if it was not open.
    pub fn decide_alert(&self, id: u64, status: &str, reason: &str, by: &str, at_ms: i64) -> Result<bool, StoreError> {
        let changed = self
            .write()
            .execute(
                "UPDATE alerts SET status = ?2, reason = ?3, decided_by = ?4, decided_at_ms = ?5
                 WHERE id = ?1 AND status = 'open'",
                params![id as i64, status, reason, by, at_ms],
            )
            .map_err(self.error("decide an alert"))?;
        Ok(changed > 0)
    }

    /// Messages due for delivery at `now_ms`, oldest first.
    /// Undelivered messages of `topic` due at `now_ms`, oldest first. Each topic is its own
    /// queue, so a receiver that is down holds up only its own messages.
    pub fn outbox_due(&self, topic: &str, now_ms: i64, limit: usize) -> Result<Vec<OutboxItem>, StoreError> {
        let connection = self.read();
        let mut statement = connection
            .prepare_cached(
                "SELECT id, topic, body, attempts FROM outbox
                 WHERE delivered_at_ms IS NULL AND topic = ?3 AND next_attempt_ms <= ?1 ORDER BY id LIMIT ?2",
            )
            .map_err(self.error("read the outbox"))?;
        statement
            .query_map(params![now_ms, limit as i64, topic], |row| {
                Ok(OutboxItem {
                    id: row.get::<_, i64>(0)? as u64,
                    topic: row.get(1)?,
                    body: row.get(2)?,
                    attempts: row.get::<_, i64>(3)? as u32,
                })
            })
            .map_err(self.error("read the outbox"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.error("read the outbox"))
    }

    pub fn outbox_delivered(&self, id: u64, now_ms: i64) -> Result<(), StoreError> {
        self.write()
            .execute(
                "UPDATE outbox SET delivered_at_ms = ?2, attempts = attempts + 1 WHERE id = ?1",
                params![id as i64, now_ms],
            )
            .map_err(self.error("mark a message delivered"))?;
        Ok(())
    }

    pub fn outbox_retry(&self, id: u64, next_attempt_ms: i64, error: &str) -> Result<(), StoreError> {
        self.write()
            .execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_ms = ?2, last_error = ?3 WHERE id = ?1",
                params![id as i64, next_attempt_ms, error],
            )
            .map_err(self.error("reschedule a message"))?;
        Ok(())
    }

    /// Messages not delivered yet.
    pub fn outbox_pending(&self) -> Result<u64, StoreError> {
        Ok(self
            .query_one("SELECT COUNT(*) FROM outbox WHERE delivered_at_ms IS NULL", [], "count the outbox", |row| {
                row.get::<_, i64>(0)
            })?
            .unwrap_or(0) as u64)
    }

    // ---- revoked tokens ----

    /// Records that the token `jti` is revoked (until `expires_at`, when it would have
    /// expired anyway), and forgets revocations that have run out.
    pub fn revoke_token(&self, jti: &str, expires_at: i64, now: i64) -> Result<(), StoreError> {
        let connection = self.write();
        connection
            .execute(
                "INSERT INTO revoked_tokens (jti, expires_at, revoked_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (jti) DO UPDATE SET expires_at = max(expires_at, ?2)",
                params![jti, expires_at, now],
            )
            .map_err(self.error("revoke a token"))?;
        connection
            .execute("DELETE FROM revoked_tokens WHERE expires_at <= ?1", [now])
            .map(drop)
            .map_err(self.error("forget expired revocations"))
    }

    /// The ids of revoked tokens that have not expired by `now`.
    pub fn revoked_tokens(&self, now: i64) -> Result<Vec<String>, StoreError> {
        let connection = self.read();
        let mut statement = connection
            .prepare_cached("SELECT jti FROM revoked_tokens WHERE expires_at > ?1")
            .map_err(self.error("read revoked tokens"))?;
        let rows = statement.query_map([now], |row| row.get(0)).map_err(self.error("read revoked tokens"))?;
        rows.collect::<Result<Vec<String>, _>>().map_err(self.error("read revoked tokens"))
    }

    // ---- approvals ----

    pub fn put_approval(&self, approval: &Approval) -> Result<(), StoreError> {
        self.write()
            .execute(
                "INSERT INTO approvals (id, kind, requester, customer_id, status, approver, created_at, decided_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (id) DO UPDATE SET status = ?5, approver = ?6, decided_at = ?8, expires_at = ?9",
                params![
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
        let connection = self.read();
        let mut statement = connection
            .prepare_cached(
                "SELECT id, kind, requester, customer_id, status, approver, created_at, decided_at, expires_at
                 FROM approvals WHERE id = ?1",
            )
            .map_err(self.error("read an approval"))?;
        let mut rows = statement.query_map([id], approval_columns).map_err(self.error("read an approval"))?;
        rows.next().transpose().map_err(self.error("read an approval"))?.map(|raw| self.approval_from(raw)).transpose()
    }

    /// Approvals waiting for a decision, oldest first, at most `limit`.
    pub fn requested_approvals(&self, limit: usize) -> Result<Vec<Approval>, StoreError> {
        let connection = self.read();
        let mut statement = connection
            .prepare_cached(
                "SELECT id, kind, requester, customer_id, status, approver, created_at, decided_at, expires_at
                 FROM approvals WHERE status = 'requested' ORDER BY created_at, id LIMIT ?1",
            )
            .map_err(self.error("list approvals"))?;
        let rows = statement.query_map([limit as i64], approval_columns).map_err(self.error("list approvals"))?;
        let mut found = Vec::new();
        for row in rows {
            found.push(self.approval_from(row.map_err(self.error("list approvals"))?)?);
        }
        Ok(found)
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
        let raws: Vec<RawApproval> = {
            let connection = self.read();
            let mut statement = connection
                .prepare_cached(
                    "SELECT id, kind, requester, customer_id, status, approver, created_at, decided_at, expires_at
                     FROM approvals WHERE requester = ?1 AND customer_id = ?2 AND kind = ?3 AND status = 'approved'",
                )
                .map_err(self.error("look up approvals"))?;
            statement
                .query_map(params![requester, customer, kind.name()], approval_columns)
                .map_err(self.error("look up approvals"))?
                .collect::<Result<_, _>>()
                .map_err(self.error("look up approvals"))?
        };
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
        let connection = self.read();
        let mut statement = connection
            .prepare_cached("SELECT DISTINCT requester FROM approvals WHERE status = 'approved'")
            .map_err(self.error("list approvals"))?;
        let agents = statement
            .query_map([], |row| row.get(0))
            .map_err(self.error("list approvals"))?
            .collect::<Result<_, _>>()
            .map_err(self.error("list approvals"))?;
        Ok(agents)
    }

    fn approval_from(&self, raw: RawApproval) -> Result<Approval, StoreError> {
        let corrupt = |error: cordon_directory::DirectoryError| StoreError::Corrupt {
            path: self.path.clone(),
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
        let connection = self.index.lock().unwrap_or_else(PoisonError::into_inner);
        connection
            .query_row("SELECT value FROM index_meta WHERE key = ?1", [key], |row| row.get::<_, i64>(0))
            .optional()
            .map(|value| value.unwrap_or(0).max(0) as u64)
            .map_err(self.error("read an index's position in the ledger"))
    }

    /// Records a follower index's `position` under `key`, in the caller's transaction, so
    /// the position moves with the rows it covers.
    pub(crate) fn set_index_position(
        &self,
        connection: &Connection,
        key: &str,
        position: u64,
    ) -> Result<(), StoreError> {
        connection
            .execute(
                "INSERT INTO index_meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, position as i64],
            )
            .map(drop)
            .map_err(self.error("record an index's position in the ledger"))
    }

    /// Writes access events read from ledger entries below `through`, and records that
    /// position, in one transaction: a crash leaves the index at its last whole batch, and
    /// reading the same entries again writes the same rows.
    pub fn add_access_events(&self, events: &[AccessEvent], through: u64) -> Result<(), StoreError> {
        let mut connection = self.index.lock().unwrap_or_else(PoisonError::into_inner);
        let transaction = connection.transaction().map_err(self.error("begin a transaction"))?;
        {
            let mut statement = transaction
                .prepare_cached(
                    "INSERT OR REPLACE INTO access_events
                 (ledger_index, time, agent_id, customer_id, ticket_id, action, fields, allowed, policies, request_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .map_err(self.error("prepare an access event"))?;
            for event in events {
                statement
                    .execute(params![
                        event.ledger_index as i64,
                        event.time,
                        event.agent_id,
                        event.customer_id,
                        event.ticket_id,
                        event.action,
                        event.fields.join(","),
                        event.allowed,
                        event.policies.join(","),
                        event.request_id
                    ])
                    .map_err(self.error("write an access event"))?;
            }
        }
        self.set_index_position(&transaction, ACCESS_THROUGH, through)?;
        transaction.commit().map_err(self.error("commit access events"))
    }

    /// Commits a small write to each database: whether the store can take writes now
    /// (readiness asks; a full or failed volume answers with the error).
    pub fn probe_writes(&self, now_ms: i64) -> Result<(), StoreError> {
        let probes = [
            (
                &self.writer,
                "INSERT INTO meta (key, value) VALUES ('write_probe', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            ),
            (
                &self.index,
                "INSERT INTO index_meta (key, value) VALUES ('write_probe', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            ),
        ];
        for (connection, probe) in probes {
            let connection = connection.lock().unwrap_or_else(PoisonError::into_inner);
            connection.execute(probe, [now_ms.to_string()]).map_err(self.error("write a probe"))?;
        }
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
        let connection = self.index.lock().unwrap_or_else(PoisonError::into_inner);
        let mut statement = connection.prepare_cached(sql).map_err(self.error("read access history"))?;
        let split = |text: String| -> Vec<String> {
            if text.is_empty() { Vec::new() } else { text.split(',').map(str::to_string).collect() }
        };
        let before = i64::try_from(before).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let events = statement
            .query_map(params![customer, before, limit], |row| {
                Ok(AccessEvent {
                    ledger_index: row.get::<_, i64>(0)? as u64,
                    time: row.get(1)?,
                    agent_id: row.get(2)?,
                    customer_id: row.get(3)?,
                    ticket_id: row.get(4)?,
                    action: row.get(5)?,
                    fields: split(row.get(6)?),
                    allowed: row.get(7)?,
                    policies: split(row.get(8)?),
                    request_id: row.get(9)?,
                })
            })
            .map_err(self.error("read access history"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.error("read access history"))?;
        Ok(events)
    }

    /// The searches that showed `customer` among their hits below ledger index `before`,
    /// newest first, at most `limit`, each with how many customers it showed in all (from
    /// the exposure index).
    pub fn search_hits_before(&self, customer: &str, before: u64, limit: usize) -> Result<Vec<SearchHit>, StoreError> {
        let connection = self.index.lock().unwrap_or_else(PoisonError::into_inner);
        let mut statement = connection
            .prepare_cached(
                "SELECT e.ledger_index, e.time, e.agent_id,
                        (SELECT COUNT(*) FROM exposures o
                         WHERE o.agent_id = e.agent_id AND o.time = e.time AND o.ledger_index = e.ledger_index)
                 FROM exposures e
                 WHERE e.customer_id = ?1 AND e.action = 'search' AND e.ledger_index < ?2
                 ORDER BY e.ledger_index DESC LIMIT ?3",
            )
            .map_err(self.error("read search hits"))?;
        let before = i64::try_from(before).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let hits = statement
            .query_map(params![customer, before, limit], |row| {
                Ok(SearchHit {
                    ledger_index: row.get::<_, i64>(0)? as u64,
                    time_ms: row.get(1)?,
                    agent_id: row.get(2)?,
                    customers_shown: row.get::<_, i64>(3)? as u64,
                })
            })
            .map_err(self.error("read search hits"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.error("read search hits"))?;
        Ok(hits)
    }
}

type RawApproval = (String, String, String, String, String, Option<String>, i64, Option<i64>, Option<i64>);

fn approval_columns(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawApproval> {
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
    let connection = Connection::open(path).map_err(sql_error(path, "open"))?;
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
        .map_err(sql_error(path, "configure"))?;
    Ok(connection)
}

pub(crate) fn sql_error(path: &Path, action: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    let path = path.to_path_buf();
    move |error| StoreError::Sql { path: path.clone(), action, message: error.to_string() }
}

fn alert_columns(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredAlert> {
    Ok(StoredAlert {
        id: row.get::<_, i64>(0)? as u64,
        agent: row.get(1)?,
        level: row.get(2)?,
        time_ms: row.get(3)?,
        ledger_index: row.get::<_, i64>(4)? as u64,
        body: row.get(5)?,
        status: row.get(6)?,
        reason: row.get(7)?,
        decided_by: row.get(8)?,
        decided_at_ms: row.get(9)?,
    })
}
