//! Tampering with any part of a stored log is caught by `verify_log`, which names the first
//! bad entry or tile.

use std::fs;
use std::path::Path;

use cordon_ledger::{Checkpoint, Signer, verify_log};

use crate::support::{TestLog, copy_dir, grow_to_sizes};

/// 66,000 entries: 257 full bundles and level-0 tiles, a partial of width 208, a full
/// level-1 tile, and partial level-1 and level-2 tiles.
const SIZE: u64 = 66_000;

fn flip_bit(path: &Path, offset: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset] ^= 0x01;
    fs::write(path, bytes).unwrap();
}

fn truncate(path: &Path, keep: usize) {
    let bytes = fs::read(path).unwrap();
    fs::write(path, &bytes[..keep]).unwrap();
}

/// Swaps the first two entries of a bundle whose entries have equal lengths.
fn swap_first_entries(path: &Path) {
    let bytes = fs::read(path).unwrap();
    let length = usize::from(u16::from_be_bytes([bytes[0], bytes[1]])) + 2;
    let mut swapped = bytes[length..2 * length].to_vec();
    swapped.extend_from_slice(&bytes[..length]);
    swapped.extend_from_slice(&bytes[2 * length..]);
    fs::write(path, swapped).unwrap();
}

#[test]
fn every_tampering_is_caught_and_named() {
    let log = TestLog::new("tamper.example/log");
    let trusted = {
        let ledger = log.open();
        let checkpoints = grow_to_sizes(&ledger, &[1000, SIZE]);
        ledger.close().unwrap();
        checkpoints[0].note.clone()
    };
    let pristine = log.path();
    verify_log(&pristine, &log.verifier, Some(&trusted)).expect("the untouched log verifies");

    type Tamper = fn(&Path);
    let cases: Vec<(&str, Tamper, &str)> = vec![
        ("bit flipped in an entry", |dir| flip_bit(&dir.join("tile/entries/000"), 2 + 3), "entry 0 does not match"),
        (
            "bit flipped in a later bundle",
            |dir| flip_bit(&dir.join("tile/entries/100"), 40),
            "entry 25602 does not match",
        ),
        ("bit flipped in a level-0 tile", |dir| flip_bit(&dir.join("tile/0/007"), 32 * 9), "entry 1801 does not match"),
        (
            "bit flipped in the partial level-0 tile",
            |dir| flip_bit(&dir.join("tile/0/257.p/208"), 0),
            "entry 65792 does not match",
        ),
        (
            "bit flipped in a level-1 tile",
            |dir| flip_bit(&dir.join("tile/1/000"), 32 * 200 + 1),
            "tile/1/000` differs from the tiles below it at hash 200",
        ),
        (
            "bit flipped in the partial level-2 tile",
            |dir| flip_bit(&dir.join("tile/2/000.p/1"), 31),
            "tile/2/000.p/1` differs",
        ),
        (
            "bit flipped in the checkpoint's root",
            |dir| {
                let path = dir.join("checkpoint");
                let text = fs::read_to_string(&path).unwrap();
                let root_line = text.lines().nth(2).unwrap().to_string();
                let altered = if root_line.starts_with('A') {
                    root_line.replacen('A', "B", 1)
                } else {
                    format!("A{}", &root_line[1..])
                };
                fs::write(&path, text.replacen(&root_line, &altered, 1)).unwrap();
            },
            "checkpoint",
        ),
        (
            "bit flipped in the checkpoint's signature",
            |dir| {
                let path = dir.join("checkpoint");
                let length = fs::read(&path).unwrap().len();
                flip_bit(&path, length - 10);
            },
            "does not verify",
        ),
        (
            "entry bundle truncated",
            |dir| truncate(&dir.join("tile/entries/003"), 100),
            "tile/entries/003` is damaged at entry",
        ),
        ("hash tile truncated", |dir| truncate(&dir.join("tile/0/004"), 8000), "tile/0/004` is damaged"),
        ("checkpoint truncated", |dir| truncate(&dir.join("checkpoint"), 20), "checkpoint"),
        ("two entries swapped", |dir| swap_first_entries(&dir.join("tile/entries/010")), "entry 2560 does not match"),
        ("entry tile removed", |dir| fs::remove_file(dir.join("tile/entries/042")).unwrap(), "tile/entries/042"),
        ("hash tile removed", |dir| fs::remove_file(dir.join("tile/0/099")).unwrap(), "tile/0/099"),
        ("partial tile removed", |dir| fs::remove_file(dir.join("tile/1/001.p/1")).unwrap(), "tile/1/001.p/1"),
        ("checkpoint removed", |dir| fs::remove_file(dir.join("checkpoint")).unwrap(), "checkpoint"),
    ];
    let scratch = tempfile::tempdir().unwrap();
    for (number, (name, tamper, expected)) in cases.into_iter().enumerate() {
        let copy = scratch.path().join(format!("case-{number}"));
        copy_dir(&pristine, &copy);
        tamper(&copy);
        match verify_log(&copy, &log.verifier, Some(&trusted)) {
            Ok(summary) => panic!("{name}: verification passed ({summary:?})"),
            Err(error) => {
                assert!(error.to_string().contains(expected), "{name}: `{error}` should contain `{expected}`")
            }
        }
    }
}

#[test]
fn trusted_checkpoints_catch_rollback_and_split_views() {
    let log = TestLog::new("history.example/log");
    let signer = Signer::parse(&fs::read_to_string(log.path().join("private/signing-key")).unwrap()).unwrap();
    let (small, large) = {
        let ledger = log.open();
        let checkpoints = grow_to_sizes(&ledger, &[500, 600]);
        ledger.close().unwrap();
        (checkpoints[0].clone(), checkpoints[1].clone())
    };
    assert!(verify_log(&log.path(), &log.verifier, Some(&large.note)).is_ok());

    // A checkpoint claiming a larger tree than the log now holds: the log was rolled back.
    let future = Checkpoint { size: 700, ..large.checkpoint.clone() };
    let error = verify_log(&log.path(), &log.verifier, Some(&signer.sign(&future.to_text()).unwrap())).unwrap_err();
    assert!(error.to_string().contains("rolled back"), "{error}");

    // A validly signed checkpoint for a different history at size 500: a split view.
    let forked = Checkpoint { root: cordon_ledger::leaf_hash(b"forged"), ..small.checkpoint.clone() };
    let error = verify_log(&log.path(), &log.verifier, Some(&signer.sign(&forked.to_text()).unwrap())).unwrap_err();
    assert!(error.to_string().contains("not consistent with the trusted checkpoint"), "{error}");

    // A trusted checkpoint signed by someone else is refused, not ignored.
    let stranger = Signer::generate("history.example/log").unwrap();
    let error =
        verify_log(&log.path(), &log.verifier, Some(&stranger.sign(&small.checkpoint.to_text()).unwrap())).unwrap_err();
    assert!(error.to_string().contains("trusted checkpoint does not verify"), "{error}");
}
