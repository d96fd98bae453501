//! Typed errors of parsing and verification. Every malformed input maps to one variant; none
//! carries secret material.

use core::fmt;

use crate::tlv::TlvType;

/// A structural defect of an image: what a parser finds before any cryptography runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormatError {
    /// The image ends before a structure that must be there.
    Truncated {
        /// Offset the structure needs the image to reach.
        needed: u32,
        /// Actual length of the image.
        len: u32,
    },
    /// The first four bytes are not the MCUboot magic `0x96f3b83d`.
    BadMagic {
        /// The value found.
        found: u32,
    },
    /// The header claims a size smaller than the 32-byte header structure.
    HeaderTooSmall {
        /// The claimed header size.
        hdr_size: u16,
    },
    /// Header sizes add up past 4 GiB.
    SizeOverflow,
    /// The header announces a protected TLV area but its magic `0x6908` is missing.
    BadProtectedTlvMagic {
        /// The value found instead.
        found: u16,
    },
    /// The protected TLV area's size differs from the header's `protect_tlv_size`.
    ProtectedSizeMismatch {
        /// Size in the header.
        header: u16,
        /// Size in the area's info.
        area: u16,
    },
    /// The main TLV area's magic `0x6907` is missing.
    BadTlvMagic {
        /// The value found instead.
        found: u16,
    },
    /// A TLV area is smaller than its own 4-byte info header.
    TlvAreaTooSmall {
        /// The area's claimed total size.
        tot: u16,
    },
    /// A TLV entry (header or value) crosses the end of its area.
    TlvOverrun {
        /// Offset of the entry's header.
        offset: u32,
    },
    /// A TLV has a length its type does not allow.
    BadTlvLength {
        /// The TLV type.
        kind: TlvType,
        /// Its length.
        len: u16,
    },
    /// A TLV's value is not one its type allows (e.g. SIG_PURE other than 1).
    BadTlvValue {
        /// The TLV type.
        kind: TlvType,
    },
    /// A TLV that may appear once appears twice.
    DuplicateTlv {
        /// The TLV type.
        kind: TlvType,
    },
    /// A TLV that must be covered by the signature sits in the unprotected area.
    NotProtected {
        /// The TLV type.
        kind: TlvType,
    },
    /// A hash or signature TLV sits in the protected area, which it cannot describe.
    MisplacedInProtected {
        /// The TLV type.
        kind: TlvType,
    },
    /// More dependency TLVs than [`MAX_DEPENDENCIES`](crate::MAX_DEPENDENCIES).
    TooManyDependencies {
        /// The supported maximum.
        max: usize,
    },
    /// More signature TLVs than [`MAX_SIGNATURES`](crate::MAX_SIGNATURES).
    TooManySignatures {
        /// The supported maximum.
        max: usize,
    },
    /// Both AES-128 and AES-256 encryption flags are set.
    ConflictingEncryptionFlags,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { needed, len } => write!(
                f,
                "image truncated: needs at least {needed} bytes but has {len}"
            ),
            Self::BadMagic { found } => write!(
                f,
                "bad image magic {found:#010x} (expected 0x96f3b83d); is this an MCUboot image?"
            ),
            Self::HeaderTooSmall { hdr_size } => {
                write!(
                    f,
                    "header size {hdr_size} is smaller than the 32-byte header"
                )
            }
            Self::SizeOverflow => f.write_str("image sizes overflow 32 bits"),
            Self::BadProtectedTlvMagic { found } => write!(
                f,
                "protected TLV area announced by the header has bad magic {found:#06x} \
                 (expected 0x6908)"
            ),
            Self::ProtectedSizeMismatch { header, area } => write!(
                f,
                "protected TLV area is {area} bytes but the header says {header}"
            ),
            Self::BadTlvMagic { found } => write!(
                f,
                "bad TLV area magic {found:#06x} (expected 0x6907); is this a signed image?"
            ),
            Self::TlvAreaTooSmall { tot } => {
                write!(
                    f,
                    "TLV area size {tot} is smaller than its 4-byte info header"
                )
            }
            Self::TlvOverrun { offset } => {
                write!(
                    f,
                    "TLV entry at offset {offset:#x} runs past the end of its area"
                )
            }
            Self::BadTlvLength { kind, len } => write!(f, "{kind} has invalid length {len}"),
            Self::BadTlvValue { kind } => write!(f, "{kind} has an invalid value"),
            Self::DuplicateTlv { kind } => write!(f, "{kind} appears more than once"),
            Self::NotProtected { kind } => write!(
                f,
                "{kind} is in the unprotected TLV area, where the signature does not cover it"
            ),
            Self::MisplacedInProtected { kind } => {
                write!(f, "{kind} must not be in the protected TLV area")
            }
            Self::TooManyDependencies { max } => {
                write!(f, "more than {max} dependency TLVs")
            }
            Self::TooManySignatures { max } => write!(f, "more than {max} signature TLVs"),
            Self::ConflictingEncryptionFlags => {
                f.write_str("both ENCRYPTED_AES128 and ENCRYPTED_AES256 flags are set")
            }
        }
    }
}

impl core::error::Error for FormatError {}

/// Failure to read an image's structure: the source failed, or the bytes are malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadError<E> {
    /// The source failed to deliver bytes.
    Read {
        /// Offset of the failed read.
        offset: u32,
        /// The source's error.
        error: E,
    },
    /// The image is malformed.
    Format(FormatError),
}

