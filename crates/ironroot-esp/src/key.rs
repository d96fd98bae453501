//! Public keys in block form and the signature check of one block (no_std, alloc for RSA).

use alloc::vec::Vec;

use ecdsa::{EcdsaCurve, Signature, VerifyingKey, signature::hazmat::PrehashVerifier};
use elliptic_curve::{
    CurveArithmetic, FieldBytesSize,
    sec1::{FromSec1Point, ModulusSize, ToSec1Point},
};
use rsa::{BoxedUint, Pss, traits::PublicKeyParts};
use sha2::Sha256;

use crate::block::{EspPublicKey, MAX_KEY_LEN, Scheme};

/// Bytes of an RSA-3072 modulus.
const RSA_BYTES: usize = 384;

/// Why a key does not fit a Secure Boot v2 scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NotSupported;

/// Why one block's signature check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The key field is not a valid key of its scheme.
    BadKey,
    /// The signature does not verify under the key.
    BadSignature,
}

impl From<NotSupported> for Refusal {
    fn from(_: NotSupported) -> Self {
        Refusal::BadKey
    }
}

impl EspPublicKey {
    /// Block form of an RSA public key: `n`, `e`, `rinv = 2^6144 mod n`, `m' = -n⁻¹ mod 2³²`,
    /// the Montgomery constants the ESP32 RSA peripheral uses. Only 3072-bit keys qualify.
    pub(crate) fn from_rsa(key: &rsa::PublicKey) -> Result<Self, NotSupported> {
        let n_be = key.n_bytes();
        if n_be.len() != RSA_BYTES || key.e().bit_width() > 32 {
            return Err(NotSupported);
        }
        let e_be = key.e_bytes();
        let mut e = [0u8; 4];
        e[4 - e_be.len()..].copy_from_slice(&e_be);
        let e = u32::from_be_bytes(e);

        let mut r2 = [0u8; 2 * RSA_BYTES + 1];
        r2[0] = 1; // 2^6144, big-endian
        let r2 = BoxedUint::from_be_slice(&r2, 6208).map_err(|_| NotSupported)?;
        let rinv = r2.rem(key.n()).to_be_bytes();
        let n0 = u32::from_be_bytes(n_be[RSA_BYTES - 4..].try_into().expect("4 bytes"));
        let m_prime = inverse_mod_2_32(n0).wrapping_neg();

        let mut field = [0u8; MAX_KEY_LEN];
        field[..RSA_BYTES].copy_from_slice(&n_be);
        field[..RSA_BYTES].reverse();
        field[RSA_BYTES..RSA_BYTES + 4].copy_from_slice(&e.to_le_bytes());
        let rinv_le = &mut field[RSA_BYTES + 4..2 * RSA_BYTES + 4];
        // `rinv` has the precision of the modulus: its last 384 bytes are the value.
        rinv_le.copy_from_slice(&rinv[rinv.len() - RSA_BYTES..]);
        rinv_le.reverse();
        field[2 * RSA_BYTES + 4..].copy_from_slice(&m_prime.to_le_bytes());
        Ok(EspPublicKey::from_field(Scheme::Rsa3072, &field))
    }

    /// Block form of an ECDSA public key on P-192, P-256 or P-384 (curve from the key's type).
    #[cfg_attr(not(feature = "std"), allow(dead_code))] // used by the std signer
    pub(crate) fn from_ecdsa<C>(scheme: Scheme, key: &VerifyingKey<C>) -> Self
    where
        C: EcdsaCurve + CurveArithmetic,
        C::AffinePoint: ToSec1Point<C> + FromSec1Point<C>,
        FieldBytesSize<C>: ModulusSize,
    {
        let point = key.as_affine().to_sec1_point(false);
        let (x, y) = (
            point.x().expect("not identity"),
            point.y().expect("uncompressed"),
        );
        let len = scheme.ec_len();
        let mut field = [0u8; 1 + 2 * 48];
        field[0] = scheme.curve_id().expect("ECDSA scheme");
        write_le(&mut field[1..1 + len], x);
        write_le(&mut field[1 + len..1 + 2 * len], y);
        EspPublicKey::from_field(scheme, &field[..scheme.key_len()])
    }

