//! `cordon incident …`: the incident responder's commands. Each is one call on the gateway,
//! or, while `cordon serve` has the data directory open, the same call on its API
//! (`remote.rs`); either way the answer is the same document (the API's JSON), which this
//! module prints.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, bail};
use cordon_gateway::{IncidentSpec, IncidentStatus, SystemClock, incident_json};
use cordon_incident::{attribution_json, iso_time, read_sample, scope_json};
use hyper::Method;
use serde_json::{Value, json};

use crate::cli::IncidentCommand;

use crate::commands::remote::{Target, segment};
use crate::commands::{analyst, option_end, option_time as time, wait};

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

/// Opens `data` for analysis (no detection replay), or finds the server that holds it.
fn target(data: &Path) -> anyhow::Result<Target> {
    Target::of(data, |dir| dir.open_for_analysis(Arc::new(SystemClock)))
}

fn text(value: &Value, key: &str) -> String {
    match value.get(key) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    }
}

fn list(value: &Value, key: &str) -> Vec<String> {
    value.get(key).and_then(Value::as_array).map_or_else(Vec::new, |items| {
        items.iter().map(|item| item.as_str().map_or_else(|| item.to_string(), str::to_string)).collect()
    })
}

fn number(value: &Value, key: &str) -> u64 {
    value.get(key).and_then(Value::as_u64).unwrap_or(0)
}

