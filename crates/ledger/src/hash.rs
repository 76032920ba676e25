//! RFC 6962 hashing: SHA-256 with a `0x00` prefix for leaves and `0x01` for interior nodes.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};

/// Bytes in one Merkle tree hash.
pub const HASH_SIZE: usize = 32;

/// A SHA-256 Merkle tree hash: of a leaf, of an interior node, or of a whole tree.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Hash(pub [u8; HASH_SIZE]);

impl Hash {
    pub fn as_bytes(&self) -> &[u8; HASH_SIZE] {
        &self.0
    }

    /// Reads a hash from exactly 32 bytes; `None` for any other length.
    pub fn from_slice(bytes: &[u8]) -> Option<Hash> {
        <[u8; HASH_SIZE]>::try_from(bytes).ok().map(Hash)
    }

    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }

    /// Reads a standard-base64 hash; `None` unless it decodes to exactly 32 bytes.
    pub fn from_base64(text: &str) -> Option<Hash> {
        BASE64.decode(text).ok().and_then(|bytes| Hash::from_slice(&bytes))
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|byte| format!("{byte:02x}")).collect()
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

/// The hash of one log entry: `SHA-256(0x00 || entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(entry);
    Hash(hasher.finalize().into())
}

/// The hash of an interior node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut block = [0u8; 1 + 2 * HASH_SIZE];
    let (prefix, children) = block.split_at_mut(1);
    let (left_half, right_half) = children.split_at_mut(HASH_SIZE);
    prefix.copy_from_slice(&[0x01]);
    left_half.copy_from_slice(&left.0);
    right_half.copy_from_slice(&right.0);
    Hash(Sha256::digest(block).into())
}

/// The root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Hash(Sha256::digest([]).into())
}

/// The largest power of two strictly below `n`, for `n >= 2`: RFC 6962's split point `k`.
pub(crate) fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2, "split_point needs at least two leaves");
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Hashes a run of perfect-subtree roots of equal height, whose count is a power of two,
/// into the root of the subtree they form. Works in place on `hashes`.
pub(crate) fn perfect_root(hashes: &mut [Hash]) -> Hash {
    debug_assert!(hashes.len().is_power_of_two(), "perfect_root needs 2^k hashes");
    let mut width = hashes.len();
    while width > 1 {
        for pair in 0..width / 2 {
            let combined = match (hashes.get(2 * pair), hashes.get(2 * pair + 1)) {
                (Some(left), Some(right)) => node_hash(left, right),
                _ => return Hash::default(),
            };
            if let Some(slot) = hashes.get_mut(pair) {
                *slot = combined;
            }
        }
        width /= 2;
    }
    hashes.first().copied().unwrap_or_else(empty_root)
}

/// Folds a sequence of equal-height subtree roots of any count into `right`, the hash of
/// everything to their right (`None` when nothing is): the RFC 6962 decomposition into
/// perfect subtrees, largest first, folded from the right.
pub(crate) fn fold_range(hashes: &[Hash], right: Option<Hash>) -> Option<Hash> {
    let mut scratch = [Hash::default(); 256];
    let mut right = right;
    let mut end = hashes.len();
    while end > 0 {
        // The rightmost perfect subtree is the lowest set bit of the remaining count.
        let width = 1usize << end.trailing_zeros();
        let start = end - width;
        let chunk = hashes.get(start..end)?;
        let root = if width <= scratch.len() {
            let buffer = scratch.get_mut(..width)?;
            buffer.copy_from_slice(chunk);
            perfect_root(buffer)
        } else {
            perfect_root(&mut chunk.to_vec())
        };
        right = Some(match right {
            None => root,
            Some(right) => node_hash(&root, &right),
        });
        end = start;
    }
    right
}
