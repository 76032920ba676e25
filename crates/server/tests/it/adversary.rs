//! An insider with a valid token attacking the gate instead of walking through it. Each test
//! replays one way the gate once gave way, then restarts the server on the same data
//! directory: it must open, serve, and keep what it recorded.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::{Harness, problem_type};

/// Percent-encodes every byte outside unreserved characters, as a hostile client would.
fn encode_path(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// Regression: detection's replay read entries with borrowed strings, which serde cannot
/// fill from a JSON string with an escape. One request (from any agent, even a suspended
/// one) for a customer id holding a quote, a backslash, NUL or a control character was
/// answered 404 and recorded, and every later start of `cordon serve` failed on that entry.
#[tokio::test]
async fn customer_ids_json_must_escape_do_not_stop_the_next_start() {
    let harness = Harness::new();
    harness.put_assigned_ticket().await;
    harness.put_agent("agt-2", json!({"name": "B", "team": "l1-chat", "site": "us-sf"})).await;
    let agent = harness.agent_token("agt-1");
    let suspended = harness.agent_token("agt-2");
    harness.admin(Method::POST, "/v1/agents/agt-2/suspend", json!({})).await;
    let hostile = ["a\"b", "a\\b", "a\u{0}b", "\u{1}\u{1f}", "line\nbreak", "\u{2028}", "é🙂", "{\"kind\":\"alert\"}"];
    let mut recorded = 0;
    for id in hostile {
        for token in [&agent, &suspended] {
            let path = format!("/v1/customers/{}", encode_path(id));
            let (status, body) = harness.call(Method::GET, &path, Some(token), None).await;
            assert!(matches!(status, StatusCode::NOT_FOUND | StatusCode::FORBIDDEN), "{id:?}: {status} {body}");
            assert!(body.get("ledger_index").is_some(), "{id:?}: the refusal is recorded: {body}");
            recorded += 1;
        }
    }
    let harness = harness.reopen();
    let replayed = harness.state.gateway.replay_detection().unwrap();
    assert!(replayed.unreadable.is_empty(), "{:?}", replayed.unreadable);
    assert!(replayed.observations >= recorded, "{} observations, {recorded} hostile requests", replayed.observations);
    let (status, body) = harness.call(Method::GET, "/v1/customers/cus-1?ticket=t-1", Some(&agent), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Regression: an id or ticket too large for a ledger entry was refused by the ledger after
/// the sequencer had counted its index, so every later audited request, from anyone,
/// failed with 500 until restart (while its entry was still written).
#[tokio::test]
async fn oversized_ids_are_refused_before_the_ledger_and_break_nothing_after() {
    let harness = Harness::new();
    harness.put_assigned_ticket().await;
    let agent = harness.agent_token("agt-1");
    // Control characters take six bytes each in JSON: 12,000 of them overflow an entry.
    let long = encode_path(&"\u{1}".repeat(12_000));
    let medium = "y".repeat(129);
    let cases = [
        (Method::GET, format!("/v1/customers/{long}"), None),
        (Method::GET, format!("/v1/customers/{medium}"), None),
        (Method::GET, format!("/v1/customers/cus-1?ticket={long}"), None),
        (Method::GET, format!("/v1/customers/cus-1?ticket={medium}"), None),
        (
            Method::POST,
            "/v1/customers/cus-1/reveal".to_string(),
            Some(json!({"ticket": medium, "fields": ["email"], "reason": "r"})),
        ),
        (
            Method::POST,
            "/v1/customers/cus-1/verify".to_string(),
            Some(json!({"ticket": medium, "field": "email", "value": "nina@example.org"})),
        ),
        (Method::DELETE, format!("/v1/customers/{long}"), None),
    ];
    let mut last_index = 0;
    for (method, path, body) in cases {
        let token = if method == Method::DELETE { harness.admin.clone() } else { agent.clone() };
        let (status, answer) = harness.call(method.clone(), &path, Some(&token), body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {}: {answer}", &path[..path.len().min(60)]);
        assert_eq!(problem_type(&answer), "urn:cordon:problem:bad-request");
        // The next request from anyone is answered and recorded at the next index.
        let (status, card) = harness.call(Method::GET, "/v1/customers/cus-1?ticket=t-1", Some(&agent), None).await;
        assert_eq!(status, StatusCode::OK, "after {method} {}: {card}", &path[..path.len().min(60)]);
        let index = card["ledger_index"].as_u64().unwrap();
        assert!(index > last_index, "{index} after {last_index}");
        last_index = index;
    }
    let harness = harness.reopen();
    let (status, card) = harness.call(Method::GET, "/v1/customers/cus-1?ticket=t-1", Some(&agent), None).await;
    assert_eq!(status, StatusCode::OK, "{card}");
    assert_eq!(card["ledger_index"].as_u64(), Some(last_index + 1));
}
