//! The C2SP tlog-tiles layout: where tiles and entry bundles live, and their byte formats.

use std::path::PathBuf;

use crate::hash::{HASH_SIZE, Hash};
use crate::tree::TILE_WIDTH;

/// The largest entry the log accepts: an entry bundle stores lengths as big-endian uint16.
pub const ENTRY_SIZE_MAX: usize = u16::MAX as usize;

/// Which tile file: a hash tile at a level, or an entry bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TileKind {
    Hashes { level: u8 },
    Entries,
}

/// One tile resource: its kind, index within its level, and width (256 for a full tile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TileId {
    pub kind: TileKind,
    pub index: u64,
    pub width: usize,
}

impl TileId {
    pub fn hashes(level: u8, index: u64, width: usize) -> TileId {
        TileId { kind: TileKind::Hashes { level }, index, width }
    }

    pub fn entries(index: u64, width: usize) -> TileId {
        TileId { kind: TileKind::Entries, index, width }
    }

    pub fn is_full(&self) -> bool {
        self.width == TILE_WIDTH
    }

    /// The same tile at full width.
    pub fn full(&self) -> TileId {
        TileId { width: TILE_WIDTH, ..*self }
    }

    /// Reads a C2SP tile path (`tile/0/x001/x234/067.p/5`, `tile/entries/000`) in its one
    /// canonical spelling: anything else (a leading `/`, `..`, a width of 0 or 256 after
    /// `.p/`, an index written another way, a level above 63) is `None`. What a server takes
    /// from a URL.
    pub fn parse(path: &str) -> Option<TileId> {
        let rest = path.strip_prefix("tile/")?;
        let (kind, rest) = rest.split_once('/')?;
        let kind = match kind {
            "entries" => TileKind::Entries,
            level if level.len() <= 2 && level.bytes().all(|byte| byte.is_ascii_digit()) => {
                let level: u8 = level.parse().ok()?;
                if level > 63 {
                    return None;
                }
                TileKind::Hashes { level }
            }
            _ => return None,
        };
        let (index_part, width) = match rest.split_once(".p/") {
            Some((index, width)) if width.len() <= 3 && width.bytes().all(|byte| byte.is_ascii_digit()) => {
                let width: usize = width.parse().ok()?;
                if width == 0 || width >= TILE_WIDTH {
                    return None;
                }
                (index, width)
            }
            Some(_) => return None,
            None => (rest, TILE_WIDTH),
        };
        let mut index: u64 = 0;
        for group in index_part.split('/') {
            let digits = group.strip_prefix('x').unwrap_or(group);
            if digits.len() != 3 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
                return None;
            }
            index = index.checked_mul(1000)?.checked_add(digits.parse::<u64>().ok()?)?;
        }
        let id = TileId { kind, index, width };
        // One spelling per tile: `x` on every group but the last, no leading zero groups.
        (id.path().to_str() == Some(path)).then_some(id)
    }

    /// Whether this tile, at its width, lies within the tree of `size` entries (any level a
    /// path can name, however high, and any index: no overflow).
    pub fn within(&self, size: u64) -> bool {
        let available = match self.kind {
            TileKind::Hashes { level } => size.checked_shr(8 * u32::from(level)).unwrap_or(0),
            TileKind::Entries => size,
        };
        self.index
            .checked_mul(TILE_WIDTH as u64)
            .and_then(|first| first.checked_add(self.width as u64))
            .is_some_and(|end| end <= available)
    }

    /// The path relative to the log directory, e.g. `tile/0/x001/x234/067.p/5`.
    pub fn path(&self) -> PathBuf {
        let mut path = String::from("tile/");
        match self.kind {
            TileKind::Hashes { level } => path.push_str(&level.to_string()),
            TileKind::Entries => path.push_str("entries"),
        }
        path.push('/');
        path.push_str(&index_path(self.index));
        if !self.is_full() {
            path.push_str(&format!(".p/{}", self.width));
        }
        PathBuf::from(path)
    }
}

impl std::fmt::Display for TileId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path().display())
    }
}

/// Every tile of the tree of `size` entries as a checkpoint at that size names them: the
/// hash tiles of each level and the entry bundles, full ones and the partial one at each
/// level's right edge, lowest level first. What a mirror of the log copies.
pub fn published_tiles(size: u64) -> Vec<TileId> {
    let mut tiles = Vec::new();
    let mut level = 0u8;
    loop {
        let hashes = size.checked_shr(8 * u32::from(level)).unwrap_or(0);
        if hashes == 0 {
            break;
        }
        for index in 0..hashes.div_ceil(TILE_WIDTH as u64) {
            let width = crate::store::tile_width(size, level, index);
            tiles.push(TileId::hashes(level, index, width));
            if level == 0 {
                tiles.push(TileId::entries(index, width));
            }
        }
        level += 1;
    }
    tiles
}

