//! Public keys a verifier trusts, and how an image names them.
//!
//! An image names its signing key with a KEYHASH TLV (the hash of the key's DER
//! SubjectPublicKeyInfo, exactly the bytes imgtool's `get_public_bytes()` returns and
//! `imgtool getpubhash` hashes) or a PUBKEY TLV (the DER SubjectPublicKeyInfo itself).
//! imgtool hashes with the image's hash algorithm, so KEYHASH is SHA-256 (32 bytes) for normal
//! images and SHA-512 (64 bytes) for Ed25519 `--pure` images; both are recognised.
//!
//! P-256 keys are always hashed in their uncompressed SPKI form (91 bytes), as imgtool writes
//! them, even when built from a compressed point.

use core::fmt;

use sha2::{Digest, Sha256, Sha512};

/// DER prefix of a P-256 SubjectPublicKeyInfo with an uncompressed point (26 bytes).
pub(crate) const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// DER prefix of a P-256 SubjectPublicKeyInfo with a compressed point (26 bytes).
const P256_SPKI_COMPRESSED_PREFIX: [u8; 26] = [
    0x30, 0x39, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x22, 0x00,
];
/// DER prefix of an Ed25519 SubjectPublicKeyInfo (12 bytes, RFC 8410).
pub(crate) const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// DER prefix of an X25519 SubjectPublicKeyInfo (12 bytes, RFC 8410).
#[cfg_attr(not(feature = "std"), allow(dead_code))]
pub(crate) const X25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00,
];

/// Length of the longest SubjectPublicKeyInfo handled here (uncompressed P-256).
pub const MAX_SPKI_LEN: usize = 91;

/// Why a public key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The DER is not a P-256 or Ed25519 SubjectPublicKeyInfo.
    UnsupportedAlgorithm,
    /// The encoding is malformed (wrong length or structure).
    Malformed,
    /// The P-256 point is not on the curve.
    InvalidPoint,
    /// The Ed25519 key is of small order; anyone could forge signatures for it.
    WeakKey,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::UnsupportedAlgorithm => {
                "unsupported public key: expected an ECDSA P-256 or Ed25519 SubjectPublicKeyInfo"
            }
            Self::Malformed => "malformed public key encoding",
            Self::InvalidPoint => "P-256 public key is not a valid curve point",
            Self::WeakKey => "Ed25519 public key has small order and is unsafe",
        })
    }
}

impl core::error::Error for KeyError {}

/// Signature algorithm of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256 with SHA-256 (TLV 0x22).
    EcdsaP256,
    /// Ed25519 (TLV 0x24).
    Ed25519,
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::EcdsaP256 => "ecdsa-p256",
            Self::Ed25519 => "ed25519",
        })
    }
}

/// A DER SubjectPublicKeyInfo in a fixed buffer (no heap).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SpkiDer {
    buf: [u8; MAX_SPKI_LEN],
    len: usize,
}

impl SpkiDer {
    fn from_parts(prefix: &[u8], key: &[u8]) -> Self {
        let mut buf = [0u8; MAX_SPKI_LEN];
        buf[..prefix.len()].copy_from_slice(prefix);
        buf[prefix.len()..prefix.len() + key.len()].copy_from_slice(key);
        Self {
            buf,
            len: prefix.len() + key.len(),
        }
    }
}

