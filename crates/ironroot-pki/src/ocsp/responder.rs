//! Delegated responders (one per online CA) and signing BasicOCSPResponses.

use std::sync::Arc;

use der::asn1::{BitString, GeneralizedTime, ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use time::{Duration, OffsetDateTime};
use x509_cert::Certificate;
use x509_cert::ext::pkix::CrlReason;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_ocsp::{
    BasicOcspResponse, CertStatus, OcspGeneralizedTime, OcspResponse, ResponderId, ResponseData,
    RevokedInfo, SingleResponse, Version,
};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::ca::{CaCertificate, IssuedCertificate, IssuingCa, LeafProfile, Lifetime};
use crate::error::IssueError;
use crate::revocation::RevocationReason;
use crate::signer::{CaSigner, RcgenSigner, SoftwareKey};

use super::request::{CertIdHash, CertQuery, OcspRequest};
use super::{CertState, OcspError, OcspStatus};

/// ecdsa-with-SHA256 (RFC 5758): the one signature algorithm ironroot keys make.
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");

/// Subject CN prefix of delegated responder certificates; the CA's CN follows.
pub const OCSP_RESPONDER_COMMON_NAME: &str = "ironroot OCSP responder";

/// Issuer hashes of one CA, as CertIDs carry them.
#[derive(Debug, Clone)]
pub(super) struct IssuerHashes {
    sha1: (Vec<u8>, Vec<u8>),
    sha256: (Vec<u8>, Vec<u8>),
}

impl IssuerHashes {
    pub(super) fn of(ca: &CaCertificate) -> Result<Self, IssueError> {
        let (_, parsed) = X509Certificate::from_der(ca.der())
            .map_err(|e| IssueError::BadCaCertificate(e.to_string()))?;
        let key = parsed.public_key().subject_public_key.data.to_vec();
        let name = ca.subject_raw();
        let both = |h: CertIdHash| (h.digest(name), h.digest(&key));
        Ok(Self {
            sha1: both(CertIdHash::Sha1),
            sha256: both(CertIdHash::Sha256),
        })
    }

    /// (name hash, key hash) under `hash`.
    pub(super) fn get(&self, hash: CertIdHash) -> (&[u8], &[u8]) {
        let (name, key) = match hash {
            CertIdHash::Sha1 => &self.sha1,
            CertIdHash::Sha256 => &self.sha256,
        };
        (name, key)
    }

    /// Whether `q` names this issuer (name hash and key hash both match).
    fn matches(&self, q: &CertQuery) -> bool {
        let (name, key) = self.get(q.hash());
        q.issuer_name_hash() == name && q.issuer_key_hash() == key
    }
}

/// The issuer of a request's CertIDs, as [`OcspResponder::route`] finds it.
#[derive(Debug)]
pub enum Route<'a> {
    /// Every CertID names this online CA: look their serials up and sign with its responder.
    Delegated(&'a DelegatedResponder),
    /// Every CertID names the (offline) root: intermediate and factory CA certificates.
    Root,
}

/// A delegated OCSP responder of one online CA: a certificate that CA signed (OCSPSigning,
/// id-pkix-ocsp-nocheck) for a key generated in memory, never written anywhere.
pub struct DelegatedResponder {
    ca: CaCertificate,
    hashes: IssuerHashes,
    certificate: IssuedCertificate,
    parsed: Certificate,
    key: Arc<dyn CaSigner>,
    key_hash: Vec<u8>,
}

impl std::fmt::Debug for DelegatedResponder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DelegatedResponder")
            .field("ca", &self.ca.common_name())
            .field("serial", &self.certificate.serial())
            .field("not_after", &self.certificate.not_after())
            .finish_non_exhaustive()
    }
}

impl DelegatedResponder {
    /// Generates a fresh responder key in memory and has `ca` sign its certificate, valid from
    /// `now` (backdated five minutes for client clock skew) for `lifetime`. The signature goes
    /// through the CA's own [`CaSigner`] (a key file or a PKCS#11 token): call it off the
    /// async threads.
    pub fn issue(
        ca: &IssuingCa,
        now: OffsetDateTime,
        lifetime: Duration,
    ) -> Result<Self, IssueError> {
        let key: Arc<dyn CaSigner> = Arc::new(SoftwareKey::generate()?);
        let public = RcgenSigner::new(Arc::clone(&key));
        let name = format!(
            "{OCSP_RESPONDER_COMMON_NAME} ({})",
            ca.certificate().common_name()
        );
        let certificate = ca.sign_leaf(
            &public,
            LeafProfile::OcspResponder,
            &name,
            Vec::new(),
            Lifetime {
                validity: lifetime,
                backdate: Duration::minutes(5),
            },
            now,
        )?;
        let parsed = Certificate::from_der(certificate.der())
            .map_err(|e| IssueError::Encoding(e.to_string()))?;
        Ok(Self {
            hashes: IssuerHashes::of(ca.certificate())?,
            ca: ca.certificate().clone(),
            key_hash: CertIdHash::Sha1.digest(key.public_key()),
            certificate,
            parsed,
            key,
        })
    }

    /// The CA this responder answers for.
    pub fn ca(&self) -> &CaCertificate {
        &self.ca
    }

    /// The responder certificate (sent in every response's `certs`).
    pub fn certificate(&self) -> &IssuedCertificate {
        &self.certificate
    }

