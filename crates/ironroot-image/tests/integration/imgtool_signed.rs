//! Images signed by imgtool verify with ironroot, and ironroot's dump agrees field by field
//! with `imgtool dumpinfo`.

use serde_json::Value;

use crate::common::*;
use ironroot_image::tools::{FileSource, ImageDump, TlvRecord};
use ironroot_image::{HashAlgorithm, SignatureKind, TlvType, verify};

/// (name, imgtool key type, extra imgtool sign arguments)
const CASES: &[(&str, &str, &[&str])] = &[
    ("p256", "ecdsa-p256", &[]),
    ("p256-seccnt-auto", "ecdsa-p256", &["-s", "auto"]),
    (
        "p256-seccnt-deps",
        "ecdsa-p256",
        &["-s", "42", "-d", "(1,2.0.0),(2,0.9.1+7)"],
    ),
    (
        "p256-pad-confirm",
        "ecdsa-p256",
        &["--pad", "--confirm", "--align", "8"],
    ),
    (
        "p256-pubkey-full",
        "ecdsa-p256",
        &["--public-key-format", "full"],
    ),
    ("p256-pad-sig", "ecdsa-p256", &["--pad-sig"]),
    ("ed25519", "ed25519", &[]),
    (
        "ed25519-seccnt-deps",
        "ed25519",
        &["-s", "auto", "-d", "(0,1.0.0)"],
    ),
    (
        "ed25519-pad-confirm-32",
        "ed25519",
        &["--pad", "--confirm", "--align", "32"],
    ),
    ("ed25519-pure", "ed25519", &["--pure"]),
    (
        "ed25519-pure-pad",
        "ed25519",
        &["--pure", "-s", "3", "--pad", "--test"],
    ),
    ("ed25519-sha512", "ed25519", &["--sha", "512"]),
    (
        "ed25519-flags-uuids",
        "ed25519",
        &[
            "--non-bootable",
            "-L",
            "0x20000000",
            "--vid",
            "example.com",
            "--cid",
            "sensor",
        ],
    ),
    (
        "ed25519-custom-tlv",
        "ed25519",
        &["--custom-tlv", "0xa0", "0x0102", "-R", "0"],
    ),
];

