//! Device keys in a PKCS#11 token: a hardware token, SoftHSM2, or a TPM 2.0 behind
//! tpm2-pkcs11 (`libtpm2_pkcs11.so.1`), through the one token implementation in
//! `ironroot-pkcs11` that the CA uses too.
//!
//! A key's element label is its `CKA_LABEL`. Keys are generated inside the token with
//! `CKA_SENSITIVE=true`, `CKA_EXTRACTABLE=false` (and `CKA_DERIVE` where the token offers
//! `CKM_ECDH1_DERIVE`); `destroy` is `C_DestroyObject` of the private and the public object.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use ironroot_pkcs11::{KeyPair, Pin, Pkcs11Error, Token};
use zeroize::Zeroizing;

use crate::error::check_label;
use crate::{DeviceSigner, ElementError, SecureElement};

/// Sessions per device key: a device signs one handshake at a time, and a TPM runs one
/// command at a time anyway.
const SESSIONS_PER_KEY: usize = 1;

/// A PKCS#11 token used as a device's secure element.
pub struct Pkcs11Element {
    token: Token,
}

impl fmt::Debug for Pkcs11Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

fn backend(e: Pkcs11Error) -> ElementError {
    match e {
        Pkcs11Error::NoSuchKey { label, .. } => ElementError::NoSuchKey(label),
        Pkcs11Error::KeyExists { label, .. } => ElementError::KeyExists(label),
        Pkcs11Error::Unsupported { mechanism, .. } => ElementError::Unsupported(mechanism),
        Pkcs11Error::Call { operation, source } => ElementError::Backend {
            backend: "PKCS#11",
            operation,
            detail: source.to_string(),
        },
        other => ElementError::Backend {
            backend: "PKCS#11",
            operation: "token",
            detail: other.to_string(),
        },
    }
}

impl Pkcs11Element {
    /// Loads `module`, finds the token labelled `token_label` and logs in with `pin` (a wrong
    /// PIN is [`ElementError::Backend`] with `operation == "C_Login"`).
    pub fn open(module: &Path, token_label: &str, pin: &Pin) -> Result<Self, ElementError> {
        let token = Token::open(module, token_label, pin)
            .map_err(backend)?
            .sessions_per_key(SESSIONS_PER_KEY);
        Ok(Self { token })
    }

    /// The token underneath (serial number, model, mechanisms).
    pub fn token(&self) -> &Token {
        &self.token
    }

    /// The raw key pair under `label`, for inspection ([`KeyPair::protection`],
    /// [`KeyPair::probe_private`]); it signs, but never reveals the private key either.
    pub fn key_pair(&self, label: &str) -> Result<KeyPair, ElementError> {
        check_label(label)?;
        self.token.open_key(label).map_err(backend)
    }
}

impl SecureElement for Pkcs11Element {
    fn describe(&self) -> String {
        format!(
            "PKCS#11 token '{}' ({}) via {}",
            self.token.label(),
            self.token.model(),
            self.token.module().display()
        )
    }

    fn unique_id(&self) -> Result<String, ElementError> {
        // Serial numbers are unique per manufacturer, labels per device: hash both, so the id
        // has the same shape (32 hex digits) for every token.
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        ctx.update(b"ironroot-element/pkcs11-id/v1\0");
        ctx.update(self.token.serial_number().as_bytes());
        ctx.update(b"\0");
        ctx.update(self.token.label().as_bytes());
        let digest = ctx.finish();
        Ok(digest.as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect())
    }

    fn generate(&self, label: &str) -> Result<Arc<dyn DeviceSigner>, ElementError> {
        check_label(label)?;
        let key = self.token.generate(label, true).map_err(backend)?;
        Ok(Arc::new(Pkcs11Signer(key)))
    }

    fn open(&self, label: &str) -> Result<Arc<dyn DeviceSigner>, ElementError> {
        Ok(Arc::new(Pkcs11Signer(self.key_pair(label)?)))
    }

    fn destroy(&self, label: &str) -> Result<(), ElementError> {
        check_label(label)?;
        self.token.destroy(label).map_err(backend)
    }

    fn ecdh(&self, label: &str, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>, ElementError> {
        if !self.token.has_ecdh() {
            return Err(ElementError::Unsupported(
                "ECDH (no CKM_ECDH1_DERIVE in this token)",
            ));
        }
        self.key_pair(label)?
            .ecdh(peer)
            .map_err(backend)?
            .ok_or(ElementError::BadPeerKey)
    }
}

/// A device key in a token.
struct Pkcs11Signer(KeyPair);

impl fmt::Debug for Pkcs11Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pkcs11Signer({:?}, P-256, in token)", self.0.label())
    }
}

impl DeviceSigner for Pkcs11Signer {
    fn public_key(&self) -> &[u8] {
        self.0.public_key()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, ElementError> {
        self.0.sign(message).map_err(backend)
    }

    fn key_id(&self) -> &str {
        self.0.label()
    }
}
