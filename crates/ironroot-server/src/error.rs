//! Errors of the server, and the uniform HTTP error bodies clients see.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The CA could not be created or unlocked.
    #[error("certificate authority: {0}")]
    Ca(#[from] ironroot_pki::CaError),
    /// The server certificate could not be issued.
    #[error("cannot issue the server certificate: {0}")]
    ServerCert(#[from] ironroot_pki::IssueError),
    /// A key could not be generated or encoded.
    #[error("server key: {0}")]
    Signer(#[from] ironroot_pki::SignerError),
    /// The registry could not be opened.
    #[error("registry: {0}")]
    Store(#[from] ironroot_store::StoreError),
    /// The audit log could not be opened.
    #[error("audit log: {0}")]
    Audit(#[from] ironroot_audit::OpenError),
    /// The identity service could not start.
    #[error("identity service: {0}")]
    Identity(String),
    /// The TLS configuration was refused.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built.
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] ironroot_pki::VerifierError),
    /// A file could not be read or written.
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be replaced atomically (the old one, if any, is unchanged).
    #[error(transparent)]
    Write(#[from] ironroot_fs::WriteError),
    /// The online CA passphrase is missing.
    #[error(
        "the online CA passphrase is missing: set IRONROOT_CA_PASSPHRASE or keep <data-dir>/pki/online-passphrase"
    )]
    NoOnlinePassphrase,
    /// A configured value is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl StartError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<std::path::PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| StartError::Io { op, path, source }
    }
}

/// What a client is told when a request fails. Deliberately coarse: a refused enrollment for an
/// unknown device, a wrong token, a used token and a revoked device all read the same
/// ("unauthorized"), so the API cannot be used to discover which device ids exist. The precise
/// reason goes to the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// Missing, wrong, expired or used credentials; unknown, revoked or decommissioned device.
    #[error("unauthorized")]
    Unauthorized,
    /// Authenticated, but this credential may not do this.
    #[error("forbidden")]
    Forbidden,
    /// The request is malformed (bad base64, bad CSR, CN mismatch, bad JSON).
    #[error("bad request")]
    BadRequest,
    /// The body is larger than the limit.
    #[error("request body too large")]
    TooLarge,
    /// The body did not arrive in time.
    #[error("request timeout")]
    Timeout,
    /// Too many requests from this address or for this device.
    #[error("too many requests")]
    TooManyRequests,
    /// Wrong content type.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// Operator API: no such device (operators are authenticated, so this is not an oracle).
    #[error("not found")]
    NotFound,
    /// Operator API: the device already exists or the state forbids the change.
    #[error("conflict")]
    Conflict,
    /// Something broke on the server side.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// The HTTP status code.
    pub fn status(self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::BadRequest => StatusCode::BAD_REQUEST,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Timeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Conflict => StatusCode::CONFLICT,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.to_string() }).to_string();
        let mut resp = (self.status(), body).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self == ApiError::Unauthorized {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"ironroot\""),
            );
        }
        if matches!(self, ApiError::Timeout | ApiError::TooLarge) {
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}
