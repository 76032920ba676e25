//! The writing side of a log: group-committed durable appends, and tiles and checkpoints
//! published from them.
//!
//! Two threads own the log while it is open. The *sequencer* takes append requests, writes
//! each group to the write-ahead log with one fdatasync, assigns indexes and only then
//! acknowledges. The *publisher* receives durable groups in order, hashes them into the tile
//! stack, writes full tiles as they complete, and at least every `checkpoint_interval_ms`
//! while the log grows writes the partial tiles, syncs, and signs a new checkpoint. Because
//! the publisher only ever extends the tree it recovered, the log never signs two
//! inconsistent checkpoints.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::checkpoint::Checkpoint;
use crate::error::LedgerError;
use crate::hash::leaf_hash;
use crate::layout::{self, CHECKPOINT_FILE, LOCK_FILE, Layout, SIGNING_KEY_FILE, VERIFIER_KEY_FILE, WAL_DIR};
use crate::note::{Signer, Verifier};
use crate::store::{LogReader, SignedCheckpoint, read_hash_tile, read_tile_file};
use crate::tile::{ENTRY_SIZE_MAX, TileId, decode_bundle, encode_hashes, push_bundle_entry};
use crate::tree::{FullTile, TILE_HEIGHT, TILE_WIDTH, TileStack, level_count, partial_width};
use crate::wal::{self, WalWriter};

/// How the log batches and publishes. Limits are named with their unit last.
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    /// How long a group waits for more appends once it has its first, if it is not full.
    /// 0 means a group is whatever arrived while the previous fdatasync ran.
    pub batch_delay_ms_max: u64,
    /// Entries in one group commit; a single request larger than this is kept whole.
    pub batch_entries_max: usize,
    /// Longest time between a new entry and a checkpoint covering it.
    pub checkpoint_interval_ms: u64,
    /// Size at which the write-ahead log starts a new segment.
    pub wal_segment_bytes_max: u64,
    /// Append requests waiting for the sequencer before appenders block.
    pub queue_requests_max: usize,
}

impl Default for LedgerConfig {
    fn default() -> LedgerConfig {
        LedgerConfig {
            batch_delay_ms_max: 0,
            batch_entries_max: 8192,
            checkpoint_interval_ms: 1000,
            wal_segment_bytes_max: 64 << 20,
            queue_requests_max: 16384,
        }
    }
}

/// An open, writable log. One per directory: a second writer gets [`LedgerError::Locked`].
#[derive(Debug)]
pub struct Ledger {
    layout: Layout,
    config: LedgerConfig,
    verifier: Verifier,
    requests: Option<SyncSender<AppendRequest>>,
    publisher: SyncSender<PublisherMessage>,
    shared: Arc<Shared>,
    sequencer_thread: Option<JoinHandle<()>>,
    publisher_thread: Option<JoinHandle<()>>,
    _lock: File,
}

/// Counters of the sequencer's work, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LedgerStats {
    /// Group commits made (one fdatasync each).
    pub groups: u64,
    /// Entries committed in those groups.
    pub entries: u64,
    /// Time spent writing and syncing groups, in microseconds.
    pub commit_micros: u64,
}

#[derive(Debug)]
struct Shared {
    /// Entries durable in the write-ahead log; every one of them has been sent to the publisher.
    durable_size: AtomicU64,
    groups: AtomicU64,
    grouped_entries: AtomicU64,
    commit_micros: AtomicU64,
    published: Mutex<SignedCheckpoint>,
    failure: Mutex<Option<String>>,
}

