//! The ledger sequenced through PostgreSQL, against the file ledger and against itself with
//! two gateways writing at once.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cordon_ledger::{Ledger, LedgerConfig, Signer, verify_consistency, verify_receipt};
use cordon_store::{SharedLedger, SharedLedgerConfig, StoredLedgerKey};
use cordon_testpg::TestDatabase;

const ORIGIN: &str = "cordon.test/ledger";

fn quick() -> SharedLedgerConfig {
    SharedLedgerConfig { integrate_every: Duration::from_millis(20) }
}

/// A database with the ledger's key stored, and the signer that key is.
fn database_with_key(signer: &Signer) -> TestDatabase {
    let database = TestDatabase::new().unwrap();
    let key = StoredLedgerKey {
        origin: ORIGIN.into(),
        verifier: signer.verifier().to_string(),
        kek_id: "kek-test".into(),
        // Wrapping is the gateway's business; the store keeps the bytes it is given.
        wrapped_signing_key: signer.to_private_string().as_bytes().to_vec(),
    };
    SharedLedger::store_key(&database.url(), &key).unwrap();
    database
}

/// A second handle on one signing key (each gateway holds its own).
fn copy(signer: &Signer) -> Signer {
    Signer::parse(&signer.to_private_string()).unwrap()
}

fn signer_of(key: &StoredLedgerKey) -> Signer {
    Signer::parse(std::str::from_utf8(&key.wrapped_signing_key).unwrap()).unwrap()
}

/// Entries of varied sizes, none of them alike.
fn entry(index: usize) -> Vec<u8> {
    let mut bytes = format!("{{\"entry\":{index}}}").into_bytes();
    bytes.resize(bytes.len() + index % 97, b' ');
    bytes
}

