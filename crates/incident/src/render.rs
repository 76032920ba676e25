//! The documents incident response hands out: scope and attribution as JSON (for the API,
//! the console and `--json` files) and the affected list as CSV (for people). One rendering,
//! so the command line and the API give the same answer.

use serde_json::{Value, json};

use crate::attribute::Attribution;
use crate::scope::Scope;
use crate::time::iso_time;

fn names<'a>(fields: impl IntoIterator<Item = &'a cordon_vault::Field>) -> Vec<&'static str> {
    fields.into_iter().map(|field| field.name()).collect()
}

/// The whole scope.
pub fn scope_json(scope: &Scope) -> Value {
    json!({
        "customers_affected": scope.customers.len(),
        "customer_base": scope.base_customers,
        "share_of_base": scope.share(),
        "high_balance_customers": scope.high_balance,
        "accesses": scope.accesses,
        "first_access": scope.first_ms.map(iso_time),
        "last_access": scope.last_ms.map(iso_time),
        "by_field": scope.by_field.iter().map(|(field, count)| json!({
            "field": field.name(), "class": field.class().name(),
            "revealed": count.revealed, "masked_only": count.masked_only,
        })).collect::<Vec<_>>(),
        "by_class": scope.by_class.iter().map(|(class, count)| json!({
            "class": class.name(), "revealed": count.revealed, "masked_only": count.masked_only,
        })).collect::<Vec<_>>(),
        "agents": scope.agents.iter().map(|agent| json!({
            "agent": agent.agent, "customers": agent.customers, "customers_revealed": agent.customers_revealed,
            "accesses": agent.accesses, "first_access": iso_time(agent.first_ms), "last_access": iso_time(agent.last_ms),
        })).collect::<Vec<_>>(),
        "days": scope.days.iter().map(|day| json!({
            "day": day.day, "accesses": day.accesses, "customers": day.customers,
            "new_customers": day.new_customers, "reveals": day.reveals,
        })).collect::<Vec<_>>(),
        "affected": scope.customers.iter().map(|customer| json!({
            "customer": customer.customer,
            "revealed": names(&customer.revealed),
            "masked_only": names(&customer.masked_only),
            "verified": names(&customer.verified),
            "high_balance": customer.high_balance,
            "first_access": iso_time(customer.first_ms),
            "last_access": iso_time(customer.last_ms),
            "agents": customer.agents,
            "evidence": customer.evidence,
        })).collect::<Vec<_>>(),
    })
}

/// The affected list, one customer a line: ids, field names and times only.
pub fn scope_csv(scope: &Scope) -> String {
    affected_csv(&scope_json(scope))
}

/// The affected list from a scope document (`scope_json`, or the API's answer): the command
/// line writes the same file whether it computed the scope or asked a server for it.
pub fn affected_csv(scope: &Value) -> String {
    let mut out = String::from("customer,revealed,masked_only,verified,high_balance,first_access,last_access,agents\n");
    let words = |customer: &Value, key: &str| -> String {
        customer
            .get(key)
            .and_then(Value::as_array)
            .map(|items| items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    let text = |customer: &Value, key: &str| -> String {
        match customer.get(key) {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Bool(flag)) => flag.to_string(),
            _ => String::new(),
        }
    };
    for customer in scope.get("affected").and_then(Value::as_array).into_iter().flatten() {
        let line = [
            text(customer, "customer"),
            words(customer, "revealed"),
            words(customer, "masked_only"),
            words(customer, "verified"),
            text(customer, "high_balance"),
            text(customer, "first_access"),
            text(customer, "last_access"),
            words(customer, "agents"),
        ]
        .map(|cell| csv_cell(&cell));
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

/// A CSV cell, quoted when it must be; a leading `=`, `+`, `-` or `@` is defused so a
/// spreadsheet does not run it as a formula.
pub fn csv_cell(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) { format!("'{text}") } else { text.to_string() };
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text }
}

/// The whole attribution.
pub fn attribution_json(attribution: &Attribution) -> Value {
    json!({
        "rows": attribution.rows,
        "matched_rows": attribution.matched_rows,
        "unmatched_lines": attribution.unmatched_lines,
        "customer_base": attribution.base_customers,
        "agents_considered": attribution.agents_considered,
        "verdict": attribution.verdict.name(),
        "reason": attribution.reason,
        "blamed": attribution.blamed().map(|agent| agent.agent.as_str()).collect::<Vec<_>>(),
        "cover": attribution.cover,
        "rows_explained_by_blamed": attribution.covered_rows,
        "agents": attribution.agents.iter().map(|agent| json!({
            "agent": agent.agent,
            "rows_explained": agent.explained.len(),
            "rows_as_shown": agent.consistent,
            "customers_ever_shown": agent.volume,
            "expected_by_chance": agent.expected,
            "chance": agent.chance,
            "blamed": agent.blamed,
            "evidence": agent.explained.iter().map(|row| json!({
                "line": row.line, "customer": row.customer, "consistent": row.consistent, "entries": row.evidence,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}
