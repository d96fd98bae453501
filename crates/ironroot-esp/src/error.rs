//! Typed errors of parsing, verification and (with `std`) signing. None carries key material.

use crate::block::Scheme;

/// Why 1,216 bytes are not a well-formed signature block (checked before any cryptography).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlockError {
    /// Fewer than 1,216 bytes were given.
    #[error("signature block truncated: {len} of 1216 bytes")]
    Truncated {
        /// Bytes available.
        len: usize,
    },
    /// The first byte is not the magic 0xE7 (an erased or unused slot reads 0xFF).
    #[error("no signature block: magic byte is {found:#04x}, expected 0xe7")]
    BadMagic {
        /// The byte found.
        found: u8,
    },
    /// The version byte names neither RSA-PSS (0x02) nor ECDSA (0x03).
    #[error("unknown signature block version {found:#04x} (0x02 = RSA-3072-PSS, 0x03 = ECDSA)")]
    BadVersion {
        /// The byte found.
        found: u8,
    },
    /// The CRC32 over the first 1,196 bytes does not match the stored one.
    #[error("signature block CRC32 mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadCrc {
        /// CRC stored in the block.
        stored: u32,
        /// CRC of the block's contents.
        computed: u32,
    },
    /// An ECDSA block names a curve id other than 1 (P-192), 2 (P-256), 3 (P-384).
    #[error("unknown ECDSA curve id {found} (1 = P-192, 2 = P-256, 3 = P-384)")]
    BadCurve {
        /// The curve id found.
        found: u8,
    },
    /// The digest-type byte does not fit the curve (SHA-384 goes with P-384 only).
    #[error("ECDSA digest type {sha_version} does not fit curve id {curve}")]
    DigestCurveMismatch {
        /// Digest type byte (0 = SHA-256, 1 = SHA-384).
        sha_version: u8,
        /// The curve id.
        curve: u8,
    },
}

/// Why an image with a Secure Boot v2 signature sector was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The image is not a non-empty multiple of 4 KiB ending in a signature sector.
    #[error(
        "image of {len} bytes cannot carry a signature sector (need a non-zero multiple of 4096)"
    )]
    BadLength {
        /// Length of the image.
        len: usize,
    },
    /// No slot of the signature sector holds a well-formed block.
    #[error("no valid signature block in the signature sector (block 0: {first})")]
    NoSignatureBlock {
        /// Why slot 0 was rejected.
        first: BlockError,
    },
    /// Well-formed blocks exist, but none carries a trusted (and not revoked) public key.
    #[error(
        "no signature block carries a trusted public key ({blocks} well-formed block(s) checked)"
    )]
    NoTrustedKey {
        /// Number of well-formed blocks in the sector.
        blocks: usize,
    },
    /// A block with a trusted key records a digest other than the image's: the image changed.
    #[error("signature block {block}: image digest does not match the signed digest")]
    ImageDigestMismatch {
        /// Slot index (0..3).
        block: usize,
    },
    /// The public key in a block with a trusted digest is not a valid key of its scheme.
    #[error("signature block {block}: invalid {scheme} public key")]
    BadKey {
        /// Slot index (0..3).
        block: usize,
        /// The block's scheme.
        scheme: Scheme,
    },
    /// The signature does not verify under the block's (trusted) key.
    #[error("signature block {block}: {scheme} signature does not verify")]
    BadSignature {
        /// Slot index (0..3).
        block: usize,
        /// The block's scheme.
        scheme: Scheme,
    },
}

/// Why a key file could not be used (std only).
#[cfg(feature = "std")]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The file is not PEM, or PEM of a kind Secure Boot v2 does not use.
    #[error(
        "not a PEM RSA or EC key (expected PRIVATE KEY, RSA PRIVATE KEY, EC PRIVATE KEY or PUBLIC KEY)"
    )]
    NotPem,
    /// The PEM holds a key of an algorithm or size Secure Boot v2 does not support.
    #[error(
        "unsupported key for Secure Boot v2: {what} (supported: RSA-3072, ECDSA P-192, P-256, P-384)"
    )]
    Unsupported {
        /// What was found.
        what: &'static str,
    },
    /// A private key was needed but the file holds only a public key.
    #[error("a private key is needed to sign, but the file holds only a public key")]
    PublicOnly,
    /// The PEM decodes but its contents are malformed.
    #[error("malformed key: {0}")]
    Malformed(&'static str),
}

/// Why signing failed (std only).
#[cfg(feature = "std")]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// Neither a key nor a pre-computed signature was given.
    #[error("nothing to sign with: give at least one key or one public key + signature pair")]
    NoSigner,
    /// More blocks were asked for than the sector has free slots.
    #[error(
        "{wanted} new signature block(s) but only {free} free slot(s) of 3 in the signature sector"
    )]
    TooManyBlocks {
        /// New blocks requested.
        wanted: usize,
        /// Slots still free.
        free: usize,
    },
    /// A pre-computed signature needs the data already padded to 4 KiB (it was made over those bytes).
    #[error(
        "a pre-computed signature needs data that is already a multiple of 4096 bytes (got {len})"
    )]
    UnalignedForExternalSignature {
        /// Length of the data.
        len: usize,
    },
    /// A pre-computed signature does not verify under its public key over this data.
    #[error("pre-computed signature {index} was not made by its public key over this data")]
    ExternalSignatureInvalid {
        /// Position of the pair in the arguments.
        index: usize,
    },
    /// The signing primitive failed (e.g. the random number generator).
    #[error("{scheme} signing failed")]
    Crypto {
        /// The scheme that failed.
        scheme: Scheme,
    },
}
