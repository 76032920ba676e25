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
    let first = cordon_server::deliver_due(gateway, &cordon_server::Outbound::web(), now).await.unwrap();
    assert_eq!((first.delivered, first.failed), (0, 1), "the receiver refused");
    let early = cordon_server::deliver_due(gateway, &cordon_server::Outbound::web(), now + 10).await.unwrap();
    assert_eq!((early.delivered, early.failed), (0, 0), "nothing is due before the backoff");

    // A restart in between: the queue is in the store.
    let harness = harness.reopen();
    let gateway = &harness.state.gateway;
    assert_eq!(gateway.outbox_pending().unwrap(), 1);
    let later = now + cordon_server::backoff_ms(0);
    assert_eq!(
        cordon_server::deliver_due(gateway, &cordon_server::Outbound::web(), later).await.unwrap().failed,
        1,
        "refused a second time"
    );
    let last = later + cordon_server::backoff_ms(1);
    assert_eq!(cordon_server::deliver_due(gateway, &cordon_server::Outbound::web(), last).await.unwrap().delivered, 1);
    assert_eq!(gateway.outbox_pending().unwrap(), 0);
    let bodies = received.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert_eq!((bodies[0]["kind"].as_str(), bodies[0]["agent"].as_str()), (Some("alert"), Some("agt-1")));
    assert_eq!(bodies[0]["level"], "suspend");
    assert_eq!(bodies[0]["signals"][0]["name"], "canary");
}

/// An HTTPS webhook receiver with a certificate from its own authority: it records each
/// delivery's signature header, delivery id and body. Returns its URL, the authority's PEM
/// file and what it received.
async fn tls_receiver(
    dir: &std::path::Path,
) -> (String, std::path::PathBuf, Arc<Mutex<Vec<(String, String, String)>>>) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let mut authority = CertificateParams::new(Vec::<String>::new()).unwrap();
    authority.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let authority_key = KeyPair::generate().unwrap();
    let authority_pem = authority.self_signed(&authority_key).unwrap().pem();
    let issuer = Issuer::new(authority, authority_key);
    let server_key = KeyPair::generate().unwrap();
    let server =
        CertificateParams::new(vec!["localhost".to_string()]).unwrap().signed_by(&server_key, &issuer).unwrap();
    let (ca, cert, key) = (dir.join("ca.pem"), dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&ca, &authority_pem).unwrap();
    std::fs::write(&cert, server.pem()).unwrap();
    std::fs::write(&key, server_key.serialize_pem()).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(cordon_server::tls::server_config(&cert, &key).unwrap());
    let received: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
    let store = Arc::clone(&received);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let (acceptor, store) = (acceptor.clone(), Arc::clone(&store));
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else { return };
                let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let store = Arc::clone(&store);
                    async move {
                        let header = |name: &str| {
                            request.headers().get(name).and_then(|value| value.to_str().ok()).unwrap_or("").to_string()
                        };
                        let (signature, delivery) = (header("x-cordon-signature"), header("x-cordon-delivery"));
                        let body = http_body_util::BodyExt::collect(request.into_body()).await.unwrap().to_bytes();
                        store.lock().unwrap().push((signature, delivery, String::from_utf8_lossy(&body).into_owned()));
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Empty::<
                            hyper::body::Bytes,
                        >::new()))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (format!("https://localhost:{port}/hook"), ca, received)
}

