//! The sealed software element: keys sign, stay bound to their device's HUK and their label,
//! and CSRs made through the element verify with openssl.

use std::process::Command;
use std::sync::Arc;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use ironroot_element::{
    ElementError, Huk, KeyStorage, RcgenKey, SecureElement, SoftwareElement,
};

fn dir_element(dir: &std::path::Path, huk: &[u8]) -> SoftwareElement {
    SoftwareElement::new(
        Huk::from_bytes(huk).unwrap(),
        KeyStorage::Dir(dir.join("keys")),
    )
}

#[test]
fn generated_key_signs_and_reopens_from_its_sealed_file() {
    let tmp = tempfile::tempdir().unwrap();
    let el = dir_element(tmp.path(), &[7u8; 32]);
    let key = el.generate("identity-1").unwrap();
    let sig = key.sign(b"hello").unwrap();
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key.public_key())
        .verify(b"hello", &sig)
        .expect("signature verifies under the element's public key");
    // The same device (same HUK) reopens the key after a restart.
    let again = dir_element(tmp.path(), &[7u8; 32]).open("identity-1").unwrap();
    assert_eq!(again.public_key(), key.public_key());
    // The file on disk holds no PKCS#8 plaintext: the private scalar's DER header is absent.
    let blob = std::fs::read(tmp.path().join("keys/identity-1.sealed")).unwrap();
    assert!(!blob.windows(4).any(|w| w == [0x30, 0x81, 0x87, 0x02]));
    assert!(!blob.windows(5).any(|w| w == [0x06, 0x08, 0x2a, 0x86, 0x48]));
}

#[test]
fn a_sealed_key_copied_to_another_device_or_label_does_not_open() {
    let tmp = tempfile::tempdir().unwrap();
    let el = dir_element(tmp.path(), &[1u8; 32]);
    el.generate("identity-1").unwrap();
    // Another device's HUK: refused with a typed error.
    let other = dir_element(tmp.path(), &[2u8; 32]);
    assert!(matches!(other.open("identity-1"), Err(ElementError::Unseal { .. })));
    // Renamed to another label on the same device: refused.
    let keys = tmp.path().join("keys");
    std::fs::copy(keys.join("identity-1.sealed"), keys.join("identity-2.sealed")).unwrap();
    assert!(matches!(el.open("identity-2"), Err(ElementError::Unseal { .. })));
    // One flipped byte: refused. The untouched original still opens (the path works).
    let mut blob = std::fs::read(keys.join("identity-1.sealed")).unwrap();
    let last = blob.len() - 1;
    blob[last] ^= 1;
    std::fs::write(keys.join("identity-3.sealed"), &blob).unwrap();
    assert!(matches!(el.open("identity-3"), Err(ElementError::Unseal { .. })));
    assert!(el.open("identity-1").is_ok());
}

#[test]
fn keys_are_never_replaced_and_destroyed_keys_are_gone() {
    let el = SoftwareElement::ephemeral().unwrap();
    let first = el.generate("k").unwrap();
    assert!(matches!(el.generate("k"), Err(ElementError::KeyExists(_))));
    assert_eq!(el.open("k").unwrap().public_key(), first.public_key());
    el.destroy("k").unwrap();
    assert!(matches!(el.open("k"), Err(ElementError::NoSuchKey(_))));
    assert!(matches!(el.destroy("k"), Err(ElementError::NoSuchKey(_))));
    for bad in ["", "../x", ".counter", "a/b", &"x".repeat(65)] {
        assert!(matches!(el.generate(bad), Err(ElementError::BadLabel(_))), "{bad:?}");
    }
}

#[test]
fn counter_is_monotonic_and_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let el = dir_element(tmp.path(), &[3u8; 32]);
    assert_eq!(el.counter().unwrap(), 0);
    assert_eq!(el.increment_counter().unwrap(), 1);
    assert_eq!(el.increment_counter().unwrap(), 2);
    assert_eq!(dir_element(tmp.path(), &[3u8; 32]).counter().unwrap(), 2);
}

#[test]
fn ecdh_agrees_with_the_peer() {
    use aws_lc_rs::agreement::{self, ECDH_P256, EphemeralPrivateKey, UnparsedPublicKey};
    let el = SoftwareElement::ephemeral().unwrap();
    let key = el.generate("enc").unwrap();
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let peer = EphemeralPrivateKey::generate(&ECDH_P256, &rng).unwrap();
    let peer_pub = peer.compute_public_key().unwrap();
    let ours = el.ecdh("enc", peer_pub.as_ref()).unwrap();
    let theirs = agreement::agree_ephemeral(
        peer,
        UnparsedPublicKey::new(&ECDH_P256, key.public_key()),
        (),
        |s| Ok(s.to_vec()),
    )
    .unwrap();
    assert_eq!(&ours[..], &theirs[..]);
    assert!(matches!(el.ecdh("enc", b"\x04junk"), Err(ElementError::BadPeerKey)));
}

#[test]
fn unique_ids_differ_per_huk_and_the_huk_is_never_printed() {
    let a = SoftwareElement::ephemeral().unwrap();
    let b = SoftwareElement::ephemeral().unwrap();
    assert_ne!(a.unique_id().unwrap(), b.unique_id().unwrap());
    assert_eq!(a.unique_id().unwrap(), a.unique_id().unwrap());
    let huk = Huk::from_bytes(&[0xAB; 32]).unwrap();
    assert!(!format!("{huk:?}").to_lowercase().contains("ab"));
    assert!(matches!(Huk::from_bytes(&[0; 31]), Err(ElementError::Huk(_))));
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("huk");
    Huk::create(&path).unwrap();
    assert!(matches!(Huk::create(&path), Err(ElementError::Huk(_))));
    Huk::load(&path).unwrap();
}

#[test]
fn csr_signed_inside_the_element_verifies_with_openssl() {
    let el = SoftwareElement::ephemeral().unwrap();
    let key = RcgenKey(el.generate("identity").unwrap());
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "sensor-42");
    let csr = params.serialize_request(&key).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("d.csr");
    std::fs::write(&path, csr.pem().unwrap()).unwrap();
    let out = ironroot_testkit::run_ok(
        Command::new(ironroot_testkit::tool("openssl"))
            .args(["req", "-verify", "-noout", "-subject", "-in"])
            .arg(&path),
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string()
        + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("sensor-42"), "{text}");
    assert!(text.to_lowercase().contains("verif"), "{text}");
    // A CSR whose signature bytes were altered is refused by the same oracle.
    let mut der = csr.der().to_vec();
    let n = der.len() - 3;
    der[n] ^= 0x55;
    std::fs::write(&path, &der).unwrap();
    let bad = ironroot_testkit::run(
        Command::new(ironroot_testkit::tool("openssl"))
            .args(["req", "-verify", "-noout", "-inform", "DER", "-in"])
            .arg(&path),
    );
    assert!(!bad.status.success());
    let _ = Arc::strong_count(&key.0);
}
