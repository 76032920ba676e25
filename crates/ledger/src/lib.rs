//! cordon's audit ledger: an append-only, tamper-evident log of every access decision.
//!
//! Entries are hashed into an RFC 6962 Merkle tree stored in the C2SP tlog-tiles layout,
//! with C2SP checkpoints signed by Ed25519 and receipts in the C2SP tlog-proof format, so any
//! outside tool that speaks those formats can audit it. Appends are durable (group-committed
//! to a write-ahead log with fdatasync) before they are acknowledged.
//!
//! The ledger stores opaque bytes. It knows nothing of customers, HTTP or SQL: what goes in
//! an entry, and keeping personal data out of it, is the caller's business.

mod bundle;
mod checkpoint;
mod error;
mod hash;
mod layout;
mod ledger;
mod note;
mod proof;
mod store;
mod tile;
mod tree;
mod verify;
mod wal;

pub use bundle::{
    BUNDLE_ENTRIES_MAX, BundleError, BundleParts, BundleSummary, SEAL_MARKER, TAR_BLOCK, bundle_chunks, hex_sha256,
    manifest, tar_header, verify_bundle, write_bundle,
};
pub use checkpoint::{Checkpoint, CheckpointError, format_receipt, verify_receipt};
pub use error::LedgerError;
pub use hash::{HASH_SIZE, Hash, empty_root, leaf_hash, node_hash};
pub use layout::{CHECKPOINT_FILE, Layout, SIGNING_KEY_FILE, VERIFIER_KEY_FILE};
pub use ledger::{Appending, Ledger, LedgerConfig, LedgerStats};
pub use note::{NoteError, Signer, Verifier};
pub use proof::{
    ProofError, SubtreeSource, consistency_proof, inclusion_proof, range_hash, verify_consistency, verify_inclusion,
};
pub use store::{LogReader, SignedCheckpoint, TileHashes, read_tile_file, tile_width};
pub use tile::{
    ENTRY_SIZE_MAX, TileId, TileKind, decode_bundle, decode_hashes, encode_hashes, index_path, published_tiles,
    push_bundle_entry,
};
pub use tree::{FullTile, TILE_WIDTH, TileStack, level_count, partial_width};
pub use verify::{VerifyError, VerifySummary, verify_log};
