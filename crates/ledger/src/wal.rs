//! The write-ahead log: the durable record of every entry until its tiles and a checkpoint
//! covering it are on disk.
//!
//! Segments live in `private/wal/<first index, 20 digits>.wal`. A segment starts with an
//! 8-byte magic and its first index; each record is `u32 length | u32 crc32 | entry`, little
//! endian, where the checksum covers the record's index, length and entry, so a torn or
//! misplaced record is detected. Only the newest segment can end in a torn record.

use std::fs::{self, File, OpenOptions};
use std::io::{Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use crate::error::LedgerError;
use crate::layout::sync_dir_path;

const MAGIC: &[u8; 8] = b"CDNWAL01";
const HEADER_SIZE: usize = 16;
const RECORD_HEADER_SIZE: usize = 8;

/// Appends records to the newest segment.
#[derive(Debug)]
pub struct WalWriter {
    dir: PathBuf,
    file: File,
    path: PathBuf,
    segment_bytes: u64,
    next_index: u64,
    buffer: Vec<u8>,
}

impl WalWriter {
    /// Starts a new segment whose first record will have index `first_index`.
    pub fn create(dir: &Path, first_index: u64) -> Result<WalWriter, LedgerError> {
        let path = segment_path(dir, first_index);
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(LedgerError::io("create", &path))?;
        let mut header = Vec::with_capacity(HEADER_SIZE);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&first_index.to_le_bytes());
        file.write_all(&header).map_err(LedgerError::io("write", &path))?;
        file.sync_data().map_err(LedgerError::io("sync", &path))?;
        sync_dir_path(dir).map_err(LedgerError::io("sync", dir))?;
        Ok(WalWriter {
            dir: dir.to_path_buf(),
            file,
            path,
            segment_bytes: HEADER_SIZE as u64,
            next_index: first_index,
            buffer: Vec::new(),
        })
    }

    /// Continues the newest segment, which recovery has checked and trimmed to `length`
    /// bytes holding records up to `next_index`.
    fn resume(dir: &Path, path: PathBuf, length: u64, next_index: u64) -> Result<WalWriter, LedgerError> {
        let mut file = OpenOptions::new().write(true).open(&path).map_err(LedgerError::io("open", &path))?;
        file.seek(SeekFrom::Start(length)).map_err(LedgerError::io("seek", &path))?;
        Ok(WalWriter { dir: dir.to_path_buf(), file, path, segment_bytes: length, next_index, buffer: Vec::new() })
    }

    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// Writes the entries as one group and makes them durable with one fdatasync. Returns the
    /// index of the first. On error nothing may be assumed durable.
    pub fn append<'a>(&mut self, entries: impl Iterator<Item = &'a [u8]>) -> Result<u64, LedgerError> {
        let first = self.next_index;
        self.buffer.clear();
        let mut index = first;
        for entry in entries {
            let length = entry.len() as u32;
            let mut crc = crc32fast::Hasher::new();
            crc.update(&index.to_le_bytes());
            crc.update(&length.to_le_bytes());
            crc.update(entry);
            self.buffer.extend_from_slice(&length.to_le_bytes());
            self.buffer.extend_from_slice(&crc.finalize().to_le_bytes());
            self.buffer.extend_from_slice(entry);
            index += 1;
        }
        self.file.write_all(&self.buffer).map_err(LedgerError::io("write", &self.path))?;
        self.file.sync_data().map_err(LedgerError::io("sync", &self.path))?;
        self.segment_bytes += self.buffer.len() as u64;
        self.next_index = index;
        Ok(first)
    }

    /// Removes whatever a failed [`WalWriter::append`] left after the last acknowledged
    /// record: a group whose write or sync failed was never acknowledged, and its callers were
    /// told so, so none of it may be recovered as if it had been. Truncating needs no free
    /// space, so this usually succeeds even on a full disk.
    pub fn discard_unacknowledged(&mut self) -> Result<(), LedgerError> {
        let truncated = self
            .file
            .set_len(self.segment_bytes)
            .and_then(|()| self.file.seek(SeekFrom::Start(self.segment_bytes)).map(drop))
            .and_then(|()| self.file.sync_all());
        let Err(error) = truncated else { return Ok(()) };
        // Failing that, overwrite the first unacknowledged record's header in place (no new
        // blocks needed): its checksum then fails, and recovery trims from there.
        let spoiled =
            std::os::unix::fs::FileExt::write_all_at(&self.file, &[0xff; RECORD_HEADER_SIZE], self.segment_bytes)
                .and_then(|()| self.file.sync_data());
        match spoiled {
            Ok(()) => Ok(()),
            Err(_) => Err(LedgerError::io("truncate", &self.path)(error)),
        }
    }

    /// Starts a new segment once this one has grown past `segment_bytes_max`.
    pub fn rotate_if_larger_than(&mut self, segment_bytes_max: u64) -> Result<(), LedgerError> {
        if self.segment_bytes >= segment_bytes_max {
            *self = WalWriter::create(&self.dir, self.next_index)?;
        }
        Ok(())
    }
}

