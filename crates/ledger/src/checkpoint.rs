//! C2SP tlog-checkpoint bodies and tlog-proof receipts.

use crate::hash::{Hash, leaf_hash};
use crate::note::{NoteError, Verifier};
use crate::proof::{ProofError, verify_inclusion};

const RECEIPT_HEADER: &str = "c2sp.org/tlog-proof@v1";

/// The signed claim of a log: its origin, tree size and root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

/// Why a checkpoint or receipt was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("the checkpoint is malformed: {0}")]
    Malformed(&'static str),
    #[error("the receipt is malformed: {0}")]
    MalformedReceipt(&'static str),
    #[error(transparent)]
    Note(#[from] NoteError),
    #[error("the checkpoint is for origin `{found}`, expected `{expected}`")]
    WrongOrigin { expected: String, found: String },
    #[error("the entry is not in the log at index {index}: {source}")]
    NotIncluded { index: u64, source: ProofError },
}

impl Checkpoint {
    /// The note text: `<origin>\n<size>\n<base64 root>\n`.
    pub fn to_text(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, self.root.to_base64())
    }

    /// Reads a checkpoint body (extension lines after the root are allowed and ignored).
    pub fn parse(text: &str) -> Result<Checkpoint, CheckpointError> {
        let mut lines = text.split('\n');
        let origin =
            lines.next().filter(|line| !line.is_empty()).ok_or(CheckpointError::Malformed("no origin line"))?;
        let size_line = lines.next().ok_or(CheckpointError::Malformed("no size line"))?;
        let size_is_canonical = !size_line.is_empty()
            && size_line.bytes().all(|byte| byte.is_ascii_digit())
            && (size_line == "0" || !size_line.starts_with('0'));
        if !size_is_canonical {
            return Err(CheckpointError::Malformed("the size is not a decimal number without leading zeros"));
        }
        let size = size_line.parse().map_err(|_| CheckpointError::Malformed("the size is out of range"))?;
        let root_line = lines.next().ok_or(CheckpointError::Malformed("no root line"))?;
        let root =
            Hash::from_base64(root_line).ok_or(CheckpointError::Malformed("the root is not a base64 SHA-256 hash"))?;
        Ok(Checkpoint { origin: origin.to_string(), size, root })
    }

    /// Verifies a signed checkpoint note with `verifier` and reads it. The origin must be the
    /// key's name, as cordon's logs sign with a key named after their origin.
    pub fn open(note: &str, verifier: &Verifier) -> Result<Checkpoint, CheckpointError> {
        let text = verifier.open(note)?;
        let checkpoint = Checkpoint::parse(text)?;
        if checkpoint.origin != verifier.name() {
            return Err(CheckpointError::WrongOrigin {
                expected: verifier.name().to_string(),
                found: checkpoint.origin,
            });
        }
        Ok(checkpoint)
    }
}

/// A C2SP tlog-proof receipt: entry `index` is in the tree of the signed checkpoint `note`.
pub fn format_receipt(index: u64, proof: &[Hash], note: &str) -> String {
    let mut receipt = format!("{RECEIPT_HEADER}\nindex {index}\n");
    for hash in proof {
        receipt.push_str(&hash.to_base64());
        receipt.push('\n');
    }
    receipt.push('\n');
    receipt.push_str(note);
    receipt
}

/// Checks a receipt for `entry` offline: the checkpoint's signature and the inclusion proof.
/// Returns the entry's index and the checkpoint it is proven against.
pub fn verify_receipt(receipt: &str, entry: &[u8], verifier: &Verifier) -> Result<(u64, Checkpoint), CheckpointError> {
    let malformed = CheckpointError::MalformedReceipt;
    let rest = receipt
        .strip_prefix(RECEIPT_HEADER)
        .and_then(|rest| rest.strip_prefix('\n'))
        .ok_or(malformed("the first line is not `c2sp.org/tlog-proof@v1`"))?;
    // Extra data is unauthenticated and cordon does not use it; skip it if present.
    let rest = match rest.strip_prefix("extra ") {
        Some(extra) => extra.split_once('\n').map(|(_, rest)| rest).ok_or(malformed("the extra line does not end"))?,
        None => rest,
    };
    let (index_line, rest) = rest.split_once('\n').ok_or(malformed("no index line"))?;
    let index: u64 = index_line
        .strip_prefix("index ")
        .and_then(|index| index.parse().ok())
        .ok_or(malformed("the index line is not `index N`"))?;
    // An empty proof (a tree of one entry) leaves the blank line right after the index; the
    // note itself holds a blank line too, so look for the first one only after proof lines.
    let (proof_lines, note) = match rest.strip_prefix('\n') {
        Some(note) => ("", note),
        None => rest.split_once("\n\n").ok_or(malformed("no blank line before the checkpoint"))?,
    };
    let proof = proof_lines
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| Hash::from_base64(line).ok_or(malformed("a proof line is not a base64 SHA-256 hash")))
        .collect::<Result<Vec<_>, _>>()?;
    let checkpoint = Checkpoint::open(note, verifier)?;
    verify_inclusion(index, checkpoint.size, &leaf_hash(entry), &proof, checkpoint.root.as_bytes())
        .map_err(|source| CheckpointError::NotIncluded { index, source })?;
    Ok((index, checkpoint))
}
