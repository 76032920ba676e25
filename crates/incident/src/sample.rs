//! Reading a leaked sample: a CSV or JSON file of whatever the extortionists sent as proof.
//!
//! Columns are recognised by their header (`account_id`, `email`, `phone`, `full_name`,
//! `wallet` and the usual spellings of each); other columns are listed and ignored. A cell
//! with stars or an ellipsis in it is a masked rendering copied off a screen and is matched
//! as one; any other cell is an exact value.

use cordon_vault::{SearchKey, looks_masked};
use serde_json::Value;

/// What a sample's column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Column {
    AccountId,
    Email,
    Phone,
    FullName,
    Wallet,
}

impl Column {
    pub const ALL: [Column; 5] = [Column::AccountId, Column::Email, Column::Phone, Column::FullName, Column::Wallet];

    pub fn name(self) -> &'static str {
        match self {
            Column::AccountId => "account_id",
            Column::Email => "email",
            Column::Phone => "phone",
            Column::FullName => "full_name",
            Column::Wallet => "wallet",
        }
    }

    /// The column a header names, if any: case, spaces, dashes and underscores do not matter.
    pub fn from_header(header: &str) -> Option<Column> {
        let key: String =
            header.trim().to_lowercase().chars().filter(|character| character.is_alphanumeric()).collect();
        match key.as_str() {
            "accountid" | "account" | "accountnumber" | "customerid" | "customer" | "id" | "uid" | "userid" => {
                Some(Column::AccountId)
            }
            "email" | "emailaddress" | "mail" => Some(Column::Email),
            "phone" | "phonenumber" | "mobile" | "telephone" | "tel" => Some(Column::Phone),
            "fullname" | "name" | "customername" => Some(Column::FullName),
            "wallet" | "walletaddress" | "walletaddresses" | "wallets" | "cryptoaddress" | "btcaddress"
            | "ethaddress" => Some(Column::Wallet),
            _ => None,
        }
    }

    /// The blind index a cell of this column is looked up in.
    pub fn index(self, masked: bool) -> Option<SearchKey> {
        Some(match (self, masked) {
            (Column::AccountId, false) => SearchKey::AccountId,
            (Column::Email, false) => SearchKey::Email,
            (Column::Phone, false) => SearchKey::Phone,
            (Column::FullName, false) => SearchKey::FullName,
            (Column::Wallet, false) => SearchKey::Wallet,
            (Column::Email, true) => SearchKey::MaskedEmail,
            (Column::Phone, true) => SearchKey::MaskedPhone,
            (Column::FullName, true) => SearchKey::MaskedName,
            (Column::Wallet, true) => SearchKey::MaskedWallet,
            // Screens show account ids whole; a masked one cannot be matched.
            (Column::AccountId, true) => return None,
        })
    }
}

/// One value of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleCell {
    pub column: Column,
    pub value: String,
    pub masked: bool,
}

/// One row (one customer, as the extortionists see it); `line` is its line in a CSV file or
/// its position (from 1) in a JSON array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleRow {
    pub line: usize,
    pub cells: Vec<SampleCell>,
}

/// A sample as read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sample {
    pub rows: Vec<SampleRow>,
    /// Headers that name nothing cordon can match.
    pub ignored_columns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SampleError {
    #[error("sample `{name}`: {problem}")]
    Unreadable { name: String, problem: String },
    #[error(
        "sample `{name}` has no column cordon can match (headers: {headers}); name one account_id, email, phone, full_name or wallet"
    )]
    NoColumns { name: String, headers: String },
    #[error("sample `{name}` has {rows} rows; at most {max} are read")]
    TooLarge { name: String, rows: usize, max: usize },
}

/// Rows beyond this are refused: a sample is proof, not a dump.
pub const SAMPLE_ROWS_MAX: usize = 100_000;

/// Reads a sample named `name` (for errors): JSON if it starts with `[` or `{`, else CSV.
pub fn read_sample(name: &str, text: &str) -> Result<Sample, SampleError> {
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    let sample = if trimmed.starts_with('[') || trimmed.starts_with('{') {
        read_json(name, trimmed)?
    } else {
        read_csv(name, trimmed)?
    };
    if sample.rows.len() > SAMPLE_ROWS_MAX {
        return Err(SampleError::TooLarge { name: name.into(), rows: sample.rows.len(), max: SAMPLE_ROWS_MAX });
    }
    Ok(sample)
}

fn cell(column: Column, value: &str) -> Option<SampleCell> {
    let value = value.trim();
    (!value.is_empty()).then(|| SampleCell { column, value: value.to_string(), masked: looks_masked(value) })
}

