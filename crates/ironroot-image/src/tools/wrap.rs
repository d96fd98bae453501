//! The signer's half of MCUboot's ECIES key wrapping (the device's half is
//! [`DecryptionKey::unwrap`](crate::DecryptionKey::unwrap)).

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use p256::elliptic_curve::Generate;
use p256::elliptic_curve::sec1::ToSec1Point;
use sha2::{Sha256, Sha512};
use zeroize::Zeroizing;

use crate::encrypted::{ECIES_INFO, ImageKey, PayloadDecryptor};
use crate::tlv::TlvType;
use crate::tools::keyfile::PublicKey;

/// Which MAC/KDF hash the wrapping uses (imgtool `--hmac-sha`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HmacSha {
    /// HMAC-SHA256 and HKDF-SHA256 (imgtool's default, the only choice for P-256).
    #[default]
    Sha256,
    /// HMAC-SHA512 and HKDF-SHA512 (ENC_X25519_SHA512, X25519 only).
    Sha512,
}

/// Why a key could not be wrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WrapError {
    /// Ed25519 keys cannot receive encrypted images.
    #[error("encryption key must be ecdsa-p256 (ENC_EC256) or x25519 (ENC_X25519), not {0}")]
    UnsupportedKey(crate::tools::KeyType),
    /// HMAC-SHA512 exists only for X25519.
    #[error("--hmac-sha 512 is only supported with x25519 encryption keys")]
    Sha512RequiresX25519,
}

/// Wraps `image_key` for the holder of `to`'s private key with a fresh ephemeral key.
/// Returns the TLV type and value (`ephemeral public | tag | wrapped key`).
pub fn wrap_image_key(
    to: &PublicKey,
    image_key: &ImageKey,
    hmac: HmacSha,
) -> Result<(TlvType, Vec<u8>), WrapError> {
    let mut rng = rand::rng();
    let mut shared = Zeroizing::new([0u8; 32]);
    let (kind, epk) = match (to, hmac) {
        (PublicKey::EcdsaP256(pk), HmacSha::Sha256) => {
            let eph = p256::ecdh::EphemeralSecret::generate_from_rng(&mut rng);
            shared.copy_from_slice(eph.diffie_hellman(pk).raw_secret_bytes().as_slice());
            let epk = eph.public_key().to_sec1_point(false).as_bytes().to_vec();
            (TlvType::EncEc256, epk)
        }
        (PublicKey::EcdsaP256(_), HmacSha::Sha512) => return Err(WrapError::Sha512RequiresX25519),
        (PublicKey::X25519(pk), hmac) => {
            let eph = x25519_dalek::EphemeralSecret::random_from_rng(&mut rng);
            let epk = x25519_dalek::PublicKey::from(&eph).as_bytes().to_vec();
            shared.copy_from_slice(eph.diffie_hellman(pk).as_bytes());
            let kind = match hmac {
                HmacSha::Sha256 => TlvType::EncX25519,
                HmacSha::Sha512 => TlvType::EncX25519Sha512,
            };
            (kind, epk)
        }
        (other, _) => return Err(WrapError::UnsupportedKey(other.key_type())),
    };
    let keylen = image_key.as_bytes().len();
    let maclen = match hmac {
        HmacSha::Sha256 => 32,
        HmacSha::Sha512 => 64,
    };
    let mut okm = Zeroizing::new(vec![0u8; keylen + maclen]);
    // Output lengths here (at most 96 bytes) are far below HKDF's limit, and HMAC takes keys
    // of any length, so neither call can fail.
    let mut wrapped = Zeroizing::new(image_key.as_bytes().to_vec());
    let tag = match hmac {
        HmacSha::Sha256 => {
            let _ = Hkdf::<Sha256>::new(None, &shared[..]).expand(ECIES_INFO, &mut okm);
            encrypt_in_place(&okm[..keylen], &mut wrapped);
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&okm[keylen..])
                .unwrap_or_else(|_| unreachable!("hmac accepts any key length"));
            mac.update(&wrapped);
            mac.finalize().into_bytes().to_vec()
        }
        HmacSha::Sha512 => {
            let _ = Hkdf::<Sha512>::new(None, &shared[..]).expand(ECIES_INFO, &mut okm);
            encrypt_in_place(&okm[..keylen], &mut wrapped);
            let mut mac = <Hmac<Sha512> as KeyInit>::new_from_slice(&okm[keylen..])
                .unwrap_or_else(|_| unreachable!("hmac accepts any key length"));
            mac.update(&wrapped);
            mac.finalize().into_bytes().to_vec()
        }
    };
    let mut tlv = epk;
    tlv.extend_from_slice(&tag);
    tlv.extend_from_slice(&wrapped);
    Ok((kind, tlv))
}

