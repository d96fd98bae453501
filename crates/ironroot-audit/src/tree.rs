//! Merkle tree math for trees of any size (RFC 6962 §2.1), independent of storage.
//!
//! Every hash a proof needs is either a *complete* subtree (a [`NodeId`]: `2^level` leaves
//! starting at a multiple of `2^level`), which never changes once the log has grown past it and
//! is therefore stored, or an *incomplete* subtree on the right edge of the tree, which is the
//! right-fold of the complete subtrees it decomposes into. A [`Plan`] lists, for each element of
//! a proof, the complete nodes to read and fold; storage then serves all of them in one read.

use crate::hash::{Hash, empty_root, node_hash};

/// A complete subtree: the `2^level` leaves starting at leaf `index << level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// Height above the leaves (0 = a leaf hash).
    pub level: u8,
    /// Position among the nodes of this level, from the left.
    pub index: u64,
}

impl NodeId {
    /// Creates a node id.
    pub const fn new(level: u8, index: u64) -> Self {
        Self { level, index }
    }
}

/// The complete subtrees that make up the RFC 6962 subtree `D[start:end]`, left to right.
///
/// `end - start` is split by its binary representation, highest bit first; `start` must be a
/// multiple of the largest of those powers of two, which holds for every subtree the RFC's
/// recursion produces. An empty range yields no nodes.
pub fn range_nodes(start: u64, end: u64) -> Vec<NodeId> {
    debug_assert!(start <= end);
    let mut out = Vec::new();
    let mut pos = start;
    let size = end - start;
    for level in (0..64u32).rev() {
        if size & (1u64 << level) != 0 {
            debug_assert_eq!(pos % (1u64 << level), 0, "range start is not aligned");
            out.push(NodeId::new(level as u8, pos >> level));
            pos += 1u64 << level;
        }
    }
    out
}

/// Folds the hashes of [`range_nodes`] into the subtree hash: `H(n0, H(n1, H(…, nk)))`.
///
/// An empty list folds to the empty-tree root.
pub fn fold_range(hashes: &[Hash]) -> Hash {
    match hashes.split_last() {
        None => empty_root(),
        Some((last, rest)) => rest.iter().rev().fold(*last, |acc, h| node_hash(h, &acc)),
    }
}

/// Largest power of two strictly less than `n` (`n >= 2`), the RFC 6962 split point `k`.
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// What to read and fold to build a proof or a root: one entry per output hash, each entry
/// being the complete nodes whose right-fold is that hash.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// One list of nodes per output hash, in output order.
    pub elements: Vec<Vec<NodeId>>,
}

impl Plan {
    /// All distinct nodes the plan reads, sorted.
    pub fn nodes(&self) -> Vec<NodeId> {
        let mut all: Vec<NodeId> = self.elements.iter().flatten().copied().collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Builds the output hashes, looking up every node with `lookup`.
    pub fn resolve<E>(
        &self,
        mut lookup: impl FnMut(NodeId) -> Result<Hash, E>,
    ) -> Result<Vec<Hash>, E> {
        self.elements
            .iter()
            .map(|nodes| {
                let hashes = nodes
                    .iter()
                    .map(|n| lookup(*n))
                    .collect::<Result<Vec<_>, E>>()?;
                Ok(fold_range(&hashes))
            })
            .collect()
    }
}

/// Plan for the root of the tree with `size` leaves (a single element).
pub fn root_plan(size: u64) -> Plan {
    Plan {
        elements: vec![range_nodes(0, size)],
    }
}

/// Plan for the inclusion proof of leaf `index` in the tree of `size` leaves
/// (RFC 6962 §2.1.1 `PATH(m, D[n])`), elements ordered from the leaf upwards.
///
/// Requires `index < size`.
pub fn inclusion_plan(index: u64, size: u64) -> Plan {
    assert!(index < size, "leaf index must be inside the tree");
    let mut elements = Vec::new();
    let (mut start, mut end) = (0u64, size);
    // Walk down from the root; each step contributes the sibling subtree. Collected top-down,
    // then reversed, because the proof lists the deepest sibling first.
    while end - start > 1 {
        let k = split_point(end - start);
        if index < start + k {
            elements.push(range_nodes(start + k, end));
            end = start + k;
        } else {
            elements.push(range_nodes(start, start + k));
            start += k;
        }
    }
    elements.reverse();
    Plan { elements }
}

/// Plan for the consistency proof from the tree of `size1` leaves to the tree of `size2` leaves
/// (RFC 6962 §2.1.2 `PROOF(m, D[n])`).
///
/// Requires `0 < size1 <= size2`; equal sizes give an empty proof.
pub fn consistency_plan(size1: u64, size2: u64) -> Plan {
    assert!(0 < size1 && size1 <= size2, "need 0 < size1 <= size2");
    let mut elements = Vec::new();
    let (mut start, mut end) = (0u64, size2);
    // `whole` is the RFC's flag b: true while the current subtree starts at leaf 0.
    let mut whole = true;
    loop {
        let m = size1 - start;
        let n = end - start;
        if m == n {
            if !whole {
                elements.push(range_nodes(start, end));
            }
            break;
        }
        let k = split_point(n);
        if m <= k {
            elements.push(range_nodes(start + k, end));
            end = start + k;
        } else {
            elements.push(range_nodes(start, start + k));
            start += k;
            whole = false;
        }
    }
    elements.reverse();
    Plan { elements }
}

/// Straightforward recursive RFC 6962 `MTH` over leaf hashes held in memory.
///
/// Used by tests as the reference the stored-tree code is compared with; O(n) time.
pub fn reference_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split_point(n as u64) as usize;
            node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
        }
    }
}

