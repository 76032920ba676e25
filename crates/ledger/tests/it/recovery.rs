//! Recovery cases the crash test reaches only by chance, made deterministic. A crashed log is
//! assembled from files: a copy of the log as it stood at one checkpoint, with the
//! write-ahead log copied later from the running ledger (its records are durable once
//! acknowledged) grafted in, which is what a crash between acknowledging entries and
//! publishing them leaves behind.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cordon_ledger::{Ledger, LedgerConfig, LedgerError, verify_log};

use crate::support::{TestLog, copy_dir, grow_to_sizes, reference_leaves, reference_root, test_entry};

fn wal_segments(log: &Path) -> Vec<PathBuf> {
    let mut segments: Vec<PathBuf> =
        fs::read_dir(log.join("private/wal")).unwrap().map(|item| item.unwrap().path()).collect();
    segments.sort();
    segments
}

/// Replaces the write-ahead log of the log at `target` with the one copied in `wal`.
fn graft_wal(target: &Path, wal: &Path) {
    fs::remove_dir_all(target.join("private/wal")).unwrap();
    copy_dir(wal, &target.join("private/wal"));
}

/// A checkpoint that never publishes on its own within a test.
fn publish_only_when_asked() -> LedgerConfig {
    LedgerConfig { checkpoint_interval_ms: 3_600_000, ..LedgerConfig::default() }
}

#[test]
fn a_torn_write_ahead_tail_is_trimmed() {
    let log = TestLog::new("torn.example/log");
    grow_to_sizes(&log.open(), &[10]);
    // A record cut off mid-write: a length and checksum promising more bytes than follow.
    let newest = wal_segments(&log.path()).pop().unwrap();
    let length_before = fs::metadata(&newest).unwrap().len();
    let mut file = OpenOptions::new().append(true).open(&newest).unwrap();
    file.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, b'p', b'a', b'r']).unwrap();
    drop(file);

    let ledger = log.open();
    assert_eq!(ledger.checkpoint().checkpoint.size, 10, "the torn record was never acknowledged");
    assert_eq!(fs::metadata(&newest).unwrap().len(), length_before, "the torn bytes are gone");
    assert_eq!(ledger.append(test_entry(10)).wait().unwrap(), 10);
    let signed = ledger.publish().unwrap();
    assert_eq!(signed.checkpoint.root, reference_root(&reference_leaves(11)));
    drop(ledger);
    verify_log(&log.path(), &log.verifier, None).unwrap();
}

#[test]
fn entries_past_the_checkpoint_are_rebuilt_from_the_write_ahead_log() {
    let log = TestLog::new("replay.example/log");
    let published = grow_to_sizes(&log.open(), &[300])[0].clone();
    let crashed = log.dir.path().join("crashed");
    copy_dir(&log.path(), &crashed);

    let ledger = Ledger::open(&log.path(), publish_only_when_asked()).unwrap();
    ledger.append_batch((300..700).map(test_entry).collect()).wait().unwrap();
    assert_eq!(ledger.checkpoint(), published, "no checkpoint yet for the new entries");
    let wal = log.dir.path().join("wal-at-700");
    copy_dir(&log.path().join("private/wal"), &wal);
    drop(ledger);
    graft_wal(&crashed, &wal);

    let ledger = Ledger::open(&crashed, LedgerConfig::default()).unwrap();
    let recovered = ledger.checkpoint();
    assert_eq!(recovered.checkpoint.size, 700);
    assert_eq!(recovered.checkpoint.root, reference_root(&reference_leaves(700)));
    assert_eq!(ledger.reader().entry(699, 700).unwrap(), test_entry(699));
    drop(ledger);
    verify_log(&crashed, &log.verifier, Some(&published.note)).unwrap();
}

#[test]
fn damage_before_the_newest_segment_is_refused() {
    let log = TestLog::new("damaged.example/log");
    let empty = log.dir.path().join("empty");
    copy_dir(&log.path(), &empty);
    let config = LedgerConfig { wal_segment_bytes_max: 1024, ..publish_only_when_asked() };
    let ledger = Ledger::open(&log.path(), config).unwrap();
    for index in 0..100 {
        ledger.append(test_entry(index)).wait().unwrap();
    }
    let wal = log.dir.path().join("wal-at-100");
    copy_dir(&log.path().join("private/wal"), &wal);
    drop(ledger);
    let mut segments: Vec<PathBuf> = fs::read_dir(&wal).unwrap().map(|item| item.unwrap().path()).collect();
    segments.sort();
    assert!(segments.len() > 2, "small segments give several files: {segments:?}");

    // Undamaged, the grafted log recovers every entry: the control for the case below.
    let intact = log.dir.path().join("intact");
    copy_dir(&empty, &intact);
    graft_wal(&intact, &wal);
    assert_eq!(Ledger::open(&intact, LedgerConfig::default()).unwrap().checkpoint().checkpoint.size, 100);

    let damaged = log.dir.path().join("damaged");
    copy_dir(&empty, &damaged);
    graft_wal(&damaged, &wal);
    let first_segment = wal_segments(&damaged).remove(0);
    let mut bytes = fs::read(&first_segment).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    fs::write(&first_segment, bytes).unwrap();
    let error = Ledger::open(&damaged, LedgerConfig::default()).unwrap_err();
    assert!(matches!(error, LedgerError::Corrupt { .. }), "{error}");
    assert!(error.to_string().contains("is damaged and later segments exist"), "{error}");
}

#[test]
fn checkpoints_follow_growth_without_being_asked() {
    let log = TestLog::new("interval.example/log");
    let config = LedgerConfig { checkpoint_interval_ms: 20, ..LedgerConfig::default() };
    let ledger = Ledger::open(&log.path(), config).unwrap();
    ledger.append_batch((0..50).map(test_entry).collect()).wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ledger.checkpoint().checkpoint.size < 50 {
        assert!(Instant::now() < deadline, "no checkpoint covered the entries within 10 s");
        std::thread::yield_now();
    }
    assert_eq!(ledger.checkpoint().checkpoint.root, reference_root(&reference_leaves(50)));
}
