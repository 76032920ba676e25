//! The analyst's routes: alerts with their explanations, verdicts on them, the risk board.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use cordon_store::StoredAlert;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::problem::Problem;
use crate::routes::{AppState, Body, Caller, Segment, query_problem};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlertQuery {
    status: Option<String>,
    #[serde(default = "hundred")]
    limit: usize,
}

fn hundred() -> usize {
    100
}

#[derive(Serialize)]
pub(crate) struct AlertView {
    id: u64,
    agent: String,
    level: String,
    time_ms: i64,
    ledger_index: u64,
    status: String,
    risk: Value,
    /// The signals, each with its observed value and baseline.
    signals: Value,
    /// Ledger indexes of the accesses behind it.
    evidence: Value,
    reason: Option<String>,
    decided_by: Option<String>,
    decided_at_ms: Option<i64>,
}

impl From<StoredAlert> for AlertView {
    fn from(alert: StoredAlert) -> AlertView {
        let body: Value = serde_json::from_str(&alert.body).unwrap_or(Value::Null);
        AlertView {
            id: alert.id,
            agent: alert.agent,
            level: alert.level,
            time_ms: alert.time_ms,
            ledger_index: alert.ledger_index,
            status: alert.status,
            risk: body.get("risk").cloned().unwrap_or(Value::Null),
            signals: body.get("signals").cloned().unwrap_or(Value::Null),
            evidence: body.get("evidence").cloned().unwrap_or(Value::Null),
            reason: alert.reason,
            decided_by: alert.decided_by,
            decided_at_ms: alert.decided_at_ms,
        }
    }
}

#[derive(Serialize)]
pub(crate) struct AlertList {
    alerts: Vec<AlertView>,
}

pub(crate) async fn list_alerts(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    query: Result<Query<AlertQuery>, QueryRejection>,
) -> Result<Json<AlertList>, Problem> {
    let Query(query) = query.map_err(query_problem)?;
    let alerts = state.gateway.alerts(&caller.claims, query.status.as_deref(), query.limit, &caller.request).await?;
    Ok(Json(AlertList { alerts: alerts.into_iter().map(AlertView::from).collect() }))
}

pub(crate) async fn show_alert(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segment(id): Segment<u64>,
) -> Result<Json<AlertView>, Problem> {
    Ok(Json(state.gateway.alert(&caller.claims, id, &caller.request).await?.into()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Verdict {
    reason: String,
}

#[derive(Serialize)]
pub(crate) struct Decided {
    ledger_index: u64,
}

pub(crate) async fn dismiss_alert(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segment(id): Segment<u64>,
    Body(body): Body<Verdict>,
) -> Result<Json<Decided>, Problem> {
    let index = state.gateway.decide_alert(&caller.claims, id, false, &body.reason, &caller.request).await?;
    Ok(Json(Decided { ledger_index: index }))
}

pub(crate) async fn confirm_alert(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segment(id): Segment<u64>,
    Body(body): Body<Verdict>,
) -> Result<Json<Decided>, Problem> {
    let index = state.gateway.decide_alert(&caller.claims, id, true, &body.reason, &caller.request).await?;
    Ok(Json(Decided { ledger_index: index }))
}

#[derive(Serialize)]
pub(crate) struct Board {
    agents: Vec<BoardRow>,
}

#[derive(Serialize)]
struct BoardRow {
    agent: String,
    peer_group: String,
    risk: f64,
    level: &'static str,
}

pub(crate) async fn risk_board(State(state): State<Arc<AppState>>, caller: Caller) -> Result<Json<Board>, Problem> {
    let board = state.gateway.risk_board(&caller.claims, &caller.request).await?;
    Ok(Json(Board {
        agents: board
            .into_iter()
            .map(|row| BoardRow {
                agent: row.agent,
                peer_group: row.peer_group,
                risk: (row.risk * 1000.0).round() / 1000.0,
                level: row.level.name(),
            })
            .collect(),
    }))
}
