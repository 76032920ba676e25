//! The analyst's routes: alerts with their explanations, verdicts on them, the risk board, a
//! replay of detection that checks the alerts the ledger holds, and a console session named by
//! its watermark.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::problem::Problem;
use crate::routes::{AppState, Body, Caller, Segment, heavy, query_problem};

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

pub(crate) async fn list_alerts(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    query: Result<Query<AlertQuery>, QueryRejection>,
) -> Result<Json<Value>, Problem> {
    let Query(query) = query.map_err(query_problem)?;
    let alerts = state.gateway.alerts(&caller.claims, query.status.as_deref(), query.limit, &caller.request).await?;
    Ok(Json(serde_json::json!({ "alerts": alerts.iter().map(cordon_gateway::alert_json).collect::<Vec<_>>() })))
}

pub(crate) async fn show_alert(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segment(id): Segment<u64>,
) -> Result<Json<Value>, Problem> {
    Ok(Json(cordon_gateway::alert_json(&state.gateway.alert(&caller.claims, id, &caller.request).await?)))
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

pub(crate) async fn risk_board(State(state): State<Arc<AppState>>, caller: Caller) -> Result<Json<Value>, Problem> {
    let board = state.gateway.risk_board(&caller.claims, &caller.request).await?;
    Ok(Json(cordon_gateway::risk_board_json(&board)))
}

/// Replays detection over the whole ledger on a blocking thread (tens of seconds at the
/// SPEC's size), one at a time, and answers what it raised against what the ledger holds.
pub(crate) async fn replay_detection(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<Value>, Problem> {
    let Caller { claims, request } = caller;
    let answer =
        heavy(&state, move |state| async move { state.gateway.replay_detection_as(&claims, &request).await }).await?;
    Ok(Json(answer))
}

/// Who held a console session, when, and every customer it was shown: the answer to a photo
/// of a screen, from the code in its watermark.
pub(crate) async fn session_report(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segment(code): Segment<String>,
) -> Result<Json<Value>, Problem> {
    let Caller { claims, request } = caller;
    let report =
        heavy(&state, move |state| async move { state.gateway.session_report(&claims, &code, &request).await }).await?;
    Ok(Json(cordon_gateway::session_json(&report)))
}
