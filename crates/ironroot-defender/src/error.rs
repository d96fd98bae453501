//! The defender's errors.

use ironroot_audit::{StorageError, WitnessError};
use ironroot_pki::CaError;
use ironroot_store::StoreError;

/// Why an audit could not read the installation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DefenderError {
    /// The registry could not be read.
    #[error("cannot read the registry: {0}")]
    Store(#[from] StoreError),
    /// The CA files in the data directory could not be read.
    #[error("cannot read the CA files: {0}")]
    Ca(#[from] CaError),
    /// The audit log's tables could not be read.
    #[error("cannot read the audit log: {0}")]
    AuditStorage(#[source] StorageError),
    /// The audit witness file could not be read.
    #[error("cannot read the audit witness file: {0}")]
    Witness(#[from] WitnessError),
}
