//! Incident response over the gateway's data: the exposure index (derived from the ledger),
//! incidents, scope and attribution. The answers themselves are `cordon_incident`'s pure
//! functions; this module reads the facts they need and records each incident action in the
//! ledger. Only analysts and administrators may call these.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use cordon_incident::{
    Attribution, BAND_UNKNOWN, BandCensus, CustomerFacts, ExposureLevel, MatchedRow, Needed, NullModel, Sample, Scope,
    Seen, Shown, ShownAs, attribute, scope,
};
use cordon_store::{Exposure, ProtectiveAction, StoredIncident, TimelineEvent};
use cordon_vault::{BalanceBand, Field};
use serde_json::Value;

use crate::error::GatewayError;
use crate::service::Gateway;
use crate::token::Claims;

/// Customers consistent with one masked rendering that attribution reads, at most.
const CANDIDATES_PER_VALUE_MAX: usize = 100_000;
/// Threads for the parts of scope and attribution that read many records.
const THREADS_MAX: usize = 4;
/// The fewest customer records worth a thread of their own.
const FACTS_PER_THREAD_MIN: usize = 256;
/// Customers per transaction when attribution writes what is left of the match index.
const MATCH_INDEX_BATCH_CUSTOMERS: usize = 20_000;
/// A customer with at least this balance counts as high-balance (the detector's threshold).
pub const HIGH_BALANCE_BAND: BalanceBand = BalanceBand::OneHundredThousandToOneMillion;

/// Every protective action, by name.
pub const PROTECTIVE_ACTIONS: [&str; 3] =
    ["hold_new_address_withdrawals", "step_up_high_risk_withdrawals", "scam_warning_banner"];

/// The protective actions for a customer, by how much of it was shown: a hold on withdrawals
/// to new addresses only where something was shown in full (enough to impersonate the
/// exchange convincingly); a step-up check and a scam warning where masked fields were shown
/// (a partial email and phone, a balance band, enough to pick and approach a target);
/// nothing for initials alone, which identify no one.
pub fn protective_actions_for(level: ExposureLevel) -> &'static [&'static str] {
    match level {
        ExposureLevel::Revealed => &PROTECTIVE_ACTIONS,
        ExposureLevel::Masked => &["step_up_high_risk_withdrawals", "scam_warning_banner"],
        ExposureLevel::Initials => &[],
    }
}
/// Ledger entries appended per group by `incident_protect`.
const PROTECT_BATCH_ACTIONS: usize = 10_000;

/// What `incident_protect` found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectReport {
    pub applied: bool,
    /// Affected customers given at least one action.
    pub customers: u64,
    /// Affected customers by how much of them was shown (`initials`, `masked`, `revealed`).
    pub by_exposure: std::collections::BTreeMap<&'static str, u64>,
    /// Actions for the affected customers, planned or recorded.
    pub actions: Vec<ProtectiveAction>,
    /// Of those, recorded by this call (zero on a dry run).
    pub recorded_now: u64,
    /// Of those, recorded by an earlier call.
    pub recorded_before: u64,
}

/// How an incident's protection and notices stand: what the console's incident page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectionStatus {
    /// Customers each protective action was recorded for.
    pub recorded: Vec<(String, u64)>,
    /// How their messages to the exchange's account systems stand in the outbox.
    pub deliveries: cordon_store::Deliveries,
    /// Notices the last `incident.notify` wrote, if notices were written.
    pub notices_written: Option<u64>,
    /// Whether `[incident] contact` is set (without it notices are refused).
    pub contact_set: bool,
    /// Whether `[incident] protect_webhook_url` is set (without it messages wait in the outbox).
    pub webhook_set: bool,
}

/// What `incident_protect` found or did, as the API and the command line show it: counts per
/// action, never the customers.
pub fn protect_json(report: &ProtectReport) -> Value {
    let mut per_action: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    for action in &report.actions {
        *per_action.entry(action.action.as_str()).or_default() += 1;
    }
    serde_json::json!({
        "applied": report.applied,
        "customers": report.customers,
        "by_exposure": report.by_exposure,
        "actions": per_action,
        "recorded_now": report.recorded_now,
        "recorded_before": report.recorded_before,
    })
}

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