impl AsRef<[u8]> for SpkiDer {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl fmt::Debug for SpkiDer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SpkiDer(")?;
        for b in self.as_ref() {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// An ECDSA P-256 public key a verifier trusts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcdsaP256Key {
    key: p256::ecdsa::VerifyingKey,
    point: [u8; 65],
    key_hash: [u8; 32],
    /// The same key parsed once for the faster std backend (see `ecdsa.rs`).
    #[cfg(feature = "std")]
    fast: crate::ecdsa::FastKey,
}

impl EcdsaP256Key {
    /// From a SEC1 point, compressed (33 bytes) or uncompressed (65 bytes).
    pub fn from_sec1(bytes: &[u8]) -> Result<Self, KeyError> {
        if !matches!(bytes.len(), 33 | 65) {
            return Err(KeyError::Malformed);
        }
        let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(bytes)
            .map_err(|_| KeyError::InvalidPoint)?;
        let encoded = key.to_sec1_point(false);
        let mut point = [0u8; 65];
        point.copy_from_slice(encoded.as_bytes());
        let spki = SpkiDer::from_parts(&P256_SPKI_PREFIX, &point);
        Ok(Self {
            key,
            point,
            key_hash: Sha256::digest(spki.as_ref()).into(),
            #[cfg(feature = "std")]
            fast: crate::ecdsa::FastKey::from_uncompressed(&point).ok_or(KeyError::InvalidPoint)?,
        })
    }

    /// The uncompressed SEC1 point (65 bytes, starting with 0x04).
    pub fn sec1_uncompressed(&self) -> &[u8; 65] {
        &self.point
    }

    #[cfg_attr(all(feature = "std", not(test)), allow(dead_code))]
    pub(crate) fn verifying_key(&self) -> &p256::ecdsa::VerifyingKey {
        &self.key
    }

    #[cfg(feature = "std")]
    pub(crate) fn fast_key(&self) -> &crate::ecdsa::FastKey {
        &self.fast
    }
}

/// An Ed25519 public key a verifier trusts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ed25519Key {
    key: ed25519_dalek::VerifyingKey,
    key_hash: [u8; 32],
}

impl Ed25519Key {
    /// From the 32-byte encoded point. Small-order (weak) keys are refused.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        let key =
            ed25519_dalek::VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::InvalidPoint)?;
        if key.is_weak() {
            return Err(KeyError::WeakKey);
        }
        let spki = SpkiDer::from_parts(&ED25519_SPKI_PREFIX, bytes);
        Ok(Self {
            key,
            key_hash: Sha256::digest(spki.as_ref()).into(),
        })
    }

    /// The 32-byte encoded point.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }

    pub(crate) fn verifying_key(&self) -> &ed25519_dalek::VerifyingKey {
        &self.key
    }
}

/// A public key that may sign images, as given to [`verify`](crate::verify).
///
/// Build it from the DER SubjectPublicKeyInfo (`imgtool getpub -e raw` output, or the base64
/// body of a `PUBLIC KEY` PEM) or from raw key bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrustedKey {
    /// ECDSA P-256.
    EcdsaP256(EcdsaP256Key),
    /// Ed25519.
    Ed25519(Ed25519Key),
}

