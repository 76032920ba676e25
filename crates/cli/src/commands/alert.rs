//! `cordon alert …`: an analyst's view of detection from the command line.

use std::time::Instant;

use anyhow::bail;
use serde_json::Value;

use crate::cli::AlertCommand;
use crate::commands::{analyst, open_data as open, wait};

fn field<'a>(value: &'a Value, name: &str) -> &'a Value {
    value.get(name).unwrap_or(&Value::Null)
}

pub fn run(command: AlertCommand) -> anyhow::Result<()> {
    let who = analyst();
    match command {
        AlertCommand::List { data, status, limit } => {
            let gateway = open(&data)?;
            let alerts = wait(gateway.alerts(&who, status.as_deref(), limit, "cli"))?;
            if alerts.is_empty() {
                println!("no alerts");
            }
            for alert in alerts {
                let body: Value = serde_json::from_str(&alert.body).unwrap_or(Value::Null);
                let signals: Vec<&str> = field(&body, "signals")
                    .as_array()
                    .map(|signals| signals.iter().filter_map(|signal| field(signal, "name").as_str()).collect())
                    .unwrap_or_default();
                println!(
                    "{:>6}  {:<9} {:<10} {:<8} ledger {:<9} {}",
                    alert.id,
                    alert.status,
                    alert.agent,
                    alert.level,
                    alert.ledger_index,
                    signals.join(", ")
                );
            }
        }
        AlertCommand::Show { data, id } => {
            let gateway = open(&data)?;
            let alert = wait(gateway.alert(&who, id, "cli"))?;
            let body: Value = serde_json::from_str(&alert.body).unwrap_or(Value::Null);
            println!(
                "alert {id}: {} for {} ({}), ledger entry {}",
                alert.level, alert.agent, alert.status, alert.ledger_index
            );
            println!("risk {}", field(&body, "risk"));
            for signal in field(&body, "signals").as_array().into_iter().flatten() {
                println!(
                    "  {:<20} observed {:>8} against {:>8}  +{} points",
                    field(signal, "name").as_str().unwrap_or("?"),
                    field(signal, "observed"),
                    field(signal, "baseline"),
                    field(signal, "points")
                );
            }
            println!("evidence (ledger indexes): {}", field(&body, "evidence"));
            if let Some(reason) = alert.reason {
                println!("decided by {}: {reason}", alert.decided_by.unwrap_or_default());
            }
        }
        AlertCommand::Dismiss { data, id, reason } | AlertCommand::Confirm { data, id, reason }
            if reason.is_empty() =>
        {
            bail!("alert {id} in `{}`: a reason is needed", data.display())
        }
        AlertCommand::Dismiss { data, id, reason } => {
            let gateway = open(&data)?;
            let index = wait(gateway.decide_alert(&who, id, false, &reason, "cli"))?;
            println!("alert {id} dismissed (ledger entry {index})");
        }
        AlertCommand::Confirm { data, id, reason } => {
            let gateway = open(&data)?;
            let index = wait(gateway.decide_alert(&who, id, true, &reason, "cli"))?;
            println!("alert {id} confirmed, agent suspended (ledger entry {index})");
        }
        AlertCommand::Board { data, limit } => {
            let gateway = open(&data)?;
            for row in wait(gateway.risk_board(&who, "cli"))?.into_iter().take(limit) {
                println!("{:<10} {:<28} risk {:>7.2}  {}", row.agent, row.peer_group, row.risk, row.level.name());
            }
        }
        AlertCommand::Replay { data } => {
            // Opening replays once already; time a second, explicit replay.
            let gateway = open(&data)?;
            let started = Instant::now();
            let replayed = gateway.replay_detection()?;
            let seconds = started.elapsed().as_secs_f64();
            let recorded: Vec<_> = replayed.recorded.iter().map(|(_, alert)| alert.clone()).collect();
            println!(
                "replayed {} entries ({} access decisions) in {seconds:.2} s: {:.0} entries/s",
                replayed.entries,
                replayed.observations,
                replayed.entries as f64 / seconds.max(1e-9)
            );
            println!("alerts: {} raised by the replay, {} in the ledger", replayed.alerts.len(), recorded.len());
            for (index, reason) in replayed.unreadable.iter().take(10) {
                eprintln!("entry {index} is not one this build reads, so detection skipped it: {reason}");
            }
            if !replayed.unreadable.is_empty() {
                eprintln!("{} entries were skipped", replayed.unreadable.len());
            }
            if replayed.alerts != recorded {
                bail!("the replay raised different alerts from the ones the ledger holds");
            }
            println!("the replay raises exactly the ledger's alerts");
        }
    }
    Ok(())
}
