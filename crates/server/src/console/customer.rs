//! The customer's view, "who viewed my data": every access staff made to the signed-in
//! customer's record (when, which team and site, which fields, why), newest first, each with a
//! receipt to download and a button that checks the receipt in the browser
//! (`console/receipt.js`: SHA-256 and Ed25519 through WebCrypto, against the public
//! checkpoint), or on the server where the browser has no Ed25519.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use cordon_gateway::{AccessReason, AccessedBy, CustomerAccess, GatewayError};
use serde::Deserialize;

use super::pages::{AccessRow, CustomerPage, render};
use super::{Posted, Signed, field as value, gateway_problem, page, render_problem};
use crate::routes::AppState;

#[derive(Deserialize)]
pub(crate) struct PageQuery {
    before: Option<String>,
}

/// Runs a gateway call that reads the store or the ledger off the async workers.
async fn blocking<T: Send + 'static>(
    state: &Arc<AppState>,
    work: impl FnOnce(&cordon_gateway::Gateway) -> Result<T, GatewayError> + Send + 'static,
) -> Result<T, Response> {
    let state = Arc::clone(state);
    tokio::task::spawn_blocking(move || work(&state.gateway))
        .await
        .map_err(|error| gateway_problem(GatewayError::Internal(format!("a customer's page failed: {error}"))))?
        .map_err(gateway_problem)
}

pub(crate) async fn home(
    State(state): State<Arc<AppState>>,
    signed: Signed,
    Query(query): Query<PageQuery>,
) -> Response {
    let before = match query.before.as_deref().map(str::parse::<u64>).transpose() {
        Ok(before) => before,
        Err(_) => return render_problem(StatusCode::BAD_REQUEST, "`before` is not a ledger index."),
    };
    let claims = signed.claims.clone();
    let found = match blocking(&state, move |gateway| gateway.customer_accesses(&claims, before)).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let mut page = page(&signed, "Who viewed my data");
    page.cover_rows(found.accesses.len());
    render(&CustomerPage {
        page,
        customer: found.customer,
        rows: found.accesses.into_iter().map(access_row).collect(),
        older: found.older,
        newest_page: before.is_none(),
        verifier_key: state.gateway.audit().verifier_key(),
    })
}

/// An access in the customer's words.
fn access_row(access: CustomerAccess) -> AccessRow {
    let fields: Vec<String> = access.fields.iter().map(|field| field.replace('_', " ")).collect();
    let what = match (access.action.as_str(), access.allowed) {
        ("search", _) if access.shown_with > 1 => {
            format!("Your masked name was among {} search results", access.shown_with)
        }
        ("search", _) => "Your masked name was the result of a search".to_string(),
        ("view", true) => "Opened your record, with every detail masked".to_string(),
        ("reveal", true) => format!("Saw your {}", fields.join(", ")),
        ("verify", true) => format!("Checked a {} you gave against your record, without seeing it", fields.join(", ")),
        ("view", false) => "Tried to open your record and was refused: nothing was shown".to_string(),
        ("reveal", false) => format!("Asked to see your {} and was refused: nothing was shown", fields.join(", ")),
        ("verify", false) => format!("Asked to check your {} and was refused: nothing was shown", fields.join(", ")),
        (other, _) => other.to_string(),
    };
    let why = match access.reason {
        AccessReason::Ticket { category, raised_by_customer: true } => {
            format!("Your support request about {}", category.replace('_', " "))
        }
        AccessReason::Ticket { category, raised_by_customer: false } => {
            format!("A support request about {} that you did not raise", category.replace('_', " "))
        }
        AccessReason::UnknownTicket => "A support request no longer on file".to_string(),
        AccessReason::NoTicket if access.action == "search" => "A search by staff".to_string(),
        AccessReason::NoTicket => "No support request was given".to_string(),
    };
    let who = match &access.by {
        AccessedBy::Staff { team, site, vendor, name } => {
            let mut who = format!("{} team, {site}", team.replace('_', " "));
            if let Some(vendor) = vendor {
                who.push_str(&format!(" (contractor: {vendor})"));
            }
            match name {
                Some(name) => format!("{name}, {who}"),
                None => who,
            }
        }
        AccessedBy::FormerStaff => "A member of staff no longer on file".to_string(),
        AccessedBy::Customer { this_customer: true } => "You, signed in as a customer (refused)".to_string(),
        AccessedBy::Customer { this_customer: false } => "Another customer's sign-in (refused)".to_string(),
        AccessedBy::Role(role) => format!("The exchange's {role} system identity (refused)"),
    };
    AccessRow {
        index: access.ledger_index,
        time: minute(access.time_ms),
        who,
        what,
        why,
        allowed: access.allowed,
        receipt_withheld: access.receipt_withheld,
    }
}

/// `2026-12-03 19:20 UTC`.
fn minute(time_ms: i64) -> String {
    let text = cordon_incident::iso_time(time_ms);
    format!("{} UTC", text.get(..16).unwrap_or(&text).replace('T', " "))
}

/// A receipt file for one access to the signed-in customer's data.
pub(crate) async fn receipt(State(state): State<Arc<AppState>>, signed: Signed, Path(index): Path<String>) -> Response {
    let Ok(index) = index.parse::<u64>() else {
        return render_problem(StatusCode::BAD_REQUEST, "That is not a ledger index.");
    };
    let claims = signed.claims.clone();
    let receipt = match blocking(&state, move |gateway| gateway.customer_receipt(&claims, index)).await {
        Ok(receipt) => receipt,
        Err(response) => return response,
    };
    let body = match serde_json::to_string_pretty(&receipt) {
        Ok(body) => body,
        Err(error) => {
            return gateway_problem(GatewayError::Internal(format!("a receipt could not be written: {error}")));
        }
    };
    (
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"cordon-receipt-{index}.json\"")),
        ],
        body,
    )
        .into_response()
}

/// Checks a receipt on the server, for a browser without Ed25519: the answer is JSON, as the
/// page's script reads it.
pub(crate) async fn check(State(state): State<Arc<AppState>>, Posted { fields, .. }: Posted) -> Response {
    let text = value(&fields, "receipt").to_string();
    // A receipt that does not verify is an answer, not a failed page: the check's own result
    // comes back whole.
    let checked = match blocking(&state, move |gateway| Ok(gateway.check_receipt(&text))).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    let answer = match checked {
        Ok(check) => serde_json::json!({
            "verified": true,
            "index": check.index,
            "checkpoint_size": check.checkpoint_size,
            "current_size": check.current_size,
            "entry": check.entry,
        }),
        Err(GatewayError::BadRequest(why)) => {
            serde_json::json!({ "verified": false, "problem": super::printable(&why) })
        }
        Err(error) => return gateway_problem(error),
    };
    axum::Json(answer).into_response()
}

/// The consistency proof between two sizes of the log, one base64 hash a line: what the
/// page's script needs to tie a receipt's checkpoint to the public one.
pub(crate) async fn consistency(
    State(state): State<Arc<AppState>>,
    _signed: Signed,
    Path((old, new)): Path<(String, String)>,
) -> Response {
    let (Ok(old), Ok(new)) = (old.parse::<u64>(), new.parse::<u64>()) else {
        return render_problem(StatusCode::BAD_REQUEST, "Tree sizes are whole numbers.");
    };
    match blocking(&state, move |gateway| gateway.consistency(old, new)).await {
        Ok(proof) => {
            let mut text = proof.join("\n");
            if !text.is_empty() {
                text.push('\n');
            }
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
        }
        Err(response) => response,
    }
}
