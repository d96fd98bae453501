//! The operator CLI's and the load generator's HTTPS client: ironroot's one HTTPS client
//! ([`ironroot_https_client`]: one request per connection, bounded response, timeout) with a
//! TLS configuration that trusts only ironroot's CA chain and optionally presents a client
//! certificate.

use std::sync::Arc;

use ironroot_https_client::{Endpoint, HttpsClient};
use rustls::ClientConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why a request failed: the shared client's error (URL, TLS setup, network, bounds).
pub use ironroot_https_client::HttpsError as ClientError;
/// A response: status and body.
pub use ironroot_https_client::Response;

/// A server to talk to.
#[derive(Clone, Debug)]
pub struct Client {
    inner: HttpsClient,
}

/// Parses PEM certificates.
pub fn certs_from_pem(pem_text: &[u8]) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let blocks = pem::parse_many(pem_text).map_err(|e| ClientError::Config(e.to_string()))?;
    Ok(blocks
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| CertificateDer::from(b.into_contents()))
        .collect())
}

/// Parses a PKCS#8 or SEC1 private key PEM.
pub fn key_from_pem(pem_text: &[u8]) -> Result<PrivateKeyDer<'static>, ClientError> {
    let blocks = pem::parse_many(pem_text).map_err(|e| ClientError::Config(e.to_string()))?;
    for b in blocks {
        match b.tag() {
            "PRIVATE KEY" => return Ok(PrivateKeyDer::Pkcs8(b.into_contents().into())),
            "EC PRIVATE KEY" => return Ok(PrivateKeyDer::Sec1(b.into_contents().into())),
            _ => {}
        }
    }
    Err(ClientError::Config("no private key in PEM".into()))
}

/// The TLS configuration: only the CA certificates in `ca_pem`, no session resumption.
fn tls_config(
    ca_pem: &[u8],
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<Arc<ClientConfig>, ClientError> {
    let tls = |e: rustls::Error| ClientError::Config(e.to_string());
    let mut roots = rustls::RootCertStore::empty();
    for c in certs_from_pem(ca_pem)? {
        roots.add(c).map_err(tls)?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls)?
        .with_root_certificates(roots);
    let mut config = match identity {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(tls)?,
        None => builder.with_no_client_auth(),
    };
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

impl Client {
    /// A client for `url` (`https://HOST:PORT`) trusting the CA certificates in `ca_pem`
    /// (e.g. `pki/chain.pem`), presenting `identity` (certificate chain, key) when given.
    pub fn new(
        url: &str,
        ca_pem: &[u8],
        identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    ) -> Result<Self, ClientError> {
        let endpoint = Endpoint::parse(url, None)?;
        Ok(Self {
            inner: HttpsClient::new(endpoint, tls_config(ca_pem, identity)?)?,
        })
    }

    /// The same client accepting response bodies up to `bytes` (default 16 MiB): for answers
    /// that grow with the fleet, such as an incident report with a proof per entry.
    pub fn with_max_body(self, bytes: usize) -> Self {
        let mut limits = self.inner.limits();
        limits.max_body = bytes;
        Self {
            inner: self.inner.with_limits(limits),
        }
    }

    /// The same server with another client identity (new TLS configuration).
    pub fn with_identity(
        &self,
        ca_pem: &[u8],
        identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    ) -> Result<Self, ClientError> {
        let inner = HttpsClient::new(self.inner.endpoint().clone(), tls_config(ca_pem, identity)?)?
            .with_limits(self.inner.limits());
        Ok(Self { inner })
    }

    /// Sends one request on a new connection and reads the whole response (at most 16 MiB,
    /// within 60 s: the shared client's default bounds).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, ClientError> {
        self.inner.request(method, path, headers, body).await
    }
}
