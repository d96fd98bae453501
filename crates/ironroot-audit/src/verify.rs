//! Full verification of a stored log, naming the first tampered entry.
//!
//! ```text
//!  leaves 0..n ──hash──► recomputed tree (compact range, O(log n) memory)
//!                           │  every complete node compared with the stored tiles
//!                           ▼
//!  at each checkpoint size: signature ✓, recomputed root = signed root ✓,
//!                           consistency proof (from stored tiles) previous → this ✓
//!  witness / trusted checkpoints: same root at their size ✓, not larger than the log ✓
//! ```
//!
//! Attribution: a mismatch between a recomputed hash and a stored tile hash is judged at the
//! next signed checkpoint. If the recomputed root still matches the signature, the entries are
//! intact and the tile was altered; otherwise the entries were altered, and the report names the
//! exact entry when its leaf hash disagrees with the stored one, or the smallest range the
//! signed checkpoints allow when the attacker also rewrote the tree hashes.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::checkpoint::{CheckpointError, SignedCheckpoint};
use crate::hash::{Hash, leaf_hash};
use crate::note::NoteVerifier;
use crate::proof::ProofError;
use crate::reader::{LogReader, ProveError};
use crate::storage::{CheckpointRow, LogStorage, StorageError};
use crate::tile::{Tile, TileId, locate};
use crate::tree::{CompactRange, NodeId};

/// What verification found wrong: the first problem in log order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tamper {
    /// The row of this entry is gone while later entries remain.
    MissingEntry {
        /// Index of the missing entry.
        index: u64,
    },
    /// Entries from `entries` on are gone although a checkpoint covers them.
    Truncated {
        /// Number of entries still stored (the first missing index).
        entries: u64,
        /// Size of the largest stored checkpoint.
        checkpoint_size: u64,
    },
    /// The entry's content does not hash to what the tree recorded and signed for it.
    AlteredEntry {
        /// Index of the altered entry.
        index: u64,
    },
    /// The entry holds the content recorded for another position (reordered or renumbered).
    MovedEntry {
        /// Index where the content was found.
        index: u64,
        /// Index the content was recorded at.
        recorded_at: u64,
    },
    /// An entry in `start..end` was altered and the stored tree hashes rewritten to match (or
    /// the checkpoint at `end` was replaced by one signed with the log key): the entries do not
    /// hash to the signed root at `end`, the first checkpoint covering the change.
    AlteredRange {
        /// First index that may be altered.
        start: u64,
        /// One past the last index that may be altered (a checkpoint size).
        end: u64,
    },
    /// Stored tree hashes were altered or removed (entries intact, proofs would fail).
    TreeHashes {
        /// Tile level.
        level: u8,
        /// Tile index.
        index: u64,
    },
    /// A stored checkpoint is forged or damaged.
    BadCheckpoint {
        /// The row's size column.
        size: u64,
        /// Why it was rejected.
        reason: CheckpointError,
    },
    /// Two successive checkpoints could not be proven consistent from the stored tree.
    Inconsistent {
        /// Older checkpoint size.
        size1: u64,
        /// Newer checkpoint size.
        size2: u64,
        /// What failed.
        reason: ProofError,
    },
    /// Entries from `index` on are not covered by any signed checkpoint.
    UnsignedEntries {
        /// First unsigned entry.
        index: u64,
    },
    /// An external checkpoint (witness file or trusted copy) is for a larger tree than the
    /// database holds: the database was rolled back or truncated.
    Rollback {
        /// Entries in the database.
        db_size: u64,
        /// Size of the external checkpoint.
        external_size: u64,
    },
    /// The database's tree at an external checkpoint's size has another root: history was
    /// rewritten (or the database replaced by another log).
    Fork {
        /// The external checkpoint's size.
        size: u64,
    },
    /// An external checkpoint given to verification is not validly signed by this log.
    BadExternalCheckpoint {
        /// Why it was rejected.
        reason: CheckpointError,
    },
}

