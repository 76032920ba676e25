//! C2SP signed notes with Ed25519 keys: key strings, key IDs, signing and verification.
//!
//! A verifier key reads `<name>+<hex key id>+<base64(0x01 || public key)>`; a signing key
//! the same with a `PRIVATE+KEY+` prefix and the 32-byte seed in place of the public key.
//! The key ID is the first four bytes of `SHA-256(name || 0x0A || 0x01 || public key)`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The signature type byte of Ed25519 keys in C2SP signed notes.
const ED25519_TYPE: u8 = 0x01;
const PRIVATE_PREFIX: &str = "PRIVATE+KEY+";
/// A signature line starts with an em dash and a space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// Why a key or note was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("key name `{0}` is not valid: it must be non-empty with no `+` or white space")]
    BadKeyName(String),
    #[error("`{0}` is not a verifier key: expected `<name>+<hex id>+<base64 key>`")]
    BadVerifierKey(String),
    #[error("the signing key is malformed: expected `PRIVATE+KEY+<name>+<hex id>+<base64 key>`")]
    BadSigningKey,
    #[error("the key ID in key `{name}` does not match its key")]
    KeyIdMismatch { name: String },
    #[error("cannot generate a key: the system random source failed: {0}")]
    Randomness(String),
    #[error("the note is malformed: {0}")]
    Malformed(&'static str),
    #[error("the note carries no signature by key `{name}`")]
    NotSigned { name: String },
    #[error("the signature by key `{name}` does not verify: the note was altered or signed by another key")]
    BadSignature { name: String },
}

/// A public key that checks notes.
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Verifier({self})")
    }
}

impl Verifier {
    /// Reads a verifier key string.
    pub fn parse(text: &str) -> Result<Verifier, NoteError> {
        let bad = || NoteError::BadVerifierKey(text.to_string());
        let mut parts = text.trim().splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_base64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        check_name(name)?;
        let key_id = parse_key_id(id_hex).ok_or_else(bad)?;
        let bytes = BASE64.decode(key_base64).map_err(|_| bad())?;
        let key_bytes = typed_key(&bytes).ok_or_else(bad)?;
        let key = VerifyingKey::from_bytes(&key_bytes).map_err(|_| bad())?;
        if key_id != compute_key_id(name, &key_bytes) {
            return Err(NoteError::KeyIdMismatch { name: name.to_string() });
        }
        Ok(Verifier { name: name.to_string(), key_id, key })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// Checks that `note` carries a valid signature by this key, and returns the signed text
    /// (which ends with a newline). Signatures by other keys are ignored.
    pub fn open<'a>(&self, note: &'a str) -> Result<&'a str, NoteError> {
        let (text, signatures) = split_note(note)?;
        let mut found = false;
        for line in signatures.lines() {
            let Some(rest) = line.strip_prefix(SIGNATURE_PREFIX) else {
                return Err(NoteError::Malformed("a signature line does not start with `\u{2014} `"));
            };
            let Some((name, signature_base64)) = rest.split_once(' ') else {
                return Err(NoteError::Malformed("a signature line has no signature"));
            };
            if name != self.name {
                continue;
            }
            let Ok(bytes) = BASE64.decode(signature_base64) else {
                return Err(NoteError::Malformed("a signature is not valid base64"));
            };
            let (Some(id_bytes), Some(signature_bytes)) = (bytes.get(..4), bytes.get(4..)) else {
                continue;
            };
            let Ok(id_array) = <[u8; 4]>::try_from(id_bytes) else { continue };
            let key_id = u32::from_be_bytes(id_array);
            if key_id != self.key_id {
                continue;
            }
            found = true;
            let signature = <[u8; 64]>::try_from(signature_bytes)
                .map(|bytes| Signature::from_bytes(&bytes))
                .map_err(|_| NoteError::BadSignature { name: self.name.clone() })?;
            self.key
                .verify_strict(text.as_bytes(), &signature)
                .map_err(|_| NoteError::BadSignature { name: self.name.clone() })?;
        }
        if found { Ok(text) } else { Err(NoteError::NotSigned { name: self.name.clone() }) }
    }
}

impl std::fmt::Display for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut typed = vec![ED25519_TYPE];
        typed.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{:08x}+{}", self.name, self.key_id, BASE64.encode(typed))
    }
}