/// AES-CTR with a zero nonce under `key` (16 or 32 bytes), in place.
fn encrypt_in_place(key: &[u8], data: &mut [u8]) {
    let k = if key.len() == 16 {
        let mut b = [0u8; 16];
        b.copy_from_slice(key);
        ImageKey::aes128(b)
    } else {
        let mut b = [0u8; 32];
        b.copy_from_slice(key);
        ImageKey::aes256(b)
    };
    PayloadDecryptor::new(&k).apply(0, data);
}

/// A fresh random image key of the given size.
pub fn random_image_key(size: crate::AesKeySize) -> ImageKey {
    use rand::Rng;
    let mut rng = rand::rng();
    match size {
        crate::AesKeySize::Aes128 => {
            let mut k = [0u8; 16];
            rng.fill_bytes(&mut k);
            ImageKey::aes128(k)
        }
        crate::AesKeySize::Aes256 => {
            let mut k = [0u8; 32];
            rng.fill_bytes(&mut k);
            ImageKey::aes256(k)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::{KeyType, PrivateKey};
    use crate::{AesKeySize, UnwrapError};

    #[test]
    fn wrap_then_unwrap_gives_the_key_back() {
        for (kind, hmac) in [
            (KeyType::EcdsaP256, HmacSha::Sha256),
            (KeyType::X25519, HmacSha::Sha256),
            (KeyType::X25519, HmacSha::Sha512),
        ] {
            for size in [AesKeySize::Aes128, AesKeySize::Aes256] {
                let device = PrivateKey::generate(kind);
                let key = random_image_key(size);
                let (tlv_kind, tlv) = wrap_image_key(&device.public_key(), &key, hmac).unwrap();
                let dk = device.decryption_key().unwrap();
                let back = dk.unwrap(tlv_kind, &tlv, size).unwrap();
                assert_eq!(back.as_bytes(), key.as_bytes(), "{kind} {hmac:?} {size:?}");
                // Any flipped bit in the TLV is caught by the MAC or the point check.
                for i in [0, tlv.len() / 2, tlv.len() - 1] {
                    let mut bad = tlv.clone();
                    bad[i] ^= 0x80;
                    let err = dk.unwrap(tlv_kind, &bad, size).unwrap_err();
                    assert!(
                        matches!(err, UnwrapError::MacMismatch | UnwrapError::BadEphemeralKey),
                        "{err:?}"
                    );
                }
                // Another device's key fails the MAC.
                let other = PrivateKey::generate(kind).decryption_key().unwrap();
                assert_eq!(
                    other.unwrap(tlv_kind, &tlv, size).unwrap_err(),
                    UnwrapError::MacMismatch
                );
            }
        }
    }

    #[test]
    fn ed25519_cannot_receive() {
        let k = PrivateKey::generate(KeyType::Ed25519).public_key();
        let key = random_image_key(AesKeySize::Aes128);
        assert_eq!(
            wrap_image_key(&k, &key, HmacSha::Sha256).unwrap_err(),
            WrapError::UnsupportedKey(KeyType::Ed25519)
        );
    }
}
