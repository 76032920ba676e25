//! Tickets from the helpdesk: Zendesk's webhook events, in the shape Zendesk sends them
//! (`zen:event-type:ticket.*` and `zen:event-type:user.*`, a `detail` object with the
//! ticket's or the user's current state).
//!
//! A delivery is trusted only when `X-Zendesk-Webhook-Signature` is the base64 HMAC-SHA256,
//! under the webhook's signing secret, of `X-Zendesk-Webhook-Signature-Timestamp` followed by
//! the body, and that timestamp is within the replay window. An event id already applied is
//! answered without effect (Zendesk redelivers). User events tell cordon who a helpdesk user
//! is: a customer (by external id, or by email through the blind index) or an agent (by
//! external id, or by the directory's work email); no address is kept. Ticket events carry
//! the ticket's whole state, applied only if newer than the state applied before, so events
//! arriving out of order end in the newest state. Each applied event is a ledger entry.

use std::sync::Mutex;

use base64::Engine as _;
use cordon_directory::{Ticket, TicketStatus};
use cordon_store::{HelpdeskChange, HelpdeskTicket, HelpdeskUser};
use cordon_vault::SearchKey;
use hmac::{KeyInit as _, Mac as _};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::config::HelpdeskSettings;
use crate::datadir::futures_block_on;
use crate::error::GatewayError;
use crate::service::Gateway;

/// The ledger's actor for everything the helpdesk's webhooks change.
pub const HELPDESK_ACTOR: &str = "helpdesk:zendesk";
/// cordon's id of Zendesk ticket `N` is `zd-N`.
pub const TICKET_PREFIX: &str = "zd-";

/// The Zendesk receiver: its secret and settings, and one lock so that events are applied
/// one at a time (a redelivery racing its original is applied once).
pub(crate) struct Zendesk {
    secret: Zeroizing<Vec<u8>>,
    settings: HelpdeskSettings,
    applying: Mutex<()>,
}

impl Zendesk {
    pub(crate) fn new(secret: Zeroizing<Vec<u8>>, settings: HelpdeskSettings) -> Zendesk {
        Zendesk { secret, settings, applying: Mutex::new(()) }
    }
}

/// One webhook delivery as it arrived: the two signature headers and the raw body.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub signature: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub body: &'a [u8],
}

/// What became of an event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HelpdeskOutcome {
    /// The event's id.
    pub event: String,
    /// `applied`, `duplicate` (applied before), `stale` (older than the ticket's applied
    /// state) or `ignored` (a type cordon does not use).
    pub outcome: &'static str,
    /// The cordon ticket (`zd-<id>`) or helpdesk user it concerned.
    pub subject: Option<String>,
    pub ledger_index: Option<u64>,
}

#[derive(Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    time: Option<String>,
    #[serde(default)]
    detail: serde_json::Value,
}

/// Zendesk sends ids as strings in event payloads, and as numbers elsewhere: either is read.
#[derive(Deserialize)]
#[serde(untagged)]
enum Id {
    Text(String),
    Number(u64),
}

impl Id {
    fn text(self) -> String {
        match self {
            Id::Text(text) => text,
            Id::Number(number) => number.to_string(),
        }
    }
}

fn id_text(id: Option<Id>) -> Option<String> {
    id.map(Id::text).filter(|id| !id.is_empty() && id != "0")
}

#[derive(Deserialize)]
struct TicketDetail {
    id: Id,
    requester_id: Option<Id>,
    submitter_id: Option<Id>,
    assignee_id: Option<Id>,
    status: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    /// How the ticket came in (`via.channel`: `voice`, `chat`, `web`, `api`, ...).
    via: Option<Via>,
    created_at: Option<String>,
    updated_at: Option<String>,
    /// Who in the helpdesk made the change.
    actor_id: Option<Id>,
}

#[derive(Deserialize)]
struct Via {
    channel: Option<String>,
}

/// Channels on which the customer reached support: a ticket an agent opened on one of them
/// (a call taken, a chat answered) has a contact behind it, so the customer raised it.
const CUSTOMER_CONTACT_CHANNELS: [&str; 6] = ["voice", "chat", "native_messaging", "sms", "whatsapp", "email"];

