//! Inclusion and consistency proofs with RFC 9162 semantics: verification as pure functions
//! over hashes, and generation over any source of perfect-subtree hashes (stored tiles, or
//! an in-memory tree in tests).

use crate::hash::{Hash, node_hash, split_point};

/// Why a proof was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("leaf index {index} is outside a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("the first size {size1} is larger than the second size {size2}")]
    SizesReversed { size1: u64, size2: u64 },
    #[error("a consistency proof from the empty tree proves nothing")]
    FromEmptyTree,
    #[error("the proof has {got} hashes where {expected} are needed")]
    WrongLength { got: usize, expected: usize },
    #[error("the proof hashes to a root that differs from the one given")]
    RootMismatch,
    #[error("the first root does not match the proof")]
    FirstRootMismatch,
}

/// Checks that `leaf_hash` is the leaf at `index` of the tree of `size` whose root is `root`.
/// RFC 9162 section 2.1.3.2. `root` is taken as bytes so that a malformed root is simply a
/// mismatch.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf_hash: &Hash,
    proof: &[Hash],
    root: &[u8],
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_proof_length(index, size);
    if proof.len() != expected {
        return Err(ProofError::WrongLength { got: proof.len(), expected });
    }
    let mut position = index;
    let mut last = size - 1;
    let mut running = *leaf_hash;
    for sibling in proof {
        if last == 0 {
            return Err(ProofError::WrongLength { got: proof.len(), expected });
        }
        if position & 1 == 1 || position == last {
            running = node_hash(sibling, &running);
            if position & 1 == 0 {
                while position & 1 == 0 && position != 0 {
                    position >>= 1;
                    last >>= 1;
                }
            }
        } else {
            running = node_hash(&running, sibling);
        }
        position >>= 1;
        last >>= 1;
    }
    if last != 0 {
        return Err(ProofError::WrongLength { got: proof.len(), expected });
    }
    if running.as_bytes().as_slice() != root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Checks that the tree of `size1` with `root1` is a prefix of the tree of `size2` with
