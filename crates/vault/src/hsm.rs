//! The key-encryption key in an HSM, through PKCS#11. The token generates the KEK itself as a
//! sensitive, non-extractable AES-256 key, and wraps and unwraps data keys with it
//! (`C_Encrypt` / `C_Decrypt`, AES-256-GCM bound to the customer as with a key file), so the
//! KEK is never in cordon's memory; only the data keys it unwraps are, as with a key file.
//!
//! A KEK in the token is found by its label, which is its id in the store (`hsm-<random>`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as Pkcs11Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use crate::envelope::{DataKey, KeyEncryptionKey, NONCE_SIZE, SEAL_VERSION, random_fill, wrap_context};
use crate::error::VaultError;

/// The prefix of a KEK id that lives in an HSM; a key file's id starts with `kek-`.
pub const HSM_KEK_PREFIX: &str = "hsm-";

const TAG_BITS: u64 = 128;

/// One PKCS#11 token, logged in as its user, with a pool of sessions (a session serves one
/// thread at a time; the login holds while any of them is open). A session the token lost
/// (restarted, reconnected) is dropped, and the next one opened logs in again.
pub struct HsmToken {
    module: PathBuf,
    label: String,
    pkcs11: Pkcs11,
    slot: Slot,
    pin: AuthPin,
    sessions: Mutex<Vec<Session>>,
}

/// Errors after which a session, or a key's handle, is no longer good: the token was
/// restarted, reconnected or reloaded. Looking the key up again in a new session may work.
fn lost(error: &Pkcs11Error) -> bool {
    matches!(
        error,
        Pkcs11Error::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::DeviceRemoved
                | RvError::TokenNotPresent
                | RvError::UserNotLoggedIn
                | RvError::ObjectHandleInvalid
                | RvError::KeyHandleInvalid,
            _
        )
    )
}

impl std::fmt::Debug for HsmToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HsmToken({} in {})", self.label, self.module.display())
    }
}

impl HsmToken {
    /// Loads the module, finds the token labelled `token_label` and logs in with `pin`. A
    /// process opens each token once and keeps it (a PKCS#11 module is initialised once and
    /// not unloaded under threads a vendor's library may run).
    pub fn open(module: &Path, token_label: &str, pin: &str) -> Result<Arc<HsmToken>, VaultError> {
        static OPENED: Mutex<Vec<Arc<HsmToken>>> = Mutex::new(Vec::new());
        let mut opened = OPENED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(token) = opened.iter().find(|token| token.module == module && token.label == token_label) {
            return Ok(Arc::clone(token));
        }
        let token = HsmToken::open_new(module, token_label, pin)?;
        opened.push(Arc::clone(&token));
        Ok(token)
    }

    fn open_new(module: &Path, token_label: &str, pin: &str) -> Result<Arc<HsmToken>, VaultError> {
        let failed = |what: &str, error: Pkcs11Error| {
            VaultError::Hsm(format!("{what} (module `{}`, token `{token_label}`): {error}", module.display()))
        };
        let pkcs11 = Pkcs11::new(module).map_err(|error| failed("cannot load the PKCS#11 module", error))?;
        match pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            // Another token of this process initialised the module already.
            Ok(()) | Err(Pkcs11Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(error) => return Err(failed("cannot initialise the PKCS#11 module", error)),
        }
        let mut found = None;
        for slot in pkcs11.get_slots_with_initialized_token().map_err(|error| failed("cannot list slots", error))? {
            let info = pkcs11.get_token_info(slot).map_err(|error| failed("cannot read a token", error))?;
            if info.label().trim_end() == token_label {
                found = Some(slot);
                break;
            }
        }
        let slot = found.ok_or_else(|| {
            VaultError::Hsm(format!(
                "the PKCS#11 module `{}` has no initialised token labelled `{token_label}`",
                module.display()
            ))
        })?;
        let token = HsmToken {
            module: module.to_path_buf(),
            label: token_label.to_string(),
            pkcs11,
            slot,
            pin: AuthPin::from(pin.to_string()),
            sessions: Mutex::new(Vec::new()),
        };
        let session = match token.logged_in_session() {
            Ok(session) => session,
            Err(Pkcs11Error::Pkcs11(RvError::PinIncorrect, _)) => {
                return Err(VaultError::Hsm(format!(
                    "the PIN for token `{token_label}` (module `{}`) is wrong",
                    module.display()
                )));
            }
            Err(error) => return Err(failed("cannot open a session and log in", error)),
        };
        token.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(session);
        Ok(Arc::new(token))
    }

