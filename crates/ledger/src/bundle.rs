//! Evidence bundles: a tar file that proves, offline, that a set of entries is in the log.
//!
//! A bundle holds `README.md`, the log's `verifier-key`, a signed `checkpoint`, each entry's
//! bytes as `entries/<index>` with its C2SP tlog-proof receipt as `proofs/<index>` (against
//! that checkpoint), and a `MANIFEST` listing every other file with its SHA-256. One of the
//! entries, the *seal*, is a log entry written for the bundle that carries the manifest's
//! hash as `bundle-sha256=<hex>`: the log itself vouches for the manifest, and the manifest
//! for every byte of the README and the key. So any changed byte fails verification: in an
//! entry or proof the inclusion check, in the checkpoint its signature, in the README or key
//! the manifest, in the manifest the seal, and in the tar's own headers and padding the
//! strict reader, which accepts only what `write_bundle` writes.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::checkpoint::{Checkpoint, CheckpointError, verify_receipt};
use crate::note::Verifier;

const BLOCK: usize = 512;
const MANIFEST_HEADER: &str = "cordon evidence bundle v1";
/// The marker a seal entry carries before the manifest's hex SHA-256.
pub const SEAL_MARKER: &str = "bundle-sha256=";
/// Entries one bundle may hold.
pub const BUNDLE_ENTRIES_MAX: usize = 200_000;

/// What goes into a bundle.
#[derive(Debug, Clone)]
pub struct BundleParts {
    pub readme: String,
    pub verifier_key: String,
    /// The signed checkpoint note every receipt is against.
    pub checkpoint: String,
    /// Entry index, bytes, receipt; the seal among them.
    pub entries: Vec<(u64, Vec<u8>, String)>,
    pub seal: u64,
}

/// What a verified bundle proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleSummary {
    pub checkpoint: Checkpoint,
    pub key_id: u32,
    pub key_name: String,
    pub entries: usize,
    pub seal: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("the bundle is not a well-formed evidence tar: {0}")]
    Malformed(String),
    #[error("the bundle lacks `{0}`")]
    Missing(String),
    #[error("`{file}` does not match the manifest")]
    Altered { file: String },
    #[error("entry {index}: {source}")]
    Entry { index: u64, source: CheckpointError },
    #[error("the checkpoint does not verify: {0}")]
    Checkpoint(CheckpointError),
    #[error("the seal entry {0} does not carry this manifest's hash")]
    Seal(u64),
    #[error("the bundle's verifier key is not the one trusted: {found} (trusted {trusted})")]
    Untrusted { found: String, trusted: String },
}

/// The manifest text the seal entry's hash covers: the header, the log's key, and every
/// entry's index and hash, README and key hashes. Computed before the seal is written, so it
/// does not list the seal itself.
pub fn manifest(readme: &str, verifier_key: &str, entries: &[(u64, &[u8])]) -> String {
    let mut text = format!("{MANIFEST_HEADER}\n");
    text.push_str(&format!("file README.md {}\n", hex_sha256(readme.as_bytes())));
    text.push_str(&format!("file verifier-key {}\n", hex_sha256(verifier_key.as_bytes())));
    for (index, bytes) in entries {
        text.push_str(&format!("entry {index} {}\n", hex_sha256(bytes)));
    }
    text
}

pub fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Writes the bundle as an uncompressed POSIX ustar archive.
pub fn write_bundle(parts: BundleParts, manifest_text: String) -> Vec<u8> {
    bundle_chunks(parts, manifest_text).flatten().collect()
}

