//! What an audit produces: check ids, severities, findings and the report.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// How much a finding matters, lowest first (so `>=` compares with `--fail-on`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Severity {
    /// Hygiene: worth fixing, no direct exposure.
    Low,
    /// An exposure under some conditions, or a control that may not hold.
    Medium,
    /// A direct exposure: a device or the log is less protected than the operator thinks.
    High,
    /// The chain of trust is broken now (a revoked identity still connected, a weak CA key).
    Critical,
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Severity; 4] = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// The lowercase name (`high`).
    pub fn as_str(self) -> &'static str {
        match self {
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

/// A severity name that is not one of `low`, `medium`, `high`, `critical`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown severity {0:?} (expected low, medium, high or critical)")]
pub struct UnknownSeverity(pub String);

impl FromStr for Severity {
    type Err = UnknownSeverity;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownSeverity(s.to_owned()))
    }
}

impl Serialize for Severity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

macro_rules! checks {
    ($( #[doc = $doc:literal] $variant:ident = $name:literal; )*) => {
        /// One configuration check; [`CheckId::as_str`] is its stable kebab-case id.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[non_exhaustive]
        pub enum CheckId {
            $( #[doc = $doc] $variant, )*
        }

        impl CheckId {
            /// Every check, in report order.
            pub const ALL: &'static [CheckId] = &[$(CheckId::$variant),*];

            /// The stable id (`device-certificate-expiring`).
            pub fn as_str(self) -> &'static str {
                match self { $(CheckId::$variant => $name,)* }
            }

            /// What the check looks for, one sentence (docs and `--help`).
            pub fn description(self) -> &'static str {
                match self { $(CheckId::$variant => $doc.trim(),)* }
            }
        }
    };
}

checks! {
    /// A CA certificate (root, current intermediate, factory CA) expires within the CA threshold or has expired.
    CaCertificateExpiring = "ca-certificate-expiring";
    /// A CA certificate has a weak key (RSA below the minimum bits, an elliptic curve below the minimum size, DSA or an unknown type).
    CaWeakKey = "ca-weak-key";
    /// An active device certificate expires within the device threshold or has expired while its device is still in service.
    DeviceCertificateExpiring = "device-certificate-expiring";
    /// An operational certificate still valid was issued longer ago than the maximum age (the CA issues them for 90 days).
    DeviceCertificateTooOld = "device-certificate-too-old";
    /// The same public key is in valid certificates of two or more devices: one key, several identities.
    DeviceCertificateShared = "device-certificate-shared";
    /// A valid device certificate has a weak key (same rule as ca-weak-key).
    DeviceCertificateWeakKey = "device-certificate-weak-key";
    /// A valid device certificate's subject CN (the MQTT client id it connects as) names another device than the one it is recorded for.
    ConflictingClientIds = "conflicting-client-ids";
    /// A revoked intermediate or factory CA still has valid (unrevoked) device certificates in the registry.
    IntermediateRevokedWithActiveDevices = "intermediate-revoked-with-active-devices";
    /// A revoked certificate is in a live MQTT session (needs the set of connected serials).
    RevokedCertificateConnected = "revoked-certificate-connected";
    /// A stored policy is overly permissive or likely misconfigured (the `ironroot policy lint` findings), or no longer parses.
    PolicyOverlyPermissive = "policy-overly-permissive";
    /// The audit log is off: no checkpoint key, or no entry at all while devices are registered.
    AuditLoggingDisabled = "audit-logging-disabled";
    /// The latest audit checkpoint is not held outside the database (witness file missing or behind), or a checkpoint's signature fails.
    AuditCheckpointNotWitnessed = "audit-checkpoint-not-witnessed";
    /// An active or quarantined device has sent no boot report (measured-boot attestation) within the maximum age.
    DeviceNoRecentAttestation = "device-no-recent-attestation";
    /// A device runs a firmware version that was never released (needs a release registry; skipped until one exists).
    FirmwareVersionNeverReleased = "firmware-version-never-released";
}

