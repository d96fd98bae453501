//! Parsing an OCSPRequest (RFC 6960 §4.1) from untrusted bytes, within fixed bounds.
//!
//! Everything a network peer sends goes through [`OcspRequest::from_der`] (POST body) or
//! [`OcspRequest::from_get_path`] (the GET form of RFC 6960 Appendix A.1). Both refuse
//! oversize input before decoding it, refuse more than [`MAX_CERT_IDS`] CertIDs, accept only
//! SHA-1 and SHA-256 CertID hashes, and return a typed [`OcspError`]: never a panic (a proptest
//! and the `ocsp_request` fuzz target hold that).

use base64::Engine as _;
use der::Decode;
use der::asn1::ObjectIdentifier;
use x509_cert::ext::Extension;

use crate::serial::Serial;

use super::OcspError;

/// Largest request accepted, DER bytes (a request for [`MAX_CERT_IDS`] CertIDs with a nonce is
/// under 4 KiB; the rest is headroom for a signed request's certificates, which are ignored).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Largest number of CertIDs answered in one request (each costs a registry lookup).
pub const MAX_CERT_IDS: usize = 32;

/// Largest nonce accepted, octets (RFC 8954 §2.1: responders refuse longer ones).
pub const MAX_NONCE_OCTETS: usize = 32;

/// id-sha1, the CertID hash `openssl ocsp` uses by default.
const ID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
/// id-sha256.
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
/// id-pkix-ocsp-nonce.
const ID_NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");

/// The hash a CertID names its issuer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CertIdHash {
    /// SHA-1 (RFC 6960's default; what most clients send).
    Sha1,
    /// SHA-256.
    Sha256,
}

impl CertIdHash {
    /// Hashes `data` with this algorithm.
    pub(crate) fn digest(self, data: &[u8]) -> Vec<u8> {
        let alg = match self {
            Self::Sha1 => &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha256 => &aws_lc_rs::digest::SHA256,
        };
        aws_lc_rs::digest::digest(alg, data).as_ref().to_vec()
    }

    /// The algorithm's OID, as a CertID names it.
    pub(crate) fn oid(self) -> ObjectIdentifier {
        match self {
            Self::Sha1 => ID_SHA1,
            Self::Sha256 => ID_SHA256,
        }
    }

    fn from_oid(oid: ObjectIdentifier) -> Option<Self> {
        if oid == ID_SHA1 {
            Some(Self::Sha1)
        } else if oid == ID_SHA256 {
            Some(Self::Sha256)
        } else {
            None
        }
    }
}

/// One CertID of a request: which issuer (by hashes) and which serial.
#[derive(Debug, Clone)]
pub struct CertQuery {
    pub(crate) id: x509_ocsp::CertId,
    hash: CertIdHash,
    serial: Option<Serial>,
}

impl CertQuery {
    /// The hash algorithm of the issuer hashes.
    pub fn hash(&self) -> CertIdHash {
        self.hash
    }

    /// Hash of the issuer's DER subject name.
    pub fn issuer_name_hash(&self) -> &[u8] {
        self.id.issuer_name_hash.as_bytes()
    }

    /// Hash of the issuer's public key (the subjectPublicKey BIT STRING's value).
    pub fn issuer_key_hash(&self) -> &[u8] {
        self.id.issuer_key_hash.as_bytes()
    }

    /// The serial asked about; `None` when it is zero, negative or longer than RFC 5280 allows
    /// (no ironroot CA ever issued such a serial, so its status is `unknown`).
    pub fn serial(&self) -> Option<&Serial> {
        self.serial.as_ref()
    }
}

/// A parsed, bounded OCSP request: its CertIDs and its nonce, if any. A request signature is
/// not checked (RFC 6960 makes it optional and ironroot answers anyone, like the CRL).
#[derive(Debug, Clone)]
pub struct OcspRequest {
    queries: Vec<CertQuery>,
    nonce: Option<Extension>,
}

