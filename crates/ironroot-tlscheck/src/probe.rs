//! Network probes: one TCP connection per ClientHello, the server's first flight parsed with
//! [`crate::server::parse_flight`]. Enumerations offer a list, remove what the server picked
//! and ask again, until the server refuses (what sslyze and testssl.sh do).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::catalog::{self, KeyExchange};
use crate::hello::{ClientHello, version};
use crate::server::{Answer, MAX_FLIGHT, ServerKx, parse_flight};

/// Where and how to probe.
#[derive(Debug, Clone)]
pub struct Prober {
    /// The resolved address.
    pub addr: SocketAddr,
    /// SNI name (omitted for IP literals).
    pub server_name: Option<String>,
    /// Per-connection timeout (connect, and the whole answer).
    pub timeout: Duration,
}

/// The outcome of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered (hello or alert).
    Answer(Answer),
    /// The server closed the connection, or sent bytes that are not TLS, or timed out: it did
    /// not accept the hello.
    NoAnswer(String),
}

impl Outcome {
    /// The accepted ServerHello, if any.
    pub fn hello(&self) -> Option<(&crate::server::ServerHello, Option<ServerKx>, bool)> {
        match self {
            Outcome::Answer(Answer::Hello {
                hello,
                kx,
                certificate_request,
            }) => Some((hello, *kx, *certificate_request)),
            _ => None,
        }
    }
}

fn random() -> [u8; 32] {
    let mut r = [0u8; 32];
    // Probes do no cryptography with it; a failing RNG still leaves a valid hello.
    let _ = rustls::crypto::aws_lc_rs::default_provider()
        .secure_random
        .fill(&mut r);
    r
}

/// All TLS 1.2-and-earlier suites of the catalog, plus the renegotiation SCSV.
pub fn legacy_suite_ids() -> Vec<u16> {
    catalog::LEGACY_SUITES.iter().map(|s| s.id).collect()
}

/// All groups of the catalog.
pub fn group_ids() -> Vec<u16> {
    catalog::GROUPS.iter().map(|g| g.id).collect()
}

