//! The token path against SoftHSM2 (a fresh token; the body runs in a child process that sees
//! it through `SOFTHSM2_CONF`): key usage separation, the session pool under concurrency,
//! typed errors.

use std::sync::Arc;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use ironroot_pkcs11::{Pin, Pkcs11Error, Token};
use ironroot_testkit::child::{in_child, run_in_child};
use ironroot_testkit::softhsm::SoftHsm;

const TOKEN: &str = "pkcs11-test";
const PIN: &str = "2468";

#[test]
fn keys_sign_concurrently_derive_only_when_asked_and_errors_are_typed() {
    if !in_child() {
        let hsm = SoftHsm::new(TOKEN, "12345678", PIN);
        run_in_child(
            "keys_sign_concurrently_derive_only_when_asked_and_errors_are_typed",
            &hsm.env(),
        );
        return;
    }
    let module = SoftHsm::module();
    assert!(matches!(
        Token::open(&module, "absent", &Pin::new(PIN.into())),
        Err(Pkcs11Error::TokenNotFound(_))
    ));
    let token = Token::open(&module, TOKEN, &Pin::new(PIN.into()))
        .unwrap()
        .sessions_per_key(4);
    assert!(!token.serial_number().is_empty());
    assert!(token.model().contains("SoftHSM"), "{}", token.model());
    assert!(token.has_ecdh());

    // A signing-only key (how the CA makes its keys) refuses ECDH; a key made for ECDH agrees.
    let ca = token.generate("ca-key", false).unwrap();
    let peer = aws_lc_rs::agreement::EphemeralPrivateKey::generate(
        &aws_lc_rs::agreement::ECDH_P256,
        &aws_lc_rs::rand::SystemRandom::new(),
    )
    .unwrap();
    let peer_pub = peer.compute_public_key().unwrap();
    assert!(matches!(
        ca.ecdh(peer_pub.as_ref()),
        Err(Pkcs11Error::Unsupported { .. })
    ));
    let dev = token.generate("dev-key", true).unwrap();
    let ours = dev.ecdh(peer_pub.as_ref()).unwrap().unwrap();
    let theirs = aws_lc_rs::agreement::agree_ephemeral(
        peer,
        aws_lc_rs::agreement::UnparsedPublicKey::new(
            &aws_lc_rs::agreement::ECDH_P256,
            dev.public_key(),
        ),
        (),
        |s| Ok(s.to_vec()),
    )
    .unwrap();
    assert_eq!(&ours[..], &theirs[..]);
    assert!(dev.ecdh(&[0x04; 65]).unwrap().is_none());

    // Four threads sign through the pool at once; every signature verifies.
    let ca = Arc::new(ca);
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            let ca = ca.clone();
            std::thread::spawn(move || {
                for i in 0..50u8 {
                    let msg = [t, i];
                    let sig = ca.sign(&msg).unwrap();
                    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, ca.public_key())
                        .verify(&msg, &sig)
                        .expect("pooled signature verifies");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }

    // Taken labels, destroyed keys, missing keys: typed errors.
    assert!(matches!(
        token.generate("ca-key", false),
        Err(Pkcs11Error::KeyExists { .. })
    ));
    token.destroy("ca-key").unwrap();
    assert!(matches!(
        token.open_key("ca-key"),
        Err(Pkcs11Error::NoSuchKey { .. })
    ));
    assert!(matches!(
        token.destroy("ca-key"),
        Err(Pkcs11Error::NoSuchKey { .. })
    ));
    assert!(!format!("{token:?}").contains(PIN));
}
