//! The log on a real disk that fills up or turns read-only under it (a small tmpfs, so the
//! kernel answers `ENOSPC` and `EROFS`), and a right edge damaged between two opens. Each
//! test is named by the failure it guards against.

use std::fs;

use cordon_ledger::{Ledger, LedgerConfig, LedgerError, verify_log};
use cordon_testdisk::{FailingDevice, SmallDisk};

use crate::support::{TestLog, grow_to_sizes, reference_leaves, reference_root, test_entry};

/// A checkpoint that never publishes on its own within a test.
fn publish_only_when_asked() -> LedgerConfig {
    LedgerConfig { checkpoint_interval_ms: 3_600_000, ..LedgerConfig::default() }
}

/// A log created on a disk of `bytes`.
fn log_on_small_disk(bytes: u64) -> (SmallDisk, std::path::PathBuf, cordon_ledger::Verifier) {
    let disk = SmallDisk::new(bytes).unwrap();
    let path = disk.path().join("log");
    let verifier = Ledger::create(&path, "faults.example/log").unwrap();
    (disk, path, verifier)
}

fn wal_bytes(log: &std::path::Path) -> u64 {
    fs::read_dir(log.join("private/wal")).unwrap().map(|item| item.unwrap().metadata().unwrap().len()).sum()
}

/// Regression: reopening copied the partial entry bundle into the full one without checking
/// it, so a flipped bit in it was signed into new checkpoints.
#[test]
fn a_flipped_bit_in_the_partial_bundle_is_refused_at_open() {
    let log = TestLog::new("partial.example/log");
    grow_to_sizes(&log.open(), &[5]);
    let bundle = log.path().join("tile/entries/000.p/5");
    let mut bytes = fs::read(&bundle).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    fs::write(&bundle, bytes).unwrap();
    let error = Ledger::open(&log.path(), LedgerConfig::default()).unwrap_err();
    assert!(matches!(error, LedgerError::Corrupt { .. }), "{error}");
    assert!(error.to_string().contains("entry 4 of the partial bundle"), "{error}");
}

/// Regression: a group whose write failed part-way left its first records whole in the
/// write-ahead log, and the next open recovered them as acknowledged although their callers
/// had been told the append failed.
#[test]
fn a_failed_group_is_dropped_not_recovered_as_acknowledged() {
    let (disk, path, verifier) = log_on_small_disk(256 << 10);
    let ledger = Ledger::open(&path, publish_only_when_asked()).unwrap();
    ledger.append_batch((0..10).map(test_entry).collect()).wait().unwrap();
    let acknowledged_bytes = wal_bytes(&path);
    disk.fill().unwrap();
    // Room for a few records of the group, not for all of it.
    disk.free(4096).unwrap();
    let group: Vec<Vec<u8>> = (0..64).map(|index| vec![b'x'; 1000 + index]).collect();
    let error = ledger.append_batch(group).wait().unwrap_err();
    assert!(error.to_string().contains("No space left on device"), "{error}");
    assert!(ledger.failure().is_some(), "a failed write fails the log");
    assert!(matches!(ledger.append(test_entry(10)).wait(), Err(LedgerError::Failed { .. })));
    assert_eq!(wal_bytes(&path), acknowledged_bytes, "the failed group's records are gone at once");
    // A crash now, then a start once space is back: only the acknowledged entries.
    drop(ledger);
    disk.free_all().unwrap();
    let ledger = Ledger::open(&path, LedgerConfig::default()).unwrap();
    assert_eq!(ledger.checkpoint().checkpoint.size, 10);
    assert_eq!(ledger.checkpoint().checkpoint.root, reference_root(&reference_leaves(10)));
    drop(ledger);
    verify_log(&path, &verifier, None).unwrap();
}

/// Regression: a failed log refused everything until the process restarted. Reopening
/// recovers it in place once the disk takes writes again, keeping every acknowledged entry.
#[test]
fn a_log_failed_by_a_full_disk_reopens_once_space_returns() {
    let (disk, path, verifier) = log_on_small_disk(256 << 10);
    let ledger = Ledger::open(&path, LedgerConfig::default()).unwrap();
    ledger.append_batch((0..10).map(test_entry).collect()).wait().unwrap();
    disk.fill().unwrap();
    assert!(ledger.append(vec![b'y'; 8000]).wait().is_err());
    assert!(ledger.failure().is_some());
    disk.free_all().unwrap();
    let ledger = ledger.reopen().unwrap();
    assert_eq!(ledger.failure(), None, "it takes entries again");
    assert_eq!(ledger.append(test_entry(10)).wait().unwrap(), 10, "no index was used by the failed append");
    let signed = ledger.publish().unwrap();
    assert_eq!(signed.checkpoint.root, reference_root(&reference_leaves(11)));
    drop(ledger);
    verify_log(&path, &verifier, None).unwrap();
}

