//! The field catalogue: every customer field cordon holds, its class, and how it is searched.

use std::fmt;
use std::str::FromStr;

/// The class of a field, which policies and incident reports speak in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FieldClass {
    Identity,
    Contact,
    GovernmentId,
    Financial,
    Security,
}

impl FieldClass {
    pub fn name(self) -> &'static str {
        match self {
            FieldClass::Identity => "identity",
            FieldClass::Contact => "contact",
            FieldClass::GovernmentId => "government_id",
            FieldClass::Financial => "financial",
            FieldClass::Security => "security",
        }
    }

    pub const ALL: [FieldClass; 5] = [
        FieldClass::Identity,
        FieldClass::Contact,
        FieldClass::GovernmentId,
        FieldClass::Financial,
        FieldClass::Security,
    ];
}

impl fmt::Display for FieldClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A customer field. The numeric code is the field's stable identity in sealed records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    FullName,
    DateOfBirth,
    PostalAddress,
    Email,
    Phone,
    GovernmentIdNumber,
    IdDocumentImage,
    TaxId,
    BankAccount,
    BalanceUsd,
    WalletAddresses,
    TransactionHistory,
    TwoFactorMethod,
    LastLoginIp,
}

impl Field {
    pub const ALL: [Field; 14] = [
        Field::FullName,
        Field::DateOfBirth,
        Field::PostalAddress,
        Field::Email,
        Field::Phone,
        Field::GovernmentIdNumber,
        Field::IdDocumentImage,
        Field::TaxId,
        Field::BankAccount,
        Field::BalanceUsd,
        Field::WalletAddresses,
        Field::TransactionHistory,
        Field::TwoFactorMethod,
        Field::LastLoginIp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Field::FullName => "full_name",
            Field::DateOfBirth => "date_of_birth",
            Field::PostalAddress => "postal_address",
            Field::Email => "email",
            Field::Phone => "phone",
            Field::GovernmentIdNumber => "government_id_number",
            Field::IdDocumentImage => "id_document_image",
            Field::TaxId => "tax_id",
            Field::BankAccount => "bank_account",
            Field::BalanceUsd => "balance_usd",
            Field::WalletAddresses => "wallet_addresses",
            Field::TransactionHistory => "transaction_history",
            Field::TwoFactorMethod => "two_factor_method",
            Field::LastLoginIp => "last_login_ip",
        }
    }

    pub fn class(self) -> FieldClass {
        match self {
            Field::FullName | Field::DateOfBirth | Field::PostalAddress => FieldClass::Identity,
            Field::Email | Field::Phone => FieldClass::Contact,
            Field::GovernmentIdNumber | Field::IdDocumentImage | Field::TaxId => FieldClass::GovernmentId,
            Field::BankAccount | Field::BalanceUsd | Field::WalletAddresses | Field::TransactionHistory => {
                FieldClass::Financial
            }
            Field::TwoFactorMethod | Field::LastLoginIp => FieldClass::Security,
        }
    }

    /// The field's code in sealed records; never reuse or renumber one.
    pub fn code(self) -> u8 {
        match self {
            Field::FullName => 1,
            Field::DateOfBirth => 2,
            Field::PostalAddress => 3,
            Field::Email => 4,
            Field::Phone => 5,
            Field::GovernmentIdNumber => 6,
            Field::IdDocumentImage => 7,
            Field::TaxId => 8,
            Field::BankAccount => 9,
            Field::BalanceUsd => 10,
            Field::WalletAddresses => 11,
            Field::TransactionHistory => 12,
            Field::TwoFactorMethod => 13,
            Field::LastLoginIp => 14,
        }
    }

    pub fn from_code(code: u8) -> Option<Field> {
        Field::ALL.into_iter().find(|field| field.code() == code)
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error for a field name that is not in the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown field `{0}`")]
pub struct UnknownField(pub String);

impl FromStr for Field {
    type Err = UnknownField;

    fn from_str(name: &str) -> Result<Field, UnknownField> {
        Field::ALL.into_iter().find(|field| field.name() == name).ok_or_else(|| UnknownField(name.to_string()))
    }
}

/// What a customer can be looked up by on a blind index. Agents search by the first four
/// (`SearchKey::AGENT`), exact values only. The rest exist for incident response alone: they
/// match a leaked sample (a full name, or a masked rendering copied off a screen) to the
/// customers consistent with it, and no agent route accepts them, so masked renderings never
/// become a way to enumerate customers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SearchKey {
    Email,
    Phone,
    AccountId,
    Wallet,
    FullName,
    MaskedName,
    MaskedEmail,
    MaskedPhone,
    MaskedWallet,
}

impl SearchKey {
    /// Every kind, in the order of their stored codes: append, never reorder.
    pub const ALL: [SearchKey; 9] = [
        SearchKey::Email,
        SearchKey::Phone,
        SearchKey::AccountId,
        SearchKey::Wallet,
        SearchKey::FullName,
        SearchKey::MaskedName,
        SearchKey::MaskedEmail,
        SearchKey::MaskedPhone,
        SearchKey::MaskedWallet,
    ];

    /// What an agent may search by.
    pub const AGENT: [SearchKey; 4] = [SearchKey::Email, SearchKey::Phone, SearchKey::AccountId, SearchKey::Wallet];

    pub fn name(self) -> &'static str {
        match self {
            SearchKey::Email => "email",
            SearchKey::Phone => "phone",
            SearchKey::AccountId => "account_id",
            SearchKey::Wallet => "wallet",
            SearchKey::FullName => "full_name",
            SearchKey::MaskedName => "masked_name",
            SearchKey::MaskedEmail => "masked_email",
            SearchKey::MaskedPhone => "masked_phone",
            SearchKey::MaskedWallet => "masked_wallet",
        }
    }

    /// Whether this index keeps only a coarse bucket of the digest (`BUCKET_BITS` of it): the
    /// kinds that match nearly one customer each and that only incident response reads (full
    /// names, masked wallets). A bucket holds a few dozen customers per hundred thousand, whom
    /// the caller confirms by opening the field; in exchange the index's rows cluster, so
    /// importing customers does not pay a random B-tree insert for each (a million customers
    /// imported 47% slower with exact digests for these two kinds).
    pub fn bucketed(self) -> bool {
        matches!(self, SearchKey::FullName | SearchKey::MaskedWallet)
    }

    /// Whether an agent may search by this kind.
    pub fn agent_searchable(self) -> bool {
        SearchKey::AGENT.contains(&self)
    }

    /// The kind of any stored name, agent-searchable or not (for the store's own codes).
    pub fn from_any_name(name: &str) -> Option<SearchKey> {
        SearchKey::ALL.into_iter().find(|key| key.name() == name)
    }
}

/// Parses only what an agent may search by: `masked_name` and the other incident-response
/// kinds are refused here, so no route can hand them to a search.
impl FromStr for SearchKey {
    type Err = UnknownField;

    fn from_str(name: &str) -> Result<SearchKey, UnknownField> {
        SearchKey::AGENT.into_iter().find(|key| key.name() == name).ok_or_else(|| UnknownField(name.to_string()))
    }
}
