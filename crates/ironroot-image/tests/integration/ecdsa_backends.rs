//! The std P-256 backend (aws-lc-rs) on whole images, judged by imgtool (OpenSSL through
//! `cryptography`): a valid image and its high-S twin verify in both tools; a malformed DER
//! signature and a wrong key are refused by both. (`src/ecdsa/tests.rs` shows the no_std
//! RustCrypto backend gives the same verdict as aws-lc-rs on the same bytes.)

use crate::common::*;
use crate::tamper::tlv_value_offset;
use ironroot_image::tools::KeyFile;
use ironroot_image::{SignatureKind, TlvType, VerifyError, verify};

/// An ironroot-signed P-256 image and the offset of its signature TLV value.
fn signed(dir: &std::path::Path, key: &KeyFile) -> (Vec<u8>, usize) {
    let fw = write(dir, "fw.bin", &firmware(4096, 7));
    let img = dir.join("signed.bin");
    ironroot_sign(
        &fw,
        &img,
        Some(key.private_key().unwrap()),
        None,
        &default_opts(),
    );
    let off = tlv_value_offset(&img, TlvType::EcdsaSig);
    (std::fs::read(&img).unwrap(), off)
}

/// `image` with its signature TLV value (at `off`) replaced by `sig`, fixing the TLV length
/// and the unprotected TLV area's total length (neither is hashed).
fn replace_sig(image: &[u8], off: usize, sig: &[u8]) -> Vec<u8> {
    let le16 = |at: usize| usize::from(u16::from_le_bytes([image[at], image[at + 1]]));
    let old = le16(off - 2);
    let hdr = le16(8);
    let prot = le16(10);
    let img_size = u32::from_le_bytes(image[12..16].try_into().unwrap()) as usize;
    let area = hdr + img_size + prot;
    assert_eq!(le16(area), 0x6907, "unprotected TLV area magic");
    let mut out = image[..off].to_vec();
    out.extend_from_slice(sig);
    out.extend_from_slice(&image[off + old..]);
    out[off - 2..off].copy_from_slice(&(sig.len() as u16).to_le_bytes());
    let tot = le16(area + 2) + sig.len() - old;
    out[area + 2..area + 4].copy_from_slice(&(tot as u16).to_le_bytes());
    out
}

/// The DER signature at `off` and its high-S twin (r, n - s).
fn sig_and_twin(image: &[u8], off: usize) -> (Vec<u8>, Vec<u8>) {
    let len = usize::from(image[off + 1]) + 2;
    let sig = p256::ecdsa::Signature::from_der(&image[off..off + len]).unwrap();
    let (r, s) = sig.split_scalars();
    let twin = p256::ecdsa::Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
    (
        image[off..off + len].to_vec(),
        twin.to_der().as_bytes().to_vec(),
    )
}

#[test]
fn p256_verdicts_match_imgtool_for_valid_high_s_malformed_and_wrong_key() {
    let dir = scratch();
    let kpath = imgtool_keygen(dir.path(), "p256.pem", "ecdsa-p256");
    let key = load(&kpath);
    let signer = [trusted(&kpath)];
    let (image, off) = signed(dir.path(), &key);
    let (sig, twin) = sig_and_twin(&image, off);
    assert_eq!(
        replace_sig(&image, off, &sig),
        image,
        "re-packing is the identity"
    );

    let valid = write(dir.path(), "valid.bin", &image);
    assert_eq!(
        verify(&image[..], &signer).unwrap().signature,
        SignatureKind::EcdsaP256
    );
    assert!(
        imgtool_verify(&kpath, &valid).0,
        "imgtool accepts the original"
    );

    let high_s = replace_sig(&image, off, &twin);
    assert_ne!(high_s, image);
    let high_s_path = write(dir.path(), "high-s.bin", &high_s);
    let (imgtool_ok, text) = imgtool_verify(&kpath, &high_s_path);
    assert!(imgtool_ok, "imgtool accepts n - s: {text}");
    assert!(verify(&high_s[..], &signer).is_ok(), "ironroot agrees");

    let mut bad_der = image.clone();
    bad_der[off] = 0x31; // SET, not SEQUENCE
    let bad_path = write(dir.path(), "bad-der.bin", &bad_der);
    assert!(
        !imgtool_verify(&kpath, &bad_path).0,
        "imgtool refuses bad DER"
    );
    assert_eq!(
        verify(&bad_der[..], &signer).unwrap_err(),
        VerifyError::BadSignature
    );

    // Another key of the same algorithm: imgtool refuses it, ironroot finds no trusted key
    // (the KEYHASH names the signer); trusting the other key too still verifies by the signer.
    let other = imgtool_keygen(dir.path(), "other.pem", "ecdsa-p256");
    assert!(
        !imgtool_verify(&other, &valid).0,
        "imgtool refuses the wrong key"
    );
    assert!(verify(&image[..], &[trusted(&other)]).is_err());
    assert!(verify(&image[..], &[trusted(&other), signer[0].clone()]).is_ok());
}