impl fmt::Display for Tamper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tamper::MissingEntry { index } => write!(f, "entry {index} is missing (row deleted)"),
            Tamper::Truncated {
                entries,
                checkpoint_size,
            } => write!(
                f,
                "log truncated: entries {entries}..{checkpoint_size} are missing although a signed \
                 checkpoint covers {checkpoint_size} entries"
            ),
            Tamper::AlteredEntry { index } => write!(
                f,
                "entry {index} was altered: its content does not match the hash recorded for it"
            ),
            Tamper::MovedEntry { index, recorded_at } => write!(
                f,
                "entry {index} holds the content recorded for entry {recorded_at}: rows were \
                 reordered, or deleted and renumbered"
            ),
            Tamper::AlteredRange { start, end } => write!(
                f,
                "an entry in {start}..{end} was altered together with its tree hashes, or the \
                 checkpoint at size {end} was replaced: the entries do not match that checkpoint"
            ),
            Tamper::TreeHashes { level, index } => write!(
                f,
                "stored tree hashes (tile {level}/{index}) were altered; the entries themselves match \
                 their signed checkpoints"
            ),
            Tamper::BadCheckpoint { size, reason } => {
                write!(
                    f,
                    "checkpoint for size {size} is forged or damaged: {reason}"
                )
            }
            Tamper::Inconsistent {
                size1,
                size2,
                reason,
            } => write!(
                f,
                "checkpoints at sizes {size1} and {size2} cannot be proven consistent: {reason}"
            ),
            Tamper::UnsignedEntries { index } => write!(
                f,
                "entries from {index} on are not covered by any signed checkpoint (added outside \
                 the writer, or the latest checkpoint was deleted)"
            ),
            Tamper::Rollback {
                db_size,
                external_size,
            } => write!(
                f,
                "database rolled back or truncated: it has {db_size} entries but a checkpoint held \
                 outside it covers {external_size}; entries {db_size}..{external_size} are missing"
            ),
            Tamper::Fork { size } => write!(
                f,
                "database history differs from the checkpoint held outside it at size {size}: \
                 entries before {size} were rewritten"
            ),
            Tamper::BadExternalCheckpoint { reason } => {
                write!(f, "external checkpoint is not valid for this log: {reason}")
            }
        }
    }
}

/// Why verification did not succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The log was tampered with; the first problem found.
    #[error("audit log tampered: {0}")]
    Tampered(Tamper),
    /// Reading storage failed (nothing is concluded about tampering).
    #[error("reading the audit log: {0}")]
    Storage(#[from] StorageError),
}

impl From<Tamper> for VerifyError {
    fn from(t: Tamper) -> Self {
        VerifyError::Tampered(t)
    }
}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedLog {
    /// Number of entries.
    pub size: u64,
    /// Root hash over all entries (equal to the latest signed checkpoint's root).
    pub root: Hash,
    /// Number of checkpoints checked.
    pub checkpoints: u64,
    /// The latest checkpoint note.
    pub latest_checkpoint: Option<String>,
    /// Largest external (witness or trusted) checkpoint size that matched, if any.
    pub external_size: Option<u64>,
}

/// Inputs besides the storage.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Checkpoints held outside the database (witness file contents, operator copies).
    pub external_checkpoints: Vec<String>,
    /// Leaves read per storage call.
    pub page: u64,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            external_checkpoints: Vec::new(),
            page: 8192,
        }
    }
}

/// Compares recomputed nodes with stored tiles, one tile per tile level at a time.
struct TileChecker<S> {
    storage: Arc<S>,
    current: BTreeMap<u8, Option<Tile>>,
}

impl<S: LogStorage> TileChecker<S> {
    /// The stored hash of a node, `None` if its tile is absent or too short.
    async fn stored(&mut self, node: NodeId) -> Result<Option<Hash>, StorageError> {
        let loc = locate(node);
        let slot = self.current.entry(loc.tile.level).or_default();
        if slot.as_ref().is_none_or(|t| t.id != loc.tile) {
            *slot = self.storage.read_tiles(&[loc.tile]).await?.pop();
        }
        Ok(slot.as_ref().and_then(|t| t.node(&loc)))
    }

