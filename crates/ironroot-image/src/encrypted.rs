//! Encrypted images: unwrapping the AES key with the device's private key, and the seekable
//! AES-CTR payload cipher.
//!
//! MCUboot encrypts only the payload (`hdr_size..hdr_size + img_size`) with AES-CTR, a zero
//! nonce and the block counter counted from the payload's first byte. The random AES key is
//! wrapped for the device with ECIES:
//!
//! ```text
//! ENC_EC256  = ephemeral P-256 point (65, uncompressed) | HMAC-SHA256 tag (32) | wrapped key (16|32)
//! ENC_X25519 = ephemeral X25519 key (32)                | HMAC-SHA256 tag (32) | wrapped key (16|32)
//! ENC_X25519_SHA512 = ephemeral X25519 key (32)         | HMAC-SHA512 tag (64) | wrapped key (16|32)
//!
//! shared = ECDH(device private key, ephemeral)
//! okm    = HKDF(hash, salt = none, ikm = shared, info = "MCUBoot_ECIES_v1", len = keylen + maclen)
//! check    HMAC(okm[keylen..], wrapped key) == tag            (constant time)
//! key    = AES-CTR(okm[..keylen], nonce 0).decrypt(wrapped key)
//! ```
//!
//! The hash and signature cover the plaintext, so [`verify_encrypted`](crate::verify_encrypted)
//! decrypts while hashing; [`PayloadDecryptor`] decrypts at any payload offset so a bootloader
//! can decrypt while copying between slots.

use core::fmt;

use aes::{Aes128, Aes256};
use ctr::Ctr128BE;
use ctr::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Sha256, Sha512};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{UnwrapError, VerifyError};
use crate::header::ImageFlags;
use crate::layout::ImageLayout;
use crate::source::ImageSource;
use crate::tlv::TlvType;

/// HKDF `info` string of MCUboot's ECIES key wrapping.
pub const ECIES_INFO: &[u8] = b"MCUBoot_ECIES_v1";

/// AES key size of an encrypted image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AesKeySize {
    /// AES-128 (`ENCRYPTED_AES128`, imgtool's default).
    Aes128,
    /// AES-256 (`ENCRYPTED_AES256`, `--encrypt-keylen 256`).
    Aes256,
}

impl AesKeySize {
    /// Key length in bytes.
    pub const fn key_len(self) -> usize {
        match self {
            Self::Aes128 => 16,
            Self::Aes256 => 32,
        }
    }

    /// The header flag that announces this key size.
    pub const fn flag(self) -> ImageFlags {
        match self {
            Self::Aes128 => ImageFlags::ENCRYPTED_AES128,
            Self::Aes256 => ImageFlags::ENCRYPTED_AES256,
        }
    }

    /// The key size a header's flags announce, or `None` for a plaintext image.
    pub const fn from_flags(flags: ImageFlags) -> Option<Self> {
        if flags.contains(ImageFlags::ENCRYPTED_AES256) {
            Some(Self::Aes256)
        } else if flags.contains(ImageFlags::ENCRYPTED_AES128) {
            Some(Self::Aes128)
        } else {
            None
        }
    }
}

/// The AES key that encrypts one image's payload. Zeroized on drop; `Debug` hides it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ImageKey {
    bytes: [u8; 32],
    #[zeroize(skip)]
    size: AesKeySize,
}

impl ImageKey {
    /// An AES-128 key.
    pub fn aes128(key: [u8; 16]) -> Self {
        let mut bytes = [0u8; 32];
        bytes[..16].copy_from_slice(&key);
        let mut key = key;
        key.zeroize();
        Self {
            bytes,
            size: AesKeySize::Aes128,
        }
    }

    /// An AES-256 key.
    pub fn aes256(key: [u8; 32]) -> Self {
        let mut key = key;
        let out = Self {
            bytes: key,
            size: AesKeySize::Aes256,
        };
        key.zeroize();
        out
    }

    /// Key size.
    pub fn size(&self) -> AesKeySize {
        self.size
    }

    /// The key bytes (16 or 32). Secret: never log them.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.size.key_len()]
    }
}

impl fmt::Debug for ImageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImageKey({:?}, <redacted>)", self.size)
    }
}

enum CtrCipher {
    Aes128(Ctr128BE<Aes128>),
    Aes256(Ctr128BE<Aes256>),
}

/// AES-CTR over an image payload, positioned by payload offset (0 = first payload byte).
///
/// Encryption and decryption are the same operation. Any offset works, so a bootloader can
/// decrypt sector by sector while it copies between slots, in any order.
pub struct PayloadDecryptor {
    cipher: CtrCipher,
}

