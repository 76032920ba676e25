//! The shipped policy case table (`policies/cases.toml`), replayed through the HTTP API:
//! each case's agents, customers, tickets and approvals are set up with admin calls, and the
//! case's request is made as the case's agent.

use axum::http::{Method, StatusCode};
use cordon_policy::{CaseFile, PolicyCase};
use serde_json::{Value, json};

use crate::support::{Harness, customer_fields, problem_type};

const CASES: &str = include_str!("../../../../policies/cases.toml");

#[tokio::test]
async fn every_case_decides_the_same_through_the_api() {
    let cases = CaseFile::parse(CASES).unwrap().cases;
    let mut failures = Vec::new();
    let mut run = 0;
    for case in &cases {
        // Exporting has no route yet; its cases run against the engine only.
        if case.action == "export" {
            continue;
        }
        run += 1;
        if let Err(failure) = run_case(case).await {
            failures.push(format!("{}: {failure}", case.name));
        }
    }
    assert!(run >= 45, "only {run} cases ran through the API");
    assert!(failures.is_empty(), "{} of {run} cases differ through the API:\n{}", failures.len(), failures.join("\n"));
}

async fn run_case(case: &PolicyCase) -> Result<(), String> {
    let harness = Harness::new();
    let agent = &case.agent;
    let customer = &case.customer.id;
    let balance = if case.customer.high_balance { 2_500_000.0 } else { 500.0 };
    harness.put_customer(customer, customer_fields("Case Customer", "case@example.org", balance)).await;
    harness.put_customer("customer-2", customer_fields("Other Customer", "other@example.org", 500.0)).await;
    // The token (and any approval) comes while the agent is active, since an inactive agent
    // gets neither; the case's status, if another, is set just before its request, as a
    // suspension after sign-in would be.
    let put_case_agent = |status: &str| json!({"name": "Case Agent", "team": agent.team, "site": agent.site, "employer": agent.employer, "role": agent.role, "status": status});
    harness.put_agent(&agent.id, put_case_agent("active")).await;
    for (id, role) in [("agent-2", "agent"), ("analyst-1", "analyst")] {
        if id != agent.id {
            harness
                .put_agent(id, json!({"name": id, "team": "fraud-investigations", "site": "eu-dub", "employer": "staff", "role": role}))
                .await;
        }
    }
    let token = harness.agent_token(&agent.id);

    if let Some(ticket) = &case.ticket {
        let requester = ticket.requester.clone().unwrap_or_else(|| customer.clone());
        let assignee = ticket.assignee.clone().unwrap_or_else(|| agent.id.clone());
        harness
            .admin(
                Method::PUT,
                &format!("/v1/tickets/{}", ticket.id),
                json!({"requester": requester, "category": ticket.category, "status": ticket.status, "assignee": assignee}),
            )
            .await;
    }

    if let Some(approval) = &case.approval {
        let requester = approval.requester.clone().unwrap_or_else(|| agent.id.clone());
        let on = approval.customer.clone().unwrap_or_else(|| customer.clone());
        let (status, requested) = harness
            .call(
                Method::POST,
                "/v1/approvals",
                Some(&harness.agent_token(&requester)),
                Some(json!({"kind": approval.kind, "customer": on})),
            )
            .await;
        if !status.is_success() {
            return Err(format!("requesting the approval failed: {status} {requested}"));
        }
        let id = requested["id"].as_str().unwrap_or_default().to_string();
        let seconds = if approval.expires_in_seconds > 0 { approval.expires_in_seconds } else { 60 };
        let (status, answer) = harness
            .call(
                Method::POST,
                &format!("/v1/approvals/{id}/approve"),
                Some(&harness.agent_token(&approval.approver)),
                Some(json!({ "seconds": seconds })),
            )
            .await;
        if approval.approver == requester {
            // Self-approval is impossible: the API refuses it, and the request below must fail.
            if status != StatusCode::FORBIDDEN {
                return Err(format!("self-approval was not refused: {status} {answer}"));
            }
        } else if !status.is_success() {
            return Err(format!("approving failed: {status} {answer}"));
        }
        if approval.expires_in_seconds <= 0 {
            harness.clock.advance_seconds(seconds - approval.expires_in_seconds + 1);
        }
    }

    // Statuses change through their own routes (a PUT keeps an existing agent's).
    match agent.status.as_str() {
        "active" => {}
        "suspended" => drop(harness.admin(Method::POST, &format!("/v1/agents/{}/suspend", agent.id), json!({})).await),
        "offboarded" => {
            drop(harness.admin(Method::POST, &format!("/v1/agents/{}/offboard", agent.id), json!({})).await)
        }
        other => return Err(format!("unknown agent status `{other}` in the case file")),
    }
    let ticket = case.ticket.as_ref().map(|ticket| ticket.id.clone());
    let (status, answer) = match case.action.as_str() {
        "view" => {
            let query = ticket.map(|ticket| format!("?ticket={ticket}")).unwrap_or_default();
            harness.call(Method::GET, &format!("/v1/customers/{customer}{query}"), Some(&token), None).await
        }
        "reveal" => {
            let body =
                json!({"ticket": ticket, "fields": [case.field.clone().unwrap_or_default()], "reason": case.reason});
            harness.call(Method::POST, &format!("/v1/customers/{customer}/reveal"), Some(&token), Some(body)).await
        }
        "verify" => {
            let body = json!({"ticket": ticket, "field": case.field.clone().unwrap_or_default(), "value": "1234"});
            harness.call(Method::POST, &format!("/v1/customers/{customer}/verify"), Some(&token), Some(body)).await
        }
        "search" => {
            harness
                .call(
                    Method::POST,
                    "/v1/search",
                    Some(&token),
                    Some(json!({"by": "email", "value": "case@example.org"})),
                )
                .await
        }
        "administer" => {
            let body = json!({"requester": customer, "category": "general_inquiry"});
            harness.call(Method::PUT, "/v1/tickets/new-ticket", Some(&token), Some(body)).await
        }
        "approve" => {
            let requester = case.approval_requester.clone().unwrap_or_default();
            if harness.state.gateway.agent(&requester).unwrap().is_none() {
                harness
                    .put_agent(
                        &requester,
                        json!({"name": requester, "team": "l1-chat", "site": "us-sf", "employer": "staff"}),
                    )
                    .await;
            }
            let (_, requested) = harness
                .call(
                    Method::POST,
                    "/v1/approvals",
                    Some(&harness.agent_token(&requester)),
                    Some(json!({"kind": "break_glass", "customer": customer})),
                )
                .await;
            let id = requested["id"].as_str().unwrap_or_default().to_string();
            harness
                .call(Method::POST, &format!("/v1/approvals/{id}/approve"), Some(&token), Some(json!({"seconds": 600})))
                .await
        }
        "investigate" => harness.call(Method::GET, "/v1/alerts", Some(&token), None).await,
        "request_approval" => {
            let body = json!({"kind": "break_glass", "customer": customer});
            harness.call(Method::POST, "/v1/approvals", Some(&token), Some(body)).await
        }
        other => return Err(format!("no HTTP mapping for action `{other}`")),
    };
    let allowed = status.is_success();
    match (case.expect.as_str(), allowed) {
        ("allow", true) => Ok(()),
        ("deny", false)
            if status == StatusCode::FORBIDDEN && problem_type(&answer) == "urn:cordon:problem:access-denied" =>
        {
            match (&case.expect_policy, answer.get("policies").and_then(Value::as_array)) {
                (Some(policy), Some(policies)) if !policies.iter().any(|id| id == policy) => {
                    Err(format!("denied, but not by `{policy}`: {answer}"))
                }
                _ => Ok(()),
            }
        }
        (expected, _) => Err(format!("expected {expected}, got {status} {answer}")),
    }
}
