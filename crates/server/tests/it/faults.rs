//! Faults around the ledger: a crash that loses the access index, a store or a ledger on a
//! disk that fills up (a small tmpfs: the kernel's own `ENOSPC`). The record and the state
//! must agree afterwards, a node that cannot commit must say so, and it must come back
//! without a restart once it can. Each test is named by the failure it guards against.
//! The tests of the embedded default's own files (its SQLite files, its ledger's disk) run
//! on it whatever store the suite runs on.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use cordon_entry::{AccessAction, Entry};
use cordon_gateway::{DataDir, TokenRole};
use cordon_server::AppState;
use cordon_testdisk::SmallDisk;
use serde_json::{Value, json};

use crate::support::Harness;

/// Closes the server, runs `between` on the closed data directory, and opens it again.
fn reopen_after(harness: Harness, between: impl FnOnce(&Path)) -> Harness {
    let Harness { dir, clock, state, admin, database } = harness;
    drop(state);
    let data = dir.path().join("data");
    between(&data);
    let gateway = DataDir::new(&data).open(clock.clone()).unwrap();
    Harness { dir, clock, state: Arc::new(AppState::new(gateway)), admin, database }
}

/// Awaits every call, concurrently, in order.
async fn futures_join_all<F: std::future::Future>(calls: Vec<F>) -> Vec<F::Output> {
    let mut pending: Vec<_> = calls.into_iter().map(|call| Some(Box::pin(call))).collect();
    let mut done: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|context| {
        let mut all = true;
        for (slot, output) in pending.iter_mut().zip(done.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(context) {
                    std::task::Poll::Ready(value) => {
                        *output = Some(value);
                        *slot = None;
                    }
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
    })
    .await;
    done.into_iter().flatten().collect()
}

/// `cp -a` (the copies keep modes, and cross filesystems).
fn copy(from: &Path, to: &Path) {
    let status = Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap();
    assert!(status.success(), "cp -a {} {}", from.display(), to.display());
}

/// Moves the closed data directory's ledger onto `disk`, linked from where it was.
fn ledger_onto(disk: &SmallDisk) -> impl FnOnce(&Path) + '_ {
    move |data| {
        copy(&data.join("ledger"), disk.path());
        std::fs::remove_dir_all(data.join("ledger")).unwrap();
        std::os::unix::fs::symlink(disk.path().join("ledger"), data.join("ledger")).unwrap();
    }
}

/// Moves the closed data directory onto `disk`, all but its ledger: the store fills up, the
/// ledger does not.
fn store_onto(disk: &SmallDisk) -> impl FnOnce(&Path) + '_ {
    move |data| {
        let ledger = data.with_file_name("ledger");
        std::fs::rename(data.join("ledger"), &ledger).unwrap();
        copy(data, disk.path());
        std::fs::remove_dir_all(data).unwrap();
        std::os::unix::fs::symlink(disk.path().join("data"), data).unwrap();
        std::os::unix::fs::symlink(&ledger, data.join("ledger")).unwrap();
    }
}

/// Every ledger entry, decoded, with its index.
fn ledger_entries(harness: &Harness) -> Vec<(u64, Entry)> {
    let audit = harness.state.gateway.audit();
    let mut entries = Vec::new();
    audit
        .for_each_entry(&mut |index, bytes| {
            entries.push((index, cordon_entry::decode(bytes).map_err(|error| error.to_string())?));
            Ok(())
        })
        .unwrap();
    entries
}

