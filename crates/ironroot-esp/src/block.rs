//! The 1,216-byte Secure Boot v2 signature block: layout, parser and encoder (no cryptography).
//!
//! | offset (RSA / ECDSA SHA-256 / ECDSA SHA-384) | size | field |
//! |---|---|---|
//! | 0 | 1 | magic `0xE7` |
//! | 1 | 1 | version: `0x02` RSA-3072-PSS, `0x03` ECDSA |
//! | 2 | 1 | ECDSA digest type: 0 = SHA-256, 1 = SHA-384 (0 for RSA) |
//! | 3 | 1 | zero |
//! | 4 | 32 / 32 / 48 | digest of the image (everything before the signature sector) |
//! | 36 / 36 / 52 | 776 / 65 / 97 | public key: RSA `n`(384 LE) `e`(u32) `rinv`(384 LE) `m'`(u32); ECDSA curve id + `x`,`y` little-endian |
//! | 812 / 101 / 149 | 384 / 64 / 96 | signature: RSA little-endian; ECDSA `r`,`s` little-endian |
//! | 1196 | 4 | CRC32 (IEEE, as zlib) of bytes 0..1196, little-endian |
//! | 1200 | 16 | zero |
//!
//! P-192 coordinates and `r`,`s` are 24 bytes each, packed back to back into the 64-byte
//! fields of the SHA-256 layout and followed by 16 zero bytes. The eFuse key digest is SHA-256 of the public-key
//! field exactly as it sits in the block (see [`EspPublicKey::digest`]).

use core::fmt;

use sha2::{Digest, Sha256};

use crate::error::BlockError;

/// Size of one signature block.
pub const BLOCK_SIZE: usize = 1216;
/// Size of the signature sector appended to the (4 KiB-padded) image.
pub const SECTOR_SIZE: usize = 4096;
/// Blocks a sector holds (one per eFuse key digest, for key revocation).
pub const MAX_BLOCKS: usize = 3;
/// First byte of every signature block.
pub const MAGIC: u8 = 0xE7;
/// Version byte of an RSA-3072-PSS block.
pub const VERSION_RSA: u8 = 0x02;
/// Version byte of an ECDSA block.
pub const VERSION_ECDSA: u8 = 0x03;

/// Offset of the CRC32; it covers every byte before it.
const CRC_OFFSET: usize = 1196;
/// Largest public-key field (RSA: n, e, rinv, m').
pub(crate) const MAX_KEY_LEN: usize = 384 + 4 + 384 + 4;
/// Largest signature field (RSA-3072).
pub(crate) const MAX_SIG_LEN: usize = 384;

/// A Secure Boot v2 signature scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// RSA-3072, PSS padding, SHA-256, MGF1-SHA-256, 32-byte salt.
    Rsa3072,
    /// ECDSA over NIST P-192 of the SHA-256 image digest (the digest truncated to 192 bits).
    EcdsaP192,
    /// ECDSA over NIST P-256 of the SHA-256 image digest.
    EcdsaP256,
    /// ECDSA over NIST P-384 of the SHA-384 image digest (newer chips; espsecure 5 writes it).
    EcdsaP384,
}

impl Scheme {
    /// Every supported scheme, in espsecure's order.
    pub const ALL: [Scheme; 4] = [
        Scheme::Rsa3072,
        Scheme::EcdsaP192,
        Scheme::EcdsaP256,
        Scheme::EcdsaP384,
    ];

    /// espsecure's `--scheme` name (`rsa3072`, `ecdsa192`, `ecdsa256`, `ecdsa384`).
    pub const fn espsecure_name(self) -> &'static str {
        match self {
            Scheme::Rsa3072 => "rsa3072",
            Scheme::EcdsaP192 => "ecdsa192",
            Scheme::EcdsaP256 => "ecdsa256",
            Scheme::EcdsaP384 => "ecdsa384",
        }
    }

    /// Length of the image digest the scheme signs: 48 (SHA-384) for P-384, else 32 (SHA-256).
    pub const fn image_digest_len(self) -> usize {
        match self {
            Scheme::EcdsaP384 => 48,
            _ => 32,
        }
    }

    /// Byte 2 of the block: 1 for SHA-384, else 0.
    const fn sha_version(self) -> u8 {
        match self {
            Scheme::EcdsaP384 => 1,
            _ => 0,
        }
    }

    /// ECDSA curve id of the block (1, 2, 3); `None` for RSA.
    #[cfg_attr(not(feature = "std"), allow(dead_code))] // used by the std signer
    pub(crate) const fn curve_id(self) -> Option<u8> {
        match self {
            Scheme::Rsa3072 => None,
            Scheme::EcdsaP192 => Some(1),
            Scheme::EcdsaP256 => Some(2),
            Scheme::EcdsaP384 => Some(3),
        }
    }

    /// Half the width of the ECDSA point and signature fields (P-192 fills 48 of 64 bytes).
    pub(crate) const fn ec_slot(self) -> usize {
        match self {
            Scheme::EcdsaP384 => 48,
            _ => 32,
        }
    }

    /// Bytes of one coordinate/scalar actually used by the curve.
    pub(crate) const fn ec_len(self) -> usize {
        match self {
            Scheme::Rsa3072 => 0,
            Scheme::EcdsaP192 => 24,
            Scheme::EcdsaP256 => 32,
            Scheme::EcdsaP384 => 48,
        }
    }

    const fn key_offset(self) -> usize {
        4 + self.image_digest_len()
    }

    /// Length of the public-key field (what the eFuse digest covers).
    pub const fn key_len(self) -> usize {
        match self {
            Scheme::Rsa3072 => MAX_KEY_LEN,
            _ => 1 + 2 * self.ec_slot(),
        }
    }

    const fn sig_offset(self) -> usize {
        self.key_offset() + self.key_len()
    }

    /// Length of the signature field.
    pub const fn sig_len(self) -> usize {
        match self {
            Scheme::Rsa3072 => MAX_SIG_LEN,
            _ => 2 * self.ec_slot(),
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scheme::Rsa3072 => "RSA-3072-PSS",
            Scheme::EcdsaP192 => "ECDSA P-192",
            Scheme::EcdsaP256 => "ECDSA P-256",
            Scheme::EcdsaP384 => "ECDSA P-384",
        })
    }
}

