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

    /// Creates `private/` and its subfolders with mode 0700.
    pub fn create_private_dirs(&self) -> io::Result<()> {
        for dir in [PRIVATE_DIR, WAL_DIR, SCRATCH_DIR] {
            fs::DirBuilder::new().recursive(true).mode(0o700).create(self.path(dir))?;
        }
        Ok(())
    }

    /// Writes `bytes` to `relative` so that a reader sees either the old file or the whole new
    /// one: a scratch file, fsync, rename into place. With `sync_dir`, the containing folder is
    /// fsynced too; otherwise the caller syncs the folders it touched once per batch.
    pub fn write_atomic(&self, relative: &Path, bytes: &[u8], mode: u32, sync_dir: bool) -> io::Result<()> {
        let target = self.path(relative);
        let parent = target.parent().map(Path::to_path_buf).unwrap_or_else(|| self.root.clone());
        fs::create_dir_all(&parent)?;
        let scratch = self.path(SCRATCH_DIR).join(format!(
            "{}.{}",
            std::process::id(),
            SCRATCH_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        {
            let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&scratch)?;
            file.write_all(bytes)?;
            file.sync_data()?;
        }
        fs::rename(&scratch, &target)?;
        if sync_dir {
            sync_dir_path(&parent)?;
        }
        Ok(())
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

/// Makes a folder's entries (new, renamed or removed files) durable.
pub fn sync_dir_path(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
