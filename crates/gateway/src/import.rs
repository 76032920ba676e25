//! Bulk import of customers, agents and tickets from JSONL files. Lines are streamed; a bad
//! line is reported with its number and nothing from it is stored; the rest go in batches,
//! replacing any earlier record with the same id, so an import can be run again safely.

use std::collections::BTreeMap;
use std::io::{BufRead, Read as _};

use cordon_directory::{Agent, Role, Shift, Ticket};
use cordon_vault::Field;
use serde::Deserialize;
use serde_json::Value;

use crate::datadir::futures_block_on;
use crate::error::GatewayError;
use crate::service::Gateway;

/// Records per SQLite transaction and per ledger entry. Large on purpose: each commit writes
/// every search-index page its randomly placed digests touch, so at a million customers a
/// batch of 10,000 rewrote most of the index each time (20 GB written for a 1.6 GB file);
/// 50,000 cut the import from 58.6 to 35.7 s. A batch of customers holds about 85 MB.
const BATCH_RECORDS: usize = 50_000;
/// Lines longer than this are refused rather than read into memory whole.
const LINE_BYTES_MAX: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportKind {
    Customers,
    Agents,
    Tickets,
}

impl ImportKind {
    pub fn name(self) -> &'static str {
        match self {
            ImportKind::Customers => "customers",
            ImportKind::Agents => "agents",
            ImportKind::Tickets => "tickets",
        }
    }
}

/// A line that was not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub line: u64,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub imported: u64,
    pub rejected: Vec<Rejected>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentLine {
    id: String,
    name: String,
    team: String,
    site: String,
    /// `staff`, or the vendor that employs the agent. Required: a missing employer must
    /// not make a vendor's agent staff.
    employer: String,
    /// `[start, end)` in UTC hours; equal hours mean all day.
    #[serde(default)]
    shift: Option<[u8; 2]>,
    #[serde(default = "agent_role")]
    role: String,
    #[serde(default = "active")]
    status: String,
    /// The agent's work email, which the helpdesk's webhooks name agents by.
    #[serde(default)]
    email: Option<String>,
}

fn agent_role() -> String {
    "agent".into()
}

fn active() -> String {
    "active".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TicketLine {
    id: String,
    requester: String,
    category: String,
    #[serde(default = "open")]
    status: String,
    assignee: Option<String>,
    /// The agent who opened it for the customer (absent: the customer raised it).
    opened_by: Option<String>,
    /// Who put it in the assignee's queue (absent: the helpdesk's routing).
    assigned_by: Option<String>,
    created_at: Option<i64>,
}

fn open() -> String {
    "open".into()
}

/// Imports `input`, calling `progress` with the bytes read so far after each batch.
///
/// Customers go through two threads: one parses and seals (the CPU-heavy part), the caller's
/// thread records each batch in the ledger and writes it to SQLite. One sealing thread keeps
/// the file's order, so when an id repeats, the later line wins.
pub fn import(
    gateway: &Gateway,
    kind: ImportKind,
    input: impl BufRead + Send,
    mut progress: impl FnMut(u64),
) -> Result<ImportReport, GatewayError> {
    if kind != ImportKind::Customers {
        return import_lines(gateway, kind, input, |batch, _| batch.flush(gateway, kind), &mut progress);
    }
    // One batch waiting while one is written and one is sealed bounds the memory in flight.
    let (sender, receiver) = std::sync::mpsc::sync_channel::<(Batch, u64)>(1);
    std::thread::scope(|scope| {
        let sealer = scope.spawn(move || {
            import_lines(
                gateway,
                kind,
                input,
                |batch, bytes_read| {
                    let count = batch.len() as u64;
                    // The bytes read so far travel with each batch, for the progress bar.
                    sender
                        .send((std::mem::take(batch), bytes_read))
                        .map_err(|_| GatewayError::Internal("the import writer stopped".into()))?;
                    Ok(count)
                },
                &mut |_| {},
            )
        });
        let mut written = Ok(0u64);
        for (mut batch, bytes_read) in receiver.iter() {
            match batch.flush(gateway, kind) {
                Ok(count) => {
                    if let Ok(total) = &mut written {
                        *total += count;
                    }
                    progress(bytes_read);
                }
                Err(error) => {
                    written = Err(error);
                    break;
                }
            }
        }
        drop(receiver);
        let sealed = sealer.join().map_err(|_| GatewayError::Internal("the sealing thread failed".into()))?;
        // A writer failure stops the sealer too; the writer's error is the cause to report.
        let imported = written?;
        Ok(ImportReport { imported, rejected: sealed?.rejected })
    })
}

/// Reads lines, adds each to a batch, and hands full batches (and the last) to `flush`.
fn import_lines(
    gateway: &Gateway,
    kind: ImportKind,
    input: impl BufRead,
    mut flush: impl FnMut(&mut Batch, u64) -> Result<u64, GatewayError>,
    progress: &mut dyn FnMut(u64),
) -> Result<ImportReport, GatewayError> {
    let mut report = ImportReport::default();
    let mut batch = Batch::default();
    let mut bytes_read = 0u64;
    let mut reader = input;
    let mut line_number = 0u64;
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        let read = reader
            .by_ref()
            .take(LINE_BYTES_MAX as u64 + 1)
            .read_until(b'\n', &mut buffer)
            .map_err(|error| GatewayError::BadRequest(format!("cannot read the input: {error}")))?;
        if read == 0 {
            break;
        }
        bytes_read += read as u64;
        line_number += 1;
        if buffer.len() > LINE_BYTES_MAX && !buffer.ends_with(b"\n") {
            // Skip the rest of an overlong line.
            let mut rest = Vec::new();
            let skipped =
                reader.read_until(b'\n', &mut rest).map_err(|error| GatewayError::BadRequest(error.to_string()))?;
            bytes_read += skipped as u64;
            report
                .rejected
                .push(Rejected { line: line_number, reason: format!("the line is over {LINE_BYTES_MAX} bytes") });
            continue;
        }
        let text = match std::str::from_utf8(&buffer) {
            Ok(text) => text.trim(),
            Err(_) => {
                report.rejected.push(Rejected { line: line_number, reason: "the line is not UTF-8".into() });
                continue;
            }
        };
        if text.is_empty() {
            continue;
        }
        if let Err(reason) = batch.add(gateway, kind, text) {
            report.rejected.push(Rejected { line: line_number, reason });
            continue;
        }
        if batch.len() >= BATCH_RECORDS {
            report.imported += flush(&mut batch, bytes_read)?;
            progress(bytes_read);
        }
    }
    report.imported += flush(&mut batch, bytes_read)?;
    progress(bytes_read);
    Ok(report)
}

