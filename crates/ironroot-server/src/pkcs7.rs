//! RFC 7030 wire formats: PKCS#7 "certs-only" (a degenerate SignedData holding certificates and
//! no signers, RFC 7030 §4.1.3 / RFC 5652) and the CSR-attributes response (§4.5.2).

use cms::cert::CertificateChoices;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{CertificateSet, EncapsulatedContentInfo, SignedData, SignerInfos};
use der::asn1::SetOfVec;
use der::{Any, Decode as _, Encode as _};

/// Builds a certs-only PKCS#7 (DER) holding `certs` (each DER).
pub fn certs_only(certs: &[&[u8]]) -> Result<Vec<u8>, der::Error> {
    let mut set = SetOfVec::new();
    for der in certs {
        let cert = x509_cert::Certificate::from_der(der)?;
        set.insert(CertificateChoices::Certificate(cert))?;
    }
    let signed = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::new(),
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: const_oid::db::rfc5911::ID_DATA,
            econtent: None,
        },
        certificates: Some(CertificateSet(set)),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::new()),
    };
    let info = ContentInfo {
        content_type: const_oid::db::rfc5911::ID_SIGNED_DATA,
        content: Any::encode_from(&signed)?,
    };
    info.to_der()
}

/// The CSR attributes ironroot wants (RFC 7030 §4.5.2, `CsrAttrs ::= SEQUENCE OF AttrOrOID`):
/// sign with ecdsa-with-SHA256, and an `id-ecPublicKey` attribute naming the curve P-256.
pub const CSR_ATTRS_DER: &[u8] = &[
    0x30, 0x21, // SEQUENCE (33)
    0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02, // ecdsa-with-SHA256
    0x30, 0x15, // Attribute SEQUENCE (21)
    0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01, // id-ecPublicKey
    0x31, 0x0A, // SET (10)
    0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07, // prime256v1
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csr_attrs_is_well_formed_der() {
        use der::Tagged as _;
        let any = Any::from_der(CSR_ATTRS_DER).expect("valid DER");
        assert_eq!(any.tag(), der::Tag::Sequence);
    }
}
