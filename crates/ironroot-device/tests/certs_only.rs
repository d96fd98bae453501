//! EST certs-only responses made by openssl (the oracle) decode to the same certificates.

use std::process::Command;

use base64::Engine;
use ironroot_device::parse_certs_only;

fn self_signed(cn: &str) -> rcgen::Certificate {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    rcgen::CertificateParams::new(vec![cn.to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap()
}

#[test]
fn openssl_certs_only_bundle_decodes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (self_signed("a.example"), self_signed("b.example"));
    let pem = dir.path().join("certs.pem");
    std::fs::write(&pem, format!("{}{}", a.pem(), b.pem())).unwrap();
    let out = Command::new("openssl")
        .args(["crl2pkcs7", "-nocrl", "-outform", "DER", "-certfile"])
        .arg(&pem)
        .output()
        .expect("openssl must be installed (bash .ci/run installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // EST bodies are base64 with line breaks (RFC 7030 §4.1.3).
    let b64 = base64::engine::general_purpose::STANDARD.encode(&out.stdout);
    let wrapped: String = b64
        .as_bytes()
        .chunks(64)
        .map(|c| format!("{}\r\n", std::str::from_utf8(c).unwrap()))
        .collect();
    let certs = parse_certs_only(wrapped.as_bytes()).unwrap();
    // A SET OF: DER orders its members, so compare as sets.
    let mut got: Vec<&[u8]> = certs.iter().map(|c| c.as_ref()).collect();
    let mut want: Vec<&[u8]> = vec![a.der().as_ref(), b.der().as_ref()];
    got.sort();
    want.sort();
    assert_eq!(got, want);

    // A bundle with no certificate is refused.
    let empty = Command::new("openssl")
        .args(["crl2pkcs7", "-nocrl", "-outform", "DER"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&empty.stdout);
    assert!(parse_certs_only(b64.as_bytes()).is_err());
}
