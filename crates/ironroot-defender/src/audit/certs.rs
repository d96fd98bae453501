//! Certificate and CA checks: expiry, age, key strength, shared keys, client-id conflicts,
//! certificates left valid under a revoked CA.

use std::collections::{BTreeMap, BTreeSet};

use ironroot_store::{Certificate, CertificateKind, CertificateStatus, DeviceState};

use super::keys::facts;
use super::model::{CheckId, Finding, Resource, ResourceKind, Severity};
use super::snapshot::{CaInfo, CaRoleInfo, Snapshot};
use super::{DAY, Thresholds};

fn ca_resource(ca: &CaInfo) -> Resource {
    Resource {
        kind: ResourceKind::Ca,
        id: ca.name.clone(),
    }
}

fn device_resource(id: &str) -> Resource {
    Resource {
        kind: ResourceKind::Device,
        id: id.to_owned(),
    }
}

fn days(secs: i64) -> i64 {
    secs.div_euclid(DAY)
}

/// Whether a CA still signs or is relied on: not revoked, not a retired intermediate.
fn in_service(ca: &CaInfo) -> bool {
    !ca.revoked && ca.trusted_until.is_none()
}

/// `ca-certificate-expiring` and `ca-weak-key`.
pub(super) fn ca_checks(cas: &[CaInfo], t: &Thresholds, now: i64, out: &mut Vec<Finding>) {
    for ca in cas.iter().filter(|c| in_service(c)) {
        let left = ca.not_after - now;
        if left <= 0 {
            out.push(Finding::new(
                CheckId::CaCertificateExpiring,
                Severity::Critical,
                ca_resource(ca),
                Some(ca.serial.to_string()),
                None,
                format!(
                    "CA certificate {:?} expired {} days ago: nothing it issued verifies; rotate \
                     it (`ironroot ca rotate-intermediate`) or re-create the hierarchy",
                    ca.name,
                    days(-left)
                ),
            ));
        } else if left < i64::from(t.ca_expiry_days) * DAY {
            let fix = match ca.role {
                CaRoleInfo::Intermediate(_) => "rotate it now (`ironroot ca rotate-intermediate`)",
                CaRoleInfo::Root | CaRoleInfo::Factory => "plan its replacement now",
            };
            out.push(Finding::new(
                CheckId::CaCertificateExpiring,
                Severity::High,
                ca_resource(ca),
                Some(ca.serial.to_string()),
                None,
                format!(
                    "CA certificate {:?} expires in {} days (threshold {}): {fix}",
                    ca.name,
                    days(left),
                    t.ca_expiry_days
                ),
            ));
        }
        let weakness = match facts(&ca.der) {
            Ok(f) => f.key.weakness(t.min_rsa_bits, t.min_ec_bits),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = weakness {
            out.push(Finding::new(
                CheckId::CaWeakKey,
                Severity::Critical,
                ca_resource(ca),
                Some(ca.serial.to_string()),
                None,
                format!(
                    "CA certificate {:?}: {why}; everything it signs can be forged by whoever \
                     breaks the key: replace the CA",
                    ca.name
                ),
            ));
        }
    }
}

/// Device certificates (operational and factory) of devices still in service.
fn device_certs(s: &Snapshot) -> impl Iterator<Item = (&str, &Certificate)> {
    let retired: BTreeSet<&str> = s
        .devices
        .iter()
        .filter(|d| !d.state.may_receive_certificates())
        .map(|d| d.id.as_str())
        .collect();
    s.certificates.iter().filter_map(move |c| {
        let device = c.device_id.as_deref()?;
        let kind_ok = matches!(
            c.kind,
            CertificateKind::Operational | CertificateKind::Factory
        );
        (kind_ok && c.status != CertificateStatus::Revoked && !retired.contains(device))
            .then_some((device, c))
    })
}

/// `device-certificate-expiring`, `-too-old`, `-weak-key`, `-shared` and
/// `conflicting-client-ids`.
pub(super) fn device_checks(s: &Snapshot, t: &Thresholds, now: i64, out: &mut Vec<Finding>) {
    let state: BTreeMap<&str, DeviceState> =
        s.devices.iter().map(|d| (d.id.as_str(), d.state)).collect();
    let mut by_key: BTreeMap<Vec<u8>, Vec<(&str, &Certificate)>> = BTreeMap::new();
    for (device, cert) in device_certs(s) {
        let serial = Some(cert.serial.to_string());
        let valid = cert.not_after > now;
        let left = cert.not_after - now;
        if cert.status == CertificateStatus::Active && left < i64::from(t.device_expiry_days) * DAY
        {
            let text = if valid {
                format!(
                    "{} certificate expires in {} days (threshold {}) and has not been renewed",
                    cert.kind,
                    days(left),
                    t.device_expiry_days
                )
            } else {
                format!(
                    "{} certificate expired {} days ago while the device is {}: it can no longer \
                     connect; re-enroll it",
                    cert.kind,
                    days(-left),
                    state.get(device).map_or("registered", |s| s.as_str())
                )
            };
            out.push(Finding::new(
                CheckId::DeviceCertificateExpiring,
                Severity::Medium,
                device_resource(device),
                serial.clone(),
                None,
                text,
            ));
        }
        let age = now - cert.not_before;
        if valid
            && cert.kind == CertificateKind::Operational
            && age > i64::from(t.device_max_age_days) * DAY
        {
            out.push(Finding::new(
                CheckId::DeviceCertificateTooOld,
                Severity::Medium,
                device_resource(device),
                serial.clone(),
                None,
                format!(
                    "operational certificate issued {} days ago is still valid (maximum age {}): \
                     it was issued outside the CA's 90-day policy; re-enroll the device and \
                     revoke it",
                    days(age),
                    t.device_max_age_days
                ),
            ));
        }
        if !valid {
            continue;
        }
        match facts(&cert.der) {
            Ok(f) => {
                if let Some(why) = f.key.weakness(t.min_rsa_bits, t.min_ec_bits) {
                    out.push(Finding::new(
                        CheckId::DeviceCertificateWeakKey,
                        Severity::High,
                        device_resource(device),
                        serial.clone(),
                        None,
                        format!(
                            "{} certificate has a {why}; revoke it and re-enroll with P-256",
                            cert.kind
                        ),
                    ));
                }
                if f.common_name.as_deref() != Some(device) {
                    out.push(Finding::new(
                        CheckId::ConflictingClientIds,
                        Severity::High,
                        device_resource(device),
                        serial.clone(),
                        None,
                        format!(
                            "{} certificate recorded for this device names {} as its subject CN, \
                             so it connects under that client id: revoke it",
                            cert.kind,
                            f.common_name
                                .as_deref()
                                .map_or("no device".to_owned(), |cn| format!("{cn:?}"))
                        ),
                    ));
                }
                by_key.entry(f.spki).or_default().push((device, cert));
            }
            Err(e) => out.push(Finding::new(
                CheckId::DeviceCertificateWeakKey,
                Severity::High,
                device_resource(device),
                serial.clone(),
                None,
                format!("{e}: its key cannot be checked; revoke it"),
            )),
        }
    }
    for holders in by_key.values() {
        let devices: BTreeSet<&str> = holders.iter().map(|(d, _)| *d).collect();
        if devices.len() < 2 {
            continue;
        }
        let list = devices.iter().copied().collect::<Vec<_>>().join(", ");
        for (device, cert) in holders {
            out.push(Finding::new(
                CheckId::DeviceCertificateShared,
                Severity::Critical,
                device_resource(device),
                Some(cert.serial.to_string()),
                None,
                format!(
                    "the key of this {} certificate is also in valid certificates of other \
                     devices ({list}): whoever holds it can act as each of them; revoke them \
                     all and re-enroll each device with its own key",
                    cert.kind
                ),
            ));
        }
    }
}

/// `intermediate-revoked-with-active-devices`.
pub(super) fn revoked_ca_checks(s: &Snapshot, cas: &[CaInfo], out: &mut Vec<Finding>) {
    for ca in cas
        .iter()
        .filter(|c| c.revoked && c.role != CaRoleInfo::Root)
    {
        let still: Vec<&str> = device_certs(s)
            .filter(|(_, c)| c.issuer == ca.name)
            .map(|(d, _)| d)
            .collect();
        if still.is_empty() {
            continue;
        }
        let distinct: BTreeSet<&str> = still.iter().copied().collect();
        let sample = distinct
            .iter()
            .take(5)
            .copied()
            .collect::<Vec<_>>()
            .join(", ");
        out.push(Finding::new(
            CheckId::IntermediateRevokedWithActiveDevices,
            Severity::High,
            ca_resource(ca),
            Some(ca.serial.to_string()),
            None,
            format!(
                "CA {:?} is revoked but {} certificates of {} devices it issued are still \
                 recorded as valid (e.g. {sample}): handshakes refuse them, so those devices \
                 are offline; revoke the certificates and re-enroll the devices",
                ca.name,
                still.len(),
                distinct.len()
            ),
        ));
    }
}
