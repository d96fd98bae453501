//! What `sign` takes (options named after imgtool's flags) and gives back (the signed image,
//! or why signing failed).

use std::io;

use crate::encrypted::AesKeySize;
use crate::header::{ImageHeader, ImageVersion};
use crate::layout::Dependency;
use crate::tools::keyfile::KeyType;
use crate::tools::trailer::TrailerError;
use crate::tools::wrap::{HmacSha, WrapError};

/// Security counter choice (imgtool `-s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityCounter {
    /// `auto`: `major << 24 | minor << 16 | revision` of the image version.
    Auto,
    /// An explicit value.
    Value(u32),
}

/// How the signing key is named in the image (imgtool `--public-key-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PublicKeyFormat {
    /// KEYHASH TLV: hash of the SubjectPublicKeyInfo (default).
    #[default]
    Hash,
    /// PUBKEY TLV: the SubjectPublicKeyInfo itself.
    Full,
}

/// Image hash choice (imgtool `--sha`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashChoice {
    /// The key's default: SHA-256 (SHA-512 for `--pure`).
    #[default]
    Auto,
    /// SHA-256.
    Sha256,
    /// SHA-512 (Ed25519 keys or unsigned images only).
    Sha512,
}

/// Options of `sign`, named after imgtool's flags.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SignOptions {
    /// `-v`: image version.
    pub version: ImageVersion,
    /// `-H`: header size (at least 32).
    pub header_size: u16,
    /// `--pad-header`: prepend `header_size` erased bytes instead of requiring the input to
    /// start with `header_size` zero bytes.
    pub pad_header: bool,
    /// `-S`: slot size; 0 skips the size check.
    pub slot_size: u32,
    /// `--pad`: pad to the slot size and write the trailer magic.
    pub pad: bool,
    /// `--confirm`: set image_ok in the trailer (implies `pad`).
    pub confirm: bool,
    /// `--test`: leave image_ok erased but pad (implies `pad`).
    pub test: bool,
    /// `--align`: flash write alignment (1, 2, 4, 8, 16, 32).
    pub align: u32,
    /// `--max-align`: 8, 16 or 32; default `max(8, align)`.
    pub max_align: Option<u32>,
    /// `-M`: sectors in the swap status area (default 128).
    pub max_sectors: Option<u32>,
    /// `--overwrite-only`.
    pub overwrite_only: bool,
    /// `-R`: value of erased flash (0xff or 0).
    pub erased_val: u8,
    /// `-L`: RAM load address (sets RAM_LOAD).
    pub load_addr: Option<u32>,
    /// `-F`: fixed flash address (sets ROM_FIXED).
    pub rom_fixed: Option<u32>,
    /// `--non-bootable`.
    pub non_bootable: bool,
    /// `-s`: security counter.
    pub security_counter: Option<SecurityCounter>,
    /// `-d`: dependencies.
    pub dependencies: Vec<Dependency>,
    /// `--public-key-format`.
    pub public_key_format: PublicKeyFormat,
    /// `--pure`: Ed25519 signature over the image instead of its digest.
    pub pure: bool,
    /// `--sha`.
    pub hash: HashChoice,
    /// `--encrypt-keylen`.
    pub encrypt_keylen: AesKeySize,
    /// `--hmac-sha`.
    pub hmac_sha: HmacSha,
    /// `-c/--clear`: add the encryption TLV and flag but leave the payload in clear.
    pub clear: bool,
    /// `--save-enctlv`: size the trailer's key fields for the whole ENC TLV.
    pub save_enctlv: bool,
    /// `--pad-sig`: pad ECDSA signatures to 72 bytes (MCUboot < 1.5).
    pub pad_sig: bool,
    /// `--custom-tlv`: protected vendor TLVs (type 0xa0..=0xfffe) in order.
    pub custom_tlvs: Vec<(u16, Vec<u8>)>,
    /// `--vid`: vendor UUID (16 raw bytes).
    pub vendor_id: Option<[u8; 16]>,
    /// `--cid`: image class UUID (16 raw bytes).
    pub class_id: Option<[u8; 16]>,
}

