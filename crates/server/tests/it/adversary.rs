//! An insider with a valid token attacking the gate instead of walking through it. Each test
//! replays one way the gate once gave way, then restarts the server on the same data
//! directory: it must open, serve, and keep what it recorded.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::{Harness, entry_at, problem_type};

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
    harness.put_agent("agt-2", json!({"name": "B", "team": "l1-chat", "site": "us-sf", "employer": "staff"})).await;
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
    let harness = harness.restart_and_verify().await;
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
        // Refused at the edge (the request target's length) or by the gateway (an id's).
        let refused = [StatusCode::BAD_REQUEST, StatusCode::URI_TOO_LONG].contains(&status);
        assert!(refused, "{method} {}: {answer}", &path[..path.len().min(60)]);
        // The next request from anyone is answered and recorded at the next index.
        let (status, card) = harness.call(Method::GET, "/v1/customers/cus-1?ticket=t-1", Some(&agent), None).await;
        assert_eq!(status, StatusCode::OK, "after {method} {}: {card}", &path[..path.len().min(60)]);
        let index = card["ledger_index"].as_u64().unwrap();
        assert!(index > last_index, "{index} after {last_index}");
        last_index = index;
    }
    // In-process callers (the simulator) meet the same bounds: ids that would overflow a
    // ledger entry are refused before the ledger, which records nothing for them.
    let gateway = &harness.state.gateway;
    let claims = gateway.authenticate(&agent).unwrap();
    let admin = gateway.authenticate(&harness.admin).unwrap();
    let hostile = "\u{1}".repeat(12_000);
    let refused = gateway.view(&claims, &hostile, None, "r-1").await;
    assert!(matches!(refused, Err(cordon_gateway::GatewayError::BadRequest(_))), "{refused:?}");
    let refused = gateway.delete_customer(&admin, &hostile, "r-2").await;
    assert!(matches!(refused, Err(cordon_gateway::GatewayError::BadRequest(_))), "{refused:?}");
    let harness = harness.restart_and_verify().await;
    let (status, card) = harness.call(Method::GET, "/v1/customers/cus-1?ticket=t-1", Some(&agent), None).await;
    assert_eq!(status, StatusCode::OK, "{card}");
    assert_eq!(card["ledger_index"].as_u64(), Some(last_index + 1));
}

