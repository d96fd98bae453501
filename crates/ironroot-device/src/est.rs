//! An EST client (RFC 7030) for the requests a device makes: `cacerts`, `simpleenroll` with a
//! claim token (HTTP Basic, §3.2.3) or a factory certificate (TLS client auth), and
//! `simplereenroll` with the current operational certificate; and the one JSON call a device
//! makes with that certificate, its boot report.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};
use ironroot_https_client::{Endpoint, HttpsClient, Limits};
use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use zeroize::Zeroizing;

use crate::{BootReport, DeviceError, DeviceTls, TrustAnchor};

/// PKCS#7 signedData (RFC 5652 §5.1).
const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
/// The largest EST response the agent reads (a few certificates fit in far less).
const MAX_RESPONSE: usize = 256 * 1024;
/// How long one EST exchange may take before the agent gives up.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A certificate the server issued, with the server's clock at that moment.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The issued certificate first, then any chain the server added.
    pub chain: Vec<CertificateDer<'static>>,
    /// The server's `Date` (Unix seconds), for [`crate::core::CaClock::sync`].
    pub server_time: Option<i64>,
}

/// An EST client bound to one server (`https://host:port`).
#[derive(Debug, Clone)]
pub struct EstClient {
    endpoint: Endpoint,
    trust: TrustAnchor,
}

impl EstClient {
    /// A client for `url` (`https://host[:port]`, default port 8443) that trusts only `trust`.
    pub fn new(url: &str, trust: TrustAnchor) -> Result<Self, DeviceError> {
        Ok(Self {
            endpoint: Endpoint::parse(url, Some(8443))?,
            trust,
        })
    }

    /// `GET /.well-known/est/cacerts`: the CA certificates the server says to trust.
    pub async fn cacerts(&self) -> Result<Vec<CertificateDer<'static>>, DeviceError> {
        let cfg = self.trust.anonymous_client()?;
        let body = self
            .exchange(cfg, "GET", &est("cacerts"), None, Vec::new())
            .await?;
        parse_certs_only(&body.0)
    }

    /// `POST /.well-known/est/simpleenroll` authenticated by the device id and a one-time claim
    /// token (HTTP Basic). Returns the issued certificate (and any chain the server adds).
    pub async fn enroll_with_claim(
        &self,
        device_id: &str,
        claim_token: &str,
        csr_der: &[u8],
    ) -> Result<Issued, DeviceError> {
        let credentials = Zeroizing::new(format!("{device_id}:{claim_token}"));
        let auth = Zeroizing::new(format!("Basic {}", STANDARD.encode(credentials.as_bytes())));
        let cfg = self.trust.anonymous_client()?;
        let body = self
            .exchange(
                cfg,
                "POST",
                &est("simpleenroll"),
                Some(&auth),
                csr_body(csr_der),
            )
            .await?;
        issued(body)
    }

    /// `POST /.well-known/est/simpleenroll` authenticated by a certificate in the TLS handshake
    /// (the factory certificate).
    pub async fn enroll_with_certificate(
        &self,
        tls: &DeviceTls,
        csr_der: &[u8],
    ) -> Result<Issued, DeviceError> {
        let body = self
            .exchange(
                tls.config(),
                "POST",
                &est("simpleenroll"),
                None,
                csr_body(csr_der),
            )
            .await?;
        issued(body)
    }

    /// `POST /.well-known/est/simplereenroll` authenticated by the current operational
    /// certificate in the TLS handshake (same or new key).
    pub async fn reenroll(&self, tls: &DeviceTls, csr_der: &[u8]) -> Result<Issued, DeviceError> {
        let body = self
            .exchange(
                tls.config(),
                "POST",
                &est("simplereenroll"),
                None,
                csr_body(csr_der),
            )
            .await?;
        issued(body)
    }

    /// `POST /api/v1/devices/{id}/boot-report` authenticated by the operational certificate:
    /// tells the cloud what secure boot decided (running version, measurements, refusals).
    pub async fn report_boot(
        &self,
        tls: &DeviceTls,
        device_id: &str,
        report: &BootReport,
    ) -> Result<(), DeviceError> {
        let body = serde_json::to_vec(report).map_err(|e| DeviceError::BadInput {
            what: "boot report",
            reason: e.to_string(),
        })?;
        self.request(
            tls.config(),
            "POST",
            &format!("/api/v1/devices/{device_id}/boot-report"),
            &[("content-type", "application/json")],
            body,
        )
        .await
        .map(|_| ())
    }

    /// One EST request: base64 PKCS#10 bodies on POST.
    async fn exchange(
        &self,
        cfg: Arc<ClientConfig>,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        body: Vec<u8>,
    ) -> Result<(Vec<u8>, Option<i64>), DeviceError> {
        let mut headers = Vec::new();
        if method == "POST" {
            headers.push(("content-type", "application/pkcs10"));
            headers.push(("content-transfer-encoding", "base64"));
        }
        if let Some(auth) = authorization {
            headers.push(("authorization", auth));
        }
        self.request(cfg, method, path, &headers, body).await
    }

    /// One request on its own TLS connection (ironroot's one HTTPS client, bounded to
    /// [`MAX_RESPONSE`] bytes and [`TIMEOUT`]); returns the body of a 2xx answer.
    async fn request(
        &self,
        cfg: Arc<ClientConfig>,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<(Vec<u8>, Option<i64>), DeviceError> {
        let client = HttpsClient::new(self.endpoint.clone(), cfg)?.with_limits(Limits {
            max_body: MAX_RESPONSE,
            timeout: TIMEOUT,
        });
        let resp = client.request(method, path, headers, &body).await?;
        if !(200..300).contains(&resp.status) {
            let text: String = String::from_utf8_lossy(&resp.body)
                .chars()
                .take(200)
                .collect();
            return Err(DeviceError::Refused {
                status: resp.status,
                body: text.trim().to_string(),
            });
        }
        Ok((resp.body, resp.date))
    }
}

