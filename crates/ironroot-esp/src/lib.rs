//! ESP-IDF Secure Boot v2: the signature sector espsecure appends to an image, its parser and
//! verifier (`no_std` + `alloc`), and with `std` the signer and the eFuse key digest.
//!
//! The principal function is [`verify_signed_image`]: it takes an image (body + 4 KiB sector)
//! and the trusted key digests — what a chip holds in its eFuse key-digest slots, or the
//! digest of a key file — and returns a [`VerifiedEspImage`] or a typed [`VerifyError`].
//!
//! ```text
//!  image body, padded with 0xFF to 4 KiB      signature sector (4096 bytes)
//!  ┌───────────────────────────────────┬──────────┬──────────┬──────────┬──────┐
//!  │ app / bootloader binary           │ block 0  │ block 1  │ block 2  │ 0xFF │
//!  │                                   │ 1216 B   │ (or 0xFF)│ (or 0xFF)│      │
//!  └───────────────────────────────────┴──────────┴──────────┴──────────┴──────┘
//!  └─ SHA-256 (SHA-384 for P-384) ─┐     │ magic 0xE7, version, digest, public key,
//!                                  ▼     │ signature, CRC32
//!  block digest == body digest? ── SHA-256(public key field) ∈ trusted (eFuse) digests?
//!                 └────────────────────────────── signature valid? ──▶ VerifiedEspImage
//! ```
//!
//! # Getting started
//!
//! ```
//! use ironroot_esp::{sign_image, verify_signed_image, BlockSigner, Scheme, SigningKey, VerifyError};
//! // or SigningKey::from_pem(..) of a key from `espsecure generate-signing-key`
//! let key = SigningKey::generate(Scheme::EcdsaP256).unwrap();
//! let signed = sign_image(b"firmware", &[&key], false).unwrap();
//! let efuse = [key.public_key().digest()]; // espsecure digest-sbv2-public-key
//! let ok = verify_signed_image(&signed.bytes, &efuse).unwrap();
//! assert_eq!(ok.block, 0);
//!
//! let mut tampered = signed.bytes.clone();
//! tampered[0] ^= 1;
//! assert_eq!(
//!     verify_signed_image(&tampered, &efuse),
//!     Err(VerifyError::ImageDigestMismatch { block: 0 })
//! );
//! ```
//!
//! # Public API
//!
//! - Format (no crypto): [`SignatureBlock`] (`parse`, `to_bytes`), [`SignatureSector`],
//!   [`Scheme`], [`EspPublicKey`] (block form of a key; `digest` = eFuse value), [`KeyDigest`],
//!   [`ImageDigest`], constants [`BLOCK_SIZE`], [`SECTOR_SIZE`], [`MAX_BLOCKS`].
//! - Verification: [`verify_signed_image`] → [`VerifiedEspImage`] | [`VerifyError`];
//!   [`split_signed`].
//! - With `std`: [`SigningKey`] (PEM), [`ExternalSignature`] (pre-computed / HSM),
//!   the [`BlockSigner`] trait, [`sign_image`], [`sign_image_external`], [`SignedImage`],
//!   [`EspPublicKey::from_pem`]; errors [`KeyError`], [`SignError`].
//!
//! Deliberately stricter than espsecure's `verify-signature` (which checks the signature with
//! the key file and ignores the key in the block): a block counts only when the key it carries
//! is the trusted one, as on the chip, and an RSA key's `rinv`/`m'` must belong to its `n`.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod block;
mod error;
mod key;
#[cfg(feature = "std")]
mod sign;
mod verify;

pub use block::{
    BLOCK_SIZE, EspPublicKey, ImageDigest, KeyDigest, MAGIC, MAX_BLOCKS, SECTOR_SIZE, Scheme,
    SignatureBlock, SignatureSector, VERSION_ECDSA, VERSION_RSA,
};
pub use error::{BlockError, VerifyError};
#[cfg(feature = "std")]
pub use error::{KeyError, SignError};
#[cfg(feature = "std")]
pub use sign::{
    BlockSigner, ExternalSignature, SignedImage, SigningKey, sign_image, sign_image_external,
};
pub use verify::{VerifiedEspImage, split_signed, verify_signed_image};
