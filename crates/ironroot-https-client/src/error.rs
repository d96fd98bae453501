//! The client's error type.

use std::io;
use std::time::Duration;

/// Why a request failed. Messages name the server and never contain request headers or
/// bodies (a claim token or a bearer token may be in them).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpsError {
    /// The URL is not `https://HOST[:PORT][/]`.
    #[error("invalid server URL {url:?}: {reason} (expected https://HOST:PORT)")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The TLS client configuration (trust anchors, client credential) could not be built.
    #[error("TLS setup: {0}")]
    Config(String),
    /// The TCP connection could not be made.
    #[error("cannot reach the server {addr}: {source}")]
    Connect {
        /// `host:port` the client tried.
        addr: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The TLS handshake failed (untrusted server certificate, refused client certificate, ...).
    #[error("TLS handshake with {addr}: {source}")]
    Handshake {
        /// `host:port` of the server.
        addr: String,
        /// The underlying error (wrapping the rustls error).
        source: io::Error,
    },
    /// Sending the request or reading the response failed.
    #[error("exchange with {addr}: {source}")]
    Io {
        /// `host:port` of the server.
        addr: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The whole exchange took longer than the configured timeout.
    #[error("no complete answer from {addr} within {after:?}")]
    Timeout {
        /// `host:port` of the server.
        addr: String,
        /// The timeout that expired.
        after: Duration,
    },
    /// The response is not a well-formed HTTP/1.1 response.
    #[error("malformed HTTP response: {0}")]
    Malformed(&'static str),
    /// The response body is longer than the client accepts; reading stopped at the bound.
    #[error("response body exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The bound on the body, in bytes.
        limit: usize,
    },
}

impl HttpsError {
    /// Whether the server could not be reached at all (nothing was sent): callers that may
    /// fall back to local work (the CLI's implicit server) check this.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, HttpsError::Connect { .. })
    }
}
