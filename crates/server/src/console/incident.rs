//! The incident responder's view: the incidents and a form to open one; an incident's record
//! and timeline; its scope (figures, the affected customers per day as a chart, the affected
//! list under the watermark, and the list as CSV); attribution of a leaked sample (pasted, or a
//! file read into the form); protection (proposed, then applied) and notices, with how they
//! stand; the regulator report. Every step is the API's gateway call, with its ledger entry.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse as _, Redirect, Response};
use cordon_gateway::{IncidentSpec, IncidentStatus};

use super::pages::{
    AffectedRow, AttributionRow, DayBar, IncidentList, IncidentListRow, IncidentPage, ProtectionPanel, ScopeFigures,
    TimelineRow, render,
};
use super::{Posted, Signed, field as value, gateway_problem, heavy_page as heavy_blocking, page, render_problem};
use crate::routes::AppState;

/// Affected customers listed on the page; the CSV has them all.
const AFFECTED_SHOWN: usize = 200;
/// The timeline chart's height for the busiest day, in pixels.
const DAY_BAR_HEIGHT_MAX: f64 = 120.0;

fn optional(text: &str) -> Option<&str> {
    let text = text.trim();
    (!text.is_empty()).then_some(text)
}

pub(crate) async fn list(State(state): State<Arc<AppState>>, signed: Signed) -> Response {
    match state.gateway.incidents(&signed.claims, &signed.request).await {
        Ok(incidents) => render(&IncidentList {
            page: page(&signed, "Incidents"),
            incidents: incidents
                .iter()
                .map(|incident| IncidentListRow {
                    id: incident.id.clone(),
                    title: incident.title.clone(),
                    opened: cordon_incident::iso_time(incident.opened_at_ms),
                    agents: if incident.agents.is_empty() { "every agent".into() } else { incident.agents.join(", ") },
                })
                .collect(),
        }),
        Err(error) => gateway_problem(error),
    }
}

pub(crate) async fn open(State(state): State<Arc<AppState>>, Posted { signed, fields: pairs }: Posted) -> Response {
    let times = cordon_incident::parse_optional_time("since", optional(value(&pairs, "since")))
        .and_then(|since| Ok((since, cordon_incident::parse_optional_end("until", optional(value(&pairs, "until")))?)));
    let (since_ms, until_ms) = match times {
        Ok(times) => times,
        Err(why) => return render_problem(axum::http::StatusCode::BAD_REQUEST, &why),
    };
    let spec = IncidentSpec {
        title: value(&pairs, "title").to_string(),
        agents: value(&pairs, "agents")
            .split(',')
            .map(str::trim)
            .filter(|agent| !agent.is_empty())
            .map(str::to_string)
            .collect(),
        since_ms,
        until_ms,
        aware_at_ms: None,
        status: IncidentStatus::default(),
    };
    match state.gateway.open_incident(&signed.claims, spec, &signed.request).await {
        Ok(incident) => Redirect::to(&format!("/console/incidents/{}", incident.id)).into_response(),
        Err(error) => gateway_problem(error),
    }
}

/// The incident's page, with whatever the last step produced.
async fn incident_page(state: &Arc<AppState>, signed: &Signed, id: &str, shown: Shown) -> Response {
    let (incident, timeline) = match state.gateway.incident_and_timeline(&signed.claims, id, &signed.request).await {
        Ok(found) => found,
        Err(error) => return gateway_problem(error),
    };
    let status = match state.gateway.protection_status(&incident, &timeline) {
        Ok(status) => status,
        Err(error) => return gateway_problem(error),
    };
    let protection = ProtectionPanel {
        recorded: status.recorded.iter().map(|(action, customers)| (action.replace('_', " "), *customers)).collect(),
        queued: status.deliveries.queued,
        delivered: status.deliveries.delivered,
        last_error: status.deliveries.last_error.as_deref().map(super::printable),
        notices_written: status.notices_written,
        contact_set: status.contact_set,
        webhook_set: status.webhook_set,
    };
    let mut page = page(signed, &format!("Incident {id}"));
    page.cover_rows(shown.scope.as_ref().map_or(0, |scope| scope.affected.len()));
    render(&IncidentPage {
        page,
        id: incident.id.clone(),
        title: incident.title.clone(),
        agents: if incident.agents.is_empty() { "every agent".into() } else { incident.agents.join(", ") },
        window: format!(
            "{} to {}",
            incident.since_ms.map_or("the start".into(), cordon_incident::iso_time),
            incident.until_ms.map_or("now".into(), cordon_incident::iso_time)
        ),
        timeline: timeline
            .iter()
            .map(|event| TimelineRow {
                time: cordon_incident::iso_time(event.time_ms),
                what: event.what.clone(),
                entry: event.ledger_index.map_or(String::new(), |index| index.to_string()),
            })
            .collect(),
        scope: shown.scope,
        attribution: shown.attribution,
        verdict: shown.verdict,
        step: shown.step,
        protection,
    })
}