/// SHA-256 of a block's public-key field: the value burned into an eFuse key-digest slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyDigest(pub [u8; 32]);

/// The image digest recorded in a block: SHA-256, or SHA-384 for P-384.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ImageDigest {
    bytes: [u8; 48],
    len: usize,
}

impl ImageDigest {
    /// Wraps a 32- or 48-byte digest; `None` for any other length.
    pub fn from_slice(digest: &[u8]) -> Option<Self> {
        if digest.len() != 32 && digest.len() != 48 {
            return None;
        }
        let mut bytes = [0; 48];
        bytes[..digest.len()].copy_from_slice(digest);
        Some(ImageDigest {
            bytes,
            len: digest.len(),
        })
    }

    /// Digest of `data` as `scheme` signs it.
    pub fn of(scheme: Scheme, data: &[u8]) -> Self {
        match scheme {
            Scheme::EcdsaP384 => Self::from_slice(&sha2::Sha384::digest(data)),
            _ => Self::from_slice(&Sha256::digest(data)),
        }
        .expect("SHA-256 and SHA-384 have fixed lengths")
    }

    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl fmt::Debug for ImageDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ImageDigest(")?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// A public key as a signature block carries it (little-endian words, as the ESP32 ROM reads them).
///
/// Built from a block ([`SignatureBlock::parse`]) or from a key (`from_rsa`, `from_ecdsa_*`, or
/// with `std` from a PEM file); its [`digest`](Self::digest) is what eFuse holds.
#[derive(Clone, PartialEq, Eq)]
pub struct EspPublicKey {
    scheme: Scheme,
    bytes: [u8; MAX_KEY_LEN],
}

impl EspPublicKey {
    /// Wraps the raw public-key field of `scheme` (length [`Scheme::key_len`]).
    pub(crate) fn from_field(scheme: Scheme, field: &[u8]) -> Self {
        let mut bytes = [0; MAX_KEY_LEN];
        bytes[..field.len()].copy_from_slice(field);
        EspPublicKey { scheme, bytes }
    }

    /// The key's scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The public-key field exactly as in the block.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.scheme.key_len()]
    }

    /// SHA-256 of the public-key field: espsecure's `digest-sbv2-public-key`, the eFuse value.
    pub fn digest(&self) -> KeyDigest {
        KeyDigest(Sha256::digest(self.as_bytes()).into())
    }
}

impl fmt::Debug for EspPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EspPublicKey")
            .field("scheme", &self.scheme)
            .field("digest", &self.digest())
            .finish()
    }
}

/// One parsed signature block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureBlock {
    image_digest: ImageDigest,
    key: EspPublicKey,
    signature: [u8; MAX_SIG_LEN],
}

impl SignatureBlock {
    /// Assembles a block from its parts; `signature_field` is the block's signature field
    /// (little-endian, [`Scheme::sig_len`] bytes at most, zero-padded).
    pub(crate) fn from_parts(
        image_digest: ImageDigest,
        key: EspPublicKey,
        signature_field: &[u8],
    ) -> Self {
        let mut signature = [0; MAX_SIG_LEN];
        signature[..signature_field.len()].copy_from_slice(signature_field);
        SignatureBlock {
            image_digest,
            key,
            signature,
        }
    }