/// Reference RFC 6962 `PATH(m, D[n])` over in-memory leaf hashes (tests only).
pub fn reference_inclusion(index: usize, leaves: &[Hash]) -> Vec<Hash> {
    if leaves.len() <= 1 {
        return Vec::new();
    }
    let k = split_point(leaves.len() as u64) as usize;
    if index < k {
        let mut p = reference_inclusion(index, &leaves[..k]);
        p.push(reference_root(&leaves[k..]));
        p
    } else {
        let mut p = reference_inclusion(index - k, &leaves[k..]);
        p.push(reference_root(&leaves[..k]));
        p
    }
}

/// Reference RFC 6962 `PROOF(m, D[n])` over in-memory leaf hashes (tests only).
pub fn reference_consistency(size1: usize, leaves: &[Hash]) -> Vec<Hash> {
    fn sub(m: usize, d: &[Hash], whole: bool) -> Vec<Hash> {
        let n = d.len();
        if m == n {
            return if whole {
                Vec::new()
            } else {
                vec![reference_root(d)]
            };
        }
        let k = split_point(n as u64) as usize;
        if m <= k {
            let mut p = sub(m, &d[..k], whole);
            p.push(reference_root(&d[k..]));
            p
        } else {
            let mut p = sub(m - k, &d[k..], false);
            p.push(reference_root(&d[..k]));
            p
        }
    }
    sub(size1, leaves, true)
}

/// Incrementally computes tree roots over a stream of leaf hashes in O(log n) memory, keeping
/// the roots of the complete subtrees on the right edge (a "compact range" from leaf 0).
#[derive(Debug, Clone, Default)]
pub struct CompactRange {
    size: u64,
    /// Complete subtree roots, largest (leftmost) first; one per set bit of `size`.
    stack: Vec<Hash>,
}

impl CompactRange {
    /// An empty range (tree size 0).
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves appended so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends one leaf hash, calling `on_node` for every complete node that this completes
    /// (the leaf itself first, then each new parent upwards).
    pub fn push_with(&mut self, leaf: Hash, mut on_node: impl FnMut(NodeId, &Hash)) {
        let index = self.size;
        on_node(NodeId::new(0, index), &leaf);
        let mut h = leaf;
        let mut level = 0u8;
        // Each trailing one bit of the old size is a left sibling that now has a partner.
        let mut s = index;
        while s & 1 == 1 {
            let left = self.stack.pop().expect("stack holds one root per set bit");
            h = node_hash(&left, &h);
            level += 1;
            s >>= 1;
            on_node(NodeId::new(level, s), &h);
        }
        self.stack.push(h);
        self.size += 1;
    }

    /// Appends one leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        self.push_with(leaf, |_, _| {});
    }

    /// Root hash of the tree of the leaves appended so far.
    pub fn root(&self) -> Hash {
        fold_range(&self.stack)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(&(i as u64).to_be_bytes()))
            .collect()
    }

    /// Resolves a plan against nodes computed directly from the leaves.
    fn resolve(plan: &Plan, l: &[Hash]) -> Vec<Hash> {
        plan.resolve::<()>(|n| {
            let s = (n.index << n.level) as usize;
            Ok(reference_root(&l[s..s + (1usize << n.level)]))
        })
        .unwrap()
    }

    #[test]
    fn range_nodes_split_by_binary_size() {
        assert_eq!(
            range_nodes(0, 7),
            vec![NodeId::new(2, 0), NodeId::new(1, 2), NodeId::new(0, 6)]
        );
        assert_eq!(range_nodes(8, 12), vec![NodeId::new(2, 2)]);
        assert!(range_nodes(5, 5).is_empty());
    }

    #[test]
    fn plans_match_the_recursive_definitions() {
        let l = leaves(70);
        for n in 1..=l.len() {
            assert_eq!(
                resolve(&root_plan(n as u64), &l[..n]),
                vec![reference_root(&l[..n])]
            );
            for m in 0..n {
                assert_eq!(
                    resolve(&inclusion_plan(m as u64, n as u64), &l[..n]),
                    reference_inclusion(m, &l[..n]),
                    "inclusion {m} in {n}"
                );
            }
            for m in 1..=n {
                assert_eq!(
                    resolve(&consistency_plan(m as u64, n as u64), &l[..n]),
                    reference_consistency(m, &l[..n]),
                    "consistency {m} -> {n}"
                );
            }
        }
    }

    #[test]
    fn compact_range_tracks_the_root_and_reports_each_complete_node_once() {
        let l = leaves(300);
        let mut cr = CompactRange::new();
        let mut seen = std::collections::HashSet::new();
        for (i, h) in l.iter().enumerate() {
            cr.push_with(*h, |id, hash| {
                let s = (id.index << id.level) as usize;
                assert_eq!(*hash, reference_root(&l[s..s + (1usize << id.level)]));
                assert!(seen.insert(id), "node {id:?} reported twice");
            });
            assert_eq!(cr.root(), reference_root(&l[..=i]));
        }
        // A tree of n leaves has 2n - popcount(n) complete nodes.
        assert_eq!(seen.len(), 2 * 300 - 300u32.count_ones() as usize);
        assert_eq!(CompactRange::new().root(), empty_root());
    }
}
