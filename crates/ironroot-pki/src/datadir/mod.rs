//! The CA's files in the data directory, and the operations on them (init, rotation,
//! CA revocation, loading the online CAs at server start).
//!
//! # Layout (`<data-dir>/pki/`)
//!
//! | file | content | handling |
//! |---|---|---|
//! | `root.crt.pem` | root CA certificate | public: the trust anchor for devices and `openssl verify` |
//! | `root.key.enc` | root key, encrypted with the root passphrase | **offline**: move to offline storage after `ca init`; needed only to rotate or revoke CAs |
//! | `root.crl.pem` | CRL signed by the root (revoked intermediates / factory CA) | public; re-signed at every root operation, valid 1 year |
//! | `ocsp-ca.pem` | OCSP answers signed by the root for every intermediate and the factory CA (SHA-1 and SHA-256 CertIDs) | public; re-signed with the root CRL, same nextUpdate |
//! | `intermediate-<g>.crt.pem` | intermediate CA generation `g` | public |
//! | `intermediate-<g>.key.enc` | its key, encrypted with the online passphrase (absent with PKCS#11) | online secret, read at server start |
//! | `factory.crt.pem`, `factory.key.enc` | factory CA for manufacturing credentials | cert public; key online secret |
//! | `operator.crt.pem`, `operator.key.pem` | first operator client certificate and its **unencrypted** key (0600) | hand to the operator, then delete here |
//! | `chain.pem` | trusted intermediates (newest first) + root | public: `openssl verify -CAfile chain.pem` |
//! | `online-passphrase` | generated online passphrase (only when none was given, 0600) | online secret: move into your secret store |
//! | `ca-state.json` | generations, key locations (file or PKCS#11 reference), overlap windows, revoked CA serials | no secrets |

mod init;
mod online;
mod rotation;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use crate::ca::{CaCertificate, CaRole, IssuingCa};
use crate::csr::SubjectKey;
use crate::device_id::DeviceId;
use crate::error::CaError;
use crate::hierarchy::{
    HierarchyPolicy, create_root, factory_common_name, intermediate_common_name, sign_subordinate,
};
use crate::issue::IssuancePolicy;
use crate::keyfile::{KdfParams, Passphrase};
use crate::pkcs11::{Pin, Pkcs11KeyRef, Pkcs11Signer};
use crate::revocation::{Crl, RevocationReason, RevokedEntry};
use crate::signer::{CaSigner, SoftwareKey};
use crate::verifier::TrustedIssuer;

const STATE_FILE: &str = "ca-state.json";
const STATE_VERSION: u32 = 1;
/// Root CRLs are signed only when the root is unlocked, so they live long.
const ROOT_CRL_LIFETIME: Duration = Duration::days(365);

/// Where the online CA keys (intermediate and factory) are created.
#[derive(Debug)]
pub enum OnlineKeyBackend {
    /// Encrypted key files under the online passphrase.
    EncryptedFile(Passphrase),
    /// Keys generated inside a PKCS#11 token (labels `ironroot-intermediate-<g>`,
    /// `ironroot-factory`).
    Pkcs11 {
        /// Module path.
        module: PathBuf,
        /// Token label.
        token_label: String,
        /// User PIN.
        pin: Pin,
    },
}

/// Secrets that unlock the online keys at server start.
#[derive(Debug, Default)]
pub struct OnlineSecrets {
    /// Passphrase of the `*.key.enc` online key files.
    pub passphrase: Option<Passphrase>,
    /// PIN of the PKCS#11 token holding online keys.
    pub pkcs11_pin: Option<Pin>,
}

/// Options of [`CaDirectory::init`].
#[derive(Debug)]
pub struct InitOptions {
    /// Passphrase of the root key file.
    pub root_passphrase: Passphrase,
    /// Where the online keys go. `None`: encrypted files under a generated passphrase, written
    /// to `online-passphrase`.
    pub online: Option<OnlineKeyBackend>,
    /// argon2id cost for the key files.
    pub kdf: KdfParams,
    /// Names and lifetimes.
    pub hierarchy: HierarchyPolicy,
    /// Name of the first operator certificate.
    pub operator: DeviceId,
}

/// How a written file must be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Handling {
    /// Public material: distribute freely.
    Public,
    /// Keep offline (the root key).
    Offline,
    /// Secret the running server needs (online keys and their passphrase).
    OnlineSecret,
    /// Secret to hand to an operator and then delete from the server.
    OperatorSecret,
    /// Internal bookkeeping, no secrets.
    State,
}

