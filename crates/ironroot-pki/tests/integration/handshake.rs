//! Real rustls handshakes over real TCP sockets against the revocation-checking verifier,
//! with revocations applied while the server keeps running.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::thread::JoinHandle;

use ironroot_pki::{
    CaSigner, ClientIdentity, DeviceId, IssuancePolicy, IssuedCertificate, PeerKind,
    RevocationCheckingVerifier, RevocationSet, ServerName, SoftwareKey, SubjectKey, TrustedIssuer,
    verify_csr,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{
    ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection, StreamOwned,
};
use time::OffsetDateTime;

use crate::common::*;

type Outcome = Result<ClientIdentity, String>;

/// A TLS server on 127.0.0.1 that handles `n` connections and reports each handshake outcome.
struct TestServer {
    port: u16,
    outcomes: Receiver<Outcome>,
    thread: JoinHandle<()>,
}

fn key_der(pem_text: &[u8]) -> PrivateKeyDer<'static> {
    let block = pem::parse(pem_text).unwrap();
    assert_eq!(block.tag(), "PRIVATE KEY");
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(block.into_contents()))
}

fn server_config(ca: &TestCa, verifier: Arc<RevocationCheckingVerifier>) -> Arc<ServerConfig> {
    let key = SoftwareKey::generate().unwrap();
    let cert = ca
        .online
        .issuing()
        .issue_server(
            &SubjectKey::p256(key.public_key()).unwrap(),
            &[ServerName::parse("localhost").unwrap()],
            &IssuancePolicy::default(),
            OffsetDateTime::now_utc(),
        )
        .unwrap();
    let chain = vec![
        cert.der().clone(),
        ca.online.issuing().certificate().der().clone(),
    ];
    let config = ServerConfig::builder_with_provider(RevocationCheckingVerifier::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key_der(key.to_pkcs8_pem().unwrap().as_bytes()))
        .unwrap();
    Arc::new(config)
}

impl TestServer {
    fn start(config: Arc<ServerConfig>, n: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, outcomes) = channel();
        let thread = std::thread::spawn(move || {
            for _ in 0..n {
                let (sock, _) = listener.accept().unwrap();
                let mut tls =
                    StreamOwned::new(ServerConnection::new(config.clone()).unwrap(), sock);
                let mut outcome = Err("no handshake".to_owned());
                while tls.conn.is_handshaking() {
                    if let Err(e) = tls.conn.complete_io(&mut tls.sock) {
                        outcome = Err(e.to_string());
                        break;
                    }
                }
                if !tls.conn.is_handshaking() {
                    let certs = tls.conn.peer_certificates().unwrap();
                    outcome =
                        ClientIdentity::from_certificate(&certs[0]).map_err(|e| e.to_string());
                    let _ = tls.write_all(b"welcome");
                    tls.conn.send_close_notify();
                    let _ = tls.conn.complete_io(&mut tls.sock);
                }
                tx.send(outcome).unwrap();
            }
        });
        Self {
            port,
            outcomes,
            thread,
        }
    }

    fn outcome(&self) -> Outcome {
        self.outcomes
            .recv_timeout(std::time::Duration::from_secs(10))
            .unwrap()
    }
}

