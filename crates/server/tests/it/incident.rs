//! The incident routes: an analyst opens an incident, scopes it, attributes a sample,
//! protects, notifies, reports and takes evidence; agents may do none of it.

use axum::http::{Method, StatusCode};
use serde_json::json;
use tower::ServiceExt as _;

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

    // The customer's card was shown masked: a step-up check and a scam warning, no hold.
    for (apply, now) in [(false, 0), (true, 2), (true, 0)] {
        let (status, report) = harness
            .call(Method::POST, &format!("/v1/incidents/{id}/protect"), Some(&analyst), Some(json!({"apply": apply})))
            .await;
        assert_eq!(status, StatusCode::OK, "{report}");
        assert_eq!(report["recorded_now"], now, "apply {apply}: {report}");
    }
    // No contact point is configured: no notice goes out naming no one to ask, and the
    // report is visibly a draft.
    let (status, refused) =
        harness.call(Method::POST, &format!("/v1/incidents/{id}/notify"), Some(&analyst), Some(json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(refused["detail"].as_str().unwrap_or_default().contains("[incident]"), "{refused}");
    let (status, report) =
        harness.call(Method::GET, &format!("/v1/incidents/{id}/report?format=md"), Some(&analyst), None).await;
    assert_eq!(status, StatusCode::OK);
    let report = report.as_str().unwrap();
    assert!(report.contains("Data subjects concerned: 1 customers"), "{report}");
    assert!(report.starts_with("# DRAFT (no contact point set)"), "{report}");
    assert!(report.contains("| Extortion demand | received, not paid |"), "{report}");
    assert!(!report.contains("Negotiations"), "a statement nobody set: {report}");
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

/// Regression: two whole-ledger evidence downloads took `/healthz` to 45 s: heavy work ran
/// on the async workers and bundles were built whole in memory. Heavy routes run on the
/// blocking threads, a bounded number at once (one more is refused with 503 `busy` and
/// `Retry-After`), and the bundle is streamed file by file.
#[tokio::test]
async fn heavy_requests_are_bounded_and_evidence_streams() {
    let harness = Harness::new();
    harness.put_assigned_ticket().await;
    let analyst = harness.state.gateway.issue_role_token(cordon_gateway::TokenRole::Analyst).unwrap();
    let agent = harness.agent_token("agt-1");
    let (status, _) = harness.call(Method::GET, "/v1/customers/cus-1?ticket=t-1", Some(&agent), None).await;
    assert_eq!(status, StatusCode::OK);
    let (_, incident) = harness
        .call(Method::POST, "/v1/incidents", Some(&analyst), Some(json!({"title": "leak", "agents": ["agt-1"]})))
        .await;
    let id = incident["id"].as_str().unwrap().to_string();

    // The streamed bundle is a whole archive that verifies.
    let request = axum::http::Request::get(format!("/v1/incidents/{id}/evidence"))
        .header("authorization", format!("Bearer {analyst}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let response = cordon_server::app(std::sync::Arc::clone(&harness.state)).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
    let summary = cordon_ledger::verify_bundle(&bytes, None).unwrap();
    assert!(summary.entries >= 3, "{summary:?}");

    // With no room for heavy work, every heavy route says so; the rest answers.
    // The same gateway, behind a state with no room for heavy work.
    let Harness { dir, clock, state, admin, database } = harness;
    let gateway = std::sync::Arc::into_inner(state).unwrap().gateway;
    let bounded = std::sync::Arc::new(cordon_server::AppState::with_heavy_at_once(gateway, 0));
    let heavy = [
        (Method::GET, format!("/v1/incidents/{id}/scope"), None),
        (Method::GET, format!("/v1/incidents/{id}/evidence"), None),
        (Method::GET, format!("/v1/incidents/{id}/report"), None),
        (Method::POST, format!("/v1/incidents/{id}/protect"), Some(json!({}).to_string())),
        (Method::POST, format!("/v1/incidents/{id}/notify"), Some(json!({}).to_string())),
        (
            Method::POST,
            format!("/v1/incidents/{id}/attribute"),
            Some(json!({"sample": "email\nnina@example.org\n"}).to_string()),
        ),
    ];
    for (method, path, body) in heavy {
        let (status, answer) = crate::support::call(&bounded, method.clone(), &path, Some(&analyst), body).await;
        assert_eq!(
            (status, problem_type(&answer)),
            (StatusCode::SERVICE_UNAVAILABLE, "urn:cordon:problem:busy"),
            "{method} {path}: {answer}"
        );
    }
    let (status, _) = crate::support::call(&bounded, Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) =
        crate::support::call(&bounded, Method::GET, "/v1/customers/cus-1?ticket=t-1", Some(&agent), None).await;
    assert_eq!(status, StatusCode::OK, "fast requests are not bounded by heavy ones");
    drop((bounded, dir, clock, admin, database));
}
