//! Properties: the scanner never panics on any input, hostile repetitions of its anchors stay
//! within the finding cap, and a planted PEM key at any offset of random bytes is found at
//! exactly that offset.

use std::sync::OnceLock;

use ironroot_scan::{FindingKind, Scanner, Severity};
use proptest::prelude::*;

use crate::common::*;

/// One P-256 PKCS#8 PEM key by openssl, shared by all cases.
fn pem_key() -> &'static [u8] {
    static KEY: OnceLock<Vec<u8>> = OnceLock::new();
    KEY.get_or_init(|| {
        let dir = scratch();
        std::fs::read(genpkey(dir.path(), "k.pem", "EC")).unwrap()
    })
}

/// Fragments of every detector's anchors, to be glued together by the strategy.
fn fragments() -> Vec<Vec<u8>> {
    let key = pem_key();
    vec![
        key[..40].to_vec(),
        key[key.len() - 30..].to_vec(),
        b"-----BEGIN PRIVATE KEY-----".to_vec(),
        b"-----END PRIVATE KEY-----".to_vec(),
        vec![0x30, 0x82, 0x01, 0x00, 0x02, 0x01, 0x00, 0x30],
        vec![0x30, 0x77, 0x02, 0x01, 0x01, 0x04, 0x20],
        vec![
            0x30, 0x82, 0x02, 0x00, 0x30, 0x82, 0x01, 0x80, 0xa0, 0x03, 0x02, 0x01, 0x02,
        ],
        ironroot_scan::P256_OID_DER.to_vec(),
        b"AKIA".to_vec(),
        b"eyJhbGciOiJIUzI1NiJ9.".to_vec(),
        b"password=".to_vec(),
        b"$6$".to_vec(),
        b"/home/".to_vec(),
        b"admin".to_vec(),
        vec![0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef],
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..16384)) {
        let report = Scanner::new().scan(&data);
        prop_assert_eq!(report.scanned_len, data.len() as u64);
        for f in &report.findings {
            prop_assert!(f.offset + f.length <= data.len() as u64, "{:?}", f);
        }
    }

    #[test]
    fn glued_anchor_fragments_never_panic_and_respect_the_cap(
        picks in proptest::collection::vec((0usize..15, any::<u8>()), 0..400),
        cap in 1usize..64,
    ) {
        let frags = fragments();
        let mut data = Vec::new();
        for (i, b) in picks {
            data.extend_from_slice(&frags[i]);
            data.push(b);
        }
        let report = Scanner::new().max_findings(cap).scan(&data);
        prop_assert!(report.findings.len() <= cap);
    }

    #[test]
    fn planted_pem_key_is_found_at_its_offset(
        seed in any::<u64>(),
        len in 1024usize..65536,
        at in 0.0f64..1.0,
    ) {
        let key = pem_key();
        let mut rng = crate::common::Rng::seeded(seed);
        let mut data = rng.bytes(len + key.len());
        let offset = ((len as f64) * at) as usize;
        plant(&mut data, offset, key);
        let report = Scanner::new().scan(&data);
        let hit = report.findings.iter().any(|f| {
            f.kind == FindingKind::PrivateKey
                && f.severity == Severity::Critical
                && f.offset == offset as u64
        });
        prop_assert!(hit, "offset {}: {:#?}", offset, report.findings);
    }
}

#[test]
fn hostile_repetition_is_capped_and_says_so() {
    let mut rng = crate::common::Rng::new();
    let one = format!("AKIA{} ", rng.chars(BASE32, 16));
    let data: Vec<u8> = one.bytes().cycle().take(21 * 1000).collect();
    let report = Scanner::new().max_findings(100).scan(&data);
    assert_eq!(report.findings.len(), 100);
    assert!(report.truncated);
    // Uncapped, every one of the thousand is reported.
    let all = Scanner::new().scan(&data);
    assert!(!all.truncated);
    assert_eq!(all.at_least(Severity::High).count(), 1000);
}
