//! The ESP32 chain: espsecure (esptool 5) signs, its `digest-sbv2-public-key` output is burned
//! into the OTP, and the boot model accepts or refuses — key revocation of one of three
//! digests included.

use std::path::{Path, PathBuf};
use std::process::Command;

use ironroot_boot::esp::{EspStage, esp_boot, verify_esp_image};
use ironroot_boot::otp::{Otp, RamOtp};
use ironroot_esp::{SECTOR_SIZE, VerifyError};
use ironroot_testkit::{espsecure, run_ok};

fn gen_key(dir: &Path, scheme: &str, name: &str) -> PathBuf {
    let key = dir.join(format!("{name}.pem"));
    run_ok(
        Command::new(espsecure())
            .args(["generate-signing-key", "--version", "2", "--scheme", scheme])
            .arg(&key),
    );
    key
}

/// The eFuse digest as espsecure computes it.
fn esp_digest(dir: &Path, key: &Path) -> [u8; 32] {
    let out = dir.join("digest.bin");
    run_ok(
        Command::new(espsecure())
            .args(["digest-sbv2-public-key", "--keyfile"])
            .arg(key)
            .arg("--output")
            .arg(&out),
    );
    std::fs::read(&out).unwrap().try_into().unwrap()
}

/// An image of `len` bytes signed by espsecure with `keys` (one block each).
fn esp_signed(dir: &Path, name: &str, len: usize, keys: &[&Path]) -> Vec<u8> {
    let input = dir.join(format!("{name}.bin"));
    std::fs::write(
        &input,
        (0..len).map(|i| (i * 31 % 251) as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    let out = dir.join(format!("{name}.signed.bin"));
    run_ok(
        Command::new(espsecure())
            .args(["sign-data", "--version", "2", "--keyfile"])
            .args(keys)
            .arg("--output")
            .arg(&out)
            .arg(&input),
    );
    std::fs::read(&out).unwrap()
}

#[test]
fn revoking_one_of_three_digests_moves_boot_to_the_next_block() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let keys: Vec<PathBuf> = (0..3)
        .map(|i| gen_key(d, "ecdsa256", &format!("k{i}")))
        .collect();
    let key_refs: Vec<&Path> = keys.iter().map(PathBuf::as_path).collect();
    let bootloader = esp_signed(d, "bootloader", 20_000, &key_refs);
    let app = esp_signed(d, "app", 70_000, &key_refs);
    let only_k0 = esp_signed(d, "app0", 70_000, &key_refs[..1]);

    let mut otp = Otp::new(RamOtp::default()).unwrap();
    for key in &keys {
        otp.provision_key_hash(&esp_digest(d, key)).unwrap();
    }
    otp.lock().unwrap();

    let boot = esp_boot(&otp, &bootloader, &app).unwrap();
    assert_eq!((boot.bootloader.block, boot.application.block), (0, 0));
    assert_eq!(verify_esp_image(&otp, &only_k0).unwrap().block, 0);

    // Revoke key 0 (SECURE_BOOT_KEY_REVOKE0): the block-1 signature carries the boot;
    // an image signed by key 0 alone no longer boots.
    otp.revoke_key(0).unwrap();
    let boot = esp_boot(&otp, &bootloader, &app).unwrap();
    assert_eq!((boot.bootloader.block, boot.application.block), (1, 1));
    assert_eq!(
        verify_esp_image(&otp, &only_k0),
        Err(VerifyError::NoTrustedKey { blocks: 1 })
    );

    otp.revoke_key(1).unwrap();
    assert_eq!(
        esp_boot(&otp, &bootloader, &app).unwrap().application.block,
        2
    );

    otp.revoke_key(2).unwrap();
    let err = esp_boot(&otp, &bootloader, &app).unwrap_err();
    assert_eq!(err.stage, EspStage::Bootloader);
    assert_eq!(err.reason, VerifyError::NoTrustedKey { blocks: 3 });
}

#[test]
fn tampered_application_is_refused_after_the_bootloader_passes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = gen_key(d, "rsa3072", "rsa");
    let bootloader = esp_signed(d, "bootloader", 20_000, &[&key]);
    let app = esp_signed(d, "app", 50_000, &[&key]);
    let mut otp = Otp::new(RamOtp::default()).unwrap();
    otp.provision_key_hash(&esp_digest(d, &key)).unwrap();

    assert_eq!(
        esp_boot(&otp, &bootloader, &app)
            .unwrap()
            .application
            .body_len,
        53_248
    );

    let mut tampered = app.clone();
    tampered[1234] ^= 0x80;
    let err = esp_boot(&otp, &bootloader, &tampered).unwrap_err();
    assert_eq!(err.stage, EspStage::Application);
    assert_eq!(err.reason, VerifyError::ImageDigestMismatch { block: 0 });

    let mut bad_sig = app.clone();
    let body = bad_sig.len() - SECTOR_SIZE;
    bad_sig[body + 1195] ^= 0x01; // last signature byte; the CRC now fails too
    assert!(matches!(
        esp_boot(&otp, &bootloader, &bad_sig).unwrap_err().reason,
        VerifyError::NoSignatureBlock { .. }
    ));
}

#[test]
fn only_the_three_esp_digest_slots_are_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let keys: Vec<PathBuf> = (0..4)
        .map(|i| gen_key(d, "ecdsa384", &format!("k{i}")))
        .collect();
    let mut otp = Otp::new(RamOtp::default()).unwrap();
    for key in &keys {
        otp.provision_key_hash(&esp_digest(d, key)).unwrap();
    }
    // Slot 2 is an ESP digest slot; slot 3 exists in ironroot's fuse map but not on an ESP32.
    let by_k2 = esp_signed(d, "k2", 9_000, &[&keys[2]]);
    let by_k3 = esp_signed(d, "k3", 9_000, &[&keys[3]]);
    assert_eq!(verify_esp_image(&otp, &by_k2).unwrap().block, 0);
    assert_eq!(
        verify_esp_image(&otp, &by_k3),
        Err(VerifyError::NoTrustedKey { blocks: 1 })
    );
}
