//! Reading a log's public files: checkpoints, hash tiles and entry bundles, and proofs
//! computed from them. Readers need no lock; they read what the writer has published.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::Path;

use crate::checkpoint::{Checkpoint, CheckpointError, format_receipt};
use crate::error::LedgerError;
use crate::hash::{Hash, perfect_root};
use crate::layout::{CHECKPOINT_FILE, Layout};
use crate::proof::{SubtreeSource, consistency_proof, inclusion_proof};
use crate::tile::{TileId, decode_bundle, decode_hashes};
use crate::tree::{TILE_HEIGHT, TILE_WIDTH};

/// A checkpoint with the signed note it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub checkpoint: Checkpoint,
    pub note: String,
}

impl SignedCheckpoint {
    /// Reads the body of a signed note without checking signatures; for the log's own files.
    pub fn parse_unverified(note: &str) -> Result<SignedCheckpoint, CheckpointError> {
        let body_end = note.find("\n\n").ok_or(CheckpointError::Malformed("no blank line before the signatures"))?;
        let body = note.get(..=body_end).ok_or(CheckpointError::Malformed("no body"))?;
        Ok(SignedCheckpoint { checkpoint: Checkpoint::parse(body)?, note: note.to_string() })
    }
}

/// Read access to a log directory's public files.
#[derive(Debug, Clone)]
pub struct LogReader {
    layout: Layout,
}

impl LogReader {
    pub fn new(dir: &Path) -> LogReader {
        LogReader { layout: Layout::new(dir) }
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The current signed checkpoint, as published (signatures not checked here).
    pub fn checkpoint(&self) -> Result<SignedCheckpoint, LedgerError> {
        let path = self.layout.path(CHECKPOINT_FILE);
        let note = fs::read_to_string(&path).map_err(|error| {
            if error.kind() == io::ErrorKind::NotFound {
                LedgerError::NotALog {
                    dir: self.layout.root().to_path_buf(),
                    reason: "it has no `checkpoint` file".into(),
                }
            } else {
                LedgerError::io("read", &path)(error)
            }
        })?;
        SignedCheckpoint::parse_unverified(&note).map_err(|error| LedgerError::corrupt(path, error.to_string()))
    }

    /// The inclusion proof of entry `index` in the tree of `size` (at most the published size).
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, LedgerError> {
        if index >= size {
            return Err(LedgerError::OutOfRange { index, size });
        }
        inclusion_proof(&mut self.tiles(size), index, size)
    }

    /// The consistency proof from the tree of `old_size` to the tree of `new_size`.
    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash>, LedgerError> {
        if old_size > new_size {
            return Err(LedgerError::OutOfRange { index: old_size, size: new_size });
        }
        consistency_proof(&mut self.tiles(new_size), old_size, new_size)
    }

    /// The hash tiles of the tree of `size`, read from files.
    fn tiles(&self, size: u64) -> TileHashes<impl FnMut(u8, u64) -> Result<Vec<Hash>, LedgerError> + '_> {
        TileHashes::new(size, move |level, index| read_hash_tile(&self.layout, level, index, size))
    }

    /// A C2SP tlog-proof receipt for entry `index` against the current checkpoint.
    pub fn receipt(&self, index: u64) -> Result<String, LedgerError> {
        let signed = self.checkpoint()?;
        let proof = self.inclusion_proof(index, signed.checkpoint.size)?;
        Ok(format_receipt(index, &proof, &signed.note))
    }

    /// The entry at `index`, read from its bundle in the tree of `size`.
    pub fn entry(&self, index: u64, size: u64) -> Result<Vec<u8>, LedgerError> {
        if index >= size {
            return Err(LedgerError::OutOfRange { index, size });
        }
        let tile = index / TILE_WIDTH as u64;
        let id = TileId::entries(tile, tile_width(size, 0, tile));
        let (bytes, fallback) = read_tile_file(&self.layout, id)?;
        let entries = decode_bundle(&bytes, id.width, fallback)
            .map_err(|defect| LedgerError::corrupt(self.layout.path(id.path()), format!("{defect:?}")))?;
        let position = (index % TILE_WIDTH as u64) as usize;
        entries
            .get(position)
            .map(|entry| entry.to_vec())
            .ok_or_else(|| LedgerError::corrupt(self.layout.path(id.path()), "the bundle is short"))
    }
}