impl<E> From<FormatError> for ReadError<E> {
    fn from(e: FormatError) -> Self {
        Self::Format(e)
    }
}

impl<E: fmt::Display> fmt::Display for ReadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { offset, error } => {
                write!(f, "reading the image at offset {offset:#x} failed: {error}")
            }
            Self::Format(e) => write!(f, "malformed image: {e}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> core::error::Error for ReadError<E> {}

/// Why unwrapping an image's AES key failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnwrapError {
    /// The image carries no encryption-key TLV.
    MissingKeyTlv,
    /// The image's key TLV is for another kind of device key (e.g. X25519 TLV, P-256 key).
    KeyKindMismatch {
        /// The TLV found in the image.
        found: TlvType,
    },
    /// The key TLV's length does not match the AES key size the header announces.
    BadLength {
        /// The TLV found in the image.
        kind: TlvType,
        /// Its length.
        len: u16,
    },
    /// The ephemeral public key in the TLV is not a valid point.
    BadEphemeralKey,
    /// The HMAC over the wrapped key does not match: wrong device key, or a tampered TLV.
    MacMismatch,
    /// The header has no encryption flag, so the payload is plaintext.
    NotEncrypted,
}

impl fmt::Display for UnwrapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingKeyTlv => f.write_str("image has no encryption key TLV"),
            Self::KeyKindMismatch { found } => write!(
                f,
                "image key is wrapped as {found}, which this decryption key cannot open"
            ),
            Self::BadLength { kind, len } => write!(
                f,
                "{kind} has length {len}, which does not match the image's AES key size"
            ),
            Self::BadEphemeralKey => {
                f.write_str("encryption TLV holds an invalid ephemeral public key")
            }
            Self::MacMismatch => f.write_str(
                "encryption key TLV failed its HMAC check (wrong decryption key or tampered TLV)",
            ),
            Self::NotEncrypted => f.write_str("image is not encrypted"),
        }
    }
}

impl core::error::Error for UnwrapError {}

/// Why an image failed verification.
///
/// `E` is the error type of the [`ImageSource`](crate::ImageSource) being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyError<E> {
    /// The source failed to deliver bytes.
    Read {
        /// Offset of the failed read.
        offset: u32,
        /// The source's error.
        error: E,
    },
    /// The image is malformed.
    Format(FormatError),
    /// No SHA-256/SHA-512 TLV, and the image is not signed in pure mode.
    MissingHash,
    /// The image's hash algorithm is not supported (SHA-384 belongs to P-384 keys).
    UnsupportedHash {
        /// The hash TLV found.
        kind: TlvType,
    },
    /// The computed hash differs from the hash TLV: the header, payload or protected TLVs
    /// were changed after signing.
    HashMismatch,
    /// The image has no signature TLV.
    MissingSignature,
    /// The image is only signed with algorithms this crate does not verify (RSA, P-224).
    UnsupportedSignature {
        /// The signature TLV found.
        kind: TlvType,
    },
    /// No KEYHASH/PUBKEY TLV in the image names one of the trusted keys.
    UntrustedKey,
    /// A trusted key is named, but its signature does not verify.
    BadSignature,
    /// A trusted key is named, but the signature TLV after it is for another algorithm.
    KeyAlgorithmMismatch,
    /// The image is marked SIG_PURE, but its signature is not Ed25519.
    PureRequiresEd25519,
    /// The image's AES key could not be unwrapped.
    Unwrap(UnwrapError),
}

impl<E> From<FormatError> for VerifyError<E> {
    fn from(e: FormatError) -> Self {
        Self::Format(e)
    }
}

impl<E> From<ReadError<E>> for VerifyError<E> {
    fn from(e: ReadError<E>) -> Self {
        match e {
            ReadError::Read { offset, error } => Self::Read { offset, error },
            ReadError::Format(f) => Self::Format(f),
        }
    }
}

impl<E> From<UnwrapError> for VerifyError<E> {
    fn from(e: UnwrapError) -> Self {
        Self::Unwrap(e)
    }
}

impl<E: fmt::Display> fmt::Display for VerifyError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { offset, error } => {
                write!(f, "reading the image at offset {offset:#x} failed: {error}")
            }
            Self::Format(e) => write!(f, "malformed image: {e}"),
            Self::MissingHash => f.write_str("image has no SHA256 or SHA512 hash TLV"),
            Self::UnsupportedHash { kind } => write!(f, "unsupported image hash {kind}"),
            Self::HashMismatch => {
                f.write_str("image hash mismatch: header, payload or protected TLVs were modified")
            }
            Self::MissingSignature => f.write_str("image is not signed"),
            Self::UnsupportedSignature { kind } => {
                write!(f, "image is signed with unsupported algorithm {kind}")
            }
            Self::UntrustedKey => {
                f.write_str("image is not signed by any trusted key (key hash not recognised)")
            }
            Self::BadSignature => f.write_str("image signature is invalid for the trusted key"),
            Self::KeyAlgorithmMismatch => {
                f.write_str("signature algorithm does not match the trusted key named by the image")
            }
            Self::PureRequiresEd25519 => {
                f.write_str("SIG_PURE image must carry an Ed25519 signature")
            }
            Self::Unwrap(e) => write!(f, "cannot decrypt image: {e}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> core::error::Error for VerifyError<E> {}
