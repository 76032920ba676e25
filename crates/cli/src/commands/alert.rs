//! `cordon alert …`: an analyst's view of detection from the command line: the data directory
//! itself, or, while `cordon serve` has it open, the same calls on its API (`remote.rs`),
//! printed from the same documents.

use anyhow::bail;
use serde_json::Value;

use crate::cli::AlertCommand;
use hyper::Method;

use crate::commands::remote::{Target, segment};
use crate::commands::{analyst, wait};

fn field<'a>(value: &'a Value, name: &str) -> &'a Value {
    value.get(name).unwrap_or(&Value::Null)
}

/// Opens `data` as the server opens it (replaying detection), or finds the server that holds it.
fn target(data: &std::path::Path) -> anyhow::Result<Target> {
    Target::of(data, |dir| dir.open(std::sync::Arc::new(cordon_gateway::SystemClock)))
}

fn print_alert_line(alert: &Value) {
    let signals: Vec<&str> = field(alert, "signals")
        .as_array()
        .map(|signals| signals.iter().filter_map(|signal| field(signal, "name").as_str()).collect())
        .unwrap_or_default();
    println!(
        "{:>6}  {:<9} {:<10} {:<8} ledger {:<9} {}",
        field(alert, "id"),
        field(alert, "status").as_str().unwrap_or("?"),
        field(alert, "agent").as_str().unwrap_or("?"),
        field(alert, "level").as_str().unwrap_or("?"),
        field(alert, "ledger_index"),
        signals.join(", ")
    );
}

fn print_alert(id: u64, alert: &Value) {
    println!(
        "alert {id}: {} for {} ({}), ledger entry {}",
        field(alert, "level").as_str().unwrap_or("?"),
        field(alert, "agent").as_str().unwrap_or("?"),
        field(alert, "status").as_str().unwrap_or("?"),
        field(alert, "ledger_index")
    );
    println!("risk {}", field(alert, "risk"));
    for signal in field(alert, "signals").as_array().into_iter().flatten() {
        println!(
            "  {:<20} observed {:>8} against {:>8}  +{} points",
            field(signal, "name").as_str().unwrap_or("?"),
            field(signal, "observed"),
            field(signal, "baseline"),
            field(signal, "points")
        );
    }
    println!("evidence (ledger indexes): {}", field(alert, "evidence"));
    if let Some(reason) = field(alert, "reason").as_str() {
        println!("decided by {}: {reason}", field(alert, "decided_by").as_str().unwrap_or_default());
    }
}

pub fn run(command: AlertCommand) -> anyhow::Result<()> {
    let who = analyst();
    match command {
        AlertCommand::List { data, status, limit } => {
            let alerts: Vec<Value> = match target(&data)? {
                Target::Local(gateway) => wait(gateway.alerts(&who, status.as_deref(), limit, "cli"))?
                    .iter()
                    .map(cordon_gateway::alert_json)
                    .collect(),
                Target::Remote(remote) => {
                    let mut path = format!("/v1/alerts?limit={limit}");
                    if let Some(status) = &status {
                        path.push_str(&format!("&status={}", segment(status)));
                    }
                    remote
                        .json(Method::GET, &path, None)?
                        .get("alerts")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                }
            };
            if alerts.is_empty() {
                println!("no alerts");
            }
            for alert in &alerts {
                print_alert_line(alert);
            }
        }
        AlertCommand::Show { data, id } => {
            let alert = match target(&data)? {
                Target::Local(gateway) => cordon_gateway::alert_json(&wait(gateway.alert(&who, id, "cli"))?),
                Target::Remote(remote) => remote.json(Method::GET, &format!("/v1/alerts/{id}"), None)?,
            };
            print_alert(id, &alert);
        }
        AlertCommand::Dismiss { data, id, reason } | AlertCommand::Confirm { data, id, reason }
            if reason.is_empty() =>
        {
            bail!("alert {id} in `{}`: a reason is needed", data.display())
        }
        AlertCommand::Dismiss { data, id, reason } => {
            let index = decide(&data, id, false, &reason)?;
            println!("alert {id} dismissed (ledger entry {index})");
        }
        AlertCommand::Confirm { data, id, reason } => {
            let index = decide(&data, id, true, &reason)?;
            println!("alert {id} confirmed, agent suspended (ledger entry {index})");
        }
        AlertCommand::Board { data, limit } => {
            let rows: Vec<Value> = match target(&data)? {
                Target::Local(gateway) => cordon_gateway::risk_board_json(&wait(gateway.risk_board(&who, "cli"))?)
                    .get("agents")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
                Target::Remote(remote) => remote
                    .json(Method::GET, "/v1/risk", None)?
                    .get("agents")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            };
            for row in rows.iter().take(limit) {
                println!(
                    "{:<10} {:<28} risk {:>7.2}  {}",
                    field(row, "agent").as_str().unwrap_or("?"),
                    field(row, "peer_group").as_str().unwrap_or("?"),
                    field(row, "risk").as_f64().unwrap_or(0.0),
                    field(row, "level").as_str().unwrap_or("?")
                );
            }
        }
        AlertCommand::Replay { data } => {
            // Opening the directory replays once already (from the snapshot); this is a
            // second replay, of the whole ledger, timed.
            let answer = match target(&data)? {
                Target::Local(gateway) => wait(gateway.replay_detection_as(&analyst(), "cli"))?,
                Target::Remote(remote) => remote.json(Method::POST, "/v1/detection/replay", None)?,
            };
            let count = |name: &str| field(&answer, name).as_u64().unwrap_or(0);
            let seconds = field(&answer, "seconds").as_f64().unwrap_or(0.0);
            println!(
                "replayed {} entries ({} access decisions) in {seconds:.2} s: {:.0} entries/s",
                count("entries"),
                count("observations"),
                count("entries") as f64 / seconds.max(1e-9)
            );
            println!(
                "alerts: {} raised by the replay, {} in the ledger",
                count("alerts_raised"),
                count("alerts_recorded")
            );
            for entry in field(&answer, "unreadable").as_array().into_iter().flatten() {
                eprintln!(
                    "entry {} is not one this build reads, so detection skipped it: {}",
                    field(entry, "index"),
                    field(entry, "reason").as_str().unwrap_or("?").escape_debug()
                );
            }
            if count("unreadable_count") > 0 {
                eprintln!("{} entries were skipped", count("unreadable_count"));
            }
            if field(&answer, "same_alerts").as_bool() != Some(true) {
                bail!("the replay raised different alerts from the ones the ledger holds");
            }
            println!("the replay raises exactly the ledger's alerts");
        }
    }
    Ok(())
}

/// Dismisses or confirms an alert, in the directory or through the server; the ledger index.
fn decide(data: &std::path::Path, id: u64, confirm: bool, reason: &str) -> anyhow::Result<u64> {
    match target(data)? {
        Target::Local(gateway) => Ok(wait(gateway.decide_alert(&analyst(), id, confirm, reason, "cli"))?),
        Target::Remote(remote) => {
            let verb = if confirm { "confirm" } else { "dismiss" };
            let answer = remote.json(
                Method::POST,
                &format!("/v1/alerts/{id}/{verb}"),
                Some(&serde_json::json!({"reason": reason})),
            )?;
            answer
                .get("ledger_index")
                .and_then(Value::as_u64)
                .ok_or_else(|| anyhow::anyhow!("the server's answer has no ledger index"))
        }
    }
}
