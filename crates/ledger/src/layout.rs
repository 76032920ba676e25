//! The files of a log directory and how they are written.
//!
//! The public part is exactly the C2SP tlog-tiles layout plus `checkpoint`, so the directory
//! can be served as static files. Everything else lives under `private/` (mode 0700): the
//! signing key, the write-ahead log, the writer lock and scratch space for atomic writes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub const CHECKPOINT_FILE: &str = "checkpoint";
pub const PRIVATE_DIR: &str = "private";
pub const SIGNING_KEY_FILE: &str = "private/signing-key";
pub const VERIFIER_KEY_FILE: &str = "private/verifier-key";
pub const LOCK_FILE: &str = "private/lock";
pub const WAL_DIR: &str = "private/wal";
pub const SCRATCH_DIR: &str = "private/tmp";

/// Paths within one log directory.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

static SCRATCH_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Layout {
    pub fn new(root: &Path) -> Layout {
        Layout { root: root.to_path_buf() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.root.join(relative)
    }

    /// Creates `private/` and its subfolders with mode 0700, durably: the folders holding
    /// new ones are synced.
    pub fn create_private_dirs(&self) -> io::Result<()> {
        let mut changed = false;
        for dir in [PRIVATE_DIR, WAL_DIR, SCRATCH_DIR] {
            let path = self.path(dir);
            if !path.is_dir() {
                fs::DirBuilder::new().recursive(true).mode(0o700).create(path)?;
                changed = true;
            }
        }
        if changed {
            sync_dir_path(&self.root)?;
            sync_dir_path(&self.path(PRIVATE_DIR))?;
        }
        Ok(())
    }

    /// Writes `bytes` to `relative` so that a reader sees either the old file or the whole new
    /// one: a scratch file, fsync, rename into place, creating missing folders on the way.
    /// With `sync_dir`, the containing folder, and the parent of every folder created, are
    /// fsynced too, and the answer is empty; otherwise the answer is the parents of the
    /// folders created, which the caller syncs, with the containing folder, once per batch.
    pub fn write_atomic(&self, relative: &Path, bytes: &[u8], mode: u32, sync_dir: bool) -> io::Result<Vec<PathBuf>> {
        let target = self.path(relative);
        let parent = target.parent().map(Path::to_path_buf).unwrap_or_else(|| self.root.clone());
        let created = create_dirs(&parent)?;
        let scratch = self.path(SCRATCH_DIR).join(format!(
            "{}.{}",
            std::process::id(),
            SCRATCH_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| {
            let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&scratch)?;
            file.write_all(bytes)?;
            file.sync_data()?;
            fs::rename(&scratch, &target)
        })();
        if let Err(error) = written {
            // A full disk must not also fill up with scratch files, one per retry.
            let _ = fs::remove_file(&scratch);
            return Err(error);
        }
        if sync_dir {
            sync_dir_path(&parent)?;
            for dir in &created {
                sync_dir_path(dir)?;
            }
            return Ok(Vec::new());
        }
        Ok(created)
    }

    /// Removes files left in the scratch folder by a writer that crashed mid-write.
    pub fn clear_scratch(&self) -> io::Result<()> {
        let scratch = self.path(SCRATCH_DIR);
        for item in fs::read_dir(&scratch)? {
            fs::remove_file(item?.path())?;
        }
        Ok(())
    }
}

/// Creates `dir` and any missing ancestors; returns the parents of the folders it created,
/// deepest first, whose new entries a power cut could lose until they are synced.
fn create_dirs(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut next = Some(dir);
    while let Some(candidate) = next {
        if candidate.as_os_str().is_empty() || candidate.is_dir() {
            break;
        }
        missing.push(candidate);
        next = candidate.parent();
    }
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    fs::create_dir_all(dir)?;
    Ok(missing.iter().filter_map(|created| created.parent().map(Path::to_path_buf)).collect())
}

/// Makes a folder's entries (new, renamed or removed files) durable.
pub fn sync_dir_path(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Regression: creating a tile's folders did not sync their parents, so a power cut could
    /// lose a new folder that a checkpoint names. Each created folder's parent is handed back
    /// for syncing (or synced at once with `sync_dir`).
    #[test]
    fn new_folders_name_the_parents_to_sync() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        layout.create_private_dirs().unwrap();
        let created = layout.write_atomic(Path::new("tile/0/x001/002"), b"tile", 0o644, false).unwrap();
        let expected: Vec<PathBuf> = ["tile/0", "tile", ""].iter().map(|relative| dir.path().join(relative)).collect();
        let normalized: Vec<PathBuf> = created.iter().map(|path| path.components().collect()).collect();
        let expected: Vec<PathBuf> = expected.iter().map(|path| path.components().collect()).collect();
        assert_eq!(normalized, expected);
        let again = layout.write_atomic(Path::new("tile/0/x001/003"), b"tile", 0o644, false).unwrap();
        assert!(again.is_empty(), "no folder was created: {again:?}");
        let synced = layout.write_atomic(Path::new("tile/1/000"), b"tile", 0o644, true).unwrap();
        assert!(synced.is_empty(), "synced at once: {synced:?}");
    }
}
