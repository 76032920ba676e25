//! The rest of the audit record as OCSF events, beside the access decisions (`ocsf.rs`):
//! detection's alerts as Detection Finding (2004); changes to agents (created, suspended,
//! reinstated, offboarded) as Account Change (3001); incident response's protective actions
//! as Remediation Activity (7001, "harden": the account is held or guarded); every other
//! change (tickets, customers, keys, policy, incidents, alert decisions, exports, a change
//! that failed) as Entity Management (3004). Identifiers only, as in the ledger.

use serde_json::{Map, Value, json};

use crate::ocsf::{OCSF_VERSION, ocsf_event};

/// The OCSF event for the ledger entry `bytes` at `ledger_index`, whatever its kind; `None`
/// for bytes that are not a cordon entry.
pub fn ocsf_record(ledger_index: u64, bytes: &[u8]) -> Option<Value> {
    match cordon_entry::decode(bytes).ok()? {
        cordon_entry::Entry::Access(_) => crate::access_event(ledger_index, bytes).map(|event| ocsf_event(&event)),
        cordon_entry::Entry::Alert(alert) => Some(finding(ledger_index, &alert)),
        cordon_entry::Entry::Change(change) => Some(changed(ledger_index, &change)),
    }
}

fn metadata(ledger_index: u64, request: &str) -> Value {
    json!({
        "version": OCSF_VERSION,
        "product": {"name": "cordon", "vendor_name": "cordon", "version": env!("CARGO_PKG_VERSION")},
        "uid": format!("ledger-{ledger_index}"),
        "sequence": ledger_index,
        "correlation_uid": request,
        "log_name": "cordon ledger",
    })
}

/// The fields every class shares: classification, time, severity, metadata.
fn base(class: (u32, &str), category: (u32, &str), activity: (u32, &str), severity: (u32, &str)) -> Map<String, Value> {
    let Value::Object(fields) = json!({
        "class_uid": class.0,
        "class_name": class.1,
        "category_uid": category.0,
        "category_name": category.1,
        "activity_id": activity.0,
        "activity_name": activity.1,
        "type_uid": class.0 * 100 + activity.0,
        "type_name": format!("{}: {}", class.1, activity.1),
        "severity_id": severity.0,
        "severity": severity.1,
    }) else {
        return Map::new();
    };
    fields
}

/// An alert (or a step-up, or a suspension) raised by detection.
fn finding(ledger_index: u64, alert: &cordon_entry::AlertEntry) -> Value {
    let severity = match alert.level.as_str() {
        "suspend" => (4, "High"),
        "step-up" => (3, "Medium"),
        _ => (2, "Low"),
    };
    let mut event = base((2004, "Detection Finding"), (2, "Findings"), (1, "Create"), severity);
    let signals: Vec<Value> =
        alert.signals.iter().map(|signal| serde_json::to_value(signal).unwrap_or(Value::Null)).collect();
    event.extend([
        ("time".into(), json!(alert.time_ms)),
        ("message".into(), json!(format!("{} {} (risk {:.2})", alert.agent, alert.level, alert.risk))),
        (
            "finding_info".into(),
            json!({
                "uid": format!("alert-{}", alert.alert),
                "title": format!("cordon detection: {} for {}", alert.level, alert.agent),
                "types": [alert.level],
                "related_events": alert.evidence.iter().map(|index| json!({"uid": format!("ledger-{index}")})).collect::<Vec<_>>(),
            }),
        ),
        ("is_alert".into(), json!(true)),
        ("risk_score".into(), json!((alert.risk * 100.0).round() as i64)),
        ("metadata".into(), metadata(ledger_index, &alert.request)),
        ("unmapped".into(), json!({"agent": alert.agent, "level": alert.level, "signals": signals})),
    ]);
    Value::Object(event)
}

/// A change: to an agent, a protective action, or anything else.
fn changed(ledger_index: u64, change: &cordon_entry::ChangeEntry) -> Value {
    let (thing, verb) = change.change.split_once('.').unwrap_or((change.change.as_str(), ""));
    let informational = (1, "Informational");
    let actor = json!({"user": {"uid": change.actor}});
    let mut unmapped = Map::new();
    unmapped.insert("change".into(), json!(change.change));
    if let Some(detail) = &change.detail {
        unmapped.insert("detail".into(), json!(detail));
    }
    let mut event = match thing {
        "agent" => {
            let activity = match verb {
                "put" => (1, "Create"),
                "reinstate" => (2, "Enable"),
                "suspend" => (5, "Disable"),
                "offboard" => (6, "Delete"),
                _ => (99, "Other"),
            };
            let mut event =
                base((3001, "Account Change"), (3, "Identity & Access Management"), activity, informational);
            event.insert("user".into(), json!({"uid": change.target, "type_id": 1, "type": "User"}));
            event.insert("actor".into(), actor);
            event
        }
        "protect" => {
            let mut event = base((7001, "Remediation Activity"), (7, "Remediation"), (4, "Harden"), informational);
            event.insert("command_uid".into(), json!(format!("ledger-{ledger_index}")));
            unmapped.insert("customer".into(), json!(change.target));
            unmapped.insert("actor".into(), json!(change.actor));
            event
        }
        _ => {
            let activity = match verb {
                "put" => (3, "Update"),
                "delete" => (4, "Delete"),
                "open" => (1, "Create"),
                _ => (99, "Other"),
            };
            let mut event =
                base((3004, "Entity Management"), (3, "Identity & Access Management"), activity, informational);
            event.insert("entity".into(), json!({"uid": change.target, "type": thing}));
            event.insert("actor".into(), actor);
            event
        }
    };
    event.extend([
        ("time".into(), json!(change.time_ms)),
        ("message".into(), json!(format!("{} {} {}", change.actor, change.change, change.target))),
        ("metadata".into(), metadata(ledger_index, &change.request)),
        ("unmapped".into(), Value::Object(unmapped)),
    ]);
    Value::Object(event)
}