/// Every tile path of a file log, relative to its folder.
fn tile_files(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![root.join("tile")];
    while let Some(dir) = stack.pop() {
        for item in std::fs::read_dir(&dir).unwrap() {
            let path = item.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    found.sort();
    found
}

/// `tile/L/N[.p/W]` or `tile/entries/N[.p/W]` → its id.
fn parse_tile(path: &str) -> cordon_ledger::TileId {
    cordon_ledger::TileId::parse(path).unwrap_or_else(|| panic!("`{path}` is not a tile path"))
}

/// The same entries make the same tree: the ledger sequenced through PostgreSQL signs the
/// file ledger's checkpoint, byte for byte, and serves every tile and entry bundle the file
/// ledger wrote, byte for byte (sizes past a level-1 tile, in uneven batches). Receipts and
/// consistency proofs from its rows verify against its checkpoints.
#[test]
fn the_shared_ledger_builds_the_file_ledgers_tree() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("ledger");
    Ledger::create(&folder, ORIGIN).unwrap();
    let signer = Signer::parse(&std::fs::read_to_string(folder.join("private/signing-key")).unwrap()).unwrap();
    let file = Ledger::open(&folder, LedgerConfig::default()).unwrap();
    let database = database_with_key(&signer);
    let shared = SharedLedger::open(&database.url(), copy(&signer), quick()).unwrap();

    let total = 66_000usize;
    let mut appended = 0usize;
    let mut batch = 1usize;
    let mut checkpoints = Vec::new();
    while appended < total {
        let count = batch.min(total - appended);
        let entries: Vec<Vec<u8>> = (appended..appended + count).map(entry).collect();
        let first_file = file.append_batch(entries.clone()).wait().unwrap();
        let first_shared = shared.append(entries).unwrap();
        assert_eq!(first_shared, first_file as u64, "both give the batch the same index");
        appended += count;
        batch = (batch * 7 + 3) % 5_000 + 1;
        if checkpoints.len() < 8 {
            checkpoints.push(shared.checkpoint_covering(appended as u64, Duration::from_secs(30)).unwrap());
        }
    }
    assert_eq!(shared.size().unwrap(), total as u64);
    let file_checkpoint = file.publish().unwrap();
    let shared_checkpoint = shared.checkpoint_covering(total as u64, Duration::from_secs(60)).unwrap();
    assert_eq!(file_checkpoint.checkpoint.size, total as u64);
    assert_eq!(shared_checkpoint.note, file_checkpoint.note, "the same signed checkpoint");
    file.close().unwrap();

    let files = tile_files(&folder);
    assert!(files.len() > 500, "the file ledger wrote its tiles ({})", files.len());
    let mut compared = 0;
    for path in &files {
        let from_rows = shared.tile_bytes(parse_tile(path)).unwrap().unwrap_or_else(|| panic!("{path} is not served"));
        let on_disk = std::fs::read(folder.join(path)).unwrap();
        // The file ledger keeps a partial tile's path only for the width it was published
        // at; what it holds at that path is that width's bytes.
        assert_eq!(from_rows, on_disk, "{path}");
        compared += 1;
    }
    assert_eq!(compared, files.len());
    let past = cordon_ledger::TileId::hashes(0, (total / 256) as u64, 255);
    assert_eq!(shared.tile_bytes(past).unwrap(), None, "nothing past the checkpoint");
    assert_eq!(shared.tile_bytes(cordon_ledger::TileId::entries(1_000, 256)).unwrap(), None);
    for level in [8u8, 63] {
        assert_eq!(shared.tile_bytes(cordon_ledger::TileId::hashes(level, 0, 256)).unwrap(), None, "level {level}");
    }

    let verifier = signer.verifier();
    for index in [0u64, 1, 255, 256, 65_535, 65_536, total as u64 - 1] {
        let receipt = shared.receipt(index).unwrap();
        let (proved, _) = verify_receipt(&receipt, &entry(index as usize), &verifier).unwrap();
        assert_eq!(proved, index);
        assert!(verify_receipt(&receipt, &entry(index as usize + 1), &verifier).is_err(), "another entry fails");
    }
    for old in &checkpoints {
        let proof = shared.consistency_proof(old.checkpoint.size, total as u64).unwrap();
        verify_consistency(
            old.checkpoint.size,
            total as u64,
            &proof,
            old.checkpoint.root.as_bytes(),
            shared_checkpoint.checkpoint.root.as_bytes(),
        )
        .unwrap_or_else(|error| panic!("consistency from {}: {error:?}", old.checkpoint.size));
    }
}

/// Two gateways append at once from several threads each: every acknowledged entry is in the
/// ledger at the index it was acknowledged with, once, with no gap; a turn reads what the
/// other gateway appended before it; one checkpoint covers all and verifies.
#[test]
fn two_gateways_append_at_once_and_lose_nothing() {
    let signer = Signer::generate(ORIGIN).unwrap();
    let database = database_with_key(&signer);
    let key = SharedLedger::key(&database.url()).unwrap().unwrap();
    let gateways: Vec<Arc<SharedLedger>> =
        (0..2).map(|_| Arc::new(SharedLedger::open(&database.url(), signer_of(&key), quick()).unwrap())).collect();
    let mut threads = Vec::new();
    for (gateway_number, gateway) in gateways.iter().enumerate() {
        for thread in 0..3 {
            let gateway = Arc::clone(gateway);
            threads.push(std::thread::spawn(move || {
                let mut acknowledged = Vec::new();
                for round in 0..60 {
                    let entries: Vec<Vec<u8>> = (0..1 + round % 4)
                        .map(|n| format!("g{gateway_number} t{thread} r{round} n{n}").into_bytes())
                        .collect();
                    let first = gateway.append(entries.clone()).unwrap();
                    for (offset, entry) in entries.into_iter().enumerate() {
                        acknowledged.push((first + offset as u64, entry));
                    }
                }
                acknowledged
            }));
        }
    }
    let mut expected: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for thread in threads {
        for (index, entry) in thread.join().unwrap() {
            assert!(expected.insert(index, entry).is_none(), "index {index} acknowledged twice");
        }
    }
    let size = gateways[0].size().unwrap();
    assert_eq!(size, expected.len() as u64);
    assert_eq!(expected.keys().copied().collect::<Vec<_>>(), (0..size).collect::<Vec<_>>(), "no gap");
    let mut read = BTreeMap::new();
    gateways[1]
        .for_each_entry(0, size, &mut |index, entry| {
            read.insert(index, entry.to_vec());
            Ok(())
        })
        .unwrap();
    assert_eq!(read, expected, "every acknowledged entry, at its index");

    // A turn on one gateway sees what the other appended before it.
    let first_other = gateways[0].append(vec![b"from gateway 0".to_vec()]).unwrap();
    let (seen, first) = gateways[1]
        .turn(|turn| {
            let mut seen = Vec::new();
            turn.for_each_entry_before(first_other, &mut |index, entry| {
                seen.push((index, entry.to_vec()));
                Ok(())
            })?;
            turn.push(vec![b"from gateway 1".to_vec()])?;
            Ok(seen)
        })
        .unwrap();
    assert_eq!(seen, vec![(first_other, b"from gateway 0".to_vec())]);
    assert_eq!(first, first_other + 1);

    let signed = gateways[1].checkpoint_covering(size + 2, Duration::from_secs(30)).unwrap();
    let receipt = gateways[0].receipt(first).unwrap();
    assert_eq!(verify_receipt(&receipt, b"from gateway 1", &signer.verifier()).unwrap().0, first);
    assert_eq!(signed.checkpoint.size, size + 2);
    assert_eq!(gateways.iter().filter(|gateway| gateway.is_integrator()).count(), 1, "one integrator at a time");
}

/// The integrator's lock passes on: when the gateway holding it stops, or its connection is
/// cut, the other gateway integrates, and its checkpoints extend the earlier ones.
#[test]
fn another_gateway_takes_over_integration() {
    let signer = Signer::generate(ORIGIN).unwrap();
    let database = database_with_key(&signer);
    let first = SharedLedger::open(&database.url(), copy(&signer), quick()).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !first.is_integrator() {
        assert!(std::time::Instant::now() < deadline, "the first gateway never took the lock");
        std::thread::sleep(Duration::from_millis(10));
    }
    let second = SharedLedger::open(&database.url(), copy(&signer), quick()).unwrap();
    second.append((0..300).map(entry).collect()).unwrap();
    let before = second.checkpoint_covering(300, Duration::from_secs(10)).unwrap();
    assert!(first.is_integrator() && !second.is_integrator());

    // The holder's session is cut from the server side, as a dead gateway's would be.
    let mut admin = database.client().unwrap();
    let cut: i64 = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_locks
             WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND pid <> pg_backend_pid()
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(cut, 1, "one session held the integrator's lock");
    second.append((300..700).map(entry).collect()).unwrap();
    let after = second.checkpoint_covering(700, Duration::from_secs(10)).unwrap();
    let proof = second.consistency_proof(before.checkpoint.size, after.checkpoint.size).unwrap();
    verify_consistency(
        before.checkpoint.size,
        after.checkpoint.size,
        &proof,
        before.checkpoint.root.as_bytes(),
        after.checkpoint.root.as_bytes(),
    )
    .unwrap();

    // The first gateway stops: the second is the only one left, and takes the lock.
    first.close();
    second.append((700..900).map(entry).collect()).unwrap();
    let last = second.checkpoint_covering(900, Duration::from_secs(10)).unwrap();
    assert_eq!(last.checkpoint.size, 900);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !second.is_integrator() {
        assert!(std::time::Instant::now() < deadline, "the remaining gateway never took the lock");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Regression: an integrator taking over read the tree's right edge from the stored tiles and
/// signed over it unchecked, so a tile changed in the database (by anyone with write access to
/// it) went into every later checkpoint. The edge must make the signed checkpoint's root: a
/// changed partial tile stops the signing (the checkpoint stays where it was), and the same
/// tile put back lets it go on.
#[test]
fn an_integrator_signs_nothing_over_tiles_changed_in_the_database() {
    let signer = Signer::generate(ORIGIN).unwrap();
    let database = database_with_key(&signer);
    let first = SharedLedger::open(&database.url(), copy(&signer), quick()).unwrap();
    first.append((0..300).map(entry).collect()).unwrap();
    let before = first.checkpoint_covering(300, Duration::from_secs(10)).unwrap();
    first.close();

    // The partial tile of level 0 (entries 256 to 299): one hash changed.
    let mut admin = database.client().unwrap();
    let stored: Vec<u8> =
        admin.query_one("SELECT hashes FROM ledger_tiles WHERE level = 0 AND idx = 1", &[]).unwrap().get(0);
    let mut changed = stored.clone();
    changed[5] ^= 1;
    admin.execute("UPDATE ledger_tiles SET hashes = $1 WHERE level = 0 AND idx = 1", &[&changed]).unwrap();

    let second = SharedLedger::open(&database.url(), copy(&signer), quick()).unwrap();
    second.append((300..350).map(entry).collect()).unwrap();
    let refused = second.checkpoint_covering(350, Duration::from_secs(2));
    assert!(refused.is_err(), "a checkpoint was signed over a changed tile: {refused:?}");
    assert_eq!(second.checkpoint().unwrap().note, before.note, "the checkpoint stays the one signed before");

    admin.execute("UPDATE ledger_tiles SET hashes = $1 WHERE level = 0 AND idx = 1", &[&stored]).unwrap();
    let after = second.checkpoint_covering(350, Duration::from_secs(10)).unwrap();
    let proof = second.consistency_proof(300, 350).unwrap();
    verify_consistency(300, 350, &proof, before.checkpoint.root.as_bytes(), after.checkpoint.root.as_bytes()).unwrap();
}

/// Regression: a long scan of the ledger (the access index catching up, every few seconds
/// under load) held its reader connection while its visitor worked, and the short reads of
/// requests given that connection waited behind it: audited reveals on PostgreSQL had a p99
/// of about a second. While one thread scans slowly, another's reads of the ledger's size
/// answer at once.
#[test]
fn a_slow_scan_does_not_hold_up_short_reads() {
    let signer = Signer::generate(ORIGIN).unwrap();
    let database = database_with_key(&signer);
    let ledger = SharedLedger::open(&database.url(), copy(&signer), quick()).unwrap();
    ledger.append((0..600).map(entry).collect()).unwrap();
    let scanning = std::sync::atomic::AtomicBool::new(true);
    let slowest = std::thread::scope(|scope| {
        scope.spawn(|| {
            ledger
                .for_each_entry(0, 600, &mut |_, _| {
                    std::thread::sleep(Duration::from_millis(1));
                    Ok(())
                })
                .unwrap();
            scanning.store(false, std::sync::atomic::Ordering::Release);
        });
        let mut slowest = Duration::ZERO;
        let mut reads = 0;
        while scanning.load(std::sync::atomic::Ordering::Acquire) {
            let started = std::time::Instant::now();
            assert_eq!(ledger.size().unwrap(), 600);
            slowest = slowest.max(started.elapsed());
            reads += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(reads > 20, "{reads} reads during the scan");
        slowest
    });
    assert!(slowest < Duration::from_millis(150), "a read waited {slowest:?} behind the scan");
}
