//! The index file (`<name>-access.sqlite`) holds only what the ledger rebuilds: the access
//! history, the exposure index and attribution's reach (see `INDEX_SCHEMA`). It is written
//! without waiting for the disk (`synchronous = OFF`). At `NORMAL` each of its checkpoints
//! had the disk write tens of MB at once, and the ledger's fdatasync, which every audited
//! request waits for, queued behind them on the same disk (reveal p99 about 5 ms higher under
//! load; docs/BENCHMARKS.md).
//!
//! A process that stops loses nothing that way: what it wrote is in the operating system's
//! page cache, which outlives it. A machine that stops may leave the file torn. So while any
//! process has the file open, a marker beside it (`<name>-access.open`) names the boot it
//! was opened in (Linux's `boot_id`); the last process to close it makes it durable and
//! clears the marker. A store opened in another boot than the one its marker names removes
//! the file, and the ledger follower writes it again from the start of the ledger.
//! Without a boot id to compare (no `/proc`), the file is written at `NORMAL` as before.

use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::store::{StoreError, sql_error};

const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";
/// Rounds of marking before giving up; each waits for the holders of the moment.
const MARK_TRIES_MAX: usize = 100;

/// This boot's id, if the system says.
pub(crate) fn boot_id() -> Option<String> {
    fs::read_to_string(BOOT_ID).ok().map(|id| id.trim().to_string()).filter(|id| !id.is_empty())
}

/// The marker of an index file held open by this process: a shared lock on it for as long
/// as the store lives, so the last process to close can tell it is the last.
#[derive(Debug)]
pub(crate) struct OpenMarker {
    file: File,
    path: PathBuf,
}

fn marker_path(index: &Path) -> PathBuf {
    index.with_extension("open")
}

fn io_error(path: &Path, action: &'static str) -> impl Fn(std::io::Error) -> StoreError {
    let database = path.display().to_string();
    move |error| StoreError::Sql { database: database.clone(), action, message: error.to_string() }
}

/// Before the index file at `index` is opened under boot `boot`: removes it if a machine
/// stopped while it was open (its marker names another boot), and marks it open in this
/// boot. Returns whether the file was removed, and the marker to hold while it is open.
pub(crate) fn mark_open(index: &Path, boot: &str) -> Result<(bool, OpenMarker), StoreError> {
    let path = marker_path(index);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io_error(&path, "open the index's marker"))?;
    // Alone, this process reads the marker and acts on it. If another holds it, the other
    // runs in this boot and has marked the file with it, unless it was closing: then the
    // marker reads empty once it has, and this process marks it again.
    let mut removed = false;
    for _ in 0..MARK_TRIES_MAX {
        if file.try_lock().is_ok() {
            let previous = read_marker(&mut file, &path)?;
            if !previous.is_empty() && previous != boot {
                for suffix in ["", "-wal", "-shm"] {
                    let mut name = index.as_os_str().to_owned();
                    name.push(suffix);
                    match fs::remove_file(&name) {
                        Ok(()) => removed = true,
                        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                        Err(error) => return Err(io_error(index, "remove the index left torn")(error)),
                    }
                }
            }
            if previous != boot {
                write_marker(&mut file, &path, boot)?;
            }
            file.unlock().map_err(io_error(&path, "unlock the index's marker"))?;
        }
        file.lock_shared().map_err(io_error(&path, "lock the index's marker"))?;
        if read_marker(&mut file, &path)? == boot {
            return Ok((removed, OpenMarker { file, path }));
        }
        file.unlock().map_err(io_error(&path, "unlock the index's marker"))?;
    }
    // Only a process of another machine sharing this folder could keep it so.
    Err(StoreError::Sql {
        database: index.display().to_string(),
        action: "mark the index open",
        message: format!("{} stays marked by another boot while held open", path.display()),
    })
}

fn read_marker(file: &mut File, path: &Path) -> Result<String, StoreError> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).map_err(io_error(path, "read the index's marker"))?;
    file.read_to_string(&mut text).map_err(io_error(path, "read the index's marker"))?;
    Ok(text.trim().to_string())
}

/// Replaces the marker's content with `boot` (empty: closed), durably, with its folder.
fn write_marker(file: &mut File, path: &Path, boot: &str) -> Result<(), StoreError> {
    file.set_len(0).map_err(io_error(path, "clear the index's marker"))?;
    file.seek(SeekFrom::Start(0)).map_err(io_error(path, "write the index's marker"))?;
    file.write_all(boot.as_bytes()).map_err(io_error(path, "write the index's marker"))?;
    file.sync_all().map_err(io_error(path, "sync the index's marker"))?;
    if let Some(folder) = path.parent() {
        File::open(folder).and_then(|folder| folder.sync_all()).map_err(io_error(folder, "sync the folder"))?;
    }
    Ok(())
}

impl OpenMarker {
    /// At close: if no other process has the file open, checkpoints it into the database
    /// file with every sync (`FULL`) and clears the marker. Failing that, the marker stays,
    /// which costs a rebuild only if the machine stops before this boot ends.
    pub(crate) fn close(&mut self, connection: &Connection) {
        if self.file.try_lock().is_err() {
            return;
        }
        let durable = connection
            .execute_batch("PRAGMA synchronous = FULL; PRAGMA wal_checkpoint(TRUNCATE);")
            .map_err(sql_error(&self.path.display().to_string(), "checkpoint the index"));
        let cleared = durable.and_then(|()| write_marker(&mut self.file, &self.path, ""));
        if let Err(error) = cleared {
            tracing::warn!(%error, "the access index stays marked open; a machine stop before the next boot rebuilds it");
        }
    }
}
