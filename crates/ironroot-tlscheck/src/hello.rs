//! The hand-built ClientHello: one probe offers exactly one protocol version, one list of
//! suites, one list of groups and one list of compression methods, so the server's answer says
//! what it *accepts* — including things a modern TLS library refuses to speak.

/// Protocol version code points.
pub mod version {
    /// SSL 3.0.
    pub const SSL3: u16 = 0x0300;
    /// TLS 1.0.
    pub const TLS1_0: u16 = 0x0301;
    /// TLS 1.1.
    pub const TLS1_1: u16 = 0x0302;
    /// TLS 1.2.
    pub const TLS1_2: u16 = 0x0303;
    /// TLS 1.3.
    pub const TLS1_3: u16 = 0x0304;
}

/// Signature schemes every probe advertises (modern and legacy, so a server is never refused
/// for want of one).
const SIGNATURE_SCHEMES: &[u16] = &[
    0x0403, 0x0503, 0x0603, 0x0807, 0x0808, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601, 0x0203,
    0x0201,
];

/// Largest number of suites or groups one hello carries (keeps the message well under one
/// record; the catalog is far smaller).
pub const MAX_LIST: usize = 4096;

/// One probe's ClientHello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    /// The offered version: `legacy_version` for TLS 1.2 and earlier; for TLS 1.3 the hello
    /// says 1.2 and offers 1.3 in `supported_versions`.
    pub version: u16,
    /// Offered cipher suites, in order.
    pub suites: Vec<u16>,
    /// Offered groups (`supported_groups`); TLS 1.3 probes send an empty `key_share`, so a
    /// server that accepts a group answers with a HelloRetryRequest naming it.
    pub groups: Vec<u16>,
    /// Offered compression methods (`[0]` normally; `[1, 0]` probes for DEFLATE).
    pub compression: Vec<u8>,
    /// SNI host name (omitted when `None`).
    pub server_name: Option<String>,
    /// Send the empty `renegotiation_info` extension (RFC 5746).
    pub renegotiation_info: bool,
    /// 32 random bytes (client random; also the session id).
    pub random: [u8; 32],
}

impl ClientHello {
    /// A hello offering `version` with `suites`, all known groups of the caller's choosing, no
    /// compression, no SNI and the secure-renegotiation extension.
    pub fn new(version: u16, suites: Vec<u16>, groups: Vec<u16>, random: [u8; 32]) -> Self {
        Self {
            version,
            suites,
            groups,
            compression: vec![0],
            server_name: None,
            renegotiation_info: true,
            random,
        }
    }

    /// The complete TLS record (type 22) carrying this hello. Lists longer than [`MAX_LIST`]
    /// are cut to it; an SNI name longer than 255 bytes or not a DNS name is left out.
    pub fn encode(&self) -> Vec<u8> {
        let tls13 = self.version >= version::TLS1_3;
        let legacy = if tls13 { version::TLS1_2 } else { self.version };
        let mut body = Vec::with_capacity(512);
        put_u16(&mut body, legacy);
        body.extend_from_slice(&self.random);
        body.push(32);
        body.extend_from_slice(&self.random);
        let suites = &self.suites[..self.suites.len().min(MAX_LIST)];
        put_u16(&mut body, (suites.len() * 2) as u16);
        for s in suites {
            put_u16(&mut body, *s);
        }
        let compression = &self.compression[..self.compression.len().min(255)];
        body.push(compression.len() as u8);
        body.extend_from_slice(compression);

        let mut ext = Vec::with_capacity(256);
        if let Some(name) = self.server_name.as_deref().filter(|n| sni_allowed(n)) {
            let mut v = Vec::new();
            put_u16(&mut v, (name.len() + 3) as u16);
            v.push(0);
            put_u16(&mut v, name.len() as u16);
            v.extend_from_slice(name.as_bytes());
            put_ext(&mut ext, 0x0000, &v);
        }
        if self.version > version::SSL3 {
            let groups = &self.groups[..self.groups.len().min(MAX_LIST)];
            let mut v = Vec::new();
            put_u16(&mut v, (groups.len() * 2) as u16);
            for g in groups {
                put_u16(&mut v, *g);
            }
            put_ext(&mut ext, 0x000A, &v);
            put_ext(&mut ext, 0x000B, &[1, 0]);
            let mut v = Vec::new();
            put_u16(&mut v, (SIGNATURE_SCHEMES.len() * 2) as u16);
            for s in SIGNATURE_SCHEMES {
                put_u16(&mut v, *s);
            }
            put_ext(&mut ext, 0x000D, &v);
            put_ext(&mut ext, 0x0017, &[]);
        }
        if tls13 {
            put_ext(&mut ext, 0x002B, &[2, 0x03, 0x04]);
            put_ext(&mut ext, 0x002D, &[1, 1]);
            put_ext(&mut ext, 0x0033, &[0, 0]);
        }
        if self.renegotiation_info {
            put_ext(&mut ext, 0xFF01, &[0]);
        }
        if !ext.is_empty() {
            put_u16(&mut body, ext.len() as u16);
            body.extend_from_slice(&ext);
        }

        let mut hs = Vec::with_capacity(body.len() + 4);
        hs.push(1);
        put_u24(&mut hs, body.len());
        hs.extend_from_slice(&body);
        let mut record = Vec::with_capacity(hs.len() + 5);
        record.push(22);
        // Record version: 1.0 for everything but SSLv3 (what browsers and sslyze send).
        put_u16(
            &mut record,
            if self.version == version::SSL3 {
                version::SSL3
            } else {
                version::TLS1_0
            },
        );
        put_u16(&mut record, hs.len() as u16);
        record.extend_from_slice(&hs);
        record
    }
}

/// SNI carries DNS names only (RFC 6066: no IP literals), at most 255 bytes.
fn sni_allowed(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name.parse::<std::net::IpAddr>().is_err()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_u24(out: &mut Vec<u8>, v: usize) {
    out.extend_from_slice(&(v as u32).to_be_bytes()[1..]);
}

fn put_ext(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    put_u16(out, kind);
    put_u16(out, data.len() as u16);
    out.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_lengths_are_consistent() {
        let mut h = ClientHello::new(version::TLS1_3, vec![0x1301], vec![0x001D], [7; 32]);
        h.server_name = Some("example.org".into());
        let r = h.encode();
        assert_eq!(r[0], 22);
        assert_eq!(usize::from(u16::from_be_bytes([r[3], r[4]])), r.len() - 5);
        assert_eq!(r[5], 1);
        let hs_len = u32::from_be_bytes([0, r[6], r[7], r[8]]) as usize;
        assert_eq!(hs_len, r.len() - 9);
        // TLS 1.3 hellos say 1.2 in legacy_version.
        assert_eq!(&r[9..11], &[3, 3]);
        assert!(r.windows(11).any(|w| w == b"example.org"));
    }

    #[test]
    fn sni_is_left_out_for_ip_literals() {
        let mut h = ClientHello::new(version::TLS1_2, vec![0xC02F], vec![0x0017], [1; 32]);
        h.server_name = Some("127.0.0.1".into());
        assert!(!h.encode().windows(9).any(|w| w == b"127.0.0.1"));
    }
}
