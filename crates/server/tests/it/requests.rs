//! Authentication, roles, limits and malformed input: each gets a 4xx problem that says what
//! is wrong. And every route the OpenAPI document lists exists.

use axum::http::{Method, StatusCode};
use cordon_gateway::TokenRole;
use serde_json::{Value, json};

use crate::support::{Harness, problem_type};

/// A customer `cus-1`, an agent `agt-1`, and ticket `t-1` from the one assigned to the other.
async fn with_assigned_ticket() -> Harness {
    let harness = Harness::new();
    harness.put_assigned_ticket().await;
    harness
}

#[tokio::test]
async fn refusals_name_the_problem() {
    let harness = with_assigned_ticket().await;
    let agent = harness.agent_token("agt-1");
    let service = harness.state.gateway.issue_role_token(TokenRole::Service).unwrap();
    let huge = json!({"ticket": "t-1", "fields": ["email"], "reason": "x".repeat(70_000)}).to_string();
    let too_many: Vec<String> = (0..15).map(|index| format!("field_{index}")).collect();

    // (what, method, path, token, body, status, problem code, detail fragment)
    type Case<'a> = (&'a str, Method, &'a str, Option<&'a str>, Option<String>, StatusCode, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            "no token",
            Method::GET,
            "/v1/customers/cus-1",
            None,
            None,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Bearer",
        ),
        (
            "garbage token",
            Method::GET,
            "/v1/customers/cus-1",
            Some("abc.def.ghi"),
            None,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "malformed",
        ),
        (
            "service token reveals",
            Method::POST,
            "/v1/customers/cus-1/reveal",
            Some(&service),
            Some(json!({"ticket": "t-1", "fields": ["email"], "reason": "r"}).to_string()),
            StatusCode::FORBIDDEN,
            "wrong-role",
            "agent",
        ),
        (
            "agent reads access history",
            Method::GET,
            "/v1/customers/cus-1/access-history",
            Some(&agent),
            None,
            StatusCode::FORBIDDEN,
            "wrong-role",
            "service",
        ),
        (
            "agent suspends an agent",
            Method::POST,
            "/v1/agents/agt-1/suspend",
            Some(&agent),
            None,
            StatusCode::FORBIDDEN,
            "access-denied",
            "administrators",
        ),
        (
            "agent reads metrics",
            Method::GET,
            "/metrics",
            Some(&agent),
            None,
            StatusCode::FORBIDDEN,
            "wrong-role",
            "service or admin",
        ),
        (
            "body over the limit",
            Method::POST,
            "/v1/customers/cus-1/reveal",
            Some(&agent),
            Some(huge),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "length limit",
        ),
        (
            "not JSON",
            Method::POST,
            "/v1/customers/cus-1/reveal",
            Some(&agent),
            Some("{fields:".into()),
            StatusCode::BAD_REQUEST,
            "bad-request",
            "JSON",
        ),
        (
            "unknown body key",
            Method::POST,
            "/v1/customers/cus-1/reveal",
            Some(&agent),
            Some(json!({"ticket": "t-1", "fields": ["email"], "reason": "r", "extra": 1}).to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable-body",
            "extra",
        ),
        (
            "unknown field",
            Method::POST,
            "/v1/customers/cus-1/reveal",
            Some(&agent),
            Some(json!({"ticket": "t-1", "fields": ["ssn"], "reason": "r"}).to_string()),
            StatusCode::BAD_REQUEST,
            "bad-request",
            "unknown field `ssn`",
        ),
        (
            "no fields",
            Method::POST,
            "/v1/customers/cus-1/reveal",
            Some(&agent),
            Some(json!({"ticket": "t-1", "fields": [], "reason": "r"}).to_string()),
            StatusCode::BAD_REQUEST,
            "bad-request",
            "at least one field",
        ),
        (
            "too many fields",
            Method::POST,
            "/v1/customers/cus-1/reveal",
            Some(&agent),
            Some(json!({"ticket": "t-1", "fields": too_many, "reason": "r"}).to_string()),
            StatusCode::BAD_REQUEST,
            "bad-request",
            "at most 14",
        ),
        (
            "search by an unknown key",
            Method::POST,
            "/v1/search",
            Some(&agent),
            Some(json!({"by": "name", "value": "Nina"}).to_string()),
            StatusCode::BAD_REQUEST,
            "bad-request",
            "`by` must be",
        ),
        (
            // The masked-rendering indexes exist for incident response only: searching
            // them would let an agent enumerate customers by their initials.
            "search by a masked rendering",
            Method::POST,
            "/v1/search",
            Some(&agent),
            Some(json!({"by": "masked_name", "value": "N*** S***"}).to_string()),
            StatusCode::BAD_REQUEST,
            "bad-request",
            "`by` must be",
        ),
        (
            "unknown customer",
            Method::GET,
            "/v1/customers/cus-404?ticket=t-1",
            Some(&agent),
            None,
            StatusCode::NOT_FOUND,
            "not-found",
            "customer `cus-404` does not exist",
        ),
        (
            "unknown ticket",
            Method::GET,
            "/v1/customers/cus-1?ticket=t-404",
            Some(&agent),
            None,
            StatusCode::FORBIDDEN,
            "access-denied",
            "t-404",
        ),
        (
            "unknown route",
            Method::GET,
            "/v1/nothing",
            Some(&agent),
            None,
            StatusCode::NOT_FOUND,
            "not-found",
            "no such route",
        ),
        (
            "bad proof index",
            Method::GET,
            "/v1/ledger/proof/minus-one",
            Some(&agent),
            None,
            StatusCode::BAD_REQUEST,
            "bad-request",
            "not a ledger index",
        ),
        (
            "approval for too long",
            Method::POST,
            "/v1/approvals/ap-x/approve",
            Some(&agent),
            Some(json!({"seconds": 7200}).to_string()),
            StatusCode::BAD_REQUEST,
            "bad-request",
            "1 to 3600 seconds",
        ),
        (
            "customer with a bad value",
            Method::PUT,
            "/v1/customers/cus-2",
            Some(&harness.admin),
            Some(json!({"fields": {"email": "not-an-email"}}).to_string()),
            StatusCode::BAD_REQUEST,
            "bad-request",
            "is not an email address",
        ),
        (
            "ticket with an unknown category",
            Method::PUT,
            "/v1/tickets/t-2",
            Some(&harness.admin),
            Some(json!({"requester": "cus-1", "category": "gossip"}).to_string()),
            StatusCode::BAD_REQUEST,
            "bad-request",
            "unknown ticket category `gossip`",
        ),
    ];
    for (what, method, path, token, body, status, code, fragment) in cases {
        let (got, answer) = crate::support::call(&harness.state, method, path, token, body).await;
        assert_eq!(got, status, "{what}: {answer}");
        assert_eq!(problem_type(&answer), format!("urn:cordon:problem:{code}"), "{what}: {answer}");
        let detail = answer.get("detail").and_then(Value::as_str).unwrap_or_default();
        assert!(detail.contains(fragment), "{what}: `{detail}` should contain `{fragment}`");
    }

    // An expired token is refused.
    harness.clock.advance_seconds(13 * 3600);
    let (status, answer) = harness.call(Method::GET, "/v1/customers/cus-1?ticket=t-1", Some(&agent), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert!(answer["detail"].as_str().unwrap().contains("expired"));
}