impl TrustedKey {
    /// Parses a DER SubjectPublicKeyInfo holding a P-256 (uncompressed or compressed point)
    /// or Ed25519 key.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        if let Some(point) = der.strip_prefix(&P256_SPKI_PREFIX[..]) {
            if point.len() != 65 {
                return Err(KeyError::Malformed);
            }
            return EcdsaP256Key::from_sec1(point).map(Self::EcdsaP256);
        }
        if let Some(point) = der.strip_prefix(&P256_SPKI_COMPRESSED_PREFIX[..]) {
            if point.len() != 33 {
                return Err(KeyError::Malformed);
            }
            return EcdsaP256Key::from_sec1(point).map(Self::EcdsaP256);
        }
        if let Some(raw) = der.strip_prefix(&ED25519_SPKI_PREFIX[..]) {
            let raw: &[u8; 32] = raw.try_into().map_err(|_| KeyError::Malformed)?;
            return Ed25519Key::from_bytes(raw).map(Self::Ed25519);
        }
        Err(KeyError::UnsupportedAlgorithm)
    }

    /// An ECDSA P-256 key from a SEC1 point (33 or 65 bytes).
    pub fn ecdsa_p256_from_sec1(bytes: &[u8]) -> Result<Self, KeyError> {
        EcdsaP256Key::from_sec1(bytes).map(Self::EcdsaP256)
    }

    /// An Ed25519 key from its 32 bytes.
    pub fn ed25519_from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        Ed25519Key::from_bytes(bytes).map(Self::Ed25519)
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        match self {
            Self::EcdsaP256(_) => KeyAlgorithm::EcdsaP256,
            Self::Ed25519(_) => KeyAlgorithm::Ed25519,
        }
    }

    /// The DER SubjectPublicKeyInfo as imgtool encodes it (P-256 uncompressed).
    pub fn spki_der(&self) -> SpkiDer {
        match self {
            Self::EcdsaP256(k) => SpkiDer::from_parts(&P256_SPKI_PREFIX, &k.point),
            Self::Ed25519(k) => SpkiDer::from_parts(&ED25519_SPKI_PREFIX, k.as_bytes()),
        }
    }

    /// SHA-256 of [`spki_der`](Self::spki_der): the KEYHASH of normal images, and what
    /// `imgtool getpubhash` prints. A device stores this in OTP to pin its signing key.
    pub fn key_hash(&self) -> [u8; 32] {
        match self {
            Self::EcdsaP256(k) => k.key_hash,
            Self::Ed25519(k) => k.key_hash,
        }
    }

    /// Whether a KEYHASH or PUBKEY TLV value names this key.
    ///
    /// KEYHASH may be 32 bytes (SHA-256) or 64 bytes (SHA-512, imgtool's choice for
    /// `--pure` images). Public data: the comparison need not be constant time.
    pub fn is_named_by(&self, kind: crate::TlvType, value: &[u8]) -> bool {
        match kind {
            crate::TlvType::KeyHash => match value.len() {
                32 => value == self.key_hash(),
                64 => value == Sha512::digest(self.spki_der().as_ref()).as_slice(),
                _ => false,
            },
            crate::TlvType::PubKey => value == self.spki_der().as_ref(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Public key of an imgtool-generated P-256 key (public data; private half not kept).
    const P256_SPKI: [u8; 91] = [
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04, 0x1b, 0x42, 0x21,
        0x82, 0x5e, 0xd1, 0xec, 0xb1, 0xff, 0x0a, 0x84, 0x1b, 0x70, 0x03, 0x8f, 0x56, 0xa7, 0xe5,
        0xc2, 0x7f, 0x34, 0xcd, 0x91, 0xe5, 0x8e, 0x79, 0xea, 0xae, 0x33, 0xb0, 0xd0, 0xcd, 0x67,
        0x13, 0x78, 0x67, 0x34, 0x25, 0x72, 0x75, 0x1c, 0xb2, 0xb5, 0xfe, 0x3a, 0x1d, 0x38, 0x55,
        0x2f, 0x3d, 0xf1, 0x6c, 0x48, 0x80, 0xe6, 0x57, 0x63, 0xfd, 0x2f, 0x7d, 0x35, 0xb5, 0xaf,
        0xbb,
    ];

    #[test]
    fn p256_spki_round_trips_and_compressed_form_hashes_the_same() {
        let k = TrustedKey::from_spki_der(&P256_SPKI).unwrap();
        assert_eq!(k.spki_der().as_ref(), &P256_SPKI[..]);
        assert_eq!(k.key_hash(), <[u8; 32]>::from(Sha256::digest(P256_SPKI)));
        let TrustedKey::EcdsaP256(p) = &k else {
            panic!("not p256")
        };
        let x = &p.sec1_uncompressed()[1..33];
        let y_odd = p.sec1_uncompressed()[64] & 1;
        let mut compressed = [0u8; 33];
        compressed[0] = 2 + y_odd;
        compressed[1..].copy_from_slice(x);
        let c = TrustedKey::ecdsa_p256_from_sec1(&compressed).unwrap();
        assert_eq!(c.key_hash(), k.key_hash());
    }

    #[test]
    fn malformed_keys_are_refused() {
        assert_eq!(
            TrustedKey::from_spki_der(&[]),
            Err(KeyError::UnsupportedAlgorithm)
        );
        assert_eq!(
            TrustedKey::from_spki_der(&P256_SPKI[..90]),
            Err(KeyError::Malformed)
        );
        let mut off_curve = P256_SPKI;
        off_curve[60] ^= 1;
        assert_eq!(
            TrustedKey::from_spki_der(&off_curve),
            Err(KeyError::InvalidPoint)
        );
        // The identity point encoding has small order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            TrustedKey::ed25519_from_bytes(&identity),
            Err(KeyError::WeakKey)
        );
    }

    #[test]
    fn key_tlv_matching() {
        let k = TrustedKey::from_spki_der(&P256_SPKI).unwrap();
        assert!(k.is_named_by(crate::TlvType::KeyHash, &k.key_hash()));
        assert!(k.is_named_by(crate::TlvType::PubKey, &P256_SPKI));
        let sha512 = Sha512::digest(P256_SPKI);
        assert!(k.is_named_by(crate::TlvType::KeyHash, &sha512));
        assert!(!k.is_named_by(crate::TlvType::KeyHash, &[0u8; 32]));
        assert!(!k.is_named_by(crate::TlvType::Sha256, &k.key_hash()));
    }
}
