//! CA keys in a PKCS#11 token (HSM, SoftHSM2, tpm2-pkcs11), through the one token
//! implementation in `ironroot-pkcs11` (shared with device keys in `ironroot-element`).
//!
//! The private key is generated inside the token as sensitive and non-extractable and never
//! leaves it. To sign, ironroot hashes the message with SHA-256 itself and asks the token for a
//! raw `CKM_ECDSA` signature over the digest, then DER-encodes the returned `r || s`: SoftHSM
//! 2.6 rejects `CKM_ECDSA_SHA256`, and every token supports `CKM_ECDSA`.
//!
//! A key is named by [`Pkcs11KeyRef`] (module path, token label, key label), which is what the
//! CA state file records; the user PIN is given at start-up and never stored.
//!
//! A [`Pkcs11Signer`] signs through [`SESSION_POOL`] sessions, so concurrent issuances reach
//! the token in parallel instead of queueing on one session. `sign` blocks for the token's
//! latency: async callers run it on a blocking thread (the identity service does).

use std::fmt;
use std::path::PathBuf;

use ironroot_pkcs11::{KeyPair, Pkcs11Error, Token};

pub use ironroot_pkcs11::Pin;

use crate::signer::{CaSigner, SignerError};

/// Where a CA key lives in a PKCS#11 token. Contains no secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pkcs11KeyRef {
    /// Path of the PKCS#11 module, e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// Label of the token (`softhsm2-util --init-token --label ...`).
    pub token_label: String,
    /// `CKA_LABEL` of the key pair.
    pub key_label: String,
}

/// Sessions a [`Pkcs11Signer`] opens: a PKCS#11 session runs one operation at a time, so one
/// session serialises every signature; tokens (SoftHSM2, most HSMs) run sessions in parallel.
pub const SESSION_POOL: usize = 4;

/// A CA signing key held in a PKCS#11 token, signing through a small pool of sessions.
///
/// `sign` blocks for the token's latency: call it from a blocking thread
/// (`tokio::task::spawn_blocking`), never on an async worker.
pub struct Pkcs11Signer {
    key: KeyPair,
    reference: Pkcs11KeyRef,
}

impl fmt::Debug for Pkcs11Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Signer")
            .field("reference", &self.reference)
            .finish_non_exhaustive()
    }
}

impl From<Pkcs11Error> for SignerError {
    fn from(e: Pkcs11Error) -> Self {
        match e {
            Pkcs11Error::Call { operation, source } => SignerError::Pkcs11 { operation, source },
            Pkcs11Error::BadSignature { len } => SignerError::Pkcs11BadSignature { len },
            other => SignerError::Pkcs11Key(other.to_string()),
        }
    }
}

fn token(reference: &Pkcs11KeyRef, pin: &Pin) -> Result<Token, SignerError> {
    Ok(Token::open(&reference.module, &reference.token_label, pin)?.sessions_per_key(SESSION_POOL))
}

impl Pkcs11Signer {
    /// Opens an existing P-256 key pair labelled `reference.key_label`, with
    /// [`SESSION_POOL`] sessions.
    pub fn open(reference: &Pkcs11KeyRef, pin: &Pin) -> Result<Self, SignerError> {
        let key = token(reference, pin)?.open_key(&reference.key_label)?;
        Ok(Self {
            key,
            reference: reference.clone(),
        })
    }

    /// Generates a new P-256 key pair in the token (private half sensitive and
    /// non-extractable, signing only). Fails if a key with that label already exists.
    pub fn generate(reference: &Pkcs11KeyRef, pin: &Pin) -> Result<Self, SignerError> {
        let key = token(reference, pin)?.generate(&reference.key_label, false)?;
        Ok(Self {
            key,
            reference: reference.clone(),
        })
    }

    /// The key's location.
    pub fn reference(&self) -> &Pkcs11KeyRef {
        &self.reference
    }
}

impl CaSigner for Pkcs11Signer {
    fn public_key(&self) -> &[u8] {
        self.key.public_key()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError> {
        Ok(self.key.sign(message)?)
    }

    fn describe(&self) -> String {
        format!(
            "PKCS#11 token '{}' key '{}'",
            self.reference.token_label, self.reference.key_label
        )
    }
}