#[derive(Deserialize)]
struct UserDetail {
    id: Id,
    email: Option<String>,
    external_id: Option<String>,
    role: Option<String>,
}

impl Gateway {
    /// Applies one Zendesk webhook delivery (blocking: it waits for its ledger entry; call it
    /// off the async workers). Refused without effect: a bad or missing signature, a
    /// timestamp outside the window, a body that is not a Zendesk event, a ticket whose
    /// requester is no customer cordon knows yet (409: Zendesk retries, by when the user's
    /// event may have come).
    pub fn zendesk_event(&self, delivery: Delivery<'_>, request: &str) -> Result<HelpdeskOutcome, GatewayError> {
        let zendesk = self.helpdesk.as_ref().ok_or_else(|| GatewayError::NotFound {
            what: "helpdesk receiver",
            id: "zendesk (set [helpdesk] zendesk_secret_file)".into(),
            ledger_index: None,
        })?;
        self.check_zendesk_delivery(delivery)?;
        // Its entries and store writes are changes (this runs on a blocking thread).
        let _changing = self.changing_blocking();
        let event: Event = serde_json::from_slice(delivery.body).map_err(|error| {
            GatewayError::BadRequest(format!("the body is not a Zendesk event (`id`, `type`, `detail`): {error}"))
        })?;
        check_helpdesk_id("event id", &event.id)?;
        let _one_at_a_time = zendesk.applying.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // And one at a time across the gateways sharing a store: a redelivery that lands on
        // another gateway meanwhile finds this one applied.
        let _across_gateways = self.store.hold_exclusive("cordon helpdesk events")?;
        if self.store.helpdesk_event_seen(&event.id)? {
            return Ok(HelpdeskOutcome { event: event.id, outcome: "duplicate", subject: None, ledger_index: None });
        }
        let keep = keep_seconds(zendesk);
        let outcome = if event.kind.starts_with("zen:event-type:ticket.") {
            self.zendesk_ticket(zendesk, &event, request)?
        } else if event.kind.starts_with("zen:event-type:user.") {
            self.zendesk_user(zendesk, &event, request)?
        } else {
            HelpdeskOutcome { event: event.id.clone(), outcome: "ignored", subject: None, ledger_index: None }
        };
        self.store.note_helpdesk_event(&event.id, self.clock.now_seconds(), keep)?;
        Ok(outcome)
    }

