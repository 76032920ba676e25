//! The audit ledger sequenced through PostgreSQL, for several gateways sharing one store (as
//! Trillian Tessera's MySQL storage sequences its log):
//!
//! - **Sequencing.** An append is a transaction that locks the one `ledger_sequence` row,
//!   takes the next indexes, inserts the entries and commits (durable on commit:
//!   `synchronous_commit` is set on for the session). The row lock orders writers across
//!   gateways, so indexes are assigned in commit order with no gap. A [`Turn`] is that
//!   transaction held open: its holder first reads what other gateways appended since it last
//!   looked (detection scores in ledger order), then adds its entries.
//! - **Integration.** One integrator at a time, elected through a session advisory lock (a
//!   holder that dies loses it with its connection, and another gateway's integrator takes
//!   it), hashes committed entries into the tiles of the C2SP tlog-tiles layout and signs a
//!   checkpoint, in one transaction that also locks the checkpoint row and extends only the
//!   tree it read, so even two integrators could not sign inconsistent checkpoints.
//! - **Reading.** Tiles and checkpoints are rows: every gateway serves the same tiles, entry
//!   bundles and checkpoint, and proves inclusion and consistency from them.
//!
//! Entries are opaque bytes, as in the file ledger.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use cordon_ledger::{
    Checkpoint, ENTRY_SIZE_MAX, FullTile, Hash, LedgerError, SignedCheckpoint, Signer, TILE_WIDTH, TileHashes, TileId,
    TileKind, TileStack, consistency_proof, decode_hashes, encode_hashes, format_receipt, inclusion_proof, leaf_hash,
    level_count, partial_width, push_bundle_entry, tile_width,
};

use crate::db::{Conn, DbError, Sql, Tx, values};
use crate::store::{StoreError, db_error};

/// The session advisory lock whose holder integrates ("cordon-i" in ASCII).
const INTEGRATOR_LOCK: i64 = 0x636f_7264_6f6e_2d69;
/// Reader connections of a gateway's ledger handle.
const LEDGER_READERS: usize = 4;
/// Entries integrated in one transaction, at most: a gateway that takes over a long
/// backlog signs checkpoints as it goes.
const INTEGRATE_BATCH: i64 = 65_536;

/// Called with each entry's index and bytes, in order.
pub type EntryVisitor<'v> = &'v mut dyn FnMut(u64, &[u8]) -> Result<(), StoreError>;

/// The signing key as stored: the Ed25519 key wrapped by the key-encryption key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLedgerKey {
    pub origin: String,
    /// The verifier key (public), in C2SP note form.
    pub verifier: String,
    pub kek_id: String,
    pub wrapped_signing_key: Vec<u8>,
}

/// How the shared ledger integrates.
#[derive(Debug, Clone)]
pub struct SharedLedgerConfig {
    /// How often the integrator looks for new entries (and a gateway without the lock tries
    /// to take it).
    pub integrate_every: Duration,
}

impl Default for SharedLedgerConfig {
    fn default() -> Self {
        SharedLedgerConfig { integrate_every: Duration::from_millis(200) }
    }
}

/// A gateway's handle on the ledger sequenced through PostgreSQL.
pub struct SharedLedger {
    database: String,
    config: crate::postgres::Server,
    origin: String,
    writer: std::sync::Mutex<Conn>,
    /// Readers, taken in turn: every request of a gateway asks the ledger's size.
    readers: Vec<std::sync::Mutex<Conn>>,
    next_reader: std::sync::atomic::AtomicUsize,
    integrator: std::sync::Mutex<Option<JoinHandle<()>>>,
    stop: Arc<AtomicBool>,
    holds_lock: Arc<AtomicBool>,
}

impl std::fmt::Debug for SharedLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedLedger({})", self.database)
    }
}

/// A writer's turn: the sequence row locked in an open transaction. Entries pushed get the
/// next indexes; [`Turn::commit`] makes them durable, dropping the turn appends nothing.
pub struct Turn<'l> {
    transaction: Tx<'l>,
    database: &'l str,
    /// The index the first entry of this turn gets: every entry below it is committed.
    first: u64,
    entries: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Turn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Turn(first {}, {} entries)", self.first, self.entries.len())
    }
}