impl fmt::Display for CheckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A check name that no check has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown check {0:?}")]
pub struct UnknownCheck(pub String);

impl FromStr for CheckId {
    type Err = UnknownCheck;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CheckId::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownCheck(s.to_owned()))
    }
}

impl Serialize for CheckId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What kind of thing a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ResourceKind {
    /// A registered device (id).
    Device,
    /// A certificate known only by its serial.
    Certificate,
    /// A stored policy (name).
    Policy,
    /// A CA certificate (common name).
    Ca,
    /// The audit log of this installation.
    AuditLog,
}

impl ResourceKind {
    /// The kebab-case name, as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Device => "device",
            ResourceKind::Certificate => "certificate",
            ResourceKind::Policy => "policy",
            ResourceKind::Ca => "ca",
            ResourceKind::AuditLog => "audit-log",
        }
    }
}

/// The thing a finding is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Resource {
    /// Its kind.
    pub kind: ResourceKind,
    /// Device id, serial, policy name, CA common name, or `audit` for the log.
    pub id: String,
}

/// One misconfiguration found by a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The check that found it.
    pub check: CheckId,
    /// How much it matters.
    pub severity: Severity,
    /// What it is about.
    pub resource: Resource,
    /// The certificate concerned, when there is one (canonical lowercase hex).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// What was found and what to do, one or two sentences.
    pub message: String,
    /// Stable across runs while the misconfiguration lasts: check, resource, serial and a
    /// discriminator (`policy-overly-permissive:policy:p1:topic-catch-all:0`).
    pub key: String,
}

impl Finding {
    /// A finding whose key is built from its parts (`extra` distinguishes several findings of
    /// one check on one resource, such as lint codes).
    pub(crate) fn new(
        check: CheckId,
        severity: Severity,
        resource: Resource,
        serial: Option<String>,
        extra: Option<&str>,
        message: String,
    ) -> Self {
        let mut key = format!("{}:{}:{}", check, resource.kind.as_str(), resource.id);
        for part in [serial.as_deref(), extra].into_iter().flatten() {
            key.push(':');
            key.push_str(part);
        }
        Finding {
            check,
            severity,
            resource,
            serial,
            message,
            key,
        }
    }
}

/// A check that did not run, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The check.
    pub check: CheckId,
    /// Why it did not run (what input it needs).
    pub reason: String,
}

/// Counts of the findings shown (not suppressed), per severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Critical findings.
    pub critical: usize,
    /// High findings.
    pub high: usize,
    /// Medium findings.
    pub medium: usize,
    /// Low findings.
    pub low: usize,
}

impl Summary {
    /// Counts `findings` per severity.
    pub fn of(findings: &[Finding]) -> Self {
        let mut s = Summary::default();
        for f in findings {
            match f.severity {
                Severity::Critical => s.critical += 1,
                Severity::High => s.high += 1,
                Severity::Medium => s.medium += 1,
                Severity::Low => s.low += 1,
            }
        }
        s
    }
}

/// The result of one audit run; its JSON is what `ironroot defend audit --json` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    /// When the checks ran (Unix seconds).
    pub ran_at: i64,
    /// The checks that ran.
    pub checks_run: Vec<CheckId>,
    /// The checks that could not run, with the reason.
    pub checks_skipped: Vec<Skipped>,
    /// What was found and not suppressed, most severe first.
    pub findings: Vec<Finding>,
    /// How many findings suppressions hid.
    pub suppressed: usize,
    /// Counts of `findings` per severity.
    pub summary: Summary,
}

impl AuditReport {
    /// Whether a shown finding is at or above `threshold` (the `--fail-on` rule).
    pub fn has_finding_at_or_above(&self, threshold: Severity) -> bool {
        self.findings.iter().any(|f| f.severity >= threshold)
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report serializes")
    }
}
