//! What the probes offer: TLS cipher suites and key-exchange groups with the properties the
//! grader judges (key exchange, bulk cipher, group strength). IANA code points; names as in the
//! IANA registry so they match sslyze's and openssl's reports.

use serde::Serialize;

/// How a cipher suite agrees on keys (TLS 1.2 and earlier; TLS 1.3 suites say `Tls13`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyExchange {
    /// Ephemeral elliptic-curve Diffie-Hellman (forward secret).
    Ecdhe,
    /// Ephemeral finite-field Diffie-Hellman (forward secret).
    Dhe,
    /// Static RSA key transport: no forward secrecy.
    Rsa,
    /// Static (certificate) ECDH: no forward secrecy.
    StaticEcdh,
    /// Anonymous (unauthenticated) Diffie-Hellman.
    Anonymous,
    /// TLS 1.3: the group is negotiated separately and always ephemeral.
    Tls13,
}

/// The bulk cipher of a suite, as far as the grader cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bulk {
    /// AEAD (AES-GCM, ChaCha20-Poly1305, AES-CCM).
    Aead,
    /// CBC mode with HMAC (Lucky13, padding oracles).
    Cbc,
    /// Broken or null ciphers: RC4, 3DES, DES, export grade, NULL.
    Broken,
}

/// One cipher suite the probes know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suite {
    /// IANA code point.
    pub id: u16,
    /// IANA name.
    pub name: &'static str,
    /// Key exchange.
    pub kx: KeyExchange,
    /// Bulk cipher class.
    pub bulk: Bulk,
}

use Bulk::{Aead, Broken, Cbc};
use KeyExchange::{Anonymous, Dhe, Ecdhe, Rsa, StaticEcdh, Tls13};

const fn s(id: u16, name: &'static str, kx: KeyExchange, bulk: Bulk) -> Suite {
    Suite { id, name, kx, bulk }
}

/// TLS 1.3 suites.
pub const TLS13_SUITES: &[Suite] = &[
    s(0x1301, "TLS_AES_128_GCM_SHA256", Tls13, Aead),
    s(0x1302, "TLS_AES_256_GCM_SHA384", Tls13, Aead),
    s(0x1303, "TLS_CHACHA20_POLY1305_SHA256", Tls13, Aead),
    s(0x1304, "TLS_AES_128_CCM_SHA256", Tls13, Aead),
    s(0x1305, "TLS_AES_128_CCM_8_SHA256", Tls13, Aead),
];

