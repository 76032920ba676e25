//! `cordon backup` and `cordon restore` as an operator runs them: a backup taken from a
//! running server while changes and reveals go on restores every customer, the directory
//! and the ledger's root, with the store and the ledger agreeing change for change; a backup
//! holds no plaintext value and no key in the clear; a damaged or mismatched backup is
//! refused in words and leaves nothing behind.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde_json::{Value, json};

use crate::support::{http, run, start_server, stop_server};

const CUSTOMERS: usize = 120;

fn customer(index: usize) -> Value {
    json!({
        "id": format!("cus-{index}"),
        "full_name": format!("Backupwalda Quernsteig{index}"),
        "email": format!("quernsteig.{index}@backup-test.example"),
        "phone": format!("+44 20 7946 {:04}", 1000 + index),
        "bank_account": format!("GB29NWBK6016133192{:04}", 6800 + index),
        "balance_usd": 1000 + index,
    })
}

/// The distinctive plaintext values of customer `index`, as a backup must never hold them.
fn plaintext(index: usize) -> Vec<String> {
    let value = customer(index);
    ["full_name", "email", "phone", "bank_account"]
        .iter()
        .map(|field| value[field].as_str().unwrap_or_default().to_string())
        .collect()
}

/// A directory with customers, three agents and a ticket per agent; returns its admin token.
fn directory(scratch: &Path) -> (PathBuf, String) {
    let data = scratch.join("data");
    let (ok, admin, stderr) = run(&["init", data.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let lines: Vec<String> = (0..CUSTOMERS).map(|index| customer(index).to_string()).collect();
    let customers = scratch.join("customers.jsonl");
    std::fs::write(&customers, lines.join("\n") + "\n").unwrap();
    let agents = scratch.join("agents.jsonl");
    let agent_lines: Vec<String> = (1..=3)
        .map(|n| json!({"id": format!("agt-{n}"), "name": format!("Agent {n}"), "team": "l1-chat", "site": "us-sf", "employer": "staff"}).to_string())
        .collect();
    std::fs::write(&agents, agent_lines.join("\n") + "\n").unwrap();
    let tickets = scratch.join("tickets.jsonl");
    let ticket_lines: Vec<String> = (1..=3)
        .map(|n| json!({"id": format!("t-{n}"), "requester": format!("cus-{n}"), "category": "account_recovery", "assignee": format!("agt-{n}")}).to_string())
        .collect();
    std::fs::write(&tickets, ticket_lines.join("\n") + "\n").unwrap();
    for (kind, file) in [("customers", &customers), ("agents", &agents), ("tickets", &tickets)] {
        let (ok, stdout, stderr) = run(&["import", kind, file.to_str().unwrap(), "--data", data.to_str().unwrap()]);
        assert!(ok, "{stdout}{stderr}");
    }
    (data, admin.trim().to_string())
}

fn kek_file(data: &Path) -> PathBuf {
    std::fs::read_dir(data.join("keys"))
        .unwrap()
        .map(|item| item.unwrap().path())
        .find(|path| path.file_name().unwrap().to_string_lossy().starts_with("kek-"))
        .expect("a key-encryption key file")
}

fn manifest(archive: &Path) -> cordon_gateway::BackupManifest {
    cordon_gateway::check_backup(archive).unwrap()
}

fn verifier(data: &Path) -> cordon_ledger::Verifier {
    let text = std::fs::read_to_string(data.join("ledger/private/verifier-key")).unwrap();
    cordon_ledger::Verifier::parse(text.trim()).unwrap()
}

/// The targets of `change` entries among the first `size` entries of the ledger in `data`.
fn changed(data: &Path, change: &str, size: u64) -> BTreeSet<String> {
    let mut targets = BTreeSet::new();
    let reader = cordon_ledger::LogReader::new(&data.join("ledger"));
    let published = reader.checkpoint().unwrap().checkpoint.size;
    reader
        .for_each_entry_of(published, 0, size, |_, bytes| {
            if let Ok(cordon_entry::Entry::Change(entry)) = cordon_entry::decode(bytes)
                && entry.change == change
            {
                targets.insert(entry.target);
            }
            Ok(())
        })
        .unwrap();
    targets
}

#[test]
fn a_backup_taken_under_changes_restores_every_customer_the_directory_and_the_ledger_root() {
    let scratch = tempfile::tempdir().unwrap();
    let (data, admin) = directory(scratch.path());
    let data_text = data.to_str().unwrap().to_string();
    let agent = run(&["token", "issue", "--data", &data_text, "--agent", "agt-1"]).1.trim().to_string();
    let (server, address, log) = start_server(&data_text);
    // Only the administrator's role identity takes backups: not an agent, not an analyst.
    let analyst = run(&["token", "issue", "--data", &data_text, "--role", "analyst"]).1.trim().to_string();
    for token in [&agent, &analyst] {
        let (status, problem) = http(&address, "POST", "/v1/backup", Some(token), None);
        assert_eq!(status, 403, "{problem}");
    }

    // Changes (tickets, new customers) from four writers, and reveals, go on while three
    // backups are taken.
    const WRITERS: usize = 4;
    let stop = Arc::new(AtomicBool::new(false));
    let made = Arc::new(AtomicU64::new(0));
    let mut load = Vec::new();
    for writer in 0..WRITERS {
        let (stop, made, address, admin) = (Arc::clone(&stop), Arc::clone(&made), address.clone(), admin.clone());
        load.push(std::thread::spawn(move || {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let ticket = json!({"requester": format!("cus-{}", n % CUSTOMERS), "category": "account_recovery", "assignee": "agt-2"});
                let (status, body) =
                    http(&address, "PUT", &format!("/v1/tickets/bt-{writer}-{n}"), Some(&admin), Some(&ticket));
                assert_eq!(status, 200, "{body}");
                let mut fields = customer(CUSTOMERS + writer * 10_000 + n);
                fields.as_object_mut().unwrap().remove("id");
                let (status, body) = http(
                    &address,
                    "PUT",
                    &format!("/v1/customers/new-{writer}-{n}"),
                    Some(&admin),
                    Some(&json!({"fields": fields})),
                );
                assert_eq!(status, 200, "{body}");
                made.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
            n
        }));
    }
    let revealing = {
        let (stop, address, agent) = (Arc::clone(&stop), address.clone(), agent.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let (status, body) = http(
                    &address,
                    "POST",
                    "/v1/customers/cus-1/reveal",
                    Some(&agent),
                    Some(&json!({"ticket": "t-1", "fields": ["email"], "reason": "caller verified"})),
                );
                assert_eq!(status, 200, "{body}");
            }
        })
    };
    let mut archives = Vec::new();
    for backup in 0..3 {
        let before = made.load(Ordering::Relaxed);
        while made.load(Ordering::Relaxed) < before + 15 {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let archive = scratch.path().join(format!("backup-{backup}.tar"));
        let (ok, stdout, stderr) = run(&["backup", "--data", &data_text, "--out", archive.to_str().unwrap()]);
        assert!(ok, "{stdout}{stderr}");
        assert!(stderr.contains("is served by") && stdout.contains("backup written to"), "{stdout}{stderr}");
        archives.push(archive);
    }
    let before_stop = made.load(Ordering::Relaxed);
    while made.load(Ordering::Relaxed) < before_stop + 10 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    let rounds: Vec<usize> = load.into_iter().map(|writer| writer.join().unwrap()).collect();
    revealing.join().unwrap();
    stop_server(server);
    assert!(log.lock().unwrap().contains("route=/v1/backup status=200"), "the server answered the backups");
    assert!(!data.join("backup-staging").exists(), "the store's staged copies are removed once sent");

    let kek = kek_file(&data);
    let original_store = cordon_store::Store::open(&data.join("cordon.sqlite")).unwrap();
    for (backup, archive) in archives.iter().enumerate() {
        let taken = manifest(archive);
        assert!(taken.store_at_ledger_size <= taken.ledger_size, "{taken:?}");
        // The original log extends the backup's checkpoint: the same entries, the same root.
        let original =
            cordon_ledger::verify_log(&data.join("ledger"), &verifier(&data), Some(&taken.checkpoint)).unwrap();
        assert_eq!(original.consistent_with, Some(taken.ledger_size));

        let restored = scratch.path().join(format!("restored-{backup}"));
        let (ok, stdout, stderr) = run(&[
            "restore",
            "--from",
            archive.to_str().unwrap(),
            "--data",
            restored.to_str().unwrap(),
            "--kek-file",
            kek.to_str().unwrap(),
        ]);
        assert!(ok, "{stdout}{stderr}");
        let summary =
            cordon_ledger::verify_log(&restored.join("ledger"), &verifier(&data), Some(&taken.checkpoint)).unwrap();
        assert_eq!(
            summary.consistent_with,
            Some(taken.ledger_size),
            "the restored log extends the backup's checkpoint"
        );
        assert_eq!(summary.size, taken.ledger_size + 1, "and records the restore, nothing else");
        assert!(stdout.contains(&format!("ledger {} entries", summary.size)), "{stdout}");

        // The store and the ledger agree change for change: every ticket and customer the
        // restored ledger says was put is in the restored store, and nothing else is.
        let restored_store = cordon_store::Store::open(&restored.join("cordon.sqlite")).unwrap();
        let tickets_recorded = changed(&restored, "ticket.put", taken.ledger_size);
        let customers_recorded = changed(&restored, "customer.put", taken.ledger_size);
        let in_backup = tickets_recorded.iter().filter(|id| id.starts_with("bt-")).count();
        let all: usize = rounds.iter().sum();
        assert!(in_backup >= 15 * (backup + 1) && in_backup < all, "backup {backup}: {in_backup} of {all} changes");
        for (writer, made) in rounds.iter().enumerate() {
            for n in 0..*made {
                let ticket = format!("bt-{writer}-{n}");
                assert_eq!(
                    restored_store.ticket(&ticket).unwrap().is_some(),
                    tickets_recorded.contains(&ticket),
                    "backup {backup}, ticket {ticket}: in the restored store exactly when its entry is in the restored ledger"
                );
                let new_customer = format!("new-{writer}-{n}");
                assert_eq!(
                    restored_store.customer(&new_customer).unwrap().is_some(),
                    customers_recorded.contains(&new_customer),
                    "backup {backup}, customer {new_customer}: in the restored store exactly when its entry is in the restored ledger"
                );
            }
        }
        if backup > 0 {
            continue;
        }
        // Every customer in the restored store is the original's, byte for byte (sealed).
        let mut ids: Vec<String> = (0..CUSTOMERS).map(|index| format!("cus-{index}")).collect();
        ids.extend(customers_recorded.iter().cloned());
        for id in &ids {
            let restored_row = restored_store.customer(id).unwrap().unwrap_or_else(|| panic!("{id} restored"));
            assert_eq!(Some(restored_row), original_store.customer(id).unwrap(), "{id}");
        }
        assert_eq!(restored_store.customer_count().unwrap(), ids.len() as u64);
        // The directory: each agent as the original has it, status included.
        for n in 1..=3 {
            let id = format!("agt-{n}");
            assert_eq!(restored_store.agent(&id).unwrap(), original_store.agent(&id).unwrap(), "{id}");
        }
        assert_eq!(restored_store.agent_count().unwrap(), 3);
        drop(restored_store);
    }
    drop(original_store);

    // The restored directory serves: the original's agent token (the token key came back),
    // a search (the blind-index key), a reveal (the KEK and the data keys).
    let restored_text = scratch.path().join("restored-0").to_str().unwrap().to_string();
    let (server, address, _) = start_server(&restored_text);
    let (status, hits) = http(
        &address,
        "POST",
        "/v1/search",
        Some(&agent),
        Some(&json!({"by": "email", "value": "quernsteig.1@backup-test.example"})),
    );
    assert_eq!((status, hits["matches"][0]["customer"].as_str()), (200, Some("cus-1")), "{hits}");
    let (status, revealed) = http(
        &address,
        "POST",
        "/v1/customers/cus-1/reveal",
        Some(&agent),
        Some(&json!({"ticket": "t-1", "fields": ["full_name", "phone"], "reason": "caller verified"})),
    );
    assert_eq!(status, 200, "{revealed}");
    assert_eq!(revealed["values"]["full_name"].as_str(), Some("Backupwalda Quernsteig1"));
    assert_eq!(revealed["values"]["phone"].as_str(), Some("+44 20 7946 1001"));
    stop_server(server);
}

/// The bytes a key file may show up as: its text, and the 32 bytes it encodes.
fn key_forms(text: &str) -> Vec<Vec<u8>> {
    let text = text.trim();
    let mut forms = vec![text.as_bytes().to_vec()];
    if text.len() == 64 && text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        forms.push((0..32).map(|at| u8::from_str_radix(&text[2 * at..2 * at + 2], 16).unwrap()).collect());
    }
    // The ledger's signing key: `PRIVATE+KEY+<name>+<id>+<base64>`; its base64 part too,
    // whole: base64 has `+` of its own, and the text after its last one (a few characters)
    // was found by chance in the backup's random bytes.
    if let Some(encoded) = text.splitn(5, '+').nth(4).filter(|_| text.starts_with("PRIVATE+KEY+")) {
        forms.push(encoded.as_bytes().to_vec());
    }
    forms
}

