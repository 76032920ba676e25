//! Logs grown to many sizes, across tile boundaries: roots match the reference tree, proofs
//! generated from the stored tiles verify, and the log survives a reopen.

use cordon_ledger::{
    Hash, LedgerError, LogReader, leaf_hash, verify_consistency, verify_inclusion, verify_log, verify_receipt,
};

use crate::support::{TestLog, grow_to_sizes, reference_leaves, reference_root, test_entry};

const SIZES: &[u64] = &[1, 2, 3, 7, 8, 255, 256, 257, 511, 4096, 65_535, 65_536, 65_537, 70_000];

#[test]
fn proofs_from_stored_tiles_verify_at_tile_boundaries() {
    let log = TestLog::new("roundtrip.example/log");
    let ledger = log.open();
    let checkpoints = grow_to_sizes(&ledger, SIZES);
    let leaves = reference_leaves(70_000);
    let reader = LogReader::new(&log.path());

    for signed in &checkpoints {
        let size = signed.checkpoint.size;
        let expected = reference_root(&leaves[..size as usize]);
        assert_eq!(signed.checkpoint.root, expected, "root at size {size}");
        for index in
            [0, 1, size / 2, 254, 255, 256, 257, 65_535, 65_536, size - 1].into_iter().filter(|&index| index < size)
        {
            let proof = reader.inclusion_proof(index, size).unwrap();
            verify_inclusion(index, size, &leaves[index as usize], &proof, expected.as_bytes())
                .unwrap_or_else(|error| panic!("inclusion of {index} in {size}: {error}"));
            let wrong_leaf = leaf_hash(b"not in the log");
            assert!(verify_inclusion(index, size, &wrong_leaf, &proof, expected.as_bytes()).is_err());
        }
    }
    for (position, older) in checkpoints.iter().enumerate() {
        for newer in &checkpoints[position..] {
            let (size1, size2) = (older.checkpoint.size, newer.checkpoint.size);
            let proof = reader.consistency_proof(size1, size2).unwrap();
            verify_consistency(
                size1,
                size2,
                &proof,
                older.checkpoint.root.as_bytes(),
                newer.checkpoint.root.as_bytes(),
            )
            .unwrap_or_else(|error| panic!("consistency {size1} -> {size2}: {error}"));
        }
    }
    let summary = verify_log(&log.path(), &log.verifier, Some(&checkpoints[5].note)).unwrap();
    assert_eq!((summary.size, summary.consistent_with), (70_000, Some(255)));
}

#[test]
fn receipts_verify_offline_and_entries_read_back() {
    let log = TestLog::new("receipts.example/log");
    let ledger = log.open();
    grow_to_sizes(&ledger, &[300]);
    let reader = ledger.reader();
    for index in [0, 255, 256, 299] {
        let receipt = reader.receipt(index).unwrap();
        assert!(receipt.starts_with("c2sp.org/tlog-proof@v1\nindex "));
        let (proven, checkpoint) = verify_receipt(&receipt, &test_entry(index), &log.verifier).unwrap();
        assert_eq!((proven, checkpoint.size), (index, 300));
        assert_eq!(reader.entry(index, 300).unwrap(), test_entry(index));
    }
    assert!(matches!(reader.receipt(300), Err(LedgerError::OutOfRange { index: 300, size: 300 })));
}

