//! The storage interface of the log, and an in-memory implementation for tests.
//!
//! A backend stores three tables: leaves (index → canonical event bytes), tiles (tile id →
//! hashes, see [`crate::tile`]) and checkpoints (tree size → signed note). One
//! [`AppendBatch`] — new leaves, the tiles they changed and the checkpoint over the new tree —
//! is written in **one atomic, durable transaction**, so after a crash the stored tree is always
//! exactly the tree of its latest checkpoint.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use crate::tile::{Tile, TileError, TileId};

/// One stored leaf as read back from storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLeaf {
    /// Leaf index (position in the log).
    pub index: u64,
    /// Canonical event bytes ([`crate::event::Event::encode`]).
    pub data: Vec<u8>,
}

/// One stored checkpoint row: the size column and the signed note. Verification parses and
/// checks the note; the column only orders and finds rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRow {
    /// Tree size the row claims to be for.
    pub size: u64,
    /// The signed checkpoint note.
    pub note: String,
}

/// Everything one group commit writes, atomically.
#[derive(Debug, Clone)]
pub struct AppendBatch {
    /// Index of the first new leaf; equals the stored tree size before the batch. Backends
    /// must refuse the batch if it does not (another writer got there first).
    pub first_index: u64,
    /// Canonical bytes of the new leaves, in order.
    pub leaves: Vec<Vec<u8>>,
    /// Tiles created or grown by the batch; each replaces any stored tile with the same id.
    pub tiles: Vec<Tile>,
    /// The signed checkpoint for tree size `first_index + leaves.len()`.
    pub checkpoint: CheckpointRow,
}

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The batch does not start at the stored tree size (concurrent writer or stale state).
    #[error("append at index {expected} refused: the stored log has {found} entries")]
    Conflict {
        /// The `first_index` of the batch.
        expected: u64,
        /// The tree size found in storage.
        found: u64,
    },
    /// A stored tile has an impossible length.
    #[error("stored tile is corrupt: {0}")]
    Tile(#[from] TileError),
    /// A tile needed for the requested tree size is absent or too narrow.
    #[error("tile {level}/{index} is missing or shorter than the tree requires")]
    MissingTile {
        /// Tile level.
        level: u8,
        /// Tile index.
        index: u64,
    },
    /// The database or file system reported an error.
    #[error("storage backend error during {op}: {source}")]
    Backend {
        /// What was being done (`append`, `read leaves`, …).
        op: &'static str,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Where the log lives. Implementations: [`MemoryStorage`] (tests), SQLite and PostgreSQL
/// (in `ironroot-store`-backed builds).
///
/// Readers never need more than O(log n) tiles per proof; no method loads the whole log.
pub trait LogStorage: Send + Sync + 'static {
    /// Writes the batch atomically and durably: when this returns `Ok`, all of it survives a
    /// crash; when it returns `Err`, none of it may be visible (backends whose commit outcome
    /// can be unknown must say so through `Backend` and the writer re-reads its state).
    fn append(&self, batch: &AppendBatch) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Up to `limit` leaves with `start <= index < end`, ordered by index. Missing rows are
    /// simply absent (verification reports the gap). SQL backends clamp `end` to `i64::MAX`.
    fn read_leaves(
        &self,
        start: u64,
        end: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StoredLeaf>, StorageError>> + Send;

    /// The requested tiles that exist, in any order.
    fn read_tiles(
        &self,
        ids: &[TileId],
    ) -> impl Future<Output = Result<Vec<Tile>, StorageError>> + Send;

    /// The checkpoint row with the largest size, if any.
    fn latest_checkpoint(
        &self,
    ) -> impl Future<Output = Result<Option<CheckpointRow>, StorageError>> + Send;

    /// Up to `limit` checkpoint rows with `size > after`, ordered by size.
    fn read_checkpoints(
        &self,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<CheckpointRow>, StorageError>> + Send;
}

/// In-memory storage for unit tests and examples. Cloning shares the same data.
#[derive(Debug, Clone, Default)]
pub struct MemoryStorage {
    inner: Arc<Mutex<MemoryInner>>,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct MemoryInner {
    pub(crate) leaves: BTreeMap<u64, Vec<u8>>,
    pub(crate) tiles: BTreeMap<TileId, Vec<u8>>,
    pub(crate) checkpoints: BTreeMap<u64, String>,
    /// When set, the next append fails without writing (tests of the error path).
    pub(crate) fail_next_append: bool,
}

impl MemoryStorage {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Direct access to the tables, for tamper tests inside this crate.
    #[cfg(test)]
    pub(crate) fn with_inner<R>(&self, f: impl FnOnce(&mut MemoryInner) -> R) -> R {
        f(&mut self.inner.lock().expect("memory storage lock"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        self.inner.lock().expect("memory storage lock")
    }
}

/// The error a poisoned or failing in-memory store reports.
#[derive(Debug, thiserror::Error)]
#[error("injected in-memory storage failure")]
struct InjectedFailure;

impl LogStorage for MemoryStorage {
    async fn append(&self, batch: &AppendBatch) -> Result<(), StorageError> {
        let mut g = self.lock();
        if std::mem::take(&mut g.fail_next_append) {
            return Err(StorageError::Backend {
                op: "append",
                source: Box::new(InjectedFailure),
            });
        }
        let size = g.checkpoints.keys().next_back().copied().unwrap_or(0);
        if batch.first_index != size {
            return Err(StorageError::Conflict {
                expected: batch.first_index,
                found: size,
            });
        }
        for (i, leaf) in batch.leaves.iter().enumerate() {
            g.leaves.insert(batch.first_index + i as u64, leaf.clone());
        }
        for t in &batch.tiles {
            g.tiles.insert(t.id, t.as_bytes().to_vec());
        }
        g.checkpoints
            .insert(batch.checkpoint.size, batch.checkpoint.note.clone());
        Ok(())
    }

    async fn read_leaves(
        &self,
        start: u64,
        end: u64,
        limit: usize,
    ) -> Result<Vec<StoredLeaf>, StorageError> {
        let g = self.lock();
        Ok(g.leaves
            .range(start..end.max(start))
            .take(limit)
            .map(|(i, d)| StoredLeaf {
                index: *i,
                data: d.clone(),
            })
            .collect())
    }

    async fn read_tiles(&self, ids: &[TileId]) -> Result<Vec<Tile>, StorageError> {
        let g = self.lock();
        ids.iter()
            .filter_map(|id| g.tiles.get(id).map(|d| (id, d)))
            .map(|(id, d)| Tile::from_bytes(*id, d.clone()).map_err(StorageError::from))
            .collect()
    }

    async fn latest_checkpoint(&self) -> Result<Option<CheckpointRow>, StorageError> {
        let g = self.lock();
        Ok(g.checkpoints
            .iter()
            .next_back()
            .map(|(size, note)| CheckpointRow {
                size: *size,
                note: note.clone(),
            }))
    }

    async fn read_checkpoints(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<CheckpointRow>, StorageError> {
        let g = self.lock();
        Ok(g.checkpoints
            .range(after.saturating_add(1)..)
            .take(limit)
            .map(|(size, note)| CheckpointRow {
                size: *size,
                note: note.clone(),
            })
            .collect())
    }
}
