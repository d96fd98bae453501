//! The TLS listener: TLS 1.3, or 1.2 with ECDHE and an AEAD cipher only (openssl s_client as
//! the oracle), client certificate required, no session resumption.

use std::process::Command;

use crate::harness::*;
use crate::pki::key_der;
use crate::raw::{self, ConnectOpts};

fn s_client(b: &TestBroker, c: &crate::pki::ClientFiles, args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new(ironroot_testkit::tool("openssl"));
    cmd.args([
        "s_client",
        "-connect",
        &format!("127.0.0.1:{}", b.port),
        "-servername",
        "localhost",
        "-brief",
    ])
    .arg("-CAfile")
    .arg(b.pki.ca_file())
    .arg("-cert")
    .arg(&c.cert)
    .arg("-key")
    .arg(&c.key)
    .args(args)
    .stdin(std::process::Stdio::null());
    let out = run(cmd);
    let text = format!("{}{}", out.stdout, out.stderr);
    (
        out.code == Some(0) && text.contains("CONNECTION ESTABLISHED"),
        text,
    )
}

#[test]
fn tls13_and_tls12_ecdhe_aead_only() {
    let b = TestBroker::start();
    let dev = b.client("dev-1");
    let (ok, text) = s_client(&b, &dev, &["-tls1_3"]);
    assert!(ok && text.contains("TLSv1.3"), "{text}");
    for suite in [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
    ] {
        let (ok, text) = s_client(&b, &dev, &["-tls1_2", "-cipher", suite]);
        assert!(ok && text.contains(suite), "{suite}: {text}");
    }
    for suite in [
        "ECDHE-ECDSA-AES128-SHA256",
        "ECDHE-ECDSA-AES256-SHA",
        "AES128-GCM-SHA256",
    ] {
        let (ok, text) = s_client(&b, &dev, &["-tls1_2", "-cipher", suite]);
        assert!(
            !ok,
            "non-AEAD or non-ECDHE suite {suite} must be refused: {text}"
        );
    }
    let (ok, text) = s_client(&b, &dev, &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"]);
    assert!(!ok, "TLS 1.1 must be refused: {text}");
}

#[test]
fn no_session_resumption() {
    let b = TestBroker::start();
    let dev = b.client("dev-1");
    // rustls clients resume by default; one config shared across two connections would.
    let cfg = raw::client_config(&b.pki.ca_der, dev.cert_der.clone(), key_der(&dev.key_pem));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for round in 0..3 {
            let mut io = raw::dial(b.port, cfg.clone()).await.unwrap();
            raw::mqtt_connect(&mut io, "dev-1", &ConnectOpts::default())
                .await
                .unwrap();
            assert_eq!(
                io.get_ref().1.handshake_kind(),
                Some(rustls::HandshakeKind::Full),
                "round {round}: every connection verifies the client certificate again"
            );
        }
    });
}

#[test]
fn client_without_certificate_gets_no_session() {
    let b = TestBroker::start();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(b.pki.ca_der.clone()).unwrap();
    let cfg = std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // TLS 1.3: the client may finish its side before the server's alert arrives; CONNECT
        // then fails either way.
        if let Ok(mut io) = raw::dial(b.port, cfg).await {
            assert!(
                raw::mqtt_connect(&mut io, "dev-1", &ConnectOpts::default())
                    .await
                    .is_err()
            );
        }
    });
    assert!(!b.handle.is_connected("dev-1"));
    assert_eq!(b.handle.stats().connected, 0);
}
