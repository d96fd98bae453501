//! Tamper-evident audit log: an append-only RFC 6962 Merkle tree of audit events, with
//! inclusion and consistency proofs and C2SP signed checkpoints.
//!
//! The principal type is [`Audit`], a cheap-to-clone handle shared by every part of ironroot.
//! Open it once per process from the registry store and the data directory, then call
//! [`Audit::record`], which returns once the event is durable:
//!
//! ```ignore
//! let audit = Audit::open_store(&store, data_dir).await?; // D/audit/checkpoint.key, witness
//! audit
//!     .record(
//!         Event::new(EventKind::CertIssued, "service:identity")
//!             .subject("certificate", serial)
//!             .source(peer_addr.to_string())
//!             .detail("device", device_id),
//!     )
//!     .await?; // durable: committed, checkpoint signed, witness written
//! ```
//!
//! [`verify_log`] re-checks a stored log end to end and names the first tampered entry;
//! [`LogReader`] produces proofs that a third party checks with [`ProofBundle::verify`],
//! [`InclusionProof::verify`] and [`ConsistencyProof::verify`] (RFC 9162 §2.1.3.2, §2.1.4.2).
//!
//! ```text
//!   Event ──encode──► leaf bytes ──SHA-256(0x00‖leaf)──► leaf hash
//!                                                            │ group commit (one writer task)
//!                                                            ▼
//!   LogStorage: leaves │ tiles (8 tree levels each) │ checkpoints (signed notes)  ──► witness file
//!     SqlStorage: audit_leaves, audit_tiles, audit_checkpoints in the registry's SQLite or
//!     PostgreSQL database, one transaction per batch; MemoryStorage for tests
//!                                                            │
//!   LogReader: O(log n) tiles ──► InclusionProof / ConsistencyProof ──► verify() (RFC 9162)
//!   verify_log: recompute everything ──► VerifiedLog, or Tamper naming the first bad entry
//! ```
//!
//! # Event kinds
//!
//! Every event names an [`EventKind`] (`cert.issued`, `device.added`, `mqtt.denied`, …): one
//! variant per thing that can happen, one dotted name per variant, stored as the leaf's event
//! type. The outcome ([`Outcome`]) says whether it worked, so a refused action keeps its kind
//! and gets `Outcome::Denied` (or `Failure`), except for kinds that only exist as refusals
//! (`mqtt.denied`, `auth.failed`). The table of kinds, subjects and actors is
//! `docs/audit-events.md`, generated from the enum ([`EventKind::markdown_table`]). A name this
//! build does not know (a log from a newer version) decodes as [`EventKind::Unknown`].
//!
//! Actors are `operator:<name>`, `device:<id>`, `service:<name>` or `system`; sources are a
//! peer address (`203.0.113.7:51234`), `cli`, or empty. Details hold the rest as strings
//! (`serial`, `reason`, `topic`, `policy`): never a secret, a key or a token (the log is
//! forever, and readable by auditors).
//!
//! Module map: [`event`] (canonical leaf encoding), [`kind`] (event kinds), [`hash`] (RFC 6962 hashing), [`tree`]
//! (proof plans for any tree size), [`tile`] (storage layout), [`proof`] (verification),
//! [`note`] and [`checkpoint`] (signed checkpoints), [`storage`] (the storage trait and an
//! in-memory store), `sql` (SQLite and PostgreSQL, feature `store`), [`dir`] (key and
//! witness files), [`reader`], [`writer`], [`witness`], [`verify`], [`bundle`].
#![forbid(unsafe_code)]

pub mod bundle;
pub mod checkpoint;
pub mod dir;
pub mod event;
pub mod hash;
pub mod kind;
pub mod note;
pub mod proof;
pub mod query;
pub mod reader;
#[cfg(feature = "store")]
pub mod sql;
pub mod storage;
pub mod tile;
pub mod time;
pub mod tree;
pub mod verify;
pub mod witness;
pub mod writer;

pub use bundle::{BundleError, ProofBundle, VerifiedEntry};
pub use checkpoint::{Checkpoint, CheckpointError, SignedCheckpoint, VerifiedCheckpoint};
pub use dir::{AuditDir, KeyError};
pub use event::{Event, LeafError, Outcome, Subject};
pub use hash::{Hash, empty_root, leaf_hash, node_hash};
pub use kind::{EventKind, UnknownKind};
pub use note::{NoteError, NoteSigner, NoteVerifier};
pub use proof::{
    ConsistencyProof, InclusionProof, ProofError, VerifiedConsistency, VerifiedInclusion,
};
pub use query::{EventFilter, TypeFilter, entry_json};
pub use reader::{LogReader, ProveError};
#[cfg(feature = "store")]
pub use sql::SqlStorage;
pub use storage::{
    AppendBatch, CheckpointRow, LogStorage, MemoryStorage, MemoryTables, StorageError, StoredLeaf,
};
pub use time::{TimeError, Timestamp};
pub use verify::{Tamper, VerifiedLog, VerifyError, VerifyOptions, verify_log};
pub use witness::{WitnessError, WitnessFile};
pub use writer::{Audit, AuditConfig, OpenError, Receipt, RecordError};