    fn zendesk_ticket(&self, zendesk: &Zendesk, event: &Event, request: &str) -> Result<HelpdeskOutcome, GatewayError> {
        let detail: TicketDetail = serde_json::from_value(event.detail.clone()).map_err(|error| {
            GatewayError::BadRequest(format!(
                "event `{}` ({}): `detail` is not a ticket: {error}",
                event.id, event.kind
            ))
        })?;
        let zendesk_id = detail.id.text();
        check_helpdesk_id("ticket id", &zendesk_id)?;
        let ticket_id = format!("{TICKET_PREFIX}{zendesk_id}");
        let time = |text: Option<&str>, what: &str| -> Result<Option<i64>, GatewayError> {
            text.map(|text| {
                parse_utc(text).ok_or_else(|| {
                    GatewayError::BadRequest(format!(
                        "event `{}`: {what} `{}` is not a UTC time",
                        event.id,
                        text.escape_debug().take(40).collect::<String>()
                    ))
                })
            })
            .transpose()
        };
        let updated_at = time(detail.updated_at.as_deref(), "detail.updated_at")?
            .or(time(event.time.as_deref(), "time")?)
            .ok_or_else(|| GatewayError::BadRequest(format!("event `{}`: the ticket has no `updated_at`", event.id)))?;
        let previous = self.store.helpdesk_ticket(&ticket_id)?;
        let existing = self.directory.ticket(&self.store, &ticket_id)?;
        if previous.is_none() && existing.is_some() {
            // `zd-` ids are the receiver's; a ticket of that id put by hand is not overwritten.
            return Err(GatewayError::Conflict(format!(
                "ticket `{ticket_id}` was not made by the helpdesk receiver; it is left as it is"
            )));
        }
        let subject = Some(ticket_id.clone());
        let actor = id_text(detail.actor_id).filter(|actor| check_helpdesk_id("actor id", actor).is_ok());
        let by = actor.as_deref().map(|actor| format!(" by helpdesk user {actor}")).unwrap_or_default();
        if let Some(previous) = previous.as_ref().filter(|previous| previous.updated_at > updated_at) {
            let detail = format!(
                "zendesk {} event {}{by}: not applied, older ({updated_at}) than the state applied ({})",
                event.kind, event.id, previous.updated_at
            );
            let index = futures_block_on(self.change_entry(
                HELPDESK_ACTOR,
                "ticket.helpdesk",
                &ticket_id,
                Some(detail),
                request,
            ))?;
            return Ok(HelpdeskOutcome {
                event: event.id.clone(),
                outcome: "stale",
                subject,
                ledger_index: Some(index),
            });
        }
        let requester_user = id_text(detail.requester_id).ok_or_else(|| {
            GatewayError::BadRequest(format!("event `{}`: the ticket has no `requester_id`", event.id))
        })?;
        check_helpdesk_id("requester id", &requester_user)?;
        // A ticket's customer is fixed when it is first applied. A later event naming another
        // requester does not move the ticket (and the reveals it justifies) to another
        // customer: it closes it, and says so; the helpdesk opens a new ticket for the other.
        let (requester, requester_moved) = match (&previous, &existing) {
            (Some(previous), Some(existing)) => (existing.requester.clone(), previous.requester_user != requester_user),
            _ => {
                let customer = self.store.helpdesk_user(&requester_user)?.and_then(|user| user.customer);
                let customer = customer.ok_or_else(|| {
                    GatewayError::Conflict(format!(
                        "ticket `{ticket_id}`: its requester, helpdesk user {requester_user}, is no customer cordon \
                         knows yet (a user event maps it by external id or email); the event is not applied, so \
                         Zendesk retries it"
                    ))
                })?;
                (customer, false)
            }
        };
        let assignee = match id_text(detail.assignee_id) {
            Some(user) => {
                check_helpdesk_id("assignee id", &user)?;
                self.store.helpdesk_user(&user)?.and_then(|user| user.agent)
            }
            None => None,
        };
        let agent_of = |user: Option<&str>| -> Result<Option<String>, GatewayError> {
            match user {
                Some(user) if check_helpdesk_id("user id", user).is_ok() => {
                    Ok(self.store.helpdesk_user(user)?.and_then(|user| user.agent))
                }
                _ => Ok(None),
            }
        };
        let submitter = id_text(detail.submitter_id);
        let contact = detail
            .via
            .as_ref()
            .and_then(|via| via.channel.as_deref())
            .is_some_and(|channel| CUSTOMER_CONTACT_CHANNELS.contains(&channel));
        // Opened by an agent unless the helpdesk says the requester submitted it; and then
        // for detection, by which agent, unless a call or chat with the customer is behind it.
        let (opened_by_agent, opened_by) = match (&previous, &existing) {
            (Some(previous), Some(existing)) => (previous.opened_by_agent, existing.opened_by.clone()),
            _ => {
                let by_agent = submitter.as_deref().is_none_or(|submitter| submitter != requester_user);
                let opened_by = if by_agent && !contact { agent_of(submitter.as_deref())? } else { None };
                (by_agent, opened_by)
            }
        };
        // Who put the ticket in its assignee's queue: the actor of the event that changed
        // the assignee, when that actor is an agent (a trigger or routing is nobody); kept
        // while the assignee stays.
        let assigned_by = match &existing {
            Some(existing) if existing.assignee == assignee => existing.assigned_by.clone(),
            _ if assignee.is_some() => agent_of(actor.as_deref())?,
            _ => None,
        };
        let deleted = event.kind.contains("deleted");
        let mut status = match detail.status.as_deref().map(str::to_ascii_lowercase).as_deref() {
            _ if deleted || requester_moved => TicketStatus::Closed,
            Some("new" | "open") | None => TicketStatus::Open,
            Some("pending" | "hold" | "on-hold") => TicketStatus::Pending,
            // Solved, closed, and any status cordon does not know: no longer a reason to look.
            Some(_) => TicketStatus::Closed,
        };
        // Two states of the same second: the more restrictive one stands.
        if let (Some(previous), Some(existing)) = (&previous, &existing)
            && previous.updated_at == updated_at
            && restrictiveness(existing.status) > restrictiveness(status)
        {
            status = existing.status;
        }
        let category = category_of(&zendesk.settings, &detail.tags);
        if !self.categories.knows(&category) {
            return Err(GatewayError::Internal(format!("[helpdesk] maps to unknown category `{category}`")));
        }
        let created_at = match &existing {
            Some(existing) => existing.created_at,
            None => time(detail.created_at.as_deref(), "detail.created_at")?.unwrap_or(updated_at),
        };
        let ticket = Ticket {
            id: ticket_id.clone(),
            requester: requester.clone(),
            category,
            status,
            assignee,
            opened_by,
            assigned_by,
            created_at,
            updated_at,
        };
        let moved = if requester_moved {
            format!(" (closed: the helpdesk now names requester user {requester_user}, not this customer's)")
        } else {
            String::new()
        };
        let entry_detail = format!(
            "zendesk {} event {}{by}: {} for {requester} {} {} opened by {}{moved}",
            event.kind,
            event.id,
            ticket.status,
            ticket.category,
            ticket.assignee.as_deref().unwrap_or("-"),
            if opened_by_agent { "an agent" } else { "the customer" }
        );
        let index = futures_block_on(self.change_entry(
            HELPDESK_ACTOR,
            "ticket.helpdesk",
            &ticket_id,
            Some(entry_detail),
            request,
        ))?;
        let requester_user = previous.map_or(requester_user, |previous| previous.requester_user);
        let state = HelpdeskTicket { updated_at, opened_by_agent, requester_user };
        let stored = self.directory.apply_helpdesk(
            &self.store,
            &HelpdeskChange {
                event_id: &event.id,
                now: self.clock.now_seconds(),
                keep_seconds: keep_seconds(zendesk),
                ticket: Some((&ticket, &state)),
                user: None,
            },
        );
        futures_block_on(self.applied(index, stored, request))?;
        Ok(HelpdeskOutcome { event: event.id.clone(), outcome: "applied", subject, ledger_index: Some(index) })
    }

