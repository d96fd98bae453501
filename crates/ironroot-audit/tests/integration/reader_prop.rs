//! Proofs generated from stored tiles (the path production uses) verify for random tree sizes,
//! batch splits and indices, across tile boundaries (256 leaves) and tile levels (65,536).

use std::sync::Arc;

use ironroot_audit::storage::{AppendBatch, CheckpointRow};
use ironroot_audit::tile::RightEdge;
use ironroot_audit::tree::reference_root;
use ironroot_audit::{Hash, LogReader, LogStorage, MemoryStorage, leaf_hash};
use proptest::prelude::*;

/// Stores the tree of `n` leaves, committed in batches cut at `cuts`.
fn store(n: u64, cuts: &[u64]) -> (MemoryStorage, Vec<Hash>, Vec<u64>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&i.to_le_bytes())).collect();
    let mut bounds: Vec<u64> = cuts.iter().map(|c| 1 + c % n).collect();
    bounds.push(n);
    bounds.sort_unstable();
    bounds.dedup();
    let storage = MemoryStorage::new();
    let mut edge = RightEdge::new();
    let mut start = 0;
    for &end in &bounds {
        for h in &leaves[start as usize..end as usize] {
            edge.push_leaf(*h);
        }
        let batch = AppendBatch {
            first_index: start,
            leaves: vec![Vec::new(); (end - start) as usize],
            tiles: edge.take_dirty(),
            checkpoint: CheckpointRow {
                size: end,
                note: String::new(),
            },
        };
        rt.block_on(storage.append(&batch)).unwrap();
        start = end;
    }
    (storage, leaves, bounds)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn stored_tile_proofs_verify(
        n in prop_oneof![1u64..2_000, 60_000u64..70_000],
        cuts in proptest::collection::vec(any::<u64>(), 0..6),
        picks in proptest::collection::vec(any::<u64>(), 1..8),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (storage, leaves, bounds) = store(n, &cuts);
        let reader = LogReader::new(Arc::new(storage));
        for &b in &bounds {
            let root = rt.block_on(reader.root(b)).unwrap();
            prop_assert_eq!(root, reference_root(&leaves[..b as usize]));
        }
        for &p in &picks {
            // Any size up to the stored one, not only checkpoint sizes.
            let size = 1 + p % n;
            let index = (p >> 20) % size;
            let root = reference_root(&leaves[..size as usize]);
            let proof = rt.block_on(reader.inclusion_proof(index, size)).unwrap();
            proof.verify(&leaves[index as usize], &root).unwrap();
            let size1 = 1 + (p >> 40) % size;
            let root1 = reference_root(&leaves[..size1 as usize]);
            let proof = rt.block_on(reader.consistency_proof(size1, size)).unwrap();
            proof.verify(&root1, &root).unwrap();
        }
    }
}