pub fn run(command: IncidentCommand) -> anyhow::Result<()> {
    let who = analyst();
    match command {
        IncidentCommand::Open { data, title, agents, since, until, aware, status } => {
            let assigned = assignments("status", &status)?;
            let opened = match target(&data)? {
                Target::Local(gateway) => {
                    let mut record = IncidentStatus::default();
                    for (name, value) in &assigned {
                        record.set(name, value)?;
                    }
                    let spec = IncidentSpec {
                        title,
                        agents,
                        since_ms: time("since", since.as_deref())?,
                        until_ms: option_end("until", until.as_deref())?,
                        aware_at_ms: time("aware", aware.as_deref())?,
                        status: record,
                    };
                    incident_json(&wait(gateway.open_incident(&who, spec, "cli"))?)
                }
                Target::Remote(remote) => {
                    let status: serde_json::Map<String, Value> =
                        assigned.into_iter().map(|(name, value)| (name, Value::String(value))).collect();
                    let body = json!({"title": title, "agents": agents, "since": since, "until": until,
                        "aware": aware, "status": status});
                    remote.json(Method::POST, "/v1/incidents", Some(&body))?
                }
            };
            println!("{}", text(&opened, "id"));
            eprintln!(
                "opened incident {} (ledger entry {}); the 72-hour clock started {}",
                text(&opened, "id"),
                text(&opened, "ledger_index"),
                text(&opened, "aware_at")
            );
        }
        IncidentCommand::List { data } => {
            let incidents: Vec<Value> = match target(&data)? {
                Target::Local(gateway) => wait(gateway.incidents(&who, "cli"))?.iter().map(incident_json).collect(),
                Target::Remote(remote) => remote
                    .json(Method::GET, "/v1/incidents", None)?
                    .get("incidents")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            };
            if incidents.is_empty() {
                println!("no incidents");
            }
            for incident in incidents {
                let agents = list(&incident, "agents");
                println!(
                    "{:<8} opened {}  agents {}  {}",
                    text(&incident, "id"),
                    text(&incident, "opened_at"),
                    if agents.is_empty() { "all".to_string() } else { agents.join(",") },
                    text(&incident, "title")
                );
            }
        }
        IncidentCommand::Watermark { code, data, json } => {
            let code = code.trim().to_uppercase();
            let report = match target(&data)? {
                Target::Local(gateway) => {
                    cordon_gateway::session_json(&wait(gateway.session_report(&who, &code, "cli"))?)
                }
                Target::Remote(remote) => {
                    remote.json(Method::GET, &format!("/v1/sessions/{}", segment(&code)), None)?
                }
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_session(&report);
            }
        }
        IncidentCommand::Show { id, data } => {
            let shown = match target(&data)? {
                Target::Local(gateway) => {
                    let (incident, timeline) = wait(gateway.incident_and_timeline(&who, &id, "cli"))?;
                    let mut view = incident_json(&incident);
                    if let Some(object) = view.as_object_mut() {
                        let events = timeline.iter().map(|event| {
                            json!({"time": iso_time(event.time_ms), "what": event.what, "ledger_index": event.ledger_index})
                        });
                        object.insert("timeline".into(), events.collect());
                    }
                    view
                }
                Target::Remote(remote) => remote.json(Method::GET, &format!("/v1/incidents/{}", segment(&id)), None)?,
            };
            print_incident(&shown);
        }
        IncidentCommand::Status { id, data, set } => {
            let changes = assignments("set", &set)?;
            match target(&data)? {
                Target::Local(gateway) => {
                    wait(gateway.set_incident_status(&who, &id, &changes, "cli"))?;
                }
                Target::Remote(remote) => {
                    let status: serde_json::Map<String, Value> =
                        changes.into_iter().map(|(name, value)| (name, Value::String(value))).collect();
                    let path = format!("/v1/incidents/{}/status", segment(&id));
                    remote.json(Method::POST, &path, Some(&json!({ "status": status })))?;
                }
            }
            println!("incident {id}: status updated");
        }
        IncidentCommand::Scope { id, data, csv, json, show } => {
            let started = Instant::now();
            let scope = match target(&data)? {
                Target::Local(gateway) => scope_json(&wait(gateway.incident_scope(&who, &id, "cli"))?),
                Target::Remote(remote) => {
                    remote.json(Method::GET, &format!("/v1/incidents/{}/scope", segment(&id)), None)?
                }
            };
            let elapsed = started.elapsed();
            print_scope(&id, &scope, show);
            eprintln!("scope computed in {:.1} ms", elapsed.as_secs_f64() * 1000.0);
            if let Some(path) = csv {
                write(&path, &cordon_incident::affected_csv(&scope))?;
                eprintln!("affected list: {}", path.display());
            }
            if let Some(path) = json {
                write(&path, &serde_json::to_string_pretty(&scope)?)?;
                eprintln!("scope as JSON: {}", path.display());
            }
        }
        IncidentCommand::Protect { id, data, apply } => {
            let report = match target(&data)? {
                Target::Local(gateway) => {
                    let report = wait(gateway.incident_protect(&who, &id, apply, "cli"))?;
                    cordon_gateway::protect_json(&report)
                }
                Target::Remote(remote) => {
                    let path = format!("/v1/incidents/{}/protect", segment(&id));
                    remote.json(Method::POST, &path, Some(&json!({ "apply": apply })))?
                }
            };
            print_protect(&id, &report);
        }
        IncidentCommand::Notify { id, data } => {
            let (notices, folder) = match target(&data)? {
                Target::Local(gateway) => {
                    let (notices, folder) = wait(gateway.incident_notify(&who, &id, "cli"))?;
                    (notices.len() as u64, folder.display().to_string())
                }
                Target::Remote(remote) => {
                    let path = format!("/v1/incidents/{}/notify", segment(&id));
                    let answer = remote.json(Method::POST, &path, Some(&json!({})))?;
                    (number(&answer, "notices"), text(&answer, "folder"))
                }
            };
            println!("{folder}");
            eprintln!(
                "{notices} notices (text and HTML), one per affected customer shown more than initials, in {folder}"
            );
        }
        IncidentCommand::Report { id, data, out } => {
            let (markdown, html) = match target(&data)? {
                Target::Local(gateway) => wait(gateway.incident_report(&who, &id, "cli"))?,
                Target::Remote(remote) => {
                    let path = format!("/v1/incidents/{}/report", segment(&id));
                    let markdown = remote.call(Method::GET, &format!("{path}?format=md"), None)?;
                    let html = remote.call(Method::GET, &format!("{path}?format=html"), None)?;
                    (String::from_utf8_lossy(&markdown).into_owned(), String::from_utf8_lossy(&html).into_owned())
                }
            };
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
            let chunks: Box<dyn Iterator<Item = Vec<u8>>> = match target(&data)? {
                Target::Local(gateway) => Box::new(wait(gateway.incident_evidence(&who, &id, "cli"))?.into_chunks()),
                Target::Remote(remote) => {
                    let path = format!("/v1/incidents/{}/evidence", segment(&id));
                    Box::new(std::iter::once(remote.call(Method::GET, &path, None)?))
                }
            };
            let mut file = std::io::BufWriter::new(
                std::fs::File::create(&out).with_context(|| format!("cannot write `{}`", out.display()))?,
            );
            let mut bytes = 0;
            for chunk in chunks {
                std::io::Write::write_all(&mut file, &chunk)
                    .with_context(|| format!("cannot write `{}`", out.display()))?;
                bytes += chunk.len();
            }
            std::io::Write::flush(&mut file).with_context(|| format!("cannot write `{}`", out.display()))?;
            let summary = cordon_ledger::verify_bundle(
                &std::fs::read(&out).with_context(|| format!("cannot read `{}`", out.display()))?,
                None,
            )
            .with_context(|| format!("the bundle written to `{}` does not verify", out.display()))?;
            println!("{}", out.display());
            eprintln!(
                "evidence bundle for {id}: {} entries, {bytes} bytes; check it with `cordon log verify-bundle {}`",
                summary.entries,
                out.display()
            );
        }
        IncidentCommand::Attribute { id, data, sample, json, show } => {
            let text_of_sample =
                std::fs::read_to_string(&sample).with_context(|| format!("cannot read `{}`", sample.display()))?;
            let parsed = read_sample(&sample.display().to_string(), &text_of_sample)?;
            if parsed.rows.is_empty() {
                bail!("sample `{}` has no rows with a value cordon can match", sample.display());
            }
            let started = Instant::now();
            let attribution = match target(&data)? {
                Target::Local(gateway) => {
                    attribution_json(&wait(gateway.incident_attribute(&who, &id, &parsed, "cli"))?)
                }
                Target::Remote(remote) => {
                    let path = format!("/v1/incidents/{}/attribute", segment(&id));
                    remote.json(Method::POST, &path, Some(&json!({ "sample": text_of_sample })))?
                }
            };
            let elapsed = started.elapsed();
            if !parsed.ignored_columns.is_empty() {
                println!("ignored columns: {}", parsed.ignored_columns.join(", "));
            }
            print_attribution(&attribution, show);
            eprintln!("attribution computed in {:.1} ms", elapsed.as_secs_f64() * 1000.0);
            if let Some(path) = json {
                write(&path, &serde_json::to_string_pretty(&attribution)?)?;
                eprintln!("attribution as JSON: {}", path.display());
            }
        }
    }
    Ok(())
}

