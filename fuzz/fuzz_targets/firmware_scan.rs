//! Fuzzes the firmware scanner on any bytes: it must never panic, every finding must lie
//! inside the input (or cover all of it, for whole-image notes), and the finding cap holds.
//!
//! Two modes, chosen by the first byte: raw (the input is the image) and glued (the input
//! picks anchor fragments of every detector and glues them with its own bytes, so the
//! fuzzer reaches the PEM, DER, OID and token paths instead of random misses).
#![no_main]

use ironroot_scan::{P256_OID_DER, Scanner};
use libfuzzer_sys::fuzz_target;

const FRAGMENTS: &[&[u8]] = &[
    b"-----BEGIN PRIVATE KEY-----\n",
    b"-----END PRIVATE KEY-----\n",
    b"-----BEGIN CERTIFICATE-----\n",
    b"-----END CERTIFICATE-----\n",
    b"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg",
    &[0x30, 0x82, 0x01, 0x00, 0x02, 0x01, 0x00, 0x30],
    &[0x30, 0x77, 0x02, 0x01, 0x01, 0x04, 0x20],
    &[
        0x30, 0x82, 0x02, 0x00, 0x30, 0x82, 0x01, 0x80, 0xa0, 0x03, 0x02, 0x01, 0x02,
    ],
    &P256_OID_DER,
    b"AKIA",
    b"eyJhbGciOiJIUzI1NiJ9.",
    b"password=",
    b"$6$",
    b"/home/",
    b"root",
    b"\0",
];

fn check(data: &[u8]) {
    let scanner = Scanner::new().max_findings(256);
    let report = scanner.scan(data);
    assert!(report.findings.len() <= 256);
    let len = data.len() as u64;
    for f in &report.findings {
        assert!(
            f.offset + f.length <= len,
            "finding outside the input: {f:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((&mode, rest)) if mode & 1 == 1 => {
            let mut glued = Vec::new();
            for pair in rest.chunks(2) {
                glued.extend_from_slice(FRAGMENTS[usize::from(pair[0]) % FRAGMENTS.len()]);
                glued.extend_from_slice(&pair[1..]);
            }
            check(&glued);
        }
        Some((_, rest)) => check(rest),
        None => {}
    }
});
