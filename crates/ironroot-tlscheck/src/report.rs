//! Grading: the probes' observations become named checks (pass / warn / fail with detail) and
//! one overall grade. The JSON form (`ironroot check tls --json`) is [`Report`] serialized;
//! its fields are documented here and in `docs/security-testing.md`.

use serde::Serialize;

use crate::catalog::{self, Bulk, GroupKind, KeyExchange};
use crate::handshake::Handshake;

/// The result of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Meets the policy.
    Pass,
    /// Acceptable but worth attention.
    Warn,
    /// Violates the policy: `ironroot check tls` exits non-zero.
    Fail,
}

/// One named check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable identifier, e.g. `protocol.tls1_1`, `cipher.cbc` (see the docs for the list).
    pub id: &'static str,
    /// Pass, warn or fail.
    pub status: Status,
    /// What was seen, in words.
    pub detail: String,
}

/// The overall grade: `A` no warning, `B` warnings only, `F` at least one failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Grade {
    /// Every check passed.
    A,
    /// No failure, some warnings.
    B,
    /// At least one check failed.
    F,
}

/// One accepted cipher suite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AcceptedSuite {
    /// Protocol version it was accepted at (`TLSv1.2`, ...).
    pub protocol: String,
    /// IANA name (or hex code point).
    pub name: String,
}

/// Whether the server wants a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientCertificate {
    /// Connections without one are refused (mutual TLS).
    Required,
    /// Asked for, but optional.
    Requested,
    /// Never asked for.
    NotRequested,
}

/// The full report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// HOST:PORT as given.
    pub target: String,
    /// The address probed.
    pub address: String,
    /// Overall grade.
    pub grade: Grade,
    /// Accepted protocol versions (`SSLv3` … `TLSv1.3`).
    pub protocols: Vec<String>,
    /// Accepted cipher suites per protocol.
    pub cipher_suites: Vec<AcceptedSuite>,
    /// Accepted key-exchange groups (IANA names), plus `DH-<bits>` for a custom DHE prime.
    pub groups: Vec<String>,
    /// Client-certificate requirement.
    pub client_certificate: ClientCertificate,
    /// Subject of each served certificate, leaf first.
    pub certificate_chain: Vec<String>,
    /// Every check, in a fixed order.
    pub checks: Vec<Check>,
}

impl Report {
    /// True when no check failed (the CI gate).
    pub fn passed(&self) -> bool {
        self.grade != Grade::F
    }

    /// The check with `id`, if present.
    pub fn check(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }
}

/// What the probes saw, before grading.
#[derive(Debug, Clone, Default)]
pub struct Observations {
    /// Accepted versions (code points).
    pub versions: Vec<u16>,
    /// Accepted suites: (version, suite).
    pub suites: Vec<(u16, u16)>,
    /// Accepted groups (code points).
    pub groups: Vec<u16>,
    /// The DHE prime size, if a DHE suite was accepted.
    pub dh_bits: Option<u16>,
    /// The server picked DEFLATE.
    pub compression: bool,
    /// The server answered the renegotiation SCSV with `renegotiation_info` (None: no TLS
    /// 1.2-or-earlier handshake to ask in).
    pub secure_renegotiation: Option<bool>,
    /// The TLS 1.2 probe saw a plaintext CertificateRequest.
    pub plaintext_cert_request: bool,
    /// The real handshake.
    pub handshake: Handshake,
}

fn check(id: &'static str, fail: bool, bad: String, good: &str) -> Check {
    if fail {
        Check {
            id,
            status: Status::Fail,
            detail: bad,
        }
    } else {
        Check {
            id,
            status: Status::Pass,
            detail: good.to_owned(),
        }
    }
}

fn names(list: &[&catalog::Suite]) -> String {
    list.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
}