/// The bundle's archive as a sequence of chunks (one file, with its header and padding,
/// per chunk, then the end marker), so a server can stream it without building a second
/// copy in memory.
pub fn bundle_chunks(parts: BundleParts, manifest_text: String) -> impl Iterator<Item = Vec<u8>> + Send {
    let BundleParts { readme, verifier_key, checkpoint, entries, seal } = parts;
    let head = [
        ("README.md".to_string(), readme.into_bytes()),
        ("MANIFEST".to_string(), manifest_text.into_bytes()),
        ("verifier-key".to_string(), verifier_key.into_bytes()),
        ("checkpoint".to_string(), checkpoint.into_bytes()),
        ("seal".to_string(), seal.to_string().into_bytes()),
    ];
    let body = entries.into_iter().flat_map(|(index, bytes, receipt)| {
        [(format!("entries/{index}"), bytes), (format!("proofs/{index}"), receipt.into_bytes())]
    });
    head.into_iter()
        .chain(body)
        .map(|(name, contents)| {
            let mut chunk = Vec::with_capacity(BLOCK + contents.len() + BLOCK);
            add_file(&mut chunk, &name, &contents);
            chunk
        })
        .chain(std::iter::once(vec![0u8; 2 * BLOCK]))
}

/// Checks a bundle offline. With `trusted`, the bundle's key must be that key; without, the
/// bundle's own key is used and the caller should compare its id with one it trusts.
pub fn verify_bundle(bytes: &[u8], trusted: Option<&Verifier>) -> Result<BundleSummary, BundleError> {
    let files = read_tar(bytes)?;
    let text = |name: &str| file_text(&files, name);
    let key_text = text("verifier-key")?;
    let verifier =
        Verifier::parse(key_text.trim()).map_err(|error| BundleError::Malformed(format!("`verifier-key`: {error}")))?;
    if let Some(trusted) = trusted
        && trusted != &verifier
    {
        return Err(BundleError::Untrusted { found: verifier.to_string(), trusted: trusted.to_string() });
    }
    let note = text("checkpoint")?;
    let checkpoint = Checkpoint::open(note, &verifier).map_err(BundleError::Checkpoint)?;
    let seal: u64 =
        text("seal")?.trim().parse().map_err(|_| BundleError::Malformed("`seal` is not an index".into()))?;
    let mut entries: BTreeMap<u64, &[u8]> = BTreeMap::new();
    for (name, bytes) in &files {
        let Some(index) = name.strip_prefix("entries/") else { continue };
        let index: u64 =
            index.parse().map_err(|_| BundleError::Malformed(format!("`{name}` is not entries/<index>")))?;
        let receipt_name = format!("proofs/{index}");
        let receipt = text(&receipt_name)?;
        let (proven, against) =
            verify_receipt(receipt, bytes, &verifier).map_err(|source| BundleError::Entry { index, source })?;
        if proven != index || against != checkpoint || receipt.split("\n\n").nth(1).is_none() {
            return Err(BundleError::Altered { file: receipt_name });
        }
        if !receipt.ends_with(note) {
            return Err(BundleError::Altered { file: receipt_name });
        }
        entries.insert(index, bytes.as_slice());
    }
    for name in files.keys() {
        let known = matches!(name.as_str(), "README.md" | "MANIFEST" | "verifier-key" | "checkpoint" | "seal")
            || name.strip_prefix("entries/").is_some()
            || name
                .strip_prefix("proofs/")
                .is_some_and(|index| index.parse::<u64>().is_ok_and(|index| entries.contains_key(&index)));
        if !known {
            return Err(BundleError::Malformed(format!("unexpected file `{name}`")));
        }
    }
    let seal_bytes = entries.get(&seal).ok_or_else(|| BundleError::Missing(format!("entries/{seal}")))?;
    let listed: Vec<(u64, &[u8])> =
        entries.iter().filter(|(index, _)| **index != seal).map(|(index, bytes)| (*index, *bytes)).collect();
    let expected = manifest(text("README.md")?, key_text, &listed);
    if text("MANIFEST")? != expected {
        return Err(BundleError::Altered { file: "MANIFEST".into() });
    }
    let marker = format!("{SEAL_MARKER}{}", hex_sha256(expected.as_bytes()));
    if !String::from_utf8_lossy(seal_bytes).contains(&marker) {
        return Err(BundleError::Seal(seal));
    }
    Ok(BundleSummary {
        checkpoint,
        key_id: verifier.key_id(),
        key_name: verifier.name().to_string(),
        entries: entries.len(),
        seal,
    })
}

