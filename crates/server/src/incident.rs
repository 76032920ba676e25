//! The incident responder's routes: one per `cordon incident` command, for the console.
//! Analysts and administrators only (the gateway checks).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use cordon_gateway::{IncidentSpec, IncidentStatus, incident_json};
use cordon_incident::{attribution_json, iso_time, parse_optional_end, parse_optional_time, read_sample, scope_json};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::problem::Problem;
use crate::routes::{AppState, Body, Caller, Segment, heavy, query_problem};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OpenBody {
    title: String,
    #[serde(default)]
    agents: Vec<String>,
    since: Option<String>,
    until: Option<String>,
    aware: Option<String>,
    #[serde(default)]
    status: BTreeMap<String, String>,
}

fn time(name: &str, text: Option<&str>) -> Result<Option<i64>, Problem> {
    parse_optional_time(&format!("`{name}`"), text).map_err(Problem::bad_request)
}

/// The end of a window: a bare date means the whole day.
fn end_time(name: &str, text: Option<&str>) -> Result<Option<i64>, Problem> {
    parse_optional_end(&format!("`{name}`"), text).map_err(Problem::bad_request)
}

pub(crate) async fn open(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Body(body): Body<OpenBody>,
) -> Result<Json<Value>, Problem> {
    let mut status = IncidentStatus::default();
    for (name, value) in &body.status {
        status.set(name, value)?;
    }
    let spec = IncidentSpec {
        title: body.title,
        agents: body.agents,
        since_ms: time("since", body.since.as_deref())?,
        until_ms: end_time("until", body.until.as_deref())?,
        aware_at_ms: time("aware", body.aware.as_deref())?,
        status,
    };
    let incident = state.gateway.open_incident(&caller.claims, spec, &caller.request).await?;
    Ok(Json(incident_json(&incident)))
}

pub(crate) async fn list(State(state): State<Arc<AppState>>, caller: Caller) -> Result<Json<Value>, Problem> {
    let incidents = state.gateway.incidents(&caller.claims, &caller.request).await?;
    Ok(Json(json!({ "incidents": incidents.iter().map(incident_json).collect::<Vec<_>>() })))
}

pub(crate) async fn show(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segment(id): Segment<String>,
) -> Result<Json<Value>, Problem> {
    let (incident, timeline) = state.gateway.incident_and_timeline(&caller.claims, &id, &caller.request).await?;
    let mut view = incident_json(&incident);
    if let Some(object) = view.as_object_mut() {
        object.insert(
            "timeline".into(),
            timeline
                .iter()
                .map(|event| json!({"time": iso_time(event.time_ms), "what": event.what, "ledger_index": event.ledger_index}))
                .collect(),
        );
    }
    Ok(Json(view))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatusBody {
    status: BTreeMap<String, String>,
}

pub(crate) async fn set_status(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segment(id): Segment<String>,
    Body(body): Body<StatusBody>,
) -> Result<Json<Value>, Problem> {
    let changes: Vec<(String, String)> = body.status.into_iter().collect();
    let incident = state.gateway.set_incident_status(&caller.claims, &id, &changes, &caller.request).await?;
    Ok(Json(incident_json(&incident)))
}

pub(crate) async fn scope(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segment(id): Segment<String>,
) -> Result<Json<Value>, Problem> {
    let Caller { claims, request } = caller;
    let found =
        heavy(&state, move |state| async move { state.gateway.incident_scope(&claims, &id, &request).await }).await?;
    Ok(Json(scope_json(&found)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AttributeBody {
    /// The sample file's text, CSV or JSON.
    sample: String,
}

pub(crate) async fn attribute(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segment(id): Segment<String>,
    Body(body): Body<AttributeBody>,
) -> Result<Json<Value>, Problem> {
    let sample = read_sample("sample", &body.sample).map_err(|error| Problem::bad_request(error.to_string()))?;
    if sample.rows.is_empty() {
        return Err(Problem::bad_request("the sample has no rows with a value cordon can match"));
    }
    let Caller { claims, request } = caller;
    let ignored_columns = sample.ignored_columns.clone();
    let found =
        heavy(
            &state,
            move |state| async move { state.gateway.incident_attribute(&claims, &id, &sample, &request).await },
        )
        .await?;
    let mut answer = attribution_json(&found);
    if let Some(object) = answer.as_object_mut() {
        object.insert("ignored_columns".into(), json!(ignored_columns));
    }
    Ok(Json(answer))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProtectBody {
    #[serde(default)]
    apply: bool,
}

pub(crate) async fn protect(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segment(id): Segment<String>,
    Body(body): Body<ProtectBody>,
) -> Result<Json<Value>, Problem> {
    let Caller { claims, request } = caller;
    let report =
        heavy(
            &state,
            move |state| async move { state.gateway.incident_protect(&claims, &id, body.apply, &request).await },
        )
        .await?;
    Ok(Json(cordon_gateway::protect_json(&report)))
}

pub(crate) async fn notify(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segment(id): Segment<String>,
) -> Result<Json<Value>, Problem> {
    let Caller { claims, request } = caller;
    let (notices, folder) =
        heavy(&state, move |state| async move { state.gateway.incident_notify(&claims, &id, &request).await }).await?;
    Ok(Json(json!({ "notices": notices.len(), "folder": folder.display().to_string() })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReportQuery {
    format: Option<String>,
}

pub(crate) async fn report(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segment(id): Segment<String>,
    query: Result<Query<ReportQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let Query(query) = query.map_err(query_problem)?;
    let html = match query.format.as_deref() {
        None | Some("md") | Some("markdown") => false,
        Some("html") => true,
        Some(other) => return Err(Problem::bad_request(format!("`format` must be md or html, not `{other}`"))),
    };
    let Caller { claims, request } = caller;
    let (markdown, page) =
        heavy(&state, move |state| async move { state.gateway.incident_report(&claims, &id, &request).await }).await?;
    let (content_type, body) =
        if html { ("text/html; charset=utf-8", page) } else { ("text/markdown; charset=utf-8", markdown) };
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response())
}

pub(crate) async fn evidence(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Segment(id): Segment<String>,
) -> Result<Response, Problem> {
    let Caller { claims, request } = caller;
    let incident = id.clone();
    let bundle =
        heavy(&state, move |state| async move { state.gateway.incident_evidence(&claims, &incident, &request).await })
            .await?;
    // The archive goes out file by file, not built whole a second time in memory.
    let disposition = format!("attachment; filename=\"{}-evidence.tar\"", id.replace(['"', '\\'], "_"));
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-tar".to_string()), (header::CONTENT_DISPOSITION, disposition)],
        axum::body::Body::new(Chunks(bundle.into_chunks())),
    )
        .into_response())
}

/// A response body sent one chunk at a time from an iterator.
struct Chunks<I>(I);

impl<I: Iterator<Item = Vec<u8>> + Unpin> http_body::Body for Chunks<I> {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::task::Poll::Ready(self.0.next().map(|chunk| Ok(http_body::Frame::data(axum::body::Bytes::from(chunk)))))
    }
}
