//! The right edge of a tiled Merkle tree, grown one leaf at a time without IO.
//!
//! The tree is kept as one partial tile per level: level 0 holds leaf hashes, level `L`
//! holds the roots of full tiles of level `L - 1`. When a tile fills (256 hashes), its root
//! moves up a level and the full tile is handed to the caller to store. This is exactly the
//! C2SP tlog-tiles shape, so what the stack holds at any size is what the partial tiles of a
//! checkpoint at that size contain.

use crate::hash::{Hash, empty_root, fold_range, perfect_root};

/// Hashes in a full tile.
pub const TILE_WIDTH: usize = 256;
/// Tree height covered by one tile.
pub const TILE_HEIGHT: u32 = 8;

/// A full tile that the stack completed: it never changes again and can be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullTile {
    pub level: u8,
    pub index: u64,
    pub hashes: Vec<Hash>,
}

/// The partial tiles at the right edge of a tree, one per level.
#[derive(Debug, Clone, Default)]
pub struct TileStack {
    size: u64,
    levels: Vec<Vec<Hash>>,
}

impl TileStack {
    pub fn new() -> TileStack {
        TileStack::default()
    }

    /// Rebuilds the stack of a tree of `size` from its partial tiles, lowest level first.
    /// Each level's width must be `floor(size / 256^L) mod 256`; `None` otherwise.
    pub fn from_partial_tiles(size: u64, levels: Vec<Vec<Hash>>) -> Option<TileStack> {
        for (level, hashes) in levels.iter().enumerate() {
            if hashes.len() != partial_width(size, level as u8) {
                return None;
            }
        }
        if levels.len() < level_count(size) {
            return None;
        }
        Some(TileStack { size, levels })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The hashes of the partial tile at `level` (empty when the level has none).
    pub fn partial(&self, level: u8) -> &[Hash] {
        self.levels.get(usize::from(level)).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Number of levels that may hold a partial tile.
    pub fn levels(&self) -> u8 {
        self.levels.len() as u8
    }

    /// Adds the next leaf hash; calls `on_full` with each tile this completes, lowest first.
    pub fn push(&mut self, leaf: Hash, mut on_full: impl FnMut(FullTile)) {
        self.size += 1;
        let mut carry = leaf;
        let mut level = 0usize;
        loop {
            if self.levels.len() <= level {
                self.levels.push(Vec::with_capacity(TILE_WIDTH));
            }
            let Some(hashes) = self.levels.get_mut(level) else { return };
            hashes.push(carry);
            if hashes.len() < TILE_WIDTH {
                return;
            }
            let mut full = std::mem::replace(hashes, Vec::with_capacity(TILE_WIDTH));
            let index = (self.size >> (TILE_HEIGHT * (level as u32 + 1))) - 1;
            let mut scratch = [Hash::default(); TILE_WIDTH];
            scratch.copy_from_slice(&full);
            carry = perfect_root(&mut scratch);
            full.shrink_to_fit();
            on_full(FullTile { level: level as u8, index, hashes: full });
            level += 1;
        }
    }

    /// The RFC 6962 root of the tree.
    pub fn root(&self) -> Hash {
        // Lower levels hold the smaller subtrees, which sit to the right of higher ones.
        let mut right: Option<Hash> = None;
        for hashes in &self.levels {
            right = fold_range(hashes, right);
        }
        right.unwrap_or_else(empty_root)
    }
}

/// Width of the partial tile at `level` for a tree of `size`: `floor(size / 256^L) mod 256`.
pub fn partial_width(size: u64, level: u8) -> usize {
    let shift = TILE_HEIGHT * u32::from(level);
    if shift >= u64::BITS {
        return 0;
    }
    ((size >> shift) % TILE_WIDTH as u64) as usize
}

/// Number of tile levels a tree of `size` touches (0 for the empty tree).
pub fn level_count(size: u64) -> usize {
    let mut levels = 0;
    let mut remaining = size;
    while remaining > 0 {
        levels += 1;
        remaining >>= TILE_HEIGHT;
    }
    levels
}
