//! The device side's error type.

use std::io;

/// Everything that can go wrong on the device side. Messages never contain key material or
/// claim tokens.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// A PEM or DER input (certificate, chain, key) could not be read.
    #[error("cannot read {what}: {reason}")]
    BadInput {
        /// What was being read.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// Key generation or CSR encoding failed.
    #[error("cannot create the device key or CSR: {0}")]
    Key(String),
    /// TLS configuration could not be built.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// The network connection failed.
    #[error("cannot reach {addr}: {source}")]
    Connect {
        /// Where the agent tried to connect.
        addr: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The HTTPS exchange failed below the application level (URL, network, TLS handshake,
    /// malformed or over-long response, timeout).
    #[error("HTTPS: {0}")]
    Https(#[from] ironroot_https_client::HttpsError),
    /// The server answered an EST request with an error status.
    #[error("the server refused the request: HTTP {status}: {body}")]
    Refused {
        /// HTTP status code.
        status: u16,
        /// The (short, uniform) error body the server sent.
        body: String,
    },
    /// The server's answer was not a valid EST response.
    #[error("malformed EST response: {0}")]
    BadResponse(String),
    /// The MQTT connection failed or was closed.
    #[error("MQTT: {0}")]
    Mqtt(String),
    /// The secure element refused or failed (missing key, wrong HUK, token error).
    #[error(transparent)]
    Element(#[from] ironroot_element::ElementError),
    /// Nothing came back in time.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
}
