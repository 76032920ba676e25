//! How fields and classes are named to people (customers, regulators), not to programs.

use cordon_vault::{Field, FieldClass};

pub fn field_words(field: Field) -> &'static str {
    match field {
        Field::FullName => "full name",
        Field::DateOfBirth => "date of birth",
        Field::PostalAddress => "postal address",
        Field::Email => "email address",
        Field::Phone => "phone number",
        Field::GovernmentIdNumber => "government ID number",
        Field::IdDocumentImage => "ID document image",
        Field::TaxId => "tax ID",
        Field::BankAccount => "bank account number",
        Field::BalanceUsd => "account balance",
        Field::WalletAddresses => "wallet addresses",
        Field::TransactionHistory => "transaction history",
        Field::TwoFactorMethod => "two-factor method",
        Field::LastLoginIp => "last login IP address",
    }
}

pub fn class_words(class: FieldClass) -> &'static str {
    match class {
        FieldClass::Identity => "identity details",
        FieldClass::Contact => "contact details",
        FieldClass::GovernmentId => "government identity documents",
        FieldClass::Financial => "financial information",
        FieldClass::Security => "account security details",
    }
}

/// What exposure of a class makes likely, in the words of a breach report.
pub fn class_consequence(class: FieldClass) -> &'static str {
    match class {
        FieldClass::Identity => {
            "impersonation: callers posing as the exchange's support, quoting the customer's name, age or address to sound genuine"
        }
        FieldClass::Contact => {
            "targeted phishing and scam calls, emails and text messages to the exposed addresses and numbers"
        }
        FieldClass::GovernmentId => "identity fraud with the exposed identity numbers or document references",
        FieldClass::Financial => {
            "targeting by balance: customers with large holdings singled out for social-engineering and, in the worst case, physical threats"
        }
        FieldClass::Security => "account-takeover attempts informed by the two-factor method or login location",
    }
}

/// Escapes text for HTML.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// `{{name}}` placeholders filled from `values`; an unknown placeholder is an error naming it,
/// so a template typo cannot send a notice with a hole in it.
pub fn fill(template: &str, values: &[(&str, String)]) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 512);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(rest.get(..start).unwrap_or_default());
        let after = rest.get(start + 2..).unwrap_or_default();
        let end = after.find("}}").ok_or_else(|| "a `{{` placeholder is not closed".to_string())?;
        let name = after.get(..end).unwrap_or_default().trim();
        let value = values
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, value)| value.as_str())
            .ok_or_else(|| format!("unknown placeholder `{{{{{name}}}}}`"))?;
        out.push_str(value);
        rest = after.get(end + 2..).unwrap_or_default();
    }
    out.push_str(rest);
    Ok(out)
}