impl SharedLedger {
    /// Stores the ledger's key if none is stored yet, and returns the one stored: gateways
    /// initialising one database at once all end up with the first one's key.
    pub fn store_key(url: &str, key: &StoredLedgerKey) -> Result<StoredLedgerKey, StoreError> {
        let (config, database) = crate::postgres::config(url)?;
        crate::postgres::migrate(&config, &database)?;
        let mut connection = Conn::postgres(&config).map_err(db_error(&database, "connect"))?;
        connection
            .execute(
                "INSERT INTO ledger_key (id, origin, verifier, kek_id, wrapped_signing_key) VALUES (0, ?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO NOTHING",
                values![key.origin, key.verifier, key.kek_id, key.wrapped_signing_key],
            )
            .map_err(db_error(&database, "store the ledger's key"))?;
        read_key(&mut connection, &database)?.ok_or_else(|| StoreError::Corrupt {
            database: database.clone(),
            reason: "the ledger's key was stored but cannot be read back".into(),
        })
    }

    /// Replaces the stored key's wrapping (a KEK rotation), if it is still under `from`.
    pub fn rewrap_key(url: &str, from: &str, to: &str, wrapped_signing_key: &[u8]) -> Result<(), StoreError> {
        let (config, database) = crate::postgres::config(url)?;
        let mut connection = Conn::postgres(&config).map_err(db_error(&database, "connect"))?;
        connection
            .execute(
                "UPDATE ledger_key SET kek_id = ?2, wrapped_signing_key = ?3 WHERE id = 0 AND kek_id = ?1",
                values![from, to, wrapped_signing_key],
            )
            .map(drop)
            .map_err(db_error(&database, "rewrap the ledger's key"))
    }

    /// The ledger's stored key, if it has one yet.
    pub fn key(url: &str) -> Result<Option<StoredLedgerKey>, StoreError> {
        let (config, database) = crate::postgres::config(url)?;
        crate::postgres::migrate(&config, &database)?;
        let mut connection = Conn::postgres(&config).map_err(db_error(&database, "connect"))?;
        read_key(&mut connection, &database)
    }

