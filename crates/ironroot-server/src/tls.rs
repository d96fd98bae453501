//! TLS for the HTTPS listener: the server certificate (issued by ironroot's own intermediate for
//! the configured host names) and the rustls configuration.
//!
//! TLS 1.3 and 1.2 only, aws-lc-rs provider: rustls has no TLS 1.2 suite without ECDHE or
//! without AEAD, so "1.2 with ECDHE-AEAD only" holds by construction. Client certificates are
//! *offered* (optional): devices enrolling with a claim token have none. Accepted issuers are the
//! trusted intermediates (operational and operator certificates) and the factory CA (bootstrap
//! credentials), checked by ironroot-pki's revocation-aware verifier; a certificate from any
//! other CA fails the handshake. Session resumption is off so every connection re-checks the
//! client certificate against the live revoked set.

use std::path::Path;
use std::sync::Arc;

use ironroot_pki::{
    CaSigner as _, IssuancePolicy, OnlineCa, RevocationCheckingVerifier, RevocationSet, ServerName,
    SoftwareKey, SubjectKey,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DistinguishedName, ServerConfig};
use time::OffsetDateTime;

use crate::error::StartError;

/// The server's certificate chain and key, also written to `<data-dir>/server/` (`server.crt.pem`
/// = leaf + intermediate, `server.key.pem` mode 0600) so the MQTT listener can use the same ones.
#[derive(Debug)]
pub struct ServerIdentity {
    /// Leaf then issuing intermediate.
    pub chain: Vec<CertificateDer<'static>>,
    /// PKCS#8 key.
    pub key: PrivatePkcs8KeyDer<'static>,
    /// Where the PEM files were written.
    pub cert_path: std::path::PathBuf,
    /// Where the key was written.
    pub key_path: std::path::PathBuf,
}

/// Issues a fresh server certificate for `hostnames` (at every start, so the names always match
/// the configuration) and writes it to `<data_dir>/server/`.
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
    let dir = data_dir.join("server");
    std::fs::create_dir_all(&dir).map_err(StartError::io("create", &dir))?;
    let cert_path = dir.join("server.crt.pem");
    let key_path = dir.join("server.key.pem");
    let chain_pem = format!("{}{}", cert.pem(), ca.issuing().certificate().pem());
    ironroot_fs::write_atomically(&cert_path, chain_pem.as_bytes())?;
    let key_pem = key.to_pkcs8_pem()?;
    ironroot_fs::write_secret_atomically(&key_path, key_pem.as_bytes())?;
    let key_der = pem::parse(key_pem.as_bytes())
        .map_err(|e| StartError::Config(format!("server key encoding: {e}")))?;
    Ok(ServerIdentity {
        chain: vec![cert.der().clone(), ca.issuing().certificate().der().clone()],
        key: PrivatePkcs8KeyDer::from(key_der.contents().to_vec()),
        cert_path,
        key_path,
    })
}

/// The HTTPS listener's rustls configuration.
pub fn server_config(
    identity: &ServerIdentity,
    ca: &OnlineCa,
    revoked: Arc<RevocationSet>,
) -> Result<Arc<ServerConfig>, StartError> {
    let verifier = RevocationCheckingVerifier::new(
        std::slice::from_ref(ca.root()),
        ca.enrollment_issuers(),
        revoked,
    )?;
    let provider = RevocationCheckingVerifier::provider();
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(Arc::new(OptionalClientCert(verifier)))
        .with_single_cert(
            identity.chain.clone(),
            PrivateKeyDer::Pkcs8(identity.key.clone_key()),
        )?;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Offers client authentication without requiring it; a certificate that *is* presented must
/// pass the full check (chain to a configured issuer, validity, not revoked).
#[derive(Debug)]
struct OptionalClientCert(Arc<RevocationCheckingVerifier>);

impl ClientCertVerifier for OptionalClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.0.verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