impl PayloadDecryptor {
    /// A cipher for the payload encrypted under `key`.
    pub fn new(key: &ImageKey) -> Self {
        let nonce = [0u8; 16];
        let cipher = match key.size {
            AesKeySize::Aes128 => {
                let mut k = Zeroizing::new([0u8; 16]);
                k.copy_from_slice(key.as_bytes());
                CtrCipher::Aes128(Ctr128BE::<Aes128>::new(&(*k).into(), &nonce.into()))
            }
            AesKeySize::Aes256 => {
                let mut k = Zeroizing::new([0u8; 32]);
                k.copy_from_slice(key.as_bytes());
                CtrCipher::Aes256(Ctr128BE::<Aes256>::new(&(*k).into(), &nonce.into()))
            }
        };
        Self { cipher }
    }

    /// XORs the key stream for payload bytes `payload_offset..payload_offset + buf.len()`
    /// into `buf`: decrypts ciphertext, or encrypts plaintext.
    pub fn apply(&mut self, payload_offset: u32, buf: &mut [u8]) {
        match &mut self.cipher {
            CtrCipher::Aes128(c) => {
                c.seek(u64::from(payload_offset));
                c.apply_keystream(buf);
            }
            CtrCipher::Aes256(c) => {
                c.seek(u64::from(payload_offset));
                c.apply_keystream(buf);
            }
        }
    }
}

impl fmt::Debug for PayloadDecryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PayloadDecryptor(<redacted>)")
    }
}

/// A device's private key for unwrapping image keys. Zeroized on drop.
#[non_exhaustive]
pub enum DecryptionKey {
    /// P-256 private key, for ENC_EC256 images (imgtool `-E` with an ecdsa-p256 key).
    EcP256(p256::NonZeroScalar),
    /// X25519 private key, for ENC_X25519 and ENC_X25519_SHA512 images.
    X25519(x25519_dalek::StaticSecret),
}

impl DecryptionKey {
    /// A P-256 key from its 32-byte big-endian scalar.
    pub fn ec_p256_from_bytes(scalar: &[u8; 32]) -> Option<Self> {
        let secret = p256::SecretKey::from_slice(scalar).ok()?;
        Some(Self::EcP256(secret.to_nonzero_scalar()))
    }

    /// An X25519 key from its 32 bytes.
    pub fn x25519_from_bytes(bytes: [u8; 32]) -> Self {
        Self::X25519(x25519_dalek::StaticSecret::from(bytes))
    }

    /// Unwraps the AES key from an encryption TLV value of type `kind`.
    pub fn unwrap(
        &self,
        kind: TlvType,
        tlv: &[u8],
        size: AesKeySize,
    ) -> Result<ImageKey, UnwrapError> {
        let keylen = size.key_len();
        let bad_len = UnwrapError::BadLength {
            kind,
            len: u16::try_from(tlv.len()).unwrap_or(u16::MAX),
        };
        // Shared secret and (ephemeral key length, MAC length, hash) per TLV kind.
        let mut shared = Zeroizing::new([0u8; 32]);
        let (epk_len, mac_len) = match (self, kind) {
            (Self::EcP256(secret), TlvType::EncEc256) => {
                if tlv.len() != 65 + 32 + keylen {
                    return Err(bad_len);
                }
                let epk = p256::PublicKey::from_sec1_bytes(&tlv[..65])
                    .map_err(|_| UnwrapError::BadEphemeralKey)?;
                let s = p256::ecdh::diffie_hellman(secret, epk.as_affine());
                shared.copy_from_slice(s.raw_secret_bytes().as_slice());
                (65, 32)
            }
            (Self::X25519(secret), TlvType::EncX25519 | TlvType::EncX25519Sha512) => {
                let mac_len = if kind == TlvType::EncX25519 { 32 } else { 64 };
                if tlv.len() != 32 + mac_len + keylen {
                    return Err(bad_len);
                }
                let mut epk = [0u8; 32];
                epk.copy_from_slice(&tlv[..32]);
                let s = secret.diffie_hellman(&x25519_dalek::PublicKey::from(epk));
                if !s.was_contributory() {
                    return Err(UnwrapError::BadEphemeralKey);
                }
                shared.copy_from_slice(s.as_bytes());
                (32, mac_len)
            }
            (_, found) => return Err(UnwrapError::KeyKindMismatch { found }),
        };
        let tag = &tlv[epk_len..epk_len + mac_len];
        let wrapped = &tlv[epk_len + mac_len..];
        let mut okm = Zeroizing::new([0u8; 96]);
        let okm = &mut okm[..keylen + mac_len];
        if mac_len == 32 {
            Hkdf::<Sha256>::new(None, &shared[..])
                .expand(ECIES_INFO, okm)
                .map_err(|_| UnwrapError::MacMismatch)?;
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&okm[keylen..])
                .map_err(|_| UnwrapError::MacMismatch)?;
            mac.update(wrapped);
            mac.verify_slice(tag)
                .map_err(|_| UnwrapError::MacMismatch)?;
        } else {
            Hkdf::<Sha512>::new(None, &shared[..])
                .expand(ECIES_INFO, okm)
                .map_err(|_| UnwrapError::MacMismatch)?;
            let mut mac = <Hmac<Sha512> as KeyInit>::new_from_slice(&okm[keylen..])
                .map_err(|_| UnwrapError::MacMismatch)?;
            mac.update(wrapped);
            mac.verify_slice(tag)
                .map_err(|_| UnwrapError::MacMismatch)?;
        }
        let mut key = Zeroizing::new([0u8; 32]);
        key[..keylen].copy_from_slice(wrapped);
        let wrap_key = match size {
            AesKeySize::Aes128 => {
                let mut k = [0u8; 16];
                k.copy_from_slice(&okm[..16]);
                ImageKey::aes128(k)
            }
            AesKeySize::Aes256 => {
                let mut k = [0u8; 32];
                k.copy_from_slice(&okm[..32]);
                ImageKey::aes256(k)
            }
        };
        PayloadDecryptor::new(&wrap_key).apply(0, &mut key[..keylen]);
        Ok(match size {
            AesKeySize::Aes128 => {
                let mut k = [0u8; 16];
                k.copy_from_slice(&key[..16]);
                ImageKey::aes128(k)
            }
            AesKeySize::Aes256 => ImageKey::aes256(*key),
        })
    }
}

