//! Mutual TLS against an independent server: `openssl s_server -Verify 1 -verify_return_error`
//! must see, and accept, the client certificate whose key is in the element.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use ironroot_element::{DeviceSigner, RcgenKey, client_auth_resolver};
use ironroot_testkit::tool;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// One TLS 1.3 connection to `openssl s_server` with the client key in the element; the
/// server's verify log must name the device and end in success, and the echo must come back.
pub fn openssl_server_sees_the_element_client_cert(key: Arc<dyn DeviceSigner>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "element openssl CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let mut device = CertificateParams::new(Vec::<String>::new()).unwrap();
    device
        .distinguished_name
        .push(DnType::CommonName, "sensor-openssl-7");
    device.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let device_cert = device.signed_by(&RcgenKey(key.clone()), &issuer).unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let file = |name: &str, text: String| {
        let path = tmp.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let ca_pem = file("ca.pem", ca_cert.pem());
    let cert_pem = file("server.pem", server_cert.pem());
    let key_pem = file("server.key", server_key.serialize_pem());
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(tool("openssl"))
        .args(["s_server", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .args([
            "-naccept",
            "1",
            "-Verify",
            "1",
            "-verify_return_error",
            "-tls1_3",
        ])
        .arg("-CAfile")
        .arg(&ca_pem)
        .arg("-cert")
        .arg(&cert_pem)
        .arg("-key")
        .arg(&key_pem)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting openssl s_server");
    // s_server prints ACCEPT when it listens; a probe connection would use up -naccept 1.
    let (tx, rx) = mpsc::channel();
    let stdout = server.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap_or_default();
            if line.contains("ACCEPT") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("openssl s_server did not start listening");

    let mut roots = RootCertStore::empty();
    roots.add(ca_cert.der().clone()).unwrap();
    let config = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_client_cert_resolver(client_auth_resolver(vec![device_cert.der().clone()], key));
    let conn = ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap();
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut tls = StreamOwned::new(conn, sock);
    tls.write_all(b"hello from the element\n").unwrap();
    tls.flush().unwrap();
    // s_server echoes nothing by default; it prints what it received. Close cleanly.
    tls.conn.send_close_notify();
    let _ = tls.conn.complete_io(&mut tls.sock);
    let _ = tls.read(&mut [0u8; 64]);
    drop(tls);
    let status = server.wait_timeout_or_kill(Duration::from_secs(10));
    let stdout = reader.join().unwrap();
    let mut stderr = String::new();
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let text = format!("{stdout}{stderr}");
    assert!(status, "openssl s_server did not finish:\n{text}");
    assert!(
        text.contains("CN = sensor-openssl-7") && text.contains("verify return:1"),
        "s_server did not see the device certificate:\n{text}"
    );
    assert!(!text.contains("verify error"), "{text}");
    assert!(text.contains("hello from the element"), "{text}");
}

trait WaitOrKill {
    fn wait_timeout_or_kill(&mut self, timeout: Duration) -> bool;
}

impl WaitOrKill for std::process::Child {
    /// Waits up to `timeout` for the process; kills it after that. True if it exited alone.
    fn wait_timeout_or_kill(&mut self, timeout: Duration) -> bool {
        let start = std::time::Instant::now();
        while start.elapsed() < timeout {
            if self.try_wait().ok().flatten().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.kill();
        let _ = self.wait();
        false
    }
}