impl OcspRequest {
    /// Parses a DER OCSPRequest (the body of `POST application/ocsp-request`).
    pub fn from_der(der: &[u8]) -> Result<Self, OcspError> {
        if der.len() > MAX_REQUEST_BYTES {
            return Err(OcspError::TooLarge {
                len: der.len(),
                max: MAX_REQUEST_BYTES,
            });
        }
        // `from_der` refuses trailing bytes itself.
        let request = x509_ocsp::OcspRequest::from_der(der).map_err(OcspError::Der)?;
        let list = request.tbs_request.request_list;
        if list.is_empty() {
            return Err(OcspError::NoCertIds);
        }
        if list.len() > MAX_CERT_IDS {
            return Err(OcspError::TooManyCertIds {
                count: list.len(),
                max: MAX_CERT_IDS,
            });
        }
        let mut queries = Vec::with_capacity(list.len());
        for one in list {
            let id = one.req_cert;
            let hash = CertIdHash::from_oid(id.hash_algorithm.oid).ok_or_else(|| {
                OcspError::UnsupportedHash {
                    oid: id.hash_algorithm.oid.to_string(),
                }
            })?;
            let want = match hash {
                CertIdHash::Sha1 => 20,
                CertIdHash::Sha256 => 32,
            };
            if id.issuer_name_hash.as_bytes().len() != want
                || id.issuer_key_hash.as_bytes().len() != want
            {
                return Err(OcspError::BadHashLength);
            }
            // A DER INTEGER with its sign bit set is negative: never a serial we issued.
            let raw = id.serial_number.as_bytes();
            let serial = match raw.first() {
                Some(b) if b & 0x80 == 0 => Serial::from_be_bytes(raw).ok(),
                _ => None,
            };
            queries.push(CertQuery { id, hash, serial });
        }
        let nonce = match request.tbs_request.request_extensions {
            None => None,
            Some(extensions) => match extensions.into_iter().find(|e| e.extn_id == ID_NONCE) {
                None => None,
                Some(ext) => {
                    let value = der::asn1::OctetString::from_der(ext.extn_value.as_bytes())
                        .map_err(OcspError::Der)?;
                    let len = value.as_bytes().len();
                    if len == 0 || len > MAX_NONCE_OCTETS {
                        return Err(OcspError::BadNonce { len });
                    }
                    Some(ext)
                }
            },
        };
        Ok(Self { queries, nonce })
    }

    /// Parses the GET form: the path segment after `/ocsp/`, the base64 (standard or URL-safe
    /// alphabet, padded or not) of the DER request, percent-decoded by the HTTP layer.
    pub fn from_get_path(segment: &str) -> Result<Self, OcspError> {
        // Base64 grows by 4/3: refuse before decoding anything oversize.
        if segment.len() > MAX_REQUEST_BYTES.div_ceil(3) * 4 + 4 {
            return Err(OcspError::TooLarge {
                len: segment.len(),
                max: MAX_REQUEST_BYTES,
            });
        }
        let text: String = segment
            .trim_end_matches('=')
            .chars()
            .map(|c| match c {
                '-' => '+',
                '_' => '/',
                c => c,
            })
            .collect();
        let der = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(text.as_bytes())
            .map_err(|_| OcspError::BadBase64)?;
        Self::from_der(&der)
    }

    /// The CertIDs, in request order (responses keep it).
    pub fn queries(&self) -> &[CertQuery] {
        &self.queries
    }

    /// The nonce extension to echo, when the client sent one.
    pub(crate) fn nonce(&self) -> Option<&Extension> {
        self.nonce.as_ref()
    }

    /// Whether the client sent a nonce.
    pub fn has_nonce(&self) -> bool {
        self.nonce.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::Encode;
    use der::asn1::OctetString;
    use x509_cert::serial_number::SerialNumber;
    use x509_cert::spki::AlgorithmIdentifierOwned;

    fn cert_id(hash: ObjectIdentifier, len: usize, serial: &[u8]) -> x509_ocsp::CertId {
        x509_ocsp::CertId {
            hash_algorithm: AlgorithmIdentifierOwned {
                oid: hash,
                parameters: None,
            },
            issuer_name_hash: OctetString::new(vec![1; len]).unwrap(),
            issuer_key_hash: OctetString::new(vec![2; len]).unwrap(),
            serial_number: SerialNumber::new(serial).unwrap(),
        }
    }

    fn request(ids: Vec<x509_ocsp::CertId>, nonce: Option<&[u8]>) -> Vec<u8> {
        x509_ocsp::OcspRequest {
            tbs_request: x509_ocsp::TbsRequest {
                request_list: ids
                    .into_iter()
                    .map(|req_cert| x509_ocsp::Request {
                        req_cert,
                        single_request_extensions: None,
                    })
                    .collect(),
                request_extensions: nonce.map(|n| {
                    vec![Extension {
                        extn_id: ID_NONCE,
                        critical: false,
                        extn_value: OctetString::new(
                            OctetString::new(n.to_vec()).unwrap().to_der().unwrap(),
                        )
                        .unwrap(),
                    }]
                }),
                ..Default::default()
            },
            optional_signature: None,
        }
        .to_der()
        .unwrap()
    }

    #[test]
    fn sha1_and_sha256_cert_ids_parse_with_their_serial_and_nonce() {
        let der = request(
            vec![
                cert_id(ID_SHA1, 20, &[0x0a, 0x1b]),
                cert_id(ID_SHA256, 32, &[0x01]),
            ],
            Some(&[7; 16]),
        );
        let req = OcspRequest::from_der(&der).unwrap();
        assert_eq!(req.queries().len(), 2);
        assert_eq!(req.queries()[0].hash(), CertIdHash::Sha1);
        assert_eq!(req.queries()[1].hash(), CertIdHash::Sha256);
        assert_eq!(req.queries()[0].serial().unwrap().to_string(), "a1b");
        assert_eq!(req.queries()[0].issuer_name_hash(), &[1; 20]);
        assert!(req.has_nonce());
        // The GET form of the same bytes, in both alphabets.
        let std = base64::engine::general_purpose::STANDARD.encode(&der);
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&der);
        for text in [std, url] {
            assert_eq!(
                OcspRequest::from_get_path(&text).unwrap().queries().len(),
                2
            );
        }
    }

