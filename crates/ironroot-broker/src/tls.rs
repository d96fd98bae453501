//! The broker listener's rustls server configuration: ironroot-pki's one hardened builder
//! ([`ironroot_pki::hardened_server_config`]: TLS 1.3 and TLS 1.2 ECDHE-AEAD only, aws-lc-rs,
//! no session resumption), with the extra rule that the client-certificate verifier (ironroot-pki's
//! chain + live revoked-set verifier in production) must make the certificate mandatory.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;

/// Why a server configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// The verifier lets clients connect without a certificate.
    #[error("the client certificate verifier must make client certificates mandatory")]
    ClientAuthOptional,
    /// rustls refused the certificate chain or key.
    #[error("invalid server certificate or key: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Builds the broker's server configuration: `chain` and `key` identify the broker,
/// `verifier` decides which client certificates are accepted (and which are revoked).
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    verifier: Arc<dyn ClientCertVerifier>,
) -> Result<ServerConfig, TlsConfigError> {
    if !verifier.client_auth_mandatory() {
        return Err(TlsConfigError::ClientAuthOptional);
    }
    Ok(ironroot_pki::hardened_server_config(
        chain,
        key,
        verifier,
        &[],
    )?)
}

/// Wraps the client-certificate verifier so that every rejected certificate is reported:
/// a [`crate::BrokerEvent::CertificateRejected`] event with the rustls error (`Revoked`,
/// `Expired`, `UnknownIssuer` ...) and the `auth_failures` counter of the CN the certificate
/// *claims* (unverified: a defender must treat it as a claim, not an identity).
#[derive(Debug)]
pub(crate) struct AuditingVerifier {
    pub(crate) inner: Arc<dyn ClientCertVerifier>,
    pub(crate) hub: std::sync::Weak<crate::hub::Hub>,
}

impl ClientCertVerifier for AuditingVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        let result = self
            .inner
            .verify_client_cert(end_entity, intermediates, now);
        if let Err(e) = &result
            && let Some(hub) = self.hub.upgrade()
        {
            let claimed = crate::identity::claimed(end_entity.as_ref()).ok();
            if let Some((cn, _)) = &claimed {
                crate::counters::inc(&hub.counters.get_or_create(cn).auth_failures);
            }
            let (claimed_cn, serial) = claimed.map_or((None, None), |(cn, s)| (Some(cn), Some(s)));
            hub.events.emit(crate::BrokerEvent::CertificateRejected {
                claimed_cn,
                serial,
                error: e.to_string(),
            });
        }
        result
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }
}

/// The parts of the broker's TLS identity, for [`crate::BrokerBuilder::tls_parts`]: the broker
/// builds the configuration with [`server_config`] and audits rejected client certificates.
#[derive(Debug)]
pub struct TlsParts {
    /// Server certificate chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// Server private key.
    pub key: PrivateKeyDer<'static>,
    /// Client-certificate verifier (chain + live revoked set).
    pub verifier: Arc<dyn ClientCertVerifier>,
}
