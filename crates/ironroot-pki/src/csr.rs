//! Parsing and checking certificate signing requests (PKCS#10) from untrusted devices.
//!
//! A CSR proves possession of a private key and names the key; that is all ironroot takes from
//! it. Requested extensions (basicConstraints CA:TRUE, keyUsage keyCertSign, EKUs, SANs),
//! attributes and extra subject attributes are parsed past and ignored: the certificate is built
//! from the CA's own policy. rcgen's `CertificateSigningRequestParams::from_der` would copy the
//! requested extensions into the certificate, so it is never used.

use std::fmt;

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;

use crate::device_id::{DeviceId, DeviceIdError};

/// A subject key algorithm the CA can certify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256 (secp256r1). The default and the only algorithm allowed unless the
    /// policy says otherwise: every secure element and TLS stack on devices supports it.
    EcdsaP256,
    /// ECDSA on NIST P-384.
    EcdsaP384,
    /// Ed25519 (RFC 8410).
    Ed25519,
}

impl KeyAlgorithm {
    fn rcgen(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            Self::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Self::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            Self::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }

    /// Expected length of the encoded public key (uncompressed SEC1 point, or raw Ed25519).
    fn public_key_len(self) -> usize {
        match self {
            Self::EcdsaP256 => 65,
            Self::EcdsaP384 => 97,
            Self::Ed25519 => 32,
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::EcdsaP256 => "ECDSA P-256",
            Self::EcdsaP384 => "ECDSA P-384",
            Self::Ed25519 => "Ed25519",
        })
    }
}

/// What the CA accepts in a CSR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrPolicy {
    /// Largest accepted CSR in bytes, PEM or DER as received (default 16 KiB).
    pub max_len: usize,
    /// Key algorithms that may be certified (default: ECDSA P-256 only).
    pub allowed_keys: Vec<KeyAlgorithm>,
}

impl CsrPolicy {
    /// The default size limit: 16 KiB.
    pub const DEFAULT_MAX_LEN: usize = 16 * 1024;
}

impl Default for CsrPolicy {
    fn default() -> Self {
        Self {
            max_len: Self::DEFAULT_MAX_LEN,
            allowed_keys: vec![KeyAlgorithm::EcdsaP256],
        }
    }
}

/// Why a CSR was rejected. Messages describe the request, never echo its raw bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CsrError {
    /// The request is larger than the policy's limit.
    #[error("certificate request is {len} bytes; the limit is {max} bytes")]
    TooLarge {
        /// Size received.
        len: usize,
        /// The policy limit.
        max: usize,
    },
    /// PEM armor present but broken, or a PEM block of another kind.
    #[error("certificate request PEM is malformed or is not a 'CERTIFICATE REQUEST' block")]
    BadPem,
    /// The bytes are not a DER PKCS#10 request.
    #[error("certificate request is not valid PKCS#10 DER: {0}")]
    Malformed(String),
    /// Bytes follow the request.
    #[error("certificate request has {0} trailing bytes after the DER structure")]
    TrailingData(usize),
    /// An RSA key (not accepted: devices use elliptic-curve keys).
    #[error("certificate request carries an RSA-{bits} key; only elliptic-curve keys are accepted")]
    RsaKey {
        /// Modulus size in bits.
        bits: usize,
    },
    /// An elliptic curve other than P-256 / P-384.
    #[error(
        "certificate request uses the elliptic curve {curve}; supported curves are P-256 and P-384"
    )]
    UnsupportedCurve {
        /// The curve's OID (dotted).
        curve: String,
    },
    /// A public-key algorithm that is neither EC nor Ed25519 (nor RSA).
    #[error("certificate request uses the public-key algorithm {oid}, which is not supported")]
    UnsupportedKeyAlgorithm {
        /// The algorithm's OID (dotted).
        oid: String,
    },
    /// A supported algorithm that this CA's policy does not allow.
    #[error("{algorithm} keys are not allowed by this CA's policy (allowed: {allowed})")]
    KeyAlgorithmNotAllowed {
        /// The key's algorithm.
        algorithm: KeyAlgorithm,
        /// The allowed set, for the message.
        allowed: String,
    },
    /// The public key is not a valid point/key for its algorithm (e.g. compressed or off-curve).
    #[error("certificate request public key is not a valid uncompressed {0} key")]
    InvalidPublicKey(KeyAlgorithm),
    /// The self-signature does not verify with the enclosed key.
    #[error("certificate request signature does not verify with its own public key")]
    BadSignature,
    /// The subject has more than one common name.
    #[error("certificate request subject has more than one common name")]
    MultipleCommonNames,
    /// The common name is not a text string.
    #[error("certificate request common name is not a text string")]
    CommonNameNotText,
    /// The common name is not a valid device id.
    #[error("certificate request common name is not a valid device id: {0}")]
    CommonName(#[from] DeviceIdError),
}

