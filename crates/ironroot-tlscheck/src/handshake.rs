//! The one real handshake, with rustls: it records the served certificate chain (the verifier
//! checks the handshake signatures but trusts any chain — the grader judges the chain, it
//! does not authenticate the server; no application data is ever sent) and whether the server
//! asked for a client certificate (in TLS 1.3 the CertificateRequest is encrypted, so a
//! [`ResolvesClientCert`] notes that it was called).

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::ResolvesClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{AlertDescription, DigitallySignedStruct, SignatureScheme};

use crate::error::CheckError;

/// A client certificate chain and key to present when the server asks.
#[derive(Debug)]
pub struct ClientIdentity {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
}

impl ClientIdentity {
    /// Loads a PEM certificate chain and a PEM private key from files.
    pub fn from_pem_files(
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> Result<Self, CheckError> {
        use rustls::pki_types::pem::PemObject as _;
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|source| CheckError::Pem {
                path: cert.to_path_buf(),
                source,
            })?;
        if chain.is_empty() {
            return Err(CheckError::NoCertificate(cert.to_path_buf()));
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(|source| CheckError::Pem {
            path: key.to_path_buf(),
            source,
        })?;
        Ok(Self { chain, key })
    }
}

/// What the real handshake saw.
#[derive(Debug, Clone, Default)]
pub struct Handshake {
    /// The served chain, leaf first (empty if the handshake failed before it).
    pub chain: Vec<CertificateDer<'static>>,
    /// The server sent CertificateRequest.
    pub client_cert_requested: bool,
    /// Without a client certificate the server refused the connection.
    pub client_cert_required: bool,
    /// Negotiated version, suite and group names, when the handshake completed.
    pub negotiated: Option<(String, String, String)>,
    /// Why the handshake failed, if it did (other than a required client certificate).
    pub error: Option<String>,
}

#[derive(Debug)]
struct RecordingVerifier {
    chain: Mutex<Vec<CertificateDer<'static>>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = vec![end_entity.clone().into_owned()];
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        *self.chain.lock().unwrap_or_else(|p| p.into_inner()) = chain;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[derive(Debug)]
struct RecordingResolver {
    asked: AtomicBool,
    key: Option<Arc<CertifiedKey>>,
}

impl ResolvesClientCert for RecordingResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.asked.store(true, Ordering::SeqCst);
        self.key.clone()
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Runs one full handshake against `addr`.
pub fn handshake(
    addr: SocketAddr,
    server_name: &str,
    timeout: Duration,
    identity: Option<&ClientIdentity>,
) -> Result<Handshake, CheckError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let key = identity
        .map(|id| {
            let signing = provider.key_provider.load_private_key(id.key.clone_key())?;
            Ok::<_, CheckError>(Arc::new(CertifiedKey::new(id.chain.clone(), signing)))
        })
        .transpose()?;
    let verifier = Arc::new(RecordingVerifier {
        chain: Mutex::new(Vec::new()),
        algorithms: provider.signature_verification_algorithms,
    });
    let resolver = Arc::new(RecordingResolver {
        asked: AtomicBool::new(false),
        key,
    });
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::clone(&provider) as Arc<CryptoProvider>)
            .with_protocol_versions(rustls::ALL_VERSIONS)?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_client_cert_resolver(resolver.clone());
    let name = ServerName::try_from(server_name.to_owned())
        .map_err(|_| CheckError::Target(server_name.to_owned()))?;
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name)?;
    let mut tcp =
        TcpStream::connect_timeout(&addr, timeout).map_err(|source| CheckError::Connect {
            target: addr.to_string(),
            source,
        })?;
    let _ = tcp.set_read_timeout(Some(timeout));
    let _ = tcp.set_write_timeout(Some(timeout));

    let mut out = Handshake::default();
    let mut result = Ok(());
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut tcp) {
            result = Err(e);
            break;
        }
    }
    if result.is_ok() {
        out.negotiated = Some((
            conn.protocol_version()
                .map(|v| crate::catalog::version_name(u16::from(v)))
                .unwrap_or_default(),
            conn.negotiated_cipher_suite()
                .map(|s| crate::catalog::suite_name(u16::from(s.suite())))
                .unwrap_or_default(),
            conn.negotiated_key_exchange_group()
                .map(|g| crate::catalog::group_name(u16::from(g.name())))
                .unwrap_or_default(),
        ));
        // TLS 1.3: a server that requires a certificate refuses it only after our Finished;
        // wait briefly for that alert.
        let _ = tcp.set_read_timeout(Some(timeout.min(Duration::from_millis(1500))));
        let mut byte = [0u8; 1];
        let mut stream = rustls::Stream::new(&mut conn, &mut tcp);
        if let Err(e) = stream.read(&mut byte)
            && !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            )
        {
            result = Err(e);
        }
    }
    out.chain = verifier
        .chain
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    out.client_cert_requested = resolver.asked.load(Ordering::SeqCst);
    if let Err(e) = result {
        let alert = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .and_then(|e| match e {
                rustls::Error::AlertReceived(a) => Some(*a),
                _ => None,
            });
        let refused_for_cert = matches!(
            alert,
            Some(
                AlertDescription::CertificateRequired
                    | AlertDescription::HandshakeFailure
                    | AlertDescription::BadCertificate
            )
        );
        // Some servers (tokio-rustls accept loops) drop the connection without the alert: a
        // close right after we answered the CertificateRequest with no certificate, before
        // any application data, is a refusal too. A server that merely requests one waits for
        // the client to speak instead.
        let closed = matches!(
            e.kind(),
            std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::BrokenPipe
        );
        if out.client_cert_requested && identity.is_none() && (refused_for_cert || closed) {
            out.client_cert_required = true;
        } else if closed && identity.is_some() && out.client_cert_requested {
            out.error = Some(format!(
                "the server closed the connection right after the handshake: was the client \
                 certificate refused? ({e})"
            ));
        } else if !(e.kind() == std::io::ErrorKind::UnexpectedEof && out.negotiated.is_some()) {
            out.error = Some(e.to_string());
        }
    }
    Ok(out)
}