impl Ledger {
    /// Creates a new log in `dir` (absent or empty) with a fresh signing key named `origin`,
    /// and publishes the checkpoint of the empty tree. Returns the verifier key.
    pub fn create(dir: &Path, origin: &str) -> Result<Verifier, LedgerError> {
        if dir.exists() {
            let mut items = fs::read_dir(dir).map_err(LedgerError::io("list", dir))?;
            if items.next().is_some() {
                return Err(LedgerError::AlreadyExists { dir: dir.to_path_buf() });
            }
        }
        let signer = Signer::generate(origin)?;
        let layout = Layout::new(dir);
        fs::create_dir_all(dir).map_err(LedgerError::io("create", dir))?;
        layout.create_private_dirs().map_err(LedgerError::io("create", layout.path(layout::PRIVATE_DIR)))?;
        let key_path = Path::new(SIGNING_KEY_FILE);
        layout
            .write_atomic(key_path, signer.to_private_string().as_bytes(), 0o600, true)
            .map_err(LedgerError::io("write", layout.path(key_path)))?;
        let verifier = signer.verifier();
        let verifier_path = Path::new(VERIFIER_KEY_FILE);
        layout
            .write_atomic(verifier_path, format!("{verifier}\n").as_bytes(), 0o644, true)
            .map_err(LedgerError::io("write", layout.path(verifier_path)))?;
        let stack = TileStack::new();
        let checkpoint = Checkpoint { origin: origin.to_string(), size: 0, root: stack.root() };
        let note = signer.sign(&checkpoint.to_text())?;
        layout
            .write_atomic(Path::new(CHECKPOINT_FILE), note.as_bytes(), 0o644, true)
            .map_err(LedgerError::io("write", layout.path(CHECKPOINT_FILE)))?;
        Ok(verifier)
    }

    /// Opens the log for writing: takes the lock, recovers from a crash if there was one
    /// (trims a torn write-ahead tail, checks the partial tiles and entry bundle against the
    /// checkpoint, rebuilds tiles past it, publishes), and starts the sequencer and
    /// publisher.
    ///
    /// If that first publication cannot be written (a full disk), the log still opens, for
    /// reading what its checkpoint covers, but refuses appends: [`Ledger::failure`] says why,
    /// and [`Ledger::reopen`] tries again.
    pub fn open(dir: &Path, config: LedgerConfig) -> Result<Ledger, LedgerError> {
        Ledger::open_recovering(dir, config, None)
    }

    /// Closes this writer and opens the log again, recovering it as a fresh start does: the
    /// way back once the write that failed it can succeed again (space returned, a device
    /// back). Write-ahead records of groups that failed are dropped, since their callers were
    /// told they failed; every acknowledged entry stays.
    pub fn reopen(self) -> Result<Ledger, LedgerError> {
        let dir = self.layout.root().to_path_buf();
        let config = self.config.clone();
        let acknowledged = self.close_after_failure();
        Ledger::recover(&dir, config, acknowledged)
    }

    /// Closes a failed writer for [`Ledger::recover`]: stops taking entries, lets the
    /// sequencer finish (a group it had begun may still be acknowledged), tries a final
    /// publication, and returns the entries acknowledged in all. The lock is released.
    pub fn close_after_failure(mut self) -> u64 {
        // The final publication may fail too (that is often why the writer failed); the
        // recovery that follows rebuilds whatever it left.
        let _ = self.shut_down();
        self.shared.durable_size.load(Ordering::Acquire)
    }

    /// Opens a log whose writer in this process failed and was closed, after
    /// [`Ledger::reopen`] itself failed: write-ahead records from `acknowledged` (the
    /// failed writer's [`Ledger::durable_size`]) on are dropped, since they were never
    /// acknowledged.
    pub fn recover(dir: &Path, config: LedgerConfig, acknowledged: u64) -> Result<Ledger, LedgerError> {
        Ledger::open_recovering(dir, config, Some(acknowledged))
    }

    /// How this writer batches and publishes.
    pub fn config(&self) -> &LedgerConfig {
        &self.config
    }