impl LogReader {
    /// Calls `visit` with each entry's index and bytes, from `from` up to `size`, reading each
    /// bundle once: scans (the simulator's story, replays, scope) go through here rather
    /// than one `entry` call, and one bundle read, per entry.
    pub fn for_each_entry(
        &self,
        from: u64,
        size: u64,
        visit: impl FnMut(u64, &[u8]) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError> {
        self.for_each_entry_of(size, from, size, visit)
    }

    /// Like [`LogReader::for_each_entry`], for the entries from `from` up to `to` of the tree
    /// of `size` (a published size): the tiles are those of that tree. (A range that ends
    /// before the tree does cannot name its own tree: the last tile of a tree of `to` entries
    /// may have been replaced by a wider one since.)
    pub fn for_each_entry_of(
        &self,
        size: u64,
        from: u64,
        to: u64,
        mut visit: impl FnMut(u64, &[u8]) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError> {
        let to = to.min(size);
        let mut index = from;
        while index < to {
            let tile = index / TILE_WIDTH as u64;
            let id = TileId::entries(tile, tile_width(size, 0, tile));
            let (bytes, fallback) = read_tile_file(&self.layout, id)?;
            let entries = decode_bundle(&bytes, id.width, fallback)
                .map_err(|defect| LedgerError::corrupt(self.layout.path(id.path()), format!("{defect:?}")))?;
            let start = (index % TILE_WIDTH as u64) as usize;
            for entry in entries.iter().skip(start) {
                if index >= to {
                    break;
                }
                visit(index, entry)?;
                index += 1;
            }
            if entries.len() <= start {
                return Err(LedgerError::corrupt(self.layout.path(id.path()), "the bundle is short"));
            }
        }
        Ok(())
    }
}

impl LogReader {
    /// Calls `visit` with the path (relative to the log directory) and bytes of every tile
    /// file of the tree of `size` (a published size): each hash tile and entry bundle at the
    /// width that tree has, so a folder holding exactly these files and the checkpoint for
    /// `size` is that log. A partial tile the log has since replaced by its full tile is
    /// cut back from the full one. Backups copy a running log through here.
    pub fn tree_files(
        &self,
        size: u64,
        mut visit: impl FnMut(&Path, Vec<u8>) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError> {
        let mut level = 0u8;
        loop {
            let hashes_at_level = size >> (TILE_HEIGHT * u32::from(level));
            if hashes_at_level == 0 {
                break;
            }
            let tiles = hashes_at_level.div_ceil(TILE_WIDTH as u64);
            for index in 0..tiles {
                let width = tile_width(size, level, index);
                let hashes = read_hash_tile(&self.layout, level, index, size)?;
                visit(&TileId::hashes(level, index, width).path(), crate::tile::encode_hashes(&hashes))?;
                if level == 0 {
                    let id = TileId::entries(index, width);
                    let (bytes, fallback) = read_tile_file(&self.layout, id)?;
                    let entries = decode_bundle(&bytes, width, fallback)
                        .map_err(|defect| LedgerError::corrupt(self.layout.path(id.path()), format!("{defect:?}")))?;
                    let mut bundle = Vec::with_capacity(bytes.len());
                    for entry in entries.iter().take(width) {
                        crate::tile::push_bundle_entry(&mut bundle, entry);
                    }
                    visit(&id.path(), bundle)?;
                }
            }
            level = level
                .checked_add(1)
                .ok_or_else(|| LedgerError::corrupt(self.layout.path("tile"), "the tree has too many levels"))?;
        }
        Ok(())
    }
}

/// Width of tile `index` at `level` in a tree of `size`: 256 if full, else the partial width.
pub fn tile_width(size: u64, level: u8, index: u64) -> usize {
    let hashes_at_level = size >> (TILE_HEIGHT * u32::from(level));
    let full_tiles = hashes_at_level / TILE_WIDTH as u64;
    if index < full_tiles { TILE_WIDTH } else { (hashes_at_level % TILE_WIDTH as u64) as usize }
}

/// Reads a tile file. A missing partial tile falls back to the full one (the log deletes a
/// partial once its full tile exists); the flag says whether that happened.
pub fn read_tile_file(layout: &Layout, id: TileId) -> Result<(Vec<u8>, bool), LedgerError> {
    let path = layout.path(id.path());
    match fs::read(&path) {
        Ok(bytes) => Ok((bytes, false)),
        Err(error) if error.kind() == io::ErrorKind::NotFound && !id.is_full() => {
            let full_path = layout.path(id.full().path());
            match fs::read(&full_path) {
                Ok(bytes) => Ok((bytes, true)),
                Err(error) if error.kind() == io::ErrorKind::NotFound => {
                    Err(LedgerError::corrupt(path, "the tile is missing (and so is its full tile)"))
                }
                Err(error) => Err(LedgerError::io("read", full_path)(error)),
            }
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => Err(LedgerError::corrupt(path, "the tile is missing")),
        Err(error) => Err(LedgerError::io("read", path)(error)),
    }
}

/// Reads the hashes of tile `index` at `level` in the tree of `size`.
pub fn read_hash_tile(layout: &Layout, level: u8, index: u64, size: u64) -> Result<Vec<Hash>, LedgerError> {
    let id = TileId::hashes(level, index, tile_width(size, level, index));
    let (bytes, fallback) = read_tile_file(layout, id)?;
    decode_hashes(&bytes, id.width, fallback).ok_or_else(|| {
        LedgerError::corrupt(
            layout.path(id.path()),
            format!("expected {} hashes ({} bytes), found {} bytes", id.width, id.width * 32, bytes.len()),
        )
    })
}

/// Perfect-subtree hashes from a tree's hash tiles wherever they are stored (files here, a
/// database's rows for a log sequenced there), caching each tile read during one proof:
/// `read(level, index)` returns the tile's hashes as the tree of `size` has them.
pub struct TileHashes<R> {
    read: R,
    size: u64,
    tiles: HashMap<(u8, u64), Vec<Hash>>,
}

impl<R> std::fmt::Debug for TileHashes<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TileHashes(size {})", self.size)
    }
}

impl<R: FnMut(u8, u64) -> Result<Vec<Hash>, LedgerError>> TileHashes<R> {
    pub fn new(size: u64, read: R) -> TileHashes<R> {
        TileHashes { read, size, tiles: HashMap::new() }
    }
}

impl<R: FnMut(u8, u64) -> Result<Vec<Hash>, LedgerError>> SubtreeSource for TileHashes<R> {
    type Error = LedgerError;

    fn subtree(&mut self, height: u32, index: u64) -> Result<Hash, LedgerError> {
        // A subtree of height h is hashed from 2^(h mod 8) hashes of tile level h / 8.
        let level = (height / TILE_HEIGHT) as u8;
        let within = height % TILE_HEIGHT;
        let first = index << within;
        let count = 1usize << within;
        let tile = first / TILE_WIDTH as u64;
        let offset = (first % TILE_WIDTH as u64) as usize;
        if !self.tiles.contains_key(&(level, tile)) {
            let hashes = (self.read)(level, tile)?;
            self.tiles.insert((level, tile), hashes);
        }
        let hashes = self.tiles.get(&(level, tile)).map(Vec::as_slice).unwrap_or(&[]);
        let Some(run) = hashes.get(offset..offset + count) else {
            return Err(LedgerError::OutOfRange { index: first, size: self.size });
        };
        let mut scratch = run.to_vec();
        Ok(perfect_root(&mut scratch))
    }
}
