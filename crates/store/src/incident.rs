//! Incident response's tables: the exposure index (on SQLite in the access file) and
//! incidents, their timelines and protective actions (in the main file).

use std::collections::BTreeMap;

use crate::db::{DbError, Row, Sql as _, values};
use crate::store::{QUEUE_OUTBOX, Store, StoreError, split};

/// A customer shown to an agent by one allowed access: `action` is `search` (the hit's
/// masked name), `view` (the masked card), `reveal` or `verify` (of `fields`). The ledger
/// entry at `ledger_index` is the record; this is its index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exposure {
    pub ledger_index: u64,
    pub time_ms: i64,
    pub agent_id: String,
    pub customer_id: String,
    pub action: String,
    pub fields: Vec<String>,
}

/// An incident as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredIncident {
    pub id: String,
    pub title: String,
    pub opened_at_ms: i64,
    /// When the exchange became aware of the breach: GDPR's 72 hours run from here.
    pub aware_at_ms: i64,
    pub opened_by: String,
    pub agents: Vec<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// The public-disclosure status record, JSON.
    pub status: String,
    pub ledger_index: u64,
}

/// One line of an incident's timeline: what happened in words, and for the steps that
/// produce something countable (`kind`: `protect`, `notify`, `evidence`), how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEvent {
    pub time_ms: i64,
    pub kind: String,
    pub what: String,
    pub count: Option<u64>,
    pub ledger_index: Option<u64>,
}

/// A protective action for one customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectiveAction {
    pub customer_id: String,
    pub action: String,
    pub recorded_at_ms: i64,
    pub until_ms: Option<i64>,
    pub ledger_index: u64,
}

/// One customer's reach before and after some changes: every agent shown it, with the bits
/// of how (as `agent_reach` holds them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerReachChange {
    pub customer: String,
    pub before: Vec<(String, u8)>,
    pub now: Vec<(String, u8)>,
}

const EXPOSURES_THROUGH: &str = "exposures_through";
/// Changes to agents' reach kept in `reach_log`, at most.
const REACH_LOG_KEPT: i64 = 2_000_000;

impl Store {
    // ---- the exposure index ----

    /// How many ledger entries the exposure index has read.
    pub fn exposures_through(&self) -> Result<u64, StoreError> {
        self.index_position(EXPOSURES_THROUGH)
    }

    /// Adds exposures read from ledger entries below `through`, and records that position,
    /// in one transaction: a crash leaves the index at its last whole batch. Each exposure
    /// comes with the bits of how it showed its customer, gathered per agent and customer in
    /// `agent_reach` (the store does not interpret them).
    pub fn add_exposures(&self, exposures: &[(Exposure, u8)], through: u64) -> Result<(), StoreError> {
        let mut connection = self.index()?;
        let mut transaction = connection.transaction().map_err(self.error("begin indexing exposures"))?;
        let mut changed = 0i64;
        {
            const INSERT: usize = 0;
            const KNOWN: usize = 1;
            const REACH: usize = 2;
            const VOLUME: usize = 3;
            const SEEN_MORE: usize = 4;
            const LOG: usize = 5;
            let mut statements = transaction
                .prepare(&[
                    "INSERT INTO exposures (agent_id, time, ledger_index, customer_id, action, fields)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
                    "SELECT seen FROM agent_reach WHERE agent_id = ?1 AND customer_id = ?2",
                    "INSERT INTO agent_reach (agent_id, customer_id, seen) VALUES (?1, ?2, ?3)",
                    "INSERT INTO agent_volume (agent_id, customers) VALUES (?1, 1)
                     ON CONFLICT (agent_id) DO UPDATE SET customers = agent_volume.customers + 1",
                    "UPDATE agent_reach SET seen = ?3 WHERE agent_id = ?1 AND customer_id = ?2",
                    "INSERT INTO reach_log (agent_id, customer_id, before) VALUES (?1, ?2, ?3)",
                ])
                .map_err(self.error("prepare the exposure index"))?;
            for (exposure, seen) in exposures {
                statements
                    .execute(
                        INSERT,
                        values![
                            exposure.agent_id,
                            exposure.time_ms,
                            exposure.ledger_index as i64,
                            exposure.customer_id,
                            exposure.action,
                            exposure.fields.join(",")
                        ],
                    )
                    .map_err(self.error("index an exposure"))?;
                let ways = i64::from(*seen);
                let pair = values![exposure.agent_id, exposure.customer_id];
                let before: Option<i64> =
                    statements.query_row(KNOWN, pair, |row| row.get(0)).map_err(self.error("index reach"))?;
                match before {
                    None => {
                        statements
                            .execute(REACH, values![exposure.agent_id, exposure.customer_id, ways])
                            .map_err(self.error("index reach"))?;
                        statements.execute(VOLUME, values![exposure.agent_id]).map_err(self.error("index reach"))?;
                    }
                    Some(before) if before & ways != ways => {
                        statements
                            .execute(SEEN_MORE, values![exposure.agent_id, exposure.customer_id, before | ways])
                            .map_err(self.error("index reach"))?;
                    }
                    Some(_) => continue,
                }
                statements
                    .execute(LOG, values![exposure.agent_id, exposure.customer_id, before])
                    .map_err(self.error("index reach"))?;
                changed += 1;
            }
        }
        if changed > 0 {
            transaction
                .execute(
                    "DELETE FROM reach_log WHERE seq <= (SELECT max(seq) FROM reach_log) - ?1",
                    values![REACH_LOG_KEPT],
                )
                .map_err(self.error("index reach"))?;
        }
        self.set_index_position(&mut transaction, EXPOSURES_THROUGH, through)?;
        transaction.commit().map_err(self.error("commit exposures"))
    }

