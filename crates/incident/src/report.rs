//! The regulator report: what GDPR Article 33(3) asks a controller to tell its supervisory
//! authority, the 72-hour clock of Article 33(1), and a public disclosure summary, in
//! Markdown and HTML from the same facts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::scope::Scope;
use crate::time::iso_time;
use crate::words::{class_consequence, class_words, escape_html, field_words};

/// Article 33(1): notify without undue delay and, where feasible, within 72 hours of awareness.
pub const NOTIFICATION_HOURS: i64 = 72;

/// Everything the report states.
#[derive(Debug, Clone)]
pub struct ReportFacts<'a> {
    pub exchange: &'a str,
    /// The data protection officer; `None` makes the report a draft, marked as one.
    pub contact: Option<&'a str>,
    pub incident: &'a str,
    pub title: &'a str,
    pub aware_at_ms: i64,
    pub now_ms: i64,
    pub suspects: &'a [String],
    /// Suspects whose access is now suspended or offboarded.
    pub suspects_stopped: &'a [String],
    /// The public statements an analyst set (extortion_demand, negotiations,
    /// trading_operations, investigation), empty when nobody did: only set ones are printed.
    pub status: [(&'a str, &'a str); 4],
    pub scope: &'a Scope,
    /// Protective action name and how many customers have it recorded.
    pub protective_actions: &'a [(String, u64)],
    /// Protective action name and how many customers it is proposed for, by what was shown
    /// of them (before any is recorded).
    pub proposed_actions: &'a [(String, u64)],
    /// How the recorded actions' messages stand with the exchange's systems.
    pub deliveries: Deliveries<'a>,
    pub notices_written: u64,
    /// Affected customers shown nothing but initials: no action, no notice.
    pub initials_only: u64,
    /// Ledger entries in the evidence handed over, if a bundle was made.
    pub evidence_entries: Option<u64>,
}

/// The outbox's word on the protective actions' messages.
#[derive(Debug, Clone, Copy, Default)]
pub struct Deliveries<'a> {
    pub queued: u64,
    pub delivered: u64,
    /// Whether a webhook for protective actions is configured at all.
    pub webhook_set: bool,
    pub last_error: Option<&'a str>,
}

/// The report as a list of sections (heading, paragraphs, and optional table), so Markdown and
/// HTML say exactly the same.
struct Section {
    heading: String,
    paragraphs: Vec<String>,
    table: Option<(Vec<String>, Vec<Vec<String>>)>,
}

fn clock(facts: &ReportFacts<'_>) -> String {
    let deadline = facts.aware_at_ms + NOTIFICATION_HOURS * 3_600_000;
    let left_minutes = (deadline - facts.now_ms) / 60_000;
    let state = if left_minutes >= 0 {
        format!("{} h {:02} min remain", left_minutes / 60, left_minutes % 60)
    } else {
        let over = -left_minutes;
        format!(
            "overdue by {} h {:02} min: Article 33(1) requires the reasons for the delay to accompany this notification",
            over / 60,
            over % 60
        )
    };
    format!(
        "Aware since {}; the 72-hour deadline is {}; at the time of this report ({}) {state}.",
        iso_time(facts.aware_at_ms),
        iso_time(deadline),
        iso_time(facts.now_ms)
    )
}

