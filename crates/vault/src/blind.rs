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
        let mut digest: Digest = mac.finalize().into_bytes().into();
        if kind.bucketed() {
            bucket(&mut digest);
        }
        Some(digest)
    }
}

/// How many leading bits of the digest a bucketed index keeps: 4,096 buckets.
pub const BUCKET_BITS: u32 = 12;

/// Keeps the first `BUCKET_BITS` bits of a digest and zeroes the rest.
fn bucket(digest: &mut Digest) {
    let keep_bytes = (BUCKET_BITS / 8) as usize;
    let partial_bits = BUCKET_BITS % 8;
    for (position, byte) in digest.iter_mut().enumerate() {
        if position < keep_bytes {
            continue;
        }
        *byte = if position == keep_bytes && partial_bits > 0 { *byte & (0xFFu8 << (8 - partial_bits)) } else { 0 };
    }
}