/// One file written by a CA operation.
#[derive(Debug, Clone)]
pub struct WrittenFile {
    /// Where.
    pub path: PathBuf,
    /// What it is.
    pub what: String,
    /// How to treat it.
    pub handling: Handling,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum KeyLocation {
    File { path: String },
    Pkcs11(Pkcs11KeyRef),
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct IntermediateRecord {
    generation: u32,
    key: KeyLocation,
    #[serde(with = "time::serde::rfc3339::option")]
    retired_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    trusted_until: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct CaState {
    version: u32,
    organization: String,
    intermediates: Vec<IntermediateRecord>,
    factory: KeyLocation,
    revoked_cas: Vec<RevokedEntry>,
}

/// The CA files of one data directory.
#[derive(Debug, Clone)]
pub struct CaDirectory {
    dir: PathBuf,
}

/// The CAs a running server holds: the root certificate (no key), every intermediate still
/// trusted (the newest issues; older ones only sign their CRLs until their overlap ends), and
/// the factory CA.
#[derive(Debug)]
pub struct OnlineCa {
    root: CaCertificate,
    intermediates: Vec<(IssuingCa, Option<OffsetDateTime>)>,
    factory: IssuingCa,
    revoked_cas: Vec<RevokedEntry>,
}

impl CaDirectory {
    /// The CA files under `<data_dir>/pki`.
    pub fn new(data_dir: impl AsRef<Path>) -> Self {
        Self {
            dir: data_dir.as_ref().join("pki"),
        }
    }

    /// The `pki` directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Whether a CA exists here.
    pub fn is_initialized(&self) -> bool {
        self.dir.join(STATE_FILE).exists()
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn load_state(&self) -> Result<CaState, CaError> {
        let path = self.file(STATE_FILE);
        if !path.exists() {
            return Err(CaError::NotInitialized(
                self.dir.parent().unwrap_or(&self.dir).to_owned(),
            ));
        }
        let text = fs::read(&path).map_err(CaError::io("reading", &path))?;
        let state: CaState = serde_json::from_slice(&text).map_err(|e| CaError::BadState {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if state.version != STATE_VERSION || state.intermediates.is_empty() {
            return Err(CaError::BadState {
                path,
                reason: format!("unsupported version {} or no intermediates", state.version),
            });
        }
        Ok(state)
    }

    fn save_state(&self, state: &CaState) -> Result<(), CaError> {
        let text = serde_json::to_vec_pretty(state).map_err(|e| CaError::BadState {
            path: self.file(STATE_FILE),
            reason: e.to_string(),
        })?;
        write_file(&self.file(STATE_FILE), &text, Handling::State)
    }

    fn read_cert(&self, name: &str) -> Result<CaCertificate, CaError> {
        let path = self.file(name);
        let text = fs::read(&path).map_err(CaError::io("reading", &path))?;
        Ok(CaCertificate::from_pem(&text)?)
    }

    /// The root certificate.
    pub fn root_certificate(&self) -> Result<CaCertificate, CaError> {
        self.read_cert("root.crt.pem")
    }

    /// The factory CA certificate.
    pub fn factory_certificate(&self) -> Result<CaCertificate, CaError> {
        self.read_cert("factory.crt.pem")
    }

    /// Intermediates trusted at `now` (newest first), with their trust deadline.
    pub fn trusted_intermediates(
        &self,
        now: OffsetDateTime,
    ) -> Result<Vec<TrustedIssuer>, CaError> {
        let state = self.load_state()?;
        let mut out = Vec::new();
        for rec in state.intermediates.iter().rev() {
            if rec.trusted_until.is_some_and(|t| now >= t) {
                continue;
            }
            let cert = self.read_cert(&format!("intermediate-{}.crt.pem", rec.generation))?;
            if state.revoked_cas.iter().any(|r| &r.serial == cert.serial())
                || now >= cert.not_after()
            {
                continue;
            }
            out.push(TrustedIssuer {
                certificate: cert,
                trusted_until: rec.trusted_until,
            });
        }
        Ok(out)
    }

    /// The chain file content: trusted intermediates (newest first) followed by the root.
    pub fn chain_pem(&self, now: OffsetDateTime) -> Result<String, CaError> {
        let mut out = String::new();
        for issuer in self.trusted_intermediates(now)? {
            out.push_str(&issuer.certificate.pem());
        }
        out.push_str(&self.root_certificate()?.pem());
        Ok(out)
    }

    /// The root-signed CRL (revoked intermediates and factory CAs), as last written.
    pub fn root_crl_pem(&self) -> Result<String, CaError> {
        let path = self.file("root.crl.pem");
        fs::read_to_string(&path).map_err(CaError::io("reading", &path))
    }

    /// Every intermediate generation ever created, oldest first, whether still trusted or not,
    /// with its trust deadline (`None` while current): what a configuration audit inspects.
    pub fn all_intermediates(
        &self,
    ) -> Result<Vec<(u32, CaCertificate, Option<OffsetDateTime>)>, CaError> {
        let state = self.load_state()?;
        state
            .intermediates
            .iter()
            .map(|rec| {
                let cert = self.read_cert(&format!("intermediate-{}.crt.pem", rec.generation))?;
                Ok((rec.generation, cert, rec.trusted_until))
            })
            .collect()
    }

    /// Serials of revoked CA certificates (to seed the live revocation set).
    pub fn revoked_ca_entries(&self) -> Result<Vec<RevokedEntry>, CaError> {
        Ok(self.load_state()?.revoked_cas)
    }
}

/// Writes a file atomically with `ironroot-fs` (temp file, fsync, rename, fsync the
/// directory); secrets are created with mode 0600.
fn write_file(path: &Path, data: &[u8], handling: Handling) -> Result<(), CaError> {
    let secret = matches!(
        handling,
        Handling::Offline | Handling::OnlineSecret | Handling::OperatorSecret
    );
    if secret {
        ironroot_fs::write_secret_atomically(path, data)?;
    } else {
        ironroot_fs::write_atomically(path, data)?;
    }
    Ok(())
}