/// Deliveries go over TLS to a receiver whose authority the operator names (and fail to one
/// whose authority nobody trusts); each carries a signature the receiver can check with the
/// secret `cordon keys webhook-secret` prints, over the timestamp and the exact body.
#[tokio::test]
async fn webhooks_go_over_tls_signed_so_the_receiver_can_check_them() {
    let scratch = tempfile::tempdir().unwrap();
    let (url, ca, received) = tls_receiver(scratch.path()).await;
    let harness = Harness::with_config(|config| config.detection.webhook_url = url.clone());
    with_canary(&harness).await;
    let (status, _) =
        harness.call(Method::GET, "/v1/customers/cus-999", Some(&harness.agent_token("agt-1")), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let gateway = &harness.state.gateway;
    let now = gateway.now_ms();

    // Trusting only the web's roots, the receiver's certificate is refused: nothing is sent.
    let refused = cordon_server::deliver_due(gateway, &cordon_server::Outbound::web(), now).await.unwrap();
    assert_eq!((refused.delivered, refused.failed), (0, 1));
    assert!(received.lock().unwrap().is_empty());
    // Trusting the operator's authority, it is delivered, signed.
    let outbound = cordon_server::Outbound::new(Some(&ca)).unwrap();
    let later = now + cordon_server::backoff_ms(0);
    let delivered = cordon_server::deliver_due(gateway, &outbound, later).await.unwrap();
    assert_eq!((delivered.delivered, delivered.failed), (1, 0));
    let (signature, delivery, body) = received.lock().unwrap()[0].clone();
    assert!(!delivery.is_empty(), "the delivery id is sent");
    let (timestamp, digest) = signature.strip_prefix("t=").and_then(|rest| rest.split_once(",v1=")).unwrap();
    assert_eq!(timestamp.parse::<i64>().unwrap(), later / 1000, "{signature}");
    // The receiver's recipe: HMAC-SHA256 under the secret's text, over "<t>.<body>".
    let expected = |topic: &str, id: &str, body: &str| {
        use hmac::{KeyInit as _, Mac as _};
        let secret = harness.data().webhook_secret(topic).unwrap();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{timestamp}.{id}.{body}").as_bytes());
        mac.finalize().into_bytes().iter().map(|byte| format!("{byte:02x}")).collect::<String>()
    };
    assert_eq!(digest, expected("alert", &delivery, &body), "the signature checks out over the body as received");
    assert_ne!(digest, expected("alert", &delivery, &body.replace("suspend", "normal")), "an altered body does not");
    assert_ne!(digest, expected("alert", "999", &body), "nor under another delivery id");
    assert_ne!(digest, expected("protect", &delivery, &body), "nor with the other topic's secret");
    assert_ne!(
        *harness.data().webhook_secret("alert").unwrap(),
        *harness.data().webhook_secret("protect").unwrap(),
        "each receiver holds a secret of its own"
    );
    let alert: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(alert["agent"], "agt-1");
}

/// The newest access entry in the ledger.
fn last_access(harness: &Harness) -> cordon_entry::AccessEntry {
    let size = harness.state.gateway.audit().size();
    (0..size)
        .rev()
        .find_map(|index| match crate::support::entry_at(harness, index) {
            cordon_entry::Entry::Access(access) => Some(access),
            _ => None,
        })
        .expect("an access entry")
}

/// Who arranged a ticket (opened it for the customer, put it in the agent's queue) is checked
/// when the ticket is put, and every access under it records both for detection's replay; a
/// search records why its hits could be looked for; a callback's reveal records what a
/// callback does not need. Each fact is read back from the ledger entry the request wrote.
#[tokio::test]
async fn who_arranged_an_access_reason_is_checked_and_recorded() {
    let harness = Harness::new();
    harness.put_assigned_ticket().await;
    harness.put_agent("agt-2", json!({"name": "B", "team": "l1-chat", "site": "us-sf", "employer": "staff"})).await;
    harness.put_customer("cus-2", customer_fields("Otis Redding", "otis@example.org", 10.0)).await;
    let admin = harness.admin.clone();

    // Refused: names that are not agents, and an assigner with nobody assigned.
    let refusals = [
        (
            json!({"requester": "cus-1", "category": "general_inquiry", "assignee": "agt-1", "opened_by": "agt-404"}),
            "opened_by `agt-404` is not an agent",
        ),
        (
            json!({"requester": "cus-1", "category": "general_inquiry", "assignee": "agt-1", "assigned_by": "agt-404"}),
            "assigned_by `agt-404` is not an agent",
        ),
        (json!({"requester": "cus-1", "category": "general_inquiry", "assigned_by": "agt-2"}), "it has no assignee"),
        // Values that cannot be ids: refused by the field, cut short, never looked up.
        (
            json!({"requester": "cus-1", "category": "general_inquiry", "assignee": "agt-1", "opened_by": "agt-2\u{0}\n\u{1b}[2J"}),
            "opened_by: agent id `agt-2",
        ),
        (
            json!({"requester": "cus-1", "category": "general_inquiry", "assignee": "agt-1", "assigned_by": "a".repeat(2_000)}),
            "assigned_by: agent id `aaaa",
        ),
        (json!({"requester": "cus-1", "category": "general_inquiry", "assignee": "agt-1", "opened_by": ""}), ""),
        (json!({"requester": "cus 1", "category": "general_inquiry"}), "requester: customer id `cus 1` is not valid"),
    ];
    for (body, expected) in refusals {
        let (status, answer) = harness.call(Method::PUT, "/v1/tickets/t-bad", Some(&admin), Some(body.clone())).await;
        if expected.is_empty() {
            // An empty name means none, as for the assignee.
            assert!(status.is_success(), "{body}: {answer}");
            continue;
        }
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        let detail = answer["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(expected), "{expected}: {answer}");
        assert!(detail.len() < 400 && !detail.chars().any(char::is_control), "short and printable: {detail:?}");
    }
    assert!(harness.store().ticket("t-bad").unwrap().is_some_and(|ticket| ticket.opened_by.is_none()));

    // A ticket agt-2 opened for cus-2 and handed to agt-1.
    let handed = json!({"requester": "cus-2", "category": "general_inquiry", "assignee": "agt-1", "opened_by": "agt-2", "assigned_by": "agt-2"});
    harness.admin(Method::PUT, "/v1/tickets/t-2", handed).await;
    let agent = harness.agent_token("agt-1");
    let other = harness.agent_token("agt-2");
    // What the entry says: why, who opened the ticket, who assigned it, fields beyond need.
    type Recorded<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [&'a str]);
    let cases: Vec<(&str, &str, Method, String, Value, Recorded<'_>)> = vec![
        (
            "the customer's routed ticket",
            "agt-1",
            Method::GET,
            "/v1/customers/cus-1?ticket=t-1".into(),
            Value::Null,
            ("ticket", None, None, &[]),
        ),
        (
            "a ticket a colleague opened and handed over",
            "agt-1",
            Method::GET,
            "/v1/customers/cus-2?ticket=t-2".into(),
            Value::Null,
            ("ticket", Some("agt-2"), Some("agt-2"), &[]),
        ),
        (
            "a search whose hit has the agent's ticket",
            "agt-1",
            Method::POST,
            "/v1/search".into(),
            json!({"by": "email", "value": "nina@example.org"}),
            ("ticket", None, None, &[]),
        ),
        (
            "a search whose hit nothing explains",
            "agt-2",
            Method::POST,
            "/v1/search".into(),
            json!({"by": "email", "value": "nina@example.org"}),
            ("unexplained", None, None, &[]),
        ),
        (
            "a callback revealing an address",
            "agt-1",
            Method::POST,
            "/v1/customers/cus-1/reveal".into(),
            json!({"fields": ["phone", "postal_address"], "reason": "callback"}),
            ("callback", None, None, &["postal_address"]),
        ),
    ];
    for (what, who, method, path, body, (why, opened_by, assigned_by, beyond)) in cases {
        let token = if who == "agt-1" { &agent } else { &other };
        let body = (!body.is_null()).then_some(body);
        let (status, answer) = harness.call(method, &path, Some(token), body).await;
        // cordon's own policies refuse a reveal with no ticket in hand; its entry still
        // records what detection scores.
        let expected = if why == "callback" { StatusCode::FORBIDDEN } else { StatusCode::OK };
        assert_eq!(status, expected, "{what}: {answer}");
        let entry = last_access(&harness);
        assert_eq!(entry.agent, who, "{what}");
        assert_eq!(entry.why.as_deref(), Some(why), "{what}");
        assert_eq!((entry.opened_by.as_deref(), entry.assigned_by.as_deref()), (opened_by, assigned_by), "{what}");
        assert_eq!(entry.beyond_need, beyond, "{what}");
    }
    // A search that finds nobody has no reason to record.
    let (status, _) = harness
        .call(Method::POST, "/v1/search", Some(&agent), Some(json!({"by": "email", "value": "nobody@example.org"})))
        .await;
    assert!(status.is_success());
    assert_eq!(last_access(&harness).why, None);
    harness.restart_and_verify().await;
}
