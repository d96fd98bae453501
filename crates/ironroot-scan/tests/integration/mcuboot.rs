//! MCUboot images made by `imgtool sign` (the oracle of the format): the container is
//! recognised through `ironroot-image`, findings in the payload carry file offsets, the
//! image's own metadata (hash, signature, full public key TLV) is no finding, and an
//! encrypted payload is reported as unscannable.

use ironroot_scan::{Container, FindingKind, Region, Scanner, Severity};

use crate::common::*;

const HEADER: usize = 0x200;

fn sign(dir: &std::path::Path, payload: &[u8], extra: &[&str]) -> Vec<u8> {
    let key = dir.join("sign.pem");
    if !key.exists() {
        imgtool(&["keygen", "-k", p(&key), "-t", "ecdsa-p256"]);
    }
    let app = dir.join("app.bin");
    let out = dir.join("app.signed.bin");
    std::fs::write(&app, payload).unwrap();
    let mut args = vec![
        "sign",
        "-k",
        p(&key),
        "--align",
        "4",
        "-v",
        "1.2.3",
        "-H",
        "0x200",
        "--pad-header",
        "-S",
        "0x80000",
    ];
    args.extend_from_slice(extra);
    args.extend([p(&app), p(&out)]);
    imgtool(&args);
    std::fs::read(&out).unwrap()
}

#[test]
fn key_in_a_signed_payload_is_found_at_its_file_offset_and_clean_images_are_silent() {
    let dir = scratch();
    let d = dir.path();
    let mut rng = Rng::new();
    let payload = clean_firmware(&mut rng, 96 * 1024);
    for extra in [&[][..], &["--public-key-format", "full"][..]] {
        let image = sign(d, &payload, extra);
        let report = Scanner::new().scan(&image);
        assert_eq!(
            report.container,
            Container::Mcuboot {
                payload: Region {
                    offset: HEADER as u64,
                    len: payload.len() as u64
                },
                encrypted: false
            }
        );
        assert_eq!(report.findings, [], "clean signed image {extra:?}");
    }

    let key = std::fs::read(genpkey(d, "device.pem", "EC")).unwrap();
    let mut planted = payload.clone();
    let at = 0x4321;
    plant(&mut planted, at, &key);
    let image = sign(d, &planted, &[]);
    let report = Scanner::new().scan(&image);
    expect(
        &report,
        FindingKind::PrivateKey,
        Severity::Critical,
        HEADER + at,
    );
    assert_eq!(report.at_least(Severity::High).count(), 1);
}

#[test]
fn encrypted_payload_is_reported_as_not_scannable() {
    let dir = scratch();
    let d = dir.path();
    let enc = d.join("enc.pem");
    imgtool(&["keygen", "-k", p(&enc), "-t", "ecdsa-p256"]);
    let enc_pub = d.join("enc_pub.pem");
    imgtool(&["getpub", "-k", p(&enc), "-e", "pem", "-o", p(&enc_pub)]);
    let mut rng = Rng::new();
    let mut payload = clean_firmware(&mut rng, 32 * 1024);
    plant(
        &mut payload,
        0x100,
        &std::fs::read(genpkey(d, "device.pem", "EC")).unwrap(),
    );
    // Plaintext: the key is found.
    let plain = sign(d, &payload, &[]);
    expect(
        &Scanner::new().scan(&plain),
        FindingKind::PrivateKey,
        Severity::Critical,
        HEADER + 0x100,
    );
    // Encrypted: the ciphertext hides it, and the report says the payload was not scannable.
    let image = sign(d, &payload, &["-E", p(&enc_pub)]);
    let report = Scanner::new().scan(&image);
    assert!(
        matches!(
            report.container,
            Container::Mcuboot {
                encrypted: true,
                ..
            }
        ),
        "{:?}",
        report.container
    );
    let f = expect(&report, FindingKind::Container, Severity::Info, HEADER);
    assert!(f.detail.contains("encrypted"), "{f:?}");
    assert!(!report.fails(Severity::Low), "{:#?}", report.findings);
}
