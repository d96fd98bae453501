//! Checks of the served certificate chain (parsed with x509-parser): present, in order, every
//! certificate within its validity, the leaf's key strong enough and not signed with SHA-1/MD5.
//! The chain is judged, not trusted: authenticating the server is the caller's business.

use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use crate::report::{Check, Status};

/// A leaf closer than this to expiry is a warning.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

const WEAK_SIGNATURES: &[(&str, &str)] = &[
    ("1.2.840.113549.1.1.4", "md5WithRSAEncryption"),
    ("1.2.840.113549.1.1.5", "sha1WithRSAEncryption"),
    ("1.2.840.10045.4.1", "ecdsa-with-SHA1"),
    ("1.2.840.10040.4.3", "dsa-with-sha1"),
];

/// Certificate checks and the chain's subjects.
#[derive(Debug, Clone)]
pub struct CertChecks {
    /// `certificate.*` checks.
    pub checks: Vec<Check>,
    /// Subjects, leaf first.
    pub subjects: Vec<String>,
}

fn c(id: &'static str, status: Status, detail: String) -> Check {
    Check { id, status, detail }
}

/// Judges `chain` (leaf first) at Unix time `now`.
pub fn checks(chain: &[CertificateDer<'static>], now: i64) -> CertChecks {
    let parsed: Vec<_> = chain
        .iter()
        .map(|d| X509Certificate::from_der(d.as_ref()).map(|(_, c)| c))
        .collect();
    let mut checks = Vec::new();
    let Some(first) = parsed.first() else {
        checks.push(c(
            "certificate.chain",
            Status::Fail,
            "no certificate chain seen (the full handshake did not get that far)".into(),
        ));
        return CertChecks {
            checks,
            subjects: Vec::new(),
        };
    };
    let Ok(leaf) = first else {
        checks.push(c(
            "certificate.chain",
            Status::Fail,
            "the leaf certificate does not parse".into(),
        ));
        return CertChecks {
            checks,
            subjects: Vec::new(),
        };
    };
    let ok: Vec<&X509Certificate<'_>> = parsed.iter().filter_map(|p| p.as_ref().ok()).collect();
    let subjects = ok.iter().map(|c| c.subject().to_string()).collect();

    let order_broken = ok.len() != parsed.len()
        || ok
            .windows(2)
            .any(|w| w[0].issuer().as_raw() != w[1].subject().as_raw());
    let expired: Vec<String> = ok
        .iter()
        .skip(1)
        .filter(|c| c.validity().not_after.timestamp() < now)
        .map(|c| c.subject().to_string())
        .collect();
    checks.push(if order_broken {
        c(
            "certificate.chain",
            Status::Fail,
            "chain out of order or unparsable (each issuer must be the next subject)".into(),
        )
    } else if !expired.is_empty() {
        c(
            "certificate.chain",
            Status::Fail,
            format!("expired intermediate(s): {}", expired.join("; ")),
        )
    } else {
        c(
            "certificate.chain",
            Status::Pass,
            format!("{} certificate(s), in order", ok.len()),
        )
    });

    let v = leaf.validity();
    let (from, until) = (v.not_before.timestamp(), v.not_after.timestamp());
    let days_left = (until - now) / 86_400;
    checks.push(if now < from {
        c(
            "certificate.lifetime",
            Status::Fail,
            format!("leaf not valid before {}", v.not_before),
        )
    } else if now > until {
        c(
            "certificate.lifetime",
            Status::Fail,
            format!("leaf expired on {}", v.not_after),
        )
    } else if days_left < EXPIRY_WARNING_DAYS {
        c(
            "certificate.lifetime",
            Status::Warn,
            format!("leaf expires in {days_left} day(s), on {}", v.not_after),
        )
    } else {
        c(
            "certificate.lifetime",
            Status::Pass,
            format!(
                "leaf valid until {} ({days_left} days left, {} days in total)",
                v.not_after,
                (until - from) / 86_400
            ),
        )
    });

    checks.push(match leaf.public_key().parsed() {
        Ok(PublicKey::RSA(k)) if k.key_size() < 2048 => c(
            "certificate.key",
            Status::Fail,
            format!("RSA {} bits (minimum 2048)", k.key_size()),
        ),
        Ok(PublicKey::RSA(k)) => c(
            "certificate.key",
            Status::Pass,
            format!("RSA {} bits", k.key_size()),
        ),
        Ok(PublicKey::EC(k)) if k.key_size() < 256 => c(
            "certificate.key",
            Status::Fail,
            format!("EC {} bits (minimum 256)", k.key_size()),
        ),
        Ok(PublicKey::EC(k)) => c(
            "certificate.key",
            Status::Pass,
            format!("EC {} bits", k.key_size()),
        ),
        Ok(_) => c("certificate.key", Status::Pass, "EdDSA or other key".into()),
        Err(_) => c(
            "certificate.key",
            Status::Fail,
            "the leaf's public key does not parse".into(),
        ),
    });

    let oid = leaf.signature_algorithm.algorithm.to_id_string();
    checks.push(match WEAK_SIGNATURES.iter().find(|(o, _)| *o == oid) {
        Some((_, name)) => c(
            "certificate.signature",
            Status::Fail,
            format!("leaf signed with {name}"),
        ),
        None => c(
            "certificate.signature",
            Status::Pass,
            format!("leaf signature algorithm {oid}"),
        ),
    });
    CertChecks { checks, subjects }
}
