//! Issued certificates and published CRLs, judged by `openssl verify`.

use std::process::Command;

use ironroot_pki::CaSigner;
use ironroot_pki::{
    IssuancePolicy, RevocationReason, RevokedEntry, ServerName, SoftwareKey, SubjectKey,
};
use ironroot_testkit::{run_ok, tool};
use time::OffsetDateTime;

use crate::common::*;

#[test]
fn issued_device_certificate_verifies_with_crl_check_and_crl_check_all() {
    let ca = TestCa::new();
    let (cert, _) = ca.issue_device("sensor-0001");
    let leaf = ca.write("leaf.pem", cert.pem());
    let chain = ca.write(
        "chain.pem",
        ca.dir.chain_pem(OffsetDateTime::now_utc()).unwrap(),
    );
    let crls = ca.write_crls(&[], "crl.pem");
    for flag in ["-crl_check", "-crl_check_all"] {
        let (ok, out) = openssl_verify(
            &[
                "-CAfile",
                chain.to_str().unwrap(),
                flag,
                "-CRLfile",
                crls.to_str().unwrap(),
                "-purpose",
                "sslclient",
            ],
            &leaf,
        );
        assert!(ok, "{flag}: {out}");
    }
    // Serial and fingerprint as openssl reads them match what issuance reports.
    let out = run_ok(
        Command::new(tool("openssl"))
            .args([
                "x509",
                "-noout",
                "-serial",
                "-fingerprint",
                "-sha256",
                "-in",
            ])
            .arg(&leaf),
    );
    let text = String::from_utf8(out.stdout)
        .unwrap()
        .to_lowercase()
        .replace(':', "");
    assert!(
        text.contains(&format!("serial={}", cert.serial())),
        "{text}"
    );
    assert!(text.contains(&cert.fingerprint().to_string()), "{text}");
    assert_eq!(cert.subject(), "sensor-0001");
}

#[test]
fn revoked_device_certificate_fails_crl_check() {
    let ca = TestCa::new();
    let (good, _) = ca.issue_device("good-1");
    let (bad, _) = ca.issue_device("bad-1");
    let revoked = [RevokedEntry {
        serial: bad.serial().clone(),
        revoked_at: OffsetDateTime::now_utc(),
        reason: RevocationReason::KeyCompromise,
    }];
    let crls = ca.write_crls(&revoked, "crl.pem");
    let chain = ca.write(
        "chain.pem",
        ca.dir.chain_pem(OffsetDateTime::now_utc()).unwrap(),
    );
    let args = [
        "-CAfile",
        chain.to_str().unwrap(),
        "-crl_check",
        "-CRLfile",
        crls.to_str().unwrap(),
    ];
    let (ok, out) = openssl_verify(&args, &ca.write("bad.pem", bad.pem()));
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    let (ok, out) = openssl_verify(&args, &ca.write("good.pem", good.pem()));
    assert!(ok, "{out}");
    // openssl reads the CRL's entries: exactly the revoked serial, with its reason.
    let crl_text = run_ok(
        Command::new(tool("openssl"))
            .args(["crl", "-noout", "-text", "-in"])
            .arg(&crls),
    )
    .stdout;
    let crl_text = String::from_utf8(crl_text).unwrap();
    assert!(
        crl_text.to_lowercase().contains(&bad.serial().to_string()),
        "{crl_text}"
    );
    assert!(crl_text.contains("Key Compromise"), "{crl_text}");
    assert!(crl_text.contains("Next Update"), "{crl_text}");
}

