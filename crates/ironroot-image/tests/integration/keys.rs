//! Keys made by either tool load in the other, with the same public key and key hash.

use std::process::Command;

use crate::common::*;
use ironroot_image::tools::{KeyFile, KeyType, PrivateKey};
use ironroot_image::verify;

const KINDS: [(&str, KeyType); 3] = [
    ("ecdsa-p256", KeyType::EcdsaP256),
    ("ed25519", KeyType::Ed25519),
    ("x25519", KeyType::X25519),
];

#[test]
fn imgtool_keys_load_in_ironroot() {
    let dir = scratch();
    for (name, kind) in KINDS {
        let p = imgtool_keygen(dir.path(), &format!("{name}.pem"), name);
        let k = load(&p);
        assert!(matches!(k, KeyFile::Private(_)), "{name}");
        assert_eq!(k.public_key().key_type(), kind);
        let pem = imgtool_ok(&["getpub", "-k", path(&p), "-e", "pem"]);
        assert_eq!(k.public_key().to_pem(), pem, "{name}: public PEM");
        let raw = dir.path().join(format!("{name}.pub.der"));
        imgtool_ok(&["getpub", "-k", path(&p), "-e", "raw", "-o", path(&raw)]);
        assert_eq!(
            k.public_key().to_spki_der(),
            std::fs::read(&raw).unwrap(),
            "{name}: SPKI"
        );
        let hash = dir.path().join(format!("{name}.hash"));
        imgtool_ok(&["getpubhash", "-k", path(&p), "-e", "raw", "-o", path(&hash)]);
        assert_eq!(
            k.public_key().key_hash().to_vec(),
            std::fs::read(&hash).unwrap(),
            "{name}: hash"
        );
        // A public-only PEM written by imgtool loads as a public key.
        let pub_pem = write(dir.path(), &format!("{name}.pub.pem"), pem.as_bytes());
        let pk = load(&pub_pem);
        assert!(matches!(pk, KeyFile::Public(_)), "{name}");
        assert_eq!(pk.public_key(), k.public_key());
    }
}

#[test]
fn ironroot_keys_load_in_imgtool_and_sign_there() {
    let dir = scratch();
    let fw = write(dir.path(), "app.bin", &firmware(2048, 3));
    for (name, kind) in KINDS {
        let key = PrivateKey::generate(kind);
        let p = dir.path().join(format!("{name}.pem"));
        key.save(&p).unwrap();
        let pem = imgtool_ok(&["getpub", "-k", path(&p), "-e", "pem"]);
        assert_eq!(pem, key.public_key().to_pem(), "{name}");
        assert_eq!(imgtool_ok(&["keyinfo", "-k", path(&p)]).trim(), "private");
        // Public PEM written by ironroot loads in imgtool.
        let pub_pem = write(
            dir.path(),
            &format!("{name}.pub.pem"),
            key.public_key().to_pem().as_bytes(),
        );
        assert_eq!(
            imgtool_ok(&["keyinfo", "-k", path(&pub_pem)]).trim(),
            "public"
        );
        if kind == KeyType::X25519 {
            continue;
        }
        let out = dir.path().join(format!("{name}.signed.bin"));
        let mut args = vec!["sign", "-k", path(&p)];
        args.extend(DEFAULT_ARGS);
        args.extend([path(&fw), path(&out)]);
        imgtool_ok(&args);
        let img = std::fs::read(&out).unwrap();
        verify(&img[..], &[key.public_key().trusted_key().unwrap()])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // imgtool verifies with ironroot's public-only PEM.
        assert!(imgtool_verify(&pub_pem, &out).0, "{name}");
    }
}

#[test]
fn openssl_sec1_keys_load_in_both() {
    let dir = scratch();
    let p = dir.path().join("sec1.pem");
    ironroot_testkit::run_ok(
        Command::new(ironroot_testkit::tool("openssl"))
            .args([
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
            ])
            .arg(&p),
    );
    assert!(
        std::fs::read_to_string(&p)
            .unwrap()
            .contains("BEGIN EC PRIVATE KEY")
    );
    let k = load(&p);
    let pem = imgtool_ok(&["getpub", "-k", path(&p), "-e", "pem"]);
    assert_eq!(k.public_key().to_pem(), pem);
    // And a P-384 key is refused with a clear error, not misread.
    let p384 = dir.path().join("p384.pem");
    ironroot_testkit::run_ok(
        Command::new(ironroot_testkit::tool("openssl"))
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-384",
                "-out",
            ])
            .arg(&p384),
    );
    let err = KeyFile::load(&p384).unwrap_err().to_string();
    assert!(err.contains("ecdsa-p384"), "{err}");
}
