//! The gateway as a new user runs it: `cordon init`, `import`, `token issue` and `serve`,
//! driven over real HTTP. Then every byte of the data directory and of the server's log is
//! searched for the customers' plaintext values, and none may be there.

use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::support::{http, run, start_server};

/// Distinctive values that must never reach the disk or the log in plaintext.
const SECRETS: &[&str] = &[
    "Wilhelmina Zorgenfrei",
    "Zorgenfrei",
    "wilhelmina.zorgenfrei@example.org",
    "+49 30 901820 77",
    "493090182077",
    "T22000129",
    "DE89370400440532013000",
    "Quixotic Allee 42",
    "bc1q9zorgenfrei0wallet0address0test0xyz",
    "93.184.216.34",
    "Bartholomew Okonkwo-Hale",
    "bartholomew@example.net",
    "SSN-555-44-3210",
];

fn customers_file(dir: &Path) -> std::path::PathBuf {
    let lines = [
        json!({"id": "cus-1", "full_name": "Wilhelmina Zorgenfrei", "email": "wilhelmina.zorgenfrei@example.org", "phone": "+49 30 901820 77",
               "government_id_number": "T22000129", "bank_account": "DE89370400440532013000", "balance_usd": 12000,
               "postal_address": {"street": "Quixotic Allee 42", "city": "Berlin", "country": "DE"},
               "wallet_addresses": ["bc1q9zorgenfrei0wallet0address0test0xyz"], "last_login_ip": "93.184.216.34",
               "two_factor_method": "sms", "date_of_birth": "1979-02-14"})
        .to_string(),
        "{not json".to_string(),
        json!({"id": "cus-2", "full_name": "Bartholomew Okonkwo-Hale", "email": "bartholomew@example.net", "phone": "+1 312 555 0100",
               "tax_id": "SSN-555-44-3210", "balance_usd": 40})
        .to_string(),
        json!({"id": "cus-3", "full_name": "X", "favourite_colour": "teal"}).to_string(),
        json!({"id": "cus-4", "email": "no-at-sign"}).to_string(),
        json!({"full_name": "No Id"}).to_string(),
    ];
    let path = dir.join("customers.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn all_files(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for item in std::fs::read_dir(dir).unwrap() {
        let path = item.unwrap().path();
        if path.is_dir() { all_files(&path, files) } else { files.push(path) }
    }
}

