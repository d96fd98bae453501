//! Inclusion and consistency proofs, verified with exactly the algorithms of RFC 9162
//! §2.1.3.2 (inclusion) and §2.1.4.2 (consistency).
//!
//! The byte-level functions [`verify_inclusion_bytes`] and [`verify_consistency_bytes`] take
//! hashes of any length, as the RFC describes them; the typed proofs ([`InclusionProof`],
//! [`ConsistencyProof`]) wrap them for 32-byte SHA-256 values and return a `Verified…` value.

use crate::hash::{Hash, node_hash_bytes};

/// Why a proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The leaf index is not inside the tree (`index >= size`).
    #[error("leaf index {index} is outside a tree of size {size}")]
    IndexOutOfRange {
        /// The claimed leaf index.
        index: u64,
        /// The claimed tree size.
        size: u64,
    },
    /// The leaf hash is not a 32-byte SHA-256 value.
    #[error("leaf hash has {0} bytes, expected 32")]
    LeafHashLength(usize),
    /// The proof has more elements than the tree shape allows.
    #[error("proof has more elements than a tree of this size needs")]
    TooLong,
    /// The proof has fewer elements than the tree shape needs.
    #[error("proof has fewer elements than a tree of this size needs")]
    TooShort,
    /// The proof reproduces a different root than the one given.
    #[error("proof does not lead to the expected root hash")]
    RootMismatch,
    /// A consistency proof's first tree is larger than its second.
    #[error("first tree size {size1} is larger than second tree size {size2}")]
    SizesReversed {
        /// Size of the first (older) tree.
        size1: u64,
        /// Size of the second (newer) tree.
        size2: u64,
    },
    /// Consistency with the empty tree proves nothing (RFC 9162 requires `0 < first`).
    #[error("consistency from an empty tree is meaningless")]
    EmptyFirstTree,
    /// Equal tree sizes need an empty proof.
    #[error("tree sizes are equal but the proof is not empty")]
    UnexpectedProof,
    /// Different tree sizes need a non-empty consistency proof.
    #[error("consistency proof is empty")]
    EmptyProof,
}

/// RFC 9162 §2.1.3.2 inclusion verification over raw byte strings.
///
/// Returns `Ok(())` when `path` proves that `leaf_hash` is leaf `index` of the tree of `size`
/// leaves with root `root`.
pub fn verify_inclusion_bytes<P: AsRef<[u8]>>(
    index: u64,
    size: u64,
    leaf_hash: &[u8],
    path: &[P],
    root: &[u8],
) -> Result<(), ProofError> {
    // Step 1.
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    // The leaf hash is computed by the verifier itself; anything but 32 bytes is a caller error
    // that could otherwise "verify" a single-leaf tree whose root is the same malformed value.
    if leaf_hash.len() != crate::hash::HASH_LEN {
        return Err(ProofError::LeafHashLength(leaf_hash.len()));
    }
    // Steps 2 and 3.
    let mut f_n = index;
    let mut s_n = size - 1;
    let mut r = leaf_hash.to_vec();
    // Step 4.
    for p in path {
        let p = p.as_ref();
        if s_n == 0 {
            return Err(ProofError::TooLong);
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash_bytes(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash_bytes(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    // Step 5.
    if s_n != 0 {
        return Err(ProofError::TooShort);
    }
    if r != root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// RFC 9162 §2.1.4.2 consistency verification over raw byte strings, with the boundary cases
/// of the RFC's preconditions made explicit: `size1 <= size2`, `size1 > 0`, and equal sizes
/// are consistent only with an empty proof and identical roots.
pub fn verify_consistency_bytes<P: AsRef<[u8]>>(
    size1: u64,
    size2: u64,
    path: &[P],
    root1: &[u8],
    root2: &[u8],
) -> Result<(), ProofError> {
    if size1 > size2 {
        return Err(ProofError::SizesReversed { size1, size2 });
    }
    if size1 == 0 {
        return Err(ProofError::EmptyFirstTree);
    }
    if size1 == size2 {
        if !path.is_empty() {
            return Err(ProofError::UnexpectedProof);
        }
        return if root1 == root2 {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    // Step 1.
    if path.is_empty() {
        return Err(ProofError::EmptyProof);
    }
    // Step 2: if `first` is an exact power of 2, prepend `first_hash` to the path.
    let mut elems = path.iter().map(|p| p.as_ref());
    let first_elem: &[u8] = if size1.is_power_of_two() {
        root1
    } else {
        elems.next().expect("path is not empty")
    };
    // Step 3.
    let mut f_n = size1 - 1;
    let mut s_n = size2 - 1;
    // Step 4.
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    // Step 5.
    let mut fr = first_elem.to_vec();
    let mut sr = first_elem.to_vec();
    // Step 6.
    for c in elems {
        if s_n == 0 {
            return Err(ProofError::TooLong);
        }
        if f_n & 1 == 1 || f_n == s_n {
            fr = node_hash_bytes(c, &fr);
            sr = node_hash_bytes(c, &sr);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            sr = node_hash_bytes(&sr, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    // Step 7.
    if s_n != 0 {
        return Err(ProofError::TooShort);
    }
    if fr != root1 || sr != root2 {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// An inclusion proof: the audit path for leaf `index` in the tree of `size` leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// Zero-based index of the leaf.
    pub index: u64,
    /// Number of leaves in the tree the proof is for.
    pub size: u64,
    /// Sibling hashes from the leaf upwards (RFC 9162 `inclusion_path`).
    pub path: Vec<Hash>,
}

/// Evidence that a leaf hash is in a tree with a given root: returned only by a successful
/// [`InclusionProof::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedInclusion {
    /// Index of the proven leaf.
    pub index: u64,
    /// Size of the tree.
    pub size: u64,
    /// The proven leaf hash.
    pub leaf_hash: Hash,
    /// The root the leaf is included under.
    pub root: Hash,
}

impl InclusionProof {
    /// Checks the proof for `leaf_hash` against `root` (RFC 9162 §2.1.3.2).
    pub fn verify(&self, leaf_hash: &Hash, root: &Hash) -> Result<VerifiedInclusion, ProofError> {
        verify_inclusion_bytes(self.index, self.size, &leaf_hash.0, &self.path, &root.0)?;
        Ok(VerifiedInclusion {
            index: self.index,
            size: self.size,
            leaf_hash: *leaf_hash,
            root: *root,
        })
    }
}

/// A consistency proof between the tree of `size1` leaves and the tree of `size2` leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyProof {
    /// Size of the older tree.
    pub size1: u64,
    /// Size of the newer tree.
    pub size2: u64,
    /// RFC 9162 `consistency_path`.
    pub path: Vec<Hash>,
}

/// Evidence that the tree with root `root2` extends the tree with root `root1`: returned only by
/// a successful [`ConsistencyProof::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedConsistency {
    /// Size of the older tree.
    pub size1: u64,
    /// Size of the newer tree.
    pub size2: u64,
    /// Root of the older tree.
    pub root1: Hash,
    /// Root of the newer tree.
    pub root2: Hash,
}

impl ConsistencyProof {
    /// Checks that `root2` (size `size2`) extends `root1` (size `size1`), RFC 9162 §2.1.4.2.
    pub fn verify(&self, root1: &Hash, root2: &Hash) -> Result<VerifiedConsistency, ProofError> {
        verify_consistency_bytes(self.size1, self.size2, &self.path, &root1.0, &root2.0)?;
        Ok(VerifiedConsistency {
            size1: self.size1,
            size2: self.size2,
            root1: *root1,
            root2: *root2,
        })
    }
}
