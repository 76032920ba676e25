//! Customer notices: one per affected customer, naming exactly the categories and fields of
//! its data that were seen, shown in full or partly hidden, and when, what the exchange did
//! for its account, and how to recognise the impersonation scams that follow such leaks.
//! Notices carry the account id, never the customer's name or contact details: the
//! exchange's mailer addresses them, so no plaintext customer data is written with them.

use std::collections::{BTreeMap, BTreeSet};

use cordon_vault::{Field, FieldClass};

use crate::scope::CustomerScope;
use crate::time::day_of;
use crate::words::{class_words, escape_html, field_words, fill};

/// The repository's default templates (`templates/notice.txt`, `templates/notice.html`).
pub const NOTICE_TEXT_TEMPLATE: &str = include_str!("../../../templates/notice.txt");
pub const NOTICE_HTML_TEMPLATE: &str = include_str!("../../../templates/notice.html");

/// What every notice of an incident shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeContext {
    pub exchange: String,
    pub incident: String,
    pub contact: String,
}

/// What the exchange knows of the accesses behind one customer's notice; each picks the
/// wording of a statement, so a notice says only what is so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoticeFacts {
    /// Every access that showed this customer's data came with a support request of the
    /// customer's own, assigned to the agent who made it.
    pub requested_by_customer: bool,
    /// Every agent who was shown this customer's data, among the suspects, no longer has
    /// access (suspended or offboarded).
    pub access_stopped: bool,
}

impl NoticeFacts {
    fn what_happened(self) -> &'static str {
        if self.requested_by_customer {
            "a member of our support staff whose access we are investigating viewed information from your account while handling a support request of yours."
        } else {
            "one or more members of our support staff viewed information from your account without a support request of yours that called for it."
        }
    }

    fn staff_access(self) -> &'static str {
        if self.access_stopped { "We have stopped their access." } else { "Their access is under review." }
    }
}

/// One customer's notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub customer: String,
    pub text: String,
    pub html: String,
    /// The fields the notice names.
    pub fields: BTreeSet<Field>,
}

/// The notice for `customer`, with `actions` (what the exchange did for this account, in
/// words), the `facts` its statements rest on and the given templates.
pub fn notice(
    customer: &CustomerScope,
    actions: &[String],
    facts: NoticeFacts,
    context: &NoticeContext,
    templates: (&str, &str),
) -> Result<Notice, String> {
    let mut by_class: BTreeMap<FieldClass, (Vec<Field>, Vec<Field>)> = BTreeMap::new();
    for field in &customer.revealed {
        by_class.entry(field.class()).or_default().0.push(*field);
    }
    for field in &customer.masked_only {
        by_class.entry(field.class()).or_default().1.push(*field);
    }
    let words = |fields: &[Field]| fields.iter().map(|field| field_words(*field)).collect::<Vec<_>>().join(", ");
    let lines: Vec<String> = by_class
        .iter()
        .map(|(class, (revealed, masked))| {
            let mut parts = Vec::new();
            if !revealed.is_empty() {
                parts.push(format!("shown in full: {}", words(revealed)));
            }
            if !masked.is_empty() {
                parts.push(format!("shown partly hidden: {}", words(masked)));
            }
            format!("{} ({})", capitalized(class_words(*class)), parts.join("; "))
        })
        .collect();
    let actions: Vec<String> = if actions.is_empty() {
        vec!["We are reviewing your account and will contact you through the app if we need anything.".into()]
    } else {
        actions.to_vec()
    };
    let list_text = |items: &[String]| items.iter().map(|item| format!("- {item}")).collect::<Vec<_>>().join("\n");
    let list_html = |items: &[String]| {
        items.iter().map(|item| format!("<li>{}</li>", escape_html(item))).collect::<Vec<_>>().join("\n")
    };
    let first_seen = day_of(customer.first_ms);
    let last_seen = day_of(customer.last_ms);
    let common = |escape: &dyn Fn(&str) -> String| {
        vec![
            ("customer", escape(&customer.customer)),
            ("exchange", escape(&context.exchange)),
            ("incident", escape(&context.incident)),
            ("contact", escape(&context.contact)),
            ("first_seen", first_seen.clone()),
            ("last_seen", last_seen.clone()),
            ("what_happened", escape(facts.what_happened())),
            ("staff_access", escape(facts.staff_access())),
        ]
    };
    let mut text_values = common(&|text: &str| text.to_string());
    text_values.push(("exposure", list_text(&lines)));
    text_values.push(("actions", list_text(&actions)));
    let mut html_values = common(&escape_html);
    html_values.push(("exposure", list_html(&lines)));
    html_values.push(("actions", list_html(&actions)));
    Ok(Notice {
        customer: customer.customer.clone(),
        text: fill(templates.0, &text_values).map_err(|error| format!("the text template: {error}"))?,
        html: fill(templates.1, &html_values).map_err(|error| format!("the HTML template: {error}"))?,
        fields: customer.revealed.iter().chain(&customer.masked_only).copied().collect(),
    })
}

pub(crate) fn capitalized(text: &str) -> String {
    let mut characters = text.chars();
    characters.next().map(|first| first.to_uppercase().chain(characters).collect()).unwrap_or_default()
}

/// The field names a notice's text mentions, read back from it: what the tests check against
/// the customer's scope.
pub fn fields_named(text: &str) -> BTreeSet<Field> {
    // Longest names first, so "ID document image" is not also read as a shorter name.
    let mut fields: Vec<Field> = Field::ALL.to_vec();
    fields.sort_by_key(|field| std::cmp::Reverse(field_words(*field).len()));
    let exposure = text.split("What we have done").next().unwrap_or_default();
    let mut rest = exposure.to_string();
    let mut found = BTreeSet::new();
    for field in fields {
        let name = field_words(field);
        if rest.contains(name) {
            found.insert(field);
            rest = rest.replace(name, "");
        }
    }
    found
}