fn file_text<'a>(files: &'a BTreeMap<String, Vec<u8>>, name: &str) -> Result<&'a str, BundleError> {
    let bytes = files.get(name).ok_or_else(|| BundleError::Missing(name.into()))?;
    std::str::from_utf8(bytes).map_err(|_| BundleError::Malformed(format!("`{name}` is not UTF-8")))
}

fn add_file(out: &mut Vec<u8>, name: &str, contents: &[u8]) {
    out.extend_from_slice(&tar_header(name, contents.len() as u64));
    out.extend_from_slice(contents);
    out.extend(std::iter::repeat_n(0u8, padding(contents.len())));
}

/// The size of a ustar block: headers, and the unit file contents are padded to.
pub const TAR_BLOCK: usize = BLOCK;

/// The one ustar header cordon writes for a regular file (mode 0644, no owner, time 0), for
/// archives written as a stream (backups). `name` must fit in 100 bytes and `size` in 11
/// octal digits; callers check.
pub fn tar_header(name: &str, size: u64) -> [u8; BLOCK] {
    let mut header = [0u8; BLOCK];
    put(&mut header, 0, name.as_bytes());
    put(&mut header, 100, b"0000644\0");
    put(&mut header, 108, b"0000000\0");
    put(&mut header, 116, b"0000000\0");
    put(&mut header, 124, format!("{size:011o}\0").as_bytes());
    put(&mut header, 136, b"00000000000\0");
    put(&mut header, 148, b"        ");
    put(&mut header, 156, b"0");
    put(&mut header, 257, b"ustar\0");
    put(&mut header, 263, b"00");
    let checksum: u32 = header.iter().map(|byte| u32::from(*byte)).sum();
    put(&mut header, 148, format!("{checksum:06o}\0 ").as_bytes());
    header
}

fn put(block: &mut [u8; BLOCK], at: usize, bytes: &[u8]) {
    if let Some(slot) = block.get_mut(at..at + bytes.len()) {
        slot.copy_from_slice(bytes);
    }
}

fn padding(length: usize) -> usize {
    (BLOCK - length % BLOCK) % BLOCK
}

/// Reads exactly the archives `write_bundle` makes: every header byte is rebuilt and
/// compared, padding and the end blocks must be zeros, names are unique.
fn read_tar(bytes: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, BundleError> {
    let malformed = |what: &str| BundleError::Malformed(what.to_string());
    let mut files = BTreeMap::new();
    let mut at = 0;
    loop {
        let header = bytes.get(at..at + BLOCK).ok_or_else(|| malformed("the archive ends inside a header"))?;
        if header.iter().all(|byte| *byte == 0) {
            let rest = bytes.get(at..).unwrap_or_default();
            if rest.len() != 2 * BLOCK || rest.iter().any(|byte| *byte != 0) {
                return Err(malformed("the archive does not end with exactly two zero blocks"));
            }
            break;
        }
        let name_field = header.get(..100).unwrap_or_default();
        let name_length = name_field.iter().position(|byte| *byte == 0).unwrap_or(100);
        let name = std::str::from_utf8(name_field.get(..name_length).unwrap_or_default())
            .map_err(|_| malformed("a file name is not UTF-8"))?
            .to_string();
        let size_field = std::str::from_utf8(header.get(124..135).unwrap_or_default())
            .map_err(|_| malformed("a size field is not text"))?;
        let size = usize::from_str_radix(size_field, 8).map_err(|_| malformed("a size field is not octal"))?;
        let contents = bytes.get(at + BLOCK..at + BLOCK + size).ok_or_else(|| malformed("a file is cut short"))?;
        let mut rebuilt = Vec::with_capacity(BLOCK);
        add_file(&mut rebuilt, &name, contents);
        let padded = BLOCK + size + padding(size);
        if bytes.get(at..at + padded) != Some(rebuilt.as_slice()) {
            return Err(BundleError::Malformed(format!("the header or padding of `{name}` was altered")));
        }
        if files.insert(name.clone(), contents.to_vec()).is_some() {
            return Err(BundleError::Malformed(format!("`{name}` appears twice")));
        }
        if files.len() > 2 * BUNDLE_ENTRIES_MAX + 8 {
            return Err(malformed("too many files"));
        }
        at += padded;
    }
    Ok(files)
}
