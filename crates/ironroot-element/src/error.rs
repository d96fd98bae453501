//! Errors of secure elements. No variant carries key material, PINs or the HUK.

/// Why an element operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ElementError {
    /// A key label is empty, too long, or has characters outside `[A-Za-z0-9._-]`.
    #[error("bad key label {0:?}: use 1-64 characters from A-Z a-z 0-9 . _ -")]
    BadLabel(String),
    /// `generate` was asked for a label that already holds a key.
    #[error("a key labelled {0:?} already exists in the element")]
    KeyExists(String),
    /// No key under this label.
    #[error("no key labelled {0:?} in the element")]
    NoSuchKey(String),
    /// A sealed key could not be opened: wrong HUK (a key file copied from another device) or a
    /// corrupted file.
    #[error("sealed key {label:?} does not open with this device's hardware-unique key (copied from another device, or corrupted)")]
    Unseal {
        /// The key's label.
        label: String,
    },
    /// The hardware-unique key is missing, too short, or unreadable.
    #[error("hardware-unique key: {0}")]
    Huk(String),
    /// The element does not offer this operation.
    #[error("this element does not offer {0}")]
    Unsupported(&'static str),
    /// A cryptographic primitive failed.
    #[error("element crypto operation failed: {0}")]
    Crypto(&'static str),
    /// The element's storage failed.
    #[error("element storage: {0}")]
    Storage(String),
    /// A peer public key for ECDH is not a valid P-256 point.
    #[error("peer public key is not an uncompressed P-256 point")]
    BadPeerKey,
    /// A hardware or token backend failed (PKCS#11, TPM).
    #[error("{backend} {operation} failed: {detail}")]
    Backend {
        /// "PKCS#11", "TPM".
        backend: &'static str,
        /// What we were doing ("C_Sign", "opening the module").
        operation: &'static str,
        /// The backend's own message.
        detail: String,
    },
}

/// Checks a key label: 1-64 characters from `[A-Za-z0-9._-]`, not starting with a dot.
pub(crate) fn check_label(label: &str) -> Result<(), ElementError> {
    let ok = !label.is_empty()
        && label.len() <= 64
        && !label.starts_with('.')
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ElementError::BadLabel(label.chars().take(80).collect()))
    }
}