/// The fields an exchange's public disclosure of an incident carries. Each is what an analyst
/// entered, word for word, or empty: cordon states nothing public on the exchange's behalf
/// (whether a ransom will be paid, whether trading is affected) that nobody said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncidentStatus {
    pub extortion_demand: String,
    pub negotiations: String,
    pub trading_operations: String,
    pub investigation: String,
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
        let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::trim).unwrap_or_default().to_string();
        IncidentStatus {
            extortion_demand: field("extortion_demand"),
            negotiations: field("negotiations"),
            trading_operations: field("trading_operations"),
            investigation: field("investigation"),
        }
    }

    /// The fields by name, with what was entered (empty if nothing).
    pub fn fields(&self) -> [(&'static str, &str); 4] {
        [
            ("extortion_demand", self.extortion_demand.as_str()),
            ("negotiations", self.negotiations.as_str()),
            ("trading_operations", self.trading_operations.as_str()),
            ("investigation", self.investigation.as_str()),
        ]
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

/// An alert as the API and the command line show it: the row and its decision, with the
/// risk, signals and evidence of the ledger entry that raised it.
pub fn alert_json(alert: &cordon_store::StoredAlert) -> Value {
    let body: Value = serde_json::from_str(&alert.body).unwrap_or(Value::Null);
    serde_json::json!({
        "id": alert.id,
        "agent": alert.agent,
        "level": alert.level,
        "time_ms": alert.time_ms,
        "ledger_index": alert.ledger_index,
        "status": alert.status,
        "risk": body.get("risk").cloned().unwrap_or(Value::Null),
        "signals": body.get("signals").cloned().unwrap_or(Value::Null),
        "evidence": body.get("evidence").cloned().unwrap_or(Value::Null),
        "reason": alert.reason,
        "decided_by": alert.decided_by,
        "decided_at_ms": alert.decided_at_ms,
    })
}

/// The risk board as the API and the command line show it, highest risk first.
pub fn risk_board_json(board: &[cordon_detect::AgentRisk]) -> Value {
    serde_json::json!({
        "agents": board.iter().map(|row| serde_json::json!({
            "agent": row.agent,
            "peer_group": row.peer_group,
            "risk": (row.risk * 1000.0).round() / 1000.0,
            "level": row.level.name(),
        })).collect::<Vec<_>>(),
    })
}

/// An incident as the API and the command line show it.
pub fn incident_json(incident: &StoredIncident) -> Value {
    let status: Value = serde_json::from_str(&incident.status).unwrap_or(Value::Null);
    serde_json::json!({
        "id": incident.id,
        "title": incident.title,
        "opened_at": cordon_incident::iso_time(incident.opened_at_ms),
        "aware_at": cordon_incident::iso_time(incident.aware_at_ms),
        "opened_by": incident.opened_by,
        "agents": incident.agents,
        "since": incident.since_ms.map(cordon_incident::iso_time),
        "until": incident.until_ms.map(cordon_incident::iso_time),
        "status": status,
        "ledger_index": incident.ledger_index,
    })
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

/// `work` over `items` split across the machine's cores (at most `THREADS_MAX`, at least
/// `per_thread_min` items each), results in the items' order; the first error wins.
fn on_every_core<T: Sync, R: Send>(
    items: &[T],
    per_thread_min: usize,
    work: impl Fn(&[T]) -> Result<Vec<R>, GatewayError> + Sync,
) -> Result<Vec<R>, GatewayError> {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get).min(THREADS_MAX);
    let chunk = items.len().div_ceil(threads).max(per_thread_min).max(1);
    let parts: Vec<Result<Vec<R>, GatewayError>> = std::thread::scope(|scope| {
        let work = &work;
        let workers: Vec<_> = items.chunks(chunk).map(|part| scope.spawn(move || work(part))).collect();
        workers
            .into_iter()
            .map(|worker| {
                worker.join().unwrap_or_else(|_| Err(GatewayError::Internal("a worker thread failed".into())))
            })
            .collect()
    });
    let mut all = Vec::with_capacity(items.len());
    for part in parts {
        all.extend(part?);
    }
    Ok(all)
}

impl Gateway {
    /// Brings the exposure index up to every durable entry; returns how many entries it
    /// read. The ledger follower keeps it current while the gateway runs (a quarter second
    /// behind), so this reads little; the index is a function of the ledger: deleting it
    /// only costs a re-read.
    pub fn refresh_exposures(&self) -> Result<u64, GatewayError> {
        let from = self.store.exposures_through()?;
        self.indexer.catch_up()?;
        Ok(self.store.exposures_through()?.saturating_sub(from))
    }

    /// Opens an incident; the opening is a ledger entry (identifiers only: the suspects and
    /// the window, never the title).
    pub async fn open_incident(
        &self,
        who: &Claims,
        spec: IncidentSpec,
        request: &str,
    ) -> Result<StoredIncident, GatewayError> {
        let actor = self.analyst(who, request).await?;
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
        let id = format!("inc-{}", self.store.next_incident_number()?);
        let now_ms = self.clock.now_ms();
        let window = |time: Option<i64>| time.map_or_else(|| "-".to_string(), |time| time.to_string());
        let detail = format!(
            "agents {} window {}..{}",
            if spec.agents.is_empty() { "*".to_string() } else { spec.agents.join(",") },
            window(spec.since_ms),
            window(spec.until_ms)
        );
        let _changing = self.changing().await;
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
        self.store.insert_incident(&incident)?;
        self.store.add_timeline(
            &id,
            &timeline(incident.aware_at_ms, "aware", "the exchange became aware".into(), None, None),
        )?;
        self.store.add_timeline(
            &id,
            &timeline(now_ms, "open", format!("incident opened by {}", incident.opened_by), None, Some(index)),
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
        let actor = self.analyst(who, request).await?;
        let mut incident = self.stored_incident(id)?;
        let mut status = IncidentStatus::from_json(&incident.status);
        for (name, value) in changes {
            self.check_value_length(value)?;
            status.set(name, value)?;
        }
        let names: Vec<&str> = changes.iter().map(|(name, _)| name.as_str()).collect();
        let _changing = self.changing().await;
        let index = self.change_entry(&actor, "incident.status", id, Some(names.join(",")), request).await?;
        incident.status = status.to_json();
        self.store.set_incident_status(id, &incident.status)?;
        self.store.add_timeline(
            id,
            &timeline(
                self.clock.now_ms(),
                "status",
                format!("status updated: {}", names.join(", ")),
                None,
                Some(index),
            ),
        )?;
        Ok(incident)
    }

    pub async fn incidents(&self, who: &Claims, request: &str) -> Result<Vec<StoredIncident>, GatewayError> {
        self.analyst(who, request).await?;
        Ok(self.store.incidents()?)
    }

    pub async fn incident(&self, who: &Claims, id: &str, request: &str) -> Result<StoredIncident, GatewayError> {
        self.analyst(who, request).await?;
        self.stored_incident(id)
    }

    fn stored_incident(&self, id: &str) -> Result<StoredIncident, GatewayError> {
        self.store.incident(id)?.ok_or_else(|| GatewayError::NotFound {
            what: "incident",
            id: id.into(),
            ledger_index: None,
        })
    }

    /// An incident with its timeline, from one authorization.
    pub async fn incident_and_timeline(
        &self,
        who: &Claims,
        id: &str,
        request: &str,
    ) -> Result<(StoredIncident, Vec<TimelineEvent>), GatewayError> {
        let incident = self.incident(who, id, request).await?;
        Ok((incident, self.store.timeline(id)?))
    }

    /// The incident's scope, computed afresh from the exposure index (brought up to the
    /// ledger first). Reading a scope is itself a ledger entry.
    pub async fn incident_scope(&self, who: &Claims, id: &str, request: &str) -> Result<Scope, GatewayError> {
        let actor = self.analyst(who, request).await?;
        let incident = self.stored_incident(id)?;
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
        let customers: Vec<&str> =
            shown.iter().map(|access| access.customer.as_str()).collect::<BTreeSet<_>>().into_iter().collect();
        let facts = self.customers_facts(&customers)?;
        Ok(scope(&shown, &facts, self.store.customer_count()?))
    }

    /// The candidates of a bucketed index whose own value normalises to `wanted`: each one's
    /// field is opened in memory and compared, never returned or stored.
    fn confirm_candidates(
        &self,
        candidates: BTreeSet<String>,
        kind: cordon_vault::SearchKey,
        wanted: Option<&str>,
    ) -> Result<BTreeSet<String>, GatewayError> {
        let Some(wanted) = wanted else { return Ok(BTreeSet::new()) };
        let field = match kind {
            cordon_vault::SearchKey::FullName => Field::FullName,
            cordon_vault::SearchKey::MaskedWallet => Field::WalletAddresses,
            _ => return Ok(candidates),
        };
        let mut confirmed = BTreeSet::new();
        for customer in candidates {
            let Some(cordon_store::StoredCustomer { sealed: Some(sealed), .. }) = self.store.customer(&customer)?
            else {
                continue;
            };
            let opened = self.vault.open(&customer, &sealed, &[field])?;
            let values: Vec<&str> = match opened.get(&field) {
                Some(Value::String(text)) => vec![text.as_str()],
                Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            if values.iter().any(|value| cordon_vault::normalize(kind, value).as_deref() == Some(wanted)) {
                confirmed.insert(customer);
            }
        }
        Ok(confirmed)
    }

    /// Which fields each customer's record holds (visible without decrypting) and whether its
    /// balance is high (decrypted here, never stored or returned). Customers without a record
    /// (never imported, or crypto-shredded) get the default facts. The records are read and
    /// opened on every core, a transaction per thread: at a Kraken-sized scope this is most
    /// of the work.
    fn customers_facts(&self, customers: &[&str]) -> Result<HashMap<String, CustomerFacts>, GatewayError> {
        let opened = on_every_core(customers, FACTS_PER_THREAD_MIN, |part| {
            // Each thread reads its part in one transaction on its own reader connection.
            self.store
                .customers(part)?
                .iter()
                .map(|customer| Ok((customer.id.clone(), self.sealed_facts(customer)?)))
                .collect()
        })?;
        let mut facts: HashMap<String, CustomerFacts> =
            customers.iter().map(|customer| (customer.to_string(), CustomerFacts::default())).collect();
        facts.extend(opened);
        Ok(facts)
    }

    fn sealed_facts(&self, stored: &cordon_store::StoredCustomer) -> Result<CustomerFacts, GatewayError> {
        let Some(sealed) = &stored.sealed else { return Ok(CustomerFacts::default()) };
        Ok(CustomerFacts {
            fields: Some(sealed.record.fields().collect()),
            high_balance: self.balance_band(stored)?.is_some_and(|band| band >= HIGH_BALANCE_BAND),
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
        let actor = self.analyst(who, request).await?;
        self.stored_incident(id)?;
        let found = self.attribution_of(sample)?;
        self.change_entry(
            &actor,
            "incident.attribute",
            id,
            Some(format!(
                "rows {} matched {} verdict {} blamed {}",
                found.rows,
                found.matched_rows,
                found.verdict.name(),
                found.blamed().map(|agent| agent.agent.as_str()).collect::<Vec<_>>().join(",")
            )),
            request,
        )
        .await?;
        Ok(found)
    }

    /// Attribution of `sample` without a ledger entry: `incident_attribute` records it, and
    /// the attribution evaluation runs thousands of samples through this.
    pub fn attribution_of(&self, sample: &Sample) -> Result<Attribution, GatewayError> {
        self.refresh_exposures()?;
        self.write_match_index()?;
        // Rows are independent, and a masked row reads thousands of candidates per value.
        let rows = on_every_core(&sample.rows, 1, |part| part.iter().map(|row| self.match_row(row)).collect())?;
        let customers: Vec<String> =
            rows.iter().flat_map(|row| row.candidates.iter().cloned()).collect::<BTreeSet<_>>().into_iter().collect();
        self.with_null_model(|model| {
            // Read after the model caught up, so every pair the model counts is among them.
            let shown: Vec<Shown> =
                self.store.exposures_of_customers(&customers)?.into_iter().filter_map(shown).collect();
            Ok(attribute(&rows, &shown, model))
        })
    }

    /// Runs `work` on the null model, current to the exposure index: the cached model with
    /// each customer whose reach changed since it was last brought up to date replaced (a few
    /// map updates each), or, when customer records changed or the log no longer holds every
    /// change since, one built afresh from the census of balance bands and every agent's
    /// reach. The model is locked while `work` runs.
    fn with_null_model<R>(&self, work: impl FnOnce(&NullModel) -> Result<R, GatewayError>) -> Result<R, GatewayError> {
        let mut cached = self.null_model.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let writes = self.store.customer_writes()?;
        let census_current = cached.census.as_ref().is_some_and(|(census_writes, _)| *census_writes == writes);
        let mut current = false;
        if census_current
            && let Some((through, model)) = cached.model.as_mut()
            && let Some((last, changes)) = self.store.reach_changes_after(*through)?
        {
            let ways = |pairs: Vec<(String, u8)>| -> Vec<(String, Seen)> {
                pairs.into_iter().map(|(agent, seen)| (agent, Seen::from_bits(seen))).collect()
            };
            for change in changes {
                model.replace_customer(&change.customer, &ways(change.before), &ways(change.now));
            }
            *through = last;
            current = true;
        }
        if !current {
            // The old model goes first: two are never held at once.
            cached.model = None;
            let census = match cached.census.as_ref() {
                Some((census_writes, census)) if *census_writes == writes => Arc::clone(census),
                _ => {
                    cached.census = None;
                    Arc::new(self.band_census()?)
                }
            };
            let mut builder = NullModel::builder(Arc::clone(&census));
            let through = self
                .store
                .for_each_reach(|agent, customer, seen| builder.add(agent, customer, Seen::from_bits(seen)))?;
            cached.census = Some((writes, census));
            cached.model = Some((through, builder.finish()));
        }
        let (_, model) = cached.model.as_ref().ok_or_else(|| GatewayError::Internal("no null model".into()))?;
        work(model)
    }

    /// The heap attribution's cached null model holds, if one is built (for the benchmarks'
    /// account of memory).
    pub fn null_model_heap_bytes(&self) -> Option<u64> {
        let cached = self.null_model.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        cached.model.as_ref().map(|(_, model)| model.heap_bytes())
    }

    /// Every live customer's balance band (decrypted here, held only as a band number in
    /// memory), read in pages in id order and opened on every core.
    fn band_census(&self) -> Result<BandCensus, GatewayError> {
        const PAGE: usize = 16_384;
        let mut bands = Vec::new();
        let mut after = String::new();
        loop {
            let page = self.store.customers_after(&after, PAGE)?;
            let Some(last) = page.last() else { break };
            after = last.id.clone();
            let opened = on_every_core(&page, FACTS_PER_THREAD_MIN, |part| {
                part.iter()
                    .map(|customer| {
                        let band = self.balance_band(customer)?.map_or(BAND_UNKNOWN, |band| band as u8);
                        Ok((customer.id.clone(), band))
                    })
                    .collect()
            })?;
            bands.push(BandCensus::from_ordered(opened));
            if page.len() < PAGE {
                break;
            }
        }
        Ok(BandCensus::join(bands))
    }

    /// A customer's balance band, opened in memory; `None` if the record is gone (shredded)
    /// or holds no balance.
    fn balance_band(&self, stored: &cordon_store::StoredCustomer) -> Result<Option<BalanceBand>, GatewayError> {
        let Some(sealed) = &stored.sealed else { return Ok(None) };
        let balance = self.vault.open(&stored.id, sealed, &[Field::BalanceUsd])?;
        Ok(balance.get(&Field::BalanceUsd).and_then(Value::as_f64).and_then(BalanceBand::of))
    }

    /// The match-only search entries of customers imported since they were last written,
    /// written now (waiting for another gateway writing some of them): imports leave them to
    /// the server's idle moments, and what those have not written yet to the first sample
    /// that needs it. Returns how many customers' entries it wrote.
    pub fn write_match_index(&self) -> Result<u64, GatewayError> {
        let started = std::time::Instant::now();
        let customers = self.store.index_pending_matches(
            u64::MAX,
            MATCH_INDEX_BATCH_CUSTOMERS,
            cordon_store::OthersAtWork::WaitForThem,
        )?;
        if customers > 0 {
            tracing::info!(
                customers,
                seconds = started.elapsed().as_secs_f64(),
                "match index written for the customers imported since the last attribution"
            );
        }
        Ok(customers)
    }

    /// The customers consistent with every value of one sample row.
    fn match_row(&self, row: &cordon_incident::SampleRow) -> Result<MatchedRow, GatewayError> {
        let mut candidates: Option<BTreeSet<String>> = None;
        let mut needed = Vec::new();
        for cell in &row.cells {
            let Some(kind) = cell.column.index(cell.masked) else { continue };
            let Some(digest) = self.vault.search_digest(kind, &cell.value) else { continue };
            let mut ids: BTreeSet<String> =
                self.store.search_up_to(kind, &digest, CANDIDATES_PER_VALUE_MAX)?.into_iter().collect();
            if kind.bucketed() {
                // A bucket holds other customers too: keep those whose value matches.
                let wanted = cordon_vault::normalize(kind, &cell.value);
                ids = self.confirm_candidates(ids, kind, wanted.as_deref())?;
            }
            needed.push(Needed { column: cell.column, masked: cell.masked });
            // Every value of a row describes the same customer: the candidates are the
            // customers consistent with all of them.
            candidates = Some(match candidates {
                None => ids,
                Some(known) => known.intersection(&ids).cloned().collect(),
            });
        }
        Ok(MatchedRow { line: row.line, candidates: candidates.unwrap_or_default().into_iter().collect(), needed })
    }

    /// An evidence bundle for the incident: every ledger entry that showed an affected
    /// customer to a suspect, and the incident's opening, each with its receipt against one
    /// checkpoint, sealed by an `incident.evidence` entry that carries the manifest's hash.
    pub async fn incident_evidence(
        &self,
        who: &Claims,
        id: &str,
        request: &str,
    ) -> Result<EvidenceBundle, GatewayError> {
        let actor = self.analyst(who, request).await?;
        let incident = self.stored_incident(id)?;
        let found = self.scope_of(&incident)?;
        let mut indexes: Vec<u64> =
            found.customers.iter().flat_map(|customer| customer.evidence.iter().copied()).collect();
        indexes.push(incident.ledger_index);
        indexes.sort_unstable();
        indexes.dedup();
        if indexes.len() >= cordon_ledger::BUNDLE_ENTRIES_MAX {
            return Err(GatewayError::BadRequest(format!(
                "incident `{id}` has {} evidence entries; a bundle holds at most {}: narrow its agents or window",
                indexes.len(),
                cordon_ledger::BUNDLE_ENTRIES_MAX - 1
            )));
        }
        let (_, proven) = self.audit.prove_all(&indexes)?;
        let verifier_key = format!("{}\n", self.audit.verifier_key());
        let readme = evidence_readme(&incident, proven.len());
        let listed: Vec<(u64, &[u8])> = proven.iter().map(|(index, bytes, _)| (*index, bytes.as_slice())).collect();
        let manifest = cordon_ledger::manifest(&readme, &verifier_key, &listed);
        let seal_detail = format!(
            "{}{} entries {}",
            cordon_ledger::SEAL_MARKER,
            cordon_ledger::hex_sha256(manifest.as_bytes()),
            listed.len()
        );
        let _changing = self.changing().await;
        let seal = self.change_entry(&actor, "incident.evidence", id, Some(seal_detail), request).await?;
        indexes.push(seal);
        let (checkpoint, proven) = self.audit.prove_all(&indexes)?;
        self.store.add_timeline(
            id,
            &timeline(
                self.clock.now_ms(),
                "evidence",
                format!("evidence bundle of {} entries sealed", proven.len()),
                Some(proven.len() as u64),
                Some(seal),
            ),
        )?;
        let parts = cordon_ledger::BundleParts { readme, verifier_key, checkpoint, entries: proven, seal };
        Ok(EvidenceBundle { parts, manifest })
    }
}

/// An evidence bundle, sealed in the ledger, ready to be written or streamed file by file.
#[derive(Debug)]
pub struct EvidenceBundle {
    parts: cordon_ledger::BundleParts,
    manifest: String,
}

impl EvidenceBundle {
    /// How many entries it proves, the seal among them.
    pub fn entries(&self) -> usize {
        self.parts.entries.len()
    }

    /// The archive (POSIX ustar), one file per chunk, for streaming.
    pub fn into_chunks(self) -> impl Iterator<Item = Vec<u8>> + Send {
        cordon_ledger::bundle_chunks(self.parts, self.manifest)
    }
}

/// The README every evidence bundle carries: what is in it and how to check it without cordon.
fn evidence_readme(incident: &StoredIncident, entries: usize) -> String {
    format!(
        "# Evidence bundle for incident {id}\n\n\
         This archive proves, offline, that {entries} entries are in cordon's audit log, a\n\
         transparency log built on RFC 6962 Merkle trees with C2SP signed checkpoints.\n\
         Entries hold identifiers only (agent, customer account id, fields, decision, policy,\n\
         time), never a customer's data.\n\n\
         ## Files\n\n\
         - `verifier-key`: the log's Ed25519 public key in C2SP signed-note form\n\
           (`<name>+<key id>+<base64 key>`). Compare it with the key the exchange publishes.\n\
         - `checkpoint`: a C2SP tlog-checkpoint (origin, tree size, root hash), signed by that key.\n\
         - `entries/<index>`: each entry's exact bytes (canonical JSON).\n\
         - `proofs/<index>`: each entry's C2SP tlog-proof receipt (`c2sp.org/tlog-proof@v1`): the\n\
           index, the RFC 6962 inclusion proof and the same checkpoint.\n\
         - `MANIFEST`: the SHA-256 of this README, the key and every entry but the seal.\n\
         - `seal`: the index of the entry cordon wrote when it made this bundle; its bytes carry\n\
           `bundle-sha256=` and the SHA-256 of `MANIFEST`, so the log vouches for the manifest.\n\n\
         ## Checking it\n\n\
         With cordon: `cordon log verify-bundle FILE --vkey KEY`.\n\n\
         With any RFC 6962 / C2SP tool: check `checkpoint`'s signature with `verifier-key`\n\
         (C2SP signed-note, Ed25519); for each entry compute the leaf hash\n\
         SHA-256(0x00 || entry bytes) and check the receipt's inclusion proof against the\n\
         checkpoint's size and root (RFC 9162 section 2.1.3.2); check that `MANIFEST` lists the\n\
         SHA-256 of this README, of `verifier-key` and of every entry but the seal, and that the\n\
         seal entry carries the manifest's SHA-256. A consistency proof from any checkpoint you\n\
         saw earlier to this one (`cordon log consistency`, or the log's tiles) shows the log\n\
         was only ever appended to.\n\n\
         Incident {id}: suspects {agents}; window {since} to {until}; opened {opened} (entry {opened_index}).\n",
        id = incident.id,
        agents = if incident.agents.is_empty() { "all agents".to_string() } else { incident.agents.join(", ") },
        since = incident.since_ms.map_or_else(|| "the start".to_string(), cordon_incident::iso_time),
        until = incident.until_ms.map_or_else(|| "the bundle's checkpoint".to_string(), cordon_incident::iso_time),
        opened = cordon_incident::iso_time(incident.opened_at_ms),
        opened_index = incident.ledger_index,
    )
}

impl Gateway {
    /// Protective actions for every affected customer: a hold on withdrawals to new
    /// addresses, a step-up identity check on high-risk withdrawals, a scam-warning banner.
    /// A dry run (`apply` false) only lists them. Applying records each action not recorded
    /// before as a ledger entry (`protect.<action>`) and then in the store with its outbox
    /// message for the exchange, so applying twice, or after a restart, adds nothing.
    pub async fn incident_protect(
        &self,
        who: &Claims,
        id: &str,
        apply: bool,
        request: &str,
    ) -> Result<ProtectReport, GatewayError> {
        let actor = self.analyst(who, request).await?;
        let incident = self.stored_incident(id)?;
        let found = self.scope_of(&incident)?;
        let now_ms = self.clock.now_ms();
        let settings = &self.incident;
        let lasts_ms = |action: &str| -> i64 {
            match action {
                "hold_new_address_withdrawals" => i64::from(settings.hold_hours) * 3_600_000,
                "step_up_high_risk_withdrawals" => i64::from(settings.step_up_days) * 86_400_000,
                _ => i64::from(settings.banner_days) * 86_400_000,
            }
        };
        let before: std::collections::HashMap<(String, String), ProtectiveAction> = self
            .store
            .protective_actions(id)?
            .into_iter()
            .map(|action| ((action.customer_id.clone(), action.action.clone()), action))
            .collect();
        let mut actions = Vec::new();
        let mut missing = Vec::new();
        for customer in &found.customers {
            for action in protective_actions_for(customer.exposure()) {
                match before.get(&(customer.customer.clone(), (*action).to_string())) {
                    Some(known) => actions.push(known.clone()),
                    None => missing.push(ProtectiveAction {
                        customer_id: customer.customer.clone(),
                        action: action.to_string(),
                        recorded_at_ms: now_ms,
                        until_ms: Some(now_ms + lasts_ms(action)),
                        ledger_index: 0,
                    }),
                }
            }
        }
        let recorded_before = actions.len() as u64;
        let protected =
            found.customers.iter().filter(|customer| !protective_actions_for(customer.exposure()).is_empty()).count()
                as u64;
        let mut recorded_now = 0;
        if apply {
            for batch in missing.chunks_mut(PROTECT_BATCH_ACTIONS) {
                // Per batch: a backup waits for one batch, not for all of them.
                let _changing = self.changing().await;
                let changes = batch
                    .iter()
                    .map(|action| {
                        let until = action.until_ms.map(cordon_incident::iso_time).unwrap_or_default();
                        (
                            protect_change(&action.action),
                            action.customer_id.clone(),
                            Some(format!("incident {id} until {until}")),
                        )
                    })
                    .collect();
                // The ledger first: an action the exchange acts on always has its entry.
                let first = self.change_entries(&actor, changes, request).await?;
                for (offset, action) in batch.iter_mut().enumerate() {
                    action.ledger_index = first + offset as u64;
                }
                recorded_now +=
                    self.store.record_protective_actions(id, batch, &|action| protect_message(id, action))? as u64;
            }
            if recorded_now > 0 {
                let _changing = self.changing().await;
                self.store.add_timeline(
                    id,
                    &timeline(
                        now_ms,
                        "protect",
                        format!("{recorded_now} protective actions recorded for {protected} customers"),
                        Some(recorded_now),
                        missing.first().map(|action| action.ledger_index),
                    ),
                )?;
            }
        }
        actions.extend(missing);
        actions.sort_by(|a, b| (&a.customer_id, &a.action).cmp(&(&b.customer_id, &b.action)));
        let mut by_exposure = std::collections::BTreeMap::new();
        for customer in &found.customers {
            *by_exposure.entry(customer.exposure().name()).or_default() += 1;
        }
        Ok(ProtectReport { applied: apply, customers: protected, by_exposure, actions, recorded_now, recorded_before })
    }

    /// One notice per affected customer shown more than initials (initials alone identify
    /// no one and carry no notice), written as `<customer>.txt` and `.html` into
    /// `outbox/notices/<incident>/` in the data directory; returns the notices and that folder.
    /// Each notice's statements rest on facts: whether the customer's own support request
    /// called for every access, and whether the agents shown its data still have access. A
    /// notice needs a contact point (`[incident] contact`); without one none is written.
    /// Writing them is a ledger entry (`incident.notify`, with the count).
    pub async fn incident_notify(
        &self,
        who: &Claims,
        id: &str,
        request: &str,
    ) -> Result<(Vec<cordon_incident::Notice>, std::path::PathBuf), GatewayError> {
        let actor = self.analyst(who, request).await?;
        let contact = self.contact_point()?;
        let incident = self.stored_incident(id)?;
        let found = self.scope_of(&incident)?;
        let mut actions_by_customer: HashMap<String, Vec<String>> = HashMap::new();
        for action in self.store.protective_actions(id)? {
            let until = action.until_ms.map(cordon_incident::day_of).unwrap_or_default();
            actions_by_customer
                .entry(action.customer_id.clone())
                .or_default()
                .push(action_words(&action.action, &until));
        }
        let context = cordon_incident::NoticeContext {
            exchange: self.incident.exchange.clone(),
            incident: id.to_string(),
            contact: contact.to_string(),
        };
        let templates = (cordon_incident::NOTICE_TEXT_TEMPLATE, cordon_incident::NOTICE_HTML_TEMPLATE);
        let mut stopped: HashMap<String, bool> = HashMap::new();
        let mut tickets: HashMap<String, Option<cordon_directory::Ticket>> = HashMap::new();
        let mut notices = Vec::new();
        for customer in found.customers.iter().filter(|customer| customer.exposure() != ExposureLevel::Initials) {
            let facts = cordon_incident::NoticeFacts {
                requested_by_customer: self.requested_by_customer(customer, &mut tickets)?,
                access_stopped: self.access_stopped(&customer.agents, &mut stopped)?,
            };
            let actions = actions_by_customer.get(&customer.customer).map(Vec::as_slice).unwrap_or_default();
            notices.push(
                cordon_incident::notice(customer, actions, facts, &context, templates)
                    .map_err(GatewayError::Internal)?,
            );
        }
        let folder = self.data_folder().join("outbox").join("notices").join(file_name(id));
        crate::datadir::create_private_dir(&self.data_folder().join("outbox"))?;
        crate::datadir::create_private_dir(&folder)?;
        for notice in &notices {
            for (extension, body) in [("txt", &notice.text), ("html", &notice.html)] {
                let path = folder.join(format!("{}.{extension}", file_name(&notice.customer)));
                crate::datadir::write_private_file(&path, body.as_bytes())?;
            }
        }
        let _changing = self.changing().await;
        let index = self
            .change_entry(&actor, "incident.notify", id, Some(format!("notices {}", notices.len())), request)
            .await?;
        self.store.add_timeline(
            id,
            &timeline(
                self.clock.now_ms(),
                "notify",
                format!("{} customer notices written", notices.len()),
                Some(notices.len() as u64),
                Some(index),
            ),
        )?;
        Ok((notices, folder))
    }

    /// How `incident`'s protection and notices stand, with `timeline` its timeline as
    /// [`Gateway::incident_and_timeline`] (which authorized the caller) just read it.
    pub fn protection_status(
        &self,
        incident: &StoredIncident,
        timeline: &[TimelineEvent],
    ) -> Result<ProtectionStatus, GatewayError> {
        Ok(ProtectionStatus {
            recorded: self.store.protective_action_counts(&incident.id)?,
            deliveries: self.store.protect_deliveries(&incident.id)?,
            notices_written: timeline.iter().rev().find(|event| event.kind == "notify").and_then(|event| event.count),
            contact_set: self.contact_point().is_ok(),
            webhook_set: !self.incident.protect_webhook_url.is_empty(),
        })
    }

    /// The regulator report (GDPR Article 33(3), the 72-hour clock, a public disclosure
    /// summary) as Markdown and HTML. Writing it is a ledger entry (`incident.report`).
    pub async fn incident_report(
        &self,
        who: &Claims,
        id: &str,
        request: &str,
    ) -> Result<(String, String), GatewayError> {
        let actor = self.analyst(who, request).await?;
        let incident = self.stored_incident(id)?;
        let found = self.scope_of(&incident)?;
        let status = IncidentStatus::from_json(&incident.status);
        let mut stopped = Vec::new();
        let mut known = HashMap::new();
        for agent in &incident.agents {
            if self.agent_stopped(agent, &mut known)? {
                stopped.push(agent.clone());
            }
        }
        let mut per_action: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
        for action in self.store.protective_actions(id)? {
            *per_action.entry(action.action).or_default() += 1;
        }
        let protective: Vec<(String, u64)> = per_action.into_iter().collect();
        let mut per_proposal: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
        for customer in &found.customers {
            for action in protective_actions_for(customer.exposure()) {
                *per_proposal.entry((*action).to_string()).or_default() += 1;
            }
        }
        let proposed: Vec<(String, u64)> = per_proposal.into_iter().collect();
        let initials_only =
            found.customers.iter().filter(|customer| customer.exposure() == ExposureLevel::Initials).count() as u64;
        let deliveries = self.store.protect_deliveries(id)?;
        let contact = self.contact_point().ok();
        let events = self.store.timeline(id)?;
        let last_count =
            |kind: &str| events.iter().rev().find(|event| event.kind == kind).and_then(|event| event.count);
        let notices_written = last_count("notify").unwrap_or(0);
        let evidence_entries = last_count("evidence");
        let facts = cordon_incident::ReportFacts {
            exchange: &self.incident.exchange,
            contact,
            incident: id,
            title: &incident.title,
            aware_at_ms: incident.aware_at_ms,
            now_ms: self.clock.now_ms(),
            suspects: &incident.agents,
            suspects_stopped: &stopped,
            status: status.fields(),
            scope: &found,
            protective_actions: &protective,
            proposed_actions: &proposed,
            deliveries: cordon_incident::Deliveries {
                queued: deliveries.queued,
                delivered: deliveries.delivered,
                webhook_set: !self.incident.protect_webhook_url.trim().is_empty(),
                last_error: deliveries.last_error.as_deref(),
            },
            notices_written,
            initials_only,
            evidence_entries,
        };
        let markdown = cordon_incident::report_markdown(&facts);
        let html = cordon_incident::report_html(&facts);
        let _changing = self.changing().await;
        let index = self
            .change_entry(&actor, "incident.report", id, Some(format!("customers {}", found.customers.len())), request)
            .await?;
        self.store.add_timeline(
            id,
            &timeline(self.clock.now_ms(), "report", "regulator report prepared".into(), None, Some(index)),
        )?;
        Ok((markdown, html))
    }

    /// Records an export of the audit record (`export.parquet`, `export.ocsf`) with what it
    /// covered, before the caller writes it; analysts and administrators only.
    pub async fn record_export(
        &self,
        who: &Claims,
        change: &'static str,
        detail: String,
        request: &str,
    ) -> Result<u64, GatewayError> {
        let actor = self.authorize_system(who, cordon_policy::Action::Export, request).await?;
        self.change_entry(&actor.id, change, "ledger", Some(detail), request).await
    }

    /// The contact point notices and the regulator report name: the data protection officer
    /// set in `[incident] contact`. There is no stand-in: a notice that names no one to ask
    /// is not sent.
    fn contact_point(&self) -> Result<&str, GatewayError> {
        let contact = self.incident.contact.trim();
        if contact.is_empty() {
            return Err(GatewayError::BadRequest(
                "no contact point is set: notices and the regulator report name the data protection officer; set `contact` under [incident] in cordon.toml".into(),
            ));
        }
        Ok(contact)
    }

    /// Whether every access that showed `customer` more than a search hit came with a
    /// support request of the customer's own, assigned to the agent who made it.
    fn requested_by_customer(
        &self,
        customer: &cordon_incident::CustomerScope,
        tickets: &mut HashMap<String, Option<cordon_directory::Ticket>>,
    ) -> Result<bool, GatewayError> {
        let evidence: BTreeSet<u64> = customer.evidence.iter().copied().collect();
        let events = self.store.access_history(&customer.customer, usize::MAX >> 1)?;
        let mut any = false;
        for event in events.iter().filter(|event| evidence.contains(&event.ledger_index)) {
            if !matches!(event.action.as_str(), "view" | "reveal") {
                continue;
            }
            any = true;
            let Some(ticket_id) = &event.ticket_id else { return Ok(false) };
            if !tickets.contains_key(ticket_id) {
                tickets.insert(ticket_id.clone(), self.directory.ticket(&self.store, ticket_id)?);
            }
            let own = tickets.get(ticket_id).and_then(Option::as_ref).is_some_and(|ticket| {
                ticket.requester == customer.customer && ticket.assignee.as_deref() == Some(event.agent_id.as_str())
            });
            if !own {
                return Ok(false);
            }
        }
        Ok(any)
    }

    /// Whether every one of `agents` no longer has access (suspended or offboarded), by the
    /// statuses in force.
    fn access_stopped(
        &self,
        agents: &BTreeSet<String>,
        known: &mut HashMap<String, bool>,
    ) -> Result<bool, GatewayError> {
        for agent in agents {
            if !self.agent_stopped(agent, known)? {
                return Ok(false);
            }
        }
        Ok(!agents.is_empty())
    }

    /// Whether `agent` no longer has access, by the status in force (remembered in `known`).
    fn agent_stopped(&self, agent: &str, known: &mut HashMap<String, bool>) -> Result<bool, GatewayError> {
        if let Some(stopped) = known.get(agent) {
            return Ok(*stopped);
        }
        let stopped = self
            .directory
            .agent(&self.store, agent)?
            .is_some_and(|found| found.status != cordon_directory::AgentStatus::Active);
        known.insert(agent.to_string(), stopped);
        Ok(stopped)
    }

    /// The data directory (notices are written under its `outbox/`): the one the gateway
    /// was opened from, else the SQLite database's folder.
    fn data_folder(&self) -> std::path::PathBuf {
        self.root
            .clone()
            .or_else(|| self.store.path().and_then(std::path::Path::parent).map(std::path::Path::to_path_buf))
            .unwrap_or_default()
    }
}

/// An id as a file name that stays in its folder: bytes outside `A-Z a-z 0-9 - _ .` are
/// percent-encoded, and so is a leading dot (ids may hold `/` and `..`).
fn file_name(id: &str) -> String {
    id.bytes()
        .enumerate()
        .map(|(position, byte)| match byte {
            b'.' if position == 0 => "%2E".to_string(),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// A timeline line.
fn timeline(time_ms: i64, kind: &str, what: String, count: Option<u64>, ledger_index: Option<u64>) -> TimelineEvent {
    TimelineEvent { time_ms, kind: kind.to_string(), what, count, ledger_index }
}

/// The ledger change a protective action is recorded as.
fn protect_change(action: &str) -> &'static str {
    match action {
        "hold_new_address_withdrawals" => "protect.hold_new_address_withdrawals",
        "step_up_high_risk_withdrawals" => "protect.step_up_high_risk_withdrawals",
        _ => "protect.scam_warning_banner",
    }
}

/// The webhook message for one action: identifiers and times only.
fn protect_message(incident: &str, action: &ProtectiveAction) -> String {
    serde_json::json!({
        "topic": "protect",
        "incident": incident,
        "customer": action.customer_id,
        "action": action.action,
        "until": action.until_ms.map(cordon_incident::iso_time),
        "ledger_index": action.ledger_index,
    })
    .to_string()
}

/// A protective action as a notice tells the customer.
fn action_words(action: &str, until: &str) -> String {
    match action {
        "hold_new_address_withdrawals" => {
            format!(
                "Withdrawals to addresses you have not used before are held until {until}, so no one can rush you into sending funds to a new address."
            )
        }
        "step_up_high_risk_withdrawals" => {
            format!("Until {until}, large or unusual withdrawals need an extra identity check.")
        }
        _ => format!("Until {until}, the app shows a warning about impersonation scams when you sign in."),
    }
}