/// Regression: closing on a full disk reported a final checkpoint that lagged the
/// acknowledged entries by hundreds, and the next start was refused. The close is an error
/// naming the lag; a start on the still-full disk serves what is published and refuses
/// appends, saying why; once space returns every acknowledged entry is published.
#[test]
fn a_close_on_a_full_disk_reports_the_lag_and_the_next_start_still_opens() {
    let (disk, path, verifier) = log_on_small_disk(512 << 10);
    let ledger = Ledger::open(&path, publish_only_when_asked()).unwrap();
    ledger.append_batch((0..200).map(test_entry).collect()).wait().unwrap();
    disk.fill().unwrap();
    let error = ledger.close().unwrap_err();
    assert!(error.to_string().contains("covers 0 of the 200 acknowledged entries"), "{error}");

    let ledger = Ledger::open(&path, publish_only_when_asked()).unwrap();
    let failure = ledger.failure().expect("a start on a full disk says why it takes no entries");
    assert!(failure.contains("No space left on device"), "{failure}");
    assert_eq!(ledger.checkpoint().checkpoint.size, 0, "it serves what is published");
    assert!(matches!(ledger.append(test_entry(200)).wait(), Err(LedgerError::Failed { .. })));
    disk.free_all().unwrap();
    let ledger = ledger.reopen().unwrap();
    assert_eq!(ledger.failure(), None);
    assert_eq!(ledger.checkpoint().checkpoint.size, 200, "every acknowledged entry is published");
    assert_eq!(ledger.close().unwrap().checkpoint.root, reference_root(&reference_leaves(200)));
    verify_log(&path, &verifier, None).unwrap();
}

/// Not only `ENOSPC`: a device that fails with `EIO` fails the log the same way, loses no
/// acknowledged entry, and the log comes back once the device is mounted again.
#[test]
fn a_device_failing_with_eio_loses_nothing_acknowledged() {
    let device = FailingDevice::new(64 << 20).unwrap();
    let path = device.path().join("log");
    let verifier = Ledger::create(&path, "eio.example/log").unwrap();
    let ledger = Ledger::open(&path, publish_only_when_asked()).unwrap();
    ledger.append_batch((0..10).map(test_entry).collect()).wait().unwrap();
    device.fail().unwrap();
    let error = ledger.append(test_entry(10)).wait().unwrap_err();
    assert!(error.to_string().contains("Input/output error"), "{error}");
    assert!(ledger.failure().is_some());
    let acknowledged = ledger.durable_size();
    let still = ledger.reopen().unwrap_err();
    assert!(still.to_string().contains("Input/output error"), "still failing, still failed: {still}");
    device.replace().unwrap();
    let ledger = Ledger::recover(&path, LedgerConfig::default(), acknowledged).unwrap();
    assert_eq!(ledger.checkpoint().checkpoint.size, 10, "every acknowledged entry survived the failure");
    assert_eq!(ledger.append(test_entry(10)).wait().unwrap(), 10);
    drop(ledger);
    verify_log(&path, &verifier, None).unwrap();
}

/// Regression: when a full tile could not be written, the publisher kept the tree it had
/// half-changed and later published it (an empty bundle file, a checkpoint naming a
/// partial bundle that did not exist), so the log never opened again; and a caller asking
/// for a checkpoint waited forever for a size the tree would not reach. Now a failed tile
/// write stops publication at once, callers are answered, and a reopen rebuilds the tiles
/// from the checkpoint and the write-ahead log. (The write-ahead log lives on a larger
/// disk here, so appends succeed while tiles cannot be written.)
#[test]
fn a_failed_tile_write_stops_publication_and_a_reopen_rebuilds_the_tiles() {
    let tiles = SmallDisk::new(256 << 10).unwrap();
    let wal = tempfile::tempdir().unwrap();
    let path = tiles.path().join("log");
    let verifier = Ledger::create(&path, "tiles.example/log").unwrap();
    fs::remove_dir_all(path.join("private/wal")).unwrap();
    std::os::unix::fs::symlink(wal.path(), path.join("private/wal")).unwrap();
    let ledger = Ledger::open(&path, publish_only_when_asked()).unwrap();
    ledger.append_batch((0..100).map(test_entry).collect()).wait().unwrap();
    tiles.fill().unwrap();
    // The group that completes the first full bundle (256 entries) is durable and
    // acknowledged; writing its tile fails.
    ledger.append_batch((100..300).map(test_entry).collect()).wait().unwrap();
    let failed = std::time::Instant::now();
    while ledger.failure().is_none() {
        assert!(failed.elapsed() < std::time::Duration::from_secs(10), "the tile write's failure is reported");
        std::thread::yield_now();
    }
    assert!(ledger.publish().is_err(), "no checkpoint from a tree that does not match the files, and no wait");
    let error = ledger.close().unwrap_err();
    assert!(error.to_string().contains("of the 300 acknowledged entries"), "{error}");
    tiles.free_all().unwrap();
    let ledger = Ledger::open(&path, LedgerConfig::default()).unwrap();
    assert_eq!(ledger.checkpoint().checkpoint.size, 300, "every acknowledged entry, from the write-ahead log");
    assert_eq!(ledger.checkpoint().checkpoint.root, reference_root(&reference_leaves(300)));
    drop(ledger);
    verify_log(&path, &verifier, None).unwrap();
}
