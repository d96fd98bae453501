//! OCSP (RFC 6960): answering "is this certificate good?" for relying parties that do not
//! fetch CRLs. CRLs stay; the handshake check stays the in-memory [`RevocationSet`](crate::RevocationSet).
//!
//! ```text
//!   bytes ──OcspRequest::from_der──▶ OcspRequest (≤ 64 KiB, ≤ 32 CertIDs, SHA-1/SHA-256, nonce ≤ 32 B)
//!     │ Err ─▶ malformedRequest
//!     ▼
//!   OcspResponder::route ── issuer not held / mixed ─▶ unauthorized
//!     ├── Route::Root (a CA certificate's CertID) ─▶ CaResponses: stored root-signed answer (or tryLater)
//!     └── Route::Delegated(responder of that CA)
//!            │ caller: per serial, registry + live revoked set ─▶ CertState (good / revoked / unknown)
//!            ▼
//!          DelegatedResponder::respond ─▶ BasicOCSPResponse signed by the responder key,
//!                                          responder certificate in `certs`, nonce echoed
//! ```
//!
//! The responder certificate is issued by the CA it answers for (EKU OCSPSigning and
//! id-pkix-ocsp-nocheck), so `openssl ocsp -CAfile <chain>` verifies responses with no extra
//! trust configuration. Its key exists only in memory; it lives days, not years, and is
//! re-issued before it ends (the caller's job: [`OcspResponder::expires`]).
//!
//! Status lookup is the caller's (it owns the registry): this module parses, routes and signs.

mod preproduced;
mod request;
mod responder;

pub use preproduced::{CA_RESPONSES_FILE, CaResponses, sign_ca_responses};
pub use request::{
    CertIdHash, CertQuery, MAX_CERT_IDS, MAX_NONCE_OCTETS, MAX_REQUEST_BYTES, OcspRequest,
};
pub use responder::{DelegatedResponder, OCSP_RESPONDER_COMMON_NAME, OcspResponder, Route};

use time::OffsetDateTime;

use crate::error::IssueError;
use crate::revocation::RevocationReason;
use crate::signer::SignerError;

/// id-pkix-ocsp-nocheck (1.3.6.1.5.5.7.48.1.5), as rcgen takes an OID.
pub(crate) const OCSP_NOCHECK_OID: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1, 5];

/// Media type of a request body (RFC 6960 Appendix C.1).
pub const REQUEST_MEDIA_TYPE: &str = "application/ocsp-request";

/// Media type of a response body (RFC 6960 Appendix C.2).
pub const RESPONSE_MEDIA_TYPE: &str = "application/ocsp-response";

/// What the responder knows about one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertState {
    /// Issued by this CA and not revoked.
    Good,
    /// Revoked at this time for this reason.
    Revoked {
        /// When it was revoked.
        at: OffsetDateTime,
        /// Why.
        reason: RevocationReason,
    },
    /// This CA never issued this serial (as far as the registry knows).
    Unknown,
}

/// An `OCSPResponseStatus` other than `successful` (RFC 6960 §4.2.1): such a response has no
/// body and no signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[non_exhaustive]
pub enum OcspStatus {
    /// The request did not parse or broke a bound.
    MalformedRequest = 1,
    /// The responder failed (signing, registry).
    InternalError = 2,
    /// The responder cannot answer now (no fresh root-signed response for a CA certificate).
    TryLater = 3,
    /// The request names an issuer this responder does not speak for.
    Unauthorized = 6,
}

impl OcspStatus {
    /// The DER `OCSPResponse` carrying only this status.
    pub fn to_der(self) -> Vec<u8> {
        responder::status_only(self)
    }
}

/// Why a request could not be answered, or a response not made. Request errors all map to
/// [`OcspStatus::MalformedRequest`] ([`OcspError::status`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OcspError {
    /// The request is larger than [`MAX_REQUEST_BYTES`].
    #[error("OCSP request of {len} bytes is over the {max}-byte limit")]
    TooLarge {
        /// Its size (encoded size for the GET form).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The request is not a DER OCSPRequest.
    #[error("malformed OCSP request: {0}")]
    Der(#[source] der::Error),
    /// The GET form is not base64.
    #[error("OCSP GET request is not base64 (standard or URL-safe alphabet)")]
    BadBase64,
    /// The request lists no CertID.
    #[error("OCSP request lists no certificate")]
    NoCertIds,
    /// The request lists more CertIDs than [`MAX_CERT_IDS`].
    #[error("OCSP request lists {count} certificates; at most {max} are answered per request")]
    TooManyCertIds {
        /// How many it lists.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A CertID uses a hash other than SHA-1 or SHA-256.
    #[error("OCSP CertID hash {oid} is not supported; use SHA-1 or SHA-256")]
    UnsupportedHash {
        /// The hash's OID.
        oid: String,
    },
    /// A CertID hash has the wrong length for its algorithm.
    #[error("OCSP CertID issuer hash has the wrong length for its algorithm")]
    BadHashLength,
    /// The nonce is empty or longer than [`MAX_NONCE_OCTETS`] (RFC 8954).
    #[error("OCSP nonce of {len} octets; 1 to 32 are accepted")]
    BadNonce {
        /// Its length.
        len: usize,
    },
    /// The caller passed a different number of states than the request has CertIDs.
    #[error("{states} certificate states given for {queries} CertIDs")]
    StatusCount {
        /// CertIDs in the request.
        queries: usize,
        /// States given.
        states: usize,
    },
    /// A time is before 1970 or not encodable.
    #[error("time not encodable in an OCSP response")]
    Time,
    /// Encoding the response failed.
    #[error("encoding the OCSP response failed: {0}")]
    Encoding(#[source] der::Error),
    /// The responder key failed to sign.
    #[error("OCSP responder key failed to sign: {0}")]
    Signer(#[from] SignerError),
    /// A CA certificate could not be used (hashing its name and key).
    #[error(transparent)]
    Ca(#[from] IssueError),
    /// A stored root-signed answer is not a successful single response with a nextUpdate.
    #[error("stored root-signed OCSP answer is not a successful response with a nextUpdate")]
    BadStoredResponse,
}

impl OcspError {
    /// The response status this error is answered with.
    pub fn status(&self) -> OcspStatus {
        match self {
            Self::StatusCount { .. } | Self::Time | Self::Encoding(_) | Self::Signer(_) => {
                OcspStatus::InternalError
            }
            _ => OcspStatus::MalformedRequest,
        }
    }
}

#[cfg(test)]
mod tests;
