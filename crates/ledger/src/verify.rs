//! Full verification of a log directory, as an outside auditor would do it: recompute every
//! leaf hash from the entry bundles, every tile from the level below, the root, the
//! checkpoint's signature, and consistency with a checkpoint trusted earlier.

use std::path::{Path, PathBuf};

use crate::checkpoint::Checkpoint;
use crate::hash::{Hash, leaf_hash};
use crate::layout::{CHECKPOINT_FILE, Layout};
use crate::note::Verifier;
use crate::store::{read_tile_file, tile_width};
use crate::tile::{TileId, decode_bundle, decode_hashes};
use crate::tree::{FullTile, TILE_HEIGHT, TILE_WIDTH, TileStack};

/// What a successful verification covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifySummary {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    pub tiles_checked: u64,
    /// The size of the trusted checkpoint the log was shown to extend, if one was given.
    pub consistent_with: Option<u64>,
}

/// The first problem verification found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read `{path}`: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("checkpoint `{path}` does not verify: {reason}")]
    BadCheckpoint { path: PathBuf, reason: String },
    #[error("trusted checkpoint does not verify: {reason}")]
    BadTrustedCheckpoint { reason: String },
    #[error("entry bundle `{path}` is damaged at entry {index}: {reason}")]
    BadBundle { path: PathBuf, index: u64, reason: String },
    #[error("entry {index} does not match its leaf hash in `{tile}`: the entry or the tile was altered")]
    EntryMismatch { index: u64, tile: PathBuf },
    #[error("tile `{path}` differs from the tiles below it at hash {position}: the tile was altered")]
    TileMismatch { path: PathBuf, position: usize },
    #[error("tile `{path}` is damaged: {reason}")]
    BadTile { path: PathBuf, reason: String },
    #[error("the entries hash to root {computed}, but the checkpoint says {claimed}")]
    RootMismatch { computed: Hash, claimed: Hash },
    #[error("the log (size {size}) is smaller than the trusted checkpoint (size {trusted_size}): it was rolled back")]
    RolledBack { size: u64, trusted_size: u64 },
    #[error(
        "the log is not consistent with the trusted checkpoint: at size {trusted_size} its root is {computed}, the trusted root is {trusted}"
    )]
    Inconsistent { trusted_size: u64, computed: Hash, trusted: Hash },
}

