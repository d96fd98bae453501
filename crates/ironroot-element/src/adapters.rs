//! The two places a device key is used — TLS client authentication and CSRs — built on
//! [`DeviceSigner::sign`], so no private key bytes exist outside the element.

use std::sync::Arc;

use rustls::SignatureScheme;
use rustls::client::ResolvesClientCert;
use rustls::pki_types::{CertificateDer, SubjectPublicKeyInfoDer};
use rustls::sign::{CertifiedKey, Signer, SigningKey};

use crate::DeviceSigner;

/// A rustls signing key whose every signature is made by the element (ECDSA P-256 SHA-256).
pub fn rustls_signing_key(signer: Arc<dyn DeviceSigner>) -> Arc<dyn SigningKey> {
    Arc::new(ElementSigningKey(signer))
}

/// A rustls client-certificate resolver: the device certificate chain (leaf first) with a key
/// that stays in the element. Pass it to `ClientConfig::builder()...with_client_cert_resolver`.
pub fn client_auth_resolver(
    chain: Vec<CertificateDer<'static>>,
    signer: Arc<dyn DeviceSigner>,
) -> Arc<dyn ResolvesClientCert> {
    Arc::new(ElementClientCert {
        key: Arc::new(CertifiedKey::new(chain, rustls_signing_key(signer))),
    })
}

/// The resolver made by [`client_auth_resolver`].
#[derive(Debug)]
pub struct ElementClientCert {
    key: Arc<CertifiedKey>,
}

impl ResolvesClientCert for ElementClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        sigschemes
            .contains(&SignatureScheme::ECDSA_NISTP256_SHA256)
            .then(|| self.key.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[derive(Debug)]
struct ElementSigningKey(Arc<dyn DeviceSigner>);

impl SigningKey for ElementSigningKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered
            .contains(&SignatureScheme::ECDSA_NISTP256_SHA256)
            .then(|| Box::new(ElementTlsSigner(self.0.clone())) as Box<dyn Signer>)
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(rustls::sign::public_key_to_spki(
            &rustls::pki_types::alg_id::ECDSA_P256,
            self.0.public_key(),
        ))
    }

    fn algorithm(&self) -> rustls::SignatureAlgorithm {
        rustls::SignatureAlgorithm::ECDSA
    }
}

#[derive(Debug)]
struct ElementTlsSigner(Arc<dyn DeviceSigner>);

impl Signer for ElementTlsSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        self.0
            .sign(message)
            .map_err(|e| rustls::Error::General(format!("device key in element: {e}")))
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ECDSA_NISTP256_SHA256
    }
}

/// An element key in the form rcgen signs CSRs with (`CertificateParams::serialize_request`).
#[derive(Debug, Clone)]
pub struct RcgenKey(pub Arc<dyn DeviceSigner>);

impl rcgen::PublicKeyData for RcgenKey {
    fn der_bytes(&self) -> &[u8] {
        self.0.public_key()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for RcgenKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.0.sign(msg).map_err(|_| rcgen::Error::RemoteKeyError)
    }
}