/// `root2`. RFC 9162 section 2.1.4.2; a proof from size 0 is refused, as it proves nothing.
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    proof: &[Hash],
    root1: &[u8],
    root2: &[u8],
) -> Result<(), ProofError> {
    if size1 > size2 {
        return Err(ProofError::SizesReversed { size1, size2 });
    }
    if size1 == 0 {
        return Err(ProofError::FromEmptyTree);
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength { got: proof.len(), expected: 0 });
        }
        if root1 != root2 {
            return Err(ProofError::RootMismatch);
        }
        return Ok(());
    }
    let expected = consistency_proof_length(size1, size2);
    if proof.len() != expected {
        return Err(ProofError::WrongLength { got: proof.len(), expected });
    }
    // When size1 is a power of two, its root is itself the first node of the path.
    let first_root;
    let mut path: Vec<&Hash> = Vec::with_capacity(proof.len() + 1);
    if size1.is_power_of_two() {
        first_root = Hash::from_slice(root1).ok_or(ProofError::FirstRootMismatch)?;
        path.push(&first_root);
    }
    path.extend(proof.iter());

    let mut position = size1 - 1;
    let mut last = size2 - 1;
    while position & 1 == 1 {
        position >>= 1;
        last >>= 1;
    }
    let (first, rest) = path.split_first().ok_or(ProofError::WrongLength { got: 0, expected })?;
    let mut first_running = **first;
    let mut second_running = **first;
    for node in rest {
        if last == 0 {
            return Err(ProofError::WrongLength { got: proof.len(), expected });
        }
        if position & 1 == 1 || position == last {
            first_running = node_hash(node, &first_running);
            second_running = node_hash(node, &second_running);
            if position & 1 == 0 {
                while position & 1 == 0 && position != 0 {
                    position >>= 1;
                    last >>= 1;
                }
            }
        } else {
            second_running = node_hash(&second_running, node);
        }
        position >>= 1;
        last >>= 1;
    }
    if last != 0 {
        return Err(ProofError::WrongLength { got: proof.len(), expected });
    }
    if first_running.as_bytes().as_slice() != root1 {
        return Err(ProofError::FirstRootMismatch);
    }
    if second_running.as_bytes().as_slice() != root2 {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Number of hashes in an inclusion proof for `index` in a tree of `size` (index < size).
fn inclusion_proof_length(index: u64, size: u64) -> usize {
    // The path has one hash per level where the leaf's ancestor has a sibling: the bits of
    // the leaf's position below the highest bit where it differs from the last leaf, plus the
    // levels above where the right edge is ragged.
    let inner = u64::BITS - (index ^ (size - 1)).leading_zeros();
    let border = (index >> inner).count_ones();
    (inner + border) as usize
}

/// Number of hashes in a consistency proof from `size1` to `size2` (0 < size1 < size2).
fn consistency_proof_length(size1: u64, size2: u64) -> usize {
    let shift = size1.trailing_zeros();
    let index = (size1 - 1) >> shift;
    let size = ((size2 - 1) >> shift) + 1;
    let path = inclusion_proof_length(index, size);
    // A power-of-two first tree needs no extra seed hash; otherwise one more node.
    if index == 0 { path } else { path + 1 }
}

/// A source of the hashes of perfect subtrees: `subtree(height, index)` is the root of the
/// `2^height` leaves starting at leaf `index << height`.
pub trait SubtreeSource {
    type Error;
    fn subtree(&mut self, height: u32, index: u64) -> Result<Hash, Self::Error>;
}

/// RFC 6962's `MTH(D[start:end])`, where `start` is a multiple of the largest power of two
/// not above `end - start` (as every range in the proof recursions is).
pub fn range_hash<S: SubtreeSource>(source: &mut S, start: u64, end: u64) -> Result<Hash, S::Error> {
    let count = end - start;
    if count.is_power_of_two() && start.is_multiple_of(count) {
        let height = count.trailing_zeros();
        return source.subtree(height, start >> height);
    }
    let split = start + split_point(count);
    let left = range_hash(source, start, split)?;
    let right = range_hash(source, split, end)?;
    Ok(node_hash(&left, &right))
}

/// RFC 6962's audit path for leaf `index` in the tree of `size` (index < size).
pub fn inclusion_proof<S: SubtreeSource>(source: &mut S, index: u64, size: u64) -> Result<Vec<Hash>, S::Error> {
    let mut proof = Vec::new();
    inclusion_path(source, index, 0, size, &mut proof)?;
    Ok(proof)
}

fn inclusion_path<S: SubtreeSource>(
    source: &mut S,
    index: u64,
    start: u64,
    end: u64,
    proof: &mut Vec<Hash>,
) -> Result<(), S::Error> {
    if end - start <= 1 {
        return Ok(());
    }
    let split = start + split_point(end - start);
    if index < split {
        inclusion_path(source, index, start, split, proof)?;
        proof.push(range_hash(source, split, end)?);
    } else {
        inclusion_path(source, index, split, end, proof)?;
        proof.push(range_hash(source, start, split)?);
    }
    Ok(())
}

/// RFC 6962's consistency proof from `size1` to `size2` (0 < size1 <= size2).
pub fn consistency_proof<S: SubtreeSource>(source: &mut S, size1: u64, size2: u64) -> Result<Vec<Hash>, S::Error> {
    let mut proof = Vec::new();
    if size1 == 0 || size1 >= size2 {
        return Ok(proof);
    }
    consistency_subproof(source, size1, 0, size2, true, &mut proof)?;
    Ok(proof)
}

fn consistency_subproof<S: SubtreeSource>(
    source: &mut S,
    first_size: u64,
    start: u64,
    end: u64,
    whole_first_tree: bool,
    proof: &mut Vec<Hash>,
) -> Result<(), S::Error> {
    let count = end - start;
    if first_size == count {
        if !whole_first_tree {
            proof.push(range_hash(source, start, end)?);
        }
        return Ok(());
    }
    let split = split_point(count);
    if first_size <= split {
        consistency_subproof(source, first_size, start, start + split, whole_first_tree, proof)?;
        proof.push(range_hash(source, start + split, end)?);
    } else {
        consistency_subproof(source, first_size - split, start + split, end, false, proof)?;
        proof.push(range_hash(source, start, start + split)?);
    }
    Ok(())
}
