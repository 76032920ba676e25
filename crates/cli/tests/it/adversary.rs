//! The adversary suite: every way an insider with a valid token once broke the gate,
//! replayed against the real binary over HTTP; then the server is stopped and started
//! again on the same data directory, which must open and serve, replay detection without
//! an unreadable entry, and verify. The same findings are tested one by one, with their
//! causes, in `crates/server/tests/it/adversary.rs`.

use std::path::Path;

use serde_json::{Value, json};

use crate::support::{http, run, start_server, stop_server};

/// Percent-encodes every byte outside unreserved characters.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

fn problem(answer: &Value) -> &str {
    answer["type"].as_str().unwrap_or_default().trim_start_matches("urn:cordon:problem:")
}

#[test]
fn an_insider_attacking_the_gate_leaves_it_standing() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let scratch = tempfile::tempdir().unwrap();
    let data_dir = scratch.path().join("data");
    let data = data_dir.to_str().unwrap();
    let (ok, admin, stderr) = run(&["init", data]);
    assert!(ok, "{stderr}");
    let admin = admin.trim().to_string();
    for kind in ["agents", "customers", "tickets"] {
        let file = examples.join(format!("{kind}.jsonl"));
        assert!(run(&["import", kind, file.to_str().unwrap(), "--data", data]).0, "{kind}");
    }
    let token = |arguments: &[&str]| {
        let mut all = vec!["token", "issue", "--data", data];
        all.extend_from_slice(arguments);
        let (ok, token, stderr) = run(&all);
        assert!(ok, "{arguments:?}: {stderr}");
        token.trim().to_string()
    };
    let sam = token(&["--agent", "agt-sam"]);
    let ravi = token(&["--agent", "agt-ravi"]);
    let mira = token(&["--agent", "ana-mira"]);
    let service = token(&["--role", "service"]);

    let (server, address, _) = start_server(data);
    let call = |method: &str, path: &str, token: Option<&str>, body: Option<Value>| {
        http(&address, method, path, token, body.as_ref())
    };

    // 1. Ids JSON must escape, from an active and from a suspended agent: recorded denials.
    assert_eq!(call("POST", "/v1/agents/agt-ravi/suspend", Some(&admin), Some(json!({}))).0, 200);
    for id in ["a\"b", "a\\b", "a\u{0}b", "\u{1}\u{1f}"] {
        for who in [&sam, &ravi] {
            let (status, answer) = call("GET", &format!("/v1/customers/{}", encode(id)), Some(who), None);
            assert!(matches!(status, 403 | 404), "{id:?}: {status} {answer}");
            assert!(answer["ledger_index"].is_u64(), "{id:?}: {answer}");
        }
    }
    // 2. Oversized ids and tickets: refused before the ledger, and nothing breaks after.
    let long = encode(&"\u{1}".repeat(12_000));
    let (status, _) = call("GET", &format!("/v1/customers/{long}"), Some(&sam), None);
    assert!(matches!(status, 400 | 414), "{status}");
    let body = json!({"ticket": "y".repeat(129), "fields": ["phone"], "reason": "r"});
    assert_eq!(call("POST", "/v1/customers/cus-1001/reveal", Some(&sam), Some(body)).0, 400);
    let (status, card) = call("GET", "/v1/customers/cus-1001?ticket=tkt-5001", Some(&sam), None);
    assert_eq!(status, 200, "{card}");
    // 3. Verify is no oracle: three wrong statements, then refusals, even of the truth.
    let mut statuses = Vec::new();
    for guess in ["0001", "0002", "0003", "0004", "0958"] {
        let body = json!({"ticket": "tkt-5001", "field": "phone", "value": guess});
        let (status, answer) = call("POST", "/v1/customers/cus-1001/verify", Some(&sam), Some(body));
        statuses.push((status, problem(&answer).to_string()));
    }
    assert_eq!(statuses[..3], [(200, String::new()), (200, String::new()), (200, String::new())], "{statuses:?}");
    assert!(statuses[3..].iter().all(|(status, _)| *status == 403), "{statuses:?}");
    assert_eq!(statuses[3].1, "verify-limit", "{statuses:?}");
    // 4. Analyst powers follow the directory: a suspended analyst works no alerts.
    assert_eq!(call("GET", "/v1/alerts", Some(&mira), None).0, 200);
    assert_eq!(call("POST", "/v1/agents/ana-mira/suspend", Some(&admin), Some(json!({}))).0, 200);
    let (status, answer) = call("GET", "/v1/alerts", Some(&mira), None);
    assert_eq!((status, problem(&answer)), (403, "access-denied"), "{answer}");
    // 5. A missing employer grants nothing.
    let vendor = json!({"name": "V", "team": "kyc-review", "site": "vendor-bpo-1"});
    assert_eq!(call("PUT", "/v1/agents/agt-v", Some(&admin), Some(vendor)).0, 422);
    // 6. Refusals of role identities on customer data are recorded.
    let body = json!({"ticket": "tkt-5001", "fields": ["phone"], "reason": "r"});
    let (status, answer) = call("POST", "/v1/customers/cus-1001/reveal", Some(&service), Some(body));
    assert_eq!((status, problem(&answer)), (403, "wrong-role"), "{answer}");
    assert!(answer["ledger_index"].is_u64(), "{answer}");
    // 9. Smaller: a revoked token authenticates nobody.
    let (status, _) = http(&address, "GET", "/healthz", None, None);
    assert_eq!(status, 200);
    let (status, answer) = call("POST", "/v1/tokens/revoke", Some(&admin), Some(json!({"token": service})));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(call("GET", "/metrics", Some(&service), None).0, 401);
    stop_server(server);

    // The same data directory opens, replays and serves; the ledger verifies.
    let (server, address, _) = start_server(data);
    let (status, card) = http(&address, "GET", "/v1/customers/cus-1001?ticket=tkt-5001", Some(&sam), None);
    assert_eq!(status, 200, "{card}");
    let (status, answer) = http(&address, "GET", "/metrics", Some(&service), None);
    assert_eq!(status, 401, "the revocation holds after a restart: {answer}");
    stop_server(server);
    let (ok, stdout, stderr) = run(&["alert", "replay", "--data", data]);
    assert!(ok, "{stdout}{stderr}");
    let ledger = data_dir.join("ledger");
    let key = data_dir.join("ledger/private/verifier-key");
    let (ok, stdout, stderr) = run(&["log", "verify", ledger.to_str().unwrap(), "--vkey", key.to_str().unwrap()]);
    assert!(ok, "{stdout}{stderr}");
}
