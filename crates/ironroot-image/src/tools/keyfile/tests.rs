//! Unit tests of `keyfile` (kept apart from the code they test).

use super::*;

#[test]
fn generated_keys_round_trip_through_pem() {
    for kind in [KeyType::EcdsaP256, KeyType::Ed25519, KeyType::X25519] {
        let key = PrivateKey::generate(kind);
        let pem = key.to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{kind}");
        let back = KeyFile::from_pem(pem.as_bytes()).unwrap();
        assert_eq!(back.public_key(), key.public_key(), "{kind}");
        let pubpem = key.public_key().to_pem();
        let pub_back = KeyFile::from_pem(pubpem.as_bytes()).unwrap();
        assert!(matches!(pub_back, KeyFile::Public(_)));
        assert_eq!(pub_back.public_key(), key.public_key());
        assert!(matches!(
            pub_back.private_key(),
            Err(KeyFileError::NeedPrivate)
        ));
    }
}

#[test]
fn spki_lengths_match_imgtool() {
    let p = PrivateKey::generate(KeyType::EcdsaP256).public_key();
    assert_eq!(p.to_spki_der().len(), 91);
    let e = PrivateKey::generate(KeyType::Ed25519).public_key();
    assert_eq!(e.to_spki_der().len(), 44);
    assert_eq!(
        e.trusted_key().unwrap().key_hash(),
        e.key_hash(),
        "TrustedKey and PublicKey hash the same SPKI"
    );
}

#[test]
fn bad_pem_is_a_typed_error() {
    assert!(matches!(
        KeyFile::from_pem(b"garbage"),
        Err(KeyFileError::NotPem)
    ));
    let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    assert!(matches!(
        KeyFile::from_pem(cert.as_bytes()),
        Err(KeyFileError::UnsupportedLabel { .. })
    ));
    let junk = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    assert!(matches!(
        KeyFile::from_pem(junk.as_bytes()),
        Err(KeyFileError::Malformed { .. })
    ));
}

#[test]
fn password_protected_keys_round_trip() {
    let key = PrivateKey::generate(KeyType::EcdsaP256);
    let pem = key.to_encrypted_pem(b"correct horse").unwrap();
    assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    assert!(matches!(
        KeyFile::from_pem(pem.as_bytes()),
        Err(KeyFileError::PasswordRequired)
    ));
    assert!(matches!(
        KeyFile::from_pem_with_password(pem.as_bytes(), Some(b"wrong")),
        Err(KeyFileError::BadPassword)
    ));
    let back = KeyFile::from_pem_with_password(pem.as_bytes(), Some(b"correct horse")).unwrap();
    assert_eq!(back.public_key(), key.public_key());
}

#[cfg(unix)]
#[test]
fn saved_private_keys_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("ironroot-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("k.pem");
    PrivateKey::generate(KeyType::Ed25519).save(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(mode, 0o600);
}
