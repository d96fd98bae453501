//! What the scanner reports: [`Severity`], [`FindingKind`], [`Finding`] and the [`Report`].
//!
//! A finding's `detail` never holds the secret it is about: secrets are shown as a short
//! public prefix (the token type marker, such as `AKIA`) and a SHA-256 fingerprint, because
//! reports land in CI logs.

use core::fmt;
use core::str::FromStr;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::container::Container;

/// How bad a finding is, from `info` (worth knowing) to `critical` (a usable secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Context for a reviewer: a certificate, an image property.
    Info,
    /// A weakness signal that is often benign: build paths, debug banners, MD5 tables.
    Low,
    /// Likely a weakness: JTAG enable strings, DES tables, password hashes.
    Medium,
    /// A probable secret: a token, a hardcoded password, an encrypted private key.
    High,
    /// A usable secret: a validated private key, a key pair, a device identity.
    Critical,
}

impl Severity {
    /// All severities, lowest first.
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// The lowercase name (`info` … `critical`), as on the command line and in JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A severity name that is not one of `info`, `low`, `medium`, `high`, `critical`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
#[error("unknown severity {given:?} (use info, low, medium, high or critical)")]
pub struct ParseSeverityError {
    /// The text that did not parse.
    pub given: String,
}

impl FromStr for Severity {
    type Err = ParseSeverityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|sev| sev.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| ParseSeverityError {
                given: s.to_owned(),
            })
    }
}

/// What a finding is about. Serialised in `snake_case` (`private_key`, `aws_access_key_id`…).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FindingKind {
    /// A private key whose structure parsed (PEM or DER: PKCS#8, SEC1, PKCS#1).
    PrivateKey,
    /// A password-encrypted private key (PKCS#8 `EncryptedPrivateKeyInfo`).
    EncryptedPrivateKey,
    /// An X.509 certificate.
    Certificate,
    /// A certificate together with its own private key: a device identity baked into the image.
    IdentityBakedIn,
    /// 32 high-entropy bytes that are a valid P-256 scalar, next to the P-256 curve OID.
    RawEcScalar,
    /// An AWS access key id (`AKIA…`, `ASIA…`).
    AwsAccessKeyId,
    /// An AWS secret access key next to an access key id.
    AwsSecretKey,
    /// A token of a known shape: GitHub, Slack, Google API key, JWT, bearer/basic credentials.
    Token,
    /// A password assigned in a string (`password=…`, `"passwd": "…"`).
    HardcodedPassword,
    /// A known default user/password pair (admin/admin, root/root…).
    DefaultCredential,
    /// A crypt(3) password hash (`$1$`, `$5$`, `$6$`, `$2b$`), as in a baked-in shadow file.
    PasswordHash,
    /// Debug, UART or shell strings: banners, prompts, debug levels.
    DebugString,
    /// A string that enables JTAG/SWD debugging.
    JtagEnable,
    /// Constants of weak or legacy cryptography (MD5, SHA-1, DES, RC4).
    WeakCrypto,
    /// A path of the build machine (`/home/<user>/`, `C:\Users\`, `/Users/`).
    BuildPath,
    /// A property of the container: encrypted payload not scanned, scan limits reached.
    Container,
}

impl FindingKind {
    /// The `snake_case` name, as in JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            FindingKind::PrivateKey => "private_key",
            FindingKind::EncryptedPrivateKey => "encrypted_private_key",
            FindingKind::Certificate => "certificate",
            FindingKind::IdentityBakedIn => "identity_baked_in",
            FindingKind::RawEcScalar => "raw_ec_scalar",
            FindingKind::AwsAccessKeyId => "aws_access_key_id",
            FindingKind::AwsSecretKey => "aws_secret_key",
            FindingKind::Token => "token",
            FindingKind::HardcodedPassword => "hardcoded_password",
            FindingKind::DefaultCredential => "default_credential",
            FindingKind::PasswordHash => "password_hash",
            FindingKind::DebugString => "debug_string",
            FindingKind::JtagEnable => "jtag_enable",
            FindingKind::WeakCrypto => "weak_crypto",
            FindingKind::BuildPath => "build_path",
            FindingKind::Container => "container",
        }
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing found: what, how bad, where (file offset and length) and a redacted description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What was found.
    pub kind: FindingKind,
    /// How bad it is.
    pub severity: Severity,
    /// Offset of the first byte in the scanned input (the file).
    pub offset: u64,
    /// Number of bytes the finding covers.
    pub length: u64,
    /// A human description; never the secret itself (a type prefix and a fingerprint at most).
    pub detail: String,
}

/// The result of one scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// What the input was recognised as.
    pub container: Container,
    /// Number of bytes scanned.
    pub scanned_len: u64,
    /// Findings ordered by offset, then by severity (highest first).
    pub findings: Vec<Finding>,
    /// Whether the finding cap ([`crate::Scanner::max_findings`]) dropped findings.
    pub truncated: bool,
}

impl Report {
    /// The highest severity among the findings, if any.
    pub fn max_severity(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    /// The findings at or above `min`.
    pub fn at_least(&self, min: Severity) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.severity >= min)
    }

    /// Whether any finding is at or above `threshold` (the CI gate).
    pub fn fails(&self, threshold: Severity) -> bool {
        self.at_least(threshold).next().is_some()
    }
}

/// `sha256:` and the first 12 hex digits of the SHA-256 of `secret`: enough to tell two
/// secrets apart or to find one in a vault, useless for recovering it.
pub(crate) fn fingerprint(secret: &[u8]) -> String {
    let d = Sha256::digest(secret);
    let mut s = String::from("sha256:");
    for b in &d[..6] {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_order_and_parse_and_unknown_names_are_refused() {
        assert!(Severity::Info < Severity::Low && Severity::High < Severity::Critical);
        for s in Severity::ALL {
            assert_eq!(s.as_str().parse::<Severity>(), Ok(s));
            assert_eq!(s.as_str().to_uppercase().parse::<Severity>(), Ok(s));
        }
        let err = "severe".parse::<Severity>().unwrap_err();
        assert_eq!(err.given, "severe");
        assert!(
            err.to_string()
                .contains("use info, low, medium, high or critical")
        );
    }

    #[test]
    fn fingerprint_is_short_and_distinguishes_inputs() {
        let a = fingerprint(b"one secret");
        assert_eq!(a.len(), "sha256:".len() + 12);
        assert_ne!(a, fingerprint(b"another secret"));
    }
}
