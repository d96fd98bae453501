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

/// What an operator is told when an operator-API request (admin token or operator certificate)
/// fails: the status class, what is wrong, the request field at fault and what to do, as
/// `{"error":"invalid device id: …","field":"id","hint":"use 1-128 characters of …"}`.
///
/// Operators are authenticated, so naming the field is no oracle. Devices never get one: EST
/// and provisioning routes answer with the uniform [`ApiError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct OperatorError {
    /// The status class (the HTTP status is `kind.status()`).
    pub kind: ApiError,
    /// What is wrong, lowercase, with context.
    pub message: String,
    /// The request field at fault (`id`, `groups`, `ttl_seconds`, `body`, …), if one is.
    pub field: Option<&'static str>,
    /// What to do about it.
    pub hint: Option<&'static str>,
}

/// The rule every identifier follows (device ids, group names, attribute keys).
const IDENTIFIER_HINT: &str = "use 1-128 characters of a-z A-Z 0-9 . _ : -";
/// The rule for free text (owners, attribute values).
const FREE_TEXT_HINT: &str =
    "use at most 1024 characters, without control characters or any of / + # * ? $";

impl OperatorError {
    /// An error about `field` of the request.
    pub fn field(
        kind: ApiError,
        field: &'static str,
        message: impl Into<String>,
        hint: &'static str,
    ) -> Self {
        Self {
            kind,
            message: message.into(),
            field: Some(field),
            hint: Some(hint),
        }
    }

    /// A request body that is not the JSON the route expects; names the field serde names.
    pub fn json(err: &serde_json::Error, example: &'static str) -> Self {
        let text = err.to_string();
        // serde names the field in backquotes: "missing field `id` at line 1 column 2".
        let field = text
            .split('`')
            .nth(1)
            .filter(|_| text.starts_with("missing field") || text.starts_with("unknown field"));
        Self {
            kind: ApiError::BadRequest,
            message: format!("invalid JSON body: {text}"),
            field: Some(field.map_or("body", leak_field)),
            hint: Some(example),
        }
    }

    /// The registry's refusal, translated: which field, and what to do.
    pub fn store(e: &ironroot_store::StoreError) -> Self {
        use ironroot_store::StoreError as S;
        match e {
            S::InvalidInput { what, reason, .. } => {
                let (field, hint) = match *what {
                    "device id" => ("id", IDENTIFIER_HINT),
                    "group name" => ("groups", IDENTIFIER_HINT),
                    "attribute key" => ("attributes", IDENTIFIER_HINT),
                    "attribute value" => ("attributes", FREE_TEXT_HINT),
                    "owner" => ("owner", FREE_TEXT_HINT),
                    _ => ("body", "check the value against the API documentation"),
                };
                Self::field(
                    ApiError::BadRequest,
                    field,
                    format!("invalid {what}: {reason}"),
                    hint,
                )
            }
            S::DuplicateDevice(_) => Self::field(
                ApiError::Conflict,
                "id",
                "a device with this id already exists",
                "choose another id, or look at it with GET /api/v1/devices/{id}",
            ),
            S::DecommissionedDevice(_) => Self::field(
                ApiError::Conflict,
                "id",
                "this id belongs to a decommissioned device and stays retired",
                "re-commission it explicitly with POST /api/v1/devices/{id}/recommission",
            ),
            S::UnknownDevice(_) => Self::field(
                ApiError::NotFound,
                "id",
                "unknown device",
                "register it first with POST /api/v1/devices, or list devices with GET /api/v1/devices",
            ),
            S::UnknownPolicy(_) => Self::field(
                ApiError::NotFound,
                "policy",
                "unknown policy",
                "store it first with `ironroot policy create`",
            ),
            S::InvalidPolicy { .. } => Self::field(
                ApiError::BadRequest,
                "document",
                e.to_string(),
                "check it with `ironroot policy lint --file P.json`",
            ),
            S::InvalidTransition { from, to, .. } => Self::field(
                ApiError::Conflict,
                "state",
                format!("the device is {from} and cannot become {to}"),
                "see the device lifecycle: GET /api/v1/devices/{id} shows its state",
            ),
            _ => ApiError::Internal.into(),
        }
    }
}

/// Field names from serde are the request's own field names, drawn from a fixed set.
fn leak_field(name: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "id",
        "groups",
        "attributes",
        "owner",
        "ttl_seconds",
        "quota",
    ];
    KNOWN
        .iter()
        .find(|k| **k == name)
        .copied()
        .unwrap_or("body")
}

impl From<ApiError> for OperatorError {
    fn from(kind: ApiError) -> Self {
        Self {
            kind,
            message: kind.to_string(),
            field: None,
            hint: None,
        }
    }
}

impl IntoResponse for OperatorError {
    fn into_response(self) -> Response {
        let mut resp = self.kind.into_response();
        let mut body = serde_json::json!({ "error": self.message });
        if let Some(field) = self.field {
            body["field"] = field.into();
        }
        if let Some(hint) = self.hint {
            body["hint"] = hint.into();
        }
        *resp.body_mut() = axum::body::Body::from(body.to_string());
        resp.headers_mut().remove(header::CONTENT_LENGTH);
        resp
    }
}