#[test]
fn no_plaintext_reaches_the_disk_or_the_log() {
    let scratch = tempfile::tempdir().unwrap();
    let data_dir = scratch.path().join("data");
    let data = data_dir.to_str().unwrap();
    let (ok, admin, stderr) = run(&["init", data]);
    assert!(ok, "{stderr}");
    let admin = admin.trim().to_string();

    // Import: bad lines are named by number and skipped; good ones are stored.
    let customers = customers_file(scratch.path());
    let (ok, stdout, stderr) = run(&["import", "customers", customers.to_str().unwrap(), "--data", data]);
    assert!(!ok, "an import with bad lines exits non-zero");
    assert!(stdout.contains("imported 2 customers"), "{stdout}");
    for fragment in [
        "line 2:",
        "line 4: customer `cus-3`: unknown field `favourite_colour`",
        "line 5: field `email` of customer `cus-4` is not an email address",
        "line 6: `id` is missing",
    ] {
        assert!(stderr.contains(fragment), "`{stderr}` should contain `{fragment}`");
    }
    assert!(stderr.contains("4 lines") && stderr.contains("nothing from them was stored"), "{stderr}");
    // Running it again is safe: same records, replaced by id.
    let (_, stdout, _) = run(&["import", "customers", customers.to_str().unwrap(), "--data", data]);
    assert!(stdout.contains("imported 2 customers"), "{stdout}");

    let agents = scratch.path().join("agents.jsonl");
    std::fs::write(
        &agents,
        "{\"id\": \"agt-1\", \"name\": \"Sam\", \"team\": \"l1-chat\", \"site\": \"us-sf\", \"employer\": \"staff\"}\n",
    )
    .unwrap();
    assert!(run(&["import", "agents", agents.to_str().unwrap(), "--data", data]).0);
    let tickets = scratch.path().join("tickets.jsonl");
    std::fs::write(
        &tickets,
        "{\"id\": \"t-1\", \"requester\": \"cus-1\", \"category\": \"account_recovery\", \"assignee\": \"agt-1\"}\n",
    )
    .unwrap();
    assert!(run(&["import", "tickets", tickets.to_str().unwrap(), "--data", data]).0);

    let (ok, agent, stderr) = run(&["token", "issue", "--data", data, "--agent", "agt-1"]);
    assert!(ok, "{stderr}");
    let agent = agent.trim().to_string();
    let (child, address, log) = start_server(data);
    let service = run(&["token", "issue", "--data", data, "--role", "service"]).1.trim().to_string();

    // Traffic, allowed and denied, carrying customer values in requests.
    let (status, hits) = http(
        &address,
        "POST",
        "/v1/search",
        Some(&agent),
        Some(&json!({"by": "email", "value": "Wilhelmina.Zorgenfrei@example.org"})),
    );
    assert_eq!((status, hits["matches"][0]["masked_name"].as_str()), (200, Some("W*** Z***")), "{hits}");
    let (status, hits) =
        http(&address, "POST", "/v1/search", Some(&agent), Some(&json!({"by": "phone", "value": "+49 30 901820 77"})));
    assert_eq!(
        (status, hits["matches"].as_array().map(Vec::len)),
        (200, Some(1)),
        "the phone matches however it is written: {hits}"
    );
    let (status, _) = http(
        &address,
        "POST",
        "/v1/search",
        Some(&agent),
        Some(&json!({"by": "email", "value": "bartholomew@example.net"})),
    );
    assert_eq!(status, 200);
    let (status, card) = http(&address, "GET", "/v1/customers/cus-1?ticket=t-1", Some(&agent), None);
    assert_eq!(status, 200, "{card}");
    assert_eq!(card["fields"]["full_name"], "W*** Z***");
    let (status, revealed) = http(
        &address,
        "POST",
        "/v1/customers/cus-1/reveal",
        Some(&agent),
        Some(&json!({"ticket": "t-1", "fields": ["full_name", "phone"], "reason": "caller lost access"})),
    );
    assert_eq!(status, 200, "{revealed}");
    assert_eq!(
        revealed["values"]["full_name"], "Wilhelmina Zorgenfrei",
        "the reveal itself returns the value to the caller"
    );
    let (status, denied) = http(
        &address,
        "POST",
        "/v1/customers/cus-1/reveal",
        Some(&agent),
        Some(&json!({"ticket": "t-1", "fields": ["bank_account"], "reason": "curious"})),
    );
    assert_eq!(status, 403, "{denied}");
    let (status, verified) = http(
        &address,
        "POST",
        "/v1/customers/cus-1/verify",
        Some(&agent),
        Some(&json!({"ticket": "t-1", "field": "phone", "value": "+49 30 901820 77"})),
    );
    assert_eq!((status, verified["match"].as_bool()), (200, Some(true)), "{verified}");
    let (status, verified) = http(
        &address,
        "POST",
        "/v1/customers/cus-1/verify",
        Some(&agent),
        Some(&json!({"ticket": "t-1", "field": "phone", "value": "+49 30 000000 00"})),
    );
    assert_eq!((status, verified["match"].as_bool()), (200, Some(false)), "{verified}");
    let (status, history) = http(&address, "GET", "/v1/customers/cus-1/access-history", Some(&service), None);
    assert_eq!(status, 200);
    assert!(history["events"].as_array().unwrap().len() >= 5, "{history}");
    let index = revealed["ledger_index"].as_u64().unwrap();
    let (status, receipt) = http(&address, "GET", &format!("/v1/ledger/proof/{index}"), Some(&service), None);
    assert_eq!(status, 200);
    assert!(receipt.as_str().unwrap().starts_with("c2sp.org/tlog-proof@v1\nindex "));
    let (status, _) = http(
        &address,
        "POST",
        "/v1/customers/cus-2/reveal",
        Some(&admin),
        Some(&json!({"fields": ["tax_id"], "reason": "x"})),
    );
    assert_eq!(status, 403, "an admin role token is not an agent");

    // The analyst's commands reach the running server; one that still needs the directory to
    // itself is told why it cannot run.
    let (ok, _, stderr) = run(&["alert", "list", "--data", data_dir.to_str().unwrap()]);
    assert!(ok && stderr.contains("is served by"), "{stderr}");
    let agents = scratch.path().join("agents.jsonl");
    std::fs::write(&agents, "").unwrap();
    let (ok, _, stderr) = run(&["import", "agents", agents.to_str().unwrap(), "--data", data_dir.to_str().unwrap()]);
    assert!(!ok && stderr.contains("is in use: a running `cordon serve`"), "{stderr}");
    assert!(!stderr.contains("internal error"), "{stderr}");

    // A clean stop: SIGTERM, in-flight work finishes, the ledger publishes its last checkpoint.
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let mut child = child;
    assert!(child.wait().unwrap().success(), "the server exits cleanly on SIGTERM");
    let log = log.lock().unwrap().clone();
    assert!(log.contains("final checkpoint"), "{log}");
    assert!(log.contains("route=/v1/customers/{id}/reveal"), "requests are logged by route: {log}");

    // The audit ledger verifies after the run.
    let ledger = data_dir.join("ledger");
    let (ok, summary, stderr) = run(&[
        "log",
        "verify",
        ledger.to_str().unwrap(),
        "--vkey",
        ledger.join("private/verifier-key").to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    assert!(summary.starts_with("ok:"), "{summary}");

    // Now the scan: every byte of every file, and the whole log.
    let mut files = Vec::new();
    all_files(&data_dir, &mut files);
    assert!(files.len() > 10, "the scan covers the database, its WAL, keys, config and ledger: {files:?}");
    let mut leaks = Vec::new();
    for secret in SECRETS {
        for variant in [secret.to_string(), secret.to_lowercase()] {
            for file in &files {
                let bytes = std::fs::read(file).unwrap();
                if bytes.windows(variant.len()).any(|window| window == variant.as_bytes()) {
                    leaks.push(format!("`{variant}` in {}", file.display()));
                }
            }
            if log.contains(&variant) {
                leaks.push(format!("`{variant}` in the server log"));
            }
        }
    }
    assert!(leaks.is_empty(), "plaintext customer values found:\n{}", leaks.join("\n"));
}
