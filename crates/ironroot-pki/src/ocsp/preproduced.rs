//! Root-signed, pre-produced OCSP answers for CA certificates (RFC 5019 style).
//!
//! Intermediates and the factory CA are issued by the root, whose key is offline, so no online
//! responder may speak for them. Whenever a command unlocks the root (`ca init`, intermediate
//! rotation, `ca revoke-intermediate`), it also signs one answer per CA certificate and CertID
//! hash (SHA-1 and SHA-256), valid until the root CRL's nextUpdate, and writes them to
//! `<data-dir>/pki/`[`CA_RESPONSES_FILE`]. The server serves the stored answer for a root CertID
//! and says `tryLater` when none matches or it is stale. Such answers carry no nonce (they
//! exist before the request) and hold the root certificate in `certs`.

use der::Decode;
use der::asn1::{Null, OctetString};
use time::OffsetDateTime;
use x509_cert::Certificate;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_ocsp::{BasicOcspResponse, CertId, OcspResponse};

use crate::ca::{CaCertificate, IssuingCa};

use super::request::{CertIdHash, OcspRequest};
use super::responder::{IssuerHashes, sign_basic, single_response};
use super::{CertState, OcspError, OcspStatus};

/// File under `<data-dir>/pki/` holding the root-signed answers, PEM blocks `OCSP RESPONSE`.
pub const CA_RESPONSES_FILE: &str = "ocsp-ca.pem";

const PEM_TAG: &str = "OCSP RESPONSE";

/// Has `root` sign an answer for each CA certificate in `cas` (with its state), for SHA-1 and
/// SHA-256 CertIDs, produced `now` and valid until `next_update`. Returns the PEM text to store.
pub fn sign_ca_responses(
    root: &IssuingCa,
    cas: &[(CaCertificate, CertState)],
    now: OffsetDateTime,
    next_update: OffsetDateTime,
) -> Result<String, OcspError> {
    let hashes = IssuerHashes::of(root.certificate())?;
    let root_cert = Certificate::from_der(root.certificate().der()).map_err(OcspError::Encoding)?;
    let key_hash = CertIdHash::Sha1.digest(root.signer().public_key());
    let mut text = String::new();
    for (ca, state) in cas {
        let serial = Certificate::from_der(ca.der())
            .map_err(OcspError::Encoding)?
            .tbs_certificate
            .serial_number;
        for hash in [CertIdHash::Sha1, CertIdHash::Sha256] {
            let (name_hash, issuer_key_hash) = hashes.get(hash);
            let id = CertId {
                hash_algorithm: AlgorithmIdentifierOwned {
                    oid: hash.oid(),
                    parameters: Some(Null.into()),
                },
                issuer_name_hash: OctetString::new(name_hash.to_vec())
                    .map_err(OcspError::Encoding)?,
                issuer_key_hash: OctetString::new(issuer_key_hash.to_vec())
                    .map_err(OcspError::Encoding)?,
                serial_number: serial.clone(),
            };
            let single = single_response(id, state, now, next_update)?;
            let der = sign_basic(
                root.signer().as_ref(),
                &key_hash,
                vec![single],
                None,
                now,
                root_cert.clone(),
            )?;
            text.push_str(&pem::encode(&pem::Pem::new(PEM_TAG, der)));
        }
    }
    Ok(text)
}

/// The stored root-signed answers, parsed.
#[derive(Debug, Clone, Default)]
pub struct CaResponses {
    answers: Vec<(CertId, OffsetDateTime, Vec<u8>)>,
}

impl CaResponses {
    /// Parses the stored file; a block that does not decode is an error (the file is ours).
    pub fn from_pem(text: &[u8]) -> Result<Self, OcspError> {
        let blocks = pem::parse_many(text).map_err(|_| OcspError::BadStoredResponse)?;
        let mut answers = Vec::with_capacity(blocks.len());
        for block in blocks.into_iter().filter(|b| b.tag() == PEM_TAG) {
            let der = block.into_contents();
            let response = OcspResponse::from_der(&der).map_err(OcspError::Der)?;
            let bytes = response
                .response_bytes
                .ok_or(OcspError::BadStoredResponse)?;
            let basic =
                BasicOcspResponse::from_der(bytes.response.as_bytes()).map_err(OcspError::Der)?;
            let single = basic
                .tbs_response_data
                .responses
                .into_iter()
                .next()
                .ok_or(OcspError::BadStoredResponse)?;
            let next = single.next_update.ok_or(OcspError::BadStoredResponse)?;
            let secs = next.0.to_unix_duration().as_secs();
            let next = i64::try_from(secs)
                .ok()
                .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
                .ok_or(OcspError::Time)?;
            answers.push((single.cert_id, next, der));
        }
        Ok(Self { answers })
    }

    /// Number of stored answers.
    pub fn len(&self) -> usize {
        self.answers.len()
    }

    /// Whether none is stored.
    pub fn is_empty(&self) -> bool {
        self.answers.is_empty()
    }

    /// The stored answer for `request`'s one CertID, if it is still valid at `now`.
    /// Pre-produced answers hold one certificate each, so a request must ask for exactly one
    /// (RFC 5019 §2.1.1); a stale or missing answer is [`OcspStatus::TryLater`].
    pub fn answer(&self, request: &OcspRequest, now: OffsetDateTime) -> Result<&[u8], OcspStatus> {
        let [q] = request.queries() else {
            return Err(OcspStatus::MalformedRequest);
        };
        let found = self.answers.iter().find(|(id, _, _)| {
            id.hash_algorithm.oid == q.hash().oid()
                && id.issuer_name_hash.as_bytes() == q.issuer_name_hash()
                && id.issuer_key_hash.as_bytes() == q.issuer_key_hash()
                && id.serial_number.as_bytes() == q.id.serial_number.as_bytes()
        });
        match found {
            Some((_, next, der)) if *next > now => Ok(der),
            _ => Err(OcspStatus::TryLater),
        }
    }
}
