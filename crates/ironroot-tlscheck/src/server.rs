//! The parser of the server's first flight (untrusted bytes): records → handshake messages →
//! ServerHello / HelloRetryRequest / ServerKeyExchange / CertificateRequest, or an Alert.
//! [`parse_flight`] is called on everything received so far and says "need more" until the
//! flight is complete; it never panics and never reads past [`MAX_FLIGHT`] bytes.

use crate::error::ParseError;

/// Most bytes of a first flight the parser looks at (a long certificate chain fits).
pub const MAX_FLIGHT: usize = 256 * 1024;

/// SHA-256("HelloRetryRequest"): the ServerHello random that marks a HelloRetryRequest.
const HRR_RANDOM: [u8; 32] = [
    0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
    0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
];

/// What the server said in its ServerHello (or HelloRetryRequest).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerHello {
    /// The negotiated version (`supported_versions` if present, else `legacy_version`).
    pub version: u16,
    /// The chosen cipher suite.
    pub suite: u16,
    /// The chosen compression method.
    pub compression: u8,
    /// True for a HelloRetryRequest (TLS 1.3: the server wants a key share for `group`).
    pub retry: bool,
    /// The group named in `key_share` (TLS 1.3).
    pub group: Option<u16>,
    /// The server sent `renegotiation_info` (RFC 5746 secure renegotiation).
    pub renegotiation_info: bool,
}

/// The key exchange parameters of a TLS 1.2-and-earlier ServerKeyExchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKx {
    /// ECDHE over the named group.
    Named(u16),
    /// Finite-field DHE with a prime of this many bits.
    Dh {
        /// Bits of the prime `p`.
        bits: u16,
    },
}

/// The server's answer to one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The server accepted the hello.
    Hello {
        /// Its ServerHello.
        hello: ServerHello,
        /// ServerKeyExchange parameters (TLS 1.2 and earlier, (EC)DHE suites).
        kx: Option<ServerKx>,
        /// The server sent CertificateRequest (TLS 1.2 and earlier: plaintext).
        certificate_request: bool,
    },
    /// The server refused with an alert.
    Alert {
        /// Alert level (1 warning, 2 fatal).
        level: u8,
        /// Alert description (40 handshake_failure, 70 protocol_version, ...).
        description: u8,
    },
}

/// Parses a complete first flight from `buf`, or returns `Ok(None)` when more bytes are needed.
pub fn parse_flight(buf: &[u8]) -> Result<Option<Answer>, ParseError> {
    if buf.len() > MAX_FLIGHT {
        return Err(ParseError::TooLong);
    }
    let mut handshake = Vec::new();
    let mut rest = buf;
    let mut hello: Option<ServerHello> = None;
    let mut kx = None;
    let mut certificate_request = false;
    loop {
        // Consume whole handshake messages accumulated so far.
        let mut at = 0;
        while handshake.len() - at >= 4 {
            let kind = handshake[at];
            let len =
                u32::from_be_bytes([0, handshake[at + 1], handshake[at + 2], handshake[at + 3]])
                    as usize;
            if handshake.len() - at - 4 < len {
                break;
            }
            let body = &handshake[at + 4..at + 4 + len];
            at += 4 + len;
            match (kind, &hello) {
                (2, None) => {
                    let h = parse_server_hello(body)?;
                    let done = h.retry || h.version >= crate::hello::version::TLS1_3;
                    hello = Some(h);
                    if done {
                        // TLS 1.3: everything after ServerHello is encrypted.
                        return Ok(Some(Answer::Hello {
                            hello: hello.unwrap_or_default(),
                            kx: None,
                            certificate_request: false,
                        }));
                    }
                }
                (_, None) => {
                    return Err(ParseError::Unexpected(
                        "handshake message before ServerHello",
                    ));
                }
                (11, Some(_)) => {}
                (12, Some(h)) => kx = parse_server_kx(h.suite, body)?,
                (13, Some(_)) => certificate_request = true,
                (14, Some(_)) => {
                    return Ok(Some(Answer::Hello {
                        hello: hello.unwrap_or_default(),
                        kx,
                        certificate_request,
                    }));
                }
                // CertificateStatus and others: not needed.
                (_, Some(_)) => {}
            }
        }
        handshake.drain(..at);

        if rest.len() < 5 {
            return Ok(None);
        }
        let kind = rest[0];
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        if len > 16384 + 2048 {
            return Err(ParseError::BadLength("record"));
        }
        if rest.len() - 5 < len {
            return Ok(None);
        }
        let fragment = &rest[5..5 + len];
        rest = &rest[5 + len..];
        match kind {
            21 => {
                if fragment.len() < 2 {
                    return Err(ParseError::BadLength("alert"));
                }
                return Ok(Some(Answer::Alert {
                    level: fragment[0],
                    description: fragment[1],
                }));
            }
            22 => handshake.extend_from_slice(fragment),
            20 => {}
            _ => return Err(ParseError::Unexpected("record type")),
        }
    }
}

/// A cursor over untrusted bytes: every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ParseError> {
        if self.0.len() < n {
            return Err(ParseError::BadLength(what));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, ParseError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, ParseError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
}

