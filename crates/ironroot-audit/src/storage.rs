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

/// Where the log lives. Implementations: [`MemoryStorage`] (tests) and `SqlStorage` (SQLite and
/// PostgreSQL through `ironroot-store`, feature `store`).
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

/// In-memory storage for tests and examples. Cloning shares the same data.
#[derive(Debug, Clone, Default)]
pub struct MemoryStorage {
    inner: Arc<Mutex<MemoryTables>>,
}

/// The "tables" of a [`MemoryStorage`], open to direct edits the way a database is open to
/// SQL: tamper tests change them behind the log's back and check that verification notices.
#[derive(Debug, Default, Clone)]
pub struct MemoryTables {
    /// Leaf index → canonical event bytes.
    pub leaves: BTreeMap<u64, Vec<u8>>,
    /// Tile id → tile bytes.
    pub tiles: BTreeMap<TileId, Vec<u8>>,
    /// Tree size → signed checkpoint note.
    pub checkpoints: BTreeMap<u64, String>,
    /// While set, every append fails without writing anything (tests of the error path).
    pub fail_appends: bool,
}

impl MemoryStorage {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `f` with the tables, for tamper tests (what SQL access is for a database).
    pub fn edit<R>(&self, f: impl FnOnce(&mut MemoryTables) -> R) -> R {
        f(&mut self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryTables> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters here (each append inserts whole values), so poisoning is ignored.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The error a failing in-memory store reports.
#[derive(Debug, thiserror::Error)]
#[error("injected in-memory storage failure")]
struct InjectedFailure;

/// An append would overwrite a stored leaf (one was added behind the writer's back).
#[derive(Debug, thiserror::Error)]
#[error("a leaf with index {0} is already stored")]
struct DuplicateLeaf(u64);

impl LogStorage for MemoryStorage {
    async fn append(&self, batch: &AppendBatch) -> Result<(), StorageError> {
        let mut g = self.lock();
        if g.fail_appends {
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
        let end = batch.first_index + batch.leaves.len() as u64;
        if let Some((&index, _)) = g.leaves.range(batch.first_index..end).next() {
            // What a primary key does in SQL: a row that is already there is not overwritten.
            return Err(StorageError::Backend {
                op: "append",
                source: Box::new(DuplicateLeaf(index)),
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
