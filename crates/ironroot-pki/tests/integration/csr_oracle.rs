//! CSRs made by `openssl req`, including hostile ones; issued certificates inspected by
//! `openssl x509 -text` and x509-parser.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ironroot_pki::{
    CaRole, CaSigner, CsrError, DeviceId, HierarchyPolicy, IssuancePolicy, IssueError, IssuingCa,
    SignerError, SoftwareKey, create_root, sign_subordinate,
};
use ironroot_testkit::{run_ok, tool};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::common::*;

/// A software key that counts signatures, to prove that rejected requests signed nothing.
#[derive(Debug)]
struct CountingSigner {
    key: SoftwareKey,
    count: AtomicUsize,
}

impl CaSigner for CountingSigner {
    fn public_key(&self) -> &[u8] {
        self.key.public_key()
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError> {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.key.sign(message)
    }
    fn describe(&self) -> String {
        "counting test key".into()
    }
}

fn counting_intermediate() -> (IssuingCa, Arc<CountingSigner>) {
    let now = OffsetDateTime::now_utc();
    let root = create_root(
        Arc::new(SoftwareKey::generate().unwrap()),
        &HierarchyPolicy::default(),
        now,
    )
    .unwrap();
    let signer = Arc::new(CountingSigner {
        key: SoftwareKey::generate().unwrap(),
        count: AtomicUsize::new(0),
    });
    let cert = sign_subordinate(
        &root,
        CaRole::Intermediate,
        "test intermediate",
        signer.as_ref(),
        "test",
        time::Duration::days(30),
        now,
    )
    .unwrap();
    (
        IssuingCa::new(cert, CaRole::Intermediate, signer.clone()).unwrap(),
        signer,
    )
}

#[test]
fn csr_requesting_ca_rights_is_accepted_and_the_rights_ignored() {
    let ca = TestCa::new();
    let key = ca.path("greedy.key");
    let csr = openssl_csr(
        &key,
        "/CN=dev-1/O=Evil Corp",
        &[
            "basicConstraints=critical,CA:TRUE,pathlen:5",
            "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
            "extendedKeyUsage=serverAuth,codeSigning",
            "subjectKeyIdentifier=hash",
            "subjectAltName=DNS:evil.example,URI:urn:ironroot:operator:root",
        ],
        "P-256",
    );
    let cert = ca
        .online
        .issuing()
        .issue_device_from_csr(
            &csr,
            &DeviceId::parse("dev-1").unwrap(),
            &IssuancePolicy::default(),
            OffsetDateTime::now_utc(),
        )
        .unwrap();
    let leaf = ca.write("leaf.pem", cert.pem());

    let text = openssl_text(&leaf);
    assert!(
        text.contains("CA:FALSE") && !text.contains("CA:TRUE"),
        "{text}"
    );
    assert!(
        !text.contains("Certificate Sign") && !text.contains("CRL Sign"),
        "{text}"
    );
    assert!(text.contains("TLS Web Client Authentication"), "{text}");
    assert!(
        !text.contains("Server Authentication") && !text.contains("Code Signing"),
        "{text}"
    );
    assert!(text.contains("URI:urn:ironroot:device:dev-1"), "{text}");
    assert!(
        !text.contains("evil.example") && !text.contains("operator") && !text.contains("Evil Corp"),
        "{text}"
    );
    assert!(text.contains("Subject: CN = dev-1"), "{text}");

    let (_, parsed) = X509Certificate::from_der(cert.der()).unwrap();
    let bc = parsed.basic_constraints().unwrap().unwrap();
    assert!(!bc.value.ca && bc.critical);
    let ku = parsed.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && !ku.key_cert_sign() && !ku.crl_sign());
    assert!(
        parsed
            .extended_key_usage()
            .unwrap()
            .unwrap()
            .value
            .client_auth
    );
    assert!(
        !parsed
            .extended_key_usage()
            .unwrap()
            .unwrap()
            .value
            .server_auth
    );
    // Exactly the public key of the CSR was certified.
    let csr_pub = run_ok(
        Command::new(tool("openssl"))
            .args(["pkey", "-pubout", "-in"])
            .arg(&key),
    )
    .stdout;
    let cert_pub = run_ok(
        Command::new(tool("openssl"))
            .args(["x509", "-noout", "-pubkey", "-in"])
            .arg(&leaf),
    )
    .stdout;
    assert_eq!(csr_pub, cert_pub);