impl SignOptions {
    /// imgtool's defaults for the three required options (`-v`, `-H`, `-S`).
    pub fn new(version: ImageVersion, header_size: u16, slot_size: u32) -> Self {
        Self {
            version,
            header_size,
            pad_header: false,
            slot_size,
            pad: false,
            confirm: false,
            test: false,
            align: 1,
            max_align: None,
            max_sectors: None,
            overwrite_only: false,
            erased_val: 0xff,
            load_addr: None,
            rom_fixed: None,
            non_bootable: false,
            security_counter: None,
            dependencies: Vec::new(),
            public_key_format: PublicKeyFormat::Hash,
            pure: false,
            hash: HashChoice::Auto,
            encrypt_keylen: AesKeySize::Aes128,
            hmac_sha: HmacSha::Sha256,
            clear: false,
            save_enctlv: false,
            pad_sig: false,
            custom_tlvs: Vec::new(),
            vendor_id: None,
            class_id: None,
        }
    }
}

/// Why signing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// Reading the input or writing the output failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// `-H` below 32.
    #[error("header size {0} is below the minimum of 32 bytes")]
    HeaderTooSmall(u16),
    /// Without `--pad-header`, the input must start with `header_size` zero bytes.
    #[error(
        "header padding was not requested and the image does not start with {0} zero bytes \
         (add --pad-header)"
    )]
    HeaderNotZero(u16),
    /// The input is shorter than the header it must contain.
    #[error("input is {len} bytes, shorter than the {header_size}-byte header")]
    InputShorterThanHeader {
        /// Input length.
        len: u64,
        /// Header size.
        header_size: u16,
    },
    /// The image does not fit MCUboot's 32-bit sizes.
    #[error("image is too large for the MCUboot format (sizes are 32-bit)")]
    TooLarge,
    /// The protected TLVs exceed 64 KiB.
    #[error("protected TLVs are larger than 65535 bytes")]
    ProtectedTlvsTooLarge,
    /// The signed image plus trailer does not fit the slot.
    #[error("image size ({image:#x}) + trailer ({trailer:#x}) exceeds requested size {slot:#x}")]
    DoesNotFitSlot {
        /// Image size.
        image: u64,
        /// Trailer size.
        trailer: u32,
        /// Slot size.
        slot: u32,
    },
    /// The hash algorithm is not allowed for the key.
    #[error("key {key} can not be used with --sha {sha}; allowed: {allowed}")]
    HashNotAllowed {
        /// The key type.
        key: KeyType,
        /// The requested hash.
        sha: &'static str,
        /// The allowed hashes.
        allowed: &'static str,
    },
    /// `--pure` needs an Ed25519 signing key.
    #[error("--pure requires an ed25519 signing key")]
    PureRequiresEd25519,
    /// `--pure` fixes the hash; `--sha` may not be given.
    #[error("pure signatures enforce their hash algorithm; do not combine --pure with --sha")]
    PureWithSha,
    /// X25519 keys cannot sign.
    #[error("x25519 keys cannot sign images; use ecdsa-p256 or ed25519")]
    CannotSign,
    /// imgtool requires a P-256 encryption key when signing with P-256.
    #[error(
        "signing and encryption must use the same type of key (ecdsa-p256 signing needs an ecdsa-p256 encryption key)"
    )]
    EncryptionKeyMismatch,
    /// The encryption key cannot wrap.
    #[error(transparent)]
    Wrap(#[from] WrapError),
    /// `-L` and `-F` together.
    #[error("can not set rom_fixed and load_addr at the same time")]
    LoadAddrAndRomFixed,
    /// A custom TLV type is outside the vendor range or clashes with a defined type.
    #[error("custom TLV type {0:#06x} must be in 0x00a0..=0xfffe and not a predefined type")]
    BadCustomTlv(u16),
    /// A custom TLV type appears twice.
    #[error("custom TLV {0:#x} already exists")]
    DuplicateCustomTlv(u16),
    /// A TLV value exceeds 65535 bytes.
    #[error("TLV value of {0} bytes exceeds 65535")]
    TlvTooLarge(usize),
    /// Trailer options are invalid.
    #[error("{0}")]
    Trailer(#[from] TrailerError),
    /// The signing primitive failed.
    #[error("signing failed")]
    Signature,
}

/// What `sign` produced.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SignedImage {
    /// The header written.
    pub header: ImageHeader,
    /// The image hash (SHA-256 or SHA-512) over header, plaintext payload and protected TLVs.
    pub digest: Vec<u8>,
    /// The signature bytes, when a key signed.
    pub signature: Option<Vec<u8>>,
    /// Length of the image (through the main TLV area).
    pub image_len: u64,
    /// Bytes written (image, plus padding and trailer with `--pad`).
    pub output_len: u64,
}