/// What a step put on the incident's page.
#[derive(Default)]
struct Shown {
    scope: Option<ScopeFigures>,
    attribution: Vec<AttributionRow>,
    verdict: Option<String>,
    /// What a protect or notify step did, in words.
    step: Option<String>,
}

pub(crate) async fn show(State(state): State<Arc<AppState>>, signed: Signed, Path(id): Path<String>) -> Response {
    incident_page(&state, &signed, &id, Shown::default()).await
}

pub(crate) async fn scope(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Posted { signed, .. }: Posted,
) -> Response {
    let (claims, request, wanted) = (signed.claims.clone(), signed.request.clone(), id.clone());
    let found = match heavy_blocking(&state, move |state| async move {
        state.gateway.incident_scope(&claims, &wanted, &request).await
    })
    .await
    {
        Ok(found) => found,
        Err(response) => return response,
    };
    let busiest = found.days.iter().map(|day| day.new_customers).max().unwrap_or(0).max(1) as f64;
    let days = found
        .days
        .iter()
        .enumerate()
        .map(|(at, day)| {
            let height = (day.new_customers as f64 / busiest * DAY_BAR_HEIGHT_MAX).round() as u32;
            DayBar {
                day: day.day.clone(),
                new_customers: day.new_customers,
                accesses: day.accesses,
                x: at as u32 * 14,
                y: 130 - height,
                height,
            }
        })
        .collect::<Vec<_>>();
    let names = |fields: &std::collections::BTreeSet<cordon_vault::Field>| {
        fields.iter().map(|field| field.name()).collect::<Vec<_>>().join(", ")
    };
    let figures = ScopeFigures {
        customers: found.customers.len(),
        accesses: found.accesses,
        high_balance: found.high_balance,
        share: format!("{:.3}%", found.share() * 100.0),
        chart_width: (days.len() as u32 * 14).max(14),
        days,
        affected: found
            .customers
            .iter()
            .take(AFFECTED_SHOWN)
            .map(|customer| AffectedRow {
                customer: customer.customer.clone(),
                revealed: names(&customer.revealed),
                masked_only: names(&customer.masked_only),
                agents: customer.agents.iter().cloned().collect::<Vec<_>>().join(", "),
                first: cordon_incident::iso_time(customer.first_ms),
            })
            .collect(),
        more: found.customers.len().saturating_sub(AFFECTED_SHOWN),
    };
    incident_page(&state, &signed, &id, Shown { scope: Some(figures), ..Shown::default() }).await
}

/// The affected list as CSV, every customer (scope again, with its ledger entry).
pub(crate) async fn affected_csv(
    State(state): State<Arc<AppState>>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    let (claims, request, wanted) = (signed.claims.clone(), signed.request.clone(), id.clone());
    match heavy_blocking(
        &state,
        move |state| async move { state.gateway.incident_scope(&claims, &wanted, &request).await },
    )
    .await
    {
        Ok(found) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{}-affected.csv\"", sanitized(&id))),
            ],
            cordon_incident::scope_csv(&found),
        )
            .into_response(),
        Err(response) => response,
    }
}

/// A file name part made of the id's safe characters only.
fn sanitized(id: &str) -> String {
    id.chars().filter(|letter| letter.is_ascii_alphanumeric() || *letter == '-').take(40).collect()
}

