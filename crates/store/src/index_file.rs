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
//! Without a boot id to compare (no `/proc`), the file is written at `NORMAL` as before, and
//! a marker an earlier run left set (and no process holds now) costs the file once. A marker
//! this process may not open (another user's) is an error that says what to do.

use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

use crate::store::{StoreError, io_error, sql_error};

const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";
/// Rounds of marking before giving up; each waits for the holders of the moment.
const MARK_TRIES_MAX: u32 = 100;
/// Bytes of a marker read: a boot id with room to spare.
const MARKER_READ_MAX: usize = 256;
/// The pause between rounds, so that processes opening together take turns.
const MARK_RETRY_PAUSE: Duration = Duration::from_millis(10);

/// This boot's id, if the system says.
pub(crate) fn boot_id() -> Option<String> {
    fs::read_to_string(BOOT_ID).ok().map(|id| id.trim().to_string()).filter(|id| !id.is_empty())
}

/// What opening decided: the marker this process holds while the file is written without
/// fsync (none: written at `NORMAL`), and whether a torn file was removed first.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) marker: Option<OpenMarker>,
    pub(crate) removed: bool,
}

/// The marker of an index file held open by this process: a shared lock on it for as long
/// as the store lives, so the last process to close can tell it is the last.
#[derive(Debug)]
pub(crate) struct OpenMarker {
    file: File,
    path: PathBuf,
    index: PathBuf,
}

fn marker_path(index: &Path) -> PathBuf {
    index.with_extension("open")
}

/// The index file at `index` and what SQLite keeps beside it, each path with its suffix.
fn index_files(index: &Path) -> impl Iterator<Item = PathBuf> + '_ {
    ["", "-wal", "-shm"].into_iter().map(move |suffix| {
        let mut name = index.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    })
}

/// Removes the index file and SQLite's files beside it; whether there was one.
fn remove_index(index: &Path) -> Result<bool, StoreError> {
    let mut removed = false;
    for path in index_files(index) {
        match fs::remove_file(&path) {
            Ok(()) => removed = true,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(io_error(&path, "remove the index left torn")(error)),
        }
    }
    Ok(removed)
}

/// Before the index file at `index` is opened under boot `boot` (none: unknown): removes it
/// if a machine stopped while it was open (its marker names another boot) and decides how
/// it is written.
pub(crate) fn prepare(index: &Path, boot: Option<&str>) -> Result<Prepared, StoreError> {
    let path = marker_path(index);
    let Some(boot) = boot else {
        // Nothing to compare a marker with: one that names a boot may be a torn file's, unless
        // a process holds it now (it is open in this boot, then). Once removed, the file is
        // marked closed, so the next open does not remove it again.
        let mut file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Prepared { marker: None, removed: false });
            }
            Err(error) => return Err(not_ours(&path, error)),
        };
        let mut removed = false;
        if file.try_lock().is_ok() && !read_marker(&mut file, &path)?.is_empty() {
            removed = remove_index(index)?;
            write_marker(&mut file, &path, "")?;
        }
        return Ok(Prepared { marker: None, removed });
    };
    let mut removed = false;
    for _ in 0..MARK_TRIES_MAX {
        let opened = OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(&path);
        let mut file = opened.map_err(|error| not_ours(&path, error))?;
        // Alone, this process reads the marker and acts on it. If another holds it, the other
        // runs in this boot and has marked the file with it, unless it was closing: then the
        // marker reads empty once it has, and this process marks it again.
        if file.try_lock().is_ok() {
            let previous = read_marker(&mut file, &path)?;
            if !previous.is_empty() && previous != boot {
                removed |= remove_index(index)?;
            }
            if previous != boot {
                write_marker(&mut file, &path, boot)?;
            }
            file.unlock().map_err(io_error(&path, "unlock the index's marker"))?;
        }
        file.lock_shared().map_err(io_error(&path, "lock the index's marker"))?;
        // The marker held must be the one at the path (not one removed or replaced since it
        // was opened) and must name this boot.
        if is_at(&file, &path) && read_marker(&mut file, &path)? == boot {
            let marker = OpenMarker { file, path, index: index.to_path_buf() };
            return Ok(Prepared { marker: Some(marker), removed });
        }
        drop(file);
        std::thread::sleep(MARK_RETRY_PAUSE);
    }
    // Only a process of another machine sharing this folder could keep it so.
    Err(StoreError::Sql {
        database: index.display().to_string(),
        action: "mark the index open",
        message: format!("{} stays marked by another boot while held open", path.display()),
    })
}

/// The marker could not be opened: most often made by another user (a command run as root
/// before the server), which this process may not read or write.
fn not_ours(path: &Path, error: std::io::Error) -> StoreError {
    StoreError::Sql {
        database: path.display().to_string(),
        action: "open the index's marker",
        message: format!(
            "{error} (it and the index file beside it must belong to the user cordon runs as: chown them, or remove \
             both for the ledger to write the index again)"
        ),
    }
}

/// Whether `file` is the file now at `path`.
fn is_at(file: &File, path: &Path) -> bool {
    match (file.metadata(), fs::metadata(path)) {
        (Ok(held), Ok(there)) => held.dev() == there.dev() && held.ino() == there.ino(),
        _ => false,
    }
}

