//! Envelope encryption: every field value is sealed with AES-256-GCM under its customer's
//! data key (DEK); the DEK is wrapped by the key-encryption key (KEK). The associated data
//! binds each ciphertext to its customer and field, so it cannot be moved to another.

use std::collections::BTreeMap;

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

use crate::catalogue::Field;
use crate::error::VaultError;

pub(crate) const SEAL_VERSION: u8 = 1;
pub(crate) const NONCE_SIZE: usize = 12;
const FIELD_CONTEXT: &[u8] = b"cordon field v1";
const WRAP_CONTEXT: &[u8] = b"cordon data key v1";

/// A customer's 256-bit data key; wiped from memory when dropped.
pub struct DataKey {
    cipher: Aes256Gcm,
    bytes: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl DataKey {
    pub fn generate() -> Result<DataKey, VaultError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        random_fill(bytes.as_mut())?;
        DataKey::from_bytes(bytes)
    }

    pub(crate) fn from_bytes(bytes: Zeroizing<[u8; 32]>) -> Result<DataKey, VaultError> {
        let cipher = Aes256Gcm::new_from_slice(bytes.as_ref()).map_err(|_| VaultError::BadKey("data key"))?;
        Ok(DataKey { cipher, bytes })
    }

    /// The key's bytes, for a KEK to wrap.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.bytes.as_ref()
    }

    /// Encrypts one field value of `customer`: `version || nonce || ciphertext and tag`.
    pub fn seal(&self, customer: &str, field: Field, plaintext: &[u8]) -> Result<Vec<u8>, VaultError> {
        let mut nonce = [0u8; NONCE_SIZE];
        random_fill(&mut nonce)?;
        self.seal_with_nonce(customer, field, plaintext, nonce)
    }

    /// As `seal`, with a nonce the caller drew from the system random source (so that a
    /// customer's fields take one system call, not one each). A nonce must never repeat
    /// under the same key.
    pub(crate) fn seal_with_nonce(
        &self,
        customer: &str,
        field: Field,
        plaintext: &[u8],
        nonce: [u8; NONCE_SIZE],
    ) -> Result<Vec<u8>, VaultError> {
        seal_with_nonce(&self.cipher, &field_context(customer, field), plaintext, nonce)
    }

    /// Decrypts what `seal` produced for the same customer and field.
    pub fn open(&self, customer: &str, field: Field, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        open_with(&self.cipher, &field_context(customer, field), sealed)
            .ok_or_else(|| VaultError::Undecryptable { customer: customer.to_string(), what: field.name().to_string() })
    }
}

impl DataKey {
    /// Encrypts bytes that are not a customer's field (a backup's copies of the data
    /// directory's keys), bound to `context`: a domain of its own, so neither can be taken
    /// for the other.
    pub fn seal_bytes(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, VaultError> {
        let mut nonce = [0u8; NONCE_SIZE];
        random_fill(&mut nonce)?;
        seal_with_nonce(&self.cipher, &bytes_context(context), plaintext, nonce)
    }

    /// Decrypts what `seal_bytes` produced under the same `context`.
    pub fn open_bytes(&self, context: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        open_with(&self.cipher, &bytes_context(context), sealed)
            .ok_or_else(|| VaultError::UndecryptableBytes(context.to_string()))
    }
}

fn bytes_context(context: &str) -> Vec<u8> {
    let mut aad = b"cordon-sealed-bytes/1".to_vec();
    aad.push(0);
    aad.extend_from_slice(context.as_bytes());
    aad
}

/// The key that wraps data keys: a key file ([`LocalKek`]) or a key inside an HSM
/// ([`crate::HsmKek`]).
pub trait KeyEncryptionKey: Send + Sync {
    /// Names this key version, stored beside each wrapped DEK so rotation knows which to use.
    fn id(&self) -> &str;
    fn wrap(&self, customer: &str, key: &DataKey) -> Result<Vec<u8>, VaultError>;
    fn unwrap(&self, customer: &str, wrapped: &[u8]) -> Result<DataKey, VaultError>;

    /// Whether the key answers now: a throwaway data key wrapped and unwrapped (an HSM can
    /// go away; a key in memory always answers).
    fn probe(&self) -> Result<(), VaultError> {
        let key = DataKey::generate()?;
        let back = self.unwrap("cordon probe", &self.wrap("cordon probe", &key)?)?;
        if back.bytes() == key.bytes() { Ok(()) } else { Err(VaultError::BadKey("key-encryption key")) }
    }
}

/// A KEK held in memory, read from a key file (32 random bytes).
pub struct LocalKek {
    id: String,
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for LocalKek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LocalKek({})", self.id)
    }
}

