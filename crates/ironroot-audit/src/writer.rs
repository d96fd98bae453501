//! The writer: `audit.record(event).await` with group commit.
//!
//! ```text
//!  record() ─┐                      one writer task
//!  record() ─┼─► queue ─► take all waiting (≤ max_batch) ─► push leaf hashes onto the right edge
//!  record() ─┘                                             ─► sign checkpoint over the new root
//!                                                          ─► storage.append (one transaction)
//!                                                          ─► witness file (fsync + rename)
//!                                                          ─► wake every caller of the batch
//! ```
//!
//! Callers encode and hash their own events, so the single writer only does tile hashing, one
//! signature and one durable commit per batch. Batches grow by themselves under load: while one
//! commit waits for the disk, the next batch queues up.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::checkpoint::{Checkpoint, CheckpointError, SignedCheckpoint};
use crate::event::{Event, LeafError};
use crate::hash::{Hash, leaf_hash};
use crate::note::{NoteSigner, NoteVerifier};
use crate::reader::LogReader;
use crate::storage::{AppendBatch, CheckpointRow, LogStorage, StorageError};
use crate::tile::RightEdge;
use crate::witness::{WitnessError, WitnessFile};

/// Settings of the writer.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// Largest number of events committed in one transaction.
    pub max_batch: usize,
    /// Number of events that may wait for the writer before `record` waits for room.
    pub queue: usize,
    /// Where to keep the latest checkpoint outside the database (rollback detection). `None`
    /// disables rollback detection.
    pub witness: Option<WitnessFile>,
    /// Accept a non-empty log whose witness file is missing, and write a new witness. This
    /// forgets the rollback protection of the old witness: only for a deliberate migration.
    pub danger_recreate_missing_witness: bool,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            max_batch: 8192,
            queue: 65_536,
            witness: None,
            danger_recreate_missing_witness: false,
        }
    }
}

/// Proof that an event was durably appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Index of the event in the log.
    pub index: u64,
    /// Its RFC 6962 leaf hash.
    pub leaf_hash: Hash,
    /// The checkpoint written with the batch that contains it.
    pub checkpoint: Checkpoint,
}

/// Why the log could not be opened for writing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Reading the stored state failed.
    #[error("reading the audit log: {0}")]
    Storage(#[from] StorageError),
    /// The latest stored checkpoint is not validly signed by this log's key.
    #[error("latest stored checkpoint (size {size}) is invalid: {source}")]
    Checkpoint {
        /// Size column of the row.
        size: u64,
        /// What is wrong with it.
        #[source]
        source: CheckpointError,
    },
    /// The stored tree does not hash to the latest checkpoint's root.
    #[error("stored tree of {size} entries does not match its latest checkpoint")]
    TreeMismatch {
        /// Tree size of the checkpoint.
        size: u64,
    },
    /// The witness holds a checkpoint for a larger tree than the database: the database was
    /// rolled back or truncated.
    #[error(
        "audit database has {db_size} entries but the witness checkpoint has {witness_size}: \
         the database was rolled back or truncated"
    )]
    Rollback {
        /// Entries in the database.
        db_size: u64,
        /// Size in the witness checkpoint.
        witness_size: u64,
    },
    /// The database's tree at the witness size has a different root: history was rewritten.
    #[error(
        "audit database disagrees with the witness checkpoint at size {size}: history was rewritten"
    )]
    Fork {
        /// The witness checkpoint's size.
        size: u64,
    },
    /// The witness file is not a valid checkpoint of this log.
    #[error("witness checkpoint is invalid: {0}")]
    Witness(CheckpointError),
    /// The witness file is missing although the log has entries.
    #[error("witness file {0} is missing while the audit log has entries")]
    WitnessMissing(std::path::PathBuf),
    /// Reading the witness file failed.
    #[error(transparent)]
    WitnessIo(#[from] WitnessError),
    /// A checkpoint could not be signed (key name and origin disagree).
    #[error("signing checkpoints: {0}")]
    Sign(CheckpointError),
}

/// Why an event was not (known to be) recorded.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The event cannot be encoded (too large).
    #[error("event cannot be encoded: {0}")]
    Leaf(#[from] LeafError),
    /// The writer task has stopped.
    #[error("the audit log writer has stopped")]
    Closed,
    /// The batch's transaction failed; the event may or may not be stored.
    #[error("audit log commit failed: {0}")]
    Storage(Arc<StorageError>),
    /// The batch was committed but the witness file could not be updated.
    #[error("audit entry committed but the witness file was not updated: {0}")]
    Witness(Arc<WitnessError>),
    /// The writer could not (re)load a trustworthy state and refuses to append.
    #[error("audit log is not writable: {0}")]
    Unavailable(Arc<OpenError>),
}

struct Request {
    leaf: Vec<u8>,
    hash: Hash,
    reply: oneshot::Sender<Result<Receipt, RecordError>>,
}

/// Handle to the audit log: cheap to clone, shared by every part of ironroot.
#[derive(Debug, Clone)]
pub struct Audit {
    tx: mpsc::Sender<Request>,
    verifier: NoteVerifier,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

impl Audit {
    /// Opens the log in `storage` for writing, checking the latest checkpoint, the stored tree
    /// and the witness, and starts the writer task on the current tokio runtime. The signer's
    /// name is the log's origin.
    pub async fn open<S: LogStorage>(
        storage: Arc<S>,
        signer: NoteSigner,
        config: AuditConfig,
    ) -> Result<(Self, tokio::task::JoinHandle<()>), OpenError> {
        let edge = load_state(&storage, signer.verifier(), &config).await?;
        let verifier = signer.verifier().clone();
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let writer = Writer {
            storage,
            signer,
            config,
            edge: Some(edge),
        };
        let task = tokio::spawn(writer.run(rx));
        Ok((Self { tx, verifier }, task))
    }

