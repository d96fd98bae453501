//! Error types of issuance and of the CA data directory.

use std::path::PathBuf;

use crate::ca::CaRole;
use crate::csr::CsrError;
use crate::device_id::{DeviceId, DeviceIdError};
use crate::keyfile::KeyFileError;
use crate::serial::SerialError;
use crate::signer::SignerError;

/// Why a certificate or CRL was not issued. When issuance fails nothing was signed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The CSR was rejected.
    #[error("certificate request rejected: {0}")]
    Csr(#[from] CsrError),
    /// The CSR's CN names a different device than the one being issued for.
    #[error("certificate request is for device '{requested}' but issuance is for '{device}'")]
    CommonNameMismatch {
        /// The CN in the CSR.
        requested: DeviceId,
        /// The device being issued for.
        device: DeviceId,
    },
    /// This CA is not the one for this kind of certificate.
    #[error("a {have:?} CA cannot issue this certificate; it needs the {need:?} CA")]
    WrongCaRole {
        /// The role of the CA that was asked.
        have: CaRole,
        /// The role needed.
        need: CaRole,
    },
    /// The CA certificate has expired.
    #[error("CA '{ca}' has expired; rotate it (`ironroot ca rotate-intermediate`)")]
    CaExpired {
        /// The CA's common name.
        ca: String,
    },
    /// A CA certificate could not be parsed or is not a CA.
    #[error("bad CA certificate: {0}")]
    BadCaCertificate(String),
    /// The key does not belong to the CA certificate.
    #[error("the signing key does not match the certificate of CA '{ca}'")]
    KeyMismatch {
        /// The CA's common name.
        ca: String,
    },
    /// A server certificate was requested with no names.
    #[error("a server certificate needs at least one host name or IP address")]
    NoServerNames,
    /// A server name is not a valid DNS name or IP address.
    #[error("'{0}' is not a valid host name or IP address")]
    InvalidServerName(String),
    /// A serial number could not be drawn or parsed.
    #[error(transparent)]
    Serial(#[from] SerialError),
    /// The signing backend failed.
    #[error("CA signing key failed: {0}")]
    Signer(#[from] SignerError),
    /// Certificate or CRL encoding failed (rcgen).
    #[error("certificate encoding failed: {0}")]
    Encoding(String),
}

/// Errors creating, loading or changing the CA data directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// "reading", "writing", "creating".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be replaced atomically (the old one, if any, is unchanged).
    #[error(transparent)]
    Write(#[from] ironroot_fs::WriteError),
    /// `ca init` found an existing CA.
    #[error("a CA already exists in {0}; refusing to overwrite it")]
    AlreadyInitialized(PathBuf),
    /// No CA in the data directory.
    #[error("no CA in {dir}; run `ironroot ca init --data-dir {dir}` first", dir = .0.display())]
    NotInitialized(PathBuf),
    /// The state file is corrupt or of an unknown version.
    #[error("CA state file {path} is invalid: {reason}")]
    BadState {
        /// The state file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A key file could not be decrypted.
    #[error("key file {path}: {source}")]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// Why.
        #[source]
        source: KeyFileError,
    },
    /// Issuance of a CA certificate or CRL failed.
    #[error(transparent)]
    Issue(#[from] IssueError),
    /// A signing backend failed.
    #[error(transparent)]
    Signer(#[from] SignerError),
    /// An operator or CA name is invalid.
    #[error("invalid name: {0}")]
    Name(#[from] DeviceIdError),
    /// The intermediate generation asked for does not exist.
    #[error("there is no intermediate CA generation {0}")]
    NoSuchGeneration(u32),
    /// An online key file must be opened but no passphrase was given.
    #[error(
        "the online CA keys are encrypted; give their passphrase with IRONROOT_CA_PASSPHRASE or --ca-passphrase-file"
    )]
    OnlinePassphraseMissing,
    /// A PKCS#11 key reference is needed but no PIN was given.
    #[error(
        "the intermediate key is in a PKCS#11 token; give its PIN with IRONROOT_PKCS11_PIN or --pkcs11-pin-file"
    )]
    Pkcs11PinMissing,
    /// Signing the root's OCSP answers for the CA certificates failed.
    #[error("signing the root's OCSP answers: {0}")]
    Ocsp(#[from] crate::ocsp::OcspError),
}

impl CaError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }
}
