//! Ticket categories and the fields each one needs: the default table, overridable per
//! deployment in `cordon.toml`.

use std::collections::BTreeMap;

use cordon_vault::Field;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryTable {
    needs: BTreeMap<String, Vec<Field>>,
}

impl Default for CategoryTable {
    fn default() -> CategoryTable {
        use Field::*;
        let table: &[(&str, &[Field])] = &[
            ("kyc_verification", &[FullName, DateOfBirth, PostalAddress, GovernmentIdNumber, IdDocumentImage, TaxId]),
            ("withdrawal_delay", &[BalanceUsd, WalletAddresses, TransactionHistory]),
            ("deposit_missing", &[BalanceUsd, WalletAddresses, TransactionHistory]),
            ("two_factor_reset", &[Email, Phone, TwoFactorMethod, LastLoginIp]),
            ("account_recovery", &[FullName, DateOfBirth, Email, Phone, TwoFactorMethod, LastLoginIp]),
            ("bank_transfer", &[FullName, BankAccount, TransactionHistory]),
            ("address_change", &[FullName, PostalAddress]),
            ("tax_documents", &[FullName, PostalAddress, TaxId]),
            ("fraud_report", &[Email, Phone, WalletAddresses, TransactionHistory, LastLoginIp]),
            ("general_inquiry", &[FullName, Email]),
        ];
        CategoryTable {
            needs: table.iter().map(|(category, fields)| (category.to_string(), fields.to_vec())).collect(),
        }
    }
}

impl CategoryTable {
    /// A table from category names to field names; unknown fields are an error naming them.
    pub fn from_names(table: &BTreeMap<String, Vec<String>>) -> Result<CategoryTable, String> {
        let mut needs = BTreeMap::new();
        for (category, fields) in table {
            let parsed = fields
                .iter()
                .map(|name| name.parse::<Field>().map_err(|error| format!("category `{category}`: {error}")))
                .collect::<Result<Vec<_>, _>>()?;
            needs.insert(category.clone(), parsed);
        }
        Ok(CategoryTable { needs })
    }

    /// The fields `category` needs; an unknown category needs nothing.
    pub fn needs(&self, category: &str) -> &[Field] {
        self.needs.get(category).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn knows(&self, category: &str) -> bool {
        self.needs.contains_key(category)
    }

    pub fn categories(&self) -> impl Iterator<Item = &str> {
        self.needs.keys().map(String::as_str)
    }
}
