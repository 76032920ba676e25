//! The vault's errors. None of them carries a field value.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    #[error("the {0} is not usable")]
    BadKey(&'static str),
    #[error("cannot decrypt the {what} of customer `{customer}`: wrong key, or the ciphertext was altered or moved")]
    Undecryptable { customer: String, what: String },
    #[error("cannot decrypt {0}: wrong key, or the ciphertext was altered")]
    UndecryptableBytes(String),
    #[error(
        "the data key of customer `{customer}` is wrapped by key-encryption key `{kek_id}`, which is not the one loaded"
    )]
    WrongKek { customer: String, kek_id: String },
    #[error("a sealed record is damaged: {0}")]
    BadRecord(&'static str),
    #[error("field `{field}` of customer `{customer}` is not {expected}")]
    BadValue { customer: String, field: String, expected: &'static str },
    /// The HSM holding the key-encryption key failed or refused (the message names the
    /// module, the token and the operation; never a PIN or a key).
    #[error("HSM: {0}")]
    Hsm(String),
    #[error("the system random source failed: {0}")]
    Randomness(String),
}