async fn history(harness: &Harness, customer: &str) -> Vec<Value> {
    let service = harness.state.gateway.issue_role_token(TokenRole::Service).unwrap();
    let path = format!("/v1/customers/{customer}/access-history");
    let (status, answer) = harness.call(Method::GET, &path, Some(&service), None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["events"].as_array().unwrap().clone()
}

/// The history the ledger says `customer` has: its card, reveal and verify entries.
fn history_in_ledger(harness: &Harness, customer: &str) -> Vec<(u64, String, String)> {
    ledger_entries(harness)
        .into_iter()
        .filter_map(|(index, entry)| match entry {
            Entry::Access(access)
                if access.customer.as_deref() == Some(customer)
                    && matches!(access.action, AccessAction::View | AccessAction::Reveal | AccessAction::Verify) =>
            {
                Some((
                    index,
                    access.action.name().to_string(),
                    if access.allowed() { "allow" } else { "deny" }.to_string(),
                ))
            }
            _ => None,
        })
        .collect()
}

fn as_rows(events: &[Value]) -> Vec<(u64, String, String)> {
    events
        .iter()
        .map(|event| {
            (
                event["ledger_index"].as_u64().unwrap(),
                event["action"].as_str().unwrap().to_string(),
                event["decision"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Reveals until the full disk refuses one (the write-ahead log's last page may still take a
/// few entries); the refusal, and how many were answered before it.
async fn reveal_until_refused(harness: &Harness, token: &str) -> ((StatusCode, Value), usize) {
    for answered in 0..1000 {
        let (status, answer) = reveal(harness, token).await;
        if status != StatusCode::OK {
            return ((status, answer), answered);
        }
    }
    panic!("a full disk took 1,000 reveals");
}

async fn reveal(harness: &Harness, token: &str) -> (StatusCode, Value) {
    let body = json!({"ticket": "t-1", "fields": ["email"], "reason": "customer asked"});
    harness.call(Method::POST, "/v1/customers/cus-1/reveal", Some(token), Some(body)).await
}

/// Regression: the access index held its rows in memory and never read the ledger, so a
/// crash lost accesses from the customer's history for good (1,277 of 300,596 after 200
/// kills). It follows the ledger from a position stored with its rows: an index lost
/// entirely is read back from the ledger at the next start.
#[tokio::test]
async fn access_history_lost_to_a_crash_is_read_back_from_the_ledger() {
    let harness = Harness::embedded();
    harness.put_assigned_ticket().await;
    let agent = harness.agent_token("agt-1");
    assert_eq!(reveal(&harness, &agent).await.0, StatusCode::OK);
    let view = "/v1/customers/cus-1?ticket=t-1";
    assert_eq!(harness.call(Method::GET, view, Some(&agent), None).await.0, StatusCode::OK);
    let refused = json!({"fields": ["email"], "reason": "no ticket"});
    let (status, _) = harness.call(Method::POST, "/v1/customers/cus-1/reveal", Some(&agent), Some(refused)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let before = history_in_ledger(&harness, "cus-1");
    assert_eq!(before.len(), 3, "{before:?}");

    // The crash takes the whole index with it.
    let harness = reopen_after(harness, |data| {
        for file in ["cordon-access.sqlite", "cordon-access.sqlite-wal", "cordon-access.sqlite-shm"] {
            let _ = std::fs::remove_file(data.join(file));
        }
    });
    assert_eq!(as_rows(&history(&harness, "cus-1").await), before, "the history equals the ledger again");
    // And it keeps following: an access now is in the history at once.
    assert_eq!(reveal(&harness, &harness.agent_token("agt-1")).await.0, StatusCode::OK);
    let after = history_in_ledger(&harness, "cus-1");
    assert_eq!(after.len(), 4);
    assert_eq!(as_rows(&history(&harness, "cus-1").await), after);
    harness.restart_and_verify().await;
}

/// The index file is written without fsync and marked with the boot it is open in. A marker
/// of another boot, or damaged or planted (not text, a megabyte, control characters), costs
/// the index, never the start: the server opens, the history equals the ledger again, it
/// serves, and it restarts and verifies.
#[tokio::test]
async fn an_index_marked_by_another_boot_or_damaged_is_read_back_from_the_ledger() {
    let cases: [(&str, Vec<u8>); 4] = [
        ("another boot", b"0b0e0000-0000-4000-8000-000000000000".to_vec()),
        ("not text", vec![0xff, 0xfe, 0x00, 0x1b]),
        ("a megabyte", vec![b'x'; 1 << 20]),
        ("control characters", b"\x1b[2J\r\n\x00\x07".to_vec()),
    ];
    for (case, marker) in cases {
        let harness = Harness::embedded();
        harness.put_assigned_ticket().await;
        assert_eq!(reveal(&harness, &harness.agent_token("agt-1")).await.0, StatusCode::OK, "{case}");
        let before = history_in_ledger(&harness, "cus-1");
        assert_eq!(before.len(), 1, "{case}: {before:?}");
        let harness = reopen_after(harness, |data| std::fs::write(data.join("cordon-access.open"), &marker).unwrap());
        assert_eq!(as_rows(&history(&harness, "cus-1").await), before, "{case}: the history equals the ledger");
        assert_eq!(reveal(&harness, &harness.agent_token("agt-1")).await.0, StatusCode::OK, "{case}: it serves");
        assert_eq!(as_rows(&history(&harness, "cus-1").await), history_in_ledger(&harness, "cus-1"), "{case}");
        harness.restart_and_verify().await;
    }
}

/// Regression: with the store's disk full, a suspension answered 500 but was in the signed
/// ledger, and the agent went on revealing, even after a restart; a ticket change behaved
/// the same. A recorded status change is in force from the next request whatever the
/// store says (held in memory, repaired from the ledger at the next start); a change the
/// store could not apply is followed by a `change.failed` entry naming it; readiness says
/// the store cannot commit.
#[tokio::test]
async fn a_suspension_recorded_while_the_store_is_full_holds_and_is_repaired_from_the_ledger() {
    let disk = SmallDisk::new(4 << 20).unwrap();
    let harness = Harness::embedded();
    harness.put_assigned_ticket().await;
    let harness = reopen_after(harness, store_onto(&disk));
    let agent = harness.agent_token("agt-1");
    assert_eq!(reveal(&harness, &agent).await.0, StatusCode::OK);

    disk.fill().unwrap();
    let (status, answer) = harness.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["detail"], "not ready: the store cannot commit writes", "{answer}");

    let suspended = harness.admin(Method::POST, "/v1/agents/agt-1/suspend", json!({})).await;
    let (status, answer) = reveal(&harness, &agent).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the recorded suspension holds: {answer}");

    let ticket = json!({"requester": "cus-1", "category": "general_inquiry", "assignee": "agt-1"});
    let (status, answer) =
        harness.call(Method::PUT, "/v1/tickets/t-2", Some(&harness.admin.clone()), Some(ticket)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{answer}");
    let entries = ledger_entries(&harness);
    let (put_index, failed) = match &entries[entries.len() - 2..] {
        [(index, Entry::Change(put)), (_, Entry::Change(failed))] if put.change == "ticket.put" => (*index, failed),
        other => panic!("expected ticket.put then change.failed: {other:?}"),
    };
    assert_eq!((failed.change.as_str(), failed.target.clone()), ("change.failed", put_index.to_string()));

    // Space returns, but the node crashes before it writes the held status through.
    disk.free_all().unwrap();
    let store_path = harness.data().path("cordon.sqlite");
    let stored = cordon_store::Store::open(&store_path).unwrap().agent("agt-1").unwrap().unwrap();
    assert_eq!(stored.status.name(), "active", "the store missed the suspension");
    let harness = reopen_after(harness, |_| {});
    let stored = cordon_store::Store::open(&store_path).unwrap().agent("agt-1").unwrap().unwrap();
    assert_eq!(stored.status.name(), "suspended", "repaired from the ledger (entry {suspended})");
    let (status, answer) = reveal(&harness, &agent).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    harness.restart_and_verify().await;
}

/// Regression: after the ledger's disk filled, every data route answered 503 (right) and
/// kept doing so after space returned, until a restart, while `/healthz` said "ok"; durable
/// entries' receipts answered 404 with a server path. Readiness and a gauge say the ledger
/// cannot commit, receipts are served or 503, and the node heals by itself.
#[tokio::test]
async fn a_full_ledger_disk_refuses_data_says_so_and_recovers_without_a_restart() {
    let disk = SmallDisk::new(4 << 20).unwrap();
    let harness = Harness::embedded();
    harness.put_assigned_ticket().await;
    let harness = reopen_after(harness, ledger_onto(&disk));
    let agent = harness.agent_token("agt-1");
    let (status, answer) = reveal(&harness, &agent).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let revealed = answer["ledger_index"].as_u64().unwrap();

    disk.fill().unwrap();
    let ((status, answer), _) = reveal_until_refused(&harness, &agent).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert!(!answer.to_string().contains("nina@example.org"), "no data without a record: {answer}");
    let (status, answer) = harness.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["detail"], "not ready: the audit ledger cannot commit entries", "{answer}");
    assert_eq!(harness.call(Method::GET, "/healthz", None, None).await.0, StatusCode::OK, "alive all the same");
    let metrics_token = harness.state.gateway.issue_role_token(TokenRole::Admin).unwrap();
    let (_, metrics) = harness.call(Method::GET, "/metrics", Some(&metrics_token), None).await;
    assert!(metrics.as_str().unwrap().contains("cordon_ledger_healthy 0"), "{metrics}");
    for index in [revealed, 0] {
        let path = format!("/v1/ledger/proof/{index}");
        let (status, answer) = harness.call(Method::GET, &path, Some(&metrics_token), None).await;
        assert!(matches!(status, StatusCode::OK | StatusCode::SERVICE_UNAVAILABLE), "{index}: {status} {answer}");
        assert!(!answer.to_string().contains(disk.path().to_str().unwrap()), "no path: {answer}");
    }

    disk.free_all().unwrap();
    assert!(harness.state.gateway.heal().unwrap().ledger_reopened);
    assert_eq!(harness.call(Method::GET, "/readyz", None, None).await.0, StatusCode::OK);
    let (status, answer) = reveal(&harness, &agent).await;
    assert_eq!(status, StatusCode::OK, "serving again without a restart: {answer}");
    let path = format!("/v1/ledger/proof/{revealed}");
    let (status, answer) = harness.call(Method::GET, &path, Some(&metrics_token), None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (_, metrics) = harness.call(Method::GET, "/metrics", Some(&metrics_token), None).await;
    assert!(metrics.as_str().unwrap().contains("cordon_ledger_healthy 1"), "{metrics}");
    harness.restart_and_verify().await;
}

/// Regression: a group write that failed part-way left whole records of reveals whose
/// callers got 503, recovered as allowed at the next start (and incident scope counted
/// those customers as revealed). What the ledger holds is what the callers were told.
#[tokio::test]
async fn a_refused_reveal_leaves_no_allowed_entry_after_a_crash() {
    let disk = SmallDisk::new(4 << 20).unwrap();
    let harness = Harness::embedded();
    harness.put_assigned_ticket().await;
    let harness = reopen_after(harness, ledger_onto(&disk));
    let agent = harness.agent_token("agt-1");
    assert_eq!(reveal(&harness, &agent).await.0, StatusCode::OK);
    let size = harness.state.gateway.audit().size();
    disk.fill().unwrap();
    // Sixteen reveals at once, so the ledger commits them in groups, until the disk is full.
    let mut answered = 0;
    let mut refused = 0;
    while refused == 0 {
        assert!(answered < 1000, "a full disk took 1,000 reveals");
        let calls: Vec<_> = (0..16).map(|_| reveal(&harness, &agent)).collect();
        for (status, answer) in futures_join_all(calls).await {
            match status {
                StatusCode::OK => answered += 1,
                StatusCode::SERVICE_UNAVAILABLE => refused += 1,
                other => panic!("{other}: {answer}"),
            }
        }
    }
    let harness = reopen_after(harness, |_| disk.free_all().unwrap());
    let after: Vec<(u64, Entry)> = ledger_entries(&harness).into_iter().filter(|(index, _)| *index >= size).collect();
    let allowed_reveals = after
        .iter()
        .filter(|(_, entry)| matches!(entry, Entry::Access(access) if access.action == AccessAction::Reveal && access.allowed()))
        .count();
    assert_eq!(
        allowed_reveals, answered,
        "{answered} reveals answered and {refused} refused: the ledger allows exactly the answered ones"
    );
    harness.restart_and_verify().await;
}

/// Regression: closing with the disk full claimed a final checkpoint that lagged the
/// write-ahead log. The close is an error that says so; the entries are not lost.
#[tokio::test]
async fn a_close_on_a_full_ledger_disk_is_an_error_and_loses_nothing() {
    let disk = SmallDisk::new(4 << 20).unwrap();
    let harness = Harness::embedded_with_config(|config| config.ledger.checkpoint_interval_ms = 3_600_000);
    harness.put_assigned_ticket().await;
    let harness = reopen_after(harness, ledger_onto(&disk));
    let (status, answer) = reveal(&harness, &harness.agent_token("agt-1")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let revealed = answer["ledger_index"].as_u64().unwrap();
    disk.fill().unwrap();
    let error = harness.state.gateway.close().unwrap_err();
    assert!(error.to_string().contains("acknowledged entries"), "{error}");
    let harness = reopen_after(harness, |_| disk.free_all().unwrap());
    let entries = ledger_entries(&harness);
    assert!(
        matches!(&entries.iter().find(|(index, _)| *index == revealed), Some((_, Entry::Access(access))) if access.allowed()),
        "the acknowledged reveal is in the ledger"
    );
    harness.restart_and_verify().await;
}

/// Activity detection and verify's limit take in: reveals by several agents, wrong
/// statements, a canary touch (an alert and a suspension), a revocation.
async fn activity(harness: &Harness, round: usize) {
    for agent in 1..=3 {
        let id = format!("agt-r{round}-{agent}");
        harness.put_agent(&id, json!({"name": "R", "team": "l1-chat", "site": "us-sf", "employer": "staff"})).await;
        let ticket = json!({"requester": "cus-1", "category": "general_inquiry", "assignee": id});
        harness.admin(Method::PUT, &format!("/v1/tickets/t-{id}"), ticket).await;
        let token = harness.agent_token(&id);
        let body = json!({"ticket": format!("t-{id}"), "fields": ["email"], "reason": "asked"});
        let (status, answer) = harness.call(Method::POST, "/v1/customers/cus-1/reveal", Some(&token), Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let wrong = json!({"ticket": format!("t-{id}"), "field": "email", "value": "nobody@example.org"});
        let (status, answer) =
            harness.call(Method::POST, "/v1/customers/cus-1/verify", Some(&token), Some(wrong)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let toucher = harness.agent_token(&format!("agt-r{round}-1"));
    let (status, _) = harness.call(Method::GET, "/v1/customers/cus-999", Some(&toucher), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    harness.admin(Method::POST, "/v1/tokens/revoke", json!({"jti": format!("jti-{round}")})).await;
}

/// Regression: every start replayed the whole ledger to rebuild detection (0.9 s at
/// 290,000 entries, 86 s at ten million from a cold cache). A snapshot at a ledger index
/// lets a start replay only the entries after it, and the state it rebuilds is the one a
/// full replay rebuilds.
#[tokio::test]
async fn a_start_replays_only_the_entries_after_the_detection_snapshot() {
    let harness = Harness::new();
    harness.put_assigned_ticket().await;
    harness.put_canary("cus-999", crate::support::customer_fields("Cora Nary", "cora@example.org", 250_000.0)).await;
    activity(&harness, 1).await;
    let covered = harness.state.gateway.snapshot_detection().expect("a snapshot");
    assert_eq!(covered, harness.state.gateway.audit().size());
    activity(&harness, 2).await;
    let size = harness.state.gateway.audit().size();

    let harness = reopen_after(harness, |_| {});
    let restored = harness.state.gateway.detection_state();
    let replayed = harness.state.gateway.restore_detection().unwrap();
    assert_eq!((replayed.from, replayed.from + replayed.entries), (covered, size), "only the tail is replayed");
    assert_eq!(harness.state.gateway.detection_state(), restored, "restoring again gives the same state");
    let full = harness.state.gateway.replay_detection().unwrap();
    assert_eq!((full.from, full.entries), (0, size));
    assert_eq!(harness.state.gateway.detection_state(), restored, "the snapshot and the tail rebuild a full replay");
    let state = harness.state.gateway.detection_state();
    assert_eq!(state["statuses"]["agt-r1-1"], "suspended", "{}", state["statuses"]);
    assert_eq!(state["statuses"]["agt-r2-1"], "suspended");
    assert!(state["revocations"]["jti-1"].is_number() && state["revocations"]["jti-2"].is_number());
    assert_eq!(state["statements"].as_array().unwrap().len(), 6, "{}", state["statements"]);
    harness.restart_and_verify().await;
}

/// A snapshot is only a shortcut: one that does not belong to this ledger (the entry it
/// was taken after differs), to these settings, or that does not read, is not used, and
/// the start replays the whole ledger.
#[tokio::test]
async fn a_snapshot_that_does_not_fit_is_not_used() {
    let harness = Harness::new();
    harness.put_assigned_ticket().await;
    harness.put_canary("cus-999", crate::support::customer_fields("Cora Nary", "cora@example.org", 250_000.0)).await;
    activity(&harness, 1).await;
    harness.state.gateway.snapshot_detection().expect("a snapshot");
    let path = harness.data().path(cordon_gateway::SNAPSHOT_FILE);
    let good = std::fs::read(&path).unwrap();
    let text = String::from_utf8(good.clone()).unwrap();
    let leaf = text.split("\"last_leaf\":\"").nth(1).unwrap()[..64].to_string();
    let other_leaf = text.replace(&leaf, &"0".repeat(64));
    let cases: [(&str, Vec<u8>); 3] = [
        ("another ledger's", other_leaf.into_bytes()),
        ("a damaged one", good[..good.len() / 2].to_vec()),
        ("one past the ledger", text.replacen("\"size\":", "\"size\":9999", 1).into_bytes()),
    ];
    let mut harness = harness;
    for (case, bytes) in cases {
        harness = reopen_after(harness, |_| std::fs::write(&path, &bytes).unwrap());
        let replayed = harness.state.gateway.restore_detection().unwrap();
        assert_eq!(replayed.from, 0, "{case} snapshot is not used");
    }
    // Other thresholds: the detector's state was built under the old ones.
    let Harness { dir, clock, state, .. } = harness;
    drop(state);
    let data = DataDir::new(&dir.path().join("data"));
    let mut config = data.config().unwrap();
    config.detection.thresholds.alert_risk += 1.0;
    std::fs::write(data.path("cordon.toml"), config.to_toml().unwrap()).unwrap();
    if config.store.is_postgres() {
        // Other rules on a shared store are the deployment's only once adopted.
        data.adopt_rules(clock.clone()).unwrap();
    }
    std::fs::write(&path, &good).unwrap();
    let gateway = data.open(clock.clone()).unwrap();
    assert_eq!(gateway.restore_detection().unwrap().from, 0, "a snapshot under other thresholds is not used");
}

/// Regression: a suspension detection raised while the store was full was lost (storing
/// its alert failed first, and the suspension was never put in force). Containment comes
/// first, and the alert reaches the store once it takes writes.
#[tokio::test]
async fn a_detection_suspension_holds_while_the_store_is_full() {
    let disk = SmallDisk::new(4 << 20).unwrap();
    let harness = Harness::embedded();
    harness.put_assigned_ticket().await;
    harness.put_canary("cus-999", crate::support::customer_fields("Cora Nary", "cora@example.org", 250_000.0)).await;
    let harness = reopen_after(harness, store_onto(&disk));
    let agent = harness.agent_token("agt-1");
    disk.fill().unwrap();
    let (status, _) = harness.call(Method::GET, "/v1/customers/cus-999", Some(&agent), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, answer) = reveal(&harness, &agent).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "suspended by detection, store full or not: {answer}");
    disk.free_all().unwrap();
    harness.state.gateway.heal().unwrap();
    let stored = cordon_store::Store::open(&harness.data().path("cordon.sqlite")).unwrap();
    assert_eq!(stored.agent("agt-1").unwrap().unwrap().status.name(), "suspended");
    // The follower stores the alert the full store missed.
    let service = harness.state.gateway.issue_role_token(TokenRole::Service).unwrap();
    let (status, _) = harness.call(Method::GET, "/v1/customers/cus-1/access-history", Some(&service), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stored.alerts(Some("open"), 10).unwrap().len(), 1, "the alert is stored");
    harness.restart_and_verify().await;
}

/// Regression: a PUT of an agent recorded the status it read, so a suspension landing
/// between that read and the PUT's entry was undone by the repair at the next start. An
/// existing agent's PUT records its status as `kept`; offboarding is final.
#[tokio::test]
async fn a_put_after_a_suspension_does_not_reinstate_at_restart_and_offboarding_is_final() {
    let harness = Harness::new();
    harness.put_assigned_ticket().await;
    harness.admin(Method::POST, "/v1/agents/agt-1/suspend", json!({})).await;
    harness.put_agent("agt-1", json!({"name": "A", "team": "l2-email", "site": "us-sf", "employer": "staff"})).await;
    let entries = ledger_entries(&harness);
    let Some((_, Entry::Change(put))) = entries.last() else { panic!("{entries:?}") };
    assert_eq!((put.change.as_str(), put.detail.as_deref()), ("agent.put", Some("l2-email us-sf agent kept")));
    let harness = harness.restart_and_verify().await;
    assert_eq!(harness.state.gateway.agent("agt-1").unwrap().unwrap().status.name(), "suspended");

    harness.admin(Method::POST, "/v1/agents/agt-1/offboard", json!({})).await;
    let (status, answer) =
        harness.call(Method::POST, "/v1/agents/agt-1/suspend", Some(&harness.admin.clone()), Some(json!({}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let analyst = harness.state.gateway.issue_role_token(TokenRole::Analyst).unwrap();
    let (status, answer) =
        harness.call(Method::POST, "/v1/agents/agt-1/reinstate", Some(&analyst), Some(json!({}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let harness = harness.restart_and_verify().await;
    assert_eq!(harness.state.gateway.agent("agt-1").unwrap().unwrap().status.name(), "offboarded");
}

/// Regression: a start on a full ledger disk was refused (the replay at open wanted a
/// checkpoint it could not write). It opens, serves nothing it cannot record, says why on
/// /readyz, and once space returns heals, rebuilding detection from the ledger.
#[tokio::test]
async fn a_start_on_a_full_ledger_disk_opens_and_heals_when_space_returns() {
    let disk = SmallDisk::new(4 << 20).unwrap();
    let harness = Harness::embedded_with_config(|config| config.ledger.checkpoint_interval_ms = 3_600_000);
    harness.put_assigned_ticket().await;
    let harness = reopen_after(harness, ledger_onto(&disk));
    let agent = harness.agent_token("agt-1");
    for _ in 0..3 {
        assert_eq!(reveal(&harness, &agent).await.0, StatusCode::OK);
    }
    // The disk fills: the stop cannot publish them (they stay in the write-ahead log), and
    // the start finds it still full.
    disk.fill().unwrap();
    let harness = reopen_after(harness, |_| {});
    let (status, answer) = harness.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    let (status, answer) = reveal(&harness, &agent).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    disk.free_all().unwrap();
    assert!(harness.state.gateway.heal().unwrap().ledger_reopened);
    let healed = harness.state.gateway.detection_state();
    harness.state.gateway.replay_detection().unwrap();
    assert_eq!(harness.state.gateway.detection_state(), healed, "healing rebuilt detection from the whole ledger");
    assert_eq!(reveal(&harness, &agent).await.0, StatusCode::OK);
    assert_eq!(history_in_ledger(&harness, "cus-1").len(), 4, "the three reveals before the crash, and this one");
    harness.restart_and_verify().await;
}

/// Regression: the exposure index was built by the first incident command, reading the
/// whole ledger then (733 s at ten million entries), in the middle of an incident. The
/// ledger follower keeps it current while the server runs, so scope starts from an index
/// that is already there.
#[tokio::test]
async fn the_exposure_index_follows_the_ledger_before_any_incident_command() {
    let harness = Harness::new();
    harness.put_assigned_ticket().await;
    let agent = harness.agent_token("agt-1");
    assert_eq!(reveal(&harness, &agent).await.0, StatusCode::OK);
    let size = harness.state.gateway.audit().size();
    let store = harness.store();
    let started = std::time::Instant::now();
    while store.exposures_through().unwrap() < size {
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "the follower indexes exposures by itself");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let shown = store.exposures_of_customers(&["cus-1".to_string()]).unwrap();
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!((shown[0].agent_id.as_str(), shown[0].action.as_str()), ("agt-1", "reveal"));
    assert_eq!(harness.state.gateway.refresh_exposures().unwrap(), 0, "nothing left for an incident to read");
}
