//! Incident response over the gateway's data: the exposure index (derived from the ledger),
//! incidents, scope and attribution. The answers themselves are `cordon_incident`'s pure
//! functions; this module reads the facts they need and records each incident action in the
//! ledger. Only analysts and administrators may call these.

use std::collections::{BTreeSet, HashMap};

use cordon_incident::{
    Attribution, CustomerFacts, MatchedRow, Needed, Sample, Scope, Shown, ShownAs, attribute, scope,
};
use cordon_store::{Exposure, StoredIncident, TimelineEvent};
use cordon_vault::{BalanceBand, Field};
use serde::Deserialize;
use serde_json::Value;

use crate::error::GatewayError;
use crate::service::Gateway;
use crate::token::Claims;

/// Ledger entries read into the exposure index per transaction.
const EXPOSURE_BATCH_ENTRIES: usize = 50_000;
/// Customers consistent with one masked rendering that attribution reads, at most.
const CANDIDATES_PER_VALUE_MAX: usize = 100_000;
/// A customer with at least this balance counts as high-balance (the detector's threshold).
pub const HIGH_BALANCE_BAND: BalanceBand = BalanceBand::OneHundredThousandToOneMillion;

/// What an incident is opened with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncidentSpec {
    pub title: String,
    /// Suspect agents; none means every agent.
    pub agents: Vec<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// When the exchange became aware (the extortion email); now if not given.
    pub aware_at_ms: Option<i64>,
    /// The public-disclosure status record: extortion demand, negotiations, trading
    /// operations, investigation.
    pub status: IncidentStatus,
}

/// The fields an exchange's public disclosure of an incident carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentStatus {
    pub extortion_demand: String,
    pub negotiations: String,
    pub trading_operations: String,
    pub investigation: String,
}

impl Default for IncidentStatus {
    fn default() -> IncidentStatus {
        IncidentStatus {
            extortion_demand: "under assessment".into(),
            negotiations: "none; no ransom will be paid".into(),
            trading_operations: "unaffected".into(),
            investigation: "open".into(),
        }
    }
}

impl IncidentStatus {
    pub const FIELDS: [&'static str; 4] = ["extortion_demand", "negotiations", "trading_operations", "investigation"];

    pub fn to_json(&self) -> String {
        serde_json::json!({
            "extortion_demand": self.extortion_demand,
            "negotiations": self.negotiations,
            "trading_operations": self.trading_operations,
            "investigation": self.investigation,
        })
        .to_string()
    }

    pub fn from_json(text: &str) -> IncidentStatus {
        let value: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        let field =
            |name: &str, default: String| value.get(name).and_then(Value::as_str).map_or(default, str::to_string);
        let defaults = IncidentStatus::default();
        IncidentStatus {
            extortion_demand: field("extortion_demand", defaults.extortion_demand),
            negotiations: field("negotiations", defaults.negotiations),
            trading_operations: field("trading_operations", defaults.trading_operations),
            investigation: field("investigation", defaults.investigation),
        }
    }

    /// Sets one field by name; the error names the field.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), GatewayError> {
        let slot = match name {
            "extortion_demand" => &mut self.extortion_demand,
            "negotiations" => &mut self.negotiations,
            "trading_operations" => &mut self.trading_operations,
            "investigation" => &mut self.investigation,
            _ => {
                return Err(GatewayError::BadRequest(format!(
                    "unknown status field `{name}`; use one of {}",
                    IncidentStatus::FIELDS.join(", ")
                )));
            }
        };
        *slot = value.to_string();
        Ok(())
    }
}

/// The parts of a ledger entry the exposure index reads.
#[derive(Deserialize)]
struct EntryView {
    kind: String,
    #[serde(default)]
    time_ms: i64,
    #[serde(default)]
    agent: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    customer: Option<String>,
    #[serde(default)]
    fields: Vec<String>,
    #[serde(default)]
    matches: Option<Vec<String>>,
    #[serde(default)]
    decision: String,
}

/// The exposures one ledger entry records: none unless it is an allowed access that showed
/// customers.
fn exposures_of(index: u64, bytes: &[u8]) -> Vec<Exposure> {
    let Ok(entry) = serde_json::from_slice::<EntryView>(bytes) else { return Vec::new() };
    if entry.kind != "access" || entry.decision != "allow" {
        return Vec::new();
    }
    let customers: Vec<String> = match (entry.action.as_str(), entry.customer, entry.matches) {
        ("search", _, Some(matches)) => matches,
        ("view" | "reveal" | "verify", Some(customer), _) => vec![customer],
        _ => return Vec::new(),
    };
    customers
        .into_iter()
        .map(|customer_id| Exposure {
            ledger_index: index,
            time_ms: entry.time_ms,
            agent_id: entry.agent.clone(),
            customer_id,
            action: entry.action.clone(),
            fields: entry.fields.clone(),
        })
        .collect()
}

fn shown(exposure: Exposure) -> Option<Shown> {
    Some(Shown {
        how: ShownAs::from_action(&exposure.action)?,
        fields: exposure.fields.iter().filter_map(|name| name.parse::<Field>().ok()).collect(),
        ledger_index: exposure.ledger_index,
        time_ms: exposure.time_ms,
        agent: exposure.agent_id,
        customer: exposure.customer_id,
    })
}