/// Reads every segment in order, trims a torn tail off the newest, and returns the records
/// from index `from` on together with a writer positioned after the last good record. When
/// the log has no segment covering `from`, a new segment starts there. With
/// `acknowledged`, records from that index on are trimmed like a torn tail: a writer that
/// reopens its own log after a failure knows they were never acknowledged.
pub fn recover(dir: &Path, from: u64, acknowledged: Option<u64>) -> Result<(Vec<Vec<u8>>, WalWriter), LedgerError> {
    let segments = list_segments(dir)?;
    let mut recovered = Vec::new();
    let mut expected: Option<u64> = None;
    let mut last: Option<(PathBuf, u64, u64)> = None;
    let count = segments.len();
    for (position, (base, path)) in segments.into_iter().enumerate() {
        let is_newest = position + 1 == count;
        if let Some(expected) = expected
            && base != expected
        {
            return Err(LedgerError::corrupt(
                &path,
                format!("segment starts at index {base} but the previous one ends at {expected}"),
            ));
        }
        let bytes = fs::read(&path).map_err(LedgerError::io("read", &path))?;
        let header_ok = bytes.get(..8) == Some(MAGIC.as_slice())
            && bytes.get(8..16).and_then(|raw| <[u8; 8]>::try_from(raw).ok()).map(u64::from_le_bytes) == Some(base);
        if !header_ok {
            if is_newest && bytes.len() < HEADER_SIZE {
                // A crash while creating the segment: nothing in it was ever acknowledged.
                fs::remove_file(&path).map_err(LedgerError::io("remove", &path))?;
                continue;
            }
            return Err(LedgerError::corrupt(&path, "the segment header is not a cordon write-ahead log header"));
        }
        let mut offset = HEADER_SIZE;
        let mut index = base;
        while acknowledged.is_none_or(|acknowledged| index < acknowledged)
            && let Some((entry, next_offset)) = read_record(&bytes, offset, index)
        {
            if index >= from {
                recovered.push(entry.to_vec());
            }
            offset = next_offset;
            index += 1;
        }
        if offset < bytes.len() {
            if !is_newest {
                return Err(LedgerError::corrupt(
                    &path,
                    format!("record {index} at byte {offset} is damaged and later segments exist"),
                ));
            }
            // A torn tail: the batch being written when the process stopped (or, reopening
            // after a failure, the groups that failed). None of it was acknowledged, because
            // acknowledgement follows the fdatasync.
            let file = OpenOptions::new().write(true).open(&path).map_err(LedgerError::io("open", &path))?;
            file.set_len(offset as u64).map_err(LedgerError::io("truncate", &path))?;
            file.sync_all().map_err(LedgerError::io("sync", &path))?;
        }
        if base > from && expected.is_none() {
            return Err(LedgerError::corrupt(
                &path,
                format!("the write-ahead log starts at index {base}, after the checkpoint's size {from}"),
            ));
        }
        expected = Some(index);
        last = Some((path, offset as u64, index));
    }
    let writer = match last {
        Some((path, length, next_index)) if next_index >= from => WalWriter::resume(dir, path, length, next_index)?,
        // No segment, or the segments end before the checkpoint, so their entries are all in
        // durable tiles already: start afresh at the checkpoint's size.
        _ => {
            for (_, path) in list_segments(dir)? {
                fs::remove_file(&path).map_err(LedgerError::io("remove", &path))?;
            }
            WalWriter::create(dir, from)?
        }
    };
    Ok((recovered, writer))
}

/// Removes segments all of whose records are below `size` (tiles covering them are durable).
pub fn remove_segments_below(dir: &Path, size: u64) -> Result<(), LedgerError> {
    let segments = list_segments(dir)?;
    for pair in segments.windows(2) {
        if let [(_, path), (next_base, _)] = pair
            && *next_base <= size
        {
            fs::remove_file(path).map_err(LedgerError::io("remove", path))?;
        }
    }
    Ok(())
}

fn read_record(bytes: &[u8], offset: usize, index: u64) -> Option<(&[u8], usize)> {
    let header = bytes.get(offset..offset + RECORD_HEADER_SIZE)?;
    let length = u32::from_le_bytes(header.get(..4)?.try_into().ok()?);
    let stored_crc = u32::from_le_bytes(header.get(4..8)?.try_into().ok()?);
    let start = offset + RECORD_HEADER_SIZE;
    let entry = bytes.get(start..start + length as usize)?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&index.to_le_bytes());
    crc.update(&length.to_le_bytes());
    crc.update(entry);
    (crc.finalize() == stored_crc).then_some((entry, start + length as usize))
}

fn segment_path(dir: &Path, first_index: u64) -> PathBuf {
    dir.join(format!("{first_index:020}.wal"))
}

fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, LedgerError> {
    let mut segments = Vec::new();
    for item in fs::read_dir(dir).map_err(LedgerError::io("list", dir))? {
        let path = item.map_err(LedgerError::io("list", dir))?.path();
        let base = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_suffix(".wal"))
            .and_then(|digits| digits.parse::<u64>().ok());
        if let Some(base) = base {
            segments.push((base, path));
        }
    }
    segments.sort();
    Ok(segments)
}