/// The path of an EST operation.
fn est(operation: &str) -> String {
    format!("/.well-known/est/{operation}")
}

fn issued((body, server_time): (Vec<u8>, Option<i64>)) -> Result<Issued, DeviceError> {
    Ok(Issued {
        chain: parse_certs_only(&body)?,
        server_time,
    })
}

/// The base64 body of an EST enrollment request.
fn csr_body(csr_der: &[u8]) -> Vec<u8> {
    STANDARD.encode(csr_der).into_bytes()
}

/// Decodes an EST `application/pkcs7-mime; smime-type=certs-only` body: base64 (line breaks
/// allowed) of a CMS SignedData with no signers, carrying certificates.
pub fn parse_certs_only(body: &[u8]) -> Result<Vec<CertificateDer<'static>>, DeviceError> {
    let bad = |why: String| DeviceError::BadResponse(why);
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
        assert_eq!(c.endpoint.authority(), "127.0.0.1:9443");
        let c = EstClient::new("https://localhost", anchor.clone()).unwrap();
        assert_eq!(c.endpoint.authority(), "localhost:8443");
        assert!(EstClient::new("http://localhost", anchor.clone()).is_err());
        assert!(EstClient::new("https://:1", anchor.clone()).is_err());
        assert!(EstClient::new("https://h:99999", anchor).is_err());
    }

    #[test]
    fn garbage_responses_are_typed_errors() {
        for body in [&b"%%%"[..], b"", b"AAAA", b"MAA="] {
            assert!(matches!(
                parse_certs_only(body),
                Err(DeviceError::BadResponse(_))
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
            prop_assert!(raw.is_ok() || matches!(raw, Err(DeviceError::BadResponse(_))));
            let encoded = STANDARD.encode(&data);
            let decoded = parse_certs_only(encoded.as_bytes());
            prop_assert!(decoded.is_ok() || matches!(decoded, Err(DeviceError::BadResponse(_))));
        }
    }
}
