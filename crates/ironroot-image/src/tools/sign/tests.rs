//! Unit tests of `sign` (kept apart from the code they test).

use super::*;
use crate::header::ImageVersion;
use crate::layout::Dependency;
use crate::{SignatureKind, VerifyError, unwrap_image_key, verify, verify_encrypted};
use std::io::Cursor;

fn firmware(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn sign_vec(
    input: &[u8],
    key: Option<&PrivateKey>,
    enc: Option<&PublicKey>,
    opts: &SignOptions,
) -> Result<Vec<u8>, SignError> {
    let mut out = Vec::new();
    sign(Cursor::new(input), &mut out, key, enc, opts)?;
    Ok(out)
}

fn opts() -> SignOptions {
    let mut o = SignOptions::new(ImageVersion::new(1, 2, 3, 4), 0x200, 0x20000);
    o.pad_header = true;
    o
}

#[test]
fn signed_images_verify_for_every_key_and_mode() {
    let fw = firmware(5000);
    for (kind, pure, sha) in [
        (KeyType::EcdsaP256, false, HashChoice::Auto),
        (KeyType::Ed25519, false, HashChoice::Auto),
        (KeyType::Ed25519, false, HashChoice::Sha512),
        (KeyType::Ed25519, true, HashChoice::Auto),
    ] {
        let key = PrivateKey::generate(kind);
        let mut o = opts();
        o.pure = pure;
        o.hash = sha;
        o.security_counter = Some(SecurityCounter::Auto);
        o.dependencies = vec![Dependency {
            image_id: 1,
            min_version: ImageVersion::new(2, 0, 0, 0),
        }];
        let img = sign_vec(&fw, Some(&key), None, &o).unwrap();
        let trusted = key.public_key().trusted_key().unwrap();
        let v = verify(&img[..], &[trusted]).unwrap_or_else(|e| panic!("{kind} pure={pure}: {e}"));
        assert_eq!(v.security_counter, Some(0x0102_0003));
        assert_eq!(v.dependencies.len(), 1);
        assert_eq!(v.dependencies[0].image_id, 1);
        let expect = match (kind, pure) {
            (KeyType::EcdsaP256, _) => SignatureKind::EcdsaP256,
            (_, false) => SignatureKind::Ed25519,
            (_, true) => SignatureKind::Ed25519Pure,
        };
        assert_eq!(v.signature, expect);
        assert_eq!(&img[0x200..0x200 + fw.len()], &fw[..]);
    }
}

#[test]
fn padded_image_fills_the_slot_and_confirm_sets_image_ok() {
    let key = PrivateKey::generate(KeyType::Ed25519);
    let mut o = opts();
    o.confirm = true;
    o.slot_size = 0x4000;
    let img = sign_vec(&firmware(100), Some(&key), None, &o).unwrap();
    assert_eq!(img.len(), 0x4000);
    let info = TrailerLayout::new(1, None, None, false, None).unwrap();
    assert_eq!(img[img.len() - 16..], info.magic());
    assert_eq!(img[img.len() - 24], 1);
    assert!(verify(&img[..], &[key.public_key().trusted_key().unwrap()]).is_ok());
}

#[test]
fn encrypted_image_verifies_only_after_decryption() {
    let fw = firmware(3001);
    let signer = PrivateKey::generate(KeyType::EcdsaP256);
    let device = PrivateKey::generate(KeyType::EcdsaP256);
    let img = sign_vec(&fw, Some(&signer), Some(&device.public_key()), &opts()).unwrap();
    let trusted = [signer.public_key().trusted_key().unwrap()];
    assert_ne!(
        &img[0x200..0x200 + fw.len()],
        &fw[..],
        "payload must be encrypted"
    );
    assert_eq!(verify(&img[..], &trusted), Err(VerifyError::HashMismatch));
    let dk = device.decryption_key().unwrap();
    let key = unwrap_image_key(&img[..], &dk).unwrap();
    let v = verify_encrypted(&img[..], &trusted, &key).unwrap();
    assert!(v.flags.contains(ImageFlags::ENCRYPTED_AES128));
    // imgtool pads header + payload to a multiple of 16 before encrypting.
    assert_eq!(v.header.img_size, 3008);
}

#[test]
fn option_errors_are_typed() {
    let p256 = PrivateKey::generate(KeyType::EcdsaP256);
    let fw = firmware(64);
    let mut o = opts();
    o.pure = true;
    assert!(matches!(
        sign_vec(&fw, Some(&p256), None, &o),
        Err(SignError::PureRequiresEd25519)
    ));
    let mut o = opts();
    o.hash = HashChoice::Sha512;
    assert!(matches!(
        sign_vec(&fw, Some(&p256), None, &o),
        Err(SignError::HashNotAllowed { .. })
    ));
    let mut o = opts();
    o.pad_header = false;
    assert!(matches!(
        sign_vec(&fw, Some(&p256), None, &o),
        Err(SignError::InputShorterThanHeader { .. })
    ));
    let big = firmware(0x1000);
    assert!(matches!(
        sign_vec(&big, Some(&p256), None, &o),
        Err(SignError::HeaderNotZero(0x200))
    ));
    let mut o = opts();
    o.slot_size = 0x300;
    assert!(matches!(
        sign_vec(&fw, Some(&p256), None, &o),
        Err(SignError::DoesNotFitSlot { .. })
    ));
    let x = PrivateKey::generate(KeyType::X25519);
    assert!(matches!(
        sign_vec(&fw, Some(&p256), Some(&x.public_key()), &opts()),
        Err(SignError::EncryptionKeyMismatch)
    ));
    let mut o = opts();
    o.custom_tlvs = vec![(0x10, vec![1])];
    assert!(matches!(
        sign_vec(&fw, Some(&p256), None, &o),
        Err(SignError::BadCustomTlv(0x10))
    ));
}