fn print_incident(incident: &Value) {
    println!("incident {}: {}", text(incident, "id"), text(incident, "title"));
    println!(
        "opened {} by {} (ledger entry {})",
        text(incident, "opened_at"),
        text(incident, "opened_by"),
        text(incident, "ledger_index")
    );
    println!("aware since {}", text(incident, "aware_at"));
    let agents = list(incident, "agents");
    println!("suspects {}", if agents.is_empty() { "all agents".into() } else { agents.join(", ") });
    let since = incident.get("since").and_then(Value::as_str).unwrap_or("the start");
    let until = incident.get("until").and_then(Value::as_str).unwrap_or("now");
    println!("window {since} .. {until}");
    println!("public status (only what an analyst set; `cordon incident status` sets it):");
    let status = incident.get("status").cloned().unwrap_or(Value::Null);
    for name in IncidentStatus::FIELDS {
        let value =
            status.get(name).and_then(Value::as_str).filter(|value| !value.is_empty()).unwrap_or("(not stated)");
        println!("  {:<19} {value}", name.replace('_', " "));
    }
    println!("timeline:");
    for event in incident.get("timeline").and_then(Value::as_array).into_iter().flatten() {
        let entry = event
            .get("ledger_index")
            .and_then(Value::as_u64)
            .map(|index| format!(" (ledger entry {index})"))
            .unwrap_or_default();
        println!("  {}  {}{entry}", text(event, "time"), text(event, "what"));
    }
}