fn read_csv(name: &str, text: &str) -> Result<Sample, SampleError> {
    let records = parse_csv(text).map_err(|problem| SampleError::Unreadable { name: name.into(), problem })?;
    let mut records = records.into_iter();
    let Some((_, headers)) = records.next() else {
        return Err(SampleError::Unreadable { name: name.into(), problem: "the file is empty".into() });
    };
    let columns: Vec<Option<Column>> = headers.iter().map(|header| Column::from_header(header)).collect();
    if columns.iter().all(Option::is_none) {
        return Err(SampleError::NoColumns { name: name.into(), headers: headers.join(", ") });
    }
    let ignored_columns = headers
        .iter()
        .zip(&columns)
        .filter(|(header, column)| column.is_none() && !header.trim().is_empty())
        .map(|(header, _)| header.clone())
        .collect();
    let mut rows = Vec::new();
    for (line, record) in records {
        let cells: Vec<SampleCell> = record
            .iter()
            .zip(&columns)
            .filter_map(|(value, column)| column.and_then(|column| cell(column, value)))
            .collect();
        if !cells.is_empty() {
            rows.push(SampleRow { line, cells });
        }
    }
    Ok(Sample { rows, ignored_columns })
}

/// RFC 4180 records with the line each starts on: quoted fields may hold commas, quotes
/// (doubled) and line breaks. Semicolon- and tab-separated files are read too, by the
/// separator their header line uses most.
fn parse_csv(text: &str) -> Result<Vec<(usize, Vec<String>)>, String> {
    let header_line = text.lines().next().unwrap_or_default();
    let separator =
        [',', ';', '\t'].into_iter().max_by_key(|separator| header_line.matches(*separator).count()).unwrap_or(',');
    let mut records = Vec::new();
    let mut record: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut line = 1;
    let mut record_line = 1;
    let mut characters = text.chars().peekable();
    while let Some(character) = characters.next() {
        match (quoted, character) {
            (true, '"') if characters.peek() == Some(&'"') => {
                characters.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, other) => {
                if other == '\n' {
                    line += 1;
                }
                field.push(other);
            }
            (false, '"') if field.is_empty() => quoted = true,
            (false, other) if other == separator => record.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                if record.iter().any(|value| !value.trim().is_empty()) {
                    records.push((record_line, std::mem::take(&mut record)));
                } else {
                    record.clear();
                }
                line += 1;
                record_line = line;
            }
            (false, other) => field.push(other),
        }
    }
    if quoted {
        return Err(format!("line {record_line}: a quoted field is not closed"));
    }
    record.push(field);
    if record.iter().any(|value| !value.trim().is_empty()) {
        records.push((record_line, record));
    }
    Ok(records)
}

/// A JSON array of objects, or an object whose one array member holds them (`{"rows": [...]}`
/// and the like). Values may be strings, numbers or arrays of strings (several wallets).
fn read_json(name: &str, text: &str) -> Result<Sample, SampleError> {
    let unreadable = |problem: String| SampleError::Unreadable { name: name.into(), problem };
    let value: Value = serde_json::from_str(text).map_err(|error| unreadable(error.to_string()))?;
    let items = match &value {
        Value::Array(items) => items,
        Value::Object(members) => members
            .values()
            .find_map(Value::as_array)
            .ok_or_else(|| unreadable("the object holds no array of rows".into()))?,
        _ => return Err(unreadable("expected an array of objects".into())),
    };
    let mut rows = Vec::new();
    let mut ignored: Vec<String> = Vec::new();
    let mut headers: Vec<String> = Vec::new();
    for (position, item) in items.iter().enumerate() {
        let Some(object) = item.as_object() else {
            return Err(unreadable(format!("row {} is not an object", position + 1)));
        };
        let mut cells = Vec::new();
        for (key, value) in object {
            if !headers.contains(key) {
                headers.push(key.clone());
            }
            let Some(column) = Column::from_header(key) else {
                if !ignored.contains(key) {
                    ignored.push(key.clone());
                }
                continue;
            };
            match value {
                Value::String(text) => cells.extend(cell(column, text)),
                Value::Number(number) => cells.extend(cell(column, &number.to_string())),
                Value::Array(values) => {
                    cells.extend(values.iter().filter_map(Value::as_str).filter_map(|text| cell(column, text)))
                }
                _ => {}
            }
        }
        if !cells.is_empty() {
            rows.push(SampleRow { line: position + 1, cells });
        }
    }
    if rows.is_empty() && !items.is_empty() {
        return Err(SampleError::NoColumns { name: name.into(), headers: headers.join(", ") });
    }
    Ok(Sample { rows, ignored_columns: ignored })
}
