//! Crash safety: a child process appending in a loop is killed with SIGKILL at random
//! moments. After every restart, each acknowledged entry is present at its index, the log
//! verifies, and the new checkpoint is consistent with the one published before the kill.
//!
//! The child is this test binary run again with `CORDON_CRASH_CHILD_DIR` set: it runs only
//! `appender_child`, which then appends until it is killed.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use cordon_ledger::{Ledger, LedgerConfig, LogReader, SignedCheckpoint, verify_consistency, verify_log};

use crate::support::TestLog;

const CHILD_DIR_VARIABLE: &str = "CORDON_CRASH_CHILD_DIR";
const KILLS: usize = 24;
const APPENDER_THREADS: usize = 4;

/// Appends from several threads, printing `ack <index> <entry>` once each entry is durable.
/// Run by the parent as a child process, it loops until killed; run as an ordinary test it
/// appends a bounded number of entries and checks them.
#[test]
fn appender_child() {
    match std::env::var_os(CHILD_DIR_VARIABLE) {
        Some(dir) => append_until_killed(Path::new(&dir)),
        None => {
            let log = TestLog::new("crash.example/log");
            let acknowledged = run_appenders(&log.path(), Some(50), &mut Vec::new());
            let reader = LogReader::new(&log.path());
            let size = reader.checkpoint().unwrap().checkpoint.size;
            assert_eq!(size, (APPENDER_THREADS * 50) as u64);
            for (index, entry) in acknowledged {
                assert_eq!(reader.entry(index, size).unwrap(), entry.into_bytes());
            }
        }
    }
}

fn append_until_killed(dir: &Path) -> ! {
    let mut stdout = std::io::stdout().lock();
    run_appenders(dir, None, &mut stdout);
    unreachable!("the child appends until it is killed")
}

/// Appends `per_thread` entries from each thread (forever when `None`), writing an `ack`
/// line for each durable entry to `out`; returns the acknowledged entries by index.
fn run_appenders(dir: &Path, per_thread: Option<usize>, out: &mut dyn std::io::Write) -> BTreeMap<u64, String> {
    let config = LedgerConfig { checkpoint_interval_ms: 15, ..LedgerConfig::default() };
    let ledger = Ledger::open(dir, config).unwrap();
    let (acks, acked) = mpsc::channel::<(u64, String)>();
    let nonce = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos();
    let mut acknowledged = BTreeMap::new();
    std::thread::scope(|scope| {
        for thread in 0..APPENDER_THREADS {
            let acks = acks.clone();
            let ledger = &ledger;
            scope.spawn(move || {
                let mut count = 0;
                while per_thread.is_none_or(|limit| count < limit) {
                    let entry = format!("run {nonce} thread {thread} entry {count}");
                    let index = ledger.append(entry.clone().into_bytes()).wait().unwrap();
                    if acks.send((index, entry)).is_err() {
                        return;
                    }
                    count += 1;
                }
            });
        }
        drop(acks);
        for (index, entry) in acked {
            writeln!(out, "ack {index} {entry}").unwrap();
            out.flush().unwrap();
            acknowledged.insert(index, entry);
        }
    });
    ledger.close().unwrap();
    acknowledged
}

/// A small seeded generator, so a failing run can be repeated from its printed seed.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut mixed = self.0;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        mixed ^ (mixed >> 31)
    }
}

#[test]
fn acknowledged_appends_survive_sigkill() {
    let seed = std::env::var("CORDON_CRASH_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos() as u64);
    println!("crash test seed {seed} (set CORDON_CRASH_SEED to repeat)");
    let mut random = SplitMix(seed);
    let log = TestLog::new("crash.example/log");
    let mut acknowledged: BTreeMap<u64, String> = BTreeMap::new();
    let mut previous: SignedCheckpoint = LogReader::new(&log.path()).checkpoint().unwrap();

    for round in 0..KILLS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["crash::appender_child", "--exact", "--nocapture", "--test-threads", "1"])
            .env(CHILD_DIR_VARIABLE, log.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (lines, received) = mpsc::channel();
        let reader_thread = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        // Kill at a random moment: sometimes while the child is still recovering, mostly
        // while it is appending and publishing.
        let lifetime = Duration::from_millis(5 + random.next() % 250);
        let started = Instant::now();
        let mut seen_in_round = 0usize;
        while started.elapsed() < lifetime {
            match received.recv_timeout(lifetime.saturating_sub(started.elapsed())) {
                Ok(line) => {
                    record_ack(&line, &mut acknowledged);
                    seen_in_round += 1;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("round {round}: the child exited by itself (seed {seed})")
                }
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        reader_thread.join().unwrap();
        for line in received.try_iter() {
            record_ack(&line, &mut acknowledged);
            seen_in_round += 1;
        }
        // The checkpoint the child last published before it died.
        let before = LogReader::new(&log.path()).checkpoint().unwrap();

        // Restart: recovery publishes a checkpoint covering everything durable.
        let ledger = Ledger::open(&log.path(), LedgerConfig::default()).unwrap();
        let after = ledger.checkpoint();
        drop(ledger);
        let size = after.checkpoint.size;
        for older in [&previous, &before] {
            if older.checkpoint.size > 0 {
                let proof = LogReader::new(&log.path()).consistency_proof(older.checkpoint.size, size).unwrap();
                verify_consistency(
                    older.checkpoint.size,
                    size,
                    &proof,
                    older.checkpoint.root.as_bytes(),
                    after.checkpoint.root.as_bytes(),
                )
                .unwrap_or_else(|error| {
                    panic!(
                        "round {round} (seed {seed}): checkpoint {size} is not consistent with {}: {error}",
                        older.checkpoint.size
                    )
                });
            }
        }
        let last_acknowledged = acknowledged.keys().next_back().copied();
        assert!(
            last_acknowledged.is_none_or(|index| index < size),
            "round {round} (seed {seed}): entry {last_acknowledged:?} was acknowledged but the recovered log has {size}"
        );
        let reader = LogReader::new(&log.path());
        for (index, entry) in &acknowledged {
            assert_eq!(
                reader.entry(*index, size).unwrap(),
                entry.as_bytes(),
                "round {round} (seed {seed}): acknowledged entry {index} changed"
            );
        }
        verify_log(&log.path(), &log.verifier, Some(&previous.note))
            .unwrap_or_else(|error| panic!("round {round} (seed {seed}): {error}"));
        println!("round {round}: {seen_in_round} acknowledgements, log size {size}");
        previous = after;
    }
    assert!(
        acknowledged.len() > KILLS,
        "the children acknowledged too little to test anything: {}",
        acknowledged.len()
    );
}

fn record_ack(line: &str, acknowledged: &mut BTreeMap<u64, String>) {
    let Some(rest) = line.strip_prefix("ack ") else { return };
    let (index, entry) = rest.split_once(' ').unwrap();
    let index: u64 = index.parse().unwrap();
    if let Some(existing) = acknowledged.insert(index, entry.to_string()) {
        panic!("index {index} acknowledged twice: `{existing}` and `{entry}`");
    }
}