fn parse_server_hello(body: &[u8]) -> Result<ServerHello, ParseError> {
    let mut r = Reader(body);
    let legacy = r.u16("server_version")?;
    let random = r.take(32, "random")?;
    let sid = usize::from(r.u8("session_id")?);
    r.take(sid, "session_id")?;
    let mut h = ServerHello {
        version: legacy,
        suite: r.u16("cipher_suite")?,
        compression: r.u8("compression_method")?,
        retry: random == HRR_RANDOM,
        ..ServerHello::default()
    };
    if r.0.is_empty() {
        return Ok(h);
    }
    let ext_len = usize::from(r.u16("extensions")?);
    let mut ext = Reader(r.take(ext_len, "extensions")?);
    while !ext.0.is_empty() {
        let kind = ext.u16("extension type")?;
        let len = usize::from(ext.u16("extension length")?);
        let mut data = Reader(ext.take(len, "extension")?);
        match kind {
            0x002B => h.version = data.u16("supported_versions")?,
            0x0033 => h.group = Some(data.u16("key_share")?),
            0xFF01 => h.renegotiation_info = true,
            _ => {}
        }
    }
    Ok(h)
}

fn parse_server_kx(suite: u16, body: &[u8]) -> Result<Option<ServerKx>, ParseError> {
    use crate::catalog::KeyExchange;
    let mut r = Reader(body);
    match crate::catalog::suite(suite).map(|s| s.kx) {
        Some(KeyExchange::Ecdhe) => {
            if r.u8("curve_type")? != 3 {
                return Err(ParseError::Unexpected("explicit curve parameters"));
            }
            Ok(Some(ServerKx::Named(r.u16("named_curve")?)))
        }
        Some(KeyExchange::Dhe) => {
            let len = usize::from(r.u16("dh_p")?);
            let p = r.take(len, "dh_p")?;
            let significant = p.iter().position(|b| *b != 0).map_or(0, |i| p.len() - i);
            let bits = significant.saturating_mul(8).saturating_sub(
                p.get(p.len() - significant)
                    .map_or(8, |b| b.leading_zeros() as usize),
            );
            Ok(Some(ServerKx::Dh {
                bits: u16::try_from(bits).unwrap_or(u16::MAX),
            }))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: u8, data: &[u8]) -> Vec<u8> {
        let mut v = vec![kind, 3, 3];
        v.extend_from_slice(&(data.len() as u16).to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    fn hs(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![kind];
        v.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        v.extend_from_slice(body);
        v
    }

    fn server_hello(version: u16, suite: u16, ext: &[u8]) -> Vec<u8> {
        let mut b = version.to_be_bytes().to_vec();
        b.extend_from_slice(&[9; 32]);
        b.push(0);
        b.extend_from_slice(&suite.to_be_bytes());
        b.push(0);
        b.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        b.extend_from_slice(ext);
        b
    }

    #[test]
    fn tls12_flight_split_across_records_is_parsed_once_complete() {
        let mut kx = vec![3, 0x00, 0x17, 65];
        kx.extend_from_slice(&[4; 65]);
        let mut msgs = hs(2, &server_hello(0x0303, 0xC02F, &[0xFF, 0x01, 0, 1, 0]));
        msgs.extend(hs(11, &[0, 0, 0]));
        msgs.extend(hs(12, &kx));
        msgs.extend(hs(13, &[1, 1, 0, 0, 0, 0]));
        msgs.extend(hs(14, &[]));
        let (a, b) = msgs.split_at(30);
        let mut flight = record(22, a);
        let second = record(22, b);
        assert_eq!(parse_flight(&flight).unwrap(), None);
        flight.extend_from_slice(&second[..7]);
        assert_eq!(parse_flight(&flight).unwrap(), None);
        flight.extend_from_slice(&second[7..]);
        let Some(Answer::Hello {
            hello,
            kx,
            certificate_request,
        }) = parse_flight(&flight).unwrap()
        else {
            panic!("expected a hello");
        };
        assert_eq!((hello.version, hello.suite), (0x0303, 0xC02F));
        assert!(hello.renegotiation_info);
        assert_eq!(kx, Some(ServerKx::Named(0x0017)));
        assert!(certificate_request);
    }

    #[test]
    fn alert_and_hello_retry_request() {
        assert_eq!(
            parse_flight(&record(21, &[2, 40])).unwrap(),
            Some(Answer::Alert {
                level: 2,
                description: 40
            })
        );
        let mut b = server_hello(
            0x0303,
            0x1301,
            &[0, 0x2B, 0, 2, 3, 4, 0, 0x33, 0, 2, 0, 0x1D],
        );
        b[2..34].copy_from_slice(&HRR_RANDOM);
        let Some(Answer::Hello { hello, .. }) = parse_flight(&record(22, &hs(2, &b))).unwrap()
        else {
            panic!("expected a hello");
        };
        assert!(hello.retry);
        assert_eq!((hello.version, hello.group), (0x0304, Some(0x001D)));
    }

    #[test]
    fn truncated_server_hello_is_an_error_not_a_panic() {
        let b = server_hello(0x0303, 0xC02F, &[0xFF, 0x01, 0, 1, 0]);
        for cut in 0..b.len() - 1 {
            let mut body = b[..cut].to_vec();
            body.truncate(cut);
            let _ = parse_flight(&record(22, &hs(2, &body)));
        }
        assert!(parse_flight(&record(22, &hs(2, &b[..10]))).is_err());
    }

    #[test]
    fn dh_prime_bits() {
        let mut body = vec![0x01, 0x01, 0x00];
        body.extend_from_slice(&[0xFF; 256]);
        assert_eq!(
            parse_server_kx(0x009E, &body).unwrap(),
            Some(ServerKx::Dh { bits: 2048 })
        );
        let mut body = vec![0x00, 0x80, 0x7F];
        body.extend_from_slice(&[0xFF; 127]);
        assert_eq!(
            parse_server_kx(0x009E, &body).unwrap(),
            Some(ServerKx::Dh { bits: 1023 })
        );
    }
}