/// Connects with `cert` (+ optional extra chain) and key; returns what the server sent.
fn connect(
    port: u16,
    root: &CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Vec<u8>, String> {
    let mut roots = RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let config = ClientConfig::builder_with_provider(RevocationCheckingVerifier::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let conn = ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap();
    let mut tls = StreamOwned::new(conn, sock);
    let mut buf = Vec::new();
    tls.read_to_end(&mut buf).map_err(|e| e.to_string())?;
    Ok(buf)
}

fn device(ca: &TestCa, id: &str) -> (IssuedCertificate, PrivateKeyDer<'static>) {
    let (cert, key_path) = ca.issue_device(id);
    (cert, key_der(&std::fs::read(key_path).unwrap()))
}

fn key_of(path: &Path) -> PrivateKeyDer<'static> {
    key_der(&std::fs::read(path).unwrap())
}

#[test]
fn revoked_device_is_refused_while_the_server_keeps_running() {
    let ca = TestCa::new();
    let revoked = Arc::new(RevocationSet::new());
    let verifier = RevocationCheckingVerifier::new(
        &[ca.online.root().clone()],
        ca.online.device_issuers(),
        revoked.clone(),
    )
    .unwrap();
    let server = TestServer::start(server_config(&ca, verifier.clone()), 4);
    let root = ca.online.root().der().clone();
    let (a, a_key) = device(&ca, "dev-a");
    let (b, b_key) = device(&ca, "dev-b");

    // Devices send only their leaf; the server supplies the intermediate.
    let got = connect(server.port, &root, vec![a.der().clone()], a_key.clone_key()).unwrap();
    assert_eq!(got, b"welcome");
    let id = server.outcome().unwrap();
    assert_eq!(
        (id.kind(), id.id().as_str(), id.serial()),
        (PeerKind::Device, "dev-a", a.serial())
    );
    assert_eq!(id.device().unwrap(), &DeviceId::parse("dev-a").unwrap());

    // Revoke A in the live set (as the registry commit would), same server, same config.
    verifier.revocations().revoke(a.serial().clone());
    let err = connect(server.port, &root, vec![a.der().clone()], a_key).unwrap_err();
    assert!(err.to_lowercase().contains("revoked"), "client saw: {err}");
    let server_err = server.outcome().unwrap_err();
    assert!(server_err.contains("Revoked"), "server saw: {server_err}");

    // B is unaffected, before and after.
    assert_eq!(
        connect(server.port, &root, vec![b.der().clone()], b_key.clone_key()).unwrap(),
        b"welcome"
    );
    assert_eq!(server.outcome().unwrap().id().as_str(), "dev-b");
    // Sending the chain explicitly changes nothing.
    let chain = vec![
        b.der().clone(),
        ca.online.issuing().certificate().der().clone(),
    ];
    assert_eq!(
        connect(server.port, &root, chain, b_key).unwrap(),
        b"welcome"
    );
    assert!(server.outcome().is_ok());
    server.thread.join().unwrap();
}

#[test]
fn revoking_the_intermediate_refuses_everything_it_issued() {
    let ca = TestCa::new();
    let revoked = Arc::new(RevocationSet::new());
    let verifier = RevocationCheckingVerifier::new(
        &[ca.online.root().clone()],
        ca.online.device_issuers(),
        revoked.clone(),
    )
    .unwrap();
    let server = TestServer::start(server_config(&ca, verifier), 2);
    let root = ca.online.root().der().clone();
    let (a, a_key) = device(&ca, "dev-a");
    assert!(connect(server.port, &root, vec![a.der().clone()], a_key.clone_key()).is_ok());
    assert!(server.outcome().is_ok());
    revoked.revoke(ca.online.issuing().certificate().serial().clone());
    // Even if the client presents the intermediate itself.
    let chain = vec![
        a.der().clone(),
        ca.online.issuing().certificate().der().clone(),
    ];
    assert!(connect(server.port, &root, chain, a_key).is_err());
    assert!(server.outcome().is_err());
    server.thread.join().unwrap();
}

#[test]
fn certificate_from_a_foreign_ca_is_refused() {
    let ca = TestCa::new();
    let foreign = TestCa::new();
    let verifier = RevocationCheckingVerifier::new(
        &[ca.online.root().clone()],
        ca.online.device_issuers(),
        Arc::new(RevocationSet::new()),
    )
    .unwrap();
    let server = TestServer::start(server_config(&ca, verifier), 2);
    let root = ca.online.root().der().clone();
    // Same device id, same structure, wrong CA.
    let (forged, key) = device(&foreign, "dev-a");
    let chain = vec![
        forged.der().clone(),
        foreign.online.issuing().certificate().der().clone(),
    ];
    assert!(connect(server.port, &root, chain, key).is_err());
    // Both installations name their intermediate alike, so webpki finds ours by name and the
    // signature check fails; either way the chain does not verify.
    let err = server.outcome().unwrap_err();
    assert!(
        err.contains("UnknownIssuer") || err.contains("BadSignature"),
        "{err}"
    );
    // A self-signed certificate claiming the identity is refused too.
    let kp = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "dev-a");
    params.subject_alt_names = vec![rcgen::SanType::URI(
        "urn:ironroot:device:dev-a".try_into().unwrap(),
    )];
    let selfsigned = params.self_signed(&kp).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(kp.serialize_der()));
    assert!(connect(server.port, &root, vec![selfsigned.der().clone()], key).is_err());
    assert!(server.outcome().is_err());
    server.thread.join().unwrap();
}