#[derive(Default)]
pub(crate) struct Batch {
    customers: Vec<cordon_store::CustomerRow>,
    agents: Vec<Agent>,
    /// Agent id and work email, for the agents of this batch that gave one.
    agent_emails: Vec<(String, String)>,
    tickets: Vec<Ticket>,
}

impl Batch {
    fn len(&self) -> usize {
        self.customers.len() + self.agents.len() + self.tickets.len()
    }

    fn add(&mut self, gateway: &Gateway, kind: ImportKind, line: &str) -> Result<(), String> {
        match kind {
            ImportKind::Customers => {
                let value: Value = serde_json::from_str(line).map_err(|error| format!("not a JSON object: {error}"))?;
                let Value::Object(mut object) = value else { return Err("not a JSON object".into()) };
                let id = match object.remove("id") {
                    Some(Value::String(id)) => id,
                    _ => return Err("`id` is missing or not a string".into()),
                };
                let canary = match object.remove("canary") {
                    None => false,
                    Some(Value::Bool(canary)) => canary,
                    Some(_) => return Err(format!("customer `{id}`: `canary` must be true or false")),
                };
                let mut fields = BTreeMap::new();
                for (name, value) in object {
                    let field: Field = name.parse().map_err(|error| format!("customer `{id}`: {error}"))?;
                    fields.insert(field, value);
                }
                let row = gateway.seal_customer(&id, &fields, canary).map_err(|error| error.to_string())?;
                self.customers.push(row);
            }
            ImportKind::Agents => {
                let line: AgentLine = serde_json::from_str(line).map_err(|error| error.to_string())?;
                cordon_directory::check_agent_id(&line.id).map_err(|error| error.to_string())?;
                let email = line.email.as_deref().map(str::trim).filter(|email| !email.is_empty()).map(str::to_string);
                if let Some(email) = &email
                    && (email.len() > 254 || !email.contains('@') || email.chars().any(char::is_control))
                {
                    return Err(format!("agent `{}`: `email` is not an email address", line.id));
                }
                let [start, end] = line.shift.unwrap_or([0, 0]);
                let role: Role = line.role.parse().map_err(|error| format!("agent `{}`: {error}", line.id))?;
                let agent = Agent {
                    shift: Shift::new(start, end).map_err(|error| format!("agent `{}`: {error}", line.id))?,
                    role,
                    status: line.status.parse().map_err(|error| format!("agent `{}`: {error}", line.id))?,
                    id: line.id,
                    name: line.name,
                    team: line.team,
                    site: line.site,
                    employer: line.employer,
                };
                agent.check().map_err(|error| format!("agent `{}`: {error}", agent.id))?;
                // An import keeps an existing agent's status (each status change is an entry
                // of its own); a line that would change it is refused, not silently ignored.
                if let Some(existing) = gateway.agent(&agent.id).map_err(|error| error.to_string())?
                    && existing.status != agent.status
                {
                    return Err(format!(
                        "agent `{}` is {} and an import does not change statuses: suspend or offboard it with \
                         POST /v1/agents/{}/suspend or /offboard (an analyst reinstates)",
                        agent.id, existing.status, agent.id
                    ));
                }
                if let Some(email) = email {
                    self.agent_emails.push((agent.id.clone(), email));
                }
                self.agents.push(agent);
            }
            ImportKind::Tickets => {
                let line: TicketLine = serde_json::from_str(line).map_err(|error| error.to_string())?;
                cordon_directory::check_id("ticket", &line.id).map_err(|error| error.to_string())?;
                crate::admin::refuse_helpdesk_id(&line.id).map_err(|error| error.to_string())?;
                if !gateway.categories().knows(&line.category) {
                    return Err(format!("ticket `{}`: unknown category `{}`", line.id, line.category));
                }
                let now = gateway.now_ms().div_euclid(1000);
                let ticket = Ticket {
                    status: line.status.parse().map_err(|error| format!("ticket `{}`: {error}", line.id))?,
                    id: line.id,
                    requester: line.requester,
                    category: line.category,
                    assignee: line.assignee.filter(|assignee| !assignee.is_empty()),
                    opened_by: line.opened_by.filter(|agent| !agent.is_empty()),
                    assigned_by: line.assigned_by.filter(|agent| !agent.is_empty()),
                    created_at: line.created_at.unwrap_or(now),
                    updated_at: now,
                };
                gateway.check_ticket_people(&ticket).map_err(|error| error.to_string())?;
                self.tickets.push(ticket);
            }
        }
        Ok(())
    }