#[test]
fn revoking_the_intermediate_fails_crl_check_all() {
    let mut ca = TestCa::new();
    let (cert, _) = ca.issue_device("dev-1");
    let leaf = ca.write("leaf.pem", cert.pem());
    // Chain captured before revocation (a relying party that still has the old bundle).
    let chain = ca.write(
        "chain.pem",
        ca.dir.chain_pem(OffsetDateTime::now_utc()).unwrap(),
    );
    let (entry, _) = ca
        .dir
        .revoke_ca(
            None,
            &pass(ROOT_PASS),
            Some(1),
            RevocationReason::CaCompromise,
            OffsetDateTime::now_utc(),
        )
        .unwrap();
    assert_eq!(&entry.serial, ca.online.issuing().certificate().serial());
    let crls = ca.write_crls(&[], "crl.pem");
    let (ok, out) = openssl_verify(
        &[
            "-CAfile",
            chain.to_str().unwrap(),
            "-crl_check_all",
            "-CRLfile",
            crls.to_str().unwrap(),
        ],
        &leaf,
    );
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    // The server no longer trusts or loads it.
    assert!(
        ca.dir
            .trusted_intermediates(OffsetDateTime::now_utc())
            .unwrap()
            .is_empty()
    );
    let _ = &mut ca;
}

#[test]
fn server_certificate_verifies_for_tls_server_purpose_only() {
    let ca = TestCa::new();
    let key = SoftwareKey::generate().unwrap();
    let names = [
        ServerName::parse("localhost").unwrap(),
        ServerName::parse("127.0.0.1").unwrap(),
    ];
    let cert = ca
        .online
        .issuing()
        .issue_server(
            &SubjectKey::p256(key.public_key()).unwrap(),
            &names,
            &IssuancePolicy::default(),
            OffsetDateTime::now_utc(),
        )
        .unwrap();
    let leaf = ca.write("server.pem", cert.pem());
    let chain = ca.write(
        "chain.pem",
        ca.dir.chain_pem(OffsetDateTime::now_utc()).unwrap(),
    );
    let c = chain.to_str().unwrap();
    let (ok, out) = openssl_verify(
        &[
            "-CAfile",
            c,
            "-purpose",
            "sslserver",
            "-verify_hostname",
            "localhost",
        ],
        &leaf,
    );
    assert!(ok, "{out}");
    let (ok, out) = openssl_verify(
        &[
            "-CAfile",
            c,
            "-purpose",
            "sslserver",
            "-verify_ip",
            "127.0.0.1",
        ],
        &leaf,
    );
    assert!(ok, "{out}");
    let (ok, _) = openssl_verify(&["-CAfile", c, "-purpose", "sslclient"], &leaf);
    assert!(
        !ok,
        "a server certificate must not be usable as a client certificate"
    );
    // And a device certificate is not a server certificate.
    let (dev, _) = ca.issue_device("dev-2");
    let (ok, _) = openssl_verify(
        &["-CAfile", c, "-purpose", "sslserver"],
        &ca.write("dev.pem", dev.pem()),
    );
    assert!(!ok);
}

#[test]
fn ca_certificates_have_the_documented_constraints() {
    let ca = TestCa::new();
    let root = openssl_text(&ca.dir.path().join("root.crt.pem"));
    assert!(root.contains("CA:TRUE, pathlen:1"), "{root}");
    assert!(root.contains("Certificate Sign, CRL Sign"), "{root}");
    assert!(
        root.contains("prime256v1") || root.contains("P-256"),
        "{root}"
    );
    for file in ["intermediate-1.crt.pem", "factory.crt.pem"] {
        let text = openssl_text(&ca.dir.path().join(file));
        assert!(text.contains("CA:TRUE, pathlen:0"), "{file}: {text}");
        assert!(
            text.contains("Certificate Sign, CRL Sign"),
            "{file}: {text}"
        );
        assert!(text.contains("Authority Key Identifier"), "{file}: {text}");
    }
    // The operator certificate written by init verifies as a TLS client certificate.
    let chain = ca.write(
        "chain.pem",
        ca.dir.chain_pem(OffsetDateTime::now_utc()).unwrap(),
    );
    let (ok, out) = openssl_verify(
        &["-CAfile", chain.to_str().unwrap(), "-purpose", "sslclient"],
        &ca.dir.path().join("operator.crt.pem"),
    );
    assert!(ok, "{out}");
    let op = openssl_text(&ca.dir.path().join("operator.crt.pem"));
    assert!(op.contains("URI:urn:ironroot:operator:admin"), "{op}");
}

