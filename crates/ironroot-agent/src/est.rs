//! An EST client (RFC 7030) for the requests a device makes: `cacerts`, `simpleenroll` with a
//! claim token (HTTP Basic, §3.2.3) or a factory certificate (TLS client auth), and
//! `simplereenroll` with the current operational certificate.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use zeroize::Zeroizing;

use crate::{AgentError, DeviceTls, TrustAnchor};

/// PKCS#7 signedData (RFC 5652 §5.1).
const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
/// The largest EST response the agent reads (a few certificates fit in far less).
const MAX_RESPONSE: usize = 256 * 1024;
/// How long one EST exchange may take before the agent gives up.
const TIMEOUT: Duration = Duration::from_secs(30);

/// An EST client bound to one server (`https://host:port`).
#[derive(Debug, Clone)]
pub struct EstClient {
    host: String,
    port: u16,
    trust: TrustAnchor,
}

impl EstClient {
    /// A client for `url` (`https://host[:port]`, default port 8443) that trusts only `trust`.
    pub fn new(url: &str, trust: TrustAnchor) -> Result<Self, AgentError> {
        let bad = |reason: &str| AgentError::BadInput {
            what: "server URL",
            reason: reason.to_string(),
        };
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| bad("must start with https://"))?;
        let authority = rest.split('/').next().unwrap_or_default();
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h.trim_start_matches('[').trim_end_matches(']'),
                p.parse::<u16>().map_err(|_| bad("bad port"))?,
            ),
            _ => (authority, 8443),
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(Self {
            host: host.to_string(),
            port,
            trust,
        })
    }

    /// `GET /.well-known/est/cacerts`: the CA certificates the server says to trust.
    pub async fn cacerts(&self) -> Result<Vec<CertificateDer<'static>>, AgentError> {
        let cfg = self.trust.anonymous_client()?;
        let body = self
            .exchange(cfg, Method::GET, "cacerts", None, Vec::new())
            .await?;
        parse_certs_only(&body)
    }

    /// `POST /.well-known/est/simpleenroll` authenticated by the device id and a one-time claim
    /// token (HTTP Basic). Returns the issued certificate (and any chain the server adds).
    pub async fn enroll_with_claim(
        &self,
        device_id: &str,
        claim_token: &str,
        csr_der: &[u8],
    ) -> Result<Vec<CertificateDer<'static>>, AgentError> {
        let credentials = Zeroizing::new(format!("{device_id}:{claim_token}"));
        let auth = Zeroizing::new(format!("Basic {}", STANDARD.encode(credentials.as_bytes())));
        let cfg = self.trust.anonymous_client()?;
        let body = self
            .exchange(
                cfg,
                Method::POST,
                "simpleenroll",
                Some(&auth),
                csr_body(csr_der),
            )
            .await?;
        parse_certs_only(&body)
    }

    /// `POST /.well-known/est/simpleenroll` authenticated by a certificate in the TLS handshake
    /// (the factory certificate).
    pub async fn enroll_with_certificate(
        &self,
        tls: &DeviceTls,
        csr_der: &[u8],
    ) -> Result<Vec<CertificateDer<'static>>, AgentError> {
        let body = self
            .exchange(
                tls.config(),
                Method::POST,
                "simpleenroll",
                None,
                csr_body(csr_der),
            )
            .await?;
        parse_certs_only(&body)
    }

    /// `POST /.well-known/est/simplereenroll` authenticated by the current operational
    /// certificate in the TLS handshake (same or new key).
    pub async fn reenroll(
        &self,
        tls: &DeviceTls,
        csr_der: &[u8],
    ) -> Result<Vec<CertificateDer<'static>>, AgentError> {
        let body = self
            .exchange(
                tls.config(),
                Method::POST,
                "simplereenroll",
                None,
                csr_body(csr_der),
            )
            .await?;
        parse_certs_only(&body)
    }

    /// One request on its own TLS connection; returns the body of a 200 answer.
    async fn exchange(
        &self,
        cfg: Arc<ClientConfig>,
        method: Method,
        operation: &str,
        authorization: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, AgentError> {
        tokio::time::timeout(
            TIMEOUT,
            self.exchange_inner(cfg, method, operation, authorization, body),
        )
        .await
        .map_err(|_| AgentError::Timeout("the EST server"))?
    }

    async fn exchange_inner(
        &self,
        cfg: Arc<ClientConfig>,
        method: Method,
        operation: &str,
        authorization: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, AgentError> {
        let addr = format!("{}:{}", self.host, self.port);
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|source| AgentError::Connect {
                addr: addr.clone(),
                source,
            })?;
        let name = ServerName::try_from(self.host.clone()).map_err(|e| AgentError::BadInput {
            what: "server host name",
            reason: e.to_string(),
        })?;
        let tls = TlsConnector::from(cfg)
            .connect(name, tcp)
            .await
            .map_err(|e| AgentError::Tls(format!("handshake with {addr}: {e}")))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| AgentError::Http(e.to_string()))?;
        let driver = tokio::spawn(conn);

        let mut req = Request::builder()
            .method(method.clone())
            .uri(format!("/.well-known/est/{operation}"))
            .header(hyper::header::HOST, &addr);
        if method == Method::POST {
            req = req
                .header(hyper::header::CONTENT_TYPE, "application/pkcs10")
                .header("content-transfer-encoding", "base64");
        }
        if let Some(auth) = authorization {
            req = req.header(hyper::header::AUTHORIZATION, auth);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| AgentError::Http(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| AgentError::Http(e.to_string()))?;
        let status = resp.status().as_u16();
        let bytes = Limited::new(resp.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| AgentError::Http(e.to_string()))?
            .to_bytes();
        driver.abort();
        if status != 200 {
            let text: String = String::from_utf8_lossy(&bytes).chars().take(200).collect();
            return Err(AgentError::Refused {
                status,
                body: text.trim().to_string(),
            });
        }
        Ok(bytes.to_vec())
    }
}