#[tokio::test]
async fn suspension_holds_from_the_next_request() {
    let harness = with_assigned_ticket().await;
    let agent = harness.agent_token("agt-1");
    let view = "/v1/customers/cus-1?ticket=t-1";
    assert_eq!(harness.call(Method::GET, view, Some(&agent), None).await.0, StatusCode::OK);
    harness.admin(Method::POST, "/v1/agents/agt-1/suspend", json!({})).await;
    let (status, answer) = harness.call(Method::GET, view, Some(&agent), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert!(answer["detail"].as_str().unwrap().contains("suspended"));
    harness.admin(Method::POST, "/v1/agents/agt-1/reinstate", json!({})).await;
    assert_eq!(harness.call(Method::GET, view, Some(&agent), None).await.0, StatusCode::OK);
}

#[tokio::test]
async fn deleting_a_customer_destroys_its_data_but_not_its_history() {
    let harness = with_assigned_ticket().await;
    let agent = harness.agent_token("agt-1");
    assert_eq!(harness.call(Method::GET, "/v1/customers/cus-1?ticket=t-1", Some(&agent), None).await.0, StatusCode::OK);
    harness.admin(Method::DELETE, "/v1/customers/cus-1", json!({})).await;
    let (status, _) = harness.call(Method::GET, "/v1/customers/cus-1?ticket=t-1", Some(&agent), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, hits) = harness
        .call(Method::POST, "/v1/search", Some(&agent), Some(json!({"by": "email", "value": "nina@example.org"})))
        .await;
    assert_eq!(hits["matches"], json!([]));
    let service = harness.state.gateway.issue_role_token(TokenRole::Service).unwrap();
    let (_, history) = harness.call(Method::GET, "/v1/customers/cus-1/access-history", Some(&service), None).await;
    let decisions: Vec<&str> =
        history["events"].as_array().unwrap().iter().map(|event| event["decision"].as_str().unwrap()).collect();
    assert_eq!(
        decisions,
        ["allow", "deny"],
        "the earlier view stays on record, and so does the refused one: {history}"
    );
}

#[tokio::test]
async fn every_documented_route_exists() {
    let harness = Harness::new();
    let (status, document) = harness.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() >= 15);
    for (path, operations) in paths {
        for method in operations.as_object().unwrap().keys().filter(|key| *key != "parameters") {
            let concrete = path.replace("{id}", "x").replace("{index}", "0");
            let method: Method = method.to_uppercase().parse().unwrap();
            let (_, answer) = harness.call(method.clone(), &concrete, None, Some(json!({}))).await;
            let detail = answer.get("detail").and_then(Value::as_str).unwrap_or_default();
            assert!(!detail.contains("no such route"), "{method} {path} is documented but not routed");
        }
    }
}