/// A private key that signs notes. Its seed is wiped from memory when dropped.
pub struct Signer {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        write!(f, "Signer({}+{:08x})", self.name, self.key_id)
    }
}

impl Signer {
    /// A fresh key from the operating system's random source.
    pub fn generate(name: &str) -> Result<Signer, NoteError> {
        check_name(name)?;
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(|error| NoteError::Randomness(error.to_string()))?;
        Ok(Signer::from_seed(name, &seed))
    }

    fn from_seed(name: &str, seed: &[u8; 32]) -> Signer {
        let key = SigningKey::from_bytes(seed);
        let key_id = compute_key_id(name, key.verifying_key().as_bytes());
        Signer { name: name.to_string(), key_id, key }
    }

    /// Reads a `PRIVATE+KEY+...` string, checking that its key ID matches the key.
    pub fn parse(text: &str) -> Result<Signer, NoteError> {
        let rest = text.trim().strip_prefix(PRIVATE_PREFIX).ok_or(NoteError::BadSigningKey)?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_base64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::BadSigningKey);
        };
        check_name(name)?;
        let key_id = parse_key_id(id_hex).ok_or(NoteError::BadSigningKey)?;
        let bytes = Zeroizing::new(BASE64.decode(key_base64).map_err(|_| NoteError::BadSigningKey)?);
        let seed = Zeroizing::new(typed_key(&bytes).ok_or(NoteError::BadSigningKey)?);
        let signer = Signer::from_seed(name, &seed);
        if signer.key_id != key_id {
            return Err(NoteError::KeyIdMismatch { name: name.to_string() });
        }
        Ok(signer)
    }

    /// The `PRIVATE+KEY+...` string, for the key file only.
    pub fn to_private_string(&self) -> Zeroizing<String> {
        let mut typed = Zeroizing::new(vec![ED25519_TYPE]);
        typed.extend_from_slice(self.key.as_bytes());
        Zeroizing::new(format!("{PRIVATE_PREFIX}{}+{:08x}+{}", self.name, self.key_id, BASE64.encode(&*typed)))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn verifier(&self) -> Verifier {
        Verifier { name: self.name.clone(), key_id: self.key_id, key: self.key.verifying_key() }
    }

    /// Signs `text`, which must be non-empty and end with a newline; returns the whole note.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        if text.is_empty() || !text.ends_with('\n') {
            return Err(NoteError::Malformed("the text must be non-empty and end with a newline"));
        }
        let signature = self.key.sign(text.as_bytes());
        let mut bytes = Vec::with_capacity(4 + 64);
        bytes.extend_from_slice(&self.key_id.to_be_bytes());
        bytes.extend_from_slice(&signature.to_bytes());
        Ok(format!("{text}\n{SIGNATURE_PREFIX}{} {}\n", self.name, BASE64.encode(bytes)))
    }
}

/// `SHA-256(name || 0x0A || 0x01 || public key)[:4]`, big-endian.
fn compute_key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update([b'\n', ED25519_TYPE]);
    hasher.update(public_key);
    let digest: [u8; 32] = hasher.finalize().into();
    let [a, b, c, d, ..] = digest;
    u32::from_be_bytes([a, b, c, d])
}

fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        return Err(NoteError::BadKeyName(name.to_string()));
    }
    Ok(())
}

fn parse_key_id(hex: &str) -> Option<u32> {
    if hex.len() != 8 || !hex.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

/// Strips the Ed25519 type byte from a typed 33-byte key.
fn typed_key(bytes: &[u8]) -> Option<[u8; 32]> {
    match bytes.split_first() {
        Some((&ED25519_TYPE, key)) => <[u8; 32]>::try_from(key).ok(),
        _ => None,
    }
}

/// Splits a note at its last blank line into the signed text (with its final newline) and
/// the signature lines.
fn split_note(note: &str) -> Result<(&str, &str), NoteError> {
    if !note.ends_with('\n') {
        return Err(NoteError::Malformed("a note must end with a newline"));
    }
    let split = note.rfind("\n\n").ok_or(NoteError::Malformed("no blank line before the signatures"))?;
    let text = note.get(..=split).ok_or(NoteError::Malformed("no text"))?;
    let signatures = note.get(split + 2..).ok_or(NoteError::Malformed("no signatures"))?;
    if signatures.is_empty() {
        return Err(NoteError::Malformed("no signature lines"));
    }
    Ok((text, signatures))
}
