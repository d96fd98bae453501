//! Encrypted images: imgtool's decrypt with ironroot to the original payload, and ironroot's
//! decrypt with an independent Python `cryptography` oracle (imgtool has no decrypt command).

use std::path::Path;
use std::process::Command;

use crate::common::*;
use ironroot_image::tools::{DecryptOutput, FileSource, ImageDump, decrypt_image};
use ironroot_image::{
    AesKeySize, ImageFlags, VerifyError, unwrap_image_key, verify, verify_encrypted,
};

/// (signing key type, encryption key type, extra imgtool args)
const CASES: &[(&str, &str, &[&str])] = &[
    ("ecdsa-p256", "ecdsa-p256", &[]),
    (
        "ecdsa-p256",
        "ecdsa-p256",
        &["--encrypt-keylen", "256", "-s", "auto"],
    ),
    ("ed25519", "x25519", &[]),
    (
        "ed25519",
        "x25519",
        &["--hmac-sha", "512", "--pad", "--confirm"],
    ),
    ("ed25519", "ecdsa-p256", &["--encrypt-keylen", "256"]),
];

fn oracle_decrypt(key: &Path, img: &Path, out: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration/mcuboot_decrypt.py");
    ironroot_testkit::run_ok(
        Command::new(ironroot_testkit::python())
            .arg(script)
            .args([key, img, out]),
    );
}

/// Checks an encrypted image both ways: ironroot's decryption, and the oracle's.
fn check(
    dir: &Path,
    tag: &str,
    img: &Path,
    fw: &[u8],
    signer: &Path,
    enc_key: &Path,
    keylen: usize,
) {
    let bytes = std::fs::read(img).unwrap();
    let key = trusted(signer);
    let dk = load(enc_key)
        .private_key()
        .unwrap()
        .decryption_key()
        .unwrap();
    // Still encrypted: the signature covers the plaintext, so plain verification fails.
    assert_eq!(
        verify(&bytes[..], std::slice::from_ref(&key)),
        Err(VerifyError::HashMismatch),
        "{tag}"
    );
    let image_key = unwrap_image_key(&bytes[..], &dk).unwrap();
    assert_eq!(image_key.as_bytes().len(), keylen, "{tag}");
    let v = verify_encrypted(&bytes[..], std::slice::from_ref(&key), &image_key)
        .unwrap_or_else(|e| panic!("{tag}: {e}"));
    assert!(v.flags.is_encrypted(), "{tag}");
    assert_eq!(
        v.flags.contains(ImageFlags::ENCRYPTED_AES256),
        keylen == 32,
        "{tag}"
    );
    // Payload decrypts to the firmware plus imgtool's zero padding to 16 bytes.
    let mut payload = Vec::new();
    decrypt_image(
        FileSource::open(img).unwrap(),
        &mut payload,
        &dk,
        DecryptOutput::Payload,
    )
    .unwrap();
    assert_eq!(&payload[..fw.len()], fw, "{tag}: payload");
    assert!(
        payload[fw.len()..].iter().all(|&b| b == 0),
        "{tag}: padding"
    );
    // The whole decrypted image verifies with both tools.
    let ours = dir.join(format!("{tag}.ironroot-dec.bin"));
    decrypt_image(
        FileSource::open(img).unwrap(),
        std::fs::File::create(&ours).unwrap(),
        &dk,
        DecryptOutput::Image,
    )
    .unwrap();
    let dec = std::fs::read(&ours).unwrap();
    assert_eq!(
        verify(&dec[..], std::slice::from_ref(&key)).unwrap().digest,
        v.digest,
        "{tag}"
    );
    assert!(
        imgtool_verify(signer, &ours).0,
        "{tag}: imgtool rejects ironroot-decrypted image"
    );
    // The independent oracle agrees byte for byte.
    let theirs = dir.join(format!("{tag}.oracle-dec.bin"));
    oracle_decrypt(enc_key, img, &theirs);
    assert!(
        std::fs::read(&theirs).unwrap() == dec,
        "{tag}: oracle and ironroot differ"
    );
    // A wrong device key is refused by the MAC check, not decrypted into garbage.
    let other = ironroot_image::tools::PrivateKey::generate(load(enc_key).public_key().key_type());
    assert!(
        unwrap_image_key(&bytes[..], &other.decryption_key().unwrap()).is_err(),
        "{tag}"
    );
}

#[test]
fn imgtool_encrypted_images_decrypt_with_ironroot() {
    let dir = scratch();
    let fw_bytes = firmware(7_777, 4);
    let fw = write(dir.path(), "app.bin", &fw_bytes);
    for (i, (sig, enc, extra)) in CASES.iter().enumerate() {
        let signer = imgtool_keygen(dir.path(), &format!("s{i}.pem"), sig);
        let enc_key = imgtool_keygen(dir.path(), &format!("e{i}.pem"), enc);
        let img = dir.path().join(format!("imgtool-{i}.bin"));
        let mut args = vec!["sign", "-k", path(&signer), "-E", path(&enc_key)];
        args.extend(DEFAULT_ARGS);
        args.extend(extra.iter().copied());
        args.extend([path(&fw), path(&img)]);
        imgtool_ok(&args);
        // imgtool itself cannot verify encrypted images: it hashes the ciphertext.
        let (ok, text) = imgtool_verify(&signer, &img);
        assert!(!ok && text.contains("invalid hash"), "{text}");
        let keylen = if extra.contains(&"256") && extra.contains(&"--encrypt-keylen") {
            32
        } else {
            16
        };
        check(
            dir.path(),
            &format!("imgtool-{i}"),
            &img,
            &fw_bytes,
            &signer,
            &enc_key,
            keylen,
        );
    }
}

#[test]
fn ironroot_encrypted_images_decrypt_with_the_oracle() {
    let dir = scratch();
    let fw_bytes = firmware(7_777, 5);
    let fw = write(dir.path(), "app.bin", &fw_bytes);
    for (i, (sig, enc, extra)) in CASES.iter().enumerate() {
        let signer = imgtool_keygen(dir.path(), &format!("s{i}.pem"), sig);
        let enc_key = imgtool_keygen(dir.path(), &format!("e{i}.pem"), enc);
        let mut o = default_opts();
        if extra.contains(&"--encrypt-keylen") {
            o.encrypt_keylen = AesKeySize::Aes256;
        }
        if extra.contains(&"--hmac-sha") {
            o.hmac_sha = ironroot_image::tools::HmacSha::Sha512;
        }
        if extra.contains(&"--confirm") {
            o.confirm = true;
        }
        if extra.contains(&"-s") {
            o.security_counter = Some(ironroot_image::tools::SecurityCounter::Auto);
        }
        let img = dir.path().join(format!("ironroot-{i}.bin"));
        let signing = load(&signer);
        ironroot_sign(
            &fw,
            &img,
            Some(signing.private_key().unwrap()),
            Some(&load(&enc_key).public_key()),
            &o,
        );
        // Same structure as imgtool's for the same options (sizes, flags, TLV types).
        let dump = ImageDump::read(FileSource::open(&img).unwrap()).unwrap();
        let j = imgtool_dump(&img);
        crate::imgtool_signed::assert_dump_matches(&dump, &j);
        let keylen = o.encrypt_keylen.key_len();
        check(
            dir.path(),
            &format!("ironroot-{i}"),
            &img,
            &fw_bytes,
            &signer,
            &enc_key,
            keylen,
        );
    }
}