/// The marker's first bytes, as text: a boot id is 36 characters, so anything longer, or not
/// text, names no boot this machine had (a damaged or planted marker costs the file, never
/// the open).
fn read_marker(file: &mut File, path: &Path) -> Result<String, StoreError> {
    let mut bytes = Vec::with_capacity(MARKER_READ_MAX);
    file.seek(SeekFrom::Start(0)).map_err(io_error(path, "read the index's marker"))?;
    file.take(MARKER_READ_MAX as u64).read_to_end(&mut bytes).map_err(io_error(path, "read the index's marker"))?;
    Ok(String::from_utf8_lossy(&bytes).trim().to_string())
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
    /// At close, given the index's connection: if no other process has the file open,
    /// checkpoints the whole of it into the database file, closes the connection, syncs the
    /// database file and its log, and clears the marker. Failing any of it, the marker stays,
    /// which costs a rebuild only if the machine stops before this boot ends.
    pub(crate) fn close(&mut self, connection: Connection) {
        if let Err(error) = self.try_close(connection) {
            tracing::warn!(%error, "the access index stays marked open; a machine stop before the next boot rebuilds it");
        }
    }

    fn try_close(&mut self, connection: Connection) -> Result<(), StoreError> {
        // Fails if another process holds the marker (and, on Linux, gives up this one's
        // shared hold: harmless, nothing is written after this).
        if self.file.try_lock().is_err() {
            return Ok(());
        }
        let database = self.index.display().to_string();
        let busy: i64 = connection
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))
            .map_err(sql_error(&database, "checkpoint the index"))?;
        if busy != 0 {
            return Err(StoreError::Sql {
                database,
                action: "checkpoint the index",
                message: "another connection kept part of it in the write-ahead log".into(),
            });
        }
        // Closed before its files are opened again to sync them: closing a second handle on
        // a file drops the process's locks on it, SQLite's included.
        connection.close().map_err(|(_, error)| sql_error(&database, "close the index")(error))?;
        // SQLite syncs the database file only when a checkpoint copied something, and not at
        // all at `OFF`: an earlier automatic checkpoint may have copied it all unsynced. The
        // database file must be there (a folder moved away while open is not synced here);
        // its log may be gone, removed by SQLite at the close.
        for (file, must_be_there) in index_files(&self.index).zip([true, false]) {
            match File::open(&file).and_then(|file| file.sync_all()) {
                Err(error) if must_be_there || error.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io_error(&file, "sync the index")(error));
                }
                _ => {}
            }
        }
        write_marker(&mut self.file, &self.path, "")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    /// What opening does with each marker a past run may leave, with and without a boot id.
    #[test]
    fn a_marker_of_another_boot_or_of_none_known_costs_the_index_file() {
        // (case, marker's content (None: no marker), boot, removed, written unsynced)
        let huge = vec![0xff_u8; 1 << 20];
        type Case<'a> = (&'a str, Option<&'a [u8]>, Option<&'a str>, bool, bool);
        let cases: [Case; 10] = [
            ("no marker, this boot", None, Some("b-1"), false, true),
            ("closed cleanly", Some(b""), Some("b-1"), false, true),
            ("this boot: a process stopped", Some(b"b-1"), Some("b-1"), false, true),
            ("another boot: the machine stopped", Some(b"b-0"), Some("b-1"), true, true),
            ("not text: damaged or planted", Some(&[0xff, 0xfe, 0x00, 0x1b, b'\n']), Some("b-1"), true, true),
            ("a megabyte of junk", Some(&huge), Some("b-1"), true, true),
            ("this boot with control characters after it", Some(b"b-1\x00\x1b[2J"), Some("b-1"), true, true),
            ("no boot id, no marker", None, None, false, false),
            ("no boot id, closed cleanly", Some(b""), None, false, false),
            ("no boot id, marked by some boot", Some(b"b-0"), None, true, false),
        ];
        for (case, marker, boot, removed, unsynced) in cases {
            let dir = tempfile::tempdir().unwrap();
            let index = dir.path().join("cordon-access.sqlite");
            fs::write(&index, b"pages").unwrap();
            fs::write(dir.path().join("cordon-access.sqlite-wal"), b"frames").unwrap();
            if let Some(text) = marker {
                fs::write(dir.path().join("cordon-access.open"), text).unwrap();
            }
            let prepared = prepare(&index, boot).unwrap();
            assert_eq!(prepared.removed, removed, "{case}");
            assert_eq!(index.exists(), !removed, "{case}");
            assert_eq!(dir.path().join("cordon-access.sqlite-wal").exists(), !removed, "{case}");
            assert_eq!(prepared.marker.is_some(), unsynced, "{case}");
            let marked = fs::read_to_string(dir.path().join("cordon-access.open")).ok();
            match (unsynced, marker) {
                (true, _) => assert_eq!(marked.as_deref(), Some("b-1"), "{case}"),
                // Without a boot id a removed file is marked closed, so it is removed once.
                (false, Some(_)) => assert_eq!(marked.as_deref(), Some(""), "{case}"),
                (false, None) => assert_eq!(marked, None, "{case}"),
            }
        }
    }

    /// Without a boot id, a marker another process holds is a file open in this boot: kept.
    #[test]
    fn without_a_boot_id_a_marker_held_open_keeps_the_index_file() {
        let dir = tempfile::tempdir().unwrap();
        let index = dir.path().join("cordon-access.sqlite");
        fs::write(&index, b"pages").unwrap();
        let marker = dir.path().join("cordon-access.open");
        fs::write(&marker, "b-0").unwrap();
        let holder = File::open(&marker).unwrap();
        holder.lock_shared().unwrap();
        let prepared = prepare(&index, None).unwrap();
        assert!(!prepared.removed && index.exists(), "kept while held");
        drop(holder);
        assert!(prepare(&index, None).unwrap().removed, "removed once no one holds it");
    }
}