    fn zendesk_user(&self, zendesk: &Zendesk, event: &Event, request: &str) -> Result<HelpdeskOutcome, GatewayError> {
        let detail: UserDetail = serde_json::from_value(event.detail.clone()).map_err(|error| {
            GatewayError::BadRequest(format!("event `{}` ({}): `detail` is not a user: {error}", event.id, event.kind))
        })?;
        let user_id = detail.id.text();
        check_helpdesk_id("user id", &user_id)?;
        let external = detail.external_id.as_deref().map(str::trim).filter(|id| !id.is_empty());
        let email = detail.email.as_deref().map(str::trim).filter(|email| !email.is_empty());
        let staff = matches!(detail.role.as_deref(), Some("agent" | "admin"));
        let (user, how) = if staff {
            let by_external = match external {
                Some(id) if id.len() <= 128 => self.directory.agent(&self.store, id)?.map(|agent| agent.id),
                _ => None,
            };
            match by_external {
                Some(agent) => (HelpdeskUser { customer: None, agent: Some(agent) }, "agent by external id"),
                None => match email.map(|email| self.store.agent_by_email(email)).transpose()?.flatten() {
                    Some(agent) => (HelpdeskUser { customer: None, agent: Some(agent) }, "agent by email"),
                    None => (HelpdeskUser::default(), "no agent matches"),
                },
            }
        } else {
            let by_external = match external {
                Some(id) if id.len() <= 128 => self.directory.customer(&self.store, id)?.map(|_| id.to_string()),
                _ => None,
            };
            match by_external {
                Some(customer) => (HelpdeskUser { customer: Some(customer), agent: None }, "customer by external id"),
                None => {
                    // The blind index finds the customer; an address two customers share
                    // names neither.
                    let found = match email.and_then(|email| self.vault.search_digest(SearchKey::Email, email)) {
                        Some(digest) => self.store.search(SearchKey::Email, &digest)?,
                        None => Vec::new(),
                    };
                    match found.as_slice() {
                        [customer] => {
                            (HelpdeskUser { customer: Some(customer.clone()), agent: None }, "customer by email")
                        }
                        _ => (HelpdeskUser::default(), "no customer matches"),
                    }
                }
            }
        };
        // A helpdesk user, once it names a customer or an agent, keeps naming them: an email
        // or external id edited in the helpdesk to match someone else does not hand that
        // person's tickets to whoever edited it. It is recorded, and kept as it was.
        let before =
            self.store.helpdesk_user(&user_id)?.filter(|before| before.customer.is_some() || before.agent.is_some());
        let (user, how) = match before {
            Some(before) if before != user => {
                let now = user.customer.as_deref().or(user.agent.as_deref()).unwrap_or("nobody").to_string();
                (before, format!("{how}: now matches {now}; kept as it was"))
            }
            _ => (user, how.to_string()),
        };
        let target = format!("zendesk-user:{user_id}");
        let named = user.customer.as_deref().or(user.agent.as_deref()).unwrap_or("-");
        let detail = format!("zendesk {} event {}: {how}: {named}", event.kind, event.id);
        let index =
            futures_block_on(self.change_entry(HELPDESK_ACTOR, "helpdesk.user", &target, Some(detail), request))?;
        let stored = self.directory.apply_helpdesk(
            &self.store,
            &HelpdeskChange {
                event_id: &event.id,
                now: self.clock.now_seconds(),
                keep_seconds: keep_seconds(zendesk),
                ticket: None,
                user: Some((&user_id, &user)),
            },
        );
        futures_block_on(self.applied(index, stored, request))?;
        Ok(HelpdeskOutcome {
            event: event.id.clone(),
            outcome: "applied",
            subject: Some(target),
            ledger_index: Some(index),
        })
    }