pub(crate) async fn attribute(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Posted { signed, fields: pairs }: Posted,
) -> Response {
    let sample = match cordon_incident::read_sample("the pasted sample", value(&pairs, "sample")) {
        Ok(sample) => sample,
        Err(error) => return render_problem(axum::http::StatusCode::BAD_REQUEST, &error.to_string()),
    };
    let (claims, request, wanted) = (signed.claims.clone(), signed.request.clone(), id.clone());
    let found = match heavy_blocking(&state, move |state| async move {
        state.gateway.incident_attribute(&claims, &wanted, &sample, &request).await
    })
    .await
    {
        Ok(found) => found,
        Err(response) => return response,
    };
    let rows = found
        .agents
        .iter()
        .take(20)
        .map(|agent| AttributionRow {
            agent: agent.agent.clone(),
            explained: agent.explained.len(),
            as_shown: agent.consistent,
            chance: format!("{:.1e}", agent.chance),
            blamed: agent.blamed,
        })
        .collect();
    let shown = Shown { attribution: rows, verdict: Some(found.reason.clone()), ..Shown::default() };
    incident_page(&state, &signed, &id, shown).await
}

/// Protective actions for the affected customers: proposed (a dry run, nothing recorded) or
/// applied (recorded and queued for the exchange's account systems).
pub(crate) async fn protect(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Posted { signed, fields: pairs }: Posted,
) -> Response {
    let apply = match value(&pairs, "apply") {
        "yes" => true,
        "no" => false,
        _ => return render_problem(axum::http::StatusCode::BAD_REQUEST, "Choose to propose or to apply protection."),
    };
    let (claims, request, wanted) = (signed.claims.clone(), signed.request.clone(), id.clone());
    let report = match heavy_blocking(&state, move |state| async move {
        state.gateway.incident_protect(&claims, &wanted, apply, &request).await
    })
    .await
    {
        Ok(report) => report,
        Err(response) => return response,
    };
    let mut per_action: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    for action in &report.actions {
        *per_action.entry(action.action.as_str()).or_default() += 1;
    }
    let actions: Vec<String> =
        per_action.iter().map(|(action, count)| format!("{} for {count}", action.replace('_', " "))).collect();
    let step = if report.applied {
        format!(
            "Protection applied for {} customers: {} ({} recorded now, {} before).",
            report.customers,
            actions.join(", "),
            report.recorded_now,
            report.recorded_before
        )
    } else {
        format!(
            "Proposed, nothing recorded yet: {} for {} customers. Apply to record them and send them to the \
             exchange's account systems.",
            actions.join(", "),
            report.customers
        )
    };
    incident_page(&state, &signed, &id, Shown { step: Some(step), ..Shown::default() }).await
}

/// The customers' notices, written to the server's outbox (refused without a contact point).
pub(crate) async fn notify(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Posted { signed, .. }: Posted,
) -> Response {
    let (claims, request, wanted) = (signed.claims.clone(), signed.request.clone(), id.clone());
    let written = match heavy_blocking(&state, move |state| async move {
        state.gateway.incident_notify(&claims, &wanted, &request).await.map(|(notices, _)| notices.len())
    })
    .await
    {
        Ok(written) => written,
        Err(response) => return response,
    };
    let step = format!("{written} customer notices written to the server's outbox, as text and HTML.");
    incident_page(&state, &signed, &id, Shown { step: Some(step), ..Shown::default() }).await
}

/// The regulator report as a Markdown file (writing it is the `incident.report` entry).
pub(crate) async fn report(State(state): State<Arc<AppState>>, signed: Signed, Path(id): Path<String>) -> Response {
    let (claims, request, wanted) = (signed.claims.clone(), signed.request.clone(), id.clone());
    match heavy_blocking(
        &state,
        move |state| async move { state.gateway.incident_report(&claims, &wanted, &request).await },
    )
    .await
    {
        Ok((markdown, _html)) => (
            [
                (header::CONTENT_TYPE, "text/markdown; charset=utf-8".to_string()),
                (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{}-report.md\"", sanitized(&id))),
            ],
            markdown,
        )
            .into_response(),
        Err(response) => response,
    }
}
