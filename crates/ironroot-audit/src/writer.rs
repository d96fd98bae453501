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
    /// The signing key in the data directory could not be loaded or created.
    #[error(transparent)]
    Key(#[from] crate::dir::KeyError),
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

#[cfg(feature = "store")]
impl Audit {
    /// Opens the audit log of an ironroot installation for writing: the log's tables in
    /// `store`'s database (SQLite or PostgreSQL), the signing key and the witness in
    /// `data_dir/audit` (see [`crate::dir`]). The key is created on the first open of an empty
    /// log. The writer task runs on the current tokio runtime until every handle is dropped.
    ///
    /// ```ignore
    /// let audit = Audit::open_store(&store, data_dir).await?;
    /// audit.record(Event::new(EventKind::DeviceAdded, "operator:alice").subject("device", "dev-42")).await?;
    /// ```
    pub async fn open_store(
        store: &ironroot_store::Store,
        data_dir: &std::path::Path,
    ) -> Result<Self, OpenError> {
        let dir = crate::dir::AuditDir::new(data_dir);
        let storage = Arc::new(crate::sql::SqlStorage::new(store.clone()));
        let witness = dir.witness();
        let signer = if dir.has_key() {
            dir.load_signer()?
        } else {
            // A new key for a log that already has entries would start an unrelated log.
            if storage.latest_checkpoint().await?.is_some() || witness.read().await?.is_some() {
                return Err(crate::dir::KeyError::LostKey(dir.key_path()).into());
            }
            dir.load_or_create_signer()?
        };
        let config = AuditConfig {
            witness: Some(witness),
            ..AuditConfig::default()
        };
        let (audit, _writer) = Self::open(storage, signer, config).await?;
        Ok(audit)
    }
}

/// How long [`load_state`] waits for the witness of a log whose first batch another process
/// has just committed: that writer writes the witness right after its commit, so a witness
/// that stays missing for longer was removed.
const WITNESS_MISSING_PATIENCE: std::time::Duration = std::time::Duration::from_millis(500);

/// Reads and checks the stored state; returns the right edge of the stored tree.
async fn load_state<S: LogStorage>(
    storage: &Arc<S>,
    verifier: &NoteVerifier,
    config: &AuditConfig,
) -> Result<RightEdge, OpenError> {
    let started = std::time::Instant::now();
    loop {
        match load_state_once(storage, verifier, config).await {
            Err(OpenError::WitnessMissing(_)) if started.elapsed() < WITNESS_MISSING_PATIENCE => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            result => return result,
        }
    }
}

/// One attempt of [`load_state`].
async fn load_state_once<S: LogStorage>(
    storage: &Arc<S>,
    verifier: &NoteVerifier,
    config: &AuditConfig,
) -> Result<RightEdge, OpenError> {
    // The witness is read before the database. Every writer commits before it writes the
    // witness, so a witness read first is never ahead of a database read after it, even while
    // another process appends; read the other way round, such an append in between would look
    // exactly like a rollback.
    let witness_note = match &config.witness {
        Some(witness) => witness.read().await?,
        None => None,
    };
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
        match witness_note {
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

/// How often a batch refused with [`StorageError::Conflict`] is retried on fresh state.
///
/// Several processes may append to one log (two server replicas on one PostgreSQL database, or
/// `ironroot audit record` beside a running server): a writer whose view is stale is refused,
/// re-reads the stored tree and tries again after a random pause of up to 64 ms. A writer that
/// loses this many races in a row fails its batch with the conflict error. One busy writer per
/// log is the design point; see docs/architecture.md ("Audit log").
const MAX_CONFLICT_RETRIES: u32 = 32;

/// A batch that was not committed, with its leaves for another attempt.
struct FailedAttempt {
    error: RecordError,
    leaves: Vec<Vec<u8>>,
    /// Storage refused the batch before writing anything (another writer was first).
    conflict: bool,
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
        let mut leaves = Vec::with_capacity(requests.len());
        let mut replies = Vec::with_capacity(requests.len());
        for r in requests {
            leaves.push(r.leaf);
            replies.push((r.hash, r.reply));
        }
        let hashes: Vec<Hash> = replies.iter().map(|(h, _)| *h).collect();
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            match self.try_commit(&hashes, leaves).await {
                Ok(done) => break Ok(done),
                // Another writer (a second server process on the same database) appended first:
                // nothing of this batch was written, so it is safe to re-read and try again.
                Err(failed) if failed.conflict && attempt < MAX_CONFLICT_RETRIES => {
                    leaves = failed.leaves;
                    // A random pause, so two writers that keep colliding fall out of step.
                    let cap = 1u64 << attempt.min(6);
                    let jitter = u64::from(getrandom::u32().unwrap_or(0)) % (cap * 1000);
                    tokio::time::sleep(std::time::Duration::from_micros(jitter)).await;
                }
                Err(failed) => break Err(failed.error),
            }
        };
        let (first_index, checkpoint) = match result {
            Ok(done) => done,
            Err(e) => {
                for (_, reply) in replies {
                    let _ = reply.send(Err(e.clone()));
                }
                return;
            }
        };
        // The batch is committed; the witness must follow before anyone is told.
        let witnessed = match &self.config.witness {
            Some(w) => w
                .write(&checkpoint.1)
                .await
                .map_err(|e| RecordError::Witness(Arc::new(e))),
            None => Ok(()),
        };
        for (i, (leaf_hash, reply)) in replies.into_iter().enumerate() {
            let _ = reply.send(witnessed.clone().map(|()| Receipt {
                index: first_index + i as u64,
                leaf_hash,
                checkpoint: checkpoint.0.clone(),
            }));
        }
    }

    /// One attempt to commit a batch: the first index and the signed checkpoint on success.
    async fn try_commit(
        &mut self,
        hashes: &[Hash],
        leaves: Vec<Vec<u8>>,
    ) -> Result<(u64, (Checkpoint, String)), FailedAttempt> {
        let fail = |error, leaves, conflict| FailedAttempt {
            error,
            leaves,
            conflict,
        };
        let edge = match self.edge.take() {
            Some(edge) => edge,
            None => match load_state(&self.storage, self.signer.verifier(), &self.config).await {
                Ok(edge) => edge,
                Err(e) => return Err(fail(RecordError::Unavailable(Arc::new(e)), leaves, false)),
            },
        };
        let first_index = edge.size();
        // Extended in place: if the commit fails, the edge is dropped and re-read from storage.
        let mut next = edge;
        for h in hashes {
            next.push_leaf(*h);
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
                return Err(fail(e, leaves, false));
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
        match self.storage.append(&batch).await {
            Ok(()) => {
                self.edge = Some(next);
                Ok((first_index, (checkpoint, signed.note)))
            }
            // The commit may or may not have happened: re-read the stored state next time.
            Err(e) => {
                let conflict = matches!(e, StorageError::Conflict { .. });
                Err(fail(
                    RecordError::Storage(Arc::new(e)),
                    batch.leaves,
                    conflict,
                ))
            }
        }
    }
}