    // The device cannot act as a CA: a certificate it signs does not verify.
    let child_csr = ca.write(
        "child.csr",
        openssl_csr(&ca.path("child.key"), "/CN=child", &[], "P-256"),
    );
    let child = ca.path("child.pem");
    run_ok(
        Command::new(tool("openssl"))
            .args(["x509", "-req", "-days", "1", "-in"])
            .arg(&child_csr)
            .arg("-CA")
            .arg(&leaf)
            .arg("-CAkey")
            .arg(&key)
            .arg("-CAcreateserial")
            .arg("-out")
            .arg(&child),
    );
    let untrusted = ca.write("untrusted.pem", cert.pem());
    let chain = ca.write(
        "chain.pem",
        ca.dir.chain_pem(OffsetDateTime::now_utc()).unwrap(),
    );
    let (ok, out) = openssl_verify(
        &[
            "-CAfile",
            chain.to_str().unwrap(),
            "-untrusted",
            untrusted.to_str().unwrap(),
        ],
        &child,
    );
    assert!(!ok, "certificate signed by a device verified: {out}");
}

fn expect_rejected(
    ca: &IssuingCa,
    counter: &CountingSigner,
    csr: &[u8],
    device: &str,
) -> IssueError {
    let before = counter.count.load(Ordering::SeqCst);
    let err = ca
        .issue_device_from_csr(
            csr,
            &DeviceId::parse(device).unwrap(),
            &IssuancePolicy::default(),
            OffsetDateTime::now_utc(),
        )
        .unwrap_err();
    assert_eq!(
        counter.count.load(Ordering::SeqCst),
        before,
        "a rejected request was signed: {err}"
    );
    err
}

#[test]
fn hostile_csrs_get_typed_errors_and_nothing_is_signed() {
    let (ca, counter) = counting_intermediate();
    let tmp = tempfile::tempdir().unwrap();
    let k = tmp.path().join("k.pem");

    let rsa = openssl_csr(&k, "/CN=dev-1", &[], "RSA");
    assert!(matches!(
        expect_rejected(&ca, &counter, &rsa, "dev-1"),
        IssueError::Csr(CsrError::RsaKey { bits: 2048 })
    ));

    let p384 = openssl_csr(&k, "/CN=dev-1", &[], "P-384");
    assert!(matches!(
        expect_rejected(&ca, &counter, &p384, "dev-1"),
        IssueError::Csr(CsrError::KeyAlgorithmNotAllowed { .. })
    ));

    let k1 = openssl_csr(&k, "/CN=dev-1", &[], "secp256k1");
    let err = expect_rejected(&ca, &counter, &k1, "dev-1");
    assert!(
        matches!(&err, IssueError::Csr(CsrError::UnsupportedCurve { curve }) if curve == "1.3.132.0.10"),
        "{err}"
    );

    for cn in ["dev+1", "dev/1", "dev#", "$SYS", "dev*", "dev?", "a b"] {
        let escaped = cn.replace('/', "\\/").replace('+', "\\+");
        let csr = openssl_csr(&k, &format!("/CN={escaped}"), &[], "P-256");
        let err = expect_rejected(&ca, &counter, &csr, "dev-1");
        assert!(
            matches!(err, IssueError::Csr(CsrError::CommonName(_))),
            "{cn}: {err}"
        );
    }

    let other = openssl_csr(&k, "/CN=dev-2", &[], "P-256");
    assert!(matches!(
        expect_rejected(&ca, &counter, &other, "dev-1"),
        IssueError::CommonNameMismatch { .. }
    ));

    // Bad signature: flip a bit inside the signature BIT STRING of the DER.
    let good = openssl_csr(&k, "/CN=dev-1", &[], "P-256");
    let mut der = pem::parse(&good).unwrap().into_contents();
    let n = der.len();
    der[n - 10] ^= 0x01;
    assert!(matches!(
        expect_rejected(&ca, &counter, &der, "dev-1"),
        IssueError::Csr(CsrError::BadSignature)
    ));

    // Oversize: a real, validly signed CSR over 16 KiB (a huge SAN extension).
    let sans: Vec<String> = (0..700)
        .map(|i| format!("DNS:padding-{i:04}.example"))
        .collect();
    let big = openssl_csr(
        &k,
        "/CN=dev-1",
        &[&format!("subjectAltName={}", sans.join(","))],
        "P-256",
    );
    assert!(big.len() > 16 * 1024, "{}", big.len());
    assert!(matches!(
        expect_rejected(&ca, &counter, &big, "dev-1"),
        IssueError::Csr(CsrError::TooLarge { .. })
    ));

    for garbage in [
        &b""[..],
        b"\x30\x03\x02\x01\x00",
        b"-----BEGIN CERTIFICATE REQUEST-----\n!!!\n-----END CERTIFICATE REQUEST-----\n",
        b"\xff\xfe hello",
    ] {
        assert!(matches!(
            expect_rejected(&ca, &counter, garbage, "dev-1"),
            IssueError::Csr(_)
        ));
    }

    // A good request after all of that does sign (the counter works).
    ca.issue_device_from_csr(
        &good,
        &DeviceId::parse("dev-1").unwrap(),
        &IssuancePolicy::default(),
        OffsetDateTime::now_utc(),
    )
    .unwrap();
    assert_eq!(counter.count.load(Ordering::SeqCst), 1);
}
