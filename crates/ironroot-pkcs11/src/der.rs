//! `r || s` (what `CKM_ECDSA` returns) to the DER `ECDSA-Sig-Value` X.509 and TLS carry.

/// Encodes a fixed-width ECDSA signature `r || s` (as PKCS#11 `CKM_ECDSA` returns it) as the
/// DER `ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }`.
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) || raw.len() > 132 {
        return None;
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let r = der_uint(r);
    let s = der_uint(s);
    let body_len = r.len() + s.len();
    let mut out = Vec::with_capacity(body_len + 3);
    out.push(0x30);
    if body_len >= 0x80 {
        out.push(0x81);
    }
    out.push(body_len as u8);
    out.extend_from_slice(&r);
    out.extend_from_slice(&s);
    Some(out)
}

fn der_uint(bytes: &[u8]) -> Vec<u8> {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    let mag = &bytes[first..];
    let mut out = vec![0x02];
    let pad = mag.first().is_none_or(|&b| b & 0x80 != 0);
    out.push((mag.len() + usize::from(pad)) as u8);
    if pad {
        out.push(0);
    }
    out.extend_from_slice(mag);
    out
}
