//! How long a start takes at scale: opening a data directory (which rebuilds detection,
//! verify's counts and the recorded statuses before serving) from the detection snapshot,
//! next to the full replay of the ledger it saves, in the same run, on the same data. Each
//! pair of opens must rebuild the same state, or the run fails. Target: under 2 s at ten
//! million entries.
//!
//! Run after the incident benchmark has built its data directory (ten million access
//! entries, a million customers): `CORDON_BENCH_DIR=... cargo bench -p cordon-cli --bench
//! start` (the same `CORDON_BENCH_DIR`; default the system temporary folder).
//! `CORDON_BENCH_COLD=1` also drops the page cache before each open (root only), as after
//! a reboot.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use cordon_gateway::{Claims, DataDir, SystemClock, TokenRole};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RUNS: usize = 3;

fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Where two JSON values first differ, as a path with both values.
fn first_difference(a: &serde_json::Value, b: &serde_json::Value, path: String) -> Option<String> {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|key| match (x.get(key), y.get(key)) {
                (Some(p), Some(q)) => first_difference(p, q, format!("{path}.{key}")),
                (p, q) => Some(format!("{path}.{key}: {p:?} against {q:?}")),
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            x.iter().zip(y).enumerate().find_map(|(i, (p, q))| first_difference(p, q, format!("{path}[{i}]")))
        }
        _ if a == b => None,
        _ => Some(format!("{path}: {a} against {b}")),
    }
}

fn drop_page_cache() {
    std::process::Command::new("sync").status().unwrap();
    std::fs::write("/proc/sys/vm/drop_caches", "3\n").expect("dropping the page cache needs root");
}

fn main() {
    let work: PathBuf = std::env::var_os("CORDON_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = work.join("cordon-incident-bench");
    assert!(dir.join("bench-complete").exists(), "build the data first: cargo bench -p cordon-cli --bench incident");
    let cold = std::env::var_os("CORDON_BENCH_COLD").is_some();
    let data = DataDir::new(&dir);
    let snapshot = dir.join(cordon_gateway::SNAPSHOT_FILE);

    // Once, untimed: the access index follows the ledger to its end (a data directory whose
    // ledger was written around the gateway has it all to read), so no open below shares
    // the cores with that catch-up.
    let gateway = data.open(Arc::new(SystemClock)).unwrap();
    let size = gateway.audit().size();
    let service = Claims::in_process(TokenRole::Service.identity(), TokenRole::Service, "bench");
    let started = Instant::now();
    gateway.access_history(&service, "cus-0").unwrap();
    println!(
        "machine: {} cores; {size} ledger entries; access index caught up in {:.1} s{}",
        std::thread::available_parallelism().map_or(0, usize::from),
        started.elapsed().as_secs_f64(),
        if cold { "; page cache dropped before each open" } else { "; warm page cache" }
    );
    drop(gateway);

    // Opens the data directory, timed into `times`; its detection state.
    let open = |times: &mut Vec<f64>| {
        if cold {
            drop_page_cache();
        }
        let started = Instant::now();
        let gateway = data.open(Arc::new(SystemClock)).unwrap();
        times.push(started.elapsed().as_secs_f64());
        gateway.detection_state()
    };
    let written = || std::fs::metadata(&snapshot).and_then(|metadata| metadata.modified()).unwrap();
    let (mut full, mut restored) = (Vec::new(), Vec::new());
    for run in 0..RUNS {
        // The full replay (no snapshot: an older data directory, or one whose snapshot does
        // not fit); it ends by taking the snapshot the next open starts from.
        std::fs::remove_file(&snapshot).ok();
        let replayed_state = open(&mut full);
        assert!(snapshot.exists(), "a full replay at this size leaves a snapshot");
        let taken = written();
        let restored_state = open(&mut restored);
        // An open that did not use the snapshot would replay everything and write a new one:
        // its time would be a full replay's, not a start from the snapshot.
        assert_eq!(written(), taken, "run {run}: the open did not start from the snapshot");
        if let Some(path) = first_difference(&restored_state, &replayed_state, String::new()) {
            panic!("run {run}: the snapshot rebuilt another state than the full replay, first at {path}");
        }
        println!("run {}: full replay {:.2} s, from the snapshot {:.3} s", run + 1, full[run], restored[run]);
    }
    let (full, restored) = (median(&mut full), median(&mut restored));
    println!(
        "start (open, detection rebuilt) at {size} entries: from the snapshot {restored:.3} s, full replay {full:.2} s \
         (median of {RUNS}); {:.0}x faster; target under 2 s: {}",
        full / restored,
        if restored < 2.0 { "met" } else { "NOT met" }
    );
}
