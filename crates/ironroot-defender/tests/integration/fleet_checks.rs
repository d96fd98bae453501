//! Fleet checks: policies, attestation, revoked-but-connected, the audit log.

use std::collections::BTreeSet;

use ironroot_defender::audit::{self, AuditOptions, CheckId, Severity, Snapshot};
use ironroot_store::{PolicyTarget, RevocationReason};

use crate::harness::{DAY, Env, both_backends, of, origin, sqlite};

async fn an_overly_permissive_policy_is_found(env: Env) {
    env.clean_fleet().await;
    env.fleet
        .put_policy(
            &origin(),
            "everything",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*"}]}"#,
        )
        .await
        .unwrap();
    env.fleet
        .attach_policy(
            &origin(),
            "everything",
            &PolicyTarget::Group("line-a".into()),
        )
        .await
        .unwrap();
    let report = env.audit(&AuditOptions::default()).await;
    let found = of(&report, CheckId::PolicyOverlyPermissive);
    assert!(!found.is_empty(), "{}", report.to_json());
    assert!(found.iter().all(|f| f.resource.id == "everything"));
    assert!(found.iter().any(|f| f.severity == Severity::High
        && f.message.starts_with("allow-all-actions")
        && f.message.contains("attached to 1 targets")));
    assert!(found.iter().any(|f| f.key.contains("topic-catch-all")));
}

async fn devices_without_recent_attestation_are_found(env: Env) {
    env.clean_fleet().await;
    env.add_healthy_device("stale").await;
    env.boot_report("stale", audit::now() - 10 * DAY).await;
    let report = env.audit(&AuditOptions::default()).await;
    let found = of(&report, CheckId::DeviceNoRecentAttestation);
    assert_eq!(found.len(), 1, "{}", report.to_json());
    assert_eq!(found[0].resource.id, "stale");
    assert!(
        found[0].message.contains("10 days ago"),
        "{}",
        found[0].message
    );
    let mut options = AuditOptions::default();
    options.thresholds.attestation_max_age_days = 11;
    assert_eq!(
        of(
            &env.audit(&options).await,
            CheckId::DeviceNoRecentAttestation
        )
        .len(),
        0
    );
}

async fn a_revoked_certificate_in_a_live_session_is_found(env: Env) {
    env.clean_fleet().await;
    let live = env.add_healthy_device("sensor-9").await;
    let other = env.store.certificates_for_device("sensor-1").await.unwrap()[0]
        .serial
        .clone();
    let connected: BTreeSet<_> = [live.clone(), other.clone()].into();
    let snap = |c| {
        let c: BTreeSet<_> = c;
        let store = env.store.clone();
        let dir = env.dir.clone();
        async move { Snapshot::collect(&store, &dir, Some(c)).await.unwrap() }
    };
    let report = audit::run(
        &snap(connected.clone()).await,
        &AuditOptions::default(),
        audit::now(),
    );
    assert!(
        report
            .checks_run
            .contains(&CheckId::RevokedCertificateConnected)
    );
    assert_eq!(of(&report, CheckId::RevokedCertificateConnected).len(), 0);
    env.identity
        .revoke_serial(&live, RevocationReason::KeyCompromise, "operator:test")
        .await
        .unwrap();
    let report = audit::run(
        &snap(connected).await,
        &AuditOptions::default(),
        audit::now(),
    );
    let found = of(&report, CheckId::RevokedCertificateConnected);
    assert_eq!(found.len(), 1, "{}", report.to_json());
    assert_eq!(found[0].severity, Severity::Critical);
    assert_eq!(found[0].resource.id, live.to_string());
    assert!(found[0].message.contains("key_compromise"));
}

async fn a_missing_or_lagging_witness_is_found(env: Env) {
    env.clean_fleet().await;
    let witness = env.dir.join("audit/witness");
    let old = std::fs::read(&witness).unwrap();
    // More entries after the copy was taken.
    env.add_healthy_device("sensor-9").await;
    std::fs::write(&witness, &old).unwrap();
    let report = env.audit(&AuditOptions::default()).await;
    let found = of(&report, CheckId::AuditCheckpointNotWitnessed);
    assert_eq!(found.len(), 1, "{}", report.to_json());
    assert_eq!(found[0].severity, Severity::High);
    assert!(
        found[0].message.contains("rely on the database alone"),
        "{}",
        found[0].message
    );
    std::fs::remove_file(&witness).unwrap();
    let report = env.audit(&AuditOptions::default()).await;
    let found = of(&report, CheckId::AuditCheckpointNotWitnessed);
    assert_eq!(found.len(), 1, "{}", report.to_json());
    assert!(
        found[0].message.contains("no witness file"),
        "{}",
        found[0].message
    );
}

async fn a_missing_audit_key_means_logging_disabled(env: Env) {
    env.clean_fleet().await;
    std::fs::remove_file(env.dir.join("audit/checkpoint.key")).unwrap();
    let report = env.audit(&AuditOptions::default()).await;
    let found = of(&report, CheckId::AuditLoggingDisabled);
    assert_eq!(found.len(), 1, "{}", report.to_json());
    assert_eq!(found[0].severity, Severity::High);
    assert!(found[0].message.contains("checkpoint.key"));
}

/// A registry with devices but an empty log (devices written behind the services' back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_log_beside_registered_devices_means_logging_disabled() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ironroot_store::Store::open_data_dir(tmp.path())
        .await
        .unwrap();
    let none = audit::audit_installation(&store, tmp.path(), None, &AuditOptions::default())
        .await
        .unwrap();
    assert_eq!(none.findings, vec![], "an empty installation is clean");
    assert_eq!(none.checks_skipped.len(), 5, "no CA: CA checks skipped");
    store
        .add_device(&ironroot_store::NewDevice::new("ghost"))
        .await
        .unwrap();
    let report = audit::audit_installation(&store, tmp.path(), None, &AuditOptions::default())
        .await
        .unwrap();
    let found = of(&report, CheckId::AuditLoggingDisabled);
    assert_eq!(found.len(), 1, "{}", report.to_json());
    store.close().await;
}

both_backends!(
    an_overly_permissive_policy_is_found,
    a_missing_or_lagging_witness_is_found
);
sqlite!(
    devices_without_recent_attestation_are_found,
    a_revoked_certificate_in_a_live_session_is_found,
    a_missing_audit_key_means_logging_disabled,
);
