//! Normalisation of searchable values, so that `Ada@Example.com ` and `ada@example.com` find
//! the same customer, and shape checks for every field's value.

use std::net::IpAddr;

use serde_json::Value;

use crate::catalogue::{Field, SearchKey};
use crate::date::Date;
use crate::mask::two_factor_type;

/// The canonical form of a search value; `None` if it cannot be one of its kind.
pub fn normalize(key: SearchKey, value: &str) -> Option<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return None;
    }
    match key {
        SearchKey::Email => trimmed.contains('@').then(|| trimmed.to_lowercase()),
        SearchKey::Phone => phone_digits(trimmed).map(|digits| format!("+{digits}")),
        SearchKey::AccountId => Some(trimmed.to_string()),
        SearchKey::Wallet => {
            // Bech32 and hex addresses are case-insensitive; base58 ones are not.
            let lower = trimmed.to_lowercase();
            if lower.starts_with("0x") || lower.starts_with("bc1") || lower.starts_with("ltc1") {
                Some(lower)
            } else {
                Some(trimmed.to_string())
            }
        }
        SearchKey::FullName => Some(trimmed.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()),
        SearchKey::MaskedName => masked_name(trimmed),
        SearchKey::MaskedEmail => masked_email(trimmed),
        SearchKey::MaskedPhone => masked_phone(trimmed),
        SearchKey::MaskedWallet => masked_wallet(trimmed),
    }
}

/// Whether a value copied from a leaked sample is a masked rendering rather than a value.
pub fn looks_masked(value: &str) -> bool {
    value.contains('*') || value.contains('…') || value.contains("...")
}

// The masked kinds normalise a plain value and its masked rendering to the same canonical
// form: what the mask keeps (initials; the ends of an email; a phone's calling code and last
// two digits; a wallet's first six and last four characters), whatever the screen's stars.

/// `J*** D***` and `John Doe` → `J D`.
fn masked_name(text: &str) -> Option<String> {
    let initials: Vec<String> = text
        .split_whitespace()
        .filter_map(|word| word.chars().next())
        .filter(|initial| *initial != '*')
        .map(|initial| initial.to_uppercase().collect())
        .collect();
    (!initials.is_empty()).then(|| initials.join(" "))
}

/// `j***n@g****.com` and `john@gmail.com` → `j n g com`; a one-character local part keeps
/// no last character, as its mask does.
fn masked_email(text: &str) -> Option<String> {
    let text = text.to_lowercase();
    let rendering = if looks_masked(&text) { text } else { crate::mask::mask_email(&text)? };
    let (local, domain) = rendering.rsplit_once('@')?;
    let mut ends = local.chars().filter(|character| *character != '*');
    let first = ends.next()?;
    let last = ends.next_back();
    let (host, top_level) = domain.rsplit_once('.')?;
    let host_initial = host.chars().find(|character| *character != '*')?;
    if top_level.is_empty() || top_level.contains('*') {
        return None;
    }
    let last = last.map(String::from).unwrap_or_else(|| "-".into());
    Some(format!("{first} {last} {host_initial} {top_level}"))
}

/// `+44 ****58` and `+44 20 7946 0958` → `+44 58`.
fn masked_phone(text: &str) -> Option<String> {
    let rendering = if looks_masked(text) { text.to_string() } else { crate::mask::mask_phone(text)? };
    let (code, rest) = rendering.trim().strip_prefix('+')?.split_once([' ', '*'])?;
    let last_two: String = rest.chars().filter(char::is_ascii_digit).collect();
    let code_ok = !code.is_empty() && code.chars().all(|c| c.is_ascii_digit());
    (code_ok && last_two.len() == 2).then(|| format!("+{code} {last_two}"))
}

/// `bc1qxy…x0wl`, `bc1qxy...x0wl` and the whole address → `bc1qxy x0wl` (lowercase: a
/// photographed screen does not keep case reliably).
fn masked_wallet(text: &str) -> Option<String> {
    let text = text.to_lowercase();
    let (head, tail) = if let Some((head, tail)) = text.split_once('…').or_else(|| text.split_once("...")) {
        (head.trim().to_string(), tail.trim().to_string())
    } else {
        let characters: Vec<char> = text.chars().collect();
        if characters.len() < 14 {
            return None;
        }
        (characters.iter().take(6).collect(), characters.iter().skip(characters.len() - 4).collect())
    };
    (head.chars().count() == 6 && tail.chars().count() == 4).then(|| format!("{head} {tail}"))
}

/// The digits of an international phone number written with `+`, spaces, dashes, dots or
/// parentheses; `None` unless it is 8 to 15 digits (E.164).
pub fn phone_digits(phone: &str) -> Option<String> {
    let rest = phone.trim().strip_prefix('+')?;
    let mut digits = String::with_capacity(rest.len());
    for character in rest.chars() {
        match character {
            '0'..='9' => digits.push(character),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return None,
        }
    }
    (8..=15).contains(&digits.len()).then_some(digits)
}

/// Checks that `value` has the shape `field` expects; the error says what is wrong without
/// repeating the value.
pub fn check_shape(field: Field, value: &Value) -> Result<(), &'static str> {
    let non_empty_string = |value: &Value| value.as_str().is_some_and(|text| !text.trim().is_empty());
    let ok = match field {
        Field::FullName | Field::GovernmentIdNumber | Field::IdDocumentImage | Field::TaxId | Field::BankAccount => {
            non_empty_string(value)
        }
        Field::DateOfBirth => value.as_str().and_then(Date::parse).is_some(),
        Field::PostalAddress => {
            value.get("city").is_some_and(non_empty_string) && value.get("country").is_some_and(non_empty_string)
        }
        Field::Email => value.as_str().and_then(|email| normalize(SearchKey::Email, email)).is_some_and(|email| {
            email.rsplit_once('@').is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        }),
        Field::Phone => value.as_str().and_then(phone_digits).is_some(),
        Field::BalanceUsd => value.as_f64().is_some_and(|balance| balance.is_finite() && balance >= 0.0),
        Field::WalletAddresses => value.as_array().is_some_and(|addresses| addresses.iter().all(non_empty_string)),
        Field::TransactionHistory => value.as_array().is_some_and(|transactions| {
            transactions
                .iter()
                .all(|transaction| transaction.get("date").and_then(Value::as_str).and_then(Date::parse).is_some())
        }),
        Field::TwoFactorMethod => two_factor_type(value).is_some_and(|method| !method.is_empty()),
        Field::LastLoginIp => value.as_str().is_some_and(|ip| ip.trim().parse::<IpAddr>().is_ok()),
    };
    if ok { Ok(()) } else { Err(expected_shape(field)) }
}

fn expected_shape(field: Field) -> &'static str {
    match field {
        Field::FullName | Field::GovernmentIdNumber | Field::IdDocumentImage | Field::TaxId | Field::BankAccount => {
            "a non-empty string"
        }
        Field::DateOfBirth => "a date `YYYY-MM-DD`",
        Field::PostalAddress => "an object with `city` and `country`",
        Field::Email => "an email address",
        Field::Phone => "an international phone number starting with `+`",
        Field::BalanceUsd => "a non-negative number",
        Field::WalletAddresses => "an array of address strings",
        Field::TransactionHistory => "an array of objects with a `date` `YYYY-MM-DD`",
        Field::TwoFactorMethod => "a method name, or an object with `type`",
        Field::LastLoginIp => "an IPv4 or IPv6 address",
    }
}
