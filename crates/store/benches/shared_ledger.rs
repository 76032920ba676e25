//! Acknowledged durable appends per second through the ledger sequenced in PostgreSQL,
//! beside the file ledger (group-committed fdatasync) in the same run, same entries, same
//! concurrency: each writer appends batches of `BATCH` entries and waits for each to be
//! acknowledged, as a gateway's turn does. Every acknowledged entry is read back from
//! PostgreSQL and compared, and a checkpoint covering them must be signed, or the run fails.
//!
//! Run: `scripts/with-postgres cargo bench -p cordon-store --bench shared_ledger`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use cordon_ledger::{Ledger, LedgerConfig, Signer};
use cordon_store::{SharedLedger, SharedLedgerConfig, StoredLedgerKey};

/// Entries per run; one writer appending one entry at a time makes fewer (each waits a commit).
const ENTRIES: usize = 40_000;
const ENTRIES_ONE_AT_A_TIME: usize = 2_000;
const ENTRY_BYTES: usize = 300;
const RUNS: usize = 3;

fn entry(writer: usize, index: usize) -> Vec<u8> {
    let mut bytes = format!("{{\"writer\":{writer},\"n\":{index}}}").into_bytes();
    bytes.resize(ENTRY_BYTES, b' ');
    bytes
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Entries per second with `writers` threads each appending its share in batches of `batch`.
fn run(
    total: usize,
    writers: usize,
    batch: usize,
    append: Arc<dyn Fn(Vec<Vec<u8>>) -> u64 + Send + Sync>,
) -> (f64, Vec<(u64, Vec<u8>)>) {
    let start = Instant::now();
    let threads: Vec<_> = (0..writers)
        .map(|writer| {
            let append = Arc::clone(&append);
            std::thread::spawn(move || {
                let mut acknowledged = Vec::new();
                let share = total / writers;
                for first in (0..share).step_by(batch) {
                    let entries: Vec<Vec<u8>> = (first..(first + batch).min(share)).map(|n| entry(writer, n)).collect();
                    let index = append(entries.clone());
                    acknowledged
                        .extend(entries.into_iter().enumerate().map(|(offset, entry)| (index + offset as u64, entry)));
                }
                acknowledged
            })
        })
        .collect();
    let acknowledged: Vec<(u64, Vec<u8>)> = threads.into_iter().flat_map(|thread| thread.join().unwrap()).collect();
    let rate = acknowledged.len() as f64 / start.elapsed().as_secs_f64();
    (rate, acknowledged)
}

fn main() {
    let host = std::env::var("PGHOST").expect("run under scripts/with-postgres");
    let (port, user) = (std::env::var("PGPORT").unwrap(), std::env::var("PGUSER").unwrap());
    println!(
        "machine: {} cores; {ENTRIES} entries of {ENTRY_BYTES} bytes per run ({ENTRIES_ONE_AT_A_TIME} one at a time), \
         medians of {RUNS} runs\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| writers | batch | PostgreSQL (entries/s) | file ledger (entries/s) | ratio |");
    println!("|---|---|---|---|---|");
    for (writers, batch) in [(1, 1), (8, 1), (8, 16), (64, 16)] {
        let total = if writers * batch == 1 { ENTRIES_ONE_AT_A_TIME } else { ENTRIES };
        let mut shared_rates = Vec::new();
        let mut file_rates = Vec::new();
        for _ in 0..RUNS {
            // PostgreSQL: a fresh database, the ledger's key stored, this process its gateway.
            let name = format!("cordon_bench_{}", std::process::id());
            let admin = format!("postgres://{user}@{host}:{port}/postgres");
            std::thread::spawn({
                let (admin, name) = (admin.clone(), name.clone());
                move || {
                    let password = std::env::var("PGPASSWORD").unwrap_or_default();
                    let admin = cordon_store::with_password(&admin, &password);
                    let mut client = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
                    client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).unwrap();
                    client.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
                }
            })
            .join()
            .unwrap();
            let url = format!("postgres://{user}@{host}:{port}/{name}");
            let signer = Signer::generate("bench.cordon/ledger").unwrap();
            let key = StoredLedgerKey {
                origin: "bench.cordon/ledger".into(),
                verifier: signer.verifier().to_string(),
                kek_id: "bench".into(),
                wrapped_signing_key: Vec::new(),
            };
            SharedLedger::store_key(&url, &key).unwrap();
            let shared = Arc::new(SharedLedger::open(&url, signer, SharedLedgerConfig::default()).unwrap());
            let appender = Arc::clone(&shared);
            let (rate, acknowledged) =
                run(total, writers, batch, Arc::new(move |entries| appender.append(entries).unwrap()));
            // Every acknowledged entry is there, at its index; a checkpoint covers them.
            let mut stored = std::collections::HashMap::new();
            shared
                .for_each_entry(0, total as u64, &mut |index, bytes| {
                    stored.insert(index, bytes.to_vec());
                    Ok(())
                })
                .unwrap();
            assert_eq!(stored.len(), acknowledged.len());
            for (index, entry) in &acknowledged {
                assert_eq!(stored.get(index), Some(entry), "entry {index}");
            }
            shared.checkpoint_covering(total as u64, Duration::from_secs(60)).unwrap();
            shared_rates.push(rate);
            drop(shared);

            // The file ledger, same entries and concurrency.
            let dir = tempfile::tempdir().unwrap();
            Ledger::create(&dir.path().join("ledger"), "bench.cordon/ledger").unwrap();
            let file = Arc::new(Ledger::open(&dir.path().join("ledger"), LedgerConfig::default()).unwrap());
            let appender = Arc::clone(&file);
            let (rate, acknowledged) =
                run(total, writers, batch, Arc::new(move |entries| appender.append_batch(entries).wait().unwrap()));
            assert_eq!(acknowledged.len(), total / writers * writers);
            file_rates.push(rate);
        }
        let (shared, file) = (median(shared_rates), median(file_rates));
        println!("| {writers} | {batch} | {shared:.0} | {file:.0} | {:.3} |", shared / file);
    }
}