/// Regression: analyst and incident routes trusted the token's `role` claim, so a
/// suspended, offboarded or demoted analyst still listed and dismissed alerts, reinstated
/// agents detection had suspended and opened incidents. The directory decides, on every
/// request, and each refusal is recorded.
#[tokio::test]
async fn analyst_powers_follow_the_directory_not_the_token() {
    let harness = Harness::new();
    harness.put_assigned_ticket().await;
    let as_analyst = |status: &str, role: &str| json!({"name": "Ana", "team": "fraud-investigations", "site": "eu-dub", "employer": "staff", "role": role, "status": status});
    // Each change the way an administrator makes it: statuses through their own routes
    // (a PUT keeps an existing agent's status), the role through a PUT.
    for (change, route, body) in [
        ("suspended", Some("suspend"), None),
        ("offboarded", Some("offboard"), None),
        ("demoted", None, Some(as_analyst("active", "agent"))),
    ] {
        let analyst = format!("ana-{change}");
        harness.put_agent(&analyst, as_analyst("active", "analyst")).await;
        let token = harness.agent_token(&analyst);
        let (status, answer) = harness.call(Method::GET, "/v1/alerts", Some(&token), None).await;
        assert_eq!(status, StatusCode::OK, "the active analyst works alerts: {answer}");
        if let Some(route) = route {
            harness.admin(Method::POST, &format!("/v1/agents/{analyst}/{route}"), json!({})).await;
        }
        if let Some(body) = body {
            harness.put_agent(&analyst, body).await;
        }
        harness.admin(Method::POST, "/v1/agents/agt-1/suspend", json!({})).await;
        let routes = [
            (Method::GET, "/v1/alerts", None),
            (Method::GET, "/v1/risk", None),
            (Method::POST, "/v1/detection/replay", None),
            (Method::POST, "/v1/agents/agt-1/reinstate", None),
            (Method::GET, "/v1/incidents", None),
            (Method::POST, "/v1/incidents", Some(json!({"title": "cover-up", "agents": ["agt-1"]}))),
        ];
        for (method, path, body) in routes {
            let (status, answer) = harness.call(method.clone(), path, Some(&token), body).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{change} analyst: {method} {path}: {answer}");
            assert_eq!(problem_type(&answer), "urn:cordon:problem:access-denied", "{answer}");
            let index = answer["ledger_index"].as_u64().unwrap();
            let cordon_entry::Entry::Access(entry) = entry_at(&harness, index) else { panic!("{index}") };
            assert_eq!((entry.agent.as_str(), entry.allowed()), (analyst.as_str(), false), "{entry:?}");
        }
        // The agent detection or an administrator suspended stays suspended.
        let agent = harness.state.gateway.agent("agt-1").unwrap().unwrap();
        assert_eq!(agent.status.name(), "suspended", "{change} analyst");
    }
    // An inactive agent gets no token, from the API or the command line's path alike.
    harness.put_agent("ana-2", as_analyst("suspended", "analyst")).await;
    assert!(harness.state.gateway.issue_agent_token("ana-2").is_err());
    let (status, answer) =
        harness.call(Method::POST, "/v1/agents/ana-2/token", Some(&harness.admin.clone()), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    // No directory agent may pass for a role identity.
    let (status, answer) = harness
        .call(
            Method::PUT,
            "/v1/agents/role:admin",
            Some(&harness.admin.clone()),
            Some(json!({"name": "X", "team": "l1-chat", "site": "us-sf", "employer": "staff", "role": "admin"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let harness = harness.restart_and_verify().await;
    let (status, _) = harness.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
}

/// Regression: the shared `role:analyst` identity could approve break-glass; a person must.
/// And a suspended agent could still file approval requests.
#[tokio::test]
async fn approvals_need_people_who_are_active() {
    let harness = Harness::new();
    harness.put_assigned_ticket().await;
    harness.put_agent("agt-2", json!({"name": "B", "team": "l1-chat", "site": "us-sf", "employer": "staff"})).await;
    let agent = harness.agent_token("agt-1");
    let other = harness.agent_token("agt-2");
    let shared = harness.state.gateway.issue_role_token(cordon_gateway::TokenRole::Analyst).unwrap();
    let (status, requested) = harness
        .call(Method::POST, "/v1/approvals", Some(&agent), Some(json!({"kind": "break_glass", "customer": "cus-1"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{requested}");
    let id = requested["id"].as_str().unwrap();
    let (status, answer) = harness
        .call(Method::POST, &format!("/v1/approvals/{id}/approve"), Some(&shared), Some(json!({"seconds": 60})))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert_eq!(problem_type(&answer), "urn:cordon:problem:wrong-role", "{answer}");
    assert!(answer["ledger_index"].is_u64(), "{answer}");

    harness.admin(Method::POST, "/v1/agents/agt-2/suspend", json!({})).await;
    let (status, answer) = harness
        .call(Method::POST, "/v1/approvals", Some(&other), Some(json!({"kind": "break_glass", "customer": "cus-1"})))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert_eq!(answer["policies"], json!(["inactive-agent-does-nothing"]), "{answer}");
    harness.restart_and_verify().await;
}

/// Regression: wrong-role refusals (a service, admin or analyst identity on card, reveal,
/// search or verify) were not in the ledger. Every refused attempt to reach customer data
/// is recorded.
#[tokio::test]
async fn refused_attempts_by_role_identities_are_recorded() {
    let harness = Harness::new();
    harness.put_assigned_ticket().await;
    let gateway = &harness.state.gateway;
    let identities = [
        gateway.issue_role_token(cordon_gateway::TokenRole::Service).unwrap(),
        gateway.issue_role_token(cordon_gateway::TokenRole::Admin).unwrap(),
        gateway.issue_role_token(cordon_gateway::TokenRole::Analyst).unwrap(),
    ];
    let requests = [
        (Method::GET, "/v1/customers/cus-1?ticket=t-1", None, "view"),
        (
            Method::POST,
            "/v1/customers/cus-1/reveal",
            Some(json!({"ticket": "t-1", "fields": ["email"], "reason": "r"})),
            "reveal",
        ),
        (
            Method::POST,
            "/v1/customers/cus-1/verify",
            Some(json!({"ticket": "t-1", "field": "email", "value": "x@y.z"})),
            "verify",
        ),
        (Method::POST, "/v1/search", Some(json!({"by": "email", "value": "nina@example.org"})), "search"),
    ];
    for token in &identities {
        for (method, path, body, action) in requests.clone() {
            let (status, answer) = harness.call(method.clone(), path, Some(token), body).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
            assert_eq!(problem_type(&answer), "urn:cordon:problem:wrong-role", "{answer}");
            let index = answer["ledger_index"].as_u64().unwrap();
            let cordon_entry::Entry::Access(entry) = entry_at(&harness, index) else { panic!("{index}") };
            assert!(entry.agent.starts_with("role:"), "{entry:?}");
            assert_eq!((entry.action.name(), entry.allowed()), (action, false), "{entry:?}");
        }
    }
    harness.restart_and_verify().await;
}

/// Regression: an agent put at a vendor site without `employer` defaulted to staff and
/// revealed a tax id. The employer is required, and anything but `staff` is a vendor.
#[tokio::test]
async fn a_missing_employer_grants_no_privilege() {
    let harness = Harness::new();
    let admin = harness.admin.clone();
    let cases = [
        (
            json!({"name": "V", "team": "kyc-review", "site": "vendor-bpo-1"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "employer",
        ),
        (
            json!({"name": "V", "team": "kyc-review", "site": "vendor-bpo-1", "employer": " "}),
            StatusCode::BAD_REQUEST,
            "employer",
        ),
        (json!({"name": "V", "team": "kyc-review", "site": "vendor-bpo-1", "employer": "Staff"}), StatusCode::OK, ""),
    ];
    for (body, expected, fragment) in cases {
        let (status, answer) = harness.call(Method::PUT, "/v1/agents/agt-v", Some(&admin), Some(body.clone())).await;
        assert_eq!(status, expected, "{body}: {answer}");
        assert!(answer.to_string().contains(fragment), "{body}: {answer}");
    }
    // `Staff` is not `staff`: the agent is a vendor's, and never reveals a tax id.
    harness.put_customer("cus-1", crate::support::customer_fields("Nina Simone", "nina@example.org", 10.0)).await;
    harness
        .admin(
            Method::PUT,
            "/v1/tickets/t-1",
            json!({"requester": "cus-1", "category": "kyc_verification", "assignee": "agt-v"}),
        )
        .await;
    let token = harness.agent_token("agt-v");
    let body = json!({"ticket": "t-1", "fields": ["tax_id"], "reason": "kyc"});
    let (status, answer) = harness.call(Method::POST, "/v1/customers/cus-1/reveal", Some(&token), Some(body)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert_eq!(answer["policies"], json!(["vendor-never-reveals-government-or-bank"]), "{answer}");
    // The import refuses a line without an employer too.
    let line = br#"{"id": "agt-w", "name": "W", "team": "kyc-review", "site": "vendor-bpo-1"}"#;
    let report =
        cordon_gateway::import(&harness.state.gateway, cordon_gateway::ImportKind::Agents, &line[..], |_| {}).unwrap();
    assert_eq!(report.rejected.len(), 1, "{report:?}");
    assert!(format!("{:?}", report.rejected).contains("employer"), "{report:?}");
    harness.restart_and_verify().await;
}

/// The date of birth `customer_fields` stores, and wrong guesses around it.
const BIRTH_DATE: &str = "1988-04-01";

fn verify_body(ticket: &str, field: &str, value: &str) -> serde_json::Value {
    json!({"ticket": ticket, "field": field, "value": value})
}

/// Regression: verify was an unthrottled, undetected oracle. An agent with a legitimate
/// ticket found a date of birth in 200 guesses in 0.2 s, risk 0, no alert. Verify answers a
/// handful of wrong statements per agent, customer and field, then refuses with its own
/// problem type, even the right value; each refusal is scored; the limit survives a
/// restart because it is rebuilt from the ledger.
#[tokio::test]
async fn verify_is_not_an_oracle_for_guessing() {
    let harness = Harness::new();
    harness.put_customer("cus-1", crate::support::customer_fields("Nina Simone", "nina@example.org", 10.0)).await;
    harness.put_agent("agt-1", json!({"name": "A", "team": "l1-chat", "site": "us-sf", "employer": "staff"})).await;
    harness
        .admin(
            Method::PUT,
            "/v1/tickets/t-1",
            json!({"requester": "cus-1", "category": "account_recovery", "assignee": "agt-1"}),
        )
        .await;
    let analyst = harness.state.gateway.issue_role_token(cordon_gateway::TokenRole::Analyst).unwrap();
    let agent = harness.agent_token("agt-1");
    let path = "/v1/customers/cus-1/verify";
    // Another field answers first, and still answers after: the limit is per field.
    let (status, answer) =
        harness.call(Method::POST, path, Some(&agent), Some(verify_body("t-1", "email", "nina@example.org"))).await;
    assert_eq!((status, answer["match"].as_bool()), (StatusCode::OK, Some(true)), "{answer}");
    let mut answers = Vec::new();
    for day in 1..=12 {
        let guess = format!("1988-03-{day:02}");
        let body = verify_body("t-1", "date_of_birth", &guess);
        let (status, answer) = harness.call(Method::POST, path, Some(&agent), Some(body)).await;
        answers.push((status, problem_type(&answer).to_string(), answer["match"].as_bool()));
    }
    // Three wrong statements are answered; then verify refuses, and detection, scoring each
    // refusal, soon contains the agent (step-up holds for verify as for reveal).
    for answer in &answers[..3] {
        assert_eq!(*answer, (StatusCode::OK, String::new(), Some(false)), "{answers:?}");
    }
    assert_eq!(answers[3].1, "urn:cordon:problem:verify-limit", "{answers:?}");
    for (status, code, _) in &answers[4..] {
        assert_eq!(*status, StatusCode::FORBIDDEN, "{answers:?}");
        let refused = matches!(code.as_str(), "urn:cordon:problem:verify-limit" | "urn:cordon:problem:access-denied");
        assert!(refused, "{answers:?}");
    }
    // The right value is refused too: no oracle at all.
    let right = verify_body("t-1", "date_of_birth", BIRTH_DATE);
    let (status, answer) = harness.call(Method::POST, path, Some(&agent), Some(right.clone())).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert!(answer["ledger_index"].is_u64(), "{answer}");
    // Detection scored the guessing.
    let (status, board) = harness.call(Method::GET, "/v1/risk", Some(&analyst), None).await;
    assert_eq!(status, StatusCode::OK, "{board}");
    let level = board["agents"]
        .as_array()
        .and_then(|agents| agents.iter().find(|row| row["agent"] == "agt-1"))
        .and_then(|row| row["level"].as_str());
    assert!(matches!(level, Some("step-up" | "suspend")), "guessing contained the agent: {board}");

    let harness = harness.restart_and_verify().await;
    let (status, answer) = harness.call(Method::POST, path, Some(&agent), Some(right)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "after a restart: {answer}");
}

/// Regression: verify of list and object fields (wallet addresses, a postal address)
/// always said no match. A statement matches when it equals one element.
#[tokio::test]
async fn verify_matches_one_element_of_a_list_or_an_object() {
    let harness = Harness::new();
    harness.put_customer("cus-1", crate::support::customer_fields("Nina Simone", "nina@example.org", 10.0)).await;
    harness.put_agent("agt-1", json!({"name": "A", "team": "l1-chat", "site": "us-sf", "employer": "staff"})).await;
    for (ticket, category) in [("t-1", "withdrawal_delay"), ("t-2", "address_change")] {
        harness
            .admin(
                Method::PUT,
                &format!("/v1/tickets/{ticket}"),
                json!({"requester": "cus-1", "category": category, "assignee": "agt-1"}),
            )
            .await;
    }
    let agent = harness.agent_token("agt-1");
    let cases = [
        ("t-1", "wallet_addresses", "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq", true),
        ("t-1", "wallet_addresses", "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdx", false),
        ("t-2", "postal_address", "Dublin", true),
        ("t-2", "postal_address", "D02 X285", true),
        ("t-2", "postal_address", "Cork", false),
    ];
    for (ticket, field, value, expected) in cases {
        let (status, answer) = harness
            .call(Method::POST, "/v1/customers/cus-1/verify", Some(&agent), Some(verify_body(ticket, field, value)))
            .await;
        assert_eq!((status, answer["match"].as_bool()), (StatusCode::OK, Some(expected)), "{field} {value}: {answer}");
    }
    harness.restart_and_verify().await;
}

/// A request made exactly as given: no content type or bearer prefix added.
async fn raw(
    harness: &Harness,
    method: Method,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;
    let mut request = axum::http::Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let request = request.body(axum::body::Body::from(body.to_string())).unwrap();
    let response = cordon_server::app(std::sync::Arc::clone(&harness.state)).oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (parts.status, parts.headers, value)
}

/// Regression: 401s lacked `WWW-Authenticate`, a lowercase `bearer` was refused, and
/// path-parse errors, 405, 414 and 431 were not problem+json; 415 and 422 were missing
/// from the OpenAPI document.
#[tokio::test]
async fn every_refusal_at_the_edge_is_a_problem() {
    let harness = Harness::new();
    harness.put_assigned_ticket().await;
    let agent = harness.agent_token("agt-1");
    let json = ("content-type", "application/json".to_string());
    // (method, path, headers, body, status, problem code)
    type Case<'a> = (Method, String, Vec<(&'a str, String)>, &'a str, StatusCode, &'a str);
    let cases: Vec<Case> = vec![
        (
            Method::GET,
            "/v1/customers/cus-1?ticket=t-1".into(),
            vec![("authorization", format!("bearer {agent}"))],
            "",
            StatusCode::OK,
            "",
        ),
        (
            Method::GET,
            "/v1/customers/cus-1?ticket=t-1".into(),
            vec![("authorization", format!("BEARER   {agent} "))],
            "",
            StatusCode::OK,
            "",
        ),
        (Method::GET, "/v1/customers/cus-1".into(), vec![], "", StatusCode::UNAUTHORIZED, "unauthenticated"),
        (
            Method::GET,
            "/v1/customers/cus-1".into(),
            vec![("authorization", "Basic abc".into())],
            "",
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        ),
        (
            Method::GET,
            "/v1/alerts/not-a-number".into(),
            vec![("authorization", format!("Bearer {agent}"))],
            "",
            StatusCode::BAD_REQUEST,
            "bad-request",
        ),
        (
            Method::PATCH,
            "/v1/customers/cus-1".into(),
            vec![("authorization", format!("Bearer {agent}"))],
            "",
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
        ),
        (
            Method::GET,
            format!("/v1/customers/{}", "x".repeat(9000)),
            vec![("authorization", format!("Bearer {agent}"))],
            "",
            StatusCode::URI_TOO_LONG,
            "uri-too-long",
        ),
        (
            Method::GET,
            "/v1/customers/cus-1".into(),
            vec![("authorization", format!("Bearer {agent}")), ("x-padding", "y".repeat(17_000))],
            "",
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers-too-large",
        ),
        (
            Method::POST,
            "/v1/search".into(),
            vec![("authorization", format!("Bearer {agent}"))],
            r#"{"by":"email","value":"a@b.c"}"#,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        ),
        (
            Method::POST,
            "/v1/search".into(),
            vec![("authorization", format!("Bearer {agent}")), json.clone()],
            r#"{"by":"email"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable-body",
        ),
    ];
    for (method, path, headers, body, expected, code) in cases {
        let shown = &path[..path.len().min(60)];
        let (status, response_headers, answer) = raw(&harness, method.clone(), &path, &headers, body).await;
        assert_eq!(status, expected, "{method} {shown}: {answer}");
        if !status.is_success() {
            assert_eq!(problem_type(&answer), format!("urn:cordon:problem:{code}"), "{method} {shown}: {answer}");
            let content_type = response_headers.get("content-type").and_then(|value| value.to_str().ok());
            assert_eq!(content_type, Some("application/problem+json"), "{method} {shown}");
        }
        if status == StatusCode::UNAUTHORIZED {
            let challenge = response_headers.get("www-authenticate").and_then(|value| value.to_str().ok());
            assert_eq!(challenge, Some("Bearer realm=\"cordon\""), "{method} {shown}");
        }
    }
    // Every status the API can answer with is in its document.
    let (_, document) = harness.call(Method::GET, "/openapi.json", None, None).await;
    let search = &document["paths"]["/v1/search"]["post"]["responses"];
    for status in ["400", "401", "403", "405", "413", "414", "415", "422", "431"] {
        assert!(search.get(status).is_some(), "POST /v1/search documents {status}");
    }
    harness.restart_and_verify().await;
}

/// A token signed with this deployment's key, with claims as given (a stolen-key-free way
/// to test what the verifier accepts).
fn signed(harness: &Harness, claims: &cordon_gateway::Claims) -> String {
    let hex = std::fs::read_to_string(harness.data().path("keys/token-signing")).unwrap();
    let bytes: Vec<u8> =
        (0..hex.trim().len()).step_by(2).map(|at| u8::from_str_radix(&hex.trim()[at..at + 2], 16).unwrap()).collect();
    cordon_gateway::TokenKey::new(&bytes).unwrap().issue(claims).unwrap()
}

/// Regression: tokens had no bound on lifetime, no check of `iat`/`nbf`, and no revocation,
/// so a leaked admin, analyst or service token worked until it expired.
#[tokio::test]
async fn tokens_are_bounded_in_time_and_revocable() {
    let harness = Harness::new();
    let now = 1_795_000_000;
    let role_claims = |role: cordon_gateway::TokenRole, iat: i64, nbf: Option<i64>, exp: i64| cordon_gateway::Claims {
        sub: role.identity(),
        role,
        iat,
        nbf,
        exp,
        jti: format!("t-{iat}-{exp}"),
        session: None,
        sign_in: cordon_gateway::SignIn::default(),
    };
    let claims = |iat, nbf, exp| role_claims(cordon_gateway::TokenRole::Service, iat, nbf, exp);
    let admin = |iat, nbf, exp| role_claims(cordon_gateway::TokenRole::Admin, iat, nbf, exp);
    let day = 86_400;
    let cases = [
        ("valid", claims(now, Some(now), now + 3600), StatusCode::OK, ""),
        ("issued in the future", claims(now + 3600, None, now + 7200), StatusCode::UNAUTHORIZED, "not valid yet"),
        ("not before the future", claims(now, Some(now + 3600), now + 7200), StatusCode::UNAUTHORIZED, "not valid yet"),
        // A service's token may live a year (a scraper is not re-keyed every few hours) ...
        ("a service's year", claims(now, None, now + 365 * day), StatusCode::OK, ""),
        (
            "a service's longer",
            claims(now, None, now + 400 * day),
            StatusCode::UNAUTHORIZED,
            "longer than a token of its role",
        ),
        // ... a person's at most 30 days, whatever the token claims.
        (
            "an administrator's 31 days",
            admin(now, None, now + 31 * day),
            StatusCode::UNAUTHORIZED,
            "longer than a token of its role",
        ),
        ("expired", claims(now - 7200, None, now - 3600), StatusCode::UNAUTHORIZED, "expired"),
    ];
    for (what, claims, expected, fragment) in cases {
        let token = signed(&harness, &claims);
        let (status, answer) = harness.call(Method::GET, "/metrics", Some(&token), None).await;
        assert_eq!(status, expected, "{what}: {answer}");
        assert!(answer.to_string().contains(fragment), "{what}: {answer}");
    }

    // Revocation: by the token, or by its id; held across a restart. A service's token lives
    // [tokens] service_lifetime_seconds (90 days by default), a person's lifetime_seconds.
    let service = harness.state.gateway.issue_role_token(cordon_gateway::TokenRole::Service).unwrap();
    let lived = |token: &str| {
        let claims = harness.state.gateway.authenticate(token).unwrap();
        claims.exp - claims.iat
    };
    assert_eq!(lived(&service), 90 * day);
    assert_eq!(lived(&harness.state.gateway.issue_role_token(cordon_gateway::TokenRole::Analyst).unwrap()), 12 * 3600);
    let analyst = harness.state.gateway.issue_role_token(cordon_gateway::TokenRole::Analyst).unwrap();
    assert_eq!(harness.call(Method::GET, "/metrics", Some(&service), None).await.0, StatusCode::OK);
    let revoked = harness.admin(Method::POST, "/v1/tokens/revoke", json!({"token": service})).await;
    assert!(revoked["ledger_index"].is_u64(), "{revoked}");
    let jti = harness.state.gateway.authenticate(&analyst).unwrap().jti;
    harness.admin(Method::POST, "/v1/tokens/revoke", json!({"jti": jti})).await;
    let (status, answer) =
        harness.call(Method::POST, "/v1/tokens/revoke", Some(&analyst), Some(json!({"jti": "x"}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    let harness = harness.restart_and_verify().await;
    for token in [&service, &analyst] {
        let (status, answer) = harness.call(Method::GET, "/v1/alerts", Some(token), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
        assert!(answer["detail"].as_str().unwrap_or_default().contains("revoked"), "{answer}");
    }
    // Only an administrator revokes.
    let other = harness.state.gateway.issue_role_token(cordon_gateway::TokenRole::Service).unwrap();
    let (status, _) = harness.call(Method::POST, "/v1/tokens/revoke", Some(&other), Some(json!({"jti": "y"}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// Regression: negative or inconsistent settings (a token lifetime, risk thresholds out of
/// order, a webhook that is not a URL) started without complaint.
#[test]
fn settings_a_deployment_cannot_mean_are_refused_by_name() {
    type Edit = fn(&mut cordon_gateway::Config);
    let cases: [(&str, Edit, &str); 6] = [
        ("defaults", |_| {}, ""),
        ("negative lifetime", |config| config.tokens.lifetime_seconds = -5, "lifetime_seconds"),
        ("thresholds out of order", |config| config.detection.thresholds.step_up_risk = 100.0, "step_up_risk"),
        ("not a number", |config| config.detection.thresholds.alert_risk = f64::NAN, "alert_risk"),
        ("webhook", |config| config.detection.webhook_url = "ftp://example.org".into(), "webhook_url"),
        ("zero body", |config| config.limits.request_body_bytes_max = 0, "request_body_bytes_max"),
    ];
    for (what, edit, fragment) in cases {
        let mut config = cordon_gateway::Config::default();
        edit(&mut config);
        match config.check() {
            Ok(()) => assert!(fragment.is_empty(), "{what} was accepted"),
            Err(problem) => assert!(!fragment.is_empty() && problem.contains(fragment), "{what}: {problem}"),
        }
    }
}

/// Regression: the data directory, `cordon.toml` and the notices' outbox followed the
/// umask; tickets accepted requesters and assignees that do not exist; an unknown ticket
/// was refused as "raised by another customer".
#[tokio::test]
async fn directory_files_are_private_and_tickets_name_real_people() {
    use std::os::unix::fs::PermissionsExt as _;
    let harness = Harness::new();
    harness.put_assigned_ticket().await;
    let mode = |path: std::path::PathBuf| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(harness.data().path("")), 0o700, "the data directory");
    assert_eq!(mode(harness.data().path("cordon.toml")), 0o600, "cordon.toml");

    let admin = harness.admin.clone();
    let cases = [
        (json!({"requester": "cus-9", "category": "general_inquiry"}), "cus-9"),
        (json!({"requester": "cus-1", "category": "general_inquiry", "assignee": "agt-9"}), "agt-9"),
    ];
    for (body, fragment) in cases {
        let (status, answer) = harness.call(Method::PUT, "/v1/tickets/t-9", Some(&admin), Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert!(answer["detail"].as_str().unwrap_or_default().contains(fragment), "{body}: {answer}");
    }
    let agent = harness.agent_token("agt-1");
    let (status, answer) = harness.call(Method::GET, "/v1/customers/cus-1?ticket=t-404", Some(&agent), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(answer["detail"].as_str().unwrap_or_default().contains("`t-404` does not exist"), "{answer}");
    harness.restart_and_verify().await;
}

/// Regression: two analysts deciding one alert at the same moment both reached the ledger
/// (a dismissal and a confirmation of the same alert). One decision per alert.
#[tokio::test]
async fn one_alert_gets_one_decision() {
    let harness = Harness::new();
    harness.put_assigned_ticket().await;
    harness.put_canary("cus-7", crate::support::customer_fields("Canary Bird", "canary@example.org", 5.0)).await;
    for id in ["ana-1", "ana-2"] {
        let analyst = json!({"name": id, "team": "fraud-investigations", "site": "eu-dub", "employer": "staff", "role": "analyst"});
        harness.put_agent(id, analyst).await;
    }
    let agent = harness.agent_token("agt-1");
    let (status, _) = harness.call(Method::GET, "/v1/customers/cus-7", Some(&agent), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the canary touch is refused");
    let gateway = &harness.state.gateway;
    let first = gateway.authenticate(&harness.agent_token("ana-1")).unwrap();
    let second = gateway.authenticate(&harness.agent_token("ana-2")).unwrap();
    let alerts = gateway.alerts(&first, Some("open"), 10, "r-0").await.unwrap();
    let id = alerts.first().expect("an alert").id;
    let (dismissed, confirmed) = tokio::join!(
        gateway.decide_alert(&first, id, false, "looks fine", "r-1"),
        gateway.decide_alert(&second, id, true, "harvesting", "r-2"),
    );
    assert_eq!(
        [dismissed.is_ok(), confirmed.is_ok()].iter().filter(|ok| **ok).count(),
        1,
        "{dismissed:?} {confirmed:?}"
    );
    let mut decisions = 0;
    gateway
        .audit()
        .for_each_entry(&mut |_, bytes| {
            if let Ok(cordon_entry::Entry::Change(change)) = cordon_entry::decode(bytes) {
                decisions += u32::from(
                    change.change.starts_with("alert.") && change.detail.as_deref() == Some(&format!("alert {id}")),
                );
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(decisions, 1);
    harness.restart_and_verify().await;
}

/// Every other input an insider (or an administrator's stolen token) can fill, with the
/// worst values: escapes and control characters, sizes past the ledger's limit once
/// escaped, other people's ids. Each is answered with a 2xx or a problem, never a 5xx, and
/// the data directory then opens, answers and verifies.
#[tokio::test]
async fn hostile_strings_in_every_other_input_leave_the_gate_standing() {
    let harness = Harness::new();
    harness.put_assigned_ticket().await;
    harness.put_agent("agt-2", json!({"name": "B", "team": "l1-chat", "site": "us-sf", "employer": "staff"})).await;
    let agent = harness.agent_token("agt-1");
    let admin = harness.admin.clone();
    let analyst = harness.state.gateway.issue_role_token(cordon_gateway::TokenRole::Analyst).unwrap();
    let service = harness.state.gateway.issue_role_token(cordon_gateway::TokenRole::Service).unwrap();
    let nasty = "q\"\\\u{0}\u{1}\u{1f}\u{7f}\u{2028}é🙂</x>";
    // 10,000 control characters: 60,000 bytes once JSON escapes them, over the ledger's
    // limit with the rest of an entry, under the request body's 64 KiB.
    let escaped_huge = "\u{1}".repeat(10_000);
    // What a name may hold: anything but control characters.
    let printable = "O'Brien \"Bob\" \\ é🙂 </x>";
    let agent_body = |name: &str, team: &str| json!({"name": name, "team": team, "site": "us-sf", "employer": "staff"});
    type Case = (&'static str, Method, String, Option<serde_json::Value>, &'static [u16]);
    // A suspension a PUT must not undo, before and after the restart.
    harness.admin(Method::POST, "/v1/agents/agt-2/suspend", json!({})).await;
    let cases: Vec<(&str, Case)> = vec![
        (
            "admin",
            (
                "agent with control characters",
                Method::PUT,
                "/v1/agents/agt-w".into(),
                Some(agent_body(nasty, "l1-chat")),
                &[400],
            ),
        ),
        (
            "admin",
            (
                "agent with quotes, backslashes and emoji",
                Method::PUT,
                "/v1/agents/agt-x".into(),
                Some(agent_body(printable, "l1-chat")),
                &[200],
            ),
        ),
        (
            "admin",
            ("agent whose team is no id", Method::PUT, "/v1/agents/agt-z".into(), Some(agent_body("Z", nasty)), &[400]),
        ),
        (
            "admin",
            (
                "agent too large to record",
                Method::PUT,
                "/v1/agents/agt-y".into(),
                Some(agent_body(&escaped_huge, "l1-chat")),
                &[400],
            ),
        ),
        (
            "admin",
            (
                "ticket for another agent's customer, a stranger assigned",
                Method::PUT,
                "/v1/tickets/t-2".into(),
                Some(json!({"requester": "cus-1", "category": "general_inquiry", "assignee": nasty})),
                &[400],
            ),
        ),
        (
            "admin",
            (
                "ticket id with escapes",
                Method::PUT,
                format!("/v1/tickets/{}", encode_path(nasty)),
                Some(json!({"requester": "cus-1", "category": "general_inquiry"})),
                &[400],
            ),
        ),
        (
            "admin",
            (
                "revoke an id with escapes",
                Method::POST,
                "/v1/tokens/revoke".into(),
                Some(json!({"jti": nasty})),
                &[400],
            ),
        ),
        (
            "admin",
            (
                "revoke a token that is not one",
                Method::POST,
                "/v1/tokens/revoke".into(),
                Some(json!({"token": escaped_huge})),
                &[400],
            ),
        ),
        ("admin", ("revoke with neither", Method::POST, "/v1/tokens/revoke".into(), Some(json!({})), &[400])),
        (
            "agent",
            (
                "approval for an escaped customer",
                Method::POST,
                "/v1/approvals".into(),
                Some(json!({"kind": "break_glass", "customer": nasty})),
                &[404],
            ),
        ),
        (
            "agent",
            (
                "approval for a huge customer id",
                Method::POST,
                "/v1/approvals".into(),
                Some(json!({"kind": "break_glass", "customer": "c".repeat(200)})),
                &[400],
            ),
        ),
        (
            "agent",
            (
                "search for escapes",
                Method::POST,
                "/v1/search".into(),
                Some(json!({"by": "email", "value": nasty})),
                &[400],
            ),
        ),
        (
            "agent",
            (
                "verify a statement of escapes",
                Method::POST,
                "/v1/customers/cus-1/verify".into(),
                Some(json!({"ticket": "t-1", "field": "email", "value": nasty})),
                &[200],
            ),
        ),
        (
            "agent",
            (
                "reveal with another agent's ticket id",
                Method::POST,
                "/v1/customers/cus-1/reveal".into(),
                Some(json!({"ticket": "t-404", "fields": ["email"], "reason": nasty})),
                &[403],
            ),
        ),
        (
            "service",
            (
                "history of an escaped customer",
                Method::GET,
                format!("/v1/customers/{}/access-history", encode_path(nasty)),
                None,
                &[200],
            ),
        ),
        (
            "analyst",
            (
                "incident with an escaped title and a stranger",
                Method::POST,
                "/v1/incidents".into(),
                Some(json!({"title": nasty, "agents": [nasty]})),
                &[404],
            ),
        ),
        (
            "analyst",
            (
                "incident with an escaped title",
                Method::POST,
                "/v1/incidents".into(),
                Some(json!({"title": nasty})),
                &[200],
            ),
        ),
        (
            "analyst",
            (
                "status of an escaped incident",
                Method::POST,
                format!("/v1/incidents/{}/status", encode_path(nasty)),
                Some(json!({"status": {"negotiations": nasty}})),
                &[404],
            ),
        ),
        (
            "analyst",
            (
                "an escaped status field",
                Method::POST,
                "/v1/incidents/inc-1/status".into(),
                Some(json!({"status": {nasty: "x"}})),
                &[400],
            ),
        ),
        (
            "analyst",
            (
                "report of the escaped incident",
                Method::GET,
                "/v1/incidents/inc-1/report?format=html".into(),
                None,
                &[200],
            ),
        ),
        (
            "analyst",
            ("alerts with a huge limit", Method::GET, "/v1/alerts?limit=18446744073709551615".into(), None, &[200]),
        ),
        (
            "admin",
            (
                "offboard an escaped agent",
                Method::POST,
                format!("/v1/agents/{}/offboard", encode_path(nasty)),
                Some(json!({})),
                &[400, 404],
            ),
        ),
        (
            "admin",
            (
                "offboard a huge agent id",
                Method::POST,
                format!("/v1/agents/{}/offboard", "a".repeat(4000)),
                Some(json!({})),
                &[400, 404],
            ),
        ),
        (
            "admin",
            (
                "offboard a role identity",
                Method::POST,
                "/v1/agents/role:admin/offboard".into(),
                Some(json!({})),
                &[400, 404],
            ),
        ),
        (
            "admin",
            (
                "reinstate a suspended agent through a PUT",
                Method::PUT,
                "/v1/agents/agt-2".into(),
                Some(json!({"name": "B", "team": "l1-chat", "site": "us-sf", "employer": "staff", "status": "active"})),
                &[200],
            ),
        ),
        (
            "service",
            (
                "history of a huge customer id",
                Method::GET,
                format!("/v1/customers/{}/access-history", "c".repeat(4000)),
                None,
                &[200, 400],
            ),
        ),
        ("anyone", ("readiness with a query", Method::GET, format!("/readyz?{}", encode_path(nasty)), None, &[200])),
        (
            "analyst",
            (
                "an export record of an unknown format",
                Method::POST,
                "/v1/exports".into(),
                Some(json!({"format": nasty})),
                &[400, 422],
            ),
        ),
        (
            "analyst",
            (
                "an export record with a huge escaped time",
                Method::POST,
                "/v1/exports".into(),
                Some(json!({"format": "ocsf", "since": escaped_huge})),
                &[400],
            ),
        ),
        (
            "analyst",
            (
                "an export record at the ends of every number",
                Method::POST,
                "/v1/exports".into(),
                Some(json!({"format": "ocsf", "since": "99999999999999999-01-01", "until": "9223372036854775807",
                    "from_entry": u64::MAX, "follow": true})),
                &[200, 400],
            ),
        ),
        (
            "analyst",
            (
                "an export record with a field it does not take",
                Method::POST,
                "/v1/exports".into(),
                Some(json!({"format": "ocsf", "detail": nasty})),
                &[400, 422],
            ),
        ),
        (
            "agent",
            (
                "an agent recording an export",
                Method::POST,
                "/v1/exports".into(),
                Some(json!({"format": "ocsf"})),
                &[403],
            ),
        ),
        (
            "analyst",
            (
                "an attribution sample of hostile cells",
                Method::POST,
                "/v1/incidents/inc-1/attribute".into(),
                Some(json!({"sample": format!("email,name\n{nasty},{escaped_huge}\n\"unclosed")})),
                &[200, 400],
            ),
        ),
    ];
    for (who, (what, method, path, body, expected)) in cases {
        let token = match who {
            "admin" => &admin,
            "agent" => &agent,
            "analyst" => &analyst,
            _ => &service,
        };
        let (status, answer) = harness.call(method.clone(), &path, Some(token), body).await;
        assert!(expected.contains(&status.as_u16()), "{what}: {status} {answer}");
        if !status.is_success() {
            assert!(problem_type(&answer).starts_with("urn:cordon:problem:"), "{what}: {answer}");
        }
    }
    // The report of the escaped title escapes it.
    let (_, report) = harness.call(Method::GET, "/v1/incidents/inc-1/report?format=html", Some(&analyst), None).await;
    assert!(!report.to_string().contains("</x>"), "the title is escaped in HTML");
    let harness = harness.restart_and_verify().await;
    // The agent stored with quotes, backslashes and emoji is read back as it was.
    let stored = harness.state.gateway.agent("agt-x").unwrap().unwrap();
    assert_eq!(stored.name, printable);
    assert_eq!(harness.state.gateway.agent("agt-2").unwrap().unwrap().status.name(), "suspended");
}

/// An import is another way to write agents, so it must not be a way around a recorded
/// suspension: a line that would change an existing agent's status is refused with its
/// reason (it used to be stored, and now would be silently ignored), and hostile lines are
/// refused one by one while the rest import. The data directory then opens and verifies.
#[tokio::test]
async fn an_import_cannot_reinstate_a_suspended_agent() {
    let harness = Harness::new();
    harness.put_assigned_ticket().await;
    harness.admin(Method::POST, "/v1/agents/agt-1/suspend", json!({})).await;
    let lines = [
        json!({"id": "agt-1", "name": "A", "team": "l1-chat", "site": "us-sf", "employer": "staff", "status": "active"}),
        json!({"id": "agt-\u{0}\u{1f}\"", "name": "N", "team": "l1-chat", "site": "us-sf", "employer": "staff"}),
        json!({"id": "role:admin", "name": "R", "team": "l1-chat", "site": "us-sf", "employer": "staff"}),
        json!({"id": "agt-new", "name": "New", "team": "l1-chat", "site": "us-sf", "employer": "staff"}),
    ];
    let input: String = lines.iter().map(|line| format!("{line}\n")).collect();
    let report =
        cordon_gateway::import(&harness.state.gateway, cordon_gateway::ImportKind::Agents, input.as_bytes(), |_| {})
            .unwrap();
    assert_eq!(report.imported, 1, "{report:?}");
    let reasons: Vec<(u64, &str)> =
        report.rejected.iter().map(|rejected| (rejected.line, rejected.reason.as_str())).collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons[0].1.contains("is suspended and an import does not change statuses"), "{reasons:?}");
    let harness = harness.restart_and_verify().await;
    assert_eq!(harness.state.gateway.agent("agt-1").unwrap().unwrap().status.name(), "suspended");
    assert!(harness.state.gateway.agent("agt-new").unwrap().is_some());
}
