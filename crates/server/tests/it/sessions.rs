//! Console sessions: each start and end is a ledger entry, every access through a session
//! carries its code, a session ends on sign-out, when idle, at its absolute expiry and when
//! its token is revoked, and the code in a photographed watermark leads an analyst to the
//! agent and every customer the session was shown.

use axum::http::{Method, StatusCode};
use cordon_gateway::{SESSION_IDLE_MS, SESSION_LIFETIME_MS, TokenRole, is_session_code};
use serde_json::json;

use crate::support::{Harness, customer_fields, entry_at, problem_type};

fn change_at(harness: &Harness, index: u64) -> cordon_entry::ChangeEntry {
    match entry_at(harness, index) {
        cordon_entry::Entry::Change(change) => change,
        other => panic!("entry {index} is not a change: {other:?}"),
    }
}

/// The last entry of the ledger.
fn last_change(harness: &Harness) -> cordon_entry::ChangeEntry {
    change_at(harness, harness.state.gateway.audit().size() - 1)
}

#[tokio::test]
async fn a_session_is_recorded_marks_its_accesses_and_ends_every_way_it_should() {
    let harness = Harness::new();
    harness.put_assigned_ticket().await;
    harness.put_customer("cus-2", customer_fields("Ada Byron", "ada@example.org", 20.0)).await;
    let gateway = &harness.state.gateway;
    let analyst = gateway.issue_role_token(TokenRole::Analyst).unwrap();

    // Signing in: a `session.start` entry naming the code, before the session can be used.
    let started = gateway.start_session(&harness.agent_token("agt-1"), "sign-in").await.unwrap();
    let code = started.session.code.clone();
    assert!(is_session_code(&code), "{code}");
    let start = change_at(&harness, started.ledger_index);
    assert_eq!(
        (start.change.as_str(), start.target.as_str(), start.actor.as_str()),
        ("session.start", code.as_str(), "agt-1")
    );
    assert!(!start.detail.clone().unwrap_or_default().contains(&started.secret), "the secret stays out of the ledger");
    let (claims, session) = gateway.session_claims(&started.secret, "r1").await.unwrap();
    assert_eq!((claims.session.as_deref(), session.csrf.len() >= 32), (Some(code.as_str()), true));

    // An access through the session carries its code; one through the API does not.
    gateway.view(&claims, "cus-1", Some("t-1"), "r2").await.unwrap();
    let through_session = gateway.audit().size() - 1;
    let cordon_entry::Entry::Access(entry) = entry_at(&harness, through_session) else { panic!() };
    assert_eq!(entry.session.as_deref(), Some(code.as_str()));
    let (status, _) = harness.call(Method::GET, "/v1/customers/cus-2", Some(&harness.agent_token("agt-1")), None).await;
    assert!(status == StatusCode::OK || status == StatusCode::FORBIDDEN, "{status}");
    let cordon_entry::Entry::Access(entry) = entry_at(&harness, gateway.audit().size() - 1) else { panic!() };
    assert_eq!(entry.session, None);

    // The watermark's code leads to the agent and to what the session was shown, and only
    // an analyst may ask.
    let path = format!("/v1/sessions/{code}");
    let (status, report) = harness.call(Method::GET, &path, Some(&analyst), None).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!((report["subject"].as_str(), report["role"].as_str()), (Some("agt-1"), Some("agent")));
    assert_eq!(report["customers"], json!([{"customer": "cus-1", "first_entry": through_session}]));
    assert_eq!((report["accesses"].as_u64(), report["ended_at"].is_null()), (Some(1), true));
    type Case<'a> = (&'a str, String, String, StatusCode, &'a str);
    let cases: Vec<Case<'_>> = vec![
        ("an agent may not ask", path.clone(), harness.agent_token("agt-1"), StatusCode::FORBIDDEN, "access-denied"),
        ("a malformed code", "/v1/sessions/ABC%20".into(), analyst.clone(), StatusCode::BAD_REQUEST, "bad-request"),
        ("look-alike letters", "/v1/sessions/OOOOIIII".into(), analyst.clone(), StatusCode::BAD_REQUEST, "bad-request"),
        ("no such session", "/v1/sessions/34679ACD".into(), analyst.clone(), StatusCode::NOT_FOUND, "not-found"),
    ];
    for (what, path, token, expected, kind) in cases {
        let (status, answer) = harness.call(Method::GET, &path, Some(&token), None).await;
        assert_eq!(status, expected, "{what}: {answer}");
        assert_eq!(problem_type(&answer), format!("urn:cordon:problem:{kind}"), "{what}");
    }

    // Sign-out ends it, once, as a ledger entry; the cookie's secret is then worthless.
    gateway.end_session(&started.secret, "sign-out").await.unwrap();
    let end = last_change(&harness);
    assert_eq!(
        (end.change.as_str(), end.target.as_str(), end.detail.as_deref()),
        ("session.end", code.as_str(), Some("logout"))
    );
    let size = gateway.audit().size();
    gateway.end_session(&started.secret, "again").await.unwrap();
    assert_eq!(gateway.audit().size(), size, "an ended session is not ended twice");
    assert!(gateway.session_claims(&started.secret, "r3").await.is_err());
    let (_, report) = harness.call(Method::GET, &path, Some(&analyst), None).await;
    assert_eq!(report["end_reason"], "logout", "{report}");

    // Idle: half an hour without a request.
    let idle = gateway.start_session(&harness.agent_token("agt-1"), "sign-in").await.unwrap();
    harness.clock.advance_seconds(SESSION_IDLE_MS / 1000 - 60);
    gateway.session_claims(&idle.secret, "r4").await.unwrap();
    harness.clock.advance_seconds(SESSION_IDLE_MS / 1000 - 60);
    gateway.session_claims(&idle.secret, "r5").await.expect("each use starts the idle time again");
    harness.clock.advance_seconds(SESSION_IDLE_MS / 1000);
    let refused = gateway.session_claims(&idle.secret, "r6").await.unwrap_err();
    assert!(refused.to_string().contains("idle"), "{refused}");
    assert_eq!(last_change(&harness).detail.as_deref(), Some("idle"));

    // Absolute: however busy, it ends at its lifetime (or its token's end, if sooner).
    let busy = gateway.start_session(&harness.agent_token("agt-1"), "sign-in").await.unwrap();
    assert!(busy.session.expires_ms - busy.session.started_ms <= SESSION_LIFETIME_MS);
    let mut lived_ms = 0;
    let refused = loop {
        harness.clock.advance_seconds(SESSION_IDLE_MS / 1000 - 60);
        lived_ms += SESSION_IDLE_MS - 60_000;
        match gateway.session_claims(&busy.secret, "r7").await {
            Ok(_) => assert!(lived_ms < SESSION_LIFETIME_MS, "the session outlived its lifetime"),
            Err(error) => break error,
        }
    };
    assert!(refused.to_string().contains("expired"), "{refused}");

    // Revoking the token it was started with ends it. (The clock has moved past the first
    // administrator token's life.)
    let admin = gateway.issue_role_token(TokenRole::Admin).unwrap();
    let token = harness.agent_token("agt-1");
    let revocable = gateway.start_session(&token, "sign-in").await.unwrap();
    let (status, answer) =
        harness.call(Method::POST, "/v1/tokens/revoke", Some(&admin), Some(json!({"token": token}))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let refused = gateway.session_claims(&revocable.secret, "r8").await.unwrap_err();
    assert!(refused.to_string().contains("revoked"), "{refused}");

    // Who gets no session: a service, a bad token, an agent no longer active.
    let service = gateway.issue_role_token(TokenRole::Service).unwrap();
    assert!(gateway.start_session(&service, "sign-in").await.is_err());
    assert!(gateway.start_session("not-a-token", "sign-in").await.is_err());
    let suspended = harness.agent_token("agt-1");
    let (status, answer) = harness.call(Method::POST, "/v1/agents/agt-1/suspend", Some(&admin), Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(gateway.start_session(&suspended, "sign-in").await.is_err());
    assert!(gateway.session_claims("never-issued", "r9").await.is_err());
}

/// Regression: the report of a session came only from the store's session row, so a database
/// restored from a backup taken before the session left its photographed code with no answer,
/// though the ledger holds the session. After such a restore, the report is read from the
/// ledger and is the same.
#[tokio::test]
async fn a_session_is_traced_from_the_ledger_when_the_store_was_restored_from_before_it() {
    let harness = Harness::embedded();
    harness.put_assigned_ticket().await;
    let token = harness.agent_token("agt-1");
    // The backup: the database as it was before the session.
    let crate::support::Harness { dir, clock, state, admin, .. } = harness;
    drop(state);
    let data = dir.path().join("data");
    let backup = dir.path().join("backup");
    std::fs::create_dir_all(&backup).unwrap();
    let files = ["cordon.sqlite", "cordon.sqlite-wal", "cordon.sqlite-shm"];
    for name in files {
        if data.join(name).exists() {
            std::fs::copy(data.join(name), backup.join(name)).unwrap();
        }
    }
    let gateway = cordon_gateway::DataDir::new(&data).open(clock.clone()).unwrap();
    let started = gateway.start_session(&token, "sign-in").await.unwrap();
    let code = started.session.code.clone();
    let (claims, _) = gateway.session_claims(&started.secret, "r1").await.unwrap();
    gateway.view(&claims, "cus-1", Some("t-1"), "r2").await.unwrap();
    gateway.end_session(&started.secret, "sign-out").await.unwrap();
    let analyst = cordon_gateway::Claims::in_process(TokenRole::Analyst.identity(), TokenRole::Analyst, "t");
    let before = cordon_gateway::session_json(&gateway.session_report(&analyst, &code, "r3").await.unwrap());
    drop(gateway);

    // The restore.
    for name in files {
        let _ = std::fs::remove_file(data.join(name));
        if backup.join(name).exists() {
            std::fs::copy(backup.join(name), data.join(name)).unwrap();
        }
    }
    let reopened = cordon_gateway::DataDir::new(&data).open(clock.clone()).unwrap();
    let after = cordon_gateway::session_json(&reopened.session_report(&analyst, &code, "r4").await.unwrap());
    for key in [
        "code",
        "subject",
        "role",
        "started_at",
        "start_entry",
        "ended_at",
        "end_reason",
        "end_entry",
        "expires_at",
        "accesses",
        "customers",
    ] {
        assert_eq!(after[key], before[key], "{key}: {after} against {before}");
    }
    assert_eq!(after["customers"][0]["customer"], "cus-1", "{after}");
    assert!(reopened.session_claims(&started.secret, "r5").await.is_err(), "the session is not back in force");
    drop(admin);
}
