//! The ledger's error type. It is `Clone` so that one failed group commit can be reported to
//! every appender in the batch.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::checkpoint::CheckpointError;
use crate::note::NoteError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum LedgerError {
    #[error("entry of {size} bytes is too large: the log accepts at most 65,535 bytes per entry")]
    EntryTooLarge { size: usize },
    #[error("cannot {action} `{path}`: {source}")]
    Io { action: &'static str, path: PathBuf, source: Arc<io::Error> },
    #[error("log `{dir}` is already open for writing by another process (lock `{dir}/private/lock` is held)")]
    Locked { dir: PathBuf },
    #[error("`{dir}` is not a cordon log: {reason}")]
    NotALog { dir: PathBuf, reason: String },
    #[error("cannot create a log in `{dir}`: the folder exists and is not empty")]
    AlreadyExists { dir: PathBuf },
    #[error("log is damaged at `{path}`: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("index {index} is not in the tree of size {size}")]
    OutOfRange { index: u64, size: u64 },
    #[error("the log stopped accepting entries after an earlier write failed: {reason}")]
    Failed { reason: String },
    #[error("the log is closed")]
    Closed,
    #[error(transparent)]
    Note(#[from] NoteError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

impl LedgerError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> LedgerError {
        let path = path.into();
        move |source| LedgerError::Io { action, path, source: Arc::new(source) }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> LedgerError {
        LedgerError::Corrupt { path: path.into(), reason: reason.into() }
    }
}
