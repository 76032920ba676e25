//! The console's pages as values, each rendered by its template in `templates/console/`
//! (checked when the crate compiles; every value is HTML-escaped).

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Renders a page, or says the page could not be drawn.
pub(crate) fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
        Err(error) => {
            tracing::error!(%error, "a console page could not be rendered");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be drawn; it has been logged").into_response()
        }
    }
}

/// Copies of the watermark's text tiled over a region: enough to cover a card on a wide
/// screen at the tile size the stylesheet gives them.
const WATERMARK_TILES: usize = 48;

/// What every signed-in page shows around its content: who is signed in, the session's code
/// (also in a corner), the sign-out form, and the watermark text.
pub(crate) struct Page {
    pub(crate) title: String,
    pub(crate) subject: String,
    pub(crate) role: String,
    pub(crate) code: String,
    pub(crate) csrf: String,
    /// `agent · CODE · 2026-12-03 19:20 UTC`, to the minute the page was drawn.
    pub(crate) watermark: String,
    pub(crate) tiles: Vec<()>,
}

impl Page {
    pub(crate) fn new(title: &str, subject: &str, role: &str, code: &str, csrf: &str) -> Page {
        let minute = cordon_incident::iso_time(now_ms());
        // `2026-12-03T19:20:41.512Z` → `2026-12-03 19:20 UTC`
        let minute = format!("{} UTC", minute.get(..16).unwrap_or(&minute).replace('T', " "));
        Page {
            title: title.to_string(),
            subject: subject.to_string(),
            role: role.to_string(),
            code: code.to_string(),
            csrf: csrf.to_string(),
            watermark: format!("{subject} · {code} · {minute}"),
            tiles: vec![(); WATERMARK_TILES],
        }
    }

    /// Enough watermark tiles to cover a table of `rows` rows as well as a card: each row
    /// adds about a line and a half of the tiled text across a wide screen.
    pub(crate) fn cover_rows(&mut self, rows: usize) {
        self.tiles = vec![(); WATERMARK_TILES + rows.saturating_mul(8)];
    }

