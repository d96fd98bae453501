//! CA checks: expiring and weak CA certificates, a revoked intermediate with live devices.

use ironroot_defender::audit::{AuditOptions, CheckId, ResourceKind, Severity};
use ironroot_pki::{CaDirectory, HierarchyPolicy, RevocationReason};
use time::{Duration, OffsetDateTime};

use crate::harness::{
    Db, Env, ROOT_PASS, both_backends, of, openssl_cert_pem, passphrase, run_with,
};

/// An intermediate made with a 20-day life: flagged high (default threshold 90 days), and
/// only it; a default hierarchy (2-year intermediate) is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_lived_intermediate_is_expiring() {
    let hierarchy = HierarchyPolicy {
        intermediate_validity: Duration::days(20),
        ..HierarchyPolicy::default()
    };
    run_with(Db::Sqlite, hierarchy, |env: Env| async move {
        env.clean_fleet().await;
        // Judged one hour into the intermediate's 20-day life, so the day count cannot depend
        // on how many seconds the setup took (it read "20 days" when the audit ran within the
        // second the certificate was made).
        let snapshot = env.snapshot().await;
        let intermediate = snapshot
            .cas
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.name == env.intermediate_name())
            .unwrap()
            .not_after;
        let now = intermediate - 20 * 86_400 + 3_600;
        let report = ironroot_defender::audit::run(&snapshot, &AuditOptions::default(), now);
        let found = of(&report, CheckId::CaCertificateExpiring);
        assert_eq!(found.len(), 1, "{}", report.to_json());
        assert_eq!(found[0].severity, Severity::High);
        assert_eq!(found[0].resource.kind, ResourceKind::Ca);
        assert_eq!(found[0].resource.id, env.intermediate_name());
        assert!(
            found[0].message.contains("expires in 19 days"),
            "{}",
            found[0].message
        );
        // Device certificates, capped at the intermediate's end, still have 19 days: above
        // the 14-day device threshold.
        assert_eq!(of(&report, CheckId::DeviceCertificateExpiring).len(), 0);
    })
    .await;
}

async fn the_default_hierarchy_is_not_expiring_until_the_threshold_reaches_it(env: Env) {
    env.clean_fleet().await;
    let report = env.audit(&AuditOptions::default()).await;
    assert_eq!(
        of(&report, CheckId::CaCertificateExpiring),
        Vec::<&_>::new()
    );
    // A threshold longer than the intermediate's life finds it (and the root stays clear).
    let mut options = AuditOptions::default();
    options.thresholds.ca_expiry_days = 100 * 366;
    let report = env.audit(&options).await;
    let ids: Vec<&str> = of(&report, CheckId::CaCertificateExpiring)
        .iter()
        .map(|f| f.resource.id.as_str())
        .collect();
    assert!(ids.contains(&env.intermediate_name().as_str()), "{ids:?}");
}

/// A factory CA certificate replaced by an RSA-1024 one (made by openssl): ca-weak-key,
/// critical; the P-256 hierarchy itself passes.
async fn a_weak_ca_key_is_found(env: Env) {
    env.clean_fleet().await;
    assert_eq!(
        of(
            &env.audit(&AuditOptions::default()).await,
            CheckId::CaWeakKey
        ),
        Vec::<&_>::new()
    );
    let pem = openssl_cert_pem(&env.dir, "weak factory", &["rsa:1024"], 3650);
    std::fs::write(env.dir.join("pki/factory.crt.pem"), pem).unwrap();
    let report = env.audit(&AuditOptions::default()).await;
    let found = of(&report, CheckId::CaWeakKey);
    assert_eq!(found.len(), 1, "{}", report.to_json());
    assert_eq!(found[0].severity, Severity::Critical);
    assert_eq!(found[0].resource.id, "weak factory");
    assert!(
        found[0].message.contains("RSA 1024-bit key"),
        "{}",
        found[0].message
    );
}

/// Revoking the intermediate (root-signed, as `ca revoke-intermediate` does) while its device
/// certificates stay recorded as valid.
async fn a_revoked_intermediate_with_valid_device_certificates_is_found(env: Env) {
    env.clean_fleet().await;
    let report = env.audit(&AuditOptions::default()).await;
    assert_eq!(
        of(&report, CheckId::IntermediateRevokedWithActiveDevices),
        Vec::<&_>::new()
    );
    CaDirectory::new(&env.dir)
        .revoke_ca(
            None,
            &passphrase(ROOT_PASS),
            Some(1),
            RevocationReason::KeyCompromise,
            OffsetDateTime::now_utc(),
        )
        .unwrap();
    let report = env.audit(&AuditOptions::default()).await;
    let found = of(&report, CheckId::IntermediateRevokedWithActiveDevices);
    assert_eq!(found.len(), 1, "{}", report.to_json());
    assert_eq!(found[0].severity, Severity::High);
    assert_eq!(found[0].resource.id, env.intermediate_name());
    assert!(
        found[0].message.contains("3 certificates of 3 devices"),
        "{}",
        found[0].message
    );
    // Revoking those devices clears the finding.
    for id in ["sensor-1", "sensor-2", "sensor-3"] {
        env.identity
            .revoke_device_for(
                &ironroot_pki::DeviceId::parse(id).unwrap(),
                ironroot_store::RevocationReason::CaCompromise,
                "operator:test",
            )
            .await
            .unwrap();
    }
    let report = env.audit(&AuditOptions::default()).await;
    assert_eq!(
        of(&report, CheckId::IntermediateRevokedWithActiveDevices),
        Vec::<&_>::new(),
        "{}",
        report.to_json()
    );
}

both_backends!(
    the_default_hierarchy_is_not_expiring_until_the_threshold_reaches_it,
    a_weak_ca_key_is_found,
    a_revoked_intermediate_with_valid_device_certificates_is_found,
);
