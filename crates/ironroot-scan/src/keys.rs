//! Private keys and certificates, in PEM and in DER: a byte pattern is only a candidate; a
//! finding needs the structure to parse with the RustCrypto `pkcs8`, `sec1`, `pkcs1` and
//! `x509-cert` crates. A certificate and a private key holding the same public key make an
//! [`FindingKind::IdentityBakedIn`] finding.

use der::Decode;
use der::asn1::ObjectIdentifier;
use memchr::memmem;
use pkcs8::{EncryptedPrivateKeyInfoRef, PrivateKeyInfoRef};
use sec1::EcPrivateKey;
use x509_cert::Certificate;

use crate::finding::{FindingKind, Severity, fingerprint};
use crate::scanner::{CertHit, Ctx};

/// Largest PEM block examined (from `-----BEGIN` to the end of its `-----END` line).
pub const MAX_PEM: usize = 64 * 1024;
/// Largest DER structure examined (an RSA-8192 private key is about 4.7 KiB).
pub const MAX_DER: usize = 16 * 1024;

const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// The public half a private key holds or implies, or a certificate carries: what ties a
/// certificate to its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyMaterial {
    /// Uncompressed SEC1 point (65 bytes).
    P256(Vec<u8>),
    /// The 32-byte Ed25519 public key.
    Ed25519([u8; 32]),
    /// The RSA modulus, big-endian without leading zeros.
    Rsa(Vec<u8>),
    /// An algorithm this scanner does not derive public keys for.
    Other,
}

impl KeyMaterial {
    fn label(&self) -> &'static str {
        match self {
            KeyMaterial::P256(_) => "ecdsa-p256",
            KeyMaterial::Ed25519(_) => "ed25519",
            KeyMaterial::Rsa(_) => "rsa",
            KeyMaterial::Other => "other-algorithm",
        }
    }

    fn public_bytes(&self) -> Option<&[u8]> {
        match self {
            KeyMaterial::P256(p) | KeyMaterial::Rsa(p) => Some(p),
            KeyMaterial::Ed25519(p) => Some(p),
            KeyMaterial::Other => None,
        }
    }

    /// "ecdsa-p256, public key sha256:…" (the public key's fingerprint, never the private's).
    fn describe(&self) -> String {
        match self.public_bytes() {
            Some(p) => format!("{}, public key {}", self.label(), fingerprint(p)),
            None => self.label().to_owned(),
        }
    }
}

fn strip_zeros(b: &[u8]) -> Vec<u8> {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    b[first..].to_vec()
}

fn p256_public(scalar: &[u8]) -> Option<KeyMaterial> {
    let sk = p256::SecretKey::from_slice(scalar).ok()?;
    // P-256 does not compress points by default: this is the 65-byte `04 || X || Y` form
    // certificates carry.
    let point = sk.public_key().to_sec1_bytes();
    Some(KeyMaterial::P256(point.to_vec()))
}

pub(crate) fn p256_point(scalar: &[u8]) -> Option<Vec<u8>> {
    match p256_public(scalar)? {
        KeyMaterial::P256(p) => Some(p),
        _ => None,
    }
}

/// A validated private key: its format name and public material.
struct ParsedKey {
    format: &'static str,
    material: KeyMaterial,
}

fn parse_sec1(der: &[u8]) -> Option<ParsedKey> {
    let k = EcPrivateKey::try_from(der).ok()?;
    if !(16..=66).contains(&k.private_key.len()) {
        return None;
    }
    let curve = k.parameters.map(|sec1::EcParameters::NamedCurve(oid)| oid);
    let material = match curve {
        Some(oid) if oid != OID_P256 => KeyMaterial::Other,
        _ => p256_public(k.private_key).unwrap_or(KeyMaterial::Other),
    };
    Some(ParsedKey {
        format: "SEC1",
        material,
    })
}

fn parse_pkcs1(der: &[u8]) -> Option<ParsedKey> {
    let k = pkcs1::RsaPrivateKeyRef::try_from(der).ok()?;
    let modulus = strip_zeros(k.modulus.as_bytes());
    // Fewer than 512 bits is no RSA key anyone uses: a coincidental SEQUENCE of integers.
    if modulus.len() < 64 {
        return None;
    }
    Some(ParsedKey {
        format: "PKCS#1",
        material: KeyMaterial::Rsa(modulus),
    })
}