/// The subject public key of a verified CSR: the only thing issuance takes from it.
#[derive(Clone, PartialEq, Eq)]
pub struct SubjectKey {
    algorithm: KeyAlgorithm,
    key: Vec<u8>,
}

impl SubjectKey {
    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The encoded key: an uncompressed SEC1 point (ECDSA) or 32 raw bytes (Ed25519).
    pub fn as_bytes(&self) -> &[u8] {
        &self.key
    }

    /// Builds a subject key from an uncompressed P-256 point (as a generated key reports it).
    pub fn p256(point: &[u8]) -> Result<Self, CsrError> {
        check_point(KeyAlgorithm::EcdsaP256, point)?;
        Ok(Self {
            algorithm: KeyAlgorithm::EcdsaP256,
            key: point.to_vec(),
        })
    }
}

impl fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SubjectKey({}, {} bytes)",
            self.algorithm,
            self.key.len()
        )
    }
}

impl rcgen::PublicKeyData for SubjectKey {
    fn der_bytes(&self) -> &[u8] {
        &self.key
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.algorithm.rcgen()
    }
}

/// A CSR whose signature verified and whose key and subject passed the policy.
#[derive(Debug, Clone)]
pub struct VerifiedCsr {
    key: SubjectKey,
    common_name: Option<DeviceId>,
}

impl VerifiedCsr {
    /// The subject public key to certify.
    pub fn subject_key(&self) -> &SubjectKey {
        &self.key
    }

    /// The device id the requester put in its subject CN, if any (already syntax-checked).
    /// Issuance refuses a CSR whose CN differs from the device id being issued for.
    pub fn common_name(&self) -> Option<&DeviceId> {
        self.common_name.as_ref()
    }
}

/// Parses a CSR (PEM or DER), verifies its self-signature, and checks it against `policy`.
pub fn verify_csr(input: &[u8], policy: &CsrPolicy) -> Result<VerifiedCsr, CsrError> {
    if input.len() > policy.max_len {
        return Err(CsrError::TooLarge {
            len: input.len(),
            max: policy.max_len,
        });
    }
    let pem_block;
    let der: &[u8] = if looks_like_pem(input) {
        pem_block = pem::parse(input).map_err(|_| CsrError::BadPem)?;
        if !matches!(
            pem_block.tag(),
            "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST"
        ) {
            return Err(CsrError::BadPem);
        }
        pem_block.contents()
    } else {
        input
    };

    let (rest, csr) =
        X509CertificationRequest::from_der(der).map_err(|e| CsrError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CsrError::TrailingData(rest.len()));
    }
    let info = &csr.certification_request_info;

    let key = subject_key(&info.subject_pki)?;
    if !policy.allowed_keys.contains(&key.algorithm) {
        let allowed: Vec<String> = policy.allowed_keys.iter().map(|a| a.to_string()).collect();
        return Err(CsrError::KeyAlgorithmNotAllowed {
            algorithm: key.algorithm,
            allowed: allowed.join(", "),
        });
    }
    // Checks the proof of possession. x509-parser picks the verification algorithm from the
    // signature OID and the key's curve; aws-lc rejects off-curve points here as well.
    csr.verify_signature().map_err(|_| CsrError::BadSignature)?;

    let mut names = info.subject.iter_common_name();
    let common_name = match names.next() {
        None => None,
        Some(cn) => {
            if names.next().is_some() {
                return Err(CsrError::MultipleCommonNames);
            }
            let text = cn.as_str().map_err(|_| CsrError::CommonNameNotText)?;
            Some(DeviceId::parse(text)?)
        }
    };
    Ok(VerifiedCsr { key, common_name })
}