fn sections(facts: &ReportFacts<'_>) -> Vec<Section> {
    let scope = facts.scope;
    let records_revealed: u64 = scope.by_field.values().map(|count| count.revealed).sum();
    let records_masked: u64 = scope.by_field.values().map(|count| count.masked_only).sum();
    let window = match (scope.first_ms, scope.last_ms) {
        (Some(first), Some(last)) => format!("between {} and {}", iso_time(first), iso_time(last)),
        _ => "at no time found in the audit log".to_string(),
    };
    let suspects = if facts.suspects.is_empty() { "all support agents".to_string() } else { facts.suspects.join(", ") };
    let mut classes: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for (class, count) in &scope.by_class {
        classes.insert(class_words(*class), (count.revealed, count.masked_only));
    }
    let class_rows: Vec<Vec<String>> = scope
        .by_class
        .iter()
        .map(|(class, count)| {
            let fields: Vec<&str> = scope
                .by_field
                .keys()
                .filter(|field| field.class() == *class)
                .map(|field| field_words(*field))
                .collect();
            vec![
                class_words(*class).to_string(),
                fields.join(", "),
                count.revealed.to_string(),
                count.masked_only.to_string(),
            ]
        })
        .collect();
    let consequences: Vec<String> =
        scope.by_class.keys().map(|class| format!("{}: {}.", class_words(*class), class_consequence(*class))).collect();
    let mut measures = vec![format!(
        "Access contained: of the suspects ({suspects}), {} no longer have access ({}).",
        facts.suspects_stopped.len(),
        if facts.suspects_stopped.is_empty() { "none yet".to_string() } else { facts.suspects_stopped.join(", ") }
    )];
    for (action, customers) in facts.protective_actions {
        measures.push(format!("Protective action `{action}` recorded for {customers} customers."));
    }
    if !facts.protective_actions.is_empty() {
        measures.push(delivery_words(&facts.deliveries));
    } else if facts.proposed_actions.is_empty() {
        measures.push("No protective action is proposed: no affected customer was shown more than initials.".into());
    } else {
        let proposed: Vec<String> = facts
            .proposed_actions
            .iter()
            .map(|(action, customers)| format!("`{action}` for {customers} customers"))
            .collect();
        measures.push(format!(
            "Proposed and not yet applied: {} (a withdrawal hold where data was shown in full; a step-up check and a scam warning where it was shown masked).",
            proposed.join(", ")
        ));
    }
    let notified = scope.customers.len() as u64 - facts.initials_only;
    measures.push(if facts.notices_written > 0 {
        format!("Notices prepared for {} affected customers, naming the data of theirs that was seen and how to recognise impersonation scams.", facts.notices_written)
    } else {
        format!("Notices to {notified} affected customers are proposed and not yet prepared.")
    });
    if facts.initials_only > 0 {
        measures.push(format!(
            "{} customers were shown only as initials in a search result: no action is taken for them and no notice is proposed.",
            facts.initials_only
        ));
    }
    if let Some(entries) = facts.evidence_entries {
        measures.push(format!("An evidence bundle of {entries} audit-log entries with inclusion proofs has been prepared for law enforcement."));
    }
    if !facts.status[3].1.is_empty() {
        measures.push(format!("Investigation: {}.", facts.status[3].1));
    }
    vec![
        Section {
            heading: "72-hour notification clock (Article 33(1))".into(),
            paragraphs: vec![clock(facts)],
            table: None,
        },
        Section {
            heading: "Nature of the breach (Article 33(3)(a))".into(),
            paragraphs: vec![
                format!(
                    "Unauthorised viewing of customer records by support staff with legitimate access to the support tools ({}). Every access was recorded in cordon's tamper-evident audit log before any data left, which is where these figures come from: suspects {suspects}, {window}.",
                    facts.title
                ),
                format!(
                    "Data subjects concerned: {} customers ({:.3}% of {} customers), {} of them with balances of $100,000 or more.",
                    scope.customers.len(),
                    scope.share() * 100.0,
                    scope.base_customers,
                    scope.high_balance
                ),
                format!(
                    "Personal data records concerned: {} field values shown in full and {} shown only in masked form (partly hidden), over {} recorded accesses.",
                    records_revealed, records_masked, scope.accesses
                ),
            ],
            table: Some((
                vec![
                    "category".into(),
                    "fields".into(),
                    "customers, shown in full".into(),
                    "customers, masked only".into(),
                ],
                class_rows,
            )),
        },
        Section {
            heading: "Contact point (Article 33(3)(b))".into(),
            paragraphs: vec![match facts.contact {
                Some(contact) => format!("{} — {contact}", facts.exchange),
                None => "NOT SET: no data protection officer is configured ([incident] contact in cordon.toml). This report is a draft until one is.".into(),
            }],
            table: None,
        },
        Section {
            heading: "Likely consequences (Article 33(3)(c))".into(),
            paragraphs: if consequences.is_empty() { vec!["No customer data was shown.".into()] } else { consequences },
            table: None,
        },
        Section { heading: "Measures taken and proposed (Article 33(3)(d))".into(), paragraphs: measures, table: None },
        Section {
            heading: "Public disclosure summary".into(),
            paragraphs: Vec::new(),
            table: Some((
                vec!["".into(), "".into()],
                vec![
                    vec![
                        "Customers affected".into(),
                        format!("{} ({:.3}% of customers)", scope.customers.len(), scope.share() * 100.0),
                    ],
                    vec!["Data seen".into(), classes.keys().copied().collect::<Vec<_>>().join(", ")],
                    vec!["Passwords, keys or funds accessed".into(), "no: support tools give no access to them".into()],
                ]
                .into_iter()
                .chain(public_statements(facts))
                .collect(),
            )),
        },
    ]
}