    /// Signs a successful response answering `request`'s CertIDs with `states` (same order,
    /// same length), produced at `now`, each valid until `now + validity` (capped at the
    /// responder certificate's end). Echoes the request's nonce.
    pub fn respond(
        &self,
        request: &OcspRequest,
        states: &[CertState],
        now: OffsetDateTime,
        validity: Duration,
    ) -> Result<Vec<u8>, OcspError> {
        if states.len() != request.queries().len() {
            return Err(OcspError::StatusCount {
                queries: request.queries().len(),
                states: states.len(),
            });
        }
        let next_update = (now + validity).min(self.certificate.not_after());
        let responses = request
            .queries()
            .iter()
            .zip(states)
            .map(|(q, state)| single_response(q.id.clone(), state, now, next_update))
            .collect::<Result<Vec<_>, OcspError>>()?;
        sign_basic(
            self.key.as_ref(),
            &self.key_hash,
            responses,
            request.nonce().cloned(),
            now,
            self.parsed.clone(),
        )
    }
}

/// One SingleResponse: `id` is `state`, this update `now`, next update `next_update`.
pub(super) fn single_response(
    id: x509_ocsp::CertId,
    state: &CertState,
    now: OffsetDateTime,
    next_update: OffsetDateTime,
) -> Result<SingleResponse, OcspError> {
    Ok(SingleResponse {
        cert_id: id,
        cert_status: match state {
            CertState::Good => CertStatus::good(),
            CertState::Unknown => CertStatus::unknown(),
            CertState::Revoked { at, reason } => CertStatus::revoked(RevokedInfo {
                revocation_time: ocsp_time(*at)?,
                revocation_reason: Some(crl_reason(*reason)),
            }),
        },
        this_update: ocsp_time(now)?,
        next_update: Some(ocsp_time(next_update)?),
        single_extensions: None,
    })
}

/// Signs a successful BasicOCSPResponse with `key` (responderID byKey `key_hash`), echoing
/// `nonce`, with `signer_cert` in `certs`.
pub(super) fn sign_basic(
    key: &dyn CaSigner,
    key_hash: &[u8],
    responses: Vec<SingleResponse>,
    nonce: Option<x509_cert::ext::Extension>,
    now: OffsetDateTime,
    signer_cert: Certificate,
) -> Result<Vec<u8>, OcspError> {
    let tbs = ResponseData {
        version: Version::V1,
        responder_id: ResponderId::ByKey(
            OctetString::new(key_hash.to_vec()).map_err(OcspError::Encoding)?,
        ),
        produced_at: ocsp_time(now)?,
        responses,
        response_extensions: nonce.map(|n| vec![n]),
    };
    let signed = tbs.to_der().map_err(OcspError::Encoding)?;
    let signature = key.sign(&signed)?;
    let basic = BasicOcspResponse {
        tbs_response_data: tbs,
        signature_algorithm: AlgorithmIdentifierOwned {
            oid: ECDSA_WITH_SHA256,
            parameters: None,
        },
        signature: BitString::from_bytes(&signature).map_err(OcspError::Encoding)?,
        certs: Some(vec![signer_cert]),
    };
    OcspResponse::successful(basic)
        .and_then(|r| r.to_der())
        .map_err(OcspError::Encoding)
}

/// The set of delegated responders the server holds, plus the root's issuer hashes (to tell
/// "a CA certificate" from "not ours").
#[derive(Debug)]
pub struct OcspResponder {
    responders: Vec<DelegatedResponder>,
    root: IssuerHashes,
}

impl OcspResponder {
    /// Collects `responders` (one per online CA) under the `root` they chain to.
    pub fn new(
        root: &CaCertificate,
        responders: Vec<DelegatedResponder>,
    ) -> Result<Self, IssueError> {
        Ok(Self {
            responders,
            root: IssuerHashes::of(root)?,
        })
    }

    /// The delegated responders.
    pub fn responders(&self) -> &[DelegatedResponder] {
        &self.responders
    }

    /// Finds who answers `request`. One response has one signer and a delegated responder may
    /// only speak for the CA that certified it (RFC 6960 §4.2.2.2), so every CertID must name
    /// the same issuer; a CertID of an issuer ironroot does not hold, or a mix of issuers, is
    /// [`OcspStatus::Unauthorized`].
    pub fn route(&self, request: &OcspRequest) -> Result<Route<'_>, OcspStatus> {
        let queries = request.queries();
        if queries.iter().all(|q| self.root.matches(q)) {
            return Ok(Route::Root);
        }
        self.responders
            .iter()
            .find(|r| queries.iter().all(|q| r.hashes.matches(q)))
            .map(Route::Delegated)
            .ok_or(OcspStatus::Unauthorized)
    }

    /// The earliest end of validity among the responder certificates (re-issue before it).
    pub fn expires(&self) -> Option<OffsetDateTime> {
        self.responders
            .iter()
            .map(|r| r.certificate.not_after())
            .min()
    }
}

fn ocsp_time(t: OffsetDateTime) -> Result<OcspGeneralizedTime, OcspError> {
    let secs = u64::try_from(t.unix_timestamp()).map_err(|_| OcspError::Time)?;
    GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(secs))
        .map(OcspGeneralizedTime)
        .map_err(OcspError::Encoding)
}

fn crl_reason(reason: RevocationReason) -> CrlReason {
    match reason {
        RevocationReason::Unspecified => CrlReason::Unspecified,
        RevocationReason::KeyCompromise => CrlReason::KeyCompromise,
        RevocationReason::CaCompromise => CrlReason::CaCompromise,
        RevocationReason::Superseded => CrlReason::Superseded,
        RevocationReason::CessationOfOperation => CrlReason::CessationOfOperation,
        RevocationReason::AffiliationChanged => CrlReason::AffiliationChanged,
        RevocationReason::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
    }
}

/// `OCSPResponse` with a status and no body (every status but `successful`).
pub(crate) fn status_only(status: OcspStatus) -> Vec<u8> {
    let code = status as u8;
    // SEQUENCE { ENUMERATED code }: a fixed encoding, nothing to fail.
    vec![0x30, 0x03, 0x0a, 0x01, code]
}
