//! Every class of tampering is rejected by ironroot, and by imgtool where imgtool checks it.

use std::path::Path;

use crate::common::*;
use ironroot_image::tools::{FileSource, ImageDump, SecurityCounter};
use ironroot_image::{TlvType, VerifyError, verify};

/// Offset of the first TLV value of `kind` in the image.
pub fn tlv_value_offset(img: &Path, kind: TlvType) -> usize {
    let d = ImageDump::read(FileSource::open(img).unwrap()).unwrap();
    let mut off = usize::from(d.header.hdr_size) + d.header.img_size as usize;
    let mut areas = Vec::new();
    if let Some((_, list)) = &d.protected {
        areas.push(list.clone());
    }
    areas.push(d.main.1.clone());
    for list in areas {
        off += 4;
        for t in list {
            if t.kind == kind {
                return off + 4;
            }
            off += 4 + t.data.len();
        }
    }
    panic!("no {kind} TLV");
}

/// (class, byte offset to flip, error ironroot must report, whether imgtool detects it)
type Case = (
    &'static str,
    usize,
    VerifyError<ironroot_image::OutOfBounds>,
    bool,
);

fn cases(img: &Path, hash_kind: TlvType, sig_kind: TlvType, key_kind: TlvType) -> Vec<Case> {
    vec![
        ("header version", 20, VerifyError::HashMismatch, true),
        ("header img flags", 16, VerifyError::HashMismatch, true),
        ("payload byte", 0x200 + 100, VerifyError::HashMismatch, true),
        (
            "protected TLV (security counter)",
            tlv_value_offset(img, TlvType::SecCnt),
            VerifyError::HashMismatch,
            true,
        ),
        (
            "hash TLV",
            tlv_value_offset(img, hash_kind),
            VerifyError::HashMismatch,
            true,
        ),
        (
            "signature",
            tlv_value_offset(img, sig_kind) + 10,
            VerifyError::BadSignature,
            true,
        ),
        // imgtool's verify ignores the KEYHASH TLV (it tries the given key directly), so it
        // accepts this change; MCUboot and ironroot use KEYHASH to pick the key and refuse.
        (
            "key hash",
            tlv_value_offset(img, key_kind) + 3,
            VerifyError::UntrustedKey,
            false,
        ),
    ]
}

fn check_image(dir: &Path, tag: &str, img: &Path, key: &Path, sig_kind: TlvType) {
    let good = std::fs::read(img).unwrap();
    let trusted = [trusted(key)];
    verify(&good[..], &trusted).unwrap_or_else(|e| panic!("{tag}: untampered image fails: {e}"));
    assert!(imgtool_verify(key, img).0, "{tag}");
    for (class, off, expect, imgtool_detects) in
        cases(img, TlvType::Sha256, sig_kind, TlvType::KeyHash)
    {
        let mut bad = good.clone();
        bad[off] ^= 0x40;
        assert_eq!(verify(&bad[..], &trusted), Err(expect), "{tag}: {class}");
        let p = write(dir, &format!("{tag}-tampered.bin"), &bad);
        let (ok, text) = imgtool_verify(key, &p);
        assert_eq!(!ok, imgtool_detects, "{tag}: imgtool on {class}: {text}");
    }
    // Truncation anywhere is a typed format error, never a panic or a pass.
    for cut in [0, 10, 31, 0x200, good.len() / 2, good.len() - 1] {
        let r = verify(&good[..cut], &trusted);
        assert!(
            matches!(r, Err(VerifyError::Format(_))),
            "{tag}: truncated at {cut}: {r:?}"
        );
    }
}

#[test]
fn tampering_is_rejected_by_both_tools() {
    let dir = scratch();
    let fw = write(dir.path(), "app.bin", &firmware(4096, 6));
    for (kind, sig_kind) in [
        ("ecdsa-p256", TlvType::EcdsaSig),
        ("ed25519", TlvType::Ed25519),
    ] {
        let key = imgtool_keygen(dir.path(), &format!("{kind}.pem"), kind);
        // Signed by imgtool.
        let theirs = dir.path().join(format!("{kind}-imgtool.bin"));
        let mut args = vec!["sign", "-k", path(&key), "-s", "auto"];
        args.extend(DEFAULT_ARGS);
        args.extend([path(&fw), path(&theirs)]);
        imgtool_ok(&args);
        check_image(
            dir.path(),
            &format!("{kind}-imgtool"),
            &theirs,
            &key,
            sig_kind,
        );
        // Signed by ironroot.
        let ours = dir.path().join(format!("{kind}-ironroot.bin"));
        let mut o = default_opts();
        o.security_counter = Some(SecurityCounter::Auto);
        let k = load(&key);
        ironroot_sign(&fw, &ours, Some(k.private_key().unwrap()), None, &o);
        check_image(
            dir.path(),
            &format!("{kind}-ironroot"),
            &ours,
            &key,
            sig_kind,
        );
    }
}

#[test]
fn swapped_key_is_rejected_by_both_tools() {
    let dir = scratch();
    let fw = write(dir.path(), "app.bin", &firmware(4096, 7));
    for kind in ["ecdsa-p256", "ed25519"] {
        let legit = imgtool_keygen(dir.path(), &format!("{kind}-legit.pem"), kind);
        let attacker = imgtool_keygen(dir.path(), &format!("{kind}-attacker.pem"), kind);
        // The attacker signs a well-formed image with their own key (and its key hash).
        let img = dir.path().join(format!("{kind}-attacker.bin"));
        let mut args = vec!["sign", "-k", path(&attacker)];
        args.extend(DEFAULT_ARGS);
        args.extend([path(&fw), path(&img)]);
        imgtool_ok(&args);
        let bytes = std::fs::read(&img).unwrap();
        assert_eq!(
            verify(&bytes[..], &[trusted(&legit)]),
            Err(VerifyError::UntrustedKey),
            "{kind}"
        );
        let (ok, text) = imgtool_verify(&legit, &img);
        assert!(!ok, "{kind}: imgtool accepted a foreign key: {text}");
        // The attacker also rewrites KEYHASH to name the legitimate key: the signature fails.
        let mut forged = bytes.clone();
        let off = tlv_value_offset(&img, TlvType::KeyHash);
        forged[off..off + 32].copy_from_slice(&trusted(&legit).key_hash());
        assert_eq!(
            verify(&forged[..], &[trusted(&legit)]),
            Err(VerifyError::BadSignature),
            "{kind}"
        );
        let p = write(dir.path(), &format!("{kind}-forged.bin"), &forged);
        assert!(!imgtool_verify(&legit, &p).0, "{kind}");
        // With both keys trusted, the image verifies and reports which key signed it.
        let v = verify(&bytes[..], &[trusted(&legit), trusted(&attacker)]).unwrap();
        assert_eq!(v.key_index, 1);
    }
}