impl LocalKek {
    pub fn new(id: &str, key: &[u8]) -> Result<LocalKek, VaultError> {
        let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| VaultError::BadKey("key-encryption key"))?;
        Ok(LocalKek { id: id.to_string(), cipher })
    }
}

impl KeyEncryptionKey for LocalKek {
    fn id(&self) -> &str {
        &self.id
    }

    fn wrap(&self, customer: &str, key: &DataKey) -> Result<Vec<u8>, VaultError> {
        seal_with(&self.cipher, &wrap_context(customer), key.bytes.as_ref())
    }

    fn unwrap(&self, customer: &str, wrapped: &[u8]) -> Result<DataKey, VaultError> {
        let bytes = open_with(&self.cipher, &wrap_context(customer), wrapped)
            .ok_or_else(|| VaultError::Undecryptable { customer: customer.to_string(), what: "data key".into() })?;
        let array: [u8; 32] = bytes.as_slice().try_into().map_err(|_| VaultError::BadKey("data key"))?;
        DataKey::from_bytes(Zeroizing::new(array))
    }
}

/// A customer's sealed fields: field code, length, sealed bytes, repeated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SealedRecord {
    fields: BTreeMap<Field, Vec<u8>>,
}

impl SealedRecord {
    pub fn insert(&mut self, field: Field, sealed: Vec<u8>) {
        self.fields.insert(field, sealed);
    }

    pub fn get(&self, field: Field) -> Option<&[u8]> {
        self.fields.get(&field).map(Vec::as_slice)
    }

    pub fn fields(&self) -> impl Iterator<Item = Field> + '_ {
        self.fields.keys().copied()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        for (field, sealed) in &self.fields {
            bytes.push(field.code());
            bytes.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
            bytes.extend_from_slice(sealed);
        }
        bytes
    }

    pub fn decode(bytes: &[u8]) -> Result<SealedRecord, VaultError> {
        let mut fields = BTreeMap::new();
        let mut rest = bytes;
        while let Some((&code, tail)) = rest.split_first() {
            let field = Field::from_code(code).ok_or(VaultError::BadRecord("unknown field code"))?;
            let (length, tail) = tail.split_first_chunk::<4>().ok_or(VaultError::BadRecord("truncated length"))?;
            let length = u32::from_le_bytes(*length) as usize;
            let sealed = tail.get(..length).ok_or(VaultError::BadRecord("truncated value"))?;
            fields.insert(field, sealed.to_vec());
            rest = tail.get(length..).unwrap_or(&[]);
        }
        Ok(SealedRecord { fields })
    }
}

pub(crate) fn random_fill(bytes: &mut [u8]) -> Result<(), VaultError> {
    getrandom::fill(bytes).map_err(|error| VaultError::Randomness(error.to_string()))
}

fn field_context(customer: &str, field: Field) -> Vec<u8> {
    let mut context = Vec::with_capacity(FIELD_CONTEXT.len() + customer.len() + 24);
    context.extend_from_slice(FIELD_CONTEXT);
    context.push(0);
    context.extend_from_slice(customer.as_bytes());
    context.push(0);
    context.extend_from_slice(field.name().as_bytes());
    context
}

pub(crate) fn wrap_context(customer: &str) -> Vec<u8> {
    let mut context = WRAP_CONTEXT.to_vec();
    context.push(0);
    context.extend_from_slice(customer.as_bytes());
    context
}

fn seal_with(cipher: &Aes256Gcm, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, VaultError> {
    let mut nonce = [0u8; NONCE_SIZE];
    random_fill(&mut nonce)?;
    seal_with_nonce(cipher, aad, plaintext, nonce)
}

fn seal_with_nonce(
    cipher: &Aes256Gcm,
    aad: &[u8],
    plaintext: &[u8],
    nonce: [u8; NONCE_SIZE],
) -> Result<Vec<u8>, VaultError> {
    let ciphertext = cipher
        .encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad })
        .map_err(|_| VaultError::BadKey("encryption failed"))?;
    let mut sealed = Vec::with_capacity(1 + NONCE_SIZE + ciphertext.len());
    sealed.push(SEAL_VERSION);
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&ciphertext);
    Ok(sealed)
}

fn open_with(cipher: &Aes256Gcm, aad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let (&version, rest) = sealed.split_first()?;
    if version != SEAL_VERSION {
        return None;
    }
    let (nonce, ciphertext) = rest.split_first_chunk::<NONCE_SIZE>()?;
    cipher.decrypt(&Nonce::from(*nonce), Payload { msg: ciphertext, aad }).ok().map(Zeroizing::new)
}