fn parse_pkcs8(der: &[u8]) -> Option<ParsedKey> {
    let k = PrivateKeyInfoRef::try_from(der).ok()?;
    let inner = k.private_key.as_bytes();
    let oid = k.algorithm.oid;
    let material = if oid == OID_EC_PUBLIC_KEY {
        parse_sec1(inner)?.material
    } else if oid == OID_ED25519 {
        // CurvePrivateKey ::= OCTET STRING (the 32-byte seed).
        let seed = <&der::asn1::OctetStringRef>::from_der(inner).ok()?;
        let seed: [u8; 32] = seed.as_bytes().try_into().ok()?;
        let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
        KeyMaterial::Ed25519(sk.verifying_key().to_bytes())
    } else if oid == OID_RSA {
        parse_pkcs1(inner)?.material
    } else {
        if inner.is_empty() {
            return None;
        }
        KeyMaterial::Other
    };
    Some(ParsedKey {
        format: "PKCS#8",
        material,
    })
}

fn spki_material(cert: &Certificate) -> KeyMaterial {
    let spki = cert.tbs_certificate().subject_public_key_info();
    let bits = spki.subject_public_key.raw_bytes();
    let oid = spki.algorithm.oid;
    if oid == OID_EC_PUBLIC_KEY {
        if bits.len() == 65 && bits[0] == 4 {
            return KeyMaterial::P256(bits.to_vec());
        }
    } else if oid == OID_ED25519 {
        if let Ok(pk) = <[u8; 32]>::try_from(bits) {
            return KeyMaterial::Ed25519(pk);
        }
    } else if oid == OID_RSA
        && let Ok(pk) = pkcs1::RsaPublicKeyRef::try_from(bits)
    {
        return KeyMaterial::Rsa(strip_zeros(pk.modulus.as_bytes()));
    }
    KeyMaterial::Other
}

fn parse_cert(der: &[u8]) -> Option<(KeyMaterial, String)> {
    let cert = Certificate::from_der(der).ok()?;
    let mut subject = cert.tbs_certificate().subject().to_string();
    if subject.len() > 96 {
        let mut cut = 96;
        while !subject.is_char_boundary(cut) {
            cut -= 1;
        }
        subject.truncate(cut);
        subject.push('…');
    }
    Some((spki_material(&cert), subject))
}

/// Records a validated private key found at `offset..offset+len`.
fn report_key(ctx: &mut Ctx<'_>, offset: usize, len: usize, key: ParsedKey, encoding: &str) {
    ctx.push(
        FindingKind::PrivateKey,
        Severity::Critical,
        offset,
        len,
        format!(
            "{} private key ({encoding}), {}",
            key.format,
            key.material.describe()
        ),
    );
    ctx.cover(offset, offset + len);
    ctx.add_key(offset, key.material);
}

fn report_cert(ctx: &mut Ctx<'_>, offset: usize, len: usize, der: &[u8], encoding: &str) -> bool {
    let Some((material, subject)) = parse_cert(der) else {
        return false;
    };
    ctx.push(
        FindingKind::Certificate,
        Severity::Info,
        offset,
        len,
        format!(
            "X.509 certificate ({encoding}) subject \"{subject}\", {}",
            material.describe()
        ),
    );
    ctx.cover(offset, offset + len);
    ctx.add_cert(CertHit {
        offset,
        length: len,
        material,
        subject,
    });
    true
}

