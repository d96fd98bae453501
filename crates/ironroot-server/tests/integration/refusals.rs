//! What must be refused: each refusal answers without revealing whether the device exists, is
//! written to the audit log with its reason, and issues nothing.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::harness::*;

const PKCS10: &str = "Content-Type: application/pkcs10";

/// POSTs `<name>.csr.b64` to simpleenroll with Basic `user:token`; returns (status, body).
async fn enroll_basic(fx: &Fixture, name: &str, user: &str, token: &str) -> (u16, String) {
    let userpass = format!("{user}:{token}");
    let b64 = format!("@{}", fx.path(&format!("{name}.csr.b64")).display());
    let url = fx.url("/.well-known/est/simpleenroll");
    status_and_body(
        &fx.curl(&[
            "-w",
            "\n%{http_code}",
            "--data-binary",
            &b64,
            "-H",
            PKCS10,
            "-u",
            &userpass,
            &url,
        ])
        .await,
    )
}

const UNAUTHORIZED: &str = r#"{"error":"unauthorized"}"#;

async fn refusals(db: Db) {
    let fx = Fixture::start(db, |_| {}).await;

    // Expired token.
    let (s, _) = fx
        .admin("POST", "/api/v1/devices", Some(r#"{"id":"exp-1"}"#))
        .await;
    assert_eq!(s, 201);
    let token = fx.claim("exp-1", Some(1)).await;
    new_key_and_csr(fx.dir.path(), "exp-1", Some("exp-1"));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        enroll_basic(&fx, "exp-1", "exp-1", &token).await,
        (401, UNAUTHORIZED.into())
    );
    fx.assert_denied("provision.failed", Some("exp-1"), "expired_token")
        .await;
    assert_eq!(fx.cert_count("exp-1").await, 0);

    // Token for another device.
    let token_a = fx.add_with_token("dev-a").await;
    let _token_b = fx.add_with_token("dev-b").await;
    new_key_and_csr(fx.dir.path(), "dev-b", Some("dev-b"));
    assert_eq!(
        enroll_basic(&fx, "dev-b", "dev-b", &token_a).await,
        (401, UNAUTHORIZED.into())
    );
    fx.assert_denied("provision.failed", Some("dev-b"), "token_for_other_device")
        .await;
    assert_eq!(fx.cert_count("dev-b").await, 0);

    // Unknown device and wrong token read exactly the same as the refusals above.
    new_key_and_csr(fx.dir.path(), "ghost", Some("ghost"));
    assert_eq!(
        enroll_basic(&fx, "ghost", "ghost", "not-a-token").await,
        (401, UNAUTHORIZED.into())
    );
    fx.assert_denied("provision.failed", Some("ghost"), "unknown_token")
        .await;

    // CSR whose CN names another device: refused before the token is spent.
    new_key_and_csr(fx.dir.path(), "dev-a-wrong", Some("dev-b"));
    let (status, _) = enroll_basic(&fx, "dev-a-wrong", "dev-a", &token_a).await;
    assert_eq!(status, 400);
    fx.assert_denied("provision.failed", Some("dev-a"), "common_name_mismatch")
        .await;
    assert_eq!(fx.cert_count("dev-a").await, 0);
    // ... and the token still works with a proper CSR.
    new_key_and_csr(fx.dir.path(), "dev-a", Some("dev-a"));
    let (status, body) = enroll_basic(&fx, "dev-a", "dev-a", &token_a).await;
    assert_eq!(status, 200, "{body}");
    let cert = fx.path("dev-a.crt.pem");
    std::fs::write(&cert, pkcs7_to_pem(fx.dir.path(), "dev-a-cert", &body)).unwrap();

    // Revoked device re-enrolling: its certificate is cut in the handshake.
    let (s, body) = fx.admin("POST", "/api/v1/devices/dev-a/revoke", None).await;
    assert_eq!(s, 200, "{body}");
    new_key_and_csr(fx.dir.path(), "dev-a-2", Some("dev-a"));
    let b64 = format!("@{}", fx.path("dev-a-2.csr.b64").display());
    let key = fx.path("dev-a.key.pem");
    let out = fx
        .curl(&[
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--data-binary",
            &b64,
            "-H",
            PKCS10,
            &fx.url("/.well-known/est/simplereenroll"),
        ])
        .await;
    assert!(!out.status.success(), "revoked certificate accepted");
    assert_eq!(fx.cert_count("dev-a").await, 1);
    // ... and a fresh claim token cannot bring it back either.
    let (s, _) = fx
        .admin("POST", "/api/v1/devices/dev-a/claim", Some("{}"))
        .await;
    assert_eq!(s, 409);

    // Decommissioned device with a token minted before: refused, audited.
    let token_b = fx.claim("dev-b", None).await;
    let (s, body) = fx
        .admin("POST", "/api/v1/devices/dev-b/decommission", None)
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        enroll_basic(&fx, "dev-b", "dev-b", &token_b).await,
        (401, UNAUTHORIZED.into())
    );
    fx.assert_denied("provision.failed", Some("dev-b"), "device_retired")
        .await;
    assert_eq!(fx.cert_count("dev-b").await, 0);

    // Oversize body: 413 before anything is parsed.
    let big = fx.path("big.b64");
    std::fs::write(&big, "A".repeat(200 * 1024)).unwrap();
    let token_c = fx.add_with_token("dev-c").await;
    let userpass = format!("dev-c:{token_c}");
    let data = format!("@{}", big.display());
    let out = fx
        .curl(&[
            "-w",
            "\n%{http_code}",
            "--data-binary",
            &data,
            "-H",
            PKCS10,
            // Ask before sending the body: the server answers 413 from the headers alone, so
            // the verdict cannot be lost to a reset while curl is still uploading.
            "-H",
            "Expect: 100-continue",
            "-u",
            &userpass,
            &fx.url("/.well-known/est/simpleenroll"),
        ])
        .await;
    assert_eq!(status_and_body(&out).0, 413);
    fx.assert_denied("provision.failed", None, "request body too large")
        .await;
    assert_eq!(fx.cert_count("dev-c").await, 0);

    // Certificate from a foreign CA: the handshake fails.
    let foreign_key = fx.path("foreign.key.pem");
    let foreign_crt = fx.path("foreign.crt.pem");
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        foreign_key.to_str().unwrap(),
        "-out",
        foreign_crt.to_str().unwrap(),
        "-subj",
        "/CN=dev-c",
        "-days",
        "1",
        "-addext",
        "subjectAltName=URI:urn:ironroot:bootstrap:dev-c",
    ]);
    new_key_and_csr(fx.dir.path(), "dev-c", Some("dev-c"));
    let b64 = format!("@{}", fx.path("dev-c.csr.b64").display());
    let out = fx
        .curl(&[
            "--cert",
            foreign_crt.to_str().unwrap(),
            "--key",
            foreign_key.to_str().unwrap(),
            "--data-binary",
            &b64,
            "-H",
            PKCS10,
            &fx.url("/.well-known/est/simpleenroll"),
        ])
        .await;
    assert!(!out.status.success(), "foreign certificate accepted");
    assert_eq!(fx.cert_count("dev-c").await, 0);
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_sqlite() {
    refusals(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_postgres() {
    refusals(Db::Postgres).await;
}

/// A client that sends the head and then dribbles the body is cut at the request deadline,
/// and a client that never finishes its head is disconnected; the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut() {
    let fx = Fixture::start(Db::Sqlite, |c| {
        c.limits.request_timeout = Duration::from_secs(1);
        c.limits.max_connections = 4;
        c.limits.handshake_timeout = Duration::from_secs(1);
    })
    .await;
    let token = fx.add_with_token("slow-1").await;
    let addr = fx.server().local_addr();
    let start = std::time::Instant::now();
    // openssl s_client as a raw TLS pipe; we write the head and a few body bytes, then stall.
    let mut child = tokio::process::Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-connect",
            &addr.to_string(),
            "-CAfile",
            fx.chain().to_str().unwrap(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let auth = base64_basic(&format!("slow-1:{token}"));
    let head = format!(
        "POST /.well-known/est/simpleenroll HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/pkcs10\r\nContent-Length: 1000\r\nAuthorization: Basic {auth}\r\n\r\nMIIB"
    );
    stdin.write_all(head.as_bytes()).await.unwrap();
    stdin.flush().await.unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut response = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(8), stdout.read_to_end(&mut response)).await;
    assert!(read.is_ok(), "slow client was not cut within 8 s");
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(start.elapsed() < Duration::from_secs(5));
    drop(stdin);
    let _ = child.kill().await;
    fx.assert_denied("provision.failed", None, "request timeout")
        .await;
    assert_eq!(fx.cert_count("slow-1").await, 0);

    // Many connections that never send a byte: the server still answers once they time out,
    // and meanwhile the cap keeps them from taking more than max_connections slots.
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    let out = fx
        .curl(&["-w", "\n%{http_code}", &fx.url("/healthz")])
        .await;
    assert_eq!(
        status_and_body(&out).0,
        200,
        "server did not recover from idle connections"
    );
    drop(idle);
    fx.stop().await;
}

fn base64_basic(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The per-source rate limit answers 429 once the burst is spent. The refill (one request
/// per 100 s) is far slower than the test, so a slow machine cannot earn a token back between
/// two requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_source_rate_limit() {
    let fx = Fixture::start(Db::Sqlite, |c| {
        c.limits.per_source_rate = 0.01;
        c.limits.per_source_burst = 3.0;
    })
    .await;
    let url = fx.url("/healthz");
    let mut codes = Vec::new();
    for _ in 0..5 {
        codes.push(status_and_body(&fx.curl(&["-w", "\n%{http_code}", &url]).await).0);
    }
    assert_eq!(codes, [200, 200, 200, 429, 429], "{codes:?}");
    fx.stop().await;
}

/// TLS 1.3, and TLS 1.2 only with ECDHE + AEAD: openssl as the judge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_versions_and_suites() {
    let fx = Fixture::start(Db::Sqlite, |_| {}).await;
    let addr = fx.server().local_addr().to_string();
    let chain = fx.chain();
    let try_connect = |args: &[&str]| {
        let mut cmd = std::process::Command::new("openssl");
        cmd.args([
            "s_client",
            "-connect",
            &addr,
            "-CAfile",
            chain.to_str().unwrap(),
            "-verify_return_error",
        ])
        .args(args)
        .stdin(std::process::Stdio::null());
        let out = cmd.output().expect("openssl");
        out.status.success()
    };
    assert!(try_connect(&["-tls1_3"]), "TLS 1.3 refused");
    assert!(
        try_connect(&["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"]),
        "TLS 1.2 ECDHE-AEAD refused"
    );
    assert!(
        !try_connect(&["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"]),
        "TLS 1.2 CBC accepted"
    );
    assert!(
        !try_connect(&["-tls1_2", "-cipher", "AES128-GCM-SHA256"]),
        "TLS 1.2 without ECDHE accepted"
    );
    // SECLEVEL=0 so that a refusal comes from the server, not from the local openssl policy.
    assert!(
        !try_connect(&["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"]),
        "TLS 1.1 accepted"
    );
    fx.stop().await;
}
