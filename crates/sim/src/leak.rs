//! What extortionists send as proof: a sample of the customers an insider was shown, rendered
//! the way they would have them, exact values or masked renderings copied off the screen.
//! It exists to exercise `cordon incident attribute` (tests, the demo); the simulator makes
//! its customers from the seed, so nothing here reads the vault.

use cordon_vault::{Date, Field, mask};
use serde_json::Value;

use crate::engine::{Truth, TruthShown};
use crate::people::{People, customer_number};
use crate::rng::Rng;

/// One column of a leaked sample and how it is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeakColumn {
    AccountId,
    Email,
    Phone,
    FullName,
    Wallet,
    MaskedEmail,
    MaskedPhone,
    MaskedName,
    MaskedWallet,
}

impl LeakColumn {
    pub const ALL: [LeakColumn; 9] = [
        LeakColumn::AccountId,
        LeakColumn::Email,
        LeakColumn::Phone,
        LeakColumn::FullName,
        LeakColumn::Wallet,
        LeakColumn::MaskedEmail,
        LeakColumn::MaskedPhone,
        LeakColumn::MaskedName,
        LeakColumn::MaskedWallet,
    ];

    /// The header the column gets in the CSV.
    pub fn header(self) -> &'static str {
        match self {
            LeakColumn::AccountId => "account_id",
            LeakColumn::Email | LeakColumn::MaskedEmail => "email",
            LeakColumn::Phone | LeakColumn::MaskedPhone => "phone",
            LeakColumn::FullName | LeakColumn::MaskedName => "full_name",
            LeakColumn::Wallet | LeakColumn::MaskedWallet => "wallet",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            LeakColumn::AccountId => "account_id",
            LeakColumn::Email => "email",
            LeakColumn::Phone => "phone",
            LeakColumn::FullName => "full_name",
            LeakColumn::Wallet => "wallet",
            LeakColumn::MaskedEmail => "masked_email",
            LeakColumn::MaskedPhone => "masked_phone",
            LeakColumn::MaskedName => "masked_name",
            LeakColumn::MaskedWallet => "masked_wallet",
        }
    }

    /// The catalogue field the column shows, and whether masked; `None` for account ids,
    /// which every screen shows.
    fn field(self) -> Option<(&'static str, bool)> {
        Some(match self {
            LeakColumn::AccountId => return None,
            LeakColumn::Email => ("email", false),
            LeakColumn::Phone => ("phone", false),
            LeakColumn::FullName => ("full_name", false),
            LeakColumn::Wallet => ("wallet_addresses", false),
            LeakColumn::MaskedEmail => ("email", true),
            LeakColumn::MaskedPhone => ("phone", true),
            LeakColumn::MaskedName => ("full_name", true),
            LeakColumn::MaskedWallet => ("wallet_addresses", true),
        })
    }

    /// Whether a customer shown this way put the column's value on the screen as the column
    /// has it: an exact value needs a reveal of its field, a masked one any showing of it.
    pub fn was_shown(self, shown: &TruthShown) -> bool {
        match self.field() {
            None => true,
            Some((field, false)) => shown.revealed.contains(field),
            Some((field, true)) => shown.revealed.contains(field) || shown.masked_only.contains(field),
        }
    }

    /// The cell for a customer record, if the customer has the value.
    fn render(self, id: &str, record: &Value) -> Option<String> {
        let text = |name: &str| record.get(name).and_then(Value::as_str).map(str::to_string);
        let wallet = || record.get("wallet_addresses")?.as_array()?.first()?.as_str().map(str::to_string);
        // Masked forms that depend on the date (ages) are not used here, so any day will do.
        let masked = |field: Field, value: Value| mask(field, &value, Date::from_unix_seconds(0));
        Some(match self {
            LeakColumn::AccountId => id.to_string(),
            LeakColumn::Email => text("email")?,
            LeakColumn::Phone => text("phone")?,
            LeakColumn::FullName => text("full_name")?,
            LeakColumn::Wallet => wallet()?,
            LeakColumn::MaskedEmail => masked(Field::Email, Value::String(text("email")?)),
            LeakColumn::MaskedPhone => masked(Field::Phone, Value::String(text("phone")?)),
            LeakColumn::MaskedName => masked(Field::FullName, Value::String(text("full_name")?)),
            LeakColumn::MaskedWallet => masked(Field::WalletAddresses, Value::Array(vec![Value::String(wallet()?)])),
        })
    }
}

/// Which customers a sample is drawn from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeakSource {
    /// Customers these insiders (positions in the truth) were shown, each in the way the
    /// sample's columns have them (exact values only of customers whose field they revealed).
    Insiders(Vec<usize>),
    /// Customers shown to someone this way (an honest agent's screens, say), under the same
    /// rule as `Insiders`.
    Shown(Vec<TruthShown>),
    /// These customers (numbers), whoever saw them.
    Customers(Vec<u64>),
    /// Customers drawn at random from the whole base: a sample that no one leaked.
    Anyone,
}

/// A CSV sample of at most `rows` customers from `source`, with `columns`, drawn with `seed`.
/// Customers missing a column's value are passed over.
pub fn leak_sample(truth: &Truth, source: &LeakSource, columns: &[LeakColumn], rows: usize, seed: u64) -> String {
    let people = People::new(truth.seed, truth.customers, truth.canaries.len() as u64);
    let mut rng = Rng::stream(seed, "leak");
    let shown_as_columns = |shown: &mut dyn Iterator<Item = &TruthShown>| {
        let mut numbers: Vec<u64> = shown
            .filter(|shown| columns.iter().all(|column| column.was_shown(shown)))
            .filter_map(|shown| customer_number(&shown.customer))
            .collect();
        numbers.sort_unstable();
        numbers.dedup();
        numbers
    };
    let mut pool: Vec<u64> = match source {
        LeakSource::Insiders(positions) => shown_as_columns(
            &mut positions
                .iter()
                .filter_map(|position| truth.insiders.get(*position))
                .flat_map(|insider| insider.shown.iter()),
        ),
        LeakSource::Shown(shown) => shown_as_columns(&mut shown.iter()),
        LeakSource::Customers(numbers) => numbers.clone(),
        LeakSource::Anyone => (1..=people.ordinary_count()).collect(),
    };
    rng.shuffle(&mut pool);
    leak_rows(&people, pool, columns, rows)
}

/// A CSV of the first `rows` customers of `numbers` that have every one of `columns`, as
/// an extortionist would send it.
pub fn leak_rows(
    people: &People,
    numbers: impl IntoIterator<Item = u64>,
    columns: &[LeakColumn],
    rows: usize,
) -> String {
    let mut csv = columns.iter().map(|column| column.header()).collect::<Vec<_>>().join(",");
    csv.push('\n');
    let mut taken = 0;
    for number in numbers {
        if taken == rows {
            break;
        }
        let customer = people.customer(number);
        let cells: Option<Vec<String>> =
            columns.iter().map(|column| column.render(&customer.id, &customer.record)).collect();
        let Some(cells) = cells else { continue };
        let quoted: Vec<String> =
            cells
                .iter()
                .map(|cell| {
                    if cell.contains([',', '"']) { format!("\"{}\"", cell.replace('"', "\"\"")) } else { cell.clone() }
                })
                .collect();
        csv.push_str(&quoted.join(","));
        csv.push('\n');
        taken += 1;
    }
    csv
}
