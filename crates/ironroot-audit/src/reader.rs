//! Reading the stored tree: roots and proofs for any tree size up to the stored one, from
//! O(log n) tiles fetched in a single storage call.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use crate::bundle::ProofBundle;
use crate::hash::Hash;
use crate::proof::{ConsistencyProof, InclusionProof};
use crate::storage::{CheckpointRow, LogStorage, StorageError};
use crate::tile::{NodeLocation, Tile, TileId, locate};
use crate::tree::{NodeId, Plan, consistency_plan, inclusion_plan, root_plan};

/// Why a proof could not be produced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProveError {
    /// The leaf index is not below the tree size.
    #[error("entry {index} is not in a tree of {size} entries")]
    IndexOutOfRange {
        /// Requested leaf index.
        index: u64,
        /// Requested tree size.
        size: u64,
    },
    /// The sizes do not satisfy `0 < size1 <= size2`.
    #[error("cannot prove consistency from size {size1} to size {size2}")]
    BadSizes {
        /// Older tree size.
        size1: u64,
        /// Newer tree size.
        size2: u64,
    },
    /// The entry's row is not in storage.
    #[error("entry {0} is not stored")]
    MissingEntry(u64),
    /// Reading the stored tree failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Full tiles never change, so a reader may keep some; partial tiles are always re-read.
const CACHE_TILES: usize = 256;

/// Computes roots and proofs from the tiles in a [`LogStorage`].
///
/// A reader keeps a small cache of full tiles (at most 256, about 4 MiB), which makes
/// sequential work such as checking every pair of successive checkpoints read each tile once.
#[derive(Debug)]
pub struct LogReader<S> {
    storage: Arc<S>,
    cache: Mutex<HashMap<TileId, Arc<Tile>>>,
}

impl<S: LogStorage> LogReader<S> {
    /// A reader over `storage`.
    pub fn new(storage: Arc<S>) -> Self {
        Self {
            storage,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The underlying storage.
    pub fn storage(&self) -> &Arc<S> {
        &self.storage
    }

    /// Hashes of complete nodes, all fetched with one `read_tiles` call (minus cached tiles).
    pub async fn nodes(&self, nodes: &[NodeId]) -> Result<HashMap<NodeId, Hash>, StorageError> {
        let locs: Vec<(NodeId, NodeLocation)> = nodes.iter().map(|n| (*n, locate(*n))).collect();
        let mut need: BTreeMap<TileId, u64> = BTreeMap::new();
        for (_, loc) in &locs {
            let w = need.entry(loc.tile).or_default();
            *w = (*w).max(loc.min_width);
        }
        let mut tiles: HashMap<TileId, Arc<Tile>> = HashMap::new();
        {
            let cache = self.cache.lock().expect("tile cache lock");
            for id in need.keys() {
                if let Some(t) = cache.get(id) {
                    tiles.insert(*id, t.clone());
                }
            }
        }
        let missing: Vec<TileId> = need
            .keys()
            .filter(|id| !tiles.contains_key(id))
            .copied()
            .collect();
        if !missing.is_empty() {
            let read = self.storage.read_tiles(&missing).await?;
            let mut cache = self.cache.lock().expect("tile cache lock");
            for t in read {
                let t = Arc::new(t);
                if t.is_full() {
                    if cache.len() >= CACHE_TILES {
                        cache.clear();
                    }
                    cache.insert(t.id, t.clone());
                }
                tiles.insert(t.id, t);
            }
        }
        let mut out = HashMap::with_capacity(locs.len());
        for (node, loc) in locs {
            let hash = tiles.get(&loc.tile).and_then(|t| t.node(&loc)).ok_or(
                StorageError::MissingTile {
                    level: loc.tile.level,
                    index: loc.tile.index,
                },
            )?;
            out.insert(node, hash);
        }
        Ok(out)
    }

    async fn resolve(&self, plan: &Plan) -> Result<Vec<Hash>, StorageError> {
        let nodes = self.nodes(&plan.nodes()).await?;
        Ok(plan
            .resolve::<()>(|n| nodes.get(&n).copied().ok_or(()))
            .expect("every planned node was read"))
    }

    /// Root hash of the tree of the first `size` leaves (`size` must not exceed the stored
    /// tree).
    pub async fn root(&self, size: u64) -> Result<Hash, StorageError> {
        Ok(self.resolve(&root_plan(size)).await?[0])
    }

    /// Inclusion proof for leaf `index` in the tree of `size` leaves.
    pub async fn inclusion_proof(
        &self,
        index: u64,
        size: u64,
    ) -> Result<InclusionProof, ProveError> {
        if index >= size {
            return Err(ProveError::IndexOutOfRange { index, size });
        }
        let path = self.resolve(&inclusion_plan(index, size)).await?;
        Ok(InclusionProof { index, size, path })
    }

    /// Consistency proof from the tree of `size1` leaves to the tree of `size2` leaves.
    pub async fn consistency_proof(
        &self,
        size1: u64,
        size2: u64,
    ) -> Result<ConsistencyProof, ProveError> {
        if size1 == 0 || size1 > size2 {
            return Err(ProveError::BadSizes { size1, size2 });
        }
        let path = self.resolve(&consistency_plan(size1, size2)).await?;
        Ok(ConsistencyProof { size1, size2, path })
    }

    /// A self-contained proof that entry `index` is in the tree of `checkpoint` (see
    /// [`crate::bundle`]). The checkpoint's own signature is checked by whoever reads the
    /// bundle, not here.
    pub async fn proof_bundle(
        &self,
        index: u64,
        checkpoint: &CheckpointRow,
    ) -> Result<ProofBundle, ProveError> {
        let proof = self.inclusion_proof(index, checkpoint.size).await?;
        let leaf = self
            .storage
            .read_leaves(index, index + 1, 1)
            .await?
            .pop()
            .filter(|l| l.index == index)
            .ok_or(ProveError::MissingEntry(index))?;
        Ok(ProofBundle {
            index,
            leaf: leaf.data,
            path: proof.path,
            checkpoint_note: checkpoint.note.clone(),
        })
    }
}
