//! Two gateways sharing one PostgreSQL store and the ledger sequenced through it: a request
//! may land on either, and what one records holds on the other from the next request.

use axum::http::{Method, StatusCode};
use cordon_gateway::TokenRole;
use cordon_testpg::TestDatabase;
use serde_json::{Value, json};

use crate::support::{Harness, customer_fields};

fn pair() -> (TestDatabase, Harness, Harness) {
    let database = TestDatabase::new().unwrap();
    let first = Harness::on_postgres(&database.url());
    let second = first.another_gateway();
    (database, first, second)
}

/// An insider alternating between gateways is contained as on one: the canary touched on
/// the second gateway suspends the agent, and the first refuses its next request; both
/// gateways list the one alert, and a replay of the shared ledger on either raises the same
/// alert the live run recorded, their detection states equal.
#[tokio::test]
async fn an_insider_switching_gateways_is_contained_on_both() {
    let (_database, first, second) = pair();
    first.put_assigned_ticket().await;
    second.put_canary("cus-999", customer_fields("Cora Nary", "cora@example.org", 250_000.0)).await;
    let agent = first.agent_token("agt-1");
    let analyst = second.state.gateway.issue_role_token(TokenRole::Analyst).unwrap();

    let (status, answer) = second.call(Method::GET, "/v1/customers/cus-1?ticket=t-1", Some(&agent), None).await;
    assert_eq!(status, StatusCode::OK, "the agent made on the first gateway works on the second: {answer}");
    let (status, answer) = second.call(Method::GET, "/v1/customers/cus-999", Some(&agent), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let (status, answer) = first.call(Method::GET, "/v1/customers/cus-1?ticket=t-1", Some(&agent), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "suspended on the other gateway from the next request: {answer}");

    for (name, gateway) in [("first", &first), ("second", &second)] {
        let (status, listed) = gateway.call(Method::GET, "/v1/alerts?status=open", Some(&analyst), None).await;
        assert_eq!(status, StatusCode::OK, "{name}: {listed}");
        let alerts = listed["alerts"].as_array().unwrap();
        assert_eq!(alerts.len(), 1, "{name}: {listed}");
        assert_eq!((alerts[0]["agent"].as_str(), alerts[0]["level"].as_str()), (Some("agt-1"), Some("suspend")));
        let (status, replayed) = gateway.call(Method::POST, "/v1/detection/replay", Some(&analyst), None).await;
        assert_eq!(status, StatusCode::OK, "{name}: {replayed}");
        assert_eq!(replayed["same_alerts"], true, "{name}: {replayed}");
    }
    // Both have taken in every entry: their states are one.
    first.state.gateway.authenticate(&analyst).unwrap();
    second.state.gateway.authenticate(&analyst).unwrap();
    assert_eq!(first.state.gateway.detection_state(), second.state.gateway.detection_state());
}

/// Changes made on one gateway hold on the other from the next request: a revoked token, a
/// suspended agent, a closed ticket.
#[tokio::test]
async fn what_one_gateway_changes_holds_on_the_other() {
    let (_database, first, second) = pair();
    first.put_assigned_ticket().await;
    first.put_agent("agt-2", json!({"name": "B", "team": "l1-chat", "site": "us-sf", "employer": "staff"})).await;
    first
        .admin(
            Method::PUT,
            "/v1/tickets/t-2",
            json!({"requester": "cus-1", "category": "general_inquiry", "assignee": "agt-2"}),
        )
        .await;
    let one = first.agent_token("agt-1");
    let two = first.agent_token("agt-2");
    let card = |ticket: &str| format!("/v1/customers/cus-1?ticket={ticket}");
    for (who, token, ticket) in [("agt-1", &one, "t-1"), ("agt-2", &two, "t-2")] {
        let (status, answer) = second.call(Method::GET, &card(ticket), Some(token), None).await;
        assert_eq!(status, StatusCode::OK, "{who} before: {answer}");
    }

    // A token revoked on the second gateway is refused by the first.
    let (status, answer) = second
        .call(Method::POST, "/v1/tokens/revoke", Some(&second.admin.clone()), Some(json!({ "token": one })))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = first.call(Method::GET, &card("t-1"), Some(&one), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "revoked on the other gateway: {answer}");

    // A ticket closed on the first gateway is refused by the second (its cache is dropped).
    let (status, answer) = second.call(Method::GET, &card("t-2"), Some(&two), None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    first
        .admin(
            Method::PUT,
            "/v1/tickets/t-2",
            json!({"requester": "cus-1", "category": "general_inquiry", "assignee": "agt-2", "status": "closed"}),
        )
        .await;
    let (status, answer) = second.call(Method::GET, &card("t-2"), Some(&two), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "closed on the other gateway: {answer}");

    // An agent suspended on the second gateway is refused by the first.
    first
        .admin(
            Method::PUT,
            "/v1/tickets/t-2",
            json!({"requester": "cus-1", "category": "general_inquiry", "assignee": "agt-2"}),
        )
        .await;
    let (status, answer) = first.call(Method::GET, &card("t-2"), Some(&two), None).await;
    assert_eq!(status, StatusCode::OK, "reopened: {answer}");
    let (status, answer) =
        second.call(Method::POST, "/v1/agents/agt-2/suspend", Some(&second.admin.clone()), None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer): (StatusCode, Value) = first.call(Method::GET, &card("t-2"), Some(&two), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "suspended on the other gateway: {answer}");
}
