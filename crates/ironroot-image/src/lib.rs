//! MCUboot-compatible firmware images: parse and verify without heap; sign, encrypt and manage
//! keys with the `std` feature.
//!
//! The principal function is [`verify`]: it reads an image through an [`ImageSource`] (a slice,
//! a flash region, anything with `read_at`), checks it against a slice of [`TrustedKey`]s and
//! returns a [`VerifiedImage`] or a typed [`VerifyError`]. Built with
//! `default-features = false` the crate is `no_std`, allocates nothing and uses no `unsafe`, so
//! a bootloader can verify images in place in flash; the default `std` feature adds the host
//! tools (signing, keys, dumps).
//!
//! ```text
//!            image in flash / RAM / file                          trusted keys (OTP, ROM)
//!  ┌──────────┬──────────────┬───────────────┬────────────────┐        │
//!  │ header   │ payload      │ protected TLVs│ TLVs: hash,    │        │
//!  │ 32+ bytes│ (maybe AES-  │ SEC_CNT, DEP, │ KEYHASH, sig,  │        │
//!  │          │  CTR)        │ UUIDs ...     │ ENC key        │        │
//!  └──────────┴──────────────┴───────────────┴────────────────┘        │
//!  └──────── hashed (SHA-256), signed ────────┘                        │
//!        │ ImageSource::read_at, 1 KiB stack chunks                    │
//!        ▼                                                             ▼
//!   ImageLayout::parse ──> match KEYHASH/PUBKEY ──> one hash pass ──> signature ──> VerifiedImage
//!                                                  (decrypting for
//!                                                   verify_encrypted)
//! ```
//!
//! # Getting started (bootloader side, `no_std`)
//!
//! ```
//! use ironroot_image::{verify, ImageFlags, TrustedKey, VerifyError};
//!
//! /// Boots only a validly signed, bootable image whose security counter is not below `floor`.
//! fn may_boot(image: &[u8], spki_der: &[u8], floor: u32) -> Result<bool, VerifyError<ironroot_image::OutOfBounds>> {
//!     let key = TrustedKey::from_spki_der(spki_der).expect("provisioned key is valid");
//!     let v = verify(image, core::slice::from_ref(&key))?;
//!     Ok(v.security_counter.unwrap_or(0) >= floor && !v.flags.contains(ImageFlags::NON_BOOTABLE))
//! }
//! # let ed = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
//! #     0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07, 0x3a,
//! #     0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a];
//! # assert!(matches!(may_boot(&[], &ed, 0), Err(VerifyError::Format(_))));
//! ```
//!
//! # Public API
//!
//! - Reading: [`ImageSource`] (`len`, `read_at`, optional zero-copy `as_bytes`), implemented
//!   for `&[u8]` and `&mut S`; `FlashRegion` over `ReadNorFlash` with the `embedded-storage`
//!   feature; [`ChunkedOnly`] to force the chunked path.
//! - Keys: [`TrustedKey`] (`EcdsaP256` | `Ed25519`) from SPKI DER or raw bytes;
//!   [`TrustedKey::key_hash`] is imgtool's `getpubhash`.
//! - Verification: [`verify`], [`verify_with_buffer`], [`verify_encrypted`] →
//!   [`VerifiedImage`] (header, version, flags, SHA-256 digest, security counter,
//!   [`Dependencies`], UUIDs, matched `key_index`, `total_len`) or [`VerifyError<E>`].
//! - Encryption (device side): [`DecryptionKey`] (P-256 or X25519 private key),
//!   [`unwrap_image_key`] → [`ImageKey`] (zeroized), [`PayloadDecryptor::apply`] at any payload
//!   offset.
//! - Structure without crypto: [`ImageLayout::parse`], [`ImageHeader`], [`TlvAreas`],
//!   [`TlvEntry`], [`TlvType`], [`ImageVersion`], [`ImageFlags`].
//! - With `std`: the [`tools`] module: [`tools::KeyFile`]/[`tools::PrivateKey`] (imgtool PEM
//!   formats, keygen), [`tools::sign`] with [`tools::SignOptions`] (imgtool's `sign` flags),
//!   [`tools::ImageDump`], [`tools::decrypt_image`], [`tools::FileSource`].
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![forbid(unsafe_code)]

mod ecdsa;
mod encrypted;
mod error;
mod header;
mod keys;
mod layout;
mod source;
mod tlv;
mod verify;

#[cfg(feature = "std")]
pub mod tools;

pub use encrypted::{
    AesKeySize, DecryptionKey, ECIES_INFO, ImageKey, PayloadDecryptor, unwrap_image_key,
};
pub use error::{FormatError, ReadError, UnwrapError, VerifyError};
pub use header::{
    IMAGE_HEADER_SIZE, IMAGE_MAGIC, ImageFlags, ImageHeader, ImageVersion, VersionParseError,
};
pub use keys::{
    EcdsaP256Key, Ed25519Key, KeyAlgorithm, KeyError, MAX_SPKI_LEN, SpkiDer, TrustedKey,
};
pub use layout::{
    Dependencies, Dependency, ImageLayout, MAX_DEPENDENCIES, MAX_SIGNATURE_LEN, MAX_SIGNATURES,
    SignatureSlot,
};
pub use source::{ChunkedOnly, ImageSource, OutOfBounds};
#[cfg(feature = "embedded-storage")]
pub use source::{FlashReadError, FlashRegion, MAX_READ_SIZE};
pub use tlv::{
    TLV_HEADER_SIZE, TLV_INFO_MAGIC, TLV_PROT_INFO_MAGIC, TlvAreas, TlvEntry, TlvIter, TlvType,
};
pub use verify::{
    DEFAULT_CHUNK, HashAlgorithm, SignatureKind, VerifiedImage, verify, verify_encrypted,
    verify_with_buffer,
};
