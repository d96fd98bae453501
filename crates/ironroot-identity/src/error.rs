//! The identity service's error type.

use ironroot_store::{CertificateStatus, DeviceState, StoreError};

/// Why an issuance, revocation or CRL publication did not happen.
///
/// Messages name the device, serial or state involved and never contain key material, CSR
/// bytes, passphrases or a database URL. Refusals caused by the request (bad CSR, unknown
/// device, wrong state) are also written to the audit log with outcome `denied`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The CSR was rejected: malformed, too large, bad signature, weak or unsupported key,
    /// invalid common name.
    #[error("certificate request rejected: {0}")]
    Csr(#[from] ironroot_pki::CsrError),
    /// The CSR names a different device in its CN.
    #[error("certificate request is for device '{requested}' but issuance is for '{device}'")]
    CommonNameMismatch {
        /// The CN in the CSR.
        requested: String,
        /// The device being issued for.
        device: String,
    },
    /// No device has this id in the registry (register it first: `ironroot device add`).
    #[error("unknown device '{0}': register it first (`ironroot device add`)")]
    UnknownDevice(String),
    /// A device with this id already exists.
    #[error("device '{0}' already exists")]
    DuplicateDevice(String),
    /// The device's lifecycle state does not allow the operation.
    #[error("device '{device}' is {state}: cannot {op}")]
    WrongState {
        /// The device.
        device: String,
        /// Its current state.
        state: DeviceState,
        /// What was refused ("issue a certificate", "revoke", "decommission").
        op: &'static str,
    },
    /// No certificate has this serial.
    #[error("unknown certificate serial {0}")]
    UnknownCertificate(String),
    /// The certificate is in a status that does not allow the operation (e.g. already revoked).
    #[error("certificate {serial} is {status}: cannot {op}")]
    CertificateStatus {
        /// The serial.
        serial: ironroot_pki::Serial,
        /// Its status.
        status: CertificateStatus,
        /// What was refused.
        op: &'static str,
    },
    /// The CA could not sign (key backend failure, expired CA, encoding).
    #[error("the CA could not sign: {0}")]
    Ca(#[from] ironroot_pki::IssueError),
    /// The blocking task that signs (or writes the CRL) ended without an answer (it
    /// panicked, or the runtime is shutting down); nothing was issued.
    #[error("the CA signing task stopped before it answered")]
    SignerStopped,
    /// The CA directory could not be read or written (chain, CRL files).
    #[error(transparent)]
    CaDirectory(#[from] ironroot_pki::CaError),
    /// The registry failed; nothing of this operation was stored.
    #[error("registry: {0}")]
    Store(StoreError),
    /// The audit log did not durably record the event, so the operation was not carried out
    /// (an issuance or revocation never happens without its audit entry).
    #[error("audit log: {0}")]
    Audit(#[from] ironroot_audit::writer::RecordError),
    /// A file operation around the CRL failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Replacing the CRL file atomically failed (the old CRL is unchanged).
    #[error(transparent)]
    Write(#[from] ironroot_fs::WriteError),
}

impl From<StoreError> for IdentityError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::UnknownDevice(d) => IdentityError::UnknownDevice(d),
            StoreError::DuplicateDevice(d) => IdentityError::DuplicateDevice(d),
            StoreError::DecommissionedDevice(device) => IdentityError::WrongState {
                device,
                state: DeviceState::Decommissioned,
                op: "re-register (re-commission it first)",
            },
            StoreError::UnknownCertificate(s) => IdentityError::UnknownCertificate(s),
            StoreError::DeviceNotIssuable { device, state } => IdentityError::WrongState {
                device,
                state,
                op: "issue a certificate",
            },
            StoreError::InvalidTransition { device, from, to } => IdentityError::WrongState {
                device,
                state: from,
                op: match to {
                    DeviceState::Revoked => "revoke",
                    DeviceState::Decommissioned => "decommission",
                    DeviceState::Provisioned => "provision",
                    _ => "change state",
                },
            },
            StoreError::CertificateStatus { serial, status, op } => {
                IdentityError::CertificateStatus { serial, status, op }
            }
            other => IdentityError::Store(other),
        }
    }
}

impl IdentityError {
    /// A short stable name of the variant, written to the audit log as the refusal reason
    /// (the log keeps the reason class, not free text from the request).
    pub fn kind(&self) -> &'static str {
        match self {
            IdentityError::Csr(_) => "bad_csr",
            IdentityError::CommonNameMismatch { .. } => "common_name_mismatch",
            IdentityError::UnknownDevice(_) => "unknown_device",
            IdentityError::DuplicateDevice(_) => "duplicate_device",
            IdentityError::WrongState { .. } => "wrong_state",
            IdentityError::UnknownCertificate(_) => "unknown_certificate",
            IdentityError::CertificateStatus { .. } => "certificate_status",
            IdentityError::Ca(_) => "ca_failure",
            IdentityError::SignerStopped => "signer_stopped",
            IdentityError::CaDirectory(_) => "ca_directory",
            IdentityError::Store(_) => "registry_failure",
            IdentityError::Audit(_) => "audit_failure",
            IdentityError::Io { .. } | IdentityError::Write(_) => "io",
        }
    }

    /// Whether the request itself was at fault (a refusal), rather than the service.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            IdentityError::Csr(_)
                | IdentityError::CommonNameMismatch { .. }
                | IdentityError::UnknownDevice(_)
                | IdentityError::DuplicateDevice(_)
                | IdentityError::WrongState { .. }
                | IdentityError::UnknownCertificate(_)
                | IdentityError::CertificateStatus { .. }
        )
    }
}
