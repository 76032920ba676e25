//! The analyst's view: the risk board, the alerts with their signals explained (each signal's
//! observed value against its baseline, as a chart and a table), and the decisions on them:
//! dismiss, confirm, suspend, reinstate. Each decision is the same gateway call the API makes,
//! a ledger entry; a refusal is shown in words. These pages show agents and figures, never a
//! customer's data.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse as _, Redirect, Response};
use serde_json::Value;

use super::pages::{AlertPage, AlertRow, ApprovalRow, Board, BoardRow, SignalBar, VolumeDay, render};
use super::{Posted, Signed, field as value, gateway_problem, page};
use crate::routes::AppState;

/// Agents the board shows, and open alerts listed.
const BOARD_SHOWN: usize = 20;
const ALERTS_SHOWN: usize = 50;
/// The chart's drawing width for the longest bar, in pixels.
const BAR_WIDTH_MAX: f64 = 320.0;
/// Days of volume drawn beside an alert, ending on its day; the volume chart's height.
const VOLUME_DAYS: u32 = 14;
const VOLUME_HEIGHT: f64 = 110.0;

fn text(value: &Value, name: &str) -> String {
    value.get(name).and_then(Value::as_str).unwrap_or("").to_string()
}

fn number(value: &Value, name: &str) -> f64 {
    value.get(name).and_then(Value::as_f64).unwrap_or(0.0)
}

pub(crate) async fn home(state: &AppState, signed: &Signed) -> Response {
    let board = match state.gateway.risk_board(&signed.claims, &signed.request).await {
        Ok(board) => board,
        Err(error) => return gateway_problem(error),
    };
    let alerts = match state.gateway.alerts(&signed.claims, Some("open"), ALERTS_SHOWN, &signed.request).await {
        Ok(alerts) => alerts,
        Err(error) => return gateway_problem(error),
    };
    let approvals = match state.gateway.requested_approvals(&signed.claims, &signed.request).await {
        Ok(approvals) => approvals,
        Err(error) => return gateway_problem(error),
    };
    render(&Board {
        page: page(signed, "Risk"),
        approvals: approvals
            .into_iter()
            .map(|approval| ApprovalRow {
                kind: approval.kind.to_string().replace('_', " "),
                requester: approval.requester,
                customer: approval.customer,
                asked: cordon_incident::iso_time(approval.created_at.saturating_mul(1000)),
                id: approval.id,
            })
            .collect(),
        agents: board
            .iter()
            .take(BOARD_SHOWN)
            .map(|row| BoardRow {
                agent: row.agent.clone(),
                peer_group: row.peer_group.clone(),
                risk: format!("{:.2}", row.risk),
                level: row.level.name().to_string(),
            })
            .collect(),
        alerts: alerts
            .iter()
            .map(|alert| {
                let shown = cordon_gateway::alert_json(alert);
                AlertRow {
                    id: alert.id,
                    agent: alert.agent.clone(),
                    level: alert.level.clone(),
                    time: cordon_incident::iso_time(alert.time_ms),
                    signals: shown
                        .get("signals")
                        .and_then(Value::as_array)
                        .map(|signals| signals.iter().map(|signal| text(signal, "name")).collect::<Vec<_>>().join(", "))
                        .unwrap_or_default(),
                }
            })
            .collect(),
    })
}

