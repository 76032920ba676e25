//! Blind indexes: HMAC-SHA256 of a normalised search value under a key kept apart from the
//! encryption keys, so exact-match search works without storing or decrypting values.

use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::catalogue::SearchKey;
use crate::error::VaultError;
use crate::normalize::normalize;

/// A blind-index digest.
pub type Digest = [u8; 32];

pub struct BlindIndexKey {
    key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for BlindIndexKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlindIndexKey(..)")
    }
}

impl BlindIndexKey {
    pub fn new(key: &[u8]) -> Result<BlindIndexKey, VaultError> {
        if key.len() < 32 {
            return Err(VaultError::BadKey("blind-index key (needs 32 bytes)"));
        }
        Ok(BlindIndexKey { key: Zeroizing::new(key.to_vec()) })
    }

    /// The digest of `value` as a search by `kind`; `None` if the value cannot be of that kind.
    pub fn digest(&self, kind: SearchKey, value: &str) -> Option<Digest> {
        let normalized = normalize(kind, value)?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).ok()?;
        mac.update(b"cordon blind index v1\0");
        mac.update(kind.name().as_bytes());
        mac.update(b"\0");
        mac.update(normalized.as_bytes());
        Some(mac.finalize().into_bytes().into())
    }
}
