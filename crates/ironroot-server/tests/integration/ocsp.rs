//! OCSP (RFC 6960) against the running server over HTTPS, with `openssl ocsp` as the oracle:
//! good, revoked (with reason), unknown, unauthorized, CA certificates (root-signed answers,
//! tryLater without them), a malformed body refused beside a valid request accepted, and the
//! GET form.

use std::path::{Path, PathBuf};
use std::process::Output;

use ironroot_pki::DeviceId;
use ironroot_server::identity::{IssuePurpose, IssueRequest};
use ironroot_store::RevocationReason;

use crate::harness::{Db, Fixture, new_key_and_csr, openssl};

/// Registers `id` and issues it a certificate through the server's identity service; writes
/// the PEM and returns (path, serial).
async fn device_cert(fx: &Fixture, id: &str) -> (PathBuf, ironroot_pki::Serial) {
    fx.add_with_token(id).await;
    let (_, csr) = new_key_and_csr(fx.dir.path(), id, Some(id));
    let issued = fx
        .server()
        .identity()
        .issue(IssueRequest {
            device: DeviceId::parse(id).unwrap(),
            csr: std::fs::read(&csr).unwrap(),
            actor: "operator:test".into(),
            source: None,
            purpose: IssuePurpose::Manual,
        })
        .await
        .expect("issued");
    let path = fx.path(&format!("{id}.crt.pem"));
    std::fs::write(&path, issued.pem()).unwrap();
    (path, issued.serial().clone())
}

/// The issuing intermediate alone (what `openssl ocsp -issuer` wants).
fn write_issuer(fx: &Fixture) -> PathBuf {
    let path = fx.path("intermediate.pem");
    let pem = fx.server().identity().ca().issuing().certificate().pem();
    std::fs::write(&path, pem).unwrap();
    path
}