fn looks_like_pem(input: &[u8]) -> bool {
    let start = input
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(input.len());
    input[start..].starts_with(b"-----BEGIN")
}

fn subject_key(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> Result<SubjectKey, CsrError> {
    let oid = &spki.algorithm.algorithm;
    let key = spki.subject_public_key.data.as_ref();
    let algorithm = if *oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .ok_or_else(|| CsrError::UnsupportedCurve {
                curve: "(missing or not a named curve)".to_owned(),
            })?;
        if curve == OID_EC_P256 {
            KeyAlgorithm::EcdsaP256
        } else if curve == OID_NIST_EC_P384 {
            KeyAlgorithm::EcdsaP384
        } else {
            return Err(CsrError::UnsupportedCurve {
                curve: curve.to_id_string(),
            });
        }
    } else if *oid == OID_SIG_ED25519 {
        KeyAlgorithm::Ed25519
    } else if *oid == OID_PKCS1_RSAENCRYPTION {
        let bits = spki.parsed().map(|k| k.key_size()).unwrap_or(0);
        return Err(CsrError::RsaKey { bits });
    } else {
        return Err(CsrError::UnsupportedKeyAlgorithm {
            oid: oid.to_id_string(),
        });
    };
    check_point(algorithm, key)?;
    Ok(SubjectKey {
        algorithm,
        key: key.to_vec(),
    })
}

