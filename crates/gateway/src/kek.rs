//! Where the key-encryption key lives: a key file in `keys/` (`kek-<id>`), or a key inside
//! the HSM `[hsm]` names (`hsm-<id>`, the token's label for it). The store names the current
//! one; its prefix says where to find it, so a rotation can move it either way.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use cordon_vault::{HSM_KEK_PREFIX, HsmToken, KeyEncryptionKey, LocalKek};

use crate::config::HsmSettings;
use crate::datadir::{KEYS_DIR, read_key, read_secret_file, write_key};
use crate::error::GatewayError;
use crate::service::random_id;

/// Where a key-encryption key is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KekHome {
    /// A file of 32 random bytes in the data directory's `keys/`.
    File,
    /// A non-extractable key inside the PKCS#11 token `[hsm]` names.
    Hsm,
}

impl KekHome {
    pub fn of(id: &str) -> KekHome {
        if id.starts_with(HSM_KEK_PREFIX) { KekHome::Hsm } else { KekHome::File }
    }

    pub fn name(self) -> &'static str {
        match self {
            KekHome::File => "file",
            KekHome::Hsm => "hsm",
        }
    }
}

/// The key-encryption key `id`, from its file or its token.
pub(crate) fn load(root: &Path, hsm: &HsmSettings, id: &str) -> Result<Arc<dyn KeyEncryptionKey>, GatewayError> {
    Ok(match KekHome::of(id) {
        KekHome::File => Arc::new(LocalKek::new(id, &read_key(&root.join(KEYS_DIR).join(id))?)?),
        KekHome::Hsm => Arc::new(token(root, hsm, id)?.kek(id)?),
    })
}

/// A new key-encryption key's id in `home`: `kek-<random>` for a file, `hsm-<random>` in a token.
pub(crate) fn new_id(home: KekHome) -> Result<String, GatewayError> {
    Ok(match home {
        KekHome::File => format!("kek-{}", random_id()?),
        KekHome::Hsm => format!("{HSM_KEK_PREFIX}{}", random_id()?),
    })
}

/// Makes the key-encryption key `id` where its prefix says, unless it exists already (a
/// rotation cut short makes it again with the same id).
pub(crate) fn create(root: &Path, hsm: &HsmSettings, id: &str) -> Result<(), GatewayError> {
    match KekHome::of(id) {
        KekHome::File => {
            let path = root.join(KEYS_DIR).join(id);
            if !path.exists() {
                write_key(&path)?;
            }
        }
        KekHome::Hsm => {
            token(root, hsm, id)?.generate_kek(id)?;
        }
    }
    Ok(())
}

/// Removes the key-encryption key `id` for good: its file, or its object in the token.
pub(crate) fn destroy(root: &Path, hsm: &HsmSettings, id: &str) -> Result<(), GatewayError> {
    match KekHome::of(id) {
        KekHome::File => {
            let path = root.join(KEYS_DIR).join(id);
            match fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(error) => Err(GatewayError::Internal(format!("cannot remove `{}`: {error}", path.display()))),
            }
        }
        KekHome::Hsm => Ok(token(root, hsm, id)?.destroy_kek(id)?),
    }
}

/// The token `[hsm]` names, logged in with the PIN from its file. `id` is the key wanted,
/// for the message when no HSM is configured.
fn token(root: &Path, hsm: &HsmSettings, id: &str) -> Result<Arc<HsmToken>, GatewayError> {
    if !hsm.is_set() {
        return Err(GatewayError::BadRequest(format!(
            "the key-encryption key `{id}` is in an HSM, but cordon.toml has no [hsm] module, token_label and \
             pin_file (docs/KEYS.md)"
        )));
    }
    let pin = read_secret_file(root, "[hsm] pin_file", &hsm.pin_file)?;
    Ok(HsmToken::open(Path::new(&hsm.module), &hsm.token_label, &pin)?)
}
