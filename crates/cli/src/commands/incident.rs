//! `cordon incident …`: the incident responder's commands. Each is one call on the gateway;
//! this module only parses times, reads the sample and prints.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, bail};
use cordon_gateway::{IncidentSpec, IncidentStatus};
use cordon_incident::{Scope, attribution_json, iso_time, read_sample, scope_csv, scope_json};

use crate::cli::IncidentCommand;

use crate::commands::{analyst, open_for_analysis as open, option_end, option_time as time, wait};

/// `FIELD=TEXT` pairs.
fn assignments(option: &str, items: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|item| match item.split_once('=') {
            Some((name, value)) => Ok((name.trim().to_string(), value.trim().to_string())),
            None => {
                bail!("--{option} `{item}` must be FIELD=TEXT, with FIELD one of {}", IncidentStatus::FIELDS.join(", "))
            }
        })
        .collect()
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write `{}`", path.display()))
}

pub fn run(command: IncidentCommand) -> anyhow::Result<()> {
    let who = analyst();
    match command {
        IncidentCommand::Open { data, title, agents, since, until, aware, status } => {
            let mut record = IncidentStatus::default();
            for (name, value) in assignments("status", &status)? {
                record.set(&name, &value)?;
            }
            let spec = IncidentSpec {
                title,
                agents,
                since_ms: time("since", since.as_deref())?,
                until_ms: option_end("until", until.as_deref())?,
                aware_at_ms: time("aware", aware.as_deref())?,
                status: record,
            };
            let gateway = open(&data)?;
            let incident = wait(gateway.open_incident(&who, spec, "cli"))?;
            println!("{}", incident.id);
            eprintln!(
                "opened incident {} (ledger entry {}); the 72-hour clock started {}",
                incident.id,
                incident.ledger_index,
                iso_time(incident.aware_at_ms)
            );
        }
        IncidentCommand::List { data } => {
            let gateway = open(&data)?;
            let incidents = wait(gateway.incidents(&who, "cli"))?;
            if incidents.is_empty() {
                println!("no incidents");
            }
            for incident in incidents {
                println!(
                    "{:<8} opened {}  agents {}  {}",
                    incident.id,
                    iso_time(incident.opened_at_ms),
                    if incident.agents.is_empty() { "all".to_string() } else { incident.agents.join(",") },
                    incident.title
                );
            }
        }
        IncidentCommand::Show { id, data } => {
            let gateway = open(&data)?;
            let (incident, timeline) = wait(gateway.incident_and_timeline(&who, &id, "cli"))?;
            let status = IncidentStatus::from_json(&incident.status);
            println!("incident {}: {}", incident.id, incident.title);
            println!(
                "opened {} by {} (ledger entry {})",
                iso_time(incident.opened_at_ms),
                incident.opened_by,
                incident.ledger_index
            );
            println!("aware since {}", iso_time(incident.aware_at_ms));
            println!(
                "suspects {}",
                if incident.agents.is_empty() { "all agents".into() } else { incident.agents.join(", ") }
            );
            println!(
                "window {} .. {}",
                incident.since_ms.map_or("the start".into(), iso_time),
                incident.until_ms.map_or("now".into(), iso_time)
            );
            println!("public status (only what an analyst set; `cordon incident status` sets it):");
            for (name, value) in status.fields() {
                let value = if value.is_empty() { "(not stated)" } else { value };
                println!("  {:<19} {value}", name.replace('_', " "));
            }
            println!("timeline:");
            for event in timeline {
                let entry = event.ledger_index.map(|index| format!(" (ledger entry {index})")).unwrap_or_default();
                println!("  {}  {}{entry}", iso_time(event.time_ms), event.what);
            }
        }
        IncidentCommand::Status { id, data, set } => {
            let changes = assignments("set", &set)?;
            let gateway = open(&data)?;
            wait(gateway.set_incident_status(&who, &id, &changes, "cli"))?;
            println!("incident {id}: status updated");
        }
        IncidentCommand::Scope { id, data, csv, json, show } => {
            let gateway = open(&data)?;
            let started = Instant::now();
            let scope = wait(gateway.incident_scope(&who, &id, "cli"))?;
            let elapsed = started.elapsed();
            print_scope(&id, &scope, show);
            eprintln!("scope computed in {:.1} ms", elapsed.as_secs_f64() * 1000.0);
            if let Some(path) = csv {
                write(&path, &scope_csv(&scope))?;
                eprintln!("affected list: {}", path.display());
            }
            if let Some(path) = json {
                write(&path, &serde_json::to_string_pretty(&scope_json(&scope))?)?;
                eprintln!("scope as JSON: {}", path.display());
            }
        }
        IncidentCommand::Protect { id, data, apply } => {
            let gateway = open(&data)?;
            let report = wait(gateway.incident_protect(&who, &id, apply, "cli"))?;
            let mut per_action: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
            for action in &report.actions {
                *per_action.entry(action.action.as_str()).or_default() += 1;
            }
            let levels: Vec<String> =
                report.by_exposure.iter().map(|(level, count)| format!("{count} {level}")).collect();
            println!(
                "incident {id}: {} affected customers get actions (shown: {}; initials alone get none)",
                report.customers,
                levels.join(", ")
            );
            for (action, count) in &per_action {
                println!("  {action:<32} {count} customers");
            }
            if report.applied {
                println!(
                    "applied: {} actions recorded now (each a ledger entry, queued for the exchange's webhook), {} recorded before",
                    report.recorded_now, report.recorded_before
                );
            } else {
                let pending = report.actions.len() as u64 - report.recorded_before;
                println!(
                    "dry run: {pending} actions would be recorded ({} already are); add --apply to record them",
                    report.recorded_before
                );
            }
        }
        IncidentCommand::Notify { id, data } => {
            let gateway = open(&data)?;
            let (notices, folder) = wait(gateway.incident_notify(&who, &id, "cli"))?;
            println!("{}", folder.display());
            eprintln!(
                "{} notices (text and HTML), one per affected customer shown more than initials, in {}",
                notices.len(),
                folder.display()
            );
        }
        IncidentCommand::Report { id, data, out } => {
            let gateway = open(&data)?;
            let (markdown, html) = wait(gateway.incident_report(&who, &id, "cli"))?;
            let folder = out.unwrap_or_else(|| data.join("reports").join(&id));
            std::fs::create_dir_all(&folder).with_context(|| format!("cannot create `{}`", folder.display()))?;
            write(&folder.join("report.md"), &markdown)?;
            write(&folder.join("report.html"), &html)?;
            println!("{}", folder.join("report.md").display());
            eprintln!("regulator report: {} and report.html", folder.join("report.md").display());
            if markdown.starts_with("# DRAFT") {
                eprintln!(
                    "the report is marked a DRAFT: set `contact` (the data protection officer) under [incident] in cordon.toml"
                );
            }
        }
        IncidentCommand::Evidence { id, data, out } => {
            let gateway = open(&data)?;
            let bundle = wait(gateway.incident_evidence(&who, &id, "cli"))?;
            let entries = bundle.entries();
            let mut file = std::io::BufWriter::new(
                std::fs::File::create(&out).with_context(|| format!("cannot write `{}`", out.display()))?,
            );
            let mut bytes = 0;
            for chunk in bundle.into_chunks() {
                std::io::Write::write_all(&mut file, &chunk)
                    .with_context(|| format!("cannot write `{}`", out.display()))?;
                bytes += chunk.len();
            }
            std::io::Write::flush(&mut file).with_context(|| format!("cannot write `{}`", out.display()))?;
            println!("{}", out.display());
            eprintln!(
                "evidence bundle for {id}: {entries} entries, {bytes} bytes; check it with `cordon log verify-bundle {}`",
                out.display()
            );
        }
        IncidentCommand::Attribute { id, data, sample, json, show } => {
            let text =
                std::fs::read_to_string(&sample).with_context(|| format!("cannot read `{}`", sample.display()))?;
            let parsed = read_sample(&sample.display().to_string(), &text)?;
            if parsed.rows.is_empty() {
                bail!("sample `{}` has no rows with a value cordon can match", sample.display());
            }
            let gateway = open(&data)?;
            let started = Instant::now();
            let attribution = wait(gateway.incident_attribute(&who, &id, &parsed, "cli"))?;
            let elapsed = started.elapsed();
            println!(
                "sample: {} rows, {} matched to customers{}",
                attribution.rows,
                attribution.matched_rows,
                if attribution.unmatched_lines.is_empty() {
                    String::new()
                } else {
                    format!(" (no match on lines {:?})", attribution.unmatched_lines)
                }
            );
            if !parsed.ignored_columns.is_empty() {
                println!("ignored columns: {}", parsed.ignored_columns.join(", "));
            }
            println!(
                "{:<12} {:>9} {:>10} {:>10} {:>10} {:>11}  verdict",
                "agent", "explains", "as shown", "expected", "customers", "chance"
            );
            for agent in attribution.agents.iter().take(show) {
                println!(
                    "{:<12} {:>6}/{:<2} {:>10} {:>10.2} {:>10} {:>11.2e}  {}",
                    agent.agent,
                    agent.explained.len(),
                    attribution.matched_rows,
                    agent.consistent,
                    agent.expected,
                    agent.volume,
                    agent.chance,
                    if agent.blamed { "BLAMED" } else { "-" }
                );
            }
            let blamed: Vec<&str> = attribution.blamed().map(|agent| agent.agent.as_str()).collect();
            if blamed.is_empty() {
                println!("nobody is blamed: {}", attribution.reason);
            } else {
                println!(
                    "blamed: {} ({} of {} matched rows explained as shown by {})",
                    blamed.join(", "),
                    attribution.covered_rows,
                    attribution.matched_rows,
                    if attribution.cover.len() == blamed.len() {
                        "them".to_string()
                    } else {
                        attribution.cover.join(", ")
                    }
                );
                for agent in attribution.blamed().take(3) {
                    let entries: Vec<String> = agent
                        .explained
                        .iter()
                        .filter(|row| row.consistent)
                        .take(5)
                        .map(|row| format!("line {} -> {} (entries {:?})", row.line, row.customer, row.evidence))
                        .collect();
                    println!("evidence for {}: {}", agent.agent, entries.join("; "));
                }
            }
            eprintln!("attribution computed in {:.1} ms", elapsed.as_secs_f64() * 1000.0);
            if let Some(path) = json {
                write(&path, &serde_json::to_string_pretty(&attribution_json(&attribution))?)?;
                eprintln!("attribution as JSON: {}", path.display());
            }
        }
    }
    Ok(())
}