fn print_protect(id: &str, report: &Value) {
    let levels: Vec<String> = report
        .get("by_exposure")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(level, count)| format!("{count} {level}"))
        .collect();
    println!(
        "incident {id}: {} affected customers get actions (shown: {}; initials alone get none)",
        number(report, "customers"),
        levels.join(", ")
    );
    for (action, count) in report.get("actions").and_then(Value::as_object).into_iter().flatten() {
        println!("  {action:<32} {count} customers");
    }
    let (now, before) = (number(report, "recorded_now"), number(report, "recorded_before"));
    if report.get("applied").and_then(Value::as_bool).unwrap_or(false) {
        println!(
            "applied: {now} actions recorded now (each a ledger entry, queued for the exchange's webhook), {before} recorded before"
        );
    } else {
        let planned: u64 = report
            .get("actions")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(_, count)| count.as_u64())
            .sum();
        println!(
            "dry run: {} actions would be recorded ({before} already are); add --apply to record them",
            planned.saturating_sub(before)
        );
    }
}

fn print_scope(id: &str, scope: &Value, show: usize) {
    let affected = scope.get("affected").and_then(Value::as_array).cloned().unwrap_or_default();
    println!(
        "incident {id}: {} customers affected of {} ({:.3}% of the base), {} high-balance",
        affected.len(),
        number(scope, "customer_base"),
        scope.get("share_of_base").and_then(Value::as_f64).unwrap_or(0.0) * 100.0,
        number(scope, "high_balance_customers")
    );
    println!(
        "accesses {}, first {}, last {}",
        number(scope, "accesses"),
        text(scope, "first_access"),
        text(scope, "last_access")
    );
    println!("{:<16} {:>10} {:>12}", "field class", "revealed", "masked only");
    for class in scope.get("by_class").and_then(Value::as_array).into_iter().flatten() {
        println!("{:<16} {:>10} {:>12}", text(class, "class"), number(class, "revealed"), number(class, "masked_only"));
    }
    println!("{:<22} {:>10} {:>12}", "field", "revealed", "masked only");
    for field in scope.get("by_field").and_then(Value::as_array).into_iter().flatten() {
        println!("{:<22} {:>10} {:>12}", text(field, "field"), number(field, "revealed"), number(field, "masked_only"));
    }
    println!(
        "{:<12} {:>10} {:>10} {:>9}  {:<20}  {:<20}",
        "agent", "customers", "revealed", "accesses", "first", "last"
    );
    for agent in scope.get("agents").and_then(Value::as_array).into_iter().flatten() {
        println!(
            "{:<12} {:>10} {:>10} {:>9}  {:<20}  {:<20}",
            text(agent, "agent"),
            number(agent, "customers"),
            number(agent, "customers_revealed"),
            number(agent, "accesses"),
            text(agent, "first_access"),
            text(agent, "last_access")
        );
    }
    println!("{:<10} {:>9} {:>10} {:>6} {:>8}", "day", "accesses", "customers", "new", "reveals");
    for day in scope.get("days").and_then(Value::as_array).into_iter().flatten() {
        println!(
            "{:<10} {:>9} {:>10} {:>6} {:>8}",
            text(day, "day"),
            number(day, "accesses"),
            number(day, "customers"),
            number(day, "new_customers"),
            number(day, "reveals")
        );
    }
    if !affected.is_empty() {
        println!("affected (first {} of {}; --csv or --json for all):", show.min(affected.len()), affected.len());
    }
    for customer in affected.iter().take(show) {
        println!(
            "  {:<12} revealed [{}] masked [{}]{}",
            text(customer, "customer"),
            list(customer, "revealed").join(" "),
            list(customer, "masked_only").join(" "),
            if customer.get("high_balance").and_then(Value::as_bool).unwrap_or(false) { " high-balance" } else { "" }
        );
    }
}

