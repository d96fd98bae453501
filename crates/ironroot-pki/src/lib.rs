//! The ironroot certificate authority: device identities from silicon to the cloud.
//!
//! The principal type is [`IssuingCa`]: a CA certificate with its signing key (behind the
//! [`CaSigner`] trait: an [encrypted key file](keyfile) or a [PKCS#11 token](pkcs11)). It
//! issues device certificates from CSRs, operator and server certificates, and CRLs. The
//! [`CaDirectory`] keeps the hierarchy on disk and unlocks the online CAs at server start;
//! the [`RevocationCheckingVerifier`] plugs into rustls and rejects revoked devices in the
//! handshake using the live [`RevocationSet`]; [`hardened_server_config`] is the one rustls
//! server configuration (TLS 1.3 / TLS 1.2 ECDHE-AEAD, no resumption) every listener uses.
//!
//! ```text
//!   root CA (offline, P-256, key: argon2id + AES-256-GCM file)
//!    ├── intermediate CA G<n>  (online; pathLen 0)  ── device, operator, server, command-signer certificates, device CRLs
//!    │    └── previous generation: trusted until its overlap ends
//!    └── factory CA            (online; pathLen 0)  ── bootstrap (manufacturing) credentials
//!
//!   CSR ──verify_csr──▶ VerifiedCsr(public key, CN) ──IssuingCa::issue_device──▶ IssuedCertificate
//!        (size, PEM/DER, key type,                         (pure: nothing written; the caller records
//!         signature, CN syntax)                              it in the registry, commits, then hands it out)
//!
//!   revocation: registry commit ──▶ RevocationSet::revoke ──▶ next handshake sees it (ArcSwap)
//!                                └─▶ IssuingCa::sign_crl   ──▶ CRL file / HTTP for other parties
//! ```
//!
//! # Getting started
//!
//! ```no_run
//! use ironroot_pki::{CaDirectory, IssuancePolicy, OnlineSecrets, DeviceId, Passphrase};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = CaDirectory::new("./ironroot-data");
//! let secrets = OnlineSecrets {
//!     passphrase: Some(Passphrase::new(std::fs::read("./ironroot-data/pki/online-passphrase")?)?),
//!     pkcs11_pin: None,
//! };
//! let now = time::OffsetDateTime::now_utc();
//! let ca = dir.open_online(&secrets, now)?;
//! let csr = std::fs::read("device.csr")?;
//! let device = DeviceId::parse("sensor-0001")?;
//! let cert = ca.issuing().issue_device_from_csr(&csr, &device, &IssuancePolicy::default(), now)?;
//! println!("serial {} fingerprint {}", cert.serial(), cert.fingerprint());
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod ca;
mod csr;
mod datadir;
mod device_id;
mod error;
mod hierarchy;
mod identity;
mod issue;
pub mod keyfile;
pub mod ocsp;
pub mod pkcs11;
mod revocation;
mod serial;
mod signer;
pub mod tls;
mod verifier;

pub use ca::{CaCertificate, CaRole, IssuedCertificate, IssuingCa};
pub use csr::{CsrError, CsrPolicy, KeyAlgorithm, SubjectKey, VerifiedCsr, verify_csr};
pub use datadir::{
    CaDirectory, Handling, InitOptions, OnlineCa, OnlineKeyBackend, OnlineSecrets, WrittenFile,
};
pub use device_id::{DeviceId, DeviceIdError};
pub use error::{CaError, IssueError};
pub use hierarchy::{
    HierarchyPolicy, create_root, factory_common_name, intermediate_common_name, root_common_name,
    sign_subordinate,
};
pub use identity::{
    BOOTSTRAP_URI_PREFIX, COMMAND_SIGNER_URI, ClientIdentity, DEVICE_URI_PREFIX, IdentityError,
    OPERATOR_URI_PREFIX, PeerKind,
};
pub use issue::{COMMAND_SIGNER_COMMON_NAME, IssuancePolicy, ServerName};
pub use keyfile::{KdfParams, KeyFileError, Passphrase};
pub use pkcs11::{Pin, Pkcs11KeyRef, Pkcs11Signer, SESSION_POOL};
pub use revocation::{Crl, RevocationReason, RevocationSet, RevokedEntry};
pub use serial::{Fingerprint, Serial, SerialError};
pub use signer::{CaSigner, SignerError, SoftwareKey, ecdsa_raw_to_der};
pub use tls::hardened_server_config;
pub use verifier::{RevocationCheckingVerifier, TrustedIssuer, VerifierError};
