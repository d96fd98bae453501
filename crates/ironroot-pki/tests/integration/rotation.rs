//! Intermediate rotation with an overlap period.

use std::sync::Arc;

use ironroot_pki::{
    CaError, KdfParams, KeyFileError, OnlineKeyBackend, RevocationCheckingVerifier, RevocationSet,
    intermediate_common_name,
};
use rustls::server::danger::ClientCertVerifier;
use time::{Duration, OffsetDateTime};

use crate::common::*;

fn unix(t: OffsetDateTime) -> rustls::pki_types::UnixTime {
    rustls::pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        t.unix_timestamp() as u64,
    ))
}

#[test]
fn rotation_keeps_the_old_intermediate_trusted_until_the_overlap_ends() {
    let mut ca = TestCa::new();
    let (old_cert, _) = ca.issue_device("dev-old");
    let now = OffsetDateTime::now_utc();
    let written = ca
        .dir
        .rotate_intermediate(
            None,
            &pass(ROOT_PASS),
            &OnlineKeyBackend::EncryptedFile(pass(ONLINE_PASS)),
            KdfParams::MINIMUM,
            Duration::days(30),
            now,
        )
        .unwrap();
    assert!(
        written
            .iter()
            .any(|w| w.path.ends_with("intermediate-2.crt.pem"))
    );
    assert!(
        written
            .iter()
            .any(|w| w.path.ends_with("intermediate-2.key.enc"))
    );
    ca.reload();
    assert_eq!(
        ca.online.issuing().certificate().common_name(),
        intermediate_common_name(2)
    );
    let (new_cert, _) = ca.issue_device("dev-new");

    // During the overlap: both intermediates trusted, chain.pem carries both, openssl and the
    // verifier accept certificates from either.
    let trusted = ca.dir.trusted_intermediates(now).unwrap();
    assert_eq!(trusted.len(), 2);
    let until = trusted[1].trusted_until.unwrap();
    assert!((until - (now + Duration::days(30))).abs() < Duration::seconds(2));
    let chain = ca.write(
        "chain.pem",
        std::fs::read(ca.dir.path().join("chain.pem")).unwrap(),
    );
    let crls = ca.write_crls(&[], "crl.pem");
    for (name, cert) in [("old.pem", &old_cert), ("new.pem", &new_cert)] {
        let (ok, out) = openssl_verify(
            &[
                "-CAfile",
                chain.to_str().unwrap(),
                "-crl_check_all",
                "-CRLfile",
                crls.to_str().unwrap(),
            ],
            &ca.write(name, cert.pem()),
        );
        assert!(ok, "{name}: {out}");
    }
    let verifier = RevocationCheckingVerifier::new(
        &[ca.online.root().clone()],
        ca.online.device_issuers(),
        Arc::new(RevocationSet::new()),
    )
    .unwrap();
    assert!(
        verifier
            .verify_client_cert(old_cert.der(), &[], unix(now))
            .is_ok()
    );
    assert!(
        verifier
            .verify_client_cert(new_cert.der(), &[], unix(now))
            .is_ok()
    );

    // After the overlap: only the new one.
    let later = now + Duration::days(31);
    assert!(
        verifier
            .verify_client_cert(old_cert.der(), &[], unix(later))
            .is_err()
    );
    let after = ca.dir.trusted_intermediates(later).unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(
        after[0].certificate.common_name(),
        intermediate_common_name(2)
    );
    assert!(
        !ca.dir.chain_pem(later).unwrap().contains(
            &ca.online
                .intermediates()
                .nth(1)
                .unwrap()
                .0
                .certificate()
                .pem()
        )
    );
}

#[test]
fn rotation_needs_the_right_root_passphrase() {
    let ca = TestCa::new();
    let err = ca
        .dir
        .rotate_intermediate(
            None,
            &pass("not the root passphrase"),
            &OnlineKeyBackend::EncryptedFile(pass(ONLINE_PASS)),
            KdfParams::MINIMUM,
            Duration::days(30),
            OffsetDateTime::now_utc(),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            CaError::KeyFile {
                source: KeyFileError::WrongPassphraseOrTampered,
                ..
            }
        ),
        "{err}"
    );
    // Nothing changed.
    assert_eq!(
        ca.dir
            .trusted_intermediates(OffsetDateTime::now_utc())
            .unwrap()
            .len(),
        1
    );
    assert!(!ca.dir.path().join("intermediate-2.crt.pem").exists());
}

#[test]
fn root_key_can_live_elsewhere_and_init_refuses_to_overwrite() {
    let ca = TestCa::new();
    let offline = ca.path("usb-stick-root.key.enc");
    std::fs::rename(ca.dir.path().join("root.key.enc"), &offline).unwrap();
    // The online side works without the root key.
    ca.dir
        .open_online(&secrets(), OffsetDateTime::now_utc())
        .unwrap();
    let backend = OnlineKeyBackend::EncryptedFile(pass(ONLINE_PASS));
    let now = OffsetDateTime::now_utc();
    assert!(matches!(
        ca.dir.rotate_intermediate(
            None,
            &pass(ROOT_PASS),
            &backend,
            KdfParams::MINIMUM,
            Duration::days(1),
            now
        ),
        Err(CaError::Io { .. })
    ));
    ca.dir
        .rotate_intermediate(
            Some(&offline),
            &pass(ROOT_PASS),
            &backend,
            KdfParams::MINIMUM,
            Duration::days(1),
            now,
        )
        .unwrap();
    let err = ca
        .dir
        .init(
            ironroot_pki::InitOptions {
                root_passphrase: pass(ROOT_PASS),
                online: None,
                kdf: KdfParams::MINIMUM,
                hierarchy: Default::default(),
                operator: ironroot_pki::DeviceId::parse("admin").unwrap(),
            },
            now,
        )
        .unwrap_err();
    assert!(matches!(err, CaError::AlreadyInitialized(_)), "{err}");
}

#[test]
fn online_keys_refuse_a_wrong_passphrase_with_a_typed_error() {
    let ca = TestCa::new();
    let bad = ironroot_pki::OnlineSecrets {
        passphrase: Some(pass("wrong online passphrase")),
        pkcs11_pin: None,
    };
    let err = ca
        .dir
        .open_online(&bad, OffsetDateTime::now_utc())
        .unwrap_err();
    assert!(
        matches!(
            err,
            CaError::KeyFile {
                source: KeyFileError::WrongPassphraseOrTampered,
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.to_string().contains("wrong online passphrase"));
}

#[test]
fn missing_online_secrets_are_named() {
    let ca = TestCa::new();
    let err = ca
        .dir
        .open_online(&Default::default(), OffsetDateTime::now_utc())
        .unwrap_err();
    assert!(matches!(err, CaError::OnlinePassphraseMissing), "{err}");
    assert!(err.to_string().contains("IRONROOT_CA_PASSPHRASE"));
}