    /// Opens the ledger at `url` with the signing key `signer` (unwrapped by the caller from
    /// the stored key), signing the empty tree's checkpoint if there is none, and starts this
    /// gateway's integrator.
    pub fn open(url: &str, signer: Signer, settings: SharedLedgerConfig) -> Result<SharedLedger, StoreError> {
        let (config, database) = crate::postgres::config(url)?;
        crate::postgres::migrate(&config, &database)?;
        let connect = |action| durable_session(&config).map_err(db_error(&database, action));
        let mut writer = connect("connect the ledger's writer")?;
        let stored = read_key(&mut writer, &database)?;
        if stored.as_ref().is_none_or(|stored| stored.verifier != signer.verifier().to_string()) {
            return Err(StoreError::Corrupt {
                database,
                reason: "the signing key given is not the ledger's stored key".into(),
            });
        }
        let empty = Checkpoint { origin: signer.name().to_string(), size: 0, root: TileStack::new().root() };
        let note = signer.sign(&empty.to_text()).map_err(|error| StoreError::Corrupt {
            database: database.clone(),
            reason: format!("signing the empty checkpoint: {error}"),
        })?;
        writer
            .execute(
                "INSERT INTO ledger_checkpoint (id, size, note) VALUES (0, 0, ?1) ON CONFLICT (id) DO NOTHING",
                values![note],
            )
            .map_err(db_error(&database, "sign the empty tree"))?;
        let readers = (0..LEDGER_READERS)
            .map(|_| connect("connect the ledger's readers").map(std::sync::Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        let stop = Arc::new(AtomicBool::new(false));
        let holds_lock = Arc::new(AtomicBool::new(false));
        let integrator = {
            let (config, name, stop, holds_lock) =
                (config.clone(), database.clone(), Arc::clone(&stop), Arc::clone(&holds_lock));
            std::thread::Builder::new()
                .name("ledger-integrator".into())
                .spawn(move || integrate_loop(&config, &name, &signer, &settings, &stop, &holds_lock))
                .map_err(|error| StoreError::Sql {
                    database: database.clone(),
                    action: "start the integrator",
                    message: error.to_string(),
                })?
        };
        Ok(SharedLedger {
            origin: empty.origin,
            database,
            config,
            writer: std::sync::Mutex::new(writer),
            readers,
            next_reader: std::sync::atomic::AtomicUsize::new(0),
            integrator: std::sync::Mutex::new(Some(integrator)),
            stop,
            holds_lock,
        })
    }

    /// Opens the ledger at `url` for reading only: no signing key, no integrator (an
    /// auditor's export, a verification).
    pub fn open_reader(url: &str) -> Result<SharedLedger, StoreError> {
        let (config, database) = crate::postgres::config(url)?;
        let connect = |action| durable_session(&config).map_err(db_error(&database, action));
        let mut reader = connect("connect the ledger's reader")?;
        let origin = read_key(&mut reader, &database)?.map(|key| key.origin).ok_or_else(|| StoreError::Corrupt {
            database: database.clone(),
            reason: "the database holds no ledger (make a deployment in it with `cordon init --store`)".into(),
        })?;
        Ok(SharedLedger {
            origin,
            writer: std::sync::Mutex::new(connect("connect the ledger's writer")?),
            readers: vec![std::sync::Mutex::new(reader)],
            next_reader: std::sync::atomic::AtomicUsize::new(0),
            database,
            config,
            integrator: std::sync::Mutex::new(None),
            stop: Arc::new(AtomicBool::new(false)),
            holds_lock: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Writes the published tree (the checkpoint and every tile it names) into `into`, in
    /// the C2SP layout the file ledger uses: every `cordon log` command, and any tlog tool,
    /// reads the copy as it reads a file ledger. The size it covers.
    pub fn export(&self, into: &std::path::Path) -> Result<u64, StoreError> {
        let failed = |error: std::io::Error| StoreError::Sql {
            database: into.display().to_string(),
            action: "write the exported log",
            message: error.to_string(),
        };
        let signed = self.checkpoint()?;
        let size = signed.checkpoint.size;
        for id in cordon_ledger::published_tiles(size) {
            let bytes = self.tile_bytes_at(id, size)?.ok_or_else(|| StoreError::Corrupt {
                database: self.database.clone(),
                reason: format!(
                    "the checkpoint of {size} names `{}`, which the database cannot give",
                    id.path().display()
                ),
            })?;
            let path = into.join(id.path());
            if let Some(folder) = path.parent() {
                std::fs::create_dir_all(folder).map_err(failed)?;
            }
            std::fs::write(&path, bytes).map_err(failed)?;
        }
        std::fs::write(into.join(cordon_ledger::CHECKPOINT_FILE), signed.note).map_err(failed)?;
        Ok(size)
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Whether this gateway's integrator holds the lock now.
    pub fn is_integrator(&self) -> bool {
        self.holds_lock.load(Ordering::Acquire)
    }

    /// The next reader connection in turn.
    /// A reader connection: the first free one from a rotating start, or, when all are in
    /// use, the one at the start once it is free.
    fn reader(&self) -> Result<std::sync::MutexGuard<'_, Conn>, StoreError> {
        let count = self.readers.len();
        if count == 0 {
            return self.connection(&self.writer);
        }
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed) % count;
        for offset in 0..count {
            if let Some(slot) = self.readers.get((start + offset) % count)
                && let Ok(connection) = slot.try_lock()
            {
                return self.opened(connection);
            }
        }
        match self.readers.get(start) {
            Some(reader) => self.connection(reader),
            None => self.connection(&self.writer),
        }
    }

    fn connection<'s>(&self, slot: &'s std::sync::Mutex<Conn>) -> Result<std::sync::MutexGuard<'s, Conn>, StoreError> {
        self.opened(slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// `connection`, opened again first if it was lost.
    fn opened<'s>(
        &self,
        mut connection: std::sync::MutexGuard<'s, Conn>,
    ) -> Result<std::sync::MutexGuard<'s, Conn>, StoreError> {
        if connection.is_lost() {
            *connection = durable_session(&self.config).map_err(db_error(&self.database, "connect again"))?;
        }
        Ok(connection)
    }

    /// Opens this handle's connections again (after the server was unreachable).
    pub fn reconnect(&self) -> Result<(), StoreError> {
        // A connection in use now (perhaps by this very thread, in a turn) is left to its user;
        // a lost one is replaced when it is next taken.
        for slot in std::iter::once(&self.writer).chain(&self.readers) {
            if let Ok(mut connection) = slot.try_lock() {
                *connection = durable_session(&self.config).map_err(db_error(&self.database, "connect again"))?;
            }
        }
        Ok(())
    }

    /// Takes the writers' turn: waits for the sequence row (another gateway's turn ends
    /// first) and returns the open transaction holding it. Hold it briefly: every gateway's
    /// appends wait meanwhile.
    pub fn turn<R>(&self, work: impl FnOnce(&mut Turn<'_>) -> Result<R, StoreError>) -> Result<(R, u64), StoreError> {
        let mut connection = self.connection(&self.writer)?;
        let error = db_error(&self.database, "append to the ledger");
        let mut transaction = connection.transaction().map_err(&error)?;
        let first = transaction
            .query_row("SELECT next FROM ledger_sequence WHERE id = 0 FOR UPDATE", values![], |row| row.get::<i64>(0))
            .map_err(&error)?
            .ok_or_else(|| StoreError::Corrupt {
                database: self.database.clone(),
                reason: "no ledger sequence".into(),
            })?;
        let mut turn = Turn { transaction, database: &self.database, first: first.max(0) as u64, entries: Vec::new() };
        let result = work(&mut turn)?;
        let first = turn.commit()?;
        Ok((result, first))
    }

    /// Appends `entries` with consecutive indexes, durable on return; the first one's index.
    pub fn append(&self, entries: Vec<Vec<u8>>) -> Result<u64, StoreError> {
        let ((), first) = self.turn(|turn| {
            turn.push(entries)?;
            Ok(())
        })?;
        Ok(first)
    }

    /// Entries committed so far (every gateway's).
    pub fn size(&self) -> Result<u64, StoreError> {
        let size = self
            .reader()?
            .query_row("SELECT next FROM ledger_sequence WHERE id = 0", values![], |row| row.get::<i64>(0))
            .map_err(db_error(&self.database, "read the ledger's size"))?
            .unwrap_or(0);
        Ok(size.max(0) as u64)
    }

    /// The latest signed checkpoint.
    pub fn checkpoint(&self) -> Result<SignedCheckpoint, StoreError> {
        let note = self
            .reader()?
            .query_row("SELECT note FROM ledger_checkpoint WHERE id = 0", values![], |row| row.get::<String>(0))
            .map_err(db_error(&self.database, "read the checkpoint"))?
            .ok_or_else(|| StoreError::Corrupt { database: self.database.clone(), reason: "no checkpoint".into() })?;
        SignedCheckpoint::parse_unverified(&note)
            .map_err(|error| StoreError::Corrupt { database: self.database.clone(), reason: error.to_string() })
    }

    /// Integrates what is committed now and signs a checkpoint covering it, if this gateway
    /// can take the integrator's lock at once; else waits for the holder to cover `size`.
    pub fn checkpoint_covering(&self, size: u64, timeout: Duration) -> Result<SignedCheckpoint, StoreError> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let signed = self.checkpoint()?;
            if signed.checkpoint.size >= size {
                return Ok(signed);
            }
            if std::time::Instant::now() >= deadline {
                return Err(StoreError::Sql {
                    database: self.database.clone(),
                    action: "wait for a checkpoint",
                    message: format!(
                        "no checkpoint covers {size} entries after {} ms (the latest covers {}): is an integrator running?",
                        timeout.as_millis(),
                        signed.checkpoint.size
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Calls `visit` with each committed entry from `from` up to `to`, in order. Read a page
    /// at a time (see [`ENTRIES_PER_PAGE`]), the connection let go before `visit` sees it.
    pub fn for_each_entry(&self, from: u64, to: u64, visit: EntryVisitor<'_>) -> Result<(), StoreError> {
        let mut at = from;
        while at < to {
            let end = to.min(at.saturating_add(ENTRIES_PER_PAGE));
            let mut page = Vec::new();
            {
                let mut connection = self.reader()?;
                read_entries(&mut *connection, &self.database, at, end, &mut |index, bytes| {
                    page.push((index, bytes.to_vec()));
                    Ok(())
                })?;
            }
            for (index, bytes) in &page {
                visit(*index, bytes)?;
            }
            at = end;
        }
        Ok(())
    }

    /// Hash tile `index` of `level` as the tree of `size` has it.
    pub fn hash_tile(&self, level: u8, index: u64, size: u64) -> Result<Vec<Hash>, StoreError> {
        let mut connection = self.reader()?;
        hash_tile(&mut *connection, &self.database, level, index, size)
    }

    /// A C2SP tile's bytes, as every gateway serves them (`tile/L/N[.p/W]` hashes or
    /// `tile/entries/N[.p/W]` an entry bundle), if it lies within the published tree.
    pub fn tile_bytes(&self, id: TileId) -> Result<Option<Vec<u8>>, StoreError> {
        let published = self.checkpoint()?.checkpoint.size;
        self.tile_bytes_at(id, published)
    }

    /// [`SharedLedger::tile_bytes`] within the tree of `size` entries.
    fn tile_bytes_at(&self, id: TileId, size: u64) -> Result<Option<Vec<u8>>, StoreError> {
        if id.width == 0 || id.width > TILE_WIDTH || !id.within(size) {
            return Ok(None);
        }
        let mut connection = self.reader()?;
        match id.kind {
            TileKind::Hashes { level } => {
                let hashes = stored_tile(&mut *connection, &self.database, level, id.index)?;
                Ok(hashes.get(..id.width).map(encode_hashes))
            }
            TileKind::Entries => {
                let first = id.index * TILE_WIDTH as u64;
                let mut bundle = Vec::new();
                read_entries(&mut *connection, &self.database, first, first + id.width as u64, &mut |_, entry| {
                    push_bundle_entry(&mut bundle, entry);
                    Ok(())
                })?;
                Ok(Some(bundle))
            }
        }
    }

    /// The inclusion proof of entry `index` in the tree of `size` (at most the published size).
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, StoreError> {
        if index >= size {
            return Err(self.out_of_range(index, size));
        }
        let mut connection = self.reader()?;
        let database = self.database.clone();
        let mut tiles = TileHashes::new(size, |level, tile| {
            hash_tile(&mut *connection, &database, level, tile, size)
                .map_err(|error| LedgerError::Failed { reason: error.to_string() })
        });
        inclusion_proof(&mut tiles, index, size).map_err(|error| self.ledger_error(error))
    }

    /// The consistency proof from the tree of `old_size` to the tree of `new_size`.
    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash>, StoreError> {
        if old_size > new_size {
            return Err(self.out_of_range(old_size, new_size));
        }
        let mut connection = self.reader()?;
        let database = self.database.clone();
        let mut tiles = TileHashes::new(new_size, |level, tile| {
            hash_tile(&mut *connection, &database, level, tile, new_size)
                .map_err(|error| LedgerError::Failed { reason: error.to_string() })
        });
        consistency_proof(&mut tiles, old_size, new_size).map_err(|error| self.ledger_error(error))
    }

    /// A C2SP tlog-proof receipt for entry `index` against the current checkpoint.
    pub fn receipt(&self, index: u64) -> Result<String, StoreError> {
        let signed = self.checkpoint()?;
        let proof = self.inclusion_proof(index, signed.checkpoint.size)?;
        Ok(format_receipt(index, &proof, &signed.note))
    }

    fn out_of_range(&self, index: u64, size: u64) -> StoreError {
        StoreError::Sql {
            database: self.database.clone(),
            action: "prove",
            message: format!("index {index} is not below size {size}"),
        }
    }

    fn ledger_error(&self, error: LedgerError) -> StoreError {
        StoreError::Corrupt { database: self.database.clone(), reason: error.to_string() }
    }

    /// Stops this gateway's integrator, which first integrates what is committed if it holds
    /// the lock (another gateway's integrator takes over from there).
    pub fn close(self) {
        self.stop_integrating();
    }

    /// [`SharedLedger::close`] without giving the handle up (it still reads).
    pub fn stop_integrating(&self) {
        self.stop.store(true, Ordering::Release);
        let thread = self.integrator.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for SharedLedger {
    fn drop(&mut self) {
        self.stop_integrating();
    }
}

impl Turn<'_> {
    /// The index this turn's first entry gets (every entry below it is committed).
    pub fn first(&self) -> u64 {
        self.first
    }

    /// The index the next pushed entry gets.
    pub fn next(&self) -> u64 {
        self.first + self.entries.len() as u64
    }

    /// Calls `visit` with each committed entry from `from` up to this turn's first: what
    /// other gateways appended since the caller last looked.
    pub fn for_each_entry_before(&mut self, from: u64, visit: EntryVisitor<'_>) -> Result<(), StoreError> {
        let first = self.first;
        read_entries(&mut self.transaction, self.database, from, first, visit)
    }

    /// Adds entries to this turn; the index the first of them gets. Refused if any is
    /// larger than an entry may be (nothing is added then).
    pub fn push(&mut self, entries: Vec<Vec<u8>>) -> Result<u64, StoreError> {
        if let Some(entry) = entries.iter().find(|entry| entry.len() > ENTRY_SIZE_MAX) {
            return Err(StoreError::Sql {
                database: self.database.to_string(),
                action: "append to the ledger",
                message: LedgerError::EntryTooLarge { size: entry.len() }.to_string(),
            });
        }
        let index = self.next();
        self.entries.extend(entries);
        Ok(index)
    }

    /// Inserts the entries, moves the sequence on and commits: durable once this returns.
    /// Returns the first entry's index.
    fn commit(self) -> Result<u64, StoreError> {
        let Turn { mut transaction, database, first, entries } = self;
        let error = db_error(database, "append to the ledger");
        if !entries.is_empty() {
            let count = entries.len() as i64;
            // One statement for the whole batch: the entries as one array parameter.
            transaction
                .execute_postgres(
                    "INSERT INTO ledger_entries (idx, data)
                     SELECT $1 + ordinality - 1, data FROM unnest($2::bytea[]) WITH ORDINALITY AS batch(data, ordinality)",
                    &[&(first as i64), &entries],
                )
                .map_err(&error)?;
            transaction
                .execute("UPDATE ledger_sequence SET next = next + ?1 WHERE id = 0", values![count])
                .map_err(&error)?;
        }
        transaction.commit().map_err(&error)?;
        Ok(first)
    }
}

/// A connection whose commits are durable on the server before they return, whatever the
/// server's default: an acknowledged entry must survive the server's crash.
fn durable_session(config: &crate::postgres::Server) -> Result<Conn, DbError> {
    let mut connection = Conn::postgres(config)?;
    connection.batch("SET synchronous_commit = on")?;
    Ok(connection)
}

fn read_key(connection: &mut Conn, database: &str) -> Result<Option<StoredLedgerKey>, StoreError> {
    connection
        .query_row(
            "SELECT origin, verifier, kek_id, wrapped_signing_key FROM ledger_key WHERE id = 0",
            values![],
            |row| {
                Ok(StoredLedgerKey {
                    origin: row.get(0)?,
                    verifier: row.get(1)?,
                    kek_id: row.get(2)?,
                    wrapped_signing_key: row.get(3)?,
                })
            },
        )
        .map_err(db_error(database, "read the ledger's key"))
}

fn read_entries(
    db: &mut impl Sql,
    database: &str,
    from: u64,
    to: u64,
    visit: EntryVisitor<'_>,
) -> Result<(), StoreError> {
    let mut expected = from;
    let mut failure = None;
    db.each_row(
        "SELECT idx, data FROM ledger_entries WHERE idx >= ?1 AND idx < ?2 ORDER BY idx",
        values![from as i64, to as i64],
        &mut |row| {
            if failure.is_some() {
                return Ok(());
            }
            let index = row.get::<i64>(0)?.max(0) as u64;
            let data: Vec<u8> = row.get(1)?;
            if index != expected {
                failure = Some(StoreError::Corrupt {
                    database: database.to_string(),
                    reason: format!("ledger entry {expected} is missing (the next is {index})"),
                });
                return Ok(());
            }
            expected += 1;
            if let Err(error) = visit(index, &data) {
                failure = Some(error);
            }
            Ok(())
        },
    )
    .map_err(db_error(database, "read ledger entries"))?;
    if let Some(error) = failure {
        return Err(error);
    }
    if expected < to {
        return Err(StoreError::Corrupt {
            database: database.to_string(),
            reason: format!("ledger entries {expected} to {to} are missing"),
        });
    }
    Ok(())
}

/// Tile `index` of `level` as stored (it may have grown past what a tree of some size has).
fn stored_tile(db: &mut impl Sql, database: &str, level: u8, index: u64) -> Result<Vec<Hash>, StoreError> {
    let row = db
        .query_row(
            "SELECT width, hashes FROM ledger_tiles WHERE level = ?1 AND idx = ?2",
            values![i64::from(level), index as i64],
            |row| Ok((row.get::<i64>(0)?, row.get::<Vec<u8>>(1)?)),
        )
        .map_err(db_error(database, "read a tile"))?;
    let Some((width, bytes)) = row else { return Ok(Vec::new()) };
    decode_hashes(&bytes, width.max(0) as usize, false).ok_or_else(|| StoreError::Corrupt {
        database: database.to_string(),
        reason: format!("tile {level}/{index} holds {} bytes for {width} hashes", bytes.len()),
    })
}

/// Hash tile `index` of `level` as the tree of `size` has it: the stored tile cut to the
/// width it has at that size (hashes only ever extend a tile).
fn hash_tile(db: &mut impl Sql, database: &str, level: u8, index: u64, size: u64) -> Result<Vec<Hash>, StoreError> {
    let width = tile_width(size, level, index);
    let mut hashes = stored_tile(db, database, level, index)?;
    if hashes.len() < width {
        return Err(StoreError::Corrupt {
            database: database.to_string(),
            reason: format!("tile {level}/{index} holds {} hashes, the tree of {size} needs {width}", hashes.len()),
        });
    }
    hashes.truncate(width);
    Ok(hashes)
}

/// The integrator: while not stopped, holds (or tries to take) the advisory lock on a session
/// of its own, and integrates whatever is committed.
fn integrate_loop(
    config: &crate::postgres::Server,
    database: &str,
    signer: &Signer,
    settings: &SharedLedgerConfig,
    stop: &AtomicBool,
    holds_lock: &AtomicBool,
) {
    let mut session: Option<Conn> = None;
    let mut stack: Option<TileStack> = None;
    // A refusal to sign is said once, not at every try.
    let mut refused: Option<String> = None;
    while !stop.load(Ordering::Acquire) {
        if session.as_ref().is_none_or(Conn::is_lost) {
            holds_lock.store(false, Ordering::Release);
            stack = None;
            // The server notices a dead holder's session within seconds (every session sets
            // server-side keepalives: `postgres::config`) and frees the lock for another gateway.
            session = durable_session(config).ok();
        }
        if let Some(connection) = session.as_mut() {
            if !holds_lock.load(Ordering::Acquire) {
                let taken = connection
                    .query_row("SELECT pg_try_advisory_lock(?1)::text", values![INTEGRATOR_LOCK], |row| {
                        row.get::<String>(0)
                    })
                    .ok()
                    .flatten()
                    .is_some_and(|taken| taken == "true");
                holds_lock.store(taken, Ordering::Release);
            }
            if holds_lock.load(Ordering::Acquire) {
                match integrate(connection, database, signer, &mut stack) {
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err(error @ StoreError::Corrupt { .. }) => {
                        let said = error.to_string();
                        if refused.as_ref() != Some(&said) {
                            tracing::error!(%error, "the ledger cannot be integrated: no checkpoint is signed");
                            refused = Some(said);
                        }
                        stack = None;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "integrating the ledger failed; trying again");
                        stack = None;
                    }
                }
            }
        }
        std::thread::sleep(settings.integrate_every);
    }
    if let Some(mut connection) = session
        && holds_lock.swap(false, Ordering::AcqRel)
    {
        // A gateway that stops while it integrates leaves a checkpoint covering every entry
        // committed so far (the last gateway to stop leaves the log whole).
        while let Ok(true) = integrate(&mut connection, database, signer, &mut stack) {}
        let _ = connection.query_row("SELECT pg_advisory_unlock(?1)::text", values![INTEGRATOR_LOCK], |_| Ok(()));
    }
}

/// Integrates committed entries past the checkpoint (at most a batch) and signs a
/// checkpoint, in one transaction; whether there may be more to do.
fn integrate(
    connection: &mut Conn,
    database: &str,
    signer: &Signer,
    cached: &mut Option<TileStack>,
) -> Result<bool, StoreError> {
    let error = db_error(database, "integrate the ledger");
    let mut transaction = connection.transaction().map_err(&error)?;
    let (size, note) = transaction
        .query_row("SELECT size, note FROM ledger_checkpoint WHERE id = 0 FOR UPDATE", values![], |row| {
            Ok((row.get::<i64>(0)?, row.get::<String>(1)?))
        })
        .map_err(&error)?
        .ok_or_else(|| StoreError::Corrupt { database: database.to_string(), reason: "no checkpoint".into() })?;
    let size = size.max(0) as u64;
    let next = transaction
        .query_row("SELECT next FROM ledger_sequence WHERE id = 0", values![], |row| row.get::<i64>(0))
        .map_err(&error)?
        .unwrap_or(0)
        .max(0) as u64;
    if next <= size {
        return Ok(false);
    }
    let mut stack = match cached.take() {
        Some(stack) if stack.size() == size => stack,
        _ => {
            let stack = load_stack(&mut transaction, database, size)?;
            check_against_checkpoint(&stack, &note, signer, database)?;
            stack
        }
    };
    let end = next.min(size + INTEGRATE_BATCH as u64);
    let mut full: Vec<FullTile> = Vec::new();
    read_entries(&mut transaction, database, size, end, &mut |_, entry| {
        stack.push(leaf_hash(entry), |tile| full.push(tile));
        Ok(())
    })?;
    let mut tiles: Vec<(u8, u64, Vec<Hash>)> =
        full.into_iter().map(|tile| (tile.level, tile.index, tile.hashes)).collect();
    for level in 0..stack.levels() {
        let hashes = stack.partial(level);
        if !hashes.is_empty() {
            tiles.push((level, end >> (8 * (u32::from(level) + 1)), hashes.to_vec()));
        }
    }
    for (level, index, hashes) in tiles {
        // A tile only ever grows: a stored tile at least as wide is left as it is.
        transaction
            .execute(
                "INSERT INTO ledger_tiles (level, idx, width, hashes) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (level, idx) DO UPDATE SET width = excluded.width, hashes = excluded.hashes
                 WHERE ledger_tiles.width < excluded.width",
                values![i64::from(level), index as i64, hashes.len() as i64, encode_hashes(&hashes)],
            )
            .map_err(&error)?;
    }
    let checkpoint = Checkpoint { origin: signer.name().to_string(), size: end, root: stack.root() };
    let note = signer.sign(&checkpoint.to_text()).map_err(|failure| StoreError::Corrupt {
        database: database.to_string(),
        reason: format!("signing a checkpoint: {failure}"),
    })?;
    transaction
        .execute("UPDATE ledger_checkpoint SET size = ?1, note = ?2 WHERE id = 0", values![end as i64, note])
        .map_err(&error)?;
    transaction.commit().map_err(&error)?;
    *cached = Some(stack);
    Ok(end < next)
}

/// Before an integrator signs over a tree's right edge read from the tables, the edge must
/// make the root the signed checkpoint names: else a changed tile (by someone with write
/// access to the database) would be signed over, and every later checkpoint would carry it.
/// An integrator that refuses signs nothing; appends still commit, unproven, until the
/// tables are put right (restored, or checked with `cordon log export` and `cordon log verify`).
fn check_against_checkpoint(stack: &TileStack, note: &str, signer: &Signer, database: &str) -> Result<(), StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt { database: database.to_string(), reason };
    let signed = Checkpoint::open(note, &signer.verifier()).map_err(|failure| {
        corrupt(format!("the stored checkpoint does not verify under the ledger's key: {failure}"))
    })?;
    if signed.size != stack.size() || signed.root != stack.root() {
        return Err(corrupt(format!(
            "the stored tiles make root {} at size {}, but the signed checkpoint says {} at size {}: the ledger's \
             tables were changed outside cordon; no checkpoint is signed over them",
            stack.root(),
            stack.size(),
            signed.root,
            signed.size
        )));
    }
    Ok(())
}

/// Entries [`SharedLedger::for_each_entry`] reads per query. A long scan (the access index
/// catching up, an export) held its connection for the whole range while its visitor worked
/// (a second and more for a few thousand entries), and every request whose short read was
/// given that connection waited behind it: the p99 of audited reveals on PostgreSQL was about
/// a second. At most 16 MiB a page (entries are at most 64 KiB), most often a few hundred KiB.
const ENTRIES_PER_PAGE: u64 = 256;

/// The tree's right edge at `size`, from its stored partial tiles.
fn load_stack(db: &mut impl Sql, database: &str, size: u64) -> Result<TileStack, StoreError> {
    let mut levels = Vec::new();
    for level in 0..level_count(size) as u8 {
        let width = partial_width(size, level);
        let hashes = if width == 0 {
            Vec::new()
        } else {
            let mut hashes = stored_tile(db, database, level, size >> (8 * (u32::from(level) + 1)))?;
            if hashes.len() < width {
                return Err(StoreError::Corrupt {
                    database: database.to_string(),
                    reason: format!("the partial tile of level {level} is shorter than the checkpoint of {size} needs"),
                });
            }
            hashes.truncate(width);
            hashes
        };
        levels.push(hashes);
    }
    TileStack::from_partial_tiles(size, levels).ok_or_else(|| StoreError::Corrupt {
        database: database.to_string(),
        reason: format!("the partial tiles do not make a tree of {size}"),
    })
}