    /// What `agents` were shown from `since_ms` to `until_ms` (inclusive), in time order per agent.
    pub fn exposures_by_agents(
        &self,
        agents: &[String],
        since_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<Exposure>, StoreError> {
        let mut connection = self.index()?;
        let mut found = Vec::new();
        for agent in agents {
            connection
                .each_row(
                    "SELECT ledger_index, time, agent_id, customer_id, action, fields FROM exposures
                     WHERE agent_id = ?1 AND time >= ?2 AND time <= ?3 ORDER BY time, ledger_index, customer_id",
                    values![agent, since_ms, until_ms],
                    &mut |row| {
                        found.push(exposure_columns(row)?);
                        Ok(())
                    },
                )
                .map_err(self.error("read exposures"))?;
        }
        Ok(found)
    }

    /// Everything any agent was shown of `customers`.
    pub fn exposures_of_customers(&self, customers: &[String]) -> Result<Vec<Exposure>, StoreError> {
        let mut connection = self.index()?;
        // One transaction: one lock and one snapshot for every customer's rows.
        let mut transaction = connection.transaction().map_err(self.error("read exposures"))?;
        let mut found = Vec::new();
        for customer in customers {
            transaction
                .each_row(
                    "SELECT ledger_index, time, agent_id, customer_id, action, fields FROM exposures
                     WHERE customer_id = ?1 ORDER BY agent_id, time, ledger_index",
                    values![customer],
                    &mut |row| {
                        found.push(exposure_columns(row)?);
                        Ok(())
                    },
                )
                .map_err(self.error("read exposures"))?;
        }
        transaction.commit().map_err(self.error("read exposures"))?;
        Ok(found)
    }

    /// Every agent that was ever shown a customer, with how many distinct customers.
    pub fn agent_volumes(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.index()?
            .query_map("SELECT agent_id, customers FROM agent_volume ORDER BY agent_id", values![], |row| {
                Ok((row.get::<String>(0)?, row.get::<i64>(1)?.max(0) as u64))
            })
            .map_err(self.error("read access volumes"))
    }

    /// Customer records written or deleted, ever: a count that only grows, so an equal count
    /// means the same records (attribution's census of balance bands is checked against it).
    pub fn customer_writes(&self) -> Result<u64, StoreError> {
        let writes = self
            .query_one(
                "SELECT value FROM counters WHERE name = ?1",
                values![crate::store::CUSTOMER_WRITES],
                "count customer writes",
                |row| row.get::<i64>(0),
            )?
            .unwrap_or(0);
        Ok(writes.max(0) as u64)
    }

    /// Every agent's reach, one call of `each` per agent and customer it was shown, with the
    /// bits of how, in one read transaction; returns the last `reach_log` change it includes.
    pub fn for_each_reach(&self, mut each: impl FnMut(&str, &str, u8)) -> Result<u64, StoreError> {
        let mut connection = self.index()?;
        let mut transaction = connection.transaction().map_err(self.error("read reach"))?;
        // On PostgreSQL a read committed transaction takes a new snapshot per statement: the
        // reach and the change it is read through must come from one.
        if transaction.dialect() == crate::db::Dialect::Postgres {
            transaction
                .batch("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .map_err(self.error("read reach"))?;
        }
        let through = transaction
            .query_row("SELECT coalesce(max(seq), 0) FROM reach_log", values![], |row| row.get::<i64>(0))
            .map_err(self.error("read reach"))?
            .unwrap_or(0);
        transaction
            .each_row("SELECT agent_id, customer_id, seen FROM agent_reach", values![], &mut |row| {
                let seen = u8::try_from(row.get::<i64>(2)?).unwrap_or(u8::MAX);
                each(row.str(0)?, row.str(1)?, seen);
                Ok(())
            })
            .map_err(self.error("read reach"))?;
        transaction.commit().map_err(self.error("read reach"))?;
        Ok(through.max(0) as u64)
    }

    /// The customers whose reach changed after change `after`, each with every agent shown it
    /// and how, as it was then and as it is now, read in one transaction; with the last
    /// change's number. `None` if the log no longer holds every change since (or was started
    /// afresh with the index): the reach must then be read whole.
    pub fn reach_changes_after(&self, after: u64) -> Result<Option<(u64, Vec<CustomerReachChange>)>, StoreError> {
        let mut connection = self.index()?;
        let mut transaction = connection.transaction().map_err(self.error("read reach changes"))?;
        if transaction.dialect() == crate::db::Dialect::Postgres {
            transaction
                .batch("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .map_err(self.error("read reach changes"))?;
        }
        let (first, last): (Option<i64>, Option<i64>) = transaction
            .query_row("SELECT min(seq), max(seq) FROM reach_log", values![], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(self.error("read reach changes"))?
            .unwrap_or((None, None));
        let after = after as i64;
        let last = last.unwrap_or(0);
        if last < after || first.is_some_and(|first| first > after + 1) {
            return Ok(None);
        }
        // Per changed customer, per agent: its ways before the first change since `after`
        // (`None`: the pair is new since).
        let mut then: BTreeMap<String, BTreeMap<String, Option<u8>>> = BTreeMap::new();
        transaction
            .each_row(
                "SELECT agent_id, customer_id, before FROM reach_log WHERE seq > ?1 ORDER BY seq",
                values![after],
                &mut |row| {
                    let (agent, customer) = (row.str(0)?, row.str(1)?);
                    let before = row.get::<Option<i64>>(2)?.map(|ways| u8::try_from(ways).unwrap_or(u8::MAX));
                    let agents = match then.get_mut(customer) {
                        Some(agents) => agents,
                        None => then.entry(customer.to_string()).or_default(),
                    };
                    if !agents.contains_key(agent) {
                        agents.insert(agent.to_string(), before);
                    }
                    Ok(())
                },
            )
            .map_err(self.error("read reach changes"))?;
        let mut changes = Vec::with_capacity(then.len());
        // The agents shown a customer are those with an exposure of it (the exposures'
        // index by customer), each pair's ways in agent_reach.
        for (customer, changed) in then {
            let agents: Vec<String> = transaction
                .query_map("SELECT DISTINCT agent_id FROM exposures WHERE customer_id = ?1", values![customer], |row| {
                    row.get(0)
                })
                .map_err(self.error("read reach changes"))?;
            let mut change = CustomerReachChange { customer, before: Vec::new(), now: Vec::new() };
            for agent in agents {
                let Some(now) = transaction
                    .query_row(
                        "SELECT seen FROM agent_reach WHERE agent_id = ?1 AND customer_id = ?2",
                        values![agent, change.customer],
                        |row| row.get::<i64>(0),
                    )
                    .map_err(self.error("read reach changes"))?
                else {
                    continue;
                };
                let now = u8::try_from(now).unwrap_or(u8::MAX);
                match changed.get(&agent).copied() {
                    // New since `after`: not in the reach then.
                    Some(None) => {}
                    Some(Some(before)) => change.before.push((agent.clone(), before)),
                    None => change.before.push((agent.clone(), now)),
                }
                change.now.push((agent, now));
            }
            changes.push(change);
        }
        transaction.commit().map_err(self.error("read reach changes"))?;
        Ok(Some((last.max(0) as u64, changes)))
    }

    // ---- incidents ----

    /// The next incident number, counted in one statement, so two incidents opened at once
    /// (by one gateway or two) never get the same one (the first use starts after those stored).
    pub fn next_incident_number(&self) -> Result<u64, StoreError> {
        self.write()?
            .query_row(
                "INSERT INTO counters (name, value) VALUES ('incidents', (SELECT count(*) FROM incidents) + 1)
                 ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value",
                values![],
                |row| row.get::<i64>(0),
            )
            .map_err(self.error("number an incident"))?
            .map(|value| value.max(0) as u64)
            .ok_or_else(|| StoreError::Corrupt {
                database: self.database.clone(),
                reason: "numbering an incident returned no number".into(),
            })
    }

    /// Stores a new incident; an existing id is an error, never overwritten.
    pub fn insert_incident(&self, incident: &StoredIncident) -> Result<(), StoreError> {
        self.write()?
            .execute(
                "INSERT INTO incidents (id, title, opened_at_ms, aware_at_ms, opened_by, agents, since_ms, until_ms, status, ledger_index)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                values![
                    incident.id,
                    incident.title,
                    incident.opened_at_ms,
                    incident.aware_at_ms,
                    incident.opened_by,
                    incident.agents.join(","),
                    incident.since_ms,
                    incident.until_ms,
                    incident.status,
                    incident.ledger_index as i64
                ],
            )
            .map(drop)
            .map_err(self.error("store a new incident"))
    }

    /// Replaces an incident's public-disclosure status (JSON).
    pub fn set_incident_status(&self, id: &str, status: &str) -> Result<(), StoreError> {
        self.write()?
            .execute("UPDATE incidents SET status = ?2 WHERE id = ?1", values![id, status])
            .map(drop)
            .map_err(self.error("update an incident's status"))
    }

    pub fn incident(&self, id: &str) -> Result<Option<StoredIncident>, StoreError> {
        self.query_one(
            "SELECT id, title, opened_at_ms, aware_at_ms, opened_by, agents, since_ms, until_ms, status, ledger_index
             FROM incidents WHERE id = ?1",
            values![id],
            "read an incident",
            incident_columns,
        )
    }

    /// Every incident, newest first.
    pub fn incidents(&self) -> Result<Vec<StoredIncident>, StoreError> {
        self.read()?
            .query_map(
                "SELECT id, title, opened_at_ms, aware_at_ms, opened_by, agents, since_ms, until_ms, status, ledger_index
                 FROM incidents ORDER BY opened_at_ms DESC, id DESC",
                values![],
                incident_columns,
            )
            .map_err(self.error("read incidents"))
    }

    pub fn add_timeline(&self, incident: &str, event: &TimelineEvent) -> Result<(), StoreError> {
        self.write()?
            .execute(
                "INSERT INTO incident_timeline (incident_id, time_ms, kind, what, count, ledger_index)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                values![
                    incident,
                    event.time_ms,
                    event.kind,
                    event.what,
                    event.count.map(|count| count as i64),
                    event.ledger_index.map(|index| index as i64)
                ],
            )
            .map(drop)
            .map_err(self.error("write an incident's timeline"))
    }

    pub fn timeline(&self, incident: &str) -> Result<Vec<TimelineEvent>, StoreError> {
        let sql = self.dialect().pick(
            "SELECT time_ms, kind, what, count, ledger_index FROM incident_timeline
             WHERE incident_id = ?1 ORDER BY time_ms, rowid",
            "SELECT time_ms, kind, what, count, ledger_index FROM incident_timeline
             WHERE incident_id = ?1 ORDER BY time_ms, seq",
        );
        self.read()?
            .query_map(sql, values![incident], |row| {
                Ok(TimelineEvent {
                    time_ms: row.get(0)?,
                    kind: row.get(1)?,
                    what: row.get(2)?,
                    count: row.get::<Option<i64>>(3)?.map(|count| count.max(0) as u64),
                    ledger_index: row.get::<Option<i64>>(4)?.map(|index| index.max(0) as u64),
                })
            })
            .map_err(self.error("read an incident's timeline"))
    }

    /// The protective actions already recorded for an incident.
    pub fn protective_actions(&self, incident: &str) -> Result<Vec<ProtectiveAction>, StoreError> {
        self.read()?
            .query_map(
                "SELECT customer_id, action, recorded_at_ms, until_ms, ledger_index FROM protective_actions
                 WHERE incident_id = ?1 ORDER BY customer_id, action",
                values![incident],
                |row| {
                    Ok(ProtectiveAction {
                        customer_id: row.get(0)?,
                        action: row.get(1)?,
                        recorded_at_ms: row.get(2)?,
                        until_ms: row.get(3)?,
                        ledger_index: row.get::<i64>(4)?.max(0) as u64,
                    })
                },
            )
            .map_err(self.error("read protective actions"))
    }

    /// How many customers each protective action of an incident was recorded for.
    pub fn protective_action_counts(&self, incident: &str) -> Result<Vec<(String, u64)>, StoreError> {
        self.read()?
            .query_map(
                "SELECT action, count(*) FROM protective_actions WHERE incident_id = ?1 GROUP BY action ORDER BY action",
                values![incident],
                |row| Ok((row.get::<String>(0)?, row.get::<i64>(1)?.max(0) as u64)),
            )
            .map_err(self.error("count protective actions"))
    }

    /// Records protective actions not recorded yet and queues each new one for the exchange's
    /// webhook (topic `protect`, body from `body`), in one transaction; returns how many were new.
    pub fn record_protective_actions(
        &self,
        incident: &str,
        actions: &[ProtectiveAction],
        body: &dyn Fn(&ProtectiveAction) -> String,
    ) -> Result<usize, StoreError> {
        let mut connection = self.write()?;
        let mut transaction = connection.transaction().map_err(self.error("begin recording protective actions"))?;
        let mut added = 0;
        for action in actions {
            let inserted = transaction
                .execute(
                    "INSERT INTO protective_actions
                     (incident_id, customer_id, action, recorded_at_ms, until_ms, ledger_index)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
                    values![
                        incident,
                        action.customer_id,
                        action.action,
                        action.recorded_at_ms,
                        action.until_ms,
                        action.ledger_index as i64
                    ],
                )
                .map_err(self.error("record a protective action"))?;
            if inserted > 0 {
                added += 1;
                transaction
                    .execute(QUEUE_OUTBOX, values!["protect", body(action), action.recorded_at_ms])
                    .map_err(self.error("queue a protective action"))?;
            }
        }
        transaction.commit().map_err(self.error("commit protective actions"))?;
        Ok(added)
    }
}

/// Where an incident's protective actions stand with the exchange's systems, by the outbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deliveries {
    /// Messages queued for the incident's protective actions.
    pub queued: u64,
    /// Of those, delivered to the exchange's webhook.
    pub delivered: u64,
    /// The last error of an undelivered one, if any attempt failed.
    pub last_error: Option<String>,
}

impl Store {
    /// How the protective-action messages of `incident` stand in the outbox.
    pub fn protect_deliveries(&self, incident: &str) -> Result<Deliveries, StoreError> {
        let sql = self.dialect().pick(
            "SELECT count(*), count(delivered_at_ms),
                    (SELECT last_error FROM outbox WHERE topic = 'protect' AND delivered_at_ms IS NULL
                       AND last_error IS NOT NULL AND json_extract(body, '$.incident') = ?1 ORDER BY id DESC LIMIT 1)
             FROM outbox WHERE topic = 'protect' AND json_extract(body, '$.incident') = ?1",
            "SELECT count(*), count(delivered_at_ms),
                    (SELECT last_error FROM outbox WHERE topic = 'protect' AND delivered_at_ms IS NULL
                       AND last_error IS NOT NULL AND body::jsonb ->> 'incident' = ?1 ORDER BY id DESC LIMIT 1)
             FROM outbox WHERE topic = 'protect' AND body::jsonb ->> 'incident' = ?1",
        );
        self.query_one(sql, values![incident], "read protective-action deliveries", |row| {
            Ok(Deliveries {
                queued: row.get::<i64>(0)?.max(0) as u64,
                delivered: row.get::<i64>(1)?.max(0) as u64,
                last_error: row.get(2)?,
            })
        })
        .map(Option::unwrap_or_default)
    }
}

fn exposure_columns(row: &Row<'_>) -> Result<Exposure, DbError> {
    Ok(Exposure {
        ledger_index: row.get::<i64>(0)?.max(0) as u64,
        time_ms: row.get(1)?,
        agent_id: row.get(2)?,
        customer_id: row.get(3)?,
        action: row.get(4)?,
        fields: split(&row.get::<String>(5)?),
    })
}

fn incident_columns(row: &Row<'_>) -> Result<StoredIncident, DbError> {
    Ok(StoredIncident {
        id: row.get(0)?,
        title: row.get(1)?,
        opened_at_ms: row.get(2)?,
        aware_at_ms: row.get(3)?,
        opened_by: row.get(4)?,
        agents: split(&row.get::<String>(5)?),
        since_ms: row.get(6)?,
        until_ms: row.get(7)?,
        status: row.get(8)?,
        ledger_index: row.get::<i64>(9)?.max(0) as u64,
    })
}