/// The command-signer profile: chains to the root under openssl, carries codeSigning and the
/// `urn:ironroot:command-signer` URI only, is refused as a TLS client certificate by openssl
/// and is no peer identity for ironroot's own TLS endpoints.
#[test]
fn command_signer_certificate_is_code_signing_only() {
    let ca = TestCa::new();
    let key = SoftwareKey::generate().unwrap();
    let subject = SubjectKey::p256(key.public_key()).unwrap();
    let cert = ca
        .online
        .issuing()
        .issue_command_signer(
            &subject,
            time::Duration::minutes(15),
            &IssuancePolicy::default(),
            OffsetDateTime::now_utc(),
        )
        .unwrap();
    let leaf = ca.write("signer.pem", cert.pem());
    let chain = ca.write(
        "chain.pem",
        ca.dir.chain_pem(OffsetDateTime::now_utc()).unwrap(),
    );
    let cafile = chain.to_str().unwrap();
    let (ok, out) = openssl_verify(&["-CAfile", cafile, "-purpose", "any"], &leaf);
    assert!(ok, "{out}");
    let (ok, out) = openssl_verify(&["-CAfile", cafile, "-purpose", "sslclient"], &leaf);
    assert!(!ok, "a command signer must not pass as a TLS client: {out}");
    let text = openssl_text(&leaf);
    assert!(text.contains("Code Signing"), "{text}");
    assert!(text.contains("URI:urn:ironroot:command-signer"), "{text}");
    assert!(!text.contains("TLS Web Client"), "{text}");
    assert_eq!(cert.subject(), ironroot_pki::COMMAND_SIGNER_COMMON_NAME);
    assert_eq!(
        cert.not_after() - cert.not_before(),
        time::Duration::minutes(20)
    );
    assert!(matches!(
        ironroot_pki::ClientIdentity::from_certificate(cert.der()),
        Err(ironroot_pki::IdentityError::NoIdentityUri)
    ));
}

/// The root's pre-produced OCSP answers follow root operations: after `revoke_ca`, the stored
/// answer for the intermediate says revoked (openssl reads and verifies it against the root).
#[test]
fn revoking_the_intermediate_makes_its_root_signed_ocsp_answer_revoked() {
    use ironroot_pki::ocsp::{CA_RESPONSES_FILE, CaResponses, OcspRequest};
    let ca = TestCa::new();
    let pki = ca.tmp.path().join("pki");
    let root = pki.join("root.crt.pem");
    let inter = pki.join("intermediate-1.crt.pem");
    let req = ca.path("req.der");
    let ask = |resp_name: &str| {
        run_ok(Command::new(tool("openssl")).args([
            "ocsp",
            "-issuer",
            root.to_str().unwrap(),
            "-cert",
            inter.to_str().unwrap(),
            "-no_nonce",
            "-reqout",
            req.to_str().unwrap(),
        ]));
        let stored =
            CaResponses::from_pem(&std::fs::read(pki.join(CA_RESPONSES_FILE)).unwrap()).unwrap();
        let request = OcspRequest::from_der(&std::fs::read(&req).unwrap()).unwrap();
        let der = stored
            .answer(&request, OffsetDateTime::now_utc())
            .unwrap()
            .to_vec();
        let resp = ca.write(resp_name, der);
        let out = run_ok(Command::new(tool("openssl")).args([
            "ocsp",
            "-respin",
            resp.to_str().unwrap(),
            "-issuer",
            root.to_str().unwrap(),
            "-cert",
            inter.to_str().unwrap(),
            "-CAfile",
            root.to_str().unwrap(),
        ]));
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let before = ask("before.der");
    assert!(before.contains("Response verify OK"), "{before}");
    assert!(before.contains(": good"), "{before}");
    ca.dir
        .revoke_ca(
            None,
            &pass(ROOT_PASS),
            Some(1),
            RevocationReason::CaCompromise,
            OffsetDateTime::now_utc(),
        )
        .unwrap();
    let after = ask("after.der");
    assert!(after.contains("Response verify OK"), "{after}");
    assert!(after.contains(": revoked"), "{after}");
    assert!(after.contains("Reason: cACompromise"), "{after}");
}