    /// Where else a leaf hash is recorded, searching this and the next level-0 tile.
    async fn find_leaf(&mut self, hash: &Hash, near: u64) -> Result<Option<u64>, StorageError> {
        let first = near / crate::tile::TILE_WIDTH;
        for t in [first, first + 1] {
            let id = TileId { level: 0, index: t };
            for tile in self.storage.read_tiles(&[id]).await? {
                for j in 0..tile.width() {
                    let loc = locate(NodeId::new(0, t * crate::tile::TILE_WIDTH + j));
                    if tile.node(&loc) == Some(*hash) {
                        return Ok(Some(t * crate::tile::TILE_WIDTH + j));
                    }
                }
            }
        }
        Ok(None)
    }
}

/// A tile mismatch awaiting judgment at the next checkpoint.
#[derive(Debug, Clone, Copy)]
struct Suspect {
    node: NodeId,
    /// For leaves: another index whose recorded hash equals this leaf's hash.
    recorded_at: Option<u64>,
    missing_tile: bool,
}

/// Verifies everything stored in `storage` against the log key `verifier`.
pub async fn verify_log<S: LogStorage>(
    storage: Arc<S>,
    verifier: &NoteVerifier,
    options: &VerifyOptions,
) -> Result<VerifiedLog, VerifyError> {
    // External checkpoints must be valid before they can accuse the database.
    let mut external = BTreeMap::new();
    for note in &options.external_checkpoints {
        let v = SignedCheckpoint::verify_note(note, verifier)
            .map_err(|reason| Tamper::BadExternalCheckpoint { reason })?;
        external.insert(v.checkpoint.size, v.checkpoint.root);
    }
    let target = storage.latest_checkpoint().await?.map_or(0, |c| c.size);

    let reader = LogReader::new(storage.clone());
    let mut tiles = TileChecker {
        storage: storage.clone(),
        current: BTreeMap::new(),
    };
    let mut cr = CompactRange::new();
    let mut pending_cps: Vec<CheckpointRow> = Vec::new();
    let mut last_cp: Option<(u64, Hash)> = None;
    let mut checkpoints = 0u64;
    let mut latest_note = None;
    let mut suspect: Option<Suspect> = None;
    let mut external_size = None;
    let page = options.page.max(1);

    let mut next = 0u64;
    while next < target {
        let end = (next + page).min(target);
        let rows = storage.read_leaves(next, end, page as usize).await?;
        let mut rows = rows.into_iter().peekable();
        while next < end {
            let row = match rows.peek() {
                Some(r) if r.index == next => rows.next().expect("peeked"),
                _ => {
                    // An earlier unexplained mismatch is the first problem: without the
                    // entries after the gap the root cannot settle it, so report it as is.
                    if let Err(t) = judge(suspect.take(), false, last_cp, next) {
                        return Err(t.into());
                    }
                    // A gap: distinguish a hole from a cut-off tail.
                    let later = storage.read_leaves(next, target, 1).await?;
                    return Err(if later.is_empty() {
                        Tamper::Truncated {
                            entries: next,
                            checkpoint_size: target,
                        }
                    } else {
                        Tamper::MissingEntry { index: next }
                    }
                    .into());
                }
            };
            let h = leaf_hash(&row.data);
            let mut nodes = Vec::with_capacity(2);
            cr.push_with(h, |id, hash| nodes.push((id, *hash)));
            if suspect.is_none() {
                for (id, hash) in nodes {
                    match tiles.stored(id).await? {
                        Some(stored) if stored == hash => {}
                        found => {
                            let recorded_at = if id.level == 0 && found.is_some() {
                                tiles.find_leaf(&hash, id.index).await?
                            } else {
                                None
                            };
                            suspect = Some(Suspect {
                                node: id,
                                recorded_at,
                                missing_tile: found.is_none(),
                            });
                            break;
                        }
                    }
                }
            }
            next += 1;

            // Checkpoints at this size.
            if pending_cps.is_empty() || pending_cps.last().is_some_and(|c| c.size < next) {
                pending_cps = storage
                    .read_checkpoints(next.saturating_sub(1), 1024)
                    .await?;
                pending_cps.reverse();
            }
            while pending_cps.last().is_some_and(|c| c.size == next) {
                let row = pending_cps.pop().expect("checked");
                let root = cr.root();
                let v = match SignedCheckpoint::verify_note(&row.note, verifier) {
                    Ok(v) => v,
                    Err(reason) => {
                        // As for gaps: an earlier mismatch is reported first.
                        judge(suspect.take(), false, last_cp, next)?;
                        return Err(Tamper::BadCheckpoint {
                            size: row.size,
                            reason,
                        }
                        .into());
                    }
                };
                if v.checkpoint.size != row.size {
                    return Err(Tamper::BadCheckpoint {
                        size: row.size,
                        reason: CheckpointError::Malformed(
                            "signed size differs from the stored row",
                        ),
                    }
                    .into());
                }
                judge(suspect.take(), v.checkpoint.root == root, last_cp, next)?;
                if v.checkpoint.root != root {
                    return Err(Tamper::AlteredRange {
                        start: last_cp.map_or(0, |c| c.0),
                        end: next,
                    }
                    .into());
                }
                if let Some((size1, root1)) = last_cp {
                    let proof =
                        reader
                            .consistency_proof(size1, next)
                            .await
                            .map_err(|e| match e {
                                ProveError::Storage(s) => VerifyError::Storage(s),
                                other => unreachable!("sizes are ordered: {other}"),
                            })?;
                    proof
                        .verify(&root1, &root)
                        .map_err(|reason| Tamper::Inconsistent {
                            size1,
                            size2: next,
                            reason,
                        })?;
                }
                last_cp = Some((next, root));
                latest_note = Some(row.note);
                checkpoints += 1;
            }
            if let Some(ext_root) = external.get(&next) {
                if *ext_root != cr.root() {
                    return Err(Tamper::Fork { size: next }.into());
                }
                external_size = Some(next);
            }
        }
    }
    // Rows beyond the latest checkpoint were never signed.
    if let Some(row) = storage.read_leaves(target, u64::MAX, 1).await?.first() {
        return Err(Tamper::UnsignedEntries { index: row.index }.into());
    }
    if let Some((&size, _)) = external.iter().next_back()
        && size > target
    {
        return Err(Tamper::Rollback {
            db_size: target,
            external_size: size,
        }
        .into());
    }
    Ok(VerifiedLog {
        size: target,
        root: cr.root(),
        checkpoints,
        latest_checkpoint: latest_note,
        external_size,
    })
}

/// Decides what a tile mismatch meant, once the signed root at `size` is known.
fn judge(
    suspect: Option<Suspect>,
    root_matches: bool,
    last_cp: Option<(u64, Hash)>,
    size: u64,
) -> Result<(), Tamper> {
    let Some(s) = suspect else { return Ok(()) };
    let loc = locate(s.node);
    if root_matches || s.missing_tile {
        // The entries reproduce the signed root: the stored hashes are what changed.
        return Err(Tamper::TreeHashes {
            level: loc.tile.level,
            index: loc.tile.index,
        });
    }
    if s.node.level == 0 {
        return Err(match s.recorded_at {
            Some(at) if at != s.node.index => Tamper::MovedEntry {
                index: s.node.index,
                recorded_at: at,
            },
            _ => Tamper::AlteredEntry {
                index: s.node.index,
            },
        });
    }
    // A higher node differs: some entry below it was altered along with lower hashes.
    let first = s.node.index << s.node.level;
    let last = (s.node.index + 1) << s.node.level;
    Err(Tamper::AlteredRange {
        start: first.max(last_cp.map_or(0, |c| c.0)),
        end: last.min(size),
    })
}