    #[test]
    fn refusals_are_typed_and_bounded() {
        let ok = request(vec![cert_id(ID_SHA1, 20, &[5])], None);
        assert!(OcspRequest::from_der(&ok).is_ok());
        assert!(matches!(
            OcspRequest::from_der(&[0x30, 0x03, 0x02, 0x01, 0x01]),
            Err(OcspError::Der(_))
        ));
        let mut trailing = ok.clone();
        trailing.push(0);
        assert!(matches!(
            OcspRequest::from_der(&trailing),
            Err(OcspError::Der(_))
        ));
        assert!(matches!(
            OcspRequest::from_der(&vec![0x30; MAX_REQUEST_BYTES + 1]),
            Err(OcspError::TooLarge { .. })
        ));
        let md5 = ObjectIdentifier::new_unwrap("1.2.840.113549.2.5");
        assert!(matches!(
            OcspRequest::from_der(&request(vec![cert_id(md5, 16, &[5])], None)),
            Err(OcspError::UnsupportedHash { .. })
        ));
        assert!(matches!(
            OcspRequest::from_der(&request(vec![cert_id(ID_SHA1, 19, &[5])], None)),
            Err(OcspError::BadHashLength)
        ));
        let many = vec![cert_id(ID_SHA1, 20, &[5]); MAX_CERT_IDS + 1];
        assert!(matches!(
            OcspRequest::from_der(&request(many, None)),
            Err(OcspError::TooManyCertIds { count: 33, .. })
        ));
        let max = vec![cert_id(ID_SHA1, 20, &[5]); MAX_CERT_IDS];
        assert!(OcspRequest::from_der(&request(max, None)).is_ok());
        assert!(matches!(
            OcspRequest::from_der(&request(vec![], None)),
            Err(OcspError::NoCertIds)
        ));
        assert!(matches!(
            OcspRequest::from_der(&request(vec![cert_id(ID_SHA1, 20, &[5])], Some(&[1; 33]))),
            Err(OcspError::BadNonce { len: 33 })
        ));
        assert!(matches!(
            OcspRequest::from_get_path("not base64!"),
            Err(OcspError::BadBase64)
        ));
    }

    #[test]
    fn negative_or_zero_serials_are_unknown_not_errors() {
        let der = request(
            vec![
                cert_id(ID_SHA1, 20, &[0x00]),
                cert_id(ID_SHA1, 20, &[0x00, 0x80]),
            ],
            None,
        );
        let req = OcspRequest::from_der(&der).unwrap();
        assert!(req.queries()[0].serial().is_none());
        assert_eq!(req.queries()[1].serial().unwrap().to_string(), "80");
    }

    proptest::proptest! {
        /// Arbitrary bytes, and arbitrary corruptions of a valid request, never panic.
        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2048),
                               flip in 0usize..4096, value in proptest::num::u8::ANY) {
            let _ = OcspRequest::from_der(&bytes);
            let _ = OcspRequest::from_get_path(&String::from_utf8_lossy(&bytes));
            let mut valid = request(vec![cert_id(ID_SHA256, 32, &[9, 9])], Some(&[3; 8]));
            let at = flip % valid.len();
            valid[at] = value;
            let _ = OcspRequest::from_der(&valid);
            valid.truncate(at);
            let _ = OcspRequest::from_der(&valid);
        }
    }
}