/// The public statements an analyst set, in the order of the disclosure record; a statement
/// nobody made is left out, never filled in.
fn public_statements(facts: &ReportFacts<'_>) -> Vec<Vec<String>> {
    facts
        .status
        .iter()
        .filter(|(_, value)| !value.trim().is_empty())
        .map(|(name, value)| {
            let label = match *name {
                "extortion_demand" => "Extortion demand",
                "negotiations" => "Negotiations",
                "trading_operations" => "Trading operations",
                "investigation" => "Investigation",
                other => other,
            };
            vec![label.to_string(), value.to_string()]
        })
        .collect()
}

/// Where the recorded actions stand with the exchange's systems, from the outbox.
fn delivery_words(deliveries: &Deliveries<'_>) -> String {
    let waiting = deliveries.queued.saturating_sub(deliveries.delivered);
    if !deliveries.webhook_set {
        return format!(
            "None of the {} messages for the exchange's account systems has been delivered: no webhook for protective actions is configured, so they wait in cordon's outbox and the actions are not yet in force there.",
            deliveries.queued
        );
    }
    if waiting == 0 {
        return format!("All {} messages were delivered to the exchange's account systems.", deliveries.queued);
    }
    format!(
        "{} of {} messages were delivered to the exchange's account systems; {waiting} wait in cordon's outbox{}.",
        deliveries.delivered,
        deliveries.queued,
        deliveries.last_error.map(|error| format!(" (last error: {error})")).unwrap_or_default()
    )
}

/// The report in Markdown.
pub fn report_markdown(facts: &ReportFacts<'_>) -> String {
    let mut out = format!(
        "# {}Personal data breach notification: {}\n\nController: {}. Incident {}. Prepared {}.\n",
        if facts.contact.is_none() { "DRAFT (no contact point set): " } else { "" },
        facts.title,
        facts.exchange,
        facts.incident,
        iso_time(facts.now_ms)
    );
    let cell = |text: &str| text.replace('|', "\\|").replace('\n', " ");
    for section in sections(facts) {
        let _ = write!(out, "\n## {}\n\n", section.heading);
        for paragraph in &section.paragraphs {
            let _ = write!(out, "{paragraph}\n\n");
        }
        if let Some((header, rows)) = &section.table {
            let _ = writeln!(out, "| {} |", header.iter().map(|text| cell(text)).collect::<Vec<_>>().join(" | "));
            let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
            for row in rows {
                let _ = writeln!(out, "| {} |", row.iter().map(|text| cell(text)).collect::<Vec<_>>().join(" | "));
            }
        }
    }
    out
}

/// The same report as a standalone HTML page.
pub fn report_html(facts: &ReportFacts<'_>) -> String {
    let mut out = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Breach notification: {title}</title>\n<style>\nbody {{ font-family: system-ui, sans-serif; max-width: 50rem; margin: 2rem auto; line-height: 1.5; }}\ntable {{ border-collapse: collapse; }}\ntd, th {{ border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; }}\n</style>\n</head>\n<body>\n<h1>{draft}Personal data breach notification: {title}</h1>\n<p>Controller: {exchange}. Incident {incident}. Prepared {now}.</p>\n",
        title = escape_html(facts.title),
        draft = if facts.contact.is_none() { "DRAFT (no contact point set): " } else { "" },
        exchange = escape_html(facts.exchange),
        incident = escape_html(facts.incident),
        now = iso_time(facts.now_ms)
    );
    for section in sections(facts) {
        let _ = writeln!(out, "<h2>{}</h2>", escape_html(&section.heading));
        for paragraph in &section.paragraphs {
            let _ = writeln!(out, "<p>{}</p>", escape_html(paragraph));
        }
        if let Some((header, rows)) = &section.table {
            out.push_str("<table>\n");
            if header.iter().any(|text| !text.is_empty()) {
                let cells: String = header.iter().map(|text| format!("<th>{}</th>", escape_html(text))).collect();
                let _ = writeln!(out, "<tr>{cells}</tr>");
            }
            for row in rows {
                let cells: String = row.iter().map(|text| format!("<td>{}</td>", escape_html(text))).collect();
                let _ = writeln!(out, "<tr>{cells}</tr>");
            }
            out.push_str("</table>\n");
        }
    }
    out.push_str("</body>\n</html>\n");
    out
}
