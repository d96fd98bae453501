//! Fleet checks: policies (the linter), attestation age, revoked certificates in live
//! sessions, and the audit log's own health.

use std::collections::BTreeMap;

use ironroot_pki::Serial;
use ironroot_policy::{Severity as LintSeverity, lint};
use ironroot_store::DeviceState;

use super::model::{CheckId, Finding, Resource, ResourceKind, Severity};
use super::snapshot::Snapshot;
use super::{DAY, Thresholds};

/// `policy-overly-permissive`: every linter finding of every stored policy's latest version.
pub(super) fn policy_checks(s: &Snapshot, out: &mut Vec<Finding>) {
    for p in &s.policies {
        let resource = Resource {
            kind: ResourceKind::Policy,
            id: p.latest.name.clone(),
        };
        let attached = match p.attachments.len() {
            0 => "not attached".to_owned(),
            n => format!("attached to {n} targets"),
        };
        let doc = match p.latest.parse() {
            Ok(doc) => doc,
            Err(e) => {
                out.push(Finding::new(
                    CheckId::PolicyOverlyPermissive,
                    Severity::High,
                    resource,
                    None,
                    Some("unparsable"),
                    format!(
                        "version {} no longer parses ({e}); it was validated on upload, so the \
                         stored text changed: restore it from the audit log ({attached})",
                        p.latest.version
                    ),
                ));
                continue;
            }
        };
        for (i, f) in lint(&doc).into_iter().enumerate() {
            let severity = match f.severity {
                LintSeverity::High => Severity::High,
                LintSeverity::Warning => Severity::Medium,
                _ => Severity::Low,
            };
            let place = f.statement.map_or_else(|| i.to_string(), |n| n.to_string());
            out.push(Finding::new(
                CheckId::PolicyOverlyPermissive,
                severity,
                resource.clone(),
                None,
                Some(&format!("{}:{place}", f.code)),
                format!(
                    "{} (version {}, {attached}): {}; fix: {}",
                    f.code, p.latest.version, f.message, f.fix
                ),
            ));
        }
    }
}

/// `device-no-recent-attestation`: active and quarantined devices whose latest boot report is
/// missing or older than the threshold.
pub(super) fn attestation_checks(s: &Snapshot, t: &Thresholds, now: i64, out: &mut Vec<Finding>) {
    let max = i64::from(t.attestation_max_age_days) * DAY;
    for d in s
        .devices
        .iter()
        .filter(|d| matches!(d.state, DeviceState::Active | DeviceState::Quarantined))
    {
        let message = match s.boot_reports.get(&d.id) {
            None => "has never sent a boot report (measured-boot attestation)".to_owned(),
            Some(&at) if now - at > max => format!(
                "sent its latest boot report {} days ago (maximum {})",
                (now - at).div_euclid(DAY),
                t.attestation_max_age_days
            ),
            Some(_) => continue,
        };
        out.push(Finding::new(
            CheckId::DeviceNoRecentAttestation,
            Severity::Medium,
            Resource {
                kind: ResourceKind::Device,
                id: d.id.clone(),
            },
            None,
            None,
            format!(
                "{} device {message}: what it runs is unknown; check the device's agent",
                d.state
            ),
        ));
    }
}

/// `revoked-certificate-connected`: revoked serials found in the live sessions.
pub(super) fn connected_checks(s: &Snapshot, connected: &[Serial], out: &mut Vec<Finding>) {
    let revoked: BTreeMap<&Serial, &str> = s
        .revoked
        .iter()
        .map(|r| (&r.serial, r.reason.as_str()))
        .collect();
    for serial in connected {
        if let Some(reason) = revoked.get(serial) {
            out.push(Finding::new(
                CheckId::RevokedCertificateConnected,
                Severity::Critical,
                Resource {
                    kind: ResourceKind::Certificate,
                    id: serial.to_string(),
                },
                Some(serial.to_string()),
                None,
                format!(
                    "certificate revoked ({reason}) is in a live MQTT session: the broker did \
                     not cut it; disconnect it and check the node's change-feed follower"
                ),
            ));
        }
    }
}

fn log_resource() -> Resource {
    Resource {
        kind: ResourceKind::AuditLog,
        id: "audit".to_owned(),
    }
}

/// `audit-logging-disabled` and `audit-checkpoint-not-witnessed`.
pub(super) fn log_checks(s: &Snapshot, out: &mut Vec<Finding>) {
    let log = &s.log;
    // A fresh data directory (no devices, no log) is not a finding: nothing is unaudited yet.
    let in_use = !s.devices.is_empty() || log.stored_size > 0;
    if in_use && (!log.key_present || log.stored_size == 0) {
        let why = if log.key_present {
            format!(
                "the audit log is empty although {} devices are registered: changes are not \
                 being audited",
                s.devices.len()
            )
        } else {
            "there is no audit checkpoint key (audit/checkpoint.key) in the data directory: no \
             process on it can write the audit log"
                .to_owned()
        };
        out.push(Finding::new(
            CheckId::AuditLoggingDisabled,
            Severity::High,
            log_resource(),
            None,
            None,
            why,
        ));
    }
    if log.stored_size == 0 && log.witness_size.is_none() {
        return;
    }
    if let Some(problem) = &log.stored_problem {
        out.push(Finding::new(
            CheckId::AuditCheckpointNotWitnessed,
            Severity::Critical,
            log_resource(),
            None,
            Some("stored-signature"),
            format!(
                "the latest stored checkpoint (size {}) does not verify: {problem}; run \
                 `ironroot audit verify`",
                log.stored_size
            ),
        ));
    }
    let finding = match (log.witness_size, &log.witness_problem) {
        (_, Some(problem)) => Some((
            Severity::Critical,
            format!("the witness checkpoint does not verify: {problem}"),
        )),
        (None, None) => Some((
            Severity::High,
            format!(
                "there is no witness file (audit/witness) for the {} entries in the database: \
                 a rollback of the database would go unnoticed; copy the latest checkpoint \
                 outside the data directory",
                log.stored_size
            ),
        )),
        (Some(w), None) if w < log.stored_size => Some((
            Severity::High,
            format!(
                "the witness holds a checkpoint of {w} entries but the database {}: the last \
                 {} entries rely on the database alone",
                log.stored_size,
                log.stored_size - w
            ),
        )),
        (Some(w), None) if w > log.stored_size => Some((
            Severity::Critical,
            format!(
                "the witness holds a checkpoint of {w} entries but the database only {}: the \
                 database was rolled back or replaced; run `ironroot audit verify`",
                log.stored_size
            ),
        )),
        (Some(_), None) => None,
    };
    if let Some((severity, message)) = finding {
        out.push(Finding::new(
            CheckId::AuditCheckpointNotWitnessed,
            severity,
            log_resource(),
            None,
            Some("witness"),
            message,
        ));
    }
}
