//! Raw EC private scalars next to the P-256 curve OID: firmware that stores a key as
//! `{ curve OID, 32 bytes }` (or a SEC1 structure with its header mangled) has no DER for
//! the key parsers to find, but the OID `1.2.840.10045.3.1.7` marks the spot.
//!
//! A candidate is the 32 bytes right after the encoded OID (after an `04 20` header if there
//! is one) or right before it (before SEC1's `a0 0a` if there is one); it
//! must look random (at least 20 distinct byte values, not mostly printable text) and be a
//! valid scalar (0 < d < n).
//! An OID that opens a SubjectPublicKeyInfo is a public key and is skipped, as is anything
//! inside a structure the key parsers already reported. When the public point of the
//! scalar is also nearby the finding is critical; otherwise it is high.

use memchr::memmem;

use crate::finding::{FindingKind, Severity, fingerprint};
use crate::keys::p256_point;
use crate::scanner::Ctx;

/// DER of OID 1.2.840.10045.3.1.7 (prime256v1 / secp256r1) with its tag and length.
pub const P256_OID_DER: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// `SEQUENCE { SEQUENCE { OID id-ecPublicKey` … : the bytes before the curve OID in an SPKI
/// (the first length byte is free).
const SPKI_PREFIX_TAIL: [u8; 11] = [
    0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
];
/// How far around the OID the scalar's public point is looked for.
const POINT_WINDOW: usize = 512;

/// At least 20 distinct byte values, and not text: random bytes are about 37% printable
/// ASCII (12 of 32), so more than 24 printable bytes is a string table, not a scalar.
fn looks_random(b: &[u8]) -> bool {
    if b.iter()
        .filter(|c| c.is_ascii_graphic() || **c == b' ')
        .count()
        > 24
    {
        return false;
    }
    let mut seen = [false; 256];
    let mut distinct = 0;
    for &x in b {
        if !seen[usize::from(x)] {
            seen[usize::from(x)] = true;
            distinct += 1;
        }
    }
    distinct >= 20
}

fn opens_spki(data: &[u8], oid_at: usize) -> bool {
    oid_at >= 13 && data[oid_at - 11..oid_at] == SPKI_PREFIX_TAIL && data[oid_at - 13] == 0x30
}

/// Reports raw P-256 scalars next to curve OIDs.
pub(crate) fn scan(ctx: &mut Ctx<'_>) {
    let data = ctx.data;
    for oid_at in memmem::find_iter(data, &P256_OID_DER) {
        let oid_end = oid_at + P256_OID_DER.len();
        if opens_spki(data, oid_at) || ctx.is_covered(oid_at, oid_end) {
            continue;
        }
        // A 2-byte header (`04 20` after, SEC1's `a0 0a` before) says exactly where the
        // scalar is; without one, the scalar is taken to touch the OID.
        let header_after = data.get(oid_end..oid_end + 2) == Some(&[0x04, 0x20][..]);
        let header_before = oid_at >= 2 && data[oid_at - 2] == 0xa0 && data[oid_at - 1] == 0x0a;
        let candidates = [
            if header_after {
                Some(oid_end + 2)
            } else {
                Some(oid_end)
            },
            if header_before {
                oid_at.checked_sub(34)
            } else {
                oid_at.checked_sub(32)
            },
        ];
        // Both sides may hold random-looking bytes; one whose public point is nearby wins.
        let mut best: Option<(usize, Vec<u8>, bool)> = None;
        for start in candidates.into_iter().flatten() {
            let end = start + 32;
            if end > data.len() || ctx.is_covered(start, end) {
                continue;
            }
            let scalar = &data[start..end];
            if !looks_random(scalar) {
                continue;
            }
            let Some(point) = p256_point(scalar) else {
                continue;
            };
            let lo = oid_at.saturating_sub(POINT_WINDOW);
            let hi = (oid_end + POINT_WINDOW).min(data.len());
            let paired = memmem::find(&data[lo..hi], &point[1..33]).is_some();
            if best.as_ref().is_none_or(|b| paired && !b.2) {
                best = Some((start, point, paired));
            }
        }
        let Some((start, point, paired)) = best else {
            continue;
        };
        let (severity, what) = if paired {
            (Severity::Critical, "with its public point nearby")
        } else {
            (Severity::High, "(no matching public point nearby)")
        };
        ctx.push(
            FindingKind::RawEcScalar,
            severity,
            start,
            32,
            format!(
                "32-byte P-256 scalar next to the curve OID at {oid_at:#x} {what}, public key {}",
                fingerprint(&point)
            ),
        );
        ctx.cover(start, start + 32);
    }
}