fn u64_of(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn tlvs_match(ours: &[TlvRecord], theirs: &Value, what: &str) {
    let theirs = theirs.as_array().expect("tlv list");
    assert_eq!(ours.len(), theirs.len(), "{what}: number of TLVs");
    for (o, t) in ours.iter().zip(theirs) {
        assert_eq!(
            u64::from(o.kind.to_u16()),
            u64_of(&t["type"]),
            "{what}: type"
        );
        assert_eq!(o.kind.name(), t["type_name"], "{what}: type name");
        assert_eq!(o.data.len() as u64, u64_of(&t["len"]), "{what}: len");
        assert_eq!(hex(&o.data), t["data"], "{what}: data");
    }
}

/// Every field `imgtool dumpinfo` reports equals ironroot's.
pub fn assert_dump_matches(d: &ImageDump, j: &Value) {
    let h = &j["header"];
    assert_eq!(u64_of(&h["magic"]), u64::from(ironroot_image::IMAGE_MAGIC));
    assert_eq!(u64_of(&h["load_addr"]), u64::from(d.header.load_addr));
    assert_eq!(u64_of(&h["hdr_size"]), u64::from(d.header.hdr_size));
    assert_eq!(
        u64_of(&h["protected_tlv_size"]),
        u64::from(d.header.protect_tlv_size)
    );
    assert_eq!(u64_of(&h["img_size"]), u64::from(d.header.img_size));
    assert_eq!(u64_of(&h["flags"]), u64::from(d.header.flags.0));
    assert_eq!(h["version"], d.header.version.to_string());
    let a = &j["tlv_area"];
    match &d.protected {
        Some((info, list)) => {
            assert_eq!(u64_of(&a["tlv_hdr_prot"]["magic"]), u64::from(info.magic));
            assert_eq!(
                u64_of(&a["tlv_hdr_prot"]["tlv_tot"]),
                u64::from(info.tlv_tot)
            );
            tlvs_match(list, &a["tlvs_prot"], "protected");
        }
        None => {
            assert_eq!(a["tlv_hdr_prot"], serde_json::json!({}));
            assert_eq!(a["tlvs_prot"], serde_json::json!([]));
        }
    }
    assert_eq!(u64_of(&a["tlv_hdr"]["magic"]), u64::from(d.main.0.magic));
    assert_eq!(
        u64_of(&a["tlv_hdr"]["tlv_tot"]),
        u64::from(d.main.0.tlv_tot)
    );
    tlvs_match(&d.main.1, &a["tlvs"], "main");
    let t = &j["trailer"];
    match &d.trailer {
        None => assert_eq!(t, &serde_json::json!({})),
        Some(tr) => {
            assert_eq!(t["magic"], hex(&tr.magic));
            let opt = |v: &Value| v.as_u64();
            assert_eq!(opt(&t["image_ok"]), tr.image_ok.map(u64::from));
            assert_eq!(opt(&t["copy_done"]), tr.copy_done.map(u64::from));
            assert_eq!(opt(&t["swap_info"]), tr.swap_info.map(u64::from));
            assert_eq!(opt(&t["swap_size"]), tr.swap_size.map(u64::from));
            assert_eq!(opt(&t["key_field_len"]), tr.key_field_len.map(u64::from));
        }
    }
}

#[test]
fn imgtool_signed_images_verify_and_dumps_agree() {
    let dir = scratch();
    let fw = write(dir.path(), "app.bin", &firmware(10_000, 1));
    let p256 = imgtool_keygen(dir.path(), "p256.pem", "ecdsa-p256");
    let ed = imgtool_keygen(dir.path(), "ed.pem", "ed25519");
    for (name, kind, extra) in CASES {
        let key = if *kind == "ed25519" { &ed } else { &p256 };
        let out = dir.path().join(format!("{name}.bin"));
        let mut args = vec!["sign", "-k", path(key)];
        args.extend(DEFAULT_ARGS);
        args.extend(extra.iter().copied());
        args.extend([path(&fw), path(&out)]);
        imgtool_ok(&args);

        let bytes = std::fs::read(&out).unwrap();
        let v = verify(&bytes[..], &[trusted(key)])
            .unwrap_or_else(|e| panic!("{name}: imgtool image rejected: {e}"));
        let j = imgtool_dump(&out);
        let dump = ImageDump::read(FileSource::open(&out).unwrap()).unwrap();
        assert_dump_matches(&dump, &j);

        // Reported metadata agrees with imgtool's view of the same bytes.
        assert_eq!(j["header"]["version"], v.version.to_string(), "{name}");
        assert_eq!(
            u64::from(v.flags.0),
            u64_of(&j["header"]["flags"]),
            "{name}"
        );
        let prot = j["tlv_area"]["tlvs_prot"].as_array().unwrap();
        let sec = prot.iter().find(|t| t["type_name"] == "SEC_CNT").map(|t| {
            let d = t["data"].as_str().unwrap();
            u32::from_str_radix(
                &format!("{}{}{}{}", &d[6..8], &d[4..6], &d[2..4], &d[0..2]),
                16,
            )
            .unwrap()
        });
        assert_eq!(v.security_counter, sec, "{name}");
        let deps: Vec<&Value> = prot
            .iter()
            .filter(|t| t["type_name"] == "DEPENDENCY")
            .collect();
        assert_eq!(v.dependencies.len(), deps.len(), "{name}");
        for (ours, theirs) in v.dependencies.iter().zip(deps) {
            assert_eq!(hex(&ours.to_tlv()), theirs["data"], "{name}");
        }
        let tlvs = j["tlv_area"]["tlvs"].as_array().unwrap();
        let pure = tlvs.iter().any(|t| t["type_name"] == "SIG_PURE");
        let expect_sig = match (*kind, pure) {
            ("ecdsa-p256", _) => SignatureKind::EcdsaP256,
            (_, false) => SignatureKind::Ed25519,
            (_, true) => SignatureKind::Ed25519Pure,
        };
        assert_eq!(v.signature, expect_sig, "{name}");
        let tlv_end = u64_of(&j["header"]["hdr_size"])
            + u64_of(&j["header"]["img_size"])
            + u64_of(&j["header"]["protected_tlv_size"])
            + u64_of(&j["tlv_area"]["tlv_hdr"]["tlv_tot"]);
        assert_eq!(u64::from(v.total_len), tlv_end, "{name}");
        if let Some(sha) = tlvs.iter().find(|t| t["type_name"] == "SHA256") {
            assert_eq!(v.hash_algorithm, Some(HashAlgorithm::Sha256));
            assert_eq!(sha["data"], hex(&v.digest), "{name}");
            // imgtool verify prints the same digest.
            let (ok, text) = imgtool_verify(key, &out);
            assert!(ok, "{name}: {text}");
            assert!(
                text.contains(&format!("Image digest: {}", hex(&v.digest))),
                "{text}"
            );
        }
        if name.contains("uuids") {
            assert!(v.vendor_id.is_some() && v.class_id.is_some(), "{name}");
            assert_eq!(v.flags.0 & 0x30, 0x30, "{name}: NON_BOOTABLE | RAM_LOAD");
        }
        if name.contains("custom") {
            assert!(prot.iter().any(|t| t["type"] == 0xa0));
            assert!(
                dump.protected
                    .as_ref()
                    .unwrap()
                    .1
                    .iter()
                    .any(|t| t.kind == TlvType::Other(0xa0))
            );
        }
    }
}