/// The files of an archive cordon wrote, in order.
fn entries(archive: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut at = 0;
    while archive[at..at + 512].iter().any(|byte| *byte != 0) {
        let header = &archive[at..at + 512];
        let name_length = header[..100].iter().position(|byte| *byte == 0).unwrap_or(100);
        let name = String::from_utf8(header[..name_length].to_vec()).unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&header[124..135]).unwrap(), 8).unwrap();
        files.push((name, archive[at + 512..at + 512 + size].to_vec()));
        at += 512 + size.div_ceil(512) * 512;
    }
    files
}

/// The archive again with each file's contents as `change` says, and the manifest's entry
/// for each changed file made to match (as a forger who knows the format would).
fn retar(archive: &[u8], change: impl Fn(&str, &[u8]) -> Vec<u8>) -> Vec<u8> {
    let mut files: Vec<(String, Vec<u8>)> = entries(archive)
        .into_iter()
        .map(|(name, contents)| (change(&name, &contents), name))
        .map(|(c, n)| (n, c))
        .collect();
    let sums: Vec<(String, usize, String)> = files
        .iter()
        .map(|(name, contents)| {
            let digest = std::process::Command::new("sha256sum")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .and_then(|mut child| {
                    use std::io::Write as _;
                    child.stdin.take().unwrap().write_all(contents)?;
                    child.wait_with_output()
                })
                .unwrap();
            let hex = String::from_utf8(digest.stdout).unwrap().split_whitespace().next().unwrap().to_string();
            (name.clone(), contents.len(), hex)
        })
        .collect();
    for (name, contents) in files.iter_mut() {
        if name == "manifest.json" {
            let mut manifest: Value = serde_json::from_slice(contents).unwrap();
            for listed in manifest["files"].as_array_mut().unwrap() {
                let (_, size, hex) = sums.iter().find(|(sum_name, _, _)| listed["name"] == sum_name.as_str()).unwrap();
                listed["size"] = json!(size);
                listed["sha256"] = json!(hex);
            }
            *contents = serde_json::to_vec_pretty(&manifest).unwrap();
        }
    }
    let mut out = Vec::new();
    for (name, contents) in files {
        out.extend_from_slice(&cordon_ledger::tar_header(&name, contents.len() as u64));
        out.extend_from_slice(&contents);
        out.extend(std::iter::repeat_n(0u8, (512 - contents.len() % 512) % 512));
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// A restore that must be refused: what is wrong, the archive, the KEK given, the target, and
/// words the refusal must say.
type RestoreCase<'a> = (&'a str, Vec<u8>, Option<&'a Path>, &'a Path, &'a str);

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|window| window == needle)
}