    /// Checks a delivery's signature and timestamp only (cheap: the server does it before
    /// it gives the delivery a blocking thread, so unsigned floods hold none).
    pub fn check_zendesk_delivery(&self, delivery: Delivery<'_>) -> Result<(), GatewayError> {
        let zendesk = self.helpdesk.as_ref().ok_or_else(|| GatewayError::NotFound {
            what: "helpdesk receiver",
            id: "zendesk (set [helpdesk] zendesk_secret_file)".into(),
            ledger_index: None,
        })?;
        check_signature(zendesk, delivery, self.clock.now_seconds())
    }

    /// Whether helpdesk ticket `ticket` was opened by an agent rather than by its customer
    /// (`None`: not a helpdesk ticket).
    pub fn ticket_opened_by_agent(&self, ticket: &str) -> Result<Option<bool>, GatewayError> {
        Ok(self.store.helpdesk_ticket(ticket)?.map(|ticket| ticket.opened_by_agent))
    }
}

/// How long applied event ids are remembered: a week, or twice the replay window if longer.
/// A captured delivery cannot be replayed past the window (its signed timestamp ages), but
/// the helpdesk re-signs a redelivery of the same event; one later than this would apply
/// the same state again (a second entry, no other change).
fn keep_seconds(zendesk: &Zendesk) -> i64 {
    zendesk.settings.replay_window_seconds.saturating_mul(2).max(7 * 86_400)
}

/// How much a status holds back access: open the least, closed the most.
fn restrictiveness(status: TicketStatus) -> u8 {
    match status {
        TicketStatus::Open => 0,
        TicketStatus::Pending => 1,
        TicketStatus::Closed => 2,
    }
}

