//! Both P-256 backends give the same verdict on the same signature bytes, and the std path
//! (`ecdsa::verify`, aws-lc-rs) agrees with the RustCrypto backend the no_std path uses.
//!
//! Valid signatures come from RustCrypto's signer and are judged by aws-lc-rs (and the reverse:
//! aws-lc-rs signatures are judged by RustCrypto), so neither backend grades itself. Without
//! `std` (`cargo test -p ironroot-image --no-default-features --lib`, run by `.ci/run`) the same
//! cases run against RustCrypto alone, through the entry point the bootloader uses.

use super::*;
use crate::keys::{EcdsaP256Key, TrustedKey};
use p256::ecdsa::signature::hazmat::PrehashSigner;
use proptest::prelude::*;
use sha2::{Digest, Sha256};

fn key(seed: u8) -> (p256::ecdsa::SigningKey, EcdsaP256Key) {
    let sk = p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap();
    let point = sk.verifying_key().to_sec1_point(false);
    let TrustedKey::EcdsaP256(pk) = TrustedKey::ecdsa_p256_from_sec1(point.as_bytes()).unwrap()
    else {
        unreachable!("a P-256 point makes a P-256 key")
    };
    (sk, pk)
}

fn digest(msg: &[u8]) -> [u8; 32] {
    Sha256::digest(msg).into()
}

fn der(sk: &p256::ecdsa::SigningKey, d: &[u8; 32]) -> Vec<u8> {
    let sig: p256::ecdsa::Signature = sk.sign_prehash(d).unwrap();
    sig.to_der().as_bytes().to_vec()
}

/// The verdict of both backends on the framed bytes, insisting they agree; also checks the
/// std entry point gives that verdict.
fn verdict(pk: &EcdsaP256Key, d: &[u8; 32], sig: &[u8]) -> bool {
    let rc = der_body(sig).is_some_and(|der| rustcrypto(pk.verifying_key(), d, der));
    #[cfg(feature = "std")]
    {
        let lc = der_body(sig).is_some_and(|der| aws_lc(pk.fast_key(), d, der));
        assert_eq!(rc, lc, "backends disagree on {sig:02x?}");
    }
    assert_eq!(
        verify(pk, d, sig),
        rc,
        "entry point disagrees on {sig:02x?}"
    );
    rc
}

/// DER INTEGER of a big-endian unsigned value: minimal, with a 0x00 before a set top bit.
fn der_int(v: &[u8]) -> Vec<u8> {
    let start = v.iter().position(|&b| b != 0).unwrap_or(v.len() - 1);
    let mut body = v[start..].to_vec();
    if body[0] & 0x80 != 0 {
        body.insert(0, 0);
    }
    let mut out = vec![0x02, body.len() as u8];
    out.extend(body);
    out
}

fn der_sig(r: &[u8], s: &[u8]) -> Vec<u8> {
    let body = [der_int(r), der_int(s)].concat();
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    out
}

/// The group order n, big-endian.
const N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

#[test]
fn valid_signatures_verify_on_both_backends() {
    let (sk, pk) = key(7);
    for msg in [&b""[..], b"image", &[0xa5; 4096]] {
        let d = digest(msg);
        assert!(verdict(&pk, &d, &der(&sk, &d)), "RustCrypto-signed");
        // imgtool --pad-sig: zero padding after the DER is accepted, on both.
        let mut padded = der(&sk, &d);
        padded.resize(72, 0);
        assert!(verdict(&pk, &d, &padded), "zero-padded");
    }
}