    /// Parses the first [`BLOCK_SIZE`] bytes of `bytes`: magic, version, CRC, curve and layout.
    /// Never panics, whatever the input.
    pub fn parse(bytes: &[u8]) -> Result<Self, BlockError> {
        let Some(b) = bytes.get(..BLOCK_SIZE) else {
            return Err(BlockError::Truncated { len: bytes.len() });
        };
        if b[0] != MAGIC {
            return Err(BlockError::BadMagic { found: b[0] });
        }
        let stored = u32::from_le_bytes([
            b[CRC_OFFSET],
            b[CRC_OFFSET + 1],
            b[CRC_OFFSET + 2],
            b[CRC_OFFSET + 3],
        ]);
        let computed = crc32fast::hash(&b[..CRC_OFFSET]);
        if stored != computed {
            return Err(BlockError::BadCrc { stored, computed });
        }
        let scheme = match b[1] {
            VERSION_RSA => Scheme::Rsa3072,
            VERSION_ECDSA => {
                let sha_version = b[2];
                // The curve id sits right after the digest, whose length the digest type sets.
                let curve = match sha_version {
                    0 => b[36],
                    1 => b[52],
                    _ => b[36],
                };
                match (sha_version, curve) {
                    (0, 1) => Scheme::EcdsaP192,
                    (0, 2) => Scheme::EcdsaP256,
                    (1, 3) => Scheme::EcdsaP384,
                    (0 | 1, 1..=3) | (2.., _) => {
                        return Err(BlockError::DigestCurveMismatch { sha_version, curve });
                    }
                    (_, found) => return Err(BlockError::BadCurve { found }),
                }
            }
            found => return Err(BlockError::BadVersion { found }),
        };
        let digest = &b[4..4 + scheme.image_digest_len()];
        let key = &b[scheme.key_offset()..scheme.sig_offset()];
        let sig = &b[scheme.sig_offset()..scheme.sig_offset() + scheme.sig_len()];
        Ok(SignatureBlock::from_parts(
            ImageDigest::from_slice(digest).expect("digest length comes from the scheme"),
            EspPublicKey::from_field(scheme, key),
            sig,
        ))
    }

    /// The block's scheme.
    pub fn scheme(&self) -> Scheme {
        self.key.scheme
    }

    /// The image digest the block signs.
    pub fn image_digest(&self) -> &ImageDigest {
        &self.image_digest
    }

    /// The public key the block carries (checked against eFuse by its digest).
    pub fn public_key(&self) -> &EspPublicKey {
        &self.key
    }

    /// The signature field as stored (little-endian).
    pub fn signature_field(&self) -> &[u8] {
        &self.signature[..self.scheme().sig_len()]
    }

    /// Encodes the block: fields, zero padding, CRC32 — byte for byte espsecure's layout.
    pub fn to_bytes(&self) -> [u8; BLOCK_SIZE] {
        let scheme = self.scheme();
        let mut b = [0u8; BLOCK_SIZE];
        b[0] = MAGIC;
        b[1] = match scheme {
            Scheme::Rsa3072 => VERSION_RSA,
            _ => VERSION_ECDSA,
        };
        b[2] = scheme.sha_version();
        b[4..4 + scheme.image_digest_len()].copy_from_slice(self.image_digest.as_bytes());
        b[scheme.key_offset()..scheme.sig_offset()].copy_from_slice(self.key.as_bytes());
        b[scheme.sig_offset()..scheme.sig_offset() + scheme.sig_len()]
            .copy_from_slice(self.signature_field());
        let crc = crc32fast::hash(&b[..CRC_OFFSET]);
        b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
        b
    }
}

/// The well-formed blocks of a signature sector, by slot, plus why slot 0 failed if it did.
#[derive(Debug, Clone)]
pub struct SignatureSector {
    slots: [Option<SignatureBlock>; MAX_BLOCKS],
    first_error: Option<BlockError>,
}

impl SignatureSector {
    /// Parses the three slots of a 4,096-byte sector (a shorter slice yields empty slots).
    pub fn parse(sector: &[u8]) -> Self {
        let mut first_error = None;
        let slots = core::array::from_fn(|i| {
            let parsed = SignatureBlock::parse(sector.get(i * BLOCK_SIZE..).unwrap_or(&[]));
            if i == 0 {
                first_error = parsed.as_ref().err().copied();
            }
            parsed.ok()
        });
        SignatureSector { slots, first_error }
    }

    /// Slot `i` (0..3) if it holds a well-formed block.
    pub fn block(&self, i: usize) -> Option<&SignatureBlock> {
        self.slots.get(i)?.as_ref()
    }

    /// The well-formed blocks with their slot index.
    pub fn blocks(&self) -> impl Iterator<Item = (usize, &SignatureBlock)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, b)| b.as_ref().map(|b| (i, b)))
    }

    /// Well-formed blocks in slot order until the first empty or invalid slot — what
    /// espsecure keeps when it appends signatures.
    pub fn leading_blocks(&self) -> impl Iterator<Item = &SignatureBlock> {
        self.slots.iter().map_while(Option::as_ref)
    }

    /// Why slot 0 is not a block, if it is not.
    pub fn first_error(&self) -> Option<BlockError> {
        self.first_error
    }
}
