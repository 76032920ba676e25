//! The agent's view: the ticket queue, search, the masked card, reveal with a reason, and
//! verify without reveal. Every answer comes from the same gateway calls the API makes,
//! recorded in the ledger before anything is drawn; a refusal is shown in words.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use cordon_gateway::{GatewayError, TokenRole};
use cordon_vault::Field;
use serde::Deserialize;
use serde_json::Value;

use super::pages::{CardField, CardPage, Hit, Queue, QueueTicket, RevealedValue, SearchResults, render};
use super::{Posted, Signed, field as value, gateway_problem, page, render_problem};
use crate::routes::AppState;

/// Tickets the queue shows.
const QUEUE_SHOWN: usize = 50;

pub(crate) async fn home(State(state): State<Arc<AppState>>, signed: Signed) -> Response {
    match signed.claims.role {
        TokenRole::Agent => {}
        TokenRole::Analyst | TokenRole::Admin => return super::analyst::home(&state, &signed).await,
        TokenRole::Customer => {
            return axum::response::IntoResponse::into_response(axum::response::Redirect::to("/console/me"));
        }
        TokenRole::Service => {
            return render_problem(StatusCode::FORBIDDEN, "A service's token has no console.");
        }
    }
    let tickets = match state.gateway.ticket_queue(&signed.claims, QUEUE_SHOWN) {
        Ok(tickets) => tickets,
        Err(error) => return gateway_problem(error),
    };
    let tickets = tickets
        .into_iter()
        .map(|ticket| QueueTicket {
            customer: ticket.requester,
            category: ticket.category.replace('_', " "),
            updated: cordon_incident::iso_time(ticket.updated_at.saturating_mul(1000)),
            id: ticket.id,
        })
        .collect();
    render(&Queue { page: page(&signed, "Your queue"), tickets })
}

/// The ticket a form or link names, if any.
fn ticket_of(text: &str) -> Option<&str> {
    let text = text.trim();
    (!text.is_empty()).then_some(text)
}

pub(crate) async fn search(State(state): State<Arc<AppState>>, Posted { signed, fields: pairs }: Posted) -> Response {
    let by = value(&pairs, "by");
    let hits = match state.gateway.search(&signed.claims, by, value(&pairs, "value"), &signed.request).await {
        Ok(hits) => hits,
        Err(error) => return gateway_problem(error),
    };
    render(&SearchResults {
        page: page(&signed, "Search"),
        by: by.replace('_', " "),
        hits: hits.into_iter().map(|hit| Hit { customer: hit.customer, masked_name: hit.masked_name }).collect(),
        ticket: value(&pairs, "ticket").trim().to_string(),
    })
}

#[derive(Deserialize)]
pub(crate) struct CardQuery {
    #[serde(default)]
    ticket: String,
}

/// The card and what is drawn with it after a reveal or a verify.
#[derive(Default)]
struct Shown {
    revealed: Vec<RevealedValue>,
    revealed_entry: Option<u64>,
    verified: Option<(String, bool, u64)>,
    refusal: Option<String>,
}

async fn card_page(state: &AppState, signed: &Signed, customer: &str, ticket: Option<&str>, shown: Shown) -> Response {
    let card = match state.gateway.view(&signed.claims, customer, ticket, &signed.request).await {
        Ok(card) => card,
        Err(error) => return gateway_problem(error),
    };
    let needed = match ticket.map(|ticket| state.gateway.fields_for_ticket(&signed.claims, ticket)) {
        Some(Ok(needed)) => needed,
        Some(Err(error)) => return gateway_problem(error),
        None => None,
    };
    let fields: Vec<CardField> = card
        .fields
        .into_iter()
        .map(|(field, masked)| CardField {
            label: cordon_incident::field_words(field).to_string(),
            name: field.name().to_string(),
            masked,
        })
        .collect();
    let offered = fields
        .iter()
        .filter(|field| needed.as_ref().is_none_or(|needed| needed.iter().any(|need| need.name() == field.name)))
        .map(|field| CardField { label: field.label.clone(), name: field.name.clone(), masked: field.masked.clone() })
        .collect();
    render(&CardPage {
        page: page(signed, "Customer"),
        customer: card.customer,
        ticket: ticket.unwrap_or_default().to_string(),
        fields,
        offered,
        card_entry: card.ledger_index,
        revealed: shown.revealed,
        revealed_entry: shown.revealed_entry,
        verified: shown.verified,
        refusal: shown.refusal,
    })
}

