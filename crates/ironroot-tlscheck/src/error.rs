//! Errors of the TLS checker.

/// The server's bytes could not be parsed as a first flight.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// A length field points past the data.
    #[error("malformed server flight: bad {0} length")]
    BadLength(&'static str),
    /// A message or record the flight cannot contain here.
    #[error("malformed server flight: unexpected {0}")]
    Unexpected(&'static str),
    /// More bytes than any first flight needs.
    #[error("server flight longer than {} bytes", crate::server::MAX_FLIGHT)]
    TooLong,
}

/// Why a check could not run at all (as opposed to a check that ran and failed).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// The host name did not resolve.
    #[error("cannot resolve {target} (check the host name)")]
    Resolve {
        /// HOST:PORT as given.
        target: String,
        /// The resolver's error.
        source: std::io::Error,
    },
    /// No address of the host accepted a TCP connection.
    #[error("cannot connect to {target} (is the server running and the port right?)")]
    Connect {
        /// HOST:PORT as given.
        target: String,
        /// The last connection error.
        source: std::io::Error,
    },
    /// The target is not HOST:PORT.
    #[error("invalid target {0:?}: expected HOST:PORT, e.g. 127.0.0.1:8443")]
    Target(String),
    /// A PEM file of `--cert`/`--key` could not be read or parsed.
    #[error("cannot read {path}: {source}")]
    Pem {
        /// The file.
        path: std::path::PathBuf,
        /// What was wrong.
        source: rustls::pki_types::pem::Error,
    },
    /// The certificate file holds no PEM certificate.
    #[error("{0}: no PEM certificate found (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificate(std::path::PathBuf),
    /// rustls refused the client key or the client configuration.
    #[error("client certificate or key not usable: {0}")]
    Rustls(#[from] rustls::Error),
}