/// Verifies the log in `dir` against `verifier`, and against `trusted` (a signed checkpoint
/// note seen earlier) if given.
pub fn verify_log(dir: &Path, verifier: &Verifier, trusted: Option<&str>) -> Result<VerifySummary, VerifyError> {
    let layout = Layout::new(dir);
    let checkpoint_path = layout.path(CHECKPOINT_FILE);
    let note = std::fs::read_to_string(&checkpoint_path)
        .map_err(|error| VerifyError::Unreadable { path: checkpoint_path.clone(), reason: error.to_string() })?;
    let checkpoint = Checkpoint::open(&note, verifier)
        .map_err(|error| VerifyError::BadCheckpoint { path: checkpoint_path.clone(), reason: error.to_string() })?;
    let trusted = trusted
        .map(|note| {
            Checkpoint::open(note, verifier)
                .map_err(|error| VerifyError::BadTrustedCheckpoint { reason: error.to_string() })
        })
        .transpose()?;
    if let Some(trusted) = &trusted
        && trusted.size > checkpoint.size
    {
        return Err(VerifyError::RolledBack { size: checkpoint.size, trusted_size: trusted.size });
    }

    let size = checkpoint.size;
    let mut stack = TileStack::new();
    let mut tiles_checked = 0u64;
    let mut consistent_with = None;
    let check_trusted = |stack: &TileStack| -> Result<Option<u64>, VerifyError> {
        match &trusted {
            Some(trusted) if trusted.size == stack.size() => {
                let computed = stack.root();
                if computed != trusted.root {
                    return Err(VerifyError::Inconsistent {
                        trusted_size: trusted.size,
                        computed,
                        trusted: trusted.root,
                    });
                }
                Ok(Some(trusted.size))
            }
            _ => Ok(None),
        }
    };
    if let Some(found) = check_trusted(&stack)? {
        consistent_with = Some(found);
    }

    let bundles = size.div_ceil(TILE_WIDTH as u64);
    for bundle_index in 0..bundles {
        let width = tile_width(size, 0, bundle_index);
        let bundle_id = TileId::entries(bundle_index, width);
        let bundle_path = layout.path(bundle_id.path());
        let first_index = bundle_index * TILE_WIDTH as u64;
        let (bytes, fallback) = read_tile_file(&layout, bundle_id)
            .map_err(|error| VerifyError::Unreadable { path: bundle_path.clone(), reason: error.to_string() })?;
        let entries = decode_bundle(&bytes, width, fallback).map_err(|defect| match defect {
            crate::tile::BundleDefect::Truncated { position } => VerifyError::BadBundle {
                path: bundle_path.clone(),
                index: first_index + position as u64,
                reason: "the bundle ends inside this entry (truncated)".into(),
            },
            crate::tile::BundleDefect::TrailingBytes { count } => VerifyError::BadBundle {
                path: bundle_path.clone(),
                index: first_index + width as u64,
                reason: format!("{count} bytes follow the last entry"),
            },
        })?;
        let level0 = read_hashes(&layout, TileId::hashes(0, bundle_index, width))?;
        tiles_checked += 2;
        for (position, entry) in entries.iter().enumerate() {
            let index = first_index + position as u64;
            let leaf = leaf_hash(entry);
            if level0.get(position) != Some(&leaf) {
                return Err(VerifyError::EntryMismatch {
                    index,
                    tile: layout.path(TileId::hashes(0, bundle_index, width).path()),
                });
            }
            let mut completed: Vec<FullTile> = Vec::new();
            stack.push(leaf, |tile| completed.push(tile));
            for tile in completed {
                // Level 0 was compared hash by hash above; higher levels are compared here.
                if tile.level > 0 {
                    compare_tile(&layout, TileId::hashes(tile.level, tile.index, TILE_WIDTH), &tile.hashes)?;
                    tiles_checked += 1;
                }
            }
            if let Some(found) = check_trusted(&stack)? {
                consistent_with = Some(found);
            }
        }
    }
    // The partial tiles above level 0 at this size.
    for level in 1..stack.levels() {
        let hashes = stack.partial(level);
        if !hashes.is_empty() {
            let index = size >> (TILE_HEIGHT * (u32::from(level) + 1));
            compare_tile(&layout, TileId::hashes(level, index, hashes.len()), hashes)?;
            tiles_checked += 1;
        }
    }
    let computed = stack.root();
    if computed != checkpoint.root {
        return Err(VerifyError::RootMismatch { computed, claimed: checkpoint.root });
    }
    Ok(VerifySummary { origin: checkpoint.origin, size, root: computed, tiles_checked, consistent_with })
}

fn read_hashes(layout: &Layout, id: TileId) -> Result<Vec<Hash>, VerifyError> {
    let path = layout.path(id.path());
    let (bytes, fallback) = read_tile_file(layout, id)
        .map_err(|error| VerifyError::Unreadable { path: path.clone(), reason: error.to_string() })?;
    decode_hashes(&bytes, id.width, fallback).ok_or_else(|| VerifyError::BadTile {
        path,
        reason: format!("expected {} bytes for {} hashes, found {}", id.width * 32, id.width, bytes.len()),
    })
}

fn compare_tile(layout: &Layout, id: TileId, expected: &[Hash]) -> Result<(), VerifyError> {
    let stored = read_hashes(layout, id)?;
    if let Some(position) = stored.iter().zip(expected).position(|(stored, expected)| stored != expected) {
        return Err(VerifyError::TileMismatch { path: layout.path(id.path()), position });
    }
    Ok(())
}