#[test]
fn bootstrap_credentials_work_only_where_enrollment_is() {
    let ca = TestCa::new();
    let key_path = ca.path("boot.key");
    let csr = openssl_csr(&key_path, "/CN=dev-9", &[], "P-256");
    let csr = verify_csr(&csr, &Default::default()).unwrap();
    let now = OffsetDateTime::now_utc();
    let boot = ca
        .online
        .factory()
        .issue_bootstrap(
            &csr,
            &DeviceId::parse("dev-9").unwrap(),
            &IssuancePolicy::default(),
            now,
        )
        .unwrap();
    // The intermediate must not mint bootstrap credentials, nor the factory device ones.
    assert!(
        ca.online
            .issuing()
            .issue_bootstrap(
                &csr,
                &DeviceId::parse("dev-9").unwrap(),
                &IssuancePolicy::default(),
                now
            )
            .is_err()
    );
    assert!(
        ca.online
            .factory()
            .issue_device(
                &csr,
                &DeviceId::parse("dev-9").unwrap(),
                &IssuancePolicy::default(),
                now
            )
            .is_err()
    );
    let root = ca.online.root().der().clone();
    let revoked = Arc::new(RevocationSet::new());

    let broker = RevocationCheckingVerifier::new(
        &[ca.online.root().clone()],
        ca.online.device_issuers(),
        revoked.clone(),
    )
    .unwrap();
    let server = TestServer::start(server_config(&ca, broker), 1);
    let chain = vec![
        boot.der().clone(),
        ca.online.factory().certificate().der().clone(),
    ];
    assert!(connect(server.port, &root, chain.clone(), key_of(&key_path)).is_err());
    assert!(server.outcome().is_err());
    server.thread.join().unwrap();

    let enroll = RevocationCheckingVerifier::new(
        &[ca.online.root().clone()],
        ca.online.enrollment_issuers(),
        revoked,
    )
    .unwrap();
    let server = TestServer::start(server_config(&ca, enroll), 1);
    assert!(
        connect(
            server.port,
            &root,
            vec![boot.der().clone()],
            key_of(&key_path)
        )
        .is_ok()
    );
    let id = server.outcome().unwrap();
    assert_eq!(
        (id.kind(), id.id().as_str()),
        (PeerKind::Bootstrap, "dev-9")
    );
    assert!(id.device().is_err());
    server.thread.join().unwrap();
}

#[test]
fn operator_certificate_from_init_identifies_the_operator() {
    let ca = TestCa::new();
    let verifier = RevocationCheckingVerifier::new(
        &[ca.online.root().clone()],
        ca.online.device_issuers(),
        Arc::new(RevocationSet::new()),
    )
    .unwrap();
    let server = TestServer::start(server_config(&ca, verifier), 1);
    let cert = pem::parse(std::fs::read(ca.dir.path().join("operator.crt.pem")).unwrap())
        .unwrap()
        .into_contents();
    let key = key_of(&ca.dir.path().join("operator.key.pem"));
    assert!(
        connect(
            server.port,
            ca.online.root().der(),
            vec![CertificateDer::from(cert)],
            key
        )
        .is_ok()
    );
    let id = server.outcome().unwrap();
    assert_eq!((id.kind(), id.id().as_str()), (PeerKind::Operator, "admin"));
    server.thread.join().unwrap();
}

#[test]
fn retired_intermediate_is_refused_after_its_trust_window() {
    let ca = TestCa::new();
    let (a, _) = device(&ca, "dev-a");
    let until = OffsetDateTime::now_utc() + time::Duration::hours(1);
    let verifier = RevocationCheckingVerifier::new(
        &[ca.online.root().clone()],
        vec![TrustedIssuer {
            certificate: ca.online.issuing().certificate().clone(),
            trusted_until: Some(until),
        }],
        Arc::new(RevocationSet::new()),
    )
    .unwrap();
    use rustls::server::danger::ClientCertVerifier;
    let at = |t: OffsetDateTime| {
        rustls::pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            t.unix_timestamp() as u64,
        ))
    };
    assert!(
        verifier
            .verify_client_cert(a.der(), &[], at(until - time::Duration::minutes(1)))
            .is_ok()
    );
    assert!(
        verifier
            .verify_client_cert(a.der(), &[], at(until + time::Duration::minutes(1)))
            .is_err()
    );
}