impl Gateway {
    /// Reads the ledger entries the exposure index has not read yet; returns how many
    /// entries it read. The index is a function of the ledger: deleting it only costs a
    /// re-read.
    pub fn refresh_exposures(&self) -> Result<u64, GatewayError> {
        let from = self.store.exposures_through()?;
        let size = self.audit.size();
        if from >= size {
            return Ok(0);
        }
        let mut batch: Vec<Exposure> = Vec::new();
        let mut entries_in_batch = 0usize;
        let mut failed: Option<GatewayError> = None;
        self.audit
            .for_each_entry_from(from, size, &mut |index, bytes| {
                batch.extend(exposures_of(index, bytes));
                entries_in_batch += 1;
                if entries_in_batch >= EXPOSURE_BATCH_ENTRIES {
                    if let Err(error) = self.store.add_exposures(&batch, index + 1) {
                        failed = Some(error.into());
                        return Err("the exposure index could not be written".into());
                    }
                    batch.clear();
                    entries_in_batch = 0;
                }
                Ok(())
            })
            .map_err(|error| failed.take().unwrap_or(GatewayError::Internal(error.0)))?;
        self.store.add_exposures(&batch, size)?;
        Ok(size - from)
    }

    /// Opens an incident; the opening is a ledger entry (identifiers only: the suspects and
    /// the window, never the title).
    pub async fn open_incident(
        &self,
        who: &Claims,
        spec: IncidentSpec,
        request: &str,
    ) -> Result<StoredIncident, GatewayError> {
        let actor = self.analyst(who)?;
        if spec.title.trim().is_empty() {
            return Err(GatewayError::BadRequest("an incident needs a title".into()));
        }
        self.check_value_length(&spec.title)?;
        if let (Some(since), Some(until)) = (spec.since_ms, spec.until_ms)
            && since > until
        {
            return Err(GatewayError::BadRequest(format!("the window starts ({since}) after it ends ({until})")));
        }
        for agent in &spec.agents {
            if self.store.agent(agent)?.is_none() {
                return Err(GatewayError::NotFound { what: "agent", id: agent.clone(), ledger_index: None });
            }
        }
        let id = format!("inc-{}", self.store.incidents()?.len() + 1);
        let now_ms = self.clock.now_ms();
        let window = |time: Option<i64>| time.map_or_else(|| "-".to_string(), |time| time.to_string());
        let detail = format!(
            "agents {} window {}..{}",
            if spec.agents.is_empty() { "*".to_string() } else { spec.agents.join(",") },
            window(spec.since_ms),
            window(spec.until_ms)
        );
        let index = self.change_entry(&actor, "incident.open", &id, Some(detail), request).await?;
        let incident = StoredIncident {
            id: id.clone(),
            title: spec.title.trim().to_string(),
            opened_at_ms: now_ms,
            aware_at_ms: spec.aware_at_ms.unwrap_or(now_ms),
            opened_by: actor,
            agents: spec.agents,
            since_ms: spec.since_ms,
            until_ms: spec.until_ms,
            status: spec.status.to_json(),
            ledger_index: index,
        };
        self.store.put_incident(&incident)?;
        self.store.add_timeline(
            &id,
            &TimelineEvent {
                time_ms: incident.aware_at_ms,
                what: "the exchange became aware".into(),
                ledger_index: None,
            },
        )?;
        self.store.add_timeline(
            &id,
            &TimelineEvent {
                time_ms: now_ms,
                what: format!("incident opened by {}", incident.opened_by),
                ledger_index: Some(index),
            },
        )?;
        Ok(incident)
    }

    /// Changes an incident's public-disclosure status; the change is a ledger entry naming
    /// the fields changed (their text stays in the store).
    pub async fn set_incident_status(
        &self,
        who: &Claims,
        id: &str,
        changes: &[(String, String)],
        request: &str,
    ) -> Result<StoredIncident, GatewayError> {
        let actor = self.analyst(who)?;
        let mut incident = self.incident(who, id)?;
        let mut status = IncidentStatus::from_json(&incident.status);
        for (name, value) in changes {
            self.check_value_length(value)?;
            status.set(name, value)?;
        }
        let names: Vec<&str> = changes.iter().map(|(name, _)| name.as_str()).collect();
        let index = self.change_entry(&actor, "incident.status", id, Some(names.join(",")), request).await?;
        incident.status = status.to_json();
        self.store.put_incident(&incident)?;
        self.store.add_timeline(
            id,
            &TimelineEvent {
                time_ms: self.clock.now_ms(),
                what: format!("status updated: {}", names.join(", ")),
                ledger_index: Some(index),
            },
        )?;
        Ok(incident)
    }

    pub fn incidents(&self, who: &Claims) -> Result<Vec<StoredIncident>, GatewayError> {
        self.analyst(who)?;
        Ok(self.store.incidents()?)
    }