fn print_scope(id: &str, scope: &Scope, show: usize) {
    println!(
        "incident {id}: {} customers affected of {} ({:.3}% of the base), {} high-balance",
        scope.customers.len(),
        scope.base_customers,
        scope.share() * 100.0,
        scope.high_balance
    );
    println!(
        "accesses {}, first {}, last {}",
        scope.accesses,
        scope.first_ms.map_or("-".into(), iso_time),
        scope.last_ms.map_or("-".into(), iso_time)
    );
    println!("{:<16} {:>10} {:>12}", "field class", "revealed", "masked only");
    for (class, count) in &scope.by_class {
        println!("{:<16} {:>10} {:>12}", class.name(), count.revealed, count.masked_only);
    }
    println!("{:<22} {:>10} {:>12}", "field", "revealed", "masked only");
    for (field, count) in &scope.by_field {
        println!("{:<22} {:>10} {:>12}", field.name(), count.revealed, count.masked_only);
    }
    println!(
        "{:<12} {:>10} {:>10} {:>9}  {:<20}  {:<20}",
        "agent", "customers", "revealed", "accesses", "first", "last"
    );
    for agent in &scope.agents {
        println!(
            "{:<12} {:>10} {:>10} {:>9}  {:<20}  {:<20}",
            agent.agent,
            agent.customers,
            agent.customers_revealed,
            agent.accesses,
            iso_time(agent.first_ms),
            iso_time(agent.last_ms)
        );
    }
    println!("{:<10} {:>9} {:>10} {:>6} {:>8}", "day", "accesses", "customers", "new", "reveals");
    for day in &scope.days {
        println!(
            "{:<10} {:>9} {:>10} {:>6} {:>8}",
            day.day, day.accesses, day.customers, day.new_customers, day.reveals
        );
    }
    if !scope.customers.is_empty() {
        println!(
            "affected (first {} of {}; --csv or --json for all):",
            show.min(scope.customers.len()),
            scope.customers.len()
        );
    }
    for customer in scope.customers.iter().take(show) {
        let names = |fields: &std::collections::BTreeSet<cordon_incident::Field>| {
            fields.iter().map(|field| field.name()).collect::<Vec<_>>().join(" ")
        };
        println!(
            "  {:<12} revealed [{}] masked [{}]{}",
            customer.customer,
            names(&customer.revealed),
            names(&customer.masked_only),
            if customer.high_balance { " high-balance" } else { "" }
        );
    }
}
