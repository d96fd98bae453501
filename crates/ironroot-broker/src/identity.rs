//! Who is connected: the identity read from the verified client certificate.
//!
//! The TLS layer (the caller's rustls `ServerConfig` with ironroot's verifier) has already
//! checked the chain and the revoked set when the broker sees a connection. The broker reads
//! the subject common name — the device id — and the serial from the end-entity certificate.
//! The MQTT client id equals that common name by default; a policy allowing `iot:Connect` on
//! `client/<other-id>` widens it (several client ids under one identity, see `registry`).

use std::net::SocketAddr;
use std::sync::Arc;

use ironroot_pki::{DeviceId, DeviceIdError, Serial};

/// The identity of one connection: device id (certificate CN), the MQTT client id it connected
/// with (the device id unless a policy widened it), certificate serial, and source address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceIdentity {
    device_id: Arc<str>,
    client_id: Arc<str>,
    serial: Option<Serial>,
    source: SocketAddr,
}

impl DeviceIdentity {
    /// Builds an identity (the broker does this from the verified certificate; public for
    /// policy-provider tests).
    /// The client id is the device id; see [`DeviceIdentity::with_client_id`].
    pub fn new(device_id: impl Into<Arc<str>>, serial: Option<Serial>, source: SocketAddr) -> Self {
        let device_id = device_id.into();
        DeviceIdentity {
            client_id: device_id.clone(),
            device_id,
            serial,
            source,
        }
    }

    /// The same identity connecting with another MQTT client id (`iot:Connect` decides it).
    #[must_use]
    pub fn with_client_id(mut self, client_id: impl Into<Arc<str>>) -> Self {
        self.client_id = client_id.into();
        self
    }

    /// The device id: the certificate's subject common name.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// The MQTT client id of the connection (`${iot:ClientId}` in policies).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    pub(crate) fn client_id_arc(&self) -> &Arc<str> {
        &self.client_id
    }

    pub(crate) fn device_id_arc(&self) -> &Arc<str> {
        &self.device_id
    }

    /// Serial of the presented certificate; `None` only on a `danger` plaintext listener.
    pub fn serial(&self) -> Option<&Serial> {
        self.serial.as_ref()
    }

    /// Remote address of the TCP connection.
    pub fn source(&self) -> SocketAddr {
        self.source
    }
}

/// Why no usable identity could be read from a peer certificate, or a serial is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The TLS layer delivered no client certificate (misconfigured `ServerConfig`).
    #[error("no client certificate was presented; the TLS configuration must require one")]
    NoCertificate,
    /// The certificate carries no ironroot device identity (no `urn:ironroot:device:` URI, a
    /// bootstrap or operator credential, CN and URI disagreeing ...).
    #[error("{0}")]
    Certificate(#[from] ironroot_pki::IdentityError),
    /// The certificate could not be parsed.
    #[error("client certificate could not be parsed")]
    Unparsable,
    /// The subject has no common name, more than one, or one that is not UTF-8.
    #[error("client certificate subject must carry exactly one UTF-8 common name")]
    CommonName,
    /// The certificate's serial is not a valid one (zero or longer than 20 bytes).
    #[error("client certificate serial is invalid: {0}")]
    Serial(#[from] ironroot_pki::SerialError),
}

/// Reads (device id, serial) from a DER end-entity certificate already verified by the TLS
/// layer. Only operational device certificates are accepted: the identity is the
/// `urn:ironroot:device:<id>` URI, whose id the subject CN repeats (ironroot-pki checks both).
/// Bootstrap (factory) and operator credentials are refused.
pub(crate) fn from_certificate(der: &[u8]) -> Result<(String, Serial), IdentityError> {
    let der = rustls::pki_types::CertificateDer::from(der);
    let identity = ironroot_pki::ClientIdentity::from_certificate(&der)?;
    let id = identity.device()?;
    Ok((id.as_str().to_string(), identity.serial().clone()))
}

/// The CN and serial a certificate *claims*, without any check (for reporting rejected
/// certificates).
pub(crate) fn claimed(der: &[u8]) -> Result<(String, Serial), IdentityError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|_| IdentityError::Unparsable)?;
    let mut cns = cert.subject().iter_common_name();
    let cn = cns
        .next()
        .and_then(|cn| cn.as_str().ok())
        .ok_or(IdentityError::CommonName)?
        .to_string();
    if cns.next().is_some() {
        return Err(IdentityError::CommonName);
    }
    Ok((cn, Serial::from_be_bytes(cert.raw_serial())?))
}