pub(crate) async fn card(
    State(state): State<Arc<AppState>>,
    signed: Signed,
    Path(customer): Path<String>,
    query: Result<Query<CardQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let ticket = query.map(|Query(query)| query.ticket).unwrap_or_default();
    let shown = Shown::default();
    card_page(&state, &signed, &customer, ticket_of(&ticket), shown).await
}

/// A refusal the agent should read on the card: policy's reason, verify's limit, a step-up.
fn refusal_words(error: &GatewayError) -> Option<String> {
    match error {
        GatewayError::Denied { reason, .. } => Some(super::printable(&format!("Refused: {reason}."))),
        GatewayError::VerifyLimit { .. } | GatewayError::BadRequest(_) => Some(super::printable(&error.to_string())),
        _ => None,
    }
}

fn shown_value(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

pub(crate) async fn reveal(
    State(state): State<Arc<AppState>>,
    Path(customer): Path<String>,
    Posted { signed, fields: pairs }: Posted,
) -> Response {
    let ticket = ticket_of(value(&pairs, "ticket"));
    let fields: Vec<String> = pairs.iter().filter(|(key, _)| key == "field").map(|(_, field)| field.clone()).collect();
    let mut shown = Shown::default();
    if fields.is_empty() {
        shown.refusal = Some("Choose the fields the ticket needs, then reveal.".into());
    } else {
        let reason = value(&pairs, "reason");
        match state.gateway.reveal(&signed.claims, &customer, ticket, &fields, reason, &signed.request).await {
            Ok(revealed) => {
                shown.revealed_entry = Some(revealed.ledger_index);
                shown.revealed = revealed
                    .values
                    .iter()
                    .map(|(field, value)| RevealedValue {
                        label: cordon_incident::field_words(*field).to_string(),
                        value: shown_value(value),
                    })
                    .collect();
            }
            Err(error) => match refusal_words(&error) {
                Some(words) => shown.refusal = Some(words),
                None => return gateway_problem(error),
            },
        }
    }
    card_page(&state, &signed, &customer, ticket, shown).await
}

pub(crate) async fn verify(
    State(state): State<Arc<AppState>>,
    Path(customer): Path<String>,
    Posted { signed, fields: pairs }: Posted,
) -> Response {
    let ticket = ticket_of(value(&pairs, "ticket"));
    let field = value(&pairs, "field");
    let mut shown = Shown::default();
    let label =
        field.parse::<Field>().map_or(field.to_string(), |field| cordon_incident::field_words(field).to_string());
    match state.gateway.verify(&signed.claims, &customer, ticket, field, value(&pairs, "value"), &signed.request).await
    {
        Ok(verified) => shown.verified = Some((label, verified.matched, verified.ledger_index)),
        Err(error) => match refusal_words(&error) {
            Some(words) => shown.refusal = Some(words),
            None => return gateway_problem(error),
        },
    }
    card_page(&state, &signed, &customer, ticket, shown).await
}

/// Asks for an approval to see a customer without a ticket of one's own (break-glass) or a
/// second approver (a high-balance customer's sensitive field): policy decides who may ask,
/// an analyst who is not the asker grants it, for at most an hour.
pub(crate) async fn ask_approval(
    State(state): State<Arc<AppState>>,
    Path(customer): Path<String>,
    Posted { signed, fields: pairs }: Posted,
) -> Response {
    let Ok(kind) = value(&pairs, "kind").parse::<cordon_directory::ApprovalKind>() else {
        return render_problem(StatusCode::BAD_REQUEST, "Choose break-glass or a second approver.");
    };
    // The card may not open until the approval is granted, so the answer is a page of its own.
    match state.gateway.request_approval(&signed.claims, kind, &customer, &signed.request).await {
        Ok(approval) => render_problem(
            StatusCode::OK,
            &format!(
                "Asked for {} on {customer} ({}): an analyst other than you must approve it; it then lasts at most \
                 an hour. Open the customer again once it is approved.",
                approval.kind.to_string().replace('_', " "),
                approval.id
            ),
        ),
        Err(error) => gateway_problem(error),
    }
}
