//! Errors of token operations. No variant carries a PIN or key material.

/// Why a PKCS#11 operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Pkcs11Error {
    /// A PKCS#11 call failed (wrong PIN: `operation == "C_Login"`).
    #[error("PKCS#11 {operation} failed: {source}")]
    Call {
        /// What we were doing ("C_Sign", "loading the module", ...).
        operation: &'static str,
        /// The error reported by cryptoki / the token.
        #[source]
        source: cryptoki::error::Error,
    },
    /// No token with this label is present in the module's slots.
    #[error("token '{0}' not found")]
    TokenNotFound(String),
    /// No private key with this label in the token.
    #[error("no key labelled '{label}' in token '{token}'")]
    NoSuchKey {
        /// The token's label.
        token: String,
        /// The key's `CKA_LABEL`.
        label: String,
    },
    /// `generate` was asked for a label that already holds a key.
    #[error("a key labelled '{label}' already exists in token '{token}'")]
    KeyExists {
        /// The token's label.
        token: String,
        /// The key's `CKA_LABEL`.
        label: String,
    },
    /// The label names several private or public keys, or a private key without its public one.
    #[error(
        "expected exactly one private and one public key labelled '{label}', found {private} and {public}"
    )]
    Ambiguous {
        /// The key's `CKA_LABEL`.
        label: String,
        /// Private keys found.
        private: usize,
        /// Public keys found.
        public: usize,
    },
    /// The key is not an uncompressed P-256 point (another curve or key type).
    #[error("key '{0}' is not a P-256 key (CKA_EC_POINT is not an uncompressed P-256 point)")]
    NotP256(String),
    /// The token returned a signature of the wrong shape.
    #[error("token returned a {len}-byte ECDSA signature; expected 64 bytes (r || s)")]
    BadSignature {
        /// Length of what the token returned.
        len: usize,
    },
    /// The token does not offer this mechanism (e.g. `CKM_ECDH1_DERIVE`).
    #[error("token '{token}' does not offer {mechanism}")]
    Unsupported {
        /// The token's label.
        token: String,
        /// The missing mechanism.
        mechanism: &'static str,
    },
    /// A lock in this process was poisoned by a panicking thread.
    #[error("PKCS#11 {0} lock is poisoned")]
    Poisoned(&'static str),
}

pub(crate) fn ck(operation: &'static str) -> impl FnOnce(cryptoki::error::Error) -> Pkcs11Error {
    move |source| Pkcs11Error::Call { operation, source }
}