#[test]
fn scans_visit_each_entry_once_in_order() {
    let log = TestLog::new("scan.example/log");
    let ledger = log.open();
    grow_to_sizes(&ledger, &[600]);
    let reader = ledger.reader();
    // (from, size): from the start, mid-bundle, across the partial bundle, empty ranges.
    for (from, size) in [(0, 600), (0, 256), (255, 257), (300, 600), (599, 600), (600, 600), (0, 0), (10, 5)] {
        let mut seen = Vec::new();
        reader
            .for_each_entry(from, size, |index, entry| {
                assert_eq!(entry, test_entry(index).as_slice(), "entry {index}");
                seen.push(index);
                Ok(())
            })
            .unwrap();
        let expected: Vec<u64> = (from..size).collect();
        assert_eq!(seen, expected, "scan of {from}..{size}");
    }
    // Regression: a range that ends inside the tree's last, partial tile was read from the
    // tile of a tree of the range's own size, which the wider tile had replaced ("the tile is
    // missing"): a console session's report of entries long published hit it.
    for (from, to) in [(0, 520), (513, 599), (512, 513), (590, 600), (100, 550)] {
        let mut seen = Vec::new();
        reader
            .for_each_entry_of(600, from, to, |index, entry| {
                assert_eq!(entry, test_entry(index).as_slice(), "entry {index}");
                seen.push(index);
                Ok(())
            })
            .unwrap();
        assert_eq!(seen, (from..to).collect::<Vec<_>>(), "scan of {from}..{to} in the tree of 600");
    }
    let stop = reader.for_each_entry(0, 600, |index, _| {
        if index == 3 { Err(LedgerError::OutOfRange { index, size: 3 }) } else { Ok(()) }
    });
    assert!(matches!(stop, Err(LedgerError::OutOfRange { index: 3, .. })), "a visitor's error stops the scan");
}

#[test]
fn reopening_continues_the_same_tree() {
    let log = TestLog::new("reopen.example/log");
    let first = {
        let ledger = log.open();
        let checkpoints = grow_to_sizes(&ledger, &[1000]);
        ledger.close().unwrap();
        checkpoints[0].clone()
    };
    let ledger = log.open();
    assert_eq!(ledger.checkpoint(), first, "a clean reopen publishes nothing new");
    let second = grow_to_sizes(&ledger, &[1500])[0].clone();
    let proof = ledger.reader().consistency_proof(1000, 1500).unwrap();
    verify_consistency(1000, 1500, &proof, first.checkpoint.root.as_bytes(), second.checkpoint.root.as_bytes())
        .unwrap();
    assert_eq!(second.checkpoint.root, reference_root(&reference_leaves(1500)));
}

#[test]
fn refusals_leave_the_log_unchanged() {
    let log = TestLog::new("refusals.example/log");
    let ledger = log.open();
    grow_to_sizes(&ledger, &[10]);
    let oversized = vec![0u8; 65_536];
    let error = ledger.append_batch(vec![b"fine".to_vec(), oversized]).wait().unwrap_err();
    assert!(matches!(error, LedgerError::EntryTooLarge { size: 65_536 }), "{error}");
    assert!(error.to_string().contains("65,535"));
    let largest = vec![7u8; 65_535];
    assert_eq!(ledger.append(largest.clone()).wait().unwrap(), 10, "the refused batch took no index");
    let signed = ledger.publish().unwrap();
    assert_eq!(signed.checkpoint.size, 11);
    assert_eq!(ledger.reader().entry(10, 11).unwrap(), largest);

    let second = cordon_ledger::Ledger::open(&log.path(), Default::default()).unwrap_err();
    assert!(matches!(second, LedgerError::Locked { .. }), "{second}");
    assert!(second.to_string().contains("already open for writing"));

    let dir = log.dir.path();
    let error = cordon_ledger::Ledger::create(&log.path(), "again.example").unwrap_err();
    assert!(matches!(error, LedgerError::AlreadyExists { .. }), "{error}");
    let error = cordon_ledger::Ledger::open(&dir.join("missing"), Default::default()).unwrap_err();
    assert!(error.to_string().contains("is not a cordon log"), "{error}");
}

#[test]
fn empty_log_has_the_empty_root() {
    let log = TestLog::new("empty.example/log");
    let ledger = log.open();
    assert_eq!(ledger.checkpoint().checkpoint.size, 0);
    assert_eq!(ledger.checkpoint().checkpoint.root, reference_root(&[] as &[Hash]));
    drop(ledger);
    assert_eq!(verify_log(&log.path(), &log.verifier, None).unwrap().size, 0);
}