    pub fn incident(&self, who: &Claims, id: &str) -> Result<StoredIncident, GatewayError> {
        self.analyst(who)?;
        self.store.incident(id)?.ok_or_else(|| GatewayError::NotFound {
            what: "incident",
            id: id.into(),
            ledger_index: None,
        })
    }

    pub fn incident_timeline(&self, who: &Claims, id: &str) -> Result<Vec<TimelineEvent>, GatewayError> {
        self.incident(who, id)?;
        Ok(self.store.timeline(id)?)
    }

    /// The incident's scope, computed afresh from the exposure index (brought up to the
    /// ledger first). Reading a scope is itself a ledger entry.
    pub async fn incident_scope(&self, who: &Claims, id: &str, request: &str) -> Result<Scope, GatewayError> {
        let actor = self.analyst(who)?;
        let incident = self.incident(who, id)?;
        let found = self.scope_of(&incident)?;
        self.change_entry(&actor, "incident.scope", id, Some(format!("customers {}", found.customers.len())), request)
            .await?;
        Ok(found)
    }

    /// Scope without the ledger entry, for the other incident commands that build on it.
    pub(crate) fn scope_of(&self, incident: &StoredIncident) -> Result<Scope, GatewayError> {
        self.refresh_exposures()?;
        let agents = if incident.agents.is_empty() {
            self.store.agent_volumes()?.into_iter().map(|(agent, _)| agent).collect()
        } else {
            incident.agents.clone()
        };
        let exposures = self.store.exposures_by_agents(
            &agents,
            incident.since_ms.unwrap_or(i64::MIN),
            incident.until_ms.unwrap_or(i64::MAX),
        )?;
        let shown: Vec<Shown> = exposures.into_iter().filter_map(shown).collect();
        let customers: BTreeSet<&str> = shown.iter().map(|access| access.customer.as_str()).collect();
        let mut facts = HashMap::with_capacity(customers.len());
        for customer in customers {
            facts.insert(customer.to_string(), self.customer_facts(customer)?);
        }
        Ok(scope(&shown, &facts, self.store.customer_count()?))
    }

    /// Which fields a customer's record holds (visible without decrypting) and whether its
    /// balance is high (decrypted here, never stored or returned).
    fn customer_facts(&self, customer: &str) -> Result<CustomerFacts, GatewayError> {
        let Some(stored) = self.store.customer(customer)? else { return Ok(CustomerFacts::default()) };
        let Some(sealed) = stored.sealed else { return Ok(CustomerFacts::default()) };
        let balance = self.vault.open(customer, &sealed, &[Field::BalanceUsd])?;
        let band = balance.get(&Field::BalanceUsd).and_then(Value::as_f64).and_then(BalanceBand::of);
        Ok(CustomerFacts {
            fields: Some(sealed.record.fields().collect()),
            high_balance: band.is_some_and(|band| band >= HIGH_BALANCE_BAND),
        })
    }

    /// Matches a leaked sample to customers and ranks every agent by how much of it its
    /// accesses explain. The ledger entry records the row counts, never the sample.
    pub async fn incident_attribute(
        &self,
        who: &Claims,
        id: &str,
        sample: &Sample,
        request: &str,
    ) -> Result<Attribution, GatewayError> {
        let actor = self.analyst(who)?;
        self.incident(who, id)?;
        let found = self.attribution_of(sample)?;
        self.change_entry(
            &actor,
            "incident.attribute",
            id,
            Some(format!("rows {} matched {} blamed {}", found.rows, found.matched_rows, found.cover.join(","))),
            request,
        )
        .await?;
        Ok(found)
    }

    pub(crate) fn attribution_of(&self, sample: &Sample) -> Result<Attribution, GatewayError> {
        self.refresh_exposures()?;
        let mut rows = Vec::with_capacity(sample.rows.len());
        for row in &sample.rows {
            let mut candidates: Option<BTreeSet<String>> = None;
            let mut needed = Vec::new();
            for cell in &row.cells {
                let Some(kind) = cell.column.index(cell.masked) else { continue };
                let Some(digest) = self.vault.search_digest(kind, &cell.value) else { continue };
                let ids: BTreeSet<String> =
                    self.store.search_up_to(kind, &digest, CANDIDATES_PER_VALUE_MAX)?.into_iter().collect();
                needed.push(Needed { column: cell.column, masked: cell.masked });
                // Every value of a row describes the same customer: the candidates are the
                // customers consistent with all of them.
                candidates = Some(match candidates {
                    None => ids,
                    Some(known) => known.intersection(&ids).cloned().collect(),
                });
            }
            rows.push(MatchedRow {
                line: row.line,
                candidates: candidates.unwrap_or_default().into_iter().collect(),
                needed,
            });
        }
        let customers: Vec<String> =
            rows.iter().flat_map(|row| row.candidates.iter().cloned()).collect::<BTreeSet<_>>().into_iter().collect();
        let shown: Vec<Shown> = self.store.exposures_of_customers(&customers)?.into_iter().filter_map(shown).collect();
        let volumes: HashMap<String, u64> = self.store.agent_volumes()?.into_iter().collect();
        Ok(attribute(&rows, &shown, &volumes, self.store.customer_count()?))
    }
}
