//! Unit tests of `verify` (kept apart from the code they test).

use super::*;
use crate::header::IMAGE_HEADER_SIZE;
use ed25519_dalek::Signer as _;
use p256::ecdsa::signature::hazmat::PrehashSigner;

fn tlv(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut v = kind.to_le_bytes().to_vec();
    v.extend_from_slice(&(value.len() as u16).to_le_bytes());
    v.extend_from_slice(value);
    v
}

fn area(magic: u16, body: &[u8]) -> Vec<u8> {
    let mut v = magic.to_le_bytes().to_vec();
    v.extend_from_slice(&((body.len() + 4) as u16).to_le_bytes());
    v.extend_from_slice(body);
    v
}

/// A minimal image signed by `sign` over its SHA-256 digest, with a security counter.
fn image(key: &TrustedKey, sign: impl Fn(&[u8; 32]) -> Vec<u8>) -> Vec<u8> {
    image_with(key, sign, &[], None)
}

/// Like [`image`], with extra unprotected TLVs after the signature and an optional
/// signature TLV type override.
fn image_with(
    key: &TrustedKey,
    sign: impl Fn(&[u8; 32]) -> Vec<u8>,
    extra_unprotected: &[(u16, &[u8])],
    sig_kind: Option<u16>,
) -> Vec<u8> {
    let payload = b"hello, bootloader".repeat(10);
    let prot = area(0x6908, &tlv(0x50, &7u32.to_le_bytes()));
    let header = ImageHeader {
        load_addr: 0,
        hdr_size: IMAGE_HEADER_SIZE as u16,
        protect_tlv_size: prot.len() as u16,
        img_size: payload.len() as u32,
        flags: ImageFlags::default(),
        version: ImageVersion::new(1, 2, 3, 4),
    };
    let mut img = header.to_bytes().to_vec();
    img.extend_from_slice(&payload);
    img.extend_from_slice(&prot);
    let digest: [u8; 32] = Sha256::digest(&img).into();
    let sig_kind = sig_kind.unwrap_or(match key.algorithm() {
        KeyAlgorithm::EcdsaP256 => 0x22,
        KeyAlgorithm::Ed25519 => 0x24,
    });
    let mut body = tlv(0x10, &digest);
    body.extend(tlv(0x01, &key.key_hash()));
    body.extend(tlv(sig_kind, &sign(&digest)));
    for (kind, value) in extra_unprotected {
        body.extend(tlv(*kind, value));
    }
    img.extend(area(0x6907, &body));
    img
}

fn ed25519() -> (ed25519_dalek::SigningKey, TrustedKey) {
    let sk = ed25519_dalek::SigningKey::from_bytes(&[42u8; 32]);
    let pk = TrustedKey::ed25519_from_bytes(sk.verifying_key().as_bytes()).unwrap();
    (sk, pk)
}

fn p256() -> (p256::ecdsa::SigningKey, TrustedKey) {
    let sk = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
    let point = sk.verifying_key().to_sec1_point(false);
    let pk = TrustedKey::ecdsa_p256_from_sec1(point.as_bytes()).unwrap();
    (sk, pk)
}

#[test]
fn ed25519_image_verifies_and_reports_metadata() {
    let (sk, pk) = ed25519();
    let img = image(&pk, |d| sk.sign(d).to_bytes().to_vec());
    let v = verify(&img[..], &[pk]).unwrap();
    assert_eq!(v.version, ImageVersion::new(1, 2, 3, 4));
    assert_eq!(v.security_counter, Some(7));
    assert_eq!(v.signature, SignatureKind::Ed25519);
    assert_eq!(v.total_len as usize, img.len());
    // The chunked path gives the same answer as the in-place path.
    let (_, pk) = ed25519();
    let mut small = [0u8; 7];
    let w = verify_with_buffer(crate::ChunkedOnly(&img[..]), &[pk], &mut small).unwrap();
    assert_eq!(w, v);
}

