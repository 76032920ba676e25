//! cordon's vault: the customer field catalogue, masked forms, envelope encryption and blind
//! indexes.
//!
//! Everything here is a pure function of its inputs and keys; the vault stores nothing and
//! knows nothing of SQL, HTTP or policy. Field values only ever leave it as masked forms,
//! unless a caller that has authorized and audited a reveal asks `open_fields`.

mod blind;
mod catalogue;
mod date;
mod envelope;
mod error;
mod hsm;
mod mask;
mod normalize;
mod vault;

pub use blind::{BUCKET_BITS, BlindIndexKey, Digest};
pub use catalogue::{Field, FieldClass, SearchKey, UnknownField};
pub use date::Date;
pub use envelope::{DataKey, KeyEncryptionKey, LocalKek, SealedRecord};
pub use error::VaultError;
pub use hsm::{HSM_KEK_PREFIX, HsmKek, HsmToken};
pub use mask::{BalanceBand, UNREADABLE, mask};
pub use normalize::{check_shape, looks_masked, normalize, phone_digits};
pub use vault::{SealedCustomer, Vault};
