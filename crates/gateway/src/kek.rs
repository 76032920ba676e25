//! Where the key-encryption key lives: a key file in `keys/` (`kek-<id>`), or a key inside
//! the HSM `[hsm]` names (`hsm-<id>`, the token's label for it). The store names the current
//! one; its prefix says where to find it, so a rotation can move it either way.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;

use cordon_vault::{HSM_KEK_PREFIX, HsmToken, KeyEncryptionKey, LocalKek};
use zeroize::Zeroizing;

use crate::config::HsmSettings;
use crate::datadir::{KEYS_DIR, read_key, write_key};
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

/// Makes a new key-encryption key in `home` and returns its id.
pub(crate) fn create(root: &Path, hsm: &HsmSettings, home: KekHome) -> Result<String, GatewayError> {
    Ok(match home {
        KekHome::File => {
            let id = format!("kek-{}", random_id()?);
            write_key(&root.join(KEYS_DIR).join(&id))?;
            id
        }
        KekHome::Hsm => {
            let id = format!("{HSM_KEK_PREFIX}{}", random_id()?);
            token(root, hsm, &id)?.generate_kek(&id)?;
            id
        }
    })
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
    let pin_path = root.join(&hsm.pin_file);
    let metadata = fs::metadata(&pin_path)
        .map_err(|error| GatewayError::BadRequest(format!("[hsm] pin_file `{}`: {error}", pin_path.display())))?;
    // As ssh does with a private key: a PIN others can read is refused, not used.
    if metadata.permissions().mode() & 0o077 != 0 {
        return Err(GatewayError::BadRequest(format!(
            "[hsm] pin_file `{}` can be read by others (mode {:o}); make it its owner's alone (chmod 600)",
            pin_path.display(),
            metadata.permissions().mode() & 0o777
        )));
    }
    let pin = Zeroizing::new(
        fs::read_to_string(&pin_path)
            .map_err(|error| GatewayError::BadRequest(format!("[hsm] pin_file `{}`: {error}", pin_path.display())))?,
    );
    let pin = pin.trim_end_matches(['\n', '\r']);
    if pin.is_empty() {
        return Err(GatewayError::BadRequest(format!("[hsm] pin_file `{}` is empty", pin_path.display())));
    }
    Ok(HsmToken::open(Path::new(&hsm.module), &hsm.token_label, pin)?)
}
