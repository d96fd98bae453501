//! rustls client configurations that trust only the ironroot root.

use std::sync::Arc;

use rustls::ClientConfig;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use ironroot_element::{DeviceSigner, client_auth_resolver};

use crate::DeviceError;

/// The root certificate(s) the agent trusts: the ironroot root CA, from `ironroot ca chain`.
#[derive(Clone, Debug)]
pub struct TrustAnchor {
    roots: Arc<RootCertStore>,
}

impl TrustAnchor {
    /// Reads every certificate of a PEM bundle (e.g. `ironroot ca chain` output) as a trust
    /// anchor. Intermediates in the bundle are harmless: the server sends its own chain.
    pub fn from_pem(pem: &[u8]) -> Result<Self, DeviceError> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| DeviceError::BadInput {
                what: "CA chain",
                reason: e.to_string(),
            })?;
            roots.add(cert).map_err(|e| DeviceError::BadInput {
                what: "CA chain",
                reason: e.to_string(),
            })?;
        }
        if roots.is_empty() {
            return Err(DeviceError::BadInput {
                what: "CA chain",
                reason: "no certificate in it".into(),
            });
        }
        Ok(Self {
            roots: Arc::new(roots),
        })
    }

    /// The trust anchors, for verifying signed commands ([`crate::command::CommandVerifier`]).
    pub fn anchors(&self) -> Vec<rustls::pki_types::TrustAnchor<'static>> {
        self.roots.roots.clone()
    }

    /// A client configuration without a client certificate (EST with a claim token).
    pub fn anonymous_client(&self) -> Result<Arc<ClientConfig>, DeviceError> {
        let cfg = builder()?
            .with_root_certificates(self.roots.clone())
            .with_no_client_auth();
        Ok(Arc::new(cfg))
    }
}

/// The device's TLS identity: its certificate (and chain) and key, plus the trust anchor.
#[derive(Debug)]
pub struct DeviceTls {
    config: Arc<ClientConfig>,
}

impl DeviceTls {
    /// Builds a mutual-TLS client configuration from the device certificate chain (leaf first),
    /// the key in its element (every handshake signature is made there) and the trust anchor.
    pub fn new(
        trust: &TrustAnchor,
        chain: Vec<CertificateDer<'static>>,
        key: Arc<dyn DeviceSigner>,
    ) -> Result<Self, DeviceError> {
        if chain.is_empty() {
            return Err(DeviceError::BadInput {
                what: "device certificate chain",
                reason: "empty".into(),
            });
        }
        let cfg = builder()?
            .with_root_certificates(trust.roots.clone())
            .with_client_cert_resolver(client_auth_resolver(chain, key));
        Ok(Self {
            config: Arc::new(cfg),
        })
    }

    /// The rustls configuration, shared by EST re-enrollment and MQTT.
    pub fn config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }
}

fn builder() -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>, DeviceError> {
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| DeviceError::Tls(e.to_string()))
}

/// Certificates as a PEM bundle (how a device saves its chain, and what `TrustAnchor::from_pem`
/// and openssl read).
pub fn certificates_pem(chain: &[CertificateDer<'_>]) -> String {
    use base64::Engine as _;
    let mut out = String::new();
    for c in chain {
        let b64 = base64::engine::general_purpose::STANDARD.encode(c.as_ref());
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(line).unwrap_or_default());
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}
