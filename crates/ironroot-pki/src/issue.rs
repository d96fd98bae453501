//! Issuing leaf certificates: devices (from CSRs), bootstrap credentials, operators, servers.
//!
//! Every method here is pure: it signs and returns an [`IssuedCertificate`] and writes
//! nothing. Recording it (registry transaction) and handing it out is the caller's job, in that
//! order.

use std::net::IpAddr;

use rcgen::SanType;
use time::{Duration, OffsetDateTime};

use crate::ca::{IssuedCertificate, IssuingCa, LeafProfile, Lifetime};
use crate::csr::{CsrPolicy, SubjectKey, VerifiedCsr, verify_csr};
use crate::device_id::DeviceId;
use crate::error::IssueError;
use crate::identity::{BOOTSTRAP_URI_PREFIX, COMMAND_SIGNER_URI, OPERATOR_URI_PREFIX};

/// How leaf certificates are issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuancePolicy {
    /// What CSRs are accepted.
    pub csr: CsrPolicy,
    /// Validity of device certificates (default 90 days).
    pub device_validity: Duration,
    /// Validity of operator and server certificates (default 365 days).
    pub service_validity: Duration,
    /// Validity of factory (bootstrap) credentials (default 10 years): they are made once on
    /// the manufacturing line and must outlive any time a device spends in a box or offline.
    /// Always capped at the factory CA's own notAfter.
    pub factory_validity: Duration,
    /// How far `not_before` is set in the past to tolerate device clock skew (default 5 min).
    pub backdate: Duration,
}

impl Default for IssuancePolicy {
    fn default() -> Self {
        Self {
            csr: CsrPolicy::default(),
            device_validity: Duration::days(90),
            service_validity: Duration::days(365),
            factory_validity: Duration::days(10 * 365),
            backdate: Duration::minutes(5),
        }
    }
}

impl IssuingCa {
    /// Issues a device certificate from a CSR (PEM or DER bytes as received).
    ///
    /// The CSR is parsed and its signature verified; only its public key is used. The subject
    /// is `CN=<device>` and the only SAN is the URI `urn:ironroot:device:<device>`; the
    /// extensions are fixed: basicConstraints CA:FALSE (critical), keyUsage digitalSignature,
    /// extendedKeyUsage clientAuth, authorityKeyIdentifier. If the CSR carries a CN it must
    /// equal `device`.
    pub fn issue_device_from_csr(
        &self,
        csr: &[u8],
        device: &DeviceId,
        policy: &IssuancePolicy,
        now: OffsetDateTime,
    ) -> Result<IssuedCertificate, IssueError> {
        let csr = verify_csr(csr, &policy.csr)?;
        self.issue_device(&csr, device, policy, now)
    }

    /// Issues a device certificate for an already verified CSR (see
    /// [`IssuingCa::issue_device_from_csr`]).
    pub fn issue_device(
        &self,
        csr: &VerifiedCsr,
        device: &DeviceId,
        policy: &IssuancePolicy,
        now: OffsetDateTime,
    ) -> Result<IssuedCertificate, IssueError> {
        if let Some(requested) = csr.common_name()
            && requested != device
        {
            return Err(IssueError::CommonNameMismatch {
                requested: requested.clone(),
                device: device.clone(),
            });
        }
        self.sign_leaf(
            csr.subject_key(),
            LeafProfile::Device,
            device.as_str(),
            vec![uri(device.to_uri())?],
            Lifetime {
                validity: policy.device_validity,
                backdate: policy.backdate,
            },
            now,
        )
    }

    /// Issues a bootstrap (manufacturing) credential from the factory CA: like a device
    /// certificate, but its SAN URI is `urn:ironroot:bootstrap:<device>`, so it is accepted
    /// only where enrollment is (never by the MQTT broker). It lives `policy.factory_validity`,
    /// capped at the factory CA's notAfter.
    pub fn issue_bootstrap(
        &self,
        csr: &VerifiedCsr,
        device: &DeviceId,
        policy: &IssuancePolicy,
        now: OffsetDateTime,
    ) -> Result<IssuedCertificate, IssueError> {
        if let Some(requested) = csr.common_name()
            && requested != device
        {
            return Err(IssueError::CommonNameMismatch {
                requested: requested.clone(),
                device: device.clone(),
            });
        }
        self.sign_leaf(
            csr.subject_key(),
            LeafProfile::Bootstrap,
            device.as_str(),
            vec![uri(format!("{BOOTSTRAP_URI_PREFIX}{device}"))?],
            Lifetime {
                validity: policy.factory_validity,
                backdate: policy.backdate,
            },
            now,
        )
    }

