//! What a certificate's DER says about its key and subject: key type and size, the raw
//! SubjectPublicKeyInfo (to find shared keys) and the subject common name.

use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

/// The key of a certificate, as far as strength is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyInfo {
    /// RSA with this modulus size in bits.
    Rsa(u32),
    /// An elliptic curve of this size in bits (ECDSA / EC public keys).
    Ec(u32),
    /// Ed25519 or Ed448: fixed, strong sizes.
    Edwards,
    /// Something else (DSA, GOST, unknown OIDs), named by its algorithm OID.
    Other(String),
}

impl KeyInfo {
    /// Why this key is weak under `min_rsa_bits` / `min_ec_bits`, or `None` when it is not.
    pub fn weakness(&self, min_rsa_bits: u32, min_ec_bits: u32) -> Option<String> {
        match self {
            KeyInfo::Rsa(bits) if *bits < min_rsa_bits => {
                Some(format!("RSA {bits}-bit key (minimum {min_rsa_bits})"))
            }
            KeyInfo::Ec(bits) if *bits < min_ec_bits => Some(format!(
                "elliptic-curve key of {bits} bits (minimum {min_ec_bits}, P-256)"
            )),
            KeyInfo::Other(oid) => Some(format!("key of an unsupported type (OID {oid})")),
            KeyInfo::Rsa(_) | KeyInfo::Ec(_) | KeyInfo::Edwards => None,
        }
    }
}

/// The parts of a certificate the checks read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    /// Key type and size.
    pub key: KeyInfo,
    /// The DER SubjectPublicKeyInfo: equal bytes = the same key.
    pub spki: Vec<u8>,
    /// The first subject CN, if any.
    pub common_name: Option<String>,
}

/// A certificate DER that x509-parser refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("certificate does not parse: {0}")]
pub struct UnparsableCertificate(pub String);

const ED25519: &str = "1.3.101.112";
const ED448: &str = "1.3.101.113";

/// Reads key, SPKI and CN from a DER certificate.
pub fn facts(der: &[u8]) -> Result<CertFacts, UnparsableCertificate> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| UnparsableCertificate(e.to_string()))?;
    let spki = cert.public_key();
    let oid = spki.algorithm.algorithm.to_id_string();
    let key = match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => KeyInfo::Rsa(bit_length(rsa.modulus)),
        // The point's coordinate size is the curve size: 65-byte uncompressed P-256 → 256.
        Ok(PublicKey::EC(point)) => KeyInfo::Ec(u32::try_from(point.key_size()).unwrap_or(0)),
        _ if oid == ED25519 || oid == ED448 => KeyInfo::Edwards,
        _ => KeyInfo::Other(oid),
    };
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    Ok(CertFacts {
        key,
        spki: spki.raw.to_vec(),
        common_name,
    })
}

/// Bits of a big-endian unsigned integer, leading zero bytes and bits ignored (x509-parser's
/// own `key_size` answers 0 for a modulus without a leading zero byte).
fn bit_length(be: &[u8]) -> u32 {
    let trimmed: &[u8] = match be.iter().position(|b| *b != 0) {
        Some(i) => &be[i..],
        None => return 0,
    };
    let len = u32::try_from(trimmed.len()).unwrap_or(u32::MAX / 8);
    (len - 1) * 8 + (8 - trimmed[0].leading_zeros())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bit_length_ignores_leading_zeros() {
        assert_eq!(bit_length(&[]), 0);
        assert_eq!(bit_length(&[0, 0]), 0);
        assert_eq!(bit_length(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(bit_length(&[0x01]), 1);
        let mut m = vec![0u8; 129];
        m[1] = 0xC1;
        assert_eq!(bit_length(&m), 1024);
    }

    #[test]
    fn weakness_follows_the_thresholds() {
        assert!(KeyInfo::Rsa(1024).weakness(2048, 256).is_some());
        assert!(KeyInfo::Rsa(2048).weakness(2048, 256).is_none());
        assert!(KeyInfo::Ec(192).weakness(2048, 256).is_some());
        assert!(KeyInfo::Ec(256).weakness(2048, 256).is_none());
        assert!(KeyInfo::Ec(256).weakness(2048, 384).is_some());
        assert!(KeyInfo::Edwards.weakness(4096, 521).is_none());
        assert!(
            KeyInfo::Other("1.2.840.10040.4.1".into())
                .weakness(0, 0)
                .is_some()
        );
    }

    #[test]
    fn garbage_is_a_typed_error() {
        assert!(facts(b"not a certificate").is_err());
        assert!(facts(&[]).is_err());
    }

    proptest! {
        #[test]
        fn facts_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = facts(&bytes);
        }

        #[test]
        fn bit_length_is_at_most_eight_per_byte(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert!(bit_length(&bytes) as usize <= bytes.len() * 8);
        }
    }
}