    /// A new session, logged in as the token's user (which holds for every session of this
    /// process while one is open, so after the first this only confirms it).
    fn logged_in_session(&self) -> Result<Session, Pkcs11Error> {
        let session = self.pkcs11.open_rw_session(self.slot)?;
        match session.login(UserType::User, Some(&self.pin)) {
            Ok(()) | Err(Pkcs11Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
            Err(error) => Err(error),
        }
    }

    /// Runs `work` with a session of the pool (opened now if every one is in use). A session
    /// the token lost is dropped rather than put back.
    fn with_session<T>(&self, work: impl FnOnce(&Session) -> Result<T, Pkcs11Error>) -> Result<T, Pkcs11Error> {
        let pooled = self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
        let session = match pooled {
            Some(session) => session,
            None => self.logged_in_session()?,
        };
        let result = work(&session);
        let mut pool = self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if result.as_ref().is_err_and(lost) {
            // A token that lost one session lost them all (it restarted or reconnected).
            pool.clear();
        } else {
            pool.push(session);
        }
        result
    }

    fn error(&self, what: &str, error: Pkcs11Error) -> VaultError {
        VaultError::Hsm(format!("{what} (token `{}`): {error}", self.label))
    }

    fn find(&self, id: &str) -> Result<Vec<ObjectHandle>, VaultError> {
        self.with_session(|session| {
            session.find_objects(&[Attribute::Class(ObjectClass::SECRET_KEY), Attribute::Label(id.as_bytes().to_vec())])
        })
        .map_err(|error| self.error(&format!("cannot look key `{id}` up"), error))
    }

    /// Makes a new KEK inside the token, labelled `id`: AES-256, kept in the token, sensitive
    /// and never extractable, usable only to encrypt and decrypt.
    pub fn generate_kek(self: &Arc<Self>, id: &str) -> Result<HsmKek, VaultError> {
        if !self.find(id)?.is_empty() {
            return self.kek(id);
        }
        let template = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Wrap(false),
            Attribute::Unwrap(false),
            Attribute::Sign(false),
            Attribute::Verify(false),
            Attribute::Derive(false),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen(32.into()),
            Attribute::Label(id.as_bytes().to_vec()),
        ];
        self.with_session(|session| session.generate_key(&Mechanism::AesKeyGen, &template))
            .map_err(|error| self.error(&format!("cannot generate key `{id}`"), error))?;
        self.kek(id)
    }

    /// The KEK labelled `id`, which must exist once, as an AES key that cannot leave the token.
    pub fn kek(self: &Arc<Self>, id: &str) -> Result<HsmKek, VaultError> {
        let handle = match self.find(id)?.as_slice() {
            [handle] => *handle,
            [] => {
                return Err(VaultError::Hsm(format!(
                    "token `{}` holds no key-encryption key `{id}`: it was destroyed, or this is another token",
                    self.label
                )));
            }
            _ => {
                return Err(VaultError::Hsm(format!("token `{}` holds more than one key labelled `{id}`", self.label)));
            }
        };
        let attributes = self
            .with_session(|session| {
                session.get_attributes(
                    handle,
                    &[
                        AttributeType::KeyType,
                        AttributeType::ValueLen,
                        AttributeType::Token,
                        AttributeType::Sensitive,
                        AttributeType::AlwaysSensitive,
                        AttributeType::Extractable,
                        AttributeType::NeverExtractable,
                        AttributeType::Derive,
                        AttributeType::Wrap,
                    ],
                )
            })
            .map_err(|error| self.error(&format!("cannot read key `{id}`"), error))?;
        let holds = |wanted: &Attribute| attributes.iter().any(|attribute| attribute == wanted);
        // Generated in the token and never out of it: a key imported from known bytes and
        // marked sensitive afterwards is not always-sensitive, and is refused.
        let wanted = [
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen(32.into()),
            Attribute::Token(true),
            Attribute::Sensitive(true),
            Attribute::AlwaysSensitive(true),
            Attribute::Extractable(false),
            Attribute::NeverExtractable(true),
            Attribute::Derive(false),
            Attribute::Wrap(false),
        ];
        if !wanted.iter().all(holds) {
            return Err(VaultError::Hsm(format!(
                "key `{id}` in token `{}` is not a 256-bit AES key generated in the token, always sensitive and \
                 never extractable, usable for nothing but encryption; cordon will not use it",
                self.label
            )));
        }
        Ok(HsmKek { token: Arc::clone(self), id: id.to_string(), handle: Mutex::new(handle) })
    }

