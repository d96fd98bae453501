//! A rustls client-certificate verifier that adds live revocation to webpki's chain check.
//!
//! ```text
//!  ClientHello … Certificate(leaf, [client intermediates: ignored])
//!        │
//!        ▼
//!  RevocationCheckingVerifier::verify_client_cert
//!        ├─ issuers = configured CAs still inside their trust window, not revoked   (ArcSwap load)
//!        ├─ WebPkiClientVerifier(root anchors).verify(leaf, issuers)   chain, validity, EKU clientAuth
//!        └─ leaf serial ∈ RevocationSet ?  ──yes──▶ CertificateError::Revoked          (ArcSwap load + hash probe)
//! ```
//!
//! The intermediates come from the server's configuration, not from the client: a listener
//! accepts exactly the issuing CAs it was configured with (the broker: intermediates; the
//! enrollment endpoint: intermediates and the factory CA), an intermediate removed by
//! rotation or revocation stops working at once even for clients that still send it, and
//! devices need not send a chain at all. CRLs are never consulted in the handshake: webpki
//! re-verifies CRL signatures on each handshake and slows down linearly with their size.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme,
};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::ca::CaCertificate;
use crate::revocation::RevocationSet;
use crate::serial::Serial;

/// An issuing CA a listener accepts, optionally only until a deadline (the end of the overlap
/// after a rotation).
#[derive(Debug, Clone)]
pub struct TrustedIssuer {
    /// The issuing CA's certificate (signed by a root given to the verifier).
    pub certificate: CaCertificate,
    /// After this instant the CA is no longer accepted, even if its certificate is still valid.
    pub trusted_until: Option<OffsetDateTime>,
}

#[derive(Debug)]
struct ActiveIssuer {
    der: CertificateDer<'static>,
    serial: Serial,
    trusted_until: Option<u64>,
}

/// A [`ClientCertVerifier`] that delegates chain validation to rustls' webpki verifier (with
/// the aws-lc-rs provider) and then rejects revoked end-entity certificates using the live
/// [`RevocationSet`]. Issuing CAs whose serial is in the set are dropped from the chain
/// candidates, so revoking an intermediate rejects everything it issued.
#[derive(Debug)]
pub struct RevocationCheckingVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    issuers: ArcSwap<Vec<ActiveIssuer>>,
    revoked: Arc<RevocationSet>,
}

/// Why the verifier could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifierError {
    /// A root certificate was rejected by webpki as a trust anchor.
    #[error("root certificate '{name}' cannot be used as a trust anchor: {source}")]
    BadRoot {
        /// The root's CN.
        name: String,
        /// rustls' reason.
        #[source]
        source: rustls::Error,
    },
    /// The webpki verifier could not be built (e.g. no roots).
    #[error("cannot build the client certificate verifier: {0}")]
    Build(#[from] rustls::server::VerifierBuilderError),
}

impl RevocationCheckingVerifier {
    /// Builds a verifier trusting `roots` as anchors and accepting leaves issued by `issuers`.
    pub fn new(
        roots: &[CaCertificate],
        issuers: Vec<TrustedIssuer>,
        revoked: Arc<RevocationSet>,
    ) -> Result<Arc<Self>, VerifierError> {
        let mut store = RootCertStore::empty();
        for root in roots {
            store
                .add(root.der().clone())
                .map_err(|source| VerifierError::BadRoot {
                    name: root.common_name().to_owned(),
                    source,
                })?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let inner =
            WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider).build()?;
        Ok(Arc::new(Self {
            inner,
            issuers: ArcSwap::from_pointee(active(issuers)),
            revoked,
        }))
    }

    /// Replaces the accepted issuing CAs (after a rotation) without rebuilding TLS configs.
    pub fn set_issuers(&self, issuers: Vec<TrustedIssuer>) {
        self.issuers.store(Arc::new(active(issuers)));
    }

    /// The live revocation set this verifier consults.
    pub fn revocations(&self) -> &Arc<RevocationSet> {
        &self.revoked
    }

    /// The crypto provider the verifier was built with (for building matching `ServerConfig`s).
    pub fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::aws_lc_rs::default_provider())
    }
}

fn active(issuers: Vec<TrustedIssuer>) -> Vec<ActiveIssuer> {
    issuers
        .into_iter()
        .map(|i| ActiveIssuer {
            der: i.certificate.der().clone(),
            serial: i.certificate.serial().clone(),
            trusted_until: i.trusted_until.map(|t| t.unix_timestamp().max(0) as u64),
        })
        .collect()
}

impl ClientCertVerifier for RevocationCheckingVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _client_intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let issuers = self.issuers.load();
        let candidates: Vec<CertificateDer<'_>> = issuers
            .iter()
            .filter(|i| i.trusted_until.is_none_or(|t| now.as_secs() < t))
            .filter(|i| !self.revoked.is_revoked(&i.serial))
            .map(|i| i.der.clone())
            .collect();
        self.inner
            .verify_client_cert(end_entity, &candidates, now)?;

        let (_, leaf) = X509Certificate::from_der(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let serial = Serial::from_be_bytes(leaf.raw_serial())
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if self.revoked.is_revoked(&serial) {
            return Err(rustls::Error::InvalidCertificate(CertificateError::Revoked));
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