#[tokio::test]
async fn an_admin_can_issue_an_agent_token_and_the_issue_is_on_record() {
    let harness = with_assigned_ticket().await;
    harness
        .put_agent(
            "agt-2",
            json!({"name": "B", "team": "l1-chat", "site": "us-sf", "employer": "staff", "status": "suspended"}),
        )
        .await;
    let issued = harness.admin(Method::POST, "/v1/agents/agt-1/token", json!({})).await;
    assert_eq!(issued["role"], "agent", "{issued}");
    let token = issued["token"].as_str().unwrap().to_string();
    let (status, card) = harness.call(Method::GET, "/v1/customers/cus-1?ticket=t-1", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "the issued token works: {card}");

    let cases: [(&str, &str, StatusCode, &str); 3] = [
        ("an agent cannot issue tokens", "/v1/agents/agt-1/token", StatusCode::FORBIDDEN, "denied"),
        ("an unknown agent gets none", "/v1/agents/agt-9/token", StatusCode::NOT_FOUND, "agt-9"),
        ("a suspended agent gets none", "/v1/agents/agt-2/token", StatusCode::CONFLICT, "suspended"),
    ];
    for (what, path, expected, fragment) in cases {
        let caller = if expected == StatusCode::FORBIDDEN { token.clone() } else { harness.admin.clone() };
        let (status, answer) = harness.call(Method::POST, path, Some(&caller), Some(json!({}))).await;
        assert_eq!(status, expected, "{what}: {answer}");
        let detail = answer["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(fragment), "{what}: `{detail}` should contain `{fragment}`");
    }

    let index = issued["ledger_index"].as_u64().unwrap();
    let mut recorded = None;
    harness
        .state
        .gateway
        .audit()
        .for_each_entry(&mut |at, bytes| {
            if at == index {
                recorded = Some(serde_json::from_slice::<Value>(bytes).map_err(|error| error.to_string())?);
            }
            Ok(())
        })
        .unwrap();
    let entry = recorded.expect("the entry the answer names is in the ledger");
    assert_eq!((entry["change"].as_str(), entry["target"].as_str()), (Some("token.issue"), Some("agt-1")), "{entry}");
}
