//! The contract every `SecureElement` meets, and the two real uses of a device key (a CSR that
//! openssl verifies, a mutual-TLS handshake with rustls), written once.

use std::process::Command;
use std::sync::Arc;

use aws_lc_rs::agreement::{self, ECDH_P256, EphemeralPrivateKey, UnparsedPublicKey as PeerKey};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use ironroot_element::{
    AttributeInfo, AttributeType, DeviceSigner, ElementError, Pkcs11Element, RcgenKey,
    SecureElement, client_auth_resolver,
};
use ironroot_testkit::{run, run_ok, tool};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

/// What an element is expected to offer beyond signing.
pub struct Expect {
    /// ECDH P-256 (software element, SoftHSM2; a TPM only if tpm2-pkcs11 offers it).
    pub ecdh: bool,
}

fn verifies(key: &dyn DeviceSigner, message: &[u8], sig: &[u8]) -> bool {
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key.public_key())
        .verify(message, sig)
        .is_ok()
}

/// Runs the whole contract on `el`. Uses labels `contract-*`, and leaves none behind.
pub fn contract(el: &dyn SecureElement, expect: Expect) {
    let what = el.describe();
    assert!(!what.is_empty());

    // unique_id: stable, 32 hex digits.
    let id = el.unique_id().unwrap();
    assert_eq!(id, el.unique_id().unwrap());
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );

    // A key made inside the element signs; its signatures verify under its public key, and not
    // for another message.
    let key = el.generate("contract-id").unwrap();
    assert_eq!(key.key_id(), "contract-id");
    assert_eq!(key.public_key().len(), 65);
    assert_eq!(key.public_key()[0], 0x04);
    let sig = key.sign(b"telemetry 1").unwrap();
    assert!(
        verifies(&*key, b"telemetry 1", &sig),
        "{what}: signature does not verify"
    );
    assert!(
        !verifies(&*key, b"telemetry 2", &sig),
        "{what}: signature verifies for another message"
    );
    assert!(!format!("{key:?}").is_empty());

    // Labels are never silently replaced; open finds the same key; missing keys are typed.
    assert!(
        matches!(el.generate("contract-id"), Err(ElementError::KeyExists(_))),
        "{what}"
    );
    let reopened = el.open("contract-id").unwrap();
    assert_eq!(reopened.public_key(), key.public_key());
    assert!(verifies(&*key, b"again", &reopened.sign(b"again").unwrap()));
    assert!(
        matches!(el.open("contract-none"), Err(ElementError::NoSuchKey(_))),
        "{what}"
    );
    assert!(
        matches!(el.destroy("contract-none"), Err(ElementError::NoSuchKey(_))),
        "{what}"
    );
    for bad in ["", "../x", ".hidden", "a/b", "a b", &"x".repeat(65)] {
        assert!(
            matches!(el.generate(bad), Err(ElementError::BadLabel(_))),
            "{what}: {bad:?}"
        );
    }

    // The two real uses of the key.
    csr_verifies_with_openssl(key.clone());
    mutual_tls(key.clone(), None);
    crate::openssl_server::openssl_server_sees_the_element_client_cert(key.clone());

    // ECDH where offered.
    match el.ecdh("contract-id", &[0x04; 65]) {
        Err(ElementError::Unsupported(_)) => assert!(!expect.ecdh, "{what}: ECDH expected"),
        other => {
            assert!(expect.ecdh, "{what}: ECDH not expected, got {other:?}");
            assert!(
                matches!(other, Err(ElementError::BadPeerKey)),
                "{what}: {other:?}"
            );
            ecdh_agrees(el, &*key);
        }
    }

    // Rotation: destroy, then a new key under the same label, which is a different key; the
    // old key's signatures do not verify under the new one.
    el.destroy("contract-id").unwrap();
    assert!(
        matches!(el.open("contract-id"), Err(ElementError::NoSuchKey(_))),
        "{what}"
    );
    assert!(
        matches!(el.destroy("contract-id"), Err(ElementError::NoSuchKey(_))),
        "{what}"
    );
    let rotated = el.generate("contract-id").unwrap();
    assert_ne!(rotated.public_key(), key.public_key());
    assert!(!verifies(&*rotated, b"telemetry 1", &sig));
    mutual_tls(rotated.clone(), None);
    // A certificate for one key presented with another key's signatures is refused.
    let other = el.generate("contract-other").unwrap();
    mutual_tls(rotated, Some(other));
    el.destroy("contract-id").unwrap();
    el.destroy("contract-other").unwrap();
}

fn ecdh_agrees(el: &dyn SecureElement, key: &dyn DeviceSigner) {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let peer = EphemeralPrivateKey::generate(&ECDH_P256, &rng).unwrap();
    let peer_pub = peer.compute_public_key().unwrap();
    let ours = el.ecdh(key.key_id(), peer_pub.as_ref()).unwrap();
    let theirs =
        agreement::agree_ephemeral(peer, PeerKey::new(&ECDH_P256, key.public_key()), (), |s| {
            Ok(s.to_vec())
        })
        .unwrap();
    assert_eq!(ours.len(), 32);
    assert_eq!(&ours[..], &theirs[..], "{}: ECDH disagrees", el.describe());
}

