//! The vault: seals a customer's fields, opens the ones a caller was allowed, and computes
//! their blind indexes.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::blind::{BlindIndexKey, Digest};
use crate::catalogue::{Field, SearchKey};
use crate::envelope::{DataKey, KeyEncryptionKey, NONCE_SIZE, SealedRecord};
use crate::error::VaultError;
use crate::normalize::check_shape;

/// A customer as stored: the wrapped data key, which KEK wrapped it, and the sealed fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedCustomer {
    pub kek_id: String,
    pub wrapped_key: Vec<u8>,
    pub record: SealedRecord,
}

#[derive(Clone)]
pub struct Vault {
    kek: Arc<dyn KeyEncryptionKey>,
    blind: Arc<BlindIndexKey>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Vault(kek {})", self.kek.id())
    }
}

impl Vault {
    pub fn new(kek: Arc<dyn KeyEncryptionKey>, blind: BlindIndexKey) -> Vault {
        Vault { kek, blind: Arc::new(blind) }
    }

    /// The key-encryption key the vault wraps data keys with.
    pub fn kek(&self) -> &Arc<dyn KeyEncryptionKey> {
        &self.kek
    }

    pub fn kek_id(&self) -> &str {
        self.kek.id()
    }

    /// Whether the key-encryption key wraps and unwraps now (readiness asks).
    pub fn probe_kek(&self) -> Result<(), VaultError> {
        self.kek.probe()
    }

    /// Checks every value's shape and seals them under a fresh data key.
    pub fn seal(&self, customer: &str, fields: &BTreeMap<Field, Value>) -> Result<SealedCustomer, VaultError> {
        for (field, value) in fields {
            check_shape(*field, value).map_err(|expected| VaultError::BadValue {
                customer: customer.to_string(),
                field: field.name().to_string(),
                expected,
            })?;
        }
        let key = DataKey::generate()?;
        // One draw from the system random source for every field's nonce.
        let mut nonces = vec![0u8; fields.len() * NONCE_SIZE];
        crate::envelope::random_fill(&mut nonces)?;
        let mut record = SealedRecord::default();
        for ((field, value), nonce) in fields.iter().zip(nonces.chunks_exact(NONCE_SIZE)) {
            // An encoding failure is an error, never an empty value sealed in its place.
            let plaintext = zeroize::Zeroizing::new(serde_json::to_vec(value).map_err(|_| VaultError::BadValue {
                customer: customer.to_string(),
                field: field.name().to_string(),
                expected: "a value that can be encoded as JSON",
            })?);
            let nonce: [u8; NONCE_SIZE] = nonce.try_into().map_err(|_| VaultError::BadKey("nonce"))?;
            record.insert(*field, key.seal_with_nonce(customer, *field, &plaintext, nonce)?);
        }
        Ok(SealedCustomer { kek_id: self.kek.id().to_string(), wrapped_key: self.kek.wrap(customer, &key)?, record })
    }

    /// Decrypts the requested fields that the customer has.
    pub fn open(
        &self,
        customer: &str,
        sealed: &SealedCustomer,
        fields: &[Field],
    ) -> Result<BTreeMap<Field, Value>, VaultError> {
        let key = self.unwrap_key(customer, sealed)?;
        let mut opened = BTreeMap::new();
        for &field in fields {
            if let Some(ciphertext) = sealed.record.get(field) {
                let plaintext = key.open(customer, field, ciphertext)?;
                let value =
                    serde_json::from_slice(&plaintext).map_err(|_| VaultError::BadRecord("a value is not JSON"))?;
                opened.insert(field, value);
            }
        }
        Ok(opened)
    }

    /// The same vault (the same key-encryption key) with another blind-index key: what a
    /// rotation of that key computes the new search entries with.
    pub fn with_blind_index(&self, blind: BlindIndexKey) -> Vault {
        Vault { kek: Arc::clone(&self.kek), blind: Arc::new(blind) }
    }

    /// Re-wraps the data key under `new_kek`; the fields are untouched.
    pub fn rewrap(
        &self,
        customer: &str,
        sealed: &SealedCustomer,
        new_kek: &dyn KeyEncryptionKey,
    ) -> Result<SealedCustomer, VaultError> {
        let key = self.unwrap_key(customer, sealed)?;
        Ok(SealedCustomer {
            kek_id: new_kek.id().to_string(),
            wrapped_key: new_kek.wrap(customer, &key)?,
            record: sealed.record.clone(),
        })
    }

    fn unwrap_key(&self, customer: &str, sealed: &SealedCustomer) -> Result<crate::envelope::DataKey, VaultError> {
        if sealed.kek_id != self.kek.id() {
            return Err(VaultError::WrongKek { customer: customer.to_string(), kek_id: sealed.kek_id.clone() });
        }
        self.kek.unwrap(customer, &sealed.wrapped_key)
    }

    /// The digest a search for `value` by `kind` looks up.
    pub fn search_digest(&self, kind: SearchKey, value: &str) -> Option<Digest> {
        self.blind.digest(kind, value)
    }

    /// The fields [`Vault::index_entries`] reads.
    pub const INDEXED_FIELDS: [Field; 4] = [Field::Email, Field::Phone, Field::FullName, Field::WalletAddresses];

    /// The blind-index entries of a customer: its id, email, phone and every wallet address,
    /// for agents' searches; and its full name and the masked renderings of its name, email,
    /// phone and wallets, for matching a leaked sample in incident response.
    pub fn index_entries(&self, customer: &str, fields: &BTreeMap<Field, Value>) -> Vec<(SearchKey, Digest)> {
        let mut entries = Vec::new();
        let mut add = |kind: SearchKey, value: &str| entries.extend(self.blind.digest(kind, value).map(|d| (kind, d)));
        add(SearchKey::AccountId, customer);
        let text = |field: Field| fields.get(&field).and_then(Value::as_str);
        if let Some(email) = text(Field::Email) {
            add(SearchKey::Email, email);
            add(SearchKey::MaskedEmail, email);
        }
        if let Some(phone) = text(Field::Phone) {
            add(SearchKey::Phone, phone);
            add(SearchKey::MaskedPhone, phone);
        }
        if let Some(name) = text(Field::FullName) {
            add(SearchKey::FullName, name);
            add(SearchKey::MaskedName, name);
        }
        for address in fields.get(&Field::WalletAddresses).and_then(Value::as_array).into_iter().flatten() {
            if let Some(address) = address.as_str() {
                add(SearchKey::Wallet, address);
                add(SearchKey::MaskedWallet, address);
            }
        }
        // Two wallets can share a masked rendering; one row each is enough.
        entries.sort_unstable();
        entries.dedup();
        entries
    }
}