/// The base64 body of an EST enrollment request.
fn csr_body(csr_der: &[u8]) -> Vec<u8> {
    STANDARD.encode(csr_der).into_bytes()
}

/// Decodes an EST `application/pkcs7-mime; smime-type=certs-only` body: base64 (line breaks
/// allowed) of a CMS SignedData with no signers, carrying certificates.
pub fn parse_certs_only(body: &[u8]) -> Result<Vec<CertificateDer<'static>>, AgentError> {
    let bad = |why: String| AgentError::BadResponse(why);
    let compact: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let der_bytes = STANDARD
        .decode(&compact)
        .map_err(|e| bad(format!("body is not base64: {e}")))?;
    let info = cms::content_info::ContentInfo::from_der(&der_bytes)
        .map_err(|e| bad(format!("not a CMS ContentInfo: {e}")))?;
    if info.content_type != ID_SIGNED_DATA {
        return Err(bad(format!(
            "content type {} is not signedData",
            info.content_type
        )));
    }
    let signed: cms::signed_data::SignedData = info
        .content
        .decode_as()
        .map_err(|e| bad(format!("not a SignedData: {e}")))?;
    let mut out = Vec::new();
    for choice in signed.certificates.iter().flat_map(|set| set.0.iter()) {
        if let cms::cert::CertificateChoices::Certificate(cert) = choice {
            let der = cert
                .to_der()
                .map_err(|e| bad(format!("certificate does not re-encode: {e}")))?;
            out.push(CertificateDer::from(der));
        }
    }
    if out.is_empty() {
        return Err(bad("no certificate in the response".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parsing() {
        let anchor = test_anchor();
        let c = EstClient::new("https://127.0.0.1:9443/", anchor.clone()).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 9443));
        let c = EstClient::new("https://localhost", anchor.clone()).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("localhost", 8443));
        assert!(EstClient::new("http://localhost", anchor.clone()).is_err());
        assert!(EstClient::new("https://:1", anchor.clone()).is_err());
        assert!(EstClient::new("https://h:99999", anchor).is_err());
    }

    #[test]
    fn garbage_responses_are_typed_errors() {
        for body in [&b"%%%"[..], b"", b"AAAA", b"MAA="] {
            assert!(matches!(
                parse_certs_only(body),
                Err(AgentError::BadResponse(_))
            ));
        }
    }

    fn test_anchor() -> TrustAnchor {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["ca".into()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        TrustAnchor::from_pem(cert.pem().as_bytes()).unwrap()
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Arbitrary bytes, raw or base64-encoded, never panic the certs-only decoder.
        #[test]
        fn any_body_is_certs_or_a_typed_error(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let raw = parse_certs_only(&data);
            prop_assert!(raw.is_ok() || matches!(raw, Err(AgentError::BadResponse(_))));
            let encoded = STANDARD.encode(&data);
            let decoded = parse_certs_only(encoded.as_bytes());
            prop_assert!(decoded.is_ok() || matches!(decoded, Err(AgentError::BadResponse(_))));
        }
    }
}
