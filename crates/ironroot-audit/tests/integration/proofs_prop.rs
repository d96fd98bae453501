//! Property tests: proofs built from the tree plans verify for random sizes and indices, and any
//! modification of a proof (bit flip, dropped or added element, wrong index or size) fails.

use ironroot_audit::hash::{Hash, leaf_hash};
use ironroot_audit::proof::{ConsistencyProof, InclusionProof};
use ironroot_audit::tree::{consistency_plan, inclusion_plan, reference_root, root_plan};
use proptest::prelude::*;

fn leaves(n: u64, salt: u64) -> Vec<Hash> {
    (0..n)
        .map(|i| leaf_hash(&[salt.to_be_bytes(), i.to_be_bytes()].concat()))
        .collect()
}

fn node(l: &[Hash], level: u8, index: u64) -> Hash {
    let s = (index << level) as usize;
    reference_root(&l[s..s + (1usize << level)])
}

fn root(l: &[Hash], size: u64) -> Hash {
    root_plan(size)
        .resolve::<()>(|n| Ok(node(l, n.level, n.index)))
        .unwrap()[0]
}

fn inclusion(l: &[Hash], index: u64, size: u64) -> InclusionProof {
    let path = inclusion_plan(index, size)
        .resolve::<()>(|n| Ok(node(l, n.level, n.index)))
        .unwrap();
    InclusionProof { index, size, path }
}

fn consistency(l: &[Hash], size1: u64, size2: u64) -> ConsistencyProof {
    let path = consistency_plan(size1, size2)
        .resolve::<()>(|n| Ok(node(l, n.level, n.index)))
        .unwrap();
    ConsistencyProof { size1, size2, path }
}

/// A way to damage a proof path.
#[derive(Debug, Clone)]
enum Damage {
    FlipBit { element: usize, bit: usize },
    Drop { element: usize },
    Insert { at: usize, value: [u8; 32] },
}

fn damage_strategy() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), 0usize..256).prop_map(|(element, bit)| Damage::FlipBit { element, bit }),
        any::<usize>().prop_map(|element| Damage::Drop { element }),
        (any::<usize>(), any::<[u8; 32]>()).prop_map(|(at, value)| Damage::Insert { at, value }),
    ]
}

/// Applies the damage; `None` when the path has no element to damage.
fn apply(path: &[Hash], d: &Damage) -> Option<Vec<Hash>> {
    let mut p = path.to_vec();
    match d {
        Damage::FlipBit { element, bit } => {
            if p.is_empty() {
                return None;
            }
            let e = element % p.len();
            p[e].0[bit / 8] ^= 1 << (bit % 8);
        }
        Damage::Drop { element } => {
            if p.is_empty() {
                return None;
            }
            p.remove(element % p.len());
        }
        Damage::Insert { at, value } => {
            let at = at % (p.len() + 1);
            p.insert(at, Hash(*value));
        }
    }
    Some(p)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn inclusion_proofs_verify(size in 1u64..3000, seed in any::<u64>(), salt in any::<u64>()) {
        let l = leaves(size, salt);
        let index = seed % size;
        let proof = inclusion(&l, index, size);
        let verified = proof.verify(&l[index as usize], &root(&l, size)).unwrap();
        prop_assert_eq!(verified.index, index);
        prop_assert_eq!(verified.size, size);
    }

    #[test]
    fn consistency_proofs_verify(size2 in 1u64..3000, seed in any::<u64>(), salt in any::<u64>()) {
        let l = leaves(size2, salt);
        let size1 = 1 + seed % size2;
        let proof = consistency(&l, size1, size2);
        proof.verify(&root(&l, size1), &root(&l, size2)).unwrap();
    }

    #[test]
    fn damaged_inclusion_proofs_fail(
        size in 1u64..2000, seed in any::<u64>(), damage in damage_strategy(),
    ) {
        let l = leaves(size, 7);
        let index = seed % size;
        let proof = inclusion(&l, index, size);
        if let Some(path) = apply(&proof.path, &damage) {
            let bad = InclusionProof { path, ..proof };
            prop_assert!(bad.verify(&l[index as usize], &root(&l, size)).is_err());
        }
    }

    #[test]
    fn inclusion_proofs_fail_for_another_index_or_size(
        size in 2u64..2000, seed in any::<u64>(), other in any::<u64>(),
    ) {
        let l = leaves(size, 11);
        let index = seed % size;
        let proof = inclusion(&l, index, size);
        let r = root(&l, size);
        // Another index in the same tree, with the leaf of either position.
        let other_index = (index + 1 + other % (size - 1)) % size;
        let moved = InclusionProof { index: other_index, ..proof.clone() };
        prop_assert!(moved.verify(&l[index as usize], &r).is_err());
        prop_assert!(moved.verify(&l[other_index as usize], &r).is_err());
        // Another tree size, checked against that tree's true root.
        let other_size = index + 1 + other % (size - index);
        if other_size != size {
            let resized = InclusionProof { size: other_size, ..proof };
            prop_assert!(resized.verify(&l[index as usize], &root(&l, other_size)).is_err());
        }
    }

    #[test]
    fn damaged_consistency_proofs_fail(
        size2 in 2u64..2000, seed in any::<u64>(), damage in damage_strategy(),
    ) {
        let l = leaves(size2, 13);
        let size1 = 1 + seed % (size2 - 1);
        let proof = consistency(&l, size1, size2);
        let (r1, r2) = (root(&l, size1), root(&l, size2));
        if let Some(path) = apply(&proof.path, &damage) {
            let bad = ConsistencyProof { path, ..proof };
            prop_assert!(bad.verify(&r1, &r2).is_err());
        }
    }

    #[test]
    fn consistency_proofs_fail_for_other_sizes(
        size2 in 3u64..2000, seed in any::<u64>(), other in any::<u64>(),
    ) {
        let l = leaves(size2, 17);
        let size1 = 1 + seed % (size2 - 1);
        let proof = consistency(&l, size1, size2);
        let other1 = 1 + other % (size2 - 1);
        if other1 != size1 {
            let bad = ConsistencyProof { size1: other1, ..proof.clone() };
            prop_assert!(bad.verify(&root(&l, other1), &root(&l, size2)).is_err());
        }
        let other2 = size1 + 1 + other % (size2 - size1);
        if other2 != size2 {
            let bad = ConsistencyProof { size2: other2, ..proof };
            prop_assert!(bad.verify(&root(&l, size1), &root(&l, other2)).is_err());
        }
    }
}