/// A CSR signed inside the element: openssl verifies it; with one signature byte changed,
/// openssl refuses it.
pub fn csr_verifies_with_openssl(key: Arc<dyn DeviceSigner>) {
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "sensor-42");
    let csr = params.serialize_request(&RcgenKey(key)).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("d.csr");
    std::fs::write(&path, csr.der()).unwrap();
    let openssl = tool("openssl");
    let out = run_ok(
        Command::new(&openssl)
            .args([
                "req", "-verify", "-noout", "-subject", "-inform", "DER", "-in",
            ])
            .arg(&path),
    );
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("sensor-42") && text.contains("verify OK"),
        "{text}"
    );
    let mut der = csr.der().to_vec();
    let n = der.len() - 3;
    der[n] ^= 0x55;
    std::fs::write(&path, &der).unwrap();
    let bad = run(Command::new(&openssl)
        .args(["req", "-verify", "-noout", "-inform", "DER", "-in"])
        .arg(&path));
    // OpenSSL 3.0 `req -verify` exits 0 even when the signature is bad: the verdict is its message.
    let verdict =
        String::from_utf8_lossy(&bad.stderr).to_string() + &String::from_utf8_lossy(&bad.stdout);
    assert!(
        verdict.contains("verify failure") && !verdict.contains("verify OK"),
        "{verdict}"
    );
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A rustls mutual-TLS handshake (TLS 1.3 and TLS 1.2) in memory: a test CA issues the server
/// a certificate and the device one for `key`'s public key; the client signs with `key` — or,
/// when `impostor` is given, with the impostor's key, which the server must refuse.
pub fn mutual_tls(key: Arc<dyn DeviceSigner>, impostor: Option<Arc<dyn DeviceSigner>>) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "element test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["broker.test".to_owned()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let mut device = CertificateParams::new(Vec::<String>::new()).unwrap();
    device
        .distinguished_name
        .push(DnType::CommonName, "sensor-42");
    device.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let device_cert = device.signed_by(&RcgenKey(key.clone()), &issuer).unwrap();

    let mut roots = RootCertStore::empty();
    roots.add(ca_cert.der().clone()).unwrap();
    let roots = Arc::new(roots);
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .build()
            .unwrap();
    let signing = impostor.clone().unwrap_or(key);
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let server_config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[version])
            .unwrap()
            .with_client_cert_verifier(verifier.clone())
            .with_single_cert(
                vec![server_cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
            )
            .unwrap();
        let client_config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots.clone())
            .with_client_cert_resolver(client_auth_resolver(
                vec![device_cert.der().clone()],
                signing.clone(),
            ));
        let mut client =
            ClientConnection::new(Arc::new(client_config), "broker.test".try_into().unwrap())
                .unwrap();
        let mut server = ServerConnection::new(Arc::new(server_config)).unwrap();
        let result = handshake(&mut client, &mut server);
        if impostor.is_some() {
            assert!(
                result.is_err(),
                "{version:?}: a signature by another key was accepted"
            );
            assert!(server.peer_certificates().is_none());
        } else {
            result.unwrap_or_else(|e| panic!("{version:?} handshake: {e}"));
            let seen: Vec<CertificateDer<'_>> = server.peer_certificates().unwrap().to_vec();
            assert_eq!(
                seen.first(),
                Some(device_cert.der()),
                "{version:?}: server saw another cert"
            );
        }
    }
}

/// Moves TLS records between the two ends until both finish the handshake or one fails.
fn handshake(
    client: &mut ClientConnection,
    server: &mut ServerConnection,
) -> Result<(), rustls::Error> {
    for _ in 0..20 {
        let mut buf = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut buf).unwrap();
        }
        if !buf.is_empty() {
            server.read_tls(&mut &buf[..]).unwrap();
            server.process_new_packets()?;
        }
        let mut buf = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut buf).unwrap();
        }
        if !buf.is_empty() {
            client.read_tls(&mut &buf[..]).unwrap();
            client.process_new_packets()?;
        }
        if !client.is_handshaking() && !server.is_handshaking() && !client.wants_write() {
            return Ok(());
        }
    }
    Err(rustls::Error::General("handshake did not finish".into()))
}

/// A PKCS#11 element's key is sensitive and non-extractable, and the token refuses
/// C_GetAttributeValue(CKA_VALUE) on it — while the key's other attributes read fine. Returns
/// how the token refused: SoftHSM2 says `CKR_ATTRIBUTE_SENSITIVE`, tpm2-pkcs11 says
/// `CKR_ATTRIBUTE_TYPE_INVALID` (the private key exists only as a TPM-wrapped blob).
pub fn assert_key_stays_in_token(el: &Pkcs11Element, label: &str) -> AttributeInfo {
    let signer = el.generate(label).unwrap();
    let key = el.key_pair(label).unwrap();
    assert_eq!(key.public_key(), signer.public_key());
    let p = key.protection().unwrap();
    assert!(p.sensitive && !p.extractable, "{}: {p:?}", el.describe());
    assert!(
        p.always_sensitive && p.never_extractable,
        "{}: {p:?}",
        el.describe()
    );
    let value = key.probe_private(AttributeType::Value).unwrap();
    assert!(
        matches!(value, AttributeInfo::Sensitive | AttributeInfo::TypeInvalid),
        "{}: C_GetAttributeValue(CKA_VALUE) on the private key was not refused: {value:?}",
        el.describe()
    );
    // The same call for an attribute the key has is answered (the probe itself works).
    let params = key.probe_private(AttributeType::EcParams).unwrap();
    assert!(
        matches!(params, AttributeInfo::Available(10)),
        "{}: {params:?}",
        el.describe()
    );
    el.destroy(label).unwrap();
    assert!(matches!(
        el.key_pair(label),
        Err(ElementError::NoSuchKey(_))
    ));
    value
}