    /// Issues an operator client certificate (accepted by the provisioning/admin API). The
    /// operator name follows the device-id syntax.
    pub fn issue_operator(
        &self,
        key: &SubjectKey,
        name: &DeviceId,
        policy: &IssuancePolicy,
        now: OffsetDateTime,
    ) -> Result<IssuedCertificate, IssueError> {
        self.sign_leaf(
            key,
            LeafProfile::Operator,
            name.as_str(),
            vec![uri(format!("{OPERATOR_URI_PREFIX}{name}"))?],
            Lifetime {
                validity: policy.service_validity,
                backdate: policy.backdate,
            },
            now,
        )
    }

    /// Issues a command-signing certificate: the server signs commands to devices (e.g.
    /// decommission) with `key` and devices accept a command only under this profile.
    /// Subject `CN=ironroot command signer`, the only SAN is the URI
    /// [`COMMAND_SIGNER_URI`], extendedKeyUsage codeSigning (never clientAuth or serverAuth, so
    /// the certificate opens no TLS session), valid for `validity` after a `policy.backdate`.
    pub fn issue_command_signer(
        &self,
        key: &SubjectKey,
        validity: Duration,
        policy: &IssuancePolicy,
        now: OffsetDateTime,
    ) -> Result<IssuedCertificate, IssueError> {
        self.sign_leaf(
            key,
            LeafProfile::CommandSigner,
            COMMAND_SIGNER_COMMON_NAME,
            vec![uri(COMMAND_SIGNER_URI.to_owned())?],
            Lifetime {
                validity,
                backdate: policy.backdate,
            },
            now,
        )
    }

    /// Issues a TLS server certificate (HTTPS, MQTT on 8883) for the given host names and IP
    /// addresses. At least one name is required; the first is also the subject CN.
    pub fn issue_server(
        &self,
        key: &SubjectKey,
        names: &[ServerName],
        policy: &IssuancePolicy,
        now: OffsetDateTime,
    ) -> Result<IssuedCertificate, IssueError> {
        let first = names.first().ok_or(IssueError::NoServerNames)?;
        let sans = names
            .iter()
            .map(|n| match n {
                ServerName::Dns(d) => d
                    .as_str()
                    .try_into()
                    .map(SanType::DnsName)
                    .map_err(|_| IssueError::InvalidServerName(d.clone())),
                ServerName::Ip(ip) => Ok(SanType::IpAddress(*ip)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.sign_leaf(
            key,
            LeafProfile::Server,
            &first.to_string(),
            sans,
            Lifetime {
                validity: policy.service_validity,
                backdate: policy.backdate,
            },
            now,
        )
    }
}

/// Subject CN of command-signing certificates.
pub const COMMAND_SIGNER_COMMON_NAME: &str = "ironroot command signer";

/// A name a server certificate is valid for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerName {
    /// A DNS host name (letters, digits, '-', '.'; a leading `*.` label is not allowed).
    Dns(String),
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
}

impl ServerName {
    /// Parses an IP address literal or a DNS host name.
    pub fn parse(s: &str) -> Result<Self, IssueError> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Self::Ip(ip));
        }
        let ok = !s.is_empty()
            && s.len() <= 253
            && s.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if ok {
            Ok(Self::Dns(s.to_ascii_lowercase()))
        } else {
            Err(IssueError::InvalidServerName(
                s.escape_default().to_string(),
            ))
        }
    }
}

impl std::fmt::Display for ServerName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dns(d) => f.write_str(d),
            Self::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

fn uri(s: String) -> Result<SanType, IssueError> {
    s.as_str()
        .try_into()
        .map(SanType::URI)
        .map_err(|_| IssueError::Encoding("SAN URI is not IA5".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_parse_strictly() {
        assert_eq!(
            ServerName::parse("127.0.0.1").unwrap(),
            ServerName::Ip("127.0.0.1".parse().unwrap())
        );
        assert_eq!(
            ServerName::parse("::1").unwrap(),
            ServerName::Ip("::1".parse().unwrap())
        );
        assert_eq!(
            ServerName::parse("Broker.Example").unwrap(),
            ServerName::Dns("broker.example".into())
        );
        for bad in [
            "",
            "*.example",
            "a..b",
            "-a.b",
            "a b",
            "a/b",
            &"a".repeat(64),
        ] {
            assert!(ServerName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