/// The first of the ticket's tags the table maps, else the default category.
fn category_of(settings: &HelpdeskSettings, tags: &[String]) -> String {
    tags.iter()
        .find_map(|tag| settings.categories.get(tag.as_str()))
        .cloned()
        .unwrap_or_else(|| settings.default_category.clone())
}

/// Checks that every category `[helpdesk]` can give a ticket is one the table knows.
pub(crate) fn check_categories(
    settings: &HelpdeskSettings,
    table: &cordon_policy::CategoryTable,
) -> Result<(), GatewayError> {
    let named = std::iter::once(("default_category".to_string(), &settings.default_category))
        .chain(settings.categories.iter().map(|(tag, category)| (format!("categories.{tag}"), category)));
    for (setting, category) in named {
        if !table.knows(category) {
            return Err(GatewayError::BadRequest(format!(
                "[helpdesk] {setting} = `{category}` is not a ticket category (see [categories])"
            )));
        }
    }
    Ok(())
}

fn check_signature(zendesk: &Zendesk, delivery: Delivery<'_>, now: i64) -> Result<(), GatewayError> {
    let refuse = |why: String| GatewayError::Unauthenticated(format!("Zendesk webhook refused: {why}"));
    let timestamp =
        delivery.timestamp.ok_or_else(|| refuse("X-Zendesk-Webhook-Signature-Timestamp is missing".into()))?;
    let signature = delivery.signature.ok_or_else(|| refuse("X-Zendesk-Webhook-Signature is missing".into()))?;
    let shown = || timestamp.escape_debug().take(40).collect::<String>();
    let signed_at = parse_utc(timestamp)
        .ok_or_else(|| refuse(format!("the signature timestamp `{}` is not a UTC time", shown())))?;
    let provided = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .map_err(|_| refuse("X-Zendesk-Webhook-Signature is not base64".into()))?;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&zendesk.secret)
        .map_err(|error| GatewayError::Internal(format!("the helpdesk secret: {error}")))?;
    mac.update(timestamp.as_bytes());
    mac.update(delivery.body);
    mac.verify_slice(&provided).map_err(|_| refuse("the signature does not match the body and timestamp".into()))?;
    let window = zendesk.settings.replay_window_seconds;
    if (now - signed_at).abs() > window {
        return Err(refuse(format!(
            "signed at {}, more than {window} s from now: a replay, or a clock far off",
            shown()
        )));
    }
    Ok(())
}

/// Helpdesk ids go into ticket ids, ledger entries and messages: short, and plain.
fn check_helpdesk_id(what: &str, id: &str) -> Result<(), GatewayError> {
    let plain = |character: char| character.is_ascii_alphanumeric() || matches!(character, '-' | '_' | '.');
    if id.is_empty() || id.len() > 64 || !id.chars().all(plain) {
        return Err(GatewayError::BadRequest(format!(
            "the helpdesk's {what} `{}` is not 1 to 64 letters, digits, `-`, `_` or `.`",
            id.escape_debug().take(64).collect::<String>()
        )));
    }
    Ok(())
}

/// Unix seconds of an RFC 3339 UTC time, `2026-12-04T05:00:00Z` (fractions of a second
/// ignored; `+00:00` accepted for `Z`).
pub fn parse_utc(text: &str) -> Option<i64> {
    let text = text.trim();
    let bytes = text.as_bytes();
    if bytes.len() < 20 || bytes.get(4) != Some(&b'-') || bytes.get(7) != Some(&b'-') || bytes.get(13) != Some(&b':') {
        return None;
    }
    if !matches!(bytes.get(10), Some(b'T' | b't' | b' ')) || bytes.get(16) != Some(&b':') {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes().all(|byte| byte.is_ascii_digit()).then(|| part.parse().ok())?
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    let mut rest = text.get(19..)?;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = fraction.get(digits..)?;
    }
    if !matches!(rest, "Z" | "z" | "+00:00") {
        return None;
    }
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    // Days from 1970-01-01 of the civil date (H. Hinnant's algorithm).
    let shifted = if month <= 2 { year - 1 } else { year };
    let era = shifted.div_euclid(400);
    let year_of_era = shifted - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}
