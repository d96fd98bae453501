//! Device certificate checks, each with a planted misconfiguration beside healthy devices.

use ironroot_defender::audit::{AuditOptions, CheckId, Severity};

use crate::harness::{DAY, Env, both_backends, of, openssl_cert, rcgen_cert, sqlite};
use ironroot_defender::audit::now;

/// Only the planted device is found by `check`, with `severity`.
fn only(
    env_report: &ironroot_defender::audit::AuditReport,
    check: CheckId,
    device: &str,
    severity: Severity,
) {
    let found = of(env_report, check);
    assert_eq!(found.len(), 1, "{}", env_report.to_json());
    assert_eq!(found[0].resource.id, device);
    assert_eq!(found[0].severity, severity);
}

async fn an_expiring_device_certificate_is_found(env: Env) {
    env.clean_fleet().await;
    env.add_healthy_device("sensor-9").await;
    let t = now();
    let key = rcgen::KeyPair::generate().unwrap();
    let serial = env
        .plant_certificate(
            "sensor-9",
            rcgen_cert("sensor-9", t - DAY, t + 5 * DAY, &key),
        )
        .await;
    let report = env.audit(&AuditOptions::default()).await;
    only(
        &report,
        CheckId::DeviceCertificateExpiring,
        "sensor-9",
        Severity::Medium,
    );
    let f = of(&report, CheckId::DeviceCertificateExpiring)[0];
    assert_eq!(f.serial.as_deref(), Some(serial.to_string().as_str()));
    assert!(
        f.message.contains("expires in 4 days") || f.message.contains("expires in 5 days"),
        "{}",
        f.message
    );
    // A shorter threshold lets it pass.
    let mut options = AuditOptions::default();
    options.thresholds.device_expiry_days = 3;
    assert_eq!(
        of(
            &env.audit(&options).await,
            CheckId::DeviceCertificateExpiring
        )
        .len(),
        0
    );
}

async fn a_too_old_device_certificate_is_found(env: Env) {
    env.clean_fleet().await;
    env.add_healthy_device("sensor-9").await;
    let t = now();
    let key = rcgen::KeyPair::generate().unwrap();
    env.plant_certificate(
        "sensor-9",
        rcgen_cert("sensor-9", t - 400 * DAY, t + 400 * DAY, &key),
    )
    .await;
    let report = env.audit(&AuditOptions::default()).await;
    only(
        &report,
        CheckId::DeviceCertificateTooOld,
        "sensor-9",
        Severity::Medium,
    );
    assert_eq!(of(&report, CheckId::DeviceCertificateExpiring).len(), 0);
}

/// Two devices enrolled by the CA with CSRs over the same key.
async fn a_key_shared_between_devices_is_found(env: Env) {
    env.clean_fleet().await;
    let key = rcgen::KeyPair::generate().unwrap();
    for id in ["twin-a", "twin-b"] {
        env.fleet
            .add_device(
                &crate::harness::origin(),
                &ironroot_store::NewDevice::new(id),
            )
            .await
            .unwrap();
        env.issue_with(id, &key).await;
    }
    let report = env.audit(&AuditOptions::default()).await;
    let found = of(&report, CheckId::DeviceCertificateShared);
    let ids: Vec<&str> = found.iter().map(|f| f.resource.id.as_str()).collect();
    assert_eq!(ids, vec!["twin-a", "twin-b"], "{}", report.to_json());
    assert!(found.iter().all(|f| f.severity == Severity::Critical));
    assert!(found[0].message.contains("twin-a, twin-b"));
}

/// RSA-1024 and P-192 certificates made by openssl, recorded through the store.
async fn weak_device_keys_are_found(env: Env) {
    env.clean_fleet().await;
    env.add_healthy_device("weak-rsa").await;
    env.add_healthy_device("weak-ec").await;
    let rsa = openssl_cert(&env.dir, "weak-rsa", &["rsa:1024"], 30);
    let ec = openssl_cert(
        &env.dir,
        "weak-ec",
        &["ec", "-pkeyopt", "ec_paramgen_curve:prime192v1"],
        30,
    );
    env.plant_certificate("weak-rsa", rsa).await;
    env.plant_certificate("weak-ec", ec).await;
    let report = env.audit(&AuditOptions::default()).await;
    let found = of(&report, CheckId::DeviceCertificateWeakKey);
    assert_eq!(found.len(), 2, "{}", report.to_json());
    let msg = |id: &str| {
        found
            .iter()
            .find(|f| f.resource.id == id)
            .unwrap()
            .message
            .clone()
    };
    assert!(
        msg("weak-rsa").contains("RSA 1024-bit"),
        "{}",
        msg("weak-rsa")
    );
    assert!(msg("weak-ec").contains("192 bits"), "{}", msg("weak-ec"));
    // The minimum is configurable: 1024-bit RSA accepted, P-192 still refused at 160... no: at 192.
    let mut options = AuditOptions::default();
    options.thresholds.min_rsa_bits = 1024;
    options.thresholds.min_ec_bits = 192;
    assert_eq!(
        of(
            &env.audit(&options).await,
            CheckId::DeviceCertificateWeakKey
        )
        .len(),
        0
    );
}

/// A certificate whose CN names another device, recorded for this one.
async fn a_certificate_naming_another_client_id_is_found(env: Env) {
    env.clean_fleet().await;
    env.add_healthy_device("sensor-9").await;
    let t = now();
    let key = rcgen::KeyPair::generate().unwrap();
    env.plant_certificate(
        "sensor-9",
        rcgen_cert("sensor-1", t - DAY, t + 60 * DAY, &key),
    )
    .await;
    let report = env.audit(&AuditOptions::default()).await;
    only(
        &report,
        CheckId::ConflictingClientIds,
        "sensor-9",
        Severity::High,
    );
    assert!(
        of(&report, CheckId::ConflictingClientIds)[0]
            .message
            .contains("\"sensor-1\"")
    );
}

both_backends!(
    a_key_shared_between_devices_is_found,
    weak_device_keys_are_found
);
sqlite!(
    an_expiring_device_certificate_is_found,
    a_too_old_device_certificate_is_found,
    a_certificate_naming_another_client_id_is_found,
);
