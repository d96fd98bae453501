//! The broker's TLS identity and the client-certificate verifier built from the ironroot CA.
//!
//! The verifier is ironroot-pki's [`RevocationCheckingVerifier`]: webpki checks the chain
//! against the CA's root and trusted intermediates, then the leaf serial is looked up in the
//! live [`RevocationSet`] that the MQTT plane keeps in step with the registry.

use std::path::Path;
use std::sync::Arc;

use ironroot_pki::CaSigner as _;
use ironroot_pki::{
    CaCertificate, CaDirectory, IssuancePolicy, OnlineCa, RevocationCheckingVerifier,
    RevocationSet, ServerName, SoftwareKey, SubjectKey, TrustedIssuer,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;

use crate::error::ControlError;

/// The broker's server certificate and key, and the CA it accepts device certificates from.
pub struct TlsIdentity {
    /// Server certificate chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// Server private key.
    pub key: PrivateKeyDer<'static>,
    /// Trust anchors (the ironroot root CA).
    pub roots: Vec<CaCertificate>,
    /// Issuing CAs whose device certificates are accepted (trusted intermediates).
    pub issuers: Vec<TrustedIssuer>,
    /// Serials of revoked CA certificates (intermediates, factory): added to the revoked set.
    pub revoked_ca_serials: Vec<ironroot_pki::Serial>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("chain_len", &self.chain.len())
            .field("issuers", &self.issuers.len())
            .finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// Issues a fresh server certificate for `names` (host names or IP addresses) from the
    /// unlocked online CA; the key lives only in memory.
    pub fn issue(
        online: &OnlineCa,
        names: &[String],
        now: OffsetDateTime,
    ) -> Result<Self, ControlError> {
        let names = names
            .iter()
            .map(|n| ServerName::parse(n))
            .collect::<Result<Vec<_>, _>>()?;
        let key = SoftwareKey::generate().map_err(|e| ControlError::TlsIdentity(e.to_string()))?;
        let cert = online.issuing().issue_server(
            &SubjectKey::p256(key.public_key())
                .map_err(|e| ControlError::TlsIdentity(e.to_string()))?,
            &names,
            &IssuancePolicy::default(),
            now,
        )?;
        let pem = key
            .to_pkcs8_pem()
            .map_err(|e| ControlError::TlsIdentity(e.to_string()))?;
        let key = PrivateKeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| ControlError::TlsIdentity(e.to_string()))?;
        let chain = vec![
            cert.der().clone(),
            online.issuing().certificate().der().clone(),
        ];
        Ok(Self::with_certificate(online, chain, key))
    }

    /// Uses a server certificate already at hand (a node's HTTPS certificate, handed over in
    /// memory) with the unlocked online CA's trust: root, device issuers, revoked CAs.
    pub fn with_certificate(
        online: &OnlineCa,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Self {
        TlsIdentity {
            chain,
            key,
            roots: vec![online.root().clone()],
            issuers: online.device_issuers(),
            revoked_ca_serials: online
                .revoked_cas()
                .iter()
                .map(|r| r.serial.clone())
                .collect(),
        }
    }

    /// Loads a server certificate chain and key from PEM files (`ironroot ca server-cert`) and
    /// the CA from the data directory (public files only: no CA secret is needed).
    pub fn from_files(
        ca: &CaDirectory,
        cert_pem: &Path,
        key_pem: &Path,
        now: OffsetDateTime,
    ) -> Result<Self, ControlError> {
        let bad = |p: &Path, e: &dyn std::fmt::Display| {
            ControlError::TlsIdentity(format!("{}: {e}", p.display()))
        };
        let chain = CertificateDer::pem_file_iter(cert_pem)
            .map_err(|e| bad(cert_pem, &e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(cert_pem, &e))?;
        if chain.is_empty() {
            return Err(bad(cert_pem, &"no certificate in the file"));
        }
        let key = PrivateKeyDer::from_pem_file(key_pem).map_err(|e| bad(key_pem, &e))?;
        Ok(TlsIdentity {
            chain,
            key,
            roots: vec![ca.root_certificate()?],
            issuers: ca.trusted_intermediates(now)?,
            revoked_ca_serials: ca
                .revoked_ca_entries()?
                .into_iter()
                .map(|r| r.serial)
                .collect(),
        })
    }

    /// The verifier checking client certificates against this CA and `revoked`.
    pub(crate) fn verifier(
        &self,
        revoked: Arc<RevocationSet>,
    ) -> Result<Arc<RevocationCheckingVerifier>, ControlError> {
        revoked.revoke_many(self.revoked_ca_serials.iter().cloned());
        Ok(RevocationCheckingVerifier::new(
            &self.roots,
            self.issuers.clone(),
            revoked,
        )?)
    }
}