fn print_attribution(attribution: &Value, show: usize) {
    let unmatched = list(attribution, "unmatched_lines");
    let matched = number(attribution, "matched_rows");
    println!(
        "sample: {} rows, {matched} matched to customers{}",
        number(attribution, "rows"),
        if unmatched.is_empty() { String::new() } else { format!(" (no match on lines {})", unmatched.join(", ")) }
    );
    println!(
        "{:<12} {:>9} {:>10} {:>10} {:>10} {:>11}  verdict",
        "agent", "explains", "as shown", "expected", "customers", "chance"
    );
    let agents = attribution.get("agents").and_then(Value::as_array).cloned().unwrap_or_default();
    for agent in agents.iter().take(show) {
        let blamed = agent.get("blamed").and_then(Value::as_bool).unwrap_or(false);
        println!(
            "{:<12} {:>6}/{:<2} {:>10} {:>10.2} {:>10} {:>11.2e}  {}",
            text(agent, "agent"),
            number(agent, "rows_explained"),
            matched,
            number(agent, "rows_as_shown"),
            agent.get("expected_by_chance").and_then(Value::as_f64).unwrap_or(0.0),
            number(agent, "customers_ever_shown"),
            agent.get("chance").and_then(Value::as_f64).unwrap_or(1.0),
            if blamed { "BLAMED" } else { "-" }
        );
    }
    let blamed = list(attribution, "blamed");
    let cover = list(attribution, "cover");
    if blamed.is_empty() {
        println!("nobody is blamed: {}", text(attribution, "reason"));
        return;
    }
    println!(
        "blamed: {} ({} of {matched} matched rows explained as shown by {})",
        blamed.join(", "),
        number(attribution, "rows_explained_by_blamed"),
        if cover.len() == blamed.len() { "them".to_string() } else { cover.join(", ") }
    );
    for agent in agents.iter().filter(|agent| agent.get("blamed").and_then(Value::as_bool).unwrap_or(false)).take(3) {
        let entries: Vec<String> = agent
            .get("evidence")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|row| row.get("consistent").and_then(Value::as_bool).unwrap_or(false))
            .take(5)
            .map(|row| {
                format!("line {} -> {} (entries {})", text(row, "line"), text(row, "customer"), text(row, "entries"))
            })
            .collect();
        println!("evidence for {}: {}", text(agent, "agent"), entries.join("; "));
    }
}

/// A session report as a responder reads it: who, when, and the customers it was shown.
fn print_session(report: &Value) {
    let text = |name: &str| report.get(name).and_then(Value::as_str).unwrap_or("?").to_string();
    println!("session {}: {} ({}), from {}", text("code"), text("subject"), text("role"), text("started_at"));
    match report.get("ended_at").and_then(Value::as_str) {
        Some(ended) => println!("ended {ended} ({})", text("end_reason")),
        None => println!("not ended; it expires at the latest at {}", text("expires_at")),
    }
    let customers = report.get("customers").and_then(Value::as_array).cloned().unwrap_or_default();
    println!(
        "{} accesses through it showed {} customers (ledger entry of the first showing each):",
        report.get("accesses").and_then(Value::as_u64).unwrap_or(0),
        customers.len()
    );
    for customer in customers {
        println!(
            "  {:<24} entry {}",
            customer.get("customer").and_then(Value::as_str).unwrap_or("?"),
            customer.get("first_entry").and_then(Value::as_u64).unwrap_or(0)
        );
    }
}
