//! Constants of weak or legacy cryptography in binary form: MD5 and SHA-1 initial values and
//! round constants, DES S-boxes and SP tables. Each table is matched in both byte orders.
//!
//! These say "this code contains the algorithm", not "the algorithm protects something": an
//! MD5 used for a non-security checksum is fine. Hence low (hashes) and medium (DES).

use memchr::memmem;

use crate::finding::{FindingKind, Severity};
use crate::scanner::Ctx;

/// MD5 and SHA-1 initial state A..D (SHA-1 adds E = 0xc3d2e1f0).
const MD_INIT: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
const SHA1_E: u32 = 0xc3d2_e1f0;
/// MD5's first four sine constants (its T table).
const MD5_T: [u32; 4] = [0xd76a_a478, 0xe8c7_b756, 0x2420_70db, 0xc1bd_ceee];
/// SHA-1 round constants K0..K3.
const SHA1_K: [u32; 4] = [0x5a82_7999, 0x6ed9_eba1, 0x8f1b_bcdc, 0xca62_c1d6];
/// DES S-box 1, first row (FIPS 46-3), one value per byte.
const DES_S1: [u8; 16] = [14, 4, 13, 1, 2, 15, 11, 8, 3, 10, 6, 12, 5, 9, 0, 7];
/// The first entries of the combined S-box/P-permutation table of table-driven DES code.
const DES_SP1: [u32; 4] = [0x0101_0400, 0x0000_0000, 0x0001_0000, 0x0101_0404];

/// How close the words of one constant set must be (literal pools are small).
const WINDOW: usize = 64;

fn words(ws: &[u32], be: bool) -> Vec<u8> {
    ws.iter()
        .flat_map(|w| if be { w.to_be_bytes() } else { w.to_le_bytes() })
        .collect()
}

fn word_near(data: &[u8], at: usize, w: u32, be: bool) -> bool {
    let lo = at.saturating_sub(WINDOW);
    let hi = (at + WINDOW).min(data.len());
    let b = if be { w.to_be_bytes() } else { w.to_le_bytes() };
    memmem::find(&data[lo..hi], &b).is_some()
}

/// Reports the constant tables.
pub(crate) fn scan(ctx: &mut Ctx<'_>) {
    let data = ctx.data;
    let mut found: Vec<(usize, usize, Severity, String)> = Vec::new();
    for be in [false, true] {
        let order = if be { "big-endian" } else { "little-endian" };
        // Initial state: all four words near each other, in any order.
        let a = if be {
            MD_INIT[0].to_be_bytes()
        } else {
            MD_INIT[0].to_le_bytes()
        };
        for at in memmem::find_iter(data, &a) {
            if MD_INIT[1..].iter().all(|&w| word_near(data, at, w, be)) {
                let what = if word_near(data, at, SHA1_E, be) {
                    "SHA-1 (or MD5) initial state"
                } else {
                    "MD5 (or MD4) initial state"
                };
                found.push((at, 4, Severity::Low, format!("{what}, {order}")));
            }
        }
        for (table, len, sev, what) in [
            (words(&MD5_T, be), 16, Severity::Low, "MD5 round constants"),
            (
                words(&SHA1_K, be),
                16,
                Severity::Low,
                "SHA-1 round constants",
            ),
            (
                words(&DES_SP1, be),
                16,
                Severity::Medium,
                "DES SP-box table",
            ),
        ] {
            for at in memmem::find_iter(data, &table) {
                found.push((at, len, sev, format!("{what}, {order}")));
            }
        }
    }
    for at in memmem::find_iter(data, &DES_S1) {
        found.push((at, 16, Severity::Medium, "DES S-box 1".into()));
    }
    for (at, len, severity, what) in found {
        ctx.push(
            FindingKind::WeakCrypto,
            severity,
            at,
            len,
            format!("{what}: legacy or broken cryptography compiled in"),
        );
    }
}