impl Prober {
    /// Sends one hello and reads the answer.
    pub fn send(&self, hello: &ClientHello) -> Result<Outcome, std::io::Error> {
        let mut stream = TcpStream::connect_timeout(&self.addr, self.timeout)?;
        let deadline = Instant::now() + self.timeout;
        stream.set_write_timeout(Some(self.timeout))?;
        let mut h = hello.clone();
        h.server_name.clone_from(&self.server_name);
        stream.write_all(&h.encode())?;
        let mut buf = Vec::with_capacity(8192);
        let mut chunk = [0u8; 8192];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Outcome::NoAnswer("timed out".into()));
            }
            stream.set_read_timeout(Some(left))?;
            let n = match stream.read(&mut chunk) {
                Ok(0) => return Ok(Outcome::NoAnswer("connection closed".into())),
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(Outcome::NoAnswer("timed out".into()));
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return Ok(Outcome::NoAnswer("connection reset".into()));
                }
                Err(e) => return Err(e),
            };
            buf.extend_from_slice(&chunk[..n]);
            match parse_flight(&buf[..buf.len().min(MAX_FLIGHT + 1)]) {
                Ok(Some(a)) => return Ok(Outcome::Answer(a)),
                Ok(None) => {}
                Err(e) => return Ok(Outcome::NoAnswer(e.to_string())),
            }
        }
    }

    /// Whether the server accepts `v` (offering every suite and group the catalog knows).
    pub fn accepts_version(&self, v: u16) -> Result<bool, std::io::Error> {
        let suites = if v == version::TLS1_3 {
            catalog::TLS13_SUITES.iter().map(|s| s.id).collect()
        } else {
            legacy_suite_ids()
        };
        let out = self.send(&ClientHello::new(v, suites, group_ids(), random()))?;
        Ok(out.hello().is_some_and(|(h, _, _)| h.version == v))
    }

    /// The suites the server accepts at `v`, in the order it picked them.
    pub fn enumerate_suites(&self, v: u16) -> Result<Vec<u16>, std::io::Error> {
        let mut offer: Vec<u16> = if v == version::TLS1_3 {
            catalog::TLS13_SUITES.iter().map(|s| s.id).collect()
        } else {
            legacy_suite_ids()
        };
        let mut accepted = Vec::new();
        while !offer.is_empty() {
            let out = self.send(&ClientHello::new(v, offer.clone(), group_ids(), random()))?;
            match out.hello() {
                Some((h, _, _)) if h.version == v && offer.contains(&h.suite) => {
                    accepted.push(h.suite);
                    offer.retain(|s| *s != h.suite);
                }
                _ => break,
            }
        }
        Ok(accepted)
    }

    /// The groups the server accepts: TLS 1.3 through HelloRetryRequest (empty key_share),
    /// TLS 1.2 through the ServerKeyExchange of ECDHE suites.
    pub fn enumerate_groups(&self, v: u16) -> Result<Vec<u16>, std::io::Error> {
        let suites: Vec<u16> = if v == version::TLS1_3 {
            catalog::TLS13_SUITES.iter().map(|s| s.id).collect()
        } else {
            catalog::LEGACY_SUITES
                .iter()
                .filter(|s| s.kx == KeyExchange::Ecdhe)
                .map(|s| s.id)
                .collect()
        };
        let mut offer: Vec<u16> = catalog::GROUPS
            .iter()
            .filter(|g| v == version::TLS1_3 || g.kind == catalog::GroupKind::Ec)
            .map(|g| g.id)
            .collect();
        let mut accepted = Vec::new();
        while !offer.is_empty() {
            let out = self.send(&ClientHello::new(
                v,
                suites.clone(),
                offer.clone(),
                random(),
            ))?;
            let picked = match out.hello() {
                Some((h, _, _)) if v == version::TLS1_3 && h.version == v => h.group,
                Some((h, Some(ServerKx::Named(g)), _)) if h.version == v => Some(g),
                _ => None,
            };
            match picked {
                Some(g) if offer.contains(&g) => {
                    accepted.push(g);
                    offer.retain(|x| *x != g);
                }
                _ => break,
            }
        }
        Ok(accepted)
    }

    /// The DH prime size (bits) when the server accepts a DHE suite at `v`.
    pub fn dhe_bits(&self, v: u16) -> Result<Option<u16>, std::io::Error> {
        let suites: Vec<u16> = catalog::LEGACY_SUITES
            .iter()
            .filter(|s| s.kx == KeyExchange::Dhe)
            .map(|s| s.id)
            .collect();
        let out = self.send(&ClientHello::new(v, suites, group_ids(), random()))?;
        Ok(match out.hello() {
            Some((h, Some(ServerKx::Dh { bits }), _)) if h.version == v => Some(bits),
            _ => None,
        })
    }

    /// Whether the server picks DEFLATE when offered compression methods `{1, 0}`.
    pub fn accepts_compression(&self, v: u16) -> Result<bool, std::io::Error> {
        let mut h = ClientHello::new(v, legacy_suite_ids(), group_ids(), random());
        h.compression = vec![1, 0];
        Ok(self
            .send(&h)?
            .hello()
            .is_some_and(|(h, _, _)| h.compression != 0))
    }

    /// TLS 1.2 hello with the RFC 5746 SCSV (and no extension): does the server answer with
    /// `renegotiation_info`, and does it send a plaintext CertificateRequest?
    pub fn renegotiation_and_cert_request(
        &self,
        v: u16,
    ) -> Result<Option<(bool, bool)>, std::io::Error> {
        let mut suites = legacy_suite_ids();
        suites.push(catalog::EMPTY_RENEGOTIATION_INFO_SCSV);
        let mut h = ClientHello::new(v, suites, group_ids(), random());
        h.renegotiation_info = false;
        Ok(self
            .send(&h)?
            .hello()
            .map(|(h, _, cr)| (h.renegotiation_info, cr)))
    }
}