/// Why a client id is refused (CONNACK `0x85` in MQTT 5, "identifier rejected" in 3.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientIdError {
    /// The client id is empty where the broker cannot assign one (MQTT 3.1.1 without clean
    /// session, or no certificate to take the device id from).
    #[error(
        "client id is empty; send the certificate common name, or connect with a clean session to have it assigned"
    )]
    Empty,
    /// The client id contains `+`, `#`, `/` or `$`, which would widen policy variables or topics.
    #[error("client id contains a reserved character ('+', '#', '/' or '$')")]
    ReservedCharacter,
    /// The client id contains a control character.
    #[error("client id contains a control character")]
    ControlCharacter,
    /// The client id is longer than 128 bytes.
    #[error("client id is longer than 128 bytes")]
    TooLong,
    /// The client id breaks the device id syntax in another way (whitespace, non-ASCII, a
    /// first character that is not a letter or digit ...).
    #[error(
        "client id is not a device id: only A-Z a-z 0-9 and . _ : -, starting with a letter or digit"
    )]
    NotADeviceId,
    /// The client id differs from the certificate's common name and no policy allows
    /// `iot:Connect` on `client/<that id>`.
    #[error("client id does not match the certificate common name and no policy allows it")]
    CertificateMismatch,
    /// The client id names a session that belongs to another device identity: a session is
    /// never taken over across identities, whatever the policies allow.
    #[error("client id is in use by a session of another device")]
    OwnedByAnotherDevice,
}

/// Longest client id the broker accepts: [`DeviceId::MAX_LEN`] (AWS IoT uses the same limit).
pub const MAX_CLIENT_ID_BYTES: usize = DeviceId::MAX_LEN;

/// Checks the syntax of a client id (or certificate CN used as one). A client id is a device
/// id, so this is the one device id rule, [`DeviceId::parse`], with MQTT-specific reasons.
pub fn validate_client_id(id: &str) -> Result<(), ClientIdError> {
    match DeviceId::parse(id) {
        Ok(_) => Ok(()),
        Err(DeviceIdError::Empty) => Err(ClientIdError::Empty),
        Err(DeviceIdError::TooLong { .. }) => Err(ClientIdError::TooLong),
        Err(DeviceIdError::ForbiddenCharacter {
            character: '+' | '#' | '/' | '$',
            ..
        }) => Err(ClientIdError::ReservedCharacter),
        Err(DeviceIdError::ForbiddenCharacter { character, .. }) if character.is_control() => {
            Err(ClientIdError::ControlCharacter)
        }
        Err(_) => Err(ClientIdError::NotADeviceId),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids() {
        assert_eq!(validate_client_id("dev-1"), Ok(()));
        assert_eq!(validate_client_id(""), Err(ClientIdError::Empty));
        for bad in ["+", "#", "a/b", "$SYS", "dev+"] {
            assert_eq!(
                validate_client_id(bad),
                Err(ClientIdError::ReservedCharacter),
                "{bad}"
            );
        }
        assert_eq!(
            validate_client_id("a\nb"),
            Err(ClientIdError::ControlCharacter)
        );
        assert_eq!(
            validate_client_id("a\u{7f}"),
            Err(ClientIdError::ControlCharacter)
        );
        assert_eq!(
            validate_client_id(&"x".repeat(129)),
            Err(ClientIdError::TooLong)
        );
        // The one device id rule: what the CA would not issue, the broker does not accept.
        for bad in ["dev 1", "-dev", ".dev", "dév", "dev*", "dev?"] {
            assert_eq!(
                validate_client_id(bad),
                Err(ClientIdError::NotADeviceId),
                "{bad}"
            );
        }
        for ok in ["dev-1", "plant.7:line_2", "0"] {
            assert_eq!(validate_client_id(ok), Ok(()), "{ok}");
            assert!(DeviceId::parse(ok).is_ok());
        }
    }
}
