//! Tamper-evident audit log: an append-only RFC 6962 Merkle tree of audit events, with
//! inclusion and consistency proofs and C2SP signed checkpoints.
//!
//! The principal type is [`Audit`]: open it over a [`LogStorage`] with the log's signing key,
//! then every part of ironroot calls [`Audit::record`], which returns once the event is durable.
//! [`verify_log`] re-checks a stored log end to end and names the first tampered entry;
//! [`LogReader`] produces proofs that a third party checks with [`InclusionProof::verify`] and
//! [`ConsistencyProof::verify`] (RFC 9162 §2.1.3.2 and §2.1.4.2).
//!
//! ```text
//!   Event ──encode──► leaf bytes ──SHA-256(0x00‖leaf)──► leaf hash
//!                                                            │ group commit (one writer task)
//!                                                            ▼
//!   LogStorage: leaves │ tiles (8 tree levels each) │ checkpoints (signed notes)  ──► witness file
//!                                                            │
//!   LogReader: O(log n) tiles ──► InclusionProof / ConsistencyProof ──► verify() (RFC 9162)
//!   verify_log: recompute everything ──► VerifiedLog, or Tamper naming the first bad entry
//! ```
//!
//! Module map: [`event`] (canonical leaf encoding), [`hash`] (RFC 6962 hashing), [`tree`]
//! (proof plans for any tree size), [`tile`] (storage layout), [`proof`] (verification),
//! [`note`] and [`checkpoint`] (signed checkpoints), [`storage`] (the storage trait and an
//! in-memory store), [`reader`], [`writer`], [`witness`], [`verify`].
#![forbid(unsafe_code)]

pub mod bundle;
pub mod checkpoint;
pub mod event;
pub mod hash;
pub mod note;
pub mod proof;
pub mod reader;
pub mod storage;
pub mod tile;
pub mod time;
pub mod tree;
pub mod verify;
pub mod witness;
pub mod writer;

#[cfg(test)]
mod log_tests;

pub use bundle::{BundleError, ProofBundle, VerifiedEntry};
pub use checkpoint::{Checkpoint, CheckpointError, SignedCheckpoint, VerifiedCheckpoint};
pub use event::{Event, LeafError, Outcome, Subject};
pub use hash::{Hash, empty_root, leaf_hash, node_hash};
pub use note::{NoteError, NoteSigner, NoteVerifier};
pub use proof::{
    ConsistencyProof, InclusionProof, ProofError, VerifiedConsistency, VerifiedInclusion,
};
pub use reader::{LogReader, ProveError};
pub use storage::{
    AppendBatch, CheckpointRow, LogStorage, MemoryStorage, StorageError, StoredLeaf,
};
pub use time::{TimeError, Timestamp};
pub use verify::{Tamper, VerifiedLog, VerifyError, VerifyOptions, verify_log};
pub use witness::{WitnessError, WitnessFile};
pub use writer::{Audit, AuditConfig, OpenError, Receipt, RecordError};
