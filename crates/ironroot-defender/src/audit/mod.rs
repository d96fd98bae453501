//! Fleet configuration audit: a set of named checks over the registry, the CA files and the
//! audit log, each finding with a severity, a resource and a stable key; suppressions hide
//! what an operator has accepted.
//!
//! ```text
//!   Snapshot::collect(store, data_dir, connected?)     one read of everything the checks need
//!        │
//!        ▼
//!   run(&snapshot, &AuditOptions, now)                  pure: checks → findings → suppressions
//!        │                                                       (counted, not shown)
//!        ▼
//!   AuditReport { checks_run, checks_skipped, findings (most severe first), suppressed, summary }
//!        │
//!        ▼
//!   record_run(&audit, &origin, &report)                one `defender.audit_run` entry with the counts
//! ```

mod certs;
mod fleet;
pub mod keys;
mod model;
mod snapshot;
mod suppress;

use std::collections::BTreeSet;
use std::path::Path;

use ironroot_audit::{Audit, Event, EventKind, Receipt, RecordError};
use ironroot_fleet::Origin;
use ironroot_pki::Serial;
use ironroot_store::Store;

pub use model::{
    AuditReport, CheckId, Finding, Resource, ResourceKind, Severity, Skipped, Summary,
    UnknownCheck, UnknownSeverity,
};
pub use snapshot::{CaInfo, CaRoleInfo, LogState, Snapshot};
pub use suppress::{Suppression, SuppressionError, glob, parse_suppressions};

use crate::error::DefenderError;

/// Seconds in a day.
pub(crate) const DAY: i64 = 86_400;

/// The limits the checks apply. [`Thresholds::default`] holds the safe defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// `ca-certificate-expiring`: days before a CA certificate's end (default 90, one device
    /// certificate lifetime: the time a rotation needs to reach every device).
    pub ca_expiry_days: u32,
    /// `device-certificate-expiring`: days before an active device certificate's end (default
    /// 14: the agent renews at two thirds of 90 days, 30 days before the end, so a certificate
    /// this close has missed its renewal by two weeks).
    pub device_expiry_days: u32,
    /// `device-certificate-too-old`: age in days of a still valid operational certificate
    /// (default 365; the CA issues 90-day ones).
    pub device_max_age_days: u32,
    /// Weak key: RSA moduli below this many bits (default 2048).
    pub min_rsa_bits: u32,
    /// Weak key: elliptic curves below this many bits (default 256, P-256).
    pub min_ec_bits: u32,
    /// `device-no-recent-attestation`: days since an active device's latest boot report
    /// (default 7).
    pub attestation_max_age_days: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            ca_expiry_days: 90,
            device_expiry_days: 14,
            device_max_age_days: 365,
            min_rsa_bits: 2048,
            min_ec_bits: 256,
            attestation_max_age_days: 7,
        }
    }
}

/// How one audit runs: thresholds and accepted findings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditOptions {
    /// The limits.
    pub thresholds: Thresholds,
    /// Findings to hide (and count).
    pub suppressions: Vec<Suppression>,
}

/// Why `firmware-version-never-released` never runs yet.
pub const NO_RELEASE_REGISTRY: &str = "no release registry yet: the TUF repository \
    (`ironroot ota repo`) is not linked to the registry, so there is no list of released \
    versions to compare boot reports with";

/// Why `revoked-certificate-connected` did not run without session information.
pub const NO_SESSIONS: &str = "needs the serials of live MQTT sessions, which only a running \
    broker knows; an offline audit cannot see them";