#[cfg(feature = "std")]
#[test]
fn aws_lc_signatures_verify_on_both_backends() {
    let (sk, pk) = key(7);
    let lc = aws_lc_rs::signature::EcdsaKeyPair::from_private_key_der(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        p256::pkcs8::EncodePrivateKey::to_pkcs8_der(&sk)
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    let d = digest(b"signed by aws-lc-rs");
    let dg = aws_lc_rs::digest::Digest::import_less_safe(&d, &aws_lc_rs::digest::SHA256).unwrap();
    let sig = lc.sign_digest(&dg).unwrap();
    assert!(verdict(&pk, &d, sig.as_ref()), "aws-lc-rs-signed");
    assert!(
        !verdict(&pk, &digest(b"other"), sig.as_ref()),
        "not for another digest"
    );
}

#[test]
fn tampered_digest_and_wrong_key_fail_on_both_backends() {
    let (sk, pk) = key(7);
    let (_, other) = key(9);
    let d = digest(b"image");
    let sig = der(&sk, &d);
    assert!(
        verdict(&pk, &d, &sig),
        "the same signature verifies untampered"
    );
    let mut bad = d;
    bad[31] ^= 1;
    assert!(!verdict(&pk, &bad, &sig), "tampered digest");
    assert!(!verdict(&other, &d, &sig), "wrong key");
}

#[test]
fn high_s_is_accepted_by_both_backends_like_openssl() {
    // ECDSA over P-256 has no low-S rule (MCUboot and imgtool use OpenSSL/mbedTLS, which accept
    // either half); the two backends must not split on it.
    let (sk, pk) = key(7);
    for msg in [&b"a"[..], b"b", b"c", b"d"] {
        let d = digest(msg);
        let sig: p256::ecdsa::Signature = sk.sign_prehash(&d).unwrap();
        let (r, s) = sig.split_scalars();
        let flipped = p256::ecdsa::Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
        assert_ne!(sig, flipped);
        assert!(verdict(&pk, &d, sig.to_der().as_bytes()), "low/original S");
        assert!(verdict(&pk, &d, flipped.to_der().as_bytes()), "n - S");
    }
}

#[test]
fn malformed_der_fails_on_both_backends_without_panicking() {
    let (sk, pk) = key(7);
    let d = digest(b"image");
    let good = der(&sk, &d);
    assert!(verdict(&pk, &d, &good), "the unmangled signature verifies");
    let sig: p256::ecdsa::Signature = sk.sign_prehash(&d).unwrap();
    let (r, s) = sig.split_bytes();
    let one = {
        let mut v = [0u8; 32];
        v[31] = 1;
        v
    };
    let mut n_plus_s = N.to_vec();
    n_plus_s.insert(0, 0);
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("one byte", vec![0x30]),
        ("r = 0", der_sig(&[0], &s)),
        ("s = 0", der_sig(&r, &[0])),
        ("r = n", der_sig(&N, &s)),
        ("s = n", der_sig(&r, &N)),
        ("r = 1, s = 1", der_sig(&one, &one)),
        ("wrong outer tag", [&[0x31][..], &good[1..]].concat()),
        ("wrong integer tag", {
            let mut v = good.clone();
            v[2] = 0x03;
            v
        }),
        ("trailing nonzero", [&good[..], &[1][..]].concat()),
        ("long-form length", {
            let mut v = vec![0x30, 0x81, good[1]];
            v.extend_from_slice(&good[2..]);
            v
        }),
        ("indefinite length", {
            let mut v = vec![0x30, 0x80];
            v.extend_from_slice(&good[2..]);
            v.extend_from_slice(&[0, 0]);
            v
        }),
        ("non-minimal r", {
            let body = [vec![0x02, 34, 0, 0], r.to_vec(), der_int(&s)].concat();
            [vec![0x30, body.len() as u8], body].concat()
        }),
        ("negative r", {
            let mut rr = r.to_vec();
            rr[0] |= 0x80;
            let body = [vec![0x02, 32], rr, der_int(&s)].concat();
            [vec![0x30, body.len() as u8], body].concat()
        }),
        ("outer length too short", {
            let mut v = good.clone();
            v[1] -= 1;
            v
        }),
        ("outer length too long", {
            let mut v = good.clone();
            v[1] += 1;
            v
        }),
        ("raw r||s, not DER", sig.to_bytes().to_vec()),
    ];
    cases.push(("truncated", good[..good.len() - 1].to_vec()));
    for (what, bytes) in &cases {
        assert!(!verdict(&pk, &d, bytes), "{what} must not verify");
    }
}

proptest! {
    #[test]
    fn mutated_signatures_get_one_verdict(
        msg in proptest::collection::vec(any::<u8>(), 0..64),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        cut in any::<usize>(),
    ) {
        let (sk, pk) = key(7);
        let d = digest(&msg);
        let mut sig = der(&sk, &d);
        for (at, b) in edits {
            let i = at % sig.len();
            sig[i] ^= b;
        }
        sig.truncate(cut % (sig.len() + 1).max(1) + 1);
        verdict(&pk, &d, &sig);
    }

    #[test]
    fn random_bytes_get_one_verdict(sig in proptest::collection::vec(any::<u8>(), 0..80)) {
        let (_, pk) = key(7);
        verdict(&pk, &digest(b"x"), &sig);
    }
}
