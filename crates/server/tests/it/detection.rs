//! Detection through the API: a canary touch suspends in-line, analysts work the alert and
//! the risk board, reinstatement is never one's own, and the webhook gets every alert even
//! across failures and a restart.

use std::sync::{Arc, Mutex};

use axum::http::{Method, StatusCode};
use cordon_gateway::TokenRole;
use serde_json::{Value, json};

use crate::support::{Harness, customer_fields};

/// An agent with a ticket from a real customer, and a canary nobody has a reason to open.
async fn with_canary(harness: &Harness) {
    harness.put_assigned_ticket().await;
    harness.put_canary("cus-999", customer_fields("Cora Nary", "cora@example.org", 250_000.0)).await;
    harness
        .put_agent(
            "ana-1",
            json!({"name": "Q", "team": "security", "site": "us-sf", "employer": "staff", "role": "analyst"}),
        )
        .await;
}

#[tokio::test]
async fn a_canary_touch_is_contained_explained_and_worked_by_an_analyst() {
    let harness = Harness::new();
    with_canary(&harness).await;
    let agent = harness.agent_token("agt-1");
    let analyst = harness.state.gateway.issue_role_token(TokenRole::Analyst).unwrap();
    let own_analyst = harness.agent_token("ana-1");

    // The honest request goes through; the canary is refused in-line and the agent stops.
    let (status, _) = harness.call(Method::GET, "/v1/customers/cus-1?ticket=t-1", Some(&agent), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = harness.call(Method::GET, "/v1/customers/cus-999", Some(&agent), None).await;
    // Policy refuses it (no ticket); trying at all is what gives the insider away.
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let (status, answer) = harness.call(Method::GET, "/v1/customers/cus-1?ticket=t-1", Some(&agent), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "suspended from the next request: {answer}");

    // The alert explains itself.
    let (status, listed) = harness.call(Method::GET, "/v1/alerts?status=open", Some(&analyst), None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let alerts = listed["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{listed}");
    let alert = &alerts[0];
    assert_eq!((alert["agent"].as_str(), alert["level"].as_str()), (Some("agt-1"), Some("suspend")));
    assert_eq!(alert["signals"][0]["name"], "canary");
    let evidence = alert["evidence"][0].as_u64().unwrap();
    assert_eq!(evidence + 1, alert["ledger_index"].as_u64().unwrap(), "the alert follows its evidence");
    let id = alert["id"].as_u64().unwrap();
    let (_, shown) = harness.call(Method::GET, &format!("/v1/alerts/{id}"), Some(&analyst), None).await;
    assert_eq!(shown["id"], id);
    let (_, board) = harness.call(Method::GET, "/v1/risk", Some(&analyst), None).await;
    assert_eq!(board["agents"][0]["agent"], "agt-1", "{board}");
    assert_eq!(board["agents"][0]["level"], "suspend", "{board}");
    // A replay of the whole ledger raises the same alert the live run recorded.
    let (status, replayed) = harness.call(Method::POST, "/v1/detection/replay", Some(&analyst), None).await;
    assert_eq!(status, StatusCode::OK, "{replayed}");
    assert_eq!((replayed["alerts_raised"].as_u64(), replayed["alerts_recorded"].as_u64()), (Some(1), Some(1)));
    assert_eq!(replayed["same_alerts"], true, "{replayed}");

    // Who may do what.
    type Case<'a> = (&'a str, Method, String, &'a str, Option<Value>, StatusCode);
    let cases: Vec<Case<'_>> = vec![
        ("agents see no alerts", Method::GET, "/v1/alerts".into(), &agent, None, StatusCode::FORBIDDEN),
        ("agents see no board", Method::GET, "/v1/risk".into(), &agent, None, StatusCode::FORBIDDEN),
        (
            "agents replay no detection",
            Method::POST,
            "/v1/detection/replay".into(),
            &agent,
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "a bad status is named",
            Method::GET,
            "/v1/alerts?status=maybe".into(),
            &analyst,
            None,
            StatusCode::BAD_REQUEST,
        ),
        ("an unknown alert", Method::GET, "/v1/alerts/77".into(), &analyst, None, StatusCode::NOT_FOUND),
        (
            "a dismissal needs a reason",
            Method::POST,
            format!("/v1/alerts/{id}/dismiss"),
            &analyst,
            Some(json!({"reason": " "})),
            StatusCode::BAD_REQUEST,
        ),
        (
            "an agent cannot reinstate itself",
            Method::POST,
            "/v1/agents/ana-1/reinstate".into(),
            &own_analyst,
            Some(json!({})),
            StatusCode::CONFLICT,
        ),
    ];
    for (what, method, path, token, body, expected) in cases {
        let (status, answer) = harness.call(method, &path, Some(token), body).await;
        assert_eq!(status, expected, "{what}: {answer}");
    }

    // Dismissed once, and only once; then reinstated by an analyst, the agent works again.
    let path = format!("/v1/alerts/{id}/dismiss");
    let (status, answer) =
        harness.call(Method::POST, &path, Some(&analyst), Some(json!({"reason": "red-team test"}))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, _) = harness.call(Method::POST, &path, Some(&analyst), Some(json!({"reason": "again"}))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, shown) = harness.call(Method::GET, &format!("/v1/alerts/{id}"), Some(&analyst), None).await;
    assert_eq!((shown["status"].as_str(), shown["reason"].as_str()), (Some("dismissed"), Some("red-team test")));
    let (status, answer) =
        harness.call(Method::POST, "/v1/agents/agt-1/reinstate", Some(&analyst), Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, _) = harness.call(Method::GET, "/v1/customers/cus-1?ticket=t-1", Some(&agent), None).await;
    assert_eq!(status, StatusCode::OK);
}

/// A webhook receiver that refuses its first `refusals` deliveries.
async fn receiver(refusals: usize) -> (String, Arc<Mutex<Vec<Value>>>) {
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let attempts = Arc::new(Mutex::new(0usize));
    let store = Arc::clone(&received);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::Json<Value>| {
            let store = Arc::clone(&store);
            let attempts = Arc::clone(&attempts);
            async move {
                let mut count = attempts.lock().unwrap();
                *count += 1;
                if *count <= refusals {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                store.lock().unwrap().push(body.0);
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}/hook"), received)
}

#[tokio::test]
async fn the_webhook_gets_each_alert_through_refusals_and_a_restart() {
    let (url, received) = receiver(2).await;
    let harness = Harness::with_config(|config| config.detection.webhook_url = url.clone());
    with_canary(&harness).await;
    let agent = harness.agent_token("agt-1");
    let (status, _) = harness.call(Method::GET, "/v1/customers/cus-999", Some(&agent), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let gateway = &harness.state.gateway;
    let now = gateway.now_ms();
    let first = cordon_server::deliver_due(gateway, now).await.unwrap();
    assert_eq!((first.delivered, first.failed), (0, 1), "the receiver refused");
    let early = cordon_server::deliver_due(gateway, now + 10).await.unwrap();
    assert_eq!((early.delivered, early.failed), (0, 0), "nothing is due before the backoff");

    // A restart in between: the queue is in the store.
    let harness = harness.reopen();
    let gateway = &harness.state.gateway;
    assert_eq!(gateway.outbox_pending().unwrap(), 1);
    let later = now + cordon_server::backoff_ms(0);
    assert_eq!(cordon_server::deliver_due(gateway, later).await.unwrap().failed, 1, "refused a second time");
    let last = later + cordon_server::backoff_ms(1);
    assert_eq!(cordon_server::deliver_due(gateway, last).await.unwrap().delivered, 1);
    assert_eq!(gateway.outbox_pending().unwrap(), 0);
    let bodies = received.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert_eq!((bodies[0]["kind"].as_str(), bodies[0]["agent"].as_str()), (Some("alert"), Some("agt-1")));
    assert_eq!(bodies[0]["level"], "suspend");
    assert_eq!(bodies[0]["signals"][0]["name"], "canary");
}