    /// The `data-watermark` value of a region: the agent and the session's code.
    pub(crate) fn mark(&self) -> String {
        format!("{} {}", self.subject, self.code)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
}

#[derive(Template)]
#[template(path = "console/login.html")]
pub(crate) struct Login {
    pub(crate) problem: Option<String>,
    pub(crate) nonce: String,
    /// Whether the console also signs in through the exchange's identity provider.
    pub(crate) sso: bool,
}

/// The step after the identity provider's redirect: the session cookie is set here, and a
/// new navigation from this page (same-site) carries it on to the console.
#[derive(Template)]
#[template(path = "console/signed-in.html")]
pub(crate) struct SignedIn {
    pub(crate) landing: String,
}

#[derive(Template)]
#[template(path = "console/problem.html")]
pub(crate) struct Problem {
    pub(crate) message: String,
}

/// One ticket in an agent's queue.
pub(crate) struct QueueTicket {
    pub(crate) id: String,
    pub(crate) customer: String,
    pub(crate) category: String,
    pub(crate) updated: String,
}

#[derive(Template)]
#[template(path = "console/queue.html")]
pub(crate) struct Queue {
    pub(crate) page: Page,
    pub(crate) tickets: Vec<QueueTicket>,
}

/// One search hit: the customer's id and masked name.
pub(crate) struct Hit {
    pub(crate) customer: String,
    pub(crate) masked_name: String,
}

#[derive(Template)]
#[template(path = "console/search.html")]
pub(crate) struct SearchResults {
    pub(crate) page: Page,
    pub(crate) by: String,
    pub(crate) hits: Vec<Hit>,
    pub(crate) ticket: String,
}

/// A field of the card: its name for people, its name in forms, and its masked value.
pub(crate) struct CardField {
    pub(crate) label: String,
    pub(crate) name: String,
    pub(crate) masked: String,
}

/// A value an agent revealed, with the field it belongs to.
pub(crate) struct RevealedValue {
    pub(crate) label: String,
    pub(crate) value: String,
}

#[derive(Template)]
#[template(path = "console/card.html")]
pub(crate) struct CardPage {
    pub(crate) page: Page,
    pub(crate) customer: String,
    pub(crate) ticket: String,
    pub(crate) fields: Vec<CardField>,
    /// The fields the reveal form offers: those the ticket's category needs, or every field
    /// without a ticket of the agent's.
    pub(crate) offered: Vec<CardField>,
    pub(crate) card_entry: u64,
    pub(crate) revealed: Vec<RevealedValue>,
    pub(crate) revealed_entry: Option<u64>,
    pub(crate) verified: Option<(String, bool, u64)>,
    /// A refusal of the last action, in words.
    pub(crate) refusal: Option<String>,
}

/// A row of the risk board.
pub(crate) struct BoardRow {
    pub(crate) agent: String,
    pub(crate) peer_group: String,
    pub(crate) risk: String,
    pub(crate) level: String,
}

/// An open alert in the analyst's list.
pub(crate) struct AlertRow {
    pub(crate) id: u64,
    pub(crate) agent: String,
    pub(crate) level: String,
    pub(crate) time: String,
    pub(crate) signals: String,
}

/// An approval waiting for an analyst.
pub(crate) struct ApprovalRow {
    pub(crate) id: String,
    pub(crate) kind: String,
    pub(crate) requester: String,
    pub(crate) customer: String,
    pub(crate) asked: String,
}

#[derive(Template)]
#[template(path = "console/board.html")]
pub(crate) struct Board {
    pub(crate) page: Page,
    pub(crate) agents: Vec<BoardRow>,
    pub(crate) alerts: Vec<AlertRow>,
    pub(crate) approvals: Vec<ApprovalRow>,
}

/// One signal of an alert, drawn as two bars: what was observed, and the baseline.
pub(crate) struct SignalBar {
    pub(crate) name: String,
    pub(crate) observed: String,
    pub(crate) baseline: String,
    pub(crate) points: String,
    pub(crate) y: u32,
    pub(crate) observed_width: u32,
    pub(crate) baseline_width: u32,
}

/// One day of an agent's volume against its peers' median.
pub(crate) struct VolumeDay {
    pub(crate) day: String,
    /// `MM-DD`, under the bar.
    pub(crate) label: String,
    pub(crate) customers: u64,
    pub(crate) peer_median: String,
    pub(crate) x: u32,
    pub(crate) bar_y: u32,
    pub(crate) bar_height: u32,
    pub(crate) median_y: u32,
}

#[derive(Template)]
#[template(path = "console/alert.html")]
pub(crate) struct AlertPage {
    pub(crate) page: Page,
    pub(crate) id: u64,
    pub(crate) agent: String,
    pub(crate) level: String,
    pub(crate) status: String,
    pub(crate) time: String,
    pub(crate) ledger_index: u64,
    pub(crate) risk: String,
    pub(crate) bars: Vec<SignalBar>,
    pub(crate) chart_height: u32,
    pub(crate) evidence: String,
    pub(crate) reason: String,
    pub(crate) decided_by: String,
    pub(crate) peer_group: String,
    pub(crate) peers: usize,
    pub(crate) volume: Vec<VolumeDay>,
}

/// An incident in the list.
pub(crate) struct IncidentListRow {
    pub(crate) id: String,
    pub(crate) title: String,
    pub(crate) opened: String,
    pub(crate) agents: String,
}

#[derive(Template)]
#[template(path = "console/incidents.html")]
pub(crate) struct IncidentList {
    pub(crate) page: Page,
    pub(crate) incidents: Vec<IncidentListRow>,
}

/// An event of an incident's timeline.
pub(crate) struct TimelineRow {
    pub(crate) time: String,
    pub(crate) what: String,
    pub(crate) entry: String,
}

/// One day of the scope's chart: customers shown for the first time that day.
pub(crate) struct DayBar {
    pub(crate) day: String,
    pub(crate) new_customers: u64,
    pub(crate) accesses: u64,
    pub(crate) x: u32,
    pub(crate) y: u32,
    pub(crate) height: u32,
}

/// An affected customer: identifiers and field names, never a value.
pub(crate) struct AffectedRow {
    pub(crate) customer: String,
    pub(crate) revealed: String,
    pub(crate) masked_only: String,
    pub(crate) agents: String,
    pub(crate) first: String,
}

/// What a scope found, as the page shows it.
pub(crate) struct ScopeFigures {
    pub(crate) customers: usize,
    pub(crate) accesses: u64,
    pub(crate) high_balance: u64,
    pub(crate) share: String,
    pub(crate) days: Vec<DayBar>,
    pub(crate) chart_width: u32,
    pub(crate) affected: Vec<AffectedRow>,
    /// Affected customers beyond those listed (in the CSV).
    pub(crate) more: usize,
}

/// An agent's line of an attribution.
pub(crate) struct AttributionRow {
    pub(crate) agent: String,
    pub(crate) explained: usize,
    pub(crate) as_shown: u64,
    pub(crate) chance: String,
    pub(crate) blamed: bool,
}

/// How an incident's protection and notices stand.
pub(crate) struct ProtectionPanel {
    /// Each protective action recorded, and for how many customers.
    pub(crate) recorded: Vec<(String, u64)>,
    pub(crate) queued: u64,
    pub(crate) delivered: u64,
    pub(crate) last_error: Option<String>,
    pub(crate) notices_written: Option<u64>,
    pub(crate) contact_set: bool,
    pub(crate) webhook_set: bool,
}

#[derive(Template)]
#[template(path = "console/incident.html")]
pub(crate) struct IncidentPage {
    pub(crate) page: Page,
    pub(crate) id: String,
    pub(crate) title: String,
    pub(crate) agents: String,
    pub(crate) window: String,
    pub(crate) timeline: Vec<TimelineRow>,
    pub(crate) scope: Option<ScopeFigures>,
    pub(crate) attribution: Vec<AttributionRow>,
    pub(crate) verdict: Option<String>,
    /// What the last protect or notify step did.
    pub(crate) step: Option<String>,
    pub(crate) protection: ProtectionPanel,
}

/// An access in the customer's own view, in words.
pub(crate) struct AccessRow {
    pub(crate) index: u64,
    pub(crate) time: String,
    pub(crate) who: String,
    pub(crate) what: String,
    pub(crate) why: String,
    pub(crate) allowed: bool,
    /// Why there is no receipt for this access, if there is none.
    pub(crate) receipt_withheld: Option<String>,
}

#[derive(Template)]
#[template(path = "console/customer.html")]
pub(crate) struct CustomerPage {
    pub(crate) page: Page,
    pub(crate) customer: String,
    pub(crate) rows: Vec<AccessRow>,
    /// The ledger index the next, older page starts below.
    pub(crate) older: Option<u64>,
    pub(crate) newest_page: bool,
    /// The log's verifier key, which the page's script checks checkpoints with.
    pub(crate) verifier_key: String,
}