    /// Destroys the KEK labelled `id` (after a rotation away from it); absent is not an error.
    pub fn destroy_kek(&self, id: &str) -> Result<(), VaultError> {
        for handle in self.find(id)? {
            self.with_session(|session| session.destroy_object(handle))
                .map_err(|error| self.error(&format!("cannot destroy key `{id}`"), error))?;
        }
        Ok(())
    }
}

/// A KEK inside an HSM token.
pub struct HsmKek {
    token: Arc<HsmToken>,
    id: String,
    /// The key's handle, looked up again by label when the token was reloaded.
    handle: Mutex<ObjectHandle>,
}

impl HsmKek {
    /// Runs `operation` with the key; if the session or the handle was lost (the token
    /// restarted), looks the key up again in a new session and tries once more.
    fn operate<T>(
        &self,
        mut operation: impl FnMut(&Session, ObjectHandle) -> Result<T, Pkcs11Error>,
    ) -> Result<T, Pkcs11Error> {
        let handle = *self.handle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match self.token.with_session(|session| operation(session, handle)) {
            Err(error) if lost(&error) => {
                let found = self.token.with_session(|session| {
                    session.find_objects(&[
                        Attribute::Class(ObjectClass::SECRET_KEY),
                        Attribute::Label(self.id.as_bytes().to_vec()),
                    ])
                })?;
                let [handle] = found.as_slice() else { return Err(error) };
                *self.handle.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = *handle;
                self.token.with_session(|session| operation(session, *handle))
            }
            result => result,
        }
    }
}

impl std::fmt::Debug for HsmKek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HsmKek({} in {:?})", self.id, self.token)
    }
}

impl KeyEncryptionKey for HsmKek {
    fn id(&self) -> &str {
        &self.id
    }

    /// `version || nonce || ciphertext and tag`, as a key file's KEK writes it.
    fn wrap(&self, customer: &str, key: &DataKey) -> Result<Vec<u8>, VaultError> {
        let mut nonce = [0u8; NONCE_SIZE];
        random_fill(&mut nonce)?;
        let aad = wrap_context(customer);
        let mut iv = nonce;
        let ciphertext = self
            .operate(|session, handle| {
                let params = GcmParams::new(&mut iv, &aad, TAG_BITS.into())?;
                session.encrypt(&Mechanism::AesGcm(params), handle, key.bytes())
            })
            .map_err(|error| self.token.error(&format!("cannot wrap the data key of customer `{customer}`"), error))?;
        // A token may choose the IV itself and write it back: the IV stored is the one used.
        let mut wrapped = Vec::with_capacity(1 + NONCE_SIZE + ciphertext.len());
        wrapped.push(SEAL_VERSION);
        wrapped.extend_from_slice(&iv);
        wrapped.extend_from_slice(&ciphertext);
        Ok(wrapped)
    }

    fn unwrap(&self, customer: &str, wrapped: &[u8]) -> Result<DataKey, VaultError> {
        let undecryptable = || VaultError::Undecryptable { customer: customer.to_string(), what: "data key".into() };
        let (version, rest) = wrapped.split_first().ok_or_else(undecryptable)?;
        if *version != SEAL_VERSION || rest.len() < NONCE_SIZE + 16 {
            return Err(undecryptable());
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_SIZE);
        let mut iv: [u8; NONCE_SIZE] = nonce.try_into().map_err(|_| undecryptable())?;
        let aad = wrap_context(customer);
        let result = self.operate(|session, handle| {
            let params = GcmParams::new(&mut iv, &aad, TAG_BITS.into())?;
            session.decrypt(&Mechanism::AesGcm(params), handle, ciphertext)
        });
        let bytes = match result {
            Ok(bytes) => Zeroizing::new(bytes),
            // A wrong tag (altered, moved to another customer, another key) is the same
            // refusal a key file gives; anything else is the token's failure.
            // SoftHSM2 answers a wrong GCM tag with CKR_GENERAL_ERROR (others with
            // CKR_ENCRYPTED_DATA_INVALID); the key answering the readiness probe tells the
            // two apart for an operator.
            Err(Pkcs11Error::Pkcs11(
                RvError::EncryptedDataInvalid | RvError::EncryptedDataLenRange | RvError::GeneralError,
                _,
            )) => {
                return Err(undecryptable());
            }
            Err(error) => {
                return Err(self.token.error(&format!("cannot unwrap the data key of customer `{customer}`"), error));
            }
        };
        let array: [u8; 32] = bytes.as_slice().try_into().map_err(|_| VaultError::BadKey("data key"))?;
        DataKey::from_bytes(Zeroizing::new(array))
    }
}
