//! Device keys that never leave their secure element.
//!
//! A device's identity key is generated *inside* its element and is only ever used through
//! [`DeviceSigner::sign`]. Elements: a TPM 2.0 (through tpm2-pkcs11) or any PKCS#11 token —
//! an HSM, SoftHSM2, an ATECC608 behind a PKCS#11 shim — as [`Pkcs11Element`]; for Linux
//! gateways without one and for the fleet simulator, the sealed [`SoftwareElement`]. Everything
//! that needs the key is built on that one operation:
//!
//! ```text
//!  SecureElement::generate(label) ──▶ Arc<dyn DeviceSigner> ──┬─▶ RcgenKey      (CSR signed in the element)
//!                                                             └─▶ client_auth   (rustls client certificate)
//! ```
//!
//! No function of this crate returns private key bytes. The software element keeps keys sealed
//! with AES-256-GCM under a key derived (HKDF-SHA256) from the device's hardware-unique key, so a
//! copied key file is useless without that device's HUK.
#![forbid(unsafe_code)]

mod adapters;
mod error;
mod pkcs11;
mod software;

use std::fmt;
use std::sync::Arc;

use zeroize::Zeroizing;

pub use adapters::{ElementClientCert, RcgenKey, client_auth_resolver, rustls_signing_key};
pub use error::ElementError;
pub use ironroot_pkcs11::{AttributeInfo, AttributeType, KeyPair, KeyProtection, Pin, Token};
pub use pkcs11::Pkcs11Element;
pub use software::{Huk, KeyStorage, SoftwareElement};

/// A private key held by a secure element: ECDSA P-256 with SHA-256, usable only by asking the
/// element to sign.
pub trait DeviceSigner: Send + Sync + fmt::Debug {
    /// The public key as an uncompressed SEC1 point (`04 || X || Y`, 65 bytes).
    fn public_key(&self) -> &[u8];

    /// Signs `message` (hashed with SHA-256 inside) and returns the DER `ECDSA-Sig-Value`, the
    /// encoding TLS 1.2/1.3 and X.509 carry.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, ElementError>;

    /// The key's label inside its element (e.g. `"identity-3"`); never secret.
    fn key_id(&self) -> &str;
}

/// A secure element: makes keys inside itself, signs with them, destroys them; optionally
/// offers a unique id, a monotonic counter and ECDH (for encrypted firmware).
pub trait SecureElement: Send + Sync + fmt::Debug {
    /// What the element is, for logs and reports (never secret): `"software element (sealed
    /// files in /var/lib/ironroot)"`, `"PKCS#11 token 'dev' (SoftHSM)"`.
    fn describe(&self) -> String;

    /// A stable identifier of this element, unique per device (hex).
    fn unique_id(&self) -> Result<String, ElementError>;

    /// Generates a new P-256 key inside the element under `label`. Fails with
    /// [`ElementError::KeyExists`] if the label is taken: keys are never silently replaced.
    fn generate(&self, label: &str) -> Result<Arc<dyn DeviceSigner>, ElementError>;

    /// Opens an existing key by label.
    fn open(&self, label: &str) -> Result<Arc<dyn DeviceSigner>, ElementError>;

    /// Destroys the key under `label` (decommission, rotation). Destroying a missing key is
    /// [`ElementError::NoSuchKey`].
    fn destroy(&self, label: &str) -> Result<(), ElementError>;

    /// Reads the element's monotonic counter.
    fn counter(&self) -> Result<u64, ElementError> {
        Err(ElementError::Unsupported("monotonic counter"))
    }

    /// Increments the monotonic counter and returns the new value.
    fn increment_counter(&self) -> Result<u64, ElementError> {
        Err(ElementError::Unsupported("monotonic counter"))
    }

    /// ECDH P-256 between the key under `label` and `peer` (uncompressed SEC1 point); returns
    /// the shared x-coordinate (32 bytes), wiped on drop.
    fn ecdh(&self, label: &str, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>, ElementError> {
        let _ = (label, peer);
        Err(ElementError::Unsupported("ECDH"))
    }
}