/// Shape check; the on-curve check happens when the signature is verified (aws-lc parses the
/// point and refuses invalid ones).
fn check_point(algorithm: KeyAlgorithm, key: &[u8]) -> Result<(), CsrError> {
    let ec = matches!(algorithm, KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384);
    if key.len() != algorithm.public_key_len() || (ec && key[0] != 0x04) {
        return Err(CsrError::InvalidPublicKey(algorithm));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rcgen::{CertificateParams, DnType, KeyPair};

    fn csr_for(key: &KeyPair, cn: Option<&str>) -> Vec<u8> {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        params.serialize_request(key).unwrap().der().to_vec()
    }

    #[test]
    fn p256_csr_is_accepted_in_der_and_pem() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let der = csr_for(&key, Some("dev-1"));
        let v = verify_csr(&der, &CsrPolicy::default()).unwrap();
        assert_eq!(v.subject_key().as_bytes(), key.public_key_raw());
        assert_eq!(v.common_name().unwrap().as_str(), "dev-1");
        let pem = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der));
        assert!(verify_csr(pem.as_bytes(), &CsrPolicy::default()).is_ok());
    }

    #[test]
    fn other_algorithms_need_policy_consent() {
        for (alg, want) in [
            (&rcgen::PKCS_ECDSA_P384_SHA384, KeyAlgorithm::EcdsaP384),
            (&rcgen::PKCS_ED25519, KeyAlgorithm::Ed25519),
        ] {
            let key = KeyPair::generate_for(alg).unwrap();
            let der = csr_for(&key, None);
            assert!(matches!(
                verify_csr(&der, &CsrPolicy::default()),
                Err(CsrError::KeyAlgorithmNotAllowed { algorithm, .. }) if algorithm == want
            ));
            let policy = CsrPolicy {
                allowed_keys: vec![KeyAlgorithm::EcdsaP256, want],
                ..CsrPolicy::default()
            };
            assert_eq!(
                verify_csr(&der, &policy).unwrap().subject_key().algorithm(),
                want
            );
        }
    }

    #[test]
    fn rsa_is_rejected_with_its_size() {
        let key =
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap();
        let der = csr_for(&key, None);
        assert_eq!(
            verify_csr(&der, &CsrPolicy::default()).unwrap_err(),
            CsrError::RsaKey { bits: 2048 }
        );
    }

    #[test]
    fn flipped_signature_bit_is_a_bad_signature() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut der = csr_for(&key, Some("dev-1"));
        // The subject CN's last byte: the content changes, the signature no longer matches.
        let pos = der.windows(5).position(|w| w == b"dev-1").unwrap() + 4;
        der[pos] = b'2';
        assert_eq!(
            verify_csr(&der, &CsrPolicy::default()).unwrap_err(),
            CsrError::BadSignature
        );
    }

    #[test]
    fn injection_in_cn_is_rejected() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        for cn in ["dev/1", "dev+", "#", "a$b", "a\u{0}b", "*", "a b"] {
            let der = csr_for(&key, Some(cn));
            assert!(
                matches!(
                    verify_csr(&der, &CsrPolicy::default()),
                    Err(CsrError::CommonName(_))
                ),
                "{cn:?}"
            );
        }
    }

    #[test]
    fn size_limit_and_garbage() {
        let policy = CsrPolicy::default();
        let big = vec![b'A'; CsrPolicy::DEFAULT_MAX_LEN + 1];
        assert_eq!(
            verify_csr(&big, &policy).unwrap_err(),
            CsrError::TooLarge {
                len: big.len(),
                max: CsrPolicy::DEFAULT_MAX_LEN
            }
        );
        assert!(matches!(
            verify_csr(b"garbage", &policy),
            Err(CsrError::Malformed(_))
        ));
        assert_eq!(
            verify_csr(b"-----BEGIN nonsense", &policy).unwrap_err(),
            CsrError::BadPem
        );
        let cert_pem = pem::encode(&pem::Pem::new("CERTIFICATE", vec![0x30, 0]));
        assert_eq!(
            verify_csr(cert_pem.as_bytes(), &policy).unwrap_err(),
            CsrError::BadPem
        );
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut der = csr_for(&key, None);
        der.push(0);
        assert_eq!(
            verify_csr(&der, &CsrPolicy::default()).unwrap_err(),
            CsrError::TrailingData(1)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Arbitrary bytes never panic the parser and never verify.
        #[test]
        fn arbitrary_bytes_are_rejected_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            prop_assert!(verify_csr(&bytes, &CsrPolicy::default()).is_err());
        }

        /// Any single-byte corruption of a valid CSR either is rejected or still yields exactly
        /// the original key (a change in an unsigned part that leaves the signed content intact
        /// is impossible here except in the signature encoding itself, which then must fail).
        #[test]
        fn corrupted_csr_never_yields_another_key(pos in any::<prop::sample::Index>(), xor in 1u8..=255) {
            let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let mut der = csr_for(&key, Some("dev-7"));
            let i = pos.index(der.len());
            der[i] ^= xor;
            if let Ok(v) = verify_csr(&der, &CsrPolicy::default()) {
                prop_assert_eq!(v.subject_key().as_bytes(), key.public_key_raw());
            }
        }

        /// Truncations of a valid CSR are always rejected.
        #[test]
        fn truncated_csr_is_rejected(cut in 0usize..200) {
            let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let der = csr_for(&key, Some("dev-7"));
            let cut = cut.min(der.len() - 1);
            prop_assert!(verify_csr(&der[..cut], &CsrPolicy::default()).is_err());
        }
    }
}
