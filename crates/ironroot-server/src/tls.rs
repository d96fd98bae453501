//! TLS for the HTTPS listener: the server certificate (issued by ironroot's own intermediate for
//! the configured host names) and the rustls configuration.
//!
//! The version and cipher policy (TLS 1.3, TLS 1.2 ECDHE-AEAD only, no resumption) is
//! ironroot-pki's [`ironroot_pki::hardened_server_config`], shared with the broker. Client certificates are
//! *offered* (optional): devices enrolling with a claim token have none. Accepted issuers are the
//! trusted intermediates (operational and operator certificates) and the factory CA (bootstrap
//! credentials), checked by ironroot-pki's revocation-aware verifier; a certificate from any
//! other CA fails the handshake (and is audited as `https.certificate_rejected`); with
//! resumption off every connection re-checks the client certificate against the live revoked
//! set.

use std::path::Path;
use std::sync::Arc;

use ironroot_audit::{Audit, Event, EventKind, Outcome};
use ironroot_pki::{
    CaSigner as _, ClientIdentity, IssuancePolicy, OnlineCa, RevocationCheckingVerifier,
    RevocationSet, ServerName, SoftwareKey, SubjectKey,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DistinguishedName, ServerConfig};
use time::OffsetDateTime;

use crate::error::StartError;

/// The server's certificate chain and key, kept in memory only: a node hands them to its
/// MQTT listener as values ([`crate::ServerHandle::tls_identity`]), never through files.
pub struct ServerIdentity {
    /// Leaf then issuing intermediate.
    pub chain: Vec<CertificateDer<'static>>,
    /// PKCS#8 key.
    pub key: PrivatePkcs8KeyDer<'static>,
}

impl std::fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// Files earlier versions wrote to `<data_dir>/server/`: the key is removed at start so no
/// stale server key lingers on disk.
const LEGACY_KEY_FILE: &str = "server.key.pem";

/// Issues a fresh server certificate for `hostnames` (at every start, so the names always match
/// the configuration); the key never touches the disk.
pub fn issue_server_identity(
    ca: &OnlineCa,
    hostnames: &[String],
    data_dir: &Path,
) -> Result<ServerIdentity, StartError> {
    let names = hostnames
        .iter()
        .map(|h| ServerName::parse(h))
        .collect::<Result<Vec<_>, _>>()?;
    let key = SoftwareKey::generate()?;
    let subject = SubjectKey::p256(key.public_key())
        .map_err(|e| StartError::Config(format!("server key: {e}")))?;
    let cert = ca.issuing().issue_server(
        &subject,
        &names,
        &IssuancePolicy::default(),
        OffsetDateTime::now_utc(),
    )?;
    let legacy = data_dir.join("server").join(LEGACY_KEY_FILE);
    if legacy.exists() {
        std::fs::remove_file(&legacy).map_err(StartError::io("remove", &legacy))?;
    }
    let key_pem = key.to_pkcs8_pem()?;
    let key_der = pem::parse(key_pem.as_bytes())
        .map_err(|e| StartError::Config(format!("server key encoding: {e}")))?;
    Ok(ServerIdentity {
        chain: vec![cert.der().clone(), ca.issuing().certificate().der().clone()],
        key: PrivatePkcs8KeyDer::from(key_der.contents().to_vec()),
    })
}

/// The HTTPS listener's rustls configuration; rejected client certificates are recorded in
/// `audit` (`https.certificate_rejected`).
pub fn server_config(
    identity: &ServerIdentity,
    ca: &OnlineCa,
    revoked: Arc<RevocationSet>,
    audit: Arc<Audit>,
) -> Result<Arc<ServerConfig>, StartError> {
    let verifier = RevocationCheckingVerifier::new(
        std::slice::from_ref(ca.root()),
        ca.enrollment_issuers(),
        revoked,
    )?;
    let config = ironroot_pki::hardened_server_config(
        identity.chain.clone(),
        PrivateKeyDer::Pkcs8(identity.key.clone_key()),
        Arc::new(OptionalClientCert { verifier, audit }),
        &[b"http/1.1"],
    )?;
    Ok(Arc::new(config))
}

/// Offers client authentication without requiring it; a certificate that *is* presented must
/// pass the full check (chain to a configured issuer, validity, not revoked). A rejection ends
/// the handshake before any handler runs, so it is audited here: a revoked factory credential
/// trying to enroll leaves a trace under the device it claims.
struct OptionalClientCert {
    verifier: Arc<RevocationCheckingVerifier>,
    audit: Arc<Audit>,
}

impl std::fmt::Debug for OptionalClientCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OptionalClientCert")
            .field("verifier", &self.verifier)
            .finish_non_exhaustive()
    }
}

impl OptionalClientCert {
    /// Records the rejection (on the runtime driving the handshake; not awaited, the audit
    /// writer batches it). The names are read without verification: a claim, not an identity.
    fn audit_rejection(&self, end_entity: &CertificateDer<'_>, error: &rustls::Error) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let claimed = ClientIdentity::from_certificate(end_entity).ok();
        let (id, kind, serial) = match &claimed {
            Some(c) => (
                c.id().as_str().to_owned(),
                format!("{:?}", c.kind()).to_lowercase(),
                c.serial().to_string(),
            ),
            None => ("unknown".to_owned(), "unknown".to_owned(), String::new()),
        };
        let event = Event::new(EventKind::HttpsCertificateRejected, "unknown")
            .subject("device", id)
            .outcome(Outcome::Denied)
            .detail("claimed_kind", kind)
            .detail("serial", serial)
            .detail("error", error.to_string());
        let audit = Arc::clone(&self.audit);
        runtime.spawn(async move {
            if let Err(e) = audit.record(event).await {
                log::error!("audit log write failed: {e}");
            }
        });
    }
}

impl ClientCertVerifier for OptionalClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.verifier.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verdict = self
            .verifier
            .verify_client_cert(end_entity, intermediates, now);
        if let Err(e) = &verdict {
            self.audit_rejection(end_entity, e);
        }
        verdict
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.verifier.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.verifier.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.verifier.supported_verify_schemes()
    }
}
