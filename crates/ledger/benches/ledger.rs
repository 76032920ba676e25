//! Ledger benchmarks. Each figure is printed next to the baseline it is compared with,
//! measured in the same run on the same machine:
//!
//! - `integration`: hashing entries into the tiled Merkle tree in memory, against raw
//!   SHA-256 over the same bytes (target: at least 40% of raw speed);
//! - `durable`: acknowledged durable appends per second with group commit at several
//!   concurrency levels, against one fdatasync per entry (target: at least 50,000/s);
//! - `proofs`: inclusion and consistency proof generation from stored tiles and
//!   verification, at 1M and 10M entries.
//!
//! Run: `cargo bench -p cordon-ledger --bench ledger [-- integration|durable|proofs]`.
//! `CORDON_BENCH_DIR` chooses where logs are written (default: the system temporary folder).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cordon_ledger::{
    Ledger, LedgerConfig, LogReader, SignedCheckpoint, TileStack, leaf_hash, verify_consistency, verify_inclusion,
};
use sha2::{Digest as _, Sha256};

const RUNS: usize = 5;

fn main() {
    let selected: Vec<String> = std::env::args().skip(1).filter(|argument| !argument.starts_with("--")).collect();
    let wants = |name: &str| selected.is_empty() || selected.iter().any(|wanted| wanted == name);
    println!(
        "machine: {} cores; figures are medians of repeated runs\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if wants("integration") {
        integration();
    }
    if wants("durable") {
        durable();
    }
    if wants("proofs") {
        proofs();
    }
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn bench_dir(name: &str) -> tempfile::TempDir {
    let parent = std::env::var_os("CORDON_BENCH_DIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    tempfile::Builder::new().prefix(name).tempdir_in(parent).unwrap()
}

/// Deterministic pseudo-random entry bytes.
fn entries(count: usize, size: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..count * size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn integration() {
    const COUNT: usize = 1_000_000;
    const SIZE: usize = 256;
    let bytes = entries(COUNT, SIZE);
    let mut raw = Vec::new();
    let mut integrated = Vec::new();
    let mut roots = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let digest = Sha256::digest(&bytes);
        raw.push(started.elapsed().as_secs_f64());
        std::hint::black_box(digest);

        let started = Instant::now();
        let mut stack = TileStack::new();
        let mut full_tiles = 0usize;
        for entry in bytes.chunks_exact(SIZE) {
            stack.push(leaf_hash(entry), |_| full_tiles += 1);
        }
        let root = stack.root();
        integrated.push(started.elapsed().as_secs_f64());
        roots.push((root, full_tiles));
    }
    assert!(roots.windows(2).all(|pair| pair[0] == pair[1]), "integration is deterministic");
    let (raw, integrated) = (median(raw), median(integrated));
    let megabytes = (COUNT * SIZE) as f64 / 1e6;
    println!("in-memory integration, {COUNT} entries of {SIZE} B");
    println!("  raw SHA-256 over the same bytes: {:>8.1} ms  {:>7.0} MB/s", raw * 1e3, megabytes / raw);
    println!(
        "  leaf hashes + tiles + root:      {:>8.1} ms  {:>7.0} MB/s  {:>9.0} entries/s",
        integrated * 1e3,
        megabytes / integrated,
        COUNT as f64 / integrated
    );
    println!("  integration speed / raw SHA-256: {:.0}%  (target >= 40%)\n", 100.0 * raw / integrated);
}

fn durable() {
    const ENTRY_SIZE: usize = 256;
    let entry = entries(1, ENTRY_SIZE);
    println!("durable appends, {ENTRY_SIZE} B entries, acknowledged only after fdatasync");

    // Baseline: one write and one fdatasync per entry, the cost of durability without grouping.
    let dir = bench_dir("cordon-bench-fsync");
    let mut samples = Vec::new();
    for run in 0..3 {
        let mut file =
            OpenOptions::new().create(true).append(true).open(dir.path().join(format!("single-{run}"))).unwrap();
        let count = 2000;
        let started = Instant::now();
        for _ in 0..count {
            file.write_all(&entry).unwrap();
            file.sync_data().unwrap();
        }
        samples.push(count as f64 / started.elapsed().as_secs_f64());
    }
    let baseline = median(samples);
    println!("  baseline, one fdatasync per entry:        {baseline:>9.0} entries/s");

    let window = Duration::from_millis(1500);
    for (concurrency, delay_ms) in [(1, 0), (4, 0), (16, 0), (64, 0), (256, 0), (256, 1), (1024, 0)] {
        let mut samples = Vec::new();
        for _ in 0..3 {
            let dir = bench_dir("cordon-bench-durable");
            let log = dir.path().join("log");
            Ledger::create(&log, "bench.example/log").unwrap();
            let config = LedgerConfig { batch_delay_ms_max: delay_ms, ..LedgerConfig::default() };
            let ledger = Ledger::open(&log, config).unwrap();
            let started = Instant::now();
            let total: usize = std::thread::scope(|scope| {
                let workers: Vec<_> = (0..concurrency)
                    .map(|_| {
                        let ledger = &ledger;
                        let entry = &entry;
                        scope.spawn(move || {
                            let mut count = 0;
                            while started.elapsed() < window {
                                ledger.append(entry.clone()).wait().unwrap();
                                count += 1;
                            }
                            count
                        })
                    })
                    .collect();
                workers.into_iter().map(|worker| worker.join().unwrap()).sum()
            });
            samples.push(total as f64 / started.elapsed().as_secs_f64());
            ledger.close().unwrap();
        }
        let rate = median(samples);
        println!(
            "  group commit, {concurrency:>4} appenders, delay {delay_ms} ms: {rate:>9.0} entries/s  ({:.1}x baseline; target >= 50,000)",
            rate / baseline
        );
    }
    // One appender handing over whole batches, as a bulk importer would.
    let mut samples = Vec::new();
    for _ in 0..3 {
        let dir = bench_dir("cordon-bench-batch");
        let log = dir.path().join("log");
        Ledger::create(&log, "bench.example/log").unwrap();
        let ledger = Ledger::open(&log, LedgerConfig::default()).unwrap();
        let batches = 200;
        let started = Instant::now();
        let pending: Vec<_> = (0..batches).map(|_| ledger.append_batch(vec![entry.clone(); 1000])).collect();
        for appending in pending {
            appending.wait().unwrap();
        }
        samples.push((batches * 1000) as f64 / started.elapsed().as_secs_f64());
        ledger.close().unwrap();
    }
    let rate = median(samples);
    println!("  one appender, batches of 1,000:           {rate:>9.0} entries/s  ({:.1}x baseline)\n", rate / baseline);
}

fn proofs() {
    const ENTRY_SIZE: usize = 64;
    const SIZES: [u64; 2] = [1_000_000, 10_000_000];
    let dir = bench_dir("cordon-bench-proofs");
    let log = dir.path().join("log");
    let verifier = Ledger::create(&log, "bench.example/log").unwrap();
    let ledger = Ledger::open(&log, LedgerConfig::default()).unwrap();
    let template = entries(1, ENTRY_SIZE);
    let entry_at = |index: u64| {
        let mut entry = template.clone();
        entry[..8].copy_from_slice(&index.to_le_bytes());
        entry
    };
    let mut checkpoints: Vec<SignedCheckpoint> = Vec::new();
    let started = Instant::now();
    let mut next = 0u64;
    for size in SIZES {
        let mut pending = Vec::new();
        while next < size {
            let end = size.min(next + 10_000);
            pending.push(ledger.append_batch((next..end).map(entry_at).collect()));
            next = end;
            if pending.len() >= 64 {
                for appending in pending.drain(..) {
                    appending.wait().unwrap();
                }
            }
        }
        for appending in pending {
            appending.wait().unwrap();
        }
        checkpoints.push(ledger.publish().unwrap());
    }
    let built = started.elapsed().as_secs_f64();
    ledger.close().unwrap();
    println!(
        "proofs from stored tiles ({} entries of {ENTRY_SIZE} B written in {built:.1} s, {:.0} entries/s)",
        next,
        next as f64 / built
    );

    let reader = LogReader::new(&log);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut random = move |below: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % below
    };
    for signed in &checkpoints {
        let size = signed.checkpoint.size;
        let root = signed.checkpoint.root;
        let (mut generate, mut verify) = (Vec::new(), Vec::new());
        for _ in 0..2000 {
            let index = random(size);
            let started = Instant::now();
            let proof = reader.inclusion_proof(index, size).unwrap();
            generate.push(started.elapsed().as_secs_f64());
            let leaf = leaf_hash(&entry_at(index));
            let started = Instant::now();
            verify_inclusion(index, size, &leaf, &proof, root.as_bytes()).unwrap();
            verify.push(started.elapsed().as_secs_f64());
        }
        println!(
            "  inclusion at {size:>10}: generate median {:>6.1} µs, verify median {:>5.1} µs (random leaves, 2,000 each)",
            median(generate) * 1e6,
            median(verify) * 1e6
        );
    }
    let (old, new) = (&checkpoints[0].checkpoint, &checkpoints[1].checkpoint);
    let (mut generate, mut verify) = (Vec::new(), Vec::new());
    for _ in 0..200 {
        let size1 = 1 + random(new.size - 1);
        let started = Instant::now();
        let proof = reader.consistency_proof(size1, new.size).unwrap();
        generate.push(started.elapsed().as_secs_f64());
        if size1 == old.size {
            verify_consistency(size1, new.size, &proof, old.root.as_bytes(), new.root.as_bytes()).unwrap();
        }
    }
    let proof = reader.consistency_proof(old.size, new.size).unwrap();
    for _ in 0..2000 {
        let started = Instant::now();
        verify_consistency(old.size, new.size, &proof, old.root.as_bytes(), new.root.as_bytes()).unwrap();
        verify.push(started.elapsed().as_secs_f64());
    }
    println!(
        "  consistency to {:>8}: generate median {:>6.1} µs (random old sizes, 200), verify {}->{} median {:>5.1} µs",
        new.size,
        median(generate) * 1e6,
        old.size,
        new.size,
        median(verify) * 1e6
    );
    let started = Instant::now();
    let summary = cordon_ledger::verify_log(&log, &verifier, Some(&checkpoints[0].note)).unwrap();
    println!(
        "  full verification of {} entries from the files: {:.1} s ({:.0} entries/s)\n",
        summary.size,
        started.elapsed().as_secs_f64(),
        summary.size as f64 / started.elapsed().as_secs_f64()
    );
}