    /// Checks `signature_field` (block form) over `image_digest` with this key.
    /// An RSA key whose `rinv`/`m'` do not belong to its `n` is refused: the ROM would compute
    /// with them.
    pub(crate) fn verify_field(
        &self,
        image_digest: &[u8],
        signature_field: &[u8],
    ) -> Result<(), Refusal> {
        let f = self.as_bytes();
        match self.scheme() {
            Scheme::Rsa3072 => {
                let key = self.rsa_key().map_err(|_| Refusal::BadKey)?;
                let mut sig: Vec<u8> = signature_field.to_vec();
                sig.reverse();
                key.verify(Pss::<Sha256>::new_with_salt(32), image_digest, &sig)
                    .map_err(|_| Refusal::BadSignature)
            }
            Scheme::EcdsaP192 => {
                ec_verify::<p192::NistP192>(self.scheme(), f, image_digest, signature_field)
            }
            Scheme::EcdsaP256 => {
                ec_verify::<p256::NistP256>(self.scheme(), f, image_digest, signature_field)
            }
            Scheme::EcdsaP384 => {
                ec_verify::<p384::NistP384>(self.scheme(), f, image_digest, signature_field)
            }
        }
    }

    /// The RSA key of an RSA field, after checking the field is the canonical form of `n`, `e`.
    fn rsa_key(&self) -> Result<rsa::PublicKey, NotSupported> {
        let f = self.as_bytes();
        let n = BoxedUint::from_le_slice(&f[..RSA_BYTES], 3072).map_err(|_| NotSupported)?;
        let e = u32::from_le_bytes(f[RSA_BYTES..RSA_BYTES + 4].try_into().expect("4 bytes"));
        let key = rsa::PublicKey::new(n, BoxedUint::from(e)).map_err(|_| NotSupported)?;
        if EspPublicKey::from_rsa(&key)? != *self {
            return Err(NotSupported);
        }
        Ok(key)
    }
}

fn ec_verify<C>(
    scheme: Scheme,
    field: &[u8],
    digest: &[u8],
    signature_field: &[u8],
) -> Result<(), Refusal>
where
    C: EcdsaCurve + CurveArithmetic,
    C::AffinePoint: ToSec1Point<C> + FromSec1Point<C>,
    FieldBytesSize<C>: ModulusSize,
{
    let len = scheme.ec_len();
    let point = &field[1..];
    // P-192 uses 48 of the 64 bytes: the rest must be zero (it is hashed into the eFuse digest).
    if point[2 * len..].iter().any(|&b| b != 0) {
        return Err(Refusal::BadKey);
    }
    let mut sec1 = [0u8; 1 + 2 * 48];
    sec1[0] = 0x04;
    read_le(&mut sec1[1..1 + len], &point[..len]);
    read_le(&mut sec1[1 + len..1 + 2 * len], &point[len..2 * len]);
    let key =
        VerifyingKey::<C>::from_sec1_bytes(&sec1[..1 + 2 * len]).map_err(|_| Refusal::BadKey)?;
    let mut rs = [0u8; 2 * 48];
    read_le(&mut rs[..len], &signature_field[..len]);
    read_le(&mut rs[len..2 * len], &signature_field[len..2 * len]);
    let Ok(sig) = Signature::<C>::from_slice(&rs[..2 * len]) else {
        return Err(Refusal::BadSignature);
    };
    key.verify_prehash(digest, &sig)
        .map_err(|_| Refusal::BadSignature)
}

/// Writes big-endian `value` little-endian into `out` (zero-filled beyond its length).
#[cfg_attr(not(feature = "std"), allow(dead_code))] // used by the std signer
pub(crate) fn write_le(out: &mut [u8], value: &[u8]) {
    out.fill(0);
    out[..value.len()].copy_from_slice(value);
    out[..value.len()].reverse();
}

/// Reads little-endian `le` into big-endian `out` (same length).
fn read_le(out: &mut [u8], le: &[u8]) {
    out.copy_from_slice(le);
    out.reverse();
}

/// The inverse of an odd `a` modulo 2³² (Newton's iteration doubles correct bits each step).
fn inverse_mod_2_32(a: u32) -> u32 {
    let mut x = a; // correct to 3 bits for odd a
    for _ in 0..5 {
        x = x.wrapping_mul(2u32.wrapping_sub(a.wrapping_mul(x)));
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_mod_2_32_inverts_odd_numbers() {
        for a in [1u32, 3, 0xffff_ffff, 0x1234_5679, 65_537] {
            assert_eq!(a.wrapping_mul(inverse_mod_2_32(a)), 1, "a = {a:#x}");
        }
    }
}
