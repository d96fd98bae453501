//! The store's error type.

use crate::model::{CertificateStatus, DeviceState};

/// Result alias used throughout the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything that can go wrong in the registry.
///
/// Messages never contain a database URL (it may hold a password) nor certificate bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database URL names neither `sqlite:` nor `postgres:`/`postgresql:`.
    #[error("unsupported database URL scheme {scheme:?}: use sqlite://PATH or postgres://...")]
    UnsupportedUrl {
        /// The scheme found before the first ':' (never the rest of the URL).
        scheme: String,
    },
    /// The database URL could not be parsed by the driver.
    #[error("invalid {backend} database URL: {source}")]
    InvalidUrl {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// The driver's parse error.
        #[source]
        source: sqlx::Error,
    },
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Opening a connection to the database failed.
    #[error("cannot connect to the {backend} database: {source}")]
    Connect {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// The driver error.
        #[source]
        source: sqlx::Error,
    },
    /// Applying the schema migrations failed, or the database was migrated by a newer ironroot,
    /// or an applied migration was altered after the fact.
    #[error("database schema migration failed: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A query failed for a reason not covered by a more specific variant.
    #[error("database error while trying to {op}: {source}")]
    Database {
        /// What the store was doing, e.g. "insert device".
        op: &'static str,
        /// The driver error.
        #[source]
        source: sqlx::Error,
    },
    /// A row holds a value this version does not understand (schema drift or tampering).
    #[error("corrupt row in {table}: column {column} holds unexpected value {value:?}")]
    CorruptRow {
        /// The table.
        table: &'static str,
        /// The column.
        column: &'static str,
        /// The offending value (never a secret: only enum-like text columns are checked).
        value: String,
    },
    /// A device id, group name, attribute or owner failed the syntax check.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidInput {
        /// Which kind of value ("device id", "group name", ...).
        what: &'static str,
        /// The rejected value, with control characters escaped by `{:?}`.
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A device with this id already exists.
    #[error("device {0:?} already exists")]
    DuplicateDevice(String),
    /// The id belongs to a decommissioned device: it stays retired (a tombstone) until it is
    /// explicitly re-commissioned.
    #[error("device {0:?} was decommissioned: its id stays retired until it is re-commissioned")]
    DecommissionedDevice(String),
    /// No device has this id.
    #[error("unknown device {0:?}")]
    UnknownDevice(String),
    /// The device's lifecycle does not allow this state change (see `DeviceState::can_become`).
    #[error("device {device:?} cannot go from {from} to {to}")]
    InvalidTransition {
        /// The device.
        device: String,
        /// Its current state.
        from: DeviceState,
        /// The refused target state.
        to: DeviceState,
    },
    /// Certificates may not be recorded for a device in this state.
    #[error("device {device:?} is {state}: no certificate may be recorded for it")]
    DeviceNotIssuable {
        /// The device.
        device: String,
        /// Its state (revoked or decommissioned).
        state: DeviceState,
    },
    /// A certificate with this serial or fingerprint is already recorded.
    #[error("certificate with serial {serial} or the same fingerprint is already recorded")]
    DuplicateCertificate {
        /// The serial of the new certificate.
        serial: ironroot_pki::Serial,
    },
    /// No certificate has this serial or fingerprint.
    #[error("unknown certificate {0}")]
    UnknownCertificate(String),
    /// Device certificates (operational, factory) must name their device.
    #[error("a {kind} certificate must belong to a device")]
    MissingDevice {
        /// The certificate kind.
        kind: crate::model::CertificateKind,
    },
    /// The certificate's validity period ends before it starts.
    #[error("certificate {serial}: not_after is before not_before")]
    InvalidValidity {
        /// The serial.
        serial: ironroot_pki::Serial,
    },
    /// The certificate is not in a status that allows this operation.
    #[error("certificate {serial} is {status}: cannot {op}")]
    CertificateStatus {
        /// The serial.
        serial: ironroot_pki::Serial,
        /// Its current status.
        status: CertificateStatus,
        /// What was refused ("revoke", "supersede").
        op: &'static str,
    },
    /// The shared transaction of a group commit failed to commit, so this job's changes were
    /// not stored (neither were those of the other jobs in the batch).
    #[error("group commit failed, nothing of this batch was stored: {0}")]
    GroupCommit(#[source] std::sync::Arc<StoreError>),
    /// The group committer's task is gone (its runtime shut down, or a job panicked); nothing of
    /// the unacknowledged jobs was stored.
    #[error("the group committer has stopped; the change was not stored")]
    GroupCommitterStopped,
    /// A policy document was refused by `ironroot-policy` (size limit, unknown action, bad
    /// variable, malformed JSON ...); nothing was stored.
    #[error("policy {name:?} is invalid: {source}")]
    InvalidPolicy {
        /// The policy name.
        name: String,
        /// What is wrong, with the field and line at fault.
        #[source]
        source: Box<ironroot_policy::PolicyError>,
    },
    /// No policy has this name.
    #[error("unknown policy {0:?}")]
    UnknownPolicy(String),
}

impl StoreError {
    /// Wraps a driver error with what the store was doing.
    pub(crate) fn db(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |source| StoreError::Database { op, source }
    }
}

/// Whether a driver error is a unique-constraint violation.
pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Whether a driver error is a foreign-key violation.
pub(crate) fn is_foreign_key_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_foreign_key_violation())
}