/// Grades observations into a report; `now` is Unix seconds (certificate lifetime).
pub fn grade(target: String, address: String, obs: &Observations, now: i64) -> Report {
    use crate::hello::version::*;
    let mut checks = Vec::new();
    let has = |v| obs.versions.contains(&v);
    for (id, v) in [
        ("protocol.sslv3", SSL3),
        ("protocol.tls1_0", TLS1_0),
        ("protocol.tls1_1", TLS1_1),
    ] {
        let name = catalog::version_name(v);
        checks.push(check(
            id,
            has(v),
            format!("{name} accepted (minimum is TLS 1.2)"),
            &format!("{name} refused"),
        ));
    }
    checks.push(check(
        "protocol.tls1_2_or_later",
        !has(TLS1_2) && !has(TLS1_3),
        "neither TLS 1.2 nor TLS 1.3 accepted".into(),
        "TLS 1.2 or TLS 1.3 accepted",
    ));
    checks.push(if has(TLS1_3) {
        Check {
            id: "protocol.tls1_3",
            status: Status::Pass,
            detail: "TLS 1.3 accepted".into(),
        }
    } else {
        Check {
            id: "protocol.tls1_3",
            status: Status::Warn,
            detail: "TLS 1.3 not offered".into(),
        }
    });

    let legacy: Vec<&catalog::Suite> = obs
        .suites
        .iter()
        .filter_map(|(_, s)| catalog::suite(*s))
        .filter(|s| s.kx != KeyExchange::Tls13)
        .collect();
    let cbc: Vec<_> = legacy
        .iter()
        .copied()
        .filter(|s| s.bulk == Bulk::Cbc)
        .collect();
    checks.push(check(
        "cipher.cbc",
        !cbc.is_empty(),
        format!("CBC suites accepted: {}", names(&cbc)),
        "no CBC suite accepted",
    ));
    let stat: Vec<_> = legacy
        .iter()
        .copied()
        .filter(|s| matches!(s.kx, KeyExchange::Rsa | KeyExchange::StaticEcdh))
        .collect();
    checks.push(check(
        "cipher.static_rsa",
        !stat.is_empty(),
        format!(
            "suites without forward secrecy (static RSA/ECDH) accepted: {}",
            names(&stat)
        ),
        "every accepted suite uses ephemeral (EC)DHE",
    ));
    let broken: Vec<_> = legacy
        .iter()
        .copied()
        .filter(|s| s.bulk == Bulk::Broken || s.kx == KeyExchange::Anonymous)
        .collect();
    checks.push(check(
        "cipher.broken",
        !broken.is_empty(),
        format!("broken or anonymous suites accepted: {}", names(&broken)),
        "no RC4, 3DES, DES, export, NULL or anonymous suite accepted",
    ));

    let weak_ec: Vec<&str> = obs
        .groups
        .iter()
        .filter_map(|g| catalog::group(*g))
        .filter(|g| g.kind == GroupKind::Ec && g.bits < catalog::MIN_EC_BITS)
        .map(|g| g.name)
        .collect();
    checks.push(check(
        "group.weak_ec",
        !weak_ec.is_empty(),
        format!("EC groups below 256 bits accepted: {}", weak_ec.join(", ")),
        "no EC group below 256 bits accepted",
    ));
    let weak_ff: Vec<&str> = obs
        .groups
        .iter()
        .filter_map(|g| catalog::group(*g))
        .filter(|g| g.kind == GroupKind::Ff && g.bits < catalog::MIN_DH_BITS)
        .map(|g| g.name)
        .collect();
    let weak_dh = obs.dh_bits.is_some_and(|b| b < catalog::MIN_DH_BITS) || !weak_ff.is_empty();
    checks.push(check(
        "group.weak_dh",
        weak_dh,
        format!(
            "finite-field DH below 2048 bits accepted ({} bits)",
            obs.dh_bits.unwrap_or(0)
        ),
        &match obs.dh_bits {
            Some(b) => format!("DHE prime is {b} bits"),
            None => "no DHE key exchange accepted".into(),
        },
    ));
    checks.push(check(
        "compression",
        obs.compression,
        "the server chose DEFLATE compression (CRIME)".into(),
        "compression refused",
    ));
    checks.push(check(
        "renegotiation.secure",
        obs.secure_renegotiation == Some(false),
        "no renegotiation_info in the ServerHello: insecure legacy renegotiation (RFC 5746)".into(),
        match obs.secure_renegotiation {
            Some(_) => "secure renegotiation (RFC 5746) indicated",
            None => "TLS 1.3 only: no renegotiation",
        },
    ));

    let hs = &obs.handshake;
    checks.push(check(
        "handshake",
        hs.error.is_some(),
        format!(
            "the full handshake failed: {}",
            hs.error.clone().unwrap_or_default()
        ),
        &match &hs.negotiated {
            Some((v, s, g)) => format!("completed with {v} {s} {g}"),
            None => "refused without a client certificate (as required)".into(),
        },
    ));
    let certs = crate::certs::checks(&hs.chain, now);
    checks.extend(certs.checks);
    let client_certificate = if hs.client_cert_required {
        ClientCertificate::Required
    } else if hs.client_cert_requested || obs.plaintext_cert_request {
        ClientCertificate::Requested
    } else {
        ClientCertificate::NotRequested
    };
    checks.push(Check {
        id: "client_certificate",
        status: Status::Pass,
        detail: match client_certificate {
            ClientCertificate::Required => "client certificate required",
            ClientCertificate::Requested => "client certificate requested (optional or presented)",
            ClientCertificate::NotRequested => "client certificate not requested",
        }
        .into(),
    });

    let worst = checks
        .iter()
        .map(|c| c.status)
        .max()
        .unwrap_or(Status::Pass);
    let mut groups: Vec<String> = obs.groups.iter().map(|g| catalog::group_name(*g)).collect();
    if let Some(b) = obs.dh_bits {
        groups.push(format!("DH-{b}"));
    }
    Report {
        target,
        address,
        grade: match worst {
            Status::Pass => Grade::A,
            Status::Warn => Grade::B,
            Status::Fail => Grade::F,
        },
        protocols: obs
            .versions
            .iter()
            .map(|v| catalog::version_name(*v))
            .collect(),
        cipher_suites: obs
            .suites
            .iter()
            .map(|(v, s)| AcceptedSuite {
                protocol: catalog::version_name(*v),
                name: catalog::suite_name(*s),
            })
            .collect(),
        groups,
        client_certificate,
        certificate_chain: certs.subjects,
        checks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hello::version::{TLS1_1, TLS1_2};

    fn ids(report: &Report, status: Status) -> Vec<&'static str> {
        report
            .checks
            .iter()
            .filter(|c| c.status == status)
            .map(|c| c.id)
            .collect()
    }

    #[test]
    fn each_weakness_fails_its_own_check_and_nothing_else() {
        let good = Observations {
            versions: vec![TLS1_2],
            suites: vec![(TLS1_2, 0xC02F)],
            groups: vec![0x001D],
            secure_renegotiation: Some(true),
            ..Observations::default()
        };
        let r = grade("t".into(), "a".into(), &good, 0);
        // No chain was seen (no handshake here): only the chain check fails; TLS 1.3 warns.
        assert_eq!(ids(&r, Status::Fail), ["certificate.chain"]);
        assert_eq!(ids(&r, Status::Warn), ["protocol.tls1_3"]);

        let mut weak = good.clone();
        weak.versions.push(TLS1_1);
        weak.suites.push((TLS1_2, 0x002F));
        weak.groups.push(0x0015);
        weak.dh_bits = Some(1024);
        weak.compression = true;
        weak.secure_renegotiation = Some(false);
        let r = grade("t".into(), "a".into(), &weak, 0);
        assert_eq!(
            ids(&r, Status::Fail),
            [
                "protocol.tls1_1",
                "cipher.cbc",
                "cipher.static_rsa",
                "group.weak_ec",
                "group.weak_dh",
                "compression",
                "renegotiation.secure",
                "certificate.chain",
            ]
        );
        assert_eq!(r.grade, Grade::F);
        assert!(r.groups.contains(&"DH-1024".to_owned()));
        assert!(
            r.check("cipher.static_rsa")
                .unwrap()
                .detail
                .contains("TLS_RSA_WITH_AES_128_CBC_SHA")
        );
    }
}