#[cfg(test)]
mod tests {
    use super::TileId;

    #[test]
    fn tile_paths_are_read_only_in_their_canonical_spelling() {
        let good = [
            ("tile/0/000", TileId::hashes(0, 0, 256)),
            ("tile/0/x001/x234/067.p/5", TileId::hashes(0, 1_234_067, 5)),
            ("tile/entries/001.p/255", TileId::entries(1, 255)),
            ("tile/2/x999/999", TileId::hashes(2, 999_999, 256)),
        ];
        for (path, id) in good {
            assert_eq!(TileId::parse(path), Some(id), "{path}");
        }
        let bad = [
            "/tile/0/000",
            "tile/0/00",
            "tile/0/0000",
            "tile/0/x000/001",
            "tile/0/001/x002",
            "tile/0/000.p/0",
            "tile/0/000.p/256",
            "tile/0/000.p/05",
            "tile/64/000",
            "tile/00/000",
            "tile/0/../000",
            "tile/entries/",
            "tile/0/x001",
            "tile/-1/000",
            "checkpoint",
            "tile/0/000.p/",
            "tile/0/000/",
            "tile/0/x99999999999999999999/000",
        ];
        for path in bad {
            assert_eq!(TileId::parse(path), None, "{path}");
        }
    }
}

/// Encodes a tile index as zero-padded 3-digit path elements, all but the last prefixed
/// with `x`: 1234067 becomes `x001/x234/067`.
pub fn index_path(index: u64) -> String {
    let mut groups = Vec::new();
    let mut remaining = index;
    loop {
        groups.push(remaining % 1000);
        remaining /= 1000;
        if remaining == 0 {
            break;
        }
    }
    let last = groups.len() - 1;
    groups
        .iter()
        .rev()
        .enumerate()
        .map(|(position, group)| if position == last { format!("{group:03}") } else { format!("x{group:03}") })
        .collect::<Vec<_>>()
        .join("/")
}

/// The bytes of a hash tile: its hashes concatenated.
pub fn encode_hashes(hashes: &[Hash]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(hashes.len() * HASH_SIZE);
    for hash in hashes {
        bytes.extend_from_slice(hash.as_bytes());
    }
    bytes
}

/// Reads `width` hashes from a tile's bytes. A longer file is accepted only when it is the
/// full tile standing in for a deleted partial one (`allow_prefix`).
pub fn decode_hashes(bytes: &[u8], width: usize, allow_prefix: bool) -> Option<Vec<Hash>> {
    let needed = width * HASH_SIZE;
    if bytes.len() < needed || (!allow_prefix && bytes.len() != needed) {
        return None;
    }
    bytes.get(..needed)?.chunks_exact(HASH_SIZE).map(Hash::from_slice).collect()
}

/// Appends one entry to an entry bundle: `uint16_be(len) || entry`.
pub fn push_bundle_entry(bundle: &mut Vec<u8>, entry: &[u8]) {
    debug_assert!(entry.len() <= ENTRY_SIZE_MAX, "entry length is checked before it is sequenced");
    bundle.extend_from_slice(&(entry.len() as u16).to_be_bytes());
    bundle.extend_from_slice(entry);
}

/// Why an entry bundle could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleDefect {
    /// The bytes end inside entry `position` (0-based within the bundle).
    Truncated { position: usize },
    /// Bytes remain after the expected number of entries.
    TrailingBytes { count: usize },
}

/// Splits an entry bundle into `width` entries. With `allow_prefix`, a full bundle standing
/// in for a deleted partial one may hold more.
pub fn decode_bundle(bytes: &[u8], width: usize, allow_prefix: bool) -> Result<Vec<&[u8]>, BundleDefect> {
    let mut entries = Vec::with_capacity(width);
    let mut rest = bytes;
    for position in 0..width {
        let (length, tail) = match rest {
            [high, low, tail @ ..] => (usize::from(u16::from_be_bytes([*high, *low])), tail),
            _ => return Err(BundleDefect::Truncated { position }),
        };
        let Some(entry) = tail.get(..length) else {
            return Err(BundleDefect::Truncated { position });
        };
        entries.push(entry);
        rest = tail.get(length..).unwrap_or(&[]);
    }
    if !allow_prefix && !rest.is_empty() {
        return Err(BundleDefect::TrailingBytes { count: rest.len() });
    }
    Ok(entries)
}