#[test]
fn a_backup_holds_no_plaintext_value_and_no_key_in_the_clear_and_a_damaged_one_is_refused() {
    let scratch = tempfile::tempdir().unwrap();
    let (data, _) = directory(scratch.path());
    let archive = scratch.path().join("backup.tar");
    // The server is not running: the command opens the directory itself.
    let (ok, stdout, stderr) = run(&["backup", "--data", data.to_str().unwrap(), "--out", archive.to_str().unwrap()]);
    assert!(ok, "{stdout}{stderr}");
    let bytes = std::fs::read(&archive).unwrap();

    let mut leaks = Vec::new();
    for index in 0..CUSTOMERS {
        for value in plaintext(index) {
            if contains(&bytes, value.as_bytes()) {
                leaks.push(format!("customer {index}: `{value}`"));
            }
        }
    }
    let mut keys: Vec<PathBuf> =
        std::fs::read_dir(data.join("keys")).unwrap().map(|item| item.unwrap().path()).collect();
    keys.push(data.join("ledger/private/signing-key"));
    assert!(keys.len() >= 5, "{keys:?}");
    for key in &keys {
        for form in key_forms(&std::fs::read_to_string(key).unwrap()) {
            if contains(&bytes, &form) {
                leaks.push(format!("key `{}`", key.display()));
            }
        }
    }
    assert!(leaks.is_empty(), "in the backup:\n{}", leaks.join("\n"));
    // The scan can find what it looks for: the ledger's public verifier key is in it.
    let verifier_text = std::fs::read_to_string(data.join("ledger/private/verifier-key")).unwrap();
    assert!(contains(&bytes, verifier_text.trim().as_bytes()));

    // Damaged, mismatched or misdirected restores: refused in words, nothing left behind.
    let kek = kek_file(&data);
    let other = tempfile::tempdir().unwrap();
    let (other_data, _) = directory(other.path());
    let wrong_kek = kek_file(&other_data);
    let offset_of = |needle: &[u8]| bytes.windows(needle.len()).position(|window| window == needle).unwrap();
    let flipped = |at: usize| {
        let mut copy = bytes.clone();
        copy[at] ^= 0x01;
        copy
    };
    let database_byte = offset_of(b"SQLite format 3") + 4096;
    let manifest_byte = offset_of(b"\"store_at_ledger_size\"") + 2;
    let sealed_byte = offset_of(b"keys/token-signing") + 30;
    let tile_byte = offset_of(b"ledger/tile/0/000.p/") + 512 + 7;
    let mut appended = bytes.clone();
    appended.extend_from_slice(&[0u8; 1024]);
    let mut traversal = Vec::new();
    traversal.extend_from_slice(&cordon_ledger::tar_header("../escaped", 3));
    traversal.extend_from_slice(b"abc");
    traversal.extend_from_slice(&[0u8; 509]);
    traversal.extend_from_slice(&bytes);
    // An insider with a stolen backup (no KEK) swaps in a database of their own and makes
    // the manifest list it: the seal, which needs the KEK, gives it away.
    let forged = retar(&bytes, |name, contents| match name {
        "cordon.sqlite" => {
            let mut changed = contents.to_vec();
            changed[5000] ^= 0x01;
            changed
        }
        _ => contents.to_vec(),
    });
    let other_archive = other.path().join("other.tar");
    assert!(run(&["backup", "--data", other_data.to_str().unwrap(), "--out", other_archive.to_str().unwrap()]).0);
    let other_bytes = std::fs::read(&other_archive).unwrap();
    let other_seal = retar(&bytes, |name, contents| match name {
        "manifest.seal" => entries(&other_bytes).into_iter().find(|(name, _)| name == "manifest.seal").unwrap().1,
        _ => contents.to_vec(),
    });
    let not_empty = scratch.path().join("not-empty");
    std::fs::create_dir(&not_empty).unwrap();
    std::fs::write(not_empty.join("something"), b"x").unwrap();

    let target = scratch.path().join("restored");
    let cases: Vec<RestoreCase<'_>> = vec![
        (
            "a byte of the database",
            flipped(database_byte),
            Some(&kek),
            &target,
            "`cordon.sqlite` is not what its manifest lists",
        ),
        ("a byte of the manifest", flipped(manifest_byte), Some(&kek), &target, "manifest"),
        ("a byte of the sealed keys", flipped(sealed_byte), Some(&kek), &target, "keys.sealed"),
        ("a byte of a tile", flipped(tile_byte), Some(&kek), &target, "tiles are not those its manifest lists"),
        ("a store swapped in, the manifest made to match", forged, Some(&kek), &target, "seal covers"),
        ("the seal of another backup", other_seal, Some(&kek), &target, "seal does not open"),
        ("cut short", bytes[..bytes.len() / 2].to_vec(), Some(&kek), &target, "cut short"),
        ("something after its end", appended, Some(&kek), &target, "after its end"),
        ("a path out of the directory", traversal, Some(&kek), &target, "which a backup never does"),
        ("no key-encryption key", bytes.clone(), None, &target, "give it with --kek-file"),
        ("another directory's key", bytes.clone(), Some(&wrong_kek), &target, "does not open"),
        ("a folder in use", bytes.clone(), Some(&kek), &not_empty, "is not empty"),
    ];
    for (case, archive_bytes, kek, target, words) in cases {
        let file = scratch.path().join("case.tar");
        std::fs::write(&file, &archive_bytes).unwrap();
        let mut arguments = vec!["restore", "--from", file.to_str().unwrap(), "--data", target.to_str().unwrap()]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>();
        if let Some(kek) = kek {
            arguments.extend(["--kek-file".to_string(), kek.to_str().unwrap().to_string()]);
        }
        let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
        let (ok, stdout, stderr) = run(&arguments);
        assert!(!ok, "{case}: restored\n{stdout}");
        assert!(stderr.contains(words), "{case}: `{stderr}` should say `{words}`");
        let left: Vec<String> = std::fs::read_dir(scratch.path())
            .unwrap()
            .map(|item| item.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.contains("restor"))
            .collect();
        assert!(left.is_empty(), "{case}: left behind {left:?}");
        assert_eq!(std::fs::read_dir(&not_empty).unwrap().count(), 1, "{case}: the folder in use is untouched");
    }
    // The undamaged backup restores with the right key.
    let (ok, stdout, stderr) = run(&[
        "restore",
        "--from",
        archive.to_str().unwrap(),
        "--data",
        target.to_str().unwrap(),
        "--kek-file",
        kek.to_str().unwrap(),
    ]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains(&format!("customers {CUSTOMERS}, agents 3")), "{stdout}");
}