/// Lenient base64 (standard alphabet): skips whitespace; `None` on any other stray byte.
pub(crate) fn base64_decode(body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in body {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            b' ' | b'\t' | b'\r' | b'\n' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Finds PEM blocks: every `-----BEGIN <label>-----` with its `-----END <label>-----`.
pub(crate) fn scan_pem(ctx: &mut Ctx<'_>) {
    let data = ctx.data;
    const BEGIN: &[u8] = b"-----BEGIN ";
    const END: &[u8] = b"-----END ";
    let end_finder = memmem::Finder::new(END);
    // The next END at or after the current BEGIN: searches resume where the last one stopped,
    // so many BEGINs without an END stay linear.
    let mut next_end: Option<usize> = None;
    let mut no_more_ends = false;
    for begin in memmem::find_iter(data, BEGIN) {
        let label_start = begin + BEGIN.len();
        let Some(label_len) = data[label_start..].iter().take(64).position(|&c| c == b'-') else {
            continue;
        };
        let label = &data[label_start..label_start + label_len];
        if label.is_empty()
            || !label.iter().all(|c| c.is_ascii_uppercase() || *c == b' ')
            || !data[label_start + label_len..].starts_with(b"-----")
        {
            continue;
        }
        let body_start = label_start + label_len + 5;
        let search = match next_end {
            Some(e) => e < body_start,
            None => !no_more_ends,
        };
        if search {
            next_end = end_finder.find(&data[body_start..]).map(|i| body_start + i);
            no_more_ends = next_end.is_none();
        }
        let is_private = label.ends_with(b"PRIVATE KEY");
        let is_cert = label == b"CERTIFICATE" || label == b"TRUSTED CERTIFICATE";
        if !is_private && !is_cert {
            continue;
        }
        let label_str = String::from_utf8_lossy(label).into_owned();
        let block = next_end.and_then(|e| {
            let tail = e + END.len();
            let closes =
                data[tail..].starts_with(label) && data[tail + label.len()..].starts_with(b"-----");
            (closes && e - begin <= MAX_PEM).then_some((e, tail + label.len() + 5))
        });
        let Some((body_end, block_end)) = block else {
            if is_private {
                marker_only(ctx, begin, body_start - begin, &label_str);
            }
            continue;
        };
        let body = &data[body_start..body_end];
        if is_private && memmem::find(body, b"ENCRYPTED").is_some() {
            // Legacy OpenSSL encryption (`Proc-Type: 4,ENCRYPTED` + DEK-Info headers).
            ctx.push(
                FindingKind::EncryptedPrivateKey,
                Severity::High,
                begin,
                block_end - begin,
                format!("PEM {label_str} with legacy OpenSSL encryption headers"),
            );
            ctx.cover(begin, block_end);
            continue;
        }
        let Some(der) = base64_decode(body) else {
            if is_private {
                marker_only(ctx, begin, block_end - begin, &label_str);
            }
            continue;
        };
        let len = block_end - begin;
        if is_cert {
            report_cert(ctx, begin, len, &der, "PEM");
            continue;
        }
        let parsed = match label {
            b"PRIVATE KEY" => parse_pkcs8(&der),
            b"EC PRIVATE KEY" => parse_sec1(&der),
            b"RSA PRIVATE KEY" => parse_pkcs1(&der),
            b"ENCRYPTED PRIVATE KEY" => {
                if EncryptedPrivateKeyInfoRef::try_from(der.as_slice()).is_ok() {
                    ctx.push(
                        FindingKind::EncryptedPrivateKey,
                        Severity::High,
                        begin,
                        len,
                        format!(
                            "PKCS#8 encrypted private key (PEM), {}: offline password guessing",
                            fingerprint(&der)
                        ),
                    );
                    ctx.cover(begin, block_end);
                } else {
                    marker_only(ctx, begin, len, &label_str);
                }
                continue;
            }
            // OpenSSH keys have their own binary format: check its magic, no deeper.
            b"OPENSSH PRIVATE KEY" => der.starts_with(b"openssh-key-v1\0").then_some(ParsedKey {
                format: "OpenSSH",
                material: KeyMaterial::Other,
            }),
            _ => der::asn1::AnyRef::from_der(&der).ok().map(|_| ParsedKey {
                format: "DER",
                material: KeyMaterial::Other,
            }),
        };
        match parsed {
            Some(key) => report_key(ctx, begin, len, key, "PEM"),
            None => marker_only(ctx, begin, len, &label_str),
        }
    }
}

/// A private-key PEM label without a valid body: usually a parser's constant string.
fn marker_only(ctx: &mut Ctx<'_>, offset: usize, len: usize, label: &str) {
    ctx.push(
        FindingKind::PrivateKey,
        Severity::Info,
        offset,
        len,
        format!("PEM marker \"{label}\" without a valid key body (a PEM parser's constant?)"),
    );
}

/// The start and total length of a DER SEQUENCE whose header ends right at `content`.
fn sequence_before(data: &[u8], content: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
    (2..=4usize).filter_map(move |hdr| {
        let start = content.checked_sub(hdr)?;
        let h = &data[start..content];
        if h[0] != 0x30 {
            return None;
        }
        let len = match (hdr, h[1]) {
            (2, l) if l < 0x80 => usize::from(l),
            (3, 0x81) if h[2] >= 0x80 => usize::from(h[2]),
            (4, 0x82) if h[2] != 0 => usize::from(u16::from_be_bytes([h[2], h[3]])),
            _ => return None,
        };
        let total = hdr + len;
        (total <= MAX_DER && start + total <= data.len()).then_some((start, total))
    })
}

/// Finds DER private keys (PKCS#8, SEC1, PKCS#1) and X.509 certificates.
pub(crate) fn scan_der(ctx: &mut Ctx<'_>) {
    let data = ctx.data;
    // Keys: a SEQUENCE whose first element is INTEGER 0 or 1 (the version).
    for version in [0u8, 1] {
        for at in memmem::find_iter(data, &[0x02, 0x01, version]) {
            let Some(&next) = data.get(at + 3) else {
                continue;
            };
            let parse: fn(&[u8]) -> Option<ParsedKey> = match (version, next) {
                (0, 0x30) | (1, 0x30) => parse_pkcs8,
                (0, 0x02) => parse_pkcs1,
                (1, 0x04) => parse_sec1,
                _ => continue,
            };
            for (start, total) in sequence_before(data, at) {
                if ctx.is_covered(start, start + total) || !ctx.take_attempt() {
                    continue;
                }
                if let Some(key) = parse(&data[start..start + total]) {
                    report_key(ctx, start, total, key, "DER");
                    break;
                }
            }
        }
    }
    // Certificates: TBSCertificate's explicit version 3 `a0 03 02 01 02`, preceded by the
    // TBSCertificate and Certificate SEQUENCE headers.
    for at in memmem::find_iter(data, &[0xa0, 0x03, 0x02, 0x01, 0x02]) {
        for (tbs_start, _) in sequence_before(data, at) {
            for (start, total) in sequence_before(data, tbs_start) {
                if ctx.is_covered(start, start + total) || !ctx.take_attempt() {
                    continue;
                }
                let der = &data[start..start + total];
                if report_cert(ctx, start, total, der, "DER") {
                    break;
                }
            }
        }
    }
}

/// A certificate and a private key for the same public key: the device identity is in the
/// image, so every copy of the firmware can impersonate the device.
pub(crate) fn match_identities(ctx: &mut Ctx<'_>) {
    let mut pairs = Vec::new();
    for cert in &ctx.certs {
        if cert.material == KeyMaterial::Other {
            continue;
        }
        if let Some(key) = ctx.keys.iter().find(|k| k.material == cert.material) {
            pairs.push((cert.offset, cert.length, key.offset, cert.subject.clone()));
        }
    }
    for (offset, length, key_offset, subject) in pairs {
        ctx.push(
            FindingKind::IdentityBakedIn,
            Severity::Critical,
            offset,
            length,
            format!(
                "certificate \"{subject}\" and its private key (at {key_offset:#x}) are both in \
                 the image: an identity baked in"
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_base64_skips_whitespace_and_refuses_stray_bytes() {
        assert_eq!(
            base64_decode(b"aGVs\r\nbG8=").as_deref(),
            Some(&b"hello"[..])
        );
        assert_eq!(base64_decode(b"aGVs bG8"), Some(b"hello".to_vec()));
        assert_eq!(base64_decode(b"aGVs*bG8="), None);
    }

    #[test]
    fn sequence_headers_are_found_in_all_three_length_forms_and_bounded() {
        // 30 05 | 02 01 00 ..: short form, content at 2.
        let short = [0x30, 0x05, 0x02, 0x01, 0x00, 0x05, 0x00];
        assert_eq!(sequence_before(&short, 2).collect::<Vec<_>>(), [(0, 7)]);
        // 30 81 80 (long form, one byte), 30 82 01 00 (two bytes).
        let mut one = vec![0x30, 0x81, 0x80];
        one.resize(3 + 0x80, 0);
        assert_eq!(sequence_before(&one, 3).collect::<Vec<_>>(), [(0, 0x83)]);
        let mut two = vec![0x30, 0x82, 0x01, 0x00];
        two.resize(4 + 0x100, 0);
        assert_eq!(sequence_before(&two, 4).collect::<Vec<_>>(), [(0, 0x104)]);
        // Non-minimal (30 81 05) and past-the-end lengths are no candidates.
        assert_eq!(
            sequence_before(&[0x30, 0x81, 0x05, 0, 0, 0, 0, 0], 3).count(),
            0
        );
        assert_eq!(sequence_before(&two[..100], 4).count(), 0);
    }
}
