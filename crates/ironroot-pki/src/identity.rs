//! The identity a verified client certificate carries.
//!
//! ironroot puts exactly one `urn:ironroot:` URI in every client certificate it issues; its
//! prefix says what kind of peer it is and the rest is the id (device-id syntax):
//!
//! | URI | issued by | accepted by |
//! |---|---|---|
//! | `urn:ironroot:device:<id>` | intermediate CA | MQTT broker, EST re-enrollment |
//! | `urn:ironroot:bootstrap:<id>` | factory CA | enrollment only |
//! | `urn:ironroot:operator:<name>` | intermediate CA | provisioning / admin API |
//! | `urn:ironroot:command-signer` (codeSigning, no id) | intermediate CA | devices, for signed commands; no TLS endpoint |
//!
//! The subject CN repeats the id; both must agree.

use rustls::pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::device_id::{DeviceId, DeviceIdError};
use crate::serial::Serial;

/// SAN URI prefix of operational device certificates.
pub const DEVICE_URI_PREFIX: &str = "urn:ironroot:device:";
/// SAN URI prefix of factory-issued bootstrap credentials.
pub const BOOTSTRAP_URI_PREFIX: &str = "urn:ironroot:bootstrap:";
/// SAN URI prefix of operator client certificates.
pub const OPERATOR_URI_PREFIX: &str = "urn:ironroot:operator:";

/// The SAN URI of command-signing certificates (with extendedKeyUsage codeSigning). It has no
/// id part, so [`ClientIdentity::from_certificate`] never reads it as a peer identity.
pub const COMMAND_SIGNER_URI: &str = "urn:ironroot:command-signer";

/// What kind of peer a client certificate identifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PeerKind {
    /// An enrolled device (operational certificate).
    Device,
    /// A device presenting its manufacturing credential.
    Bootstrap,
    /// A human or tool with operator rights.
    Operator,
}

/// The identity in a client certificate the TLS layer accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    kind: PeerKind,
    id: DeviceId,
    serial: Serial,
}

impl ClientIdentity {
    /// Extracts the identity from the end-entity certificate of a finished handshake (rustls
    /// `peer_certificates()[0]`). Call it only on certificates the
    /// [`RevocationCheckingVerifier`](crate::RevocationCheckingVerifier) accepted: this reads
    /// the names, it does not verify the chain.
    pub fn from_certificate(der: &CertificateDer<'_>) -> Result<Self, IdentityError> {
        let (_, cert) = X509Certificate::from_der(der).map_err(|_| IdentityError::Unparsable)?;
        let serial =
            Serial::from_be_bytes(cert.raw_serial()).map_err(|_| IdentityError::Unparsable)?;
        let mut found = None;
        if let Some(san) = cert
            .subject_alternative_name()
            .map_err(|_| IdentityError::Unparsable)?
        {
            for name in &san.value.general_names {
                let GeneralName::URI(uri) = name else {
                    continue;
                };
                let Some(parsed) = parse_uri(uri) else {
                    continue;
                };
                if found.is_some() {
                    return Err(IdentityError::AmbiguousIdentity);
                }
                found = Some(parsed);
            }
        }
        let (kind, id) = found.ok_or(IdentityError::NoIdentityUri)?;
        let id = DeviceId::parse(id)?;
        let mut cns = cert.subject().iter_common_name();
        let cn = cns.next().and_then(|cn| cn.as_str().ok());
        if cn != Some(id.as_str()) || cns.next().is_some() {
            return Err(IdentityError::CommonNameMismatch);
        }
        Ok(Self { kind, id, serial })
    }

    /// The kind of peer.
    pub fn kind(&self) -> PeerKind {
        self.kind
    }

    /// The device id (or operator name).
    pub fn id(&self) -> &DeviceId {
        &self.id
    }

    /// Serial of the presented certificate (to tie a session to a certificate for revocation).
    pub fn serial(&self) -> &Serial {
        &self.serial
    }

    /// The device id if this is an operational device certificate — what the broker accepts.
    pub fn device(&self) -> Result<&DeviceId, IdentityError> {
        match self.kind {
            PeerKind::Device => Ok(&self.id),
            other => Err(IdentityError::WrongKind { found: other }),
        }
    }
}

fn parse_uri(uri: &str) -> Option<(PeerKind, &str)> {
    [
        (DEVICE_URI_PREFIX, PeerKind::Device),
        (BOOTSTRAP_URI_PREFIX, PeerKind::Bootstrap),
        (OPERATOR_URI_PREFIX, PeerKind::Operator),
    ]
    .into_iter()
    .find_map(|(prefix, kind)| uri.strip_prefix(prefix).map(|id| (kind, id)))
}

/// Why no identity could be read from a certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The certificate does not parse.
    #[error("client certificate cannot be parsed")]
    Unparsable,
    /// No `urn:ironroot:` SAN URI.
    #[error("client certificate has no urn:ironroot: identity URI (not issued by ironroot?)")]
    NoIdentityUri,
    /// More than one `urn:ironroot:` SAN URI.
    #[error("client certificate has more than one urn:ironroot: identity URI")]
    AmbiguousIdentity,
    /// The id in the URI is not valid device-id syntax.
    #[error("client certificate identity is invalid: {0}")]
    BadId(#[from] DeviceIdError),
    /// Subject CN and URI disagree.
    #[error("client certificate common name does not match its identity URI")]
    CommonNameMismatch,
    /// A different kind of peer than this endpoint accepts.
    #[error("client certificate identifies a {found:?}, which this endpoint does not accept")]
    WrongKind {
        /// The kind presented.
        found: PeerKind,
    },
}
