//! Grades a TLS server by what it *accepts*, the way sslyze does: hand-built ClientHello
//! probes (one protocol version, one suite list, one group list, compression `{1, 0}`, the
//! renegotiation SCSV) read the ServerHello / HelloRetryRequest / Alert — so SSLv3, TLS 1.0,
//! CBC, static RSA and weak groups are seen even though rustls itself never speaks them — and
//! one real rustls handshake records the certificate chain and whether a client certificate
//! is required.
//!
//! ```text
//!   check(HOST:PORT) ─┬─ probe::Prober ── ClientHello::encode ──▶ server ──▶ server::parse_flight
//!                     │      versions, suites, groups, DHE prime, compression, renegotiation
//!                     ├─ handshake::handshake (rustls) ── chain, CertificateRequest, mTLS
//!                     └─ report::grade ──▶ Report { grade A/B/F, checks: pass/warn/fail }
//! ```
//!
//! # Getting started
//!
//! ```no_run
//! let options = ironroot_tlscheck::Options::new("127.0.0.1:8443");
//! let report = ironroot_tlscheck::check(&options)?;
//! for c in &report.checks {
//!     println!("{:?} {} {}", c.status, c.id, c.detail);
//! }
//! assert!(report.passed());
//! # Ok::<(), ironroot_tlscheck::CheckError>(())
//! ```
//!
//! # Public API
//! - [`check`] with [`Options`] → [`Report`] ([`Check`], [`Status`], [`Grade`]).
//! - [`ClientHello`] (builder) and [`parse_flight`] ([`Answer`]): the wire layer, fuzzed.
//! - [`CheckError`], [`ParseError`].
#![forbid(unsafe_code)]

pub mod catalog;
mod certs;
mod error;
mod handshake;
pub mod hello;
pub mod probe;
mod report;
pub mod server;

use std::net::ToSocketAddrs;
use std::time::Duration;

pub use error::{CheckError, ParseError};
pub use handshake::{ClientIdentity, Handshake};
pub use hello::ClientHello;
pub use report::{
    AcceptedSuite, Check, ClientCertificate, Grade, Observations, Report, Status, grade,
};
pub use server::{Answer, ServerHello, ServerKx, parse_flight};

/// What to check and how.
#[derive(Debug)]
pub struct Options {
    /// HOST:PORT.
    pub target: String,
    /// SNI and certificate name; defaults to HOST.
    pub server_name: Option<String>,
    /// Per-connection timeout.
    pub timeout: Duration,
    /// Client certificate to present when asked (mutual-TLS listeners).
    pub identity: Option<ClientIdentity>,
}

impl Options {
    /// Options for `target` with a 5 s timeout, SNI from the host, no client certificate.
    pub fn new(target: impl Into<String>) -> Self {
        Self {
            target: target.into(),
            server_name: None,
            timeout: Duration::from_secs(5),
            identity: None,
        }
    }
}

/// Probes and grades the server at `options.target`.
pub fn check(options: &Options) -> Result<Report, CheckError> {
    use hello::version::*;
    let target = options.target.clone();
    let (host, _) = target
        .rsplit_once(':')
        .filter(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
        .ok_or_else(|| CheckError::Target(target.clone()))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let addr = target
        .to_socket_addrs()
        .map_err(|source| CheckError::Resolve {
            target: target.clone(),
            source,
        })?
        .next()
        .ok_or_else(|| CheckError::Resolve {
            target: target.clone(),
            source: std::io::Error::other("no address"),
        })?;
    let conn_err = |source| CheckError::Connect {
        target: target.clone(),
        source,
    };
    std::net::TcpStream::connect_timeout(&addr, options.timeout).map_err(conn_err)?;
    let name = options.server_name.clone().unwrap_or(host);
    let prober = probe::Prober {
        addr,
        server_name: Some(name.clone()),
        timeout: options.timeout,
    };

    let mut obs = Observations::default();
    for v in [SSL3, TLS1_0, TLS1_1, TLS1_2, TLS1_3] {
        if prober.accepts_version(v).map_err(conn_err)? {
            obs.versions.push(v);
        }
    }
    for &v in &obs.versions {
        for s in prober.enumerate_suites(v).map_err(conn_err)? {
            obs.suites.push((v, s));
        }
    }
    let mut add_groups = |gs: Vec<u16>| {
        for g in gs {
            if !obs.groups.contains(&g) {
                obs.groups.push(g);
            }
        }
    };
    if obs.versions.contains(&TLS1_3) {
        add_groups(prober.enumerate_groups(TLS1_3).map_err(conn_err)?);
    }
    if let Some(&v) = obs.versions.iter().rev().find(|v| **v <= TLS1_2) {
        add_groups(prober.enumerate_groups(v).map_err(conn_err)?);
        obs.dh_bits = prober.dhe_bits(v).map_err(conn_err)?;
        obs.compression = obs
            .versions
            .iter()
            .filter(|v| **v <= TLS1_2)
            .map(|v| prober.accepts_compression(*v))
            .collect::<Result<Vec<_>, _>>()
            .map_err(conn_err)?
            .into_iter()
            .any(|b| b);
        if let Some((reneg, cr)) = prober.renegotiation_and_cert_request(v).map_err(conn_err)? {
            obs.secure_renegotiation = Some(reneg);
            obs.plaintext_cert_request = cr;
        }
    }
    obs.handshake = handshake::handshake(addr, &name, options.timeout, options.identity.as_ref())?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    Ok(grade(target, addr.to_string(), &obs, now))
}