    fn open_recovering(dir: &Path, config: LedgerConfig, acknowledged: Option<u64>) -> Result<Ledger, LedgerError> {
        let layout = Layout::new(dir);
        let not_a_log = |reason: &str| LedgerError::NotALog { dir: dir.to_path_buf(), reason: reason.to_string() };
        if !layout.path(SIGNING_KEY_FILE).exists() {
            return Err(not_a_log("it has no `private/signing-key`; create one with `cordon log init`"));
        }
        let lock_path = layout.path(LOCK_FILE);
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(LedgerError::io("open", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(LedgerError::Locked { dir: dir.to_path_buf() }),
            Err(fs::TryLockError::Error(error)) => return Err(LedgerError::io("lock", &lock_path)(error)),
        }
        layout.create_private_dirs().map_err(LedgerError::io("create", layout.path(layout::PRIVATE_DIR)))?;
        layout.clear_scratch().map_err(LedgerError::io("clear", layout.path(layout::SCRATCH_DIR)))?;

        let key_text = fs::read_to_string(layout.path(SIGNING_KEY_FILE))
            .map_err(LedgerError::io("read", layout.path(SIGNING_KEY_FILE)))?;
        let signer = Signer::parse(&key_text)?;
        let verifier = signer.verifier();
        let checkpoint_path = layout.path(CHECKPOINT_FILE);
        let note = fs::read_to_string(&checkpoint_path).map_err(LedgerError::io("read", &checkpoint_path))?;
        let checkpoint = Checkpoint::open(&note, &verifier)
            .map_err(|error| LedgerError::corrupt(&checkpoint_path, error.to_string()))?;
        let published = SignedCheckpoint { checkpoint, note };

        let mut materializer = Materializer::recover(layout.clone(), signer, published.clone())?;
        let (recovered, wal_writer) = wal::recover(&layout.path(WAL_DIR), published.checkpoint.size, acknowledged)?;
        for entry in &recovered {
            materializer.integrate(entry)?;
        }
        let (published, failure) = match materializer.publish() {
            Ok(published) => (published, None),
            // Unwritable, not damaged: serve what is published, take nothing new.
            Err(error @ LedgerError::Io { .. }) => (published, Some(error.to_string())),
            Err(error) => return Err(error),
        };

        let shared = Arc::new(Shared {
            durable_size: AtomicU64::new(wal_writer.next_index()),
            groups: AtomicU64::new(0),
            grouped_entries: AtomicU64::new(0),
            commit_micros: AtomicU64::new(0),
            published: Mutex::new(published),
            failure: Mutex::new(failure),
        });
        let (request_sender, request_receiver) = mpsc::sync_channel(config.queue_requests_max);
        let (publisher_sender, publisher_receiver) = mpsc::sync_channel(config.queue_requests_max);
        let sequencer = Sequencer {
            wal: wal_writer,
            config: config.clone(),
            requests: request_receiver,
            publisher: publisher_sender.clone(),
            shared: Arc::clone(&shared),
        };
        let sequencer_thread = std::thread::Builder::new()
            .name("ledger-sequencer".into())
            .spawn(move || sequencer.run())
            .map_err(LedgerError::io("start the sequencer for", dir))?;
        let publisher_shared = Arc::clone(&shared);
        let interval = Duration::from_millis(config.checkpoint_interval_ms);
        let publisher_thread = std::thread::Builder::new()
            .name("ledger-publisher".into())
            .spawn(move || run_publisher(materializer, publisher_receiver, publisher_shared, interval))
            .map_err(LedgerError::io("start the publisher for", dir))?;
        Ok(Ledger {
            layout,
            config,
            verifier,
            requests: Some(request_sender),
            publisher: publisher_sender,
            shared,
            sequencer_thread: Some(sequencer_thread),
            publisher_thread: Some(publisher_thread),
            _lock: lock,
        })
    }

    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    pub fn dir(&self) -> &Path {
        self.layout.root()
    }

    /// Appends one entry. The returned handle resolves to its index once it is durable.
    pub fn append(&self, entry: Vec<u8>) -> Appending {
        self.append_batch(vec![entry])
    }

    /// Appends entries that get consecutive indexes, made durable together. The handle
    /// resolves to the index of the first. An oversized entry fails the whole request.
    pub fn append_batch(&self, entries: Vec<Vec<u8>>) -> Appending {
        self.try_append_batch(entries).unwrap_or_else(|error| Appending::ready(Err(error)))
    }

    /// [`Ledger::append_batch`], with the refusals it can tell at once (too large, failed,
    /// closed) as an error: refused entries take no index, which a caller predicting
    /// indexes needs to know.
    pub fn try_append_batch(&self, entries: Vec<Vec<u8>>) -> Result<Appending, LedgerError> {
        if let Some(entry) = entries.iter().find(|entry| entry.len() > ENTRY_SIZE_MAX) {
            return Err(LedgerError::EntryTooLarge { size: entry.len() });
        }
        if let Some(reason) = self.shared.failure() {
            return Err(LedgerError::Failed { reason });
        }
        let slot = Arc::new(Slot::default());
        let Some(requests) = &self.requests else {
            return Err(LedgerError::Closed);
        };
        if requests.send(AppendRequest { entries, slot: Arc::clone(&slot) }).is_err() {
            return Err(LedgerError::Closed);
        }
        Ok(Appending { slot })
    }

    /// Publishes a checkpoint covering every entry acknowledged so far, and returns it.
    pub fn publish(&self) -> Result<SignedCheckpoint, LedgerError> {
        let size = self.shared.durable_size.load(Ordering::Acquire);
        let (reply, answer) = mpsc::sync_channel(1);
        self.publisher.send(PublisherMessage::Publish { size, reply }).map_err(|_| LedgerError::Closed)?;
        answer.recv().map_err(|_| LedgerError::Closed)?
    }

    /// Group-commit counters since the log was opened.
    pub fn stats(&self) -> LedgerStats {
        LedgerStats {
            groups: self.shared.groups.load(Ordering::Relaxed),
            entries: self.shared.grouped_entries.load(Ordering::Relaxed),
            commit_micros: self.shared.commit_micros.load(Ordering::Relaxed),
        }
    }

    /// Why the log refuses appends, if it does: a write, sync or publication failed, and
    /// nothing more is taken until [`Ledger::reopen`] recovers it.
    pub fn failure(&self) -> Option<String> {
        self.shared.failure()
    }

    /// Entries acknowledged so far (durable in the write-ahead log).
    pub fn durable_size(&self) -> u64 {
        self.shared.durable_size.load(Ordering::Acquire)
    }

    /// The latest published checkpoint.
    pub fn checkpoint(&self) -> SignedCheckpoint {
        self.shared.published.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// A reader over the published tiles, for proofs.
    pub fn reader(&self) -> LogReader {
        LogReader::new(self.layout.root())
    }

    /// Stops accepting entries, waits for every queued one, and publishes a final checkpoint.
    /// An error if that checkpoint does not cover every acknowledged entry (the disk is full,
    /// a write failed): the entries are safe in the write-ahead log, and the next open
    /// publishes them, but the checkpoint on disk lags.
    pub fn close(mut self) -> Result<SignedCheckpoint, LedgerError> {
        self.shut_down()
    }

    fn shut_down(&mut self) -> Result<SignedCheckpoint, LedgerError> {
        // Dropping the request sender ends the sequencer once the queue is drained.
        self.requests = None;
        if let Some(thread) = self.sequencer_thread.take() {
            let _ = thread.join();
        }
        let (reply, answer) = mpsc::sync_channel(1);
        let outcome = match self.publisher.send(PublisherMessage::Shutdown { reply }) {
            Ok(()) => answer.recv().unwrap_or(Err(LedgerError::Closed)),
            Err(_) => Err(LedgerError::Closed),
        };
        if let Some(thread) = self.publisher_thread.take() {
            let _ = thread.join();
        }
        let durable = self.shared.durable_size.load(Ordering::Acquire);
        let lag = |covered: u64, cause: String| LedgerError::Failed {
            reason: format!(
                "the final checkpoint covers {covered} of the {durable} acknowledged entries ({cause}); the rest \
                 are in the write-ahead log and the next open publishes them"
            ),
        };
        match outcome {
            Ok(signed) if signed.checkpoint.size < durable => {
                Err(lag(signed.checkpoint.size, self.shared.failure().unwrap_or_else(|| "publishing stopped".into())))
            }
            Err(error) => {
                let covered = self.checkpoint().checkpoint.size;
                Err(if covered < durable { lag(covered, error.to_string()) } else { error })
            }
            outcome => outcome,
        }
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        if self.publisher_thread.is_some() {
            let _ = self.shut_down();
        }
    }
}

impl Shared {
    fn failure(&self) -> Option<String> {
        self.failure.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn fail(&self, reason: String) {
        let mut failure = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        failure.get_or_insert(reason);
    }
}

/// A pending append: wait for it in a thread with [`Appending::wait`], or `.await` it.
#[derive(Debug)]
pub struct Appending {
    slot: Arc<Slot>,
}

#[derive(Debug, Default)]
struct Slot {
    state: Mutex<SlotState>,
    done: Condvar,
}

#[derive(Debug, Default)]
enum SlotState {
    #[default]
    Pending,
    Waiting(Waker),
    Done(Result<u64, LedgerError>),
    Taken,
}

impl Appending {
    fn ready(result: Result<u64, LedgerError>) -> Appending {
        let slot = Arc::new(Slot::default());
        slot.complete(result);
        Appending { slot }
    }

    /// Blocks until the entries are durable; returns the index of the first.
    pub fn wait(self) -> Result<u64, LedgerError> {
        let mut state = self.slot.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            match std::mem::take(&mut *state) {
                SlotState::Done(result) => {
                    *state = SlotState::Taken;
                    return result;
                }
                SlotState::Taken => return Err(LedgerError::Closed),
                waiting => {
                    *state = waiting;
                    state = self.slot.done.wait(state).unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }
}

impl Future for Appending {
    type Output = Result<u64, LedgerError>;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.slot.state.lock().unwrap_or_else(PoisonError::into_inner);
        match std::mem::take(&mut *state) {
            SlotState::Done(result) => {
                *state = SlotState::Taken;
                Poll::Ready(result)
            }
            SlotState::Taken => Poll::Ready(Err(LedgerError::Closed)),
            SlotState::Pending | SlotState::Waiting(_) => {
                *state = SlotState::Waiting(context.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Slot {
    fn complete(&self, result: Result<u64, LedgerError>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let SlotState::Waiting(waker) = std::mem::replace(&mut *state, SlotState::Done(result)) {
            waker.wake();
        }
        self.done.notify_all();
    }
}

struct AppendRequest {
    entries: Vec<Vec<u8>>,
    slot: Arc<Slot>,
}

enum PublisherMessage {
    /// Durable entries, in index order, starting at `first_index`.
    Batch {
        first_index: u64,
        entries: Vec<Vec<u8>>,
    },
    /// Publish once the tree reaches `size`.
    Publish {
        size: u64,
        reply: SyncSender<Result<SignedCheckpoint, LedgerError>>,
    },
    Shutdown {
        reply: SyncSender<Result<SignedCheckpoint, LedgerError>>,
    },
}

/// Owns the write-ahead log; turns append requests into group commits.
struct Sequencer {
    wal: WalWriter,
    config: LedgerConfig,
    requests: Receiver<AppendRequest>,
    publisher: SyncSender<PublisherMessage>,
    shared: Arc<Shared>,
}

impl Sequencer {
    fn run(mut self) {
        let delay = Duration::from_millis(self.config.batch_delay_ms_max);
        while let Ok(first) = self.requests.recv() {
            let mut group = vec![first];
            let mut count = group.iter().map(|request| request.entries.len()).sum::<usize>();
            let deadline = Instant::now() + delay;
            while count < self.config.batch_entries_max {
                let next = match self.requests.try_recv() {
                    Ok(request) => request,
                    Err(TryRecvError::Disconnected) => break,
                    Err(TryRecvError::Empty) => {
                        let now = Instant::now();
                        if now >= deadline {
                            break;
                        }
                        match self.requests.recv_timeout(deadline - now) {
                            Ok(request) => request,
                            Err(_) => break,
                        }
                    }
                };
                count += next.entries.len();
                group.push(next);
            }
            self.commit(group);
        }
    }

    fn commit(&mut self, group: Vec<AppendRequest>) {
        if let Some(reason) = self.shared.failure() {
            for request in group {
                request.slot.complete(Err(LedgerError::Failed { reason: reason.clone() }));
            }
            return;
        }
        let started = Instant::now();
        let written = self.wal.append(group.iter().flat_map(|request| request.entries.iter().map(Vec::as_slice)));
        let first_index = match written {
            Ok(first_index) => first_index,
            Err(error) => {
                // After a failed write or sync the file's state is unknown: fail closed, for
                // this group and every later one, until the log is reopened and recovered.
                // The group's callers hear that it failed, so whatever of it reached the file
                // goes now: a crash before the reopen must not recover it as recorded.
                let reason = match self.wal.discard_unacknowledged() {
                    Ok(()) => error.to_string(),
                    Err(also) => format!("{error}; removing the failed group also failed: {also}"),
                };
                self.shared.fail(reason);
                for request in group {
                    request.slot.complete(Err(error.clone()));
                }
                return;
            }
        };
        self.shared.groups.fetch_add(1, Ordering::Relaxed);
        self.shared.commit_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        let mut index = first_index;
        let mut completions = Vec::with_capacity(group.len());
        let mut entries = Vec::new();
        for request in group {
            completions.push((request.slot, index));
            index += request.entries.len() as u64;
            entries.extend(request.entries);
        }
        // Hand the group to the publisher before acknowledging, so that a `publish` issued
        // after an acknowledgement always finds its entries queued ahead of it.
        let _ = self.publisher.send(PublisherMessage::Batch { first_index, entries });
        self.shared.grouped_entries.fetch_add(index - first_index, Ordering::Relaxed);
        self.shared.durable_size.store(index, Ordering::Release);
        for (slot, index) in completions {
            slot.complete(Ok(index));
        }
        // The group is durable and acknowledged whatever happens here; a segment that cannot
        // be started fails the log for the groups after it.
        if let Err(error) = self.wal.rotate_if_larger_than(self.config.wal_segment_bytes_max) {
            self.shared.fail(error.to_string());
        }
    }
}

fn run_publisher(
    mut materializer: Materializer,
    messages: Receiver<PublisherMessage>,
    shared: Arc<Shared>,
    interval: Duration,
) {
    let mut waiting: Vec<(u64, SyncSender<Result<SignedCheckpoint, LedgerError>>)> = Vec::new();
    let mut last_publish = Instant::now();
    loop {
        let grown = materializer.stack.size() > materializer.published.checkpoint.size;
        let timeout = if grown { interval.saturating_sub(last_publish.elapsed()) } else { Duration::from_secs(3600) };
        let mut shutdown = None;
        match messages.recv_timeout(timeout) {
            Ok(PublisherMessage::Batch { first_index, entries }) => {
                if materializer.poisoned.is_none()
                    && let Err(error) = materializer.integrate_batch(first_index, &entries)
                {
                    // A tile write failed part-way through integrating: the tree and the
                    // bundle no longer match the files, so nothing more is published from
                    // them; reopening rebuilds them from the checkpoint and the write-ahead log.
                    materializer.poisoned = Some(error.to_string());
                    shared.fail(error.to_string());
                }
            }
            Ok(PublisherMessage::Publish { size, reply }) => waiting.push((size, reply)),
            Ok(PublisherMessage::Shutdown { reply }) => shutdown = Some(reply),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if let Some(reason) = &materializer.poisoned {
            // Never publish from a state that does not match the files, and never keep a
            // caller waiting for a size the tree will not reach.
            let refused = || Err(LedgerError::Failed { reason: reason.clone() });
            for (_, waiter) in waiting.drain(..) {
                let _ = waiter.send(refused());
            }
            if let Some(reply) = shutdown {
                let _ = reply.send(refused());
                return;
            }
            continue;
        }
        let size = materializer.stack.size();
        let requested = waiting.iter().any(|(wanted, _)| *wanted <= size);
        let due = size > materializer.published.checkpoint.size && last_publish.elapsed() >= interval;
        if requested || due || shutdown.is_some() {
            let outcome = materializer.publish();
            last_publish = Instant::now();
            match &outcome {
                Ok(signed) => *shared.published.lock().unwrap_or_else(PoisonError::into_inner) = signed.clone(),
                Err(error) => shared.fail(error.to_string()),
            }
            waiting.retain(|(wanted, reply)| {
                if *wanted <= size {
                    let _ = reply.send(outcome.clone());
                    false
                } else {
                    true
                }
            });
            if let Some(reply) = shutdown {
                for (_, waiter) in waiting.drain(..) {
                    let _ = waiter.send(Err(LedgerError::Closed));
                }
                let _ = reply.send(outcome);
                return;
            }
        }
    }
}

/// The publisher's state: the tile stack, the entries of the partial bundle, and the files
/// written since the last checkpoint.
struct Materializer {
    layout: Layout,
    signer: Signer,
    stack: TileStack,
    bundle: Vec<u8>,
    bundle_count: usize,
    published: SignedCheckpoint,
    /// Folders holding files written since the last checkpoint, to fsync before signing.
    dirty_dirs: BTreeSet<PathBuf>,
    /// Partial-tile folders made obsolete by full tiles, removed after the next checkpoint.
    obsolete_partials: Vec<PathBuf>,
    /// Why the state no longer matches the files (a write failed while integrating), if it
    /// does not: then it publishes nothing.
    poisoned: Option<String>,
}

impl Materializer {
    /// Rebuilds the right edge of the tree at the published checkpoint from its partial
    /// tiles, and checks it against the checkpoint's root.
    fn recover(layout: Layout, signer: Signer, published: SignedCheckpoint) -> Result<Materializer, LedgerError> {
        let size = published.checkpoint.size;
        let mut levels = Vec::new();
        for level in 0..level_count(size) as u8 {
            let width = partial_width(size, level);
            if width == 0 {
                levels.push(Vec::new());
            } else {
                let index = size >> (TILE_HEIGHT * (u32::from(level) + 1));
                levels.push(read_hash_tile(&layout, level, index, size)?);
            }
        }
        let checkpoint_path = layout.path(CHECKPOINT_FILE);
        let stack = TileStack::from_partial_tiles(size, levels).ok_or_else(|| {
            LedgerError::corrupt(&checkpoint_path, "the partial tiles do not fit the checkpoint's size")
        })?;
        if stack.root() != published.checkpoint.root {
            return Err(LedgerError::corrupt(
                &checkpoint_path,
                "the stored tiles do not hash to the checkpoint's root",
            ));
        }
        let mut bundle = Vec::new();
        let bundle_count = partial_width(size, 0);
        if bundle_count > 0 {
            let id = TileId::entries(size / TILE_WIDTH as u64, bundle_count);
            let (bytes, fallback) = read_tile_file(&layout, id)?;
            let entries = decode_bundle(&bytes, bundle_count, fallback)
                .map_err(|defect| LedgerError::corrupt(layout.path(id.path()), format!("{defect:?}")))?;
            // The partial bundle is copied into the full one and signed into later
            // checkpoints, so it must be the entries the checkpoint's tree holds.
            let leaves = stack.partial(0);
            for (position, entry) in entries.into_iter().enumerate() {
                if leaves.get(position) != Some(&leaf_hash(entry)) {
                    return Err(LedgerError::corrupt(
                        layout.path(id.path()),
                        format!(
                            "entry {} of the partial bundle does not hash to the checkpoint's leaf",
                            size - bundle_count as u64 + position as u64
                        ),
                    ));
                }
                push_bundle_entry(&mut bundle, entry);
            }
        }
        Ok(Materializer {
            layout,
            signer,
            stack,
            bundle,
            bundle_count,
            published,
            dirty_dirs: BTreeSet::new(),
            obsolete_partials: Vec::new(),
            poisoned: None,
        })
    }

    fn integrate_batch(&mut self, first_index: u64, entries: &[Vec<u8>]) -> Result<(), LedgerError> {
        if first_index != self.stack.size() {
            return Err(LedgerError::corrupt(
                self.layout.path(WAL_DIR),
                format!(
                    "a group starting at index {first_index} arrived when the tree has {} entries",
                    self.stack.size()
                ),
            ));
        }
        for entry in entries {
            self.integrate(entry)?;
        }
        Ok(())
    }

    fn integrate(&mut self, entry: &[u8]) -> Result<(), LedgerError> {
        let bundle_index = self.stack.size() / TILE_WIDTH as u64;
        push_bundle_entry(&mut self.bundle, entry);
        self.bundle_count += 1;
        if self.bundle_count == TILE_WIDTH {
            let bundle = std::mem::take(&mut self.bundle);
            self.write_full(TileId::entries(bundle_index, TILE_WIDTH), &bundle)?;
            self.bundle_count = 0;
        }
        let mut completed: Vec<FullTile> = Vec::new();
        self.stack.push(leaf_hash(entry), |tile| completed.push(tile));
        for tile in completed {
            self.write_full(TileId::hashes(tile.level, tile.index, TILE_WIDTH), &encode_hashes(&tile.hashes))?;
        }
        Ok(())
    }

    fn write_full(&mut self, id: TileId, bytes: &[u8]) -> Result<(), LedgerError> {
        self.write_tile(id, bytes)?;
        // The partial versions of this tile may go once a checkpoint names the full one.
        let mut partial_dir = self.layout.path(id.path()).into_os_string();
        partial_dir.push(".p");
        self.obsolete_partials.push(PathBuf::from(partial_dir));
        Ok(())
    }

    fn write_tile(&mut self, id: TileId, bytes: &[u8]) -> Result<(), LedgerError> {
        let relative = id.path();
        // The tile's folder and every folder above it, up to the log's, are synced before
        // the checkpoint that names the tile: a new folder is an entry of its parent, and a
        // write that failed after creating one must not leave it unsynced at the next try.
        let mut folder = relative.parent();
        while let Some(dir) = folder {
            self.dirty_dirs.insert(self.layout.path(dir));
            folder = dir.parent();
        }
        self.layout
            .write_atomic(&relative, bytes, 0o644, false)
            .map_err(LedgerError::io("write", self.layout.path(&relative)))?;
        Ok(())
    }

    /// Writes the partial tiles for the current size, makes every file since the last
    /// checkpoint durable, and signs and atomically replaces the checkpoint.
    fn publish(&mut self) -> Result<SignedCheckpoint, LedgerError> {
        let size = self.stack.size();
        if size == self.published.checkpoint.size {
            return Ok(self.published.clone());
        }
        for level in 0..self.stack.levels() {
            let hashes = self.stack.partial(level);
            if !hashes.is_empty() {
                let index = size >> (TILE_HEIGHT * (u32::from(level) + 1));
                let bytes = encode_hashes(hashes);
                self.write_tile(TileId::hashes(level, index, hashes.len()), &bytes)?;
            }
        }
        if self.bundle_count > 0 {
            let bundle = std::mem::take(&mut self.bundle);
            let written = self.write_tile(TileId::entries(size / TILE_WIDTH as u64, self.bundle_count), &bundle);
            self.bundle = bundle;
            written?;
        }
        for dir in &self.dirty_dirs {
            layout::sync_dir_path(dir).map_err(LedgerError::io("sync", dir))?;
        }
        self.dirty_dirs.clear();
        let checkpoint = Checkpoint { origin: self.signer.name().to_string(), size, root: self.stack.root() };
        let note = self.signer.sign(&checkpoint.to_text())?;
        self.layout
            .write_atomic(Path::new(CHECKPOINT_FILE), note.as_bytes(), 0o644, true)
            .map_err(LedgerError::io("write", self.layout.path(CHECKPOINT_FILE)))?;
        self.published = SignedCheckpoint { checkpoint, note };
        for dir in std::mem::take(&mut self.obsolete_partials) {
            match fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(LedgerError::io("remove", &dir)(error)),
            }
        }
        wal::remove_segments_below(&self.layout.path(WAL_DIR), size)?;
        Ok(self.published.clone())
    }
}