/// Runs every check on `snapshot` at `now` (Unix seconds), then the suppressions.
pub fn run(snapshot: &Snapshot, options: &AuditOptions, now: i64) -> AuditReport {
    let t = &options.thresholds;
    let mut findings = Vec::new();
    let mut run = Vec::new();
    let mut skipped = Vec::new();
    let mut skip = |check, reason: &str| {
        skipped.push(Skipped {
            check,
            reason: reason.to_owned(),
        })
    };
    match &snapshot.cas {
        Some(cas) => {
            certs::ca_checks(cas, t, now, &mut findings);
            certs::revoked_ca_checks(snapshot, cas, &mut findings);
            run.extend([
                CheckId::CaCertificateExpiring,
                CheckId::CaWeakKey,
                CheckId::IntermediateRevokedWithActiveDevices,
            ]);
        }
        None => {
            let why = "no CA in the data directory (pki/ca-state.json)";
            skip(CheckId::CaCertificateExpiring, why);
            skip(CheckId::CaWeakKey, why);
            skip(CheckId::IntermediateRevokedWithActiveDevices, why);
        }
    }
    certs::device_checks(snapshot, t, now, &mut findings);
    run.extend([
        CheckId::DeviceCertificateExpiring,
        CheckId::DeviceCertificateTooOld,
        CheckId::DeviceCertificateShared,
        CheckId::DeviceCertificateWeakKey,
        CheckId::ConflictingClientIds,
    ]);
    match &snapshot.connected {
        Some(set) => {
            let list: Vec<Serial> = set.iter().cloned().collect();
            fleet::connected_checks(snapshot, &list, &mut findings);
            run.push(CheckId::RevokedCertificateConnected);
        }
        None => skip(CheckId::RevokedCertificateConnected, NO_SESSIONS),
    }
    fleet::policy_checks(snapshot, &mut findings);
    fleet::log_checks(snapshot, &mut findings);
    fleet::attestation_checks(snapshot, t, now, &mut findings);
    run.extend([
        CheckId::PolicyOverlyPermissive,
        CheckId::AuditLoggingDisabled,
        CheckId::AuditCheckpointNotWitnessed,
        CheckId::DeviceNoRecentAttestation,
    ]);
    skip(CheckId::FirmwareVersionNeverReleased, NO_RELEASE_REGISTRY);
    run.sort();
    let (mut shown, suppressed) = suppress::apply(findings, &options.suppressions, now);
    // Most severe first, then by check and key: the same fleet gives the same order.
    shown.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.check.cmp(&b.check))
            .then_with(|| a.key.cmp(&b.key))
    });
    AuditReport {
        ran_at: now,
        checks_run: run,
        checks_skipped: skipped,
        summary: Summary::of(&shown),
        findings: shown,
        suppressed,
    }
}

/// Reads the installation (registry `store`, CA and audit key in `data_dir`) and audits it at
/// the current time. `connected`: serials of live MQTT sessions, when known.
pub async fn audit_installation(
    store: &Store,
    data_dir: &Path,
    connected: Option<BTreeSet<Serial>>,
    options: &AuditOptions,
) -> Result<AuditReport, DefenderError> {
    let snapshot = Snapshot::collect(store, data_dir, connected).await?;
    Ok(run(&snapshot, options, now()))
}

/// Records one `defender.audit_run` entry for `report`: the counts of checks, findings per
/// severity and suppressed findings (never the findings' text).
pub async fn record_run(
    audit: &Audit,
    origin: &Origin,
    report: &AuditReport,
) -> Result<Receipt, RecordError> {
    let s = &report.summary;
    let event = Event::new(EventKind::DefenderAuditRun, origin.actor.clone())
        .subject("fleet", "audit")
        .source(origin.source.clone())
        .detail("checks_run", report.checks_run.len().to_string())
        .detail("checks_skipped", report.checks_skipped.len().to_string())
        .detail("findings", report.findings.len().to_string())
        .detail("critical", s.critical.to_string())
        .detail("high", s.high.to_string())
        .detail("medium", s.medium.to_string())
        .detail("low", s.low.to_string())
        .detail("suppressed", report.suppressed.to_string());
    audit.record(event).await
}

/// The current time, Unix seconds.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
