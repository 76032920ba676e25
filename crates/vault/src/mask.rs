//! Masked forms, exactly as the field catalogue gives them. This is the only place masking
//! is implemented; every view that shows a customer field unrevealed calls `mask`.
//!
//! Each rule shows a fixed part of the value and nothing else, not even its length: a masked
//! form is a function of the allowed part alone, which the property tests check by changing
//! every other character and expecting the same masked form.

use std::net::IpAddr;

use serde_json::Value;

use crate::catalogue::Field;
use crate::date::Date;

/// What a masked view shows when a stored value does not have the shape its field expects.
pub const UNREADABLE: &str = "[unreadable]";

/// The masked form of `value` for `field`, as of `today` (for ages).
pub fn mask(field: Field, value: &Value, today: Date) -> String {
    let masked = match field {
        Field::FullName => value.as_str().map(mask_name),
        Field::DateOfBirth => value.as_str().and_then(Date::parse).map(|born| age_band(born, today)),
        Field::PostalAddress => mask_address(value),
        Field::Email => value.as_str().and_then(mask_email),
        Field::Phone => value.as_str().and_then(mask_phone),
        Field::GovernmentIdNumber | Field::TaxId | Field::BankAccount => value.as_str().map(last_four),
        Field::IdDocumentImage => value.as_str().map(|_| "document on file".to_string()),
        Field::BalanceUsd => value.as_f64().and_then(BalanceBand::of).map(|band| band.label().to_string()),
        Field::WalletAddresses => mask_wallets(value),
        Field::TransactionHistory => mask_transactions(value),
        Field::TwoFactorMethod => two_factor_type(value).map(str::to_string),
        Field::LastLoginIp => value.as_str().and_then(mask_ip),
    };
    masked.unwrap_or_else(|| UNREADABLE.to_string())
}

/// The balance bands of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum BalanceBand {
    UnderOneThousand,
    OneThousandToTenThousand,
    TenThousandToOneHundredThousand,
    OneHundredThousandToOneMillion,
    OverOneMillion,
}

impl BalanceBand {
    pub fn of(balance_usd: f64) -> Option<BalanceBand> {
        if !balance_usd.is_finite() || balance_usd < 0.0 {
            return None;
        }
        Some(match balance_usd {
            value if value < 1_000.0 => BalanceBand::UnderOneThousand,
            value if value < 10_000.0 => BalanceBand::OneThousandToTenThousand,
            value if value < 100_000.0 => BalanceBand::TenThousandToOneHundredThousand,
            value if value <= 1_000_000.0 => BalanceBand::OneHundredThousandToOneMillion,
            _ => BalanceBand::OverOneMillion,
        })
    }

    pub fn label(self) -> &'static str {
        match self {
            BalanceBand::UnderOneThousand => "<1k",
            BalanceBand::OneThousandToTenThousand => "1k–10k",
            BalanceBand::TenThousandToOneHundredThousand => "10k–100k",
            BalanceBand::OneHundredThousandToOneMillion => "100k–1M",
            BalanceBand::OverOneMillion => ">1M",
        }
    }
}

/// `Ada King Lovelace` → `A*** K*** L***`.
fn mask_name(name: &str) -> String {
    name.split_whitespace()
        .filter_map(|word| word.chars().next())
        .map(|initial| format!("{initial}***"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The decade of the age: `30–39`.
fn age_band(born: Date, today: Date) -> String {
    let age = born.years_until(today);
    if age < 0 {
        return UNREADABLE.to_string();
    }
    let low = age / 10 * 10;
    format!("{low}–{}", low + 9)
}

/// City and country only.
fn mask_address(value: &Value) -> Option<String> {
    let city = value.get("city")?.as_str()?;
    let country = value.get("country")?.as_str()?;
    Some(format!("{city}, {country}"))
}

/// `john@gmail.com` → `j***n@g****.com`: the first and last character of the local part,
/// the first of the domain, and the top-level domain.
pub(crate) fn mask_email(email: &str) -> Option<String> {
    let (local, domain) = email.rsplit_once('@')?;
    let first = local.chars().next()?;
    let last = local.chars().last().filter(|_| local.chars().count() > 1);
    let (host, top_level) = domain.rsplit_once('.')?;
    let domain_initial = host.chars().next()?;
    let last = last.map(String::from).unwrap_or_default();
    Some(format!("{first}***{last}@{domain_initial}****.{top_level}"))
}

/// `+44 20 7946 0958` → `+44 ****58`: the country calling code and the last two digits.
pub(crate) fn mask_phone(phone: &str) -> Option<String> {
    let digits = crate::normalize::phone_digits(phone)?;
    let code_length = calling_code_length(&digits);
    let code = digits.get(..code_length)?;
    let last_two = digits.get(digits.len().checked_sub(2)?..)?;
    Some(format!("+{code} ****{last_two}"))
}

/// Length of the ITU-T E.164 country calling code at the start of `digits`.
fn calling_code_length(digits: &str) -> usize {
    const TWO_DIGIT_CODES: &[&str] = &[
        "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46", "47", "48", "49",
        "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63", "64", "65", "66", "81", "82", "84",
        "86", "90", "91", "92", "93", "94", "95", "98",
    ];
    match digits.get(..1) {
        Some("1") | Some("7") => 1,
        _ if digits.get(..2).is_some_and(|prefix| TWO_DIGIT_CODES.contains(&prefix)) => 2,
        _ => 3,
    }
}

/// `****1234`: the last four characters, with a fixed-width prefix that hides the length.
fn last_four(value: &str) -> String {
    let characters: Vec<char> = value.chars().collect();
    if characters.len() <= 4 {
        return "****".to_string();
    }
    let tail: String = characters.get(characters.len() - 4..).map(|tail| tail.iter().collect()).unwrap_or_default();
    format!("****{tail}")
}

/// Each address as its first six and last four characters.
fn mask_wallets(value: &Value) -> Option<String> {
    let addresses = value.as_array()?;
    let masked: Option<Vec<String>> = addresses
        .iter()
        .map(|address| {
            let characters: Vec<char> = address.as_str()?.chars().collect();
            if characters.len() < 14 {
                return Some("******…****".to_string());
            }
            let head: String = characters.get(..6)?.iter().collect();
            let tail: String = characters.get(characters.len() - 4..)?.iter().collect();
            Some(format!("{head}…{tail}"))
        })
        .collect();
    Some(masked?.join(", "))
}

/// The count of transactions and the date of the latest.
fn mask_transactions(value: &Value) -> Option<String> {
    let transactions = value.as_array()?;
    let latest =
        transactions.iter().filter_map(|transaction| transaction.get("date")?.as_str()).filter_map(Date::parse).max();
    Some(match latest {
        Some(latest) => format!("{} transactions, latest {latest}", transactions.len()),
        None => format!("{} transactions", transactions.len()),
    })
}

/// The method type only: `totp`, `sms`, `u2f`, ...
pub(crate) fn two_factor_type(value: &Value) -> Option<&str> {
    match value {
        Value::String(method) => Some(method.as_str()),
        Value::Object(fields) => fields.get("type")?.as_str(),
        _ => None,
    }
}

/// The first two octets of an IPv4 address, or the first two groups of an IPv6 one.
fn mask_ip(text: &str) -> Option<String> {
    match text.trim().parse::<IpAddr>().ok()? {
        IpAddr::V4(address) => {
            let [first, second, ..] = address.octets();
            Some(format!("{first}.{second}.*.*"))
        }
        IpAddr::V6(address) => {
            let [first, second, ..] = address.segments();
            Some(format!("{first:x}:{second:x}:*"))
        }
    }
}
