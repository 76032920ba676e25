//! Access events as OCSF JSON lines, for SIEMs and data lakes that speak the Open
//! Cybersecurity Schema Framework.
//!
//! The class is API Activity (6003, category Application Activity): every access decision is
//! one call to cordon's API by an identified actor (the agent), naming an operation (search,
//! view, reveal, verify, approve), a request id, the resources it touched (customer records)
//! and the policy outcome. Datastore Activity (6005) was the other candidate; its objects
//! describe a database, table or bucket, which is cordon's business and not the analyst's:
//! the question after a leak is who called for which customer, which API Activity carries
//! directly. The reasoning is in docs/INCIDENT.md.

use std::io::Write;

use serde_json::{Map, Value, json};

use crate::AccessEvent;

/// The OCSF schema version the events follow (validated in the tests against that version).
pub const OCSF_VERSION: &str = "1.8.0";

const CLASS_UID: u32 = 6003;
const CATEGORY_UID: u32 = 6;

/// OCSF activity ids of API Activity.
const ACTIVITY_READ: u32 = 2;
const ACTIVITY_OTHER: u32 = 99;

/// OCSF severity ids: informational for an allowed access, low for a refused one (a refusal
/// is worth a look but is not, alone, an incident; detection's alerts carry the severity).
const SEVERITY_INFORMATIONAL: u32 = 1;
const SEVERITY_LOW: u32 = 2;

/// The OCSF activity an access is: reading customer data, or approving another agent's
/// reveal (which reads nothing itself).
fn activity(action: &str) -> (u32, &'static str) {
    match action {
        "search" | "view" | "reveal" | "verify" => (ACTIVITY_READ, "Read"),
        _ => (ACTIVITY_OTHER, "Other"),
    }
}

/// The OCSF event for one access decision.
pub fn ocsf_event(event: &AccessEvent) -> Value {
    let (activity_id, activity_name) = activity(&event.action);
    let (status, action, disposition, severity) = if event.allowed {
        ((1, "Success"), (1, "Allowed"), (1, "Allowed"), (SEVERITY_INFORMATIONAL, "Informational"))
    } else {
        ((2, "Failure"), (2, "Denied"), (2, "Blocked"), (SEVERITY_LOW, "Low"))
    };
    let resources: Vec<Value> = event
        .shown
        .iter()
        .map(|customer| {
            // The fields a view, reveal or verify asked for belong to the customer it was about.
            if event.customer.as_deref() == Some(customer.as_str()) && !event.fields.is_empty() {
                json!({"uid": customer, "type": "customer", "data": {"fields": event.fields}})
            } else {
                json!({"uid": customer, "type": "customer"})
            }
        })
        .collect();
    let authorizations: Vec<Value> = event
        .policies
        .iter()
        .map(|policy| json!({"decision": if event.allowed { "allow" } else { "deny" }, "policy": {"uid": policy}}))
        .collect();
    let mut unmapped = Map::new();
    if let Some(customer) = &event.customer {
        unmapped.insert("customer".into(), json!(customer));
    }
    if let Some(ticket) = &event.ticket {
        unmapped.insert("ticket".into(), json!(ticket));
    }
    if let Some(why) = &event.why {
        unmapped.insert("why".into(), json!(why));
    }
    if !event.fields.is_empty() {
        unmapped.insert("fields".into(), json!(event.fields));
    }
    let Value::Object(mut value) = json!({
        "class_uid": CLASS_UID,
        "class_name": "API Activity",
        "category_uid": CATEGORY_UID,
        "category_name": "Application Activity",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": CLASS_UID * 100 + activity_id,
        "type_name": format!("API Activity: {activity_name}"),
        "time": event.time_ms,
        "severity_id": severity.0,
        "severity": severity.1,
        "status_id": status.0,
        "status": status.1,
        "action_id": action.0,
        "action": action.1,
        "disposition_id": disposition.0,
        "disposition": disposition.1,
        "message": message(event),
        "actor": {"user": {"uid": event.agent, "type_id": 1, "type": "User"}},
        "api": {
            "operation": event.action,
            "request": {"uid": event.request},
            "service": {"name": "cordon"},
        },
        // The ledger identifies the caller by its signed token, not its network address, so
        // the endpoint named is the service the call came in through.
        "src_endpoint": {"svc_name": "cordon"},
        "metadata": {
            "version": OCSF_VERSION,
            "product": {"name": "cordon", "vendor_name": "cordon", "version": env!("CARGO_PKG_VERSION")},
            "uid": format!("ledger-{}", event.ledger_index),
            "sequence": event.ledger_index,
            "correlation_uid": event.request,
            "log_name": "cordon ledger",
            "profiles": ["security_control"],
        },
    }) else {
        unreachable!("a JSON object literal is an object")
    };
    if !resources.is_empty() {
        value.insert("resources".into(), Value::Array(resources));
    }
    if !authorizations.is_empty() {
        value.insert("authorizations".into(), Value::Array(authorizations));
    }
    if !unmapped.is_empty() {
        value.insert("unmapped".into(), Value::Object(unmapped));
    }
    Value::Object(value)
}

/// One line a person can read: identifiers only, as everywhere in the ledger.
fn message(event: &AccessEvent) -> String {
    let outcome = if event.allowed { "allowed" } else { "denied" };
    let what = match (&event.customer, event.fields.is_empty()) {
        (Some(customer), true) => format!(" {customer}"),
        (Some(customer), false) => format!(" {} of {customer}", event.fields.join(", ")),
        (None, _) => format!(" ({} shown)", event.shown.len()),
    };
    format!("{} {}{what}: {outcome}", event.agent, event.action)
}

/// Writes `event` as one JSON line.
pub fn write_ocsf_line(writer: &mut impl Write, event: &AccessEvent) -> std::io::Result<()> {
    serde_json::to_writer(&mut *writer, &ocsf_event(event))?;
    writer.write_all(b"\n")
}
