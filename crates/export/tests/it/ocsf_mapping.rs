//! What each kind of access decision becomes in OCSF (the schema itself is checked by the
//! CLI's test, through an independent validator).

use cordon_export::{AccessEvent, OCSF_VERSION, ocsf_event, write_ocsf_line};
use serde_json::{Value, json};

fn event(action: &str, allowed: bool) -> AccessEvent {
    AccessEvent {
        ledger_index: 41,
        time_ms: 1_772_409_600_000,
        request: "r-7".into(),
        agent: "agt-3".into(),
        action: action.into(),
        allowed,
        ..AccessEvent::default()
    }
}

#[test]
fn decisions_map_to_api_activity() {
    let reveal = AccessEvent {
        customer: Some("cus-1".into()),
        shown: vec!["cus-1".into()],
        fields: vec!["email".into(), "phone".into()],
        ticket: Some("t-9".into()),
        why: Some("ticket".into()),
        policies: vec!["reveal-with-ticket".into()],
        ..event("reveal", true)
    };
    let search = AccessEvent { shown: vec!["cus-1".into(), "cus-2".into()], ..event("search", true) };
    let denied = AccessEvent { customer: Some("cus-5".into()), ..event("view", false) };
    let approve = event("approve", true);
    // (event, attribute path, expected value)
    let cases: Vec<(&AccessEvent, &[&str], Value)> = vec![
        (&reveal, &["class_uid"], json!(6003)),
        (&reveal, &["type_uid"], json!(600302)),
        (&reveal, &["time"], json!(1_772_409_600_000_i64)),
        (&reveal, &["status_id"], json!(1)),
        (&reveal, &["disposition_id"], json!(1)),
        (&reveal, &["severity_id"], json!(1)),
        (&reveal, &["actor", "user", "uid"], json!("agt-3")),
        (&reveal, &["api", "operation"], json!("reveal")),
        (&reveal, &["api", "request", "uid"], json!("r-7")),
        (
            &reveal,
            &["resources"],
            json!([{"uid": "cus-1", "type": "customer", "data": {"fields": ["email", "phone"]}}]),
        ),
        (&reveal, &["authorizations"], json!([{"decision": "allow", "policy": {"uid": "reveal-with-ticket"}}])),
        (
            &reveal,
            &["unmapped"],
            json!({"customer": "cus-1", "ticket": "t-9", "why": "ticket", "fields": ["email", "phone"]}),
        ),
        (&reveal, &["metadata", "uid"], json!("ledger-41")),
        (&reveal, &["metadata", "sequence"], json!(41)),
        (&reveal, &["metadata", "version"], json!(OCSF_VERSION)),
        (&reveal, &["message"], json!("agt-3 reveal email, phone of cus-1: allowed")),
        (&search, &["resources"], json!([{"uid": "cus-1", "type": "customer"}, {"uid": "cus-2", "type": "customer"}])),
        (&search, &["message"], json!("agt-3 search (2 shown): allowed")),
        (&search, &["unmapped"], Value::Null),
        (&denied, &["status_id"], json!(2)),
        (&denied, &["action_id"], json!(2)),
        (&denied, &["disposition_id"], json!(2)),
        (&denied, &["severity_id"], json!(2)),
        (&denied, &["resources"], Value::Null),
        (&denied, &["message"], json!("agt-3 view cus-5: denied")),
        (&approve, &["activity_id"], json!(99)),
        (&approve, &["type_uid"], json!(600399)),
    ];
    for (access, path, expected) in cases {
        let mapped = ocsf_event(access);
        let actual = path.iter().fold(&mapped, |value, key| &value[*key]);
        assert_eq!(actual, &expected, "{} {path:?}", access.action);
    }
}

#[test]
fn one_line_per_event() {
    let mut out = Vec::new();
    write_ocsf_line(&mut out, &event("view", true)).unwrap();
    write_ocsf_line(&mut out, &event("view", false)).unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    for line in lines {
        assert_eq!(serde_json::from_str::<Value>(line).unwrap()["class_uid"], 6003);
    }
}
