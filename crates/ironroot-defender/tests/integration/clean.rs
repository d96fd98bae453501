//! A clean fleet gives zero findings; the report's shape; suppressions; recording the run.

use ironroot_audit::{EventKind, LogStorage as _, SqlStorage};
use ironroot_defender::audit::{
    self, AuditOptions, CheckId, Severity, Suppression, parse_suppressions,
};
use ironroot_policy::PolicyDocument;

use crate::harness::{Env, both_backends, of, origin};

/// The policy the clean fleet uses is itself clean under the linter (else "clean" would lie).
#[test]
fn the_builtin_device_policy_lints_clean() {
    let doc = PolicyDocument::parse(ironroot_policy::builtin::DEFAULT_DEVICE_POLICY_JSON).unwrap();
    assert_eq!(ironroot_policy::lint(&doc), vec![]);
}

async fn a_clean_fleet_has_no_findings(env: Env) {
    env.clean_fleet().await;
    let report = env.audit(&AuditOptions::default()).await;
    assert_eq!(report.findings, vec![], "{}", report.to_json());
    assert_eq!(report.suppressed, 0);
    // Every check ran except the two that need inputs an offline audit lacks.
    let skipped: Vec<CheckId> = report.checks_skipped.iter().map(|s| s.check).collect();
    assert_eq!(
        skipped,
        vec![
            CheckId::RevokedCertificateConnected,
            CheckId::FirmwareVersionNeverReleased
        ]
    );
    assert_eq!(
        report.checks_run.len() + skipped.len(),
        CheckId::ALL.len(),
        "{:?}",
        report.checks_run
    );
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["findings"], serde_json::json!([]));
    assert_eq!(json["suppressed"], 0);
    assert_eq!(
        json["summary"],
        serde_json::json!({"critical": 0, "high": 0, "medium": 0, "low": 0})
    );
    assert!(
        json["checks_run"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("device-certificate-shared"))
    );
}

async fn a_planted_finding_shows_with_its_parts_and_a_stable_key(env: Env) {
    env.clean_fleet().await;
    // Planted: sensor-9 is active but never reported a boot.
    env.add_healthy_device("sensor-9").await;
    let snapshot = env.snapshot().await;
    let mut unattested = snapshot.clone();
    unattested.boot_reports.remove("sensor-9");
    let now = audit::now();
    let report = audit::run(&unattested, &AuditOptions::default(), now);
    assert_eq!(report.findings.len(), 1, "{}", report.to_json());
    let f = &report.findings[0];
    assert_eq!(f.check, CheckId::DeviceNoRecentAttestation);
    assert_eq!(f.severity, Severity::Medium);
    assert_eq!(f.resource.id, "sensor-9");
    assert_eq!(f.key, "device-no-recent-attestation:device:sensor-9");
    assert!(
        f.message.contains("never sent a boot report"),
        "{}",
        f.message
    );
    assert_eq!(report.summary.medium, 1);
    // Same fleet, later run: same key.
    let again = audit::run(&unattested, &AuditOptions::default(), now + 60);
    assert_eq!(again.findings[0].key, f.key);
    // The untouched snapshot is clean.
    assert_eq!(
        audit::run(&snapshot, &AuditOptions::default(), now).findings,
        vec![]
    );
}

async fn suppressions_hide_matching_findings_and_count_them(env: Env) {
    env.clean_fleet().await;
    let mut snapshot = env.snapshot().await;
    snapshot.boot_reports.clear();
    let now = audit::now();
    let all = audit::run(&snapshot, &AuditOptions::default(), now);
    assert_eq!(of(&all, CheckId::DeviceNoRecentAttestation).len(), 3);
    let suppressions = parse_suppressions(
        r#"
        [[suppress]]
        check = "device-no-recent-attestation"
        resource = "sensor-[12]"
        reason = "no such resource: brackets are literal"

        [[suppress]]
        check = "device-no-recent-attestation"
        resource = "sensor-?"
        expires = "2000-01-01T00:00:00Z"
        reason = "expired long ago: must not hide anything"

        [[suppress]]
        check = "device-no-recent-attestation"
        resource = "sensor-1"
        reason = "bench unit"

        [[suppress]]
        check = "ca-weak-key"
        resource = "*"
        reason = "other check: must not hide attestation findings"
        "#,
    )
    .unwrap();
    let options = AuditOptions {
        suppressions,
        ..AuditOptions::default()
    };
    let report = audit::run(&snapshot, &options, now);
    assert_eq!(report.suppressed, 1);
    let ids: Vec<&str> = report
        .findings
        .iter()
        .map(|f| f.resource.id.as_str())
        .collect();
    assert_eq!(ids, vec!["sensor-2", "sensor-3"]);
    assert_eq!(report.summary.medium, 2);
    // A glob over all of them.
    let options = AuditOptions {
        suppressions: vec![Suppression {
            check: CheckId::DeviceNoRecentAttestation,
            resource: "sensor-*".into(),
            expires: Some(now + 3600),
            reason: "fleet-wide agent upgrade this week".into(),
        }],
        ..AuditOptions::default()
    };
    let report = audit::run(&snapshot, &options, now);
    assert_eq!((report.findings.len(), report.suppressed), (0, 3));
    // After the expiry the findings are back.
    let later = audit::run(&snapshot, &options, now + 3601);
    assert_eq!((later.findings.len(), later.suppressed), (3, 0));
}

async fn an_audit_run_is_recorded_with_its_counts(env: Env) {
    env.clean_fleet().await;
    let mut snapshot = env.snapshot().await;
    snapshot.boot_reports.remove("sensor-2");
    let report = audit::run(&snapshot, &AuditOptions::default(), audit::now());
    let receipt = audit::record_run(&env.audit, &origin(), &report)
        .await
        .unwrap();
    let leaves = SqlStorage::new(env.store.clone())
        .read_leaves(receipt.index, receipt.index + 1, 1)
        .await
        .unwrap();
    let event = ironroot_audit::Event::decode(&leaves[0].data).unwrap();
    assert_eq!(event.event_type, EventKind::DefenderAuditRun);
    assert_eq!(event.actor, "operator:test");
    let detail = |k: &str| event.details.get(k).map(String::as_str);
    assert_eq!(detail("findings"), Some("1"));
    assert_eq!(detail("medium"), Some("1"));
    assert_eq!(detail("critical"), Some("0"));
    assert_eq!(detail("suppressed"), Some("0"));
    assert_eq!(detail("checks_skipped"), Some("2"));
}

both_backends!(
    a_clean_fleet_has_no_findings,
    a_planted_finding_shows_with_its_parts_and_a_stable_key,
    suppressions_hide_matching_findings_and_count_them,
    an_audit_run_is_recorded_with_its_counts,
);
