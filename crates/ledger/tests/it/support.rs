//! Helpers shared by the ledger's tests: an independent reference tree, and logs built to
//! chosen sizes.

use std::path::{Path, PathBuf};

use cordon_ledger::{Hash, Ledger, LedgerConfig, SignedCheckpoint, Verifier, empty_root, leaf_hash, node_hash};

/// The project root, where `../shared/vectors` is found from.
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shared test vectors, which sit beside the project checkout as `../shared/vectors`.
pub fn vectors_dir() -> PathBuf {
    let dir = project_root().join("../shared/vectors");
    assert!(dir.is_dir(), "the shared test vectors are missing: expected them at `{}`", dir.display());
    dir
}

/// RFC 6962's MTH computed by its recursive definition, independent of the tile code.
pub fn reference_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        count => {
            let split = 1usize << (usize::BITS - 1 - (count - 1).leading_zeros());
            node_hash(&reference_root(&leaves[..split]), &reference_root(&leaves[split..]))
        }
    }
}

pub fn test_entry(index: u64) -> Vec<u8> {
    format!("audit entry {index}").into_bytes()
}

/// A log in a fresh temporary folder.
pub struct TestLog {
    pub dir: tempfile::TempDir,
    pub verifier: Verifier,
}

impl TestLog {
    pub fn new(origin: &str) -> TestLog {
        let dir = tempfile::tempdir().unwrap();
        let verifier = Ledger::create(&dir.path().join("log"), origin).unwrap();
        TestLog { dir, verifier }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    pub fn open(&self) -> Ledger {
        Ledger::open(&self.path(), LedgerConfig::default()).unwrap()
    }
}

/// Appends `test_entry(i)` until the log reaches each size in turn, publishing a checkpoint
/// at each; returns them.
pub fn grow_to_sizes(ledger: &Ledger, sizes: &[u64]) -> Vec<SignedCheckpoint> {
    let mut checkpoints = Vec::new();
    let mut next = ledger.checkpoint().checkpoint.size;
    for &size in sizes {
        while next < size {
            let end = size.min(next + 10_000);
            let first = ledger.append_batch((next..end).map(test_entry).collect()).wait().unwrap();
            assert_eq!(first, next, "a batch's first index is the tree size before it");
            next = end;
        }
        let signed = ledger.publish().unwrap();
        assert_eq!(signed.checkpoint.size, size);
        checkpoints.push(signed);
    }
    checkpoints
}

pub fn reference_leaves(size: u64) -> Vec<Hash> {
    (0..size).map(|index| leaf_hash(&test_entry(index))).collect()
}

/// Copies a folder tree, files and all.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for item in std::fs::read_dir(from).unwrap() {
        let item = item.unwrap();
        let target = to.join(item.file_name());
        if item.file_type().unwrap().is_dir() {
            copy_dir(&item.path(), &target);
        } else {
            std::fs::copy(item.path(), target).unwrap();
        }
    }
}