    /// Records the batch in the audit log, then stores it.
    fn flush(&mut self, gateway: &Gateway, kind: ImportKind) -> Result<u64, GatewayError> {
        match kind {
            ImportKind::Customers => store_customers(gateway, &std::mem::take(&mut self.customers)),
            ImportKind::Agents => {
                let imported = import_agents(gateway, &std::mem::take(&mut self.agents))?;
                gateway.store().put_agent_emails(&std::mem::take(&mut self.agent_emails))?;
                Ok(imported)
            }
            ImportKind::Tickets => store_tickets(gateway, &std::mem::take(&mut self.tickets)),
        }
    }
}

/// Stores agents the way an import does: one ledger entry for the batch, then the rows.
/// The simulator seeds its staff through here.
pub fn import_agents(gateway: &Gateway, agents: &[Agent]) -> Result<u64, GatewayError> {
    let ids: Vec<&str> = agents.iter().map(|agent| agent.id.as_str()).collect();
    if !record_batch(gateway, "import.agents", &ids)? {
        return Ok(0);
    }
    gateway.directory.put_agents(gateway.store(), agents)?;
    Ok(ids.len() as u64)
}

fn store_customers(gateway: &Gateway, rows: &[cordon_store::CustomerRow]) -> Result<u64, GatewayError> {
    let ids: Vec<&str> = rows.iter().map(|row| row.id.as_str()).collect();
    if !record_batch(gateway, "import.customers", &ids)? {
        return Ok(0);
    }
    gateway.directory.put_customers(gateway.store(), rows, gateway.now_ms().div_euclid(1000))?;
    Ok(ids.len() as u64)
}

fn store_tickets(gateway: &Gateway, tickets: &[Ticket]) -> Result<u64, GatewayError> {
    let ids: Vec<&str> = tickets.iter().map(|ticket| ticket.id.as_str()).collect();
    if !record_batch(gateway, "import.tickets", &ids)? {
        return Ok(0);
    }
    gateway.directory.put_tickets(gateway.store(), tickets)?;
    Ok(ids.len() as u64)
}

/// One audit entry for a batch: how many records and the first and last id. False for an
/// empty batch, which is neither recorded nor stored.
fn record_batch(gateway: &Gateway, change: &'static str, ids: &[&str]) -> Result<bool, GatewayError> {
    let (Some(first), Some(last)) = (ids.first(), ids.last()) else { return Ok(false) };
    futures_block_on(gateway.change_entry(
        "import",
        change,
        &format!("{} records", ids.len()),
        Some(format!("{first}..{last}")),
        "import",
    ))?;
    Ok(true)
}