#[test]
fn p256_image_verifies_with_der_signature() {
    let (sk, pk) = p256();
    let img = image(&pk, |d| {
        let sig: p256::ecdsa::Signature = sk.sign_prehash(d).unwrap();
        sig.to_der().as_bytes().to_vec()
    });
    let (_, other) = ed25519();
    let v = verify(&img[..], &[other, pk]).unwrap();
    assert_eq!(v.key_index, 1);
    assert_eq!(v.signature, SignatureKind::EcdsaP256);
}

#[test]
fn every_changed_byte_of_the_signed_region_is_caught() {
    let (sk, pk) = ed25519();
    let img = image(&pk, |d| sk.sign(d).to_bytes().to_vec());
    let total = img.len();
    for i in 0..total {
        let mut bad = img.clone();
        bad[i] ^= 0x01;
        let res = verify(&bad[..], core::slice::from_ref(&pk));
        assert!(
            res.is_err(),
            "flipping byte {i} of {total} was not detected"
        );
    }
}

#[test]
fn unknown_key_is_untrusted() {
    let (sk, pk) = ed25519();
    let img = image(&pk, |d| sk.sign(d).to_bytes().to_vec());
    let (_, other) = p256();
    assert_eq!(verify(&img[..], &[other]), Err(VerifyError::UntrustedKey));
}

#[test]
fn metadata_outside_the_protected_area_is_refused() {
    // An attacker appends an unsigned SEC_CNT or DEPENDENCY to steer rollback decisions.
    let (sk, pk) = ed25519();
    for kind in [0x50u16, 0x40, 0x74, 0xa0] {
        let value = [0u8; 12];
        let img = image_with(
            &pk,
            |d| sk.sign(d).to_bytes().to_vec(),
            &[(kind, &value[..4])],
            None,
        );
        assert_eq!(
            verify(&img[..], core::slice::from_ref(&pk)),
            Err(VerifyError::Format(FormatError::NotProtected {
                kind: TlvType::from_u16(kind)
            })),
            "TLV {kind:#x}"
        );
    }
}

#[test]
fn algorithm_confusion_is_refused() {
    // A P-256 key named, an Ed25519-typed signature TLV after it.
    let (sk, pk) = p256();
    let img = image_with(
        &pk,
        |d| {
            let sig: p256::ecdsa::Signature = sk.sign_prehash(d).unwrap();
            let mut v = sig.to_bytes().to_vec();
            v.resize(64, 0);
            v
        },
        &[],
        Some(0x24),
    );
    assert_eq!(
        verify(&img[..], &[pk]),
        Err(VerifyError::KeyAlgorithmMismatch)
    );
    // SIG_PURE on an ECDSA image.
    let (sk, pk) = p256();
    let img = image_with(
        &pk,
        |d| {
            let sig: p256::ecdsa::Signature = sk.sign_prehash(d).unwrap();
            sig.to_der().as_bytes().to_vec()
        },
        &[(0x25, &[1])],
        None,
    );
    assert_eq!(
        verify(&img[..], &[pk]),
        Err(VerifyError::PureRequiresEd25519)
    );
}

#[test]
fn duplicate_and_missing_tlvs_are_typed_errors() {
    let (sk, pk) = ed25519();
    let sign = |d: &[u8; 32]| sk.sign(d).to_bytes().to_vec();
    let img = image_with(&pk, sign, &[(0x10, &[0u8; 32])], None);
    assert_eq!(
        verify(&img[..], core::slice::from_ref(&pk)),
        Err(VerifyError::Format(FormatError::DuplicateTlv {
            kind: TlvType::Sha256
        }))
    );
    let img = image_with(&pk, sign, &[(0x32, &[0u8; 113]), (0x33, &[0u8; 80])], None);
    assert!(matches!(
        verify(&img[..], core::slice::from_ref(&pk)),
        Err(VerifyError::Format(FormatError::DuplicateTlv { .. }))
    ));
    let img = image_with(&pk, sign, &[(0x11, &[0u8; 48])], None);
    assert!(matches!(
        verify(&img[..], core::slice::from_ref(&pk)),
        Err(VerifyError::Format(FormatError::DuplicateTlv { .. }))
    ));
}