impl Drop for DecryptionKey {
    fn drop(&mut self) {
        // NonZeroScalar does not zeroize itself on drop (its Zeroize sets it to one).
        // StaticSecret zeroizes itself.
        if let Self::EcP256(s) = self {
            s.zeroize();
        }
    }
}

impl fmt::Debug for DecryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EcP256(_) => f.write_str("DecryptionKey::EcP256(<redacted>)"),
            Self::X25519(_) => f.write_str("DecryptionKey::X25519(<redacted>)"),
        }
    }
}

/// Finds the encryption TLV of the image in `src` and unwraps its AES key with `key`.
///
/// Fails with [`UnwrapError::NotEncrypted`] when the header has no encryption flag.
pub fn unwrap_image_key<S: ImageSource>(
    mut src: S,
    key: &DecryptionKey,
) -> Result<ImageKey, VerifyError<S::Error>> {
    let layout = ImageLayout::parse(&mut src)?;
    unwrap_with_layout(&mut src, &layout, key)
}

pub(crate) fn unwrap_with_layout<S: ImageSource>(
    src: &mut S,
    layout: &ImageLayout,
    key: &DecryptionKey,
) -> Result<ImageKey, VerifyError<S::Error>> {
    let size = AesKeySize::from_flags(layout.header.flags).ok_or(UnwrapError::NotEncrypted)?;
    let entry = layout.encryption.ok_or(UnwrapError::MissingKeyTlv)?;
    let mut buf = [0u8; 65 + 64 + 32];
    let value = buf
        .get_mut(..usize::from(entry.len))
        .ok_or(UnwrapError::BadLength {
            kind: entry.kind,
            len: entry.len,
        })?;
    entry.read_value(src, value)?;
    Ok(key.unwrap(entry.kind, value, size)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctr_is_seekable_and_symmetric() {
        let key = ImageKey::aes128([7u8; 16]);
        let mut whole = [0u8; 100];
        PayloadDecryptor::new(&key).apply(0, &mut whole);
        let mut dec = PayloadDecryptor::new(&key);
        let mut tail = [0u8; 37];
        dec.apply(63, &mut tail);
        assert_eq!(tail[..], whole[63..]);
        let mut head = whole;
        dec.apply(0, &mut head);
        assert_eq!(head, [0u8; 100]);
    }

    #[test]
    fn image_key_debug_is_redacted() {
        let key = ImageKey::aes256([0xab; 32]);
        let shown = format!("{key:?}");
        assert!(!shown.contains("ab"), "{shown}");
        assert!(!shown.contains("171"), "{shown}");
    }

    #[test]
    fn wrong_kind_and_length_are_typed_errors() {
        let k = DecryptionKey::x25519_from_bytes([9u8; 32]);
        assert_eq!(
            k.unwrap(TlvType::EncEc256, &[0u8; 113], AesKeySize::Aes128)
                .unwrap_err(),
            UnwrapError::KeyKindMismatch {
                found: TlvType::EncEc256
            }
        );
        assert!(matches!(
            k.unwrap(TlvType::EncX25519, &[0u8; 10], AesKeySize::Aes128),
            Err(UnwrapError::BadLength { .. })
        ));
        // All-zero ephemeral key gives a non-contributory shared secret.
        assert_eq!(
            k.unwrap(TlvType::EncX25519, &[0u8; 80], AesKeySize::Aes128)
                .unwrap_err(),
            UnwrapError::BadEphemeralKey
        );
    }
}