    /// Appends an event and returns once it is durable (committed and, if configured,
    /// witnessed). If the returned future is dropped early the event may still be recorded.
    pub async fn record(&self, event: Event) -> Result<Receipt, RecordError> {
        let leaf = event.encode()?;
        let hash = leaf_hash(&leaf);
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request { leaf, hash, reply })
            .await
            .map_err(|_| RecordError::Closed)?;
        rx.await.map_err(|_| RecordError::Closed)?
    }

    /// The log's public key (verifier key string via `to_string()`).
    pub fn verifier(&self) -> &NoteVerifier {
        &self.verifier
    }
}

/// Reads and checks the stored state; returns the right edge of the stored tree.
async fn load_state<S: LogStorage>(
    storage: &Arc<S>,
    verifier: &NoteVerifier,
    config: &AuditConfig,
) -> Result<RightEdge, OpenError> {
    let (size, root) = match storage.latest_checkpoint().await? {
        None => (0, None),
        Some(CheckpointRow { size, note }) => {
            let v = SignedCheckpoint::verify_note(&note, verifier)
                .map_err(|source| OpenError::Checkpoint { size, source })?;
            if v.checkpoint.size != size {
                return Err(OpenError::TreeMismatch { size });
            }
            (size, Some(v.checkpoint.root))
        }
    };
    let ids: Vec<_> = RightEdge::partial_tiles(size)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let tiles = storage.read_tiles(&ids).await?;
    let edge = RightEdge::resume(size, tiles).map_err(|id| StorageError::MissingTile {
        level: id.level,
        index: id.index,
    })?;
    if let Some(root) = root
        && edge.root() != root
    {
        return Err(OpenError::TreeMismatch { size });
    }
    if let Some(witness) = &config.witness {
        match witness.read().await? {
            Some(note) => {
                let w =
                    SignedCheckpoint::verify_note(&note, verifier).map_err(OpenError::Witness)?;
                let ws = w.checkpoint.size;
                if ws > size {
                    return Err(OpenError::Rollback {
                        db_size: size,
                        witness_size: ws,
                    });
                }
                let reader = LogReader::new(storage.clone());
                if ws > 0 && reader.root(ws).await? != w.checkpoint.root {
                    return Err(OpenError::Fork { size: ws });
                }
            }
            None if size > 0 && !config.danger_recreate_missing_witness => {
                return Err(OpenError::WitnessMissing(witness.path().to_owned()));
            }
            None => {}
        }
    }
    Ok(edge)
}

struct Writer<S> {
    storage: Arc<S>,
    signer: NoteSigner,
    config: AuditConfig,
    /// The right edge of the stored tree; `None` after a failed commit until reloaded.
    edge: Option<RightEdge>,
}

impl<S: LogStorage> Writer<S> {
    async fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        let max = self.config.max_batch.max(1);
        let mut batch = Vec::with_capacity(max);
        while rx.recv_many(&mut batch, max).await > 0 {
            let requests = std::mem::take(&mut batch);
            self.commit(requests).await;
        }
    }

    async fn commit(&mut self, requests: Vec<Request>) {
        let edge = match self.edge.take() {
            Some(edge) => edge,
            None => match load_state(&self.storage, self.signer.verifier(), &self.config).await {
                Ok(edge) => edge,
                Err(e) => {
                    let e = RecordError::Unavailable(Arc::new(e));
                    for r in requests {
                        let _ = r.reply.send(Err(e.clone()));
                    }
                    return;
                }
            },
        };
        let first_index = edge.size();
        // Extended in place: if the commit fails, the edge is dropped and re-read from storage.
        let mut next = edge;
        let mut leaves = Vec::with_capacity(requests.len());
        let mut replies = Vec::with_capacity(requests.len());
        for r in requests {
            next.push_leaf(r.hash);
            leaves.push(r.leaf);
            replies.push((r.hash, r.reply));
        }
        let checkpoint = Checkpoint {
            origin: self.signer.name().to_owned(),
            size: next.size(),
            root: next.root(),
        };
        let signed = match checkpoint.sign(&self.signer) {
            Ok(s) => s,
            Err(e) => {
                let e = RecordError::Unavailable(Arc::new(OpenError::Sign(e)));
                for (_, reply) in replies {
                    let _ = reply.send(Err(e.clone()));
                }
                return;
            }
        };
        let batch = AppendBatch {
            first_index,
            leaves,
            tiles: next.take_dirty(),
            checkpoint: CheckpointRow {
                size: checkpoint.size,
                note: signed.note.clone(),
            },
        };
        let result = match self.storage.append(&batch).await {
            Ok(()) => {
                self.edge = Some(next);
                match &self.config.witness {
                    Some(w) => w
                        .write(&signed.note)
                        .await
                        .map_err(|e| RecordError::Witness(Arc::new(e))),
                    None => Ok(()),
                }
            }
            // The commit may or may not have happened: re-read the stored state next time.
            Err(e) => Err(RecordError::Storage(Arc::new(e))),
        };
        for (i, (leaf_hash, reply)) in replies.into_iter().enumerate() {
            let _ = reply.send(result.clone().map(|()| Receipt {
                index: first_index + i as u64,
                leaf_hash,
                checkpoint: checkpoint.clone(),
            }));
        }
    }
}
