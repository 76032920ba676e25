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

/// Regression: a revocation was checked only when a token was authenticated, so a request
/// authenticated on one gateway just before another recorded the token's revocation was still
/// answered, after it in the ledger. The decision's turn takes in the revocation and refuses it
/// in its place (two cases: a card and a reveal).
#[tokio::test]
async fn a_revocation_recorded_after_authentication_refuses_the_decision_in_its_place() {
    let (_database, first, second) = pair();
    first.put_assigned_ticket().await;
    let gateway = &first.state.gateway;
    for case in ["card", "reveal"] {
        let token = first.agent_token("agt-1");
        let claims = gateway.authenticate(&token).unwrap();
        let (status, answer) = second
            .call(Method::POST, "/v1/tokens/revoke", Some(&second.admin.clone()), Some(json!({ "token": token })))
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let refused = match case {
            "card" => gateway.view(&claims, "cus-1", Some("t-1"), "r-card").await.map(|_| ()),
            _ => gateway
                .reveal(&claims, "cus-1", Some("t-1"), &["email".to_string()], "callback", "r-reveal")
                .await
                .map(|_| ()),
        };
        match refused {
            Err(cordon_gateway::GatewayError::Denied { policies, .. }) => {
                assert_eq!(policies, [cordon_gateway::REVOKED_TOKEN_POLICY], "{case}")
            }
            other => panic!("{case}: a revoked token's request is refused in its place: {other:?}"),
        }
    }
}

