//! Every vector in `../shared/vectors`: RFC 6962 inclusion and consistency proofs (happy
//! paths and corruptions), the reference tree, and the signed-note examples.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use cordon_ledger::{Hash, Signer, TileStack, Verifier, leaf_hash, verify_consistency, verify_inclusion};
use serde::Deserialize;

use crate::support::vectors_dir;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InclusionVector {
    leaf_idx: u64,
    tree_size: u64,
    root: String,
    leaf_hash: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConsistencyVector {
    size1: u64,
    size2: u64,
    root1: String,
    root2: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for item in fs::read_dir(dir).unwrap() {
        let path = item.unwrap().path();
        if path.is_dir() {
            files.extend(json_files(&path));
        } else if path.extension().is_some_and(|extension| extension == "json") {
            files.push(path);
        }
    }
    files.sort();
    files
}

fn bytes(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(text).unwrap()
}

/// A proof hash of the wrong length makes the proof malformed, which is a rejection.
fn proof_hashes(proof: &Option<Vec<String>>) -> Option<Vec<Hash>> {
    proof.iter().flatten().map(|hash| Hash::from_slice(&bytes(hash))).collect()
}

/// Runs every vector file under `folder` through `check`, which returns the vector's
/// description, whether it wants an error, and the outcome. Both outcomes must occur, so a
/// verifier that accepts or rejects everything cannot pass.
fn check_vector_set<V: serde::de::DeserializeOwned>(
    folder: &str,
    expected_files: usize,
    check: impl Fn(&V) -> (String, bool, Result<(), String>),
) {
    let files = json_files(&vectors_dir().join(folder));
    assert_eq!(files.len(), expected_files, "the shared set `{folder}` has {expected_files} files");
    let mut accepted = 0;
    let mut failures = Vec::new();
    for file in &files {
        let vector: V = serde_json::from_str(&fs::read_to_string(file).unwrap()).unwrap();
        let (description, want_error, outcome) = check(&vector);
        accepted += usize::from(outcome.is_ok());
        if outcome.is_err() != want_error {
            failures.push(format!("{}: {description} (wantErr {want_error}, got {outcome:?})", file.display()));
        }
    }
    assert!(accepted > 0 && accepted < files.len(), "both outcomes occur: {accepted} accepted");
    assert!(failures.is_empty(), "{} of {} vectors failed:\n{}", failures.len(), files.len(), failures.join("\n"));
}

#[test]
fn inclusion_vectors() {
    check_vector_set("rfc6962/inclusion", 98, |vector: &InclusionVector| {
        let outcome = match (proof_hashes(&vector.proof), Hash::from_slice(&bytes(&vector.leaf_hash))) {
            (Some(proof), Some(leaf)) => {
                verify_inclusion(vector.leaf_idx, vector.tree_size, &leaf, &proof, &bytes(&vector.root))
                    .map_err(|error| error.to_string())
            }
            _ => Err("malformed hash".to_string()),
        };
        (vector.desc.clone(), vector.want_err, outcome)
    });
}

#[test]
fn consistency_vectors() {
    check_vector_set("rfc6962/consistency", 98, |vector: &ConsistencyVector| {
        let outcome = match proof_hashes(&vector.proof) {
            Some(proof) => {
                verify_consistency(vector.size1, vector.size2, &proof, &bytes(&vector.root1), &bytes(&vector.root2))
                    .map_err(|error| error.to_string())
            }
            None => Err("malformed hash".to_string()),
        };
        (vector.desc.clone(), vector.want_err, outcome)
    });
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReferenceTree {
    leaf_inputs: Vec<String>,
    roots_by_size: Vec<String>,
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|at| u8::from_str_radix(&text[at..at + 2], 16).unwrap()).collect()
}

#[test]
fn reference_tree_roots_for_sizes_0_to_8() {
    let tree: ReferenceTree =
        serde_json::from_str(&fs::read_to_string(vectors_dir().join("rfc6962/reference-tree.json")).unwrap()).unwrap();
    assert_eq!(tree.roots_by_size.len(), 9);
    let mut stack = TileStack::new();
    for (size, expected) in tree.roots_by_size.iter().enumerate() {
        assert_eq!(stack.root().to_hex(), *expected, "root of the reference tree at size {size}");
        if let Some(input) = tree.leaf_inputs.get(size) {
            stack.push(leaf_hash(&hex(input)), |_| {});
        }
    }
}

#[derive(Deserialize)]
struct NoteExample {
    vkey: String,
    note: String,
    x_mod_test_vkey: String,
    x_mod_test_skey: String,
}

fn note_example() -> NoteExample {
    serde_json::from_str(&fs::read_to_string(vectors_dir().join("signed-note-example.json")).unwrap()).unwrap()
}

#[test]
fn c2sp_signed_note_example_verifies() {
    let example = note_example();
    let verifier = Verifier::parse(&example.vkey).unwrap();
    assert_eq!(verifier.name(), "example.com/foo");
    assert_eq!(verifier.key_id(), 0x530d903a);
    assert_eq!(verifier.open(&example.note).unwrap(), "This is an example message.\n");
    assert_eq!(verifier.to_string(), example.vkey, "a verifier key prints as it was read");
}

#[test]
fn go_note_test_key_pair_matches_and_signs() {
    let example = note_example();
    let signer = Signer::parse(&example.x_mod_test_skey).unwrap();
    assert_eq!(signer.verifier().to_string(), example.x_mod_test_vkey);
    assert_eq!(signer.to_private_string().as_str(), example.x_mod_test_skey);
    let note = signer.sign("If you think cryptography is the answer to your problem,\n").unwrap();
    let verifier = Verifier::parse(&example.x_mod_test_vkey).unwrap();
    assert_eq!(verifier.open(&note).unwrap(), "If you think cryptography is the answer to your problem,\n");
    // Ed25519 is deterministic: the same key and text always give the same note.
    assert_eq!(note, signer.sign("If you think cryptography is the answer to your problem,\n").unwrap());
}
