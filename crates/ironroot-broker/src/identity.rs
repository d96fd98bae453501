//! Who is connected: the identity read from the verified client certificate.
//!
//! The TLS layer (the caller's rustls `ServerConfig` with ironroot's verifier) has already
//! checked the chain and the revoked set when the broker sees a connection. The broker reads
//! the subject common name — the device id — and the serial from the end-entity certificate,
//! and requires the MQTT client id to equal that common name.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

/// A certificate serial number as big-endian bytes without leading zeros (so `00 0a` and `0a`
/// are the same serial); printed as lowercase hex.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CertSerial(Box<[u8]>);

impl CertSerial {
    /// From the DER INTEGER content bytes (sign byte and leading zeros are dropped).
    pub fn from_be_bytes(bytes: &[u8]) -> Self {
        let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        CertSerial(bytes[start..].into())
    }

    /// Parses lowercase or uppercase hex, with optional `:` separators.
    pub fn from_hex(hex: &str) -> Result<Self, IdentityError> {
        let digits: String = hex.chars().filter(|c| *c != ':').collect();
        if digits.is_empty() || digits.len() > 64 || !digits.chars().all(|c| c.is_ascii_hexdigit())
        {
            return Err(IdentityError::BadSerial);
        }
        let padded = if digits.len() % 2 == 1 {
            format!("0{digits}")
        } else {
            digits
        };
        let bytes: Vec<u8> = (0..padded.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&padded[i..i + 2], 16))
            .collect::<Result<_, _>>()
            .map_err(|_| IdentityError::BadSerial)?;
        Ok(Self::from_be_bytes(&bytes))
    }

    /// The big-endian bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for CertSerial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("00");
        }
        for b in self.0.iter() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CertSerial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertSerial({self})")
    }
}

/// The identity of one connection: device id (certificate CN = MQTT client id), certificate
/// serial, and source address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceIdentity {
    device_id: Arc<str>,
    serial: Option<CertSerial>,
    source: SocketAddr,
}

impl DeviceIdentity {
    /// Builds an identity (the broker does this from the verified certificate; public for
    /// policy-provider tests).
    pub fn new(
        device_id: impl Into<Arc<str>>,
        serial: Option<CertSerial>,
        source: SocketAddr,
    ) -> Self {
        DeviceIdentity {
            device_id: device_id.into(),
            serial,
            source,
        }
    }

    /// The device id: the certificate's subject common name, equal to the MQTT client id.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    pub(crate) fn device_id_arc(&self) -> &Arc<str> {
        &self.device_id
    }

    /// Serial of the presented certificate; `None` only on a `danger` plaintext listener.
    pub fn serial(&self) -> Option<&CertSerial> {
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
    /// A serial given as hex is malformed.
    #[error("certificate serial must be 1 to 32 bytes of hex")]
    BadSerial,
}

impl From<&ironroot_pki::Serial> for CertSerial {
    fn from(s: &ironroot_pki::Serial) -> Self {
        CertSerial::from_be_bytes(s.as_bytes())
    }
}

/// Reads (device id, serial) from a DER end-entity certificate already verified by the TLS
/// layer. Only operational device certificates are accepted: the identity is the
/// `urn:ironroot:device:<id>` URI, whose id the subject CN repeats (ironroot-pki checks both).
/// Bootstrap (factory) and operator credentials are refused.
pub(crate) fn from_certificate(der: &[u8]) -> Result<(String, CertSerial), IdentityError> {
    let der = rustls::pki_types::CertificateDer::from(der);
    let identity = ironroot_pki::ClientIdentity::from_certificate(&der)?;
    let id = identity.device()?;
    Ok((id.as_str().to_string(), CertSerial::from(identity.serial())))
}

/// The CN and serial a certificate *claims*, without any check (for reporting rejected
/// certificates).
pub(crate) fn claimed(der: &[u8]) -> Result<(String, CertSerial), IdentityError> {
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
    Ok((cn, CertSerial::from_be_bytes(cert.raw_serial())))
}

/// Why a client id is refused (CONNACK `0x85` in MQTT 5, "identifier rejected" in 3.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientIdError {
    /// The client id is empty (the broker never assigns ids: the id is the certificate's CN).
    #[error("client id is empty; it must equal the certificate common name")]
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
    /// The client id differs from the certificate's common name.
    #[error("client id does not match the certificate common name")]
    CertificateMismatch,
}

/// Longest client id the broker accepts (AWS IoT uses the same limit).
pub const MAX_CLIENT_ID_BYTES: usize = 128;

/// Checks the syntax of a client id (or certificate CN used as one).
pub fn validate_client_id(id: &str) -> Result<(), ClientIdError> {
    if id.is_empty() {
        return Err(ClientIdError::Empty);
    }
    if id.len() > MAX_CLIENT_ID_BYTES {
        return Err(ClientIdError::TooLong);
    }
    if id.contains(['+', '#', '/', '$']) {
        return Err(ClientIdError::ReservedCharacter);
    }
    if id.chars().any(char::is_control) {
        return Err(ClientIdError::ControlCharacter);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_normalize_and_print_hex() {
        let a = CertSerial::from_be_bytes(&[0, 0, 0x0a, 0xff]);
        assert_eq!(a.to_string(), "0aff");
        assert_eq!(CertSerial::from_hex("aff").unwrap(), a);
        assert_eq!(CertSerial::from_hex("00:0A:FF").unwrap(), a);
        assert_eq!(CertSerial::from_hex("xyz"), Err(IdentityError::BadSerial));
        assert_eq!(CertSerial::from_hex(""), Err(IdentityError::BadSerial));
    }

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
    }
}