pub(crate) async fn alert(State(state): State<Arc<AppState>>, signed: Signed, Path(id): Path<u64>) -> Response {
    let stored = match state.gateway.alert(&signed.claims, id, &signed.request).await {
        Ok(alert) => alert,
        Err(error) => return gateway_problem(error),
    };
    let shown = cordon_gateway::alert_json(&stored);
    let signals: Vec<&Value> =
        shown.get("signals").and_then(Value::as_array).map(|all| all.iter().collect()).unwrap_or_default();
    let largest = signals
        .iter()
        .flat_map(|signal| [number(signal, "observed"), number(signal, "baseline")])
        .fold(0.0f64, f64::max)
        .max(f64::MIN_POSITIVE);
    let bars = signals
        .iter()
        .enumerate()
        .map(|(row, signal)| {
            let (observed, baseline) = (number(signal, "observed"), number(signal, "baseline"));
            SignalBar {
                name: text(signal, "name"),
                observed: format!("{observed:.2}"),
                baseline: format!("{baseline:.2}"),
                points: format!("{:.2}", number(signal, "points")),
                y: 10 + row as u32 * 46,
                observed_width: (observed / largest * BAR_WIDTH_MAX).round().max(1.0) as u32,
                baseline_width: (baseline / largest * BAR_WIDTH_MAX).round().max(1.0) as u32,
            }
        })
        .collect::<Vec<_>>();
    let evidence = shown
        .get("evidence")
        .and_then(Value::as_array)
        .map(|all| all.iter().filter_map(Value::as_u64).map(|index| index.to_string()).collect::<Vec<_>>().join(", "))
        .unwrap_or_default();
    let volume = match state
        .gateway
        .volume_against_peers(&signed.claims, &stored.agent, stored.time_ms, VOLUME_DAYS, &signed.request)
        .await
    {
        Ok(volume) => volume,
        Err(error) => return gateway_problem(error),
    };
    let tallest =
        volume.days.iter().map(|(_, customers, median)| (*customers as f64).max(*median)).fold(1.0f64, f64::max);
    let scaled = |value: f64| (value / tallest * VOLUME_HEIGHT).round() as u32;
    let days = volume
        .days
        .iter()
        .enumerate()
        .map(|(at, (day, customers, median))| VolumeDay {
            label: day.get(5..).unwrap_or(day).to_string(),
            day: day.clone(),
            customers: *customers,
            peer_median: format!("{median:.1}"),
            x: 10 + at as u32 * 34,
            bar_y: 120 - scaled(*customers as f64),
            bar_height: scaled(*customers as f64),
            median_y: 120 - scaled(*median),
        })
        .collect();
    render(&AlertPage {
        page: page(&signed, &format!("Alert {id}")),
        peer_group: volume.peer_group.clone(),
        peers: volume.peers,
        volume: days,
        id,
        agent: stored.agent.clone(),
        level: stored.level.clone(),
        status: stored.status.clone(),
        time: cordon_incident::iso_time(stored.time_ms),
        ledger_index: stored.ledger_index,
        risk: format!("{:.2}", number(&shown, "risk")),
        chart_height: 20 + bars.len() as u32 * 46,
        bars,
        evidence,
        reason: stored.reason.clone().unwrap_or_default(),
        decided_by: stored.decided_by.clone().unwrap_or_default(),
    })
}

/// Dismisses or confirms alert `id` with the posted reason; back to the alert.
async fn decide(state: &AppState, posted: Posted, id: u64, confirm: bool) -> Response {
    let Posted { signed, fields } = posted;
    match state.gateway.decide_alert(&signed.claims, id, confirm, value(&fields, "reason"), &signed.request).await {
        Ok(_) => Redirect::to(&format!("/console/alerts/{id}")).into_response(),
        Err(error) => gateway_problem(error),
    }
}

pub(crate) async fn dismiss(State(state): State<Arc<AppState>>, Path(id): Path<u64>, posted: Posted) -> Response {
    decide(&state, posted, id, false).await
}

pub(crate) async fn confirm(State(state): State<Arc<AppState>>, Path(id): Path<u64>, posted: Posted) -> Response {
    decide(&state, posted, id, true).await
}

pub(crate) async fn reinstate(
    State(state): State<Arc<AppState>>,
    Path(agent): Path<String>,
    Posted { signed, .. }: Posted,
) -> Response {
    match state.gateway.reinstate_agent(&signed.claims, &agent, &signed.request).await {
        Ok(_) => Redirect::to("/console/").into_response(),
        Err(error) => gateway_problem(error),
    }
}

pub(crate) async fn suspend(
    State(state): State<Arc<AppState>>,
    Path(agent): Path<String>,
    Posted { signed, .. }: Posted,
) -> Response {
    match state
        .gateway
        .set_agent_status(&signed.claims, &agent, cordon_directory::AgentStatus::Suspended, &signed.request)
        .await
    {
        Ok(_) => Redirect::to("/console/").into_response(),
        Err(error) => gateway_problem(error),
    }
}

/// Approves an approval for the chosen time (at most an hour), as the posted form says.
pub(crate) async fn approve(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Posted { signed, fields: pairs }: Posted,
) -> Response {
    let seconds: i64 = value(&pairs, "seconds").parse().unwrap_or(0);
    match state.gateway.approve(&signed.claims, &id, seconds, &signed.request).await {
        Ok(_) => Redirect::to("/console/").into_response(),
        Err(error) => gateway_problem(error),
    }
}