/// TLS 1.2-and-earlier suites, good and bad: the probes offer all of them to see what the
/// server accepts.
pub const LEGACY_SUITES: &[Suite] = &[
    s(
        0xC02B,
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        Ecdhe,
        Aead,
    ),
    s(
        0xC02C,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        Ecdhe,
        Aead,
    ),
    s(0xC02F, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", Ecdhe, Aead),
    s(0xC030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", Ecdhe, Aead),
    s(
        0xCCA8,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        Ecdhe,
        Aead,
    ),
    s(
        0xCCA9,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        Ecdhe,
        Aead,
    ),
    s(0xC009, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", Ecdhe, Cbc),
    s(0xC00A, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", Ecdhe, Cbc),
    s(0xC013, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", Ecdhe, Cbc),
    s(0xC014, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", Ecdhe, Cbc),
    s(
        0xC023,
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
        Ecdhe,
        Cbc,
    ),
    s(
        0xC024,
        "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
        Ecdhe,
        Cbc,
    ),
    s(0xC027, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", Ecdhe, Cbc),
    s(0xC028, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", Ecdhe, Cbc),
    s(
        0xC008,
        "TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA",
        Ecdhe,
        Broken,
    ),
    s(0xC012, "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", Ecdhe, Broken),
    s(0xC007, "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA", Ecdhe, Broken),
    s(0xC011, "TLS_ECDHE_RSA_WITH_RC4_128_SHA", Ecdhe, Broken),
    s(0x009E, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", Dhe, Aead),
    s(0x009F, "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", Dhe, Aead),
    s(
        0xCCAA,
        "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        Dhe,
        Aead,
    ),
    s(0x0033, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA", Dhe, Cbc),
    s(0x0039, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA", Dhe, Cbc),
    s(0x0067, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256", Dhe, Cbc),
    s(0x006B, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256", Dhe, Cbc),
    s(0x0016, "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA", Dhe, Broken),
    s(0x009C, "TLS_RSA_WITH_AES_128_GCM_SHA256", Rsa, Aead),
    s(0x009D, "TLS_RSA_WITH_AES_256_GCM_SHA384", Rsa, Aead),
    s(0x002F, "TLS_RSA_WITH_AES_128_CBC_SHA", Rsa, Cbc),
    s(0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA", Rsa, Cbc),
    s(0x003C, "TLS_RSA_WITH_AES_128_CBC_SHA256", Rsa, Cbc),
    s(0x003D, "TLS_RSA_WITH_AES_256_CBC_SHA256", Rsa, Cbc),
    s(0x0041, "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA", Rsa, Cbc),
    s(0x0084, "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA", Rsa, Cbc),
    s(0x000A, "TLS_RSA_WITH_3DES_EDE_CBC_SHA", Rsa, Broken),
    s(0x0005, "TLS_RSA_WITH_RC4_128_SHA", Rsa, Broken),
    s(0x0004, "TLS_RSA_WITH_RC4_128_MD5", Rsa, Broken),
    s(0x0009, "TLS_RSA_WITH_DES_CBC_SHA", Rsa, Broken),
    s(0x0003, "TLS_RSA_EXPORT_WITH_RC4_40_MD5", Rsa, Broken),
    s(0x0008, "TLS_RSA_EXPORT_WITH_DES40_CBC_SHA", Rsa, Broken),
    s(0x0001, "TLS_RSA_WITH_NULL_MD5", Rsa, Broken),
    s(0x0002, "TLS_RSA_WITH_NULL_SHA", Rsa, Broken),
    s(0x003B, "TLS_RSA_WITH_NULL_SHA256", Rsa, Broken),
    s(
        0xC004,
        "TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA",
        StaticEcdh,
        Cbc,
    ),
    s(
        0xC02D,
        "TLS_ECDH_ECDSA_WITH_AES_128_GCM_SHA256",
        StaticEcdh,
        Aead,
    ),
    s(0x0034, "TLS_DH_anon_WITH_AES_128_CBC_SHA", Anonymous, Cbc),
    s(
        0x00A6,
        "TLS_DH_anon_WITH_AES_128_GCM_SHA256",
        Anonymous,
        Aead,
    ),
    s(0xC018, "TLS_ECDH_anon_WITH_AES_128_CBC_SHA", Anonymous, Cbc),
];

/// The signalling suite for secure renegotiation (RFC 5746).
pub const EMPTY_RENEGOTIATION_INFO_SCSV: u16 = 0x00FF;

/// The family of a key-exchange group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupKind {
    /// Elliptic curve (or a hybrid with one).
    Ec,
    /// Finite-field Diffie-Hellman.
    Ff,
}

/// One named group the probes know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    /// IANA code point.
    pub id: u16,
    /// IANA name.
    pub name: &'static str,
    /// Family.
    pub kind: GroupKind,
    /// Size in bits (curve order for EC, modulus for FF).
    pub bits: u16,
}

const fn g(id: u16, name: &'static str, kind: GroupKind, bits: u16) -> Group {
    Group {
        id,
        name,
        kind,
        bits,
    }
}

/// Named groups, strong and weak.
pub const GROUPS: &[Group] = &[
    g(0x11EC, "X25519MLKEM768", GroupKind::Ec, 255),
    g(0x001D, "x25519", GroupKind::Ec, 255),
    g(0x0017, "secp256r1", GroupKind::Ec, 256),
    g(0x0018, "secp384r1", GroupKind::Ec, 384),
    g(0x0019, "secp521r1", GroupKind::Ec, 521),
    g(0x001E, "x448", GroupKind::Ec, 448),
    g(0x001A, "brainpoolP256r1", GroupKind::Ec, 256),
    g(0x001B, "brainpoolP384r1", GroupKind::Ec, 384),
    g(0x001C, "brainpoolP512r1", GroupKind::Ec, 512),
    g(0x0016, "secp256k1", GroupKind::Ec, 256),
    g(0x0015, "secp224r1", GroupKind::Ec, 224),
    g(0x0014, "secp224k1", GroupKind::Ec, 224),
    g(0x0013, "secp192r1", GroupKind::Ec, 192),
    g(0x0012, "secp192k1", GroupKind::Ec, 192),
    g(0x0010, "secp160r2", GroupKind::Ec, 160),
    g(0x000F, "secp160r1", GroupKind::Ec, 160),
    g(0x0100, "ffdhe2048", GroupKind::Ff, 2048),
    g(0x0101, "ffdhe3072", GroupKind::Ff, 3072),
    g(0x0102, "ffdhe4096", GroupKind::Ff, 4096),
    g(0x0103, "ffdhe6144", GroupKind::Ff, 6144),
    g(0x0104, "ffdhe8192", GroupKind::Ff, 8192),
];

/// Smallest acceptable EC group (bits); x25519 (255) counts as 256.
pub const MIN_EC_BITS: u16 = 255;
/// Smallest acceptable finite-field DH modulus (bits).
pub const MIN_DH_BITS: u16 = 2048;

/// The suite with code point `id`, if the catalog knows it.
pub fn suite(id: u16) -> Option<&'static Suite> {
    TLS13_SUITES
        .iter()
        .chain(LEGACY_SUITES)
        .find(|s| s.id == id)
}

/// The group with code point `id`, if the catalog knows it.
pub fn group(id: u16) -> Option<&'static Group> {
    GROUPS.iter().find(|g| g.id == id)
}

/// A readable name for a suite code point (IANA name or hex).
pub fn suite_name(id: u16) -> String {
    suite(id).map_or_else(|| format!("0x{id:04X}"), |s| s.name.to_owned())
}

/// A readable name for a group code point (IANA name or hex).
pub fn group_name(id: u16) -> String {
    group(id).map_or_else(|| format!("0x{id:04X}"), |g| g.name.to_owned())
}

/// A readable name for a protocol version code point.
pub fn version_name(v: u16) -> String {
    match v {
        0x0300 => "SSLv3".into(),
        0x0301 => "TLSv1.0".into(),
        0x0302 => "TLSv1.1".into(),
        0x0303 => "TLSv1.2".into(),
        0x0304 => "TLSv1.3".into(),
        _ => format!("0x{v:04X}"),
    }
}
