//! The incident routes: an analyst opens an incident, scopes it, attributes a sample,
//! protects, notifies, reports and takes evidence; agents may do none of it.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::{Harness, problem_type};

#[tokio::test]
async fn an_analyst_works_an_incident_through_the_api() {
    let harness = Harness::new();
    harness.put_assigned_ticket().await;
    let agent = harness.agent_token("agt-1");
    let analyst = harness.state.gateway.issue_role_token(cordon_gateway::TokenRole::Analyst).unwrap();
    // The agent views the card and reveals the email its ticket allows.
    let (status, _) = harness.call(Method::GET, "/v1/customers/cus-1?ticket=t-1", Some(&agent), None).await;
    assert_eq!(status, StatusCode::OK);

    let (status, answer) = harness
        .call(Method::POST, "/v1/incidents", Some(&agent), Some(json!({"title": "leak", "agents": ["agt-1"]})))
        .await;
    assert_eq!(
        (status, problem_type(&answer)),
        (StatusCode::FORBIDDEN, "urn:cordon:problem:access-denied"),
        "{answer}"
    );
    assert!(answer["ledger_index"].is_u64(), "an agent's attempt at an analyst's powers is recorded: {answer}");
    let cases = [
        (json!({"title": "leak", "agents": ["agt-9"]}), StatusCode::NOT_FOUND, "agt-9"),
        (json!({"title": "leak", "since": "last tuesday"}), StatusCode::BAD_REQUEST, "last tuesday"),
        (json!({"title": "leak", "status": {"mood": "calm"}}), StatusCode::BAD_REQUEST, "mood"),
        (json!({"title": " "}), StatusCode::BAD_REQUEST, "title"),
    ];
    for (body, expected, fragment) in cases {
        let (status, answer) = harness.call(Method::POST, "/v1/incidents", Some(&analyst), Some(body.clone())).await;
        assert_eq!(status, expected, "{body}: {answer}");
        assert!(answer["detail"].as_str().unwrap_or_default().contains(fragment), "{body}: {answer}");
    }

    let body = json!({"title": "extortion email", "agents": ["agt-1"], "aware": "2026-11-30T09:00Z",
        "status": {"extortion_demand": "received, not paid"}});
    let (status, incident) = harness.call(Method::POST, "/v1/incidents", Some(&analyst), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{incident}");
    let id = incident["id"].as_str().unwrap().to_string();
    assert_eq!(incident["status"]["extortion_demand"], "received, not paid");

    let (status, scope) = harness.call(Method::GET, &format!("/v1/incidents/{id}/scope"), Some(&analyst), None).await;
    assert_eq!(status, StatusCode::OK, "{scope}");
    assert_eq!(scope["customers_affected"], 1);
    assert_eq!(scope["affected"][0]["customer"], "cus-1");
    assert!(scope["affected"][0]["masked_only"].as_array().unwrap().iter().any(|field| field == "email"));

    let sample = "name,email\nN*** S***,n***a@e****.org\n";
    let (status, found) = harness
        .call(Method::POST, &format!("/v1/incidents/{id}/attribute"), Some(&analyst), Some(json!({"sample": sample})))
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!((found["rows"].as_u64(), found["matched_rows"].as_u64()), (Some(1), Some(1)), "{found}");
    assert_eq!(found["agents"][0]["agent"], "agt-1");
    let (status, refused) = harness
        .call(
            Method::POST,
            &format!("/v1/incidents/{id}/attribute"),
            Some(&analyst),
            Some(json!({"sample": "city\nLeeds\n"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");

    for (apply, now) in [(false, 0), (true, 3), (true, 0)] {
        let (status, report) = harness
            .call(Method::POST, &format!("/v1/incidents/{id}/protect"), Some(&analyst), Some(json!({"apply": apply})))
            .await;
        assert_eq!(status, StatusCode::OK, "{report}");
        assert_eq!(report["recorded_now"], now, "apply {apply}: {report}");
    }
    let (status, notices) =
        harness.call(Method::POST, &format!("/v1/incidents/{id}/notify"), Some(&analyst), Some(json!({}))).await;
    assert_eq!((status, notices["notices"].as_u64()), (StatusCode::OK, Some(1)), "{notices}");
    let (status, report) =
        harness.call(Method::GET, &format!("/v1/incidents/{id}/report?format=md"), Some(&analyst), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(report.as_str().unwrap().contains("Data subjects concerned: 1 customers"), "{report}");
    let (status, _) =
        harness.call(Method::GET, &format!("/v1/incidents/{id}/report?format=pdf"), Some(&analyst), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, shown) = harness.call(Method::GET, &format!("/v1/incidents/{id}"), Some(&analyst), None).await;
    assert_eq!(status, StatusCode::OK);
    let timeline: Vec<&str> =
        shown["timeline"].as_array().unwrap().iter().filter_map(|event| event["what"].as_str()).collect();
    assert!(timeline.iter().any(|what| what.contains("protective actions recorded")), "{timeline:?}");
    let (status, bundle) =
        harness.call(Method::GET, &format!("/v1/incidents/{id}/evidence"), Some(&analyst), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(bundle.as_str().unwrap().starts_with("README.md"), "a tar archive, README first");
    let (status, _) = harness.call(Method::GET, "/v1/incidents/inc-9/scope", Some(&analyst), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
