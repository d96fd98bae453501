//! Images signed by ironroot pass `imgtool verify`; Ed25519 images are byte-identical to
//! imgtool's for the same key, input and options.

use crate::common::*;
use crate::imgtool_signed::assert_dump_matches;
use ironroot_image::tools::{
    FileSource, HashChoice, ImageDump, PublicKeyFormat, SecurityCounter, SignOptions,
};
use ironroot_image::{Dependency, ImageVersion};

type Tweak = fn(&mut SignOptions);

/// (name, options tweak, the equivalent imgtool arguments)
fn cases() -> Vec<(&'static str, Tweak, Vec<&'static str>)> {
    vec![
        ("plain", |_| {}, vec![]),
        (
            "seccnt-auto",
            |o| o.security_counter = Some(SecurityCounter::Auto),
            vec!["-s", "auto"],
        ),
        (
            "seccnt-deps",
            |o| {
                o.security_counter = Some(SecurityCounter::Value(42));
                o.dependencies = vec![
                    Dependency {
                        image_id: 1,
                        min_version: ImageVersion::new(2, 0, 0, 0),
                    },
                    Dependency {
                        image_id: 2,
                        min_version: ImageVersion::new(0, 9, 1, 7),
                    },
                ];
            },
            vec!["-s", "42", "-d", "(1,2.0.0),(2,0.9.1+7)"],
        ),
        (
            "pad-confirm-align8",
            |o| {
                o.pad = true;
                o.confirm = true;
                o.align = 8;
            },
            vec!["--pad", "--confirm", "--align", "8"],
        ),
        (
            "pad-confirm-align32-maxalign",
            |o| {
                o.confirm = true;
                o.align = 16;
                o.max_align = Some(32);
            },
            vec!["--confirm", "--align", "16", "--max-align", "32"],
        ),
        (
            "pubkey-full",
            |o| o.public_key_format = PublicKeyFormat::Full,
            vec!["--public-key-format", "full"],
        ),
        (
            "overwrite-only-erased0",
            |o| {
                o.pad = true;
                o.overwrite_only = true;
                o.erased_val = 0;
                o.non_bootable = true;
            },
            vec!["--pad", "--overwrite-only", "-R", "0", "--non-bootable"],
        ),
        (
            "ram-load",
            |o| o.load_addr = Some(0x2000_0000),
            vec!["-L", "0x20000000"],
        ),
        (
            "rom-fixed",
            |o| o.rom_fixed = Some(0x0800_0000),
            vec!["-F", "0x08000000"],
        ),
        (
            "custom-tlv",
            |o| o.custom_tlvs = vec![(0xa0, vec![1, 2, 3]), (0x1a5, b"hello".to_vec())],
            vec![
                "--custom-tlv",
                "0xa0",
                "0x010203",
                "--custom-tlv",
                "0x1a5",
                "hello",
            ],
        ),
    ]
}

/// Cases that only apply to Ed25519 keys.
fn ed25519_cases() -> Vec<(&'static str, Tweak, Vec<&'static str>)> {
    vec![
        ("pure", |o| o.pure = true, vec!["--pure"]),
        (
            "pure-seccnt-pad",
            |o| {
                o.pure = true;
                o.security_counter = Some(SecurityCounter::Value(3));
                o.pad = true;
            },
            vec!["--pure", "-s", "3", "--pad"],
        ),
        (
            "sha512",
            |o| o.hash = HashChoice::Sha512,
            vec!["--sha", "512"],
        ),
    ]
}

#[test]
fn ironroot_signed_images_pass_imgtool_verify_and_ed25519_is_byte_identical() {
    let dir = scratch();
    let fw_bytes = firmware(9_999, 2);
    let fw = write(dir.path(), "app.bin", &fw_bytes);
    // No-header-padding input: imgtool requires the header area to be zeros.
    let mut zero_head = vec![0u8; 0x200];
    zero_head.extend_from_slice(&fw_bytes);
    let fw_zero = write(dir.path(), "app-zero.bin", &zero_head);
    for kind in ["ecdsa-p256", "ed25519"] {
        let key_path = imgtool_keygen(dir.path(), &format!("{kind}.pem"), kind);
        let key_file = load(&key_path);
        let key = key_file.private_key().unwrap();
        let mut all = cases();
        if kind == "ed25519" {
            all.extend(ed25519_cases());
        }
        for (name, tweak, args) in all {
            let mut o = default_opts();
            tweak(&mut o);
            let ours = dir.path().join(format!("{kind}-{name}.ours.bin"));
            ironroot_sign(&fw, &ours, Some(key), None, &o);
            let (ok, text) = imgtool_verify(&key_path, &ours);
            assert!(
                ok,
                "{kind} {name}: imgtool rejects ironroot's image: {text}"
            );
            let dump = ImageDump::read(FileSource::open(&ours).unwrap()).unwrap();
            assert_dump_matches(&dump, &imgtool_dump(&ours));

            let theirs = dir.path().join(format!("{kind}-{name}.imgtool.bin"));
            let mut a = vec!["sign", "-k", path(&key_path)];
            a.extend(DEFAULT_ARGS);
            a.extend(args.iter().copied());
            a.extend([path(&fw), path(&theirs)]);
            imgtool_ok(&a);
            let (ours_b, theirs_b) = (
                std::fs::read(&ours).unwrap(),
                std::fs::read(&theirs).unwrap(),
            );
            if kind == "ed25519" {
                assert!(
                    ours_b == theirs_b,
                    "{kind} {name}: not byte-identical to imgtool"
                );
            } else {
                // ECDSA signatures are randomized; everything before the TLV area is equal.
                let end = dump.header.hashed_len().unwrap() as usize;
                assert_eq!(
                    ours_b[..end],
                    theirs_b[..end],
                    "{kind} {name}: hashed region"
                );
            }
        }
        // Without --pad-header, the input carries its own zeroed header area.
        let mut o = default_opts();
        o.pad_header = false;
        let ours = dir.path().join(format!("{kind}-noheaderpad.bin"));
        ironroot_sign(&fw_zero, &ours, Some(key), None, &o);
        assert!(
            imgtool_verify(&key_path, &ours).0,
            "{kind}: no --pad-header image"
        );
    }
}