/// Copies the log's public tree as `gateway` serves it (`/log/checkpoint`, `/log/tile/...`)
/// into `into`: what an auditor's mirror holds. Returns the size it covers.
async fn mirror(gateway: &Harness, into: &std::path::Path) -> u64 {
    let analyst = gateway.state.gateway.issue_role_token(TokenRole::Analyst).unwrap();
    let analyst = &analyst;
    let fetch = |path: String| async move {
        let (status, body) = raw_as(gateway, &format!("/log/{path}"), Some(analyst)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let file = into.join(&path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, body).unwrap();
    };
    let (status, note) = raw(gateway, "/log/checkpoint").await;
    assert_eq!(status, StatusCode::OK);
    let note = String::from_utf8(note).unwrap();
    let size: u64 = note.lines().nth(1).unwrap().parse().unwrap();
    std::fs::create_dir_all(into).unwrap();
    std::fs::write(into.join("checkpoint"), &note).unwrap();
    for id in cordon_ledger::published_tiles(size) {
        fetch(id.path().display().to_string()).await;
    }
    size
}

/// The response's status and bytes as they are, asked without a token.
async fn raw(gateway: &Harness, path: &str) -> (StatusCode, Vec<u8>) {
    raw_as(gateway, path, None).await
}

async fn raw_as(gateway: &Harness, path: &str, token: Option<&str>) -> (StatusCode, Vec<u8>) {
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;
    let mut request = axum::http::Request::builder().uri(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request.body(axum::body::Body::empty()).unwrap();
    let response = cordon_server::app(std::sync::Arc::clone(&gateway.state)).oneshot(request).await.unwrap();
    let status = response.status();
    (status, response.into_body().collect().await.unwrap().to_bytes().to_vec())
}

/// Each gateway serves the log's C2SP tree, the same bytes from either on PostgreSQL and from
/// the file ledger on one: a mirror of what each serves verifies with the ledger's own
/// verifier, and paths outside the published tree are 404.
#[tokio::test]
async fn every_gateway_serves_the_same_verifiable_tree() {
    let database = TestDatabase::new().unwrap();
    let first = Harness::on_postgres(&database.url());
    let second = first.another_gateway();
    let embedded = Harness::new();
    for gateway in [&first, &second, &embedded] {
        gateway.put_assigned_ticket().await;
        for n in 0..300 {
            gateway.put_customer(&format!("cus-{n}"), json!({"full_name": format!("N {n}")})).await;
        }
    }
    let covered = first.state.gateway.audit().checkpoint_covering(first.state.gateway.audit().size()).unwrap();
    let size = covered.lines().nth(1).unwrap().parse::<u64>().unwrap();
    assert!(size > 600, "both gateways' entries: {size}");
    let verifier = cordon_ledger::Verifier::parse(&first.state.gateway.audit().verifier_key()).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let mut mirrored = Vec::new();
    for (name, gateway) in [("first", &first), ("second", &second)] {
        let into = scratch.path().join(name);
        let size = mirror(gateway, &into).await;
        let summary =
            cordon_ledger::verify_log(&into, &verifier, None).unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(summary.size, size);
        mirrored.push(into);
    }
    let same = std::process::Command::new("diff").arg("-r").arg(&mirrored[0]).arg(&mirrored[1]).status().unwrap();
    assert!(same.success(), "both gateways serve the same files");

    embedded.state.gateway.audit().checkpoint_covering(embedded.state.gateway.audit().size()).unwrap();
    let into = scratch.path().join("embedded");
    mirror(&embedded, &into).await;
    let key = embedded.state.gateway.audit().verifier_key();
    cordon_ledger::verify_log(&into, &cordon_ledger::Verifier::parse(&key).unwrap(), None).unwrap();

    // The entries themselves are an investigator's to read: not anyone's, not an agent's.
    for gateway in [&first, &embedded] {
        let agent = gateway.agent_token("agt-1");
        assert_eq!(raw(gateway, "/log/tile/entries/000").await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(raw_as(gateway, "/log/tile/entries/000", Some(&agent)).await.0, StatusCode::FORBIDDEN);
        assert_eq!(raw(gateway, "/log/tile/0/000").await.0, StatusCode::OK, "hash tiles stay public");
    }
    // Asked by an investigator, so the paths themselves are what is refused.
    for gateway in [&first, &embedded] {
        let analyst = gateway.state.gateway.issue_role_token(TokenRole::Analyst).unwrap();
        for path in [
            "/log/tile/0/999",
            "/log/tile/0/000.p/0",
            "/log/tile/../checkpoint",
            "/log/tile/0/%2e%2e/000",
            "/log/tile/entries/x001/000",
            "/log/tile/64/000",
            "/log/tile/8/000",
            "/log/tile/63/x999/999",
            "/log/tile/0/000/",
        ] {
            let (status, _) = raw_as(gateway, path, Some(&analyst)).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        }
    }
}

/// Two analysts deciding one alert at the same moment on two gateways: one decision is
/// recorded, the other refused (the alert is no longer open), whichever comes first.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_alert_is_decided_once_across_gateways() {
    let (_database, first, second) = pair();
    first.put_assigned_ticket().await;
    first.put_canary("cus-999", customer_fields("Cora Nary", "cora@example.org", 250_000.0)).await;
    for (id, name) in [("ana-1", "Q"), ("ana-2", "R")] {
        first
            .put_agent(
                id,
                json!({"name": name, "team": "security", "site": "us-sf", "employer": "staff", "role": "analyst"}),
            )
            .await;
    }
    let agent = first.agent_token("agt-1");
    let (status, _) = second.call(Method::GET, "/v1/customers/cus-999", Some(&agent), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let analyst_one = first.agent_token("ana-1");
    let analyst_two = first.agent_token("ana-2");
    let (_, listed) = first.call(Method::GET, "/v1/alerts?status=open", Some(&analyst_one), None).await;
    let id = listed["alerts"][0]["id"].as_u64().unwrap();
    for round in 0..5 {
        let confirm = format!("/v1/alerts/{id}/confirm");
        let dismiss = format!("/v1/alerts/{id}/dismiss");
        let body = json!({"reason": format!("round {round}")});
        let ((one, a), (two, b)) = tokio::join!(
            first.call(Method::POST, &confirm, Some(&analyst_one), Some(body.clone())),
            second.call(Method::POST, &dismiss, Some(&analyst_two), Some(body.clone())),
        );
        let decided = [one, two].iter().filter(|status| status.is_success()).count();
        if round == 0 {
            assert_eq!(decided, 1, "exactly one decision: {one} {a} / {two} {b}");
        } else {
            assert_eq!(decided, 0, "decided already: {one} {a} / {two} {b}");
        }
    }
    let mut decisions = 0;
    let size = first.state.gateway.audit().size();
    first
        .state
        .gateway
        .audit()
        .for_each_entry_from(0, size, &mut |_, bytes| {
            if let Ok(cordon_entry::Entry::Change(change)) = cordon_entry::decode(bytes)
                && change.change.starts_with("alert.")
            {
                decisions += 1;
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(decisions, 1, "one decision in the ledger");
}

/// Regression: a KEK rotation on a PostgreSQL deployment left the ledger's signing key wrapped
/// by the key it destroyed, and no gateway opened again. It moves with the customers' keys:
/// after the rotation the folder opens, serves, and signs with the same ledger key.
#[tokio::test]
async fn a_kek_rotation_moves_the_ledgers_signing_key_too() {
    let database = TestDatabase::new().unwrap();
    let harness = Harness::on_postgres(&database.url());
    harness.put_assigned_ticket().await;
    let verifier = harness.state.gateway.audit().verifier_key();
    let rotated = harness.data().rotate_kek(harness.clock.clone(), None).unwrap();
    assert_ne!(rotated.from, rotated.to);
    let harness = harness.reopen();
    assert_eq!(harness.state.gateway.audit().verifier_key(), verifier, "the same ledger key");
    let agent = harness.agent_token("agt-1");
    let (status, answer) = harness.call(Method::GET, "/v1/customers/cus-1?ticket=t-1", Some(&agent), None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

/// Regression: gateways on one database could run different rules (a policy file, a ticket
/// category or a detection threshold changed on one host only), so one gateway allowed what
/// another refused, and their detectors, each a replay of the one ledger, raised different
/// alerts. A gateway whose rules are not the deployment's does not open, naming both digests;
/// `cordon policy adopt` makes its rules the deployment's (a ledger entry), after which the
/// gateways with the old ones do not open until given the new.
#[tokio::test]
async fn a_gateway_with_other_rules_does_not_open_until_they_are_adopted() {
    let (_database, first, _second) = pair();
    let clock: std::sync::Arc<dyn cordon_gateway::Clock> = first.clock.clone();
    let scratch = tempfile::tempdir().unwrap();
    let changed = scratch.path().join("data");
    assert!(
        std::process::Command::new("cp").arg("-a").arg(first.data().path("")).arg(&changed).status().unwrap().success()
    );
    let changed = cordon_gateway::DataDir::new(&changed);
    let mut config = changed.config().unwrap();
    config.detection.thresholds.alert_risk += 1.0;
    changed.write_config(&config).unwrap();

    let refused = changed.open(clock.clone()).map(|_| ()).unwrap_err().to_string();
    assert!(refused.contains("not the deployment's") && refused.contains("policy adopt"), "{refused}");
    let (before, after) = changed.adopt_rules(clock.clone()).unwrap();
    assert_ne!(before.as_deref(), Some(after.as_str()));
    let gateway = changed.open(clock.clone()).unwrap();
    let mut adopted = Vec::new();
    gateway
        .audit()
        .for_each_entry(&mut |_, bytes| {
            if let Ok(cordon_entry::Entry::Change(change)) = cordon_entry::decode(bytes)
                && change.change == "rules.adopt"
            {
                adopted.push((change.target, change.detail.unwrap_or_default()));
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(adopted.len(), 1, "{adopted:?}");
    assert_eq!(adopted[0].0, after);
    assert!(adopted[0].1.contains(before.as_deref().unwrap()), "{adopted:?}");
    let refused = first.data().open(clock).map(|_| ()).unwrap_err().to_string();
    assert!(refused.contains(&after) && refused.contains(before.as_deref().unwrap()), "the old rules now: {refused}");
}