/// `openssl ocsp` without the success assertion: its exit status is part of what is tested.
fn ocsp(args: &[&str]) -> (Output, String) {
    let out = std::process::Command::new("openssl")
        .arg("ocsp")
        .args(args)
        .output()
        .expect("openssl is required (apt install openssl)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn openssl_ocsp_reports_good_revoked_and_unknown() {
    let fx = Fixture::start(Db::Sqlite, |_| {}).await;
    let (good, _) = device_cert(&fx, "ocsp-good").await;
    let (revoked, serial) = device_cert(&fx, "ocsp-revoked").await;
    fx.server()
        .identity()
        .revoke_serial(&serial, RevocationReason::KeyCompromise, "operator:test")
        .await
        .unwrap();
    let issuer = write_issuer(&fx);
    let chain = fx.chain();
    let url = fx.url("/ocsp");
    // A serial this CA never issued.
    let (out, text) = ocsp(&[
        "-issuer",
        p(&issuer),
        "-cert",
        p(&good),
        "-cert",
        p(&revoked),
        "-serial",
        "0x0123456789abcdef",
        "-url",
        &url,
        "-CAfile",
        p(&chain),
    ]);
    println!("{text}");
    assert!(out.status.success(), "{text}");
    // openssl adds a nonce and warns when the response does not echo it.
    assert!(text.contains("Response verify OK"), "{text}");
    assert!(!text.contains("WARNING"), "{text}");
    assert!(text.contains(&format!("{}: good", p(&good))), "{text}");
    assert!(
        text.contains(&format!("{}: revoked", p(&revoked))),
        "{text}"
    );
    assert!(text.contains("Reason: keyCompromise"), "{text}");
    assert!(text.contains("Revocation Time:"), "{text}");
    assert!(text.contains("0x0123456789abcdef: unknown"), "{text}");
    // The same answers with SHA-256 CertIDs.
    let (out, text) = ocsp(&[
        "-sha256",
        "-issuer",
        p(&issuer),
        "-cert",
        p(&good),
        "-cert",
        p(&revoked),
        "-url",
        &url,
        "-CAfile",
        p(&chain),
    ]);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Response verify OK"), "{text}");
    assert!(text.contains(&format!("{}: good", p(&good))), "{text}");
    assert!(
        text.contains(&format!("{}: revoked", p(&revoked))),
        "{text}"
    );
    // Each online CA's responder issuance is in the audit log.
    let events = fx.audit_events().await;
    let issued: Vec<&str> = events
        .iter()
        .filter(|e| e.event_type == "ocsp.responder_issued")
        .map(|e| e.subject.id.as_str())
        .collect();
    let ca = fx.server().identity().ca();
    assert!(issued.contains(&ca.issuing().certificate().common_name()));
    assert!(issued.contains(&ca.factory().certificate().common_name()));
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ocsp_refuses_malformed_and_foreign_requests_and_answers_valid_ones() {
    let fx = Fixture::start(Db::Sqlite, |_| {}).await;
    let (good, _) = device_cert(&fx, "ocsp-valid").await;
    let issuer = write_issuer(&fx);
    let url = fx.url("/ocsp");
    // Malformed body: HTTP 200 with OCSPResponse { malformedRequest }, as openssl reads it.
    let garbage = fx.path("garbage.der");
    std::fs::write(&garbage, b"\x30\x05not an ocsp request").unwrap();
    let malformed = fx.path("malformed.der");
    let out = fx
        .curl(&[
            "-H",
            "Content-Type: application/ocsp-request",
            "--data-binary",
            &format!("@{}", p(&garbage)),
            "-o",
            p(&malformed),
            "-w",
            "%{http_code} %{content_type}",
            &url,
        ])
        .await;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "200 application/ocsp-response"
    );
    assert_eq!(
        std::fs::read(&malformed).unwrap(),
        [0x30, 0x03, 0x0a, 0x01, 0x01]
    );
    let (_, text) = ocsp(&["-respin", p(&malformed), "-resp_text", "-noverify"]);
    assert!(text.contains("malformedrequest (1)"), "{text}");
    // A valid request made by openssl, sent the same way: successful.
    let request = fx.path("request.der");
    let (out, text) = ocsp(&[
        "-issuer",
        p(&issuer),
        "-cert",
        p(&good),
        "-no_nonce",
        "-reqout",
        p(&request),
    ]);
    assert!(out.status.success(), "{text}");
    let response = fx.path("response.der");
    let out = fx
        .curl(&[
            "-H",
            "Content-Type: application/ocsp-request",
            "--data-binary",
            &format!("@{}", p(&request)),
            "-o",
            p(&response),
            "-w",
            "%{http_code}",
            &url,
        ])
        .await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
    let (_, text) = ocsp(&[
        "-respin",
        p(&response),
        "-resp_text",
        "-CAfile",
        p(&fx.chain()),
    ]);
    assert!(
        text.contains("OCSP Response Status: successful (0x0)"),
        "{text}"
    );
    assert!(text.contains("Cert Status: good"), "{text}");
    assert!(text.contains("Response verify OK"), "{text}");
    // The GET form of the same request (standard base64, percent-encoded) is answered too.
    let b64 = String::from_utf8(openssl(&["base64", "-A", "-in", p(&request)]).stdout).unwrap();
    let encoded = b64
        .trim()
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    let got = fx.path("get.der");
    let out = fx
        .curl(&[
            "-o",
            p(&got),
            "-w",
            "%{http_code}",
            &format!("{url}/{encoded}"),
        ])
        .await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
    let (_, text) = ocsp(&["-respin", p(&got), "-resp_text", "-CAfile", p(&fx.chain())]);
    assert!(text.contains("Cert Status: good"), "{text}");
    // A wrong media type is refused before the body is looked at.
    let out = fx
        .curl(&[
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            &format!("@{}", p(&request)),
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &url,
        ])
        .await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "415");
    // An issuer this server does not hold: unauthorized.
    let foreign_key = fx.path("foreign.key");
    let foreign = fx.path("foreign.pem");
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        p(&foreign_key),
        "-subj",
        "/O=ironroot/CN=ironroot Intermediate CA G1",
        "-days",
        "1",
        "-out",
        p(&foreign),
    ]);
    let (_, text) = ocsp(&["-issuer", p(&foreign), "-serial", "0x01", "-url", &url]);
    assert!(text.contains("unauthorized (6)"), "{text}");
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ocsp_answers_for_ca_certificates_come_signed_by_the_root_or_try_later() {
    let fx = Fixture::start(Db::Sqlite, |_| {}).await;
    let issuer = write_issuer(&fx);
    let root = fx.path("root.pem");
    std::fs::write(&root, fx.server().identity().ca().root().pem()).unwrap();
    let factory = fx.path("factory.pem");
    let ca = fx.server().identity().ca();
    std::fs::write(&factory, ca.factory().certificate().pem()).unwrap();
    let url = fx.url("/ocsp");
    let chain = fx.chain();
    // `ca init` had the root sign answers for the intermediate and the factory CA.
    for (cert, hash) in [(&issuer, "-sha1"), (&factory, "-sha256")] {
        let (out, text) = ocsp(&[
            hash,
            "-issuer",
            p(&root),
            "-cert",
            p(cert),
            "-no_nonce",
            "-url",
            &url,
            "-CAfile",
            p(&chain),
        ]);
        println!("{text}");
        assert!(out.status.success(), "{text}");
        assert!(text.contains("Response verify OK"), "{text}");
        assert!(text.contains(&format!("{}: good", p(cert))), "{text}");
    }
    // Without the stored answers: tryLater, never a guess.
    std::fs::remove_file(fx.dir.path().join("pki").join("ocsp-ca.pem")).unwrap();
    let (_, text) = ocsp(&["-issuer", p(&root), "-cert", p(&issuer), "-url", &url]);
    assert!(text.contains("trylater (3)"), "{text}");
    fx.stop().await;
}
