//! A request that cannot be audited durably reveals nothing: with an audit log that refuses
//! every entry, or one that starts failing part-way, data routes answer 503
//! `audit-unavailable` and no customer value appears in any response.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{Method, StatusCode};
use cordon_gateway::{AuditError, AuditFuture, AuditLog};
use serde_json::json;

use crate::support::{Harness, call, customer_fields, problem_type};

/// Accepts `healthy_appends` entries, then refuses every one, as a full or failed disk would.
struct FailingAudit {
    healthy_appends: u64,
    appended: AtomicU64,
}

impl AuditLog for FailingAudit {
    fn append(&self, entries: Vec<Vec<u8>>) -> Result<AuditFuture, AuditError> {
        let count = self.appended.fetch_add(entries.len() as u64, Ordering::SeqCst);
        let healthy = count < self.healthy_appends;
        Ok(Box::pin(async move {
            if healthy { Ok(count) } else { Err(AuditError("injected write failure: no space left on device".into())) }
        }))
    }

    fn checkpoint(&self) -> Result<String, AuditError> {
        Err(AuditError("this test log publishes no checkpoint".into()))
    }

    fn receipt(&self, _index: u64) -> Result<String, AuditError> {
        Err(AuditError("injected failure".into()))
    }
}

const NAME: &str = "Theodora Quillfeather";
const EMAIL: &str = "theodora.quillfeather@example.org";

#[tokio::test]
async fn no_data_leaves_when_the_audit_log_cannot_record() {
    let harness = Harness::new();
    harness.put_customer("cus-9", customer_fields(NAME, EMAIL, 900.0)).await;
    harness.put_agent("agt-1", json!({"name": "A", "team": "l1-chat", "site": "us-sf", "employer": "staff"})).await;
    harness
        .admin(
            Method::PUT,
            "/v1/tickets/t-9",
            json!({"requester": "cus-9", "category": "general_inquiry", "assignee": "agt-1"}),
        )
        .await;
    let token = harness.agent_token("agt-1");

    // The same request succeeds with the real ledger: the control.
    let reveal = json!({"ticket": "t-9", "fields": ["full_name", "email"], "reason": "caller asked"});
    let (status, body) =
        harness.call(Method::POST, "/v1/customers/cus-9/reveal", Some(&token), Some(reveal.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.to_string().contains(EMAIL));

    let requests = [
        (Method::POST, "/v1/customers/cus-9/reveal", Some(reveal.to_string())),
        (Method::GET, "/v1/customers/cus-9?ticket=t-9", None),
        (
            Method::POST,
            "/v1/customers/cus-9/verify",
            Some(json!({"ticket": "t-9", "field": "email", "value": EMAIL}).to_string()),
        ),
        (Method::POST, "/v1/search", Some(json!({"by": "email", "value": EMAIL}).to_string())),
    ];
    for healthy_appends in [0, 1] {
        let state = harness.with_audit(Arc::new(FailingAudit { healthy_appends, appended: AtomicU64::new(0) }));
        // With one healthy append, the first request goes through and the rest must fail.
        let mut failures = 0;
        for (method, path, body) in requests.clone() {
            let (status, answer) = call(&state, method, path, Some(&token), body).await;
            let text = answer.to_string();
            if status == StatusCode::SERVICE_UNAVAILABLE {
                failures += 1;
                assert_eq!(problem_type(&answer), "urn:cordon:problem:audit-unavailable", "{path}: {answer}");
                for value in [NAME, EMAIL, "Quillfeather", "+353", "IE29AIBK"] {
                    assert!(!text.contains(value), "{path} leaked `{value}` while the audit log was down: {text}");
                }
            } else {
                assert_eq!(status, StatusCode::OK, "{path}: {answer}");
            }
        }
        assert_eq!(failures, requests.len() - healthy_appends as usize, "every request past the healthy ones fails");
    }
}

/// Refuses every other append at once (as the ledger refuses an oversized entry, or one
/// after it has failed); accepted appends get consecutive indexes.
struct RefusingEveryOther {
    calls: AtomicU64,
    accepted: AtomicU64,
}

impl AuditLog for RefusingEveryOther {
    fn append(&self, entries: Vec<Vec<u8>>) -> Result<AuditFuture, AuditError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) % 2 == 1 {
            return Err(AuditError("injected refusal".into()));
        }
        let first = self.accepted.fetch_add(entries.len() as u64, Ordering::SeqCst);
        Ok(Box::pin(async move { Ok(first) }))
    }

    fn checkpoint(&self) -> Result<String, AuditError> {
        Err(AuditError("this test log publishes no checkpoint".into()))
    }

    fn receipt(&self, _index: u64) -> Result<String, AuditError> {
        Err(AuditError("injected failure".into()))
    }

    fn size(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// Regression: the sequencer counted an index for an append the log refused, so every
/// later request disagreed with the ledger about its index and failed with 500 until a
/// restart. A refused append must use no index.
#[tokio::test]
async fn a_refused_append_uses_no_index() {
    let harness = Harness::new();
    harness.put_assigned_ticket().await;
    let token = harness.agent_token("agt-1");
    let state =
        harness.with_audit(Arc::new(RefusingEveryOther { calls: AtomicU64::new(0), accepted: AtomicU64::new(0) }));
    let mut answered = Vec::new();
    for _ in 0..6 {
        let (status, answer) = call(&state, Method::GET, "/v1/customers/cus-1?ticket=t-1", Some(&token), None).await;
        match status {
            StatusCode::OK => answered.push(answer["ledger_index"].as_u64().unwrap()),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(problem_type(&answer), "urn:cordon:problem:audit-unavailable", "{answer}");
            }
            other => panic!("{other}: {answer}"),
        }
    }
    assert_eq!(answered, vec![0, 1, 2], "accepted appends are answered with consecutive indexes");
}
